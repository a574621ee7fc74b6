#!/usr/bin/env bash
# Builds bma for NVIDIA GPUs from the package registries alone (crates.io and PyPI): burn's
# LibTorch backend (`--features tch`, `--device cuda[:N]`) against the libraries of PyPI's
# `torch==2.9.0` wheel, which is built with CUDA 12.8 and brings its CUDA runtime as wheels.
#
# Why this route: burn's own `cuda` feature (CubeCL) does not build offline, because
# cubecl-cuda's LLVM bundler downloads a bundle from GitHub at build time. tch 0.22 (what
# burn-tch 0.22.1 uses) requires exactly torch 2.9.0, and builds its C++ shim against the
# wheel's headers and libraries (LIBTORCH_USE_PYTORCH=1).
#
# Usage: scripts/build-cuda.sh [--release] [cargo args...]
#   VENV=${VENV:-target/cuda-venv}     the virtualenv holding torch 2.9.0 (made when missing;
#                                      about 6.7 GB with the CUDA wheels)
#   CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
# Needs: python3 with venv, a C++ compiler (g++), and about 15 GB of disk.
# Running the binary needs the wheel's libraries on the loader path; the script prints the
# line to use, e.g.
#   LD_LIBRARY_PATH=target/cuda-venv/lib/python3.11/site-packages/torch/lib \
#     target/cuda/release/bma run examples/digits.bma --device cuda
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-target/cuda-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.9.0")' 2>/dev/null; then
  echo "build-cuda: installing torch==2.9.0 into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch==2.9.0
fi
VENV=$(cd "$VENV" && pwd)
torch_lib=$("$VENV/bin/python" -c 'import torch, pathlib; print(pathlib.Path(torch.__file__).parent / "lib")')

# torch-sys finds the wheel through the virtualenv's python.
export VIRTUAL_ENV=$VENV PATH="$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1
start=$SECONDS
cargo build --features tch "$@"
profile=debug
for a in "$@"; do [ "$a" = --release ] && profile=release; done
echo "build-cuda: built $CARGO_TARGET_DIR/$profile/bma in $((SECONDS - start))s (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'))"
echo "run it with: LD_LIBRARY_PATH=$torch_lib $CARGO_TARGET_DIR/$profile/bma run FILE --device cuda"
