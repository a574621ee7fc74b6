//! Running a study: the one API behind `bma run`, `bma worker` and `bma watch`.
//!
//! Takes a checked [`Compiled`] file and the command line's [`Overrides`]; gives a
//! [`Plan`] (the experiment, its budgets, strategy, pins, out folder, device), opens the
//! plan's study in a store ([`open_local`], [`open_shared`], [`join`]), runs it
//! ([`run`]: the trial loop of [`crate::search::study`] with the plan's strategy,
//! pruner and ranking, an [`Evaluator`] from [`evaluator`], and an optional [`Reuse`]
//! hook such as watch's [`KeyReuse`]), and writes what a finished study leaves in its
//! out folder ([`outputs::write`]), then records it finished ([`finish`]). Before any of
//! that, [`prepare_out`] refuses an out folder that cannot take a study and [`lock_out`]
//! makes the run its one owner. The front ends only parse flags, print progress and
//! map [`Error`]s to exit codes.
//!
//! Out-folder layout:
//!
//! ```text
//! <out>/study.db            the study store (SQLite, WAL)
//! <out>/.lock               the owner's worker id, advisory-locked while a run owns the folder
//! <out>/results.json        every trial, the ranking, the Pareto front, the best trial (+ its test metrics)
//! <out>/results.csv         one row per trial
//! <out>/report.html         the self-contained report
//! <out>/trials/<n>/         model.safetensors + model.json of every completed trial (model experiments)
//! <out>/best/               a copy of the best trial's model
//! <out>/final/              the `average` section's final model (final.json + members)
//! <out>/models/<key>/       `bma watch`: each complete trial's model by configuration key
//! ```
//!
//! A study records the fingerprints of its data files with its spec
//! ([`StoredOptions::data_files`]); reopening it ([`open_local`] with resume,
//! [`open_shared`], [`join`], watch's `open_for_watch`) refuses data that changed since
//! ([`check_data`]) unless the plan allows it. [`Plan::base`] is absolute, so nothing
//! stored depends on the current directory.
//!
//! **Invariants:** the library reads no environment variable and prints nothing: what a
//! front end must tell the user comes back as values ([`Plan::notes`],
//! [`resume`], [`outputs::Written`]); the results files are written from the
//! store's history (nothing kept only in memory), each through a temporary file and a
//! rename.

pub mod artifacts;
pub mod command;
pub mod darts;
pub mod evaluator;
pub mod layout;
pub mod outputs;
pub mod reuse;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::Compiled;
use crate::ir::{self, Point, Value};
use crate::search::prune::{self, NoPruner};
use crate::search::study::{self as trial_loop, Ended, Evaluator, MAX_PARALLEL, Observer, Reuse, Settings, TrialLoop};
use crate::search::{self, Pruner};
use crate::store::{self, Sqlite, Store, StoreError};
use crate::train::DeviceKind;
use crate::trial::{History, Rank};

pub use evaluator::{ModelEvaluator, SlowFunction, evaluator, trial_dir};
pub use reuse::KeyReuse;

/// Why a study could not be planned, opened or run.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The user's input is wrong (a flag, a pin, a study that needs `--resume`, a spec
    /// that changed under a stored study).
    Input(String),
    /// bma or its environment failed (the store, the file system).
    Internal(String),
}

impl Error {
    fn internal(e: impl std::fmt::Display) -> Error {
        Error::Internal(e.to_string())
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Input(m) | Error::Internal(m) => m,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// An I/O failure while doing `what` (`cannot write`) to `path`: the user's to fix
/// ([`Error::Input`], exit 1) when the path cannot be used as given (missing, not
/// writable, a file where a folder goes or the reverse); else the system's
/// ([`Error::Internal`], exit 2: a full disk, a device error).
pub fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    let message = format!("{what} {}: {e}", path.display());
    match e.kind() {
        NotFound | PermissionDenied | AlreadyExists | NotADirectory | IsADirectory | ReadOnlyFilesystem
        | DirectoryNotEmpty | InvalidInput | InvalidFilename => Error::Input(message),
        _ => Error::Internal(message),
    }
}

fn store_error(e: StoreError) -> Error {
    match e {
        e @ StoreError::SpecMismatch { .. } => Error::Input(e.to_string()),
        e => Error::internal(e),
    }
}

/// What the command line overrides of a file's `search { }` and `report { }` settings.
/// `None`/empty: the file's setting (or its default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// The experiment to run (needed when the file has several).
    pub experiment: Option<String>,
    pub trials: Option<u64>,
    pub seed: Option<u64>,
    /// A strategy in the language's syntax: `random`, `tpe(startup: 5)`.
    pub strategy: Option<String>,
    pub parallel: Option<usize>,
    pub time: Option<Duration>,
    pub trial_time: Option<Duration>,
    pub out: Option<PathBuf>,
    /// Pins, `name=value`, the value in the language's syntax.
    pub set: Vec<String>,
    pub device: DeviceKind,
    pub heartbeat: Option<Duration>,
    pub stale_after: Option<Duration>,
    /// The study lives in a store other workers share (`--store`).
    pub shared: bool,
    /// Each trial thread's stack in bytes (default [`trial_loop::TRIAL_STACK`]).
    pub trial_stack: Option<usize>,
    /// Continue a stored study even if a data file changed since it started.
    pub allow_changed_data: bool,
    /// The front end writes the outputs after [`run`] and then calls [`finish`]: the study
    /// is `finished` only once they are written ([`Settings::caller_finishes`]).
    pub caller_finishes: bool,
    /// `--devices 0,1`: the devices of a command study's trials, instead of its
    /// `trial { devices = }` (see [`command::CommandSpec::devices`]), or those a model
    /// experiment's trials spread over (`train::device::placements`). This machine's own,
    /// so never stored with the study.
    pub devices: Option<Vec<String>>,
}

