//! `bma watch FILE`: re-check on every save (diagnostics on stderr at once), and on a
//! clean check re-run every experiment (or the one `--experiment` names) in a background
//! thread, through the same study API ([`bma::study`]), store and out folder as `bma
//! run` (`--out`, else `runs/<experiment>/` unless `report { out = }` says otherwise,
//! relative to the current folder): `study.db`, `results.json`, `results.csv`,
//! `report.html`, `best/`, `final/`. So `bma ls`, `bma eval` and `bma run --resume` see
//! what watch did. `bma run`'s flags that override the file's settings (`--trials`,
//! `--seed`, `--strategy`, `--set`, `--parallel`, `--time`, `--trial-time`, `--device`)
//! apply to every cycle.
//!
//! Each version of the file is its own study in `study.db` (the current one named
//! after the experiment, earlier ones `NAME@HASH`); a trial whose configuration key
//! ([`bma::reuse::ConfigKey`]) is complete in any of them is copied, not trained
//! ([`bma::study::KeyReuse`]). When an edit leaves the search itself unchanged (only
//! `objective`, `require`, `rank`, `average`, `report` or layout differ), the new
//! study replays the previous one's points, so nothing trains and the final model is
//! rebuilt from the saved weights. A save during a run cancels it: running trials are
//! recorded failed with the error `cancelled: ...`; the last good results stay until
//! a cycle completes (but `report.html` follows each cycle live, as `bma run`'s does:
//! rewritten at most every 5 s while trials finish, reloading itself in the browser until
//! the cycle ends, cancelled or not). A broken edit keeps them too. `results.json` gets a `watch`
//! object: the cycle and the numbers of the trials reused and trained. A cycle owns its
//! out folder as `bma run` does (`<out>/.lock`), and its study is `finished` only once
//! its outputs are written.
//!
//! Output on stdout, one line per event, machine-checkable:
//! `check: ok (0.8 ms)`, `check: 2 errors (0.5 ms); keeping the last good results`,
//! `cycle 3: start`, `cycle 3 exp: reused 4, trained 2, pruned 1, cancelled 0, failed 0`,
//! `cycle 3 exp best: {..} -> [..]`, `cycle 3 exp final: METHOD (K members)`,
//! `cycle 3 exp: results in DIR`, `cycle 3: done` or `cycle 3: cancelled`.
//! With `--progress plain`, also `trial exp KEY reused|training|complete|pruned|cancelled|failed`.
//!
//! Ctrl-C ends watch as it ends `bma run`: the running cycle stops at the next epoch,
//! its study is recorded `interrupted` (trials it stopped are recorded failed with the
//! cancelled error, so a later cycle trains them again), its results files are written
//! (`cycle N: interrupted`), and watch exits 130. A second Ctrl-C exits at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bma::ir;
use bma::search::study::{Ended, Event, Observer};
use bma::study::reuse::{KeyReuse, Tally, is_cancelled, open_for_watch};
use bma::study::{self, Hooks, Note, Plan, outputs};
use bma::watch::{self, CancelToken, FileWatcher};

use super::study::{INTERRUPTED, StudyFlags};
use super::{Format, INPUT, INTERNAL};

/// How much to say about each trial.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WatchProgress {
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
    #[command(flatten)]
    pub flags: StudyFlags,
    /// A line per trial (`plain`) or per cycle only (`none`).
    #[arg(long, value_enum, default_value_t = WatchProgress::None)]
    pub progress: WatchProgress,
    /// Quiet time after a save's last file event, in ms.
    #[arg(long, default_value_t = 15)]
    pub debounce_ms: u64,
    /// Check only; never run.
    #[arg(long)]
    pub check_only: bool,
}

struct Running {
    cancel: CancelToken,
    handle: JoinHandle<()>,
}

pub fn watch(args: &WatchArgs) -> ExitCode {
    let file = watch::absolute(&args.file);
    let memory = Arc::new(Mutex::new(Memory::new()));
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
    install_ctrlc(watcher.waker());
    println!("watching {}", file.display());
    loop {
        if CTRL_C.load(Ordering::SeqCst) {
            // Like `bma run`: the cycle stops, records and writes its results; exit 130.
            if let Some(r) = running.take() {
                r.cancel.cancel();
                let _ = r.handle.join();
            }
            return ExitCode::from(INTERRUPTED);
        }
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
                        match spawn_cycle(cycle, compiled, memory.clone(), args) {
                            Ok(r) => running = Some(r),
                            Err(e) => eprintln!("error: cycle {cycle} did not start: {e}"),
                        }
                    }
                }
            }
        }
        if watcher.wait(debounce, None).is_none() {
            return super::fail("the file watcher stopped", INTERNAL);
        }
        // Woken by Ctrl-C rather than a save: the loop's first check ends watch.
        if CTRL_C.load(Ordering::SeqCst) {
            continue;
        }
    }
}

