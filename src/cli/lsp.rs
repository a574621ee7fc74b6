//! `bma lsp`: the language server over stdio.
//!
//! Diagnostics as you type (the same `compile` as `bma check`, which analyses a file around
//! its syntax errors), hover, go to definition (into the stdlib too, written out to the
//! user's cache folder, `$XDG_CACHE_HOME/bma/stdlib-VERSION/` or `~/.cache/bma/...`),
//! references, rename, document highlight and symbols (`ide`'s resolved names), completion,
//! signature help, quick fixes, folding, semantic tokens, inlay hints (each model statement's
//! output shape: `ide::inlay_hints`), formatting (`bma fmt`'s layout; a range: the items it
//! touches).
//!
//! JSON-RPC over stdio, framed and dispatched here (plain `serde_json` values). A bad
//! message never ends the server: it gets its JSON-RPC error and the server reads on:
//! -32700 for a body that is not JSON; -32600 for JSON that is not a message (an array,
//! an object with neither `method` nor `result`/`error`), a message without
//! `Content-Length` or one over [`MAX_MESSAGE`] bytes (its body is skipped unread);
//! -32601 for an unknown method; -32002 for a request before `initialize`; -32600 for one
//! after `shutdown`. Only a broken stream ends it, with the reason and exit 2: the end
//! of the input inside a message, or a header line that is not `Name: value` (framing
//! is then lost). The end of the input between messages ends it quietly (exit 0), as
//! does `exit` after `shutdown` (`exit` without `shutdown`: exit 1, as LSP says).
//!
//! Diagnostics are published for every file of a compilation: the document's own, and
//! each local file it imports (unless that file is open: its own compilation speaks for
//! it; a file whose mistakes are gone is published empty). Imports are read from the open
//! documents' latest texts before the disk, and a change of an open document checks again
//! the open documents that imported it.
//!
//! Documents are compiled off the request thread, by one worker thread that always
//! takes a document's latest text: a text replaced while it compiled is dropped, not
//! published (`version` in each publish is the client's version of the text). Each text
//! is published twice at most: first without the whole-space checks that are not kept
//! from an earlier text (`check::Reuse`: an experiment whose text, data, blocks and fns did
//! not change reuses its result, moved with it), then, when some were left, with them; a
//! newer text of the document stops those checks between two points, and nothing of the
//! older text is published after it. Hover, definition and completion answer from the
//! compilation of the document's latest text, waiting for it [`FRESH_WAIT`] at most (so
//! completion typed right after a change sees that change); past that, from the last
//! completed compilation (none yet: `null`), so a slow compilation (a spec with thousands of
//! parameters) never holds up a request longer; formatting reads the latest text.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use bma::diagnostic::{Code, Diagnostic, Severity, escape};
use bma::ide::{self, CompletionKind};
use bma::source::{FileId, Source, Span};

/// The largest message the server reads (a whole document is sent on every change).
const MAX_MESSAGE: usize = 64 << 20;

/// How long a request waits for the compilation of the text it was asked about before it is
/// answered from the last completed one (`Compiler::current`).
const FRESH_WAIT: Duration = Duration::from_secs(1);

/// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const SERVER_NOT_INITIALIZED: i64 = -32002;

/// One frame read from the input.
enum Frame {
    /// A message's body.
    Body(Vec<u8>),
    /// A frame whose body cannot be read (no `Content-Length`, or too large; the body
    /// skipped): the error's message.
    Invalid(String),
    /// The end of the input, between messages.
    End,
}

/// Reads one frame: the headers up to the empty line, then `Content-Length` bytes. `Err`
/// when the stream is broken (framing is lost).
fn read_frame(input: &mut impl BufRead) -> Result<Frame, String> {
    let mut size = None;
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        // A header is a short line; more than this without a line end is not one.
        let n = input.by_ref().take(4096).read_line(&mut line).map_err(|e| format!("reading a header: {e}"))?;
        if n == 0 {
            return if first { Ok(Frame::End) } else { Err("the input ended inside a message's headers".into()) };
        }
        first = false;
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
            size = Some(n);
        }
    }
    let Some(size) = size else { return Ok(Frame::Invalid("a message without Content-Length".into())) };
    if size > MAX_MESSAGE {
        // Skipped without holding it: the next message starts after it.
        let skipped = std::io::copy(&mut input.by_ref().take(size as u64), &mut std::io::sink())
            .map_err(|e| format!("skipping a message of {size} bytes: {e}"))?;
        if skipped < size as u64 {
            return Err(format!("skipping a message of {size} bytes: the input ended after {skipped}"));
        }
        return Ok(Frame::Invalid(format!("a message of {size} bytes; at most {MAX_MESSAGE} are read")));
    }
    let mut body = vec![0; size];
    input.read_exact(&mut body).map_err(|e| format!("reading a message of {size} bytes: {e}"))?;
    Ok(Frame::Body(body))
}

