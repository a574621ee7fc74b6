"""PyTorch peer of bench/layers/lstm.rs: the same generated texts, model and settings.

python torch_lstm.py CELL ROWS EPOCHS -> one JSON line with per-epoch training times (s)
and CPU seconds. embedding(1002, 128) -> nn.LSTM / nn.GRU(128, 128), the last state ->
Linear(128, 2); batch 32, Adam(1e-3), cross-entropy, the loss read every step; 90 % of
the rows train (the same count as bma's split, not the same rows), one thread.
"""
import json, os, random, sys, time
from pathlib import Path

import warnings
warnings.filterwarnings("ignore")
import torch
from torch import nn

cell = sys.argv[1] if len(sys.argv) > 1 else "lstm"
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1200
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(1)
torch.manual_seed(7)
random.seed(1)

root = Path(__file__).resolve().parents[2]
csv = root / f"target/bench-layers-{rows}.csv"
lines = csv.read_text().splitlines()[1:]
ids, labels = [], []
for l in lines:
    text, label = l.rsplit(",", 1)
    ids.append([int(w[1:]) + 2 for w in text.split()])
    labels.append(int(label))
x = torch.tensor(ids)
y = torch.tensor(labels)
ntr = len(lines) - 2 * round(len(lines) * 0.05)
xtr, ytr = x[:ntr], y[:ntr]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(1002, 128)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(128, 128, batch_first=True)
        self.out = nn.Linear(128, 2)

    def forward(self, ids):
        _, h = self.rnn(self.emb(ids))
        h = h[0] if cell == "lstm" else h
        return self.out(h[-1])


model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
times, cpu = [], []
for epoch in range(epochs):
    perm = torch.randperm(ntr)
    t0, c0 = time.perf_counter(), sum(os.times()[:2])
    total = 0.0
    for s in range(0, ntr, 32):
        idx = perm[s:s + 32]
        opt.zero_grad()
        loss = loss_fn(model(xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()
        total += loss.item()
    times.append(time.perf_counter() - t0)
    cpu.append(sum(os.times()[:2]) - c0)
params = sum(p.numel() for p in model.parameters())
print(json.dumps({"framework": "torch", "cell": cell, "rows": ntr, "steps": (ntr + 31) // 32, "params": params,
                  "epoch_times": times, "epoch_cpu": cpu, "train_loss": total / ((ntr + 31) // 32),
                  "torch": torch.__version__}))
