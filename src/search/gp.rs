//! `gp(startup:)`: Bayesian optimisation with a Gaussian process, for one objective.
//!
//! Takes the [`History`](super::History) (and the points this strategy proposed that have
//! not finished yet); gives the point that maximises the log expected improvement over
//! the best feasible trial, times the probability of feasibility when trials broke
//! constraints.
//!
//! How it works (Optuna 5's `GPSampler` where it has an answer, BoTorch's otherwise):
//! - **Inputs.** One coordinate per free parameter: numeric ones on `[0, 1]` along their
//!   axis ([`space::Axis`]: `log` axes in log units, ints and stepped floats as their
//!   level's coordinate), categorical ones as the category's index, compared by Hamming
//!   distance in the kernel. A parameter absent from a trial (its `when` did not hold)
//!   sits at a constant: 0.5 for a numeric one, index -1 (unequal to every category)
//!   for a categorical one.
//! - **Outputs.** The first objective as a loss (lower is better), standardised, then
//!   mapped by the Yeo-Johnson power transform with its `lambda` fitted by likelihood
//!   ([`output`], HEBO's output warping; [`GpOptions::output`]) and standardised again: a
//!   heavy upper tail (losses spanning decades) is compressed and the losses near the best
//!   spread out, near-Gaussian losses are left almost as they are. The map keeps the
//!   order, so the expected improvement, computed in the mapped space, is measured from the
//!   same best trial. Complete trials only; pruned and failed ones are left out, infeasible
//!   ones kept (their value was measured).
//! - **Model** ([`model`]): Matérn with ARD length scales, signal and noise variance,
//!   fitted by L-BFGS on the log marginal likelihood plus Optuna's priors. A full fit (from
//!   Optuna's default start and from the previous ask's fit, each with the Matérn-5/2 and
//!   the Matérn-3/2 kernel, the best of the four kept, up to 200 iterations each:
//!   [`GpOptions::either_smoothness`]) at the first ask and whenever [`REFIT_EVERY`]
//!   complete trials came in since the last one; in between, [`WARM_ITERS`] iterations from
//!   the previous fit only, with its kernel (its hyperparameters move little from one trial
//!   to the next). The marginal likelihood picks 5/2 on smooth functions and 3/2 where the
//!   losses have kinks or are rugged at the data's resolution. At most [`MAX_OBS`]
//!   trials enter: the best third and the most recent others.
//! - **Acquisition** ([`acq`]): log EI (Ament et al. 2023). With constraints, a second GP
//!   models the total violation (0 where every constraint holds; trials refused before
//!   training enter this model only), and `log P(violation < t)` is added, `t` half the
//!   smallest violation seen (a trial records how far it broke a constraint, not how far it
//!   kept one, so "feasible" is read as "below the smallest miss"); with no feasible trial
//!   yet, that alone is maximised.
//! - **Search of the acquisition.** [`GpOptions::candidates`] random points (drawn by the
//!   space's own guards, so conditional parameters are present exactly where they apply)
//!   and the best trials so far are scored; the best few are improved by bounded L-BFGS
//!   along the numeric coordinates, then rounded onto the domain (ints, steps) and
//!   improved one discrete coordinate at a time (every category; the neighbouring levels
//!   of an int).
//!   [`GpOptions`] also holds Optuna's own acquisition search (`roulette` starts, length-scale
//!   `precondition`ing, more L-BFGS iterations); measured on Hartmann6 it changes nothing
//!   (bench/search/RESULTS-gp.md), so the default stays the cheaper search.
//! - **Local asks** ([`GpOptions::local_share`], half of the asks by default): the
//!   acquisition is maximised only inside a box around the best feasible trial (side
//!   [`GpOptions::local_box`] of each numeric axis's `[0, 1]`; categorical and conditional
//!   coordinates stay free), as TuRBO's trust region, so that half of the asks refine the
//!   incumbent where the global expected improvement keeps spending its asks on the model's
//!   uncertain edges; the other half search everywhere, so a wrong basin can still be left.
//!   A local ask also fits a second GP to the [`GpOptions::local_fit`] complete trials
//!   nearest the box's centre, and uses it instead of the model of every trial when its
//!   leave-one-out predictions rank those trials better (Spearman): where a cliff far from
//!   the incumbent sets the global length scales (BBOB's attractive sector, a loss that
//!   jumps where training diverges), the global model no longer tells the trials near the
//!   best apart, and the local one does; on a smooth loss the global model ranks them as
//!   well and stays. While the search progresses (at least [`HOT_BESTS`] of the last
//!   [`HOT_WINDOW`] complete trials were a new best when they came: [`GpOptions::local_hot`],
//!   [`GpOptions::hot_bests`]) every ask is local, so a run of gains near the incumbent is
//!   followed up there instead of being diluted by global asks; once it stalls, half
//!   again. Chosen on the suite's tuning split (bench/search/RESULTS-gp.md, sections 10,
//!   12 and 13.5; the report split in section 14).
//! - **Exploration when stalled** (`stall_after`, off when 0): after that many complete
//!   trials without a gain of more than `stall_gain` standard deviations on the best, the
//!   expected improvement is measured from `xi` below the best, `xi` growing by `xi_rate`
//!   per further stalled trial up to `xi_max`: near the incumbent, where the variance is
//!   small, such an improvement is unlikely, so the search moves to uncertain regions;
//!   the next real gain resets it. A pure function of the history (resumable).
//! - **Several trials at once.** Points this strategy proposed that have not finished
//!   (numbers below the asked one, absent from the history) are added to the model with
//!   their posterior mean as the observation ("kriging believer"; the incumbent of the
//!   expected improvement is the better of the best trial and those means), so parallel
//!   asks spread out instead of proposing the same point. A local ask that lands on a
//!   pending point searches everywhere instead: where the model's trend leaves the box,
//!   the believed value does not keep two asks apart (both land on the same corner).
//!   (Until RESULTS-gp.md section 15.6 every local ask whose box held a pending point
//!   went global, which left few local asks with four trials at once.)
//! - The first `startup` complete trials are random.
//!
//! **Invariant:** every point given is resolved by [`space::build`] (guards, pins, derived
//! values), and the search is deterministic for a given history and `rng`, except for the
//! warm start, the fit schedule and the pending points, which come from this strategy's own
//! earlier asks (the same in a run from the start; a resumed run starts them afresh).

