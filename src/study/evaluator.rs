//! The evaluators a study runs: [`ModelEvaluator`] trains an experiment's sub-models
//! (one single-threaded trainer per trial thread, each on its device: `--devices` spreads
//! them, the least busy first) and saves every completed trial's model under `<out>/trials/<n>/`; a pure-function experiment is measured by the trial
//! loop itself ([`FunctionEvaluator`]), optionally slowed down by [`SlowFunction`] for
//! the fault tests.
//!
//! **Invariant:** a trial's saved model exists only if the trial is recorded complete
//! (a pruned or failed trial's folder is removed when it is recorded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{Error, Plan};
use crate::ir;
use crate::search::study::{Control, Evaluator, FunctionEvaluator, Metrics, Outcome, Status, StepFn, TrialRef};
use crate::train;
use crate::trial::{Trial, TrialState};

/// The folder of trial `number`'s saved model.
pub fn trial_dir(out: &Path, number: u64) -> PathBuf {
    out.join("trials").join(number.to_string())
}

/// The evaluator of the plan's experiment: training for a `model`, else the objectives
/// computed by the loop (each taking `delay` first when given: the fault tests' way to
/// kill a worker in the middle of a trial). An error is the user's: data that does not
/// load.
pub fn evaluator<'c>(plan: &Plan<'c>, delay: Option<Duration>) -> Result<Box<dyn Evaluator + 'c>, Error> {
    let exp = plan.experiment;
    if let Some(trial) = &exp.trial {
        let mut spec = super::command::CommandSpec::new(trial, &plan.base).map_err(Error::Input)?;
        if let Some(devices) = &plan.devices {
            spec.devices = devices.clone();
        }
        return Ok(Box::new(super::command::CommandEvaluator::new(spec, plan.out.clone(), plan.device.to_string())));
    }
    if exp.model.is_some() {
        // The plan's fingerprints, taken once per run: the study's spec records the same.
        let trials = train::Trials::with_data_files(
            &plan.compiled.program,
            exp,
            &plan.base,
            plan.device,
            Some(plan.data_files()),
        )
        .map_err(Error::Input)?;
        let mut m =
            ModelEvaluator::with_trials(&plan.compiled.program, exp, trials, Some(plan.out.clone()), plan.threads());
        if let Some(entries) = &plan.devices {
            m = m.with_devices(train::device::placements(entries, plan.device).map_err(Error::Input)?);
        }
        return Ok(Box::new(m));
    }
    Ok(match delay {
        Some(d) => Box::new(SlowFunction(d)),
        None => Box::new(FunctionEvaluator),
    })
}

/// A pure-function trial that takes a set time, then is measured as usual. Such a trial
/// finishes in microseconds, too fast to kill a worker in the middle of one or to watch a
/// distributed study; the fault tests and demos use it.
pub struct SlowFunction(pub Duration);

impl Evaluator for SlowFunction {
    fn evaluate(&self, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        std::thread::sleep(self.0);
        FunctionEvaluator.evaluate(trial, on_step)
    }
}

/// Trains sub-models: one single-threaded trainer per trial thread.
pub struct ModelEvaluator<'a> {
    program: &'a ir::Program,
    experiment: &'a ir::Experiment,
    trials: train::Trials<'a>,
    /// Where completed trials' models go (`None`: not saved).
    out: Option<PathBuf>,
    /// Training threads per trial (1 when several trials run at once).
    threads: usize,
    saved: Mutex<BTreeMap<u64, PathBuf>>,
    /// `--devices`: the devices trials spread over (an entry per slot: `0,0,1` lets device 0
    /// run two at once), and which of them each running trial holds. Empty: every trial on
    /// `trials.device`.
    placed: Vec<train::DeviceKind>,
    held: Mutex<super::command::Devices>,
}

impl<'a> ModelEvaluator<'a> {
    pub fn new(
        program: &'a ir::Program,
        experiment: &'a ir::Experiment,
        base: &Path,
        device: train::DeviceKind,
        out: Option<PathBuf>,
        threads: usize,
    ) -> Result<ModelEvaluator<'a>, String> {
        let trials = train::Trials::new(program, experiment, base, device)?;
        Ok(ModelEvaluator::with_trials(program, experiment, trials, out, threads))
    }

    /// The evaluator of `trials`, data already loaded.
    pub fn with_trials(
        program: &'a ir::Program,
        experiment: &'a ir::Experiment,
        trials: train::Trials<'a>,
        out: Option<PathBuf>,
        threads: usize,
    ) -> ModelEvaluator<'a> {
        ModelEvaluator {
            program,
            experiment,
            trials,
            out,
            threads: threads.max(1),
            saved: Mutex::new(BTreeMap::new()),
            placed: Vec::new(),
            held: Mutex::default(),
        }
    }

    /// Spreads the trials over `devices` by `super::command`'s rule: each takes the one
    /// with the fewest running trials (none: all on the trials' own device).
    pub fn with_devices(mut self, devices: Vec<train::DeviceKind>) -> ModelEvaluator<'a> {
        self.held = Mutex::new(super::command::Devices { running: vec![0; devices.len()], ..Default::default() });
        self.placed = devices;
        self
    }

    fn held(&self) -> std::sync::MutexGuard<'_, super::command::Devices> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn data_info(&self) -> &ir::DataInfo {
        &self.trials.data.info
    }
}

