//! A shared study's trained models brought from its store into an out folder, so that any
//! participant builds `best/` and `final/` (and `bma eval`/`predict` reach a trial) with
//! no file system shared with the workers that trained them.
//!
//! Takes a store, a study and an out folder; gives `<out>/trials/<n>/` for the trials asked
//! for, each fetched from the store ([`crate::store::Store::artifact`], verified by its
//! SHA-256) unless the folder already holds that trial's model (this participant trained
//! it, or a shared folder holds it); [`for_final`] asks for what the experiment's `average`
//! section can use ([`crate::final_model::members_needed`]) and the best; [`keep_top`]
//! deletes the stored models beyond them (`--keep top:K`).
//!
//! **Invariant:** a fetched folder is put in place whole ([`crate::store::artifacts::unpack`]);
//! a damaged stored model is an error naming the trial and chunk, never a model built from it.

use std::path::Path;

use super::{Error, trial_dir};
use crate::final_model;
use crate::ir;
use crate::store::{Store, StudyId, artifacts};
use crate::trial::History;

/// What [`fetch`] did, by trial number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched {
    /// Brought from the store.
    pub fetched: Vec<u64>,
    /// Already in the out folder.
    pub present: Vec<u64>,
    /// In neither (trained before models were stored, or deleted with `--keep`).
    pub missing: Vec<u64>,
    /// Bytes brought.
    pub bytes: u64,
}

