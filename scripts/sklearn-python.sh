#!/usr/bin/env bash
# Prints the python of a virtualenv with scikit-learn, for tests/command.rs's run of
# examples/command/ (BMA_TEST_SKLEARN): $VENV when given, else target/sklearn-venv, created
# and filled from PyPI when missing.
#   BMA_TEST_SKLEARN=$(scripts/sklearn-python.sh) cargo test --test command
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-target/sklearn-venv}
if ! "$VENV/bin/python" -c 'import sklearn' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet scikit-learn >&2
fi
echo "$(cd "$VENV/bin" && pwd)/python"
