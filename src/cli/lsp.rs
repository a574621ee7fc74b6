//! `bma lsp`: the language server over stdio.
//!
//! Diagnostics as you type (the same `compile` as `bma check`), hover, go to
//! definition (into the stdlib too, written out to a cache folder), completion,
//! formatting (`bma fmt`'s layout).
//! Messages and the connection come from `lsp-server`, plain JSON inside. The stdio framing is
//! our own: lsp-server's allocates whatever `Content-Length` a header declares before reading,
//! so one corrupt header aborted the process; here a message is at most [`MAX_MESSAGE`] bytes
//! and a framing error ends the server with the reason.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;

use lsp_server::{Connection, Message, Notification, Request, Response};
use serde_json::{Value, json};

use bma::diagnostic::{Diagnostic, Severity};
use bma::ide::{self, CompletionKind};
use bma::source::{FileId, Source, Span};

/// The largest message the server reads (a whole document is sent on every change).
const MAX_MESSAGE: usize = 64 << 20;

/// Reads one message's body: the headers up to the empty line, then `Content-Length` bytes.
/// `None` at the end of the input.
fn read_frame(input: &mut impl BufRead) -> Result<Option<Vec<u8>>, String> {
    let mut size = None;
    let mut line = String::new();
    loop {
        line.clear();
        // A header is a short line; more than this without a line end is not one.
        let n = input.by_ref().take(4096).read_line(&mut line).map_err(|e| format!("reading a header: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        let Some(header) = line.strip_suffix("\r\n") else {
            return Err(format!("malformed header {line:?}"));
        };
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(format!("malformed header {header:?}"));
        };
        if name.trim().eq_ignore_ascii_case("Content-Length") {
            let n: usize =
                value.trim().parse().map_err(|_| format!("Content-Length {:?} is not a size", value.trim()))?;
            if n > MAX_MESSAGE {
                return Err(format!("a message of {n} bytes; at most {MAX_MESSAGE} are read"));
            }
            size = Some(n);
        }
    }
    let size = size.ok_or("a message without Content-Length")?;
    let mut body = vec![0; size];
    input.read_exact(&mut body).map_err(|e| format!("reading a message of {size} bytes: {e}"))?;
    Ok(Some(body))
}

/// A connection over stdin and stdout, with a reader and a writer thread; the reader ends with
/// the input, at `exit`, or with the reason the input could not be read.
type Io = (thread::JoinHandle<Result<(), String>>, thread::JoinHandle<Result<(), String>>);

fn stdio() -> (Connection, Io) {
    let (server, client) = Connection::memory();
    let Connection { sender: to_server, receiver: from_server } = client;
    let reader = thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        while let Some(body) = read_frame(&mut input)? {
            let msg: Message = serde_json::from_slice(&body).map_err(|e| format!("malformed message: {e}"))?;
            let exit = matches!(&msg, Message::Notification(n) if n.method == "exit");
            if to_server.send(msg).is_err() || exit {
                break;
            }
        }
        Ok(())
    });
    let writer = thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for msg in from_server {
            msg.write(&mut out).map_err(|e| format!("writing a message: {e}"))?;
        }
        Ok(())
    });
    (server, (reader, writer))
}

pub fn lsp() -> ExitCode {
    let (connection, (reader, writer)) = stdio();
    let capabilities = json!({
        "textDocumentSync": 1,
        "hoverProvider": true,
        "definitionProvider": true,
        "documentFormattingProvider": true,
        "completionProvider": { "triggerCharacters": ["."] },
    });
    let result = connection.initialize(capabilities).map_err(|e| e.to_string()).and_then(|_| serve(&connection));
    drop(connection);
    let joined =
        |h: thread::JoinHandle<Result<(), String>>| h.join().unwrap_or_else(|_| Err("a thread panicked".into()));
    // The reader's reason first: a bad input also disconnects the server.
    match joined(reader).and(result).and(joined(writer)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(format!("language server: {e}"), super::INTERNAL),
    }
}

struct State {
    docs: HashMap<String, String>,
}

