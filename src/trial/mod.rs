//! What a trial is, independent of how it was proposed or where it is kept: the
//! [`Trial`] record, its [`TrialState`], the objectives' [`Direction`]s, a study's
//! [`History`], and how finished trials are ranked ([`rank`]).
//!
//! Takes nothing but the resolved point type ([`crate::ir::Point`]) and setting values;
//! gives the types that the store, the search, the report and the final model share.
//! It is a leaf of the library: it imports no module above `ir`, so `store` and
//! `search` both build on it without importing each other's internals.
//!
//! **Invariants:** [`History::trials`] is ordered by number with no duplicates;
//! [`TrialState::as_str`]/[`TrialState::parse`] and [`FailKind::as_str`]/[`FailKind::parse`]
//! are inverse (the stores keep the text forms); a trial has a [`FailKind`] exactly when
//! it is [`TrialState::Failed`] (a store that cannot tell the kind reads
//! [`FailKind::Error`]).

pub mod rank;

use serde::{Deserialize, Serialize};

use crate::ir::Point;

pub use rank::Rank;

/// Whether an objective is minimized or maximized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Minimize,
    Maximize,
}

impl From<crate::ast::Direction> for Direction {
    fn from(d: crate::ast::Direction) -> Direction {
        match d {
            crate::ast::Direction::Minimize => Direction::Minimize,
            crate::ast::Direction::Maximize => Direction::Maximize,
        }
    }
}

impl Direction {
    /// The value turned so that lower is better.
    pub fn loss(self, v: f64) -> f64 {
        match self {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }
}

/// Where a trial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Proposed, waiting for a worker (a requeued trial after a crash).
    Queued,
    Running,
    Complete,
    /// Stopped early by the pruner.
    Pruned,
    /// Errored, produced NaN, ran out of time or was stopped; `failure` says which kind
    /// of failure, `error` says why in words.
    Failed,
    /// Refused before training: a static `require` (on `params`, `flops`) cannot hold at
    /// its point; `error` says which (it begins with [`INFEASIBLE`]).
    Infeasible,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Queued => "queued",
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
            TrialState::Infeasible => "infeasible",
        }
    }

    pub fn parse(s: &str) -> Option<TrialState> {
        Some(match s {
            "queued" => TrialState::Queued,
            "running" => TrialState::Running,
            "complete" => TrialState::Complete,
            "pruned" => TrialState::Pruned,
            "failed" => TrialState::Failed,
            "infeasible" => TrialState::Infeasible,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Failed | TrialState::Infeasible)
    }
}

/// How the error of an [`TrialState::Infeasible`] trial begins (the words people read).
pub const INFEASIBLE: &str = "infeasible before training";

/// Which kind of failure ended a [`TrialState::Failed`] trial; the store keeps it beside
/// the error text, so nothing needs to match on the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// The evaluation gave no result: an error, a panic, a NaN or infinite value, a thread
    /// that could not start, a worker that went silent too often.
    Error,
    /// The trial's own time limit (`--trial-time`) ran out.
    TimedOut,
    /// The study's time budget ran out while the trial ran.
    StudyTime,
    /// Stopped by the user (Ctrl-C).
    Interrupted,
    /// Cancelled by `bma watch`: the file was saved while the trial ran.
    Cancelled,
}

