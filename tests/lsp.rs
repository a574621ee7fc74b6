//! Drives `bma lsp` over stdio with JSON-RPC, as an editor would.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use common::bma;
use serde_json::{Value, json};

struct Server {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(env: &[(&str, &std::path::Path)]) -> Server {
        let mut child = bma()
            .arg("lsp")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bma lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                if let Ok(v) = serde_json::from_slice(&body)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        Server { child, stdin, messages: rx }
    }

    fn send(&mut self, v: Value) {
        let body = v.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    /// Writes `bytes` as they are: a frame of the test's own making.
    fn send_raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).expect("write");
        self.stdin.flush().expect("flush");
    }

    /// The next error response: its id and code.
    fn error(&mut self) -> (Value, i64) {
        let m = self.wait(|m| m.get("error").is_some());
        (m["id"].clone(), m.pointer("/error/code").and_then(Value::as_i64).unwrap_or(0))
    }

    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        self.wait(|m| m.get("id") == Some(&json!(id)))
    }

    /// `shutdown` (request `id`, answered without an error), then `exit`: the server ends
    /// with success.
    fn shut_down(&mut self, id: u64) {
        let shut = self.request(id, "shutdown", Value::Null);
        assert!(shut.get("error").is_none(), "{shut}");
        self.notify("exit", Value::Null);
        assert!(self.child.wait().expect("server exits").success());
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// The diagnostics published for `URI`'s text of `version`: a late publish of an older
    /// text (its whole-space checks) may come before them.
    fn published(&mut self, version: i64) -> Value {
        self.wait(|m| {
            m.get("method") == Some(&json!("textDocument/publishDiagnostics"))
                && m.pointer("/params/uri") == Some(&json!(URI))
                && m.pointer("/params/version") == Some(&json!(version))
        })
    }

    fn wait(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let m = self.messages.recv_timeout(Duration::from_secs(120)).expect("the server answers within 120 s");
            if pred(&m) {
                return m;
            }
        }
    }
}

const URI: &str = "file:///tmp/bma-lsp-test/spec.bma";

const BAD: &str = "experiment t {
  space {
    kind: in {mlp, cnn}
    /// Units of the hidden layer.
    when kind == mlp { width: int in {32, 64} }
  }
  objective { minimize widht }
}
";

const GOOD: &str = "use std::blocks::{dense_act}
experiment t {
  data = iris()
  space {
    kind: in {mlp, cnn}
    when kind == mlp {
      /// Units of the hidden layer.
      width: int in {32, 64}
    }
  }
  model {
    match kind {
      mlp => { dense_act(width) }
      cnn => { dense(8) }
    }
    dense(data.classes)
  }
  objective { maximize accuracy }
}
";

#[test]
fn diagnostics_hover_definition_completion() {
    let mut s = Server::start();
    let init = s.request(1, "initialize", json!({ "capabilities": {} }));
    assert_eq!(init.pointer("/result/capabilities/hoverProvider"), Some(&json!(true)));
    s.notify("initialized", json!({}));

    // Diagnostics as you type: an unknown name, with its code and range.
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "bma", "version": 1, "text": BAD } }),
    );
    let published = s.wait(|m| m.get("method") == Some(&json!("textDocument/publishDiagnostics")));
    let diags = published.pointer("/params/diagnostics").and_then(Value::as_array).expect("diagnostics");
    let unknown = diags.iter().find(|d| d["code"] == "unknown_metric").expect("unknown_metric reported");
    assert_eq!(unknown.pointer("/range/start/line"), Some(&json!(6)));
    assert_eq!(unknown.pointer("/range/start/character"), Some(&json!(23)));
    assert!(unknown["message"].as_str().unwrap_or("").contains("did you mean `width`"));

    // Fixing the file clears the diagnostics.
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": GOOD }] }),
    );
    let published = s.published(2);
    let diags = published.pointer("/params/diagnostics").and_then(Value::as_array).expect("diagnostics");
    assert!(diags.iter().all(|d| d["severity"] != 1), "no errors left: {diags:?}");

    // Hover on `width` in the model shows its domain, condition and doc.
    let hover = s.request(
        2,
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 12, "character": 27 } }),
    );
    let text = hover.pointer("/result/contents/value").and_then(Value::as_str).expect("hover text");
    assert!(text.contains("width: int in {32, 64}"), "{text}");
    assert!(text.contains("only exists when `kind == mlp`"), "{text}");
    assert!(text.contains("Units of the hidden layer."), "{text}");

    // Go to definition of `width` lands on its declaration (line 7).
    let def = s.request(
        3,
        "textDocument/definition",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 12, "character": 27 } }),
    );
    assert_eq!(def.pointer("/result/uri"), Some(&json!(URI)));
    assert_eq!(def.pointer("/result/range/start/line"), Some(&json!(7)));

    // Definition of a stdlib block opens the stdlib's text.
    let def = s.request(
        4,
        "textDocument/definition",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 12, "character": 16 } }),
    );
    let target = def.pointer("/result/uri").and_then(Value::as_str).expect("a stdlib location");
    let path = target.strip_prefix("file://").expect("file uri");
    let stdlib = std::fs::read_to_string(path).expect("stdlib written out");
    assert!(stdlib.contains("block dense_act"));

    // Completion offers parameters, layers, metrics, data sources and their settings, and
    // augmentation steps.
    let comp = s.request(
        5,
        "textDocument/completion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 15, "character": 4 } }),
    );
    let labels: Vec<&str> = comp
        .pointer("/result/items")
        .and_then(Value::as_array)
        .expect("items")
        .iter()
        .filter_map(|i| i["label"].as_str())
        .collect();
    // In a model: parameters, layers and blocks, not strategies or metrics.
    for want in ["width", "kind", "conv2d", "dense_act", "relu", "repeat"] {
        assert!(labels.contains(&want), "completion lacks {want}");
    }
    for not in ["accuracy", "tpe", "asha", "images"] {
        assert!(!labels.contains(&not), "completion offers {not} in a model");
    }

    // Formatting: one whole-document edit whose text is `bma fmt`'s output; none once formatted.
    assert_eq!(init.pointer("/result/capabilities/documentFormattingProvider"), Some(&json!(true)));
    let messy = "experiment t {\n  space { x: float in 0.0..1.0 }   // keep me\n objective { minimize x }\n}";
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 3 }, "contentChanges": [{ "text": messy }] }),
    );
    let edits = s.request(
        7,
        "textDocument/formatting",
        json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    let edit = edits.pointer("/result/0").expect("one edit");
    assert_eq!(edit.pointer("/range/end"), Some(&json!({ "line": 3, "character": 1 })));
    let new_text = edit["newText"].as_str().expect("new text");
    let expected = bma::fmt::format(&bma::Source::new("t.bma", messy)).expect("formats");
    assert_eq!(new_text, expected);
    assert!(new_text.contains("// keep me"));
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 4 }, "contentChanges": [{ "text": new_text }] }),
    );
    let edits = s.request(
        8,
        "textDocument/formatting",
        json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    assert_eq!(edits.pointer("/result"), Some(&json!([])));

    s.shut_down(6);
}

/// Runs `bma lsp` on `input` (then the end of input); gives its exit code and stderr.
fn run_on(input: &[u8]) -> (Option<i32>, String) {
    let mut child = bma()
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bma lsp starts");
    let mut stdin = child.stdin.take().expect("stdin");
    // The server may stop reading (and close its end) before all is written.
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().expect("bma lsp ends");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_framing_ends_the_server_with_the_reason_instead_of_aborting() {
    // Only a stream whose framing is lost ends the server. Malformed JSON, a message
    // without Content-Length and an oversize one are answered and the server keeps
    // serving (`bad_messages_get_their_json_rpc_error_and_the_server_keeps_serving`).
    for (input, reason) in [
        (&b"garbage\r\n\r\n"[..], "malformed header \"garbage\""),
        (b"Content-Length: -1\r\n\r\n", "is not a size"),
        (b"Content-Length: 50\r\n\r\n{}", "reading a message of 50 bytes"),
        // lsp-server allocated the declared length first: 100 GB aborted the process. Now the
        // body is skipped unread, and here the stream ends inside it.
        (b"Content-Length: 99999999999\r\n\r\n{}", "skipping a message of 99999999999 bytes"),
    ] {
        let (code, stderr) = run_on(input);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(reason), "want `{reason}` in: {stderr}");
    }
}

