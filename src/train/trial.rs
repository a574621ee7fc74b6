//! One experiment's trials, prepared once: what the search's trial loop calls.
//!
//! Takes a checked program, one of its experiments with a `model`, the folder of the
//! `.bma` file and a device; [`Trials::new`] loads the data (at the first data setting
//! when the data reads searched parameters, so data that cannot load fails before any
//! trial), and [`Trials::run`] expands the model at a point, reads the `train { }`
//! settings there and calls [`super::fit`]. `Trials` is `Sync`: trial threads share one.
//! Its base folder is made absolute, and the data files' fingerprints are taken when the
//! data is loaded; both go into every [`SavedConfig`].
//!
//! Searched data settings (`text(..., max_len: len)`): [`Trials::data_at`] evaluates the
//! data at a point and loads it once per distinct data value: the first setting is kept
//! for the whole study, and the [`KEPT`] most recently used others in a cache (a dataset
//! evicted while a trial still trains on it lives until that trial ends), so trials with
//! the same settings share one load. Each saved model records its own data value (and
//! tokenizer). The rows of the train, valid and test splits do not depend on the data
//! settings: the splits are drawn from the rows (and the seed) before any setting applies.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Control, DeviceKind, Metrics, SavedConfig, Status, TrainConfig, TrialOutcome, fit};
use crate::catalogue::Average;
use crate::data::{self, Dataset};
use crate::ir::{self, Point, Value};

/// Datasets of other data settings than the first kept loaded at once, most recent first.
pub const KEPT: usize = 2;

/// The data of one data setting, loaded.
#[derive(Debug)]
pub struct TrialData {
    pub data: Dataset,
    /// The evaluated data call (saved with every model trained on it).
    pub value: Value,
    /// The data files as they were when loaded (saved with every model).
    pub files: Vec<data::Fingerprint>,
}

/// The data and settings shared by every trial of an experiment.
#[derive(Debug)]
pub struct Trials<'a> {
    program: &'a ir::Program,
    experiment: &'a ir::Experiment,
    /// The data at the first data setting (the only one unless the data is searched).
    pub data: Arc<TrialData>,
    /// Other data settings, most recently used first, at most [`KEPT`].
    others: Mutex<Vec<Arc<TrialData>>>,
    base: PathBuf,
    pub device: DeviceKind,
}

impl std::ops::Deref for TrialData {
    type Target = Dataset;

    fn deref(&self) -> &Dataset {
        &self.data
    }
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
    /// is a second pass over the whole dataset. `None` takes them here. With searched data
    /// settings they may cover several settings' files: the first setting keeps those of
    /// its own files.
    pub fn with_data_files(
        program: &'a ir::Program,
        experiment: &'a ir::Experiment,
        base: &Path,
        device: DeviceKind,
        data_files: Option<Vec<data::Fingerprint>>,
    ) -> Result<Trials<'a>, String> {
        // Absolute, so that a saved model re-reads its data from anywhere.
        let base = data::absolute(base);
        let (first, _) = ir::data_search::data_points(experiment, 1);
        let at = first.into_iter().next().unwrap_or_default();
        let data = Arc::new(load(program, experiment, &at, &base, data_files)?);
        Ok(Trials { program, experiment, data, others: Mutex::new(Vec::new()), base, device })
    }

    /// The data at `point`: the first setting's, a cached one, or loaded now (see the
    /// module header). Loads run one at a time.
    pub fn data_at(&self, point: &Point) -> Result<Arc<TrialData>, String> {
        let value = eval_data(self.program, self.experiment, point)?;
        if value == self.data.value {
            return Ok(self.data.clone());
        }
        let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = others.iter().position(|d| d.value == value) {
            let hit = others.remove(i);
            others.insert(0, hit.clone());
            return Ok(hit);
        }
        let loaded = Arc::new(load(self.program, self.experiment, point, &self.base, None)?);
        others.insert(0, loaded.clone());
        others.truncate(KEPT);
        Ok(loaded)
    }

    /// The training settings at `point`; `seed` unless the experiment sets `seed =`;
    /// `swa` from the experiment's `average { swa(last: k) }`; with a `soup`, the shared
    /// `init_seed` of the point's architecture. Save models with this config.
    pub fn config(&self, point: &Point, seed: u64) -> Result<TrainConfig, String> {
        let data = self.data_at(point)?;
        let mut cfg = TrainConfig::from_experiment(self.program, self.experiment, point, &data.info, seed)
            .map_err(|e| e.to_string())?;
        let averaging = self.averaging();
        cfg.swa = averaging.swa;
        if averaging.soup
            && let Some(body) = &self.experiment.model
        {
            let sub = ir::expand(self.program, body, point, &data.info).map_err(|e| e.message)?;
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
        let data = match self.data_at(point) {
            Ok(d) => d,
            Err(e) => return fail(e),
        };
        let sub = match ir::expand(self.program, body, point, &data.info) {
            Ok(s) => s,
            Err(e) => return fail(e.message),
        };
        match self.config(point, seed) {
            Ok(cfg) => fit(self.device, &sub, &cfg, &data.data, on_epoch),
            Err(e) => fail(e),
        }
    }

    /// The first data setting's files' fingerprints.
    pub fn data_files(&self) -> &[data::Fingerprint] {
        &self.data.files
    }

    /// What [`super::Model::save`] needs to make a saved model re-evaluable: `data` is
    /// what the model at `point` trained on ([`Trials::data_at`]).
    pub fn saved_config(&self, data: &TrialData, point: &Point, train: TrainConfig) -> SavedConfig {
        SavedConfig {
            experiment: self.experiment.name.clone(),
            data: data.value.clone(),
            base: self.base.clone(),
            data_files: data.files.clone(),
            point: point.clone(),
            train,
            tokenizer: data.data.tokenizer.clone(),
            preprocess: data::fitted::Preprocess::of(&data.data),
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

/// The experiment's data value at `point`.
fn eval_data(program: &ir::Program, experiment: &ir::Experiment, point: &Point) -> Result<Value, String> {
    match ir::data_search::data_value(experiment, &program.fns, point) {
        Some(v) => v.map_err(|e| e.message),
        None => Err(format!("experiment `{}` has no data", experiment.name)),
    }
}

/// Loads the data at `point`, fingerprinting its files first (a file rewritten in between
/// is then seen as changed).
/// `taken`: fingerprints the caller took before (of these files and maybe others).
fn load(
    program: &ir::Program,
    experiment: &ir::Experiment,
    point: &Point,
    base: &Path,
    taken: Option<Vec<data::Fingerprint>>,
) -> Result<TrialData, String> {
    let value = eval_data(program, experiment, point)?;
    let files = match taken {
        Some(taken) => {
            let own = data::files(&value, base);
            taken.into_iter().filter(|f| own.iter().any(|p| f.path == data::absolute(p))).collect()
        }
        None => data::fingerprints(&value, base),
    };
    let data = data::load(&value, base).map_err(|e| e.to_string())?;
    Ok(TrialData { data, value, files })
}
