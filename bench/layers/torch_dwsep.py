"""PyTorch peer of `cargo bench --bench train -- fashion-dwsep THREADS EPOCHS` (bench/layers/dwsep.sh).

python torch_dwsep.py THREADS EPOCHS -> one JSON line with per-epoch train times (s): wall
(`epoch_times`) and the process's CPU time (`epoch_cpu`). The depthwise-separable CNN on
Fashion-MNIST 28x28 (the issue's speed target), the same layers as bma's `fashion-dwsep`:
conv 3x3 32 bn relu, then three depthwise-separable stages (depthwise 3x3 with stride 2, 2, 1,
pointwise 1x1 to 64, 128, 128, bn, relu), global average pooling, dense 10. Data, split,
standardisation, batch 64, Adam 1e-3 and the per-step loss read-back as bench/train/torch_fashion.py.
"""
import gzip, json, os, random, struct, sys, time

import warnings
warnings.filterwarnings("ignore")
import torch
from torch import nn

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
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


def stage(c_in, c_out, stride):
    return [nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in), nn.Conv2d(c_in, c_out, 1),
            nn.BatchNorm2d(c_out), nn.ReLU()]


net = nn.Sequential(
    nn.Unflatten(1, (1, 28, 28)),
    nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
    *stage(32, 64, 2), *stage(64, 128, 2), *stage(128, 128, 1),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-8)
loss_fn = nn.CrossEntropyLoss()
times, cpu = [], []
n = len(xtr)
for epoch in range(epochs):
    net.train()
    perm = torch.randperm(n)
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
print(json.dumps({"framework": f"torch-{torch.__version__}", "model": "fashion-dwsep", "threads": threads,
                  "params": params, "train_rows": n, "epoch_times": times, "epoch_cpu": cpu, "test_accuracy": round(acc, 4)}))
