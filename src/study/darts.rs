//! The study's DARTS step (`strategy = darts(...)`): before the sampled trials, the
//! architecture phase chooses the space's structural values; the read-off sub-model is then
//! trained from scratch as the study's first trial, and `then:`'s strategy, if any,
//! searches the other parameters with the choices pinned.
//!
//! Takes the plan, the store's study and the evaluator; gives a [`Phase`]: the read-off
//! point, the architecture weights per epoch as metrics of the read-off trial (so the store,
//! `results.json` and the report keep them with it: `darts@<param>@<epoch>@<value>`, epoch 0
//! the uniform start; `darts_epochs@<param>`, the epochs the phase ran), the pins for what
//! follows, and [`Tagged`], the evaluator that attaches those metrics to the read-off trial.
//!
//! The decisions are `check::darts::decisions` at `check::darts::point` (the pins, else the
//! middle of each domain). Decisions that form a chain (independent, one after the other in
//! the network: `train::darts::Joint`) are mixed in one supernet, each with its own `α`;
//! otherwise (one nested in another's arm, or whose arms run into the next one's layers)
//! the first is chosen alone, pinned, and the rest looked at again, so a decision that only
//! becomes active under an earlier choice is chosen then. `darts_supernets` counts the
//! supernets trained.
//!
//! **Invariants:** a study that already holds its read-off trial (resumed, or joined by
//! another worker afterwards) reuses its choices and never reruns the phase; the phase's
//! seed derives from the study's seed, so the same study chooses the same architecture.

use std::sync::Mutex;

use super::{Error, Plan};
use crate::check::darts::{self as mix, Decision};
use crate::ir::{Point, Value};
use crate::rng::mix_seed;
use crate::search::study::{Evaluator, Metrics, Outcome, StepFn, TrialRef};
use crate::search::{self, Strategy};
use crate::store::{self, Store};
use crate::train::darts::{Choice, EPOCHS_PREFIX, PREFIX};
use crate::trial::Trial;

/// What the architecture phase decided.
pub struct Phase {
    /// The read-off sub-model's point.
    pub point: Point,
    /// The architecture weights, for the read-off trial (empty when it is already stored).
    pub metrics: Metrics,
    /// The plan's pins and each decision at its chosen value.
    pub pins: Point,
    /// The study already holds the read-off trial.
    pub proposed: bool,
    then: Option<Value>,
}

