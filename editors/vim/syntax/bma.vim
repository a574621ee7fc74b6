" Vim syntax file for bma (.bma), following grammar/bma.pest.
if exists('b:current_syntax') | finish | endif

syn keyword bmaKeyword use let
syn keyword bmaDecl block fn experiment nextgroup=bmaDefName skipwhite
syn match bmaDefName '\h\w*' contained
syn keyword bmaConditional when if else match
syn keyword bmaRepeat repeat in
" `parallel = 2` in `search` is a setting, not the statement `parallel(concat) { }`.
syn match bmaStructure '\<\(residual\|parallel\)\>\ze\s*[({]'
syn keyword bmaObjective maximize minimize require
syn keyword bmaLogical and or not
syn match bmaModifier '\<\(log\|step\|on\)\>\ze\%(\s*[^(:= ]\|\s*$\)'
syn match bmaSection '\<\(space\|model\|train\|objective\|search\|average\|report\|trial\)\>\ze\s*{'
syn match bmaSection '\<data\>\ze\s*=[^=>]'
syn keyword bmaType int float bool layer symbol string
syn keyword bmaBoolean true false
" Built-in names as matches, not keywords: a keyword wins over every match, and
" `dropout: float in ...` declares a parameter named like the layer. Not before `:`.
function! s:Names(group, words) abort
  execute 'syn match ' . a:group . ' ''\<\%(' . join(split(a:words), '\|') . '\)\>\ze\%(\s*[^: \t]\|\s*$\)'''
endfunction
call s:Names('bmaLayer', 'dense conv2d maxpool avgpool global_avgpool flatten reshape batchnorm layernorm dropout conv_transpose2d upsample groupnorm rmsnorm multiply')
call s:Names('bmaLayer', 'relu gelu tanh sigmoid silu leaky_relu softmax add concat')
syn keyword bmaMath exp ln log2 log10 sqrt sin cos tan abs min max floor ceil round
syn keyword bmaConstant pi e
call s:Names('bmaMetric', 'accuracy f1 precision recall loss mse mae r2 latency throughput params flops train_time expressivity')
call s:Names('bmaStrategy', 'grid random tpe nsga2 evolution subspace none median asha hyperband')
syn match bmaArgName '\<\h\w*\ze\s*:[^:]' contains=NONE
syn match bmaParamDecl '\<\h\w*\ze\s*:\s*\(\(int\|float\|bool\|layer\|symbol\|string\)\s\+\)\=in\>'
syn match bmaParamDecl '\<\h\w*\ze\s*:\s*\(int\|float\|bool\|layer\|symbol\|string\)\>'
syn match bmaNumber '\<\d[0-9_]*\(\.\d[0-9_]*\)\=\([eE][+-]\=\d\+\)\=\(us\|ms\|min\|s\|h\|k\|M\)\=\>'
syn match bmaOperator '\.\.=\=\|->\|=>\|==\|!=\|<=\|>=\|[-+*/%^<>=|]'
syn region bmaString start=+"+ skip=+\\.+ end=+"\|$+ contains=bmaEscape
syn match bmaEscape '\\.' contained
syn keyword bmaTodo TODO FIXME XXX NOTE contained
syn match bmaLineComment '//.*$' contains=bmaTodo
syn match bmaDocComment '///\([^/].*\)\=$' contains=bmaTodo
syn region bmaBlockComment start='/\*' end='\*/' contains=bmaTodo

hi def link bmaKeyword Keyword
hi def link bmaDecl Keyword
hi def link bmaDefName Function
hi def link bmaConditional Conditional
hi def link bmaRepeat Repeat
hi def link bmaStructure Statement
hi def link bmaObjective Statement
hi def link bmaLogical Operator
hi def link bmaModifier Keyword
hi def link bmaSection Structure
hi def link bmaType Type
hi def link bmaBoolean Boolean
hi def link bmaLayer Function
hi def link bmaMath Function
hi def link bmaConstant Constant
hi def link bmaMetric Constant
hi def link bmaStrategy Constant
hi def link bmaParamDecl Identifier
hi def link bmaArgName Label
hi def link bmaNumber Number
hi def link bmaOperator Operator
hi def link bmaString String
hi def link bmaEscape SpecialChar
hi def link bmaTodo Todo
hi def link bmaLineComment Comment
hi def link bmaDocComment SpecialComment
hi def link bmaBlockComment Comment

let b:current_syntax = 'bma'
