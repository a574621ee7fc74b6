//! The command-line front: reading files, rendering diagnostics, exit codes.
//! Everything here may print; the library never does.

pub mod completions;
pub mod eval;
pub mod export;
pub mod final_build;
pub mod fmt;
pub mod json;
pub mod ls;
pub mod lsp;
pub mod output;
pub mod predict;
pub mod report;
pub mod rm;
pub mod run;
pub mod stored;
pub mod study;
pub mod watch;
pub mod worker;

use std::path::Path;
use std::process::ExitCode;

use bma::diagnostic::{self, Diagnostic, RenderOptions};
use bma::{Compiled, Source, Sources};

/// Exit code: the input is fine.
pub const OK: u8 = 0;
/// Exit code: the user's input is wrong.
pub const INPUT: u8 = 1;
/// Exit code: bma itself failed.
pub const INTERNAL: u8 = 2;

/// How a command prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Text for people (diagnostics: miette's graphical report).
    #[default]
    Human,
    /// JSON (docs/json.md): `check`, one object per diagnostic per line; the others, one document.
    Json,
}

/// Reads a `.bma` file, or explains why it cannot.
pub fn read_source(path: &Path) -> Result<Source, String> {
    match bma::source::read_file(path) {
        Ok(text) => Ok(Source::from_path(path, text)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(format!("{} is {e}", path.display())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Compiles a file from disk; `Err` carries a message for a file that cannot be read.
pub fn compile_path(path: &Path) -> Result<Compiled, String> {
    read_source(path).map(|s| bma::compile(&s))
}

fn render_options() -> RenderOptions {
    RenderOptions { width: output::width(100), color: output::color() }
}

/// Prints diagnostics to stderr (human) or stdout (JSON); true if any is an error.
pub fn report_diagnostics(sources: &Sources, diagnostics: &[Diagnostic], format: Format) -> bool {
    let options = render_options();
    for d in diagnostics {
        match format {
            Format::Human => eprint!("{}", diagnostic::render(d, sources, options)),
            Format::Json => match serde_json::to_string(&diagnostic::to_json(d, sources)) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("error: cannot encode a diagnostic: {e}"),
            },
        }
    }
    diagnostics.iter().any(Diagnostic::is_error)
}

/// Prints a one-line error for a problem outside any file (a flag, a missing file).
pub fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Which of a run folder's models a command (`eval`, `predict`, `export`) works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The final model (`final/`: ensemble members and weights, soup, SWA).
    Final,
    /// The best single trial (`best/`).
    Best,
}

/// The saved model folder that `path` names for `predict` and `export`: a saved model
/// itself (`final.json` or `model.json` inside; `which` must then be absent), or a run
/// folder, whose `final/` is taken by default, else its `best/` with a note on stderr
/// naming `verb` ("predicting with", "exporting").
pub fn model_dir(path: &Path, which: Option<Which>, verb: &str) -> Result<std::path::PathBuf, String> {
    if !path.is_dir() {
        return Err(format!("{} is not a folder", path.display()));
    }
    let saved = |p: &Path| p.join("final.json").is_file() || p.join("model.json").is_file();
    if saved(path) {
        if which.is_some() {
            return Err(format!("--model picks a model in a run folder; {} is a saved model itself", path.display()));
        }
        return Ok(path.to_path_buf());
    }
    let final_dir = path.join("final");
    let which = match which {
        Some(w) => w,
        None if final_dir.join("final.json").is_file() => Which::Final,
        None if path.join("best").join("model.json").is_file() => {
            eprintln!("note: {} holds no final model; {verb} its best trial, best/", path.display());
            Which::Best
        }
        None => {
            return Err(format!(
                "{} holds no saved model (no final/, best/, final.json or model.json)",
                path.display()
            ));
        }
    };
    let dir = match which {
        Which::Final => final_dir,
        Which::Best => path.join("best"),
    };
    if !saved(&dir) {
        return Err(format!("{} holds no saved model", dir.display()));
    }
    Ok(dir)
}

/// [`bma::store::connect`] for the command line: a PostgreSQL server that does not answer is
/// retried for a while (`BMA_STORE_RETRY`, 60 s by default) so that workers may start before
/// it; after two silent seconds the user is told what bma is waiting for.
pub fn connect_store(url: &str, connections: usize) -> Result<Box<dyn bma::store::Store>, bma::store::StoreError> {
    let retry = store_retry();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(STORE_NOTICE_AFTER) {
                eprintln!(
                    "waiting for the store {}: no answer yet; retrying for up to {:.0} s (BMA_STORE_RETRY)",
                    bma::store::postgres::redact(url),
                    retry.as_secs_f64()
                );
            }
        });
        let store = bma::store::connect(url, connections, retry);
        let _ = done.send(());
        store
    })
}

const STORE_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a store server is retried: `BMA_STORE_RETRY` (seconds, `s` allowed) or
/// [`bma::store::DEFAULT_RETRY`].
pub fn store_retry() -> std::time::Duration {
    std::env::var("BMA_STORE_RETRY")
        .ok()
        .and_then(|s| s.trim().trim_end_matches('s').parse::<f64>().ok())
        .and_then(bma::seconds)
        .unwrap_or(bma::store::DEFAULT_RETRY)
}

/// Each trial thread's stack: `BMA_TRIAL_STACK` (bytes; for the fault tests) or
/// [`bma::search::study::TRIAL_STACK`].
pub fn trial_stack() -> usize {
    std::env::var("BMA_TRIAL_STACK").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(bma::search::study::TRIAL_STACK)
}
