#!/usr/bin/env bash
# Every example's best and final model exported to ONNX and checked by onnxruntime on the
# whole test split (issue 19), on a CI budget: each example runs with its `train { epochs }`
# capped at $EPOCHS (default 1) and `--trials $TRIALS` (default 2), from a copy of the file
# in a temporary folder (its `data/` folder linked beside it, so relative paths read the
# same files); then `bma export --samples` writes the final and the best model with the
# test split's rows and bma's outputs for them, and scripts/onnx-check.sh (onnxruntime,
# onnx and numpy in $VENV, default target/onnx-venv, made when missing) holds onnxruntime
# to bma within 1e-4.
#
#   scripts/onnx-examples.sh [NAME.bma ...]     (default: every example)
#
# BMA names the binary (default target/debug/bma, which `cargo test` builds). An example
# whose data an install script writes (DATA below) runs when the data is there; without
# it the example is SKIPPED loudly, and under CI=true that is a failure. In the default run
# the examples in ON_A_SUBSET train and are checked on the first rows of their data (a
# copy in the temporary folder, the spec's paths pointed at it; SUBSET_TRAIN and SUBSET_TEST
# images, SUBSET_CLIPS_TRAIN and SUBSET_CLIPS_TEST clips per digit): their one epoch on the whole data costs too much
# CPU for CI in a debug build. Named, they run on the whole data (unless SUBSET=1). The examples in
# NOT_EXPORTABLE have no bma network to export (tests/onnx.rs holds this list to exactly
# the examples whose experiments have no `model` section). Prints each example's result
# and time (wall, and the CPU time of its processes), then a summary; exits 1 if any
# example fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
BMA=${BMA:-target/debug/bma}
EPOCHS=${EPOCHS:-1}
TRIALS=${TRIALS:-2}
# More rows than any example's test split has: `--samples` writes the whole split.
SAMPLES=${SAMPLES:-1000000}

# NAME: why it cannot be exported.
NOT_EXPORTABLE=(
  "branin.bma: a function search: each trial evaluates an fn, no network is trained"
  "command/sklearn.bma: a command trial: the model is the user's program (train.py), not a bma network"
)

# NAME: why the default run (no NAME given, as in .ci/run) checks it on a subset of its
# data: one epoch on the whole training split costs too much CPU for CI's budget in a debug
# build. Each is checked on its whole data when named (`scripts/onnx-examples.sh
# fashion.bma`, best with a release BMA).
ON_A_SUBSET=(
  "fashion.bma: 54k Fashion-MNIST training images for one epoch"
  "fashion-families.bma: more than 15 CPU-minutes for one MobileNet epoch on 54k images in a debug build (2026-12-06)"
  "speech.bma: the whole spoken-digit set for one epoch (over 2 CPU-minutes in a debug build, unfinished)"
)
SUBSET_TRAIN=${SUBSET_TRAIN:-1000}
SUBSET_TEST=${SUBSET_TEST:-500}
# Speech reads and featurises every clip each time it loads its data (a run loads it for
# the trials, best/ and the final model; each export again): 100 and 50 clips per digit cost
# 232 CPU-s in a debug build (2026-12-06), so fewer.
SUBSET_CLIPS_TRAIN=${SUBSET_CLIPS_TRAIN:-30}
SUBSET_CLIPS_TEST=${SUBSET_CLIPS_TEST:-10}

# The first N items of a gzipped IDX file of bytes (images or labels), as another such file.
idx_head() { # SRC DST N
  python3 - "$@" <<'PY'
import gzip, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with gzip.open(src, "rb") as f:
    data = f.read()
if data[0:2] != b"\0\0" or data[2] != 0x08:
    sys.exit(f"{src}: not an IDX file of unsigned bytes")
ndim = data[3]
dims = list(struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim]))
item = 1
for d in dims[1:]:
    item *= d
dims[0] = min(n, dims[0])
body = data[4 + 4 * ndim : 4 + 4 * ndim + dims[0] * item]
with gzip.open(dst, "wb") as f:
    f.write(data[:4] + struct.pack(">" + "I" * ndim, *dims) + body)
