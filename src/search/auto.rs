//! `strategy = auto`, the default: picks a strategy from the study's shape, then, where
//! that is `gp`, watches the GP's fit and hands over to `tpe` when the data say the GP is
//! the wrong tool.
//!
//! Takes the space, the pins, the number of objectives and the trial budget; gives the
//! strategy to start with and the reason in words. The rule ([`choose`]):
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
//! space, and loses 8x to `tpe` on Rosenbrock-10 (a heavy-tailed output).
//!
//! **The hand-over** ([`Auto`], [`AutoOptions`]). Within one dimension every BBOB function
//! has the same shape, and `gp` loses badly to `tpe` on some (rugged ones such as
//! Rastrigin and Weierstrass, the attractive sector, heavy-tailed ones in 5-D;
//! bench/search/RESULTS-gp.md, section 5.3), so the choice must also come from the data.
//! After [`FIRST_CHECK`] complete trials and every [`CHECK_EVERY`] after, `auto` fits a GP
//! in full (Optuna's default start, no warm start) on the first `k` complete trials in
//! trial order and reads its fit ([`FitQuality`]); [`AutoOptions::hand_over`] says "hand
//! over" when a GP fitted to the [`gp::NEAR`] trials nearest the best ranks them
//! (leave-one-out predictions against the losses, Spearman) better than the GP of every
//! trial does by more than [`MAX_LOCAL_GAIN`] (the global model is fooled near the best,
//! as by a cliff beside it: BBOB's attractive sector, where `gp` falls behind `tpe` from
//! its first trials), or when the fitted noise share `noise / (signal + noise)` is above
//! [`MAX_NOISE_SHARE`] (it explains the losses as noise), or, at checks up to
//! [`REPEATS_UNTIL`] trials, when the GP is stuck: more than [`MAX_REPEATS`] of the first
//! `k` trials asked again for a point measured before and found worse than the best before
//! them ([`FitQuality::repeats`]) and none of the last [`gp::HOT_WINDOW`] was a new best (on
//! Rastrigin-like functions `gp`'s asks keep landing on the edges of its box around a local
//! minimum, while `tpe` hops between the ripples; later, a GP that has converged asks again
//! for its box's edges too, and handing over would only slow its refinement). Then `tpe`
//! takes over with the whole history and keeps it to the end (no switch back). The rank
//! correlation of the whole fit's leave-one-out predictions
//! ([`AutoOptions::min_loo_rank`], 0.7 until RESULTS-gp.md section 13) is off by default:
//! with `gp`'s local asks while it progresses ([`gp::GpOptions::local_hot`]) `gp` itself
//! does well on rugged functions where that rule handed over, and it handed over where `gp`
//! was far ahead. The signals and thresholds were chosen on the suite's tuning split
//! (RESULTS-gp.md, sections 7, 13.5, 15, 16, the last with four trials at once too; the noise
//! share never passed 0.5 there, it is kept for pure noise) and run once on the report split
//! (sections 14, 15, 16). The hand-over is printed when it happens (`note: auto: gp → tpe
//! after 30 trials (a GP of the 15 trials nearest the best ranks them 0.57 better than the GP
//! of all > 0.3)`, [`Strategy::decisions`]) and `results.json` records it (`strategy_decisions`).
//!
//! Every check is a pure function of the history (pruned, failed and running trials do
//! not count; the first `k` complete ones by number do), so a study resumed or joined by a
//! worker, which runs the checks again, starts with the same strategy and hands over at
//! the same trial count. (Where a lower-numbered trial completes after a check was made,
//! a later recomputation sees other first `k`: the only way two runs can differ.)

use super::gp::{self, FitQuality, Gp};
use super::tpe::{self, Tpe};
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

