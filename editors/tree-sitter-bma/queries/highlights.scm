; bma highlights (Neovim, Helix, Zed). Later patterns win in Neovim, earlier in
; Helix: specific captures on identifiers come before the generic one.

(doc_comment) @comment.documentation
(line_comment) @comment
(block_comment) @comment

["use" "block" "fn" "experiment" "let"] @keyword
["when" "in" "repeat" "match" "if" "else" "residual" "parallel"] @keyword.control
["maximize" "minimize" "require" "on"] @keyword
["and" "or" "not"] @keyword.operator
(log_modifier) @keyword
"step" @keyword
["data" "space" "model" "train" "objective" "search" "average" "report" "trial"] @module

(type_name) @type.builtin
(number) @number
(string) @string
(boolean) @boolean
(wildcard) @variable.builtin

(block_item name: (identifier) @function)
(fn_item name: (identifier) @function)
(experiment name: (identifier) @type)
(param_decl name: (identifier) @variable.parameter)
(param_item name: (identifier) @variable.parameter)
(let_item name: (identifier) @variable)
(let_node name: (identifier) @variable)
(objective_name name: (identifier) @variable)
(repeat_range name: (identifier) @variable)
(argument name: (identifier) @property)
(assign key: (identifier) @property)
(on_split (identifier) @constant)
(field_expr field: (identifier) @property)

((layer_call name: (identifier) @function.builtin)
  (#any-of? @function.builtin "dense" "conv2d" "maxpool" "avgpool" "global_avgpool" "flatten" "reshape"
    "batchnorm" "layernorm" "dropout" "relu" "gelu" "tanh" "sigmoid" "silu" "leaky_relu" "softmax" "add" "concat" "conv_transpose2d" "upsample" "groupnorm" "rmsnorm" "multiply"))
(layer_call name: (identifier) @function.call)
((call_expr function: (identifier) @function.builtin)
  (#any-of? @function.builtin "exp" "ln" "log2" "log10" "sqrt" "sin" "cos" "tan" "tanh" "abs" "min" "max" "floor" "ceil" "round"))
(call_expr function: (identifier) @function.call)
((identifier) @constant.builtin (#any-of? @constant.builtin "pi" "e"))
((identifier) @constant
  (#any-of? @constant "accuracy" "f1" "precision" "recall" "loss" "mse" "mae" "r2" "latency" "throughput"
    "params" "flops" "train_time" "expressivity"
    "grid" "random" "tpe" "nsga2" "evolution" "subspace" "none" "median" "asha" "hyperband"))

(range_op) @operator
["->" "=>" "==" "!=" "<=" ">=" "<" ">" "+" "-" "*" "/" "%" "^" "=" "|"] @operator
["(" ")" "[" "]" "{" "}"] @punctuation.bracket
["," ":" "::" "."] @punctuation.delimiter
