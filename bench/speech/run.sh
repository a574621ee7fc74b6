#!/usr/bin/env bash
# The spoken-digit example end to end: writes the clips (scripts/make-speech.sh, espeak-ng,
# installed with apt when missing), runs examples/speech.bma with the release build, and
# prints the final model's accuracy on the test split, which is the held-out voices (no
# test accent and no test variant is heard in training), with the time and the load.
#
#   bench/speech/run.sh [OUT]          (default: a fresh folder under /tmp)
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:-$(mktemp -d /tmp/bma-speech.XXXXXX)}
scripts/make-speech.sh examples/data/speech
cargo build --release --quiet
echo "load before: $(uptime)"
start=$(date +%s)
./target/release/bma run examples/speech.bma --out "$out" --progress plain
end=$(date +%s)
echo "load after: $(uptime)"
echo "wall: $((end - start)) s"
python3 - "$out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["final"]
print("final model test accuracy (held-out voices):", f["final_test"]["accuracy"])
print("best single trial:", r["best"]["number"], {k: v for k, v in r["best"].items() if k in ("params", "metrics")})
PY
