#!/usr/bin/env bash
# Fashion-MNIST epoch time of two builds of the train bench (e.g. main's and a branch's) and
# PyTorch, the same CNN, data, batch, optimizer and thread count, runs alternating in one run:
#
#   bench/train/fashion_ab.sh BEFORE_BIN AFTER_BIN [REPS] [EPOCHS] [THREADS]   (defaults 2, 1, 1)
#
# BEFORE_BIN/AFTER_BIN: copies of target/release/deps/train-* (`cargo bench --bench train
# --no-run`). MODELS (default "fashion-small") as in fashion.sh. Uses fashion.sh's virtualenv
# (target/bench-venv with torch; run fashion.sh once, or make it as fashion.sh does).
# Prints `uptime` after each round, one JSON line per run, and a table of medians over runs of
# the mean epoch time, wall and CPU (bma: the process's CPU time from epoch start to epoch end,
# its valid pass included; PyTorch: the training steps alone), with ratios to PyTorch.
set -euo pipefail
cd "$(dirname "$0")/../.."
BEFORE=$1 AFTER=$2 REPS=${3:-2} EPOCHS=${4:-1} THREADS=${5:-1}
MODELS=${MODELS:-fashion-small}
VENV=target/bench-venv
OUT=target/bench-fashion-ab.jsonl
: > "$OUT"
uptime
for _ in $(seq "$REPS"); do
  for model in $MODELS; do
    for side in before after; do
      bin=$BEFORE; [ "$side" = after ] && bin=$AFTER
      RAYON_NUM_THREADS=$THREADS "$bin" "$model" "$THREADS" "$EPOCHS" 2>/dev/null \
        | python3 -c "import json,sys; r=json.load(sys.stdin); r['framework']='$side'; print(json.dumps(r))" \
        | tee -a "$OUT"
    done
    OMP_NUM_THREADS=$THREADS "$VENV/bin/python" bench/train/torch_fashion.py "$model" "$THREADS" "$EPOCHS" \
      | python3 -c "import json,sys; r=json.load(sys.stdin); r['framework']='torch'; print(json.dumps(r))" \
      | tee -a "$OUT"
    uptime
  done
done
python3 - "$OUT" $MODELS <<'PY'
import json, statistics, sys
groups = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    groups.setdefault((r["model"], r["framework"]), []).append(
        (statistics.mean(r["epoch_times"]), statistics.mean(r["epoch_cpu"]), r["test_accuracy"]))
print("| model | side | runs | s/epoch wall | s/epoch CPU | wall / PyTorch | CPU / PyTorch | test acc |")
print("|---|---|---|---|---|---|---|---|")
for model in sys.argv[2:]:
    med = lambda side, i: statistics.median(x[i] for x in groups[(model, side)])
    for side in ("before", "after", "torch"):
        if (model, side) not in groups:
            continue
        print(f"| {model} | {side} | {len(groups[(model, side)])} | {med(side, 0):.1f} | {med(side, 1):.1f} | "
              f"{med(side, 0) / med('torch', 0):.2f} | {med(side, 1) / med('torch', 1):.2f} | "
              f"{med(side, 2):.4f} |")
PY
