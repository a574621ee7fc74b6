//! The search: strategies that propose points, pruners that stop bad trials early,
//! the ranking of finished trials, and the trial loop that ties them to a store.
//!
//! Takes an experiment's [`ir::Space`], objectives and `search { }` settings, gives
//! trials. Every strategy, grid to NSGA-II, sees the same [`History`], which a
//! [`crate::store::Store`] can rebuild after a crash; nothing a strategy keeps for
//! itself is needed for correctness, only for speed.
//!
//! **Invariant:** the search is deterministic for a given spec, seed and `parallel`:
//! trial `n`'s randomness comes from `Rng::derive(seed, n)` and the history it is
//! asked with is exactly the finished trials numbered `<= n - parallel` (see
//! [`study`]).

mod evolution;
mod grid;
mod nsga2;
pub mod prune;
mod random;
pub mod rank;
pub mod study;
mod subspace;
mod tpe;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalogue;
use crate::ir::{self, Point, Value};
use crate::rng::Rng;
use crate::space::{self, Encoding, SpaceError};

pub use evolution::Evolution;
pub use grid::Grid;
pub use nsga2::Nsga2;
pub use prune::{Pruner, Verdict};
pub use random::Random;
pub use rank::Rank;
pub use subspace::Subspace;
pub use tpe::{Tpe, TpeOptions};

/// Whether an objective is minimized or maximized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Minimize,
    Maximize,
}

impl From<crate::ast::Direction> for Direction {
    fn from(d: crate::ast::Direction) -> Direction {
        match d {
            crate::ast::Direction::Minimize => Direction::Minimize,
            crate::ast::Direction::Maximize => Direction::Maximize,
        }
    }
}

impl Direction {
    /// The value turned so that lower is better.
    pub fn loss(self, v: f64) -> f64 {
        match self {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }
}

/// Where a trial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Proposed, waiting for a worker (a requeued trial after a crash).
    Queued,
    Running,
    Complete,
    /// Stopped early by the pruner.
    Pruned,
    /// Errored, produced NaN, or ran out of time; `error` says why.
    Failed,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Queued => "queued",
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<TrialState> {
        Some(match s {
            "queued" => TrialState::Queued,
            "running" => TrialState::Running,
            "complete" => TrialState::Complete,
            "pruned" => TrialState::Pruned,
            "failed" => TrialState::Failed,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Failed)
    }
}

/// One evaluation of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub number: u64,
    pub state: TrialState,
    /// The resolved point (derived and pinned values included).
    pub params: Point,
    pub seed: u64,
    /// Objective values as measured, in the experiment's order (complete trials).
    pub values: Vec<f64>,
    /// Each constraint's left-hand side as measured.
    pub constraints: Vec<f64>,
    /// Each constraint's violation: 0 when it holds.
    pub violations: Vec<f64>,
    /// `(step, value)` reports of the first objective during the trial (epochs).
    pub steps: Vec<(u32, f64)>,
    /// Every metric measured (accuracy, latency, params, ...), by name; the report reads these.
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
    pub error: Option<String>,
    /// Wall-clock seconds.
    pub duration: f64,
}

impl Trial {
    pub fn new(number: u64, params: Point, seed: u64) -> Trial {
        Trial {
            number,
            state: TrialState::Running,
            params,
            seed,
            values: Vec::new(),
            constraints: Vec::new(),
            violations: Vec::new(),
            steps: Vec::new(),
            metrics: Default::default(),
            error: None,
            duration: 0.0,
        }
    }

    pub fn is_feasible(&self) -> bool {
        self.violations.iter().all(|v| *v <= 0.0)
    }

    pub fn total_violation(&self) -> f64 {
        self.violations.iter().map(|v| v.max(0.0)).sum()
    }

    /// The value reported at `step`, if any.
    pub fn step_value(&self, step: u32) -> Option<f64> {
        self.steps.iter().rev().find(|(s, _)| *s == step).map(|(_, v)| *v)
    }
}

/// Every trial of a study so far, ordered by number, with what "better" means.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub directions: Vec<Direction>,
    pub rank: Rank,
    pub trials: Vec<Trial>,
}

impl History {
    pub fn new(directions: Vec<Direction>, rank: Rank) -> History {
        History { directions, rank, trials: Vec::new() }
    }

    pub fn completed(&self) -> impl Iterator<Item = &Trial> {
        self.trials.iter().filter(|t| t.state == TrialState::Complete)
    }

    /// A trial's objective values turned so that lower is better.
    pub fn losses(&self, trial: &Trial) -> Vec<f64> {
        self.directions.iter().zip(&trial.values).map(|(d, v)| d.loss(*v)).collect()
    }

    /// Inserts or replaces a trial, keeping the order by number.
    pub fn upsert(&mut self, trial: Trial) {
        match self.trials.binary_search_by_key(&trial.number, |t| t.number) {
            Ok(i) => self.trials[i] = trial,
            Err(i) => self.trials.insert(i, trial),
        }
    }

