#!/usr/bin/env bash
# TextMate grammar tests: installs vscode-tmgrammar-test into ./node_modules (from
# package-lock.json) when missing, then checks every tests/*.bma assertion.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "editors/vscode/test.sh: npm is needed (apt-get install -y nodejs npm)" >&2; exit 2; }
if [ ! -x node_modules/.bin/vscode-tmgrammar-test ]; then
  npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error
fi
python3 -c 'import json,sys; [json.load(open(f)) for f in sys.argv[1:]]' package.json language-configuration.json syntaxes/bma.tmLanguage.json 2>/dev/null \
  || node -e 'for (const f of process.argv.slice(1)) JSON.parse(require("fs").readFileSync(f, "utf8"))' package.json language-configuration.json syntaxes/bma.tmLanguage.json
exec node_modules/.bin/vscode-tmgrammar-test -g syntaxes/bma.tmLanguage.json 'tests/*.bma'
