"""PyTorch's side of the image-loading benchmark: torchvision's ImageFolder + DataLoader over
the same PNG folder, the same work per image as bma (decode, to grey, to float in [0, 1],
standardise) and the same batch size, shuffled. Prints one JSON line per epoch; epoch 1
includes listing the folder and starting the workers.

    python torch_load.py DIR WORKERS BATCH EPOCHS
"""
import json
import sys
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def main():
    root, workers, batch, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    start = time.perf_counter()
    tf = transforms.Compose(
        [transforms.Grayscale(num_output_channels=1), transforms.ToTensor(), transforms.Normalize((0.286,), (0.353,))]
    )
    ds = datasets.ImageFolder(root, transform=tf)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    checksum = 0.0
    for epoch in range(1, epochs + 1):
        t = start if epoch == 1 else time.perf_counter()
        n = 0
        for x, y in loader:
            n += x.shape[0]
            checksum += float(x[0, 0, 0, 0])
        secs = time.perf_counter() - t
        print(json.dumps({"tool": "torch", "workers": workers, "epoch": epoch, "images": n, "seconds": round(secs, 3),
                          "images_per_s": round(n / secs), "checksum": round(checksum, 3)}), flush=True)


if __name__ == "__main__":
    main()
