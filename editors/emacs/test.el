;;; test.el --- editors/emacs/test.sh's checks, in a headless Emacs -*- lexical-binding: t -*-

;; Run by editors/emacs/test.sh: `emacs --batch -Q -l editors/emacs/test.el' with
;; BMA_TEST_FILE (a copy of examples/digits.bma), BMA_TEST_OUT (where the verdict goes) and
;; BMA_TEST_DIR (editors/emacs). Loads bma-mode.el and eglot (Debian's elpa-eglot through
;; package.el), and checks: indentation of every example, stdlib module and ok fixture
;; (their indentation removed, `indent-region' gives them back); highlighting of a few
;; words; then `bma lsp' through eglot: diagnostics reach flymake, hover and definition of a
;; parameter, definition into the stdlib, and an edit that misspells a layer gets a flymake
;; error on its line. Every wait is bounded (20 s).
;;
;; Batch Emacs has no command loop: nothing runs `post-command-hook', and idle timers never
;; fire (Emacs is never idle). `bma-test--typed' does what the command loop does after a
;; command and once the user stops typing: it runs `post-command-hook', then each idle
;; timer (eglot sends its didChange and flymake starts from them).

(require 'package)
;; -Q leaves the site-lisp folders out of `load-path', so package.el does not see Debian's
;; elpa-eglot there by itself.
(when (file-directory-p "/usr/share/emacs/site-lisp/elpa")
  (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa"))
(package-initialize)
(require 'eglot)
(require 'flymake)
(require 'xref)
(add-to-list 'load-path (getenv "BMA_TEST_DIR"))
(require 'bma-mode)

(defvar bma-test--failures nil)
(defun bma-test--fail (fmt &rest args)
  (push (apply #'format fmt args) bma-test--failures))

(defun bma-test--wait (seconds pred)
  "Process output until PRED holds or SECONDS pass; PRED's value."
  (let ((deadline (+ (float-time) seconds)) (result nil))
    (while (and (not (setq result (funcall pred))) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    result))

(defun bma-test--typed ()
  "What the command loop does after a command, then once the user is idle."
  (run-hooks 'post-command-hook)
  (dolist (timer (copy-sequence timer-idle-list))
    ;; `timer-event-handler' takes the timer off the list (and runs it only if it is there).
    (when (memq timer timer-idle-list)
      (timer-event-handler timer))))

(defun bma-test--goto (line column)
  "Move to LINE (1-based) and COLUMN (0-based)."
  (goto-char (point-min))
  (forward-line (1- line))
  (move-to-column column))

;; Indentation: every example, stdlib module and ok fixture, flattened, comes back.
(defun bma-test--indentation ()
  (let ((files (append (file-expand-wildcards "examples/*.bma")
                       (file-expand-wildcards "stdlib/*.bma")
                       (file-expand-wildcards "tests/fixtures/check/ok/*.bma"))))
    (when (< (length files) 10) (bma-test--fail "only %d files to indent" (length files)))
    (dolist (f files)
      (with-temp-buffer
        (insert-file-contents f)
        (let ((want (buffer-string)) (inhibit-message t))
          (bma-mode)
          (goto-char (point-min))
          (while (re-search-forward "^[ \t]+" nil t) (replace-match ""))
          (indent-region (point-min) (point-max))
          (unless (equal (buffer-string) want)
            (let ((a (split-string want "\n")) (b (split-string (buffer-string) "\n")) (n 1))
              (while (and a (equal (car a) (car b))) (setq a (cdr a) b (cdr b) n (1+ n)))
              (bma-test--fail "indent-region does not give %s back: line %d is %S, not %S"
                              f n (car b) (car a)))))))))

