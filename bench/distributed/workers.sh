# Sourced by run.sh and statements.sh: starts $WORKERS `bma worker` processes of BIN on the
# study NAME of the file TMP/bench.bma (the first creates it, the others join), and waits for
# them all; a failed worker prints every log and ends the bench.
#   run_workers BIN TMP NAME
run_workers() {
  local bin="$1" tmp="$2" name="$3" i p
  local pids=()
  for i in $(seq "$WORKERS"); do
    BMA_STORE="$BMA_TEST_POSTGRES" "$bin" worker --study "$name" --file "$tmp/bench.bma" --progress none \
      --out "$tmp/w$i" > "$tmp/w$i.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || { echo "a bma worker failed:" >&2; cat "$tmp"/w*.log >&2; exit 1; }
  done
}
