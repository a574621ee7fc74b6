//! The trial loop: claims trial numbers from a [`Store`], asks the strategy for
//! points, evaluates them on up to `parallel` threads, feeds per-step values to the
//! pruner, measures objectives and constraints, and records every state change.
//!
//! Takes a checked experiment, a [`Store`], a [`Strategy`], a [`Pruner`] and an
//! [`Evaluator`] (training for experiments with a `model`, [`FunctionEvaluator`] for
//! pure functions); gives the study's [`History`] and why it ended ([`Ended`]).
//!
//! **Invariants:**
//! - Trial `n`'s strategy randomness is `Rng::derive(seed, n)`, its training seed is
//!   [`trial_seed`]`(seed, n)`, and it is asked with exactly the finished trials
//!   numbered `<= n - parallel`: before asking for `n`, the loop waits for those of
//!   its own trials to finish. So a study is reproducible for a given seed and
//!   `parallel` whatever the threads' timing (a study `time` budget aside).
//! - Every trial the loop starts ends recorded in the store as complete, pruned,
//!   infeasible (refused before training) or failed (with its kind and reason), unless the process dies; then the store still holds
//!   it as running, and the next run requeues it (see [`TrialLoop::recover`]). A trial
//!   stopped by the stop flag with [`FailKind::Interrupted`] (Ctrl-C) is not failed: it is
//!   queued again with its point ([`Store::requeue`]) and the next run reruns it.
//! - A panic, NaN or error inside one trial fails that trial only.
//! - A [`Settings::shared`] study (several workers, one store) keeps every rule above
//!   except reproducibility: trial `n` sees the finished trials `<= n - parallel` that
//!   the store holds when it is asked, which depends on the other workers' timing.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{Ask, AskContext, Direction, History, Pruner, Rank, SearchError, Strategy, Trial, TrialState, Verdict};
use crate::ast;
use crate::ir::{self, DataInfo, Point, Value};
use crate::rng::{Rng, mix_seed};
use crate::space;
use crate::store::{self, Store, StudyState};
use crate::trial::FailKind;
use scheduler::{Hooks, Scheduler};
pub use scheduler::{RaiseOnDrop, heartbeat};

/// Measured values by name (`accuracy`, `params`, `train_loss`, ...).
pub type Metrics = BTreeMap<String, f64>;

/// What an evaluator's step callback answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// How an evaluation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// It ran to its end (or its own early stopping).
    Complete,
    /// The step callback said stop.
    Stopped,
    /// It could not give a result; the reason is recorded.
    Failed(String),
    /// It could not keep its result for a reason every trial would meet (the out folder
    /// cannot be written): the trial is queued again and the study stops with this error
    /// ([`SearchError::Output`]).
    Abort(String),
}

/// What an evaluator gives for one point.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Status,
    /// Final metrics (for training, those of the kept weights).
    pub metrics: Metrics,
}

/// The per-step callback an evaluator calls.
pub type StepFn<'a> = dyn FnMut(u32, &Metrics) -> Control + Send + 'a;

/// One trial as the evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub struct TrialRef<'a> {
    pub number: u64,
    pub point: &'a Point,
    pub seed: u64,
    /// When the trial's time limit or the study's time budget runs out (the earlier);
    /// an evaluator that can stop mid-step (the trainer: between batches) should stop
    /// then with [`Status::Stopped`]. The study checks it at every step too.
    pub deadline: Option<Instant>,
    /// The study's stop flag (Ctrl-C): an evaluator that waits on something else than its
    /// steps (a command trial's program) ends with [`Status::Stopped`] when it is raised.
    pub stop: &'a AtomicBool,
}

/// Evaluates points: trains a sub-model, or computes a function.
pub trait Evaluator: Sync {
    /// Metrics known without evaluating (a model's `params` and `flops`), for the
    /// static constraints; an error fails the trial before it starts.
    fn static_metrics(&self, _trial: TrialRef<'_>) -> Result<Metrics, String> {
        Ok(Metrics::new())
    }

