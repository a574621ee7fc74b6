//! `bma run`, `bma eval`, `bma ls`: search, train, rank and report.
//!
//! Exit codes: 0 the study ran (or resumed) to its budget, time or the end of its
//! strategy; 1 the input is wrong (diagnostics, a bad flag, a study in `--out` that
//! needs `--resume`, a spec that changed under `--resume`); 2 bma failed (the store,
//! I/O); 130 interrupted by Ctrl-C (everything recorded; `--resume` continues).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bma::ir::{self, Point, Value};
use bma::runner::{self, ModelEvaluator};
use bma::search::prune::{self, NoPruner};
use bma::search::study::{
    self, Ended, Evaluator, Event, FunctionEvaluator, INFEASIBLE, MAX_PARALLEL, Observer, Settings, Study,
};
use bma::search::{self, History, Pruner, Rank, TrialState};
use bma::store::{self, Sqlite, Store, StoreError};

use super::{Format, INPUT, INTERNAL, OK};

/// Exit code: stopped by Ctrl-C, everything recorded.
pub const INTERRUPTED: u8 = 130;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ProgressMode {
    /// Live bars on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// One line per finished trial.
    Plain,
    /// Nothing until the final table.
    None,
}

/// Arguments of `bma run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The .bma file.
    pub file: PathBuf,
    /// The experiment to run (needed when the file has several).
    #[arg(long)]
    pub experiment: Option<String>,
    /// The study's trial budget (overrides `search { trials = }`).
    #[arg(long)]
    pub trials: Option<u64>,
    /// The study seed (overrides `search { seed = }`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The strategy, e.g. `random`, `tpe(startup: 5)` (overrides `search { strategy = }`).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Trials at once (overrides `search { parallel = }`).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// The study's time budget, e.g. `90s`, `5m`, `1h30m` (overrides `search { time = }`).
    #[arg(long, value_parser = parse_duration)]
    pub time: Option<Duration>,
    /// One trial's time limit (checked between training batches; a trial over it fails).
    #[arg(long = "trial-time", value_parser = parse_duration)]
    pub trial_time: Option<Duration>,
    /// The output folder (default: `report { out = }`, else `runs/<experiment>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Pin a parameter: `--set depth=2` (repeatable).
    #[arg(long = "set", value_name = "P=V")]
    pub set: Vec<String>,
    /// Continue the study stored in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Where to train: cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where the study lives: `postgres://user@host/db` (shared with `bma worker`s on any
    /// machine: created, or joined if it exists) or a SQLite file (`sqlite://PATH` or a
    /// path). Default: `BMA_STORE` if set, else `<out>/study.db`.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The study's name in the store (default: the experiment's name).
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// How often this process refreshes its running trials' heartbeat (default 5s).
    #[arg(long, value_parser = parse_duration)]
    pub heartbeat: Option<Duration>,
    /// In a shared study (`--store`), a running trial with no heartbeat for this long
    /// is requeued for another worker (default 60s); stored with the study for its workers.
    #[arg(long = "stale-after", value_parser = parse_duration)]
    pub stale_after: Option<Duration>,
    /// Set by `bma worker`: run trials (models under `--out`) but leave the study-wide
    /// outputs (results files, report, final model) to `bma run`.
    #[arg(skip)]
    pub worker: bool,
}

/// The `--store` URL: the flag, else a non-empty `BMA_STORE`.
pub fn store_url(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string).or_else(|| std::env::var("BMA_STORE").ok().filter(|s| !s.trim().is_empty()))
}

/// What `bma run --store` records with a shared study so that `bma worker`s, which
/// have only the study's name, run it with the same budget and settings: the run's
/// flags (the file's `search { }` settings travel in the stored spec text).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredOptions {
    pub experiment: Option<String>,
    pub trials: Option<u64>,
    pub strategy: Option<String>,
    pub time_s: Option<f64>,
    pub trial_time_s: Option<f64>,
    #[serde(default)]
    pub set: Vec<String>,
    pub heartbeat_s: Option<f64>,
    pub stale_after_s: Option<f64>,
}

impl StoredOptions {
    fn of(args: &RunArgs, experiment: &str) -> StoredOptions {
        StoredOptions {
            experiment: Some(experiment.to_string()),
            trials: args.trials,
            strategy: args.strategy.clone(),
            time_s: args.time.map(|d| d.as_secs_f64()),
            trial_time_s: args.trial_time.map(|d| d.as_secs_f64()),
            set: args.set.clone(),
            heartbeat_s: args.heartbeat.map(|d| d.as_secs_f64()),
            stale_after_s: args.stale_after.map(|d| d.as_secs_f64()),
        }
    }

