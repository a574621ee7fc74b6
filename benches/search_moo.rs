//! Multi-objective search quality: ZDT1 (d = 5 and 30, both objectives minimized,
//! `x` in `[0, 1]^d`), 200 trials x 10 seeds, median hypervolume of all completed
//! trials for our `nsga2` (its default population, 50), `tpe` and `random`.
//!
//! Two reference points, the same as `bench/search/run.py` uses for Optuna: `(1.1, 1.1)`
//! (the ideal is `1.1^2 - 1/3 = 0.8767`) and `(1.1, 11.0)`, which holds every ZDT1
//! value (`f1 <= 1`, `f2 <= g <= 10`): at d = 30 after 200 trials few points are
//! inside the first box, so the second one is the one that tells strategies apart.
//!
//! Run: `cargo bench --bench search_moo` (table) or `cargo bench --bench search_moo --
//! --json` (read by `bench/search/run.py --moo`). Seeds: `--seeds 100` starts at 100
//! (tuning seeds; the reported figures use 0..9). `overhead` alone: the NSGA-II ask +
//! tell at 1,000 and 5,000 completed trials (ZDT1, d = 30, random trials), beside what a
//! full non-dominated sort of every trial costs (what each ask did before the pool).
//! Nothing is asserted.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use bma::ir::{Point, Value};
use bma::rng::Rng;
use bma::search::{Ask, AskContext, Direction, History, Nsga2, Random, Rank, Strategy, Tpe, Trial, TrialState, rank};
use bma::space::Context;

const TRIALS: u64 = 200;
const SEEDS: u64 = 10;
const REFERENCES: [[f64; 2]; 2] = [[1.1, 1.1], [1.1, 11.0]];

fn zdt1(x: &[f64]) -> Vec<f64> {
    let d = x.len();
    let f1 = x[0];
    let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (d - 1) as f64;
    vec![f1, g * (1.0 - (f1 / g).sqrt())]
}

fn program(d: usize) -> bma::ir::Program {
    let params: String = (0..d).map(|i| format!("    x{i}: float in 0.0..=1.0\n")).collect();
    let text = format!(
        "experiment zdt1 {{\n  space {{\n{params}  }}\n  objective {{\n    minimize x0\n    minimize x1\n  }}\n}}\n"
    );
    let compiled = bma::compile(&bma::Source::new("zdt1.bma", text));
    assert!(!compiled.has_errors(), "the bench space must compile: {:?}", compiled.diagnostics);
    compiled.program
}

type Make = fn(&bma::ir::Space) -> Box<dyn Strategy>;

fn strategies() -> Vec<(&'static str, Make)> {
    vec![
        ("random", |_| Box::new(Random)),
        ("nsga2", |s| Box::new(Nsga2::new(s, 50))),
        ("tpe", |s| Box::new(Tpe::new(s, 10))),
    ]
}

/// One study; the hypervolume of its completed trials at each reference point.
fn run(program: &bma::ir::Program, make: Make, d: usize, seed: u64) -> Vec<f64> {
    let exp = &program.experiments[0];
    let ctx = Context { fns: &program.fns, data: None };
    let pins = Point::new();
    let mut strategy = make(&exp.space);
    let mut history = History::new(vec![Direction::Minimize; 2], Rank::Pareto);
    for n in 0..TRIALS {
        let mut rng = Rng::derive(seed, n);
        let ask =
            AskContext { space: &exp.space, ctx, pins: &pins, history: &history, number: n, budget: Some(TRIALS) };
        let Ask::Point(point) = strategy.ask(&ask, &mut rng).unwrap() else { panic!("no point") };
        let x: Vec<f64> = (0..d).map(|i| point.get(&format!("x{i}")).and_then(Value::as_f64).unwrap()).collect();
        let mut t = Trial::new(n, point, seed);
        t.state = TrialState::Complete;
        t.values = zdt1(&x);
        history.upsert(t);
    }
    let points: Vec<Vec<f64>> = history.completed().map(|t| t.values.clone()).collect();
    REFERENCES.iter().map(|r| rank::hypervolume(&points, r).unwrap()).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Milliseconds per NSGA-II ask + tell with `filled` complete trials, and per full sort
/// (fronts and the crowding of each) of as many trials.
fn overhead(filled: u64, reps: u64) -> (f64, f64) {
    let d = 30;
    let program = program(d);
    let exp = &program.experiments[0];
    let ctx = Context { fns: &program.fns, data: None };
    let pins = Point::new();
    let mut history = History::new(vec![Direction::Minimize; 2], Rank::Pareto);
    let mut rng = Rng::new(3);
    let add = |history: &mut History, n: u64, point: Point| {
        let x: Vec<f64> = (0..d).map(|i| point.get(&format!("x{i}")).and_then(Value::as_f64).unwrap()).collect();
        let mut t = Trial::new(n, point, 0);
        t.state = TrialState::Complete;
        t.values = zdt1(&x);
        history.upsert(t);
    };
    for n in 0..filled {
        let point = bma::space::sample(&exp.space, ctx, &pins, &mut rng).unwrap();
        add(&mut history, n, point);
    }
    let points: Vec<Vec<f64>> = history.completed().map(|t| t.values.clone()).collect();
    let sorts = 3;
    let start = Instant::now();
    for _ in 0..sorts {
        for front in rank::fronts(&points, &[]) {
            std::hint::black_box(rank::crowding(&points, &front));
        }
    }
    let sort_ms = start.elapsed().as_secs_f64() * 1e3 / sorts as f64;
    let mut nsga2 = Nsga2::new(&exp.space, 50);
    // The first ask takes in the whole history (what a resumed study pays once).
    let warm = AskContext { space: &exp.space, ctx, pins: &pins, history: &history, number: filled, budget: None };
    nsga2.ask(&warm, &mut rng).unwrap();
    let start = Instant::now();
    for n in filled..filled + reps {
        let ask = AskContext { space: &exp.space, ctx, pins: &pins, history: &history, number: n, budget: None };
        let Ask::Point(point) = nsga2.ask(&ask, &mut rng).unwrap() else { panic!("no point") };
        add(&mut history, n, point);
    }
    (start.elapsed().as_secs_f64() * 1e3 / reps as f64, sort_ms)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    if args.iter().any(|a| a == "overhead") {
        for filled in [1_000, 5_000] {
            let (ask, sort) = overhead(filled, 200);
            println!(
                "nsga2 ask+tell at {filled} complete trials (ZDT1 d=30, population 50): {ask:.3} ms; a full sort of {filled} trials: {sort:.1} ms"
            );
        }
        return;
    }
    let first: u64 = args.iter().position(|a| a == "--seeds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(0);
    let mut rows = Vec::new();
    for d in [5usize, 30] {
        let program = program(d);
        for (name, make) in strategies() {
            let start = Instant::now();
            let hvs: Vec<Vec<f64>> = (first..first + SEEDS).map(|s| run(&program, make, d, s)).collect();
            let secs = start.elapsed().as_secs_f64();
            let hv: Vec<f64> = (0..REFERENCES.len()).map(|r| median(hvs.iter().map(|h| h[r]).collect())).collect();
            if !json {
                println!(
                    "zdt1 d={d:<2} {name:<7} median HV ref (1.1,1.1) {:.4}   ref (1.1,11) {:.4}   ({secs:.2} s for {SEEDS} studies)",
                    hv[0], hv[1]
                );
            }
            rows.push(serde_json::json!({"problem": format!("zdt1-{d}"), "strategy": name, "hv": hv, "seconds": secs}));
        }
    }
    if json {
        println!("{}", serde_json::json!({"moo": rows}));
    }
}
