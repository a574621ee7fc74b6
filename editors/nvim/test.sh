#!/bin/sh
# Checks `bma lsp` in a real client: a headless Neovim (0.7 or later; Debian: neovim) loads
# editors/nvim/bma.lua, the configuration docs/editors.md shows, opens a copy of
# examples/digits.bma and checks diagnostics, hover and go to definition (test.lua). Needs
# nvim and a built bma (BMA, default target/debug/bma). Run from the repository root.
set -eu
BMA=${BMA:-target/debug/bma}
command -v nvim >/dev/null || { echo "editors/nvim/test.sh: nvim is not installed (apt-get install neovim)" >&2; exit 1; }
[ -x "$BMA" ] || { echo "editors/nvim/test.sh: $BMA is not built" >&2; exit 1; }
# docs/editors.md shows bma.lua as it is.
awk '/^## Neovim/ { n = 1 } n && /^```lua$/ { p = 1; next } p && /^```$/ { exit } p' docs/editors.md |
  cmp -s - editors/nvim/bma.lua || { echo "editors/nvim/test.sh: docs/editors.md's first Neovim block is not editors/nvim/bma.lua" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/cache" "$tmp/spec" && ln -s "$(cd "$(dirname "$BMA")" && pwd)/$(basename "$BMA")" "$tmp/bin/bma"
cp examples/digits.bma "$tmp/spec/digits.bma"
# The stdlib the server writes out for go to definition goes under $XDG_CACHE_HOME/bma.
# timeout: test.lua bounds every wait; this bounds Neovim itself.
status=0
PATH="$tmp/bin:$PATH" XDG_CACHE_HOME="$tmp/cache" HOME="$tmp" timeout 120 nvim --headless --clean \
  --cmd "let g:bma_file = '$tmp/spec/digits.bma' | let g:bma_out = '$tmp/verdict' | let g:bma_rtp = '$PWD/editors/nvim/'" \
  -c "luafile $PWD/editors/nvim/test.lua" </dev/null >"$tmp/log" 2>&1 || status=$?
if [ "$status" != 0 ] || [ "$(cat "$tmp/verdict" 2>/dev/null)" != ok ]; then
  echo "editors/nvim/test.sh: failed (nvim exit $status):" >&2
  cat "$tmp/verdict" "$tmp/log" >&2 2>/dev/null || true
  exit 1
fi
echo "editors/nvim: bma lsp in headless $(nvim --version | head -1): diagnostics, hover, definition ok"