/// When `auto` checks the GP's fit, and what makes it hand over to `tpe`.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoOptions {
    /// The first check, at this many complete trials.
    pub first: usize,
    /// Then every this many more.
    pub every: usize,
    /// Hand over when the fitted noise share `noise / (signal + noise)` is above this.
    pub max_noise_share: f64,
    /// Hand over when the rank correlation of the leave-one-out means with the losses is
    /// below this (-1, the default, never: a correlation is not below -1).
    pub min_loo_rank: f64,
    /// The `tpe` handed over to (`TpeOptions::default()`).
    pub tpe: tpe::TpeOptions,
    /// Hand over when a GP fitted to the [`gp::NEAR`] trials nearest the best ranks them
    /// (leave-one-out, Spearman) better than the model of every trial does by more than this:
    /// the global model is fooled near the best, as by a cliff beside it.
    pub max_local_gain: f64,
    /// Hand over when more than this many trials asked again for a point measured worse
    /// than the best before them ([`FitQuality::repeats`]) and none of the last
    /// [`gp::HOT_WINDOW`] trials was a new best: the GP is stuck beside a local minimum
    /// (`usize::MAX`: never).
    pub max_repeats: usize,
    /// The repeat rule is read at checks up to this many complete trials only: later, a GP
    /// that has converged asks again for the edges of its box around the best too, and
    /// `tpe` would only refine it more slowly.
    pub repeats_until: usize,
}

/// [`AutoOptions::first`]'s default.
pub const FIRST_CHECK: usize = 30;
/// [`AutoOptions::every`]'s default.
pub const CHECK_EVERY: usize = 10;
/// [`AutoOptions::max_noise_share`]'s default.
pub const MAX_NOISE_SHARE: f64 = 0.5;
/// [`AutoOptions::min_loo_rank`]'s default: off (section 13.5 of RESULTS-gp.md; 0.7 before).
pub const MIN_LOO_RANK: f64 = -1.0;
/// [`AutoOptions::max_local_gain`]'s default.
pub const MAX_LOCAL_GAIN: f64 = 0.3;
/// [`AutoOptions::max_repeats`]'s default.
pub const MAX_REPEATS: usize = 3;
/// [`AutoOptions::repeats_until`]'s default.
pub const REPEATS_UNTIL: usize = 50;

impl Default for AutoOptions {
    fn default() -> AutoOptions {
        AutoOptions {
            first: FIRST_CHECK,
            every: CHECK_EVERY,
            max_noise_share: MAX_NOISE_SHARE,
            min_loo_rank: MIN_LOO_RANK,
            tpe: tpe::TpeOptions::default(),
            max_local_gain: MAX_LOCAL_GAIN,
            max_repeats: MAX_REPEATS,
            repeats_until: REPEATS_UNTIL,
        }
    }
}

impl AutoOptions {
    /// Why this fit makes `auto` hand over to `tpe`, if it does (the one place the rule is
    /// written).
    pub fn hand_over(&self, q: &FitQuality) -> Option<String> {
        if q.noise_share > self.max_noise_share {
            Some(format!("GP noise share {:.2} > {}", q.noise_share, self.max_noise_share))
        } else if q.loo_rank < self.min_loo_rank {
            Some(format!("GP leave-one-out rank correlation {:.2} < {}", q.loo_rank, self.min_loo_rank))
        } else if q.local_rank - q.near_rank > self.max_local_gain {
            Some(format!(
                "a GP of the {} trials nearest the best ranks them {:.2} better than the GP of all > {}",
                gp::NEAR,
                q.local_rank - q.near_rank,
                self.max_local_gain
            ))
        } else if q.repeats > self.max_repeats && q.trials <= self.repeats_until && q.recent_bests == 0 {
            Some(format!(
                "{} trials asked again for a point measured worse than the best > {}, none of the last {} a new best",
                q.repeats,
                self.max_repeats,
                gp::HOT_WINDOW
            ))
        } else {
            None
        }
    }

