//! The report's architecture-weights section (`strategy = darts`): for each decision the
//! DARTS phase chose, softmax(α) of every choice per epoch (epoch 0 the uniform start),
//! read from the read-off trial's metrics (`train::darts::trajectories`).
//!
//! Takes the study's trials and their tooltips; gives the section's HTML, or `None` when no
//! trial carries architecture weights (the section is then left out). One plot per decision,
//! one line per choice, at most [`MAX_MARKS`] points each, the chosen value (the read-off
//! trial's) named in the legend.
//!
//! **Invariant:** only finite weights are drawn; the y axis is `0..1`.

use std::fmt::Write as _;

use super::axis::{Axis, Scale};
use super::svg::{MAX_MARKS, Plot, esc};
use crate::train::darts;
use crate::trial::Trial;

const COLOURS: [&str; 8] = ["#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c", "#dc7ec0", "#797979"];

/// The section for `trials` (the first trial with architecture weights is drawn).
pub(super) fn section(trials: &[Trial], tip: &dyn Fn(&Trial) -> String) -> Option<String> {
    let (trial, decisions) = trials.iter().find_map(|t| {
        let d = darts::trajectories(&t.metrics);
        (!d.is_empty()).then_some((t, d))
    })?;
    let mut s = String::new();
    let _ = write!(
        s,
        "<p class=\"muted\">The architecture weights softmax(α) of the DARTS supernet after each epoch \
         (0: the uniform start); trial {} is the read-off sub-model, retrained from scratch.</p>",
        trial.number
    );
    for d in &decisions {
        let chosen = trial.params.get(&d.decision).map(ToString::to_string).unwrap_or_default();
        let x = Axis::fit(
            d.lines.iter().flat_map(|(_, pts)| pts.iter().map(|p| f64::from(p.0))),
            Scale::Linear { integer: true },
        );
        let y = Axis::fit([0.0, 1.0].into_iter(), Scale::Linear { integer: false });
        let title = format!("`{}`: architecture weight per epoch", d.decision);
        let mut plot = Plot::new(700, 300, &title, ("epoch", x), ("weight", y));
        let mut legend = String::new();
        for (i, (value, pts)) in d.lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> =
                pts.iter().filter(|p| p.1.is_finite()).map(|&(e, w)| (f64::from(e), w)).collect();
            let every = pts.len().div_ceil(MAX_MARKS).max(1);
            let mut shown: Vec<(f64, f64)> = pts.iter().step_by(every).copied().collect();
            if let Some(last) = pts.last()
                && shown.last() != Some(last)
            {
                shown.push(*last);
            }
            let last = pts.last().map(|p| p.1).unwrap_or(f64::NAN);
            let label = format!("{} = {value}: final weight {last:.3}", d.decision);
            plot.line(&shown, "curve arch", colour, Some(&format!("{}\n{label}", tip(trial))));
            let mark = if *value == chosen { " (chosen)" } else { "" };
            let _ = write!(legend, "<span style=\"color:{colour}\">■</span> {}{mark} ", esc(value));
        }
        s.push_str(&plot.finish());
        let _ = write!(s, "<p>{legend}</p>");
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Point, Value};
    use crate::trial::TrialState;

    #[test]
    fn the_section_draws_each_choice_and_names_the_chosen_one() {
        let mut t = Trial::new(1, Point::from([("act".to_string(), Value::sym("tanh"))]), 1);
        t.state = TrialState::Complete;
        for (e, w) in [0.5, 0.4, 0.2].iter().enumerate() {
            t.metrics.insert(format!("{}act@{e}@relu", darts::PREFIX), *w);
            t.metrics.insert(format!("{}act@{e}@tanh", darts::PREFIX), 1.0 - w);
        }
        t.metrics.insert(format!("{}act", darts::EPOCHS_PREFIX), 2.0);
        let html = section(std::slice::from_ref(&t), &|_| String::new()).expect("a section");
        assert!(html.contains("tanh (chosen)"), "{html}");
        assert!(html.contains("act = relu: final weight 0.200"), "{html}");
        assert_eq!(html.matches("<svg").count(), 1, "one plot per decision");
        let plain = Trial::new(2, Point::new(), 2);
        assert_eq!(section(&[plain], &|_| String::new()), None);
    }
}
