//! A watch cycle's study: [`open_for_watch`] opens this version of the file's study
//! (with the points to replay), and [`KeyReuse`] is the reuse hook through which the
//! study loop ([`super::run`]) copies every trial whose configuration is already
//! complete in the study store instead of training it.
//!
//! Takes the SQLite store of the experiment's out folder (`<out>/study.db`), the study
//! the cycle runs, the experiment's [`KeyContext`] and, when the previous cycle's study
//! proposed its points under the same [`crate::reuse::search_fingerprint`], that
//! study's points to replay; gives a [`Reuse`] for the loop and, afterwards, which
//! trials were reused and which were evaluated ([`KeyReuse::outcome`]).
//!
//! Each trial's [`ConfigKey`] is recorded with it in the store (`trials.config_key`),
//! so a later cycle, in this study or in the study of another version of the file,
//! finds it. A model experiment's complete trial is also filed by key under
//! `<out>/models/<key>/` (hard links to `<out>/trials/<n>/`, a copy where links fail),
//! because `<out>/trials/<n>/` belongs to whichever study is current; a reused trial
//! gets its model back as `<out>/trials/<n>/` the same way.
//!
//! Every watch trial trains with one seed, the study's ([`KeyReuse::seed`]), not one
//! per trial number, so a point keeps its key when the points around it change.
//!
//! **Invariant:** a trial is reused only when a complete trial with the same key is
//! in the store and (model experiments) its model is filed under its key; anything
//! else is trained. `<out>/trials/<n>/` is emptied before trial `n` starts, so a
//! model being trained never writes through a link into `<out>/models/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{Error, Plan, trial_dir};
use crate::ir::Point;
use crate::reuse::{ConfigKey, KeyContext};
use crate::search::study::{Reuse, Reused, TrialLoop, trial_seed};
use crate::store::{self, Sqlite, Store, StudyId};
use crate::trial::{Direction, FailKind, History, Trial, TrialState};

/// The error recorded for a trial stopped by a save.
pub const CANCELLED: &str = "cancelled: the file was saved during the run";

/// What the cycle did with one trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialKey {
    pub key: ConfigKey,
    /// Copied from a complete trial of the same key, not evaluated.
    pub reused: bool,
}

/// The reuse hook of one experiment's cycle; see the module header.
pub struct KeyReuse<'a> {
    store: &'a Sqlite,
    study: StudyId,
    keys: KeyContext<'a>,
    /// The out folder of a model experiment (`None`: nothing is saved, a pure function).
    out: Option<PathBuf>,
    /// The current objectives: stored steps are replayed only when measured by the same first one.
    objectives: Vec<(String, Direction)>,
    replay: BTreeMap<u64, Point>,
    trials: Mutex<BTreeMap<u64, TrialKey>>,
}

impl<'a> KeyReuse<'a> {
    /// `out` is the experiment's out folder when it has a model (its trials are saved
    /// there), `None` for a pure-function experiment; `replay` the points to propose
    /// first, by trial number.
    pub fn new(
        store: &'a Sqlite,
        study: StudyId,
        keys: KeyContext<'a>,
        out: Option<PathBuf>,
        objectives: Vec<(String, Direction)>,
        replay: BTreeMap<u64, Point>,
    ) -> KeyReuse<'a> {
        KeyReuse { store, study, keys, out, objectives, replay, trials: Mutex::new(BTreeMap::new()) }
    }

    /// The key and fate of each trial this cycle started, by number.
    pub fn outcome(&self) -> BTreeMap<u64, TrialKey> {
        self.lock().clone()
    }

    /// The key and fate of trial `number`, once started.
    pub fn trial(&self, number: u64) -> Option<TrialKey> {
        self.lock().get(&number).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, TrialKey>> {
        self.trials.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored trial to copy for `key`, with its model linked in as trial `number`'s.
    fn find(&self, number: u64, key: &ConfigKey) -> Result<Option<Reused>, String> {
        let Some(found) = self.store.complete_by_key(&key.0).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        if let Some(out) = &self.out {
            let filed = models_dir(out, key);
            if !filed.join("model.json").is_file() || link_dir(&filed, &trial_dir(out, number)).is_err() {
                return Ok(None);
            }
        }
        let same_objective = found.objectives.first() == self.objectives.first();
        Ok(Some(Reused {
            metrics: found.trial.metrics,
            steps: if same_objective { found.trial.steps } else { Vec::new() },
            duration: found.trial.duration,
        }))
    }
}

impl Reuse for KeyReuse<'_> {
    fn replay(&self, number: u64) -> Option<Point> {
        self.replay.get(&number).cloned()
    }

    /// One seed for every trial: the one `bma run` gives trial 0.
    fn seed(&self, study_seed: u64, _number: u64) -> u64 {
        trial_seed(study_seed, 0)
    }

    fn reuse(&self, number: u64, point: &Point, seed: u64) -> Result<Option<Reused>, String> {
        let key = self.keys.key(point, seed);
        self.store.set_config_key(self.study, number, &key.0).map_err(|e| e.to_string())?;
        if let Some(out) = &self.out {
            let dir = trial_dir(out, number);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
        let reused = self.find(number, &key)?;
        self.lock().insert(number, TrialKey { key, reused: reused.is_some() });
        Ok(reused)
    }

    fn finished(&self, trial: &Trial) {
        let Some(out) = &self.out else { return };
        let Some(t) = self.trial(trial.number) else { return };
        if trial.state != TrialState::Complete || t.reused {
            return;
        }
        let filed = models_dir(out, &t.key);
        let _ = std::fs::remove_dir_all(&filed);
        // Not filed: the next cycle trains this configuration again.
        let _ = link_dir(&trial_dir(out, trial.number), &filed);
    }

    fn stop_reason(&self) -> (FailKind, String) {
        (FailKind::Cancelled, CANCELLED.to_string())
    }
}

/// `<out>/models/<key>/`: the model of the configuration `key`.
pub fn models_dir(out: &Path, key: &ConfigKey) -> PathBuf {
    out.join("models").join(&key.0)
}

/// Makes `to` hold the files of `from` (hard links, copies where links fail).
fn link_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let dst = to.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &dst).is_err() {
            std::fs::copy(entry.path(), &dst)?;
        }
    }
    Ok(())
}