    /// The rule in words, for the plan's note.
    pub fn describe(&self) -> String {
        let mut why = vec![format!("its noise share is above {}", self.max_noise_share)];
        if self.min_loo_rank > -1.0 {
            why.push(format!("its leave-one-out rank correlation is below {}", self.min_loo_rank));
        }
        if self.max_local_gain.is_finite() {
            why.push(format!(
                "a GP of the {} trials nearest the best ranks them better than it does by more than {}",
                gp::NEAR,
                self.max_local_gain
            ));
        }
        let repeats = if self.max_repeats < usize::MAX && self.repeats_until >= self.first {
            format!(
                ", or if, by {} trials, more than {} trials asked again for a point measured worse than the best and \
                 none of the last {} was a new best",
                self.repeats_until,
                self.max_repeats,
                gp::HOT_WINDOW
            )
        } else {
            String::new()
        };
        format!(
            "hands over to tpe if, in the GP's fit, {}{repeats} (checked at {} complete trials, then every {})",
            why.join(" or "),
            self.first,
            self.every.max(1)
        )
    }
}

/// `auto`'s hand-over from `gp` to `tpe`.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    /// At this many complete trials.
    pub after: usize,
    pub quality: FitQuality,
    /// The signal that decided, in words.
    pub reason: String,
}

impl std::fmt::Display for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "auto: gp \u{2192} tpe after {} trials ({})", self.after, self.reason)
    }
}

enum State {
    Undecided,
    /// `gp`, watched: the next check's trial count.
    Gp(Box<Gp>, usize),
    /// What was chosen at the start (not `gp`), or `tpe` after the hand-over.
    Other(Box<dyn Strategy>),
}

/// `auto` as a strategy: decides at its first ask, from what the ask shows (the history's
/// objectives, the budget), exactly as [`choose`] does for the study's plan. Where that is
/// `gp`, it then checks the GP's fit at fixed complete-trial counts ([`AutoOptions`]) and
/// hands over to `tpe` for good when the fit says the GP is the wrong tool. Each check is
/// a pure function of the history (a full fit on the first `k` complete trials), so a
/// resumed study, which runs the checks again, switches at the same count.
pub struct Auto {
    options: AutoOptions,
    state: State,
    checks: Vec<FitQuality>,
    switch: Option<Switch>,
}

impl Auto {
    pub fn new() -> Auto {
        Auto::with_options(AutoOptions::default())
    }

    pub fn with_options(options: AutoOptions) -> Auto {
        Auto { options, state: State::Undecided, checks: Vec::new(), switch: None }
    }

    /// The fits checked so far, in order.
    pub fn checks(&self) -> &[FitQuality] {
        &self.checks
    }

    /// The hand-over to `tpe`, once made.
    pub fn switch(&self) -> Option<&Switch> {
        self.switch.as_ref()
    }
}

impl Default for Auto {
    fn default() -> Auto {
        Auto::new()
    }
}

