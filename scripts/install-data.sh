#!/usr/bin/env bash
# Installs the data the examples and benchmarks read, with apt, when it is missing:
#   dataset-fashion-mnist  Fashion-MNIST as four gzipped IDX files (examples/fashion.bma,
#                          bench/train), under /usr/share/datasets/fashion-mnist/
#   espeak-ng, sox         speech synthesis and audio conversion (the speech data script)
# Idempotent: installs only what `dpkg -s` does not find, then prints where the files are.
# Run as root (or with sudo available). Nothing is downloaded into the repository.
set -euo pipefail
PACKAGES=(dataset-fashion-mnist espeak-ng sox)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=()
  [ "$(id -u)" -ne 0 ] && SUDO=(sudo)
  "${SUDO[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q "${missing[@]}"
else
  echo "already installed: ${PACKAGES[*]}"
fi
FASHION=/usr/share/datasets/fashion-mnist
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  if [ ! -s "$FASHION/$f" ]; then
    echo "error: $FASHION/$f is missing after installing dataset-fashion-mnist" >&2
    exit 1
  fi
done
echo "Fashion-MNIST: $FASHION/"
ls -l "$FASHION"
echo "espeak-ng: $(command -v espeak-ng)"
echo "sox: $(command -v sox)"
