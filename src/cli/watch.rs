//! `bma watch FILE`: re-check on every save (diagnostics on stderr at once), and on a
//! clean check re-run in a background thread, reusing every trial whose configuration
//! key is already complete in the store. A save during a run cancels it (the running
//! trial is recorded `cancelled`) and starts the next one. A broken edit keeps the last
//! good results.
//!
//! Output on stdout, one line per event, machine-checkable:
//! `check: ok (0.8 ms)`, `check: 2 errors (0.5 ms); keeping the last good results`,
//! `cycle 3: start`, `cycle 3 exp: reused 4, trained 2, cancelled 0, failed 0`,
//! `cycle 3 exp best: {..} -> [..]`, `cycle 3: done` or `cycle 3: cancelled`.
//! With `--progress plain`, also `trial exp KEY reused|training|complete|cancelled|failed`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bma::train::DeviceKind;
use bma::watch::{self, CancelToken, FileWatcher, Progress, State, TrialStore};

use super::{Format, INPUT, INTERNAL};

/// How much to say about each trial.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Cycle lines only.
    #[default]
    None,
    /// A line per trial too.
    Plain,
}

/// Arguments of `bma watch`.
#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// The .bma file.
    pub file: PathBuf,
    /// A line per trial (`plain`) or per cycle only (`none`).
    #[arg(long, value_enum, default_value_t = ProgressMode::None)]
    pub progress: ProgressMode,
    /// The trial store (default: `.bma/STEM.trials.json` beside the file).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Where the ranked results of the last complete cycle go (default: `.bma/STEM.results.json`).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Quiet time after a save's last file event, in ms.
    #[arg(long, default_value_t = 15)]
    pub debounce_ms: u64,
    /// Check only; never run.
    #[arg(long)]
    pub check_only: bool,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
}

struct Running {
    cancel: CancelToken,
    handle: JoinHandle<()>,
}

pub fn watch(args: &WatchArgs) -> ExitCode {
    let file = watch::absolute(&args.file);
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "watch".into());
    let store_path = args.store.clone().unwrap_or_else(|| base.join(".bma").join(format!("{stem}.trials.json")));
    let results_path = args.results.clone().unwrap_or_else(|| base.join(".bma").join(format!("{stem}.results.json")));
    for p in [&store_path, &results_path] {
        if let Some(dir) = p.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                return super::fail(format!("{}: {e}", dir.display()), INPUT);
            }
        }
    }
    let store = match TrialStore::open(&store_path) {
        Ok(s) => Arc::new(Mutex::new(s)),
        Err(e) => return super::fail(e, INPUT),
    };
    let mut watcher = match FileWatcher::new() {
        Ok(w) => w,
        Err(e) => return super::fail(e, INTERNAL),
    };
    if let Err(e) = watcher.set_files(std::slice::from_ref(&file)) {
        return super::fail(e, INPUT);
    }
    let debounce = Duration::from_millis(args.debounce_ms);
    let mut running: Option<Running> = None;
    let mut cycle = 0u64;
    println!("watching {}", file.display());
    loop {
        let start = Instant::now();
        let compiled = super::compile_path(&file);
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        match compiled {
            Err(message) => {
                eprintln!("error: {message}");
                println!("check: unreadable ({ms:.1} ms); keeping the last good results");
            }
            Ok(compiled) => {
                let errors = super::report_diagnostics(&compiled.sources, &compiled.diagnostics, Format::Human);
                if errors {
                    let n = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
                    println!("check: {n} error{} ({ms:.1} ms); keeping the last good results", plural(n));
                } else {
                    println!("check: ok ({ms:.1} ms)");
                    // The import set may have changed: watch what this compilation read.
                    let mut files = watch::local_files(&compiled);
                    if !files.contains(&file) {
                        files.push(file.clone());
                    }
                    if let Err(e) = watcher.set_files(&files) {
                        eprintln!("error: {e}");
                    }
                    if let Some(r) = running.take() {
                        r.cancel.cancel();
                        let _ = r.handle.join();
                    }
                    if !args.check_only {
                        cycle += 1;
                        running =
                            Some(spawn_cycle(cycle, compiled, base.clone(), store.clone(), results_path.clone(), args));
                    }
                }
            }
        }
        if watcher.wait(debounce, None).is_none() {
            return super::fail("the file watcher stopped", INTERNAL);
        }
    }
}

fn spawn_cycle(
    n: u64,
    compiled: bma::Compiled,
    base: PathBuf,
    store: Arc<Mutex<TrialStore>>,
    results: PathBuf,
    args: &WatchArgs,
) -> Running {
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let plain = args.progress == ProgressMode::Plain;
    let device = args.device;
    let handle = std::thread::spawn(move || {
        println!("cycle {n}: start");
        let mut store = match store.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let mut progress = |p: Progress<'_>| {
            if !plain {
                return;
            }
            match p {
                Progress::Reused { experiment, key } => println!("trial {experiment} {key} reused"),
                Progress::Training { experiment, key, .. } => println!("trial {experiment} {key} training"),
                Progress::Finished { experiment, trial } => {
                    let state = match trial.state {
                        State::Complete => "complete",
                        State::Failed => "failed",
                        State::Cancelled => "cancelled",
                    };
                    println!("trial {experiment} {} {state}", trial.key);
                }
            }
        };
        let cycles = watch::run_cycle(&compiled, &base, &mut store, &token, device, &mut progress);
        for c in &cycles {
            println!(
                "cycle {n} {}: reused {}, trained {}, cancelled {}, failed {}",
                c.experiment, c.reused, c.trained, c.cancelled, c.failed
            );
            if let Some(e) = &c.error {
                println!("cycle {n} {}: error: {e}", c.experiment);
            }
            if let Some(best) = c.ranked.first() {
                let params: Vec<String> = best.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("cycle {n} {} best: {} -> {:?}", c.experiment, params.join(" "), best.objectives);
            }
        }
        if token.is_cancelled() {
            println!("cycle {n}: cancelled");
            return;
        }
        match serde_json::to_string_pretty(&cycles) {
            Ok(text) => {
                let tmp = results.with_extension("json.tmp");
                if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &results)) {
                    eprintln!("error: {}: {e}", results.display());
                }
            }
            Err(e) => eprintln!("error: {e}"),
        }
        println!("cycle {n}: done");
    });
    Running { cancel, handle }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