mod acq;
mod lbfgs;
mod model;
mod output;

use std::collections::BTreeMap;

use super::{Ask, AskContext, History, SearchError, Strategy, TrialState};
use crate::ir::{self, Point};
use crate::rng::Rng;
use crate::space::{self, DimKind, Encoding};

pub use model::Params;

pub const DEFAULT_STARTUP: u64 = 10;
/// [`GpOptions::local_hot`]'s default: every ask local while the search progresses.
pub const LOCAL_HOT: f64 = 1.0;
/// [`GpOptions::hot_bests`]'s default.
pub const HOT_BESTS: usize = 2;
/// The window of [`GpOptions::hot_bests`], in complete trials.
pub const HOT_WINDOW: usize = 10;
/// The trials nearest the best that [`FitQuality`] models on their own.
pub const NEAR: usize = 15;

/// At most this many trials enter the model (its cost grows as the cube).
pub const MAX_OBS: usize = 300;

/// [`GpOptions::refit_every`]'s default: a full fit every 10 complete trials. Chosen on the
/// tuning seeds (Hartmann6 and Branin, seeds 100..129, bench/search/RESULTS-gp.md): the same
/// regret as a full fit at every ask, at 0.8x its CPU at 100 trials and 0.65x at 200.
pub const REFIT_EVERY: usize = 10;
/// [`GpOptions::warm_iters`]'s default.
pub const WARM_ITERS: usize = 20;
/// [`GpOptions::local_share`]'s and [`GpOptions::local_box`]'s defaults, chosen on the suite's
/// tuning split (bench/search/RESULTS-gp.md, sections 10 and 12).
pub const LOCAL_SHARE: f64 = 0.5;
pub const LOCAL_BOX: f64 = 0.1;
/// [`GpOptions::local_fit`]'s default, chosen on the suite's tuning split
/// (bench/search/RESULTS-gp.md, section 12).
pub const LOCAL_FIT: usize = 30;

/// Levels up to which an int or stepped dimension gets a discrete neighbour search.
const MAX_DISCRETE_LEVELS: u64 = 512;

/// How the losses are mapped before they are standardised and the model is fitted; every
/// map keeps their order (the same best trial), and the expected improvement is computed
/// in the mapped space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The losses themselves.
    Standard,
    /// `log(1 + (l - min) / median(l - min))`: compresses a heavy upper tail.
    Warp,
    /// The Yeo-Johnson power transform of the standardised losses, `lambda` by maximum
    /// likelihood ([`output::yeo_johnson`]).
    YeoJohnson,
    /// The Gaussian copula of the losses' ranks ([`output::copula`]).
    Copula,
}

/// Knobs of the search; [`GpOptions::default`] is what `gp(startup:)` uses.
#[derive(Debug, Clone, PartialEq)]
pub struct GpOptions {
    /// Random trials before the model is used.
    pub startup: u64,
    /// Random points whose acquisition is scored before the local search.
    pub candidates: usize,
    /// How many of the best candidates are improved by local search.
    pub local_starts: usize,
    /// How the losses are mapped before they are standardised ([`Output`]; default
    /// Yeo-Johnson, chosen on the suite's tuning split: bench/search/RESULTS-gp.md section 6).
    pub output: Output,
    /// Local starts are Optuna's: the best candidate, the best trial, and the others drawn
    /// among the candidates with weights `exp(acquisition - max)` (a roulette), instead of
    /// the best-scored candidates.
    pub roulette: bool,
    /// The local search runs in coordinates divided by the fitted length scales (Optuna's
    /// preconditioning), so a short length scale does not make the step ill-conditioned.
    pub precondition: bool,
    /// Iterations of each local search.
    pub local_iters: usize,
    /// Exploration when stalled: after this many complete trials without a gain of more
    /// than `stall_gain` standard deviations of the losses on the best, the expected
    /// improvement is measured from below the best (0: never).
    pub stall_after: usize,
    /// The least gain on the best that ends a stall, in standard deviations of the losses.
    pub stall_gain: f64,
    /// How far below the best each further stalled trial moves the threshold
    /// (standardised units).
    pub xi_rate: f64,
    /// The most the threshold moves below the best.
    pub xi_max: f64,
    /// The hyperparameters are fitted in full (from Optuna's default start and the previous
    /// fit, up to 200 L-BFGS iterations each) when this many complete trials came in since
    /// the last full fit (1: at every ask); in between, from the previous fit only, with at
    /// most `warm_iters` iterations.
    pub refit_every: usize,
    /// L-BFGS iterations of the fits between full ones.
    pub warm_iters: usize,
    /// Share of the asks whose acquisition is maximised only inside a box around the best
    /// feasible trial (a trust region; 0: none), drawn per ask, and the box's side on each
    /// numeric axis's `[0, 1]` (categorical and conditional coordinates are not boxed).
    pub local_share: f64,
    pub local_box: f64,
    /// While the search progresses (at least `hot_bests` of the last [`HOT_WINDOW`] complete
    /// trials were a new best when they came), the share of local asks is `local_hot`
    /// instead of `local_share` (0: never). A pure function of the losses.
    pub local_hot: f64,
    pub hot_bests: usize,
    /// Each full fit tries Matérn-3/2 beside Matérn-5/2 from every start and keeps the
    /// kernel with the higher log posterior ([`model::Smoothness`]); the fits between keep
    /// it. Default on, chosen on the suite's tuning split (bench/search/RESULTS-gp.md,
    /// section 11).
    pub either_smoothness: bool,
    /// A local ask also fits a model to the `local_fit` complete trials nearest the box's
    /// centre (below 2, or not more trials than that: only the model of every trial), so
    /// that a cliff away from the incumbent does not set its length scales.
    pub local_fit: usize,
    /// With `local_fit`: the local model is used only when its leave-one-out predictions
    /// rank the local trials better (Spearman) than the model of every trial does; off, it
    /// is always used.
    pub local_choose: bool,
}