/// Something a front end should tell the user before the study starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A setting that will not act as written.
    Warning(String),
    /// Worth knowing.
    Note(String),
}

/// Everything decided before the study starts.
pub struct Plan<'c> {
    pub compiled: &'c Compiled,
    pub experiment: &'c ir::Experiment,
    /// The folder of the `.bma` file, absolute: relative data paths are read from it.
    pub base: PathBuf,
    pub out: PathBuf,
    pub settings: Settings,
    pub strategy: Value,
    /// What `strategy = auto` (the default) picked and why, e.g. `gp (one objective, ...)`;
    /// `None` when the strategy was named.
    pub auto: Option<String>,
    pub prune: Option<Value>,
    pub seed: u64,
    /// The seed was given on the command line (a resumed study must keep its own).
    pub seed_given: bool,
    pub pins: Point,
    /// Rows of the ranked table (`report { top = }`).
    pub top: usize,
    pub rank: Rank,
    pub device: DeviceKind,
    /// Warnings and notes for the user (an unusable pruner, more trials than cores).
    pub notes: Vec<Note>,
    /// Reopen a study whose data files changed since it started (see [`check_data`]).
    pub allow_changed_data: bool,
    /// [`Overrides::devices`]: a command study's devices on this machine.
    pub devices: Option<Vec<String>>,
    /// [`Plan::data_files`], taken at its first call: the study's spec and the evaluator's
    /// saved models share one pass over the data files.
    data_files: std::sync::OnceLock<Vec<crate::data::Fingerprint>>,
}

