//! `strategy = auto`, the default: picks a strategy from the study's shape.
//!
//! Takes the space, the pins, the number of objectives and the trial budget; gives the
//! strategy to run and the reason in words. The rule ([`choose`]):
//! - several objectives: `tpe` (its fronts-based split works from the first trials;
//!   NSGA-II needs generations of 50 to get going);
//! - one objective: `gp` when the budget is at most [`GP_MAX_TRIALS`] trials, at most
//!   [`GP_MAX_DIMS`] parameters are searched (pinned ones excluded), at most
//!   [`GP_MAX_CATEGORICAL`] of them are categorical, and none sits under a `when`;
//! - otherwise `tpe` (large budgets, where a GP's cubic cost grows; higher dimension; many
//!   categories or conditional spaces, where a stationary kernel fits poorly).
//!
//! The dimension limit was set on the search bench's tuning seeds (100..109,
//! bench/search/RESULTS.md): `gp` wins on Branin, Hartmann6 and the 5-parameter mixed
//! space, and loses 8x to `tpe` on Rosenbrock-10 (a heavy-tailed output). On the BBOB
//! suite (bench/search/RESULTS-gp.md, section 5.3) `auto` (= `gp` there) is within 1.5x of
//! the better of `gp` and `tpe` in 20 of 24 2-D cells and 12 of 24 5-D cells; `tpe` in 5-D
//! would do no better overall (19/24 cells, a larger geometric mean), so the rule, which
//! sees the space's shape and not the function, stays.
//!
//! The same inputs always give the same choice, so a study resumed or joined by a worker
//! runs the strategy it started with.

use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir::{self, Domain, ParamKind, Point, Value};
use crate::rng::Rng;

/// Budgets up to which `auto` picks `gp`.
pub const GP_MAX_TRIALS: u64 = 200;
/// Searched parameters up to which `auto` picks `gp`.
pub const GP_MAX_DIMS: usize = 8;
/// Categorical parameters up to which `auto` picks `gp`.
pub const GP_MAX_CATEGORICAL: usize = 3;

/// What `auto` picked, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The strategy, as a `strategy = ...` value (`gp`, `tpe`).
    pub strategy: Value,
    pub reason: String,
}

/// The strategy `auto` runs for this study.
pub fn choose(space: &ir::Space, pins: &Point, objectives: usize, trials: Option<u64>) -> Choice {
    let pick = |name: &str, reason: String| Choice { strategy: Value::sym(name), reason };
    if objectives > 1 {
        return pick("tpe", format!("{objectives} objectives"));
    }
    let free: Vec<&ir::Param> = space.free().filter(|p| !pins.contains_key(&p.name)).collect();
    let categorical = free.iter().filter(|p| matches!(p.kind, ParamKind::Free(Domain::Choice(_)))).count();
    let conditional = free.iter().filter(|p| p.is_conditional()).count();
    let budget = match trials {
        Some(t) if t <= GP_MAX_TRIALS => format!("{t} trials"),
        Some(t) => return pick("tpe", format!("{t} trials, more than {GP_MAX_TRIALS}")),
        None => return pick("tpe", "no trial budget".into()),
    };
    if free.len() > GP_MAX_DIMS {
        return pick("tpe", format!("{} parameters searched, more than {GP_MAX_DIMS}", free.len()));
    }
    if categorical > GP_MAX_CATEGORICAL {
        return pick("tpe", format!("{categorical} categorical parameters, more than {GP_MAX_CATEGORICAL}"));
    }
    if conditional > 0 {
        return pick("tpe", format!("{conditional} conditional parameter(s)"));
    }
    pick("gp", format!("one objective, {budget}, {} parameter(s) searched, {categorical} categorical", free.len()))
}

/// `auto` as a strategy: decides at its first ask, from what the ask shows (the history's
/// objectives, the budget), exactly as [`choose`] does for the study's plan.
pub struct Auto {
    chosen: Option<Box<dyn Strategy>>,
}

impl Auto {
    pub fn new() -> Auto {
        Auto { chosen: None }
    }
}

impl Default for Auto {
    fn default() -> Auto {
        Auto::new()
    }
}

impl Strategy for Auto {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        let chosen = match &mut self.chosen {
            Some(s) => s,
            None => {
                let choice = choose(ctx.space, ctx.pins, ctx.history.directions.len(), ctx.budget);
                self.chosen.insert(super::strategy(&choice.strategy, ctx.space, ctx.ctx, ctx.pins)?)
            }
        };
        chosen.ask(ctx, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tpe::tests::program;

    #[test]
    fn picks_gp_for_small_smooth_studies_and_tpe_otherwise() {
        let prog = program("    x: float in 0.0..1.0\n    n: int in 1..=8\n    c: in {a, b}");
        let space = &prog.experiments[0].space;
        let none = Point::new();
        let c = choose(space, &none, 1, Some(100));
        assert_eq!(c.strategy, Value::sym("gp"));
        assert_eq!(c.reason, "one objective, 100 trials, 3 parameter(s) searched, 1 categorical");
        assert_eq!(choose(space, &none, 1, Some(201)).strategy, Value::sym("tpe"));
        assert_eq!(choose(space, &none, 1, None).strategy, Value::sym("tpe"));
        let several = choose(space, &none, 2, Some(50));
        assert_eq!((several.strategy, several.reason.as_str()), (Value::sym("tpe"), "2 objectives"));

        let wide = program(&(0..9).map(|i| format!("    x{i}: float in 0.0..1.0\n")).collect::<String>());
        let space = &wide.experiments[0].space;
        assert_eq!(choose(space, &none, 1, Some(100)).strategy, Value::sym("tpe"));
        // A pinned parameter is not searched: 8 left.
        let pins: Point = [("x0".to_string(), Value::Float(0.5))].into();
        assert_eq!(choose(space, &pins, 1, Some(100)).strategy, Value::sym("gp"));

        let cond = program("    opt: in {sgd, adam}\n    when opt == sgd { m: float in 0.0..1.0 }");
        let c = choose(&cond.experiments[0].space, &none, 1, Some(50));
        assert_eq!((c.strategy, c.reason.as_str()), (Value::sym("tpe"), "1 conditional parameter(s)"));
        let cats = program("    a: in {x, y}\n    b: in {x, y}\n    c: in {x, y}\n    d: in {x, y}");
        assert_eq!(choose(&cats.experiments[0].space, &none, 1, Some(50)).strategy, Value::sym("tpe"));
    }
}
