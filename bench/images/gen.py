"""Writes the benchmark's PNG folder: the first N Fashion-MNIST training images (28x28 grey,
from Debian's dataset-fashion-mnist) as OUT/<class>/<index>.png, one folder per class."""
import gzip
import os
import sys

import numpy as np
from PIL import Image

SRC = "/usr/share/datasets/fashion-mnist"
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    with gzip.open(f"{SRC}/train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{SRC}/train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for c in CLASSES:
        os.makedirs(f"{out}/{c}", exist_ok=True)
    for i in range(n):
        Image.fromarray(images[i]).save(f"{out}/{CLASSES[labels[i]]}/{i:05d}.png")
    print(f"wrote {n} PNGs to {out}")


if __name__ == "__main__":
    main()