    /// Evaluates `trial`, calling `on_step(step, metrics)` after each step (epoch,
    /// 1-based); when it answers [`Control::Stop`] the evaluation must end at once
    /// with [`Status::Stopped`].
    fn evaluate(&self, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome;

    /// Called after a trial is recorded (saving a model, freeing memory).
    fn finished(&self, _trial: &Trial) {}

    /// The folder where trial `number`'s model was saved, if the evaluator saved one: in a
    /// [`Settings::shared`] study the loop stores it ([`Store::put_artifact`]) before the
    /// trial is recorded complete. `None` (the default): nothing to store.
    fn saved_dir(&self, _number: u64) -> Option<std::path::PathBuf> {
        None
    }

    /// The device trial `number` ran on, recorded with it: asked once its evaluation
    /// returned. `None` (the default) when the evaluator does not place trials on devices.
    fn device(&self, _number: u64) -> Option<String> {
        None
    }

    /// Sentences for the user from preparing the evaluation (samples of the data that
    /// `skip_bad: true` left out).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// DARTS' architecture phase (`strategy = darts`, `study::darts`): one supernet mixing
    /// `decisions` at `point` (several: `train::darts::Joint`), trained with that point's
    /// train settings and the training seed `seed`, and the choice it reads off for each.
    /// Only an evaluator that trains models can; the default says so.
    fn architecture(
        &self,
        _point: &Point,
        _seed: u64,
        _decisions: &[crate::check::darts::Decision],
        _config: &crate::train::darts::Config,
    ) -> Result<Vec<crate::train::darts::Choice>, String> {
        Err("`darts` searches a model's architecture; this experiment trains no model".into())
    }
}

/// A pure-function experiment (no `model`): the objectives are expressions of the
/// point, computed by the study; nothing is trained, so there is nothing to do here.
#[derive(Debug, Clone, Copy, Default)]
pub struct FunctionEvaluator;

impl Evaluator for FunctionEvaluator {
    fn evaluate(&self, _trial: TrialRef<'_>, _on_step: &mut StepFn<'_>) -> Outcome {
        Outcome { status: Status::Complete, metrics: Metrics::new() }
    }
}

/// How the error of a trial refused before training by a static `require` (on `params`,
/// `flops`) begins: such a trial is recorded [`TrialState::Infeasible`].
pub use crate::trial::INFEASIBLE;

/// The most trials one process runs at once; it lives with the other limits the checker reads.
pub use crate::limits::MAX_PARALLEL;

/// A trial thread's stack by default ([`Settings::trial_stack`]), as large as a main thread's:
/// evaluating a point walks the file's expressions recursively (nested up to
/// `syntax::MAX_NESTING`), which overflowed the 2 MiB default in debug builds. Only what is
/// touched is backed by memory.
pub const TRIAL_STACK: usize = 8 << 20;

/// The smallest trial stack the loop asks for, whatever [`Settings::trial_stack`] says.
pub const MIN_TRIAL_STACK: usize = 1 << 16;

/// What happens during a study, for progress displays.
pub enum Event<'a> {
    /// A trial was claimed and its point chosen.
    Started { number: u64, params: &'a Point },
    /// A running trial reported a step (`value` is the first objective, as measured).
    Step { number: u64, step: u32, value: Option<f64> },
    /// A trial was recorded as finished.
    Finished { trial: &'a Trial, history: &'a History },
    /// The strategy made a decision while asking for trial `number` ([`Strategy::decisions`]).
    Note { number: u64, text: &'a str },
}

/// Receives [`Event`]s, from the loop's threads.
pub trait Observer: Sync {
    fn event(&self, event: Event<'_>);
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _event: Event<'_>) {}
}

/// What a trial copied from an earlier one brings: its measurements, not its objectives
/// (those are measured again by the current experiment).
#[derive(Debug, Clone, PartialEq)]
pub struct Reused {
    pub metrics: Metrics,
    /// The first objective's per-step values, when they were measured by the same
    /// objective as now (they are replayed to the pruner); empty otherwise.
    pub steps: Vec<(u32, f64)>,
    pub duration: f64,
}

/// Trials taken from earlier studies instead of evaluated: what `bma watch` adds to
/// the loop ([`TrialLoop::run_with`]). Called from the loop's thread, never concurrently
/// for one trial.
pub trait Reuse: Sync {
    /// A point to evaluate as trial `number` instead of asking the strategy (an earlier
    /// study's trial replayed); `None`: ask the strategy.
    fn replay(&self, _number: u64) -> Option<Point> {
        None
    }

    /// The training seed of trial `number` of a study seeded `study_seed`.
    fn seed(&self, study_seed: u64, number: u64) -> u64 {
        trial_seed(study_seed, number)
    }

    /// Trial `number` has been recorded as started at `point` with `seed`: what a
    /// complete trial of the same configuration measured, or `None` to evaluate it.
    /// An error is a store failure: it ends the study.
    fn reuse(&self, number: u64, point: &Point, seed: u64) -> Result<Option<Reused>, String>;

    /// Trial `trial.number` has been recorded as finished.
    fn finished(&self, _trial: &Trial) {}

    /// The kind of failure and the error recorded for a trial stopped by the stop flag.
    fn stop_reason(&self) -> (FailKind, String) {
        (FailKind::Interrupted, INTERRUPTED.to_string())
    }
}

/// The error of a trial stopped by Ctrl-C.
const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// Budgets and concurrency.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The study's trial budget (all runs together); `None`: until the time budget or the strategy ends.
    pub trials: Option<u64>,
    /// The study's wall-clock budget for this run: no trial starts after it, running ones stop.
    pub time: Option<Duration>,
    /// One trial's wall-clock limit, checked at each step (a trial that exceeds it fails).
    pub trial_time: Option<Duration>,
    /// Trials evaluated at once (threads).
    pub parallel: usize,
    /// How often the worker proves itself alive to the store.
    pub heartbeat: Duration,
    /// Other workers (other processes, other machines) run the same study: refresh
    /// the history from the store before each proposal, requeue trials whose
    /// heartbeat is older than `stale_after`, and, when the budget is handed out,
    /// wait for the others' running trials (one of them may die and be requeued)
    /// instead of ending.
    pub shared: bool,
    /// How long a running trial may go without a heartbeat before a shared study's
    /// workers requeue it (only with `shared`; keep it well above `heartbeat`).
    pub stale_after: Duration,
    /// Each trial thread's stack in bytes (at least [`MIN_TRIAL_STACK`]); [`TRIAL_STACK`] by
    /// default. The fault tests give a size no address space holds (the CLI reads it from
    /// `BMA_TRIAL_STACK`), so that every thread is refused.
    pub trial_stack: usize,
    /// The caller writes the study's outputs after the loop and records its end then: a
    /// loop that ends by its budget, time or strategy leaves the study `running` (so a
    /// process killed while writing them never leaves a `finished` study without them).
    pub caller_finishes: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            trials: Some(100),
            time: None,
            trial_time: None,
            parallel: 1,
            heartbeat: Duration::from_secs(10),
            shared: false,
            stale_after: Duration::from_secs(60),
            trial_stack: TRIAL_STACK,
            caller_finishes: false,
        }
    }
}