impl Default for GpOptions {
    fn default() -> GpOptions {
        GpOptions {
            startup: DEFAULT_STARTUP,
            candidates: 512,
            local_starts: 4,
            output: Output::YeoJohnson,
            roulette: false,
            precondition: false,
            local_iters: 40,
            stall_after: 0,
            stall_gain: 1e-3,
            xi_rate: 0.05,
            xi_max: 1.0,
            refit_every: REFIT_EVERY,
            warm_iters: WARM_ITERS,
            local_share: LOCAL_SHARE,
            local_box: LOCAL_BOX,
            either_smoothness: true,
            local_fit: LOCAL_FIT,
            local_choose: true,
            local_hot: LOCAL_HOT,
            hot_bests: HOT_BESTS,
        }
    }
}

/// The strategy: the encoding, the last fit and this strategy's own asks.
#[derive(Debug, Clone)]
pub struct Gp {
    options: GpOptions,
    enc: Encoding,
    cat: Vec<bool>,
    /// Some parameter sits under a `when`: points are built through the guards.
    conditional: bool,
    /// Each discrete numeric dimension's level coordinates.
    levels: Vec<Option<Vec<f64>>>,
    last: Option<Params>,
    /// Complete trials at the last full fit of the hyperparameters.
    last_full: usize,
    /// Features of the points this strategy proposed, by trial number.
    asked: BTreeMap<u64, Vec<f64>>,
}

impl Gp {
    pub fn new(space: &ir::Space, startup: u64) -> Gp {
        Gp::with_options(space, GpOptions { startup, ..GpOptions::default() })
    }

    pub fn with_options(space: &ir::Space, options: GpOptions) -> Gp {
        let enc = super::encoding(space);
        let cat = enc.dims.iter().map(|d| matches!(d.kind, DimKind::Categorical(_))).collect();
        let conditional = enc.dims.iter().any(|d| d.conditional);
        let levels = enc
            .dims
            .iter()
            .map(|d| match &d.kind {
                DimKind::Numeric(axis) => {
                    axis.bins(MAX_DISCRETE_LEVELS).map(|b| b.into_iter().map(|(_, _, at)| at).collect())
                }
                DimKind::Categorical(_) => None,
            })
            .collect();
        Gp { options, enc, cat, conditional, levels, last: None, last_full: 0, asked: BTreeMap::new() }
    }

    /// A point's features; absent parameters at their constant.
    fn features(&self, point: &Point) -> Vec<f64> {
        self.enc
            .encode(point)
            .into_iter()
            .zip(&self.cat)
            .map(|(c, &cat)| c.unwrap_or(if cat { -1.0 } else { 0.5 }))
            .collect()
    }

    /// The point nearest to raw coordinates `u` and its features: values rounded onto
    /// their domains, pins kept, guards applied.
    fn resolve(&self, u: &[f64], ctx: &AskContext<'_>) -> Result<(Point, Vec<f64>), SearchError> {
        let point = space::build(ctx.space, ctx.ctx, ctx.pins, |p, domain, _| match self.enc.index(&p.name) {
            Some(d) => self.enc.dims[d].value(u[d].max(0.0)),
            None => space::sample_domain(domain, &mut Rng::new(0)),
        })?;
        let x = self.features(&point);
        Ok((point, x))
    }

    /// The features `resolve` would give, without building the point (spaces without
    /// guards only).
    fn snap(&self, u: &[f64], pinned: &[Option<f64>]) -> Vec<f64> {
        self.enc
            .dims
            .iter()
            .enumerate()
            .map(|(d, dim)| match pinned[d] {
                Some(x) => x,
                None => dim.coordinate(&dim.value(u[d].max(0.0))).unwrap_or(0.5),
            })
            .collect()
    }

    fn canonical(&self, u: &[f64], pinned: &[Option<f64>], ctx: &AskContext<'_>) -> Result<Vec<f64>, SearchError> {
        if self.conditional { Ok(self.resolve(u, ctx)?.1) } else { Ok(self.snap(u, pinned)) }
    }

    fn random_u(&self, rng: &mut Rng) -> Vec<f64> {
        self.enc
            .dims
            .iter()
            .map(|d| match d.categories() {
                Some(k) => rng.index(k.max(1)) as f64,
                None => rng.f64(),
            })
            .collect()
    }
}