    pub fn get(&self, number: u64) -> Option<&Trial> {
        self.trials.binary_search_by_key(&number, |t| t.number).ok().map(|i| &self.trials[i])
    }

    pub fn get_mut(&mut self, number: u64) -> Option<&mut Trial> {
        self.trials.binary_search_by_key(&number, |t| t.number).ok().map(|i| &mut self.trials[i])
    }

    /// Complete trials, best first, by the rank (feasible ones before infeasible).
    pub fn ranked(&self) -> Vec<&Trial> {
        let complete: Vec<&Trial> = self.completed().collect();
        rank::order(&complete, &self.directions, &self.rank).into_iter().map(|i| complete[i]).collect()
    }
}

/// What a strategy sees when asked for a trial.
pub struct AskContext<'a> {
    pub space: &'a ir::Space,
    pub ctx: space::Context<'a>,
    /// Values fixed from outside (`--set p=v`); strategies never change them.
    pub pins: &'a Point,
    /// The finished trials this ask may depend on.
    pub history: &'a History,
    /// The number the proposed trial will get.
    pub number: u64,
    /// The study's budget in trials, when known.
    pub budget: Option<u64>,
}

impl AskContext<'_> {
    pub fn random_point(&self, rng: &mut Rng) -> Result<Point, SearchError> {
        Ok(space::sample(self.space, self.ctx, self.pins, rng)?)
    }
}

/// A strategy's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Evaluate this point (resolved).
    Point(Point),
    /// Nothing can be proposed until the running trials finish (a round barrier).
    Wait,
    /// The strategy has nothing more to propose (a finished grid).
    Done,
}

/// Proposes points; every strategy, grid to NSGA-II.
pub trait Strategy: Send {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError>;
}

/// Why the search could not go on.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchError {
    Space(SpaceError),
    /// A `strategy = ...` or `prune = ...` setting that makes no sense.
    Setting(String),
    Store(String),
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchError::Space(e) => e.fmt(f),
            SearchError::Setting(m) | SearchError::Store(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SearchError {}

impl From<SpaceError> for SearchError {
    fn from(e: SpaceError) -> SearchError {
        SearchError::Space(e)
    }
}

impl From<ir::EvalError> for SearchError {
    fn from(e: ir::EvalError) -> SearchError {
        SearchError::Space(SpaceError::Eval(e))
    }
}

/// The strategy a `strategy = ...` value names.
pub fn strategy(
    value: &Value,
    space: &ir::Space,
    ctx: space::Context<'_>,
    pins: &Point,
) -> Result<Box<dyn Strategy>, SearchError> {
    use catalogue::Strategy as Kind;
    let name = value.head().unwrap_or("");
    let call = match value {
        Value::Call(c) => Some(c),
        _ => None,
    };
    let int = |key: &str, pos: usize, default: u64| -> Result<u64, SearchError> {
        match call.and_then(|c| c.arg(key, pos)) {
            None => Ok(default),
            Some(v) => match v.as_i64() {
                Some(i) if i >= 1 => Ok(i as u64),
                _ => Err(SearchError::Setting(format!("`{name}({key}: ...)` needs a positive int, found {v}"))),
            },
        }
    };
    let Some(kind) = catalogue::kind(catalogue::STRATEGIES, name) else {
        return Err(SearchError::Setting(format!(
            "unknown strategy `{value}` (expected {})",
            catalogue::one_of(&catalogue::names(catalogue::STRATEGIES))
        )));
    };
    Ok(match kind {
        Kind::Random => Box::new(Random),
        Kind::Grid => Box::new(Grid::new(space, ctx, pins, int("limit", 0, 100_000)?)?),
        Kind::Tpe => Box::new(Tpe::new(space, int("startup", 0, tpe::DEFAULT_STARTUP)?)),
        Kind::Nsga2 => Box::new(Nsga2::new(space, int("population", 0, 50)?)),
        Kind::Evolution => {
            let population = int("population", 0, 20)?;
            Box::new(Evolution::new(space, population, int("sample", 1, (population / 4).max(2))?))
        }
        Kind::Subspace => {
            let by = match call.and_then(|c| c.arg("by", 0)) {
                Some(Value::List(items)) => items.iter().map(|v| v.to_string()).collect(),
                Some(v @ Value::Sym(_)) => vec![v.to_string()],
                _ => return Err(SearchError::Setting("`subspace` needs `by: [param, ...]`".into())),
            };
            Box::new(Subspace::new(space, ctx, pins, by, int("samples", 1, 4)?, int("eta", 2, 3)?)?)
        }
    })
}

/// The encoding of a space, shared by the model-based strategies.
pub(crate) fn encoding(space: &ir::Space) -> Encoding {
    Encoding::new(space)
}
