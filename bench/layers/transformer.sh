#!/usr/bin/env bash
# A 2-layer transformer encoder (d = 128, 4 heads, ff 512, sequence 128, batch 32) trained
# by bma (burn, flex CPU backend) and by PyTorch CPU, side by side, alternating, one thread
# each. Issue 17's target: bma's training epoch time <= 1.0x PyTorch.
#
#   VENV=/work/venv-torch bench/layers/transformer.sh [REPS] [EPOCHS] [ROWS]   (defaults 3 3 712)
#
# VENV (default target/bench-venv, made with PyTorch CPU when missing). ROWS texts of 130
# random words (vocabulary of 998 words) are written to target/bench-layers/tokens.csv; bma
# trains on its train split (90 %), PyTorch on as many batches of random ids. Each run prints
# a JSON line (also in target/bench-layers/runs.jsonl); the summary is the median over runs
# of the mean step time of epochs 2..EPOCHS (the first warms up), wall and process CPU.
# BASE=path/to/an/older/layers-binary also runs that binary in each round (before the new
# one), reported as `burn-flex (base)`: copy the binary aside before changing the code.
# BIN=path/to/a/layers-binary runs that one as the new side instead of building the bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}
EPOCHS=${2:-3}
ROWS=${3:-712}
VENV=${VENV:-target/bench-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu \
    || "$VENV/bin/pip" install -q torch
fi
OUTDIR=target/bench-layers
mkdir -p "$OUTDIR"
CSV=$PWD/$OUTDIR/tokens.csv
"$VENV/bin/python" bench/layers/tokens.py "$CSV" "$ROWS"
if [ -z "${BIN:-}" ]; then
  cargo bench --bench layers --no-run -q 2>/dev/null
  BIN=$(ls -t target/release/deps/layers-* | grep -v '\.d$' | head -1)
fi
RUNS=$OUTDIR/runs.jsonl
: > "$RUNS"
uptime | tee "$OUTDIR/uptime-before.txt"
for rep in $(seq "$REPS"); do
  if [ -n "${BASE:-}" ]; then
    RAYON_NUM_THREADS=1 "$BASE" "$CSV" 1 "$EPOCHS" | sed 's/"burn-flex"/"burn-flex (base)"/' | tee -a "$RUNS"
  fi
  RAYON_NUM_THREADS=1 "$BIN" "$CSV" 1 "$EPOCHS" | tee -a "$RUNS"
  STEPS=$(tail -1 "$RUNS" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["steps"])')
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$VENV/bin/python" bench/layers/torch_transformer.py 1 "$EPOCHS" "$STEPS" \
    | tee -a "$RUNS"
done
uptime | tee "$OUTDIR/uptime-after.txt"
"$VENV/bin/python" - "$RUNS" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def per_step(r, key):
    return statistics.mean(r[key][1:]) / r["steps"] * 1e3
rows = {}
for r in runs:
    rows.setdefault(r["framework"], []).append((per_step(r, "epoch_times"), per_step(r, "epoch_cpu"), r["params"]))
print("| side | params | runs | ms/step wall (median) | ms/step CPU (median) | all wall |")
print("|---|---|---|---|---|---|")
for fw, v in rows.items():
    print(f"| {fw} | {v[0][2]} | {len(v)} | {statistics.median(x[0] for x in v):.1f} | "
          f"{statistics.median(x[1] for x in v):.1f} | {', '.join(f'{x[0]:.1f}' for x in v)} |")
b, p = rows.get("burn-flex"), rows.get("pytorch")
if b and p:
    bw, pw = statistics.median(x[0] for x in b), statistics.median(x[0] for x in p)
    bc, pc = statistics.median(x[1] for x in b), statistics.median(x[1] for x in p)
    print(f"\nratio bma/PyTorch: wall {bw / pw:.2f}x, CPU {bc / pc:.2f}x")
o = rows.get("burn-flex (base)")
if o and p:
    ow, oc = statistics.median(x[0] for x in o), statistics.median(x[1] for x in o)
    print(f"ratio base/PyTorch: wall {ow / pw:.2f}x, CPU {oc / pc:.2f}x")
PY