/// Where messages go: shared by the request thread and the compile worker.
type Output = Arc<Mutex<dyn Write + Send>>;

/// Writes one message to `out`, framed, whole.
fn write_message(out: &Mutex<dyn Write + Send>, message: &Value) -> Result<(), String> {
    let body = message.to_string();
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    write!(out, "Content-Length: {}\r\n\r\n{body}", body.len())
        .and_then(|()| out.flush())
        .map_err(|e| format!("writing a message: {e}"))
}

/// Publishes `uri`'s diagnostics; `version`: the client's version of the text they are of.
fn publish(
    out: &Mutex<dyn Write + Send>,
    uri: &str,
    diagnostics: Vec<Value>,
    version: Option<i64>,
) -> Result<(), String> {
    let mut params = json!({ "uri": uri, "diagnostics": diagnostics });
    if let Some(v) = version {
        params["version"] = json!(v);
    }
    write_message(out, &json!({ "jsonrpc": "2.0", "method": "textDocument/publishDiagnostics", "params": params }))
}

/// What the compile worker shares with the request thread.
#[derive(Default)]
struct Jobs {
    /// Texts waiting to be compiled: the newest of each document, with its generation and
    /// the client's version of it.
    pending: HashMap<String, (u64, String, Option<i64>)>,
    /// The generation of each open document's latest text.
    latest: HashMap<String, u64>,
    /// Each open document's last completed compilation, its names resolved.
    done: HashMap<String, Arc<ide::Analysis>>,
    /// Each open document's latest text, by its path: imports read these before the disk, so
    /// an unsaved change of an imported file is seen.
    texts: HashMap<PathBuf, String>,
    /// The local files each open document's last compilation imported.
    imports: HashMap<String, Vec<PathBuf>>,
    /// The imported files each open document last published diagnostics for.
    published: HashMap<String, Vec<String>>,
    next: u64,
    stop: bool,
}

/// The compile worker: compiles the latest text of each document off the request thread
/// and publishes its diagnostics; a compilation whose text was replaced meanwhile is dropped.
struct Compiler {
    shared: Arc<(Mutex<Jobs>, Condvar)>,
}

impl Compiler {
    fn start(out: Output) -> Result<Compiler, String> {
        let shared = Arc::new((Mutex::new(Jobs::default()), Condvar::new()));
        let worker = shared.clone();
        // Compiling walks the file's expressions: a trial thread's stack, as `bma watch` gives it.
        std::thread::Builder::new()
            .name("compile".into())
            .stack_size(bma::search::study::TRIAL_STACK)
            .spawn(move || compile_loop(&worker, &out))
            .map_err(|e| format!("cannot start the compile thread: {e}"))?;
        Ok(Compiler { shared })
    }

    fn jobs(&self) -> MutexGuard<'_, Jobs> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `text` (the client's `version` of it) as the latest of `uri`, replacing any text
    /// still waiting.
    fn submit(&self, uri: &str, text: &str, version: Option<i64>) {
        let mut jobs = self.jobs();
        jobs.next += 1;
        let generation = jobs.next;
        jobs.latest.insert(uri.to_string(), generation);
        jobs.pending.insert(uri.to_string(), (generation, text.to_string(), version));
        if let Some(path) = uri_to_path(uri) {
            jobs.texts.insert(key(&path), text.to_string());
        }
        // All: the request thread may be waiting on the same condition (`Compiler::current`).
        self.shared.1.notify_all();
    }

    /// The open documents (other than `uri`) whose last compilation imported `uri`'s file.
    fn importers(&self, uri: &str) -> Vec<String> {
        let Some(path) = uri_to_path(uri).map(|p| key(&p)) else { return Vec::new() };
        let jobs = self.jobs();
        jobs.imports.iter().filter(|(u, paths)| *u != uri && paths.contains(&path)).map(|(u, _)| u.clone()).collect()
    }

    /// Forgets `uri`: a compilation of it still running is dropped.
    fn close(&self, uri: &str) {
        let mut jobs = self.jobs();
        jobs.latest.remove(uri);
        jobs.pending.remove(uri);
        jobs.done.remove(uri);
        jobs.imports.remove(uri);
        if let Some(path) = uri_to_path(uri) {
            jobs.texts.remove(&key(&path));
        }
    }

    /// The compilation of `uri`'s `text` (its latest), waiting for it at most `bound`; past
    /// that, or when no compilation of it is coming, the last completed one (none yet: `None`).
    /// A request sent right after a change (completion as one types) is so answered on the
    /// text it was asked about, while a slow compilation still never holds up a request
    /// longer than `bound`.
    fn current(&self, uri: &str, text: &str, bound: Duration) -> Option<Arc<ide::Analysis>> {
        let of_text = |a: &ide::Analysis| a.compiled.sources.get(FileId(0)).is_some_and(|s| s.text == text);
        let until = Instant::now() + bound;
        let mut jobs = self.jobs();
        loop {
            let done = jobs.done.get(uri);
            if done.is_some_and(|a| of_text(a)) || !jobs.latest.contains_key(uri) || jobs.stop {
                return done.cloned();
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return done.cloned();
            }
            jobs = self.shared.1.wait_timeout(jobs, left).map_or_else(|p| p.into_inner().0, |(j, _)| j);
        }
    }
}

