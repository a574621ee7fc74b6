#!/usr/bin/env bash
# Training time of a 1-layer LSTM (or GRU): bma beside PyTorch, one thread each, runs
# alternating. embedding(1002, 128) -> lstm(128) -> dense(2), sequences of 100 tokens,
# batch 32, Adam; generated texts (bench/layers/lstm.rs writes them under target/).
#
#   bench/layers/lstm.sh [REPS] [ROWS] [EPOCHS]     (defaults 3, 1200, 3)
#
# CELLS (default "lstm") picks the cells. VENV: a virtualenv with torch (made under
# target/bench-venv when missing). Prints one JSON line per run and a table: the median
# over runs of the mean time (wall and CPU) of epochs 2..EPOCHS, and the ratio bma/PyTorch.
# BASE=path/to/an/older/layers_lstm-binary also runs that binary in each round (before the
# new one), reported as `bma (base)`: copy the binary aside before changing the code.
# BIN=path/to/a/layers_lstm-binary runs that one as the new side instead of building.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}
ROWS=${2:-1200}
EPOCHS=${3:-3}
CELLS=${CELLS:-lstm}
VENV=${VENV:-target/bench-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu \
    || "$VENV/bin/pip" install -q torch
fi
if [ -z "${BIN:-}" ]; then
  cargo bench --bench layers_lstm --no-run -q 2>/dev/null
  BIN=$(ls -t target/release/deps/layers_lstm-* | grep -v '\.d$' | head -1)
fi
OUT=target/bench-layers-lstm.jsonl
: > "$OUT"
uptime
for rep in $(seq "$REPS"); do
  for cell in $CELLS; do
    if [ -n "${BASE:-}" ]; then
      RAYON_NUM_THREADS=1 "$BASE" "$cell" "$ROWS" "$EPOCHS" | sed 's/"bma"/"bma (base)"/' | tee -a "$OUT"
    fi
    RAYON_NUM_THREADS=1 "$BIN" "$cell" "$ROWS" "$EPOCHS" | tee -a "$OUT"
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$VENV/bin/python" bench/layers/torch_lstm.py "$cell" "$ROWS" "$EPOCHS" | tee -a "$OUT"
  done
done
uptime
"$VENV/bin/python" - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in runs:
    later = slice(1, None) if len(r["epoch_times"]) > 1 else slice(None)
    groups.setdefault((r["cell"], r["framework"]), []).append(
        (statistics.mean(r["epoch_times"][later]), statistics.mean(r["epoch_cpu"][later]), r["params"], r["steps"]))
print("| cell | params bma / torch | steps/epoch | bma s/epoch (CPU) | PyTorch s/epoch (CPU) | ratio wall | ratio CPU |")
print("|---|---|---|---|---|---|---|")
for cell in sorted({c for c, _ in groups}):
    b, p = groups.get((cell, "bma"), []), groups.get((cell, "torch"), [])
    if not b or not p:
        continue
    bw, bc = statistics.median(x[0] for x in b), statistics.median(x[1] for x in b)
    pw, pc = statistics.median(x[0] for x in p), statistics.median(x[1] for x in p)
    print(f"| {cell} | {b[0][2]} / {p[0][2]} | {b[0][3]} | {bw:.2f} ({bc:.2f}) | {pw:.2f} ({pc:.2f}) | {bw / pw:.2f} | {bc / pc:.2f} |")
    o = groups.get((cell, "bma (base)"), [])
    if o:
        ow, oc = statistics.median(x[0] for x in o), statistics.median(x[1] for x in o)
        print(f"| {cell}, base | | | {ow:.2f} ({oc:.2f}) | | {ow / pw:.2f} | {oc / pc:.2f} |")
    for side, v in [("bma", b), ("bma (base)", o), ("torch", p)]:
        if v:
            print(f"<!-- {cell} {side} CPU per run: {', '.join(f'{x[1]:.3f}' for x in v)} -->")
PY
