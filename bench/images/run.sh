#!/usr/bin/env bash
# Images per second decoded from a PNG folder and delivered as shuffled batches: bma
# (`cargo bench --bench images`) beside PyTorch's ImageFolder + DataLoader, with the same
# number of workers (bma: rayon threads; PyTorch: worker processes, 0 = in the main one).
# Writes bench/images/work/results.jsonl; RESULTS.md records a run.
#   N=10000 EPOCHS=2 bench/images/run.sh
set -euo pipefail
cd "$(dirname "$0")"
N=${N:-10000}
EPOCHS=${EPOCHS:-2}
BATCH=${BATCH:-64}
mkdir -p work
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  apt-get install -y dataset-fashion-mnist
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
TORCH=yes
.venv/bin/pip install -q pillow numpy
.venv/bin/pip install -q torch torchvision || TORCH=no
if [ ! -d "work/fmnist-$N" ]; then
  .venv/bin/python gen.py "work/fmnist-$N" "$N"
fi
DIR="$PWD/work/fmnist-$N"
OUT=work/results.jsonl
: > "$OUT"
(cd ../.. && cargo bench --no-run --bench images)
uptime | tee work/uptime.txt
for w in 1 2; do
  # bma with w decoding threads; PyTorch with w worker processes (and 0: decoding in the main process).
  (cd ../.. && RAYON_NUM_THREADS=$w cargo bench -q --bench images -- "$DIR" 28 28 1 "$BATCH" "$EPOCHS") | tee -a "$OUT"
  if [ "$TORCH" = yes ]; then
    .venv/bin/python torch_load.py "$DIR" "$w" "$BATCH" "$EPOCHS" | tee -a "$OUT"
  fi
done
if [ "$TORCH" = yes ]; then
  .venv/bin/python torch_load.py "$DIR" 0 "$BATCH" "$EPOCHS" | tee -a "$OUT"
else
  echo "PyTorch could not be installed: bma's figures only" | tee -a work/uptime.txt
fi
uptime | tee -a work/uptime.txt
