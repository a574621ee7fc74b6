use super::*;
use crate::ir::Point;

fn trial(n: u64, state: TrialState, lr: f64, kind: &str, values: Vec<f64>, steps: Vec<(u32, f64)>) -> Trial {
    let mut p = Point::new();
    p.insert("lr".into(), Value::Float(lr));
    p.insert("kind".into(), Value::sym(kind));
    let mut t = Trial::new(n, p, n);
    t.state = state;
    t.values = values;
    t.steps = steps;
    t
}

fn data(objectives: usize) -> ReportData {
    let mut trials = Vec::new();
    for n in 0..12u64 {
        let lr = 1e-4 * 10f64.powf(n as f64 / 4.0);
        let acc = 0.5 + 0.04 * n as f64 - if n % 3 == 0 { 0.1 } else { 0.0 };
        let state = if n == 5 {
            TrialState::Pruned
        } else if n == 7 {
            TrialState::Failed
        } else {
            TrialState::Complete
        };
        let values =
            if state == TrialState::Complete { vec![acc, 10.0 + n as f64][..objectives].to_vec() } else { vec![] };
        let steps =
            if state == TrialState::Failed { vec![] } else { (1..=4).map(|e| (e, acc * f64::from(e) / 4.0)).collect() };
        trials.push(trial(n, state, lr, if n % 2 == 0 { "mlp" } else { "cnn" }, values, steps));
    }
    let objectives = vec![("accuracy".to_string(), Direction::Maximize), ("latency".to_string(), Direction::Minimize)]
        [..objectives]
        .to_vec();
    ReportData::new("digits", &trials, objectives, None)
}

fn count(h: &str, needle: &str) -> usize {
    h.matches(needle).count()
}

#[test]
fn history_has_one_point_per_complete_trial_and_a_best_so_far_path() {
    let d = data(1);
    let h = render(&d);
    assert_eq!(count(&h, "<circle class=\"pt\""), 10);
    assert_eq!(count(&h, "<path class=\"best\""), 1);
    // The best so far only goes up for a maximised objective: its V steps never go down the page.
    let best = h.split("<path class=\"best\" d=\"").nth(1).expect("best path").split('"').next().expect("d");
    let ys: Vec<f64> = best.split(['V', 'M', ',']).filter_map(|s| s.split_whitespace().next()?.parse().ok()).collect();
    assert!(ys.len() > 2);
    assert!(!h.contains("Pareto front"), "one objective has no front");
    assert!(!h.contains("http://") || !h.contains("<script"), "no script");
    assert!(!h.contains("<script"));
    assert!(!h.contains("src=\"http"));
}

#[test]
fn parallel_coordinates_draw_one_line_per_complete_trial_and_one_axis_per_parameter_and_objective() {
    let h = render(&data(1));
    assert_eq!(count(&h, "<path class=\"trial\""), 10);
    assert_eq!(count(&h, "<line class=\"axis\""), 3);
}

#[test]
fn learning_curves_include_pruned_trials() {
    let h = render(&data(1));
    assert_eq!(count(&h, "<path class=\"curve\""), 10);
    assert_eq!(count(&h, "<path class=\"curve pruned\""), 1);
}

#[test]
fn two_objectives_draw_a_pareto_front_of_non_dominated_trials() {
    let h = render(&data(2));
    assert!(h.contains("Pareto front"));
    // accuracy up and latency up with n (except every third): the front is those not dominated.
    let fronts = count(&h, "<circle class=\"front\"");
    let d = data(2);
    let complete = d.complete();
    let losses: Vec<Vec<f64>> = complete.iter().map(|t| vec![-t.values[0], t.values[1]]).collect();
    assert_eq!(fronts, front(&losses).len());
    assert!(fronts >= 1 && fronts < complete.len());
    assert_eq!(count(&h, "<path class=\"frontline\""), 1);
}

#[test]
fn three_objectives_draw_every_pair() {
    let mut d = data(2);
    d.objectives.push(("params".into(), Direction::Minimize));
    for t in &mut d.trials {
        if !t.values.is_empty() {
            t.values.push(t.number as f64 * 3.0 % 7.0);
        }
    }
    let h = render(&d);
    assert_eq!(count(&h, "<path class=\"frontline\""), 3);
}

#[test]
fn importance_finds_the_parameter_the_objective_follows() {
    let mut trials = Vec::new();
    for n in 0..40u64 {
        let lr = 1e-4 * 10f64.powf((n * 7 % 40) as f64 / 10.0);
        let kind = if n % 2 == 0 { "mlp" } else { "cnn" };
        trials.push(trial(n, TrialState::Complete, lr, kind, vec![lr.log10()], vec![]));
    }
    let d = ReportData::new("t", &trials, vec![("loss".into(), Direction::Minimize)], None);
    let imp = d.importances();
    assert_eq!(imp[0].0, "lr", "{imp:?}");
    assert!(imp[0].1 > 0.9, "{imp:?}");
    let h = render(&d);
    assert_eq!(count(&h, "<rect class=\"bar\""), 2);
}

#[test]
fn the_final_model_table_shows_final_and_best_single() {
    let mut d = data(1);
    let m = |a: f64| crate::train::Metrics::from([("accuracy".to_string(), a), ("loss".to_string(), 0.3)]);
    d.final_model = Some(FinalSummary {
        method: "ensemble(top: 3, weights: bayes)".into(),
        members: vec![crate::final_model::MemberWeight { trials: vec![3], weight: 1.0 }],
        excluded: vec![crate::final_model::ExcludedTrial { trial: 4, reason: "another architecture <x>".into() }],
        swa: None,
        best_single: 3,
        final_valid: m(0.9),
        final_test: m(0.91),
        single_valid: m(0.88),
        single_test: m(0.87),
        dir: "runs/x/final".into(),
    });
    let h = render(&d);
    assert!(h.contains("<table id=\"final\""));
    assert!(h.contains("best single (#3)"));
    assert!(h.contains("0.9100") && h.contains("0.8700"));
    assert!(h.contains("another architecture &lt;x&gt;"));
}

#[test]
fn no_trials_still_renders() {
    let d = ReportData::new("empty", &[], vec![("accuracy".into(), Direction::Maximize)], None);
    let h = render(&d);
    assert!(h.contains("<html") && h.ends_with("</html>\n"));
}