#[test]
fn bad_messages_get_their_json_rpc_error_and_the_server_keeps_serving() {
    let mut s = Server::start();
    // Before `initialize`: -32002, and the server stays.
    s.send(json!({ "jsonrpc": "2.0", "id": 1, "method": "textDocument/hover", "params": {} }));
    assert_eq!(s.error(), (json!(1), -32002));
    let init = s.request(2, "initialize", json!({ "capabilities": {} }));
    assert_eq!(init.pointer("/result/capabilities/hoverProvider"), Some(&json!(true)));
    s.notify("initialized", json!({}));
    // Malformed JSON: a parse error.
    s.send_raw(b"Content-Length: 5\r\n\r\n{bad}");
    assert_eq!(s.error(), (Value::Null, -32700));
    // A JSON array, and an object that is neither a request, a notification nor a response.
    s.send_raw(b"Content-Length: 2\r\n\r\n[]");
    assert_eq!(s.error(), (Value::Null, -32600));
    s.send(json!({ "jsonrpc": "2.0", "id": 3 }));
    assert_eq!(s.error(), (json!(3), -32600));
    // A header without Content-Length: nothing to read as its body; the next message is read.
    s.send_raw(b"Content-Type: x\r\n\r\n");
    assert_eq!(s.error(), (Value::Null, -32600));
    // An oversize message: answered, its body skipped without holding it in memory.
    let size = (64 << 20) + 1;
    s.send_raw(format!("Content-Length: {size}\r\n\r\n").as_bytes());
    s.send_raw(&vec![b' '; size]);
    assert_eq!(s.error(), (Value::Null, -32600));
    // An unknown method: -32601, for a document that is open or not.
    s.send(json!({ "jsonrpc": "2.0", "id": 4, "method": "bma/nonsense", "params": {} }));
    assert_eq!(s.error(), (json!(4), -32601));
    // Still serving: diagnostics and hover work.
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "bma", "version": 1, "text": GOOD } }),
    );
    s.wait(|m| m.get("method") == Some(&json!("textDocument/publishDiagnostics")));
    let hover = s.request(
        5,
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 12, "character": 27 } }),
    );
    let text = hover.pointer("/result/contents/value").and_then(Value::as_str).expect("hover text");
    assert!(text.contains("width: int in {32, 64}"), "{text}");
    s.shut_down(6);
}

#[test]
fn a_slow_compilation_does_not_hold_up_requests() {
    // 100 structural parameters of 3 values: seconds of checking in a debug build.
    let params: String = (0..100).map(|i| format!("    p{i}: int in {{1, 2, 3}}\n")).collect();
    let sum: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    let big = format!(
        "experiment big {{\n  data = iris()\n  space {{\n{params}  }}\n  model {{\n    dense({})\n    dense(data.classes)\n  }}\n  objective {{ maximize accuracy }}\n}}\n",
        sum.join(" + ")
    );
    let mut s = Server::start();
    s.request(1, "initialize", json!({ "capabilities": {} }));
    s.notify("initialized", json!({}));
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "bma", "version": 1, "text": big } }),
    );
    // Formatting is answered while the document's space is checked, not after: the
    // compilation is off the request thread, and the whole-space check's diagnostics (its
    // note on the points checked) come later.
    s.send(json!({ "jsonrpc": "2.0", "id": 2, "method": "textDocument/formatting", "params": { "textDocument": { "uri": URI }, "options": {} } }));
    let space_checked = |m: &Value| {
        m.pointer("/params/diagnostics").and_then(Value::as_array).is_some_and(|d| {
            d.iter().any(|d| d["message"].as_str().is_some_and(|t| t.starts_with("checked the shapes")))
        })
    };
    let first = s.wait(|m| m.get("id") == Some(&json!(2)) || space_checked(m));
    assert_eq!(first.get("id"), Some(&json!(2)), "the whole-space diagnostics came first: {first}");
    // Then the diagnostics, and hovers answered from that compilation.
    let published = s.wait(|m| m.get("method") == Some(&json!("textDocument/publishDiagnostics")));
    assert_eq!(published.pointer("/params/uri"), Some(&json!(URI)));
    let hover = s.request(
        3,
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 3, "character": 5 } }),
    );
    let text = hover.pointer("/result/contents/value").and_then(Value::as_str).expect("hover text");
    assert!(text.contains("p0"), "{text}");
    s.shut_down(4);
}

#[test]
fn control_characters_in_a_diagnostic_reach_the_editor_escaped() {
    let mut s = Server::start();
    s.request(1, "initialize", json!({ "capabilities": {} }));
    s.notify("initialized", json!({}));
    // A data path holding an escape sequence: its diagnostic names the path.
    let text = "experiment e {\n  data = csv(\"a\u{1b}[2Jb.csv\")\n  space { w: int in {4, 8} }\n  model { dense(w) dense(data.classes) }\n  objective { maximize accuracy }\n}\n";
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "bma", "version": 1, "text": text } }),
    );
    let published = s.wait(|m| m.get("method") == Some(&json!("textDocument/publishDiagnostics")));
    let diags = published.pointer("/params/diagnostics").and_then(Value::as_array).expect("diagnostics");
    let named = diags.iter().find(|d| d["message"].as_str().is_some_and(|m| m.contains("[2Jb.csv"))).expect("the path");
    let message = named["message"].as_str().unwrap_or("");
    assert!(message.contains("\\u{1b}[2Jb.csv"), "{message}");
    assert!(!message.contains('\u{1b}'), "a raw escape reached the editor: {message:?}");
}

/// A command experiment, written as an editor holds it mid-edit: line 4 ends in an open
/// `{` inside a command string (quotes balanced, so the file still lowers).
const TRIAL: &str = "experiment t {
  space { lr: float in 0.001..0.1 log }
  trial {
    command = [\"python\", \"train.py\", \"--lr\", \"{lr}\", \"--seed\", \"{se\"]
    timeout = 10min
    reports = [loss]
  }
  objective { minimize loss }
}
";

#[test]
fn trial_section_keys_and_placeholders_complete_and_hover() {
    let mut s = Server::start();
    s.request(1, "initialize", json!({ "capabilities": {} }));
    s.notify("initialized", json!({}));
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "bma", "version": 1, "text": TRIAL } }),
    );
    s.wait(|m| m.get("method") == Some(&json!("textDocument/publishDiagnostics")));
    let mut id = 1;
    let mut ask = |s: &mut Server, method: &str, line: usize, character: usize| {
        id += 1;
        s.request(
            id,
            method,
            json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": character } }),
        )
    };
    let items = |v: &Value| -> Vec<(String, i64)> {
        v.pointer("/result/items")
            .and_then(Value::as_array)
            .expect("items")
            .iter()
            .map(|i| (i["label"].as_str().unwrap_or("").to_string(), i["kind"].as_i64().unwrap_or(0)))
            .collect()
    };
    let line4 = TRIAL.lines().nth(3).expect("line 4");

    // In a command string after `{`: the parameters and the built-ins, nothing else.
    let at_se = line4.find("{se").expect("{se") + 3;
    let got = items(&ask(&mut s, "textDocument/completion", 3, at_se));
    let mut labels: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["device", "dir", "lr", "seed", "trial"], "{got:?}");

    // Between the section's settings: its keys (as properties), not layers or strategies.
    let got = items(&ask(&mut s, "textDocument/completion", 4, 2));
    let keys: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(keys, ["command", "cwd", "env", "timeout", "grace", "reports", "devices"], "{got:?}");
    assert!(got.iter().all(|(_, kind)| *kind == 10), "{got:?}");

    // Elsewhere in the file, that place's own list: in `objective`, its keywords.
    let got = items(&ask(&mut s, "textDocument/completion", 7, 14));
    assert!(got.iter().any(|(l, _)| l == "maximize") && !got.iter().any(|(l, _)| l == "devices"), "{got:?}");

    // Hover on a key, on a built-in placeholder, and on a parameter placeholder.
    let hover_text = |v: Value| v.pointer("/result/contents/value").and_then(Value::as_str).unwrap_or("").to_string();
    let text = hover_text(ask(&mut s, "textDocument/hover", 4, 6));
    assert!(text.starts_with("trial setting `timeout`: a trial's time limit"), "{text}");
    let text = hover_text(ask(&mut s, "textDocument/hover", 3, at_se - 1));
    assert!(text.is_empty() || !text.contains("placeholder"), "`{{se` is no built-in yet: {text}");
    let at_lr = line4.find("{lr}").expect("{lr}") + 2;
    let text = hover_text(ask(&mut s, "textDocument/hover", 3, at_lr));
    assert!(text.contains("lr: float in 0.001..0.1 log"), "{text}");
    let fixed = TRIAL.replace("{se\"", "{seed}\"");
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": fixed }] }),
    );
    s.published(2);
    let text = hover_text(ask(&mut s, "textDocument/hover", 3, at_se - 1));
    assert!(text.starts_with("placeholder `{seed}`: the trial's seed"), "{text}");
}