fn serve(conn: &Connection) -> Result<(), String> {
    let mut state = State { docs: HashMap::new() };
    for msg in &conn.receiver {
        match msg {
            Message::Request(req) => {
                if conn.handle_shutdown(&req).map_err(|e| e.to_string())? {
                    return Ok(());
                }
                let resp = handle_request(&state, &req);
                conn.sender.send(Message::Response(resp)).map_err(|e| e.to_string())?;
            }
            Message::Notification(n) => {
                if let Some((uri, diags)) = handle_notification(&mut state, &n) {
                    let params = json!({ "uri": uri, "diagnostics": diags });
                    let note = Notification::new("textDocument/publishDiagnostics".into(), params);
                    conn.sender.send(Message::Notification(note)).map_err(|e| e.to_string())?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

fn handle_notification(state: &mut State, n: &Notification) -> Option<(String, Vec<Value>)> {
    let uri = n.params.pointer("/textDocument/uri")?.as_str()?.to_string();
    match n.method.as_str() {
        "textDocument/didOpen" => {
            let text = n.params.pointer("/textDocument/text")?.as_str()?.to_string();
            state.docs.insert(uri.clone(), text);
        }
        "textDocument/didChange" => {
            let changes = n.params.get("contentChanges")?.as_array()?;
            let text = changes.last()?.get("text")?.as_str()?.to_string();
            state.docs.insert(uri.clone(), text);
        }
        "textDocument/didClose" => {
            state.docs.remove(&uri);
            return Some((uri, Vec::new()));
        }
        _ => return None,
    }
    let compiled = compile(&uri, state.docs.get(&uri)?);
    let diags = compiled
        .diagnostics
        .iter()
        .filter(|d| d.primary.span.file == FileId(0))
        .map(|d| to_lsp(&compiled, d, &uri))
        .collect();
    Some((uri, diags))
}

fn compile(uri: &str, text: &str) -> bma::Compiled {
    let source = match uri_to_path(uri) {
        Some(path) => Source::from_path(&path, text),
        None => Source::new(uri, text),
    };
    bma::compile(&source)
}

fn to_lsp(c: &bma::Compiled, d: &Diagnostic, uri: &str) -> Value {
    let severity = match d.severity {
        Severity::Error => 1,
        Severity::Warning => 2,
        Severity::Note => 3,
    };
    let related: Vec<Value> = d
        .secondary
        .iter()
        .filter_map(|l| Some(json!({ "location": { "uri": span_uri(c, l.span, uri)?, "range": range(c, l.span) }, "message": l.text })))
        .collect();
    let mut message = d.message.clone();
    if !d.primary.text.is_empty() {
        message.push_str(&format!("\n{}", d.primary.text));
    }
    if let Some(h) = &d.help {
        message.push_str(&format!("\nhelp: {h}"));
    }
    json!({
        "range": range(c, d.primary.span),
        "severity": severity,
        "code": d.code.as_str(),
        "source": "bma",
        "message": message,
        "relatedInformation": related,
    })
}

/// An LSP position: line and UTF-16 column.
fn position(text: &str, offset: u32) -> Value {
    let offset = (offset as usize).min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count();
    let col: usize = before.rsplit('\n').next().map_or(0, |l| l.encode_utf16().count());
    json!({ "line": line, "character": col })
}

fn range(c: &bma::Compiled, span: Span) -> Value {
    let text = c.sources.get(span.file).map_or("", |s| s.text.as_str());
    json!({ "start": position(text, span.start), "end": position(text, span.end) })
}

/// The byte offset of an LSP position.
fn offset(text: &str, line: usize, character: usize) -> u32 {
    let mut start = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i == line {
            let mut units = 0;
            for (b, ch) in l.char_indices() {
                if units >= character {
                    return (start + b) as u32;
                }
                units += ch.len_utf16();
            }
            return (start + l.trim_end_matches('\n').len()) as u32;
        }
        start += l.len();
    }
    text.len() as u32
}

fn span_uri(c: &bma::Compiled, span: Span, root_uri: &str) -> Option<String> {
    if span.file == FileId(0) {
        return Some(root_uri.to_string());
    }
    let source = c.sources.get(span.file)?;
    match &source.path {
        Some(p) => Some(path_to_uri(p)),
        None => {
            // The stdlib lives in the binary: write it out so the editor can open it.
            let dir = std::env::temp_dir().join("bma-stdlib");
            std::fs::create_dir_all(&dir).ok()?;
            let path = dir.join(format!("{}.bma", source.name.replace("::", "_")));
            if std::fs::read_to_string(&path).ok().as_deref() != Some(source.text.as_str()) {
                std::fs::write(&path, &source.text).ok()?;
            }
            Some(path_to_uri(&path))
        }
    }
}

fn handle_request(state: &State, req: &Request) -> Response {
    let uri = req.params.pointer("/textDocument/uri").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(text) = state.docs.get(&uri) else {
        return Response::new_ok(req.id.clone(), Value::Null);
    };
    let line = req.params.pointer("/position/line").and_then(Value::as_u64).unwrap_or(0) as usize;
    let character = req.params.pointer("/position/character").and_then(Value::as_u64).unwrap_or(0) as usize;
    if req.method == "textDocument/formatting" {
        return Response::new_ok(req.id.clone(), formatting(text));
    }
    let at = offset(text, line, character);
    let c = compile(&uri, text);
    let result = match req.method.as_str() {
        "textDocument/hover" => match ide::hover(&c, FileId(0), at) {
            Some((span, md)) => json!({ "contents": { "kind": "markdown", "value": md }, "range": range(&c, span) }),
            None => Value::Null,
        },
        "textDocument/definition" => match ide::definition(&c, FileId(0), at) {
            Some(span) => match span_uri(&c, span, &uri) {
                Some(target) => json!({ "uri": target, "range": range(&c, span) }),
                None => Value::Null,
            },
            None => Value::Null,
        },
        "textDocument/completion" => {
            let items: Vec<Value> = ide::completions(&c, FileId(0), at)
                .into_iter()
                .map(|item| {
                    let kind = match item.kind {
                        CompletionKind::Layer | CompletionKind::Block => 3,
                        CompletionKind::Parameter => 6,
                        CompletionKind::Metric => 12,
                        CompletionKind::Strategy | CompletionKind::Pruner => 20,
                        CompletionKind::Keyword => 14,
                        CompletionKind::Function => 3,
                    };
                    json!({ "label": item.label, "kind": kind, "detail": item.detail })
                })
                .collect();
            json!({ "isIncomplete": false, "items": items })
        }
        other => return Response::new_err(req.id.clone(), -32601, format!("method not supported: {other}")),
    };
    Response::new_ok(req.id.clone(), result)
}

/// One edit replacing the whole document with its canonical layout; no edit when
/// it is already formatted or does not parse (its diagnostics say why), or when the
/// formatter's own invariants (same tree, same comments) would not hold.
fn formatting(text: &str) -> Value {
    let source = bma::Source::new("<document>", text);
    let Ok(formatted) = bma::fmt::format(&source) else { return json!([]) };
    if formatted == text {
        return json!([]);
    }
    let (Ok(a), Ok(b)) = (bma::syntax::parse(FileId(0), text), bma::syntax::parse(FileId(0), &formatted)) else {
        return json!([]);
    };
    if !bma::fmt::same_tree(&a, &b) || bma::fmt::comments(text) != bma::fmt::comments(&formatted) {
        return json!([]);
    }
    let lines = text.split('\n').count() - 1;
    let last = text.rsplit('\n').next().unwrap_or("").encode_utf16().count();
    json!([{
        "range": { "start": { "line": 0, "character": 0 }, "end": { "line": lines, "character": last } },
        "newText": formatted,
    }])
}

fn uri_to_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok().map(PathBuf::from)
}

fn path_to_uri(path: &Path) -> String {
    let abs =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut s = String::from("file://");
    for b in abs.display().to_string().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}