/// How well the GP fits a study's first trials: what `auto` reads to decide whether the GP
/// is the right tool ([`Gp::fit_quality`]). Every figure comes from the first `trials`
/// complete trials in trial order: the fit's from one full fit of them (Optuna's default
/// start, no warm start), `repeats` and `recent_bests` from their points and losses alone.
#[derive(Debug, Clone, PartialEq)]
pub struct FitQuality {
    /// Complete trials fitted.
    pub trials: usize,
    /// `noise / (signal + noise)`: the share of the outputs' variance the fit calls noise.
    /// A function rugged or heavy-tailed at the data's resolution is fitted as noise.
    pub noise_share: f64,
    /// Spearman's rank correlation between the leave-one-out means and the losses.
    pub loo_rank: f64,
    /// The mean leave-one-out log predictive density of the standardised losses.
    pub loo_density: f64,
    /// The longest length scale of a numeric dimension (inputs on `[0, 1]`; infinite when
    /// there is none).
    pub max_length: f64,
    /// Among the [`NEAR`] trials nearest the best: the rank correlation of this fit's
    /// leave-one-out means with their losses, and the same for a GP fitted to them alone. A
    /// local rank well above the near one says the global model is fooled near the best.
    pub near_rank: f64,
    pub local_rank: f64,
    /// The shortest numeric length scale of that local GP, and the distance from the best to
    /// the farthest of those trials (numeric coordinates on `[0, 1]`; infinite / 0 when there
    /// is no numeric one): a local length well below the radius says the losses ripple at a
    /// scale the global fit does not see. Logged for the search bench; no rule reads them.
    pub local_length: f64,
    pub near_radius: f64,
    /// Trials that ask again for the point of an earlier trial whose loss was above the best
    /// before them (same features): the GP wanted a point it had measured and found worse,
    /// as when its asks keep landing on the edges of the box around a local minimum of a
    /// rugged function.
    pub repeats: usize,
    /// How many of the last [`HOT_WINDOW`] of these trials were a new best when they came.
    pub recent_bests: usize,
}

/// What an ask's models know.
struct Fitted {
    objective: model::Model,
    /// The best feasible standardised loss, if any trial is feasible.
    best: Option<f64>,
    /// The feasibility model and its threshold.
    feasibility: Option<(model::Model, f64)>,
}

impl Fitted {
    /// The acquisition at `x`, and its gradient when `grad` is given.
    fn value(&self, x: &[f64], grad: Option<&mut [f64]>) -> f64 {
        let mut total = 0.0;
        let mut g = grad;
        if let Some(gr) = g.as_deref_mut() {
            gr.iter_mut().for_each(|v| *v = 0.0);
        }
        let term = |m: &model::Model, f: &dyn Fn(f64, f64) -> (f64, f64, f64), g: &mut Option<&mut [f64]>| match g
            .as_deref_mut()
        {
            Some(gr) => {
                let (mean, var, dm, dv) = m.posterior_grad(x);
                let (v, a, b) = f(mean, var);
                for c in 0..gr.len() {
                    gr[c] += a * dm[c] + b * dv[c];
                }
                v
            }
            None => {
                let (mean, var) = m.posterior(x);
                f(mean, var).0
            }
        };
        if let Some(best) = self.best {
            total += term(&self.objective, &|m, v| acq::log_ei(m, v, best), &mut g);
        }
        if let Some((m, threshold)) = &self.feasibility {
            let t = *threshold;
            total += term(m, &|m, v| acq::log_pof(m, v, t), &mut g);
        }
        total
    }
}

impl Strategy for Gp {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        let history = ctx.history;
        if history.directions.len() > 1 {
            return Err(SearchError::Setting(format!(
                "`strategy = gp` searches one objective; this experiment has {}: use `tpe` or `nsga2` (or leave \
                 `strategy` out: `auto` picks one)",
                history.directions.len()
            )));
        }
        // Finished trials leave the pending set.
        self.asked.retain(|n, _| history.get(*n).is_none());
        let mut xs = Vec::new();
        let mut losses = Vec::new();
        let mut violations = Vec::new();
        let mut refused = Vec::new();
        for t in &history.trials {
            match t.state {
                TrialState::Complete => {
                    let l = history.losses(t);
                    if let Some(&loss) = l.first().filter(|v| v.is_finite()) {
                        xs.push(self.features(&t.params));
                        losses.push(loss);
                        violations.push(finite_violation(t.total_violation()));
                    }
                }
                TrialState::Infeasible if !t.params.is_empty() => {
                    // Refused before training: infeasible, whatever its recorded violations say.
                    let v = finite_violation(t.total_violation());
                    refused.push((self.features(&t.params), if v > 0.0 { v } else { 1.0 }));
                }
                _ => {}
            }
        }
        if (xs.len() as u64) < self.options.startup.max(1) || self.enc.dims.is_empty() {
            let point = ctx.random_point(rng)?;
            self.asked.insert(ctx.number, self.features(&point));
            return Ok(Ask::Point(point));
        }
        let all_losses = losses.clone();
        let complete = xs.len();
        let keep = keep(&losses, MAX_OBS);
        let xs: Vec<Vec<f64>> = keep.iter().map(|&i| xs[i].clone()).collect();
        let losses: Vec<f64> = keep.iter().map(|&i| losses[i]).collect();
        let violations: Vec<f64> = keep.iter().map(|&i| violations[i]).collect();
        let ys = self.targets(&losses);
        let starts: Vec<Params> = self.last.iter().cloned().collect();
        let effort = self.effort(complete);
        let fit = model::Model::fit_with(xs.clone(), &ys, self.cat.clone(), &starts, effort);
        self.last = Some(fit.params.clone());
        let pending: Vec<Vec<f64>> =
            self.asked.range(..ctx.number).map(|(_, x)| x.clone()).rev().take(MAX_OBS / 4).collect();
        let (objective, means) = fit.with_fantasies(&ys, &pending);
        let xi = self.xi(&all_losses);
        // Kriging believer: a pending point counts as observed at its predicted mean, for the
        // incumbent too, so that a point whose mean beats the best is not asked twice.
        let believed = means.into_iter().reduce(f64::min);
        let best = incumbent(&ys, &violations, believed, xi);
        let feasibility = if violations.iter().any(|v| *v > 0.0) || !refused.is_empty() {
            let mut cx = xs.clone();
            cx.extend(refused.iter().map(|(x, _)| x.clone()));
            let v: Vec<f64> = violations.iter().copied().chain(refused.iter().map(|(_, v)| *v)).collect();
            let smallest = v.iter().copied().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
            let threshold = if smallest.is_finite() { 0.5 * smallest } else { 0.0 };
            let (mean, sd) = mean_sd(&v);
            let t: Vec<f64> = v.iter().map(|l| (l - mean) / sd).collect();
            let m = model::Model::fit(cx, &t, self.cat.clone(), &[]);
            Some((m, (threshold - mean) / sd))
        } else {
            None
        };
        let hot = self.options.local_hot > 0.0 && new_bests(&all_losses, HOT_WINDOW) >= self.options.hot_bests;
        let share = if hot { self.options.local_hot } else { self.options.local_share };
        let local = share > 0.0 && rng.f64() < share;
        let bounds = local.then(|| self.trust_region(&xs, &ys, &violations));
        let local_model = match bounds {
            Some(_) if self.options.local_fit >= 2 && xs.len() > self.options.local_fit => {
                self.local_model(&xs, &losses, &violations, &pending, xi, (&fit, &ys))
            }
            _ => None,
        };
        let mut fitted = Fitted { objective, best, feasibility };
        // The model of every trial, kept aside while the local one is asked.
        let global = local_model.map(|(objective, best)| {
            (std::mem::replace(&mut fitted.objective, objective), std::mem::replace(&mut fitted.best, best))
        });
        let (mut point, mut x) = self.maximise(&fitted, &xs, &ys, ctx, rng, bounds.as_ref())?;
        // A local ask that lands on a pending point searches everywhere instead, with the
        // model of every trial: where the model's trend leaves the box, the believed value of
        // a pending point on its edge does not keep the next ask away from it (both land on
        // the same corner).
        if bounds.is_some() && pending.contains(&x) {
            if let Some((objective, best)) = global {
                (fitted.objective, fitted.best) = (objective, best);
            }
            (point, x) = self.maximise(&fitted, &xs, &ys, ctx, rng, None)?;
        }
        self.asked.insert(ctx.number, x);
        Ok(Ask::Point(point))
    }
}

