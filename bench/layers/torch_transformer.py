"""PyTorch side of bench/layers/transformer.sh: the same 2-layer pre-norm transformer encoder.

    python torch_transformer.py THREADS EPOCHS STEPS

embedding(1000, 128) + a learnt [128, 128] position table, 2 x nn.TransformerEncoderLayer(
128, 4 heads, 512, dropout 0, GELU, norm_first=True, batch_first=True) with the padding mask,
the masked mean over positions, a linear head to 2 classes; batch 32 of 128 token ids, Adam
(1e-3), cross-entropy, the loss read every step (as bma does). Prints one JSON line with the
per-epoch times of the STEPS training steps (wall s) and the process CPU s of each epoch.
"""
import json
import sys
import time

import torch
from torch import nn

threads, epochs, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(1)
VOCAB, D, T, B, CLASSES = 1000, 128, 128, 32, 2


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, D)
        self.pos = nn.Parameter(torch.randn(T, D) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(D, 4, 512, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
            for _ in range(2)
        )
        self.head = nn.Linear(D, CLASSES)

    def forward(self, ids):
        pad = ids == 0
        x = self.emb(ids) + self.pos
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        keep = (~pad).float().unsqueeze(-1)
        return self.head((x * keep).sum(1) / keep.sum(1).clamp(min=1.0))


model = Encoder()
params = sum(p.numel() for p in model.parameters())
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
data = [(torch.randint(2, VOCAB, (B, T)), torch.randint(0, CLASSES, (B,))) for _ in range(steps)]
times, cpu = [], []
model.train()
for _ in range(epochs):
    t0, c0 = time.perf_counter(), time.process_time()
    for x, y in data:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
print(json.dumps({"framework": "pytorch", "threads": threads, "params": params, "steps": steps,
                  "epoch_times": times, "epoch_cpu": cpu}))