/// Go to definition of a stdlib block: the stdlib is written out under the user's cache
/// folder (`$XDG_CACHE_HOME/bma/`), not into a temporary folder every user shares.
fn stdlib_definition(env: &[(&str, &std::path::Path)]) -> std::path::PathBuf {
    let mut s = Server::start_with(env);
    s.request(1, "initialize", json!({ "capabilities": {} }));
    s.notify("initialized", json!({}));
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "bma", "version": 1, "text": GOOD } }),
    );
    s.wait(|m| m.get("method") == Some(&json!("textDocument/publishDiagnostics")));
    let def = s.request(
        2,
        "textDocument/definition",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 12, "character": 16 } }),
    );
    let target = def.pointer("/result/uri").and_then(Value::as_str).expect("a stdlib location");
    std::path::PathBuf::from(target.strip_prefix("file://").expect("file uri"))
}

#[test]
fn the_stdlib_is_written_to_the_users_cache_folder() {
    let cache = common::temp_dir();
    let path = stdlib_definition(&[("XDG_CACHE_HOME", cache.path())]);
    assert!(path.starts_with(cache.path().join("bma")), "{} is not under $XDG_CACHE_HOME/bma", path.display());
    assert!(std::fs::read_to_string(&path).expect("written").contains("block dense_act"));

    // With XDG_CACHE_HOME empty (as good as unset): ~/.cache/bma.
    let home = common::temp_dir();
    let path = stdlib_definition(&[("HOME", home.path()), ("XDG_CACHE_HOME", std::path::Path::new(""))]);
    assert!(path.starts_with(home.path().join(".cache/bma")), "{} is not under ~/.cache/bma", path.display());
}

/// A clean spec with a name of every kind: a block and its parameters, a fn, an imported
/// block, parameters of `space`, a node, a `repeat` index, `data.classes`, an optimiser and
/// its named arguments, a loss, a strategy, and an experiment named like its dataset.
const SPEC: &str = "use std::blocks::{dense_act}

/// A small block.
block head(units: int, p: float = 0.1) {
  dense(units)
  dropout(p)
}

fn half(x: int) -> int = floor(x / 2)

/// Digits, searched.
experiment digits {
  data = digits()
  space {
    units: int in {8, 16}
    lr: float in 1e-4..3e-2 log
    momentum: float in 0.5..0.99
    depth: int in 1..=3
  }
  model {
    // units in a comment
    let x = flatten
    x -> dense_act(units)
    repeat i in 0..depth {
      head(units: half(units) + i, p: 0.2)
    }
    dense(data.classes)
  }
  train {
    optimizer = sgd(lr: lr, momentum: momentum)
    loss = cross_entropy
    epochs = 2
  }
  objective { maximize accuracy }
  search { strategy = tpe trials = 4 }
}
";

/// The LSP position of the `nth` occurrence (from 0) of `needle` in `text`, `into` bytes
/// into it.
fn pos(text: &str, needle: &str, nth: usize, into: usize) -> Value {
    let at = text.match_indices(needle).nth(nth).map(|(i, _)| i).expect("the needle is in the text") + into;
    let line = text[..at].matches('\n').count();
    let character = at - text[..at].rfind('\n').map_or(0, |i| i + 1);
    json!({ "line": line, "character": character })
}

/// A server with `text` open at [`URI`], its first diagnostics read.
fn open(text: &str) -> (Server, Vec<Value>) {
    let mut s = Server::start();
    s.request(1, "initialize", json!({ "capabilities": {} }));
    s.notify("initialized", json!({}));
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "bma", "version": 1, "text": text } }),
    );
    let published = s.wait(|m| m.get("method") == Some(&json!("textDocument/publishDiagnostics")));
    let diags = published.pointer("/params/diagnostics").and_then(Value::as_array).cloned().unwrap_or_default();
    (s, diags)
}

/// Asks `method` at `position` of [`URI`] (more parameters in `extra`); gives the result.
fn ask(s: &mut Server, id: u64, method: &str, position: Value, extra: Value) -> Value {
    let mut params = json!({ "textDocument": { "uri": URI }, "position": position });
    if let (Some(p), Value::Object(more)) = (params.as_object_mut(), extra) {
        p.extend(more);
    }
    s.request(id, method, params)
}

fn hover_at(s: &mut Server, id: u64, position: Value) -> String {
    let v = ask(s, id, "textDocument/hover", position, Value::Null);
    v.pointer("/result/contents/value").and_then(Value::as_str).unwrap_or("").to_string()
}