impl Gp {
    /// What the model is fitted to: the losses mapped by [`GpOptions::output`], standardised.
    fn targets(&self, losses: &[f64]) -> Vec<f64> {
        match self.options.output {
            Output::Standard => standardise(losses),
            Output::Warp => standardise(&warp(losses)),
            Output::YeoJohnson => standardise(&output::yeo_johnson(losses).0),
            Output::Copula => standardise(&output::copula(losses)),
        }
    }

    /// The fit's quality on the first `trials` complete trials (finite first objective, in
    /// trial order); `None` while fewer have completed. A pure function of the history.
    pub fn fit_quality(&self, history: &History, trials: usize) -> Option<FitQuality> {
        let mut done: Vec<&super::Trial> = history
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && history.losses(t).first().is_some_and(|l| l.is_finite()))
            .collect();
        if done.len() < trials.max(2) || self.enc.dims.is_empty() {
            return None;
        }
        done.sort_by_key(|t| t.number);
        done.truncate(trials);
        let xs: Vec<Vec<f64>> = done.iter().map(|t| self.features(&t.params)).collect();
        let losses: Vec<f64> = done.iter().map(|t| history.losses(t)[0]).collect();
        let ys = self.targets(&losses);
        let fit = model::Model::fit_with(xs.clone(), &ys, self.cat.clone(), &[], model::Effort::FULL);
        let p = &fit.params;
        let loo = fit.leave_one_out(&ys);
        let density = loo
            .iter()
            .zip(&ys)
            .map(|((m, v), y)| -0.5 * (2.0 * std::f64::consts::PI * v).ln() - 0.5 * (y - m).powi(2) / v)
            .sum::<f64>()
            / ys.len() as f64;
        let means: Vec<f64> = loo.iter().map(|(m, _)| *m).collect();
        let max_length = p
            .rho
            .iter()
            .zip(&self.cat)
            .filter(|(_, c)| !**c)
            .map(|(r, _)| 1.0 / r.sqrt())
            .fold(f64::NEG_INFINITY, f64::max);
        let best = &xs[centre(&ys, &vec![0.0; ys.len()])];
        let order = self.nearest(&xs, best, NEAR);
        let ly = self.targets(&order.iter().map(|&i| losses[i]).collect::<Vec<_>>());
        let lx: Vec<Vec<f64>> = order.iter().map(|&i| xs[i].clone()).collect();
        let local = model::Model::fit_with(lx, &ly, self.cat.clone(), &[], model::Effort::FULL);
        let own: Vec<f64> = local.leave_one_out(&ly).into_iter().map(|(m, _)| m).collect();
        let theirs = fit.leave_one_out_means_at(&ys, &order);
        let numeric = |d: &usize| !self.cat[*d];
        let local_length =
            (0..self.cat.len()).filter(numeric).map(|d| 1.0 / local.params.rho[d].sqrt()).fold(f64::INFINITY, f64::min);
        let near_radius = order
            .iter()
            .map(|&i| (0..best.len()).filter(numeric).map(|d| (xs[i][d] - best[d]).powi(2)).sum::<f64>().sqrt())
            .fold(0.0, f64::max);
        Some(FitQuality {
            repeats: repeats(&xs, &losses),
            recent_bests: new_bests(&losses, HOT_WINDOW),
            local_length,
            near_radius,
            near_rank: spearman(&theirs, &ly),
            local_rank: spearman(&own, &ly),
            trials,
            noise_share: p.noise / (p.scale + p.noise),
            loo_rank: spearman(&means, &ys),
            loo_density: density,
            max_length: if max_length.is_finite() { max_length } else { f64::INFINITY },
        })
    }

    /// How much the hyperparameter fit of an ask with `complete` trials works: in full at
    /// the first fit and every [`GpOptions::refit_every`] complete trials, from the previous
    /// fit with [`GpOptions::warm_iters`] iterations in between.
    fn effort(&mut self, complete: usize) -> model::Effort {
        if self.last.is_none() || complete >= self.last_full + self.options.refit_every.max(1) {
            self.last_full = complete;
            self.full_effort()
        } else {
            model::Effort::warm(self.options.warm_iters)
        }
    }

    /// How far below the best (standardised) the expected improvement is measured: 0 until
    /// `stall_after` trials passed without a real gain, then `xi_rate` more per stalled
    /// trial, at most `xi_max`.
    fn xi(&self, losses: &[f64]) -> f64 {
        let o = &self.options;
        if o.stall_after == 0 {
            return 0.0;
        }
        let over = stall(losses, o.stall_gain * mean_sd(losses).1).saturating_sub(o.stall_after);
        (o.xi_rate * over as f64).min(o.xi_max)
    }

    /// A local ask's model ([`GpOptions::local_fit`]) and its incumbent: a full fit on the
    /// trials nearest the best feasible one (Euclidean on the numeric coordinates, a
    /// different category counting 1), with the pending points believed as in `ask`.
    fn local_model(
        &self,
        xs: &[Vec<f64>],
        losses: &[f64],
        violations: &[f64],
        pending: &[Vec<f64>],
        xi: f64,
        (global, ys): (&model::Model, &[f64]),
    ) -> Option<(model::Model, Option<f64>)> {
        let order = self.nearest(xs, &xs[centre(ys, violations)], self.options.local_fit);
        let lx: Vec<Vec<f64>> = order.iter().map(|&i| xs[i].clone()).collect();
        let ly = self.targets(&order.iter().map(|&i| losses[i]).collect::<Vec<_>>());
        let fit = model::Model::fit_with(lx, &ly, self.cat.clone(), &[], self.full_effort());
        // The ranks of `ly` are those of the local losses (the output map keeps their order).
        if self.options.local_choose {
            let own: Vec<f64> = fit.leave_one_out(&ly).into_iter().map(|(m, _)| m).collect();
            let theirs = global.leave_one_out_means_at(ys, &order);
            if spearman(&own, &ly) <= spearman(&theirs, &ly) {
                return None;
            }
        }
        let (objective, means) = fit.with_fantasies(&ly, pending);
        let lv: Vec<f64> = order.iter().map(|&i| violations[i]).collect();
        let best = incumbent(&ly, &lv, means.into_iter().reduce(f64::min), xi);
        Some((objective, best))
    }

    /// The indices (ascending) of the `k` points of `xs` nearest `centre`: Euclidean on the
    /// numeric coordinates, a different category counting 1.
    fn nearest(&self, xs: &[Vec<f64>], centre: &[f64], k: usize) -> Vec<usize> {
        let distance: Vec<f64> = xs
            .iter()
            .map(|x| {
                x.iter()
                    .zip(centre)
                    .zip(&self.cat)
                    .map(|((a, b), &cat)| if cat { f64::from(u8::from(a != b)) } else { (a - b).powi(2) })
                    .sum()
            })
            .collect();
        let mut order: Vec<usize> = (0..xs.len()).collect();
        order.sort_by(|&a, &b| distance[a].total_cmp(&distance[b]));
        order.truncate(k);
        order.sort_unstable();
        order
    }

    /// A full fit's effort: both smoothnesses tried when [`GpOptions::either_smoothness`].
    fn full_effort(&self) -> model::Effort {
        if self.options.either_smoothness { model::Effort::FULL_EITHER } else { model::Effort::FULL }
    }

    /// The box of a local ask ([`GpOptions::local_share`]): per coordinate, the bounds of
    /// the search, `local_box` wide around the best feasible trial (the best one when none
    /// is feasible) on a numeric axis, `[0, 1]` on a conditional one and unbounded on a
    /// categorical one (neither is boxed).
    fn trust_region(&self, xs: &[Vec<f64>], ys: &[f64], violations: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let centre = &xs[centre(ys, violations)];
        let h = self.options.local_box / 2.0;
        (0..centre.len())
            .map(|d| match (self.cat[d], self.enc.dims[d].conditional) {
                // A category index (or -1, absent) is never clamped.
                (true, _) => (f64::NEG_INFINITY, f64::INFINITY),
                (false, true) => (0.0, 1.0),
                (false, false) => ((centre[d] - h).max(0.0), (centre[d] + h).min(1.0)),
            })
            .unzip()
    }

    /// The point of highest acquisition found: random candidates and the best trials,
    /// the best few improved locally; inside `bounds` (on the numeric coordinates) when
    /// given.
    fn maximise(
        &self,
        fitted: &Fitted,
        xs: &[Vec<f64>],
        ys: &[f64],
        ctx: &AskContext<'_>,
        rng: &mut Rng,
        bounds: Option<&(Vec<f64>, Vec<f64>)>,
    ) -> Result<(Point, Vec<f64>), SearchError> {
        let pinned: Vec<Option<f64>> =
            self.enc.dims.iter().map(|d| ctx.pins.get(&d.name).and_then(|v| d.coordinate(v))).collect();
        let mut scored: Vec<(f64, Vec<f64>)> = Vec::with_capacity(self.options.candidates + 8);
        for _ in 0..self.options.candidates {
            let mut u = self.random_u(rng);
            if let Some((lo, hi)) = bounds {
                for d in (0..u.len()).filter(|&d| !self.cat[d]) {
                    u[d] = lo[d] + (hi[d] - lo[d]) * u[d];
                }
            }
            let x = self.canonical(&u, &pinned, ctx)?;
            scored.push((fitted.value(&x, None), x));
        }
        let mut order: Vec<usize> = (0..ys.len()).collect();
        order.sort_by(|&a, &b| ys[a].total_cmp(&ys[b]));
        // The best trials start local searches too, but not in a local ask: its box is
        // centred on the best, and a search that cannot leave it would ask that trial again.
        let tops = if bounds.is_some() { 0 } else { 3 };
        let starts = if self.options.roulette && bounds.is_none() {
            let trial = self.canonical(&xs[order[0]], &pinned, ctx)?;
            let trial = (fitted.value(&trial, None), trial);
            roulette(scored, self.options.local_starts.max(2) - 1, trial, rng)
        } else {
            for &i in order.iter().take(tops) {
                let x = self.canonical(&xs[i], &pinned, ctx)?;
                scored.push((fitted.value(&x, None), x));
            }
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.dedup_by(|a, b| a.1 == b.1);
            scored.truncate(self.options.local_starts.max(1));
            scored
        };
        let mut best: Option<(f64, Vec<f64>)> = None;
        for (v0, x0) in starts {
            let (v, x) = self.improve(fitted, v0, x0, &pinned, ctx, bounds)?;
            if best.as_ref().is_none_or(|(b, _)| v > *b) {
                best = Some((v, x));
            }
        }
        let u = match best {
            Some((_, x)) => x,
            None => self.random_u(rng),
        };
        self.resolve(&u, ctx)
    }

    /// Local search from `x0`: L-BFGS along the free numeric coordinates, then one pass
    /// over the discrete ones.
    fn improve(
        &self,
        fitted: &Fitted,
        v0: f64,
        x0: Vec<f64>,
        pinned: &[Option<f64>],
        ctx: &AskContext<'_>,
        bounds: Option<&(Vec<f64>, Vec<f64>)>,
    ) -> Result<(f64, Vec<f64>), SearchError> {
        let free: Vec<usize> = (0..x0.len())
            .filter(|&d| pinned[d].is_none() && !self.cat[d] && !(self.enc.dims[d].conditional && x0[d] == 0.5))
            .collect();
        let (mut best_v, mut best_x) = (v0, x0.clone());
        if !free.is_empty() {
            let mut full = x0.clone();
            let mut g = vec![0.0; x0.len()];
            // Preconditioning: search `z = x / l` (l the length scale), inside `[0, 1 / l]`.
            let scale: Vec<f64> = free
                .iter()
                .map(|&d| if self.options.precondition { 1.0 / fitted.objective.params.rho[d].sqrt() } else { 1.0 })
                .collect();
            let (lo, hi): (Vec<f64>, Vec<f64>) = match bounds {
                Some((blo, bhi)) => free.iter().zip(&scale).map(|(&d, l)| (blo[d] / l, bhi[d] / l)).unzip(),
                None => (vec![0.0; free.len()], scale.iter().map(|l| 1.0 / l).collect()),
            };
            // A start rounded onto an int's or step's level may sit just outside the box: it
            // begins on the box's edge.
            let start: Vec<f64> =
                free.iter().zip(&scale).enumerate().map(|(k, (&d, l))| (x0[d] / l).clamp(lo[k], hi[k])).collect();
            let options = lbfgs::Options { max_iter: self.options.local_iters, gtol: 1e-6, ftol: 1e-9, memory: 8 };
            let (u, _) = lbfgs::minimize(
                |u, grad| {
                    for (k, &d) in free.iter().enumerate() {
                        full[d] = (u[k] * scale[k]).clamp(0.0, 1.0);
                    }
                    let v = fitted.value(&full, Some(&mut g));
                    for (k, &d) in free.iter().enumerate() {
                        grad[k] = -g[d] * scale[k];
                    }
                    -v
                },
                &start,
                &lo,
                &hi,
                options,
            );
            let mut x = x0.clone();
            for (k, &d) in free.iter().enumerate() {
                x[d] = (u[k] * scale[k]).clamp(0.0, 1.0);
            }
            let x = self.canonical(&x, pinned, ctx)?;
            let v = fitted.value(&x, None);
            if v > best_v {
                (best_v, best_x) = (v, x);
            }
        }
        // One pass over the discrete coordinates: every category, the neighbouring levels.
        for d in 0..best_x.len() {
            if pinned[d].is_some() {
                continue;
            }
            let tries: Vec<f64> = match (&self.enc.dims[d].kind, &self.levels[d]) {
                (DimKind::Categorical(values), _) if best_x[d] >= 0.0 => (0..values.len()).map(|c| c as f64).collect(),
                (DimKind::Numeric(_), Some(levels)) if !(self.enc.dims[d].conditional && best_x[d] == 0.5) => {
                    let i = levels.partition_point(|&l| l < best_x[d] - 1e-12).min(levels.len() - 1);
                    [i.checked_sub(1), i.checked_add(1).filter(|&j| j < levels.len())]
                        .into_iter()
                        .flatten()
                        .map(|j| levels[j])
                        .collect()
                }
                _ => Vec::new(),
            };
            for t in tries {
                if t == best_x[d] {
                    continue;
                }
                let mut u = best_x.clone();
                u[d] = t;
                let x = self.canonical(&u, pinned, ctx)?;
                let v = fitted.value(&x, None);
                if v > best_v {
                    (best_v, best_x) = (v, x);
                }
            }
        }
        Ok((best_v, best_x))
    }
}

