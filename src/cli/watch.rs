//! `bma watch FILE`: re-check on every save (diagnostics on stderr at once), and on a
//! clean check re-run every experiment in a background thread, through the same study
//! loop, store and out folder as `bma run` (`runs/<experiment>/` unless `report { out
//! = }` says otherwise, relative to the current folder): `study.db`, `results.json`,
//! `results.csv`, `report.html`, `best/`, `final/`. So `bma ls`, `bma eval` and `bma
//! run --resume` see what watch did.
//!
//! Each version of the file is its own study in `study.db` (the current one named
//! after the experiment, earlier ones `NAME@HASH`); a trial whose configuration key
//! ([`bma::reuse::ConfigKey`]) is complete in any of them is copied, not trained
//! ([`bma::watch::KeyReuse`]). When an edit leaves the search itself unchanged (only
//! `objective`, `require`, `rank`, `average`, `report` or layout differ), the new
//! study replays the previous one's points, so nothing trains and the final model is
//! rebuilt from the saved weights. A save during a run cancels it: running trials are
//! recorded failed with the error `cancelled: ...`; the last good results stay until
//! a cycle completes. A broken edit keeps them too. `results.json` gets a `watch`
//! object: the cycle and the numbers of the trials reused and trained.
//!
//! Output on stdout, one line per event, machine-checkable:
//! `check: ok (0.8 ms)`, `check: 2 errors (0.5 ms); keeping the last good results`,
//! `cycle 3: start`, `cycle 3 exp: reused 4, trained 2, pruned 1, cancelled 0, failed 0`,
//! `cycle 3 exp best: {..} -> [..]`, `cycle 3 exp final: METHOD (K members)`,
//! `cycle 3 exp: results in DIR`, `cycle 3: done` or `cycle 3: cancelled`.
//! With `--progress plain`, also `trial exp KEY reused|training|complete|pruned|cancelled|failed`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bma::ir;
use bma::runner::{self, ModelEvaluator};
use bma::search::study::{Ended, Evaluator, Event, FunctionEvaluator, Observer, Study};
use bma::search::{self, History, TrialState};
use bma::store::{self, Sqlite, Store};
use bma::train::DeviceKind;
use bma::trial::FailKind;
use bma::watch::{self, CancelToken, FileWatcher, KeyReuse};

use super::run::{self as run_cmd, Outputs, RunArgs};
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
                        match spawn_cycle(cycle, compiled, file.clone(), base.clone(), memory.clone(), args) {
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
    }
}

/// Per experiment, the search fingerprint and spec hash of the study the last cycle ran.
type Memory = BTreeMap<String, (String, String)>;

