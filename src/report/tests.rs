use super::axis::{Axis, Scale, linear_ticks, log_ticks};
use super::sections::front;
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
    let history = h.split("<h2>Parallel coordinates</h2>").next().expect("history first");
    assert_eq!(count(history, "<circle class=\"pt\""), 10);
    assert_eq!(count(history, "<circle class=\"pt pruned\""), 1);
    assert_eq!(count(&h, "<path class=\"best\""), 1);
    // The best so far only goes up for a maximised objective: its V steps never go down the page.
    let best = h.split("<path class=\"best\" d=\"").nth(1).expect("best path").split('"').next().expect("d");
    let ys: Vec<f64> = best.split(['V', 'M', ',']).filter_map(|s| s.split_whitespace().next()?.parse().ok()).collect();
    assert!(ys.len() > 2);
    assert!(!h.contains("Pareto front"), "one objective has no front");
    // One inline script (table sorting) and nothing fetched.
    assert_eq!(count(&h, "<script"), 1);
    assert!(!h.contains("src=") && !h.contains("href="));
    assert_eq!(count(&h, "http://"), count(&h, "xmlns=\"http://www.w3.org/2000/svg\""));
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
    let losses: Vec<(f64, f64)> = complete.iter().map(|t| (-t.values[0], t.values[1])).collect();
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

/// Whether `v` is 1, 2 or 5 × 10^k.
fn one_two_five(v: f64) -> bool {
    let m = v / 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().any(|x| (m - x).abs() < 1e-6)
}

#[test]
fn linear_ticks_are_1_2_5_multiples_inside_the_range_labelled_with_the_digits_they_need() {
    // The axes: trial -0.05..1.05, epoch -0.45..9.45, values 32.529..41.818.
    let trial: Vec<(f64, String)> = linear_ticks(-0.05, 1.05, true);
    assert_eq!(trial, vec![(0.0, "0".to_string()), (1.0, "1".to_string())]);
    let epoch: Vec<String> = linear_ticks(-0.45, 9.45, true).into_iter().map(|t| t.1).collect();
    assert_eq!(epoch, ["0", "2", "4", "6", "8"]);
    let values = linear_ticks(32.529, 41.818, false);
    assert_eq!(values.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["34", "36", "38", "40"]);
    for (lo, hi) in [(0.0, 1.0), (-0.0213, 0.0871), (1e-7, 3e-7), (12_345.0, 98_765.0), (-5.0, -4.99)] {
        let t = linear_ticks(lo, hi, false);
        assert!(t.len() >= 2 && t.len() <= 11, "{lo}..{hi}: {t:?}");
        let step = t[1].0 - t[0].0;
        assert!(one_two_five(step), "{lo}..{hi}: step {step}");
        for (v, label) in &t {
            assert!(*v >= lo - step * 1e-6 && *v <= hi + step * 1e-6, "{v} outside {lo}..{hi}");
            let back: f64 = label.parse().expect("a label is a number");
            assert!((back - v).abs() <= step * 1e-6, "{label} for {v}");
            assert!(label != "-0");
        }
    }
}

