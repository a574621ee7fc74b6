#!/usr/bin/env bash
# The convolution GEMMs of the digits CNN timed alone, with gemm's default (AVX2) kernels and
# with its AVX-512 ones (bench/train/gemm_shapes/src/main.rs says what is measured), then the
# same 32->32 layer in PyTorch (oneDNN), forward and forward + backward, 1 thread.
#
#   bench/train/gemm_shapes.sh        (PyTorch part: run.sh's virtualenv, target/bench-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=bench/train/gemm_shapes
for features in "" "--features v4"; do
  # shellcheck disable=SC2086
  cargo run --release --offline -q --manifest-path "$DIR/Cargo.toml" --target-dir target/gemm-shapes $features
done
if [ -x target/bench-venv/bin/python ]; then
  OMP_NUM_THREADS=1 target/bench-venv/bin/python bench/train/torch_conv_layer.py
fi