/// Why [`TrialLoop::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The trial budget is spent (every trial finished).
    Budget,
    /// The study's time budget ran out.
    Time,
    /// The strategy has nothing more to propose (a finished grid).
    Exhausted,
    /// The stop flag was raised (Ctrl-C); running trials were recorded as failed.
    Interrupted,
}

impl Ended {
    pub fn state(self) -> StudyState {
        match self {
            Ended::Interrupted => StudyState::Interrupted,
            _ => StudyState::Finished,
        }
    }
}

/// The training seed of trial `number` of a study seeded `seed`.
pub fn trial_seed(seed: u64, number: u64) -> u64 {
    mix_seed(seed ^ 0x7472_6961_6c5f_7365, number)
}

/// An objective, ready to be measured.
#[derive(Debug, Clone)]
struct Measure {
    name: String,
    direction: Direction,
    expr: ast::Expr,
    /// `on train`: metric names read with a `train_` prefix first.
    prefix: Option<String>,
}

/// A `require`, ready to be measured.
#[derive(Debug, Clone)]
struct Require {
    name: String,
    lhs: ast::Expr,
    op: ast::BinaryOp,
    bound: ast::Expr,
}

/// Names bound while measuring: the point, then the metrics.
struct MeasureEnv<'a> {
    inner: ir::PointEnv<'a>,
    metrics: &'a Metrics,
    prefix: Option<&'a str>,
}

impl ir::Env for MeasureEnv<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(p) = self.prefix
            && let Some(v) = self.metrics.get(&format!("{p}{name}"))
        {
            return Some(Value::Float(*v));
        }
        if let Some(v) = self.inner.point.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.metrics.get(name) {
            return Some(Value::Float(*v));
        }
        self.inner.lookup(name)
    }

    fn function(&self, name: &str) -> Option<&ast::FnDef> {
        self.inner.function(name)
    }
}

