#!/usr/bin/env bash
# Peak memory (max RSS) and time of `bma run` training one small CNN for one epoch on a
# generated folder of 28x28 PNGs, at two sizes, with `stream: true` (cache built, then
# reused) and in memory; alternated ROUNDS times. Works in target/bench-stream (the PNG
# folders, specs, caches, outputs); appends one line per run to target/bench-stream/results.tsv:
# size, mode, wall s, user s, sys s, max RSS KiB, train_time s, train images/s.
# With BASE=<another bma binary> (main's, say), the in-memory run is made with it too
# (mode `base`), to see that the in-memory path did not get slower.
#   VENV=/work/venv-torch SIZES="20000 80000" ROUNDS=2 bench/stream/run.sh
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
SIZES=${SIZES:-"20000 80000"}
ROUNDS=${ROUNDS:-2}
VENV=${VENV:-$ROOT/target/bench-venv}
BMA=${BMA:-$ROOT/target/release/bma}
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  apt-get install -y dataset-fashion-mnist
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pillow numpy
fi
[ -x "$BMA" ] || (cd "$ROOT" && cargo build --release)
W=$ROOT/target/bench-stream
mkdir -p "$W"
for n in $SIZES; do
  [ -d "$W/png-$n" ] || "$VENV/bin/python" gen.py "$W/png-$n" "$n"
done
OUT=$W/results.tsv
echo "# $(date -u) $(uptime)" >> "$OUT"
BASE=${BASE:-}
one() { # size mode
  local n=$1 mode=$2 stream="" bin=$BMA
  [ "$mode" = memory ] || [ "$mode" = base ] || stream=", stream: true"
  [ "$mode" = base ] && bin=$BASE
  sed -e "s|@DIR@|png-$n|" -e "s|@STREAM@|$stream|" spec.bma.in > "$W/$mode-$n.bma"
  [ "$mode" = cold ] && rm -rf "$W/.bma-cache"
  rm -rf "$W/out-$mode-$n"
  /usr/bin/time -f "%e %U %S %M" -o $W/time.txt \
    env RAYON_NUM_THREADS=1 "$bin" run "$W/$mode-$n.bma" --out "$W/out-$mode-$n" > "$W/log-$mode-$n.txt" 2>&1
  # train_time: the trial's one epoch plus its valid pass (wall, s); images/s: train rows / it.
  local train
  train=$(python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['trials'][0]['metrics']['train_time']; \
print(f'{t:.2f}\t{0.9 * $n / t:.0f}')" "$W/out-$mode-$n/results.json" 2>/dev/null || printf "?\t?")
  printf "%s\t%s\t%s\t%s\n" "$n" "$mode" "$(tr ' ' '\t' < "$W/time.txt")" "$train" | tee -a "$OUT"
}
for r in $(seq "$ROUNDS"); do
  for n in $SIZES; do
    one "$n" cold    # stream: true, cache built in this run
    one "$n" warm    # stream: true, cache reused
    one "$n" memory  # the in-memory path
    [ -z "$BASE" ] || one "$n" base  # the in-memory path, BASE's build
  done
done
uptime | tee -a "$OUT"
