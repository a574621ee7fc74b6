#!/usr/bin/env bash
# A 1-D CNN over token sequences (embedding 64 -> conv1d(128, 5) relu -> global max ->
# dense; length 128, batch 32, adam), one training epoch: bma beside PyTorch, one thread
# each, ROUNDS rounds alternating the two, EPOCHS epochs per run.
#
#   VENV=/path/to/venv bench/layers/conv1d.sh [ROUNDS] [EPOCHS] [ROWS]
#
# VENV: a virtualenv with torch (CPU); created at target/bench-venv when missing.
# Prints each run's JSON line (epoch times and CPU seconds per epoch) and `uptime`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
rounds="${1:-3}"
epochs="${2:-3}"
rows="${3:-2276}"
VENV="${VENV:-target/bench-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch --index-url https://download.pytorch.org/whl/cpu
fi
data="$root/target/bench-layers"
mkdir -p "$data"
csv="$data/conv1d-texts.csv"
[ -f "$csv" ] || python3 bench/layers/make_data.py "$csv" "$rows"
# The bench binary, built (or found fresh) by cargo; BIN overrides it.
BIN="${BIN:-$(cargo bench --bench layers_conv1d --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable") and m.get("target", {}).get("name") == "layers_conv1d": print(m["executable"])')}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1
uptime
train_rows=""
for r in $(seq 1 "$rounds"); do
  line="$(/usr/bin/time -f "bma wall %e s, user %U s, sys %S s, max RSS %M KB" "$BIN" "$csv" "$epochs")"
  echo "round $r $line"
  train_rows="$(echo "$line" | sed -E 's/.*"train_rows":([0-9]+).*/\1/')"
  /usr/bin/time -f "pytorch wall %e s, user %U s, sys %S s, max RSS %M KB" \
    "$VENV/bin/python" bench/layers/torch_conv1d.py "$csv" "$train_rows" "$epochs" | sed "s/^/round $r /"
done
uptime
