//! `subspace(by:, samples:, eta:)`: successive halving over the cells of a partition
//! of the space — the method this project started from.
//!
//! Takes the names of structural parameters (`by`), gives points cell by cell. The
//! cells are the grid of the `by` parameters' values; inside a cell every trial has
//! the same structure. Round 0 samples every cell `samples` times; after a round,
//! the cells are ranked by their best trial (the history's rank: feasible first, then
//! the objectives) and the best `ceil(cells / eta)` survive with `eta` times the
//! budget per cell. When one cell remains, the search keeps refining inside it with
//! TPE restricted to the cell. Points inside a cell come from TPE over that cell's own
//! trials (random until it has enough).
//!
//! **Invariant:** deterministic for a given history and rng: cells are visited in a
//! fixed order and ties between cells go to the earlier cell. A round's ranking waits
//! ([`Ask::Wait`]) for every trial of the round to finish. Trials in the history that
//! this instance did not propose (a resumed study) count toward the current round.

use std::collections::{BTreeMap, BTreeSet};

use super::tpe::{DEFAULT_STARTUP, Tpe};
use super::{Ask, AskContext, History, SearchError, Strategy, Trial};
use crate::ir::{self, Domain, ParamKind, Point, Value};
use crate::rng::Rng;
use crate::space::{self, Context};

/// At most this many cells.
pub const MAX_CELLS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Subspace {
    by: Vec<String>,
    /// Every cell: one value per `by` parameter.
    cells: Vec<Vec<Value>>,
    samples: u64,
    eta: u64,
    /// The current round (0 first).
    round: u32,
    /// Indices of the cells still in the race, in cell order.
    alive: Vec<usize>,
    /// Trial numbers that belong to the current round, with their cell.
    issued: BTreeMap<u64, usize>,
    /// Every trial number accounted for (all rounds).
    seen: BTreeSet<u64>,
    /// TPE inside each cell, made on first use.
    models: BTreeMap<usize, Tpe>,
    space: ir::Space,
}

impl Subspace {
    pub fn new(
        space: &ir::Space,
        ctx: Context<'_>,
        pins: &Point,
        by: Vec<String>,
        samples: u64,
        eta: u64,
    ) -> Result<Subspace, SearchError> {
        let _ = ctx;
        let bad = |m: String| SearchError::Setting(format!("`subspace(by: ...)`: {m}"));
        if by.is_empty() {
            return Err(bad("name at least one structural parameter".into()));
        }
        if eta < 2 {
            return Err(bad(format!("`eta` must be at least 2, found {eta}")));
        }
        let mut axes: Vec<Vec<Value>> = Vec::new();
        for name in &by {
            let Some(p) = space.get(name) else {
                let free: Vec<&str> = space.free().map(|p| p.name.as_str()).collect();
                return Err(bad(format!("no parameter `{name}` (the free ones are: {})", free.join(", "))));
            };
            if p.is_conditional() {
                return Err(bad(format!("`{name}` is declared under `when`; cells need parameters that always exist")));
            }
            let values = match (&p.kind, pins.get(name)) {
                (ParamKind::Free(_), Some(v)) => vec![v.clone()],
                (
                    ParamKind::Free(d @ (Domain::Choice(_) | Domain::Int { .. } | Domain::Float { step: Some(_), .. })),
                    None,
                ) => d.values().unwrap_or_default(),
                (ParamKind::Free(_), None) => {
                    return Err(bad(format!(
                        "`{name}` is continuous; partition by discrete parameters (ints, choices, `step`)"
                    )));
                }
                _ => return Err(bad(format!("`{name}` is not searched (pinned or derived)"))),
            };
            if values.is_empty() {
                return Err(bad(format!("`{name}` has no values")));
            }
            axes.push(values);
        }
        let count = axes.iter().try_fold(1usize, |acc, a| acc.checked_mul(a.len()).filter(|c| *c <= MAX_CELLS));
        let Some(_) = count else {
            return Err(bad(format!("more than {MAX_CELLS} cells; partition by fewer or coarser parameters")));
        };
        let mut cells: Vec<Vec<Value>> = vec![Vec::new()];
        for axis in &axes {
            cells =
                cells.iter().flat_map(|c| axis.iter().map(move |v| [c.clone(), vec![v.clone()]].concat())).collect();
        }
        let alive = (0..cells.len()).collect();
        Ok(Subspace {
            by,
            cells,
            samples: samples.max(1),
            eta,
            round: 0,
            alive,
            issued: BTreeMap::new(),
            seen: BTreeSet::new(),
            models: BTreeMap::new(),
            space: space.clone(),
        })
    }

    /// The cells still in the race (one value per `by` parameter each).
    pub fn alive(&self) -> Vec<&[Value]> {
        self.alive.iter().map(|&c| self.cells[c].as_slice()).collect()
    }