fn spawn_cycle(
    n: u64,
    compiled: bma::Compiled,
    file: PathBuf,
    base: PathBuf,
    memory: Arc<Mutex<Memory>>,
    args: &WatchArgs,
) -> std::io::Result<Running> {
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let plain = args.progress == ProgressMode::Plain;
    let device = args.device;
    // The cycle walks the file's expressions as the trials do: a trial thread's stack.
    let spawned = std::thread::Builder::new().stack_size(bma::search::study::TRIAL_STACK).spawn(move || {
        println!("cycle {n}: start");
        let mut memory = memory.lock().unwrap_or_else(|p| p.into_inner());
        for exp in &compiled.program.experiments {
            if token.is_cancelled() {
                break;
            }
            let ctx = CycleCtx { n, compiled: &compiled, file: &file, base: &base, cancel: &token, device, plain };
            match run_experiment(&ctx, exp, &mut memory) {
                Ok(done) => done.print(n, &exp.name),
                Err(e) => println!("cycle {n} {}: error: {e}", exp.name),
            }
        }
        if token.is_cancelled() {
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
    file: &'c Path,
    base: &'c Path,
    cancel: &'c CancelToken,
    device: DeviceKind,
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

/// One experiment: its study for this version of the file, run with reuse, then its outputs.
fn run_experiment(ctx: &CycleCtx<'_>, exp: &ir::Experiment, memory: &mut Memory) -> Result<Done, String> {
    let compiled = ctx.compiled;
    let run_args = RunArgs {
        file: ctx.file.to_path_buf(),
        experiment: Some(exp.name.clone()),
        trials: None,
        seed: None,
        strategy: None,
        parallel: None,
        time: None,
        trial_time: None,
        out: None,
        set: Vec::new(),
        resume: true,
        progress: run_cmd::ProgressMode::None,
        device: "cpu".into(),
        store: None,
        study: None,
        heartbeat: None,
        stale_after: None,
        worker: false,
    };
    let plan = run_cmd::plan(compiled, &run_args)?;
    let sqlite = Sqlite::open(&plan.out.join("study.db")).map_err(|e| e.to_string())?;
    let spec = Study::spec(&exp.name, exp, &runner::spec_text(compiled), plan.seed);
    let fingerprint = bma::reuse::search_fingerprint(&compiled.program, exp);
    let err = |e: store::StoreError| e.to_string();

    let previous = sqlite.studies().map_err(err)?.into_iter().find(|s| s.name == spec.name);
    let mut replay = BTreeMap::new();
    if let Some(previous) = &previous {
        // A watch (or a run) killed mid-trial left running trials: requeue them.
        Study::recover(&sqlite, previous.id, Duration::from_secs(60)).map_err(|e| e.to_string())?;
        // An edit that leaves the search unchanged replays the previous study's points.
        if let Some((fp, hash)) = memory.get(&exp.name)
            && *fp == fingerprint
            && *hash != spec.spec_hash
        {
            for t in sqlite.history(previous.id).map_err(err)? {
                if !t.params.is_empty() {
                    replay.insert(t.number, t.params);
                }
            }
        }
    }
    sqlite.switch_to(&spec).map_err(err)?;
    let stored = sqlite.open(&spec).map_err(err)?;
    memory.insert(exp.name.clone(), (fingerprint, spec.spec_hash.clone()));
    if !stored.created_now {
        // Trials cancelled by a save in this study are proposed again (a grid would skip them).
        let history = sqlite.history(stored.id).map_err(err)?;
        let mut next = history.iter().map(|t| t.number + 1).max().unwrap_or(0);
        for t in &history {
            let cancelled = t.failed_with(FailKind::Cancelled);
            let done_elsewhere = history.iter().any(|u| u.state == TrialState::Complete && u.params == t.params);
            if cancelled && !done_elsewhere && !t.params.is_empty() {
                replay.insert(next, t.params.clone());
                next += 1;
            }
        }
    }

    let data = compiled.info(&exp.name).and_then(|i| i.data.as_ref());
    let space_ctx = bma::space::Context { fns: &compiled.program.fns, data };
    let strategy = search::strategy(&plan.strategy, &exp.space, space_ctx, &plan.pins).map_err(|e| e.to_string())?;
    let (pruner, warning) = run_cmd::pruner(plan.prune.as_ref());
    let mut notes: Vec<String> = warning.into_iter().collect();
    let mut study = Study {
        store: &sqlite,
        study: stored,
        experiment: exp,
        fns: &compiled.program.fns,
        data,
        objectives: search::study::Objectives::new(exp),
        strategy,
        pruner,
        pins: plan.pins.clone(),
        rank: run_cmd::rank_of(exp),
        settings: plan.settings.clone(),
        worker: store::worker_id(),
    };
    let model_eval = match &exp.model {
        Some(_) => {
            let threads = if plan.settings.parallel > 1 { 1 } else { 2 };
            Some(ModelEvaluator::new(&compiled.program, exp, ctx.base, ctx.device, Some(plan.out.clone()), threads)?)
        }
        None => None,
    };
    let evaluator: &dyn Evaluator = match &model_eval {
        Some(m) => m,
        None => &FunctionEvaluator,
    };
    let keys = bma::reuse::KeyContext::new(&compiled.program, exp, data, ctx.base);
    let reuse = KeyReuse::new(
        &sqlite,
        study.study.id,
        keys,
        exp.model.as_ref().map(|_| plan.out.clone()),
        study.study.spec.objectives.clone(),
        replay,
    );
    let lines = Lines { experiment: &exp.name, reuse: &reuse, plain: ctx.plain };
    let (history, ended) =
        study.run_with(evaluator, &lines, ctx.cancel.flag(), Some(&reuse)).map_err(|e| e.to_string())?;

    let mut done = tally(&history, &reuse);
    if ended == Ended::Interrupted {
        return Ok(done);
    }
    let mut extra = serde_json::Map::new();
    let (reused, trained): (Vec<u64>, Vec<u64>) = {
        let outcome = reuse.outcome();
        let reused = outcome.iter().filter(|(_, t)| t.reused).map(|(n, _)| *n).collect();
        let trained = outcome.iter().filter(|(_, t)| !t.reused).map(|(n, _)| *n).collect();
        (reused, trained)
    };
    extra.insert("watch".into(), serde_json::json!({ "cycle": ctx.n, "reused": reused, "trained": trained }));
    let Outputs { final_summary, notes: more, .. } =
        run_cmd::write_outputs(&plan, &study.study.spec, &history, ended, ctx.base, extra).map_err(|(m, _)| m)?;
    notes.extend(more);
    if let Some(best) = history.ranked().first() {
        let params: Vec<String> = best.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        done.best = Some(format!("{} -> {:?}", params.join(" "), best.values));
    }
    if let Some(f) = final_summary {
        let k = f.members.len();
        done.final_model = Some(format!("{} ({k} member{})", f.method, plural(k)));
    }
    done.notes = notes;
    done.out = Some(plan.out.clone());
    Ok(done)
}

/// How the trials this cycle started ended.
fn tally(history: &History, reuse: &KeyReuse<'_>) -> Done {
    let mut done = Done::default();
    for (number, t) in reuse.outcome() {
        if t.reused {
            done.reused += 1;
            continue;
        }
        match history.get(number) {
            Some(trial) if is_cancelled(trial) => done.cancelled += 1,
            Some(trial) if matches!(trial.state, TrialState::Failed | TrialState::Infeasible) => {
                done.trained += 1;
                done.failed += 1;
            }
            Some(trial) if trial.state == TrialState::Pruned => {
                done.trained += 1;
                done.pruned += 1;
            }
            Some(trial) if trial.state == TrialState::Complete => done.trained += 1,
            _ => {}
        }
    }
    done
}

fn is_cancelled(trial: &search::Trial) -> bool {
    trial.failed_with(FailKind::Cancelled)
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
            Event::Step { .. } => {}
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
