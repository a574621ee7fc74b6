use super::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn binary_auc_is_the_share_of_correctly_ordered_pairs_with_ties_halved() {
    // Ranks 1..4 of 0.1 (neg), 0.35 (pos), 0.4 (neg), 0.8 (pos): R+ = 2 + 4 = 6, P = N = 2,
    // AUC = (6 - 3) / 4 = 0.75 (scikit-learn's roc_auc_score example gives 0.75 too).
    assert_eq!(binary_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
    // Three tied scores share rank 2: R+ = 2 + 4 = 6, AUC = 0.75; by pairs, the tied
    // positive beats neither tied negative (2 x 0.5) and the 0.9 beats both (2): 3 / 4.
    assert_eq!(binary_auc(&[0.5, 0.5, 0.5, 0.9], &[false, true, false, true]), Some(0.75));
    assert_eq!(binary_auc(&[0.2, 0.9], &[true, false]), Some(0.0));
    // Without negatives (or positives) the curve does not exist.
    assert_eq!(binary_auc(&[0.2, 0.9], &[true, true]), None);
}

#[test]
fn log_loss_top_k_and_one_vs_rest_auc_match_hand_computed_values() {
    // Two classes: -(ln 0.9 + ln 0.8 + ln 0.3) / 3.
    let m = probability_metrics(&[vec![0.9, 0.1], vec![0.2, 0.8], vec![0.3, 0.7]], &[0, 1, 0]);
    assert!(close(m["log_loss"], -(0.9f64.ln() + 0.8f64.ln() + 0.3f64.ln()) / 3.0));
    // Scores of class 1: 0.1 (neg), 0.8 (pos), 0.7 (neg): the positive is above both.
    assert!(close(m["auc"], 1.0));
    assert!(close(m["top_k(1)"], 2.0 / 3.0) && close(m["top_k(2)"], 1.0));
    assert!(!m.contains_key("top_k(3)"));
    // Three classes; the true class ranks 1, 2 and 0 (classes strictly more probable).
    let probs = [vec![0.5, 0.3, 0.2], vec![0.2, 0.3, 0.5], vec![0.1, 0.6, 0.3]];
    let m = probability_metrics(&probs, &[1, 0, 1]);
    assert!(close(m["top_k(1)"], 1.0 / 3.0) && close(m["top_k(2)"], 2.0 / 3.0) && close(m["top_k(3)"], 1.0));
    // One vs rest: class 0 scores 0.5 (neg), 0.2 (pos), 0.1 (neg): 1 of 2 pairs, 0.5; class 1
    // scores 0.3 (pos), 0.3 (neg), 0.6 (pos): 1 + 0.5 of 2 pairs, 0.75; class 2 has no
    // positive and is left out: (0.5 + 0.75) / 2.
    assert!(close(m["auc"], 0.625));
    assert!(close(m["log_loss"], -(0.3f64.ln() + 0.2f64.ln() + 0.6f64.ln()) / 3.0));
    // A probability of 0 for the true class is clipped at 1e-15, not an infinite loss.
    let m = probability_metrics(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[1, 1]);
    assert!(close(m["log_loss"], -(1e-15f64.ln() + (1.0f64 - 1e-15).ln()) / 2.0));
}

#[test]
fn probabilities_come_from_the_head() {
    // One logit of 0: both classes 0.5; logits 0 and ln 3: softmax 1/4, 3/4.
    assert_eq!(probabilities(&[0.0], 1, Head::Logits), [vec![0.5, 0.5]]);
    let p = probabilities(&[0.0, 3f32.ln()], 2, Head::Logits);
    assert!((p[0][0] - 0.25).abs() < 1e-6 && (p[0][1] - 0.75).abs() < 1e-6, "{p:?}");
    // A sigmoid's probability is used as it is; probabilities renormalised to sum 1.
    assert!(close(probabilities(&[0.25], 1, Head::Sigmoid)[0][1], 0.25));
    assert_eq!(probabilities(&[1.0, 3.0], 2, Head::Softmax), [vec![0.25, 0.75]]);
}

#[test]
fn balanced_accuracy_is_the_mean_recall_over_present_classes() {
    // Recalls: class 0 1/1, class 1 2/3, class 2 1/1; class 3 absent and left out.
    let m = classification_metrics(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 2], 4);
    assert!(close(m["balanced_accuracy"], (1.0 + 2.0 / 3.0 + 1.0) / 3.0));
    assert!(close(m["balanced_accuracy"], m["recall"]));
}

