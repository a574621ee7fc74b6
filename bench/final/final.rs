//! The final model against the best single sub-model, on the examples' experiments.
//!
//! `cargo bench --profile dev --bench final -- [EXAMPLE ...] [--trials N] [--seeds S] [--from SEED] [--average 'ENTRY']`
//!
//! For each example (default `digits wine`) and S seeds from SEED (default 1): a random search of N trials
//! (points sampled from the example's space, trained with the example's `train` settings,
//! no pruning), ranked by the first objective among trials meeting the constraints on
//! `params`, then `final_model::build` with the example's `average` section (or `ENTRY`
//! in its place). Prints one JSON line per run and a mean per example: valid and test
//! accuracy of the final model and of the best single sub-model.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use bma::final_model;
use bma::ir::Point;
use bma::rng::Rng;
use bma::search::{Trial, TrialState};
use bma::source::Source;
use bma::train::{Control, DeviceKind, Trials};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut examples, mut trials, mut seeds, mut average) = (Vec::new(), 12usize, 5u64, None::<String>);
    let mut from = 1u64;
    let mut report = None::<PathBuf>;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--trials" => trials = args.next().and_then(|v| v.parse().ok()).expect("--trials N"),
            "--seeds" => seeds = args.next().and_then(|v| v.parse().ok()).expect("--seeds S"),
            "--from" => from = args.next().and_then(|v| v.parse().ok()).expect("--from SEED"),
            "--average" => average = args.next(),
            "--report" => report = args.next().map(PathBuf::from),
            other => examples.push(other.to_string()),
        }
    }
    if examples.is_empty() {
        examples = vec!["digits".into(), "wine".into()];
    }
    for name in &examples {
        let path = format!("examples/{name}.bma");
        let mut text = std::fs::read_to_string(&path).expect("example");
        if let Some(entry) = &average {
            let start = text.find("average {").expect("an average section");
            let end = start + text[start..].find('}').expect("closed");
            text.replace_range(start..=end, &format!("average {{ {entry} }}"));
        }
        let compiled = bma::compile(&Source::new(&path, &text));
        assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
        let program = &compiled.program;
        let exp = &program.experiments[0];
        let limit = params_limit(&text);
        let mut sums = [0.0f64; 4];
        for seed in from..from + seeds {
            let r = run(program, exp, trials, seed, limit, report.as_deref().filter(|_| seed == 1));
            println!(
                "{{\"example\":\"{name}\",\"seed\":{seed},\"method\":\"{}\",\"members\":{},\"final_valid\":{:.4},\"final_test\":{:.4},\"single_valid\":{:.4},\"single_test\":{:.4},\"member_weights\":{:?},\"member_valid\":{:?},\"member_valid_loss\":{:?},\"member_test\":{:?}}}",
                r.method,
                r.members,
                r.acc[0],
                r.acc[1],
                r.acc[2],
                r.acc[3],
                r.weights,
                r.member_valid,
                r.member_valid_loss,
                r.member_test
            );
            for (s, a) in sums.iter_mut().zip(r.acc) {
                *s += a;
            }
        }
        let m: Vec<f64> = sums.iter().map(|s| s / seeds as f64).collect();
        println!(
            "MEAN {name} ({trials} trials x {seeds} seeds): final valid {:.4} test {:.4} | best single valid {:.4} test {:.4} | test gain {:+.4}",
            m[0],
            m[1],
            m[2],
            m[3],
            m[1] - m[3]
        );
    }
}

struct Run {
    method: String,
    members: usize,
    acc: [f64; 4],
    /// Per member of the final model (a soup counts as its best ingredient): weight, valid
    /// accuracy, valid loss and test accuracy, for the analysis only (nothing selects on test).
    weights: Vec<f64>,
    member_valid: Vec<f64>,
    member_valid_loss: Vec<f64>,
    member_test: Vec<f64>,
}

/// `require params <= Nk` in the example, if any.
fn params_limit(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains("require params <="))?;
    let v = line.split("<=").nth(1)?.trim();
    let (num, mul) = if let Some(k) = v.strip_suffix('k') { (k, 1e3) } else { (v, 1.0) };
    num.trim().parse::<f64>().ok().map(|n| n * mul)
}

