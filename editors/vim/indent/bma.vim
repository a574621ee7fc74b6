" Vim indent file for bma (.bma): `bma fmt`'s layout, two spaces per open `{`, `(` or `[`
" (comments and strings do not count); a line starting with a closer is one level out.
if exists('b:did_indent') | finish | endif
let b:did_indent = 1
setlocal indentexpr=BmaIndent(v:lnum)
setlocal indentkeys=0{,0},0),0],!^F,o,O
setlocal nolisp nosmartindent nocindent
let b:undo_indent = 'setlocal indentexpr< indentkeys< lisp< smartindent< cindent<'

if exists('*BmaIndent') | finish | endif

" The brackets a line opens minus those it closes, outside strings and `//` comments.
function! s:Balance(line) abort
  let l:depth = 0
  let l:in_string = 0
  let l:i = 0
  let l:n = strlen(a:line)
  while l:i < l:n
    let l:c = a:line[l:i]
    if l:in_string
      if l:c ==# '\'
        let l:i += 1
      elseif l:c ==# '"'
        let l:in_string = 0
      endif
    elseif l:c ==# '"'
      let l:in_string = 1
    elseif l:c ==# '/' && a:line[l:i + 1] ==# '/'
      break
    elseif l:c =~# '[{(\[]'
      let l:depth += 1
    elseif l:c =~# '[})\]]'
      let l:depth -= 1
    endif
    let l:i += 1
  endwhile
  return l:depth
endfunction

let s:ends_assign = '\%([^=!<>]\|^\)=\s*\%(//.*\)\=$'
let s:starts_operator = '^\s*\%([-+*/%^]\%([^>/*]\|$\)\|and\>\|or\>\)'

" Whether line `lnum` continues an expression begun above it (`fn f() =` then its body).
function! s:Continues(lnum) abort
  let l:above = prevnonblank(a:lnum - 1)
  return getline(a:lnum) =~# s:starts_operator || (l:above > 0 && getline(l:above) =~# s:ends_assign)
endfunction

function! BmaIndent(lnum) abort
  let l:prev = prevnonblank(a:lnum - 1)
  if l:prev == 0
    return 0
  endif
  " An expression continued on the next lines: one level in, operators lined up.
  if getline(l:prev) =~# s:ends_assign
    return indent(l:prev) + shiftwidth()
  endif
  if getline(a:lnum) =~# s:starts_operator
    return indent(l:prev)
  endif
  " After such an expression, as after the line that began it.
  let l:guard = 0
  while s:Continues(l:prev) && l:guard < 200
    let l:prev = prevnonblank(l:prev - 1)
    let l:guard += 1
  endwhile
  let l:prevline = getline(l:prev)
  let l:ind = indent(l:prev)
  " The previous line opened more than it closed: one level in (its leading closers were
  " already counted in its own indent).
  let l:lead = matchstr(l:prevline, '^\s*[})\]]*')
  let l:closers = strlen(substitute(l:lead, '\s', '', 'g'))
  let l:ind += shiftwidth() * (s:Balance(l:prevline) + l:closers > 0 && l:prevline !~# s:ends_assign ? 1 : 0)
  " This line starts with closers: out by as many.
  let l:this = matchstr(getline(a:lnum), '^\s*[})\]]*')
  let l:ind -= shiftwidth() * strlen(substitute(l:this, '\s', '', 'g'))
  return l:ind < 0 ? 0 : l:ind
endfunction
