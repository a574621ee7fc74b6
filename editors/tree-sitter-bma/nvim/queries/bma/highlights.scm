; bma highlights for Neovim (0.8+ capture names). In Neovim the LATER pattern wins when two
; capture the same node, so this file goes from the general to the specific: the fallback
; `@variable` and the `@constant` word list first, the names by their place in the tree
; after them, the built-in layers and functions after the generic calls.
; The Helix file (../../../helix/runtime/queries/bma/highlights.scm) and the tree-sitter
; CLI's (../../../queries/highlights.scm) hold the same patterns in the opposite order.
; editors/tree-sitter-bma/test.sh checks the winning capture at known positions.

(identifier) @variable

((identifier) @constant
  (#any-of? @constant "accuracy" "f1" "precision" "recall" "loss" "mse" "mae" "r2" "latency" "throughput"
    "params" "flops" "train_time" "expressivity"
    "grid" "random" "tpe" "nsga2" "evolution" "subspace" "none" "median" "asha" "hyperband"))
((identifier) @constant.builtin (#any-of? @constant.builtin "pi" "e"))

(line_comment) @comment
(block_comment) @comment
(doc_comment) @comment.documentation

["block" "fn"] @keyword.function
"use" @keyword.import
["experiment" "let" "maximize" "minimize" "require" "on" "step" "residual" "parallel"] @keyword
["when" "if" "else" "match"] @keyword.conditional
"repeat" @keyword.repeat
["in" "and" "or" "not"] @keyword.operator
(log_modifier) @keyword
["data" "space" "model" "train" "objective" "search" "average" "report" "trial"] @module

(type_name) @type.builtin
(number) @number
(string) @string
(boolean) @boolean
(wildcard) @character.special

(range_op) @operator
["->" "=>" "==" "!=" "<=" ">=" "<" ">" "+" "-" "*" "/" "%" "^" "=" "|"] @operator
["(" ")" "[" "]" "{" "}"] @punctuation.bracket
["," ":" "::" "."] @punctuation.delimiter

; `use std::blocks::{a, b}`: the path, then the names it brings in.
(use_item (identifier) @module)
(use_item (identifier) @function .)
(use_list (identifier) @function)

(block_item name: (identifier) @function)
(fn_item name: (identifier) @function)
(experiment name: (identifier) @type)
(param_decl name: (identifier) @variable.parameter)
(param_item name: (identifier) @variable.parameter)
; A pinned parameter: `epochs = 30` in `space`.
(const_item name: (identifier) @variable.parameter)
(let_item name: (identifier) @variable)
(let_node name: (identifier) @variable)
(objective_name name: (identifier) @variable)
(repeat_range name: (identifier) @variable)
(argument name: (identifier) @property)
(assign key: (identifier) @property)
(record_assign key: (identifier) @property)
(record_field name: (identifier) @property)
(on_split (identifier) @constant)
(field_expr field: (identifier) @property)
; A match arm's pattern: `mlp => { ... }`, `adam | sgd => ...`.
(pattern (identifier) @constant)

(layer_call name: (identifier) @function.call)
((layer_call name: (identifier) @function.builtin)
  (#any-of? @function.builtin "dense" "conv2d" "maxpool" "avgpool" "global_avgpool" "flatten" "reshape"
    "batchnorm" "layernorm" "dropout" "relu" "gelu" "tanh" "sigmoid" "silu" "leaky_relu" "softmax" "add" "concat" "conv_transpose2d" "upsample" "groupnorm" "rmsnorm" "multiply"))
(call_expr function: (identifier) @function.call)
((call_expr function: (identifier) @function.builtin)
  (#any-of? @function.builtin "exp" "ln" "log2" "log10" "sqrt" "sin" "cos" "tan" "tanh" "abs" "min" "max" "floor" "ceil" "round"))