impl Drop for Compiler {
    fn drop(&mut self) {
        self.jobs().stop = true;
        self.shared.1.notify_all();
    }
}

fn compile_loop(shared: &(Mutex<Jobs>, Condvar), out: &Mutex<dyn Write + Send>) {
    let lock = || shared.0.lock().unwrap_or_else(|p| p.into_inner());
    // Each open document's whole-space checks, kept between its texts (`check::Reuse`).
    let mut reuses: HashMap<String, bma::check::Reuse> = HashMap::new();
    loop {
        let (uri, generation, text, version, overlay) = {
            let mut jobs = lock();
            loop {
                if jobs.stop {
                    return;
                }
                if let Some(uri) = jobs.pending.keys().next().cloned()
                    && let Some((generation, text, version)) = jobs.pending.remove(&uri)
                {
                    reuses.retain(|u, _| jobs.latest.contains_key(u));
                    break (uri, generation, text, version, Overlay(jobs.texts.clone()));
                }
                jobs = shared.1.wait(jobs).unwrap_or_else(|p| p.into_inner());
            }
        };
        let reuse = reuses.entry(uri.clone()).or_default();
        // First the cheap diagnostics (each experiment's whole-space check only when it is
        // kept from an earlier text), then the whole-space checks left, on the same
        // compilation, unless a newer text of the document arrives meanwhile: it supersedes
        // this one, whose checks stop (those finished are kept) and which is not published.
        reuse.defer = true;
        let cheap = Arc::new(ide::Analysis::new(compile(&uri, &text, &overlay, reuse, &|| false)));
        if !publish_analysis(shared, out, &uri, generation, version, cheap.clone()) || reuse.deferred() == 0 {
            continue;
        }
        let superseded = || {
            let jobs = lock();
            jobs.stop || jobs.latest.get(&uri) != Some(&generation) || jobs.pending.contains_key(&uri)
        };
        let mut compiled = cheap.compiled.clone();
        bma::finish_deferred(&mut compiled, reuse, &superseded);
        if !reuse.stopped() {
            // The same program: its names resolve as before.
            let full = ide::Analysis { compiled, tree: cheap.tree.clone(), index: cheap.index.clone() };
            publish_analysis(shared, out, &uri, generation, version, Arc::new(full));
        }
    }
}

