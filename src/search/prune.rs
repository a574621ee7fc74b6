//! Pruners: stop a running trial early when its learning curve is not competitive.
//!
//! Takes per-step reports `(trial, step, loss)` from the trial loop, gives a
//! [`Verdict`] for the reporting trial. `prune = none | median(warmup:) |
//! asha(min_epochs:, eta:) | hyperband(min_epochs:, max_epochs:, eta:)`.
//!
//! **The interface the trial loop calls.** Build one pruner per study with
//! [`from_setting`]; share it (`&dyn Pruner` or `Arc<dyn Pruner>`) between worker
//! threads; after each epoch of trial `n` call `pruner.report(n, step, loss)` where
//! `step` counts the epochs done (1 after the first) and `loss` is the first
//! objective turned so that lower is better ([`super::Direction::loss`]); stop the
//! trial (state `Pruned`) when the answer is [`Verdict::Prune`]. On resume, replay
//! the stored steps of every trial through `report` (ignore the verdicts) before
//! starting new work.
//!
//! **Invariant:** asynchronous: a verdict depends only on the reports received so
//! far, never waits for other trials (no rung barrier); every method takes `&self`
//! and the state sits behind a mutex, so pruners are `Send + Sync`. A trial that is
//! the best so far at every step it reports is never pruned by any pruner here.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::SearchError;
use crate::catalogue;
use crate::ir::Value;

/// A pruner's answer for a trial at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    Prune,
}

/// Decides, from every trial's per-step values, whether a running trial stops.
pub trait Pruner: Send + Sync {
    /// Records that `trial` reached `loss` (lower is better, NaN counts as worst) after
    /// `step` epochs, and says whether it should stop now.
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

/// The pruner a `prune = ...` value names.
pub fn from_setting(value: &Value) -> Result<Box<dyn Pruner>, SearchError> {
    use catalogue::Pruner as Kind;
    let name = value.head().unwrap_or("");
    let call = match value {
        Value::Call(c) => Some(c),
        _ => None,
    };
    let int = |key: &str, pos: usize, default: Option<u32>| -> Result<u32, SearchError> {
        match call.and_then(|c| c.arg(key, pos)) {
            None => default.ok_or_else(|| SearchError::Setting(format!("`{name}` needs `{key}:`"))),
            Some(v) => match v.as_i64() {
                Some(i) if (1..=i64::from(u32::MAX)).contains(&i) => Ok(i as u32),
                _ => Err(SearchError::Setting(format!("`{name}({key}: ...)` needs a positive int, found {v}"))),
            },
        }
    };
    let eta = |pos: usize| -> Result<u32, SearchError> {
        let e = int("eta", pos, Some(3))?;
        if e < 2 {
            return Err(SearchError::Setting(format!("`{name}(eta: ...)` must be at least 2, found {e}")));
        }
        Ok(e)
    };
    let Some(kind) = catalogue::kind(catalogue::PRUNERS, name) else {
        let expected = catalogue::written(catalogue::Concept::Pruner);
        return Err(SearchError::Setting(format!("unknown pruner `{value}` (expected {expected})")));
    };
    Ok(match kind {
        Kind::None => Box::new(NoPruner),
        Kind::Median => {
            let warmup = match call.and_then(|c| c.arg("warmup", 0)) {
                None => 1,
                Some(v) => match v.as_i64() {
                    Some(i) if (0..=i64::from(u32::MAX)).contains(&i) => i as u32,
                    _ => {
                        return Err(SearchError::Setting(format!(
                            "`median(warmup: ...)` needs an int >= 0, found {v}"
                        )));
                    }
                },
            };
            Box::new(Median::new(warmup))
        }
        Kind::Asha => Box::new(Asha::new(int("min_epochs", 0, Some(1))?, eta(1)?)),
        Kind::Hyperband => {
            let min = int("min_epochs", 0, Some(1))?;
            let max = int("max_epochs", 1, None)?;
            if max < min {
                return Err(SearchError::Setting(format!(
                    "`hyperband` needs max_epochs >= min_epochs, found {max} < {min}"
                )));
            }
            Box::new(Hyperband::new(min, max, eta(2)?))
        }
    })
}

fn clean(loss: f64) -> f64 {
    if loss.is_nan() { f64::INFINITY } else { loss }
}

/// `median(warmup:)`: after `warmup` steps, prune a trial whose best value so far is
/// worse than the median of the values other trials reported at the same step.
/// Needs [`Median::MIN_TRIALS`] other trials at that step before it prunes anything.
#[derive(Debug, Default)]
pub struct Median {
    warmup: u32,
    /// step → (trial → value at that step).
    at_step: Mutex<BTreeMap<u32, BTreeMap<u64, f64>>>,
    /// trial → best value so far.
    best: Mutex<BTreeMap<u64, f64>>,
}

impl Median {
    /// Other trials needed at a step before the median is trusted.
    pub const MIN_TRIALS: usize = 3;

