#!/bin/sh
# bma (tpe, subspace, random) against Optuna (TPE, random) on LCBench through YAHPO Gym's
# surrogate: 4 OpenML tasks, 10 seeds, 100 trials; regret at 25/50/100 trials. See RESULTS.md.
# Usage: bench/command/yahpo/lcbench.sh [--quick]   (--quick: 1 task, 2 seeds, 20 trials)
# Environment: VENV (default target/yahpo-venv, made if missing), YAHPO_DATA (target/yahpo_data,
# cloned from GitHub at the pinned commit if missing), BMA (target/release/bma), OUT (results,
# default target/yahpo-bench[-quick]; finished runs in it are kept and not rerun), JOBS (4).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-target/yahpo-venv}
YAHPO_DATA=${YAHPO_DATA:-target/yahpo_data}
BMA=${BMA:-target/release/bma}
JOBS=${JOBS:-4}
PIN=efdab9072f63bd680396cd4b78b927c4a0caaad3  # slds-lmu/yahpo_data, v1.0.2 + licence year
if [ "${1:-}" = "--quick" ]; then
  OUT=${OUT:-target/yahpo-bench-quick}; TASKS="3945"; SEEDS="1 2"; TRIALS=20; BUDGETS=5,10,20
else
  # The first four tasks of LCBench's task list (config_space.json), chosen before any run.
  OUT=${OUT:-target/yahpo-bench}; TASKS="3945 7593 34539 126025"; SEEDS="1 2 3 4 5 6 7 8 9 10"
  TRIALS=100; BUDGETS=25,50,100
fi
SAMPLE=20000

[ -x "$BMA" ] || { echo "lcbench.sh: no bma binary at $BMA (cargo build --release, or set BMA)" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q yahpo-gym==1.0.2 optuna==5.1.0 onnxruntime==1.32.0 ConfigSpace==0.6.1 \
    numpy==1.26.4 pandas==3.0.6 PyYAML==6.0.4
fi
if [ ! -f "$YAHPO_DATA/lcbench/model.onnx" ]; then
  # Only lcbench is checked out (the other scenarios' surrogates are large and not needed).
  git clone -q --no-checkout https://github.com/slds-lmu/yahpo_data "$YAHPO_DATA"
  git -C "$YAHPO_DATA" checkout -q "$PIN" -- lcbench
fi
YAHPO_DATA=$(cd "$YAHPO_DATA" && pwd); BMA=$(cd "$(dirname "$BMA")" && pwd)/$(basename "$BMA")
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
export YAHPO_DATA BMA OUT TRIALS HERE

# The surrogate server: loaded once, answers every bma trial's client over a Unix socket.
SOCKDIR=$(mktemp -d /tmp/yahpo.XXXXXX)
export YAHPO_SOCKET="$SOCKDIR/s.sock"
"$VENV/bin/python" "$HERE/surrogate.py" "$YAHPO_SOCKET" $TASKS > "$SOCKDIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER || true; rm -rf "$SOCKDIR"' EXIT INT TERM
i=0
until grep -q '^ready' "$SOCKDIR/server.log"; do
  kill -0 $SERVER || { echo "lcbench.sh: the surrogate server died:" >&2; cat "$SOCKDIR/server.log" >&2; exit 1; }
  i=$((i + 1)); [ $i -lt 600 ] || { echo "lcbench.sh: the surrogate server is not ready after 60 s" >&2; exit 1; }
  sleep 0.1
done

echo "start $(date -u +%FT%TZ); $(uptime)"
START=$(date +%s)
# bma: one study per method x task x seed, each sequential (parallel = 1), JOBS at once.
for m in tpe subspace random; do for t in $TASKS; do for s in $SEEDS; do echo "$m $t $s"; done; done; done |
  xargs -P "$JOBS" -n 3 sh -c '
    m=$1 t=$2 s=$3 d="$OUT/bma/$m/$t/$s"
    grep -q "\"state\": \"finished\"" "$d/results.json" 2>/dev/null && exit 0  # else never run, or interrupted
    rm -rf "$d"; mkdir -p "$(dirname "$d")"
    case $m in subspace) st="subspace(by: [num_layers])" ;; *) st=$m ;; esac
    YAHPO_TASK=$t "$BMA" run "$HERE/lcbench.bma" --strategy "$st" --seed "$s" --trials "$TRIALS" \
      --out "$d" --progress none > "$d.log" 2>&1 || { echo "bma $m task $t seed $s failed: see $d.log" >&2; exit 255; }
  ' sh
echo "bma done after $(( $(date +%s) - START )) s"
# Optuna: the same surrogate in-process, TPE and random with seed = the same seed numbers.
for t in $TASKS; do for s in $SEEDS; do echo "$t $s"; done; done |
  xargs -P "$JOBS" -n 2 sh -c '
    [ -f "$OUT/optuna/random/$1/$2.json" ] || "$0" "$HERE/bench.py" optuna "$OUT" "$1" "$2" "$TRIALS"
  ' "$VENV/bin/python"
for t in $TASKS; do
  [ -f "$OUT/sample/$t.json" ] || "$VENV/bin/python" "$HERE/bench.py" sample "$OUT" "$t" $SAMPLE
done
echo "all done after $(( $(date +%s) - START )) s; end $(date -u +%FT%TZ); $(uptime)"
"$VENV/bin/python" "$HERE/bench.py" table "$OUT" "$TRIALS" "$BUDGETS"
"$VENV/bin/python" -c 'from importlib.metadata import version as v; print(*(f"{p} {v(p)}" for p in ["optuna", "yahpo-gym", "onnxruntime", "numpy"]), sep=", ")'
