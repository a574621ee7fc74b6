"""PyTorch peer of bench/train/epoch.rs: the same digits split sizes, models and settings.

python torch_epoch.py MODEL THREADS EPOCHS -> one JSON line with per-epoch train times (s).
Data: bma's embedded copy (stdlib/datasets/digits.csv.gz), pooled standardisation fitted
on train, 80/10/10 stratified split (not the same permutation as bma's; same sizes).
"""
import gzip, json, random, sys, time
from pathlib import Path

import warnings
warnings.filterwarnings("ignore")  # "Failed to initialize NumPy": numpy is not needed here
import torch
from torch import nn

model_name = sys.argv[1] if len(sys.argv) > 1 else "mlp"
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
torch.set_num_threads(threads)
torch.manual_seed(7)
random.seed(1)

root = Path(__file__).resolve().parents[2]
rows = [list(map(float, l.split(","))) for l in gzip.open(root / "stdlib/datasets/digits.csv.gz", "rt") if l.strip()]
by_class = {}
for r in rows:
    by_class.setdefault(int(r[-1]), []).append(r)
train, test = [], []
for c, rs in sorted(by_class.items()):
    random.shuffle(rs)
    ntr, nva = round(len(rs) * 0.8), round(len(rs) * 0.1)
    train += rs[:ntr]
    test += rs[ntr + nva:]
xtr = torch.tensor([r[:64] for r in train])
ytr = torch.tensor([int(r[64]) for r in train])
xte = torch.tensor([r[:64] for r in test])
yte = torch.tensor([int(r[64]) for r in test])
mean, std = xtr.mean(), xtr.std()
xtr, xte = (xtr - mean) / std, (xte - mean) / std

if model_name == "cnn-bn":
    layers, c = [nn.Unflatten(1, (1, 8, 8))], 1
    for _ in range(3):
        layers += [nn.Conv2d(c, 32, 3, padding="same"), nn.BatchNorm2d(32), nn.ReLU()]
        c = 32
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
elif model_name == "cnn":
    net = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
else:
    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
times = []
n = len(xtr)
for epoch in range(epochs):
    perm = torch.randperm(n)
    t0 = time.perf_counter()
    for i in range(0, n, 64):
        idx = perm[i:i + 64]
        if len(idx) < 2:
            continue
        opt.zero_grad()
        loss = loss_fn(net(xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()
        loss.item()
    times.append(time.perf_counter() - t0)
with torch.no_grad():
    acc = (net(xte).argmax(1) == yte).float().mean().item()
params = sum(p.numel() for p in net.parameters())
print(json.dumps({"framework": f"pytorch-{torch.__version__}", "model": model_name, "threads": threads, "params": params, "epoch_times": times, "test_accuracy": round(acc, 4)}))
