//! The report's timeline: one bar per trial from its start to its end, on the lane
//! (slot) it ran in, coloured by its final state, like Optuna's timeline plot.
//!
//! Takes the trials with their wall-clock `started` and `finished` times (seconds since
//! 1970, as the store records them) and the worker that ran each; gives an SVG section. Lanes are the slots the
//! trials needed: each trial goes on the lowest lane free at its start (interval
//! partitioning), so `parallel = 4` shows four lanes; in a shared study each worker
//! (as the store recorded it, [`Trial::worker`]) gets its own group of lanes, so a lane
//! is one slot of one worker. Cost O(n log n) for the sort and the lane heap; at most [`MAX_BARS`] bars are
//! drawn (the latest ones past that; the section says how many were left out).
//! **Invariant:** every bar lies within the axis, and trials without both times (stored
//! before times were kept, or never started) are counted, never drawn.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use super::axis::{Axis, Scale};
use super::svg::{Plot, esc};
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

/// A worker's group of lanes: the worker (`None`: not recorded) and how many lanes.
pub type Group = (Option<String>, usize);

/// Each timed trial's row: its worker's group of lanes, then the lowest lane of that
/// group free at its start. `workers[i]` is trial `i`'s worker (`None`: not recorded,
/// one group of its own); groups come in the order of their first start. Gives `(trial
/// index, row)` and, per group, its worker and its number of lanes (rows are numbered
/// through the groups in order).
pub fn rows(spans: &[(f64, f64)], workers: &[Option<&str>]) -> (Vec<(usize, usize)>, Vec<Group>) {
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| spans[a].0.total_cmp(&spans[b].0).then(a.cmp(&b)));
    let mut index: std::collections::HashMap<Option<&str>, usize> = std::collections::HashMap::new();
    for i in order {
        let w = workers.get(i).copied().flatten();
        let g = *index.entry(w).or_insert_with(|| {
            groups.push((w, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut summary = Vec::with_capacity(groups.len());
    let mut offset = 0;
    for (worker, members) in groups {
        let own: Vec<(f64, f64)> = members.iter().map(|&i| spans[i]).collect();
        let (placed, n) = lanes(&own);
        out.extend(placed.into_iter().map(|(j, lane)| (members[j], offset + lane)));
        summary.push((worker.map(str::to_string), n));
        offset += n;
    }
    (out, summary)
}

/// The timeline section's HTML: with one worker, a lane per slot; with several (a shared
/// study), each worker's slots together, named `w1 s1`, `w1 s2`, `w2 s1`, ... and listed
/// under the plot with their worker ids.
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
    let workers: Vec<Option<&str>> = timed.iter().map(|t| t.worker.as_deref()).collect();
    let (placed, groups) = rows(&spans, &workers);
    let n_lanes: usize = groups.iter().map(|g| g.1).sum();
    let mut names: Vec<String> = Vec::with_capacity(n_lanes);
    // Each row's worker and slot, for the tooltips.
    let mut lane_of: Vec<(Option<&str>, usize)> = Vec::with_capacity(n_lanes);
    for (g, (worker, n)) in groups.iter().enumerate() {
        for l in 0..*n {
            names.push(if groups.len() == 1 { format!("slot {}", l + 1) } else { format!("w{} s{}", g + 1, l + 1) });
            lane_of.push((worker.as_deref(), l + 1));
        }
    }
    let end = spans.iter().map(|s| s.1).fold(0.0, f64::max);
    let x = Axis::fit([0.0, end.max(1e-3)].into_iter(), Scale::Linear { integer: false });
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
        let place = match lane_of.get(lane) {
            Some((Some(w), slot)) => format!("\nworker {w}, slot {slot}"),
            Some((None, slot)) => format!("\nslot {slot}"),
            None => String::new(),
        };
        let tip = format!("{}\nstarted at {:.1} s, ran {:.1} s{place}", tip(t), s, f - s);
        // A bar at least visible: a reused or instant trial still shows.
        let f = f.max(s + end.max(1e-3) * 0.002);
        plot.cell((s, f), (lane as f64 - 0.35, lane as f64 + 0.35), colour(t.state), &tip);
    }
    let mut h = plot.finish();
    let counts: std::collections::HashMap<Option<&str>, usize> =
        workers.iter().fold(std::collections::HashMap::new(), |mut m, w| {
            *m.entry(*w).or_default() += 1;
            m
        });
    let who = |w: &Option<String>| match w {
        Some(w) => format!("<code>{}</code>", esc(w)),
        None => "not recorded".to_string(),
    };
    match groups.as_slice() {
        [(Some(w), _)] => {
            let _ = write!(h, "<p class=\"note workers\">Worker: {}.</p>", who(&Some(w.clone())));
        }
        [_] => {}
        _ => {
            let list: Vec<String> = groups
                .iter()
                .enumerate()
                .map(|(g, (w, n))| {
                    let trials = counts.get(&w.as_deref()).copied().unwrap_or(0);
                    let s = |k: usize| if k == 1 { "" } else { "s" };
                    format!("w{} = {} ({trials} trial{}, {n} slot{})", g + 1, who(w), s(trials), s(*n))
                })
                .collect();
            let _ = write!(h, "<p class=\"note workers\">Workers: {}.</p>", list.join("; "));
        }
    }
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

    fn timed(number: u64, start: f64, end: f64, worker: Option<&str>) -> Trial {
        let mut t = Trial::new(number, Default::default(), 0);
        t.state = TrialState::Complete;
        t.started = Some(start);
        t.finished = Some(end);
        t.worker = worker.map(str::to_string);
        t
    }

    #[test]
    fn each_worker_gets_its_own_lanes_in_the_order_it_started() {
        // Worker b starts first with two trials at once; a runs one, then another later.
        let spans = [(1.0, 3.0), (0.0, 2.0), (0.5, 4.0), (3.0, 5.0), (4.0, 6.0)];
        let workers = [Some("a"), Some("b"), Some("b"), Some("a"), Some("b")];
        let (placed, groups) = rows(&spans, &workers);
        assert_eq!(groups, vec![(Some("b".to_string()), 2), (Some("a".to_string()), 1)]);
        let row = |i: usize| placed.iter().find(|p| p.0 == i).map(|p| p.1);
        // b's rows are 0 and 1, a's row is 2.
        assert_eq!([row(1), row(2), row(4)], [Some(0), Some(1), Some(0)]);
        assert_eq!([row(0), row(3)], [Some(2), Some(2)]);
    }

    #[test]
    fn a_shared_study_names_workers_and_slots_on_the_lanes_and_tooltips() {
        let trials = [
            timed(0, 100.0, 102.0, Some("hostA:11:1")),
            timed(1, 100.5, 103.0, Some("hostB:22:2")),
            timed(2, 101.0, 104.0, Some("hostA:11:1")),
            timed(3, 103.0, 105.0, Some("hostB:22:2")),
            timed(4, 104.0, 106.0, None),
        ];
        let h = section(&trials, &|t| format!("trial #{}", t.number));
        for lane in ["w1 s1", "w1 s2", "w2 s1", "w3 s1"] {
            assert!(h.contains(&format!(">{lane}<")), "no lane {lane}: {h}");
        }
        assert!(!h.contains(">w2 s2<") && !h.contains(">slot 1<"), "{h}");
        assert!(h.contains("trial #2\nstarted at 1.0 s, ran 3.0 s\nworker hostA:11:1, slot 2"), "{h}");
        assert!(h.contains("trial #3\nstarted at 3.0 s, ran 2.0 s\nworker hostB:22:2, slot 1"), "{h}");
        assert!(h.contains("trial #4\nstarted at 4.0 s, ran 2.0 s\nslot 1<"), "{h}");
        assert!(
            h.contains(
                "Workers: w1 = <code>hostA:11:1</code> (2 trials, 2 slots); w2 = <code>hostB:22:2</code> \
                 (2 trials, 1 slot); w3 = not recorded (1 trial, 1 slot)."
            ),
            "{h}"
        );
    }

    #[test]
    fn one_worker_keeps_plain_slots_and_names_the_worker() {
        let trials = [timed(0, 0.0, 2.0, Some("h:1:2")), timed(1, 1.0, 3.0, Some("h:1:2"))];
        let h = section(&trials, &|t| format!("trial #{}", t.number));
        assert!(h.contains(">slot 1<") && h.contains(">slot 2<") && !h.contains("w1 s1"), "{h}");
        assert!(h.contains("Worker: <code>h:1:2</code>."), "{h}");
    }
}
