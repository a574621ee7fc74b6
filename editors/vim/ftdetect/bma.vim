" .bma files: declarative automatic model searches.
autocmd BufRead,BufNewFile *.bma setfiletype bma
