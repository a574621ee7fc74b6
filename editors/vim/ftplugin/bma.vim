" bma filetype settings: comments, indentation, `bma fmt` as the formatter.
if exists('b:did_ftplugin') | finish | endif
let b:did_ftplugin = 1
setlocal commentstring=//\ %s
setlocal comments=s1:/*,mb:*,ex:*/,:///,://
setlocal expandtab shiftwidth=2 softtabstop=2 tabstop=2
setlocal formatoptions-=t formatoptions+=croql
setlocal formatprg=bma\ fmt\ -
let b:undo_ftplugin = 'setlocal commentstring< comments< expandtab< shiftwidth< softtabstop< tabstop< formatoptions< formatprg<'