fn labels(v: &Value) -> Vec<String> {
    v.pointer("/result/items")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(|i| i["label"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn completion_sent_right_after_a_change_answers_on_that_change() {
    // An editor asks for completion in the same breath as it sends the keystroke, here while
    // the text before is still in its whole-space check: the answer must be of the text with
    // that keystroke, not of the compilation before it (whose line at the cursor is another).
    let (mut s, _) = open(&slow_spec("maximize accuracy"));
    let edited = format!("// a line above\n{}", slow_spec("maximize |"));
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": edited.replace('|', "") }] }),
    );
    let at = pos(&edited, "|", 0, 0);
    let got = ask(&mut s, 100, "textDocument/completion", at.clone(), Value::Null);
    let names = labels(&got);
    assert!(names.iter().any(|l| l == "accuracy") && names.iter().any(|l| l == "f1"), "{names:?}");
    assert!(!names.iter().any(|l| l == "tpe" || l == "dense"), "{names:?}");
    for item in got.pointer("/result/items").and_then(Value::as_array).into_iter().flatten() {
        assert_eq!(item.pointer("/textEdit/range/end"), Some(&at), "{item}");
    }
}

#[test]
fn a_syntax_error_leaves_the_rest_of_the_file_analysed() {
    // `ensemble(top: 5,,` typed on one line at the end; a second mistake in the block.
    let broken = SPEC
        .replace("  search { strategy", "  average { ensemble(top: 5,,\n  search { strategy")
        .replace("  dropout(p)\n", "  dropout(p\n");
    let (mut s, diags) = open(&broken);
    let syntax: Vec<&Value> = diags.iter().filter(|d| d["code"] == "syntax_error").collect();
    assert_eq!(syntax.len(), 2, "both mistakes reported: {diags:?}");
    assert_eq!(syntax[0].pointer("/range/start/line"), Some(&json!(6)), "{diags:?}");
    assert_eq!(syntax[1].pointer("/range/start/line"), pos(&broken, "ensemble(top: 5,,", 0, 0).get("line"));
    assert!(diags.iter().all(|d| d["code"] == "syntax_error"), "nothing that follows from the damage: {diags:?}");

    // Hover and definition on a parameter far above the mistake.
    let text = hover_at(&mut s, 2, pos(&broken, "units: int in", 0, 1));
    assert!(text.contains("units: int in {8, 16}"), "{text}");
    let text = hover_at(&mut s, 3, pos(&broken, "lr: lr", 0, 5));
    assert!(text.contains("lr: float in 1e-4..3e-2 log"), "{text}");
    let def = ask(&mut s, 4, "textDocument/definition", pos(&broken, "0..depth", 0, 4), Value::Null);
    assert_eq!(def.pointer("/result/range/start"), Some(&pos(&broken, "depth: int", 0, 0)));

    // A call half typed in the model: completion there still offers the file's own names.
    let typing = SPEC.replace("    dense(data.classes)\n", "    dense_act(\n    dense(data.classes)\n");
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": typing }] }),
    );
    let published = s.published(2);
    let diags = published.pointer("/params/diagnostics").and_then(Value::as_array).cloned().unwrap_or_default();
    assert!(diags.iter().any(|d| d["code"] == "syntax_error"), "{diags:?}");
    // In the open call: the block's arguments and the values of the file.
    let got = labels(&ask(&mut s, 5, "textDocument/completion", pos(&typing, "dense_act(\n", 0, 10), Value::Null));
    for want in ["act", "units", "depth", "half"] {
        assert!(got.iter().any(|l| l == want), "completion lacks {want}: {got:?}");
    }
    // On the next line of the broken model: the blocks and parameters.
    let got = labels(&ask(&mut s, 7, "textDocument/completion", pos(&typing, "dense(data", 0, 0), Value::Null));
    for want in ["units", "head", "dense_act", "dense"] {
        assert!(got.iter().any(|l| l == want), "completion lacks {want}: {got:?}");
    }
    let text = hover_at(&mut s, 6, pos(&typing, "momentum: momentum", 0, 12));
    assert!(text.contains("momentum: float in 0.5..0.99"), "{text}");
}

#[test]
fn names_resolve_by_scope() {
    let (mut s, diags) = open(SPEC);
    assert!(diags.iter().all(|d| d["severity"] != 1), "{diags:?}");
    let mut id = 1;
    let mut hover = |s: &mut Server, needle: &str, nth: usize, into: usize| {
        id += 1;
        hover_at(s, id, pos(SPEC, needle, nth, into))
    };
    // The dataset in `data = digits()`, not the experiment named `digits`.
    let text = hover(&mut s, "digits()", 0, 1);
    assert!(text.starts_with("dataset digits"), "{text}");
    // Nothing in comments.
    assert_eq!(hover(&mut s, "units in a comment", 0, 1), "");
    // A named argument is the argument; its value is the parameter.
    let text = hover(&mut s, "momentum: momentum", 0, 2);
    assert!(text.starts_with("argument `momentum:` of `sgd`"), "{text}");
    let text = hover(&mut s, "momentum: momentum", 0, 12);
    assert!(text.contains("momentum: float in 0.5..0.99"), "{text}");
    // Block parameters inside their block; the parameter of `space` outside it.
    let text = hover(&mut s, "dense(units)", 0, 7);
    assert!(text.contains("units: int") && text.contains("parameter of block `head`"), "{text}");
    let text = hover(&mut s, "half(units)", 0, 6);
    assert!(text.contains("units: int in {8, 16}"), "{text}");
    let text = hover(&mut s, "head(units: half", 0, 6);
    assert!(text.contains("argument of block `head`"), "{text}");
    // A fn's parameter, a `repeat` index, a node, `data.classes`, catalogue entries.
    let text = hover(&mut s, "floor(x", 0, 6);
    assert!(text.contains("x: int") && text.contains("parameter of fn `half`"), "{text}");
    let text = hover(&mut s, "+ i,", 0, 2);
    assert!(text.contains("repeat i in 0..depth"), "{text}");
    let text = hover(&mut s, "x -> dense_act", 0, 0);
    assert!(text.contains("let x = flatten"), "{text}");
    let text = hover(&mut s, "data.classes", 0, 6);
    assert!(text.starts_with("`data.classes`") && text.contains("here: `10`"), "{text}");
    assert!(hover(&mut s, "sgd(", 0, 1).starts_with("optimizer sgd("));
    assert!(hover(&mut s, "cross_entropy", 0, 1).starts_with("loss cross_entropy"));
    assert!(hover(&mut s, "tpe", 0, 1).starts_with("strategy tpe"));
    assert!(hover(&mut s, "accuracy", 0, 1).starts_with("metric `accuracy`"));
    let text = hover(&mut s, "digits {", 0, 1);
    assert!(text.starts_with("experiment `digits`") && text.contains("Digits, searched."), "{text}");

    // Definitions: a block argument goes to the block's parameter, a fn parameter to the fn's.
    let def = |s: &mut Server, id: u64, needle: &str, into: usize| {
        let v = ask(s, id, "textDocument/definition", pos(SPEC, needle, 0, into), Value::Null);
        v.pointer("/result/range/start").cloned().unwrap_or(Value::Null)
    };
    assert_eq!(def(&mut s, 40, "head(units: half", 6), pos(SPEC, "units: int,", 0, 0));
    assert_eq!(def(&mut s, 41, "floor(x", 6), pos(SPEC, "x: int)", 0, 0));
    assert_eq!(def(&mut s, 42, "+ i,", 2), pos(SPEC, "i in 0", 0, 0));
    assert_eq!(def(&mut s, 43, "x -> dense_act", 0), pos(SPEC, "x = flatten", 0, 0));
    assert_eq!(def(&mut s, 44, "digits()", 1), Value::Null, "a dataset has no definition in the file");
}

#[test]
fn references_rename_highlight_and_symbols() {
    let (mut s, _) = open(SPEC);
    let starts = |v: &Value| -> Vec<Value> {
        v["result"]
            .as_array()
            .map(|a| a.iter().map(|l| l.pointer("/range/start").cloned().unwrap_or_default()).collect())
            .unwrap_or_default()
    };
    // `units` of `space`: its declaration and two uses; not the block's `units`, not the
    // named argument `units:`, not the comment.
    let refs = ask(
        &mut s,
        2,
        "textDocument/references",
        pos(SPEC, "half(units)", 0, 6),
        json!({ "context": { "includeDeclaration": true } }),
    );
    assert_eq!(
        starts(&refs),
        [pos(SPEC, "units: int in", 0, 0), pos(SPEC, "dense_act(units)", 0, 10), pos(SPEC, "half(units)", 0, 5)]
    );
    let refs = ask(
        &mut s,
        3,
        "textDocument/references",
        pos(SPEC, "half(units)", 0, 6),
        json!({ "context": { "includeDeclaration": false } }),
    );
    assert_eq!(starts(&refs).len(), 2);

    // Rename: the same three places.
    let edit = ask(&mut s, 4, "textDocument/rename", pos(SPEC, "units: int in", 0, 1), json!({ "newName": "width" }));
    let edits =
        edit.pointer(&format!("/result/changes/{}", URI.replace('/', "~1"))).and_then(Value::as_array).expect("edits");
    assert_eq!(edits.len(), 3, "{edit}");
    assert!(edits.iter().all(|e| e["newText"] == "width"));
    // The block's parameter, from the named argument: its declaration, its use, the argument.
    let edit = ask(&mut s, 5, "textDocument/rename", pos(SPEC, "head(units: half", 0, 6), json!({ "newName": "n" }));
    let edits =
        edit.pointer(&format!("/result/changes/{}", URI.replace('/', "~1"))).and_then(Value::as_array).expect("edits");
    let mut at: Vec<Value> = edits.iter().map(|e| e.pointer("/range/start").cloned().unwrap_or_default()).collect();
    at.sort_by_key(|p| (p["line"].as_u64(), p["character"].as_u64()));
    assert_eq!(
        at,
        [pos(SPEC, "units: int,", 0, 0), pos(SPEC, "dense(units)", 0, 6), pos(SPEC, "head(units: half", 0, 5)]
    );
    // Refused: a collision, a keyword, a name from another file.
    for (id, needle, into, new) in [
        (6, "units: int in", 1, "lr"),
        (7, "units: int in", 1, "in"),
        (8, "dense_act(units)", 1, "d"),
        (9, "units: int in", 1, "9a"),
    ] {
        let v = ask(&mut s, id, "textDocument/rename", pos(SPEC, needle, 0, into), json!({ "newName": new }));
        assert_eq!(v.pointer("/error/code"), Some(&json!(-32803)), "renaming to {new}: {v}");
    }
    let v = ask(&mut s, 10, "textDocument/prepareRename", pos(SPEC, "depth: int", 0, 1), Value::Null);
    assert_eq!(v.pointer("/result/start"), Some(&pos(SPEC, "depth: int", 0, 0)));

    // Highlight: the declaration as a write, the use as a read.
    let v = ask(&mut s, 11, "textDocument/documentHighlight", pos(SPEC, "0..depth", 0, 4), Value::Null);
    let kinds: Vec<i64> =
        v["result"].as_array().expect("highlights").iter().filter_map(|h| h["kind"].as_i64()).collect();
    assert_eq!(kinds, [3, 2]);

    // The outline: items, an experiment's sections, the parameters of `space`.
    let v = s.request(12, "textDocument/documentSymbol", json!({ "textDocument": { "uri": URI } }));
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|x| x["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let top = &v["result"];
    assert_eq!(names(top), ["std::blocks::dense_act", "head", "half", "digits"]);
    let digits = &top[3];
    assert_eq!(names(&digits["children"]), ["data", "space", "model", "train", "objective", "search"]);
    assert_eq!(names(&digits["children"][1]["children"]), ["units", "lr", "momentum", "depth"]);
    assert_eq!(names(&top[1]["children"]), ["units", "p"]);
}

#[test]
fn completion_follows_the_context() {
    use bma::catalogue::{Concept, DATA_FIELDS};
    // The file as it is while a person types: each case a change and a cursor (`|`).
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        ("strategy = tpe", "strategy = t|", Concept::Strategy.names()),
        ("optimizer = sgd(lr: lr, momentum: momentum)", "optimizer = |", Concept::Optimizer.names()),
        ("loss = cross_entropy", "loss = |", Concept::Loss.names()),
        ("trials = 4 }", "trials = 4 prune = | }", Concept::Pruner.names()),
        ("data = digits()", "data = |", Concept::Dataset.names()),
        ("dense(data.classes)", "dense(data.|)", DATA_FIELDS.iter().map(|f| f.name).collect()),
    ];
    let mut s = Server::start();
    s.request(1, "initialize", json!({ "capabilities": {} }));
    s.notify("initialized", json!({}));
    let mut version = 0;
    let mut set = |s: &mut Server, text: &str| {
        version += 1;
        let method = if version == 1 { "textDocument/didOpen" } else { "textDocument/didChange" };
        let params = if version == 1 {
            json!({ "textDocument": { "uri": URI, "languageId": "bma", "version": 1, "text": text } })
        } else {
            json!({ "textDocument": { "uri": URI, "version": version }, "contentChanges": [{ "text": text }] })
        };
        s.notify(method, params);
        // This text's diagnostics (a late publish of the text before may come first).
        s.published(version);
    };
    let mut id = 10;
    let mut complete = |s: &mut Server, edited: &str| -> Value {
        id += 1;
        let cursor = edited.find('|').expect("a cursor");
        ask(s, id, "textDocument/completion", pos(edited, "|", 0, 0), Value::Null)
            .pointer("/result")
            .cloned()
            .map(|r| {
                // Every item replaces the word typed so far, up to the cursor.
                let at = pos(edited, "|", 0, 0);
                let word =
                    edited[..cursor].chars().rev().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').count();
                for item in r["items"].as_array().into_iter().flatten() {
                    assert_eq!(item.pointer("/textEdit/range/end"), Some(&at), "{item}");
                    let start = item.pointer("/textEdit/range/start/character").and_then(Value::as_u64).unwrap_or(0);
                    assert_eq!(at["character"].as_u64().unwrap_or(0) - start, word as u64, "{item}");
                }
                r
            })
            .unwrap_or(Value::Null)
    };
    for (from, to, want) in cases {
        let edited = SPEC.replace(from, to);
        set(&mut s, &edited.replace('|', ""));
        let got = complete(&mut s, &edited);
        let mut got: Vec<String> = labels(&json!({ "result": got }));
        got.sort();
        let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "after `{to}`");
    }

    // `maximize`: the metrics, not the strategies.
    let edited = SPEC.replace("maximize accuracy", "maximize |");
    set(&mut s, &edited.replace('|', ""));
    let got = labels(&json!({ "result": complete(&mut s, &edited) }));
    assert!(got.iter().any(|l| l == "accuracy") && got.iter().any(|l| l == "f1"), "{got:?}");
    assert!(!got.iter().any(|l| l == "tpe"), "{got:?}");

    // Inside a call, the named arguments not given yet (as snippets), and the values.
    let edited = SPEC.replace("sgd(lr: lr, momentum: momentum)", "sgd(lr: lr, |)");
    set(&mut s, &edited.replace('|', ""));
    let result = complete(&mut s, &edited);
    let args: Vec<&Value> = result["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["detail"] != "in scope" && i["kind"] == 5)
        .collect();
    let names: Vec<&str> = args.iter().filter_map(|i| i["label"].as_str()).collect();
    assert!(names.contains(&"momentum") && !names.contains(&"lr"), "{names:?}");
    let momentum = args.iter().find(|i| i["label"] == "momentum").expect("momentum");
    assert_eq!(momentum.pointer("/textEdit/newText"), Some(&json!("momentum: $0")));
    assert_eq!(momentum["insertTextFormat"], 2);
    // A block's arguments by its parameters.
    let edited = SPEC.replace("head(units: half(units) + i, p: 0.2)", "head(units: 8, |)");
    set(&mut s, &edited.replace('|', ""));
    let got = labels(&json!({ "result": complete(&mut s, &edited) }));
    assert!(got.contains(&"p".to_string()) && got.contains(&"depth".to_string()), "{got:?}");

    // In a model: layers (with snippets for their required arguments), blocks, parameters,
    // nodes and `repeat` indices in scope; each label once; the file's names sort first.
    let edited = SPEC.replace("      head(units:", "      |\n      head(units:");
    set(&mut s, &edited.replace('|', ""));
    let result = complete(&mut s, &edited);
    let items = result["items"].as_array().cloned().unwrap_or_default();
    let got: Vec<&str> = items.iter().filter_map(|i| i["label"].as_str()).collect();
    for want in ["dense", "conv2d", "head", "dense_act", "units", "depth", "x", "i", "repeat"] {
        assert!(got.contains(&want), "lacks {want}: {got:?}");
    }
    assert!(!got.contains(&"tpe") && !got.contains(&"accuracy"), "{got:?}");
    let mut unique = got.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "a label twice: {got:?}");
    let dense = items.iter().find(|i| i["label"] == "dense").expect("dense");
    assert_eq!(dense.pointer("/textEdit/newText"), Some(&json!("dense(${1:units})")));
    let sort =
        |l: &str| items.iter().find(|i| i["label"] == l).and_then(|i| i["sortText"].as_str()).unwrap_or("").to_string();
    assert!(
        sort("units") < sort("dense") && sort("head") < sort("dense"),
        "{} {} {}",
        sort("units"),
        sort("head"),
        sort("dense")
    );

    // In `train`, the keys not set yet; in an experiment, the sections it lacks.
    let edited = SPEC.replace("    epochs = 2\n", "    epochs = 2\n    |\n");
    set(&mut s, &edited.replace('|', ""));
    let got = labels(&json!({ "result": complete(&mut s, &edited) }));
    assert!(got.contains(&"batch".to_string()) && !got.contains(&"epochs".to_string()), "{got:?}");
    let edited = SPEC.replace("  search {", "  |\n  search {");
    set(&mut s, &edited.replace('|', ""));
    let mut got = labels(&json!({ "result": complete(&mut s, &edited) }));
    got.sort();
    assert_eq!(got, ["average", "report", "trial"]);
}

