//! One watch cycle: the trials of every experiment, each taken from the trial store
//! by its [`ConfigKey`] when it is already complete there, trained otherwise.
//!
//! Takes a clean [`Compiled`] program, the folder of its file, a [`TrialStore`] and
//! a [`CancelToken`]; gives per experiment a [`Cycle`]: how many trials were reused,
//! trained and cancelled, and the complete trials ranked by the *current* objectives.
//! Objectives are computed from each trial's stored metrics at ranking time, so a
//! change to `objective` re-ranks without training.
//!
//! The points: a grid strategy walks the grid; any other strategy is asked
//! `search { trials }` times with `Rng::derive(seed, n)` and an empty history (so the
//! points do not depend on which trials were reused). Every trial of a study trains
//! with the study's seed (`search { seed }`, default 0), so a point keeps its key when
//! the space around it changes.
//!
//! **Invariant:** a trial is recorded in the store before the cycle moves on; a
//! cancelled trial is recorded `cancelled` and is never reused; nothing complete is
//! ever dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::CancelToken;
use crate::Compiled;
use crate::ast;
use crate::ir::{self, Point, Value};
use crate::reuse::KeyContext;
use crate::rng::Rng;
use crate::search::{self, Ask, AskContext, Direction, History, Rank};
use crate::space;
use crate::train::{Control, DeviceKind, Status, Trials};

/// How a stored trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Complete,
    Failed,
    /// Stopped by a save during the run; trained again when asked again.
    Cancelled,
}

/// One trial in the store, by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTrial {
    pub key: String,
    pub experiment: String,
    pub state: State,
    pub params: Point,
    pub seed: u64,
    /// Every metric measured (valid split), by name.
    pub metrics: BTreeMap<String, f64>,
    pub error: Option<String>,
    pub seconds: f64,
}

/// The trials trained so far, by key: a JSON file, rewritten atomically after each trial.
#[derive(Debug, Default)]
pub struct TrialStore {
    path: Option<PathBuf>,
    pub trials: BTreeMap<String, StoredTrial>,
}

impl TrialStore {
    /// Opens (or starts) the store at `path`.
    pub fn open(path: &Path) -> Result<TrialStore, String> {
        let trials = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(TrialStore { path: Some(path.to_path_buf()), trials })
    }

    /// A store that lives in memory only.
    pub fn in_memory() -> TrialStore {
        TrialStore::default()
    }

    /// The complete trial with this key, if any.
    pub fn complete(&self, key: &str) -> Option<&StoredTrial> {
        self.trials.get(key).filter(|t| t.state == State::Complete)
    }

