" bma filetype settings: comments and indentation.
if exists('b:did_ftplugin') | finish | endif
let b:did_ftplugin = 1
setlocal commentstring=//\ %s
setlocal comments=s1:/*,mb:*,ex:*/,:///,://
setlocal expandtab shiftwidth=2 softtabstop=2 tabstop=2
setlocal formatoptions-=t formatoptions+=croql
" gq formats through `bma fmt -` (stdin to stdout; on a parse error the text is kept).
if executable('bma')
  setlocal formatprg=bma\ fmt\ -
endif
let b:undo_ftplugin = 'setlocal commentstring< comments< expandtab< shiftwidth< softtabstop< tabstop< formatoptions< formatprg<'