#[test]
fn imported_files_get_their_diagnostics_and_their_changes_recheck_their_importers() {
    let dir = common::temp_dir();
    let root = std::fs::canonicalize(dir.path()).expect("the folder");
    std::fs::create_dir_all(root.join("lib")).expect("lib/");
    let lib = common::write(&root, "lib/blocks.bma", "block b(n: int) {\n  dnse(n)\n}\n");
    let lib_uri = format!("file://{}", lib.display());
    let main_uri = format!("file://{}", root.join("spec.bma").display());
    let main = "use lib::blocks::{b}\n\nexperiment e {\n  data = iris()\n  model {\n    b(8)\n    dense(data.classes)\n  }\n  \
                objective { maximize accuracy }\n}\n";
    let publish_for = |uri: &str| {
        let uri = uri.to_string();
        move |m: &Value| {
            m.get("method") == Some(&json!("textDocument/publishDiagnostics"))
                && m.pointer("/params/uri") == Some(&json!(uri))
        }
    };
    let codes = |m: &Value| -> Vec<String> {
        m.pointer("/params/diagnostics")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|d| d["code"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut s = Server::start();
    s.request(1, "initialize", json!({ "capabilities": {} }));
    s.notify("initialized", json!({}));
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": main_uri, "languageId": "bma", "version": 1, "text": main } }),
    );
    // The mistake in the imported file is published on that file, not on the document.
    let on_lib = s.wait(publish_for(&lib_uri));
    assert_eq!(codes(&on_lib), ["unknown_layer"]);
    let line = on_lib.pointer("/params/diagnostics/0/range/start/line");
    assert_eq!(line, Some(&json!(1)));

    // Opening the library with an unsaved fix: it speaks for itself (clean), and the
    // document that imports it is checked again with the new text.
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": lib_uri, "languageId": "bma", "version": 1, "text": "block b(n: int) {\n  dense(n)\n}\n" } }),
    );
    // The two compilations end in either order.
    let (mut on_lib, mut on_main) = (None, None);
    while on_lib.is_none() || on_main.is_none() {
        let m = s.wait(|m| publish_for(&lib_uri)(m) || publish_for(&main_uri)(m));
        if publish_for(&lib_uri)(&m) { on_lib = Some(m) } else { on_main = Some(m) }
    }
    assert_eq!(on_lib.map(|m| codes(&m)), Some(Vec::new()));
    let on_main = on_main.unwrap_or_default();
    assert!(codes(&on_main).iter().all(|c| c != "unknown_layer"), "{on_main}");

    // A change of the library that breaks its importer (a second parameter) is seen there
    // before it is saved.
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": lib_uri, "version": 2 }, "contentChanges": [{ "text": "block b(n: int, m: int) {\n  dense(n + m)\n}\n" }] }),
    );
    let on_main = s.wait(|m| publish_for(&main_uri)(m) && !codes(m).is_empty());
    assert_eq!(codes(&on_main), ["bad_arguments"], "{on_main}");
    assert_eq!(on_main.pointer("/params/diagnostics/0/range/start/line"), Some(&json!(5)));
}