/// The objectives and constraints of an experiment, measured on a point and metrics.
#[derive(Debug, Clone)]
pub struct Objectives {
    measures: Vec<Measure>,
    requires: Vec<Require>,
}

impl Objectives {
    pub fn new(exp: &ir::Experiment) -> Objectives {
        let measures = exp
            .objectives
            .iter()
            .map(|o| Measure {
                name: o.name.clone(),
                direction: o.direction.into(),
                expr: o.metric.clone(),
                prefix: match o.split.as_deref() {
                    Some("train") => Some("train_".into()),
                    _ => None,
                },
            })
            .collect();
        let requires = exp
            .constraints
            .iter()
            .map(|c| Require { name: c.name.clone(), lhs: c.lhs.clone(), op: c.op, bound: c.bound.clone() })
            .collect();
        Objectives { measures, requires }
    }

    pub fn names(&self) -> Vec<(String, Direction)> {
        self.measures.iter().map(|m| (m.name.clone(), m.direction)).collect()
    }

    pub fn directions(&self) -> Vec<Direction> {
        self.measures.iter().map(|m| m.direction).collect()
    }

    pub fn constraint_names(&self) -> Vec<String> {
        self.requires.iter().map(|r| r.name.clone()).collect()
    }

    fn env<'a>(
        point: &'a Point,
        metrics: &'a Metrics,
        prefix: Option<&'a str>,
        fns: &'a BTreeMap<String, ast::FnDef>,
        data: Option<&'a DataInfo>,
    ) -> MeasureEnv<'a> {
        MeasureEnv { inner: ir::PointEnv { point, fns, data }, metrics, prefix }
    }

    fn number(expr: &ast::Expr, env: &MeasureEnv<'_>) -> Result<f64, String> {
        let v = ir::eval(expr, env).map_err(|e| e.message)?;
        v.as_f64().ok_or_else(|| format!("`{v}` is not a number"))
    }

    /// The objective values, in order; an error names the objective that could not be measured.
    pub fn values(
        &self,
        point: &Point,
        metrics: &Metrics,
        fns: &BTreeMap<String, ast::FnDef>,
        data: Option<&DataInfo>,
    ) -> Result<Vec<f64>, String> {
        self.measures
            .iter()
            .map(|m| {
                let env = Self::env(point, metrics, m.prefix.as_deref(), fns, data);
                let v = Self::number(&m.expr, &env).map_err(|e| format!("objective `{}`: {e}", m.name))?;
                if v.is_nan() {
                    return Err(format!("objective `{}` is NaN", m.name));
                }
                Ok(v)
            })
            .collect()
    }

    /// The first objective at a step, if it can be measured from the step's metrics.
    pub fn step_value(
        &self,
        point: &Point,
        metrics: &Metrics,
        fns: &BTreeMap<String, ast::FnDef>,
        data: Option<&DataInfo>,
    ) -> Option<f64> {
        let m = self.measures.first()?;
        let env = Self::env(point, metrics, m.prefix.as_deref(), fns, data);
        Self::number(&m.expr, &env).ok()
    }

    /// Each constraint's left-hand side and violation (0 when it holds). With
    /// `partial`, constraints that cannot be measured yet are `None` (static checks);
    /// otherwise they are errors.
    #[allow(clippy::type_complexity)]
    fn constraints(
        &self,
        point: &Point,
        metrics: &Metrics,
        fns: &BTreeMap<String, ast::FnDef>,
        data: Option<&DataInfo>,
        partial: bool,
    ) -> Result<Vec<Option<(f64, f64)>>, String> {
        let env = Self::env(point, metrics, None, fns, data);
        self.requires
            .iter()
            .map(|r| {
                let measured = Self::number(&r.lhs, &env).and_then(|lhs| Ok((lhs, Self::number(&r.bound, &env)?)));
                match measured {
                    Ok((lhs, bound)) => Ok(Some((lhs, violation(lhs, r.op, bound)))),
                    Err(_) if partial => Ok(None),
                    Err(e) => Err(format!("constraint `{}`: {e}", r.name)),
                }
            })
            .collect()
    }
}

