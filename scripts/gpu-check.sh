#!/usr/bin/env bash
# One short run for a machine with a GPU: epoch time and accuracy of bma on the GPU against
# bma on the CPU and against PyTorch on the same GPU, written to target/gpu-check/RESULTS.md
# (copy it to bench/gpu/ with the machine's name; bench/gpu/README.md says what ran so far).
#
#   scripts/gpu-check.sh                 # FEATURE=tch: the CUDA route (scripts/build-cuda.sh)
#   FEATURE=wgpu scripts/gpu-check.sh    # the wgpu backend (Vulkan on Linux)
#
# Settings: FEATURE (tch | wgpu | cuda; default tch), DEVICE (default cuda:0, or wgpu:0 with
# FEATURE=wgpu), EPOCHS (default 2: each example's `epochs = N` capped), TRIALS (default 2),
# EXAMPLES (default "digits fashion"), VENV (PyTorch's; default target/cuda-venv, the one
# scripts/build-cuda.sh makes, whose torch 2.9.0 wheel runs on CUDA 12.8).
# The examples run one trial at a time (--parallel 1) with the search seed 1, on the GPU and
# then on the CPU; fashion needs Debian's dataset-fashion-mnist (scripts/install-data.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

FEATURE=${FEATURE:-tch}
case "$FEATURE" in
  wgpu) DEVICE=${DEVICE:-wgpu:0}; TORCH_DEVICE=${TORCH_DEVICE:-cuda} ;;
  tch | cuda) DEVICE=${DEVICE:-cuda:0}; TORCH_DEVICE=${TORCH_DEVICE:-${DEVICE}} ;;
  *) echo "gpu-check: FEATURE is tch, wgpu or cuda, not $FEATURE" >&2; exit 1 ;;
esac
EPOCHS=${EPOCHS:-2}
TRIALS=${TRIALS:-2}
EXAMPLES=${EXAMPLES:-digits fashion}
VENV=${VENV:-target/cuda-venv}
OUT=target/gpu-check
mkdir -p "$OUT"
: > "$OUT/runs.jsonl"

echo "== build ($FEATURE, release)"
if [ "$FEATURE" = tch ]; then
  VENV=$VENV scripts/build-cuda.sh --release
  BIN=${CARGO_TARGET_DIR:-target/cuda}/release/bma
  export LD_LIBRARY_PATH="$("$VENV/bin/python" -c 'import torch, pathlib; print(pathlib.Path(torch.__file__).parent / "lib")'):${LD_LIBRARY_PATH:-}"
else
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/$FEATURE} cargo build --release --features "$FEATURE"
  BIN=${CARGO_TARGET_DIR:-target/$FEATURE}/release/bma
fi
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q torch==2.9.0
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
uptime | tee "$OUT/uptime.txt"

for ex in $EXAMPLES; do
  spec="$OUT/$ex.bma"
  EPOCHS=$EPOCHS perl -pe 's/^(\s*epochs\s*=\s*)(\d+)/$1 . ($2 < $ENV{EPOCHS} ? $2 : $ENV{EPOCHS})/e' "examples/$ex.bma" > "$spec"
  for dev in "$DEVICE" cpu; do
    run="$OUT/$ex-${dev/:/}"
    rm -rf "$run"
    echo "== bma $ex on $dev"
    t0=$(date +%s.%N)
    "$BIN" run "$spec" --device "$dev" --trials "$TRIALS" --parallel 1 --seed 1 --progress none --out "$run" >/dev/null
    t1=$(date +%s.%N)
    "$VENV/bin/python" - "$run/results.json" "$ex" "$dev" "$t0" "$t1" >> "$OUT/runs.jsonl" <<'PY'
import json, statistics, sys
path, ex, dev, t0, t1 = sys.argv[1:]
r = json.load(open(path))
done = [t for t in r["trials"] if t["state"] == "complete"]
epoch = [t["metrics"]["train_time"] / t["metrics"]["epochs"] for t in done if t["metrics"].get("epochs")]
valid = [t["metrics"].get("accuracy") for t in done]
test = (r.get("best") or {}).get("test", {}).get("accuracy")
print(json.dumps({"framework": "bma", "example": ex, "device": dev, "trials": len(done),
                  "epoch_s_median": statistics.median(epoch) if epoch else None,
                  "best_valid_accuracy": max(v for v in valid if v is not None) if valid else None,
                  "best_test_accuracy": test, "wall_s": float(t1) - float(t0)}))
PY
    tail -1 "$OUT/runs.jsonl"
  done
done

if [[ " $EXAMPLES " == *" fashion "* ]]; then
  echo "== PyTorch fashion-cnn on $TORCH_DEVICE"
  TORCH_DEVICE=$TORCH_DEVICE "$VENV/bin/python" bench/train/torch_fashion.py fashion-cnn 1 "$EPOCHS" | tee -a "$OUT/runs.jsonl"
fi

"$VENV/bin/python" - "$OUT/runs.jsonl" "$FEATURE" "$EPOCHS" "$TRIALS" > "$OUT/RESULTS.md" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"# scripts/gpu-check.sh (FEATURE={sys.argv[2]}, epochs <= {sys.argv[3]}, {sys.argv[4]} trials)\n")
print("| run | device | s/epoch | best valid acc | test acc | wall s |")
print("|---|---|---|---|---|---|")
for r in runs:
    if r["framework"] == "bma":
        e = r["epoch_s_median"]
        print(f"| bma {r['example']} | {r['device']} | {e:.3f} | {r['best_valid_accuracy']:.4f} | {r['best_test_accuracy']} | {r['wall_s']:.1f} |" if e else f"| bma {r['example']} | {r['device']} | - | - | - | {r['wall_s']:.1f} |")
    else:
        print(f"| {r['framework']} {r['model']} | {r['device']} | {statistics.mean(r['epoch_times']):.3f} | - | {r['test_accuracy']} | {sum(r['epoch_times']):.1f} |")
PY
cat "$OUT/RESULTS.md"
