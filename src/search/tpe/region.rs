//! The trust region of `tpe`'s local asks with one objective (issue 21): where the local
//! candidates are drawn, how wide, and when the search restarts elsewhere.
//!
//! Takes the finished trials in trial-number order, each as a [`Step`] (its
//! `(violation, loss)` key and encoded coordinates), the number of startup trials and the
//! [`TpeOptions`]; gives a [`Region`]: the centre of the local asks (a step's index, or
//! none: the ask is global) and the factor on the local width.
//!
//! TuRBO's state machine, replayed from the history. After the startup trials the region
//! is centred on the best of them. A trial better than the region's best is a *success*:
//! the centre moves to it and the width is restored (with `stall_tolerance`, only when it
//! gains more than that share of the loss gained since the region started; a smaller gain
//! moves the centre but counts as a failure). Any other trial is a *failure*: the
//! width is multiplied by `shrink` every `shrink_every` failures, and once it would fall
//! below `min_scale` the region has *collapsed*: its centre is remembered as spent and the
//! search restarts around the best trial that lies at least `restart_distance` (max norm
//! over the encoded coordinates; a categorical or a presence difference counts 1) from
//! every spent centre, or, when no trial is that far, with `restart_global` global asks,
//! after which the region is centred on the best of those. A restarted region counts
//! successes against its own best, not the study's.
//!
//! **Invariant:** a pure function of the history (nothing is kept between asks), so a
//! resumed or distributed study gets the same region as an uninterrupted one.

use super::TpeOptions;

/// One finished trial as the region sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step<'a> {
    /// `(violation, loss)`, compared in that order.
    pub key: (f64, f64),
    /// Encoded coordinates, NaN where the parameter is absent.
    pub x: &'a [f64],
}

/// Where the next local ask draws: around step `centre` with the width times `scale`,
/// or globally when `centre` is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Region {
    pub centre: Option<usize>,
    pub scale: f64,
    /// Collapses so far.
    pub restarts: u32,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Local {
        centre: usize,
        fails: u64,
        /// The loss the region started from (its first centre's).
        origin: f64,
    },
    /// Global asks since step `since`, until `until` steps have been seen.
    Global { since: usize, until: usize },
}

