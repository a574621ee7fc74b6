#!/usr/bin/env bash
# Where a `bma worker`'s database time goes: every statement the server ran for one
# study of BMA_TRIALS trivial trials by WORKERS `bma worker` processes, per trial
# (pg_stat_statements), and the transactions committed per trial (pg_stat_database).
#
#   eval "$(scripts/pg-test-server.sh start)"; bench/distributed/statements.sh
#
# Needs a throwaway server (BMA_TEST_POSTGRES and BMA_PG_DIR from
# scripts/pg-test-server.sh): it loads pg_stat_statements there (ALTER SYSTEM and a
# restart) when it is not loaded yet, and resets the server's statistics.
# Env: WORKERS (8), BMA_TRIALS (2000), BMA_BIN (target/release/bma, built if missing;
# point it at another build to compare).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/distributed
WORKERS="${WORKERS:-8}"
. "$here/workers.sh"
BMA_TRIALS="${BMA_TRIALS:-2000}"
: "${BMA_TEST_POSTGRES:?start a throwaway server: eval \"\$(scripts/pg-test-server.sh start)\"}"
: "${BMA_PG_DIR:?BMA_PG_DIR (printed by scripts/pg-test-server.sh start) is needed to load pg_stat_statements}"
BMA_BIN="${BMA_BIN:-target/release/bma}"
[ -x "$BMA_BIN" ] || cargo build -q --release --bin bma

psql_bin=""
for d in "$(pg_config --bindir 2>/dev/null || true)" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$d/psql" ]; then psql_bin="$d/psql"; break; fi
done
[ -n "$psql_bin" ] || { echo "statements.sh: psql not found" >&2; exit 1; }
q() { "$psql_bin" "$BMA_TEST_POSTGRES" -X -q -v ON_ERROR_STOP=1 "$@"; }

if [ "$(q -tA -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")" = 0 ] \
  || ! q -tA -c "SELECT 1 FROM pg_stat_statements LIMIT 1" >/dev/null 2>&1; then
  q -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  scripts/pg-test-server.sh restart "$BMA_PG_DIR" >/dev/null 2>&1
  q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
name="statements-$$-$(date +%s%N)"
sed -e "s/@NAME@/$name/" -e "s/@TRIALS@/$BMA_TRIALS/" "$here/bench.bma.in" > "$tmp/bench.bma"
q -c "SELECT pg_stat_statements_reset(), pg_stat_reset()" >/dev/null
commits0="$(q -tA -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")"
run_workers "$BMA_BIN" "$tmp" "$name"
sleep 1 # the statistics collector's last report
commits1="$(q -tA -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")"
echo "$BMA_BIN: $WORKERS workers, $BMA_TRIALS trials"
q -c "SELECT round(calls::numeric / $BMA_TRIALS, 3) AS per_trial, calls,
              round(total_exec_time::numeric, 1) AS total_ms,
              left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND query NOT LIKE '%pg_stat%'
       ORDER BY calls DESC LIMIT 25"
q -tA -c "SELECT 'statements per trial: ' || round(sum(calls)::numeric / $BMA_TRIALS, 2)
                 || ', server execution time per trial: ' || round((sum(total_exec_time) / $BMA_TRIALS)::numeric, 3) || ' ms'
          FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%'
            AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
awk -v a="$commits0" -v b="$commits1" -v n="$BMA_TRIALS" \
  'BEGIN { printf "transactions committed per trial: %.2f\n", (b - a) / n }'
