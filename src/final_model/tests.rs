use std::path::{Path, PathBuf};

use super::*;
use crate::ir::Point;
use crate::source::Source;
use crate::train::{Control, DeviceKind, Trials};
use crate::trial::TrialState;

/// An iris MLP experiment with the given `average` section.
fn source(average: &str, model: &str) -> String {
    format!(
        "experiment t {{\n data = iris(split: [0.6, 0.2, 0.2], seed: 3)\n model {{ {model} }}\n \
         train {{ optimizer = adam(0.01)\n epochs = 12\n batch = 16 }}\n objective {{ maximize accuracy }}\n \
         search {{ trials = 4\n seed = 5 }}\n average {{ {average} }}\n}}\n"
    )
}

const MLP: &str = "dense(16) relu dense(data.classes)";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bma-final-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Trains one trial per seed, saves each model, gives them ranked by valid accuracy.
fn train(program: &ir::Program, dir: &Path, seeds: &[u64]) -> Vec<(Trial, PathBuf)> {
    let exp = &program.experiments[0];
    let trials = Trials::new(program, exp, Path::new("."), DeviceKind::Cpu).expect("data");
    let point = Point::new();
    let mut out = Vec::new();
    for (i, seed) in seeds.iter().enumerate() {
        let outcome = trials.run(&point, *seed, |_, _| Control::Continue);
        let model = outcome.model.expect("trained");
        let d = dir.join(format!("trials/{i}"));
        let cfg = trials.config(&point, *seed).expect("config");
        let data = trials.data_at(&point).expect("data");
        model.save(&d, &trials.saved_config(&data, &point, cfg)).expect("saves");
        let mut t = Trial::new(i as u64, point.clone(), *seed);
        t.state = TrialState::Complete;
        t.metrics = outcome.metrics.clone();
        t.values = vec![outcome.metrics["accuracy"]];
        out.push((t, d));
    }
    out.sort_by(|a, b| b.0.values[0].total_cmp(&a.0.values[0]));
    out
}

