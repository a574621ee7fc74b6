//! Search quality and overhead of our strategies, in memory (no store, no process).
//!
//! For each test function (Branin, Hartmann6, Rosenbrock-10, Ackley-10 and a mixed
//! space), the space is written in `.bma` and compiled with `bma::compile`; the
//! function itself is computed here. Each strategy runs `TRIALS` trials for each of
//! `SEEDS` seeds through the `Strategy::ask` / `History::upsert` loop, and the best
//! value so far is recorded at 25, 50 and 100 trials. Then the overhead: ask + tell
//! per trial for our TPE at 1,000 and 5,000 completed trials in a 10-d space.
//!
//! Run: `cargo bench --bench search_quality` (human table), or
//! `cargo bench --bench search_quality -- --json` (one JSON object, read by
//! `bench/search/run.py`, which puts Optuna beside it). Options: `--seeds 100` (seeds
//! 100..109 instead of 0..9: tune on those, report 0..9), `--nseeds 40` (more seeds),
//! `--strategies tpe,random` (`BMA_TPE_TUNE` adds variants of `tpe`, see `strategies`),
//! and problem names (`branin`, `overhead`, ...) to run only those. Nothing is asserted.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::time::Instant;

#[path = "../bench/search/problems.rs"]
mod problems;
#[path = "../bench/search/tune.rs"]
mod tune;

use bma::ir::Point;
use bma::rng::Rng;
use bma::search::{
    Ask, AskContext, Direction, Gp, History, Random, Rank, Strategy, Tpe, TpeOptions, Trial, TrialState,
};
use bma::space::Context;
use problems::{compile_space, five as problems, floats, xs};

const TRIALS: usize = 100;
const SEEDS: u64 = 10;
const CHECKPOINTS: [usize; 3] = [25, 50, 100];

type Make = Box<dyn Fn(&bma::ir::Space) -> Box<dyn Strategy>>;

fn strategies() -> Vec<(String, Make)> {
    let mut out: Vec<(String, Make)> = vec![
        ("random".into(), Box::new(|_| Box::new(Random))),
        ("tpe".into(), Box::new(|s| Box::new(Tpe::with_options(s, TpeOptions::default())))),
        // Our default without local asks (candidates from all of `l`, the default before).
        (
            "tpe-global".into(),
            Box::new(|s| Box::new(Tpe::with_options(s, TpeOptions { local: 0.0, ..TpeOptions::default() }))),
        ),
        // Optuna 5.0's TPESampler() defaults exactly (our default goes beyond them).
        ("tpe-optuna".into(), Box::new(|s| Box::new(Tpe::with_options(s, TpeOptions::optuna())))),
        // Gaussian-process BO (`strategy = gp`), beside Optuna's GPSampler in run.py.
        ("gp".into(), Box::new(|s| Box::new(Gp::new(s, 10)))),
        // Tuning variant: Optuna's acquisition search sizes (2048 candidates, 10 local starts).
        (
            "gp-wide".into(),
            Box::new(|s| {
                let o = bma::search::GpOptions { candidates: 2048, local_starts: 10, ..Default::default() };
                Box::new(Gp::with_options(s, o))
            }),
        ),
        // Tuning variant: losses warped before the fit (GpOptions::output).
        (
            "gp-warp".into(),
            Box::new(|s| {
                Box::new(Gp::with_options(
                    s,
                    bma::search::GpOptions { output: bma::search::GpOutput::Warp, ..Default::default() },
                ))
            }),
        ),
        // The default (`strategy = auto`): gp or tpe by the study's shape (budget: TRIALS).
        ("auto".into(), Box::new(|_| Box::new(bma::search::auto::Auto::new()))),
    ];
    // Tuning variants: `BMA_TPE_TUNE="local=0.5,local_scale=0.3;gamma=0.05"` adds `tpe-x0`,
    // `tpe-x1`, ...; `BMA_GP_TUNE="candidates=2048,roulette=1;precondition=1"` adds `gp-x0`, ...
    // (bench/search/tune.rs).
    for k in 0.. {
        let Some(o) = tune::tpe_variant(k) else { break };
        eprintln!("tpe-x{k}: {o:?}");
        out.push((format!("tpe-x{k}"), Box::new(move |s| Box::new(Tpe::with_options(s, o.clone())))));
    }
    for k in 0.. {
        let Some(o) = tune::gp_variant(k) else { break };
        eprintln!("gp-x{k}: {o:?}");
        out.push((format!("gp-x{k}"), Box::new(move |s| Box::new(Gp::with_options(s, o.clone())))));
    }
    out
}

/// Runs one study; gives the best value after each trial.
fn run(program: &bma::ir::Program, make: &Make, f: &dyn Fn(&Point) -> f64, seed: u64, trials: usize) -> Vec<f64> {
    let exp = &program.experiments[0];
    let ctx = Context { fns: &program.fns, data: None };
    let pins = Point::new();
    let mut strategy = make(&exp.space);
    let mut history = History::new(vec![Direction::Minimize], Rank::default());
    let mut best = f64::INFINITY;
    let mut curve = Vec::with_capacity(trials);
    for n in 0..trials as u64 {
        let mut rng = Rng::derive(seed, n);
        let ask = AskContext {
            space: &exp.space,
            ctx,
            pins: &pins,
            history: &history,
            number: n,
            budget: Some(trials as u64),
        };
        let Ask::Point(point) = strategy.ask(&ask, &mut rng).unwrap() else { panic!("no point") };
        let y = f(&point);
        best = best.min(y);
        curve.push(best);
        let mut t = Trial::new(n, point, seed);
        t.state = TrialState::Complete;
        t.values = vec![y];
        history.upsert(t);
    }
    curve
}