    /// The round in progress (0 first); rounds end when one cell remains.
    pub fn round(&self) -> u32 {
        self.round
    }

    /// Trials each alive cell gets in the current round.
    pub fn budget_per_cell(&self) -> u64 {
        self.samples.saturating_mul(self.eta.saturating_pow(self.round))
    }

    /// The cell a point belongs to.
    fn cell_of(&self, params: &Point) -> Option<usize> {
        let key: Option<Vec<&Value>> = self.by.iter().map(|n| params.get(n)).collect();
        let key = key?;
        self.cells.iter().position(|c| c.iter().zip(&key).all(|(a, b)| a == *b || a.loosely_eq(b)))
    }

    /// Counts history trials this instance did not propose toward the current round.
    fn adopt(&mut self, history: &History) {
        for t in &history.trials {
            if self.seen.insert(t.number)
                && let Some(c) = self.cell_of(&t.params)
                && self.alive.contains(&c)
            {
                self.issued.insert(t.number, c);
            }
        }
    }

    /// Ranks the alive cells by their best trial and keeps the best `ceil(n / eta)`.
    fn halve(&mut self, history: &History) {
        let ranked = history.ranked();
        let mut best: BTreeMap<usize, usize> = BTreeMap::new();
        for (pos, t) in ranked.iter().enumerate() {
            if let Some(c) = self.cell_of(&t.params) {
                best.entry(c).or_insert(pos);
            }
        }
        let mut order = self.alive.clone();
        order.sort_by_key(|c| (best.get(c).copied().unwrap_or(usize::MAX), *c));
        let keep = self.alive.len().div_ceil(self.eta as usize).max(1);
        order.truncate(keep);
        order.sort_unstable();
        self.alive = order;
        self.round += 1;
        self.issued.clear();
    }

    /// A point inside `cell`: TPE over the cell's own trials (random at first).
    fn point_in(&mut self, ctx: &AskContext<'_>, cell: usize, rng: &mut Rng) -> Result<Point, SearchError> {
        let mut pins = ctx.pins.clone();
        for (name, v) in self.by.iter().zip(&self.cells[cell]) {
            pins.insert(name.clone(), v.clone());
        }
        let trials: Vec<Trial> =
            ctx.history.trials.iter().filter(|t| self.cell_of(&t.params) == Some(cell)).cloned().collect();
        let history = History { directions: ctx.history.directions.clone(), rank: ctx.history.rank.clone(), trials };
        let model = self.models.entry(cell).or_insert_with(|| Tpe::new(&self.space, DEFAULT_STARTUP));
        let inner = AskContext {
            space: ctx.space,
            ctx: ctx.ctx,
            pins: &pins,
            history: &history,
            number: ctx.number,
            budget: ctx.budget,
        };
        match model.ask(&inner, rng)? {
            Ask::Point(p) => Ok(p),
            _ => Ok(space::sample(ctx.space, ctx.ctx, &pins, rng)?),
        }
    }
}

impl Strategy for Subspace {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        self.adopt(ctx.history);
        loop {
            if self.alive.len() <= 1 {
                let cell = self.alive.first().copied().unwrap_or(0);
                let point = self.point_in(ctx, cell, rng)?;
                self.seen.insert(ctx.number);
                return Ok(Ask::Point(point));
            }
            let quota = self.budget_per_cell().saturating_mul(self.alive.len() as u64);
            let issued = self.issued.len() as u64;
            if issued < quota {
                // Round robin over the alive cells, so a cut-short round is still balanced.
                let cell = self.alive[(issued % self.alive.len() as u64) as usize];
                let point = self.point_in(ctx, cell, rng)?;
                self.seen.insert(ctx.number);
                self.issued.insert(ctx.number, cell);
                return Ok(Ask::Point(point));
            }
            let finished = self.issued.keys().all(|n| ctx.history.get(*n).is_some_and(|t| t.state.is_finished()));
            if !finished {
                return Ok(Ask::Wait);
            }
            self.halve(ctx.history);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Direction, Rank, TrialState};

    use crate::search::tpe::tests::program;

    const SPACE: &str = "    k: int in 0..=8\n    x: float in -1.0..1.0\n    y: float in -1.0..1.0";

    /// The optimum is in cell `k = 5` (0 at x = 0.3, y = 0); other cells are worse by
    /// at least `(k - 5)^2`, a margin larger than what a few samples inside a cell vary by.
    fn f(p: &Point) -> f64 {
        let k = p["k"].as_f64().unwrap_or(0.0);
        (k - 5.0).powi(2) + (p["x"].as_f64().unwrap_or(0.0) - 0.3).powi(2) + p["y"].as_f64().unwrap_or(0.0).powi(2)
    }

    fn make(prog: &ir::Program, samples: u64, eta: u64) -> Subspace {
        let ctx = Context { fns: &prog.fns, data: None };
        Subspace::new(&prog.experiments[0].space, ctx, &Point::new(), vec!["k".into()], samples, eta).unwrap()
    }

