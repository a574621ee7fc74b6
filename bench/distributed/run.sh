#!/usr/bin/env bash
# The distributed bench: bma's PostgreSQL store beside Optuna's RDB storage, same
# server, same machine, same run, 8 worker processes each, trivial trials.
#
#   bench/distributed/run.sh            # starts a throwaway server (scripts/pg-test-server.sh)
#   BMA_TEST_POSTGRES=postgres://... bench/distributed/run.sh   # uses that server
#
# Makes bench/distributed/.venv with optuna and psycopg2-binary on first use.
# Env: WORKERS (8), BMA_TRIALS (4000), OPTUNA_TRIALS (800), PROFILE (dev: the
# work is database round trips, not CPU; `PROFILE=release` for an optimised build).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/distributed
WORKERS="${WORKERS:-8}"
BMA_TRIALS="${BMA_TRIALS:-4000}"
OPTUNA_TRIALS="${OPTUNA_TRIALS:-800}"

if [ -z "${BMA_TEST_POSTGRES:-}" ]; then
  eval "$(scripts/pg-test-server.sh start)"
  trap 'scripts/pg-test-server.sh stop "$BMA_PG_DIR"' EXIT
fi
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q "optuna==4.*" psycopg2-binary
fi

PROFILE="${PROFILE:-dev}"
cargo bench --profile "$PROFILE" --bench distributed --no-run
bma_line="$(cargo bench -q --profile "$PROFILE" --bench distributed -- --url "$BMA_TEST_POSTGRES" --workers "$WORKERS" --trials "$BMA_TRIALS")"
optuna_line="$("$here/.venv/bin/python" "$here/optuna_bench.py" "$BMA_TEST_POSTGRES" --workers "$WORKERS" --trials "$OPTUNA_TRIALS")"
echo "$bma_line"
echo "$optuna_line"
b="$(echo "$bma_line" | sed -E 's/.* ([0-9]+) trials\/s$/\1/')"
o="$(echo "$optuna_line" | sed -E 's/.* ([0-9]+) trials\/s$/\1/')"
awk -v b="$b" -v o="$o" 'BEGIN { printf "bma / optuna: %.1fx\n", b / o }'
