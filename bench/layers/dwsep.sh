#!/usr/bin/env bash
# The issue's speed target for convnets: a depthwise-separable CNN on Fashion-MNIST 28x28,
# training epoch time of bma (burn, vendored flex backend) against PyTorch CPU, the same layers,
# data, batch, optimizer and thread count, the two sides alternating in one run:
#
#   VENV=/work/venv-torch bench/layers/dwsep.sh [REPS] [EPOCHS] [THREADS]   (defaults 3, 1, 1)
#
# bma's side is `cargo bench --bench train -- fashion-dwsep` (bench/train/epoch.rs), PyTorch's
# bench/layers/torch_dwsep.py. VENV: a virtualenv with torch; made (target/bench-venv, torch CPU)
# when missing. BIN: a prebuilt bench binary (target/release/deps/train-*), else it is built.
# Prints `uptime` after each round, one JSON line per run, and a table of medians over runs of
# the mean epoch time, wall and CPU (bma: the process's CPU time from epoch start to epoch end,
# its valid pass included; PyTorch: the training steps alone), with the ratio bma / PyTorch.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3} EPOCHS=${2:-1} THREADS=${3:-1}
VENV=${VENV:-target/bench-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch --index-url https://download.pytorch.org/whl/cpu
fi
if [ -z "${BIN:-}" ]; then
  cargo bench --bench train --no-run 2>/dev/null
  BIN=$(ls -t target/release/deps/train-* | grep -v '\.d$' | head -1)
fi
OUT=target/bench-dwsep.jsonl
: > "$OUT"
uptime
for _ in $(seq "$REPS"); do
  RAYON_NUM_THREADS=$THREADS "$BIN" fashion-dwsep "$THREADS" "$EPOCHS" 2>/dev/null \
    | python3 -c "import json,sys; r=json.load(sys.stdin); r['side']='bma'; print(json.dumps(r))" | tee -a "$OUT"
  OMP_NUM_THREADS=$THREADS "$VENV/bin/python" bench/layers/torch_dwsep.py "$THREADS" "$EPOCHS" \
    | python3 -c "import json,sys; r=json.load(sys.stdin); r['side']='torch'; print(json.dumps(r))" | tee -a "$OUT"
  uptime
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["side"], []).append(
        (statistics.mean(r["epoch_times"]), statistics.mean(r["epoch_cpu"]), r["test_accuracy"], r["params"]))
med = lambda side, i: statistics.median(x[i] for x in runs[side])
print("| side | runs | params | s/epoch wall | s/epoch CPU | wall / PyTorch | CPU / PyTorch | test acc |")
print("|---|---|---|---|---|---|---|---|")
for side in ("bma", "torch"):
    print(f"| {side} | {len(runs[side])} | {runs[side][0][3]} | {med(side, 0):.1f} | {med(side, 1):.1f} | "
          f"{med(side, 0) / med('torch', 0):.2f} | {med(side, 1) / med('torch', 1):.2f} | {med(side, 2):.4f} |")
PY