/// Publishes the diagnostics of `analysis` (of `uri`'s text of `generation`, the client's
/// `version`) and keeps it for requests; `false` when that text is stale (a newer one is
/// queued, or the document was closed): nothing is published.
fn publish_analysis(
    shared: &(Mutex<Jobs>, Condvar),
    out: &Mutex<dyn Write + Send>,
    uri: &str,
    generation: u64,
    version: Option<i64>,
    analysis: Arc<ide::Analysis>,
) -> bool {
    let compiled = &analysis.compiled;
    let mut jobs = shared.0.lock().unwrap_or_else(|p| p.into_inner());
    if jobs.latest.get(uri) != Some(&generation) {
        return false;
    }
    // Diagnostics by file: the document's own, and each imported local file's (unless it
    // is open: its own compilation speaks for it).
    let mut by_uri: Vec<(String, Vec<Value>)> = vec![(uri.to_string(), Vec::new())];
    let mut imported = Vec::new();
    for (_, source) in compiled.sources.iter().skip(1) {
        if let Some(path) = &source.path {
            imported.push(key(path));
            let target = path_to_uri(path);
            if !jobs.latest.contains_key(&target) {
                by_uri.push((target, Vec::new()));
            }
        }
    }
    for d in &compiled.diagnostics {
        let target = if d.primary.span.file == FileId(0) {
            Some(uri.to_string())
        } else {
            compiled.sources.get(d.primary.span.file).and_then(|s| s.path.as_deref()).map(path_to_uri)
        };
        if let Some(entry) = by_uri.iter_mut().find(|(u, _)| Some(u) == target.as_ref()) {
            entry.1.push(to_lsp(compiled, d, uri));
        }
    }
    let before = jobs.published.remove(uri).unwrap_or_default();
    let now: Vec<String> = by_uri.iter().skip(1).filter(|(_, d)| !d.is_empty()).map(|(u, _)| u.clone()).collect();
    jobs.imports.insert(uri.to_string(), imported);
    jobs.done.insert(uri.to_string(), analysis);
    // A request may be waiting for this text's compilation (`Compiler::current`).
    shared.1.notify_all();
    // Published under the lock: a close that follows is published after this.
    for (target, diagnostics) in by_uri {
        if target == uri {
            let _ = publish(out, &target, diagnostics, version);
        } else if !diagnostics.is_empty() || before.contains(&target) {
            let _ = publish(out, &target, diagnostics, None);
        }
    }
    jobs.published.insert(uri.to_string(), now);
    true
}

/// Imports read from the open documents' latest texts, else from the disk.
struct Overlay(HashMap<PathBuf, String>);

impl bma::ir::Loader for Overlay {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        match self.0.get(&key(path)) {
            Some(text) => Ok(text.clone()),
            None => bma::ir::Disk.read(path),
        }
    }
}

/// A path as the server compares them: resolved when it exists, as given otherwise.
fn key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn error_response(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } })
}

fn ok_response(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// A message, sorted by what it is.
enum Incoming {
    Request { id: Value, method: String, params: Value },
    Notification { method: String, params: Value },
    Response,
}

/// Sorts a parsed body; `Err` is the error response it gets.
fn classify(value: Value) -> Result<Incoming, Value> {
    let Value::Object(mut map) = value else {
        return Err(error_response(Value::Null, INVALID_REQUEST, "a message is a JSON object"));
    };
    let id = map.remove("id");
    let params = map.remove("params").unwrap_or(Value::Null);
    match (map.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) if id.is_number() || id.is_string() => {
            Ok(Incoming::Request { id, method, params })
        }
        (Some(Value::String(method)), None) => Ok(Incoming::Notification { method, params }),
        (None, Some(_)) if map.contains_key("result") || map.contains_key("error") => Ok(Incoming::Response),
        (_, id) => Err(error_response(
            id.filter(|i| i.is_number() || i.is_string()).unwrap_or(Value::Null),
            INVALID_REQUEST,
            "not a request, a notification or a response",
        )),
    }
}

pub fn lsp() -> ExitCode {
    let stdin = std::io::stdin();
    let out: Output = Arc::new(Mutex::new(std::io::stdout()));
    match serve(&mut stdin.lock(), out) {
        Ok(code) => ExitCode::from(code),
        Err(e) => super::fail(format!("language server: {e}"), super::INTERNAL),
    }
}

fn capabilities() -> Value {
    json!({
        "textDocumentSync": 1,
        "hoverProvider": true,
        "definitionProvider": true,
        "documentFormattingProvider": true,
        "documentRangeFormattingProvider": true,
        "completionProvider": { "triggerCharacters": ["."] },
        "referencesProvider": true,
        "renameProvider": { "prepareProvider": true },
        "documentHighlightProvider": true,
        "documentSymbolProvider": true,
        "codeActionProvider": { "codeActionKinds": ["quickfix"] },
        "signatureHelpProvider": { "triggerCharacters": ["(", ","], "retriggerCharacters": [":"] },
        "foldingRangeProvider": true,
        "inlayHintProvider": true,
        "semanticTokensProvider": { "legend": { "tokenTypes": TOKEN_TYPES, "tokenModifiers": [] }, "full": true },
    })
}

/// Where the session is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Uninitialized,
    Serving,
    ShutDown,
}

struct State {
    /// Each open document's latest text, and the client's version of it.
    docs: HashMap<String, (String, Option<i64>)>,
    compiler: Compiler,
}