/// The index of the best feasible observation (the best one when none is feasible; 0
/// when there is none): a local ask's centre.
fn centre(ys: &[f64], violations: &[f64]) -> usize {
    let best = |feasible: bool| {
        (0..ys.len()).filter(|&i| !feasible || violations[i] <= 0.0).min_by(|&a, &b| ys[a].total_cmp(&ys[b]))
    };
    best(true).or_else(|| best(false)).unwrap_or(0)
}

/// The expected improvement's incumbent: the best feasible output, or the best predicted
/// mean of a pending point (`believed`) where lower, less `xi`; `None` when no observation
/// is feasible.
fn incumbent(ys: &[f64], violations: &[f64], believed: Option<f64>, xi: f64) -> Option<f64> {
    ys.iter()
        .zip(violations)
        .filter(|(_, v)| **v <= 0.0)
        .map(|(y, _)| *y)
        .reduce(f64::min)
        .map(|b| believed.map_or(b, |m| b.min(m)) - xi)
}

/// The indices of the observations the model keeps: all when at most `max`, else the
/// best third and the most recent others, in trial order.
fn keep(losses: &[f64], max: usize) -> Vec<usize> {
    let n = losses.len();
    if n <= max {
        return (0..n).collect();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]));
    let mut chosen = vec![false; n];
    for &i in order.iter().take(max / 3) {
        chosen[i] = true;
    }
    let mut left = max - max / 3;
    for i in (0..n).rev() {
        if left == 0 {
            break;
        }
        if !chosen[i] {
            chosen[i] = true;
            left -= 1;
        }
    }
    (0..n).filter(|&i| chosen[i]).collect()
}