/// This process's CPU time (user + system), from /proc (Linux; 0 elsewhere), in the
/// kernel's usual 100 ticks per second.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Milliseconds per ask + tell with `filled` completed trials already in a 10-d history.
fn overhead(filled: usize, reps: usize) -> f64 {
    let program = compile_space(&floats(10, -5.0, 5.0));
    let exp = &program.experiments[0];
    let ctx = Context { fns: &program.fns, data: None };
    let pins = Point::new();
    let sphere = |p: &Point| xs(p, 10).iter().map(|v| v * v).sum::<f64>();
    let mut history = History::new(vec![Direction::Minimize], Rank::default());
    let mut rng = Rng::new(7);
    for n in 0..filled as u64 {
        let point = bma::space::sample(&exp.space, ctx, &pins, &mut rng).unwrap();
        let mut t = Trial::new(n, point.clone(), 0);
        t.state = TrialState::Complete;
        t.values = vec![sphere(&point)];
        history.upsert(t);
    }
    let mut tpe = Tpe::new(&exp.space, 10);
    // The first ask encodes the whole history (what a resumed study pays once).
    let warm =
        AskContext { space: &exp.space, ctx, pins: &pins, history: &history, number: filled as u64, budget: None };
    tpe.ask(&warm, &mut rng).unwrap();
    let start = Instant::now();
    for k in 0..reps as u64 {
        let n = filled as u64 + k;
        let ask = AskContext { space: &exp.space, ctx, pins: &pins, history: &history, number: n, budget: None };
        let Ask::Point(point) = tpe.ask(&ask, &mut rng).unwrap() else { panic!("no point") };
        let mut t = Trial::new(n, point.clone(), 0);
        t.state = TrialState::Complete;
        t.values = vec![sphere(&point)];
        history.upsert(t);
    }
    start.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    // `--seeds 100`: seeds 100..109 instead of 0..9 (tune on those, report 0..9).
    let first: u64 = args.iter().position(|a| a == "--seeds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(0);
    // `--nseeds 40`: that many seeds instead of 10 (for tuning).
    let nseeds: u64 =
        args.iter().position(|a| a == "--nseeds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(SEEDS);
    // `--strategies tpe,random`: a subset.
    let chosen: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--strategies")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    // `--trials 200`: longer studies (the overhead of `gp` grows with the trials); the regret
    // is still read at 25, 50 and 100.
    let trials: usize =
        args.iter().position(|a| a == "--trials").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(TRIALS);
    let mut skip_next = false;
    let only: Vec<String> = args
        .iter()
        .filter(|a| {
            let skip = skip_next || a.starts_with("--");
            skip_next = *a == "--seeds" || *a == "--nseeds" || *a == "--strategies" || *a == "--trials";
            !skip
        })
        .cloned()
        .collect();
    let mut quality = Vec::new();
    for problem in problems() {
        if !only.is_empty() && !only.contains(&problem.name) {
            continue;
        }
        let program = compile_space(&problem.space);
        for (name, make) in strategies() {
            if chosen.as_ref().is_some_and(|c| !c.contains(&name)) {
                continue;
            }
            let (start, cpu0) = (Instant::now(), cpu_seconds());
            let curves: Vec<Vec<f64>> =
                (first..first + nseeds).map(|s| run(&program, &make, &*problem.f, s, trials.max(TRIALS))).collect();
            let (secs, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
            let at: Vec<f64> = CHECKPOINTS
                .iter()
                .map(|&c| median(curves.iter().map(|v| v[c - 1] - problem.optimum).collect()))
                .collect();
            if !json {
                println!(
                    "{:<13} {:<8} median regret @25 {:>10.4}  @50 {:>10.4}  @100 {:>10.4}   ({:.2} s, {:.2} s CPU for {} studies)",
                    problem.name, name, at[0], at[1], at[2], secs, cpu, nseeds
                );
                if args.iter().any(|a| a == "--per-seed") {
                    let last: Vec<String> =
                        curves.iter().map(|v| format!("{:.2e}", v[TRIALS - 1] - problem.optimum)).collect();
                    println!("    @100 by seed: {}", last.join(" "));
                }
            }
            let per_seed: Vec<f64> = curves.iter().map(|v| v[TRIALS - 1] - problem.optimum).collect();
            quality.push(
                serde_json::json!({"problem": problem.name, "strategy": name, "regret": at, "seconds": secs, "cpu": cpu,
                    "trials": trials.max(TRIALS), "studies": nseeds, "per_seed": per_seed}),
            );
        }
    }
    let mut over = Vec::new();
    if only.is_empty() || only.iter().any(|o| o == "overhead") {
        for (filled, reps) in [(1_000, 200), (5_000, 200)] {
            let ms = overhead(filled, reps);
            if !json {
                println!("overhead: tpe ask+tell at {filled} completed trials, 10-d: {ms:.3} ms/trial ({reps} trials)");
            }
            over.push(serde_json::json!({"filled": filled, "ms": ms}));
        }
    }
    if json {
        println!("{}", serde_json::json!({"quality": quality, "overhead": over}));
    }
}