    /// Sequential study; gives the history.
    fn run(prog: &ir::Program, s: &mut Subspace, trials: u64, seed: u64) -> History {
        let space = &prog.experiments[0].space;
        let ctx = Context { fns: &prog.fns, data: None };
        let pins = Point::new();
        let mut history = History::new(vec![Direction::Minimize], Rank::default());
        for n in 0..trials {
            let mut rng = Rng::derive(seed, n);
            let ask = AskContext { space, ctx, pins: &pins, history: &history, number: n, budget: None };
            let Ask::Point(p) = s.ask(&ask, &mut rng).unwrap() else { panic!("sequential studies never wait") };
            let mut t = Trial::new(n, p, seed);
            t.state = TrialState::Complete;
            t.values = vec![f(&t.params)];
            history.upsert(t);
        }
        history
    }

    fn k(t: &Trial) -> i64 {
        t.params["k"].as_i64().unwrap()
    }

    #[test]
    fn the_budget_per_round_follows_eta_and_the_best_cell_survives() {
        let prog = program(SPACE);
        for seed in 0..5 {
            let mut s = make(&prog, 2, 3);
            let h = run(&prog, &mut s, 60, seed);
            // Round 0: 9 cells x 2 samples.
            let r0: BTreeSet<i64> = h.trials[..18].iter().map(k).collect();
            assert_eq!(r0.len(), 9);
            for c in 0..=8 {
                assert_eq!(h.trials[..18].iter().filter(|t| k(t) == c).count(), 2);
            }
            // Round 1: ceil(9 / 3) = 3 cells x 2 * 3 samples.
            let r1: BTreeSet<i64> = h.trials[18..36].iter().map(k).collect();
            assert_eq!(r1.len(), 3, "{r1:?}");
            assert!(r1.iter().all(|c| h.trials[18..36].iter().filter(|t| k(t) == *c).count() == 6));
            assert!(r1.contains(&5), "the optimum's cell survives round 0: {r1:?}");
            // Then one cell: refinement inside it.
            assert_eq!(s.alive().len(), 1);
            assert_eq!(s.alive()[0], &[Value::Int(5)]);
            assert!(h.trials[36..].iter().all(|t| k(t) == 5));
            let best = h.completed().map(|t| t.values[0]).fold(f64::INFINITY, f64::min);
            assert!(best < 0.05, "refinement inside the cell: {best}");
        }
    }

    #[test]
    fn a_round_waits_for_its_running_trials() {
        let prog = program(SPACE);
        let space = &prog.experiments[0].space;
        let ctx = Context { fns: &prog.fns, data: None };
        let pins = Point::new();
        let mut s = make(&prog, 1, 3);
        let mut history = History::new(vec![Direction::Minimize], Rank::default());
        let mut running = Vec::new();
        for n in 0..9 {
            let ask = AskContext { space, ctx, pins: &pins, history: &history, number: n, budget: None };
            let Ask::Point(p) = s.ask(&ask, &mut Rng::new(n)).unwrap() else { panic!() };
            running.push(Trial::new(n, p, 0));
        }
        let ask = AskContext { space, ctx, pins: &pins, history: &history, number: 9, budget: None };
        assert_eq!(s.ask(&ask, &mut Rng::new(9)).unwrap(), Ask::Wait);
        for mut t in running {
            t.state = TrialState::Complete;
            t.values = vec![f(&t.params)];
            history.upsert(t);
        }
        let ask = AskContext { space, ctx, pins: &pins, history: &history, number: 9, budget: None };
        assert!(matches!(s.ask(&ask, &mut Rng::new(9)).unwrap(), Ask::Point(_)));
        assert_eq!(s.round(), 1);
        assert_eq!(s.budget_per_cell(), 3);
        assert_eq!(s.alive().len(), 3);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let prog = program(SPACE);
        let a = run(&prog, &mut make(&prog, 2, 2), 40, 7);
        let b = run(&prog, &mut make(&prog, 2, 2), 40, 7);
        assert_eq!(a.trials, b.trials);
    }

    #[test]
    fn bad_partitions_are_clear_errors() {
        let prog = program("    k: in {a, b}\n    x: float in 0.0..1.0\n    when k == a { j: int in 1..=3 }");
        let space = &prog.experiments[0].space;
        let ctx = Context { fns: &prog.fns, data: None };
        let err = |by: &[&str]| {
            Subspace::new(space, ctx, &Point::new(), by.iter().map(|s| s.to_string()).collect(), 2, 3)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["x"]).contains("continuous"));
        assert!(err(&["nope"]).contains("no parameter"));
        assert!(err(&["j"]).contains("when"));
        assert!(err(&[]).contains("at least one"));
        assert!(Subspace::new(space, ctx, &Point::new(), vec!["k".into()], 2, 1).is_err());
    }
}