impl<'c> Plan<'c> {
    /// The plan of `compiled`'s experiment (the one `overrides` names, or the only one).
    pub fn new(compiled: &'c Compiled, overrides: &Overrides) -> Result<Plan<'c>, Error> {
        let input = Error::Input;
        let exp = experiment(compiled, overrides.experiment.as_deref()).map_err(input)?;
        let trials = match overrides.trials {
            Some(t) => Some(t),
            None => non_negative(setting(exp, "trials").map_err(input)?, "trials").map_err(input)?,
        };
        let parallel = match overrides.parallel {
            Some(0) => return Err(input("--parallel must be at least 1".into())),
            Some(p) => p,
            None => {
                non_negative(setting(exp, "parallel").map_err(input)?, "parallel").map_err(input)?.unwrap_or(1).max(1)
                    as usize
            }
        };
        if parallel > MAX_PARALLEL {
            return Err(input(format!(
                "parallel = {parallel}: at most {MAX_PARALLEL} trials run at once in one process"
            )));
        }
        let seed = match overrides.seed {
            Some(s) => s,
            None => non_negative(setting(exp, "seed").map_err(input)?, "seed").map_err(input)?.unwrap_or(0),
        };
        let time = match overrides.time {
            Some(t) => Some(t),
            None => match setting(exp, "time").map_err(input)? {
                None => None,
                Some(Value::Duration(d)) => crate::seconds(d.seconds.max(0.0)),
                Some(v) => match v.as_f64().and_then(crate::seconds) {
                    Some(d) => Some(d),
                    None => return Err(input(format!("search {{ time = {v} }} must be a duration"))),
                },
            },
        };
        let strategy = match &overrides.strategy {
            Some(s) => parse_value(s).map_err(|e| input(format!("--strategy: {e}")))?,
            None => setting(exp, "strategy").map_err(input)?.unwrap_or_else(|| Value::sym("auto")),
        };
        // A grid with no trial budget runs to its end; anything else defaults to 100 trials.
        let trials = match trials {
            Some(t) => Some(t),
            None if strategy.head() == Some("grid") || time.is_some() => None,
            None => Some(100),
        };
        let mut pins = Point::new();
        for s in &overrides.set {
            let (k, v) =
                s.split_once('=').ok_or_else(|| input(format!("`--set {s}` is not of the form name=value")))?;
            let value = crate::pins::parse_pin(exp, k.trim(), v.trim()).map_err(|e| match e {
                crate::PinError::Input(m) | crate::PinError::Internal(m) => input(m),
            })?;
            pins.insert(k.trim().to_string(), value);
        }
        let data = compiled.info(&exp.name).and_then(|i| i.data.as_ref());
        for (k, v) in &pins {
            crate::space::check_pin(&exp.space, k, v).map_err(|e| input(e.to_string()))?;
        }
        // `auto` (the default) is decided here, where the objectives and the budget are known.
        // Where it picks `gp`, the study runs `auto` itself, which starts as `gp` and may hand
        // over to `tpe` (search::auto::Auto); otherwise the strategy it picks.
        let (strategy, auto) = match strategy.head() {
            Some("auto") => {
                let choice = search::auto::choose(&exp.space, &pins, exp.objectives.len(), trials);
                if choice.strategy == Value::sym("gp") {
                    let rule = search::auto::AutoOptions::default().describe();
                    (Value::sym("auto"), Some(format!("{} ({}); {rule}", choice.strategy, choice.reason)))
                } else {
                    (choice.strategy.clone(), Some(format!("{} ({})", choice.strategy, choice.reason)))
                }
            }
            _ => (strategy, None),
        };
        // The strategy is built once here so that a bad one is refused before anything opens.
        let ctx = crate::space::Context { fns: &compiled.program.fns, data };
        search::strategy(&strategy, &exp.space, ctx, &pins).map_err(|e| input(e.to_string()))?;
        let report_out = report_setting(exp, "out").and_then(|v| match v {
            Value::Str(p) => Some(PathBuf::from(p)),
            _ => None,
        });
        let out = overrides.out.clone().or(report_out).unwrap_or_else(|| default_out(&exp.name));
        let prune = setting(exp, "prune").map_err(input)?;
        if overrides.devices.is_some() && exp.trial.is_none() && exp.model.is_none() {
            return Err(input(format!(
                "--devices places trials that train a model or run a command; experiment `{}` computes its \
                 objectives itself",
                exp.name
            )));
        }
        if let (Some(devices), None) = (&overrides.devices, &exp.trial) {
            crate::train::device::placements(devices, overrides.device).map_err(input)?;
        }
        // A device this machine lacks (`cuda` without a card), or `train { precision = f16 }`
        // on one that cannot compute in it: refused here, before any trial.
        if exp.trial.is_none() && exp.model.is_some() {
            let devices = match &overrides.devices {
                Some(d) => crate::train::device::placements(d, overrides.device).map_err(input)?,
                None => vec![overrides.device],
            };
            for d in &devices {
                crate::train::device::check(*d).map_err(|e| input(format!("--device: {e}")))?;
            }
            crate::train::precision::preflight(exp, &devices).map_err(input)?;
        }
        let mut notes = Vec::new();
        if let Some(a) = &auto {
            notes.push(Note::Note(format!("strategy auto: {a}")));
        }
        if let Err(w) = pruner(prune.as_ref()) {
            notes.push(Note::Warning(w));
        }
        if let Some(n) = oversubscribed(parallel) {
            notes.push(Note::Note(n));
        }
        Ok(Plan {
            compiled,
            experiment: exp,
            base: base(compiled),
            out,
            settings: Settings {
                trials,
                time,
                trial_time: overrides.trial_time,
                parallel,
                heartbeat: overrides.heartbeat.unwrap_or(Duration::from_secs(5)),
                shared: overrides.shared,
                stale_after: overrides.stale_after.unwrap_or(Duration::from_secs(60)),
                trial_stack: overrides.trial_stack.unwrap_or(trial_loop::TRIAL_STACK),
                caller_finishes: overrides.caller_finishes,
            },
            strategy,
            auto,
            prune,
            seed,
            seed_given: overrides.seed.is_some(),
            pins,
            top: report_top(exp),
            rank: rank(exp),
            device: overrides.device,
            notes,
            allow_changed_data: overrides.allow_changed_data,
            devices: overrides.devices.clone(),
            data_files: std::sync::OnceLock::new(),
        })
    }

    /// The spec this plan's study is stored under, named `name`; its options record the
    /// data files' fingerprints ([`StoredOptions::data_files`]).
    pub fn spec(&self, name: &str) -> store::StudySpec {
        self.spec_with(name, StoredOptions::default())
    }

    /// [`Plan::spec`] recording `options` too (a shared study's flags for its workers);
    /// the data files are read and hashed once, here.
    fn spec_with(&self, name: &str, options: StoredOptions) -> store::StudySpec {
        let mut spec = TrialLoop::spec(name, self.experiment, &spec_text(self.compiled), self.seed);
        let options = StoredOptions { data_files: self.data_files(), auto: self.auto.clone(), ..options };
        spec.options = serde_json::to_string(&options).unwrap_or_default();
        spec
    }

    /// Fingerprints of the data files the experiment reads (none for built-in or synthetic
    /// data, or data that does not evaluate: loading it reports that); with searched data
    /// settings, of the files any of its first [`DATA_SETTINGS_FINGERPRINTED`] settings
    /// reads, each file once. Taken at the first call and the same for the plan's life: the
    /// evaluator takes them before it loads the data, and the study's spec records them, in
    /// either order, without a second pass.
    pub fn data_files(&self) -> Vec<crate::data::Fingerprint> {
        self.data_files
            .get_or_init(|| {
                let (points, _) = ir::data_search::data_points(self.experiment, DATA_SETTINGS_FINGERPRINTED);
                let mut paths: Vec<PathBuf> = Vec::new();
                for at in &points {
                    if let Some(Ok(value)) =
                        ir::data_search::data_value(self.experiment, &self.compiled.program.fns, at)
                    {
                        for p in crate::data::files(&value, &self.base) {
                            if !paths.contains(&p) {
                                paths.push(p);
                            }
                        }
                    }
                }
                paths.iter().filter_map(|p| crate::data::Fingerprint::of(p).ok()).collect()
            })
            .clone()
    }

    /// Training threads per trial: one when several trials share the cores.
    pub fn threads(&self) -> usize {
        if self.settings.parallel > 1 { 1 } else { 2 }
    }
}

/// Data settings ([`ir::data_search::data_points`]) whose files a study fingerprints at most.
pub const DATA_SETTINGS_FINGERPRINTED: usize = 64;

/// The experiment `name` names, or the file's only one.
fn experiment<'c>(compiled: &'c Compiled, name: Option<&str>) -> Result<&'c ir::Experiment, String> {
    let all = &compiled.program.experiments;
    let names = || all.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ");
    match name {
        Some(n) => {
            compiled.program.experiment(n).ok_or_else(|| format!("no experiment `{n}` (the file has {})", names()))
        }
        None => match all.as_slice() {
            [] => Err("the file defines no experiment".into()),
            [one] => Ok(one),
            _ => Err(format!("the file has several experiments ({}); pick one with --experiment", names())),
        },
    }
}

