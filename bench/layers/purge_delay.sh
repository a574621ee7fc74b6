#!/usr/bin/env bash
# mimalloc's purge delay (vendor/mimalloc-options, `bma::configure_allocator`): epoch CPU time
# and peak RSS of the three issue-17 benchmarks with main's binaries (mimalloc's default purge
# delay, 1000 ms, or the delay given through MIMALLOC_PURGE_DELAY, which main's binaries do not
# override) against the new binaries (the delay bma sets), the variants alternating in each
# round, one thread:
#
#   BASE_DIR=/tmp/base NEW_DIR=/tmp/new bench/layers/purge_delay.sh [ROUNDS] [DELAYS...]
#
# BASE_DIR and NEW_DIR hold the bench binaries `layers`, `layers_lstm` and `train` (main's and
# this branch's; without NEW_DIR only main's run). DELAYS (default `1000 10000 -1`) are the values tried on main's binaries.
# BENCHES (default `transformer lstm dwsep`) picks the benchmarks. Prints one line per run:
# benchmark, variant, CPU seconds of each epoch (the bench's `epoch_cpu`), process user+sys,
# peak RSS; then `uptime`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
shift || true
DELAYS=${*:-1000 10000 -1}
BENCHES=${BENCHES:-transformer lstm dwsep}
OUT=target/bench-purge
mkdir -p "$OUT"
CSV=$PWD/$OUT/tokens.csv
python3 bench/layers/tokens.py "$CSV" 712
args() {
  case $1 in
    transformer) echo "layers $CSV 1 2" ;;
    lstm) echo "layers_lstm lstm 1200 2" ;;
    dwsep) echo "train fashion-dwsep 1 1" ;;
  esac
}
one() {  # one BENCH LABEL DIR [ENV...]
  local bench=$1 label=$2 dir=$3
  shift 3
  read -r bin rest <<< "$(args "$bench")"
  # shellcheck disable=SC2086
  env RAYON_NUM_THREADS=1 "$@" /usr/bin/time -f 'usersys %U %S maxrss_kib %M' -o "$OUT/time.txt" \
    "$dir/$bin" $rest 2>/dev/null | grep '^{' | tail -1 > "$OUT/run.json"
  python3 - "$bench" "$label" "$OUT/run.json" "$OUT/time.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[3]))
t = open(sys.argv[4]).read().split()
i = t.index("usersys")
cpu = float(t[i + 1]) + float(t[i + 2])
rss = int(t[t.index("maxrss_kib") + 1]) / 1024
print(f"{sys.argv[1]:12} {sys.argv[2]:22} epoch_cpu {' '.join(f'{x:.2f}' for x in r['epoch_cpu'])}"
      f"  user+sys {cpu:.2f}  peak_rss_mib {rss:.0f}")
PY
}
echo "uptime before: $(uptime)"
for bench in $BENCHES; do
  for round in $(seq "$ROUNDS"); do
    for d in $DELAYS; do
      one "$bench" "main purge_delay=$d" "$BASE_DIR" MIMALLOC_PURGE_DELAY="$d"
    done
    if [ -n "${NEW_DIR:-}" ]; then
      one "$bench" "new (bma sets it)" "$NEW_DIR"
    fi
  done
done
echo "uptime after: $(uptime)"