impl Evaluator for ModelEvaluator<'_> {
    fn static_metrics(&self, trial: TrialRef<'_>) -> Result<Metrics, String> {
        let Some(body) = &self.experiment.model else { return Ok(Metrics::new()) };
        let data = self.trials.data_at(trial.point)?;
        let sub = ir::expand(self.program, body, trial.point, &data.info).map_err(|e| e.message)?;
        Ok(Metrics::from([("params".to_string(), sub.params as f64), ("flops".to_string(), sub.flops as f64)]))
    }

    fn notes(&self) -> Vec<String> {
        self.trials.data.extras.notes.clone()
    }

    fn evaluate(&self, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        let slot = self.held().take(trial.number);
        let device = slot.and_then(|i| self.placed.get(i).copied()).unwrap_or(self.trials.device);
        let outcome = self.evaluate_on(device, trial, on_step);
        if let Some(i) = slot {
            self.held().free(i);
        }
        outcome
    }

    fn device(&self, number: u64) -> Option<String> {
        match self.held().held.remove(&number) {
            Some(slot) => self.placed.get(slot).map(|d| d.to_string()),
            // A study on one GPU records it too; a CPU study records nothing, as before.
            None => (self.trials.device != train::DeviceKind::Cpu).then(|| self.trials.device.to_string()),
        }
    }

    fn architecture(
        &self,
        point: &ir::Point,
        seed: u64,
        decisions: &[crate::check::darts::Decision],
        config: &train::darts::Config,
    ) -> Result<Vec<train::darts::Choice>, String> {
        let body = self.experiment.model.as_ref().ok_or("no model")?;
        let params = decisions
            .iter()
            .map(|d| self.experiment.space.get(&d.name).ok_or_else(|| format!("no parameter `{}`", d.name)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cfg = self.trials.config(point, seed)?;
        cfg.threads = cfg.threads.min(self.threads).max(1);
        let data = self.trials.data_at(point)?;
        let device = self.trials.device;
        match params.as_slice() {
            [param] => {
                train::darts::choose(device, self.program, body, point, &data.data, &cfg, config, param, |_, _| {})
                    .map(|c| vec![c])
            }
            _ => train::darts::choose_joint(device, self.program, body, point, &data.data, &cfg, config, &params),
        }
    }

    fn saved_dir(&self, number: u64) -> Option<PathBuf> {
        self.saved.lock().unwrap_or_else(|p| p.into_inner()).get(&number).cloned()
    }

    fn finished(&self, trial: &Trial) {
        let dir = self.saved.lock().unwrap_or_else(|p| p.into_inner()).remove(&trial.number);
        if trial.state != TrialState::Complete
            && let Some(dir) = dir
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl ModelEvaluator<'_> {
    /// One trial on `device`.
    fn evaluate_on(&self, device: train::DeviceKind, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        let mut cfg = match self.trials.config(trial.point, trial.seed) {
            Ok(c) => c,
            Err(e) => return Outcome { status: Status::Failed(e), metrics: Metrics::new() },
        };
        cfg.threads = cfg.threads.min(self.threads).max(1);
        let Some(body) = &self.experiment.model else {
            return Outcome { status: Status::Failed("no model".into()), metrics: Metrics::new() };
        };
        let data = match self.trials.data_at(trial.point) {
            Ok(d) => d,
            Err(e) => return Outcome { status: Status::Failed(e), metrics: Metrics::new() },
        };
        let sub = match ir::expand(self.program, body, trial.point, &data.info) {
            Ok(s) => s,
            Err(e) => return Outcome { status: Status::Failed(e.message), metrics: Metrics::new() },
        };
        // A sub-model that cannot fit fails here, before anything is allocated: allocating it
        // would get the whole process killed (on a GPU: the device's memory where it tells it).
        if let Some(why) =
            train::memory::room(device).and_then(|r| train::memory::refuse_in(&sub, cfg.batch.min(data.train.n), r))
        {
            return Outcome { status: Status::Failed(why), metrics: Metrics::new() };
        }
        let outcome = train::fit_until(device, &sub, &cfg, &data.data, trial.deadline, |epoch, m| {
            match on_step(epoch as u32, m) {
                Control::Continue => train::Control::Continue,
                Control::Stop => train::Control::Stop,
            }
        });
        let status = match &outcome.status {
            train::Status::Completed | train::Status::EarlyStopped { .. } => Status::Complete,
            train::Status::Stopped { .. } => Status::Stopped,
            train::Status::Failed { reason } => Status::Failed(reason.clone()),
        };
        let mut metrics = outcome.metrics.clone();
        metrics.insert("epochs".into(), outcome.epochs.len() as f64);
        metrics.insert("best_epoch".into(), outcome.best_epoch as f64);
        if status == Status::Complete
            && let (Some(out), Some(model)) = (&self.out, &outcome.model)
        {
            let dir = trial_dir(out, trial.number);
            let config = self.trials.saved_config(&data, trial.point, cfg);
            if let Err(e) = model.save(&dir, &config) {
                let why = format!("cannot save trial {}'s model in {}: {e}", trial.number, dir.display());
                return Outcome { status: Status::Abort(why), metrics };
            }
            self.saved.lock().unwrap_or_else(|p| p.into_inner()).insert(trial.number, dir);
        }
        Outcome { status, metrics }
    }
}
