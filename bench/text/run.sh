#!/usr/bin/env bash
# examples/text.bma against TF-IDF + logistic regression, on the same test split.
#
#   bench/text/run.sh [--baseline-only]
#
# Installs the corpus (scripts/install-text-data.sh), builds bma (release), runs the
# example's study into a temporary folder, then bench/text/baseline.py splits the CSV as
# bma did and prints both test accuracies. scikit-learn goes into bench/text/.venv,
# created here. Trials run in parallel as `search { parallel }` says (default: cores).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
scripts/install-text-data.sh
venv="$root/bench/text/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet scikit-learn==1.5.2
fi
final=""
if [ "${1:-}" != "--baseline-only" ]; then
  cargo build --release --quiet
  out="$(mktemp -d)/text"
  /usr/bin/time -f "bma run: %e s wall, %U s user" target/release/bma run examples/text.bma --out "$out" "${@}"
  final="$out/final/final.json"
fi
cd bench/text
# The example's data value: text("data/text/rotten_tomatoes.csv", ..., split: [0.7, 0.15, 0.15], seed: 1).
"$venv/bin/python" baseline.py "$root/examples/data/text/rotten_tomatoes.csv" review label 1 0.7 0.15 0.15 $final