    /// `args` with these options in place of its study-wide flags (its local ones kept).
    fn apply(&self, args: &RunArgs) -> RunArgs {
        let secs = |s: Option<f64>| s.and_then(bma::seconds);
        RunArgs {
            file: args.file.clone(),
            experiment: self.experiment.clone().or_else(|| args.experiment.clone()),
            trials: self.trials,
            seed: args.seed,
            strategy: self.strategy.clone(),
            parallel: args.parallel,
            time: secs(self.time_s),
            trial_time: secs(self.trial_time_s),
            out: args.out.clone(),
            set: self.set.clone(),
            resume: args.resume,
            progress: args.progress,
            device: args.device.clone(),
            store: args.store.clone(),
            study: args.study.clone(),
            heartbeat: secs(self.heartbeat_s),
            stale_after: secs(self.stale_after_s),
            worker: args.worker,
        }
    }
}

/// `90`, `90s`, `5m`, `1h30m`, `2h`, `1.5m`, and the language's units: `500ms`, `30min`, `20us`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(s) = t.parse::<f64>() {
        return bma::seconds(s).ok_or_else(|| format!("bad duration `{t}`"));
    }
    let bad = || format!("bad duration `{t}` (use e.g. 90s, 5m, 30min, 1h30m, 500ms)");
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let letters = rest[digits..].find(|c: char| !c.is_alphabetic()).map_or(rest.len(), |i| digits + i);
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = match &rest[digits..letters] {
            "" => return Err(format!("bad duration `{t}`: a number without a unit at the end")),
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = &rest[letters..];
    }
    bma::seconds(total).ok_or_else(bad)
}

/// Parses `name` or `name(key: value, ...)` (values: numbers, names, `[a, b]`) as a strategy value.
pub fn parse_call(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let bad = || format!("cannot read `{t}` (expected e.g. `tpe` or `tpe(startup: 5)`)");
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let Some(open) = t.find('(') else {
        return if ident(t) { Ok(Value::sym(t)) } else { Err(bad()) };
    };
    let name = t[..open].trim();
    let inner = t[open + 1..].strip_suffix(')').ok_or_else(bad)?;
    if !ident(name) {
        return Err(bad());
    }
    let atom = |s: &str| -> Result<Value, String> {
        let s = s.trim();
        if let Ok(i) = s.parse::<i64>() {
            Ok(Value::Int(i))
        } else if let Ok(x) = s.parse::<f64>() {
            Ok(Value::Float(x))
        } else if ident(s) {
            Ok(Value::sym(s))
        } else {
            Err(bad())
        }
    };
    let mut args = Vec::new();
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut cur = String::new();
    for c in inner.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    for p in parts {
        let (key, val) = match p.split_once(':') {
            Some((k, v)) if ident(k.trim()) => (Some(k.trim().to_string()), v.trim().to_string()),
            _ => (None, p.trim().to_string()),
        };
        let value = if let Some(list) = val.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Value::List(list.split(',').filter(|s| !s.trim().is_empty()).map(atom).collect::<Result<_, _>>()?)
        } else {
            atom(&val)?
        };
        args.push((key, value));
    }
    Ok(Value::Call(ir::CallValue { name: name.to_string(), args }))
}

fn setting(exp: &ir::Experiment, key: &str) -> Result<Option<Value>, String> {
    match exp.search_setting(key) {
        None => Ok(None),
        Some(s) => ir::eval(&s.value, &BTreeMap::<String, Value>::new())
            .map(Some)
            .map_err(|e| format!("search {{ {key} = ... }}: {}", e.message)),
    }
}

/// A note when more trials run at once than the machine has cores: they share the cores, so
/// what they measure in time is slowed by each other.
pub(super) fn oversubscribed(parallel: usize) -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (parallel > cores).then(|| {
        format!(
            "{parallel} trials at once on {cores} cores: they share the cores, so train_time, \
             latency and throughput are measured under contention"
        )
    })
}

fn positive(v: Option<Value>, key: &str) -> Result<Option<u64>, String> {
    match v {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(i) if i >= 0 => Ok(Some(i as u64)),
            _ => Err(format!("search {{ {key} = {v} }} must be a non-negative int")),
        },
    }
}

/// The pruner a `prune = ...` value names (`bma check` validated it; a value that
/// still makes no sense runs unpruned, with the reason as a warning).
pub(super) fn pruner(value: Option<&Value>) -> (Box<dyn Pruner>, Option<String>) {
    match value {
        None => (Box::new(NoPruner), None),
        Some(v) => match prune::from_setting(v) {
            Ok(p) => (p, None),
            Err(e) => (Box::new(NoPruner), Some(format!("{e}; running without pruning"))),
        },
    }
}