/// Serves messages from `input` until `exit` or the end of the input; gives the exit code.
fn serve(input: &mut impl BufRead, output: Output) -> Result<u8, String> {
    let out = &*output;
    let mut state = State { docs: HashMap::new(), compiler: Compiler::start(output.clone())? };
    let mut phase = Phase::Uninitialized;
    loop {
        let body = match read_frame(input)? {
            Frame::End => return Ok(0),
            Frame::Invalid(why) => {
                write_message(out, &error_response(Value::Null, INVALID_REQUEST, why))?;
                continue;
            }
            Frame::Body(body) => body,
        };
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                write_message(out, &error_response(Value::Null, PARSE_ERROR, format!("malformed message: {e}")))?;
                continue;
            }
        };
        match classify(value) {
            Err(response) => write_message(out, &response)?,
            Ok(Incoming::Response) => {}
            Ok(Incoming::Request { id, method, params }) => {
                let response = match (phase, method.as_str()) {
                    (Phase::Uninitialized, "initialize") => {
                        phase = Phase::Serving;
                        ok_response(id, json!({ "capabilities": capabilities() }))
                    }
                    (Phase::Uninitialized, _) => {
                        error_response(id, SERVER_NOT_INITIALIZED, "the server is not initialized yet")
                    }
                    (Phase::ShutDown, _) => error_response(id, INVALID_REQUEST, "the server is shut down"),
                    (Phase::Serving, "initialize") => error_response(id, INVALID_REQUEST, "already initialized"),
                    (Phase::Serving, "shutdown") => {
                        phase = Phase::ShutDown;
                        ok_response(id, Value::Null)
                    }
                    (Phase::Serving, _) => match handle_request(&state, &method, &params) {
                        Ok(result) => ok_response(id, result),
                        Err((code, message)) => error_response(id, code, message),
                    },
                };
                write_message(out, &response)?;
            }
            Ok(Incoming::Notification { method, params }) => {
                if method == "exit" {
                    return Ok(if phase == Phase::ShutDown { 0 } else { 1 });
                }
                if phase != Phase::Serving {
                    continue;
                }
                if let Some(closed) = handle_notification(&mut state, &method, &params) {
                    publish(out, &closed, Vec::new(), None)?;
                }
            }
        }
    }
}

/// Records a document's new text and queues it for compilation; gives the uri of a
/// closed document (whose diagnostics are cleared).
fn handle_notification(state: &mut State, method: &str, params: &Value) -> Option<String> {
    let uri = params.pointer("/textDocument/uri")?.as_str()?.to_string();
    let text = match method {
        "textDocument/didOpen" => params.pointer("/textDocument/text")?.as_str()?.to_string(),
        "textDocument/didChange" => {
            let changes = params.get("contentChanges")?.as_array()?;
            changes.last()?.get("text")?.as_str()?.to_string()
        }
        "textDocument/didClose" => {
            state.docs.remove(&uri);
            state.compiler.close(&uri);
            return Some(uri);
        }
        _ => return None,
    };
    let version = params.pointer("/textDocument/version").and_then(Value::as_i64);
    state.compiler.submit(&uri, &text, version);
    // The open documents that import this one are checked again with its new text.
    for importer in state.compiler.importers(&uri) {
        if let Some((t, v)) = state.docs.get(&importer) {
            state.compiler.submit(&importer, t, *v);
        }
    }
    state.docs.insert(uri, (text, version));
    None
}

fn compile(
    uri: &str,
    text: &str,
    loader: &Overlay,
    reuse: &mut bma::check::Reuse,
    stop: &dyn Fn() -> bool,
) -> bma::Compiled {
    let source = match uri_to_path(uri) {
        Some(path) => Source::from_path(&path, text),
        None => Source::new(uri, text),
    };
    bma::compile_reusing(&source, loader, reuse, stop)
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
        .filter_map(|l| {
            let location = json!({ "uri": span_uri(c, l.span, uri)?, "range": range(c, l.span) });
            Some(json!({ "location": location, "message": escape(&l.text) }))
        })
        .collect();
    // Data text (a CSV's column names) reaches messages: control characters are escaped,
    // as on the terminal; the line breaks between the parts are the server's own.
    let mut message = escape(&d.message).into_owned();
    if !d.primary.text.is_empty() {
        message.push_str(&format!("\n{}", escape(&d.primary.text)));
    }
    if let Some(h) = &d.help {
        message.push_str(&format!("\nhelp: {}", escape(h)));
    }
    let mut out = json!({
        "range": range(c, d.primary.span),
        "severity": severity,
        "code": d.code.as_str(),
        "source": "bma",
        "message": message,
        "relatedInformation": related,
    });
    // Editors grey out what is unnecessary.
    if matches!(d.code, Code::UnusedImport | Code::UnusedParam) {
        out["tags"] = json!([1]);
    }
    out
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
            // The stdlib lives in the binary: write it out so the editor can open it, into
            // this user's cache (one folder per version: an older server's copy stays its own).
            let dir = cache_dir()?.join(format!("stdlib-{}", env!("CARGO_PKG_VERSION")));
            std::fs::create_dir_all(&dir).ok()?;
            let path = dir.join(format!("{}.bma", source.name.replace("::", "_")));
            if std::fs::read_to_string(&path).ok().as_deref() != Some(source.text.as_str()) {
                std::fs::write(&path, &source.text).ok()?;
            }
            Some(path_to_uri(&path))
        }
    }
}

