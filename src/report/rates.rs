//! The report's learning-rate section: the rate each trial's hypergradient adapted, per
//! epoch (`train::hypergradient::trajectory`), one line per trial.
//!
//! Takes the trials best first and their tooltips; gives the section's HTML, or `None` when
//! no trial adapted its rate (the section is then left out). At most [`MAX_CURVES`] lines
//! (the best trials), at most [`MAX_MARKS`] points each; a log axis when every rate is
//! positive, linear otherwise (an adapted rate may go below zero).
//!
//! **Invariant:** only finite values are drawn.

use std::fmt::Write as _;

use super::MAX_CURVES;
use super::axis::{Axis, Scale};
use super::svg::{MAX_MARKS, Plot};
use crate::train::hypergradient;
use crate::trial::Trial;

const GREEN: &str = "#3a9a5b";

/// The section's plot and note, for `ranked` (best first).
pub(super) fn section(ranked: &[&Trial], tip: &dyn Fn(&Trial) -> String) -> Option<String> {
    let curves: Vec<(&Trial, Vec<(f64, f64)>)> = ranked
        .iter()
        .map(|t| {
            let pts = hypergradient::trajectory(&t.metrics)
                .into_iter()
                .map(|(e, v)| (f64::from(e), v))
                .filter(|(_, v)| v.is_finite())
                .collect::<Vec<_>>();
            (*t, pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    if curves.is_empty() {
        return None;
    }
    let drawn = &curves[..curves.len().min(MAX_CURVES)];
    let values = || drawn.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.1));
    let scale = if values().all(|v| v > 0.0) { Scale::Log } else { Scale::Linear { integer: false } };
    let x = Axis::fit(drawn.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.0)), Scale::Linear { integer: true });
    let y = Axis::fit(values(), scale);
    let mut s = String::new();
    let _ = write!(
        s,
        "<p class=\"muted\">The learning rate that hypergradient descent adapted, at the end of each epoch: \
         {} trial(s){}.</p>",
        curves.len(),
        if drawn.len() < curves.len() { format!(", the {} best drawn", drawn.len()) } else { String::new() }
    );
    let mut plot = Plot::new(700, 300, "adapted learning rate per epoch", ("epoch", x), ("lr", y));
    for (t, pts) in drawn.iter().rev() {
        let every = pts.len().div_ceil(MAX_MARKS).max(1);
        let mut shown: Vec<(f64, f64)> = pts.iter().step_by(every).copied().collect();
        if let Some(last) = pts.last()
            && shown.last() != Some(last)
        {
            shown.push(*last);
        }
        let final_lr = t.metrics.get(hypergradient::FINAL).copied().unwrap_or(f64::NAN);
        plot.line(&shown, "curve rate", GREEN, Some(&format!("{}\nfinal lr = {final_lr}", tip(t))));
    }
    s.push_str(&plot.finish());
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::super::{ReportData, render};
    use crate::ir::{Point, Value};
    use crate::train::hypergradient::{EPOCH_PREFIX, FINAL};
    use crate::trial::{Direction, Trial, TrialState};

    /// Trial `n` with accuracy `acc` and, when `rates` is not empty, those adapted rates.
    fn trial(n: u64, acc: f64, rates: &[f64]) -> Trial {
        let mut t = Trial::new(n, Point::from([("lr".to_string(), Value::Float(0.01))]), n);
        t.state = TrialState::Complete;
        t.values = vec![acc];
        for (e, r) in rates.iter().enumerate() {
            t.metrics.insert(format!("{EPOCH_PREFIX}{}", e + 1), *r);
        }
        if let Some(last) = rates.last() {
            t.metrics.insert(FINAL.into(), *last);
        }
        t
    }

    fn report(trials: &[Trial]) -> String {
        render(&ReportData::new("t", trials, vec![("accuracy".into(), Direction::Maximize)], None))
    }

    /// One line per trial that adapted its rate, one vertex per epoch, the final rate in its
    /// tooltip; none, and no section, when no trial did.
    #[test]
    fn each_adapting_trial_draws_its_rate_per_epoch() {
        let h = report(&[trial(0, 0.9, &[1e-3, 4e-3, 9e-3]), trial(1, 0.8, &[]), trial(2, 0.7, &[0.1, 0.05])]);
        assert!(h.contains("<h2>Learning rates (hypergradient)</h2>"));
        let paths: Vec<&str> = h.split("<path class=\"curve rate\"").skip(1).collect();
        assert_eq!(paths.len(), 2, "{h}");
        let vertices =
            |p: &str| p.split("d=\"").nth(1).map_or(0, |d| d.split('"').next().unwrap_or("").matches(',').count());
        let mut counts: Vec<usize> = paths.iter().map(|p| vertices(p)).collect();
        counts.sort_unstable();
        assert_eq!(counts, [2, 3]);
        assert!(h.contains("final lr = 0.009"), "the final rate is in the tooltip");
        let none = report(&[trial(0, 0.9, &[]), trial(1, 0.8, &[])]);
        assert!(!none.contains("Learning rates (hypergradient)"));
        assert!(!none.contains("curve rate"));
    }

    /// A rate below zero is drawn on a linear axis (a log axis would drop it).
    #[test]
    fn a_rate_below_zero_is_drawn() {
        let h = report(&[trial(0, 0.9, &[0.1, -0.02, 0.03])]);
        let path = h.split("<path class=\"curve rate\"").nth(1).expect("drawn");
        let d = path.split("d=\"").nth(1).and_then(|d| d.split('"').next()).expect("d");
        assert_eq!(d.matches(',').count(), 3, "{d}");
    }
}