/// A watch cycle's study of one experiment, opened in `<out>/study.db`.
pub struct WatchStudy {
    pub store: Sqlite,
    pub study: store::Study,
    /// Points to propose first, by trial number: the previous version's points when
    /// the search itself is unchanged, and the trials a save cancelled.
    pub replay: BTreeMap<u64, Point>,
    /// The experiment's [`crate::reuse::search_fingerprint`].
    pub fingerprint: String,
}

/// Opens the study of this version of the file in the plan's `<out>/study.db`: the
/// current one is named after the experiment, earlier versions are renamed
/// `NAME@HASH` ([`Sqlite::switch_to`]). `previous` is the search fingerprint and spec
/// hash of the study the last cycle ran: when the fingerprint is unchanged but the spec
/// differs, the previous study's points are replayed, so nothing new is trained.
pub fn open_for_watch(plan: &Plan<'_>, previous: Option<&(String, String)>) -> Result<WatchStudy, Error> {
    let exp = plan.experiment;
    let err = |e: store::StoreError| Error::Internal(e.to_string());
    let sqlite = Sqlite::open(&plan.out.join("study.db")).map_err(err)?;
    let spec = plan.spec(&exp.name);
    let fingerprint = crate::reuse::search_fingerprint(&plan.compiled.program, exp);
    let stored = sqlite.studies().map_err(err)?.into_iter().find(|s| s.name == spec.name);
    let mut replay = BTreeMap::new();
    if let Some(stored) = &stored {
        // A watch (or a run) killed mid-trial left running trials: requeue them.
        TrialLoop::recover(&sqlite, stored.id, Duration::from_secs(60)).map_err(|e| Error::Internal(e.to_string()))?;
        // An edit that leaves the search unchanged replays the previous study's points.
        if let Some((fp, hash)) = previous
            && *fp == fingerprint
            && *hash != spec.spec_hash
        {
            for t in sqlite.history(stored.id).map_err(err)? {
                if !t.params.is_empty() {
                    replay.insert(t.number, t.params);
                }
            }
        }
    }
    sqlite.switch_to(&spec).map_err(err)?;
    let study = sqlite.open(&spec).map_err(err)?;
    super::check_data(plan, &study)?;
    if !study.created_now {
        // Trials cancelled by a save in this study are proposed again (a grid would skip them).
        let history = sqlite.history(study.id).map_err(err)?;
        let mut next = history.iter().map(|t| t.number + 1).max().unwrap_or(0);
        for t in &history {
            let done_elsewhere = history.iter().any(|u| u.state == TrialState::Complete && u.params == t.params);
            if is_cancelled(t) && !done_elsewhere && !t.params.is_empty() {
                replay.insert(next, t.params.clone());
                next += 1;
            }
        }
    }
    Ok(WatchStudy { store: sqlite, study, replay, fingerprint })
}

impl WatchStudy {
    /// The reuse hook for running this study with `plan`.
    pub fn reuse<'a>(&'a self, plan: &Plan<'a>) -> KeyReuse<'a> {
        let exp = plan.experiment;
        let data = plan.compiled.info(&exp.name).and_then(|i| i.data.as_ref());
        let keys = KeyContext::new(&plan.compiled.program, exp, data, &plan.base);
        KeyReuse::new(
            &self.store,
            self.study.id,
            keys,
            exp.model.as_ref().map(|_| plan.out.clone()),
            self.study.spec.objectives.clone(),
            self.replay.clone(),
        )
    }
}

/// Whether a trial was stopped by a save in watch mode.
pub fn is_cancelled(trial: &Trial) -> bool {
    trial.failed_with(FailKind::Cancelled)
}

/// How the trials a cycle started ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub reused: usize,
    pub trained: usize,
    pub pruned: usize,
    pub cancelled: usize,
    pub failed: usize,
}

impl KeyReuse<'_> {
    /// How the trials this cycle started ended, read from `history`.
    pub fn tally(&self, history: &History) -> Tally {
        let mut tally = Tally::default();
        for (number, t) in self.outcome() {
            if t.reused {
                tally.reused += 1;
                continue;
            }
            match history.get(number) {
                Some(trial) if is_cancelled(trial) => tally.cancelled += 1,
                Some(trial) if matches!(trial.state, TrialState::Failed | TrialState::Infeasible) => {
                    tally.trained += 1;
                    tally.failed += 1;
                }
                Some(trial) if trial.state == TrialState::Pruned => {
                    tally.trained += 1;
                    tally.pruned += 1;
                }
                Some(trial) if trial.state == TrialState::Complete => tally.trained += 1,
                _ => {}
            }
        }
        tally
    }

    /// `{"cycle": n, "reused": [...], "trained": [...]}`: the `watch` object of `results.json`.
    pub fn results_json(&self, cycle: u64) -> serde_json::Value {
        let outcome = self.outcome();
        let reused: Vec<u64> = outcome.iter().filter(|(_, t)| t.reused).map(|(n, _)| *n).collect();
        let trained: Vec<u64> = outcome.iter().filter(|(_, t)| !t.reused).map(|(n, _)| *n).collect();
        serde_json::json!({ "cycle": cycle, "reused": reused, "trained": trained })
    }
}