/// bma's folder in this user's cache: `$XDG_CACHE_HOME/bma`, else `~/.cache/bma`
/// (`%LOCALAPPDATA%\\bma` on Windows), never a path shared by every user of the machine,
/// where another user's file could stand in for the stdlib. `None`: no home to put it in.
fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = if cfg!(windows) {
        var("LOCALAPPDATA")
    } else {
        var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("bma"))
}

/// The methods [`handle_request`] answers.
/// The semantic token types, in the order of [`token_type`]'s numbers.
const TOKEN_TYPES: [&str; 9] =
    ["namespace", "class", "function", "parameter", "variable", "macro", "enumMember", "property", "keyword"];

fn token_type(kind: ide::TokenKind) -> u32 {
    match kind {
        ide::TokenKind::Experiment => 0,
        ide::TokenKind::Block => 1,
        ide::TokenKind::Fn => 2,
        ide::TokenKind::Parameter => 3,
        ide::TokenKind::Node => 4,
        ide::TokenKind::Layer => 5,
        ide::TokenKind::Entry => 6,
        ide::TokenKind::Property => 7,
        ide::TokenKind::Keyword => 8,
    }
}

const METHODS: [&str; 15] = [
    "textDocument/semanticTokens/full",
    "textDocument/signatureHelp",
    "textDocument/foldingRange",
    "textDocument/codeAction",
    "textDocument/hover",
    "textDocument/definition",
    "textDocument/completion",
    "textDocument/formatting",
    "textDocument/rangeFormatting",
    "textDocument/references",
    "textDocument/rename",
    "textDocument/prepareRename",
    "textDocument/documentHighlight",
    "textDocument/documentSymbol",
    "textDocument/inlayHint",
];

/// LSP's error for a request that was valid but could not be done (a refused rename).
const REQUEST_FAILED: i64 = -32803;