/// How many points of `xs` (in trial order) repeat an earlier one whose loss was above the
/// best before them.
fn repeats(xs: &[Vec<f64>], losses: &[f64]) -> usize {
    let mut best = f64::INFINITY;
    let mut count = 0;
    for (i, x) in xs.iter().enumerate() {
        if xs[..i].iter().zip(losses).any(|(e, &l)| e == x && l > best) {
            count += 1;
        }
        best = best.min(losses[i]);
    }
    count
}

/// How many of the last `window` losses were a new best when they came (the first loss
/// of all is not).
fn new_bests(losses: &[f64], window: usize) -> usize {
    let from = losses.len().saturating_sub(window);
    let mut best = f64::INFINITY;
    let mut count = 0;
    for (i, &l) in losses.iter().enumerate() {
        if l < best && i >= from && i > 0 {
            count += 1;
        }
        best = best.min(l);
    }
    count
}

/// Complete trials since the last one that beat the best before it by more than `gain`
/// (in trial order; the first trial counts as a gain).
fn stall(losses: &[f64], gain: f64) -> usize {
    let mut best = f64::INFINITY;
    let mut last = 0;
    for (i, &l) in losses.iter().enumerate() {
        if l < best - gain {
            last = i;
        }
        best = best.min(l);
    }
    losses.len().saturating_sub(last + 1)
}

