//! Multi-objective search quality (issue 21 item 5): ZDT1, ZDT2, ZDT3 (30 variables) and
//! DTLZ2 (12 variables, 3 objectives) from bench/search/moo.rs, every objective minimised,
//! each study 500 trials; the hypervolume of all completed trials read at 100, 200 and
//! 500 trials at the problem's two reference points (tight: 1.1 per objective; wide:
//! `(1.1, 11)` for ZDT, `3.5` per objective for DTLZ2; why in bench/search/moo.rs).
//!
//! Strategies are named as a `.bma` file names them (`nsga2`, `tpe`, `random`,
//! `nsga2(population: 100)`) and built by `bma::search::strategy`, the constructor the
//! study uses; `tpe-x<k>` is variant `k` of `BMA_TPE_TUNE` (bench/search/tune.rs).
//!
//! Run: `cargo bench --bench search_moo -- [--json] [--strategies nsga2,tpe,random]
//! [--problems zdt1,zdt2,zdt3,dtlz2] [--seeds 0] [--nseeds 10] [--trials 500] [--threads 2]`.
//! Seeds 0..9 are the reported ones, 100.. the tuning ones. `--json` prints one line per
//! study (read by `bench/search/moo.py`, which puts Optuna's NSGA-II and TPE beside it);
//! without it, the median hypervolumes. `cpu` is the study thread's own CPU time
//! (user + sys, from `/proc/thread-self/stat`, 10 ms ticks).
//!
//! `overhead` alone: the NSGA-II ask + tell at 1,000 and 5,000 completed trials (ZDT1,
//! d = 30, random trials), beside what a full non-dominated sort of every trial costs
//! (what each ask did before the pool). Nothing is asserted.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

#[path = "../bench/search/moo.rs"]
mod moo;
#[path = "../bench/search/split.rs"]
mod split;
#[path = "../bench/search/tune.rs"]
#[allow(dead_code)] // its `gp_variant`: GP does not take several objectives
mod tune;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bma::ir::{Point, Value};
use bma::rng::Rng;
use bma::search::{Ask, AskContext, Direction, History, Nsga2, Rank, Strategy, Trial, TrialState, rank};
use bma::space::Context;
use moo::MooProblem;

const CHECKPOINTS: [u64; 3] = [100, 200, 500];

/// One finished study: its job's index, hypervolumes (checkpoint x reference), CPU seconds.
type Outcome = (usize, Vec<Vec<f64>>, f64);

/// The space of `d` floats `x0..` in `[0, 1]` with `m` minimised objectives.
fn program(d: usize, m: usize) -> bma::ir::Program {
    let params: String = (0..d).map(|i| format!("    x{i}: float in 0.0..=1.0\n")).collect();
    let objectives: String = (0..m).map(|i| format!("    minimize x{i}\n")).collect();
    let text = format!("experiment moo {{\n  space {{\n{params}  }}\n  objective {{\n{objectives}  }}\n}}\n");
    let compiled = bma::compile(&bma::Source::new("moo.bma", text));
    assert!(!compiled.has_errors(), "the bench space must compile: {:?}", compiled.diagnostics);
    compiled.program
}

/// A fresh strategy named `name` for the space (`tpe-x<k>`: `BMA_TPE_TUNE` variant `k`).
fn make(name: &str, program: &bma::ir::Program) -> Box<dyn Strategy> {
    if let Some(k) = name.strip_prefix("tpe-x").and_then(|k| k.parse().ok()) {
        let options = tune::tpe_variant(k).expect("no such BMA_TPE_TUNE variant");
        return Box::new(bma::search::Tpe::with_options(&program.experiments[0].space, options));
    }
    let value = bma::study::parse_value(name).unwrap_or_else(|e| panic!("--strategies: {e}"));
    let ctx = Context { fns: &program.fns, data: None };
    let space = &program.experiments[0].space;
    bma::search::strategy(&value, space, ctx, &Point::new()).unwrap_or_else(|e| panic!("strategy `{name}`: {e}"))
}

