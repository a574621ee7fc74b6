//! The adaptive local/global balance of `tpe` with one objective (issue 21).
//!
//! Takes the finished trials' `(violation, loss)` keys in trial-number order and the
//! [`TpeOptions`], gives a [`Balance`]: the probability that an ask is global
//! (candidates from all of `l`, Optuna's rule) instead of local (around the best trial),
//! and the factor on the local kernel's width. Both follow the *stall*: the number of
//! trials finished since the best key last improved (by more than `stall_tolerance` times
//! the progress made since the startup trials, when that is set). While the search improves, every
//! ask is local at full width; once it stalls for `stall_after` trials, a share of the
//! asks turns global, growing by `stall_rate` per further stalled trial up to
//! `global_max` (a way out of a local minimum), and the local width halves (`shrink`)
//! every `shrink_every` stalled trials down to `min_scale` (a trust region that
//! contracts on failure). A new best resets both: the region is restored and every
//! ask is local again.
//!
//! **Invariant:** a pure function of the history, so a resumed or distributed study
//! gets the same balance as an uninterrupted one (nothing is kept between asks).

use super::TpeOptions;

/// What one ask does: global with probability `global`, else local with the kernel
/// width times `scale` (times `TpeOptions::local_scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Balance {
    pub global: f64,
    pub scale: f64,
}

/// Trials since the best key (`(violation, loss)`, compared in that order) improved
/// enough: a lower violation always counts; at the same violation, a lower loss counts when
/// it gains more than `tolerance` times the progress since the first `startup` trials (the
/// best loss among them, or at the first trial of a lower violation, minus the best before
/// this trial; with `tolerance` 0, any gain).
/// A smaller gain still moves the best, so the progress it measures from keeps growing.
pub(super) fn stall(tolerance: f64, startup: usize, keys: impl IntoIterator<Item = (f64, f64)>) -> u64 {
    let mut best: Option<(f64, f64)> = None;
    // The best key once the startup trials are in: where the progress is measured from.
    let mut origin: Option<(f64, f64)> = None;
    let mut since = 0;
    for (n, k) in keys.into_iter().enumerate() {
        if n == startup.max(1) {
            origin = best;
        }
        let Some(b) = best else {
            best = Some(k);
            continue;
        };
        let enough = if k.0 < b.0 {
            // Progress at the new violation is measured from here.
            if n >= startup.max(1) {
                origin = Some(k);
            }
            true
        } else if k.0 == b.0 && k.1 < b.1 {
            let progress = origin.filter(|o| o.0 == b.0).map_or(0.0, |o| (o.1 - b.1).max(0.0));
            b.1 - k.1 > tolerance.max(0.0) * progress
        } else {
            false
        };
        if k.0 < b.0 || (k.0 == b.0 && k.1 < b.1) {
            best = Some(k);
        }
        if enough {
            since = 0;
        } else {
            since += 1;
        }
    }
    since
}