/// How far `lhs op bound` is from holding (0 when it holds; NaN counts as violated).
fn violation(lhs: f64, op: ast::BinaryOp, bound: f64) -> f64 {
    use ast::BinaryOp::*;
    if lhs.is_nan() || bound.is_nan() {
        return f64::INFINITY;
    }
    let gap = match op {
        Le => lhs - bound,
        Lt => {
            if lhs < bound {
                0.0
            } else {
                (lhs - bound).max(f64::MIN_POSITIVE)
            }
        }
        Ge => bound - lhs,
        Gt => {
            if lhs > bound {
                0.0
            } else {
                (bound - lhs).max(f64::MIN_POSITIVE)
            }
        }
        _ => 0.0,
    };
    gap.max(0.0)
}

/// One study, opened in a store, ready to run.
pub struct TrialLoop<'a> {
    pub store: &'a dyn Store,
    pub study: store::Study,
    pub experiment: &'a ir::Experiment,
    pub fns: &'a BTreeMap<String, ast::FnDef>,
    pub data: Option<&'a DataInfo>,
    pub objectives: Objectives,
    pub strategy: Box<dyn Strategy>,
    pub pruner: Box<dyn Pruner>,
    pub pins: Point,
    pub rank: Rank,
    pub settings: Settings,
    pub worker: String,
}

/// A trial on its way from a worker thread back to the loop.
struct Done {
    trial: Trial,
    /// The evaluator aborted the study ([`Status::Abort`]): the trial is queued again.
    abort: Option<String>,
}

/// Why a running trial was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopWhy {
    None,
    Pruned,
    TrialTime,
    StudyTime,
    Interrupted,
}

impl<'a> TrialLoop<'a> {
    /// The study's spec for the store: name, experiment, source text and its hash,
    /// objectives, constraints, seed.
    pub fn spec(name: &str, exp: &ir::Experiment, spec_text: &str, seed: u64) -> store::StudySpec {
        let objectives = Objectives::new(exp);
        store::StudySpec {
            name: name.to_string(),
            experiment: exp.name.clone(),
            spec_text: spec_text.to_string(),
            spec_hash: store::spec_hash(spec_text),
            objectives: objectives.names(),
            constraints: objectives.constraint_names(),
            seed,
            options: String::new(),
        }
    }

    /// Requeues the running trials of workers that are gone: local processes that
    /// no longer exist at once, others after `stale_after` without a heartbeat.
    /// Returns the requeued trial numbers.
    pub fn recover(store: &dyn Store, study: store::StudyId, stale_after: Duration) -> Result<Vec<u64>, SearchError> {
        let mut requeued = Vec::new();
        let err = |e: store::StoreError| SearchError::Store(e.to_string());
        for (worker, _) in store.running_workers(study).map_err(err)? {
            if store::local_worker_dead(&worker) == Some(true) {
                requeued.extend(store.requeue_worker(study, &worker).map_err(err)?);
            }
        }
        requeued.extend(store.requeue_stale(study, stale_after.as_secs_f64()).map_err(err)?);
        requeued.sort_unstable();
        Ok(requeued)
    }

    /// The study seed (the stored one wins over the spec's, so a resumed study keeps its seed).
    pub fn seed(&self) -> u64 {
        self.study.spec.seed
    }

    fn store_err(e: store::StoreError) -> SearchError {
        SearchError::Store(e.to_string())
    }

    /// Runs the study until its budget is spent, the strategy is done, or `stop` is
    /// raised; every trial is recorded in the store as it finishes.
    pub fn run(
        &mut self,
        evaluator: &dyn Evaluator,
        observer: &dyn Observer,
        stop: &AtomicBool,
    ) -> Result<(History, Ended), SearchError> {
        self.run_with(evaluator, observer, stop, None)
    }