/// The embedded store `<out>/study.db` (or `--store` a SQLite file) with the study
/// opened, refusing to reuse a folder's study without `--resume`.
fn open_local(plan: &Plan<'_>, args: &RunArgs) -> Result<Opened, Failure> {
    let exp = plan.exp;
    let db = plan.out.join("study.db");
    let existed = db.exists();
    let sqlite = Sqlite::open(&db).map_err(internal)?;
    let name = args.study.clone().unwrap_or_else(|| exp.name.clone());
    let spec = Study::spec(&name, exp, &spec_text(plan.compiled), plan.seed);
    if existed && !args.resume {
        let summaries = sqlite.studies().map_err(internal)?;
        if let Some(s) = summaries.iter().find(|s| s.name == spec.name) {
            let n: u64 = s.counts.values().sum();
            return Err((
                format!(
                    "{} already holds study `{}` ({n} trials, {}); pass --resume to continue it, or choose another --out",
                    db.display(),
                    s.name,
                    s.state.as_str()
                ),
                INPUT,
            ));
        }
    }
    match sqlite.open(&spec) {
        Ok(s) => Ok((Box::new(sqlite), s)),
        Err(e @ StoreError::SpecMismatch { .. }) => Err((e.to_string(), INPUT)),
        Err(e) => Err(internal(e)),
    }
}

/// `BMA_TRIAL_DELAY` (a duration such as `200ms`... see [`parse_duration`]): how long
/// each pure-function trial takes. Such a trial finishes in microseconds, too fast to
/// kill a worker in the middle of one or to watch a distributed study; the fault
/// tests and demos set it. Unset (the default): no delay.
fn trial_delay() -> Result<Option<Duration>, String> {
    match std::env::var("BMA_TRIAL_DELAY") {
        Ok(v) if !v.trim().is_empty() => parse_duration(&v).map(Some).map_err(|e| format!("BMA_TRIAL_DELAY: {e}")),
        _ => Ok(None),
    }
}

/// A pure-function trial that takes a set time ([`trial_delay`]), then is measured as usual.
struct SlowFunction(Duration);

impl Evaluator for SlowFunction {
    fn evaluate(&self, trial: study::TrialRef<'_>, on_step: &mut study::StepFn<'_>) -> study::Outcome {
        std::thread::sleep(self.0);
        FunctionEvaluator.evaluate(trial, on_step)
    }
}

/// Everything decided before the study starts.
pub(super) struct Plan<'c> {
    pub(super) compiled: &'c bma::Compiled,
    pub(super) exp: &'c ir::Experiment,
    pub(super) out: PathBuf,
    pub(super) settings: Settings,
    pub(super) strategy: Value,
    pub(super) prune: Option<Value>,
    pub(super) seed: u64,
    pub(super) pins: Point,
    top: usize,
}

pub(super) fn plan<'c>(compiled: &'c bma::Compiled, args: &RunArgs) -> Result<Plan<'c>, String> {
    let all = &compiled.program.experiments;
    let exp = match &args.experiment {
        Some(n) => compiled.program.experiment(n).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
            format!("no experiment `{n}` (the file has {})", names.join(", "))
        })?,
        None => match all.as_slice() {
            [] => return Err("the file defines no experiment".into()),
            [one] => one,
            many => {
                let names: Vec<&str> = many.iter().map(|e| e.name.as_str()).collect();
                return Err(format!(
                    "the file has several experiments ({}); pick one with --experiment",
                    names.join(", ")
                ));
            }
        },
    };
    let trials = match args.trials {
        Some(t) => Some(t),
        None => positive(setting(exp, "trials")?, "trials")?,
    };
    let parallel = match args.parallel {
        Some(0) => return Err("--parallel must be at least 1".into()),
        Some(p) => p,
        None => positive(setting(exp, "parallel")?, "parallel")?.unwrap_or(1).max(1) as usize,
    };
    if parallel > MAX_PARALLEL {
        return Err(format!("parallel = {parallel}: at most {MAX_PARALLEL} trials run at once in one process"));
    }
    let seed = match args.seed {
        Some(s) => s,
        None => positive(setting(exp, "seed")?, "seed")?.unwrap_or(0),
    };
    let time = match args.time {
        Some(t) => Some(t),
        None => match setting(exp, "time")? {
            None => None,
            Some(Value::Duration(d)) => bma::seconds(d.seconds.max(0.0)),
            Some(v) => match v.as_f64().and_then(bma::seconds) {
                Some(d) => Some(d),
                None => return Err(format!("search {{ time = {v} }} must be a duration")),
            },
        },
    };
    let strategy = match &args.strategy {
        Some(s) => parse_call(s).map_err(|e| format!("--strategy: {e}"))?,
        None => setting(exp, "strategy")?.unwrap_or_else(|| Value::sym("tpe")),
    };
    let strategy_name = strategy.head().unwrap_or("");
    // A grid with no trial budget runs to its end; anything else defaults to 100 trials.
    let trials = match trials {
        Some(t) => Some(t),
        None if strategy_name == "grid" || time.is_some() => None,
        None => Some(100),
    };
    let data = compiled.info(&exp.name).and_then(|i| i.data.as_ref());
    let _ = data;
    let mut pins = Point::new();
    for s in &args.set {
        let (k, v) = s.split_once('=').ok_or_else(|| format!("`--set {s}` is not of the form name=value"))?;
        let value = bma::pins::parse_pin(exp, k.trim(), v.trim()).map_err(|e| match e {
            bma::PinError::Input(m) | bma::PinError::Internal(m) => m,
        })?;
        pins.insert(k.trim().to_string(), value);
    }
    let report_out =
        exp.report_setting("out").and_then(|s| match ir::eval(&s.value, &BTreeMap::<String, Value>::new()) {
            Ok(Value::Str(p)) => Some(PathBuf::from(p)),
            _ => None,
        });
    let out = args.out.clone().or(report_out).unwrap_or_else(|| runner::default_out(&exp.name));
    let top = exp
        .report_setting("top")
        .and_then(|s| ir::eval(&s.value, &BTreeMap::<String, Value>::new()).ok())
        .and_then(|v| v.as_i64())
        .filter(|t| *t > 0)
        .unwrap_or(10) as usize;
    Ok(Plan {
        compiled,
        exp,
        out,
        settings: Settings {
            trials,
            time,
            trial_time: args.trial_time,
            parallel,
            heartbeat: args.heartbeat.unwrap_or(Duration::from_secs(5)),
            shared: store_url(args.store.as_deref()).is_some(),
            stale_after: args.stale_after.unwrap_or(Duration::from_secs(60)),
            trial_stack: super::trial_stack(),
        },
        strategy,
        prune: setting(exp, "prune")?,
        seed,
        pins,
        top,
    })
}

