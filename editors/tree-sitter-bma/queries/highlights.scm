; bma highlights for the tree-sitter CLI (`tree-sitter highlight`) and the editors that read
; a grammar's own queries/ with the CLI's rule, where the FIRST pattern that captures a node
; wins (Helix's rule too): specific first, the `@constant` word list and the `@variable`
; fallback last. Neovim's rule is the opposite: nvim/queries/bma/highlights.scm; Helix's
; scope names: helix/runtime/queries/bma/highlights.scm. editors/tree-sitter-bma/test.sh
; checks the winning capture at known positions in all three.

((call_expr function: (identifier) @function.builtin)
  (#any-of? @function.builtin "exp" "ln" "log2" "log10" "sqrt" "sin" "cos" "tan" "tanh" "abs" "min" "max" "floor" "ceil" "round"))
(call_expr function: (identifier) @function.call)
((layer_call name: (identifier) @function.builtin)
  (#any-of? @function.builtin "dense" "conv2d" "maxpool" "avgpool" "global_avgpool" "flatten" "reshape"
    "batchnorm" "layernorm" "dropout" "relu" "gelu" "tanh" "sigmoid" "silu" "leaky_relu" "softmax" "add" "concat" "conv_transpose2d" "upsample" "groupnorm" "rmsnorm" "multiply"))
(layer_call name: (identifier) @function.call)
; A match arm's pattern: `mlp => { ... }`, `adam | sgd => ...`.
(pattern (identifier) @constant)
(field_expr field: (identifier) @property)
(on_split (identifier) @constant)
(record_field name: (identifier) @property)
(record_assign key: (identifier) @property)
(assign key: (identifier) @property)
(argument name: (identifier) @property)
(repeat_range name: (identifier) @variable)
(objective_name name: (identifier) @variable)
(let_node name: (identifier) @variable)
(let_item name: (identifier) @variable)
; A pinned parameter: `epochs = 30` in `space`.
(const_item name: (identifier) @variable.parameter)
(param_item name: (identifier) @variable.parameter)
(param_decl name: (identifier) @variable.parameter)
(experiment name: (identifier) @type)
(fn_item name: (identifier) @function)
(block_item name: (identifier) @function)
; `use std::blocks::{a, b}`: the path, then the names it brings in.
(use_list (identifier) @function)
(use_item (identifier) @function .)
(use_item (identifier) @module)
["," ":" "::" "."] @punctuation.delimiter
["(" ")" "[" "]" "{" "}"] @punctuation.bracket
["->" "=>" "==" "!=" "<=" ">=" "<" ">" "+" "-" "*" "/" "%" "^" "=" "|"] @operator
(range_op) @operator
(wildcard) @variable.builtin
(boolean) @boolean
(string) @string
(number) @number
(type_name) @type.builtin
["data" "space" "model" "train" "objective" "search" "average" "report" "trial"] @module
(log_modifier) @keyword
["in" "and" "or" "not"] @keyword.operator
"repeat" @keyword.repeat
["when" "if" "else" "match"] @keyword.conditional
["experiment" "let" "maximize" "minimize" "require" "on" "step" "residual" "parallel"] @keyword
"use" @keyword.import
["block" "fn"] @keyword.function
(doc_comment) @comment.documentation
(block_comment) @comment
(line_comment) @comment
((identifier) @constant.builtin (#any-of? @constant.builtin "pi" "e"))
((identifier) @constant
  (#any-of? @constant "accuracy" "f1" "precision" "recall" "loss" "mse" "mae" "r2" "latency" "throughput"
    "params" "flops" "train_time" "expressivity"
    "grid" "random" "tpe" "nsga2" "evolution" "subspace" "none" "median" "asha" "hyperband"))
(identifier) @variable
