"""Writes a PNG class-folder tree of N 28x28 grey images for the streaming benchmark:
Fashion-MNIST's training images (Debian's dataset-fashion-mnist), repeated from the start
when N is past its 60,000, as OUT/<class>/<index>.png."""
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
        k = i % len(images)
        Image.fromarray(images[k]).save(f"{out}/{CLASSES[labels[k]]}/{i:06d}.png")
    print(f"wrote {n} PNGs to {out}")


if __name__ == "__main__":
    main()