pub fn run(args: &RunArgs) -> ExitCode {
    let compiled = match super::compile_path(&args.file) {
        Ok(c) => c,
        Err(m) => return super::fail(m, INPUT),
    };
    if super::report_diagnostics(&compiled.sources, &compiled.diagnostics, Format::Human) {
        eprintln!("error: {} has errors; nothing was run", args.file.display());
        return ExitCode::from(INPUT);
    }
    let device: bma::train::DeviceKind = match args.device.parse() {
        Ok(d) => d,
        Err(e) => return super::fail(format!("--device: {e}"), INPUT),
    };
    let plan = match plan(&compiled, args) {
        Ok(p) => p,
        Err(m) => return super::fail(m, INPUT),
    };
    let Some(url) = store_url(args.store.as_deref()) else {
        return match execute(&plan, args, device, None) {
            Ok(code) => code,
            Err((m, code)) => super::fail(m, code),
        };
    };
    let name = args.study.clone().unwrap_or_else(|| plan.exp.name.clone());
    let options = StoredOptions::of(args, &plan.exp.name);
    let joined = match open_shared(&url, &plan, &name, &options) {
        Ok(j) => j,
        Err((m, code)) => return super::fail(m, code),
    };
    // Joining a study another run created: its stored options (budget, strategy, pins) win.
    let stored: StoredOptions = serde_json::from_str(&joined.1.spec.options).unwrap_or_default();
    if !joined.1.created_now && !joined.1.spec.options.is_empty() && stored != options {
        let merged = stored.apply(args);
        if args.progress != ProgressMode::None {
            eprintln!(
                "note: joining study `{name}`: its stored options (budget, strategy, pins) apply, not this run's flags"
            );
        }
        let plan = match self::plan(&compiled, &merged) {
            Ok(p) => p,
            Err(m) => return super::fail(m, INPUT),
        };
        return match execute(&plan, &merged, device, Some(joined)) {
            Ok(code) => code,
            Err((m, code)) => super::fail(m, code),
        };
    }
    match execute(&plan, args, device, Some(joined)) {
        Ok(code) => code,
        Err((m, code)) => super::fail(m, code),
    }
}

/// The text a study's spec hash covers: every source the compile read (root first).
pub fn spec_text(compiled: &bma::Compiled) -> String {
    runner::spec_text(compiled)
}

/// The root file's text in a stored spec text (see [`spec_text`]).
pub fn root_text(spec_text: &str) -> &str {
    spec_text.split("\n\u{1f}\n").next().unwrap_or(spec_text)
}

/// A store opened on a study: the store and the study's record.
pub type Opened = (Box<dyn Store>, store::Study);

/// Connects to a shared store and creates or joins the study `name` with this plan's spec.
fn open_shared(url: &str, plan: &Plan<'_>, name: &str, options: &StoredOptions) -> Result<Opened, Failure> {
    let store = super::connect_store(url, plan.settings.parallel + 2).map_err(internal)?;
    let mut spec = Study::spec(name, plan.exp, &spec_text(plan.compiled), plan.seed);
    spec.options = serde_json::to_string(options).map_err(internal)?;
    let study = match store.open(&spec) {
        Ok(s) => s,
        Err(e @ StoreError::SpecMismatch { .. }) => return Err((e.to_string(), INPUT)),
        Err(e) => return Err(internal(e)),
    };
    Ok((store, study))
}