/// This thread's CPU time (user + sys) in seconds.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) close with `)`.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3 (the state).
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// One study: the hypervolume at each checkpoint (rows) and reference (columns).
fn study(p: &MooProblem, program: &bma::ir::Program, strategy: &str, seed: u64, trials: u64) -> Vec<Vec<f64>> {
    let exp = &program.experiments[0];
    let ctx = Context { fns: &program.fns, data: None };
    let pins = Point::new();
    let m = p.references[0].len();
    let mut s = make(strategy, program);
    let mut history = History::new(vec![Direction::Minimize; m], Rank::Pareto);
    let mut points: Vec<Vec<f64>> = Vec::new();
    let mut out = Vec::new();
    for n in 0..trials {
        let mut rng = Rng::derive(seed, n);
        let ask =
            AskContext { space: &exp.space, ctx, pins: &pins, history: &history, number: n, budget: Some(trials) };
        let Ask::Point(point) = s.ask(&ask, &mut rng).unwrap() else { panic!("{strategy}: no point at trial {n}") };
        let x: Vec<f64> = (0..p.dims).map(|i| point.get(&format!("x{i}")).and_then(Value::as_f64).unwrap()).collect();
        let values = (p.f)(&x);
        points.push(values.clone());
        let mut t = Trial::new(n, point, seed);
        t.state = TrialState::Complete;
        t.values = values;
        history.upsert(t);
        if CHECKPOINTS.contains(&(n + 1)) {
            out.push(p.references.iter().map(|r| rank::hypervolume(&points, r).unwrap()).collect());
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// Milliseconds per NSGA-II ask + tell with `filled` complete trials, and per full sort
/// (fronts and the crowding of each) of as many trials.
fn overhead(filled: u64, reps: u64) -> (f64, f64) {
    let d = 30;
    let program = program(d, 2);
    let exp = &program.experiments[0];
    let ctx = Context { fns: &program.fns, data: None };
    let pins = Point::new();
    let mut history = History::new(vec![Direction::Minimize; 2], Rank::Pareto);
    let mut rng = Rng::new(3);
    let add = |history: &mut History, n: u64, point: Point| {
        let x: Vec<f64> = (0..d).map(|i| point.get(&format!("x{i}")).and_then(Value::as_f64).unwrap()).collect();
        let mut t = Trial::new(n, point, 0);
        t.state = TrialState::Complete;
        t.values = moo::zdt1(&x);
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "overhead") {
        for filled in [1_000, 5_000] {
            let (ask, sort) = overhead(filled, 200);
            println!(
                "nsga2 ask+tell at {filled} complete trials (ZDT1 d=30, population 50): {ask:.3} ms; a full sort of {filled} trials: {sort:.1} ms"
            );
        }
        return;
    }
    let json = args.iter().any(|a| a == "--json");
    let strategies = split::split_top(arg(&args, "--strategies").unwrap_or("nsga2,tpe,random"));
    let wanted: Vec<&str> = arg(&args, "--problems").unwrap_or("zdt1,zdt2,zdt3,dtlz2").split(',').collect();
    let first: u64 = arg(&args, "--seeds").map_or(0, |s| s.parse().unwrap());
    let nseeds: u64 = arg(&args, "--nseeds").map_or(10, |s| s.parse().unwrap());
    let trials: u64 = arg(&args, "--trials").map_or(500, |t| t.parse().unwrap());
    let threads: usize = arg(&args, "--threads").map_or(2, |t| t.parse().unwrap());
    let all = moo::problems();
    for w in &wanted {
        assert!(all.iter().any(|p| p.name == *w), "unknown problem `{w}` (zdt1, zdt2, zdt3, dtlz2)");
    }
    let problems: Vec<&MooProblem> = all.iter().filter(|p| wanted.contains(&p.name)).collect();
    let programs: Vec<bma::ir::Program> = problems.iter().map(|p| program(p.dims, p.references[0].len())).collect();
    let mut jobs = Vec::new();
    for s in &strategies {
        for k in 0..problems.len() {
            jobs.extend((first..first + nseeds).map(|seed| (s.clone(), k, seed)));
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some((s, k, seed)) = jobs.get(j) else { break };
                    let cpu = thread_cpu();
                    let hv = study(problems[*k], &programs[*k], s, *seed, trials);
                    let cpu = thread_cpu() - cpu;
                    if json {
                        let line = serde_json::json!({"strategy": s, "problem": problems[*k].name,
                            "seed": seed, "hv": hv, "cpu": cpu});
                        println!("{line}");
                    }
                    results.lock().unwrap().push((j, hv, cpu));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    eprintln!("{} studies in {:.1} s ({threads} threads)", results.len(), start.elapsed().as_secs_f64());
    if json {
        return;
    }
    let budgets: Vec<u64> = CHECKPOINTS.iter().copied().filter(|c| *c <= trials).collect();
    for s in &strategies {
        for (k, p) in problems.iter().enumerate() {
            let rows: Vec<&Outcome> = results.iter().filter(|(j, ..)| jobs[*j].0 == *s && jobs[*j].1 == k).collect();
            for (r, reference) in p.references.iter().enumerate() {
                let med: Vec<String> = (0..budgets.len())
                    .map(|c| format!("{:>9.4}", median(rows.iter().map(|row| row.1[c][r]).collect())))
                    .collect();
                println!("{:<6} {s:<10} ref {reference:?} median HV @{budgets:?}: {}", p.name, med.join(" "));
            }
            let cpu = median(rows.iter().map(|row| row.2).collect());
            println!("{:<6} {s:<10} median CPU per study {cpu:.2} s", p.name);
        }
    }
}
