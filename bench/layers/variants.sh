#!/usr/bin/env bash
# The transformer benchmark (bench/layers/transformer.rs) for several prebuilt bma binaries
# and PyTorch (torch_transformer.py) in one run, alternating within each round, one thread
# (or THREADS) each, so that a change is measured against its base on the same load:
#
#   VENV=/work/venv-torch bench/layers/variants.sh REPS EPOCHS NAME=BINARY...
#
# e.g. `bench/layers/variants.sh 3 3 main=/tmp/layers-main new=target/release/deps/layers-<hash>`.
# Each round runs the binaries in the order given, then PyTorch; `uptime` before and after.
# Per run, one JSON line in target/bench-layers/variants.jsonl: the benchmark's own (epoch
# wall and process CPU seconds), with the side, the round, the process's user and system CPU
# seconds and peak RSS (GNU time). Summary: per side, the medians over rounds of ms per step
# (mean of epochs 2..EPOCHS, wall and CPU), peak RSS, and the CPU ratio to PyTorch per round.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=$1
EPOCHS=$2
shift 2
THREADS=${THREADS:-1}
VENV=${VENV:-target/bench-venv}
PY="$VENV/bin/python"
OUTDIR=target/bench-layers
mkdir -p "$OUTDIR"
CSV=$PWD/$OUTDIR/tokens.csv
"$PY" bench/layers/tokens.py "$CSV" 712
RUNS=$OUTDIR/variants.jsonl
: > "$RUNS"
run() {
  local side=$1 round=$2
  shift 2
  local out
  out=$(env RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" \
    /usr/bin/time -f '%U %S %M' -o "$OUTDIR/time.txt" "$@" 2>/dev/null | grep '^{' | tail -1)
  "$PY" -c 'import json, sys
r = json.loads(sys.argv[1])
u, s, m = open(sys.argv[4]).read().split()[-3:]
r.update(side=sys.argv[2], round=int(sys.argv[3]), user_s=float(u), sys_s=float(s), peak_rss_mib=int(m) / 1024)
print(json.dumps(r))' "$out" "$side" "$round" "$OUTDIR/time.txt" | tee -a "$RUNS"
}
echo "uptime before: $(uptime)"
for round in $(seq "$REPS"); do
  STEPS=
  for v in "$@"; do
    run "${v%%=*}" "$round" "${v#*=}" "$CSV" "$THREADS" "$EPOCHS"
    STEPS=$(tail -1 "$RUNS" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["steps"])')
  done
  run pytorch "$round" "$PY" bench/layers/torch_transformer.py "$THREADS" "$EPOCHS" "$STEPS"
done
echo "uptime after: $(uptime)"
"$PY" - "$RUNS" <<'PY'
import json, statistics as st, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
step = lambda r, k: st.mean(r[k][1:]) / r["steps"] * 1e3
sides = list(dict.fromkeys(r["side"] for r in runs))
torch = {r["round"]: step(r, "epoch_cpu") for r in runs if r["side"] == "pytorch"}
print("| side | ms/step wall (median) | ms/step CPU (median) | CPU / PyTorch per round | peak RSS MiB (median) |")
print("|---|---|---|---|---|")
for s in sides:
    rs = [r for r in runs if r["side"] == s]
    per = ", ".join(f"{step(r, 'epoch_cpu') / torch[r['round']]:.2f}" for r in rs if r["round"] in torch)
    print(f"| {s} | {st.median(step(r, 'epoch_times') for r in rs):.1f} | {st.median(step(r, 'epoch_cpu') for r in rs):.1f} "
          f"| {per} | {st.median(r['peak_rss_mib'] for r in rs):.0f} |")
PY