    pub fn new(warmup: u32) -> Median {
        Median { warmup, ..Median::default() }
    }
}

impl Pruner for Median {
    fn report(&self, trial: u64, step: u32, loss: f64) -> Verdict {
        let loss = clean(loss);
        let best = {
            let mut best = self.best.lock().unwrap_or_else(|e| e.into_inner());
            let b = best.entry(trial).or_insert(f64::INFINITY);
            *b = b.min(loss);
            *b
        };
        let mut at_step = self.at_step.lock().unwrap_or_else(|e| e.into_inner());
        let here = at_step.entry(step).or_default();
        here.insert(trial, loss);
        if step < self.warmup.max(1) {
            return Verdict::Continue;
        }
        let mut others: Vec<f64> = here.iter().filter(|(t, _)| **t != trial).map(|(_, v)| *v).collect();
        if others.len() < Self::MIN_TRIALS {
            return Verdict::Continue;
        }
        others.sort_by(f64::total_cmp);
        let n = others.len();
        let median = if n % 2 == 1 { others[n / 2] } else { 0.5 * (others[n / 2 - 1] + others[n / 2]) };
        if best > median { Verdict::Prune } else { Verdict::Continue }
    }
}

/// Asynchronous successive halving (Li et al. 2020): rungs at `min_epochs · etaᵏ`; a trial
/// reaching a rung continues only if its value is in the top `1/eta` of the values
/// recorded at that rung so far (the best one when fewer than `eta` are recorded).
#[derive(Debug)]
pub struct Asha {
    min_epochs: u32,
    eta: u32,
    /// rung → (trial → value).
    rungs: Mutex<Vec<BTreeMap<u64, f64>>>,
}

impl Asha {
    pub fn new(min_epochs: u32, eta: u32) -> Asha {
        Asha { min_epochs: min_epochs.max(1), eta: eta.max(2), rungs: Mutex::new(Vec::new()) }
    }

    /// The step of rung `k`, saturating.
    fn rung_step(&self, k: usize) -> u64 {
        let mut s = u64::from(self.min_epochs);
        for _ in 0..k {
            s = s.saturating_mul(u64::from(self.eta));
        }
        s
    }

