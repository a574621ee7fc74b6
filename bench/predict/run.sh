#!/usr/bin/env bash
# `bma predict` throughput (rows/s for the digits MLP, images/s for a small CNN on the 8x8
# digits) against PyTorch inference of the same network and onnxruntime on the exported
# file, on the same threads, alternating (bench.py says how each is measured).
#
#   bench/predict/run.sh          ROWS (default 50000), ROUNDS (3), THREADS (1),
#                                 BMA (target/release/bma), VENV (target/predict-venv:
#                                 torch, onnxruntime, numpy; made from PyPI when missing)
#
# Trains mlp.bma and cnn.bma (one trial each), exports each best model with
# `--fold-scaling --samples` (the test split's unscaled rows, the graph standardising
# them itself), then runs bench.py. Work files in target/predict-bench. Results:
# bench/predict/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BMA=${BMA:-target/release/bma}
VENV=${VENV:-target/predict-venv}
ROWS=${ROWS:-50000}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
work=target/predict-bench

if ! "$VENV/bin/python" -c 'import torch, onnxruntime, numpy' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch
  "$VENV/bin/pip" install --quiet onnxruntime numpy
fi
[ -x "$BMA" ] || { echo "no $BMA: cargo build --release" >&2; exit 1; }

echo "load before: $(uptime)"
rm -rf "$work"
mkdir -p "$work"
for m in mlp cnn; do
  "$BMA" run "bench/predict/$m.bma" --out "$work/$m" --progress none >"$work/$m.log"
  "$BMA" export "$work/$m" --model best --fold-scaling --samples 100000 --out "$work/$m/best-raw.onnx"
done
export OMP_NUM_THREADS=$THREADS
"$VENV/bin/python" bench/predict/bench.py "$(cd "$(dirname "$BMA")" && pwd)/$(basename "$BMA")" "$work" "$ROWS" "$ROUNDS" "$THREADS"
echo "load after: $(uptime)"
