"""The PyTorch side of bench/layers/conv1d.sh: the same 1-D CNN on the same token ids.

python torch_conv1d.py CSV ROWS EPOCHS

The first ROWS texts of CSV (as many as bma trains on), each word `wK` as id K + 2 (0 pads,
1 unknown: bma's ids differ, the shapes and the work do not), cut at 128.
Embedding(1002, 64) -> Conv1d(64, 128, 5, padding 2) -> ReLU -> max over time -> Linear,
Adam(1e-3), batch 32, shuffled each epoch, 1 thread. Prints one JSON line: the per-epoch
times of the training steps (s), the process CPU seconds and the mean train loss of each
epoch, and the train accuracy of the last epoch's weights.
"""
import json
import resource
import sys
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(1)


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Net(torch.nn.Module):
    def __init__(self, vocab, classes):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, 64)
        self.conv = torch.nn.Conv1d(64, 128, 5, padding=2)
        self.out = torch.nn.Linear(128, classes)

    def forward(self, ids):
        x = self.emb(ids).transpose(1, 2)  # [b, 64, t]
        x = torch.relu(self.conv(x))
        return self.out(x.max(dim=2).values)


def main():
    rows, epochs = int(sys.argv[2]), int(sys.argv[3])
    with open(sys.argv[1]) as f:
        next(f)
        lines = [next(f) for _ in range(rows)]
    texts = [l.rsplit(",", 1) for l in lines]
    ids = torch.tensor([[int(w[1:]) + 2 for w in t.strip('"').split()[:128]] for t, _ in texts])
    labels = torch.tensor([1 if y.strip() == "yes" else 0 for _, y in texts])
    classes = int(labels.max()) + 1
    net = Net(1002, classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = ids.shape[0]
    times, cpus, losses = [], [], []
    for _ in range(epochs):
        perm = torch.randperm(n)
        t0, c0 = time.perf_counter(), cpu()
        total, steps = 0.0, 0
        for s in range(0, n, 32):
            b = perm[s : s + 32]
            opt.zero_grad()
            loss = loss_fn(net(ids[b]), labels[b])
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        times.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
        losses.append(round(total / max(steps, 1), 4))
    with torch.no_grad():
        acc = float((net(ids).argmax(1) == labels).float().mean())
    print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "train_rows": n, "epoch_times": times,
                      "epoch_cpu": cpus, "train_loss": losses, "train_accuracy": round(acc, 4)}))


if __name__ == "__main__":
    main()