impl Strategy for Auto {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        if let State::Undecided = self.state {
            let choice = choose(ctx.space, ctx.pins, ctx.history.directions.len(), ctx.budget);
            self.state = if choice.strategy == Value::sym("gp") {
                State::Gp(Box::new(Gp::new(ctx.space, gp::DEFAULT_STARTUP)), self.options.first.max(2))
            } else {
                State::Other(super::strategy(&choice.strategy, ctx.space, ctx.ctx, ctx.pins)?)
            };
        }
        if let State::Gp(g, next) = &mut self.state {
            while let Some(q) = g.fit_quality(ctx.history, *next) {
                *next += self.options.every.max(1);
                let reason = self.options.hand_over(&q);
                self.checks.push(q.clone());
                if let Some(reason) = reason {
                    let switch = Switch { after: q.trials, quality: q, reason };
                    self.switch = Some(switch);
                    self.state = State::Other(Box::new(Tpe::with_options(ctx.space, self.options.tpe.clone())));
                    break;
                }
            }
        }
        match &mut self.state {
            State::Gp(g, _) => g.ask(ctx, rng),
            State::Other(s) => s.ask(ctx, rng),
            State::Undecided => Err(SearchError::Setting("`auto` has not decided".into())),
        }
    }

    fn decisions(&self) -> Vec<String> {
        self.switch.iter().map(Switch::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tpe::tests::{num, program};
    use crate::search::{Direction, History, Rank, Trial, TrialState};
    use crate::space::Context;

    /// Runs `auto` for `trials` trials with a budget of 100, `parallel` at a time (trial `n`
    /// sees the trials `<= n - parallel`); every 7th trial is pruned and every 11th fails
    /// (neither enters the GP's fit); `f` gives the loss and the constraint's violation.
    fn drive(
        prog: &ir::Program,
        auto: &mut Auto,
        f: &dyn Fn(&Point) -> (f64, f64),
        trials: u64,
        parallel: u64,
    ) -> History {
        let space = &prog.experiments[0].space;
        let ctx = Context { fns: &prog.fns, data: None };
        let mut done: Vec<Trial> = Vec::new();
        for n in 0..trials {
            let mut view = History::new(vec![Direction::Minimize], Rank::default());
            for t in done.iter().filter(|t| t.number + parallel <= n) {
                view.upsert(t.clone());
            }
            let mut rng = Rng::derive(7, n);
            let ask = AskContext { space, ctx, pins: &Point::new(), history: &view, number: n, budget: Some(100) };
            let Ok(Ask::Point(p)) = auto.ask(&ask, &mut rng) else { panic!("no point at trial {n}") };
            let (y, violation) = f(&p);
            let mut t = Trial::new(n, p, 7);
            t.state = match n % 11 {
                10 => TrialState::Failed,
                _ if n % 7 == 6 => TrialState::Pruned,
                _ => TrialState::Complete,
            };
            if t.state != TrialState::Failed {
                t.values = vec![y];
                t.violations = vec![violation];
            }
            done.push(t);
        }
        let mut h = History::new(vec![Direction::Minimize], Rank::default());
        done.into_iter().for_each(|t| h.upsert(t));
        h
    }

    /// A function whose model of every trial is fooled beside the best (BBOB f6's attractive
    /// sector: 100 times steeper past the optimum on each axis) makes `auto` hand over to
    /// `tpe` at its first check, on the local gain; a smooth one (a shifted sphere, with a
    /// constraint and several trials at once) keeps `gp`. Asked once with the same history,
    /// a fresh `auto` makes the same decision (what a resumed study does).
    #[test]
    fn hands_over_on_a_cliff_beside_the_best_and_not_on_a_smooth_function() {
        let prog = program("    x: float in 0.0..1.0\n    y: float in 0.0..1.0");
        let space = &prog.experiments[0].space;
        let rugged = |p: &Point| {
            let s = |z: f64| if z > 0.0 { 100.0 * z } else { z };
            ((s(num(p, "x") - 0.3).powi(2) + s(num(p, "y") - 0.6).powi(2)).powf(0.9), 0.0)
        };
        let mut auto = Auto::new();
        let h = drive(&prog, &mut auto, &rugged, 50, 1);
        let switch = auto.switch().expect("the attractive sector hands over").clone();
        assert_eq!(switch.after, FIRST_CHECK);
        let q = &switch.quality;
        assert!(q.local_rank - q.near_rank > MAX_LOCAL_GAIN && q.noise_share <= MAX_NOISE_SHARE, "{switch:?}");
        assert!(switch.reason.contains("nearest the best"), "{}", switch.reason);
        assert_eq!(
            auto.decisions(),
            vec![format!("auto: gp \u{2192} tpe after {FIRST_CHECK} trials ({})", switch.reason)]
        );
        assert_eq!(auto.checks().len(), 1, "no check after the hand-over");
        let mut again = Auto::new();
        let ctx = Context { fns: &prog.fns, data: None };
        let ask = AskContext { space, ctx, pins: &Point::new(), history: &h, number: 50, budget: Some(100) };
        assert!(matches!(again.ask(&ask, &mut Rng::derive(7, 50)), Ok(Ask::Point(_))));
        assert_eq!(again.switch(), Some(&switch));

        let smooth = |p: &Point| {
            let (x, y) = (num(p, "x"), num(p, "y"));
            ((x - 0.3).powi(2) + (y - 0.6).powi(2), (x - 0.8).max(0.0))
        };
        let mut auto = Auto::new();
        let h = drive(&prog, &mut auto, &smooth, 80, 3);
        assert_eq!(auto.switch(), None, "{:?}", auto.checks());
        // Complete trials only: 80 asked, 3 still running, the pruned and failed left out.
        let complete = h.trials.iter().filter(|t| t.number < 77 && t.state == TrialState::Complete).count();
        let expected: Vec<usize> =
            (0..).map(|i| FIRST_CHECK + i * CHECK_EVERY).take_while(|&k| k <= complete).collect();
        assert_eq!(auto.checks().iter().map(|q| q.trials).collect::<Vec<_>>(), expected);
        assert!(auto.decisions().is_empty());
    }

    /// Rastrigin in 2-D (ripples on a bowl): `gp`'s asks keep landing on the edges of its box
    /// around a local minimum, points it measured before and found worse, and `auto` hands
    /// over on those repeats by 50 trials.
    #[test]
    fn hands_over_when_the_gp_asks_again_for_points_it_found_worse() {
        let prog = program("    x: float in -5.0..5.0\n    y: float in -5.0..5.0");
        let rastrigin = |p: &Point| {
            let z = [num(p, "x") - 1.3, 3.0 * (num(p, "y") + 2.1)];
            let ripples = |z: f64| 10.0 * (1.0 - (2.0 * std::f64::consts::PI * z).cos()) + z * z;
            (z.into_iter().map(ripples).sum(), 0.0)
        };
        let mut auto = Auto::new();
        drive(&prog, &mut auto, &rastrigin, 80, 1);
        let switch = auto.switch().unwrap_or_else(|| panic!("rastrigin hands over: {:?}", auto.checks()));
        assert!(switch.reason.contains("asked again"), "{switch:?} after checks {:?}", auto.checks());
        let q = &switch.quality;
        assert!(q.repeats > MAX_REPEATS && q.recent_bests == 0 && q.trials <= REPEATS_UNTIL, "{q:?}");
        // Without the repeat rule, the same study keeps `gp` longer (here until the local gain
        // passes 0.3, at 60 trials).
        let mut without = Auto::with_options(AutoOptions { max_repeats: usize::MAX, ..AutoOptions::default() });
        drive(&prog, &mut without, &rastrigin, 80, 1);
        let later = without.switch().map(|s| (s.after, s.reason.contains("asked again")));
        assert!(later.is_none_or(|(after, repeats)| after > switch.after && !repeats), "{later:?}, {switch:?}");
        // Four at once: a local ask that lands on a pending point searches everywhere instead,
        // so fewer asks repeat a measured point, yet the rule still fires by 50 trials.
        let mut four = Auto::new();
        drive(&prog, &mut four, &rastrigin, 80, 4);
        let switch = four.switch().unwrap_or_else(|| panic!("four at once hands over: {:?}", four.checks()));
        assert!(switch.reason.contains("asked again") && switch.after <= REPEATS_UNTIL, "{switch:?}");
    }

    #[test]
    fn hand_over_reads_the_noise_share_the_rank_the_local_gain_then_the_repeats() {
        let q = FitQuality {
            trials: 30,
            noise_share: 0.7,
            loo_rank: 0.9,
            loo_density: -1.0,
            max_length: 0.2,
            near_rank: 0.5,
            local_rank: 0.7,
            local_length: 0.1,
            near_radius: 0.2,
            repeats: 0,
            recent_bests: 0,
        };
        let o = AutoOptions::default();
        assert_eq!(o.hand_over(&q), Some(format!("GP noise share 0.70 > {MAX_NOISE_SHARE}")));
        let quiet = FitQuality { noise_share: 0.01, ..q.clone() };
        assert_eq!(o.hand_over(&quiet), None, "a local gain of 0.2 keeps gp");
        // The rank rule is off by default: a poor global rank alone keeps gp.
        assert_eq!(o.hand_over(&FitQuality { loo_rank: -0.5, ..quiet.clone() }), None);
        let strict = AutoOptions { min_loo_rank: 0.95, ..o.clone() };
        assert!(strict.hand_over(&quiet).is_some_and(|r| r.contains("rank correlation 0.90")));
        // More than 3 trials asked again for a point measured worse than the best, none of
        // the last 10 a new best, by 50 trials.
        let stuck = FitQuality { repeats: MAX_REPEATS + 1, ..quiet.clone() };
        assert_eq!(
            o.hand_over(&stuck),
            Some(format!(
                "4 trials asked again for a point measured worse than the best > {MAX_REPEATS}, none of the last {} \
                 a new best",
                gp::HOT_WINDOW
            ))
        );
        assert_eq!(o.hand_over(&FitQuality { recent_bests: 1, ..stuck.clone() }), None, "still progressing");
        assert_eq!(o.hand_over(&FitQuality { repeats: MAX_REPEATS, ..stuck.clone() }), None);
        assert!(o.hand_over(&FitQuality { trials: REPEATS_UNTIL, ..stuck.clone() }).is_some());
        assert_eq!(o.hand_over(&FitQuality { trials: REPEATS_UNTIL + 1, ..stuck.clone() }), None, "a late check");
        assert_eq!(AutoOptions { max_repeats: usize::MAX, ..o.clone() }.hand_over(&stuck), None);
        let fooled = FitQuality { near_rank: 0.1, ..quiet };
        assert_eq!(
            o.hand_over(&fooled),
            Some(format!(
                "a GP of the {} trials nearest the best ranks them 0.60 better than the GP of all > {MAX_LOCAL_GAIN}",
                gp::NEAR
            ))
        );
        assert_eq!(AutoOptions { max_local_gain: f64::INFINITY, ..o.clone() }.hand_over(&fooled), None);
        assert_eq!(
            o.describe(),
            format!(
                "hands over to tpe if, in the GP's fit, its noise share is above 0.5 or a GP of the {} trials nearest \
                 the best ranks them better than it does by more than 0.3, or if, by 50 trials, more than 3 trials \
                 asked again for a point measured worse than the best and none of the last 10 was a new best \
                 (checked at 30 complete trials, then every 10)",
                gp::NEAR
            )
        );
        let never = AutoOptions { max_repeats: usize::MAX, ..o.clone() };
        assert!(never.describe().ends_with("by more than 0.3 (checked at 30 complete trials, then every 10)"));
        assert!(strict.describe().contains("or its leave-one-out rank correlation is below 0.95 or"));
    }

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

    /// A flat loss (every trial alike) and a step (two levels) give the checks degenerate
    /// fits and tied ranks: `auto` still asks every trial, and on the flat loss keeps `gp`
    /// (no strategy can do better there).
    #[test]
    fn flat_and_stepped_losses_still_ask() {
        let prog = program("    x: float in 0.0..1.0\n    y: float in 0.0..1.0");
        let flat = |_: &Point| (1.0, 0.0);
        let mut auto = Auto::new();
        let h = drive(&prog, &mut auto, &flat, 60, 2);
        assert_eq!(h.trials.len(), 60);
        assert!(!auto.checks().is_empty(), "the checks ran");
        assert_eq!(auto.switch(), None, "{:?}", auto.checks());
        let step = |p: &Point| (if num(p, "x") > 0.5 { 1.0 } else { 0.0 }, 0.0);
        let mut auto = Auto::new();
        let h = drive(&prog, &mut auto, &step, 60, 2);
        assert_eq!(h.trials.len(), 60);
        assert!(!auto.checks().is_empty(), "the checks ran");
    }
}