#[test]
fn rmse_and_mape_match_hand_computed_values() {
    let m = regression_metrics(&[1.0, 2.0, 3.0], &[1.0, 2.0, 5.0]);
    assert!(close(m["rmse"], (4.0f64 / 3.0).sqrt()));
    // |0|/1 + |0|/2 + |3 - 5|/5 over three rows.
    assert!(close(m["mape"], 0.4 / 3.0));
    // A zero target is left out of mape: only |2 - 4| / 4 counts.
    let m = regression_metrics(&[1.0, 2.0], &[0.0, 4.0]);
    assert!(close(m["mape"], 0.5));
    assert!(!regression_metrics(&[1.0, 2.0], &[0.0, 0.0]).contains_key("mape"));
}

#[test]
fn regression_metrics_are_in_the_targets_units_and_the_loss_on_the_scaled_target() {
    // Trained on (y - 100) / 10: outputs 110 and 90 against targets of 100 are errors of
    // 10 (mse 100) in the target's units, and of 1 (mse loss 1) in the network's.
    let scale = TargetScale { mean: 100.0, std: 10.0 };
    let m = evaluate(&[110.0, 90.0], 1, &[100.0, 100.0], Loss::Mse, Head::Logits, false, scale);
    assert!(close(m["mse"], 100.0) && close(m["rmse"], 10.0) && close(m["mae"], 10.0));
    assert!(close(m["loss"], 1.0), "{m:?}");
    assert!(close(m["mape"], 0.1));
}

/// `n` rows of `a,b,c,price`: price = 1e5 + 2e4·a − 1.5e4·b + 5e3·c + noise (sd 2e3), a, b,
/// c uniform in [0, 10): a least-squares line explains about 99% of its variance.
fn house_prices(n: usize) -> String {
    let mut rng = crate::rng::Rng::new(16);
    let mut s = String::from("a,b,c,price\n");
    for _ in 0..n {
        let (a, b, c) = (rng.uniform(0.0, 10.0), rng.uniform(0.0, 10.0), rng.uniform(0.0, 10.0));
        let y = 1e5 + 2e4 * a - 1.5e4 * b + 5e3 * c + 2e3 * rng.normal();
        s += &format!("{a:.3},{b:.3},{c:.3},{y:.1}\n");
    }
    s
}

/// A small network trained on `prices.csv` in `dir` (a regression, split with seed 4); the
/// dataset and the test r², with the target standardised or, without `scaled`, raw.
fn test_r2(dir: &std::path::Path, scaled: bool) -> (crate::data::Dataset, crate::train::Model, f64) {
    use crate::train::{Control, DeviceKind, TrainConfig, fit};
    let path = dir.join("prices.csv");
    let src = format!(
        "experiment t {{\n data = csv(\"{}\", task: regression, seed: 4)\n model {{ dense(32) relu dense(1) }}\n \
         train {{ epochs = 60  optimizer = adam(0.01)  batch = 32  seed = 1 }}\n objective {{ maximize r2 }}\n}}\n",
        path.display()
    );
    let compiled = crate::compile(&crate::source::Source::new("t.bma", &src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) =
        crate::pins::expand_with_pins(&compiled, exp, &std::collections::BTreeMap::new()).expect("expands");
    let env = crate::ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let value = crate::ir::eval(&exp.data.as_ref().expect("data").value, &env).expect("data value");
    let mut data = crate::data::load(&value, dir).expect("loads");
    if !scaled {
        data.target = TargetScale::default();
    }
    let cfg = TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 1).expect("config");
    let outcome = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    let model = outcome.model.expect("trains");
    let r2 = model.evaluate(&data.test, &data.info).expect("evaluates")["r2"];
    if scaled {
        // Saved and reloaded, the model keeps its scaling: `bma eval` measures the same.
        let config = crate::train::SavedConfig {
            experiment: "t".into(),
            data: value,
            base: dir.to_path_buf(),
            data_files: Vec::new(),
            point,
            train: cfg,
            tokenizer: None,
            preprocess: None,
        };
        model.save(&dir.join("model"), &config).expect("saves");
        let again = crate::train::evaluate_saved(&dir.join("model"), crate::data::Part::Test).expect("evaluates");
        assert!((again["r2"] - r2).abs() < 1e-9 && again["rmse"] > 0.0, "{again:?}");
        let (back, _) = crate::train::load(&dir.join("model")).expect("loads");
        assert_eq!(back.target, data.target);
        assert_eq!(back.predict(data.test.row(0, 3), 1), model.predict(data.test.row(0, 3), 1));
    }
    (data, model, r2)
}

