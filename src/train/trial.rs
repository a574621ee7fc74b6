//! One experiment's trials, prepared once: what the search's trial loop calls.
//!
//! Takes a checked program, one of its experiments with a `model`, the folder of the
//! `.bma` file and a device; [`Trials::new`] loads the data once, and [`Trials::run`]
//! expands the model at a point, reads the `train { }` settings there and calls
//! [`super::fit`]. `Trials` is `Sync`: trial threads share one. Its base folder is made
//! absolute, and the data files' fingerprints are taken when the data is loaded; both go
//! into every [`SavedConfig`].

use std::path::{Path, PathBuf};

use super::{Control, DeviceKind, Metrics, SavedConfig, Status, TrainConfig, TrialOutcome, fit};
use crate::catalogue::Average;
use crate::data::{self, Dataset};
use crate::ir::{self, Point, Value};

/// The data and settings shared by every trial of an experiment.
#[derive(Debug)]
pub struct Trials<'a> {
    program: &'a ir::Program,
    experiment: &'a ir::Experiment,
    pub data: Dataset,
    data_value: Value,
    base: PathBuf,
    /// The data files as they were when loaded (saved with every model).
    data_files: Vec<data::Fingerprint>,
    pub device: DeviceKind,
}

impl<'a> Trials<'a> {
    /// Loads the experiment's data (relative paths from `base`).
    pub fn new(
        program: &'a ir::Program,
        experiment: &'a ir::Experiment,
        base: &Path,
        device: DeviceKind,
    ) -> Result<Trials<'a>, String> {
        Trials::with_data_files(program, experiment, base, device, None)
    }

    /// [`Trials::new`] with the data files' fingerprints already taken (before loading) by
    /// the caller, `study::Plan::data_files`: hashing a folder of 60k images twice per run
    /// is a second pass over the whole dataset. `None` takes them here.
    pub fn with_data_files(
        program: &'a ir::Program,
        experiment: &'a ir::Experiment,
        base: &Path,
        device: DeviceKind,
        data_files: Option<Vec<data::Fingerprint>>,
    ) -> Result<Trials<'a>, String> {
        let setting =
            experiment.data.as_ref().ok_or_else(|| format!("experiment `{}` has no data", experiment.name))?;
        let env = ir::PointEnv { point: &Point::new(), fns: &program.fns, data: None };
        let data_value = ir::eval(&setting.value, &env).map_err(|e| e.message)?;
        // Absolute, so that a saved model re-reads its data from anywhere.
        let base = data::absolute(base);
        // Fingerprinted before loading: a file rewritten in between is then seen as changed.
        let data_files = data_files.unwrap_or_else(|| data::fingerprints(&data_value, &base));
        let data = data::load(&data_value, &base).map_err(|e| e.to_string())?;
        Ok(Trials { program, experiment, data, data_value, base, data_files, device })
    }

    /// The training settings at `point`; `seed` unless the experiment sets `seed =`;
    /// `swa` from the experiment's `average { swa(last: k) }`; with a `soup`, the shared
    /// `init_seed` of the point's architecture. Save models with this config.
    pub fn config(&self, point: &Point, seed: u64) -> Result<TrainConfig, String> {
        let mut cfg = TrainConfig::from_experiment(self.program, self.experiment, point, &self.data.info, seed)
            .map_err(|e| e.to_string())?;
        let averaging = self.averaging();
        cfg.swa = averaging.swa;
        if averaging.soup
            && let Some(body) = &self.experiment.model
        {
            let sub = ir::expand(self.program, body, point, &self.data.info).map_err(|e| e.message)?;
            cfg.init_seed = Some(init_seed(&super::Plan::new(&sub), cfg.init, self.search_seed()));
        }
        Ok(cfg)
    }

    /// What the experiment's `average` section asks of training.
    pub fn averaging(&self) -> Averaging {
        averaging(self.experiment)
    }

    fn search_seed(&self) -> u64 {
        self.experiment
            .search_setting("seed")
            .and_then(|s| ir::eval(&s.value, &std::collections::BTreeMap::new()).ok())
            .and_then(|v| v.as_i64())
            .map_or(0, |v| v as u64)
    }

    /// Trains the sub-model at `point`. A model that does not expand or settings that
    /// do not read give a failed outcome, not an error: the search records and goes on.
    pub fn run<F>(&self, point: &Point, seed: u64, on_epoch: F) -> TrialOutcome
    where
        F: FnMut(usize, &Metrics) -> Control + Send,
    {
        let fail = |reason: String| TrialOutcome {
            status: Status::Failed { reason },
            epochs: Vec::new(),
            metrics: Metrics::new(),
            best_epoch: 0,
            model: None,
        };
        let Some(body) = &self.experiment.model else {
            return fail(format!("experiment `{}` has no model", self.experiment.name));
        };
        let sub = match ir::expand(self.program, body, point, &self.data.info) {
            Ok(s) => s,
            Err(e) => return fail(e.message),
        };
        match self.config(point, seed) {
            Ok(cfg) => fit(self.device, &sub, &cfg, &self.data, on_epoch),
            Err(e) => fail(e),
        }
    }

    /// What [`super::Model::save`] needs to make a saved model re-evaluable.
    /// The data files' fingerprints saved with every model.
    pub fn data_files(&self) -> &[data::Fingerprint] {
        &self.data_files
    }

    pub fn saved_config(&self, point: &Point, train: TrainConfig) -> SavedConfig {
        SavedConfig {
            experiment: self.experiment.name.clone(),
            data: self.data_value.clone(),
            base: self.base.clone(),
            data_files: self.data_files.clone(),
            point: point.clone(),
            train,
            tokenizer: self.data.tokenizer.clone(),
        }
    }
}

/// What an `average` section asks of training: `swa(last: k)` averages each trial's last
/// `k` epochs; any `soup(...)` makes every sub-model of one architecture start from the
/// same weights (see [`init_seed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Averaging {
    pub swa: Option<usize>,
    pub soup: bool,
}

/// Reads the `average` entries of `experiment` that change how trials train (an exhaustive
/// match on the catalogue's averaging rules).
pub fn averaging(experiment: &ir::Experiment) -> Averaging {
    let mut out = Averaging::default();
    for e in &experiment.average {
        let Ok(Value::Call(c)) = ir::eval(e, &std::collections::BTreeMap::new()) else { continue };
        match crate::catalogue::kind(crate::catalogue::AVERAGES, &c.name) {
            Some(Average::Swa) => {
                out.swa = c.arg("last", 0).and_then(Value::as_i64).filter(|k| *k >= 1).map(|k| k as usize)
            }
            Some(Average::Soup) => out.soup = true,
            Some(Average::Ensemble) | None => {}
        }
    }
    out
}

/// The initialisation seed shared by every sub-model with this architecture and init:
/// FNV-1a of [`super::Plan::signature`] and the init, mixed with the search seed. The
/// trial's own seed plays no part, so same-architecture trials start from one point and
/// their weights can be averaged (Wortsman et al., 2022: soups need a shared init).
pub fn init_seed(plan: &super::Plan, init: super::Init, search_seed: u64) -> u64 {
    let text = format!("{}|{init:?}", plan.signature());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    crate::rng::mix_seed(search_seed, h)
}
