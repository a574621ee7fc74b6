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
//! The phase runs once per study, whatever the workers: the store's record [`RECORD`] is its
//! lease and then its result (`Store::swap_record`, one atomic write). The worker that wins
//! the lease claims a trial number (the store's claim: its heartbeat proves the phase alive),
//! runs the phase, records the read-off point as that trial's (`Store::start`), writes the
//! record `done` (the point, the decisions, the architecture weights), and gives the trial
//! back queued: whichever worker claims it next trains the read-off sub-model, and
//! [`Tagged`] adds the weights to that trial number's metrics from the record. Other workers
//! wait for the record to say `done` (polling, bounded by the study's `time` and the stop
//! flag); when the phase's trial stops being claimed by its worker (the process died: the
//! usual requeue of a dead or silent worker's trials), one of them takes the lease over and
//! runs the phase again, with a note saying so.
//!
//! **Invariants:** a study that already holds its read-off trial, or the record `done`
//! (resumed, after Ctrl-C or a kill during the read-off trial, or joined by another worker)
//! reuses its choices and weights and never reruns the phase; the phase's seed derives from
//! the study's seed, so the same study chooses the same architecture.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Error, Plan};
use crate::check::darts::{self as mix, Decision};
use crate::ir::{Point, Value};
use crate::rng::mix_seed;
use crate::search::study::{Evaluator, Metrics, Outcome, StepFn, TrialRef};
use crate::search::{self, Strategy};
use crate::store::{self, Store};
use crate::train::darts::{Choice, EPOCHS_PREFIX, PREFIX};
use crate::trial::{Trial, TrialState};

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
    /// The read-off trial's number, whose metrics get [`Phase::metrics`] (`None`: it is finished).
    pub trial: Option<u64>,
    /// Sentences for the user: a phase taken over from a worker that died.
    pub notes: Vec<String>,
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
    worker: &str,
    stop: &AtomicBool,
) -> Result<Option<Phase>, Error> {
    let Some(setting) = search::darts::setting(&plan.strategy).map_err(|e| Error::Input(e.to_string()))? else {
        return Ok(None);
    };
    let exp = plan.experiment;
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
            trial: None,
            notes: Vec::new(),
            then: setting.then,
        }));
    }
    let mut notes = Vec::new();
    let (number, lease) = match lease(plan, store, study.id, worker, stop, &mut notes)? {
        Lease::Done(done) => {
            let mut pins = plan.pins.clone();
            for name in &done.decided {
                if let Some(v) = done.point.get(name) {
                    pins.insert(name.clone(), v.clone());
                }
            }
            return Ok(Some(Phase {
                point: done.point,
                metrics: done.metrics,
                pins,
                proposed: true,
                trial: Some(done.trial),
                notes,
                then: setting.then,
            }));
        }
        Lease::Mine { number, record } => (number, record),
    };
    // The phase, under trial `number`'s claim, kept alive by a heartbeat.
    let finished = AtomicBool::new(false);
    let ran = std::thread::scope(|scope| {
        scope.spawn(|| crate::search::study::heartbeat(store, study.id, worker, &plan.settings, &finished));
        // Raised however the phase ends, a panic included (else the scope waits forever).
        let _raise = crate::search::study::RaiseOnDrop(&finished);
        phase(plan, exp, data, &setting.config, study.spec.seed, evaluator)
    });
    let (point, metrics, decided) = match ran {
        Ok(r) => r,
        Err(e) => {
            // Free the lease: a resumed run (or another worker) starts the phase again.
            let _ = store.swap_record(study.id, RECORD, Some(&lease), &Record::Free.text());
            let _ = store.release(study.id, number, worker);
            return Err(e);
        }
    };
    let seed = crate::search::study::trial_seed(study.spec.seed, number);
    store.start(study.id, number, &point, seed, worker).map_err(Error::internal)?;
    let done =
        Record::Done(Done { trial: number, point: point.clone(), decided: decided.clone(), metrics: metrics.clone() });
    let text = done.text();
    if !store.swap_record(study.id, RECORD, Some(&lease), &text).map_err(Error::internal)?
        && store.record(study.id, RECORD).map_err(Error::internal)?.as_deref() != Some(text.as_str())
    {
        return Err(Error::Internal(format!(
            "the DARTS phase's record was taken from this worker ({worker}) while it ran the phase; run again"
        )));
    }
    // The read-off trial, queued with its point: the next claim trains it.
    store.release(study.id, number, worker).map_err(Error::internal)?;
    let mut pins = plan.pins.clone();
    for name in &decided {
        if let Some(v) = point.get(name) {
            pins.insert(name.clone(), v.clone());
        }
    }
    Ok(Some(Phase { point, metrics, pins, proposed: true, trial: Some(number), notes, then: setting.then }))
}

/// The architecture phase: the read-off point, the weights as metrics, the decisions chosen.
fn phase(
    plan: &Plan<'_>,
    exp: &crate::ir::Experiment,
    data: &crate::ir::DataInfo,
    config: &crate::train::darts::Config,
    seed: u64,
    evaluator: &dyn Evaluator,
) -> Result<(Point, Metrics, Vec<String>), Error> {
    let fns = &plan.compiled.program.fns;
    let mut free = mix::free(exp, &plan.pins);
    let mut pins = plan.pins.clone();
    let mut metrics = Metrics::new();
    let mut decided = Vec::new();
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
            return Ok((at, metrics, decided));
        };
        // All open decisions in one supernet when they form a chain; else the first alone.
        let together = open.len() > 1 && jointly(plan, data, &at, &open);
        let batch: Vec<Decision> = if together { open.clone() } else { vec![d.clone()] };
        let names = batch.iter().map(|d| format!("`{}`", d.name)).collect::<Vec<_>>().join(", ");
        let choices = evaluator
            .architecture(&at, mix_seed(seed ^ 0x0064_6172_7473, round), &batch, config)
            .map_err(|e| Error::Input(format!("darts on {names}: {e}")))?;
        for (d, choice) in batch.iter().zip(choices) {
            record(&mut metrics, d, &choice);
            free.insert(d.name.clone(), choice.value.clone());
            pins.insert(d.name.clone(), choice.value);
            decided.push(d.name.clone());
        }
        metrics.insert(SUPERNETS.into(), (round + 1) as f64);
    }
    Err(Error::Internal("the DARTS phase did not end".into()))
}

