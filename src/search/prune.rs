//! STUB (being written): pruners.

/// A pruner's answer for a trial at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    Prune,
}

/// Decides, from every trial's per-step values, whether a running trial stops.
pub trait Pruner: Send + Sync {
    /// `loss` is the trial's first objective at `step`, turned so that lower is better.
    fn report(&self, trial: u64, step: u32, loss: f64) -> Verdict;
}

/// `prune = none`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPruner;

impl Pruner for NoPruner {
    fn report(&self, _trial: u64, _step: u32, _loss: f64) -> Verdict {
        Verdict::Continue
    }
}
