#!/usr/bin/env bash
# The distributed bench: 8 real `bma worker` processes (and bma's store driven
# directly) beside Optuna's RDB storage, same
# server, same machine, same run, 8 worker processes each, trivial trials.
#
#   bench/distributed/run.sh            # starts a throwaway server (scripts/pg-test-server.sh)
#   BMA_TEST_POSTGRES=postgres://... bench/distributed/run.sh   # uses that server
#
# Makes bench/distributed/.venv with optuna and psycopg2-binary on first use.
# Env: WORKERS (8), BMA_TRIALS (4000), OPTUNA_TRIALS (800), REPS (3: repetitions,
# each running bma and Optuna back to back so that both see the same machine load;
# a ratio per repetition), PROFILE (release; `dev` for a debug build), BASELINE_BIN
# (another `bma` binary, e.g. an older build: its workers run too, in every repetition).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/distributed
WORKERS="${WORKERS:-8}"
. "$here/workers.sh"
BMA_TRIALS="${BMA_TRIALS:-4000}"
OPTUNA_TRIALS="${OPTUNA_TRIALS:-800}"
REPS="${REPS:-3}"

if [ -z "${BMA_TEST_POSTGRES:-}" ]; then
  eval "$(scripts/pg-test-server.sh start)"
  trap 'scripts/pg-test-server.sh stop "$BMA_PG_DIR"' EXIT
fi
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q "optuna==4.*" psycopg2-binary
fi

PROFILE="${PROFILE:-release}"
case "$PROFILE" in dev) bindir=target/debug ;; *) bindir="target/$PROFILE" ;; esac
cargo bench -q --profile "$PROFILE" --bench distributed --no-run
cargo build -q --profile "$PROFILE" --bin bma

# 1. bma's store driven directly (no sampler, no heartbeat thread): the store's ceiling.
store_bench() {
  cargo bench -q --profile "$PROFILE" --bench distributed -- --url "$BMA_TEST_POSTGRES" --workers "$WORKERS" --trials "$BMA_TRIALS"
}

# 2. The real thing: $WORKERS `bma worker` processes, each creating-or-joining one study
#    from the same file (random search, trials = $BMA_TRIALS). The clock runs from
#    launching the processes to the last one's exit: process start, connect, compile,
#    the trial loop with its heartbeat thread and the final table all count.
worker_bench() {
  local bin="${1:-$bindir/bma}" label="${2:-bma worker}"
  local tmp name t0 t1 listed i p
  tmp="$(mktemp -d)"
  name="workers-$$-$(date +%s%N)"
  sed -e "s/@NAME@/$name/" -e "s/@TRIALS@/$BMA_TRIALS/" "$here/bench.bma.in" > "$tmp/bench.bma"
  t0="$(date +%s.%N)"
  run_workers "$bin" "$tmp" "$name"
  t1="$(date +%s.%N)"
  listed="$("$bin" ls --store "$BMA_TEST_POSTGRES" | grep -F "  $name  ")"
  echo "$listed" | grep -qF "$BMA_TRIALS trials ($BMA_TRIALS complete)" || { echo "wrong trial count: $listed" >&2; exit 1; }
  awk -v a="$t0" -v b="$t1" -v n="$BMA_TRIALS" -v w="$WORKERS" -v l="$label" \
    'BEGIN { printf "%s: %d trials, %d processes, %.2f s, %.0f trials/s\n", l, n, w, b - a, n / (b - a) }'
  rm -rf "$tmp"
}

# 3. Optuna, same server, same run.
optuna_bench() {
  "$here/.venv/bin/python" "$here/optuna_bench.py" "$BMA_TEST_POSTGRES" --workers "$WORKERS" --trials "$OPTUNA_TRIALS"
}

rate() { echo "$1" | sed -E 's/.* ([0-9]+) trials\/s$/\1/'; }
echo "bench/distributed: $WORKERS workers, bma $BMA_TRIALS trials ($PROFILE build), Optuna $OPTUNA_TRIALS trials, $REPS repetitions, $(nproc) cores"
for r in $(seq "$REPS"); do
  # Alternate which side goes first, so neither always runs on a warmer (or busier) machine.
  if [ $((r % 2)) -eq 1 ]; then
    store_line="$(store_bench)"; worker_line="$(worker_bench)"; optuna_line="$(optuna_bench)"
  else
    optuna_line="$(optuna_bench)"; worker_line="$(worker_bench)"; store_line="$(store_bench)"
  fi
  echo "repetition $r (load average $(cut -d' ' -f1-3 /proc/loadavg)):"
  echo "  $store_line"
  echo "  $worker_line"
  echo "  $optuna_line"
  awk -v s="$(rate "$store_line")" -v b="$(rate "$worker_line")" -v o="$(rate "$optuna_line")" \
    'BEGIN { printf "  bma worker / optuna: %.1fx (store alone / optuna: %.1fx)\n", b / o, s / o }'
  if [ -n "${BASELINE_BIN:-}" ]; then
    base_line="$(worker_bench "$BASELINE_BIN" "baseline worker ($BASELINE_BIN)")"
    echo "  $base_line"
    awk -v b="$(rate "$worker_line")" -v o="$(rate "$base_line")" 'BEGIN { printf "  bma worker / baseline: %.1fx\n", b / o }'
  fi
done