#[test]
fn did_you_mean_diagnostics_offer_their_quick_fix() {
    let text = BAD.replace("  objective", "  model { dnse(4) }\n  objective");
    let (mut s, diags) = open(&text);
    let codes: Vec<&str> = diags.iter().filter_map(|d| d["code"].as_str()).collect();
    assert!(codes.contains(&"unknown_metric") && codes.contains(&"unknown_layer"), "{codes:?}");
    let whole = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 20, "character": 0 } });
    let v = s.request(
        2,
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": whole, "context": { "diagnostics": diags } }),
    );
    let actions = v["result"].as_array().cloned().unwrap_or_default();
    let titles: Vec<&str> = actions.iter().filter_map(|a| a["title"].as_str()).collect();
    assert_eq!(titles, ["replace `dnse` with `dense`", "replace `widht` with `width`"], "{v}");
    let edit = actions[1].pointer(&format!("/edit/changes/{}/0", URI.replace('/', "~1"))).expect("an edit");
    assert_eq!(edit["newText"], "width");
    assert_eq!(edit.pointer("/range/start"), Some(&pos(&text, "widht", 0, 0)));
    assert_eq!(actions[1]["diagnostics"].as_array().map(Vec::len), Some(1), "the fix names its diagnostic");
    // Only the diagnostics in the range asked about.
    let line = pos(&text, "dnse", 0, 0);
    let v = s.request(
        3,
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": { "start": line, "end": line }, "context": { "diagnostics": [] } }),
    );
    let titles: Vec<String> =
        v["result"].as_array().into_iter().flatten().filter_map(|a| a["title"].as_str().map(str::to_string)).collect();
    assert_eq!(titles, ["replace `dnse` with `dense`"]);
}