    /// Records a trial (replacing what the key held) and writes the file.
    pub fn record(&mut self, trial: StoredTrial) -> Result<(), String> {
        self.trials.insert(trial.key.clone(), trial);
        let Some(path) = &self.path else { return Ok(()) };
        let text = serde_json::to_string_pretty(&self.trials).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// What one cycle did for one experiment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cycle {
    pub experiment: String,
    pub reused: usize,
    pub trained: usize,
    pub cancelled: usize,
    pub failed: usize,
    /// Complete trials, best first by the current objectives: `(key, params, objective values)`.
    pub ranked: Vec<Ranked>,
    /// Why the experiment could not run, if it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub key: String,
    pub params: Point,
    pub objectives: Vec<f64>,
}

/// What the cycle reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// A trial was taken from the store.
    Reused { experiment: &'a str, key: &'a str },
    /// A trial is about to train.
    Training { experiment: &'a str, key: &'a str, params: &'a Point },
    /// A trial ended (trained or cancelled).
    Finished { experiment: &'a str, trial: &'a StoredTrial },
}

/// Runs every experiment of `compiled` once; see the module header. Stops at the
/// first trial boundary (or epoch) after `cancel` is set.
pub fn run_cycle(
    compiled: &Compiled,
    base: &Path,
    store: &mut TrialStore,
    cancel: &CancelToken,
    device: DeviceKind,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Vec<Cycle> {
    let mut out = Vec::new();
    for e in &compiled.program.experiments {
        if cancel.is_cancelled() {
            break;
        }
        let mut cycle = Cycle { experiment: e.name.clone(), ..Cycle::default() };
        if let Err(message) = run_experiment(compiled, e, base, store, cancel, device, progress, &mut cycle) {
            cycle.error = Some(message);
        }
        out.push(cycle);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn run_experiment(
    compiled: &Compiled,
    e: &ir::Experiment,
    base: &Path,
    store: &mut TrialStore,
    cancel: &CancelToken,
    device: DeviceKind,
    progress: &mut dyn FnMut(Progress<'_>),
    cycle: &mut Cycle,
) -> Result<(), String> {
    let program = &compiled.program;
    let data_info = compiled.info(&e.name).and_then(|i| i.data.clone());
    let points = points(program, e, data_info.as_ref())?;
    let seed = search_int(program, e, "seed")?.unwrap_or(0);
    let keys = KeyContext::new(program, e, data_info.as_ref(), base);
    let mut trials: Option<Trials<'_>> = None;
    let mut used = Vec::new();
    for point in points {
        if cancel.is_cancelled() {
            break;
        }
        let key = keys.key(&point, seed).0;
        if store.complete(&key).is_some() {
            progress(Progress::Reused { experiment: &e.name, key: &key });
            cycle.reused += 1;
            used.push(key);
            continue;
        }
        progress(Progress::Training { experiment: &e.name, key: &key, params: &point });
        let start = Instant::now();
        let (state, metrics, error) = if e.model.is_some() {
            if trials.is_none() {
                trials = Some(Trials::new(program, e, base, device)?);
            }
            let Some(t) = trials.as_ref() else { unreachable!("set above") };
            let outcome =
                t.run(&point, seed, |_, _| if cancel.is_cancelled() { Control::Stop } else { Control::Continue });
            match outcome.status {
                Status::Completed | Status::EarlyStopped { .. } => (State::Complete, outcome.metrics, None),
                Status::Stopped { .. } => (State::Cancelled, outcome.metrics, Some("cancelled by a save".into())),
                Status::Failed { reason } => (State::Failed, outcome.metrics, Some(reason)),
            }
        } else {
            // A pure-function search: the objectives and constraints are the result.
            let mut metrics = BTreeMap::new();
            let mut error = None;
            let exprs = e
                .objectives
                .iter()
                .map(|o| (&o.name, &o.metric))
                .chain(e.constraints.iter().map(|c| (&c.name, &c.lhs)));
            for (name, expr) in exprs {
                match eval_number(expr, &point, &BTreeMap::new(), program) {
                    Ok(v) => {
                        metrics.insert(name.clone(), v);
                    }
                    Err(m) => error = Some(m),
                }
            }
            (if error.is_some() { State::Failed } else { State::Complete }, metrics, error)
        };
        let trial = StoredTrial {
            key: key.clone(),
            experiment: e.name.clone(),
            state,
            params: point,
            seed,
            metrics,
            error,
            seconds: start.elapsed().as_secs_f64(),
        };
        store.record(trial.clone())?;
        progress(Progress::Finished { experiment: &e.name, trial: &trial });
        match state {
            State::Complete => {
                cycle.trained += 1;
                used.push(key);
            }
            State::Cancelled => cycle.cancelled += 1,
            State::Failed => {
                cycle.trained += 1;
                cycle.failed += 1;
            }
        }
    }
    cycle.ranked = rank(program, e, store, &used);
    Ok(())
}

/// The complete trials among `keys`, best first by the experiment's current objectives.
pub fn rank(program: &ir::Program, e: &ir::Experiment, store: &TrialStore, keys: &[String]) -> Vec<Ranked> {
    let directions: Vec<Direction> = e.objectives.iter().map(|o| o.direction.into()).collect();
    let mut ranked: Vec<Ranked> = keys
        .iter()
        .filter_map(|k| store.complete(k))
        .filter_map(|t| {
            let objectives = e
                .objectives
                .iter()
                .map(|o| {
                    if e.model.is_none() {
                        t.metrics.get(&o.name).copied().ok_or(())
                    } else {
                        eval_number(&o.metric, &t.params, &t.metrics, program).map_err(|_| ())
                    }
                })
                .collect::<Result<Vec<f64>, ()>>()
                .ok()?;
            Some(Ranked { key: t.key.clone(), params: t.params.clone(), objectives })
        })
        .collect();
    ranked.sort_by(|a, b| {
        let la = directions.iter().zip(&a.objectives).map(|(d, v)| d.loss(*v));
        let lb = directions.iter().zip(&b.objectives).map(|(d, v)| d.loss(*v));
        la.zip(lb).map(|(x, y)| x.total_cmp(&y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
    });
    ranked
}

/// Parameters and metrics by name, for objectives.
struct MetricEnv<'a> {
    point: &'a Point,
    metrics: &'a BTreeMap<String, f64>,
    fns: &'a BTreeMap<String, ast::FnDef>,
}

impl ir::Env for MetricEnv<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        self.point.get(name).cloned().or_else(|| self.metrics.get(name).map(|v| Value::Float(*v)))
    }

    fn function(&self, name: &str) -> Option<&ast::FnDef> {
        self.fns.get(name)
    }
}

fn eval_number(
    expr: &ast::Expr,
    point: &Point,
    metrics: &BTreeMap<String, f64>,
    program: &ir::Program,
) -> Result<f64, String> {
    let v = ir::eval(expr, &MetricEnv { point, metrics, fns: &program.fns }).map_err(|e| e.message)?;
    v.as_f64().ok_or_else(|| format!("an objective needs a number, found a {}", v.type_name()))
}

fn search_int(program: &ir::Program, e: &ir::Experiment, key: &str) -> Result<Option<u64>, String> {
    let Some(s) = e.search_setting(key) else { return Ok(None) };
    let env = ir::PointEnv { point: &Point::new(), fns: &program.fns, data: None };
    let v = ir::eval(&s.value, &env).map_err(|e| e.message)?;
    match v.as_i64() {
        Some(i) if i >= 0 => Ok(Some(i as u64)),
        _ => Err(format!("`{key}` needs a non-negative int, found {v}")),
    }
}

/// The points one cycle evaluates, in order (resolved).
fn points(program: &ir::Program, e: &ir::Experiment, data: Option<&ir::DataInfo>) -> Result<Vec<Point>, String> {
    let ctx = space::Context { fns: &program.fns, data };
    let pins = Point::new();
    let env = ir::PointEnv { point: &pins, fns: &program.fns, data };
    let strategy_value = match e.search_setting("strategy") {
        Some(s) => ir::eval(&s.value, &env).map_err(|e| e.message)?,
        None => Value::Sym(ir::Symbol { sym: "random".into() }),
    };
    let budget = search_int(program, e, "trials")?.unwrap_or(20);
    let seed = search_int(program, e, "seed")?.unwrap_or(0);
    let mut strategy = search::strategy(&strategy_value, &e.space, ctx, &pins).map_err(|e| e.to_string())?;
    let history = History::new(e.objectives.iter().map(|o| o.direction.into()).collect(), Rank::default());
    let mut out = Vec::new();
    for number in 0..budget {
        let ask = AskContext { space: &e.space, ctx, pins: &pins, history: &history, number, budget: Some(budget) };
        let mut rng = Rng::derive(seed, number);
        match strategy.ask(&ask, &mut rng).map_err(|e| e.to_string())? {
            Ask::Point(p) => out.push(p),
            Ask::Wait | Ask::Done => break,
        }
    }
    Ok(out)
}