/// `bma worker`'s arguments to the shared run: the study's stored options, this
/// worker's local flags.
pub fn worker_args(file: PathBuf, stored: &store::Study, local: &super::worker::WorkerArgs) -> RunArgs {
    let options: StoredOptions = serde_json::from_str(&stored.spec.options).unwrap_or_default();
    let base = RunArgs {
        file,
        experiment: Some(stored.spec.experiment.clone()),
        trials: None,
        seed: Some(stored.spec.seed),
        strategy: None,
        parallel: local.parallel,
        time: None,
        trial_time: None,
        out: local.out.clone(),
        set: Vec::new(),
        resume: false,
        progress: local.progress,
        device: local.device.clone(),
        store: Some(local.store.clone().unwrap_or_default()),
        study: Some(stored.spec.name.clone()),
        heartbeat: None,
        stale_after: None,
        worker: true,
    };
    let mut args = options.apply(&base);
    if args.experiment.is_none() {
        args.experiment = Some(stored.spec.experiment.clone());
    }
    args
}

/// `bma worker --file F` creating the study: the file's own settings, this worker's local flags.
pub fn file_worker_args(file: PathBuf, local: &super::worker::WorkerArgs) -> RunArgs {
    RunArgs {
        file,
        experiment: None,
        trials: None,
        seed: None,
        strategy: None,
        parallel: local.parallel,
        time: None,
        trial_time: None,
        out: local.out.clone(),
        set: Vec::new(),
        resume: false,
        progress: local.progress,
        device: local.device.clone(),
        store: local.store.clone(),
        study: Some(local.study.clone()),
        heartbeat: None,
        stale_after: None,
        worker: true,
    }
}

/// Runs a shared study this process has opened (`bma worker`).
pub fn run_opened(compiled: &bma::Compiled, args: &RunArgs, opened: Opened) -> ExitCode {
    let device: bma::train::DeviceKind = match args.device.parse() {
        Ok(d) => d,
        Err(e) => return super::fail(format!("--device: {e}"), INPUT),
    };
    let plan = match plan(compiled, args) {
        Ok(p) => p,
        Err(m) => return super::fail(m, INPUT),
    };
    match execute(&plan, args, device, Some(opened)) {
        Ok(code) => code,
        Err((m, code)) => super::fail(m, code),
    }
}

/// Opens the shared study `name` for a worker, checking that this compile of its spec
/// has the stored hash.
pub fn open_for_worker(
    store: Box<dyn Store>,
    compiled: &bma::Compiled,
    args: &RunArgs,
    name: &str,
) -> Result<Opened, (String, u8)> {
    let plan = plan(compiled, args).map_err(|m| (m, INPUT))?;
    let mut spec = Study::spec(name, plan.exp, &spec_text(compiled), plan.seed);
    spec.options = String::new();
    match store.open(&spec) {
        Ok(s) => Ok((store, s)),
        Err(e @ StoreError::SpecMismatch { .. }) => Err((e.to_string(), INPUT)),
        Err(e) => Err(internal(e)),
    }
}

type Failure = (String, u8);

fn internal(e: impl std::fmt::Display) -> Failure {
    (e.to_string(), INTERNAL)
}