    /// [`TrialLoop::run`], with trials taken from earlier studies where `reuse` has them:
    /// a reused trial is recorded like an evaluated one (started, then finished with
    /// objectives and constraints measured now), its steps replayed to the pruner
    /// (whose verdict it ignores: it is already trained), and it is never evaluated.
    pub fn run_with(
        &mut self,
        evaluator: &dyn Evaluator,
        observer: &dyn Observer,
        stop: &AtomicBool,
        reuse: Option<&dyn Reuse>,
    ) -> Result<(History, Ended), SearchError> {
        let stop_reason =
            reuse.map(|r| r.stop_reason()).unwrap_or_else(|| (FailKind::Interrupted, INTERRUPTED.to_string()));
        let started = Instant::now();
        let id = self.study.id;
        self.store.set_state(id, StudyState::Running).map_err(Self::store_err)?;
        let mut history = History::new(self.objectives.directions(), self.rank.clone());
        for t in self.store.history(id).map_err(Self::store_err)? {
            if !t.is_unproposed() {
                history.upsert(t);
            }
        }
        let hooks = Hooks {
            evaluator,
            observer,
            stop,
            reuse,
            stop_reason: (stop_reason.0, stop_reason.1.as_str()),
            deadline: self.settings.time.map(|t| started + t),
        };
        let (store, worker, settings) = (self.store, self.worker.clone(), self.settings.clone());
        let finished = AtomicBool::new(false);
        let (result, mut history) = thread::scope(|scope| {
            scope.spawn(|| scheduler::heartbeat(store, id, &worker, &settings, &finished));
            // Stops the heartbeat thread however the loop ends, an unwinding panic included.
            let _stop_heartbeat = RaiseOnDrop(&finished);
            Scheduler::new(self, history, hooks).run(scope)
        });
        let ended = match result {
            Ok(e) => e,
            Err(e) => {
                let _ = self.store.set_state(id, StudyState::Interrupted);
                return Err(e);
            }
        };
        let shared = self.settings.shared;
        let others_running = shared
            && ended == Ended::Interrupted
            && self.store.running_workers(id).is_ok_and(|w| w.iter().any(|(w, _)| *w != self.worker));
        let left_to_caller = self.settings.caller_finishes && ended != Ended::Interrupted;
        if !others_running && !left_to_caller {
            self.store.set_state(id, ended.state()).map_err(Self::store_err)?;
        }
        // Every trial the store holds (other workers', other runs', those queued again),
        // for the caller's table and files; not a number claimed and given back unused
        // (queued with no point: the strategy had nothing to propose).
        for t in self.store.history(id).map_err(Self::store_err)? {
            if !t.is_unproposed() {
                history.upsert(t);
            }
        }
        Ok((history, ended))
    }
}

/// The point for a claimed trial: its recorded params when it was requeued after
/// starting, else the strategy's answer. `Ok(None)`: the strategy waits.
#[allow(clippy::too_many_arguments)]
fn propose(
    strategy: &mut dyn Strategy,
    experiment: &ir::Experiment,
    fns: &BTreeMap<String, ast::FnDef>,
    data: Option<&DataInfo>,
    pins: &Point,
    budget: Option<u64>,
    claim: &store::Claim,
    view: &History,
    seed: u64,
    reuse: Option<&dyn Reuse>,
) -> Result<Option<Ask>, SearchError> {
    if let Some(t) = &claim.requeued
        && !t.params.is_empty()
    {
        return Ok(Some(Ask::Point(t.params.clone())));
    }
    if let Some(point) = reuse.and_then(|r| r.replay(claim.number)) {
        return Ok(Some(Ask::Point(point)));
    }
    let ctx = AskContext {
        space: &experiment.space,
        ctx: space::Context { fns, data },
        pins,
        history: view,
        number: claim.number,
        budget,
    };
    let mut rng = Rng::derive(seed, claim.number);
    match strategy.ask(&ctx, &mut rng)? {
        Ask::Wait => Ok(None),
        other => Ok(Some(other)),
    }
}

/// The parts of a study a trial thread reads.
#[derive(Clone, Copy)]
struct Shared<'s> {
    store: &'s dyn Store,
    id: store::StudyId,
    objectives: &'s Objectives,
    fns: &'s BTreeMap<String, ast::FnDef>,
    data: Option<&'s DataInfo>,
    pruner: &'s dyn Pruner,
}

/// What a trial thread needs.
struct TrialCtx<'s> {
    study: Shared<'s>,
    evaluator: &'s dyn Evaluator,
    observer: &'s dyn Observer,
    stop: &'s AtomicBool,
    deadline: Option<Instant>,
    trial_time: Option<Duration>,
    /// The kind of failure and the error of a trial stopped by the stop flag.
    stop_reason: (FailKind, &'s str),
    /// A shared study: the worker id under which a complete trial's saved model is stored.
    upload: Option<&'s str>,
}