impl FailKind {
    /// Every kind, for tests and migrations.
    pub const ALL: [FailKind; 5] =
        [FailKind::Error, FailKind::TimedOut, FailKind::StudyTime, FailKind::Interrupted, FailKind::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            FailKind::Error => "error",
            FailKind::TimedOut => "timed_out",
            FailKind::StudyTime => "study_time",
            FailKind::Interrupted => "interrupted",
            FailKind::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<FailKind> {
        FailKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One evaluation of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub number: u64,
    pub state: TrialState,
    /// The resolved point (derived and pinned values included).
    pub params: Point,
    pub seed: u64,
    /// Objective values as measured, in the experiment's order (complete trials).
    pub values: Vec<f64>,
    /// Each constraint's left-hand side as measured.
    pub constraints: Vec<f64>,
    /// Each constraint's violation: 0 when it holds.
    pub violations: Vec<f64>,
    /// `(step, value)` reports of the first objective during the trial (epochs).
    pub steps: Vec<(u32, f64)>,
    /// Every metric measured (accuracy, latency, params, ...), by name; the report reads these.
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
    pub error: Option<String>,
    /// Which kind of failure (failed trials only; `None` in every other state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailKind>,
    /// Wall-clock seconds.
    pub duration: f64,
    /// The device a command trial ran on (its entry of `devices` or `--devices`); `None`
    /// when none was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// When it started and ended, in seconds since 1970 (the report's timeline); `None`
    /// before it ends, and for trials stored before these were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<f64>,
    /// The worker that ran it to its end (`host:pid:nonce`, [`crate::store::worker_id`]):
    /// the report's timeline draws each worker's trials on its own lanes; `None` for
    /// trials stored before this was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl Trial {
    pub fn new(number: u64, params: Point, seed: u64) -> Trial {
        Trial {
            number,
            state: TrialState::Running,
            params,
            seed,
            values: Vec::new(),
            constraints: Vec::new(),
            violations: Vec::new(),
            steps: Vec::new(),
            metrics: Default::default(),
            error: None,
            failure: None,
            duration: 0.0,
            device: None,
            started: None,
            worker: None,
            finished: None,
        }
    }

    /// Whether the trial failed with this kind of failure.
    pub fn failed_with(&self, kind: FailKind) -> bool {
        self.state == TrialState::Failed && self.failure == Some(kind)
    }

    /// Marks the trial failed with `kind`, `reason` in words.
    pub fn fail(&mut self, kind: FailKind, reason: String) {
        self.state = TrialState::Failed;
        self.failure = Some(kind);
        self.error = Some(reason);
    }

    /// A number claimed and given back before any point was chosen for it (the strategy
    /// had nothing to propose): a placeholder in the store, not a trial of the study.
    pub fn is_unproposed(&self) -> bool {
        self.state == TrialState::Queued && self.params.is_empty()
    }

    pub fn is_feasible(&self) -> bool {
        self.violations.iter().all(|v| *v <= 0.0)
    }

    pub fn total_violation(&self) -> f64 {
        self.violations.iter().map(|v| v.max(0.0)).sum()
    }

    /// The value reported at `step`, if any.
    pub fn step_value(&self, step: u32) -> Option<f64> {
        self.steps.iter().rev().find(|(s, _)| *s == step).map(|(_, v)| *v)
    }
}

/// Every trial of a study so far, ordered by number, with what "better" means.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub directions: Vec<Direction>,
    pub rank: Rank,
    pub trials: Vec<Trial>,
}

impl History {
    pub fn new(directions: Vec<Direction>, rank: Rank) -> History {
        History { directions, rank, trials: Vec::new() }
    }

    pub fn completed(&self) -> impl Iterator<Item = &Trial> {
        self.trials.iter().filter(|t| t.state == TrialState::Complete)
    }

    /// A trial's objective values turned so that lower is better.
    pub fn losses(&self, trial: &Trial) -> Vec<f64> {
        self.directions.iter().zip(&trial.values).map(|(d, v)| d.loss(*v)).collect()
    }

    /// Inserts or replaces a trial, keeping the order by number.
    pub fn upsert(&mut self, trial: Trial) {
        match self.trials.binary_search_by_key(&trial.number, |t| t.number) {
            Ok(i) => self.trials[i] = trial,
            Err(i) => self.trials.insert(i, trial),
        }
    }

    pub fn get(&self, number: u64) -> Option<&Trial> {
        self.trials.binary_search_by_key(&number, |t| t.number).ok().map(|i| &self.trials[i])
    }

    pub fn get_mut(&mut self, number: u64) -> Option<&mut Trial> {
        self.trials.binary_search_by_key(&number, |t| t.number).ok().map(|i| &mut self.trials[i])
    }

    /// Complete trials, best first, by the rank (feasible ones before infeasible).
    pub fn ranked(&self) -> Vec<&Trial> {
        let complete: Vec<&Trial> = self.completed().collect();
        rank::order(&complete, &self.directions, &self.rank).into_iter().map(|i| complete[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_fail_kinds_read_back_from_their_text() {
        for s in [
            TrialState::Queued,
            TrialState::Running,
            TrialState::Complete,
            TrialState::Pruned,
            TrialState::Failed,
            TrialState::Infeasible,
        ] {
            assert_eq!(TrialState::parse(s.as_str()), Some(s));
        }
        for k in FailKind::ALL {
            assert_eq!(FailKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(TrialState::parse("lost"), None);
        assert_eq!(FailKind::parse("lost"), None);
        assert!(TrialState::Infeasible.is_finished());
    }

    #[test]
    fn a_failed_trial_knows_its_kind() {
        let mut t = Trial::new(0, Point::new(), 1);
        assert!(!t.failed_with(FailKind::Error));
        t.fail(FailKind::Cancelled, "cancelled".into());
        assert_eq!(
            (t.state, t.failure, t.error.as_deref()),
            (TrialState::Failed, Some(FailKind::Cancelled), Some("cancelled"))
        );
        assert!(t.failed_with(FailKind::Cancelled) && !t.failed_with(FailKind::Error));
    }
}
