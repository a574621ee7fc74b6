#!/usr/bin/env bash
# Models through the store (issue 24): upload/download throughput of 1, 10 and 100 MB
# models through PostgreSQL (bench/distributed/artifacts.rs), then the digits example
# (examples/digits.bma) run by `bma run` + WORKERS-1 `bma worker`s, each in its own
# folder, every complete trial's model stored: what storing costs per trial, measured
# on that study's own models by WORKERS uploaders at once. Figures in RESULTS-artifacts.md.
#
#   bench/distributed/artifacts.sh          # starts a throwaway server (scripts/pg-test-server.sh)
#   BMA_TEST_POSTGRES=postgres://... bench/distributed/artifacts.sh
#
# Env: PROFILE (release; `dev` for the debug build), WORKERS (8), TRIALS (16: the digits
# study's budget), SIZES (1,10,100), REPS (3).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORKERS="${WORKERS:-8}"
TRIALS="${TRIALS:-16}"
SIZES="${SIZES:-1,10,100}"
REPS="${REPS:-3}"
PROFILE="${PROFILE:-release}"
case "$PROFILE" in dev) bindir=target/debug ;; *) bindir="target/$PROFILE" ;; esac

if [ -z "${BMA_TEST_POSTGRES:-}" ]; then
  eval "$(scripts/pg-test-server.sh start)"
  trap 'scripts/pg-test-server.sh stop "$BMA_PG_DIR"' EXIT
fi
URL="$BMA_TEST_POSTGRES"
cargo bench -q --profile "$PROFILE" --bench artifacts --no-run
cargo build -q --profile "$PROFILE" --bin bma
bma="$PWD/$bindir/bma"
echo "# $(date -u +%FT%TZ) $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg); profile $PROFILE"

echo "## 1. throughput (sizes $SIZES MB, median of $REPS)"
# The server's CPU time is counted only when its folder is known (BMA_PG_DIR).
server=()
if [ -n "${BMA_PG_DIR:-}" ] && [ -r "$BMA_PG_DIR/data/postmaster.pid" ]; then
  server=(--server-pid "$(head -1 "$BMA_PG_DIR/data/postmaster.pid")")
fi
cargo bench -q --profile "$PROFILE" --bench artifacts -- --url "$URL" --sizes "$SIZES" --reps "$REPS" "${server[@]}"

echo "## 2. the digits example: bma run + $((WORKERS - 1)) workers, $TRIALS trials, no shared folder"
tmp=$(mktemp -d)
study="digits-art-$$"
start=$(date +%s.%N)
(cd "$tmp" && mkdir run && cp "$OLDPWD/examples/digits.bma" run/ && cd run &&
  "$bma" run digits.bma --store "$URL" --study "$study" --trials "$TRIALS" --out out --progress none > log 2>&1) &
runpid=$!
until psql -qtA "$URL" -c "SELECT 1 FROM bma_studies WHERE name = '$study'" 2>/dev/null | grep -q 1; do sleep 0.2; done
pids=()
for i in $(seq 2 "$WORKERS"); do
  mkdir -p "$tmp/w$i"
  (cd "$tmp/w$i" && "$bma" worker --store "$URL" --study "$study" --out out --progress none > log 2>&1) &
  pids+=($!)
done
wait "$runpid"; for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s.%N)
echo "study wall time: $(echo "$end - $start" | bc) s"
# Per complete trial: its training time and its model's size (what each upload carries).
psql -qtA -F' ' "$URL" -c "
  SELECT count(*), round(avg(t.duration)::numeric, 2), round(avg(a.size) / 1e3, 1), round(sum(a.size) / 1e3, 1)
  FROM bma_trials t JOIN bma_artifacts a ON a.study = t.study AND a.number = t.number
  JOIN bma_studies s ON s.id = t.study WHERE s.name = '$study'" |
  awk '{printf "complete trials (each with its model stored): %s; mean training %s s; mean model %s kB; %s kB stored in all\n", $1, $2, $3, $4}'
psql -qtA -F' ' "$URL" -c "SELECT t.state, count(*) FROM bma_trials t JOIN bma_studies s ON s.id = t.study
  WHERE s.name = '$study' GROUP BY t.state ORDER BY t.state" | tr '\n' ';'; echo
tail -2 "$tmp/run/log"
echo "## 3. $WORKERS uploaders at once of this study's best model"
cargo bench -q --profile "$PROFILE" --bench artifacts -- --url "$URL" --sizes 0.001 --reps 1 \
  --folder "$tmp/run/out/best" --concurrent "$WORKERS" --uploads 40 | tail -1
psql -qtA "$URL" -c "DELETE FROM bma_studies WHERE name = '$study'" > /dev/null
rm -rf "$tmp"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