fn execute(
    plan: &Plan<'_>,
    args: &RunArgs,
    device: bma::train::DeviceKind,
    opened: Option<Opened>,
) -> Result<ExitCode, Failure> {
    let exp = plan.exp;
    let compiled = plan.compiled;
    let (store_box, stored) = match opened {
        Some(o) => o,
        None => open_local(plan, args)?,
    };
    let shared = plan.settings.shared;
    if shared {
        std::fs::create_dir_all(&plan.out)
            .map_err(|e| internal(format!("cannot create {}: {e}", plan.out.display())))?;
    }
    if !stored.created_now && args.seed.is_some_and(|s| s != stored.spec.seed) {
        return Err((
            format!(
                "--seed {} differs from the study's stored seed {}; a resumed study keeps its seed",
                plan.seed, stored.spec.seed
            ),
            INPUT,
        ));
    }
    let quiet = args.progress == ProgressMode::None;
    if !stored.created_now {
        let requeued = Study::recover(&*store_box, stored.id, plan.settings.stale_after).map_err(internal)?;
        if !requeued.is_empty() && !quiet {
            eprintln!("resume: requeued {} trial(s) of a stopped worker: {:?}", requeued.len(), requeued);
        }
    }
    let data = compiled.info(&exp.name).and_then(|i| i.data.as_ref());
    let ctx = bma::space::Context { fns: &compiled.program.fns, data };
    for (k, v) in &plan.pins {
        bma::space::check_pin(&exp.space, k, v).map_err(|e| (e.to_string(), INPUT))?;
    }
    let strategy = search::strategy(&plan.strategy, &exp.space, ctx, &plan.pins).map_err(|e| (e.to_string(), INPUT))?;
    let (pruner, warning) = pruner(plan.prune.as_ref());
    if let Some(w) = warning
        && !quiet
    {
        eprintln!("warning: {w}");
    }
    if let Some(note) = oversubscribed(plan.settings.parallel)
        && !quiet
    {
        eprintln!("note: {note}");
    }
    let rank = rank_of(exp);
    let objectives = study::Objectives::new(exp);
    let mut study = Study {
        store: &*store_box,
        study: stored,
        experiment: exp,
        fns: &compiled.program.fns,
        data,
        objectives,
        strategy,
        pruner,
        pins: plan.pins.clone(),
        rank,
        settings: plan.settings.clone(),
        worker: store::worker_id(),
    };

    let base = args.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let model_eval = match &exp.model {
        Some(_) => {
            let threads = if plan.settings.parallel > 1 { 1 } else { 2 };
            Some(
                ModelEvaluator::new(&compiled.program, exp, &base, device, Some(plan.out.clone()), threads)
                    .map_err(|e| (e, INPUT))?,
            )
        }
        None => None,
    };
    let slow = trial_delay().map_err(|e| (e, INPUT))?.map(SlowFunction);
    let evaluator: &dyn Evaluator = match (&model_eval, &slow) {
        (Some(m), _) => m,
        (None, Some(s)) => s,
        (None, None) => &FunctionEvaluator,
    };

    let stop = install_ctrlc();
    let mode = match args.progress {
        ProgressMode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
        ProgressMode::Auto | ProgressMode::Plain => Mode::Plain,
        ProgressMode::None => Mode::None,
    };
    let done_before =
        store_box.history(study.study.id).map_err(internal)?.iter().filter(|t| t.state.is_finished()).count();
    let progress = Progress::new(mode, plan.settings.trials, done_before, &study.study.spec);
    let (history, ended) = match study.run(evaluator, &progress, stop) {
        Ok(r) => r,
        Err(e) => {
            progress.finish();
            return Err(internal(e));
        }
    };
    progress.finish();

    if args.worker {
        let spec = &study.study.spec;
        print!("{}", super::report::table(&history, spec, &exp.space, plan.top));
        let mine = history.trials.iter().filter(|t| progress.ran.lock().is_ok_and(|r| r.contains(&t.number))).count();
        println!(
            "{}; {} ({}); this worker ran {mine}; results in the store",
            counts_line(&history),
            ended.state().as_str(),
            match ended {
                Ended::Budget => "trial budget spent",
                Ended::Time => "time budget spent",
                Ended::Exhausted => "the strategy has nothing more to propose",
                Ended::Interrupted => "Ctrl-C; start the worker again to continue",
            },
        );
        return Ok(ExitCode::from(if ended == Ended::Interrupted { INTERRUPTED } else { OK }));
    }

    // The best trial's model, then the results files, from the store's history.
    let spec = &study.study.spec;
    let Outputs { text, notes, .. } = write_outputs(plan, spec, &history, ended, &base, serde_json::Map::new())?;
    print!("{text}");
    for n in notes {
        eprintln!("note: {n}");
    }
    println!(
        "{}; {} ({}); results in {}",
        counts_line(&history),
        ended.state().as_str(),
        match ended {
            Ended::Budget => "trial budget spent",
            Ended::Time => "time budget spent",
            Ended::Exhausted => "the strategy has nothing more to propose",
            Ended::Interrupted => "Ctrl-C; --resume continues",
        },
        plan.out.display()
    );
    Ok(ExitCode::from(if ended == Ended::Interrupted { INTERRUPTED } else { OK }))
}

/// `60 trials: 3 complete, 52 pruned, 0 failed, 5 infeasible before training`.
fn counts_line(history: &History) -> String {
    let counts = |s: TrialState| history.trials.iter().filter(|t| t.state == s).count();
    let infeasible = history.trials.iter().filter(|t| t.state == TrialState::Infeasible).count();
    let apart = if infeasible > 0 { format!(", {infeasible} {INFEASIBLE}") } else { String::new() };
    format!(
        "{} trials: {} complete, {} pruned, {} failed{apart}",
        history.trials.len(),
        counts(TrialState::Complete),
        counts(TrialState::Pruned),
        counts(TrialState::Failed)
    )
}

/// What [`write_outputs`] made.
pub(super) struct Outputs {
    pub(super) final_summary: Option<bma::final_model::FinalSummary>,
    /// The terminal report: the ranked table, the best trial on test, the final model.
    pub(super) text: String,
    /// What could not be made, and why.
    pub(super) notes: Vec<String>,
}

