#!/usr/bin/env bash
# Generates the parser from grammar.js (into src/, not committed), parses every example,
# stdlib file and ok fixture (plus the check/err fixtures, which are valid syntax)
# expecting no ERROR or MISSING, and checks the capture each editor shows at known
# positions with each of the three highlight query files (see below).
# Needs node, a C compiler, the tree-sitter CLI (`cargo install tree-sitter-cli --locked`)
# and Neovim 0.7 or later (Debian: neovim).
set -euo pipefail
cd "$(dirname "$0")"
root=../..
TS=${TREE_SITTER:-tree-sitter}
command -v "$TS" >/dev/null || { echo "tree-sitter-bma/test.sh: tree-sitter CLI not found (cargo install tree-sitter-cli --locked)" >&2; exit 2; }
command -v nvim >/dev/null || { echo "tree-sitter-bma/test.sh: nvim not found (apt-get install neovim)" >&2; exit 2; }
"$TS" generate --abi 14
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$TS" build -o "$tmp/bma.so" . >/dev/null
shopt -s nullglob globstar
files=("$root"/examples/*.bma "$root"/stdlib/*.bma "$root"/tests/fixtures/**/ok/*.bma "$root"/tests/fixtures/check/err/*.bma)
[ ${#files[@]} -gt 0 ] || { echo "no .bma files found" >&2; exit 1; }
# -q prints only files with errors; the exit status is not relied on.
out=$("$TS" parse -q --lib-path "$tmp/bma.so" --lang-name bma "${files[@]}" 2>&1 | grep -E 'ERROR|MISSING' || true)
if [ -n "$out" ]; then echo "$out" >&2; echo "tree-sitter-bma: parse errors above" >&2; exit 1; fi

# Highlighting. Three query files hold the same patterns: queries/highlights.scm for the
# CLI (the first pattern that captures a node wins), helix/runtime/queries/bma/ (Helix:
# first wins, its scope names) and nvim/queries/bma/ (Neovim: the LAST pattern wins, so the
# opposite order). `tree-sitter query` lists every capture with its pattern's index; the
# capture an editor shows at a position is the innermost node's, and among the patterns
# that capture that node the first (CLI, Helix) or the last (Neovim). A query file in the
# wrong order for its editor fails the checks below.
cli=queries/highlights.scm helix=helix/runtime/queries/bma/highlights.scm nvim=nvim/queries/bma/highlights.scm
# Every example with every query set: the query compiles and captures something.
for q in "$cli" "$helix" "$nvim"; do
  "$TS" query -c --lib-path "$tmp/bma.so" --lang-name bma "$q" "$root"/examples/*.bma > "$tmp/all"
  for f in "$root"/examples/*.bma; do
    # The output lists each file's name, then its captures.
    n=$(awk -v f="$f" '$0 == f { on = 1; next } /^[^ ]/ { on = 0 } on && /pattern:/ { n++ } END { print n + 0 }' "$tmp/all")
    [ "$n" -gt 0 ] || { echo "tree-sitter-bma: $q captures nothing in $f" >&2; exit 1; }
  done
done
# A file with what the examples lack: `////`, a pinned parameter, a block comment, a layer
# choice, an expression match, a `use` of one name.
cat > "$tmp/more.bma" <<'BMA'
//// not a doc comment
use lib::blocks::stem
/* block */
experiment t {
  space {
    epochs = 30
    act: layer in {relu, tanh}
    lr: float in 1e-4..1e-1 log
    loss: float in 0.0..1.0
  }
  model { stem dense(8) }
  train { lr = match act { relu | gelu => lr, _ => sqrt(lr) } }
  objective { minimize loss on valid }
}
BMA
# $1 the query file, $2 first|last, $3 the source, $4 line, $5 column (1-based): the capture shown.
captures() {
  "$TS" query -c --lib-path "$tmp/bma.so" --lang-name bma "$1" "$2" |
    sed -nE 's/^ *pattern: *([0-9]+), capture: [0-9]+ - ([^,]+), start: \(([0-9]+), ([0-9]+)\), end: \(([0-9]+), ([0-9]+)\).*/\1 \2 \3 \4 \5 \6/p'
}
shown() {
  awk -v rule="$2" -v r=$(($4 - 1)) -v c=$(($5 - 1)) '
    ($3 < r || ($3 == r && $4 <= c)) && (r < $5 || (r == $5 && c < $6)) {
      s = $3 * 100000 + $4; e = $5 * 100000 + $6
      if (!found || s > bs || (s == bs && e < be) ||
          (s == bs && e == be && ((rule == "first" && $1 < bp) || (rule == "last" && $1 > bp)))) {
        found = 1; bs = s; be = e; bp = $1; name = $2
      }
    }
    END { print name }' "$tmp/caps.$(basename "$1").$(basename "$3")"
}
fail=0
# $1 the source, $2 line, $3 column, $4 what it is, then the capture for the CLI, Helix, Neovim.
expect() {
  local src=$1 line=$2 col=$3 what=$4 q rule want got i=5
  for q in "$cli" "$helix" "$nvim"; do
    rule=first; [ "$q" = "$nvim" ] && rule=last
    want=${!i}; i=$((i + 1))
    [ -e "$tmp/caps.$(basename "$q").$(basename "$src")" ] || captures "$q" "$src" > "$tmp/caps.$(basename "$q").$(basename "$src")"
    [ "$q" = "$nvim" ] && echo "$src $line $col $want" >> "$tmp/nvim-expect"
    got=$(shown "$q" "$rule" "$src" "$line" "$col")
    [ "$got" = "$want" ] || { echo "tree-sitter-bma: $q: $(basename "$src"):$line:$col ($what) is '$got', not '$want'" >&2; fail=1; }
  done
}
# The three files share a name: links with distinct names key the capture cache.
ln -s "$PWD/$cli" "$tmp/cli.scm"; ln -s "$PWD/$helix" "$tmp/helix.scm"; ln -s "$PWD/$nvim" "$tmp/nvim.scm"
cli=$tmp/cli.scm helix=$tmp/helix.scm nvim=$tmp/nvim.scm
d=$root/examples/digits.bma
expect "$d" 1 1 'a line comment' comment comment comment
expect "$d" 6 1 'a doc comment' comment.documentation comment.line.documentation comment.documentation
expect "$d" 4 1 'use' keyword.import keyword.control.import keyword.import
expect "$d" 4 5 'a use path' module namespace module
expect "$d" 4 19 'a name a use brings in' function function function
expect "$d" 7 12 'the experiment' type type type
expect "$d" 11 5 'a parameter' variable.parameter variable.parameter variable.parameter
expect "$d" 16 5 'when' keyword.conditional keyword.control.conditional keyword.conditional
expect "$d" 23 7 'a match arm pattern' constant constant constant
expect "$d" 24 9 'a built-in layer' function.builtin function.builtin function.builtin
expect "$d" 25 24 'a stdlib block call' function.call function function.call
expect "$d" 25 9 'repeat' keyword.repeat keyword.control.repeat keyword.repeat
expect "$d" 39 5 'a train key named like a metric' property variable.other.member property
expect "$d" 43 14 'a metric' constant constant constant
expect "$d" 49 16 'a strategy' constant constant constant
expect "$d" 57 5 'a built-in average' function.call function function.call
m=$tmp/more.bma
expect "$m" 1 1 '//// comment' comment comment comment
expect "$m" 2 18 'the one name a use brings in' function function function
expect "$m" 2 5 'a use path' module namespace module
expect "$m" 3 1 'a block comment' comment comment comment
expect "$m" 6 5 'a pinned parameter' variable.parameter variable.parameter variable.parameter
expect "$m" 7 10 'a type' type.builtin type.builtin type.builtin
expect "$m" 8 29 'log' keyword keyword keyword
expect "$m" 9 5 'a parameter named like a metric' variable.parameter variable.parameter variable.parameter
expect "$m" 11 11 'a block call without arguments' function.call function function.call
expect "$m" 11 16 'a built-in layer' function.builtin function.builtin function.builtin
expect "$m" 12 28 'an expression match arm pattern' constant constant constant
expect "$m" 12 47 'a wildcard' variable.builtin variable.builtin character.special
expect "$m" 12 52 'a built-in function' function.builtin function.builtin function.builtin
expect "$m" 12 57 'a parameter reference' variable variable variable
expect "$m" 13 32 'a split' constant constant constant
# The Neovim column again, from Neovim's own query engine and the parser it loads (0.7 reads
# ABI 14, hence `generate --abi 14`).
timeout 60 nvim --headless --clean --cmd "let g:bma_parser = '$tmp/bma.so' | let g:bma_query = '$PWD/nvim/queries/bma/highlights.scm' | let g:bma_expect = '$tmp/nvim-expect' | let g:bma_out = '$tmp/nvim-out'" \
  -c "luafile $PWD/nvim/check-captures.lua" </dev/null >/dev/null 2>&1 || true
[ "$(cat "$tmp/nvim-out" 2>/dev/null)" = ok ] || { echo "tree-sitter-bma: in Neovim ($(nvim --version | head -1)):" >&2; cat "$tmp/nvim-out" >&2 2>/dev/null; fail=1; }
[ "$fail" = 0 ] || { echo "tree-sitter-bma: highlighting checks failed" >&2; exit 1; }
echo "tree-sitter-bma: ${#files[@]} files parse without ERROR/MISSING; 3 query sets capture in every example and agree at known positions, in Neovim too"
