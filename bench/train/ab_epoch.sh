#!/usr/bin/env bash
# Epoch time of two builds of the train bench (e.g. main's and a branch's) and PyTorch, alternating:
#
#   bench/train/ab_epoch.sh BEFORE_BIN AFTER_BIN [REPS] [MODEL] [EPOCHS]   (defaults 3 cnn-bn 6)
#
# BEFORE_BIN/AFTER_BIN: copies of target/release/deps/train-* (`cargo bench --bench train --no-run`).
# Uses run.sh's virtualenv (target/bench-venv; run run.sh once to make it). Prints, per side, the
# mean epoch time of epochs 2..EPOCHS of each run (ms), its median, and bma's process CPU time
# (user + sys, /usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/../.."
BEFORE=$1 AFTER=$2 REPS=${3:-3} MODEL=${4:-cnn-bn} EPOCHS=${5:-6}
OUT=target/bench-ab-$MODEL.jsonl
: > "$OUT"
TMP=$(mktemp -d)
for _ in $(seq "$REPS"); do
  for side in before after; do
    bin=$BEFORE; [ "$side" = after ] && bin=$AFTER
    /usr/bin/time -f "%U %S" -o "$TMP/t" env RAYON_NUM_THREADS=1 "$bin" "$MODEL" 1 "$EPOCHS" > "$TMP/line"
    python3 - "$side" "$TMP/line" "$TMP/t" >> "$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
u, s = open(sys.argv[3]).read().split()[-2:]
r.update(framework=sys.argv[1], cpu_s=float(u) + float(s))
print(json.dumps(r))
PY
  done
  OMP_NUM_THREADS=1 target/bench-venv/bin/python bench/train/torch_epoch.py "$MODEL" 1 "$EPOCHS" \
    | python3 -c "import json,sys; r=json.load(sys.stdin); r['framework']='torch'; print(json.dumps(r))" >> "$OUT"
done
rm -r "$TMP"
python3 - "$OUT" <<'PY'
import json, statistics, sys
groups = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    groups.setdefault(r["framework"], []).append(r)
for side, rs in groups.items():
    ms = [statistics.mean(r["epoch_times"][1:]) * 1e3 for r in rs]
    cpu = [round(r["cpu_s"], 2) for r in rs if "cpu_s" in r]
    print(f"{side}: ms/epoch {[round(m, 1) for m in ms]} median {statistics.median(ms):.1f}"
          f" cpu_s {cpu} test_acc {rs[0]['test_accuracy']}")
PY