fn compile(src: &str) -> ir::Program {
    let compiled = crate::compile(&Source::new("t.bma", src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    compiled.program
}

fn valid_score(m: &Metrics) -> f64 {
    m["accuracy"] - 1e-3 * m["loss"]
}

#[test]
fn a_greedy_soup_is_never_below_its_best_ingredient_on_valid() {
    let program = compile(&source("soup(greedy, top: 4)", MLP));
    let dir = tmp("greedy-soup");
    let ranked = train(&program, &dir, &[1, 2, 3, 4]);
    let summary =
        build(&program, &program.experiments[0], Path::new("."), &dir.join("final"), &ranked).expect("builds");
    let best = ranked
        .iter()
        .map(|(_, d)| valid_score(&train::evaluate_saved(d, Part::Valid).expect("evaluates")))
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(valid_score(&summary.final_valid) >= best - 1e-9, "{summary:#?} vs {best}");
    // One member (the soup) holding the kept trials; every other trial is listed with a reason.
    assert_eq!(summary.members.len(), 1);
    assert_eq!(summary.members[0].trials.len() + summary.excluded.len(), 4, "{summary:#?}");
    // Saved and reloadable: the same test metrics.
    let again = evaluate(&dir.join("final"), Part::Test).expect("reloads");
    assert!((again["accuracy"] - summary.final_test["accuracy"]).abs() < 1e-9);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_soup_of_identical_models_equals_the_model() {
    let program = compile(&source("soup(uniform, top: 3)", MLP));
    let dir = tmp("same-soup");
    let one = train(&program, &dir, &[9]);
    let ranked = vec![one[0].clone(), one[0].clone(), one[0].clone()];
    let summary =
        build(&program, &program.experiments[0], Path::new("."), &dir.join("final"), &ranked).expect("builds");
    assert_eq!(summary.members[0].trials.len(), 3);
    let (soup, config) = load(&dir.join("final")).expect("loads");
    let (model, _) = train::load(&one[0].1).expect("loads");
    let data = crate::data::load(&config.data, &config.base).expect("data");
    let a = soup.members[0].0.predict(&data.test.x, data.test.n).expect("predicts");
    let b = model.predict(&data.test.x, data.test.n).expect("predicts");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} {y}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn soups_leave_out_other_architectures_and_say_why() {
    let program = compile(&source("soup(uniform, top: 2)", MLP));
    let other = compile(&source("soup(uniform, top: 2)", "dense(8) relu dense(data.classes)"));
    let dir = tmp("mixed-soup");
    let mut ranked = train(&program, &dir.join("a"), &[1]);
    ranked.extend(train(&other, &dir.join("b"), &[2]));
    ranked[1].0.number = 1;
    let summary =
        build(&program, &program.experiments[0], Path::new("."), &dir.join("final"), &ranked).expect("builds");
    assert_eq!(summary.members[0].trials, vec![ranked[0].0.number]);
    assert_eq!(summary.excluded.len(), 1);
    assert!(summary.excluded[0].reason.contains("architecture"), "{:?}", summary.excluded);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ensembles_of_real_trainings_save_weights_that_sum_to_one_and_reload() {
    for weights in [
        "uniform",
        "bayes",
        "softmax(accuracy, temperature: 0.05)",
        "greedy(rounds: 10)",
        "uniform, combine: vote",
        "greedy(rounds: 10), combine: vote",
    ] {
        let program = compile(&source(&format!("ensemble(top: 3, weights: {weights})"), MLP));
        let dir = tmp(&format!("ens-{}-{}", &weights[..4], weights.len()));
        let ranked = train(&program, &dir, &[1, 2, 3]);
        let summary =
            build(&program, &program.experiments[0], Path::new("."), &dir.join("final"), &ranked).expect("builds");
        let total: f64 = summary.members.iter().map(|m| m.weight).sum();
        assert!((total - 1.0).abs() < 1e-9, "{weights}: {summary:#?}");
        if weights.starts_with("greedy") {
            // A vote's loss is not its members' (see average::vote): compare accuracies.
            let vote = weights.contains("vote");
            let of = |m: &Metrics| if vote { m["accuracy"] } else { valid_score(m) };
            let best = ranked
                .iter()
                .map(|(_, d)| of(&train::evaluate_saved(d, Part::Valid).expect("evaluates")))
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(of(&summary.final_valid) >= best - 1e-6, "{summary:#?}");
        }
        let again = evaluate(&dir.join("final"), Part::Test).expect("reloads");
        assert!((again["loss"] - summary.final_test["loss"]).abs() < 1e-6, "{weights}");
        assert_eq!(summary.single_test, train::evaluate_saved(&ranked[0].1, Part::Test).expect("evaluates"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn with_a_soup_trials_of_one_architecture_start_from_the_same_weights() {
    // A learning rate so small that training leaves the initial weights as they were.
    let src = |average: &str| {
        format!(
            "experiment t {{\n data = iris(split: [0.6, 0.2, 0.2], seed: 3)\n space {{ width: int in {{8, 16}} }}\n \
             model {{ dense(width) relu dense(data.classes) }}\n train {{ optimizer = sgd(1e-12)\n epochs = 1\n batch = 16 }}\n \
             objective {{ maximize accuracy }}\n search {{ trials = 4\n seed = 5 }}\n average {{ {average} }}\n}}\n"
        )
    };
    let weights = |program: &ir::Program, width: i64, seed: u64| {
        let exp = &program.experiments[0];
        let trials = Trials::new(program, exp, Path::new("."), DeviceKind::Cpu).expect("data");
        let point: Point = [("width".to_string(), Value::Int(width))].into();
        let cfg = trials.config(&point, seed).expect("config");
        let model = trials.run(&point, seed, |_, _| Control::Continue).model.expect("trained");
        (cfg.init_seed, model.tensors().into_iter().map(|(_, _, v)| v).collect::<Vec<_>>())
    };
    let close = |a: &[Vec<f32>], b: &[Vec<f32>]| {
        a.iter().zip(b).all(|(x, y)| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-6))
    };
    let soup = compile(&src("soup(greedy, top: 3)"));
    let (s1, w1) = weights(&soup, 8, 1);
    let (s2, w2) = weights(&soup, 8, 2);
    let (s3, _) = weights(&soup, 16, 1);
    assert!(s1.is_some() && s1 == s2, "{s1:?} {s2:?}");
    assert_ne!(s1, s3, "another architecture, another init");
    assert!(close(&w1, &w2), "same architecture, different trial seeds: one init");
    // Without a soup, the trial's seed decides the init.
    let plain = compile(&src("ensemble(top: 3)"));
    let (p1, v1) = weights(&plain, 8, 1);
    let (_, v2) = weights(&plain, 8, 2);
    assert_eq!(p1, None);
    assert!(!close(&v1, &v2));
}

#[test]
fn summaries_reload_their_floats_bit_for_bit() {
    // Floats that serde_json's default parser may read one ulp off, and strings that look like numbers.
    let xs: Vec<f64> =
        (1..2000).map(|i| f64::from(i) / 1999.0 * 0.97).chain([0.9333333333333333, -1.5e-300, 3.0e10, 0.0]).collect();
    let metrics: Metrics = xs.iter().enumerate().map(|(i, x)| (format!("m{i} \"q\" \\ 1.5e3"), *x)).collect();
    let summary = FinalSummary {
        method: "soup(greedy, top: 4) -12".into(),
        members: vec![MemberWeight { trials: vec![3, 18_446_744_073_709_551_615], weight: 0.1 + 0.2 }],
        excluded: vec![ExcludedTrial { trial: 7, reason: "the valid score would drop from 0.9 to -0.5".into() }],
        swa: Some(3),
        best_single: 3,
        final_valid: metrics.clone(),
        final_test: metrics.clone(),
        single_valid: metrics.clone(),
        single_test: metrics,
        dir: "runs/x 2/final".into(),
    };
    let text = serde_json::to_string_pretty(&SavedFinal {
        members: vec![("member_0".into(), 0.7)],
        summary: summary.clone(),
        vote: true,
    })
    .expect("encodes");
    let back: SavedFinal = from_json_exact(&text).expect("decodes");
    assert_eq!(back.summary, summary);
    for (k, v) in &summary.final_test {
        assert_eq!(back.summary.final_test[k].to_bits(), v.to_bits(), "{k}");
    }
    assert!(from_json_exact::<SavedFinal>("{\"members\": [1.2.3]}").is_err());
}
