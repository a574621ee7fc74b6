//! A watch cycle's reuse hook: the study loop of `bma run` ([`Study::run_with`]) with
//! every trial whose configuration is already complete in the study store copied
//! instead of trained.
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

use crate::ir::Point;
use crate::reuse::{ConfigKey, KeyContext};
use crate::search::study::{Reuse, Reused, trial_seed};
use crate::search::{Direction, Trial, TrialState};
use crate::store::{Sqlite, StudyId};
use crate::trial::FailKind;

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
            if !filed.join("model.json").is_file() || link_dir(&filed, &crate::runner::trial_dir(out, number)).is_err()
            {
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
            let dir = crate::runner::trial_dir(out, number);
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
        let _ = link_dir(&crate::runner::trial_dir(out, trial.number), &filed);
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
