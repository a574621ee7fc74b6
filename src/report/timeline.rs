//! The report's timeline: one bar per trial from its start to its end, on the lane
//! (slot) it ran in, coloured by its final state, like Optuna's timeline plot.
//!
//! Takes the trials with their wall-clock `started` and `finished` times (seconds since
//! 1970, as the store records them); gives an SVG section. Lanes are the slots the
//! trials needed: each trial goes on the lowest lane free at its start (interval
//! partitioning), so `parallel = 4` shows four lanes and workers of a shared study add
//! theirs. Cost O(n log n) for the sort and the lane heap; at most [`MAX_BARS`] bars are
//! drawn (the latest ones past that; the section says how many were left out).
//! **Invariant:** every bar lies within the axis, and trials without both times (stored
//! before times were kept, or never started) are counted, never drawn.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use super::axis::{Axis, Scale};
use super::svg::Plot;
use crate::trial::{Trial, TrialState};

/// The most bars drawn.
pub const MAX_BARS: usize = 2000;

/// The colour of a bar by the trial's state.
fn colour(state: TrialState) -> &'static str {
    match state {
        TrialState::Complete => "#4878d0",
        TrialState::Pruned => "#e0a040",
        TrialState::Failed | TrialState::Infeasible => "#d65f5f",
        TrialState::Running | TrialState::Queued => "#9aa9c6",
    }
}

/// Each timed trial's lane: the lowest lane free when it starts. Gives `(trial index,
/// lane)` in start order, and the number of lanes.
pub fn lanes(spans: &[(f64, f64)]) -> (Vec<(usize, usize)>, usize) {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| spans[a].0.total_cmp(&spans[b].0).then(a.cmp(&b)));
    // Busy lanes by the time they free up; free lanes, lowest first.
    let mut busy: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut free: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
    let mut count = 0;
    let mut out = Vec::with_capacity(spans.len());
    for i in order {
        let (start, end) = spans[i];
        // A lane whose trial ended at or before this start is free again.
        while let Some(Reverse((t, lane))) = busy.peek().copied() {
            if f64::from_bits(t) > start {
                break;
            }
            busy.pop();
            free.push(Reverse(lane));
        }
        let lane = match free.pop() {
            Some(Reverse(l)) => l,
            None => {
                count += 1;
                count - 1
            }
        };
        // Non-negative finite floats order as their bits.
        busy.push(Reverse((end.max(0.0).to_bits(), lane)));
        out.push((i, lane));
    }
    (out, count)
}

/// The timeline section's HTML.
pub fn section(trials: &[Trial], tip: &dyn Fn(&Trial) -> String) -> String {
    let timed: Vec<&Trial> = trials
        .iter()
        .filter(|t| matches!((t.started, t.finished), (Some(s), Some(f)) if s.is_finite() && f.is_finite() && f >= s))
        .collect();
    if timed.is_empty() {
        return "<p class=\"note\">No trial has recorded start and end times yet.</p>".into();
    }
    let t0 = timed.iter().filter_map(|t| t.started).fold(f64::INFINITY, f64::min);
    let spans: Vec<(f64, f64)> =
        timed.iter().map(|t| (t.started.unwrap_or(t0) - t0, t.finished.unwrap_or(t0) - t0)).collect();
    let (placed, n_lanes) = lanes(&spans);
    let end = spans.iter().map(|s| s.1).fold(0.0, f64::max);
    let x = Axis::fit([0.0, end.max(1e-3)].into_iter(), Scale::Linear { integer: false });
    let names: Vec<String> = (0..n_lanes).map(|l| format!("slot {}", l + 1)).collect();
    let y = Axis::fit(std::iter::empty(), Scale::Categorical(names));
    let height = (60 + 22 * n_lanes.min(40)) as u32;
    let mut plot = Plot::new(720, height.max(140), "Trials over time", ("seconds since the first start", x), ("", y));
    let skip = placed.len().saturating_sub(MAX_BARS);
    // The latest bars: the end of a long study is what a live page is watched for.
    let mut shown: Vec<&(usize, usize)> = placed.iter().collect();
    shown.sort_by(|a, b| spans[a.0].0.total_cmp(&spans[b.0].0));
    for &&(i, lane) in shown.iter().skip(skip) {
        let (s, f) = spans[i];
        let t = timed[i];
        let tip = format!("{}\nstarted at {:.1} s, ran {:.1} s", tip(t), s, f - s);
        // A bar at least visible: a reused or instant trial still shows.
        let f = f.max(s + end.max(1e-3) * 0.002);
        plot.cell((s, f), (lane as f64 - 0.35, lane as f64 + 0.35), colour(t.state), &tip);
    }
    let mut h = plot.finish();
    let untimed = trials.len() - timed.len();
    let mut notes = Vec::new();
    if skip > 0 {
        notes.push(format!("the {} latest of {} trials drawn", MAX_BARS, placed.len()));
    }
    if untimed > 0 {
        notes.push(format!("{untimed} trial(s) without recorded times not drawn"));
    }
    if !notes.is_empty() {
        let _ = write!(h, "<p class=\"note\">{}.</p>", notes.join("; "));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_reuse_the_lowest_free_slot() {
        // Two at once, then a third after the first ends, then a fourth overlapping all.
        let spans = [(0.0, 2.0), (0.5, 3.0), (2.0, 4.0), (2.5, 5.0)];
        let (placed, n) = lanes(&spans);
        assert_eq!(n, 3);
        let lane = |i: usize| placed.iter().find(|p| p.0 == i).map(|p| p.1);
        assert_eq!(lane(0), Some(0));
        assert_eq!(lane(1), Some(1));
        assert_eq!(lane(2), Some(0), "the first slot is free at 2.0");
        assert_eq!(lane(3), Some(2));
    }

    #[test]
    fn sequential_trials_share_one_lane() {
        let spans: Vec<(f64, f64)> = (0..50).map(|i| (f64::from(i), f64::from(i) + 1.0)).collect();
        let (placed, n) = lanes(&spans);
        assert_eq!(n, 1);
        assert!(placed.iter().all(|p| p.1 == 0));
    }

    #[test]
    fn untimed_trials_are_counted_not_drawn() {
        let mut a = Trial::new(0, Default::default(), 0);
        a.state = TrialState::Complete;
        a.started = Some(100.0);
        a.finished = Some(101.5);
        let b = Trial::new(1, Default::default(), 0);
        let h = section(&[a, b], &|t| format!("trial #{}", t.number));
        assert_eq!(h.matches("<rect class=\"cell\"").count(), 1, "{h}");
        assert!(h.contains("trial #0\nstarted at 0.0 s, ran 1.5 s"), "{h}");
        assert!(h.contains("1 trial(s) without recorded times not drawn"), "{h}");
    }
}