#[test]
fn log_ticks_are_powers_of_ten_or_1_2_5_within_a_few_decades() {
    let wide: Vec<String> = log_ticks(1e-5, 0.1).into_iter().map(|t| t.1).collect();
    assert_eq!(wide, ["1e-5", "1e-4", "0.001", "0.01", "0.1"]);
    let narrow: Vec<String> = log_ticks(0.001, 0.05).into_iter().map(|t| t.1).collect();
    assert_eq!(narrow, ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05"]);
    let axis = Axis::fit([1e-4, 1e-2].into_iter(), Scale::Log);
    // Equal ratios sit at equal distances on a log axis.
    let (a, b, c) = (axis.unit(1e-4), axis.unit(1e-3), axis.unit(1e-2));
    assert!(((b - a) - (c - b)).abs() < 1e-9 && a < b && b < c);
    assert!((axis.at(b) - 1e-3).abs() < 1e-12);
}

#[test]
fn a_log_parameter_gets_a_log_axis_in_the_slices_and_the_parallel_coordinates() {
    let h = render(&data(1));
    // lr spans 1e-4..0.056: its slice's ticks are decades.
    let lr = h
        .split("<svg")
        .find(|s| s.contains("class=\"xtick\"") && s.contains("font-weight=\"bold\">lr</text>"))
        .expect("the lr slice");
    let ticks: Vec<&str> = lr.split("class=\"xtick\"").skip(1).filter_map(|s| s.split(['>', '<']).nth(1)).collect();
    assert_eq!(ticks, ["1e-4", "0.001", "0.01"]);
    assert!(h.contains("class=\"ptick\" ") && h.contains(">0.001</text>"));
}

#[test]
fn pruned_trials_are_rings_at_their_last_value_with_tooltips() {
    let h = render(&data(1));
    // The history and both slices show trial 5 (pruned), as a ring.
    assert_eq!(count(&h, "<circle class=\"pt pruned\""), 3);
    assert!(h.contains("<title>trial #5 (pruned)\naccuracy 0.7 at epoch 4"), "tooltip of the pruned trial");
    assert_eq!(count(&h, "<path class=\"trial pruned\""), 1);
    // Every circle and every parallel-coordinates line carries a tooltip naming its trial.
    for part in h.split("<circle ").skip(1).chain(h.split("<path class=\"trial").skip(1)) {
        let inner = part.split_once('>').expect("closed").1;
        let title = inner.split("</title>").next().expect("a title");
        assert!(title.starts_with("<title>trial #"), "{}", &part[..80.min(part.len())]);
        assert!(title.contains("\nlr = ") && title.contains("\nkind = "), "parameters in {title}");
    }
}

#[test]
fn failed_trials_are_listed_with_their_reasons_in_a_sortable_table() {
    let mut d = data(1);
    d.trials[7].error = Some("loss became NaN <at epoch 2>".into());
    d.trials[7].failure = Some(crate::trial::FailKind::Error);
    let h = render(&d);
    let table = h.split("<table id=\"failed\" class=\"sortable\">").nth(1).expect("failed table");
    let table = table.split("</table>").next().expect("closed");
    assert_eq!(count(table, "<tr>"), 2, "a heading and one failed trial");
    assert!(
        table.contains(
            "<td>7</td><td class=\"text\">error</td><td class=\"text\">loss became NaN &lt;at epoch 2&gt;</td>"
        )
    );
    assert!(h.contains("<table id=\"trials\" class=\"sortable\">") && h.contains("table.sortable th"));
}

#[test]
fn importance_and_plots_work_from_pruned_trials_when_few_complete() {
    // The digits example's shape: 2 complete trials, the rest pruned.
    let mut trials = Vec::new();
    for n in 0..30u64 {
        let lr = 1e-4 * 10f64.powf((n * 7 % 30) as f64 / 8.0);
        let acc = 0.9 - 0.1 * (lr.log10() + 2.5).abs();
        let state = if n < 2 { TrialState::Complete } else { TrialState::Pruned };
        let values = if n < 2 { vec![acc] } else { vec![] };
        trials.push(trial(
            n,
            state,
            lr,
            if n % 2 == 0 { "mlp" } else { "cnn" },
            values,
            vec![(1, acc / 2.0), (2, acc)],
        ));
    }
    let d = ReportData::new("digits", &trials, vec![("accuracy".into(), Direction::Maximize)], None);
    let imp = d.importance();
    assert_eq!((imp.trials, imp.fitted), (30, 30));
    assert_eq!(imp.by_param[0].0, "lr", "{imp:?}");
    let h = render(&d);
    assert!(h.contains("fitted to the 30 complete and pruned trials"));
    assert_eq!(count(&h, "<rect class=\"bar\""), 2);
    assert_eq!(count(&h, "<path class=\"trial pruned\""), 28);
    assert!(count(&h, "<rect class=\"cell\"") >= 4, "the map of lr and kind has cells");
}

#[test]
fn the_best_so_far_runs_to_the_last_trial_of_any_state() {
    let mut d = data(1);
    let mut t = d.trials[7].clone();
    t.number = 40;
    d.trials.push(t);
    let h = render(&d);
    let best = h.split("<path class=\"best\" d=\"").nth(1).expect("best").split('"').next().expect("d");
    // The trial axis ends at 40 (+5%): the path's last point is trial 40, right of every point.
    let end: f64 = best.rsplit('H').next().and_then(|s| s.trim().parse().ok()).expect("ends with H x");
    let max_cx = h
        .split("<circle class=\"pt\" cx=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse::<f64>().ok())
        .fold(0.0, f64::max);
    assert!(end > max_cx + 100.0, "{end} vs {max_cx}");
}

#[test]
fn the_front_sweep_matches_the_definition_with_ties() {
    let mut rng = crate::rng::Rng::new(9);
    for _ in 0..30 {
        let pts: Vec<(f64, f64)> = (0..40).map(|_| ((rng.below(8)) as f64, (rng.below(8)) as f64)).collect();
        let brute: Vec<usize> = (0..pts.len())
            .filter(|&i| !pts.iter().any(|o| o.0 <= pts[i].0 && o.1 <= pts[i].1 && (o.0 < pts[i].0 || o.1 < pts[i].1)))
            .collect();
        assert_eq!(front(&pts), brute);
    }
}

#[test]
fn a_large_study_draws_a_bounded_number_of_marks() {
    let mut trials = Vec::new();
    let mut rng = crate::rng::Rng::new(5);
    for n in 0..6000u64 {
        let lr = 10f64.powf(rng.uniform(-5.0, -1.0));
        let pruned = n % 3 == 0;
        let acc = 0.9 - 0.02 * (lr.log10() + 3.0).powi(2) + 0.01 * rng.normal();
        let steps = (1..=if pruned { 3 } else { 10 }).map(|e| (e, acc * f64::from(e) / 10.0)).collect();
        let state = if pruned { TrialState::Pruned } else { TrialState::Complete };
        let values = if pruned { vec![] } else { vec![acc] };
        trials.push(trial(n, state, lr, ["a", "b", "c"][n as usize % 3], values, steps));
    }
    let d = ReportData::new("big", &trials, vec![("accuracy".into(), Direction::Maximize)], None);
    let h = render(&d);
    for svg in h.split("<svg").skip(1) {
        // Complete and pruned points are binned separately.
        assert!(count(svg, "<circle") <= 2 * svg::MAX_MARKS);
    }
    assert!(count(&h, "<path class=\"curve") <= MAX_CURVES);
    assert!(count(&h, "<path class=\"trial") <= MAX_LINES);
    assert!(h.contains("100 of 6000 curves drawn") && h.contains("300 of 6000 trials drawn"));
    assert!(h.contains("(a subsample of 1000 of them, drawn with a fixed seed)"));
    assert!(h.contains("more trials here)</title>"), "binned marks say how many they stand for");
    assert!(h.len() < 3_000_000, "{} bytes", h.len());
}

#[test]
fn a_live_report_refreshes_itself_and_the_final_one_does_not() {
    let d = data(1);
    let live = render_with(&d, &Options { refresh: Some(5) });
    assert!(live.contains("<meta http-equiv=\"refresh\" content=\"5\">") && live.contains("id=\"live\""));
    assert!(!render(&d).contains("http-equiv"));
    let dir = std::env::temp_dir().join(format!("bma-live-{}", std::process::id()));
    let path = dir.join("report.html");
    let mut writer = live::Live::new(&path);
    writer.every = std::time::Duration::from_secs(3600);
    assert!(writer.update(|| d.clone()).expect("writes"));
    assert!(std::fs::read_to_string(&path).expect("written").contains("http-equiv=\"refresh\""));
    // Within `every` of the last write nothing is written and the data is not even built.
    assert!(!writer.update(|| unreachable!("not due")).expect("no write"));
    write(&path, &d).expect("the final write");
    assert!(!std::fs::read_to_string(&path).expect("written").contains("http-equiv"));
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

#[test]
fn the_live_observer_writes_on_a_finished_trial_passes_every_event_on_and_finishes_without_refresh() {
    use crate::search::study::{Event, Observer as _};
    use crate::trial::{History, Rank};
    struct Count(std::sync::atomic::AtomicUsize);
    impl crate::search::study::Observer for Count {
        fn event(&self, _event: Event<'_>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let dir = std::env::temp_dir().join(format!("bma-live-observer-{}", std::process::id()));
    let path = dir.join("report.html");
    let inner = Count(std::sync::atomic::AtomicUsize::new(0));
    let objectives = vec![("accuracy".to_string(), Direction::Maximize)];
    let observer = live::Observer::new(&inner, &path, "digits", objectives);
    let mut history = History::new(vec![Direction::Maximize], Rank::default());
    history.trials = data(1).trials;
    observer.event(Event::Step { number: 0, step: 1, value: Some(0.5) });
    assert!(!path.exists(), "only a finished trial writes");
    observer.event(Event::Finished { trial: &history.trials[0], history: &history });
    let html = std::fs::read_to_string(&path).expect("the live report");
    assert!(html.contains("http-equiv=\"refresh\"") && html.contains("12 trials: 10 complete, 1 pruned, 1 failed"));
    assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 2, "both events passed on");
    observer.finish().expect("rewrites");
    let html = std::fs::read_to_string(&path).expect("the report");
    assert!(!html.contains("http-equiv") && html.contains("12 trials"));
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
