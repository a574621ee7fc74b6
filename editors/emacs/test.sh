#!/bin/sh
# Checks editors/emacs in a headless Emacs (28 or later; Debian: emacs-nox and elpa-eglot):
# bma-mode.el names the same words as editors/vim/syntax/bma.vim, and docs/editors.md's
# Emacs block loads it; then test.el checks indentation, highlighting and `bma lsp` through
# eglot (diagnostics in flymake before and after an edit, hover, go to definition in the
# file and into the stdlib) on a copy of examples/digits.bma. Needs a built bma (BMA,
# default target/debug/bma). Run from the repository root.
set -eu
BMA=${BMA:-target/debug/bma}
command -v emacs >/dev/null || { echo "editors/emacs/test.sh: emacs is not installed (apt-get install emacs-nox elpa-eglot)" >&2; exit 1; }
[ -x "$BMA" ] || { echo "editors/emacs/test.sh: $BMA is not built" >&2; exit 1; }
# The same words as the Vim syntax: every word of a `syn keyword` or `s:Names` line there,
# every quoted word of a defconst list here.
vim_words=$(sed -n -e "s/^syn keyword bma[A-Za-z]* //p" -e "s/^call s:Names('bma[A-Za-z]*', '\(.*\)')$/\1/p" \
  -e "s/^syn match bmaStructure .*\\\\(\(.*\)\\\\)\\\\>.*/\1/p" -e "s/^syn match bmaModifier .*\\\\(\(.*\)\\\\)\\\\>.*/\1/p" \
  -e "s/^syn match bmaSection .*\\\\(\(.*\)\\\\)\\\\>.*/\1/p" -e "s/^syn match bmaSection '\\\\<\([a-z]*\)\\\\>.*/\1/p" \
  editors/vim/syntax/bma.vim | sed -e 's/\\|/ /g' -e 's/ contained//' -e 's/ nextgroup=.*//' | tr ' ' '\n' |
  grep -v -x -e '' -e TODO -e FIXME -e XXX -e NOTE | sort -u)
emacs_words=$(awk '/^\(defconst bma-(keywords|statements|modifiers|sections|types|booleans|layers|math|constants|metrics|strategies)( |$)/ { p = 1 }
  p { print } p && /\)\)$/ { p = 0 }' editors/emacs/bma-mode.el | grep -o '"[a-z_0-9]*"' | tr -d '"' | sort -u)
[ "$(echo "$vim_words" | wc -l)" -gt 80 ] || { echo "editors/emacs/test.sh: read only $(echo "$vim_words" | wc -l) words from the Vim syntax" >&2; exit 1; }
if [ "$vim_words" != "$emacs_words" ]; then
  echo "editors/emacs/test.sh: bma-mode.el and editors/vim/syntax/bma.vim name different words (< Vim, > Emacs):" >&2
  echo "$vim_words" > /tmp/bma-emacs-vim.$$; echo "$emacs_words" > /tmp/bma-emacs-emacs.$$
  diff /tmp/bma-emacs-vim.$$ /tmp/bma-emacs-emacs.$$ >&2 || true
  rm -f /tmp/bma-emacs-vim.$$ /tmp/bma-emacs-emacs.$$
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/cache" "$tmp/spec" && ln -s "$(cd "$(dirname "$BMA")" && pwd)/$(basename "$BMA")" "$tmp/bin/bma"
cp examples/digits.bma "$tmp/spec/digits.bma"
# docs/editors.md's Emacs block, as a user's init file, loads bma-mode.el from here.
awk '/^## Emacs/ { n = 1 } n && /^```elisp$/ { p = 1; next } p && /^```$/ { exit } p' docs/editors.md |
  sed "s|/path/to/bma|$PWD|" > "$tmp/init.el"
grep -q bma-mode "$tmp/init.el" || { echo "editors/emacs/test.sh: docs/editors.md has no Emacs block that loads bma-mode" >&2; exit 1; }
# The stdlib the server writes out for go to definition goes under $XDG_CACHE_HOME/bma.
# timeout: test.el bounds every wait; this bounds Emacs itself.
status=0
PATH="$tmp/bin:$PATH" XDG_CACHE_HOME="$tmp/cache" HOME="$tmp" BMA_TEST_FILE="$tmp/spec/digits.bma" \
  BMA_TEST_OUT="$tmp/verdict" BMA_TEST_DIR="$PWD/editors/emacs" \
  timeout 120 emacs --batch -Q -l "$tmp/init.el" -l "$PWD/editors/emacs/test.el" </dev/null >"$tmp/log" 2>&1 || status=$?
if [ "$status" != 0 ] || [ "$(cat "$tmp/verdict" 2>/dev/null)" != ok ]; then
  echo "editors/emacs/test.sh: failed (emacs exit $status):" >&2
  cat "$tmp/verdict" "$tmp/log" >&2 2>/dev/null || true
  exit 1
fi
echo "editors/emacs: $(emacs --version | head -1), eglot: indentation, highlighting; bma lsp diagnostics, hover, definition ok"