/// Raised by the first Ctrl-C; read by the main loop and by a cycle that was stopped.
static CTRL_C: AtomicBool = AtomicBool::new(false);

/// Ctrl-C once: raise [`CTRL_C`] and wake the main loop, which stops the cycle (it
/// records and writes its results) and exits 130. Twice: exit at once.
fn install_ctrlc(waker: watch::Waker) {
    static PRESSES: AtomicUsize = AtomicUsize::new(0);
    let _ = ctrlc::set_handler(move || {
        if PRESSES.fetch_add(1, Ordering::SeqCst) >= 1 {
            std::process::exit(i32::from(INTERRUPTED));
        }
        CTRL_C.store(true, Ordering::SeqCst);
        waker.wake();
    });
}

/// Per experiment, the search fingerprint and spec hash of the study the last cycle ran.
type Memory = BTreeMap<String, (String, String)>;

/// The experiments a cycle runs: the one `--experiment` names, or all of them (one
/// `--out` folder cannot hold several).
fn experiments<'c>(compiled: &'c bma::Compiled, flags: &StudyFlags) -> Result<Vec<&'c ir::Experiment>, String> {
    let all = &compiled.program.experiments;
    match &flags.experiment {
        Some(name) => compiled.program.experiment(name).map(|e| vec![e]).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
            format!("no experiment `{name}` (the file has {})", names.join(", "))
        }),
        None if flags.out.is_some() && all.len() > 1 => {
            Err("--out names one folder and the file has several experiments; pick one with --experiment".to_string())
        }
        None => Ok(all.iter().collect()),
    }
}

fn spawn_cycle(
    n: u64,
    compiled: bma::Compiled,
    memory: Arc<Mutex<Memory>>,
    args: &WatchArgs,
) -> std::io::Result<Running> {
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let plain = args.progress == WatchProgress::Plain;
    let flags = args.flags.clone();
    // The cycle walks the file's expressions as the trials do: a trial thread's stack.
    let spawned = std::thread::Builder::new().stack_size(bma::search::study::TRIAL_STACK).spawn(move || {
        println!("cycle {n}: start");
        let mut memory = memory.lock().unwrap_or_else(|p| p.into_inner());
        let experiments = match experiments(&compiled, &flags) {
            Ok(e) => e,
            Err(e) => {
                println!("cycle {n}: error: {e}");
                Vec::new()
            }
        };
        for exp in experiments {
            if token.is_cancelled() {
                break;
            }
            let ctx = CycleCtx { n, compiled: &compiled, cancel: &token, flags: &flags, plain };
            match run_experiment(&ctx, exp, &mut memory) {
                Ok(done) => done.print(n, &exp.name),
                Err(e) => println!("cycle {n} {}: error: {e}", exp.name),
            }
        }
        if CTRL_C.load(Ordering::SeqCst) {
            println!("cycle {n}: interrupted");
        } else if token.is_cancelled() {
            println!("cycle {n}: cancelled");
        } else {
            println!("cycle {n}: done");
        }
    });
    spawned.map(|handle| Running { cancel, handle })
}

/// What every experiment of one cycle shares.
struct CycleCtx<'c> {
    n: u64,
    compiled: &'c bma::Compiled,
    cancel: &'c CancelToken,
    flags: &'c StudyFlags,
    plain: bool,
}

/// What one experiment's cycle did.
#[derive(Default)]
struct Done {
    reused: usize,
    trained: usize,
    pruned: usize,
    cancelled: usize,
    failed: usize,
    best: Option<String>,
    final_model: Option<String>,
    notes: Vec<String>,
    /// Where the results were written (`None`: cancelled, the last good results stay).
    out: Option<PathBuf>,
}

impl Done {
    fn print(&self, n: u64, exp: &str) {
        println!(
            "cycle {n} {exp}: reused {}, trained {}, pruned {}, cancelled {}, failed {}",
            self.reused, self.trained, self.pruned, self.cancelled, self.failed
        );
        if let Some(best) = &self.best {
            println!("cycle {n} {exp} best: {best}");
        }
        if let Some(f) = &self.final_model {
            println!("cycle {n} {exp} final: {f}");
        }
        for note in &self.notes {
            println!("cycle {n} {exp}: note: {note}");
        }
        if let Some(out) = &self.out {
            println!("cycle {n} {exp}: results in {}", out.display());
        }
    }
}

impl From<Tally> for Done {
    fn from(t: Tally) -> Done {
        Done {
            reused: t.reused,
            trained: t.trained,
            pruned: t.pruned,
            cancelled: t.cancelled,
            failed: t.failed,
            ..Done::default()
        }
    }
}