#[test]
fn signature_help_and_folding_ranges() {
    let edited = SPEC.replace("sgd(lr: lr, momentum: momentum)", "sgd(lr: lr, momentum: mo)");
    let (mut s, _) = open(&edited);
    let sig = |s: &mut Server, id: u64, needle: &str, into: usize| {
        ask(s, id, "textDocument/signatureHelp", pos(&edited, needle, 0, into), Value::Null)["result"].clone()
    };
    // A catalogue entry: the named argument being written is the active one.
    let v = sig(&mut s, 2, "momentum: mo)", 12);
    let label = v.pointer("/signatures/0/label").and_then(Value::as_str).expect("a label");
    let sgd = bma::catalogue::find(bma::catalogue::OPTIMIZERS, "sgd").expect("sgd");
    let momentum = sgd.sig.args.iter().position(|a| a.name == "momentum").expect("sgd takes momentum");
    assert!(label.starts_with("sgd("), "{label}");
    assert_eq!(v["activeParameter"], json!(momentum), "{v}");
    let range = v.pointer(&format!("/signatures/0/parameters/{momentum}/label")).cloned().expect("a range");
    let (a, b) = (range[0].as_u64().unwrap_or(0) as usize, range[1].as_u64().unwrap_or(0) as usize);
    assert_eq!(&label[a..b], "momentum:");
    // A block: by position.
    let v = sig(&mut s, 3, "half(units) + i, p: 0.2", 0);
    assert_eq!(v.pointer("/signatures/0/label"), Some(&json!("block head(units: int, p: float = 0.1)")));
    assert_eq!(v["activeParameter"], json!(0));
    let v = sig(&mut s, 4, "p: 0.2)", 3);
    assert_eq!(v["activeParameter"], json!(1));
    // A layer in the model; nothing outside a call.
    let v = sig(&mut s, 5, "data.classes)", 0);
    assert_eq!(v.pointer("/signatures/0/label"), Some(&json!("dense(units)")));
    assert_eq!(sig(&mut s, 6, "epochs = 2", 0), Value::Null);

    // Folding: the block, the experiment, each section and model body, the doc comments.
    let v = s.request(7, "textDocument/foldingRange", json!({ "textDocument": { "uri": URI } }));
    let folds: Vec<(u64, u64)> = v["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (f["startLine"].as_u64().unwrap_or(0), f["endLine"].as_u64().unwrap_or(0)))
        .collect();
    let line = |needle: &str| pos(&edited, needle, 0, 0)["line"].as_u64().unwrap_or(0);
    let last = edited.trim_end().matches('\n').count() as u64;
    for want in [
        (line("block head"), line("  dropout(p)") + 1),
        (line("experiment digits"), last),
        (line("  space {"), line("  model {") - 1),
        (line("    repeat i"), line("    dense(data") - 1),
    ] {
        assert!(folds.contains(&want), "no fold {want:?} in {folds:?}");
    }
}

#[test]
fn semantic_tokens_name_what_each_word_is() {
    let (mut s, _) = open(SPEC);
    let init = s.request(2, "initialize", json!({ "capabilities": {} }));
    assert_eq!(init.pointer("/error/code"), Some(&json!(-32600)), "already initialized");
    let v = s.request(3, "textDocument/semanticTokens/full", json!({ "textDocument": { "uri": URI } }));
    let data: Vec<u64> =
        v.pointer("/result/data").and_then(Value::as_array).expect("data").iter().filter_map(Value::as_u64).collect();
    assert_eq!(data.len() % 5, 0);
    // Decoded: (line, character, length) -> type.
    let types =
        ["namespace", "class", "function", "parameter", "variable", "macro", "enumMember", "property", "keyword"];
    let (mut line, mut col) = (0, 0);
    let mut tokens = std::collections::HashMap::new();
    for t in data.chunks(5) {
        if t[0] > 0 {
            col = 0;
        }
        line += t[0];
        col += t[1];
        tokens.insert((line, col), (t[2], types[t[3] as usize]));
    }
    let at = |needle: &str, into: usize| -> Option<(u64, &str)> {
        let p = pos(SPEC, needle, 0, into);
        tokens.get(&(p["line"].as_u64().unwrap_or(0), p["character"].as_u64().unwrap_or(0))).copied()
    };
    assert_eq!(at("experiment digits", 0), Some((10, "keyword")));
    assert_eq!(at("digits {", 0), Some((6, "namespace")));
    assert_eq!(at("model {", 0), Some((5, "keyword")));
    assert_eq!(at("units: int in", 0), Some((5, "parameter")));
    assert_eq!(at("dense(units)", 0), Some((5, "macro")));
    assert_eq!(at("dense(units)", 6), Some((5, "parameter")));
    assert_eq!(at("head(units: half", 0), Some((4, "class")));
    assert_eq!(at("head(units: half", 5), Some((5, "property")));
    assert_eq!(at("half(units)", 0), Some((4, "function")));
    assert_eq!(at("x -> dense_act", 0), Some((1, "variable")));
    assert_eq!(at("tpe", 0), Some((3, "enumMember")));
    assert_eq!(at("epochs", 0), Some((6, "property")));
    assert_eq!(at("units in a comment", 0), None, "nothing in a comment");
}

#[test]
fn range_formatting_lays_out_only_the_items_in_the_range() {
    let messy = "experiment a {\n  space { x: float in 0.0..1.0 }\n objective { minimize x }\n}\n\nexperiment b {\n    space {   y: float in 0.0..1.0 }\n objective {minimize y}\n}\n";
    let (mut s, _) = open(messy);
    let range = json!({ "start": pos(messy, "space {   y", 0, 0), "end": pos(messy, "space {   y", 0, 5) });
    let v = s.request(
        2,
        "textDocument/rangeFormatting",
        json!({ "textDocument": { "uri": URI }, "range": range, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    let edits = v["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(edits.len(), 1, "{v}");
    let edit = &edits[0];
    assert_eq!(edit.pointer("/range/start"), Some(&pos(messy, "experiment b", 0, 0)));
    // Applied, the edit gives experiment `b` as `bma fmt` lays it out, and leaves `a` as it is.
    let line_of = |p: &Value| p["line"].as_u64().unwrap_or(0) as usize;
    let lines: Vec<&str> = messy.lines().collect();
    let (from, to) = (line_of(&edit["range"]["start"]), line_of(&edit["range"]["end"]));
    let end_char = edit.pointer("/range/end/character").and_then(Value::as_u64).unwrap_or(0) as usize;
    let applied =
        format!("{}\n{}{}\n", lines[..from].join("\n"), edit["newText"].as_str().unwrap_or(""), &lines[to][end_char..]);
    let whole = bma::fmt::format(&bma::Source::new("t.bma", messy)).expect("formats");
    assert!(applied.starts_with("experiment a {\n  space { x: float in 0.0..1.0 }\n objective"), "{applied}");
    assert_eq!(applied.split("experiment b").nth(1), whole.split("experiment b").nth(1), "{applied}");
    // A file that does not parse: no edit.
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": "experiment a {" }] }),
    );
    let v = s.request(
        3,
        "textDocument/rangeFormatting",
        json!({ "textDocument": { "uri": URI }, "range": range, "options": {} }),
    );
    assert_eq!(v["result"], json!([]));
}

#[test]
fn a_stdlib_block_used_without_its_use_offers_the_import() {
    let text = SPEC.replace("use std::blocks::{dense_act}\n", "");
    let (mut s, diags) = open(&text);
    let unknown: Vec<&Value> = diags.iter().filter(|d| d["code"] == "unknown_layer").collect();
    assert_eq!(unknown.len(), 1, "{diags:?}");
    let v = s.request(
        2,
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": unknown[0]["range"], "context": { "diagnostics": [unknown[0]] } }),
    );
    let action = v["result"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["title"] == "import `dense_act` from `std::blocks`")
        .cloned()
        .unwrap_or_else(|| panic!("no import offered: {v}"));
    let edit = action.pointer(&format!("/edit/changes/{}/0", URI.replace('/', "~1"))).expect("an edit");
    assert_eq!(edit["newText"], "use std::blocks::{dense_act}\n");
    assert_eq!(edit.pointer("/range/start"), Some(&json!({ "line": 0, "character": 0 })));
    // Applied, the file checks clean.
    let fixed = format!("use std::blocks::{{dense_act}}\n{text}");
    let c = bma::compile(&bma::Source::new("t.bma", fixed));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
}

/// A text whose whole-space check takes seconds in a debug build: 100 structural parameters
/// of 3 values, all read by the model.
/// Edits that the whole-space check does not read (a comment typed in the model, a second
/// objective) keep its result: the first publish of the new text has the check's note
/// already. An edit it reads (a parameter's domain) is checked again: its first publish is the
/// cheap one, the note coming in a second. Holds whatever the timing: the server publishes a
/// deferred check's text without the note first.
#[test]
fn edits_the_whole_space_check_does_not_read_keep_its_result() {
    let text = slow_spec("maximize accuracy");
    let (mut s, _) = open(&text);
    let note = |m: &Value| {
        m.pointer("/params/diagnostics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|d| d["message"].as_str().is_some_and(|m| m.starts_with("checked the shapes")))
    };
    let publish = |m: &Value, v: i64| {
        m.get("method") == Some(&json!("textDocument/publishDiagnostics"))
            && m.pointer("/params/version") == Some(&json!(v))
    };
    s.wait(|m| publish(m, 1) && note(m));
    let edits = [
        (2, text.replace("  model {\n", "  model {\n    // typed in the model\n"), true),
        (3, slow_spec("maximize accuracy\n    minimize latency"), true),
        (
            4,
            slow_spec("maximize accuracy\n    minimize latency").replace("p7: int in {1, 2, 3}", "p7: int in {1, 2}"),
            false,
        ),
    ];
    for (v, edited, kept) in edits {
        s.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": URI, "version": v }, "contentChanges": [{ "text": edited }] }),
        );
        let first = s.wait(|m| publish(m, v));
        assert_eq!(note(&first), kept, "version {v}: {first}");
        if !kept {
            s.wait(|m| publish(m, v) && note(m));
        }
    }
}

fn slow_spec(objective: &str) -> String {
    let params: String = (0..100).map(|i| format!("    p{i}: int in {{1, 2, 3}}\n")).collect();
    let sum: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    format!(
        "experiment big {{\n  data = iris()\n  space {{\n{params}  }}\n  model {{\n    dense({})\n    dense(data.classes)\n  }}\n  objective {{ {objective} }}\n}}\n",
        sum.join(" + ")
    )
}

/// The messages that follow, up to the first `publishDiagnostics` of [`URI`] of `version`
/// and, when `id` is given, the response to `id`: each publish's parameters, and whether the
/// response had come before it.
fn publishes_until(s: &mut Server, version: i64, id: Option<u64>) -> Vec<(Value, bool)> {
    let mut out = Vec::new();
    let (mut answered, mut published) = (id.is_none(), false);
    while !(answered && published) {
        let m = s.wait(|_| true);
        if id.is_some_and(|id| m.get("id") == Some(&json!(id))) {
            answered = true;
        } else if m.get("method") == Some(&json!("textDocument/publishDiagnostics"))
            && m.pointer("/params/uri") == Some(&json!(URI))
        {
            published |= m.pointer("/params/version") == Some(&json!(version));
            out.push((m["params"].clone(), answered));
        }
    }
    out
}

/// A burst of edits sent while a slow text compiles, and a request after them (its answer
/// proves the server has read the whole burst): once it is answered, only the last text's
/// diagnostics are published (nothing of an older text, such as the slow text's whole-space
/// check, comes late); versions never go back; each publish is of the text it names; the last
/// text's diagnostics come. Holds whatever the timing.
#[test]
fn a_burst_of_edits_never_publishes_diagnostics_of_an_older_text() {
    let mut s = Server::start();
    s.request(1, "initialize", json!({ "capabilities": {} }));
    s.notify("initialized", json!({}));
    let text = |v: i64| slow_spec(&format!("maximize m{v}"));
    let mut burst = Vec::new();
    let mut frame = |body: Value| {
        let body = body.to_string();
        burst.extend(format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes());
    };
    for v in 1..=12 {
        let (method, params) = if v == 1 {
            let doc = json!({ "uri": URI, "languageId": "bma", "version": 1, "text": slow_spec("maximize accuracy") });
            ("textDocument/didOpen", json!({ "textDocument": doc }))
        } else {
            let changes = json!([{ "text": text(v) }]);
            (
                "textDocument/didChange",
                json!({ "textDocument": { "uri": URI, "version": v }, "contentChanges": changes }),
            )
        };
        frame(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }
    let formatting = json!({ "textDocument": { "uri": URI }, "options": {} });
    frame(json!({ "jsonrpc": "2.0", "id": 2, "method": "textDocument/formatting", "params": formatting }));
    // One write: the whole burst is queued before the first text has finished compiling.
    s.send_raw(&burst);
    let mut seen = publishes_until(&mut s, 12, Some(2));
    // Then one more text: anything still in flight for an older one would come before it.
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 13 }, "contentChanges": [{ "text": text(13) }] }),
    );
    seen.extend(publishes_until(&mut s, 13, None).into_iter().map(|(p, _)| (p, true)));
    let versions: Vec<i64> = seen.iter().map(|(p, _)| p["version"].as_i64().expect("a version")).collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "published out of order: {versions:?}");
    for (p, after_burst) in &seen {
        let v = p["version"].as_i64().unwrap_or(0);
        assert!(!after_burst || v >= 12, "version {v} published after the server had read version 12: {versions:?}");
        let messages: Vec<&str> =
            p["diagnostics"].as_array().into_iter().flatten().filter_map(|d| d["message"].as_str()).collect();
        let unknown: Vec<&&str> = messages.iter().filter(|m| m.starts_with("unknown metric")).collect();
        if v == 1 {
            assert!(unknown.is_empty(), "version 1 has no unknown metric: {messages:?}");
        } else {
            assert_eq!(unknown.len(), 1, "version {v}: {messages:?}");
            assert!(unknown[0].starts_with(&format!("unknown metric `m{v}`")), "version {v}: {messages:?}");
        }
    }
    assert_eq!(versions.iter().filter(|v| **v == 12).count(), 1, "{versions:?}");
    s.shut_down(3);
}

/// Inlay hints: each model statement's output shape at the representative point (`bma
/// graph`'s), a `match` arm that point does not take at a point that takes it, a repeated
/// statement with its number of runs; only within the requested range.
#[test]
fn inlay_hints_show_each_statements_output_shape() {
    let text = "experiment e {
  data = digits()
  space {
    kind: in {mlp, cnn}
    depth: int in 2..=3
  }
  model {
    match kind {
      mlp => {
        flatten
        repeat depth { dense(32) -> relu }
      }
      cnn => {
        conv2d(4, kernel: 3, padding: valid)
        flatten
      }
    }
    dense(data.classes)
  }
  objective { maximize accuracy }
}
";
    let (mut s, diags) = open(text);
    assert!(diags.iter().all(|d| d["severity"] != json!(1)), "{diags:?}");
    let whole = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 30, "character": 0 } });
    let got = s.request(2, "textDocument/inlayHint", json!({ "textDocument": { "uri": URI }, "range": whole }));
    let hints: Vec<(Value, String)> = got["result"]
        .as_array()
        .expect("a list of hints")
        .iter()
        .map(|h| (h["position"].clone(), h["label"].as_str().unwrap_or("").to_string()))
        .collect();
    let at = |needle: &str, nth: usize| pos(text, needle, nth, needle.len());
    let want = vec![
        (at("flatten", 0), "→ [64]".to_string()),
        (at("dense(32)", 0), "→ [32] (×2)".to_string()),
        (at("-> relu", 0), "→ [32] (×2)".to_string()),
        (at("relu }", 0), "→ [32]".to_string()),
        (at("padding: valid)", 0), "→ [4, 6, 6]".to_string()),
        (at("flatten", 1), "→ [144]".to_string()),
        (at("      }\n    }", 0), "→ [32]".to_string()),
        (at("dense(data.classes)", 0), "→ [10]".to_string()),
    ];
    assert_eq!(hints, want);
    // A range holding only the last statement: only its hint.
    let last = json!({ "start": at("dense(data.classes)", 0), "end": at("dense(data.classes)", 0) });
    let got = s.request(3, "textDocument/inlayHint", json!({ "textDocument": { "uri": URI }, "range": last }));
    assert_eq!(got["result"].as_array().map(Vec::len), Some(1), "{got}");
    assert_eq!(got["result"][0]["label"], json!("→ [10]"));
}

