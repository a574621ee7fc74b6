//! The trial loop's scheduler: which trial number to claim next, when to ask the strategy,
//! starting trial threads, and recording what they report.
//!
//! Takes an opened [`TrialLoop`]'s parts (store, strategy, objectives, pruner, settings) and
//! the [`Hooks`] of one run; gives, when the loop ends, the study's [`History`] and why it
//! ended. The rules it keeps are the trial loop's (see [`super`]): trial `n` is asked with
//! exactly the finished trials `<= n - parallel` (its [`View`]), every trial it starts is
//! recorded finished (or, stopped by the user, queued again to rerun), and the loop always ends.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, Scope};
use std::time::{Duration, Instant};

use super::{
    Done, Ended, Evaluator, Event, MIN_TRIAL_STACK, Observer, Reuse, Settings, Shared, TrialCtx, TrialLoop,
    panic_message, propose, trial_seed,
};
use crate::ir::{self, Point};
use crate::search::{Ask, SearchError, Strategy};
use crate::store::{self, Store};
use crate::trial::{FailKind, History, Trial};

/// What watches one run of the loop.
#[derive(Clone, Copy)]
pub(super) struct Hooks<'s> {
    pub evaluator: &'s dyn Evaluator,
    pub observer: &'s dyn Observer,
    /// Raised to stop: no trial starts after it, running ones stop at their next step.
    pub stop: &'s AtomicBool,
    pub reuse: Option<&'s dyn Reuse>,
    /// The kind of failure and the error recorded for a trial stopped by `stop`.
    pub stop_reason: (FailKind, &'s str),
    /// When the study's time budget runs out.
    pub deadline: Option<Instant>,
}

/// What the strategy is shown: the finished trials numbered up to a horizon.
struct View {
    history: History,
    /// The horizon the view holds every finished trial up to (-1: none yet).
    upto: i64,
}

/// What one pass of the loop decided about waiting for a trial to finish.
enum Pass {
    /// Go round again at once (a trial started, or a state changed that needs a new look).
    Again,
    /// Go on to the end-of-pass checks; `true`: there is a reason to wait for a trial.
    Checked(bool),
}

/// The trial loop's state; [`Scheduler::run`] drives it.
pub(super) struct Scheduler<'s> {
    study: Shared<'s>,
    strategy: &'s mut dyn Strategy,
    experiment: &'s ir::Experiment,
    pins: &'s Point,
    settings: &'s Settings,
    worker: &'s str,
    seed: u64,
    hooks: Hooks<'s>,
    /// Every trial of the study as this process knows it.
    history: History,
    view: View,
    /// This process's trials in flight.
    running: BTreeSet<u64>,
    /// Trials at once: `parallel`, lowered if the system refuses a thread.
    slots: usize,
    /// A claimed number waiting for its turn or for the strategy.
    pending: Option<store::Claim>,
    /// No trial starts any more (the budget is handed out, or the strategy is done).
    no_more: bool,
    /// A shared study found nothing to claim and nothing running: claim once more.
    recheck: bool,
    /// Where this worker's reading of the others' finished trials stopped.
    cursor: u64,
    ended: Option<Ended>,
    failure: Option<SearchError>,
    /// The strategy's decisions already sent as [`Event::Note`].
    noted: usize,
    tx: mpsc::Sender<Done>,
    rx: mpsc::Receiver<Done>,
}

impl<'s> Scheduler<'s> {
    pub(super) fn new(study: &'s mut TrialLoop<'_>, history: History, hooks: Hooks<'s>) -> Scheduler<'s> {
        let view = View { history: History::new(history.directions.clone(), history.rank.clone()), upto: -1 };
        let seed = study.seed();
        let TrialLoop {
            store,
            study: record,
            experiment,
            fns,
            data,
            objectives,
            strategy,
            pruner,
            pins,
            settings,
            worker,
            ..
        } = study;
        let (tx, rx) = mpsc::channel();
        Scheduler {
            study: Shared { store: *store, id: record.id, objectives, fns, data: *data, pruner: &**pruner },
            strategy: &mut **strategy,
            experiment,
            pins,
            settings,
            worker,
            seed,
            hooks,
            history,
            view,
            running: BTreeSet::new(),
            slots: settings.parallel.max(1),
            pending: None,
            no_more: false,
            recheck: false,
            cursor: 0,
            ended: None,
            failure: None,
            noted: 0,
            tx,
            rx,
        }
    }

    fn store(&self) -> &'s dyn Store {
        self.study.store
    }