impl Fetched {
    /// A line for the user, `None` when nothing was fetched or missing.
    pub fn note(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.fetched.is_empty() {
            parts.push(format!(
                "fetched the models of trial(s) {:?} from the store ({})",
                self.fetched,
                human_bytes(self.bytes)
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!(
                "the store holds no model for trial(s) {:?} (trained before models were stored, or removed by \
                 --keep); they are left out",
                self.missing
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Brings the models of trials `numbers` into `<out>/trials/<n>/` from the study's store,
/// leaving those already there.
pub fn fetch(store: &dyn Store, study: StudyId, numbers: &[u64], out: &Path) -> Result<Fetched, Error> {
    let mut done = Fetched::default();
    for &n in numbers {
        let dir = trial_dir(out, n);
        if dir.join("model.json").is_file() {
            done.present.push(n);
            continue;
        }
        match store.artifact(study, n).map_err(|e| Error::Internal(format!("trial {n}'s model: {e}")))? {
            None => done.missing.push(n),
            Some(a) => {
                artifacts::unpack(&a, &dir).map_err(Error::Internal)?;
                done.bytes += a.bytes.len() as u64;
                done.fetched.push(n);
            }
        }
    }
    Ok(done)
}

/// The trials `final/` and `best/` are built from: the ranked complete trials, best first,
/// as many as the `average` section can use (all of them when that cannot be told).
pub fn final_members(experiment: &ir::Experiment, history: &History) -> Vec<u64> {
    let ranked = history.ranked();
    let n = final_model::members_needed(experiment).unwrap_or(ranked.len());
    ranked.iter().take(n).map(|t| t.number).collect()
}

/// [`fetch`] of [`final_members`]: what a participant needs before it builds `final/`.
pub fn for_final(
    store: &dyn Store,
    study: StudyId,
    experiment: &ir::Experiment,
    history: &History,
    out: &Path,
) -> Result<Fetched, Error> {
    fetch(store, study, &final_members(experiment, history), out)
}

/// `--keep top:K`: deletes the stored models of every trial but the `k` best and those the
/// `average` section can use ([`final_members`]); gives how many were deleted.
pub fn keep_top(
    store: &dyn Store,
    study: StudyId,
    experiment: &ir::Experiment,
    history: &History,
    k: usize,
) -> Result<u64, Error> {
    let mut keep: Vec<u64> = history.ranked().iter().take(k.max(1)).map(|t| t.number).collect();
    keep.extend(final_members(experiment, history));
    let stored = store.artifacts(study).map_err(Error::internal)?;
    let drop: Vec<u64> = stored.iter().map(|a| a.number).filter(|n| !keep.contains(n)).collect();
    if drop.is_empty() {
        return Ok(0);
    }
    store.delete_artifacts(study, &drop).map_err(Error::internal)
}

/// `1.5 MB`, `320 kB`, `12 B` (decimal units).
pub fn human_bytes(n: u64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.2} GB", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1} MB", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0} kB", x / 1e3)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Point, Value};
    use crate::store::Sqlite;
    use crate::store::{Store, StudySpec};
    use crate::trial::{Direction, Rank, Trial, TrialState};

    fn spec() -> StudySpec {
        StudySpec {
            name: "s".into(),
            experiment: "e".into(),
            spec_text: "x".into(),
            spec_hash: crate::store::spec_hash("x"),
            objectives: vec![("loss".into(), Direction::Minimize)],
            constraints: vec![],
            seed: 1,
            options: String::new(),
        }
    }

    /// Three complete trials, each with a stored one-file model saying its number; trial 1
    /// is the best.
    fn stored() -> (Sqlite, StudyId, History) {
        let s = Sqlite::in_memory().expect("a store");
        let study = s.open(&spec()).expect("open");
        let mut history = History::new(vec![Direction::Minimize], Rank::Lexicographic);
        for (n, loss) in [(0u64, 2.0), (1, 1.0), (2, 3.0)] {
            s.claim(study.id, "w", None).expect("claim").expect("a trial");
            let dir = tempfile::tempdir().expect("a temp folder");
            std::fs::write(dir.path().join("model.json"), format!("{{\"trial\": {n}}}")).expect("write");
            s.put_artifact(study.id, n, "w", &artifacts::pack(dir.path()).expect("pack")).expect("upload");
            let mut p = Point::new();
            p.insert("x".into(), Value::Float(n as f64));
            let mut t = Trial::new(n, p, n);
            t.state = TrialState::Complete;
            t.values = vec![loss];
            s.finish(study.id, &t).expect("finish");
            history.upsert(t);
        }
        (s, study.id, history)
    }

    #[test]
    fn models_are_fetched_once_and_a_present_one_is_left_alone() {
        let (s, id, _) = stored();
        let out = tempfile::tempdir().expect("a temp folder");
        std::fs::create_dir_all(trial_dir(out.path(), 2)).expect("create");
        std::fs::write(trial_dir(out.path(), 2).join("model.json"), "local").expect("write");
        let f = fetch(&s, id, &[1, 2, 7], out.path()).expect("fetch");
        assert_eq!((f.fetched, f.present, f.missing), (vec![1], vec![2], vec![7]));
        let text = std::fs::read_to_string(trial_dir(out.path(), 1).join("model.json")).expect("read");
        assert_eq!(text, "{\"trial\": 1}");
        assert_eq!(std::fs::read_to_string(trial_dir(out.path(), 2).join("model.json")).expect("read"), "local");
        let again = fetch(&s, id, &[1], out.path()).expect("fetch");
        assert_eq!((again.fetched.len(), again.present), (0, vec![1]));
    }

    #[test]
    fn keep_top_keeps_the_best_k() {
        let (s, id, history) = stored();
        // No `average` section: the final model is the best trial alone.
        let compiled = crate::compile(&crate::Source::new(
            "t.bma",
            "experiment e {\n  space { x: float in 0.0..1.0 }\n  objective { minimize x }\n}\n",
        ));
        let exp = compiled.program.experiment("e").expect("the experiment");
        assert_eq!(final_members(exp, &history), vec![1]);
        assert_eq!(keep_top(&s, id, exp, &history, 2).expect("keep"), 1);
        let left: Vec<u64> = s.artifacts(id).expect("list").iter().map(|a| a.number).collect();
        assert_eq!(left, vec![0, 1], "the two best stay, the third goes");
    }
}
