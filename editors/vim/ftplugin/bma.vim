" bma filetype settings: comments and indentation.
if exists('b:did_ftplugin') | finish | endif
let b:did_ftplugin = 1
setlocal commentstring=//\ %s
setlocal comments=s1:/*,mb:*,ex:*/,:///,://
setlocal expandtab shiftwidth=2 softtabstop=2 tabstop=2
setlocal formatoptions-=t formatoptions+=croql
" gq formats through `bma fmt -` (stdin to stdout) with a formatexpr, not formatprg: a
" filter pastes what the program prints on failure (its diagnostic) into the buffer. Here
" the lines change only when `bma fmt` succeeds; a range that is not a whole item (which
" cannot parse alone) or a file with a syntax error is left as it is, with a message.
if executable('bma')
  setlocal formatexpr=BmaFormatExpr()
endif
let b:undo_ftplugin = 'setlocal commentstring< comments< expandtab< shiftwidth< softtabstop< tabstop< formatoptions< formatexpr<'

if exists('*BmaFormatExpr') | finish | endif
function! BmaFormatExpr() abort
  " While typing (auto-wrap of comments), Vim's own formatting.
  if mode() =~# '[iR]'
    return 1
  endif
  let l:first = v:lnum
  let l:last = v:lnum + v:count - 1
  let l:out = systemlist('bma fmt -', getline(l:first, l:last))
  if v:shell_error != 0
    echohl WarningMsg
    echomsg 'bma fmt: lines ' . l:first . '-' . l:last . ' left as they are (not a whole item, or a syntax error: see the diagnostics)'
    echohl None
    return 0
  endif
  let l:old = l:last - l:first + 1
  let l:new = len(l:out)
  if l:new == 0 || l:out ==# getline(l:first, l:last)
    return 0
  endif
  call setline(l:first, l:out[: min([l:new, l:old]) - 1])
  if l:new < l:old
    silent execute (l:first + l:new) . ',' . l:last . 'delete _'
  elseif l:new > l:old
    call append(l:last, l:out[l:old :])
  endif
  return 0
endfunction
