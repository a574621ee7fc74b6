#!/usr/bin/env bash
# Runs scripts/onnx-check.py (onnxruntime against bma's own outputs) in a virtualenv with
# onnxruntime, onnx and numpy: $VENV when given, else target/onnx-venv, created and filled
# from PyPI when missing.
#   scripts/onnx-check.sh MODEL.onnx [MORE.onnx ...]      (each with its MODEL.samples.npz)
#   scripts/onnx-check.sh --python                          prints the venv's python (for
#                                                           BMA_TEST_ONNXRUNTIME)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-target/onnx-venv}
if ! "$VENV/bin/python" -c 'import onnxruntime, onnx, numpy' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet onnxruntime onnx numpy >&2
fi
if [ "${1:-}" = "--python" ]; then
  echo "$(cd "$VENV/bin" && pwd)/python"
  exit 0
fi
exec "$VENV/bin/python" scripts/onnx-check.py "$@"
