; bma highlights for Helix (its scope names). In Helix the FIRST pattern that captures a
; node wins, so this file goes from the specific to the general: the built-in layers and
; functions before the generic calls, the names by their place in the tree before the
; `constant` word list and the `variable` fallback. Copy `helix/runtime` into
; `~/.config/helix/` (docs/editors.md). The Neovim file holds the same patterns in the
; opposite order; editors/tree-sitter-bma/test.sh checks the winning capture at known positions.

((call_expr function: (identifier) @function.builtin)
  (#any-of? @function.builtin "exp" "ln" "log2" "log10" "sqrt" "sin" "cos" "tan" "tanh" "abs" "min" "max" "floor" "ceil" "round"))
(call_expr function: (identifier) @function)
((layer_call name: (identifier) @function.builtin)
  (#any-of? @function.builtin "dense" "conv2d" "maxpool" "avgpool" "global_avgpool" "flatten" "reshape"
    "batchnorm" "layernorm" "dropout" "relu" "gelu" "tanh" "sigmoid" "silu" "leaky_relu" "softmax" "add" "concat" "conv_transpose2d" "upsample" "groupnorm" "rmsnorm" "multiply"))
(layer_call name: (identifier) @function)
; A match arm's pattern: `mlp => { ... }`, `adam | sgd => ...`.
(pattern (identifier) @constant)
(field_expr field: (identifier) @variable.other.member)
(on_split (identifier) @constant)
(record_field name: (identifier) @variable.other.member)
(record_assign key: (identifier) @variable.other.member)
(assign key: (identifier) @variable.other.member)
(argument name: (identifier) @variable.other.member)
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
(use_item (identifier) @namespace)
["," ":" "::" "."] @punctuation.delimiter
["(" ")" "[" "]" "{" "}"] @punctuation.bracket
["->" "=>" "==" "!=" "<=" ">=" "<" ">" "+" "-" "*" "/" "%" "^" "=" "|"] @operator
(range_op) @operator
(wildcard) @variable.builtin
(boolean) @constant.builtin.boolean
(string) @string
(number) @constant.numeric
(type_name) @type.builtin
["data" "space" "model" "train" "objective" "search" "average" "report" "trial"] @namespace
(log_modifier) @keyword
["in" "and" "or" "not"] @keyword.operator
"repeat" @keyword.control.repeat
["when" "if" "else" "match"] @keyword.control.conditional
["experiment" "let" "maximize" "minimize" "require" "on" "step" "residual" "parallel"] @keyword
"use" @keyword.control.import
["block" "fn"] @keyword.function
(doc_comment) @comment.line.documentation
(block_comment) @comment
(line_comment) @comment
((identifier) @constant.builtin (#any-of? @constant.builtin "pi" "e"))
((identifier) @constant
  (#any-of? @constant "accuracy" "f1" "precision" "recall" "loss" "mse" "mae" "r2" "latency" "throughput"
    "params" "flops" "train_time" "expressivity"
    "grid" "random" "tpe" "nsga2" "evolution" "subspace" "none" "median" "asha" "hyperband"))
(identifier) @variable
