#!/bin/sh
# bma against a ridge regression on a house-price-like CSV (issue 16: "r2 0.76 where a ridge
# gets 0.91: the target is not scaled"). Usage: bench/tables/house.sh [path/to/bma] (default the release build).
# 2026-12-06, debug build, shared 2-core machine at load ~15: ridge 0.8972 (its own split);
# bma dense(1) 0.8794, dense(64) relu dense(64) relu dense(1) 0.8329 (bma's split, same sizes).
set -e
here=$(cd "$(dirname "$0")" && pwd)
bma=${1:-$here/../../target/release/bma}
work=${TMPDIR:-/tmp}/bma-bench-tables
mkdir -p "$work"
[ -x "$work/venv/bin/python" ] || { python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q numpy scikit-learn; }
"$work/venv/bin/python" "$here/house.py" "$work/house.csv"
for model in "dense(1)" "dense(64) relu dense(64) relu dense(1)"; do
  cat > "$work/house.bma" <<SPEC
experiment house {
  data = csv("house.csv", target: "price", task: regression, seed: 0)
  model { $model }
  train { epochs = 80  optimizer = adam(0.003)  batch = 32  seed = 1 }
  objective { maximize r2 }
  search { trials = 1 }
}
SPEC
  rm -rf "$work/out"
  "$bma" run "$work/house.bma" --out "$work/out" --progress none > /dev/null
  "$work/venv/bin/python" -c "
import json; t = json.load(open('$work/out/results.json'))['final']['final_test']
print(f\"bma {'$model':40} test r2 {t['r2']:.4f}  rmse {t['rmse']:.0f}  mape {t['mape']:.4f}\")"
done