impl TrialCtx<'_> {
    /// A trial copied from an earlier one of the same configuration: measured again, not evaluated.
    fn reused_trial(&self, number: u64, point: Point, seed: u64, reused: Reused) -> Trial {
        let s = self.study;
        let direction = s.objectives.measures.first().map(|m| m.direction).unwrap_or(Direction::Minimize);
        for (step, v) in &reused.steps {
            let _ = s.store.report(s.id, number, *step, *v);
            // Statistics only: a trained trial is not pruned after the fact.
            let _ = s.pruner.report(number, *step, direction.loss(*v));
        }
        let mut trial = Trial::new(number, point, seed);
        trial.steps = reused.steps;
        trial.metrics = reused.metrics;
        let mut trial = self.conclude(trial, &Status::Complete, StopWhy::None, Instant::now());
        trial.duration = reused.duration;
        trial
    }

    /// Runs trial `number` at `point`: the recorded trial, and the evaluator's reason to
    /// stop the study ([`Status::Abort`]), if any.
    fn run_trial(&self, number: u64, point: Point, seed: u64) -> Done {
        let mut abort = None;
        let mut trial = self.evaluate_trial(number, point, seed, &mut abort);
        if let Some(worker) = self.upload
            && trial.state == TrialState::Complete
            && let Some(dir) = self.evaluator.saved_dir(number)
        {
            // Stored before the trial is recorded complete: a complete trial of a shared
            // study always has its model in the store.
            let stored = store::artifacts::pack(&dir).and_then(|a| {
                self.study.store.put_artifact(self.study.id, number, worker, &a).map_err(|e| e.to_string())
            });
            if let Err(e) = stored {
                let took = Duration::from_secs_f64(trial.duration.max(0.0));
                let started = Instant::now().checked_sub(took).unwrap_or_else(Instant::now);
                trial = self.failed(trial, FailKind::Error, format!("its model could not be stored: {e}"), started);
            }
        }
        Done { trial, abort }
    }

    fn evaluate_trial(&self, number: u64, point: Point, seed: u64, abort: &mut Option<String>) -> Trial {
        let started = Instant::now();
        let mut trial = Trial::new(number, point, seed);
        let s = self.study;
        let trial_deadline = self.trial_time.and_then(|t| started.checked_add(t));
        let deadline = match (self.deadline, trial_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let tref = TrialRef { number, point: &trial.params, seed, deadline, stop: self.stop };

        // Static constraints first: a point that cannot be feasible is not trained.
        let statics = catch_unwind(AssertUnwindSafe(|| self.evaluator.static_metrics(tref)))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&p))));
        let statics = match statics {
            Ok(m) => m,
            Err(e) => return self.failed(trial, FailKind::Error, e, started),
        };
        if !s.objectives.requires.is_empty() && !statics.is_empty() {
            let cons = s.objectives.constraints(&trial.params, &statics, s.fns, s.data, true).unwrap_or_default();
            let broken: Vec<String> = s
                .objectives
                .requires
                .iter()
                .zip(&cons)
                .filter_map(|(r, c)| c.filter(|(_, v)| *v > 0.0).map(|(lhs, _)| format!("{} (is {lhs})", r.name)))
                .collect();
            if !broken.is_empty() {
                trial.metrics = statics;
                trial.constraints = cons.iter().map(|c| c.map(|(l, _)| l).unwrap_or(f64::NAN)).collect();
                trial.violations = cons.iter().map(|c| c.map(|(_, v)| v).unwrap_or(0.0)).collect();
                trial.state = TrialState::Infeasible;
                trial.error = Some(format!("{INFEASIBLE}: {}", broken.join(", ")));
                trial.duration = started.elapsed().as_secs_f64();
                return trial;
            }
        }

        let mut why = StopWhy::None;
        let mut steps: Vec<(u32, f64)> = Vec::new();
        let point = trial.params.clone();
        let direction = s.objectives.measures.first().map(|m| m.direction).unwrap_or(Direction::Minimize);
        let outcome = {
            let mut on_step = |step: u32, metrics: &Metrics| -> Control {
                let value = s.objectives.step_value(&point, metrics, s.fns, s.data);
                if let Some(v) = value {
                    steps.push((step, v));
                    let _ = s.store.report(s.id, number, step, v);
                }
                self.observer.event(Event::Step { number, step, value });
                if self.stop.load(Ordering::SeqCst) {
                    why = StopWhy::Interrupted;
                    return Control::Stop;
                }
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    why = StopWhy::StudyTime;
                    return Control::Stop;
                }
                if self.trial_time.is_some_and(|t| started.elapsed() >= t) {
                    why = StopWhy::TrialTime;
                    return Control::Stop;
                }
                if let Some(v) = value
                    && s.pruner.report(number, step, direction.loss(v)) == Verdict::Prune
                {
                    why = StopWhy::Pruned;
                    return Control::Stop;
                }
                Control::Continue
            };
            catch_unwind(AssertUnwindSafe(|| self.evaluator.evaluate(tref, &mut on_step))).unwrap_or_else(|p| Outcome {
                status: Status::Failed(format!("panicked: {}", panic_message(&p))),
                metrics: Metrics::new(),
            })
        };
        // Stopped between steps at the deadline (the evaluator saw it in `TrialRef`).
        if outcome.status == Status::Stopped && why == StopWhy::None {
            if self.stop.load(Ordering::SeqCst) {
                why = StopWhy::Interrupted;
            } else if trial_deadline.is_some_and(|d| Instant::now() >= d) {
                why = StopWhy::TrialTime;
            } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
                why = StopWhy::StudyTime;
            }
        }
        if let Status::Abort(reason) = &outcome.status {
            *abort = Some(reason.clone());
        }
        trial.steps = steps;
        trial.device = self.evaluator.device(number);
        let mut metrics = statics;
        metrics.extend(outcome.metrics);
        trial.metrics = metrics;
        self.conclude(trial, &outcome.status, why, started)
    }

    /// A trial's end: its objectives and constraints measured from its metrics, its state.
    fn conclude(&self, mut trial: Trial, status: &Status, why: StopWhy, started: Instant) -> Trial {
        let s = self.study;
        let stopped_reason = match (status, why) {
            (Status::Failed(reason) | Status::Abort(reason), _) => Some((FailKind::Error, reason.clone())),
            (Status::Stopped, StopWhy::Interrupted) => Some((self.stop_reason.0, self.stop_reason.1.to_string())),
            (Status::Stopped, StopWhy::StudyTime) => {
                Some((FailKind::StudyTime, "stopped: the study's time budget ran out".to_string()))
            }
            (Status::Stopped, StopWhy::TrialTime) => Some((
                FailKind::TimedOut,
                format!(
                    "ran out of time: the trial limit is {:.1}s",
                    self.trial_time.map(|t| t.as_secs_f64()).unwrap_or(0.0)
                ),
            )),
            (Status::Stopped, StopWhy::None) => {
                Some((FailKind::Error, "the evaluator stopped without being asked".to_string()))
            }
            _ => None,
        };
        if let Some((kind, reason)) = stopped_reason {
            return self.failed(trial, kind, reason, started);
        }
        match s.objectives.values(&trial.params, &trial.metrics, s.fns, s.data) {
            Ok(values) if values.iter().all(|v| v.is_finite()) || why == StopWhy::Pruned => trial.values = values,
            Ok(values) => {
                trial.values = values;
                return self.failed(trial, FailKind::Error, "an objective is infinite".into(), started);
            }
            Err(e) if why == StopWhy::Pruned => trial.error = Some(e),
            Err(e) => return self.failed(trial, FailKind::Error, e, started),
        }
        match s.objectives.constraints(&trial.params, &trial.metrics, s.fns, s.data, false) {
            Ok(cons) => {
                trial.constraints = cons.iter().map(|c| c.map(|(l, _)| l).unwrap_or(f64::NAN)).collect();
                trial.violations = cons.iter().map(|c| c.map(|(_, v)| v).unwrap_or(0.0)).collect();
            }
            Err(e) => return self.failed(trial, FailKind::Error, e, started),
        }
        trial.state = if why == StopWhy::Pruned { TrialState::Pruned } else { TrialState::Complete };
        trial.duration = started.elapsed().as_secs_f64();
        trial
    }

    fn failed(&self, mut trial: Trial, kind: FailKind, reason: String, started: Instant) -> Trial {
        trial.fail(kind, reason);
        trial.duration = started.elapsed().as_secs_f64();
        trial
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

mod scheduler;

#[cfg(test)]
mod tests;