/// The folder of the compiled root file (where relative data paths are read from),
/// absolute whatever the current directory (see [`crate::data::base_folder`]).
fn base(compiled: &Compiled) -> PathBuf {
    crate::data::base_folder(compiled.sources.iter().next().and_then(|(_, s)| s.path.as_deref()))
}

fn setting(exp: &ir::Experiment, key: &str) -> Result<Option<Value>, String> {
    match exp.search_setting(key) {
        None => Ok(None),
        Some(s) => ir::eval(&s.value, &BTreeMap::<String, Value>::new())
            .map(Some)
            .map_err(|e| format!("search {{ {key} = ... }}: {}", e.message)),
    }
}

fn report_setting(exp: &ir::Experiment, key: &str) -> Option<Value> {
    exp.report_setting(key).and_then(|s| ir::eval(&s.value, &BTreeMap::<String, Value>::new()).ok())
}

fn non_negative(v: Option<Value>, key: &str) -> Result<Option<u64>, String> {
    match v {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(i) if i >= 0 => Ok(Some(i as u64)),
            _ => Err(format!("search {{ {key} = {v} }} must be a non-negative int")),
        },
    }
}

/// A value written on the command line, read by the language's own parser and evaluator
/// (names that nothing binds are symbols: `tpe`, `tpe(startup: 5)`, `[1, 2]`).
pub fn parse_value(text: &str) -> Result<Value, String> {
    let expr =
        crate::syntax::parse_expr(text.trim()).map_err(|d| format!("cannot read `{}`: {}", text.trim(), d.message))?;
    ir::eval(&expr, &BTreeMap::<String, Value>::new())
        .map_err(|e| format!("cannot read `{}`: {}", text.trim(), e.message))
}

/// `runs/<experiment>`: where a run writes when neither `--out` nor `report { out = }` says.
pub fn default_out(experiment: &str) -> PathBuf {
    Path::new("runs").join(experiment)
}

/// `report { top = }`, default 10.
pub fn report_top(exp: &ir::Experiment) -> usize {
    report_setting(exp, "top").and_then(|v| v.as_i64()).filter(|t| *t > 0).unwrap_or(10) as usize
}

/// The experiment's ranking: its `rank = ...` setting, else Pareto for several
/// objectives and lexicographic for one. (The checker validated the setting; one that
/// still makes no sense ranks by Pareto.)
pub fn rank(exp: &ir::Experiment) -> Rank {
    let Some(setting) = &exp.rank else {
        return if exp.objectives.len() > 1 { Rank::Pareto } else { Rank::Lexicographic };
    };
    let names: Vec<String> = exp.objectives.iter().map(|o| o.name.clone()).collect();
    ir::eval(&setting.value, &BTreeMap::<String, Value>::new())
        .ok()
        .and_then(|v| Rank::from_setting(&v, &names).ok())
        .unwrap_or(Rank::Pareto)
}

/// The pruner a `prune = ...` value names; `Err` with the reason when it makes no sense
/// (the study then runs unpruned).
pub fn pruner(value: Option<&Value>) -> Result<Box<dyn Pruner>, String> {
    match value {
        None => Ok(Box::new(NoPruner)),
        Some(v) => prune::from_setting(v).map_err(|e| format!("{e}; running without pruning")),
    }
}

/// A note when more trials run at once than the machine has cores: they share the cores, so
/// what they measure in time is slowed by each other.
pub fn oversubscribed(parallel: usize) -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (parallel > cores).then(|| {
        format!(
            "{parallel} trials at once on {cores} cores: they share the cores, so train_time, \
             latency and throughput are measured under contention"
        )
    })
}

/// The text a study's spec hash is taken of: every source the compilation read (the
/// root file, then its local imports), joined.
pub fn spec_text(compiled: &Compiled) -> String {
    compiled.sources.iter().map(|(_, s)| s.text.as_str()).collect::<Vec<_>>().join("\n\u{1f}\n")
}

/// The root file's text in a stored spec text (see [`spec_text`]).
pub fn root_text(spec_text: &str) -> &str {
    spec_text.split("\n\u{1f}\n").next().unwrap_or(spec_text)
}

/// A study opened in a store, ready to run.
pub struct Opened {
    pub store: Box<dyn Store>,
    pub study: store::Study,
}

