"""Writes N 28x28 grey images for the streaming benchmark: Fashion-MNIST's training images
(Debian's dataset-fashion-mnist), repeated from the start when N is past its 60,000, as a
PNG class-folder tree OUT/<class>/<index>.png, or with `npy` as first argument as
OUT/x.npy (float32 pixels / 255, [N, 28, 28]) and OUT/y.npy (int64 labels)."""
import gzip
import os
import sys

import numpy as np
from PIL import Image

SRC = "/usr/share/datasets/fashion-mnist"
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def npy(out, n):
    with gzip.open(f"{SRC}/train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{SRC}/train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    k = np.arange(n) % len(images)
    os.makedirs(out, exist_ok=True)
    np.save(f"{out}/x.npy", images[k].astype(np.float32) / np.float32(255))
    np.save(f"{out}/y.npy", labels[k].astype(np.int64))
    print(f"wrote {n} float32 images to {out}/x.npy")


def main():
    if sys.argv[1] == "npy":
        npy(sys.argv[2], int(sys.argv[3]))
        return
    out, n = sys.argv[1], int(sys.argv[2])
    with gzip.open(f"{SRC}/train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{SRC}/train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for c in CLASSES:
        os.makedirs(f"{out}/{c}", exist_ok=True)
    for i in range(n):
        k = i % len(images)
        Image.fromarray(images[k]).save(f"{out}/{CLASSES[labels[k]]}/{i:06d}.png")
    print(f"wrote {n} PNGs to {out}")


if __name__ == "__main__":
    main()