/// Optuna's local starts: the best of `scored`, `more` others drawn without replacement
/// with weights `exp(value - max)` (fewer when fewer have a positive weight), and `trial`.
fn roulette(
    mut scored: Vec<(f64, Vec<f64>)>,
    more: usize,
    trial: (f64, Vec<f64>),
    rng: &mut Rng,
) -> Vec<(f64, Vec<f64>)> {
    let mut starts = Vec::with_capacity(more + 2);
    let Some(top) = (0..scored.len()).max_by(|&a, &b| scored[a].0.total_cmp(&scored[b].0)) else {
        return vec![trial];
    };
    let max = scored[top].0;
    starts.push(scored.swap_remove(top));
    let mut weights: Vec<f64> = scored.iter().map(|(v, _)| if v.is_finite() { (v - max).exp() } else { 0.0 }).collect();
    for _ in 0..more.saturating_sub(1) {
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 0.0 {
            break;
        }
        let mut r = rng.f64() * total;
        let mut pick = weights.iter().rposition(|w| *w > 0.0).unwrap_or(0);
        for (i, w) in weights.iter().enumerate() {
            if *w > 0.0 && r < *w {
                pick = i;
                break;
            }
            r -= w;
        }
        weights[pick] = 0.0;
        starts.push((scored[pick].0, scored[pick].1.clone()));
    }
    if !starts.iter().any(|(_, x)| *x == trial.1) {
        starts.push(trial);
    }
    starts
}

/// A violation the model can take: infinite ones (a NaN constraint) at a large finite value.
fn finite_violation(v: f64) -> f64 {
    if v.is_finite() { v } else { 1e6 }
}

/// `log(1 + (l - min) / median(l - min))`; the identity's order.
fn warp(losses: &[f64]) -> Vec<f64> {
    let min = losses.iter().copied().fold(f64::INFINITY, f64::min);
    let mut z: Vec<f64> = losses.iter().map(|l| l - min).collect();
    let mut sorted = z.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(1.0);
    let scale = if median > 0.0 { median } else { 1.0 };
    for v in &mut z {
        *v = (*v / scale).ln_1p();
    }
    z
}

/// Spearman's rank correlation (average ranks for ties); 0 when either side is constant.
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (output::ranks(a), output::ranks(b));
    let (ma, sa) = mean_sd(&ra);
    let (mb, sb) = mean_sd(&rb);
    if sa <= 1e-9 || sb <= 1e-9 || !sa.is_finite() || !sb.is_finite() {
        return 0.0;
    }
    ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (ra.len() as f64 * sa * sb)
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt().max(1e-10))
}

fn standardise(v: &[f64]) -> Vec<f64> {
    let (mean, sd) = mean_sd(v);
    v.iter().map(|x| (x - mean) / sd).collect()
}

#[cfg(test)]
mod tests;