/// Makes sure the plan's out folder can take a study before anything is opened or
/// trained: it is created if missing; an existing one must be a folder, writable, and
/// either empty or a study's (it holds `study.db` or `results.json`), unless `force`
/// (the user accepts that its files may be replaced); with `resume` it must hold a study
/// already, and nothing is created. Every refusal is [`Error::Input`] naming the folder.
pub fn prepare_out(out: &Path, force: bool, resume: bool) -> Result<(), Error> {
    let shown = out.display();
    if resume {
        no_study_to_resume(out)?;
    }
    if out.exists() && !out.is_dir() {
        return Err(Error::Input(format!("the output folder {shown} is a file, not a folder; choose another --out")));
    }
    if out.is_dir() && !force && !["study.db", "results.json"].iter().any(|f| out.join(f).exists()) {
        let mut entries =
            std::fs::read_dir(out).map_err(|e| Error::Input(format!("cannot read the output folder {shown}: {e}")))?;
        // (`.lock`: left by a run that could not start.)
        if entries.any(|e| e.is_ok_and(|e| e.file_name() != LOCK)) {
            return Err(Error::Input(format!(
                "the output folder {shown} is not empty and holds no study; its files could be replaced: \
                 choose another --out, or pass --force to write into it"
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Input(format!("cannot create the output folder {shown}: {e}")))?;
    let probe = out.join(format!(".bma-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| Error::Input(format!("the output folder {shown} is not writable: {e}")))
}

/// `--resume` on a folder that holds no study: a mistyped folder must not start a new
/// study silently (nor be created).
fn no_study_to_resume(out: &Path) -> Result<(), Error> {
    if out.join("study.db").exists() {
        return Ok(());
    }
    Err(Error::Input(format!(
        "--resume: {} holds no study (no study.db); check the --out folder, or drop --resume to start a new study",
        out.display()
    )))
}

/// The lock file of an out folder: its owner's worker id ([`store::worker_id`]).
const LOCK: &str = ".lock";

/// A run's hold on its out folder, released when dropped or when the process ends,
/// however it ends (an advisory lock on `<out>/.lock`, which names the owner).
pub struct OutLock {
    _file: std::fs::File,
}

/// Takes `out` (an existing folder) for this process: a study folder has one owner at a
/// time. Another live owner: [`Error::Input`] naming its pid.
pub fn lock_out(out: &Path) -> Result<OutLock, Error> {
    use std::io::Write;
    let path = out.join(LOCK);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::Input(format!("cannot create {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let owner = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = owner.trim().rsplit(':').nth(1).filter(|p| !p.is_empty()).unwrap_or("unknown");
            return Err(Error::Input(format!(
                "{} is in use by another bma run (pid {pid}): a study folder has one owner at a time; \
                 wait for it to end (or stop it), then run again with --resume",
                out.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::Internal(format!("cannot lock {}: {e}", path.display())));
        }
    }
    file.set_len(0)
        .and_then(|()| file.write_all(store::worker_id().as_bytes()))
        .map_err(|e| Error::Input(format!("cannot write {}: {e}", path.display())))?;
    Ok(OutLock { _file: file })
}

/// Whether a live process of this host owns `out` ([`lock_out`]): `Some(true)` it does,
/// `Some(false)` no process does (its owner is gone), `None` it cannot be told (no lock
/// file, one written on another host, no `/proc`).
pub fn out_owned(out: &Path) -> Option<bool> {
    let id = std::fs::read_to_string(out.join(LOCK)).ok()?;
    store::local_worker_dead(id.trim()).map(|dead| !dead)
}

/// The embedded store `<out>/study.db` with the plan's study (named `name`) created or,
/// with `resume`, continued; a folder's study is never reused without `resume`, and
/// `resume` on a folder without a `study.db` is an input error (nothing is created).
pub fn open_local(plan: &Plan<'_>, name: &str, resume: bool) -> Result<Opened, Error> {
    let db = plan.out.join("study.db");
    let existed = db.exists();
    if resume {
        no_study_to_resume(&plan.out)?;
    }
    let sqlite = Sqlite::open(&db).map_err(Error::internal)?;
    let spec = plan.spec(name);
    if existed && !resume {
        let summaries = sqlite.studies().map_err(Error::internal)?;
        if let Some(s) = summaries.iter().find(|s| s.name == spec.name) {
            let n: u64 = s.counts.values().sum();
            // A study with no trial (its first run could not start) is taken over: nothing is lost.
            if n > 0 {
                return Err(Error::Input(format!(
                    "{} already holds study `{}` ({n} trials, {}); pass --resume to continue it, or choose another --out",
                    db.display(),
                    s.name,
                    s.state.as_str()
                )));
            }
        }
    }
    let study = sqlite.open(&spec).map_err(store_error)?;
    opened(plan, Box::new(sqlite), study)
}

/// Creates or joins the study `name` with this plan's spec in a shared `store`,
/// recording `options` with it for the workers.
pub fn open_shared(
    plan: &Plan<'_>,
    store: Box<dyn Store>,
    name: &str,
    options: &StoredOptions,
) -> Result<Opened, Error> {
    let study = store.open(&plan.spec_with(name, options.clone())).map_err(store_error)?;
    opened(plan, store, study)
}

/// Joins the existing shared study `name` (a worker), checking that this compile of its
/// spec has the stored hash.
pub fn join(plan: &Plan<'_>, store: Box<dyn Store>, name: &str) -> Result<Opened, Error> {
    let study = store.open(&plan.spec(name)).map_err(store_error)?;
    opened(plan, store, study)
}

fn opened(plan: &Plan<'_>, store: Box<dyn Store>, study: store::Study) -> Result<Opened, Error> {
    check_data(plan, &study)?;
    if plan.settings.shared {
        std::fs::create_dir_all(&plan.out).map_err(|e| io_error("cannot create", &plan.out, e))?;
    }
    Ok(Opened { store, study })
}

/// A study that was opened, not created, must read the data files it started with: one
/// whose size or content changed since (its fingerprint is in the stored options) is an
/// input error naming the file and what changed, unless the plan allows it. A study
/// stored by an older bma recorded no fingerprints and is not checked.
pub fn check_data(plan: &Plan<'_>, study: &store::Study) -> Result<(), Error> {
    if study.created_now || plan.allow_changed_data {
        return Ok(());
    }
    let changes = crate::data::changes(&StoredOptions::stored(study).data_files);
    if changes.is_empty() {
        return Ok(());
    }
    Err(Error::Input(format!(
        "the data changed since study `{}` started: {}; its trials were trained on the old data, so \
         continuing would mix the two (start a new study with another --out, or pass --allow-changed-data)",
        study.spec.name,
        changes.join("; ")
    )))
}

/// Before running a study that was opened, not created: a seed given on the command
/// line must be its own, and the trials of workers that are gone are requeued (their
/// numbers are returned).
pub fn resume(plan: &Plan<'_>, opened: &Opened) -> Result<Vec<u64>, Error> {
    let study = &opened.study;
    if study.created_now {
        return Ok(Vec::new());
    }
    if plan.seed_given && plan.seed != study.spec.seed {
        return Err(Error::Input(format!(
            "--seed {} differs from the study's stored seed {}; a resumed study keeps its seed",
            plan.seed, study.spec.seed
        )));
    }
    TrialLoop::recover(&*opened.store, study.id, plan.settings.stale_after).map_err(Error::internal)
}

/// What `bma run --store` records with a shared study so that `bma worker`s, which have
/// only the study's name, run it with the same budget and settings: the run's flags (the
/// file's `search { }` settings travel in the stored spec text).
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
    /// The data files as they were when the study was created ([`check_data`]).
    #[serde(default)]
    pub data_files: Vec<crate::data::Fingerprint>,
    /// What `strategy = auto` picked when the study was created, and why (the record;
    /// a resumed run decides again from the same inputs and gets the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<String>,
}

impl StoredOptions {
    /// The study-wide part of `overrides`, for experiment `experiment`.
    pub fn of(overrides: &Overrides, experiment: &str) -> StoredOptions {
        StoredOptions {
            experiment: Some(experiment.to_string()),
            trials: overrides.trials,
            strategy: overrides.strategy.clone(),
            time_s: overrides.time.map(|d| d.as_secs_f64()),
            trial_time_s: overrides.trial_time.map(|d| d.as_secs_f64()),
            set: overrides.set.clone(),
            heartbeat_s: overrides.heartbeat.map(|d| d.as_secs_f64()),
            stale_after_s: overrides.stale_after.map(|d| d.as_secs_f64()),
            data_files: Vec::new(),
            auto: None,
        }
    }

    /// The options a study stored (`spec.options`); empty when it stored none.
    pub fn stored(study: &store::Study) -> StoredOptions {
        serde_json::from_str(&study.spec.options).unwrap_or_default()
    }

    /// `overrides` with these options in place of its study-wide ones (its local ones kept).
    pub fn apply(&self, overrides: &Overrides) -> Overrides {
        let secs = |s: Option<f64>| s.and_then(crate::seconds);
        Overrides {
            experiment: self.experiment.clone().or_else(|| overrides.experiment.clone()),
            trials: self.trials,
            strategy: self.strategy.clone(),
            time: secs(self.time_s),
            trial_time: secs(self.trial_time_s),
            set: self.set.clone(),
            heartbeat: secs(self.heartbeat_s),
            stale_after: secs(self.stale_after_s),
            ..overrides.clone()
        }
    }

    /// A worker's overrides for the stored study `study`: its stored options and seed,
    /// with the worker's own `local` flags (parallel, out, device).
    pub fn for_worker(study: &store::Study, local: &Overrides) -> Overrides {
        let base = Overrides {
            experiment: Some(study.spec.experiment.clone()),
            seed: Some(study.spec.seed),
            shared: true,
            ..local.clone()
        };
        let mut overrides = StoredOptions::stored(study).apply(&base);
        if overrides.experiment.is_none() {
            overrides.experiment = Some(study.spec.experiment.clone());
        }
        overrides
    }
}

/// What watches a running study: progress, the stop flag, and trials reused from
/// earlier studies.
#[derive(Clone, Copy)]
pub struct Hooks<'h> {
    pub observer: &'h dyn Observer,
    /// Raised to stop (Ctrl-C, a save in watch mode): running trials are recorded failed.
    pub stop: &'h AtomicBool,
    pub reuse: Option<&'h dyn Reuse>,
}

/// A study that ran: everything it holds, and why it returned.
pub struct Ran {
    pub study: store::Study,
    pub history: History,
    pub ended: Ended,
    /// Sentences for the user about how the study ran (a DARTS phase taken over).
    pub notes: Vec<String>,
    /// The strategy's decisions ([`search::Strategy::decisions`]: `auto: gp → tpe after 30
    /// trials (...)`), printed as they happen ([`search::study::Event::Note`]);
    /// `results.json` records them ([`Ran::extra`]).
    pub decisions: Vec<String>,
}

impl Ran {
    /// What `results.json` records of this run beside the history: the strategy's
    /// decisions as `strategy_decisions`, when it made any.
    pub fn extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut extra = serde_json::Map::new();
        if !self.decisions.is_empty() {
            extra.insert("strategy_decisions".into(), serde_json::json!(self.decisions));
        }
        extra
    }
}

/// Runs the plan's study, opened as `study` in `store`, with `evaluator`, until its
/// budget is spent, its strategy has nothing more to propose, its time runs out, or
/// `hooks.stop` is raised. Every trial is recorded in the store as it finishes.
pub fn run(
    plan: &Plan<'_>,
    store: &dyn Store,
    study: store::Study,
    evaluator: &dyn Evaluator,
    hooks: Hooks<'_>,
) -> Result<Ran, Error> {
    let exp = plan.experiment;
    let compiled = plan.compiled;
    let data = compiled.info(&exp.name).and_then(|i| i.data.as_ref());
    let ctx = crate::space::Context { fns: &compiled.program.fns, data };
    // `strategy = darts`: the architecture phase first (`darts`), then its read-off trial.
    let phase = darts::prepare(plan, store, &study, evaluator, &store::worker_id(), hooks.stop)?;
    let (strategy, pins) = match &phase {
        Some(p) => (p.strategy(plan, ctx)?, p.pins.clone()),
        None => (
            search::strategy(&plan.strategy, &exp.space, ctx, &plan.pins).map_err(|e| Error::Input(e.to_string()))?,
            plan.pins.clone(),
        ),
    };
    let tagged = phase.as_ref().map(|p| darts::Tagged::new(evaluator, p));
    let evaluator: &dyn Evaluator = match &tagged {
        Some(t) => t,
        None => evaluator,
    };
    let mut study = TrialLoop {
        store,
        study,
        experiment: exp,
        fns: &compiled.program.fns,
        data,
        objectives: trial_loop::Objectives::new(exp),
        strategy,
        pruner: pruner(plan.prune.as_ref()).unwrap_or_else(|_| Box::new(NoPruner)),
        pins,
        rank: plan.rank.clone(),
        settings: plan.settings.clone(),
        worker: store::worker_id(),
    };
    let (history, ended) = study.run_with(evaluator, hooks.observer, hooks.stop, hooks.reuse).map_err(|e| match e {
        // The user's out folder cannot be written: theirs to fix, then `--resume`.
        search::SearchError::Output(m) => Error::Input(format!("{m}; the study stopped (--resume continues)")),
        e => Error::internal(e),
    })?;
    let notes = phase.map(|p| p.notes).unwrap_or_default();
    let decisions = study.strategy.decisions();
    Ok(Ran { study: study.study, history, ended, notes, decisions })
}

/// Records how a study that [`run`] returned ended, once its outputs are written (with
/// [`Overrides::caller_finishes`], [`run`] leaves that to the caller).
pub fn finish(store: &dyn Store, ran: &Ran) -> Result<(), Error> {
    store.set_state(ran.study.id, ran.ended.state()).map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::CallValue;

    const SPEC: &str = "experiment e {\n  space {\n    width: int in 4..=64 step 4\n    lr: float in 1e-4..1e-1 log\n    act: in {relu, gelu}\n  }\n  objective { minimize width * lr }\n  search { strategy = random  trials = 5 }\n}\n";

    fn compiled() -> Compiled {
        let c = crate::compile(&crate::Source::new("t.bma", SPEC));
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        c
    }

    #[test]
    fn a_worker_joining_a_study_whose_data_changed_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, "a,y\n1,0\n2,1\n3,0\n4,1\n").expect("write");
        let text = "experiment e {\n  data = csv(\"d.csv\", target: \"y\")\n  space { w: int in {4, 8} }\n  \
                    model { dense(w) relu dense(data.classes) }\n  objective { maximize accuracy }\n  \
                    search { strategy = random  trials = 2 }\n}\n";
        let source = crate::Source { name: "s.bma".into(), path: Some(dir.path().join("s.bma")), text: text.into() };
        let c = crate::compile(&source);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        let shared = Overrides { shared: true, out: Some(dir.path().join("out")), ..Overrides::default() };
        let plan = Plan::new(&c, &shared).expect("plans");
        assert!(plan.base.is_absolute());
        let db = dir.path().join("shared.db");
        let store = || Box::new(Sqlite::open(&db).expect("store")) as Box<dyn Store>;
        let created = open_shared(&plan, store(), "e", &StoredOptions::default()).expect("creates");
        assert_eq!(StoredOptions::stored(&created.study).data_files.len(), 1, "the CSV is fingerprinted");
        assert!(join(&plan, store(), "e").is_ok(), "same data: joins");
        std::fs::write(&csv, "a,y\n1,0\n2,1\n3,0\n4,2\n").expect("rewrite");
        match join(&plan, store(), "e") {
            Err(Error::Input(m)) => assert!(m.contains("d.csv changed") && m.contains("content differs"), "{m}"),
            Err(e) => panic!("not an input error: {e}"),
            Ok(_) => panic!("joined a study whose data changed"),
        }
        let allowed = Plan::new(&c, &Overrides { allow_changed_data: true, ..shared }).expect("plans");
        assert!(join(&allowed, store(), "e").is_ok(), "--allow-changed-data joins");
    }

    #[test]
    fn a_plan_fingerprints_its_data_files_once_and_its_spec_records_that_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, "a,y\n1,0\n2,1\n3,0\n4,1\n").expect("write");
        let text = "experiment e {\n  data = csv(\"d.csv\", target: \"y\")\n  model { dense(data.classes) }\n  \
                    objective { maximize accuracy }\n}\n";
        let source = crate::Source { name: "s.bma".into(), path: Some(dir.path().join("s.bma")), text: text.into() };
        let c = crate::compile(&source);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        let plan =
            Plan::new(&c, &Overrides { out: Some(dir.path().join("out")), ..Overrides::default() }).expect("plans");
        let first = plan.data_files();
        assert_eq!(first.len(), 1, "the CSV is fingerprinted");
        // Rewritten after the first pass: the plan does not read the file again, so the
        // spec records what the evaluator (which takes `plan.data_files()` before it loads
        // the data) saves with every model, and a resumed study still sees the change.
        std::fs::write(&csv, "a,y\n1,0\n2,1\n3,0\n4,1\n5,0\n").expect("rewrite");
        assert_eq!(plan.data_files(), first);
        let options: StoredOptions = serde_json::from_str(&plan.spec("e").options).expect("options");
        assert_eq!(options.data_files, first);
        assert_eq!(crate::data::changes(&first).len(), 1, "the rewrite is a change against that pass");
        // A new plan takes a new pass.
        let again = Plan::new(&c, &Overrides::default()).expect("plans");
        assert_ne!(again.data_files(), first);
    }

    #[test]
    fn command_line_values_are_read_by_the_language() {
        assert_eq!(parse_value("tpe").expect("reads"), Value::sym("tpe"));
        let call = parse_value(" tpe(startup: 5, local: 0.5) ").expect("reads");
        assert_eq!(
            call,
            Value::Call(CallValue {
                name: "tpe".into(),
                args: vec![(Some("startup".into()), Value::Int(5)), (Some("local".into()), Value::Float(0.5))],
            })
        );
        assert_eq!(parse_value("[1, 2 * 3]").expect("reads"), Value::List(vec![Value::Int(1), Value::Int(6)]));
        let err = parse_value("tpe(").expect_err("unclosed");
        assert!(err.starts_with("cannot read `tpe(`"), "{err}");
    }

    #[test]
    fn overrides_win_over_the_file_and_pins_take_expressions() {
        let c = compiled();
        let file = Plan::new(&c, &Overrides::default()).expect("plans");
        assert_eq!(file.strategy, Value::sym("random"));
        assert_eq!(file.settings.trials, Some(5));
        let overrides = Overrides {
            trials: Some(9),
            strategy: Some("tpe(startup: 3)".into()),
            set: vec!["width=4 * 4".into(), "lr=1e-3".into(), "act=gelu".into()],
            ..Overrides::default()
        };
        let plan = Plan::new(&c, &overrides).expect("plans");
        assert_eq!(plan.settings.trials, Some(9));
        assert_eq!(plan.strategy.head(), Some("tpe"));
        assert_eq!(plan.pins.get("width"), Some(&Value::Int(16)));
        assert_eq!(plan.pins.get("lr"), Some(&Value::Float(1e-3)));
        assert_eq!(plan.pins.get("act"), Some(&Value::sym("gelu")));
        let bad = |set: &str| match Plan::new(&c, &Overrides { set: vec![set.into()], ..Overrides::default() }) {
            Err(Error::Input(m)) => m,
            Err(e) => panic!("{set}: not an input error: {e}"),
            Ok(_) => panic!("{set}: accepted"),
        };
        assert!(bad("width=6").contains("not in the domain 4..=64 step 4"), "{}", bad("width=6"));
        assert!(bad("width=1.5").contains("expected an int"), "{}", bad("width=1.5"));
        assert!(bad("act=tanh").contains("expected one of relu, gelu"), "{}", bad("act=tanh"));
        assert!(bad("depth=2").contains("did you mean") || bad("depth=2").contains("not a parameter"));
    }

    /// With no strategy named, `auto` decides in the plan, says so in a note and records it
    /// in the study's stored options; a named strategy is left alone.
    #[test]
    fn auto_is_the_default_and_its_choice_is_noted_and_stored() {
        let auto = |text: &str, trials: Option<u64>| {
            let c = crate::compile(&crate::Source::new("t.bma", text));
            assert!(!c.has_errors(), "{:?}", c.diagnostics);
            let plan = Plan::new(&c, &Overrides { trials, ..Overrides::default() }).expect("plans");
            let spec = plan.spec("e");
            let stored: StoredOptions = serde_json::from_str(&spec.options).expect("options");
            assert_eq!(stored.auto, plan.auto);
            let json = outputs::results_json(&spec, &History::default(), "finished", None, Default::default());
            assert_eq!(json.get("strategy_auto").and_then(|v| v.as_str()), plan.auto.as_deref());
            (
                plan.strategy.to_string(),
                plan.auto.clone(),
                plan.notes.iter().any(|n| matches!(n, Note::Note(m) if m.starts_with("strategy auto: "))),
            )
        };
        let unnamed = SPEC.replace("strategy = random  ", "");
        let (strategy, why, noted) = auto(&unnamed, None);
        // `gp` runs as `auto`, which may hand over to `tpe`.
        assert_eq!(strategy, "auto");
        let rule = search::auto::AutoOptions::default().describe();
        assert_eq!(
            why.as_deref(),
            Some(format!("gp (one objective, 5 trials, 3 parameter(s) searched, 1 categorical); {rule}").as_str())
        );
        assert!(noted);
        let (strategy, why, _) = auto(&unnamed, Some(500));
        assert_eq!((strategy.as_str(), why.as_deref()), ("tpe", Some("tpe (500 trials, more than 200)")));
        let (strategy, why, noted) = auto(SPEC, None);
        assert_eq!((strategy.as_str(), why, noted), ("random", None, false));
    }

    /// The strategy's decisions (`auto`'s hand-over) reach `results.json` as
    /// `strategy_decisions`; a run without any adds nothing.
    #[test]
    fn the_strategy_decisions_are_stored_in_results_json() {
        let c = crate::compile(&crate::Source::new("t.bma", SPEC));
        let plan = Plan::new(&c, &Overrides::default()).expect("plans");
        let spec = plan.spec("e");
        let line =
            "auto: gp \u{2192} tpe after 30 trials (a GP of the 15 trials nearest the best ranks them 0.57 better \
                    than the GP of all > 0.3)"
                .to_string();
        let study = store::Study {
            id: 1,
            spec: spec.clone(),
            state: store::StudyState::Running,
            created: 0.0,
            created_now: true,
        };
        let mut ran = Ran {
            study,
            history: History::default(),
            ended: Ended::Budget,
            notes: Vec::new(),
            decisions: vec![line.clone()],
        };
        let json = outputs::results_json(&spec, &ran.history, "finished", None, ran.extra());
        assert_eq!(json.get("strategy_decisions"), Some(&serde_json::json!([line])));
        ran.decisions.clear();
        let json = outputs::results_json(&spec, &ran.history, "finished", None, ran.extra());
        assert_eq!(json.get("strategy_decisions"), None);
    }
}