/// The balance after `stall` trials without a new best.
pub(super) fn balance(o: &TpeOptions, stall: u64) -> Balance {
    let global = if stall >= o.stall_after {
        (o.stall_rate * (stall - o.stall_after + 1) as f64).clamp(0.0, o.global_max.clamp(0.0, 1.0))
    } else {
        0.0
    };
    let halvings = stall.checked_div(o.shrink_every).unwrap_or(0).min(64) as i32;
    let scale = o.shrink.clamp(0.0, 1.0).powi(halvings).max(o.min_scale.min(1.0));
    Balance { global, scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> TpeOptions {
        TpeOptions {
            stall_after: 10,
            stall_rate: 0.05,
            global_max: 0.5,
            shrink_every: 5,
            shrink: 0.5,
            min_scale: 0.1,
            ..TpeOptions::default()
        }
    }

    #[test]
    fn the_stall_counts_trials_since_the_last_new_best() {
        let keys = |ls: &[f64]| ls.iter().map(|l| (0.0, *l)).collect::<Vec<_>>();
        let stall = |k| stall(0.0, 1, k);
        assert_eq!(stall(keys(&[])), 0);
        assert_eq!(stall(keys(&[5.0, 4.0, 4.5, 6.0, 4.0])), 3, "a tie is no improvement");
        assert_eq!(stall(keys(&[5.0, 4.0, 4.5, 3.0])), 0);
        // Feasibility first: an infeasible trial with a lower loss is no new best.
        assert_eq!(stall(vec![(0.0, 5.0), (1.0, 1.0), (0.5, 0.0)]), 2);
        assert_eq!(stall(vec![(1.0, 5.0), (0.0, 9.0)]), 0);
    }

    #[test]
    fn small_gains_count_as_stalled_with_a_tolerance() {
        let keys = |ls: &[f64]| ls.iter().map(|l| (0.0, *l)).collect::<Vec<_>>();
        // Startup 2 ends at best 10; then 6 (progress 4 after it), then gains of 0.1 and 0.2:
        // under 10% of the progress so far (0.4), so they are stalled trials.
        let climb = keys(&[12.0, 10.0, 6.0, 5.9, 5.7, 7.0]);
        assert_eq!(stall(0.1, 2, climb.clone()), 3);
        assert_eq!(stall(0.0, 2, climb.clone()), 1, "without a tolerance every gain counts");
        // A gain of 1 (over 10% of the progress, 4.3 by then) resets it.
        let jump = keys(&[12.0, 10.0, 6.0, 5.9, 5.7, 4.7]);
        assert_eq!(stall(0.1, 2, jump), 0);
        // The first gain after the startup always counts (no progress yet).
        assert_eq!(stall(0.5, 2, keys(&[12.0, 10.0, 9.99])), 0);
        // A lower violation always counts, and the progress is then measured from it.
        let feasible = vec![(1.0, 5.0), (0.0, 10.0), (0.0, 6.0), (0.0, 5.9)];
        assert_eq!(stall(0.5, 1, feasible.clone()), 1);
        assert_eq!(stall(0.5, 1, feasible.into_iter().chain([(0.5, 0.0)])), 2);
    }

    #[test]
    fn the_region_shrinks_after_k_failures_and_a_new_best_restores_it() {
        let o = options();
        assert_eq!(balance(&o, 0).scale, 1.0);
        assert_eq!(balance(&o, 4).scale, 1.0);
        assert_eq!(balance(&o, 5).scale, 0.5);
        assert_eq!(balance(&o, 12).scale, 0.25);
        assert_eq!(balance(&o, 1000).scale, 0.1, "floored at min_scale");
        // The balance is a function of the stall alone: a new best (stall 0) restores it.
        let trials = [(0.0, 3.0), (0.0, 4.0), (0.0, 5.0), (0.0, 4.0), (0.0, 3.5), (0.0, 3.1), (0.0, 6.0)];
        let s = stall(0.0, 1, trials);
        assert_eq!((s, balance(&o, s).scale), (6, 0.5));
        let s = stall(0.0, 1, trials.iter().copied().chain([(0.0, 2.0)]));
        assert_eq!((s, balance(&o, s).scale), (0, 1.0));
    }

    #[test]
    fn the_global_share_rises_while_the_search_is_stalled() {
        let o = options();
        assert_eq!(balance(&o, 0).global, 0.0);
        assert_eq!(balance(&o, 9).global, 0.0);
        let shares: Vec<f64> = (10..30).map(|s| balance(&o, s).global).collect();
        assert!(shares.windows(2).all(|w| w[1] >= w[0]), "never falls while stalled: {shares:?}");
        assert!((balance(&o, 10).global - 0.05).abs() < 1e-12);
        assert!((balance(&o, 13).global - 0.2).abs() < 1e-12);
        assert_eq!(balance(&o, 500).global, 0.5, "capped at global_max");
        // Off: `stall_after = u64::MAX`, `shrink_every = 0`.
        let off = TpeOptions { stall_after: u64::MAX, shrink_every: 0, ..o };
        assert_eq!(balance(&off, 10_000), Balance { global: 0.0, scale: 1.0 });
    }
}
