use std::path::{Path, PathBuf};

use super::*;
use crate::ir::Point;
use crate::search::TrialState;
use crate::source::Source;
use crate::train::{Control, DeviceKind, Trials};

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
        model.save(&d, &trials.saved_config(&point, cfg)).expect("saves");
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
        .map(|(_, d)| valid_score(&train::eval_saved(d, Part::Valid).expect("evaluates")))
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(valid_score(&summary.final_valid) >= best - 1e-9, "{summary:#?} vs {best}");
    // One member (the soup) holding the kept trials; every other trial is listed with a reason.
    assert_eq!(summary.members.len(), 1);
    assert_eq!(summary.members[0].trials.len() + summary.excluded.len(), 4, "{summary:#?}");
    // Saved and reloadable: the same test metrics.
    let again = eval_saved(&dir.join("final"), Part::Test).expect("reloads");
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
    for weights in ["uniform", "bayes", "softmax(accuracy, temperature: 0.05)", "greedy(rounds: 10)"] {
        let program = compile(&source(&format!("ensemble(top: 3, weights: {weights})"), MLP));
        let dir = tmp(&format!("ens-{}", &weights[..4]));
        let ranked = train(&program, &dir, &[1, 2, 3]);
        let summary =
            build(&program, &program.experiments[0], Path::new("."), &dir.join("final"), &ranked).expect("builds");
        let total: f64 = summary.members.iter().map(|m| m.weight).sum();
        assert!((total - 1.0).abs() < 1e-9, "{weights}: {summary:#?}");
        if weights.starts_with("greedy") {
            let best = ranked
                .iter()
                .map(|(_, d)| valid_score(&train::eval_saved(d, Part::Valid).expect("evaluates")))
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(valid_score(&summary.final_valid) >= best - 1e-6, "{summary:#?}");
        }
        let again = eval_saved(&dir.join("final"), Part::Test).expect("reloads");
        assert!((again["loss"] - summary.final_test["loss"]).abs() < 1e-6, "{weights}");
        assert_eq!(summary.single_test, train::eval_saved(&ranked[0].1, Part::Test).expect("evaluates"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