/// A request's result, or its error code and message.
fn handle_request(state: &State, method: &str, params: &Value) -> Result<Value, (i64, String)> {
    if !METHODS.contains(&method) {
        return Err((METHOD_NOT_FOUND, format!("method not supported: {method}")));
    }
    let uri = params.pointer("/textDocument/uri").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some((text, _)) = state.docs.get(&uri) else {
        return Ok(Value::Null);
    };
    let line = params.pointer("/position/line").and_then(Value::as_u64).unwrap_or(0) as usize;
    let character = params.pointer("/position/character").and_then(Value::as_u64).unwrap_or(0) as usize;
    if method == "textDocument/rangeFormatting" {
        let at = |p: &str| {
            let line = params.pointer(&format!("/range/{p}/line")).and_then(Value::as_u64).unwrap_or(0);
            let ch = params.pointer(&format!("/range/{p}/character")).and_then(Value::as_u64).unwrap_or(0);
            offset(text, line as usize, ch as usize)
        };
        return Ok(range_formatting(text, at("start"), at("end")));
    }
    if method == "textDocument/formatting" {
        return Ok(formatting(text));
    }
    // The compilation of the latest text (waited for a moment), else the last completed one,
    // and positions in the text it compiled.
    let Some(a) = state.compiler.current(&uri, text, FRESH_WAIT) else { return Ok(Value::Null) };
    let c = &a.compiled;
    let at = offset(c.sources.get(FileId(0)).map_or(text.as_str(), |s| s.text.as_str()), line, character);
    let locations = |spans: Vec<Span>| -> Value {
        spans.into_iter().map(|s| json!({ "uri": uri, "range": range(c, s) })).collect()
    };
    Ok(match method {
        "textDocument/references" => {
            let with_def = params.pointer("/context/includeDeclaration").and_then(Value::as_bool).unwrap_or(true);
            locations(ide::references(&a, FileId(0), at, with_def))
        }
        "textDocument/documentHighlight" => ide::highlights(&a, FileId(0), at)
            .into_iter()
            .map(|(s, def)| json!({ "range": range(c, s), "kind": if def { 3 } else { 2 } }))
            .collect(),
        "textDocument/prepareRename" => match ide::prepare_rename(&a, FileId(0), at) {
            Ok(span) => range(c, span),
            Err(why) => return Err((REQUEST_FAILED, why)),
        },
        "textDocument/rename" => {
            let new = params.get("newName").and_then(Value::as_str).unwrap_or_default();
            match ide::rename(&a, FileId(0), at, new) {
                Ok(spans) => {
                    let edits: Vec<Value> =
                        spans.into_iter().map(|s| json!({ "range": range(c, s), "newText": new })).collect();
                    json!({ "changes": { uri.clone(): edits } })
                }
                Err(why) => return Err((REQUEST_FAILED, why)),
            }
        }
        "textDocument/codeAction" => {
            let text = c.sources.get(FileId(0)).map_or("", |s| s.text.as_str());
            let at = |p: &str| {
                let line = params.pointer(&format!("/range/{p}/line")).and_then(Value::as_u64).unwrap_or(0);
                let ch = params.pointer(&format!("/range/{p}/character")).and_then(Value::as_u64).unwrap_or(0);
                offset(text, line as usize, ch as usize)
            };
            ide::quick_fixes(&a, FileId(0), at("start"), at("end"))
                .into_iter()
                .map(|f| {
                    let edit = json!({ "range": range(c, f.span), "newText": f.new_text });
                    json!({
                        "title": f.title,
                        "kind": "quickfix",
                        "isPreferred": true,
                        "diagnostics": params.pointer("/context/diagnostics").and_then(Value::as_array)
                            .map(|ds| ds.iter().filter(|d| d["code"] == f.code && d["range"] == range(c, f.fixes)).cloned().collect::<Vec<_>>())
                            .unwrap_or_default(),
                        "edit": { "changes": { uri.clone(): [edit] } },
                    })
                })
                .collect()
        }
        "textDocument/signatureHelp" => match ide::signature(&a, FileId(0), at) {
            Some(sig) => json!({
                "signatures": [{
                    "label": sig.label,
                    "documentation": sig.doc,
                    "parameters": sig.params.iter().map(|(s, e)| json!({ "label": [
                        sig.label[..*s].encode_utf16().count(), sig.label[..*e].encode_utf16().count()
                    ] })).collect::<Vec<_>>(),
                }],
                "activeSignature": 0,
                "activeParameter": sig.active,
            }),
            None => Value::Null,
        },
        "textDocument/foldingRange" => {
            let text = c.sources.get(FileId(0)).map_or("", |s| s.text.as_str());
            ide::folds(&a)
                .into_iter()
                .filter_map(|s| {
                    let start = text[..s.start as usize].matches('\n').count();
                    let end = text[..s.end as usize].matches('\n').count();
                    (end > start).then(|| json!({ "startLine": start, "endLine": end }))
                })
                .collect()
        }
        "textDocument/semanticTokens/full" => {
            // LSP's encoding: per token, the line and start relative to the previous token's,
            // its length (UTF-16), its type and no modifiers.
            let text = c.sources.get(FileId(0)).map_or("", |s| s.text.as_str());
            let (mut line, mut col, mut data) = (0u32, 0u32, Vec::new());
            for (span, kind) in ide::semantic_tokens(&a) {
                let before = &text[..span.start as usize];
                let l = before.matches('\n').count() as u32;
                let c16 = before.rsplit('\n').next().map_or(0, |x| x.encode_utf16().count()) as u32;
                let len = text[span.start as usize..span.end as usize].encode_utf16().count() as u32;
                let delta_col = if l == line { c16 - col } else { c16 };
                data.extend([l - line, delta_col, len, token_type(kind), 0]);
                (line, col) = (l, c16);
            }
            json!({ "data": data })
        }
        "textDocument/documentSymbol" => ide::symbols(&a).iter().map(|s| document_symbol(c, s)).collect(),
        "textDocument/inlayHint" => {
            let text = c.sources.get(FileId(0)).map_or("", |s| s.text.as_str());
            let at = |p: &str| {
                let line = params.pointer(&format!("/range/{p}/line")).and_then(Value::as_u64).unwrap_or(0);
                let ch = params.pointer(&format!("/range/{p}/character")).and_then(Value::as_u64).unwrap_or(0);
                offset(text, line as usize, ch as usize)
            };
            ide::inlay_hints(&a, FileId(0), at("start"), at("end"))
                .into_iter()
                .map(|h| json!({ "position": position(text, h.offset), "label": h.label, "kind": 1, "paddingLeft": true }))
                .collect()
        }
        "textDocument/hover" => match ide::hover(&a, FileId(0), at) {
            Some((span, md)) => json!({ "contents": { "kind": "markdown", "value": md }, "range": range(c, span) }),
            None => Value::Null,
        },
        "textDocument/definition" => match ide::definition(&a, FileId(0), at) {
            Some(span) => match span_uri(c, span, &uri) {
                Some(target) => json!({ "uri": target, "range": range(c, span) }),
                None => Value::Null,
            },
            None => Value::Null,
        },
        _ => {
            let (replace, found) = ide::completions(&a, FileId(0), at);
            let items: Vec<Value> = found
                .into_iter()
                .map(|item| {
                    let kind = match item.kind {
                        CompletionKind::Layer | CompletionKind::Block => 3,
                        CompletionKind::Parameter => 6,
                        CompletionKind::Metric => 12,
                        CompletionKind::Strategy | CompletionKind::Pruner => 20,
                        CompletionKind::Keyword => 14,
                        CompletionKind::Function => 3,
                        // Class and Event: a data source, an augmentation step.
                        CompletionKind::Dataset => 7,
                        CompletionKind::Augment => 23,
                        CompletionKind::Setting => 10,
                        CompletionKind::Placeholder => 6,
                        CompletionKind::Field => 5,
                        CompletionKind::Argument => 5,
                    };
                    let new_text = item.insert.clone().unwrap_or_else(|| item.label.clone());
                    json!({
                        "label": item.label,
                        "kind": kind,
                        "detail": item.detail,
                        "sortText": format!("{}{}", item.rank, item.label),
                        "filterText": item.label,
                        "insertTextFormat": if item.insert.is_some() { 2 } else { 1 },
                        "textEdit": { "range": range(c, replace), "newText": new_text },
                    })
                })
                .collect();
            json!({ "isIncomplete": false, "items": items })
        }
    })
}

