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
# it the example is SKIPPED loudly, and under CI=true that is a failure. The default run
# leaves out the examples in TOO_COSTLY, loudly, with the reason. The examples in
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

# NAME: why the default run (no NAME given, as in .ci/run) leaves it out: its one epoch
# on the whole training split costs too much CPU for CI's budget in a debug build. Each is
# checked when named (`scripts/onnx-examples.sh fashion.bma`, best with a release BMA).
TOO_COSTLY=(
  "fashion.bma: 54k Fashion-MNIST images for one epoch (not yet timed in a debug build)"
  "fashion-families.bma: more than 15 CPU-minutes for one MobileNet epoch in a debug build, unfinished (2026-12-06)"
  "speech.bma: the whole spoken-digit set for one epoch (over 2 CPU-minutes in a debug build, unfinished)"
)

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
  if [ $# -eq 0 ]; then
    for entry in "${TOO_COSTLY[@]}"; do
      [ "${entry%%: *}" = "$name" ] && why=${entry#*: }
    done
    if [ -n "$why" ]; then
      echo "!!! LEFT OUT of the default run: $why; check it with scripts/onnx-examples.sh $name"
      result "$name" "LEFT OUT (too costly for the default run: $why)" 0
      continue
    fi
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
  [ -e "$src_dir/data" ] && ln -s "$root/$src_dir/data" "$dir/data"
  # The CI budget: `epochs = N` capped at EPOCHS (an example whose epochs are not a
  # literal keeps them, and says so).
  EPOCHS=$EPOCHS perl -pe 's/^(\s*epochs\s*=\s*)(\d+)/$1 . ($2 < $ENV{EPOCHS} ? $2 : $ENV{EPOCHS})/e' \
    "examples/$name" >"$dir/spec.bma"
  cmp -s "examples/$name" "$dir/spec.bma" && echo "note: no literal \`epochs = N\` to cap in $name"
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
    result "$name" "ok" $((SECONDS - t0))
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
