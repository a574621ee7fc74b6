#!/usr/bin/env bash
# Generates the parser from grammar.js (into src/, not committed), checks that the
# highlight queries compile, and parses every example, stdlib file and ok fixture
# (plus the check/err fixtures, which are valid syntax) expecting no ERROR or MISSING.
# Needs node, a C compiler and the tree-sitter CLI (`cargo install tree-sitter-cli --locked`).
set -euo pipefail
cd "$(dirname "$0")"
root=../..
TS=${TREE_SITTER:-tree-sitter}
command -v "$TS" >/dev/null || { echo "tree-sitter-bma/test.sh: tree-sitter CLI not found (cargo install tree-sitter-cli --locked)" >&2; exit 2; }
"$TS" generate
shopt -s nullglob globstar
files=("$root"/examples/*.bma "$root"/stdlib/*.bma "$root"/tests/fixtures/**/ok/*.bma "$root"/tests/fixtures/check/err/*.bma)
[ ${#files[@]} -gt 0 ] || { echo "no .bma files found" >&2; exit 1; }
# -q prints only files with errors; the exit status is not relied on.
out=$("$TS" parse -q -p . "${files[@]}" 2>&1 | grep -E 'ERROR|MISSING' || true)
if [ -n "$out" ]; then echo "$out" >&2; echo "tree-sitter-bma: parse errors above" >&2; exit 1; fi
"$TS" query -p . queries/highlights.scm "$root"/examples/digits.bma >/dev/null
echo "tree-sitter-bma: ${#files[@]} files parse without ERROR/MISSING; highlights.scm compiles"