PY
}

# Writes NAME's data subset into DIR and points DIR/spec.bma at it.
make_subset() { # NAME DIR
  local name=$1 dir=$2
  case "$name" in
    fashion.bma | fashion-families.bma)
      local from=/usr/share/datasets/fashion-mnist
      mkdir -p "$dir/fmnist"
      idx_head "$from/train-images-idx3-ubyte.gz" "$dir/fmnist/train-images-idx3-ubyte.gz" "$SUBSET_TRAIN"
      idx_head "$from/train-labels-idx1-ubyte.gz" "$dir/fmnist/train-labels-idx1-ubyte.gz" "$SUBSET_TRAIN"
      idx_head "$from/t10k-images-idx3-ubyte.gz" "$dir/fmnist/t10k-images-idx3-ubyte.gz" "$SUBSET_TEST"
      idx_head "$from/t10k-labels-idx1-ubyte.gz" "$dir/fmnist/t10k-labels-idx1-ubyte.gz" "$SUBSET_TEST"
      sed -i "s|$from/|$dir/fmnist/|g" "$dir/spec.bma"
      echo "subset: the first $SUBSET_TRAIN training and $SUBSET_TEST test images" ;;
    speech.bma)
      local part per cls
      for part in train test; do
        if [ "$part" = train ]; then per=$SUBSET_CLIPS_TRAIN; else per=$SUBSET_CLIPS_TEST; fi
        for cls in "$root/examples/data/speech/$part"/*/; do
          mkdir -p "$dir/data/speech/$part/$(basename "$cls")"
          find "$cls" -maxdepth 1 -name '*.wav' | sort | head -n "$per" |
            while IFS= read -r f; do ln -s "$f" "$dir/data/speech/$part/$(basename "$cls")/"; done
        done
      done
      echo "subset: the first $SUBSET_CLIPS_TRAIN training and $SUBSET_CLIPS_TEST test clips of each digit" ;;
    *) echo "no subset for $name" >&2; return 1 ;;
  esac
}

# NAME: a file its data needs, and the script that installs it.
data_of() {
  case "$1" in
    fashion.bma | fashion-families.bma)
      echo "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz scripts/install-data.sh" ;;
    speech.bma) echo "examples/data/speech/test scripts/make-speech.sh" ;;
    text.bma | text-models.bma) echo "examples/data/text/rotten_tomatoes.csv scripts/install-text-data.sh" ;;
  esac
}

# NAME: pins that keep its one epoch short (the smallest network of its space).
pins_of() {
  case "$1" in
    fashion.bma) echo "--set filters=24" ;;
    fashion-families.bma) echo "--set family=mobilenet --set width=16 --set depth=1" ;;
    speech.bma) echo "--set filters=8 --set depth=3" ;;
  esac
}

if [ ! -x "$BMA" ]; then
  echo "no bma binary at $BMA (build it with \`cargo test --no-run\`, or set BMA)" >&2
  exit 1
fi
BMA=$(cd "$(dirname "$BMA")" && pwd)/$(basename "$BMA")
scripts/onnx-check.sh --python >/dev/null

if [ $# -gt 0 ]; then
  examples=("$@")
else
  examples=()
  while IFS= read -r f; do examples+=("${f#examples/}"); done < <(find examples -name '*.bma' | sort)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary=()
status=0
started=$SECONDS

# User + system seconds of the finished child processes so far: bash's `times`, run in
# this shell (in a pipe or $(...) it would count a subshell's children).
children_cpu() {
  times >"$work/times"
  tail -n 1 "$work/times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); s += t[1] * 60 + t[2] } printf "%.0f", s }'
}
cpu0=0
result() { # NAME RESULT SECONDS
  local now
  children_cpu >"$work/cpu"
  now=$(cat "$work/cpu")
  local cpu=$((now - cpu0))
  summary+=("$(printf '%6ss %6ss  %-24s %s' "$3" "$cpu" "$1" "$2")")
  echo "== $1: $2 ($3s wall, ${cpu}s CPU)"
}

for name in "${examples[@]}"; do
  t0=$SECONDS
  children_cpu >"$work/cpu"
  cpu0=$(cat "$work/cpu")
  echo
  echo "== $name"
  if [ ! -f "examples/$name" ]; then
    result "$name" "FAILED: no such example" 0
    status=1
    continue
  fi
  why=""
  for entry in "${NOT_EXPORTABLE[@]}"; do
    [ "${entry%%: *}" = "$name" ] && why=${entry#*: }
  done
  if [ -n "$why" ]; then
    result "$name" "not exportable: $why" 0
    continue
  fi
  subset=""
  if [ $# -eq 0 ] || [ -n "${SUBSET:-}" ]; then
    for entry in "${ON_A_SUBSET[@]}"; do
      [ "${entry%%: *}" = "$name" ] && subset=${entry#*: }
    done
    [ -n "$subset" ] && echo "note: on a subset of its data ($subset); name it to check the whole data"
  fi
  read -r needs installer <<<"$(data_of "$name")"
  if [ -n "${needs:-}" ] && [ ! -e "$needs" ]; then
    if [ -n "${CI:-}" ]; then
      result "$name" "FAILED: its data is missing ($needs; run $installer)" 0
      status=1
    else
      echo "!!! SKIPPED: $needs is missing; run $installer first"
      result "$name" "SKIPPED (no data: $installer)" 0
    fi
    continue
  fi
  dir="$work/${name%.bma}"
  mkdir -p "$dir"
  src_dir=$(dirname "examples/$name")
  [ -e "$src_dir/data" ] && [ -z "$subset" ] && ln -s "$root/$src_dir/data" "$dir/data"
  # The CI budget: `epochs = N` capped at EPOCHS (an example whose epochs are not a
  # literal keeps them, and says so).
  EPOCHS=$EPOCHS perl -pe 's/^(\s*epochs\s*=\s*)(\d+)/$1 . ($2 < $ENV{EPOCHS} ? $2 : $ENV{EPOCHS})/e' \
    "examples/$name" >"$dir/spec.bma"
  cmp -s "examples/$name" "$dir/spec.bma" && echo "note: no literal \`epochs = N\` to cap in $name"
  if [ -n "$subset" ] && ! make_subset "$name" "$dir"; then
    result "$name" "FAILED: its data subset" $((SECONDS - t0))
    status=1
    continue
  fi
  read -r -a pins <<<"$(pins_of "$name")"
  if ! "$BMA" run "$dir/spec.bma" --out "$dir/out" --trials "$TRIALS" --progress none "${pins[@]}" \
    >"$dir/run.log" 2>&1; then
    tail -n 30 "$dir/run.log"
    result "$name" "FAILED: bma run" $((SECONDS - t0))
    status=1
    continue
  fi
  ok=1
  for which in final best; do
    if [ "$which" = final ] && ! grep -q '^\s*average\s*{' "$dir/spec.bma"; then
      echo "note: $name has no \`average\` section: no final model, best/ only"
      continue
    fi
    if ! "$BMA" export "$dir/out" --model "$which" --samples "$SAMPLES" --out "$dir/$which.onnx" >"$dir/export-$which.log" 2>&1; then
      cat "$dir/export-$which.log"
      ok=0
      continue
    fi
    scripts/onnx-check.sh "$dir/$which.onnx" | sed "s|$dir/|$name: |" || ok=0
  done
  if [ "$ok" = 1 ]; then
    result "$name" "ok${subset:+ (on a subset)}" $((SECONDS - t0))
  else
    result "$name" "FAILED: export or onnxruntime check" $((SECONDS - t0))
    status=1
  fi
done

echo
echo "== onnx-examples summary (epochs <= $EPOCHS, $TRIALS trials, the whole test split) =="
echo "  wall    CPU  example"
printf '%s\n' "${summary[@]}"
children_cpu >"$work/cpu"
echo "total: $((SECONDS - started))s wall, $(cat "$work/cpu")s CPU"
exit "$status"