/// The region after `steps`; `cats[d]` tells whether dimension `d` is categorical.
pub(super) fn region(o: &TpeOptions, steps: &[Step<'_>], startup: usize, cats: &[bool]) -> Region {
    let n = steps.len();
    if n == 0 {
        return Region { centre: None, scale: 1.0, restarts: 0 };
    }
    let start = startup.clamp(1, n);
    let mut mode = local(steps, best_of(steps, 0..start));
    let mut spent: Vec<usize> = Vec::new();
    for i in start..n {
        mode = match mode {
            Mode::Local { centre, origin, .. } if success(o, steps[i].key, steps[centre].key, origin) => {
                local(steps, i).with_origin(origin, steps[i].key.0 == steps[centre].key.0)
            }
            // A gain too small to count: the centre follows it, the failure still counts.
            Mode::Local { centre, fails, origin }
                if better(steps[i].key, steps[centre].key) && !collapsed(o, fails + 1) =>
            {
                Mode::Local { centre: i, fails: fails + 1, origin }
            }
            Mode::Local { centre, fails, .. } if collapsed(o, fails + 1) => {
                spent.push(if better(steps[i].key, steps[centre].key) { i } else { centre });
                restart(o, &steps[..=i], &spent, cats)
            }
            Mode::Local { centre, fails, origin } => Mode::Local { centre, fails: fails + 1, origin },
            Mode::Global { since, until } if i + 1 >= until => local(steps, best_of(steps, since..i + 1)),
            global @ Mode::Global { .. } => global,
        };
    }
    let restarts = spent.len() as u32;
    match mode {
        Mode::Local { centre, fails, .. } => Region { centre: Some(centre), scale: width(o, fails), restarts },
        Mode::Global { .. } => Region { centre: None, scale: 1.0, restarts },
    }
}

fn better(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// A region centred on step `centre`, its progress measured from there.
fn local(steps: &[Step<'_>], centre: usize) -> Mode {
    Mode::Local { centre, fails: 0, origin: steps[centre].key.1 }
}

impl Mode {
    /// Keeps the region's `origin` when the violation did not change (`same`).
    fn with_origin(self, origin: f64, same: bool) -> Mode {
        match self {
            Mode::Local { centre, fails, .. } if same => Mode::Local { centre, fails, origin },
            other => other,
        }
    }
}

/// Whether key `k` is a success against the region's best `b`: better, by a lower violation
/// or by more than `stall_tolerance` times the loss gained since the region's `origin`.
fn success(o: &TpeOptions, k: (f64, f64), b: (f64, f64), origin: f64) -> bool {
    better(k, b) && (k.0 < b.0 || b.1 - k.1 > o.stall_tolerance.max(0.0) * (origin - b.1).max(0.0))
}

/// The first best step in `range` (not empty).
fn best_of(steps: &[Step<'_>], range: std::ops::Range<usize>) -> usize {
    let first = range.start;
    range.fold(first, |b, i| if better(steps[i].key, steps[b].key) { i } else { b })
}

fn halvings(o: &TpeOptions, fails: u64) -> i32 {
    fails.checked_div(o.shrink_every).unwrap_or(0).min(64) as i32
}

fn width(o: &TpeOptions, fails: u64) -> f64 {
    o.shrink.clamp(0.0, 1.0).powi(halvings(o, fails))
}

/// Whether `fails` failures shrink the region below `min_scale` (never when it does not shrink).
fn collapsed(o: &TpeOptions, fails: u64) -> bool {
    o.shrink_every > 0 && o.shrink < 1.0 && width(o, fails) < o.min_scale
}

/// The mode after a collapse at the last of `steps`.
fn restart(o: &TpeOptions, steps: &[Step<'_>], spent: &[usize], cats: &[bool]) -> Mode {
    let far = |i: usize| spent.iter().all(|&c| distance(steps[i].x, steps[c].x, cats) >= o.restart_distance);
    let elsewhere =
        (0..steps.len()).filter(|&i| far(i)).reduce(|b, i| if better(steps[i].key, steps[b].key) { i } else { b });
    match elsewhere {
        Some(centre) => local(steps, centre),
        None if o.restart_global > 0 => {
            Mode::Global { since: steps.len(), until: steps.len() + o.restart_global as usize }
        }
        // Nowhere to go and no global asks: start over around the best trial.
        None => local(steps, best_of(steps, 0..steps.len())),
    }
}

/// Max norm between two encoded points: categorical and presence differences count 1.
pub(super) fn distance(a: &[f64], b: &[f64], cats: &[bool]) -> f64 {
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(d, (&x, &y))| match (x.is_nan(), y.is_nan()) {
            (true, true) => 0.0,
            (true, false) | (false, true) => 1.0,
            _ if cats.get(d).copied().unwrap_or(false) => f64::from(u8::from(x != y)),
            _ => (x - y).abs(),
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> TpeOptions {
        TpeOptions {
            shrink_every: 2,
            shrink: 0.5,
            min_scale: 0.25,
            restarts: true,
            restart_distance: 0.3,
            restart_global: 3,
            ..TpeOptions::default()
        }
    }

    /// Steps from `(loss, x)` pairs in one dimension.
    fn run(o: &TpeOptions, trials: &[(f64, f64)], startup: usize) -> Region {
        let xs: Vec<[f64; 1]> = trials.iter().map(|t| [t.1]).collect();
        let steps: Vec<Step<'_>> = trials.iter().zip(&xs).map(|(t, x)| Step { key: (0.0, t.0), x }).collect();
        region(o, &steps, startup, &[false])
    }

    #[test]
    fn a_success_moves_the_centre_and_restores_the_width() {
        let o = options();
        // Startup 2: the centre is the better of the two.
        assert_eq!(run(&o, &[(5.0, 0.1), (3.0, 0.2)], 2), Region { centre: Some(1), scale: 1.0, restarts: 0 });
        // Two failures halve the width, a new best moves the centre and restores it.
        let t = [(5.0, 0.1), (3.0, 0.2), (4.0, 0.3), (6.0, 0.4)];
        assert_eq!(run(&o, &t, 2), Region { centre: Some(1), scale: 0.5, restarts: 0 });
        let t = [(5.0, 0.1), (3.0, 0.2), (4.0, 0.3), (6.0, 0.4), (2.0, 0.25)];
        assert_eq!(run(&o, &t, 2), Region { centre: Some(4), scale: 1.0, restarts: 0 });
        // A tie is a failure.
        let t = [(5.0, 0.1), (3.0, 0.2), (3.0, 0.3), (3.0, 0.4)];
        assert_eq!(run(&o, &t, 2).scale, 0.5);
    }

    #[test]
    fn a_collapse_restarts_around_the_best_distant_trial() {
        let o = options();
        // Best at 0.2 (loss 1); 0.6 (loss 2) is 0.4 away, 0.35 (loss 1.5) only 0.15.
        let mut t = vec![(3.0, 0.9), (2.0, 0.6), (1.5, 0.35), (1.0, 0.2)];
        // Three failures: width 0.5 after 2, still above min_scale; the fourth would reach 0.25.
        t.extend([(4.0, 0.21), (4.0, 0.19), (4.0, 0.22)]);
        assert_eq!(run(&o, &t, 4), Region { centre: Some(3), scale: 0.5, restarts: 0 });
        t.push((4.0, 0.18));
        // 0.5 * 0.5 = 0.25 is not below min_scale: still there.
        assert_eq!(run(&o, &t, 4), Region { centre: Some(3), scale: 0.25, restarts: 0 });
        t.extend([(4.0, 0.2), (4.0, 0.2)]);
        // The sixth failure would take it to 0.125: collapse, restart around 0.6.
        assert_eq!(run(&o, &t, 4), Region { centre: Some(1), scale: 1.0, restarts: 1 });
        // The restarted region counts successes against its own best (2.0), not the study's.
        t.push((1.8, 0.65));
        assert_eq!(run(&o, &t, 4), Region { centre: Some(10), scale: 1.0, restarts: 1 });
    }

    #[test]
    fn with_no_distant_trial_a_collapse_turns_global_then_recentres() {
        let o = options();
        // Every trial within 0.3 of the best: nothing to restart around.
        let mut t = vec![(3.0, 0.5), (1.0, 0.4), (4.0, 0.45), (4.0, 0.42), (4.0, 0.41), (4.0, 0.39), (4.0, 0.38)];
        let r = run(&o, &t, 2);
        assert_eq!((r.centre, r.restarts), (Some(1), 0));
        t.push((4.0, 0.37));
        assert_eq!(run(&o, &t, 2), Region { centre: None, scale: 1.0, restarts: 1 }, "global asks");
        t.extend([(2.0, 0.9), (1.5, 0.05)]);
        assert_eq!(run(&o, &t, 2).centre, None, "three global asks");
        t.push((6.0, 0.7));
        // The batch is over: centred on its best (1.5 at 0.05), not on the study's best.
        assert_eq!(run(&o, &t, 2), Region { centre: Some(9), scale: 1.0, restarts: 1 });
        // Without global asks it starts over around the best trial.
        let o = TpeOptions { restart_global: 0, ..o };
        let t = [(3.0, 0.5), (1.0, 0.4), (4.0, 0.45), (4.0, 0.42), (4.0, 0.41), (4.0, 0.39), (4.0, 0.38), (4.0, 0.37)];
        assert_eq!(run(&o, &t, 2), Region { centre: Some(1), scale: 1.0, restarts: 1 });
    }

    #[test]
    fn spent_centres_are_not_revisited() {
        let o = TpeOptions { restart_global: 0, ..options() };
        // Two far-apart basins: 0.1 (loss 1) and 0.9 (loss 2); a third at 0.5 (loss 3).
        let mut t = vec![(1.0, 0.1), (2.0, 0.9), (3.0, 0.5)];
        t.extend([(5.0, 0.1); 6]);
        assert_eq!(run(&o, &t, 3).centre, Some(1), "first collapse: to 0.9");
        t.extend([(5.0, 0.9); 6]);
        assert_eq!(run(&o, &t, 3).centre, Some(2), "second: to 0.5, 0.4 from both spent centres");
    }

    #[test]
    fn with_a_tolerance_small_gains_are_failures() {
        let o = TpeOptions { stall_tolerance: 0.5, ..options() };
        // The region starts at loss 10 (x = 0.5); a gain of 4, then gains of 0.1: each under
        // half the progress so far, so the centre follows them but they count as failures.
        let mut t = vec![(10.0, 0.5), (11.0, 0.95), (6.0, 0.45), (5.9, 0.44), (5.8, 0.43)];
        assert_eq!(run(&o, &t, 2), Region { centre: Some(4), scale: 0.5, restarts: 0 });
        let strict = TpeOptions { stall_tolerance: 0.0, ..o.clone() };
        assert_eq!(run(&strict, &t, 2), Region { centre: Some(4), scale: 1.0, restarts: 0 });
        // Six such failures collapse it, though each was a new best: restart at 0.95.
        t.extend([(5.7, 0.42), (5.6, 0.41), (5.5, 0.40), (5.4, 0.39)]);
        assert_eq!(run(&o, &t, 2), Region { centre: Some(1), scale: 1.0, restarts: 1 });
        assert_eq!(run(&strict, &t, 2), Region { centre: Some(8), scale: 1.0, restarts: 0 });
    }

    #[test]
    fn without_shrinking_nothing_collapses() {
        let o = TpeOptions { shrink_every: 0, ..options() };
        let mut t = vec![(1.0, 0.1), (2.0, 0.9)];
        t.extend([(5.0, 0.5); 100]);
        assert_eq!(run(&o, &t, 2), Region { centre: Some(0), scale: 1.0, restarts: 0 });
    }

    #[test]
    fn the_distance_is_a_max_norm_over_present_dimensions() {
        let cats = [false, true, false];
        assert_eq!(distance(&[0.25, 2.0, 0.5], &[0.5, 2.0, 0.375], &cats), 0.25);
        assert_eq!(distance(&[0.1, 1.0, 0.5], &[0.1, 2.0, 0.5], &cats), 1.0, "another category");
        assert_eq!(distance(&[0.1, 1.0, f64::NAN], &[0.1, 1.0, f64::NAN], &cats), 0.0, "both absent");
        assert_eq!(distance(&[0.1, 1.0, f64::NAN], &[0.1, 1.0, 0.5], &cats), 1.0, "one absent");
    }
}