#[test]
fn a_regression_target_of_order_1e5_is_standardised_and_trains_to_a_high_r2() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("prices.csv"), house_prices(600)).expect("write");
    let (data, model, scaled) = test_r2(dir.path(), true);
    // Fitted on train: the targets' mean is near 1e5 + 2e4·5 − 1.5e4·5 + 5e3·5 = 1.5e5.
    assert!((data.target.mean - 1.5e5).abs() < 1e4 && data.target.std > 5e4, "{:?}", data.target);
    // The same network on the raw target, as bma trained before targets were scaled.
    let (_, _, raw) = test_r2(dir.path(), false);
    // Predictions are prices, not standardised values: within a few noise deviations.
    let predicted = model.predict(&data.test.x, data.test.n).expect("predicts");
    let worst = predicted.iter().zip(&data.test.y).map(|(p, y)| (p - y).abs()).fold(0f32, f32::max);
    assert!(worst < 2e4, "worst test error {worst}");
    // Fewer values than the rows need (a stored split's empty `x`): an error, not a panic.
    let short = model.predict(&data.test.x[..3], data.test.n).expect_err("too few values");
    assert!(
        short.contains(&format!("{} rows of", data.test.n))
            && short.ends_with("got 3 (a stored split is read with `predict_split`)"),
        "{short}"
    );
    assert!(model.predict(&[], 0).expect("no rows").is_empty());
    eprintln!("test r2: {scaled:.4} with the target standardised, {raw:.4} on the raw target");
    assert!(scaled >= 0.9, "test r2 {scaled} (raw target: {raw})");
    assert!(raw < scaled, "raw {raw}, scaled {scaled}");
}

#[test]
fn the_metrics_agree_with_scikit_learn() {
    // Expected values computed once with scikit-learn 1.9.1 (Python 3.11, numpy float64):
    // roc_auc_score, log_loss, top_k_accuracy_score(k=2), balanced_accuracy_score,
    // sqrt(mean_squared_error), mean_absolute_percentage_error on exactly these arrays.
    let near = |a: f64, b: f64| (a - b).abs() < 1e-12;
    let yb = [0, 1, 1, 0, 1, 0, 1, 1, 0, 0];
    let pb = [0.12, 0.81, 0.43, 0.37, 0.95, 0.51, 0.66, 0.29, 0.08, 0.72];
    let m = probability_metrics(&pb.iter().map(|p| vec![1.0 - p, *p]).collect::<Vec<_>>(), &yb);
    assert!(near(m["auc"], 0.76), "{m:?}");
    assert!(near(m["log_loss"], 0.5418940199696862), "{m:?}");
    let y = [0, 2, 1, 1, 0, 2, 1, 0];
    let p = [
        [0.7, 0.2, 0.1],
        [0.1, 0.3, 0.6],
        [0.25, 0.45, 0.3],
        [0.5, 0.35, 0.15],
        [0.4, 0.42, 0.18],
        [0.05, 0.15, 0.8],
        [0.2, 0.1, 0.7],
        [0.33, 0.31, 0.36],
    ];
    let m = probability_metrics(&p.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), &y);
    assert!(near(m["auc"], 0.7944444444444446), "{m:?}");
    assert!(near(m["log_loss"], 0.9083140486406494), "{m:?}");
    assert!(near(m["top_k(2)"], 0.875), "{m:?}");
    let pred = [0, 2, 1, 0, 1, 2, 2, 2];
    assert!(near(classification_metrics(&pred, &y, 3)["balanced_accuracy"], 0.5555555555555555));
    let m = regression_metrics(&[2.5, 0.0, 2.0, 8.0, 3.9], &[3.0, -0.5, 2.0, 7.0, 4.2]);
    assert!((m["rmse"] - 0.5639148871948674).abs() < 1e-7, "{m:?}");
    assert!((m["mape"] - 0.2761904761904762).abs() < 1e-7, "{m:?}");
}
