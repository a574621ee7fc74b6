#!/usr/bin/env bash
# Epoch time on digits: bma (burn, flex CPU backend) vs PyTorch CPU, same models, batch,
# optimizer and thread count, runs alternating. Makes its own virtualenv for PyTorch.
#
#   bench/train/run.sh [REPS] [EPOCHS]     (defaults 3 and 20)
#
# Models (MODELS, default "mlp cnn cnn-bn"): the MLP 64-128-64-10, the small CNN, and the
# digits example's largest CNN point (3 x conv_bn(32) + global_avgpool + dense).
#
# Prints one JSON line per run and a summary table: the median over runs of the mean
# epoch time of epochs 2..EPOCHS (training steps only, loss read every step). Then 2
# trainings one after another vs at once (one thread each, private 1-thread pools).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}
EPOCHS=${2:-20}
MODELS=${MODELS:-mlp cnn cnn-bn}
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  # The CPU wheel index is much smaller; plain PyPI (CUDA wheels, CPU at run time) otherwise.
  "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu \
    || "$VENV/bin/pip" install -q torch
fi
cargo bench --bench train --no-run -q 2>/dev/null
BIN=$(ls -t target/release/deps/train-* | grep -v '\.d$' | head -1)
OUT=target/bench-train.jsonl
: > "$OUT"
for rep in $(seq "$REPS"); do
  for model in $MODELS; do
    for threads in 1 2; do
      RAYON_NUM_THREADS=$threads "$BIN" "$model" "$threads" "$EPOCHS" | tee -a "$OUT"
      OMP_NUM_THREADS=$threads "$VENV/bin/python" bench/train/torch_epoch.py "$model" "$threads" "$EPOCHS" | tee -a "$OUT"
    done
  done
done
for model in mlp cnn; do
  "$BIN" parallel "$model" 2 "$EPOCHS" | tee -a target/bench-train-parallel.jsonl
done
"$VENV/bin/python" - "$OUT" $MODELS <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
models = sys.argv[2:]
groups = {}
for r in runs:
    fw = "burn" if r["framework"].startswith("burn") else "torch"
    groups.setdefault((r["model"], r["threads"], fw), []).append(
        (statistics.mean(r["epoch_times"][1:]) * 1e3, r["test_accuracy"], r["params"]))
print("| model | threads | params | bma/burn-flex ms/epoch | PyTorch ms/epoch | ratio | acc burn | acc torch |")
print("|---|---|---|---|---|---|---|---|")
for model in models:
    for t in [1, 2]:
        b, p = groups.get((model, t, "burn"), []), groups.get((model, t, "torch"), [])
        if not b or not p:
            continue
        bm, pm = statistics.median(x[0] for x in b), statistics.median(x[0] for x in p)
        print(f"| {model} | {t} | {b[0][2]} | {bm:.1f} | {pm:.1f} | {bm / pm:.2f} | "
              f"{statistics.median(x[1] for x in b):.3f} | {statistics.median(x[1] for x in p):.3f} |")
PY
