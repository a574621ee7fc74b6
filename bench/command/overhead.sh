#!/bin/sh
# bma's own cost per command trial: N trials of a trivial program (`echo` of one report
# line) under `bma run`, against the same N programs started by a plain loop (Python's
# subprocess, which spawns and reads stdout the same way). Reports wall and CPU
# (user+sys, children included) seconds of each side, and bma's cost per trial beyond the
# program's own. Usage: bench/command/overhead.sh [N] [BMA]  (default 1000, target/release/bma)
set -eu
N=${1:-1000}
BMA=${2:-target/release/bma}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cat > "$DIR/s.bma" <<SPEC
experiment overhead {
  space { x: float in 0.0..1.0 }
  trial {
    command = ["echo", "{{\"step\": 1, \"loss\": {x}}}"]
    reports = [loss]
  }
  objective { minimize loss }
  search { strategy = random  trials = $N  seed = 1 }
}
SPEC
cat > "$DIR/loop.py" <<'PY'
import subprocess, sys
for i in range(int(sys.argv[1])):
    p = subprocess.run(["echo", '{"step": 1, "loss": 0.5}'], stdout=subprocess.PIPE, check=True)
    assert p.stdout.startswith(b"{")
PY
uptime
for round in 1 2 3; do
  /usr/bin/time -f "bma  round $round: wall %e s, user %U s, sys %S s, max RSS %M KiB" \
    "$BMA" run "$DIR/s.bma" --out "$DIR/out$round" --progress none > /dev/null
  /usr/bin/time -f "loop round $round: wall %e s, user %U s, sys %S s, max RSS %M KiB" \
    python3 "$DIR/loop.py" "$N"
done