/// An outline entry as LSP's `DocumentSymbol`.
fn document_symbol(c: &bma::Compiled, s: &ide::Symbol) -> Value {
    // LSP's SymbolKind: Module, Namespace, Variable, Constant, Class, Function, Property, Package.
    let kind = match s.kind {
        ide::OutlineKind::Experiment => 2,
        ide::OutlineKind::Section => 3,
        ide::OutlineKind::Param | ide::OutlineKind::Derived => 13,
        ide::OutlineKind::Pinned => 14,
        ide::OutlineKind::Block => 5,
        ide::OutlineKind::Fn => 12,
        ide::OutlineKind::Argument => 7,
        ide::OutlineKind::Import => 4,
    };
    json!({
        "name": s.name,
        "kind": kind,
        "range": range(c, s.span),
        "selectionRange": range(c, s.selection),
        "children": s.children.iter().map(|x| document_symbol(c, x)).collect::<Vec<_>>(),
    })
}

/// The items that `start..end` touches in their canonical layout, one edit per item that
/// changes; none when the document does not format (as [`formatting`]).
fn range_formatting(text: &str, start: u32, end: u32) -> Value {
    let source = bma::Source::new("<document>", text);
    let Ok(formatted) = bma::fmt::format(&source) else { return json!([]) };
    let (Ok(a), Ok(b)) = (bma::syntax::parse(FileId(0), text), bma::syntax::parse(FileId(0), &formatted)) else {
        return json!([]);
    };
    if !bma::fmt::same_tree(&a, &b) || bma::fmt::comments(text) != bma::fmt::comments(&formatted) {
        return json!([]);
    }
    let span = |item: &bma::ast::Item| match item {
        bma::ast::Item::Use(x) => x.span,
        bma::ast::Item::Block(x) => x.span,
        bma::ast::Item::Fn(x) => x.span,
        bma::ast::Item::Experiment(x) => x.span,
    };
    // From the start of the item's first line, so that its indentation is laid out too.
    let whole = |t: &str, s: Span| (t[..s.start as usize].rfind('\n').map_or(0, |i| i + 1), s.end as usize);
    let mut edits = Vec::new();
    for (old, new) in a.items.iter().zip(&b.items) {
        let (o, n) = (span(old), span(new));
        if o.end < start || end < o.start {
            continue;
        }
        let (os, oe) = whole(text, o);
        let (ns, ne) = whole(&formatted, n);
        if text[os..oe] != formatted[ns..ne] {
            let r = json!({ "start": position(text, os as u32), "end": position(text, oe as u32) });
            edits.push(json!({ "range": r, "newText": &formatted[ns..ne] }));
        }
    }
    Value::Array(edits)
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
