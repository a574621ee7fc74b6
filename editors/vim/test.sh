#!/bin/sh
# Checks editors/vim in a headless Vim: `gq` over a whole file gives `bma fmt`'s layout, and
# `gq` over a file that does not parse, or over part of an item, leaves the lines as they
# are (no diagnostic pasted into the buffer); `=` (indent/bma.vim) over every example,
# stdlib module and ok fixture, its indentation removed first, gives the file back. Needs vim (Debian: vim-nox) and a built bma
# (BMA, default target/debug/bma). Run from the repository root.
set -eu
BMA=${BMA:-target/debug/bma}
command -v vim >/dev/null || { echo "editors/vim/test.sh: vim is not installed (apt-get install vim-nox)" >&2; exit 1; }
[ -x "$BMA" ] || { echo "editors/vim/test.sh: $BMA is not built" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" && ln -s "$(cd "$(dirname "$BMA")" && pwd)/$(basename "$BMA")" "$tmp/bin/bma"
PATH="$tmp/bin:$PATH"
# gq with the ftplugin: $1 the file, $2 the range command.
gq() {
  vim -Nu NONE -i NONE -es --cmd "set rtp^=$PWD/editors/vim" -c 'filetype plugin on' -c "edit $1" \
    -c 'set filetype=bma' -c "silent! $2" -c 'wq' </dev/null >/dev/null 2>&1 || true
}
printf 'experiment t {\n  space { x: float in 0.0..1.0 }   // keep me\n objective { minimize x }\n}\n' > "$tmp/messy.bma"
bma fmt - < "$tmp/messy.bma" > "$tmp/want.bma"
gq "$tmp/messy.bma" 'normal! gggqG'
cmp "$tmp/messy.bma" "$tmp/want.bma" || { echo "gq over the file is not bma fmt's layout" >&2; diff "$tmp/messy.bma" "$tmp/want.bma" >&2; exit 1; }
printf 'experiment t {\n  space { x: float in 0.0..1.0 \n objective { minimize x }\n}\n' > "$tmp/broken.bma"
cp "$tmp/broken.bma" "$tmp/broken.orig"
gq "$tmp/broken.bma" 'normal! gggqG'
cmp "$tmp/broken.bma" "$tmp/broken.orig" || { echo "gq changed a file that does not parse:" >&2; cat "$tmp/broken.bma" >&2; exit 1; }
cp "$tmp/want.bma" "$tmp/part.bma"
gq "$tmp/part.bma" 'normal! 2Ggqj'
cmp "$tmp/part.bma" "$tmp/want.bma" || { echo "gq over part of an item changed it:" >&2; cat "$tmp/part.bma" >&2; exit 1; }
for f in examples/*.bma stdlib/*.bma tests/fixtures/check/ok/*.bma; do
  cp "$f" "$tmp/indent.bma"
  vim -Nu NONE -i NONE -es --cmd "set rtp^=$PWD/editors/vim" -c 'filetype plugin indent on' -c "edit $tmp/indent.bma" \
    -c 'set filetype=bma' -c 'silent! %s/^\s\+//' -c 'silent! normal! gg=G' -c 'wq' </dev/null >/dev/null 2>&1 || true
  cmp -s "$tmp/indent.bma" "$f" || { echo "= does not give $f back:" >&2; diff "$tmp/indent.bma" "$f" | head -20 >&2; exit 1; }
done
# Highlighting (synID): `log` at the end of a line, a parameter named like a layer, a
# setting named like a statement.
syn_at() {
  vim -Nu NONE -i NONE -es --cmd "set rtp^=$PWD/editors/vim" -c 'syntax on' -c "edit $1" -c 'set filetype=bma' \
    -c "call writefile([synIDattr(synID($2, $3, 1), 'name')], '$tmp/syn')" -c 'qa!' </dev/null >/dev/null 2>&1 || true
  cat "$tmp/syn"
}
printf 'experiment t {\n  space {\n    lr: float in 1e-4..3e-2 log\n    dropout: float in 0.0..0.5\n  }\n  model { dense(8) dropout(dropout) }\n  search { parallel = 2 }\n}\n' > "$tmp/syn.bma"
check_syn() {
  got=$(syn_at "$tmp/syn.bma" "$1" "$2")
  [ "$got" = "$3" ] || { echo "line $1 column $2 of syn.bma is highlighted as '$got', not $3" >&2; exit 1; }
}
check_syn 3 30 bmaModifier
check_syn 4 5 bmaParamDecl
check_syn 6 20 bmaLayer
check_syn 7 12 ""
echo "editors/vim: gq, = and highlighting ok"