/// An unused import is a warning (tagged unnecessary) whose quick fix removes the name and
/// its comma, or the whole `use` line when it is the only name; applied, the warning is gone.
#[test]
fn an_unused_import_is_reported_and_its_quick_fix_removes_it() {
    let text = "use std::blocks::{dense_act, conv_bn, mlp}
use std::blocks::{res_block}
experiment t {
  data = iris
  model { dense_act(16) mlp(8, 1) dense(data.classes) }
  objective { maximize accuracy }
}
";
    let (mut s, diags) = open(text);
    let unused: Vec<&Value> = diags.iter().filter(|d| d["code"] == json!("unused_import")).collect();
    assert_eq!(unused.len(), 2, "{diags:?}");
    assert_eq!(unused[0]["severity"], json!(2));
    assert_eq!(unused[0]["tags"], json!([1]));
    assert_eq!(unused[0].pointer("/range/start"), Some(&pos(text, "conv_bn", 0, 0)));
    assert_eq!(unused[1].pointer("/range/start"), Some(&pos(text, "res_block", 0, 0)));
    let whole = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 20, "character": 0 } });
    let v = s.request(
        2,
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": whole, "context": { "diagnostics": diags } }),
    );
    let actions = v["result"].as_array().cloned().unwrap_or_default();
    let titles: Vec<&str> = actions.iter().filter_map(|a| a["title"].as_str()).collect();
    assert_eq!(titles, ["remove the unused import `conv_bn`", "remove the unused import `res_block`"], "{v}");
    for a in &actions {
        assert_eq!(a["diagnostics"].as_array().map(Vec::len), Some(1), "the fix names its diagnostic: {a}");
    }
    // Applied (the second first: edits from the end keep the first's offsets), the file has
    // no unused import left and still checks.
    let mut fixed = text.to_string();
    for a in actions.iter().rev() {
        let edit = a.pointer(&format!("/edit/changes/{}/0", URI.replace('/', "~1"))).expect("an edit");
        let at = |p: &str| {
            let line = edit.pointer(&format!("/range/{p}/line")).and_then(Value::as_u64).expect("a line") as usize;
            let ch = edit.pointer(&format!("/range/{p}/character")).and_then(Value::as_u64).expect("a column") as usize;
            fixed.split_inclusive('\n').take(line).map(str::len).sum::<usize>() + ch
        };
        let (start, end) = (at("start"), at("end"));
        fixed.replace_range(start..end, edit["newText"].as_str().expect("new text"));
    }
    assert_eq!(
        fixed,
        "use std::blocks::{dense_act, mlp}
experiment t {
  data = iris
  model { dense_act(16) mlp(8, 1) dense(data.classes) }
  objective { maximize accuracy }
}
"
    );
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": fixed }] }),
    );
    let published = s.wait(|m| m.pointer("/params/version") == Some(&json!(2)));
    assert_eq!(published.pointer("/params/diagnostics"), Some(&json!([])), "{published}");
}