;; Highlighting: the face at the start of the first WORD after the text BEFORE.
(defun bma-test--face (text before word)
  (with-temp-buffer
    (insert text)
    (bma-mode)
    (font-lock-ensure)
    (goto-char (point-min))
    (search-forward before)
    (search-forward word)
    (get-text-property (match-beginning 0) 'face)))

(defun bma-test--highlighting ()
  (let ((text (concat "/// doc\nexperiment t {\n  space {\n    lr: float in 1e-4..3e-2 log\n"
                      "    dropout: float in 0.0..0.5\n  }\n  model { dense(8) dropout(dropout) }\n"
                      "  search { parallel = 2 }  // parallel\n}\n")))
    (dolist (want `(("" "doc" font-lock-doc-face)
                    ("" "experiment" font-lock-keyword-face)
                    ("experiment " "t" font-lock-function-name-face)
                    ("" "space" font-lock-type-face)
                    ("3e-2 " "log" font-lock-keyword-face)
                    ("log\n" "dropout" font-lock-variable-name-face)
                    ("model { " "dense" font-lock-builtin-face)
                    ("dense(8) " "dropout" font-lock-builtin-face)
                    ("search { " "parallel" nil)
                    ("= 2 } " "// parallel" font-lock-comment-delimiter-face)
                    ("// p" "arallel" font-lock-comment-face)))
      (let ((got (bma-test--face text (nth 0 want) (nth 1 want))))
        (unless (equal got (nth 2 want))
          (bma-test--fail "`%s' after %S is highlighted as %S, not %S"
                          (nth 1 want) (nth 0 want) got (nth 2 want)))))))

;; `bma lsp' through eglot.
(defvar bma-test--published 0)
(advice-add 'eglot-handle-notification :before
            (lambda (_server method &rest _)
              (when (eq method 'textDocument/publishDiagnostics)
                (setq bma-test--published (1+ bma-test--published)))))

(defun bma-test--flymake-errors (&optional line)
  "Flymake's errors in the buffer (on LINE, 1-based, when given)."
  (seq-filter (lambda (d)
                (and (eq (flymake-diagnostic-type d) 'eglot-error)
                     (or (null line)
                         (= line (line-number-at-pos (flymake-diagnostic-beg d))))))
              (flymake-diagnostics)))

(defun bma-test--definition ()
  "The file and line (1-based) of the definition at point, through eglot's xref backend."
  (let* ((id (xref-backend-identifier-at-point 'eglot))
         (items (and id (xref-backend-definitions 'eglot id)))
         (loc (and items (xref-item-location (car items)))))
    (and loc (list (xref-location-group loc) (xref-location-line loc)))))

(defun bma-test--lsp ()
  (let ((file (getenv "BMA_TEST_FILE")))
    (find-file file)
    (unless (eq major-mode 'bma-mode) (error "%s opened in %s, not bma-mode" file major-mode))
    ;; docs/editors.md's `eglot-ensure' connects after the command that opened the file.
    (bma-test--typed)
    (unless (bma-test--wait 20 (lambda () (eglot-managed-p)))
      (error "eglot did not manage the buffer in 20 s"))
    (bma-test--typed)
    (unless (bma-test--wait 20 (lambda () (> bma-test--published 0)))
      (error "no diagnostics published for the example in 20 s"))
    (bma-test--typed)
    (unless (bma-test--wait 20 (lambda () (memq 'eglot-flymake-backend
                                                (flymake-reporting-backends))))
      (error "eglot's diagnostics did not reach flymake in 20 s"))
    (when (bma-test--flymake-errors)
      (bma-test--fail "examples/digits.bma has errors: %S"
                      (mapcar #'flymake-diagnostic-text (bma-test--flymake-errors))))
    ;; Hover on `depth' in `repeat depth {' (line 25): its domain.
    (bma-test--goto 25 15)
    (let* ((hover (jsonrpc-request (eglot--current-server-or-lose) :textDocument/hover
                                   (eglot--TextDocumentPositionParams)))
           (contents (plist-get hover :contents))
           (text (and contents (eglot--hover-info contents))))
      (unless (and text (string-match-p (regexp-quote "depth: int in 1..=3") text))
        (bma-test--fail "hover on depth: %S" hover)))
    ;; Definition of `depth': its declaration on line 12 of the same file.
    (bma-test--goto 25 15)
    (let ((def (bma-test--definition)))
      (unless (and def (file-equal-p (nth 0 def) file) (= (nth 1 def) 12))
        (bma-test--fail "definition of depth: %S" def)))
    ;; Definition of `dense_act': the stdlib's text, written under the cache folder.
    (bma-test--goto 25 23)
    (let* ((def (bma-test--definition))
           (text (and def (file-readable-p (nth 0 def))
                      (with-temp-buffer (insert-file-contents (nth 0 def)) (buffer-string)))))
      (unless (and text (string-match-p "block dense_act" text))
        (bma-test--fail "definition of dense_act: %S" def)))
    ;; An edit: `flatten' misspelled on line 24 gets a flymake error there.
    (bma-test--goto 24 0)
    (unless (search-forward "flatten" (line-end-position) t)
      (error "line 24 of the example has no `flatten'"))
    (replace-match "flaten")
    (bma-test--typed)
    (unless (bma-test--wait
             20 (lambda ()
                  (bma-test--typed)
                  (seq-find (lambda (d) (string-match-p "flaten" (flymake-diagnostic-text d)))
                            (bma-test--flymake-errors 24))))
      (bma-test--fail "no flymake error on line 24 for `flaten' in 20 s: %S\nthe last events:\n%s"
                      (mapcar (lambda (d) (list (line-number-at-pos (flymake-diagnostic-beg d))
                                                (flymake-diagnostic-text d)))
                              (flymake-diagnostics))
                      (with-current-buffer (jsonrpc--events-buffer (eglot--current-server-or-lose))
                        (buffer-substring (max (point-min) (- (point-max) 2000)) (point-max)))))
    (set-buffer-modified-p nil)
    (eglot-shutdown (eglot--current-server-or-lose))))

(let ((out (getenv "BMA_TEST_OUT")))
  (condition-case err
      (progn (bma-test--indentation)
             (bma-test--highlighting)
             (bma-test--lsp))
    (error (bma-test--fail "%s" (error-message-string err))))
  (with-temp-file out
    (insert (if bma-test--failures
                (mapconcat #'identity (reverse bma-test--failures) "\n")
              "ok")
            "\n"))
  (kill-emacs (if bma-test--failures 1 0)))