/// The store record ([`store::Store::record`]) of a study's DARTS phase.
pub const RECORD: &str = "darts.phase";

/// How often a worker waiting for another's phase looks at the store again.
const POLL: Duration = Duration::from_millis(250);

/// The phase's record: nobody runs it, a worker runs it under a claimed trial, or its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Record {
    Free,
    Running { worker: String, trial: u64 },
    Done(Done),
}

/// What the phase decided: the read-off trial's number and point, the decisions it chose,
/// and the architecture weights (the read-off trial's metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Done {
    trial: u64,
    point: Point,
    decided: Vec<String>,
    metrics: Metrics,
}

impl Record {
    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn read(text: &str) -> Result<Record, Error> {
        serde_json::from_str(text)
            .map_err(|e| Error::Internal(format!("the study's DARTS record cannot be read ({e}): {text}")))
    }
}

/// What [`lease`] got.
enum Lease {
    /// The phase ran (here or elsewhere) and its result is stored.
    Done(Done),
    /// This worker runs the phase under trial `number`; `record` is the stored lease.
    Mine { number: u64, record: String },
}

/// Takes the phase's lease, or waits for the worker that holds it to record the result.
/// A holder whose trial is no longer running under it (dead, silent: requeued by the
/// store's usual sweep, which this runs too) loses the lease to the first worker that sees it.
fn lease(
    plan: &Plan<'_>,
    store: &dyn Store,
    id: store::StudyId,
    worker: &str,
    stop: &AtomicBool,
    notes: &mut Vec<String>,
) -> Result<Lease, Error> {
    let started = Instant::now();
    let internal = Error::internal;
    loop {
        let stored = store.record(id, RECORD).map_err(internal)?;
        let current = stored.as_deref().map(Record::read).transpose()?;
        let holder = match &current {
            Some(Record::Done(done)) => return Ok(Lease::Done(done.clone())),
            Some(Record::Running { worker: w, trial }) => {
                // Alive: its trial still running, under a worker that still holds a claim.
                let history = store.history(id).map_err(internal)?;
                let running = history.iter().any(|t| t.number == *trial && t.state == TrialState::Running);
                let alive = running && store.running_workers(id).map_err(internal)?.iter().any(|(r, _)| r == w);
                if alive && w != worker {
                    if stop.load(Ordering::SeqCst) {
                        return Err(Error::Input(format!(
                            "stopped while worker {w} ran the DARTS phase (trial {trial}); nothing was lost: \
                             start again to continue"
                        )));
                    }
                    if plan.settings.time.is_some_and(|t| started.elapsed() >= t) {
                        return Err(Error::Input(format!(
                            "the study's time ran out while worker {w} ran the DARTS phase (trial {trial})"
                        )));
                    }
                    // The usual recovery: a dead local worker at once, a silent one after `stale_after`.
                    let _ = crate::search::study::TrialLoop::recover(store, id, plan.settings.stale_after);
                    std::thread::sleep(POLL);
                    continue;
                }
                Some((w.clone(), *trial))
            }
            Some(Record::Free) | None => None,
        };
        let Some(claim) = store.claim(id, worker, plan.settings.trials).map_err(internal)? else {
            return Err(Error::Input("`darts` needs a trial for its phase; the study's trial budget is spent".into()));
        };
        let mine = Record::Running { worker: worker.to_string(), trial: claim.number }.text();
        if store.swap_record(id, RECORD, stored.as_deref(), &mine).map_err(internal)?
            || store.record(id, RECORD).map_err(internal)?.as_deref() == Some(mine.as_str())
        {
            if let Some((w, trial)) = holder.filter(|(w, _)| w != worker) {
                notes.push(format!(
                    "worker {w} stopped during the DARTS phase (trial {trial}); this worker ({worker}) runs it again"
                ));
            }
            return Ok(Lease::Mine { number: claim.number, record: mine });
        }
        // Another worker took it first: give the number back and look again.
        store.release(id, claim.number, worker).map_err(internal)?;
    }
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
/// trial's (the evaluation of its trial number, whichever worker claims it).
pub struct Tagged<'e> {
    inner: &'e dyn Evaluator,
    trial: Option<u64>,
    metrics: Mutex<Option<Metrics>>,
}

impl<'e> Tagged<'e> {
    pub fn new(inner: &'e dyn Evaluator, phase: &Phase) -> Tagged<'e> {
        Tagged { inner, trial: phase.trial, metrics: Mutex::new(Some(phase.metrics.clone())) }
    }
}

impl Evaluator for Tagged<'_> {
    fn static_metrics(&self, trial: TrialRef<'_>) -> Result<Metrics, String> {
        self.inner.static_metrics(trial)
    }

    fn evaluate(&self, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        let mut out = self.inner.evaluate(trial, on_step);
        if self.trial == Some(trial.number)
            && let Some(m) = self.metrics.lock().unwrap_or_else(|p| p.into_inner()).clone()
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

#[cfg(test)]
#[path = "darts_tests.rs"]
mod tests;