    fn report_in(&self, trial: u64, step: u32, loss: f64) -> Verdict {
        let loss = clean(loss);
        let mut rungs = self.rungs.lock().unwrap_or_else(|e| e.into_inner());
        let mut verdict = Verdict::Continue;
        // Every rung this step has reached and the trial has not yet recorded.
        let mut k = 0;
        while self.rung_step(k) <= u64::from(step) {
            if rungs.len() <= k {
                rungs.push(BTreeMap::new());
            }
            if let std::collections::btree_map::Entry::Vacant(e) = rungs[k].entry(trial) {
                e.insert(loss);
                let mut values: Vec<f64> = rungs[k].values().copied().collect();
                values.sort_by(f64::total_cmp);
                let keep = (values.len() / self.eta as usize).max(1);
                if loss > values[keep - 1] {
                    verdict = Verdict::Prune;
                }
            }
            if verdict == Verdict::Prune {
                break;
            }
            k += 1;
        }
        verdict
    }
}

impl Pruner for Asha {
    fn report(&self, trial: u64, step: u32, loss: f64) -> Verdict {
        self.report_in(trial, step, loss)
    }
}

/// Asynchronous Hyperband (Li et al. 2018, with ASHA brackets): bracket `s` is ASHA
/// starting at `min_epochs · etaˢ`, for `s` in `0..=⌊log_eta(max_epochs / min_epochs)⌋`;
/// trial `n` goes to bracket `n mod brackets` and competes only within it. The last
/// bracket starts at (or near) `max_epochs`, so it prunes nothing before the end.
#[derive(Debug)]
pub struct Hyperband {
    brackets: Vec<Asha>,
}

impl Hyperband {
    pub fn new(min_epochs: u32, max_epochs: u32, eta: u32) -> Hyperband {
        let (min, eta) = (min_epochs.max(1), eta.max(2));
        let mut brackets = Vec::new();
        let mut start = u64::from(min);
        loop {
            brackets.push(Asha::new(start.min(u64::from(u32::MAX)) as u32, eta));
            start = start.saturating_mul(u64::from(eta));
            if start > u64::from(max_epochs.max(min)) {
                break;
            }
        }
        Hyperband { brackets }
    }

    /// The number of brackets.
    pub fn brackets(&self) -> usize {
        self.brackets.len()
    }

