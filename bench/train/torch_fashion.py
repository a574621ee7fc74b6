"""PyTorch peer of `cargo bench --bench train -- fashion-cnn|fashion-small THREADS EPOCHS`.

python torch_fashion.py MODEL THREADS EPOCHS -> one JSON line with per-epoch train times (s):
wall (`epoch_times`) and the process's CPU time (`epoch_cpu`), which a busy machine inflates less.
Data: the gzipped IDX files of Debian's dataset-fashion-mnist (FASHION_DIR), 58,800 training
rows (98 % of the official 60k, stratified; bma's split, not its permutation), pooled
standardisation fitted on them, the official 10k test set. Batch 64, Adam lr 1e-3 (eps 1e-8),
cross-entropy, the loss read back every step, the batch of one skipped, as bma does.
TORCH_DEVICE (default cpu) runs it elsewhere, e.g. `cuda` (scripts/gpu-check.sh).
"""
import gzip, json, os, random, struct, sys, time

import warnings
warnings.filterwarnings("ignore")
import torch
from torch import nn

model_name = sys.argv[1] if len(sys.argv) > 1 else "fashion-cnn"
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(threads)
torch.manual_seed(7)
random.seed(1)
root = os.environ.get("FASHION_DIR", "/usr/share/datasets/fashion-mnist")


def idx(name):
    b = gzip.open(f"{root}/{name}", "rb").read()
    rank = b[3]
    dims = struct.unpack(">" + "I" * rank, b[4:4 + 4 * rank])
    return torch.frombuffer(bytearray(b[4 + 4 * rank:]), dtype=torch.uint8).reshape(dims)


x = idx("train-images-idx3-ubyte.gz").float().reshape(-1, 784)
y = idx("train-labels-idx1-ubyte.gz").long()
xte = idx("t10k-images-idx3-ubyte.gz").float().reshape(-1, 784)
yte = idx("t10k-labels-idx1-ubyte.gz").long()
keep = []
for c in range(10):
    rows = (y == c).nonzero().flatten().tolist()
    random.shuffle(rows)
    keep += rows[:round(len(rows) * 0.98)]
xtr, ytr = x[keep], y[keep]
mean, std = xtr.mean(), xtr.std()
xtr, xte = (xtr - mean) / std, (xte - mean) / std
device = torch.device(os.environ.get("TORCH_DEVICE", "cpu"))
xtr, ytr, xte, yte = xtr.to(device), ytr.to(device), xte.to(device), yte.to(device)

c1, c2, width = (32, 64, 128) if model_name == "fashion-cnn" else (16, 32, 64)
net = nn.Sequential(
    nn.Unflatten(1, (1, 28, 28)),
    nn.Conv2d(1, c1, 3, padding="same"), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(c1, c2, 3, padding="same"), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(c2 * 49, width), nn.ReLU(), nn.Linear(width, 10)).to(device)
opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-8)
loss_fn = nn.CrossEntropyLoss()
times, cpu = [], []
n = len(xtr)
for epoch in range(epochs):
    net.train()
    perm = torch.randperm(n, device=device)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, n, 64):
        idx_ = perm[i:i + 64]
        if len(idx_) < 2:
            continue
        opt.zero_grad()
        loss = loss_fn(net(xtr[idx_]), ytr[idx_])
        loss.backward()
        opt.step()
        loss.item()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
net.eval()
with torch.no_grad():
    acc = sum((net(xte[i:i + 512]).argmax(1) == yte[i:i + 512]).sum().item() for i in range(0, len(xte), 512)) / len(xte)
params = sum(p.numel() for p in net.parameters())
print(json.dumps({"framework": f"torch-{torch.__version__}", "device": str(device), "model": model_name, "threads": threads,
                  "params": params, "train_rows": n, "epoch_times": times, "epoch_cpu": cpu, "test_accuracy": round(acc, 4)}))