impl Phase {
    /// The strategy after the phase: the read-off point, then `then:`'s.
    pub fn strategy(&self, plan: &Plan<'_>, ctx: crate::space::Context<'_>) -> Result<Box<dyn Strategy>, Error> {
        let then = match &self.then {
            Some(t) => Some(
                search::strategy(t, &plan.experiment.space, ctx, &self.pins)
                    .map_err(|e| Error::Input(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Box::new(search::darts::ReadOff::new(self.point.clone(), self.proposed, then)))
    }
}

/// Runs the phase when the plan's strategy is `darts` (`Ok(None)` otherwise).
pub fn prepare(
    plan: &Plan<'_>,
    store: &dyn Store,
    study: &store::Study,
    evaluator: &dyn Evaluator,
) -> Result<Option<Phase>, Error> {
    let Some(setting) = search::darts::setting(&plan.strategy).map_err(|e| Error::Input(e.to_string()))? else {
        return Ok(None);
    };
    let exp = plan.experiment;
    let fns = &plan.compiled.program.fns;
    let Some(data) = plan.compiled.info(&exp.name).and_then(|i| i.data.as_ref()) else {
        return Err(Error::Input(format!("`darts` searches a model's architecture; `{}` has no model data", exp.name)));
    };
    let history = store.history(study.id).map_err(Error::internal)?;
    if let Some(t) = history.iter().find(|t| read_off(t)) {
        let mut pins = plan.pins.clone();
        for name in decided(t) {
            if let Some(v) = t.params.get(&name) {
                pins.insert(name, v.clone());
            }
        }
        return Ok(Some(Phase {
            point: t.params.clone(),
            metrics: Metrics::new(),
            pins,
            proposed: true,
            then: setting.then,
        }));
    }
    let mut free = mix::free(exp, &plan.pins);
    let mut pins = plan.pins.clone();
    let mut metrics = Metrics::new();
    let seed = study.spec.seed;
    for round in 0u64.. {
        let at = exp.space.resolve(&free, fns, Some(data)).map_err(|e| Error::Input(e.message))?;
        let found = mix::decisions(&plan.compiled.program, exp, data, &at);
        if let Some(u) = found.unmixable.iter().find(|u| !pins.contains_key(&u.name)) {
            return Err(Error::Input(format!("`{}` cannot be mixed by `darts`: {}", u.name, u.why)));
        }
        let open: Vec<Decision> = found.mixed.into_iter().filter(|d| !pins.contains_key(&d.name)).collect();
        let Some(d) = open.first() else {
            if round == 0 {
                return Err(Error::Input(
                    "`darts` has no structural choice to mix (every parameter that changes the network is pinned)"
                        .into(),
                ));
            }
            return Ok(Some(Phase { point: at, metrics, pins, proposed: false, then: setting.then }));
        };
        // All open decisions in one supernet when they form a chain; else the first alone.
        let together = open.len() > 1 && jointly(plan, data, &at, &open);
        let batch: Vec<Decision> = if together { open.clone() } else { vec![d.clone()] };
        let names = batch.iter().map(|d| format!("`{}`", d.name)).collect::<Vec<_>>().join(", ");
        let choices = evaluator
            .architecture(&at, mix_seed(seed ^ 0x0064_6172_7473, round), &batch, &setting.config)
            .map_err(|e| Error::Input(format!("darts on {names}: {e}")))?;
        for (d, choice) in batch.iter().zip(choices) {
            record(&mut metrics, d, &choice);
            free.insert(d.name.clone(), choice.value.clone());
            pins.insert(d.name.clone(), choice.value);
        }
        metrics.insert(SUPERNETS.into(), (round + 1) as f64);
    }
    Err(Error::Internal("the DARTS phase did not end".into()))
}

/// How many supernets the phase trained (one per round), in the read-off trial's metrics.
pub const SUPERNETS: &str = "darts_supernets";

/// Whether `decisions` build one joint supernet at `at` (a chain of independent decisions).
fn jointly(plan: &Plan<'_>, data: &crate::ir::DataInfo, at: &Point, decisions: &[Decision]) -> bool {
    let exp = plan.experiment;
    let Some(body) = &exp.model else { return false };
    let params: Option<Vec<&crate::ir::Param>> = decisions.iter().map(|d| exp.space.get(&d.name)).collect();
    params.is_some_and(|ps| crate::train::darts::joint(&plan.compiled.program, body, at, data, &ps).is_ok())
}

/// The architecture weights of one decision, as metrics.
fn record(metrics: &mut Metrics, d: &Decision, choice: &Choice) {
    let epochs = std::iter::once(&choice.outcome.start).chain(&choice.outcome.weights);
    for (epoch, weights) in epochs.enumerate() {
        for (v, w) in choice.values.iter().zip(weights) {
            metrics.insert(format!("{PREFIX}{}@{epoch}@{v}", d.name), *w);
        }
    }
    metrics.insert(format!("{EPOCHS_PREFIX}{}", d.name), choice.outcome.weights.len() as f64);
}

/// Whether `t` is a read-off trial (it carries architecture weights).
pub fn read_off(t: &Trial) -> bool {
    t.metrics.keys().any(|k| k.starts_with(EPOCHS_PREFIX))
}

/// The decisions a read-off trial records, in name order.
fn decided(t: &Trial) -> Vec<String> {
    t.metrics.keys().filter_map(|k| k.strip_prefix(EPOCHS_PREFIX)).map(str::to_string).collect()
}

/// The evaluator of a DARTS study: `inner`, with the phase's metrics added to the read-off
/// trial's (the first evaluation of its point).
pub struct Tagged<'e> {
    inner: &'e dyn Evaluator,
    point: Point,
    metrics: Mutex<Option<Metrics>>,
}

impl<'e> Tagged<'e> {
    pub fn new(inner: &'e dyn Evaluator, phase: &Phase) -> Tagged<'e> {
        let metrics = (!phase.proposed).then(|| phase.metrics.clone());
        Tagged { inner, point: phase.point.clone(), metrics: Mutex::new(metrics) }
    }
}

impl Evaluator for Tagged<'_> {
    fn static_metrics(&self, trial: TrialRef<'_>) -> Result<Metrics, String> {
        self.inner.static_metrics(trial)
    }

    fn evaluate(&self, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        let mut out = self.inner.evaluate(trial, on_step);
        if *trial.point == self.point
            && let Some(m) = self.metrics.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            out.metrics.extend(m);
        }
        out
    }

    fn finished(&self, trial: &Trial) {
        self.inner.finished(trial)
    }

    fn saved_dir(&self, number: u64) -> Option<std::path::PathBuf> {
        self.inner.saved_dir(number)
    }

    fn device(&self, number: u64) -> Option<String> {
        self.inner.device(number)
    }

    fn notes(&self) -> Vec<String> {
        self.inner.notes()
    }
}