/// One experiment: its study for this version of the file, run with reuse, then its outputs.
fn run_experiment(ctx: &CycleCtx<'_>, exp: &ir::Experiment, memory: &mut Memory) -> Result<Done, String> {
    let mut overrides = ctx.flags.overrides(false)?;
    overrides.experiment = Some(exp.name.clone());
    // The study is `finished` only once this cycle's outputs are written.
    overrides.caller_finishes = true;
    let plan = Plan::new(ctx.compiled, &overrides).map_err(|e| e.to_string())?;
    // The out folder has one owner at a time: a `bma run` on it meanwhile is refused, and
    // this cycle is refused while a run owns it (released when the cycle ends).
    std::fs::create_dir_all(&plan.out).map_err(|e| format!("cannot create {}: {e}", plan.out.display()))?;
    let _owner = study::lock_out(&plan.out).map_err(|e| e.to_string())?;
    let watched = open_for_watch(&plan, memory.get(&exp.name)).map_err(|e| e.to_string())?;
    memory.insert(exp.name.clone(), (watched.fingerprint.clone(), watched.study.spec.spec_hash.clone()));
    let mut notes: Vec<String> = plan
        .notes
        .iter()
        .filter_map(|n| match n {
            Note::Warning(w) => Some(w.clone()),
            Note::Note(_) => None,
        })
        .collect();
    let evaluator = study::evaluator(&plan, None).map_err(|e| e.to_string())?;
    let reuse = watched.reuse(&plan);
    let lines = Lines { experiment: &exp.name, reuse: &reuse, plain: ctx.plain };
    // report.html follows the cycle as it follows `bma run` (rewritten at most every 5 s,
    // the open page reloading itself until the cycle ends).
    let spec = &watched.study.spec;
    let live = bma::report::live::Observer::new(
        &lines,
        &plan.out.join("report.html"),
        &spec.experiment,
        spec.objectives.clone(),
    );
    let hooks = Hooks { observer: &live, stop: ctx.cancel.flag(), reuse: Some(&reuse) };
    let ran = study::run(&plan, &watched.store, watched.study.clone(), &*evaluator, hooks);
    // Whatever the cycle's end, the page stops reloading; a cycle that completes writes its
    // final report below.
    let _ = live.finish();
    let ran = ran.map_err(|e| e.to_string())?;

    let mut done = Done::from(reuse.tally(&ran.history));
    // Stopped by a save: the last good results stay until a cycle completes. Stopped by
    // Ctrl-C: this is the last cycle, and its results are written as `bma run` writes them.
    if ran.ended == Ended::Interrupted && !CTRL_C.load(Ordering::SeqCst) {
        return Ok(done);
    }
    let mut extra = ran.extra();
    extra.insert("watch".into(), reuse.results_json(ctx.n));
    let written = outputs::write(&plan, &ran.study.spec, &ran.history, ran.ended, extra).map_err(|e| e.to_string())?;
    if ran.ended != Ended::Interrupted {
        study::finish(&watched.store, &ran).map_err(|e| e.to_string())?;
    }
    notes.extend(written.notes);
    if let Some(best) = ran.history.ranked().first() {
        // Rounded as `bma run` prints them (outputs::fmt_num); results.json has every digit.
        let params: Vec<String> = best.params.iter().map(|(k, v)| format!("{k}={}", outputs::fmt_value(v))).collect();
        let values: Vec<String> = best.values.iter().map(|v| outputs::fmt_num(*v)).collect();
        done.best = Some(format!("{} -> [{}]", params.join(" "), values.join(", ")));
    }
    if let Some(f) = written.final_summary {
        let k = f.members.len();
        done.final_model = Some(format!("{} ({k} member{})", f.method, plural(k)));
    }
    done.notes = notes;
    done.out = Some(plan.out.clone());
    Ok(done)
}

/// `--progress plain`: a line per trial, by configuration key.
struct Lines<'r> {
    experiment: &'r str,
    reuse: &'r KeyReuse<'r>,
    plain: bool,
}

impl Observer for Lines<'_> {
    fn event(&self, event: Event<'_>) {
        if !self.plain {
            return;
        }
        match event {
            Event::Started { number, .. } => {
                if let Some(t) = self.reuse.trial(number) {
                    let what = if t.reused { "reused" } else { "training" };
                    println!("trial {} {} {what}", self.experiment, t.key);
                }
            }
            Event::Finished { trial, .. } => {
                if let Some(t) = self.reuse.trial(trial.number)
                    && !t.reused
                {
                    let state = if is_cancelled(trial) { "cancelled" } else { trial.state.as_str() };
                    println!("trial {} {} {state}", self.experiment, t.key);
                }
            }
            Event::Step { .. } | Event::Note { .. } => {}
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