    fn parallel(&self) -> usize {
        self.settings.parallel.max(1)
    }

    fn shared(&self) -> bool {
        self.settings.shared
    }

    fn store_failure(&mut self, e: store::StoreError) {
        self.failure.get_or_insert(SearchError::Store(e.to_string()));
    }

    /// Runs the loop to its end; gives why it ended and the history.
    pub(super) fn run<'scope>(mut self, scope: &'scope Scope<'scope, 's>) -> (Result<Ended, SearchError>, History) {
        loop {
            if self.failure.is_none() && self.ended.is_none() {
                if self.hooks.stop.load(Ordering::SeqCst) {
                    self.ended = Some(Ended::Interrupted);
                } else if self.hooks.deadline.is_some_and(|d| Instant::now() >= d) {
                    self.ended = Some(Ended::Time);
                }
            }
            let stopping = self.failure.is_some() || self.ended.is_some();
            let pass = if stopping || self.no_more {
                self.release_pending();
                Pass::Checked(false)
            } else if self.running.len() < self.slots {
                self.fill(scope)
            } else {
                Pass::Checked(true)
            };
            let waiting = match pass {
                Pass::Again => continue,
                Pass::Checked(waiting) => waiting,
            };
            if self.running.is_empty() && (stopping || self.no_more) {
                break;
            }
            if !waiting && !stopping && !self.no_more {
                continue;
            }
            if !self.receive() {
                break;
            }
        }
        let result = match self.failure {
            Some(e) => Err(e),
            None => Ok(self.ended.unwrap_or(Ended::Budget)),
        };
        (result, self.history)
    }

    /// Gives back a claimed number that will not be used.
    fn release_pending(&mut self) {
        if let Some(c) = self.pending.take()
            && let Err(e) = self.store().release(self.study.id, c.number, self.worker)
        {
            self.store_failure(e);
        }
    }

    /// A free slot: claims a number and, when its turn has come, starts its trial.
    fn fill<'scope>(&mut self, scope: &'scope Scope<'scope, 's>) -> Pass {
        let claim = match self.pending.take() {
            Some(c) => Some(c),
            None => match self.store().claim(self.study.id, self.worker, self.settings.trials) {
                Ok(c) => c,
                Err(e) => {
                    self.failure = Some(SearchError::Store(e.to_string()));
                    return Pass::Again;
                }
            },
        };
        match claim {
            None if self.shared() => self.nothing_to_claim(),
            None => {
                self.no_more = true;
                Pass::Checked(false)
            }
            Some(claim) => {
                self.recheck = false;
                // Reproducibility: trial n sees exactly the trials <= n - parallel.
                let horizon = claim.number as i64 - self.parallel() as i64;
                if self.running.iter().any(|&r| (r as i64) <= horizon) {
                    self.pending = Some(claim);
                    return Pass::Checked(true);
                }
                if self.shared()
                    && let Err(e) = self.read_others()
                {
                    let _ = self.store().release(self.study.id, claim.number, self.worker);
                    self.failure = Some(e);
                    return Pass::Again;
                }
                self.update_view(horizon);
                self.ask(scope, claim)
            }
        }
    }

    /// A shared study with every number handed out: others' running trials may still be
    /// requeued (their worker dies), so wait for them.
    fn nothing_to_claim(&mut self) -> Pass {
        match self.store().running_workers(self.study.id) {
            Ok(w) if w.iter().any(|(w, _)| w != self.worker) => {
                self.recheck = false;
                Pass::Checked(true)
            }
            // None running now; one may have been requeued between the claim and this
            // read: claim once more before ending.
            Ok(_) if !self.recheck => {
                self.recheck = true;
                Pass::Again
            }
            Ok(_) => {
                self.no_more = true;
                Pass::Checked(false)
            }
            Err(e) => {
                self.failure = Some(SearchError::Store(e.to_string()));
                Pass::Checked(false)
            }
        }
    }

    /// The other workers' results since the last look, for the sampler.
    fn read_others(&mut self) -> Result<(), SearchError> {
        let (trials, next) =
            self.store().finished_since(self.study.id, self.cursor).map_err(|e| SearchError::Store(e.to_string()))?;
        self.cursor = next;
        for t in trials {
            if self.history.get(t.number).is_none_or(|h| !h.state.is_finished()) {
                if (t.number as i64) <= self.view.upto {
                    self.view.history.upsert(t.clone());
                }
                self.history.upsert(t);
            }
        }
        Ok(())
    }

    /// Brings the view to `horizon`: every finished trial numbered up to it, no other.
    fn update_view(&mut self, horizon: i64) {
        let view = &mut self.view;
        if horizon < view.upto {
            view.history = History::new(self.history.directions.clone(), self.history.rank.clone());
            view.upto = -1;
        }
        for t in self
            .history
            .trials
            .iter()
            .filter(|t| (t.number as i64) > view.upto && (t.number as i64) <= horizon && t.state.is_finished())
        {
            view.history.upsert(t.clone());
        }
        view.upto = view.upto.max(horizon);
        let due = self
            .history
            .trials
            .iter()
            .take_while(|t| (t.number as i64) <= horizon)
            .filter(|t| t.state.is_finished())
            .count();
        if due != view.history.trials.len() {
            // A lower-numbered trial finished late (requeued): rebuild.
            view.history.trials = self
                .history
                .trials
                .iter()
                .take_while(|t| (t.number as i64) <= horizon)
                .filter(|t| t.state.is_finished())
                .cloned()
                .collect();
        }
    }

    /// Asks the strategy for claimed trial's point and starts it.
    fn ask<'scope>(&mut self, scope: &'scope Scope<'scope, 's>, claim: store::Claim) -> Pass {
        let n = claim.number;
        let asked = propose(
            self.strategy,
            self.experiment,
            self.study.fns,
            self.study.data,
            self.pins,
            self.settings.trials,
            &claim,
            &self.view.history,
            self.seed,
            self.hooks.reuse,
        );
        let decisions = self.strategy.decisions();
        for text in decisions.iter().skip(self.noted) {
            self.hooks.observer.event(Event::Note { number: n, text });
        }
        self.noted = self.noted.max(decisions.len());
        match asked {
            Err(e) => {
                let _ = self.store().release(self.study.id, n, self.worker);
                self.failure = Some(e);
                Pass::Checked(false)
            }
            Ok(None) => {
                self.pending = Some(claim);
                if self.running.is_empty() {
                    // Waiting on nothing: the strategy is done.
                    self.no_more = true;
                    self.ended.get_or_insert(Ended::Exhausted);
                    Pass::Checked(false)
                } else {
                    Pass::Checked(true)
                }
            }
            Ok(Some(Ask::Done)) | Ok(Some(Ask::Wait)) => {
                // `propose` maps Wait to Ok(None); Done ends the study.
                if let Err(e) = self.store().release(self.study.id, n, self.worker) {
                    self.failure = Some(SearchError::Store(e.to_string()));
                }
                self.no_more = true;
                self.ended.get_or_insert(Ended::Exhausted);
                Pass::Checked(false)
            }
            Ok(Some(Ask::Point(point))) => {
                self.start(scope, n, point);
                Pass::Again
            }
        }
    }

    /// Records trial `n` as started at `point` and evaluates it on a thread of its own (or
    /// copies it, when the reuse hook has it).
    fn start<'scope>(&mut self, scope: &'scope Scope<'scope, 's>, n: u64, point: Point) {
        let tseed = match self.hooks.reuse {
            Some(r) => r.seed(self.seed, n),
            None => trial_seed(self.seed, n),
        };
        match self.store().start(self.study.id, n, &point, tseed, self.worker) {
            Ok(()) => {}
            // Requeued under us (we were silent too long): another worker has it.
            Err(store::StoreError::NotFound(_)) if self.shared() => return,
            Err(e) => {
                self.failure = Some(SearchError::Store(e.to_string()));
                return;
            }
        }
        let reused = match self.hooks.reuse.map(|r| r.reuse(n, &point, tseed)) {
            Some(Err(e)) => {
                self.failure = Some(SearchError::Store(e));
                let _ = self.store().release(self.study.id, n, self.worker);
                return;
            }
            Some(Ok(r)) => r,
            None => None,
        };
        self.hooks.observer.event(Event::Started { number: n, params: &point });
        self.running.insert(n);
        let ctx = TrialCtx {
            study: self.study,
            evaluator: self.hooks.evaluator,
            observer: self.hooks.observer,
            stop: self.hooks.stop,
            deadline: self.hooks.deadline,
            trial_time: self.settings.trial_time,
            stop_reason: self.hooks.stop_reason,
            upload: self.settings.shared.then_some(self.worker),
        };
        if let Some(r) = reused {
            let _ = self.tx.send(Done { trial: ctx.reused_trial(n, point, tseed, r), abort: None });
            return;
        }
        let spare = Trial::new(n, point.clone(), tseed);
        let tx = self.tx.clone();
        let stack = self.settings.trial_stack.max(MIN_TRIAL_STACK);
        let spawned =
            thread::Builder::new().name(format!("trial {n}")).stack_size(stack).spawn_scoped(scope, move || {
                // Whatever panics in the trial thread (an observer, the store), the loop
                // hears of it: a trial that never reports would be waited for forever.
                let fallback = Trial::new(n, point.clone(), tseed);
                let done = catch_unwind(AssertUnwindSafe(|| ctx.run_trial(n, point, tseed))).unwrap_or_else(|p| {
                    let why = format!("panicked: {}", panic_message(&p));
                    Done { trial: ctx.failed(fallback, FailKind::Error, why, Instant::now()), abort: None }
                });
                let _ = tx.send(done);
            });
        if let Err(e) = spawned {
            // The system refused another thread: this trial fails with the reason, and no
            // more start until one of those running ends.
            let mut trial = spare;
            trial.fail(FailKind::Error, format!("could not start a thread for it: {e}"));
            let _ = self.tx.send(Done { trial, abort: None });
            self.slots = self.running.len().saturating_sub(1).max(1);
        }
    }

    /// Waits a little for a trial to finish (waking up now and then for the stop flag and
    /// the clock) and records it; `false` when no trial can ever report again.
    fn receive(&mut self) -> bool {
        let (mut trial, abort) = match self.rx.recv_timeout(Duration::from_millis(100)) {
            Ok(done) => (done.trial, done.abort),
            Err(mpsc::RecvTimeoutError::Timeout) => return true,
            Err(mpsc::RecvTimeoutError::Disconnected) => return false,
        };
        self.running.remove(&trial.number);
        if trial.failure == Some(FailKind::Interrupted) || abort.is_some() {
            // Stopped by the user before its end, or its result could not be kept (the
            // study stops): queued again, to rerun from the start like a killed one (the
            // next run claims it first).
            if let Err(e) = self.store().requeue(self.study.id, trial.number, self.worker) {
                self.store_failure(e);
            }
            if let Some(reason) = abort {
                self.failure.get_or_insert(SearchError::Output(reason));
            }
            self.hooks.evaluator.finished(&trial);
            return true;
        }
        // When it ran, for the report's timeline (the store keeps its own clock's times).
        let end = store::now();
        trial.finished = Some(end);
        trial.started = Some(end - trial.duration.max(0.0));
        trial.worker = Some(self.worker.to_string());
        match self.store().finish(self.study.id, &trial) {
            Ok(()) => {}
            // The trial was requeued while we were silent (a lost server, a stall) and
            // belongs to another claim now: its rerun counts.
            Err(store::StoreError::NotFound(_)) if self.shared() => return true,
            Err(e) => self.store_failure(e),
        }
        self.hooks.evaluator.finished(&trial);
        if let Some(r) = self.hooks.reuse {
            r.finished(&trial);
        }
        if self.shared() && (trial.number as i64) <= self.view.upto {
            // Finished late, below the view's horizon: the view takes it now.
            self.view.history.upsert(trial.clone());
        }
        self.history.upsert(trial.clone());
        if let Some(t) = self.history.get(trial.number) {
            self.hooks.observer.event(Event::Finished { trial: t, history: &self.history });
        }
        true
    }
}

