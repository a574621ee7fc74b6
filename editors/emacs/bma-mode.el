;;; bma-mode.el --- Major mode for bma search specifications (.bma) -*- lexical-binding: t -*-

;;; Commentary:

;; Highlighting from the word lists of editors/vim/syntax/bma.vim (editors/emacs/test.sh
;; checks that both name the same words), `//' and `/* */' comments, `///' doc comments,
;; indentation in `bma fmt''s layout (two spaces per open bracket, a continued expression
;; one level in: editors/vim/indent/bma.vim's rules), and `bma lsp' as eglot's server.
;; docs/editors.md shows how to load it; editors/emacs/test.sh runs it in a headless Emacs.

;;; Code:

(defgroup bma nil "Major mode for bma search specifications." :group 'languages)

(defcustom bma-indent-offset 2 "Columns per indentation level." :type 'integer)

(defcustom bma-program "bma" "The bma executable that eglot starts as `bma lsp'."
  :type 'string)

;; The words, grouped as in editors/vim/syntax/bma.vim.
(defconst bma-keywords
  '("use" "let" "block" "fn" "experiment" "when" "if" "else" "match" "repeat" "in"
    "maximize" "minimize" "require" "and" "or" "not"))
(defconst bma-statements '("residual" "parallel"))
(defconst bma-modifiers '("log" "step" "on"))
(defconst bma-sections
  '("space" "model" "train" "objective" "search" "average" "report" "trial" "data"))
(defconst bma-types '("int" "float" "bool" "layer" "symbol" "string"))
(defconst bma-booleans '("true" "false"))
(defconst bma-layers
  '("dense" "conv2d" "maxpool" "avgpool" "global_avgpool" "flatten" "reshape" "batchnorm"
    "layernorm" "dropout" "conv_transpose2d" "upsample" "groupnorm" "rmsnorm" "multiply"
    "relu" "gelu" "tanh" "sigmoid" "silu" "leaky_relu" "softmax" "add" "concat"))
(defconst bma-math
  '("exp" "ln" "log2" "log10" "sqrt" "sin" "cos" "tan" "abs" "min" "max" "floor" "ceil"
    "round"))
(defconst bma-constants '("pi" "e"))
(defconst bma-metrics
  '("accuracy" "f1" "precision" "recall" "loss" "mse" "mae" "r2" "latency" "throughput"
    "params" "flops" "train_time" "expressivity"))
(defconst bma-strategies
  '("grid" "random" "tpe" "nsga2" "evolution" "subspace" "none" "median" "asha"
    "hyperband"))

(defun bma--words (words) (concat "\\_<" (regexp-opt words t) "\\_>"))

;; A name not followed by `:' (`dropout: float in ...' declares a parameter named like the
;; layer; `momentum: 0.9' is a named argument).
(defun bma--names (words) (concat (bma--words words) "\\(?:[ \t]*[^: \t\n]\\|[ \t]*$\\)"))

(defconst bma-font-lock-keywords
  `(("///\\(?:[^/\n].*\\)?$" 0 font-lock-doc-face t)
    (,(concat "\\_<\\(?:block\\|fn\\|experiment\\)[ \t]+\\(\\_<\\(?:\\sw\\|\\s_\\)+\\)")
     1 font-lock-function-name-face)
    ;; A parameter's declaration: `name: in {..}', `name: int in ..', `name: float'.
    (,(concat "\\_<\\([A-Za-z_][A-Za-z0-9_]*\\)[ \t]*:[ \t]*\\(?:"
              (regexp-opt bma-types) "\\_>\\|in\\_>\\)")
     1 font-lock-variable-name-face)
    (,(concat (bma--words bma-statements) "[ \t]*[({]") 1 font-lock-keyword-face)
    (,(concat (bma--words bma-modifiers) "\\(?:[ \t]*[^(:= \t\n]\\|[ \t]*$\\)")
     1 font-lock-keyword-face)
    (,(concat (bma--words (remove "data" bma-sections)) "[ \t]*{") 1 font-lock-type-face)
    ("\\_<\\(data\\)[ \t]*=[^=>]" 1 font-lock-type-face)
    (,(bma--words bma-keywords) . font-lock-keyword-face)
    (,(bma--words bma-types) . font-lock-type-face)
    (,(bma--words bma-booleans) . font-lock-constant-face)
    (,(bma--names bma-layers) 1 font-lock-builtin-face)
    (,(bma--words bma-math) . font-lock-builtin-face)
    (,(bma--words bma-constants) . font-lock-constant-face)
    (,(bma--names bma-metrics) 1 font-lock-constant-face)
    (,(bma--names bma-strategies) 1 font-lock-constant-face))
  "Highlighting for `bma-mode'.")

(defvar bma-mode-syntax-table
  (let ((table (make-syntax-table)))
    (modify-syntax-entry ?/ ". 124b" table)
    (modify-syntax-entry ?* ". 23" table)
    (modify-syntax-entry ?\n "> b" table)
    (modify-syntax-entry ?_ "_" table)
    (modify-syntax-entry ?\" "\"" table)
    (modify-syntax-entry ?\\ "\\" table)
    (dolist (c '(?+ ?- ?% ?^ ?< ?> ?= ?| ?! ?. ?, ?:)) (modify-syntax-entry c "." table))
    table)
  "Syntax table for `bma-mode'.")

;; Indentation: editors/vim/indent/bma.vim's rules.
(defconst bma--ends-assign "\\(?:[^=!<>]\\|^\\)=[ \t]*\\(?://.*\\)?$"
  "A line that ends with `=' (not `==' or `<='): the expression goes on below.")
(defconst bma--starts-operator
  "^[ \t]*\\(?:[-+*/%^]\\(?:[^>/*]\\|$\\)\\|and\\_>\\|or\\_>\\)"
  "A line that starts with a binary operator: it continues the line above.")

(defun bma--line (&optional n) (save-excursion (forward-line (or n 0))
                                               (buffer-substring-no-properties
                                                (line-beginning-position) (line-end-position))))

(defun bma--prev-nonblank ()
  "Move to the nearest non-blank line above; nil at the top."
  (let (found)
    (while (and (not found) (zerop (forward-line -1)))
      (unless (looking-at-p "[ \t]*$") (setq found t)))
    found))

(defun bma--continues ()
  "Whether the current line continues an expression begun above it."
  (or (string-match-p bma--starts-operator (bma--line))
      (save-excursion (and (bma--prev-nonblank) (string-match-p bma--ends-assign (bma--line))))))

(defun bma--balance (line)
  "The brackets LINE opens minus those it closes, outside strings and `//' comments."
  (let ((depth 0) (in-string nil) (i 0) (n (length line)) (stop nil))
    (while (and (< i n) (not stop))
      (let ((c (aref line i)))
        (cond (in-string (cond ((eq c ?\\) (setq i (1+ i))) ((eq c ?\") (setq in-string nil))))
              ((eq c ?\") (setq in-string t))
              ((and (eq c ?/) (< (1+ i) n) (eq (aref line (1+ i)) ?/)) (setq stop t))
              ((memq c '(?\{ ?\( ?\[)) (setq depth (1+ depth)))
              ((memq c '(?\} ?\) ?\])) (setq depth (1- depth)))))
      (setq i (1+ i)))
    depth))

(defun bma--leading-closers (line)
  (string-match "^[ \t]*\\([])}]*\\)" line)
  (length (match-string 1 line)))

(defun bma-indent-column ()
  "The column the current line indents to."
  (save-excursion
    (beginning-of-line)
    (let ((this (bma--line)))
      (if (not (bma--prev-nonblank))
          0
        (let ((prev (bma--line)))
          (cond
           ((string-match-p bma--ends-assign prev) (+ (current-indentation) bma-indent-offset))
           ((string-match-p bma--starts-operator this) (current-indentation))
           (t
            ;; After a continued expression, as after the line that began it.
            (let ((guard 0))
              (while (and (bma--continues) (< guard 200) (bma--prev-nonblank))
                (setq guard (1+ guard))))
            (let* ((prev (bma--line))
                   (ind (current-indentation)))
              (when (and (> (+ (bma--balance prev) (bma--leading-closers prev)) 0)
                         (not (string-match-p bma--ends-assign prev)))
                (setq ind (+ ind bma-indent-offset)))
              (max 0 (- ind (* bma-indent-offset (bma--leading-closers this))))))))))))

(defun bma-indent-line ()
  "Indent the current line in `bma fmt''s layout."
  (interactive)
  (let ((column (bma-indent-column))
        (offset (- (current-column) (current-indentation))))
    (indent-line-to column)
    (when (> offset 0) (move-to-column (+ column offset)))))

;;;###autoload
(define-derived-mode bma-mode prog-mode "bma"
  "Major mode for bma search specifications (.bma files)."
  :syntax-table bma-mode-syntax-table
  (setq-local comment-start "// ")
  (setq-local comment-start-skip "//+[ \t]*")
  (setq-local comment-end "")
  (setq-local indent-tabs-mode nil)
  (setq-local indent-line-function #'bma-indent-line)
  (setq-local electric-indent-chars (append '(?\} ?\) ?\]) electric-indent-chars))
  (setq-local font-lock-defaults '(bma-font-lock-keywords)))

;;;###autoload
(add-to-list 'auto-mode-alist '("\\.bma\\'" . bma-mode))

(with-eval-after-load 'eglot
  (defvar eglot-server-programs)
  ;; A function, so that `bma-program' is read when the server starts.
  (add-to-list 'eglot-server-programs
               '(bma-mode . (lambda (&optional _interactive) (list bma-program "lsp")))))

(provide 'bma-mode)
;;; bma-mode.el ends here
