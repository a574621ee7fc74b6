#!/usr/bin/env bash
# Peak memory (max RSS) and time of `bma run` training one small CNN for one epoch on a
# generated folder of 28x28 PNGs, at two sizes, with `stream: true` (cache built, then
# reused) and in memory; alternated ROUNDS times. Works in target/bench-stream (the PNG
# folders, specs, caches, outputs); appends one line per run to target/bench-stream/results.tsv:
# source, size, mode, wall s, user s, sys s, max RSS KiB, train_time s, train images/s.
# With BASE=<another bma binary> (main's, say), the in-memory run is made with it too
# (mode `base`), to see that the in-memory path did not get slower.
# SOURCE picks the data: `png` (default, the PNG folder above), `npy` (x.npy of float32
# pixels and y.npy, written by gen.py at each size), `fmnist` (Debian's Fashion-MNIST
# training IDX files as they are, 60,000 images, in memory only: modes `memory` and `base`;
# SIZES is not used). MODES overrides the modes run.
#   VENV=/work/venv-torch SIZES="20000 80000" ROUNDS=2 bench/stream/run.sh
#   VENV=/work/venv-torch SOURCE=npy SIZES="20000 80000" bench/stream/run.sh
#   BASE=/tmp/bma-main SOURCE=fmnist ROUNDS=3 bench/stream/run.sh
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
SOURCE=${SOURCE:-png}
BASE=${BASE:-}
case $SOURCE in
  png) for n in $SIZES; do [ -d "$W/png-$n" ] || "$VENV/bin/python" gen.py "$W/png-$n" "$n"; done ;;
  npy) for n in $SIZES; do [ -f "$W/npy-$n/y.npy" ] || "$VENV/bin/python" gen.py npy "$W/npy-$n" "$n"; done ;;
  fmnist) SIZES=60000; MODES=${MODES:-memory${BASE:+ base}} ;;
  *) echo "SOURCE is png, npy or fmnist" >&2; exit 1 ;;
esac
MODES=${MODES:-cold warm memory${BASE:+ base}}
data() { # size stream
  local F=/usr/share/datasets/fashion-mnist
  case $SOURCE in
    png) echo "images(\"png-$1\", size: [28, 28], channels: 1, split: [0.9, 0.05, 0.05], seed: 1$2)" ;;
    npy) echo "npy(x: \"npy-$1/x.npy\", y: \"npy-$1/y.npy\", split: [0.9, 0.05, 0.05], seed: 1$2)" ;;
    fmnist) echo "idx(\"$F/train-images-idx3-ubyte.gz\", \"$F/train-labels-idx1-ubyte.gz\", split: [0.9, 0.05, 0.05], seed: 1$2)" ;;
  esac
}
OUT=$W/results.tsv
echo "# $(date -u) SOURCE=$SOURCE $(uptime)" >> "$OUT"
one() { # size mode
  local n=$1 mode=$2 stream="" bin=$BMA
  [ "$mode" = memory ] || [ "$mode" = base ] || stream=", stream: true"
  [ "$mode" = base ] && bin=$BASE
  local f=$SOURCE-$mode-$n
  sed -e "s|@DATA@|$(data "$n" "$stream")|" spec.bma.in > "$W/$f.bma"
  [ "$mode" = cold ] && rm -rf "$W/.bma-cache"
  rm -rf "$W/out-$f"
  /usr/bin/time -f "%e %U %S %M" -o $W/time.txt \
    env RAYON_NUM_THREADS=1 "$bin" run "$W/$f.bma" --out "$W/out-$f" > "$W/log-$f.txt" 2>&1
  # train_time: the trial's one epoch plus its valid pass (wall, s); images/s: train rows / it.
  local train
  train=$(python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['trials'][0]['metrics']['train_time']; \
print(f'{t:.2f}\t{0.9 * $n / t:.0f}')" "$W/out-$f/results.json" 2>/dev/null || printf "?\t?")
  printf "%s\t%s\t%s\t%s\t%s\n" "$SOURCE" "$n" "$mode" "$(tr ' ' '\t' < "$W/time.txt")" "$train" | tee -a "$OUT"
}
# cold: stream: true, cache built in this run; warm: stream: true, cache reused; memory: the
# in-memory path; base: the in-memory path, BASE's build.
for r in $(seq "$ROUNDS"); do
  for n in $SIZES; do
    for mode in $MODES; do one "$n" "$mode"; done
  done
done
uptime | tee -a "$OUT"
