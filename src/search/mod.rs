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

pub mod auto;
pub mod darts;
mod evolution;
mod gp;
mod grid;
mod nsga2;
pub mod prune;
mod random;
pub mod study;
mod subspace;
mod tpe;

use std::fmt;

use crate::catalogue;
use crate::ir::{self, Point, Value};
use crate::rng::Rng;
use crate::space::{self, Encoding, SpaceError};

pub use crate::trial::rank::{self, Rank};
pub use crate::trial::{Direction, History, Trial, TrialState};
pub use evolution::Evolution;
pub use gp::{FitQuality, Gp, GpOptions, Output as GpOutput};
pub use grid::Grid;
pub use nsga2::Nsga2;
pub use prune::{Pruner, Verdict};
pub use random::Random;
pub use subspace::Subspace;
pub use tpe::{Tpe, TpeOptions};

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

    /// Lines for the user about decisions this strategy made while asking (`auto` handing
    /// over from `gp` to `tpe`), every one so far, in order; none for most strategies. The
    /// trial loop prints each new one ([`study::Event::Note`]) and the study records them.
    fn decisions(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Why the search could not go on.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchError {
    Space(SpaceError),
    /// A `strategy = ...` or `prune = ...` setting that makes no sense.
    Setting(String),
    Store(String),
    /// The study's outputs cannot be written (a save every trial would fail): it stops.
    Output(String),
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchError::Space(e) => e.fmt(f),
            SearchError::Setting(m) | SearchError::Store(m) | SearchError::Output(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SearchError {}

impl From<SpaceError> for SearchError {
    fn from(e: SpaceError) -> SearchError {
        SearchError::Space(e)
    }
}

impl From<rank::RankError> for SearchError {
    fn from(e: rank::RankError) -> SearchError {
        SearchError::Setting(e.0)
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
        Kind::Gp => Box::new(Gp::new(space, int("startup", 0, gp::DEFAULT_STARTUP)?)),
        Kind::Auto => Box::new(auto::Auto::new()),
        Kind::Nsga2 => Box::new(Nsga2::new(space, int("population", 0, 50)?)),
        Kind::Evolution => {
            let population = int("population", 0, 20)?;
            Box::new(Evolution::new(space, population, int("sample", 1, (population / 4).max(2))?))
        }
        // The phase before is the study's (`study::darts`); here, what runs after it.
        Kind::Darts => match darts::setting(value)?.and_then(|s| s.then) {
            Some(then) => strategy(&then, space, ctx, pins)?,
            None => Box::new(darts::Done),
        },
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