/// Everything a finished study leaves in its out folder, from the store's history:
/// `best/` (evaluated on test), `final/` (the `average` section over the ranked
/// trials' saved models, not after an interrupted run), then `results.json` (with `extra`
/// merged in), `results.csv` and `report.html` through [`super::report::write_outputs`]. `base` is the folder of the `.bma` file.
pub(super) fn write_outputs(
    plan: &Plan<'_>,
    spec: &store::StudySpec,
    history: &History,
    ended: Ended,
    base: &Path,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<Outputs, Failure> {
    let exp = plan.exp;
    let ranked = history.ranked();
    let mut best_test = None;
    let mut notes = Vec::new();
    if exp.model.is_some()
        && let Some(best) = ranked.first()
    {
        match runner::save_best(&plan.out, best.number) {
            Ok(m) => best_test = Some(m),
            Err(e) => notes.push(format!("the best trial's model could not be evaluated on test: {e}")),
        }
    }
    // The final model (the `average` section over the ranked trials' saved models),
    // evaluated once on the test split; not after an interrupted run.
    let mut final_summary = None;
    if exp.model.is_some() && ended != Ended::Interrupted {
        let saved: Vec<(search::Trial, PathBuf)> = ranked
            .iter()
            .map(|t| ((*t).clone(), runner::trial_dir(&plan.out, t.number)))
            .filter(|(_, dir)| dir.join("model.json").exists())
            .collect();
        if !saved.is_empty() {
            match bma::final_model::build(&plan.compiled.program, exp, base, &plan.out.join("final"), &saved) {
                Ok(summary) => final_summary = Some(summary),
                Err(e) => notes.push(format!("the final model could not be built: {e}")),
            }
        }
    }
    let written = super::report::write_outputs(&super::report::Outputs {
        out: &plan.out,
        spec,
        space: &exp.space,
        top: plan.top,
        history,
        state: ended.state(),
        ended: Some(format!("{ended:?}").to_lowercase()),
        best_test: best_test.as_ref(),
        final_summary: final_summary.as_ref(),
        extra,
    })?;
    notes.extend(written.notes);
    Ok(Outputs { final_summary, text: written.text, notes })
}

pub(super) fn rank_of(exp: &ir::Experiment) -> Rank {
    let Some(setting) = &exp.rank else {
        return if exp.objectives.len() > 1 { Rank::Pareto } else { Rank::Lexicographic };
    };
    match ir::eval(&setting.value, &BTreeMap::<String, Value>::new()) {
        Ok(v) if v.head() == Some("lexicographic") => Rank::Lexicographic,
        Ok(Value::Call(c)) if c.name == "weighted" => {
            let weights = exp
                .objectives
                .iter()
                .map(|o| c.arg(&o.name, usize::MAX).and_then(Value::as_f64).unwrap_or(0.0))
                .collect();
            Rank::Weighted(weights)
        }
        _ => Rank::Pareto,
    }
}

/// Ctrl-C once: stop at the next epoch, record, write the results (exit 130). Twice: exit at once.
fn install_ctrlc() -> &'static AtomicBool {
    static STOP: AtomicBool = AtomicBool::new(false);
    static PRESSES: AtomicUsize = AtomicUsize::new(0);
    let _ = ctrlc::set_handler(|| {
        if PRESSES.fetch_add(1, Ordering::SeqCst) >= 1 {
            std::process::exit(i32::from(INTERRUPTED));
        }
        STOP.store(true, Ordering::SeqCst);
    });
    &STOP
}

pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 1000.0 || v.abs() < 0.001 {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

pub fn fmt_value(v: &Value) -> String {
    match v {
        Value::Float(x) => fmt_num(*x),
        other => other.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bar,
    Plain,
    None,
}

struct ProgressState {
    done: usize,
    pruned: usize,
    failed: usize,
    running: BTreeMap<u64, u32>,
    best: Option<(u64, Vec<f64>)>,
}

/// Live progress: an indicatif bar on a terminal, plain lines otherwise.
struct Progress {
    mode: Mode,
    bar: Option<indicatif::ProgressBar>,
    state: Mutex<ProgressState>,
    total: Option<u64>,
    names: Vec<String>,
    started: Instant,
    /// The numbers of the trials this process ran.
    ran: Mutex<std::collections::BTreeSet<u64>>,
}

impl Progress {
    fn new(mode: Mode, total: Option<u64>, done: usize, spec: &store::StudySpec) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials  eta {eta}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(done as u64);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            mode,
            bar,
            state: Mutex::new(ProgressState { done, pruned: 0, failed: 0, running: BTreeMap::new(), best: None }),
            total,
            names: spec.objectives.iter().map(|(n, _)| n.clone()).collect(),
            started: Instant::now(),
            ran: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    fn values(&self, values: &[f64]) -> String {
        self.names.iter().zip(values).map(|(n, v)| format!("{n} {}", fmt_num(*v))).collect::<Vec<_>>().join(", ")
    }

    fn message(&self, s: &ProgressState) -> String {
        let best = s.best.as_ref().map(|(n, v)| format!("best #{n}: {}", self.values(v))).unwrap_or_default();
        let running: Vec<String> =
            s.running.iter().map(|(n, e)| if *e > 0 { format!("#{n} ep {e}") } else { format!("#{n}") }).collect();
        format!("{best} | running {} | pruned {} failed {}", running.join(" "), s.pruned, s.failed)
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn event(&self, event: Event<'_>) {
        if let Event::Finished { trial, .. } = &event
            && let Ok(mut ran) = self.ran.lock()
        {
            ran.insert(trial.number);
        }
        if self.mode == Mode::None {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Started { number, .. } => {
                s.running.insert(number, 0);
            }
            Event::Step { number, step, .. } => {
                s.running.insert(number, step);
            }
            Event::Finished { trial, history } => {
                s.running.remove(&trial.number);
                s.done += 1;
                match trial.state {
                    TrialState::Pruned => s.pruned += 1,
                    // The bar counts points refused before training with the failures, as before.
                    TrialState::Failed | TrialState::Infeasible => s.failed += 1,
                    _ => {}
                }
                s.best = history.ranked().first().map(|t| (t.number, t.values.clone()));
                if self.mode == Mode::Plain {
                    let what = match (&trial.state, &trial.error) {
                        (TrialState::Failed, Some(e)) => format!("failed: {e}"),
                        (TrialState::Infeasible, Some(e)) => e.clone(),
                        (state, _) => format!("{} {}", state.as_str(), self.values(&trial.values)),
                    };
                    let total = self.total.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
                    let best =
                        s.best.as_ref().map(|(n, v)| format!("best #{n} {}", self.values(v))).unwrap_or_default();
                    eprintln!(
                        "[{:>7.1}s] trial {} {} ({:.2}s) [{}/{}, {}]",
                        self.started.elapsed().as_secs_f64(),
                        trial.number,
                        what,
                        trial.duration,
                        s.done,
                        total,
                        best
                    );
                }
                if let Some(b) = &self.bar {
                    b.set_position(s.done as u64);
                }
            }
        }
        if let Some(b) = &self.bar {
            b.set_message(self.message(&s));
        }
    }
}

/// Arguments of `bma ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// A run folder or a folder of run folders (default `runs`).
    pub dir: Option<PathBuf>,
    /// List the studies in this store instead (`postgres://...`; default with no folder: `BMA_STORE`).
    #[arg(long, value_name = "URL", conflicts_with = "dir")]
    pub store: Option<String>,
}

/// One `bma ls` line: where, name, state, counts, best values.
fn ls_line(place: &str, s: &store::StudySummary) -> String {
    let n: u64 = s.counts.values().sum();
    let counts: Vec<String> = s.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let best = s
        .best
        .as_ref()
        .map(|(num, vals)| {
            let v: Vec<String> =
                s.objectives.iter().zip(vals).map(|((name, _), v)| format!("{name} {}", fmt_num(*v))).collect();
            format!("best #{num}: {}", v.join(", "))
        })
        .unwrap_or_else(|| "no complete trial".into());
    format!("{place}  {}  {}  {n} trials ({})  {best}", s.name, s.state.as_str(), counts.join(", "))
}

fn ls_store(url: &str) -> ExitCode {
    let place = store::postgres::redact(url);
    let studies = match super::connect_store(url, 1).and_then(|s| s.studies()) {
        Ok(s) => s,
        Err(e) => return super::fail(e, INTERNAL),
    };
    if studies.is_empty() {
        println!("no study in {place}");
    }
    for s in &studies {
        println!("{}", ls_line(&place, s));
    }
    ExitCode::from(OK)
}

fn find_dbs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let db = dir.join("study.db");
    if db.is_file() {
        out.push(db);
    }
    if depth == 0 {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for d in dirs {
            if d.file_name().is_some_and(|n| n == "trials" || n == "best") {
                continue;
            }
            find_dbs(&d, depth - 1, out);
        }
    }
}

pub fn ls(args: &LsArgs) -> ExitCode {
    let url = match (&args.dir, &args.store) {
        (_, Some(u)) => Some(u.clone()),
        (None, None) => store_url(None),
        (Some(_), None) => None,
    };
    if let Some(url) = url {
        return ls_store(&url);
    }
    let root = args.dir.clone().unwrap_or_else(|| PathBuf::from("runs"));
    if !root.exists() {
        return super::fail(format!("{} does not exist", root.display()), INPUT);
    }
    let mut dbs = Vec::new();
    find_dbs(&root, 3, &mut dbs);
    if dbs.is_empty() {
        println!("no study under {}", root.display());
        return ExitCode::from(OK);
    }
    let mut failed = false;
    for db in dbs {
        let dir = db.parent().unwrap_or(Path::new("."));
        match Sqlite::open(&db).and_then(|s| s.studies()) {
            Ok(studies) => {
                for s in &studies {
                    println!("{}", ls_line(&dir.display().to_string(), s));
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e}", db.display());
                failed = true;
            }
        }
    }
    ExitCode::from(if failed { INTERNAL } else { OK })
}
