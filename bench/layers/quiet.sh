#!/usr/bin/env bash
# Issue 17's three speed targets in one run, for a quiet machine: the 2-layer transformer
# encoder (bench/layers/transformer.rs), the 1-layer LSTM (bench/layers/lstm.rs) and the
# depthwise-separable CNN on Fashion-MNIST (bench/train/epoch.rs `fashion-dwsep`), each side by
# side with PyTorch CPU (torch_transformer.py, torch_lstm.py, torch_dwsep.py), the same thread
# count, REPS rounds per benchmark alternating bma and PyTorch:
#
#   VENV=/work/venv-torch bench/layers/quiet.sh [REPS] [THREADS]     (defaults 3 1)
#
# Per round: transformer 3 epochs of 20 steps (712 rows), LSTM 3 epochs of 1,200 rows, both
# reported as the mean of epochs 2-3 (the first warms up); dwsep 1 epoch (60,000 images), as
# dwsep.sh. About 8 minutes on a quiet 2-core machine with one thread (quiet figures of
# 2026-12-06: transformer ~3 s/epoch, LSTM ~1.2 s, dwsep ~37 s per side and epoch, plus start-up
# and data loading). EPOCHS (default 3) sets the transformer's and the LSTM's epochs per run;
# DWSEP_EPOCHS (default 1) the dwsep's, 0 leaving it out.
#
# VENV: a virtualenv with torch (made as target/bench-venv, torch CPU, when missing).
# BIN_DIR: a directory holding prebuilt bench binaries named `layers`, `layers_lstm` and `train`
# (else they are built with `cargo bench --no-run` and taken from target/release/deps).
# BASE_DIR: the same three binaries of an older build (e.g. main's, copied aside before a
# change): also run in each round, before the new side, and reported as `bma (base)`.
# Prints `uptime` before and after, one JSON line per run (also in target/bench-quiet/runs.jsonl),
# the peak RSS of each run (GNU time), and a table: per benchmark and side, the medians over
# rounds of wall and CPU seconds per epoch, and the ratios to PyTorch (wall, CPU, and the CPU
# ratio per round). bma's CPU time is the process's per epoch (its valid pass included);
# PyTorch's the training steps'.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}
THREADS=${2:-1}
EPOCHS=${EPOCHS:-3}
DWSEP_EPOCHS=${DWSEP_EPOCHS:-1}
VENV=${VENV:-target/bench-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu \
    || "$VENV/bin/pip" install -q torch
fi
PY="$VENV/bin/python"
newest() { ls -t target/release/deps/"$1"-* | grep -v '\.d$' | head -1; }
if [ -n "${BIN_DIR:-}" ]; then
  LAYERS=$BIN_DIR/layers LSTM=$BIN_DIR/layers_lstm TRAIN=$BIN_DIR/train
else
  cargo bench --no-run -q --bench layers --bench layers_lstm --bench train 2>/dev/null
  LAYERS=$(newest layers) LSTM=$(newest layers_lstm) TRAIN=$(newest train)
fi
OUTDIR=target/bench-quiet
mkdir -p "$OUTDIR"
RUNS=$OUTDIR/runs.jsonl
: > "$RUNS"
CSV=$PWD/$OUTDIR/tokens.csv
"$PY" bench/layers/tokens.py "$CSV" 712

# run BENCH SIDE ROUND COMMAND...: runs COMMAND under GNU time, appends its JSON line (the last
# line starting with `{`) with bench, side, round and peak RSS (MiB) added.
run() {
  local bench=$1 side=$2 round=$3
  shift 3
  local out rss
  out=$(env RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" \
    /usr/bin/time -f 'maxrss_kib %M' -o "$OUTDIR/time.txt" "$@" 2>/dev/null | grep '^{' | tail -1)
  rss=$(awk '/maxrss_kib/ {print $2}' "$OUTDIR/time.txt")
  "$PY" -c 'import json, sys
r = json.loads(sys.argv[1])
r.update(bench=sys.argv[2], side=sys.argv[3], round=int(sys.argv[4]), peak_rss_mib=int(sys.argv[5]) / 1024)
print(json.dumps(r))' "$out" "$bench" "$side" "$round" "$rss" | tee -a "$RUNS"
}

echo "uptime before: $(uptime)" | tee "$OUTDIR/uptime.txt"
for round in $(seq "$REPS"); do
  if [ -n "${BASE_DIR:-}" ]; then
    run transformer "bma (base)" "$round" "$BASE_DIR/layers" "$CSV" "$THREADS" "$EPOCHS"
  fi
  run transformer bma "$round" "$LAYERS" "$CSV" "$THREADS" "$EPOCHS"
  STEPS=$(tail -1 "$RUNS" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["steps"])')
  run transformer pytorch "$round" "$PY" bench/layers/torch_transformer.py "$THREADS" "$EPOCHS" "$STEPS"
done
for round in $(seq "$REPS"); do
  if [ -n "${BASE_DIR:-}" ]; then
    run lstm "bma (base)" "$round" "$BASE_DIR/layers_lstm" lstm 1200 "$EPOCHS"
  fi
  run lstm bma "$round" "$LSTM" lstm 1200 "$EPOCHS"
  run lstm pytorch "$round" "$PY" bench/layers/torch_lstm.py lstm 1200 "$EPOCHS"
done
if [ "$DWSEP_EPOCHS" -gt 0 ]; then
  for round in $(seq "$REPS"); do
    if [ -n "${BASE_DIR:-}" ]; then
      run dwsep "bma (base)" "$round" "$BASE_DIR/train" fashion-dwsep "$THREADS" "$DWSEP_EPOCHS"
    fi
    run dwsep bma "$round" "$TRAIN" fashion-dwsep "$THREADS" "$DWSEP_EPOCHS"
    run dwsep pytorch "$round" "$PY" bench/layers/torch_dwsep.py "$THREADS" "$DWSEP_EPOCHS"
  done
fi
echo "uptime after: $(uptime)" | tee -a "$OUTDIR/uptime.txt"
"$PY" bench/layers/quiet_table.py "$RUNS"
