#!/usr/bin/env bash
# Fashion-MNIST epoch time: bma (burn, flex CPU backend) vs PyTorch CPU, the same CNN, data,
# batch, optimizer and thread count, runs alternating, side by side in one run.
#
#   bench/train/fashion.sh [REPS] [EPOCHS] [THREADS]     (defaults 2, 2 and 1)
#
# Models (MODELS, default "fashion-small fashion-cnn"): conv_bn(16) maxpool conv_bn(32) maxpool
# dense(64) and conv_bn(32) maxpool conv_bn(64) maxpool dense(128), both + dense(10); see
# bench/train/epoch.rs and torch_fashion.py. Data: scripts/install-data.sh (Debian's
# dataset-fashion-mnist), 58.8k training rows. Makes its own virtualenv for PyTorch.
#
# Prints `uptime`, one JSON line per run (per-epoch wall and CPU seconds), bma's own line on
# what `fit` spent beyond the training steps, and a table of medians over runs of the mean
# epoch time (all epochs: there is no warm-up worth dropping at 900 steps an epoch).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-2}
EPOCHS=${2:-2}
THREADS=${3:-1}
MODELS=${MODELS:-fashion-small fashion-cnn}
scripts/install-data.sh >/dev/null
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$VENV"
  # The CPU wheel index is much smaller; plain PyPI (CUDA wheels, CPU at run time) otherwise.
  "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu \
    || "$VENV/bin/pip" install -q torch
fi
cargo bench --bench train --no-run -q 2>/dev/null
BIN=$(ls -t target/release/deps/train-* | grep -v '\.d$' | head -1)
OUT=target/bench-fashion.jsonl
: > "$OUT"
uptime
for rep in $(seq "$REPS"); do
  for model in $MODELS; do
    RAYON_NUM_THREADS=$THREADS "$BIN" "$model" "$THREADS" "$EPOCHS" | tee -a "$OUT"
    OMP_NUM_THREADS=$THREADS "$VENV/bin/python" bench/train/torch_fashion.py "$model" "$THREADS" "$EPOCHS" | tee -a "$OUT"
    uptime
  done
done
"$VENV/bin/python" - "$OUT" $MODELS <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in runs:
    fw = "burn" if r["framework"].startswith("burn") else "torch"
    groups.setdefault((r["model"], fw), []).append(
        (statistics.mean(r["epoch_times"]), statistics.mean(r["epoch_cpu"]), r["test_accuracy"], r["params"]))
print("| model | params | bma s/epoch (CPU s) | PyTorch s/epoch (CPU s) | wall ratio | CPU ratio | test acc bma | torch |")
print("|---|---|---|---|---|---|---|---|")
for model in sys.argv[2:]:
    b, p = groups.get((model, "burn"), []), groups.get((model, "torch"), [])
    if not b or not p:
        continue
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    print(f"| {model} | {b[0][3]} | {med(b, 0):.1f} ({med(b, 1):.1f}) | {med(p, 0):.1f} ({med(p, 1):.1f}) | "
          f"{med(b, 0) / med(p, 0):.2f} | {med(b, 1) / med(p, 1):.2f} | {med(b, 2):.3f} | {med(p, 2):.3f} |")
PY