    /// The bracket trial `n` belongs to.
    pub fn bracket(&self, trial: u64) -> usize {
        (trial % self.brackets.len() as u64) as usize
    }
}

impl Pruner for Hyperband {
    fn report(&self, trial: u64, step: u32, loss: f64) -> Verdict {
        self.brackets[self.bracket(trial)].report_in(trial, step, loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::CallValue;
    use crate::rng::Rng;

    const EPOCHS: u32 = 27;

    /// Learning curves `final + amp·exp(-t/tau)` with known final values; trial `i`'s
    /// final value is `finals[i]`. `noise` adds Gaussian noise of that sd to each report.
    struct Curves {
        finals: Vec<f64>,
        amp: Vec<f64>,
        tau: Vec<f64>,
    }

    impl Curves {
        /// `n` curves, shuffled order of quality; the same shape for all when `same_shape`.
        fn new(n: usize, seed: u64, same_shape: bool) -> Curves {
            let mut rng = Rng::new(seed);
            let finals: Vec<f64> = (0..n).map(|_| rng.uniform(0.05, 1.0)).collect();
            let amp = (0..n).map(|_| if same_shape { 2.0 } else { rng.uniform(1.5, 2.5) }).collect();
            let tau = (0..n).map(|_| if same_shape { 4.0 } else { rng.uniform(3.0, 5.0) }).collect();
            Curves { finals, amp, tau }
        }

        fn at(&self, i: usize, t: u32) -> f64 {
            self.finals[i] + self.amp[i] * (-f64::from(t) / self.tau[i]).exp()
        }

        fn best(&self) -> usize {
            (0..self.finals.len()).min_by(|a, b| self.finals[*a].total_cmp(&self.finals[*b])).unwrap_or(0)
        }
    }

    /// Runs the trials `parallel` at a time, interleaving their epochs round-robin (an
    /// asynchronous loop); returns (epochs run per trial, pruned per trial).
    fn run(pruner: &dyn Pruner, curves: &Curves, parallel: usize, noise: f64, seed: u64) -> (Vec<u32>, Vec<bool>) {
        let n = curves.finals.len();
        let mut rng = Rng::new(seed);
        let mut epochs = vec![0u32; n];
        let mut pruned = vec![false; n];
        let mut next = 0usize;
        let mut running: Vec<usize> = Vec::new();
        while next < n || !running.is_empty() {
            while running.len() < parallel && next < n {
                running.push(next);
                next += 1;
            }
            // Uneven speeds: each running trial advances 1 or 2 epochs per round.
            let mut still = Vec::new();
            for &i in &running {
                let mut done = false;
                for _ in 0..(1 + rng.index(2)) {
                    epochs[i] += 1;
                    let v = curves.at(i, epochs[i]) + noise * rng.normal();
                    if pruner.report(i as u64, epochs[i], v) == Verdict::Prune {
                        pruned[i] = true;
                        done = true;
                        break;
                    }
                    if epochs[i] == EPOCHS {
                        done = true;
                        break;
                    }
                }
                if !done {
                    still.push(i);
                }
            }
            running = still;
        }
        (epochs, pruned)
    }

    fn saved(epochs: &[u32]) -> f64 {
        1.0 - epochs.iter().map(|e| f64::from(*e)).sum::<f64>() / (epochs.len() as f64 * f64::from(EPOCHS))
    }

    fn pruners() -> Vec<(&'static str, Box<dyn Pruner>)> {
        vec![
            ("median(warmup: 3)", Box::new(Median::new(3))),
            ("asha(min_epochs: 1, eta: 3)", Box::new(Asha::new(1, 3))),
            ("hyperband(min_epochs: 1, max_epochs: 27, eta: 3)", Box::new(Hyperband::new(1, 27, 3))),
        ]
    }

    /// Noise-free curves of one shape never cross: the best curve is never pruned, and the
    /// budget saved is reported.
    #[test]
    fn best_curve_survives_noise_free() {
        for seed in 0..10 {
            let curves = Curves::new(60, seed, true);
            for (name, pruner) in pruners() {
                let (epochs, pruned) = run(pruner.as_ref(), &curves, 4, 0.0, seed);
                let b = curves.best();
                assert!(!pruned[b] && epochs[b] == EPOCHS, "{name} pruned the best curve (seed {seed})");
                if seed == 0 {
                    eprintln!(
                        "noise-free, 60 curves, parallel 4: {name} saves {:.0}% of the epochs",
                        100.0 * saved(&epochs)
                    );
                }
                assert!(saved(&epochs) > 0.3, "{name} saved only {:.2}", saved(&epochs));
            }
        }
    }

    /// Curves of different shapes with noise: the best curve is still kept when its margin
    /// over the second is larger than the noise (made so here), and much budget is saved.
    #[test]
    fn best_curve_survives_noisy() {
        for seed in 0..10 {
            let mut curves = Curves::new(60, 100 + seed, false);
            let b = curves.best();
            // A clear winner: 0.3 below every other final value, noise sd 0.02.
            curves.finals[b] -= 0.3;
            curves.amp[b] = 1.5;
            for (name, pruner) in pruners() {
                let (epochs, pruned) = run(pruner.as_ref(), &curves, 8, 0.02, seed);
                assert!(!pruned[b] && epochs[b] == EPOCHS, "{name} pruned the best curve (seed {seed})");
                if seed == 0 {
                    eprintln!(
                        "noisy, 60 curves, parallel 8: {name} saves {:.0}% of the epochs",
                        100.0 * saved(&epochs)
                    );
                }
                assert!(saved(&epochs) > 0.3, "{name} saved only {:.2}", saved(&epochs));
            }
        }
    }

    #[test]
    fn asha_by_hand() {
        let p = Asha::new(1, 2);
        // Rung 0 (step 1): the first trial is the best so far → continue.
        assert_eq!(p.report(0, 1, 5.0), Verdict::Continue);
        // Worse than the only other value: with 2 values, top 1 kept → prune.
        assert_eq!(p.report(1, 1, 6.0), Verdict::Prune);
        // Better → continue; 3 values, top 1 → 4.0 kept.
        assert_eq!(p.report(2, 1, 4.0), Verdict::Continue);
        // 4 values [3, 4, 5, 6], top 2: 4.5 would be third → prune; 3.5 second → continue.
        assert_eq!(p.report(3, 1, 3.0), Verdict::Continue);
        assert_eq!(p.report(4, 1, 4.5), Verdict::Prune);
        // Step 2 is rung 1: trial 0 arrives first and is kept; step 3 is no rung.
        assert_eq!(p.report(0, 2, 4.0), Verdict::Continue);
        assert_eq!(p.report(0, 3, 99.0), Verdict::Continue);
        assert_eq!(p.report(2, 2, 4.5), Verdict::Prune);
    }

    #[test]
    fn median_by_hand() {
        let p = Median::new(2);
        for t in 0..3 {
            assert_eq!(p.report(t, 1, 1.0 + t as f64), Verdict::Continue);
            assert_eq!(p.report(t, 2, 1.0 + t as f64), Verdict::Continue);
        }
        // Step 1 is inside the warmup: no pruning however bad.
        assert_eq!(p.report(9, 1, 100.0), Verdict::Continue);
        // Step 2: median of the others' step-2 values is 2; best so far for 9 is 100.
        assert_eq!(p.report(9, 2, 100.0), Verdict::Prune);
        // Trial 8 had a good value at step 1 (its best so far): 1.5 <= median → continue.
        assert_eq!(p.report(8, 1, 1.5), Verdict::Continue);
        assert_eq!(p.report(8, 2, 50.0), Verdict::Continue);
    }

    #[test]
    fn hyperband_brackets() {
        let h = Hyperband::new(1, 27, 3);
        assert_eq!(h.brackets(), 4); // starts 1, 3, 9, 27
        assert_eq!((h.bracket(0), h.bracket(5)), (0, 1));
        // The last bracket starts at 27: nothing before epoch 27 is ever pruned there.
        for t in [3u64, 7, 11] {
            for s in 1..27 {
                assert_eq!(h.report(t, s, 100.0 + t as f64), Verdict::Continue);
            }
        }
    }

    #[test]
    fn settings() {
        let call = |name: &str, args: Vec<(&str, i64)>| {
            Value::Call(CallValue {
                name: name.into(),
                args: args.into_iter().map(|(k, v)| (Some(k.to_string()), Value::Int(v))).collect(),
            })
        };
        assert!(from_setting(&Value::sym("none")).is_ok());
        assert!(from_setting(&call("median", vec![("warmup", 5)])).is_ok());
        assert!(from_setting(&call("asha", vec![("min_epochs", 2), ("eta", 3)])).is_ok());
        assert!(from_setting(&call("hyperband", vec![("min_epochs", 1), ("max_epochs", 81), ("eta", 3)])).is_ok());
        let err = |v: Value| from_setting(&v).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(call("asha", vec![("eta", 1)])).contains("at least 2"));
        assert!(err(call("hyperband", vec![("min_epochs", 1)])).contains("max_epochs"));
        assert!(
            err(call("hyperband", vec![("min_epochs", 9), ("max_epochs", 3)])).contains("max_epochs >= min_epochs")
        );
        assert!(err(Value::sym("sometimes")).contains("unknown pruner"));
        assert!(err(call("median", vec![("warmup", -1)])).contains("warmup"));
    }

    /// The message names the pruners from the catalogue, as it did when it listed them itself.
    #[test]
    fn an_unknown_pruner_lists_the_catalogue() {
        let e = from_setting(&Value::sym("sometimes")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.ends_with(
                "unknown pruner `sometimes` (expected none, median(warmup:), asha(min_epochs:, eta:) or \
                 hyperband(min_epochs:, max_epochs:, eta:))"
            ),
            "{e}"
        );
    }

    #[test]
    fn shared_between_threads() {
        let p: std::sync::Arc<dyn Pruner> = std::sync::Arc::new(Asha::new(1, 3));
        let handles: Vec<_> = (0..4u64)
            .map(|w| {
                let p = p.clone();
                std::thread::spawn(move || {
                    (0..25u64)
                        .map(|k| (w * 100 + k, p.report(w * 100 + k, 1, (k as f64) - w as f64)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let verdicts: Vec<(u64, Verdict)> = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
        assert_eq!(verdicts.len(), 100);
        // Trial 300 has the lowest loss of all (-3): whatever the interleaving, it is in the
        // top third of its rung when it reports, so it is never pruned.
        assert!(verdicts.contains(&(300, Verdict::Continue)), "{verdicts:?}");
        // Trial 24 has the highest loss of all (24) and reports after its own thread's 24
        // others: it is always below the top third, so always pruned.
        assert!(verdicts.contains(&(24, Verdict::Prune)), "{verdicts:?}");
    }
}