fn run(
    program: &bma::ir::Program,
    exp: &bma::ir::Experiment,
    n: usize,
    seed: u64,
    limit: Option<f64>,
    report: Option<&Path>,
) -> Run {
    let base = Path::new("examples");
    let trials = Trials::new(program, exp, base, DeviceKind::Cpu).expect("data");
    let dir = std::env::temp_dir().join(format!("bma-bench-final-{}-{}-{seed}", exp.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ctx = bma::space::Context { fns: &program.fns, data: Some(&trials.data.info) };
    let mut rng = Rng::derive(seed, 0);
    let mut done: Vec<(Trial, PathBuf)> = Vec::new();
    let mut all: Vec<Trial> = Vec::new();
    for i in 0..n {
        let point = bma::space::sample(&exp.space, ctx, &Point::new(), &mut rng).expect("samples");
        let trial_seed = bma::rng::mix_seed(seed, i as u64 + 1);
        // Every third trial stops at half its epochs, as a pruner would, for the report's curves.
        let stop = if report.is_some() && i % 3 == 2 { 5 } else { usize::MAX };
        let started = bma::store::now();
        let outcome = trials.run(&point, trial_seed, |e, _| if e >= stop { Control::Stop } else { Control::Continue });
        // When it ran, as the trial loop records it (the report's timeline).
        let (started, finished) = (Some(started), Some(bma::store::now()));
        let steps: Vec<(u32, f64)> = outcome
            .epochs
            .iter()
            .map(|m| (m.get("epoch").copied().unwrap_or(0.0) as u32, m.get("accuracy").copied().unwrap_or(f64::NAN)))
            .collect();
        if stop != usize::MAX {
            let mut t = Trial::new(i as u64, point, trial_seed);
            t.state = TrialState::Pruned;
            t.steps = steps;
            (t.started, t.finished) = (started, finished);
            all.push(t);
            continue;
        }
        let Some(model) = outcome.model else { continue };
        let cfg = trials.config(&point, trial_seed).expect("config");
        let d = dir.join(format!("trials/{i}"));
        let data = trials.data_at(&point).expect("data");
        model.save(&d, &trials.saved_config(&data, &point, cfg)).expect("saves");
        let mut t = Trial::new(i as u64, point, trial_seed);
        t.state = TrialState::Complete;
        (t.started, t.finished) = (started, finished);
        t.values = vec![outcome.metrics.get("accuracy").copied().unwrap_or(0.0)];
        t.metrics = outcome.metrics;
        t.steps = steps;
        all.push(t.clone());
        if limit.is_some_and(|l| t.metrics.get("params").copied().unwrap_or(0.0) > l) {
            continue;
        }
        done.push((t, d));
    }
    done.sort_by(|a, b| b.0.values[0].total_cmp(&a.0.values[0]));
    let s = final_model::build(program, exp, base, &dir.join("final"), &done).expect("final model");
    let round = |x: f64| (x * 1e4).round() / 1e4;
    let (mut weights, mut member_valid, mut member_valid_loss, mut member_test) = (vec![], vec![], vec![], vec![]);
    for m in &s.members {
        let Some((_, d)) = done.iter().find(|(t, _)| t.number == m.trials[0]) else { continue };
        let v = bma::train::evaluate_saved(d, bma::data::Part::Valid).expect("evaluates");
        let t = bma::train::evaluate_saved(d, bma::data::Part::Test).expect("evaluates");
        weights.push(round(m.weight));
        member_valid.push(round(v["accuracy"]));
        member_valid_loss.push(round(v["loss"]));
        member_test.push(round(t["accuracy"]));
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(path) = report {
        let objectives = vec![("accuracy".to_string(), bma::search::Direction::Maximize)];
        let data = bma::report::ReportData::new(&exp.name, &all, objectives, Some(s.clone()));
        bma::report::write(path, &data).expect("writes the report");
    }
    let a = |m: &bma::train::Metrics| m.get("accuracy").copied().unwrap_or(f64::NAN);
    Run {
        method: s.method.replace('"', "'"),
        members: s.members.len(),
        acc: [a(&s.final_valid), a(&s.final_test), a(&s.single_valid), a(&s.single_test)],
        weights,
        member_valid,
        member_valid_loss,
        member_test,
    }
}