/// Heartbeats for every running trial of this worker and, in a shared study, sweeps for
/// the trials of workers that went silent, until `finished` is raised (also what keeps a
/// DARTS phase's claim alive: `study::darts`).
pub fn heartbeat(store: &dyn Store, id: store::StudyId, worker: &str, settings: &Settings, finished: &AtomicBool) {
    let every = settings.heartbeat;
    let sweep = settings.shared.then_some(settings.stale_after);
    let mut tick = Duration::from_millis(50).min(every);
    if let Some(stale) = sweep {
        tick = tick.min(stale / 4);
    }
    let tick = tick.max(Duration::from_millis(1));
    let mut last = Instant::now();
    let mut last_sweep = Instant::now();
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        if last.elapsed() >= every {
            let _ = store.heartbeat(id, worker);
            last = Instant::now();
        }
        if let Some(stale) = sweep
            && last_sweep.elapsed() >= stale / 2
        {
            let _ = store.requeue_stale(id, stale.as_secs_f64());
            last_sweep = Instant::now();
        }
    }
}

/// Raises its flag however the scope it lives in ends: were the loop to unwind (a panic
/// in an observer), the scope would otherwise wait for the heartbeat thread forever.
pub struct RaiseOnDrop<'f>(pub &'f AtomicBool);

impl Drop for RaiseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
