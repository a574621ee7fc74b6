//! The broad search suite, our side: BBOB (bench/search/bbob.rs) and the mixed and
//! conditional spaces (bench/search/problems.rs), each study `--trials` trials (200)
//! through the `Strategy::ask` / `History::upsert` loop, the regret (best so far minus
//! the optimum) read at 25, 50, 100 and 200 trials.
//!
//! Strategies are named as a `.bma` file names them (`tpe`, `random`, `tpe(startup: 5)`,
//! and whatever `strategy =` accepts once merged, `gp` and `auto` included) and built by
//! `bma::search::strategy`, the constructor the study uses; `tpe-x0`, `tpe-x1`, ... are
//! tuning variants of our TPE from `BMA_TPE_TUNE` (`;`-separated `key=value,...`
//! changes of `TpeOptions::default()`), `gp-x<k>` and `auto-x<k>` likewise from `BMA_GP_TUNE`
//! and `BMA_AUTO_TUNE`. An `auto` study's JSON line also carries the GP fits `auto`
//! checked and the trial count of its hand-over to `tpe` (key `auto`).
//!
//! Run: `cargo bench --bench search_suite -- [--json] [--strategies tpe,random]
//! [--problems bbob-f3-d5,int-quad,...] [--instances 3,4,5] [--seeds 100..110]
//! [--other-seeds 1000..1010] [--trials 200] [--parallel 1] [--threads 2] [--losses] [--points]`.
//! `--parallel K` runs each study K trials at once: trial `n` is asked seeing only the
//! trials numbered `n - K` and below complete (the others pending, as in a study with
//! `parallel = K`); the line then carries `"parallel": K`. BBOB problems are
//! `bbob-f<1..24>-d<dim>` and take every `--instances`; the others (`int-quad`,
//! `cat-rastrigin`, `conditional`, `branin`, `hartmann6`, `rosenbrock10`, `ackley10`,
//! `mixed`) have no instances and use `--other-seeds`. `--json` prints one JSON line per
//! study (read by `bench/search/suite.py`, which puts Optuna beside it and makes the
//! tables; `--losses` adds every trial's loss in trial order, key `losses`; `--points` its
//! coordinates `x0, x1, ...` where the problem names its parameters so (BBOB, Branin,
//! Hartmann6), key `points`, and on the attractive sector (f6) each trial's count of
//! rotated coordinates on their steep side and its distance to the optimum in them, key
//! `sector`); without it, the median regret per problem. Nothing is asserted.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

#[path = "../bench/search/bbob.rs"]
mod bbob;
#[path = "../bench/search/problems.rs"]
mod problems;
#[path = "../bench/search/split.rs"]
mod split;
#[path = "../bench/search/tune.rs"]
mod tune;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bma::ir::{Point, Value};
use bma::rng::Rng;
use bma::search::auto::Auto;
use bma::search::{Ask, AskContext, Direction, History, Rank, Strategy, Tpe, Trial, TrialState};
use bma::space::Context;
use problems::{Problem, compile_space, floats};

const CHECKPOINTS: [usize; 4] = [25, 50, 100, 200];

/// The BBOB function a problem name such as `bbob-f3-d5` names, at `instance`.
fn bbob_of(name: &str, instance: usize) -> Option<bbob::Bbob> {
    let (f, d) = name.strip_prefix("bbob-f")?.split_once("-d")?;
    let (f, d): (usize, usize) = (f.parse().ok()?, d.parse().ok()?);
    ((1..=24).contains(&f) && d >= 2).then(|| bbob::Bbob::new(f, d, instance))
}

/// A problem by name: `bbob-f3-d5`, or one of bench/search/problems.rs.
fn problem(name: &str, instance: usize) -> Option<Problem> {
    if name.starts_with("bbob-f") {
        let b = bbob_of(name, instance)?;
        let d = b.d;
        let optimum = b.fopt;
        let f = move |p: &Point| {
            let x: Vec<f64> = (0..d).map(|i| p.get(&format!("x{i}")).and_then(Value::as_f64).unwrap()).collect();
            b.eval(&x)
        };
        return Some(Problem { name: name.into(), space: floats(d, -5.0, 5.0), f: Box::new(f), optimum });
    }
    problems::mixed_spaces().into_iter().chain(problems::five()).find(|p| p.name == name)
}

/// This thread's CPU time (user + system) in seconds, from /proc (Linux; 0 elsewhere), in
/// the kernel's usual 100 ticks per second.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// A fresh strategy named `name` for the problem's space.
fn make(name: &str, program: &bma::ir::Program) -> Box<dyn Strategy> {
    let space = &program.experiments[0].space;
    if let Some(k) = name.strip_prefix("tpe-x").and_then(|k| k.parse().ok()) {
        return Box::new(Tpe::with_options(space, tune::tpe_variant(k).expect("no such BMA_TPE_TUNE variant")));
    }
    if let Some(k) = name.strip_prefix("gp-x").and_then(|k| k.parse().ok()) {
        return Box::new(bma::search::Gp::with_options(
            space,
            tune::gp_variant(k).expect("no such BMA_GP_TUNE variant"),
        ));
    }
    let value = bma::study::parse_value(name).unwrap_or_else(|e| panic!("--strategies: {e}"));
    let ctx = Context { fns: &program.fns, data: None };
    bma::search::strategy(&value, space, ctx, &Point::new()).unwrap_or_else(|e| panic!("strategy `{name}`: {e}"))
}

/// How each study runs: its trials, how many at once, and whether to keep the points.
#[derive(Clone, Copy)]
struct Shape {
    trials: usize,
    parallel: u64,
    points: bool,
}

/// One study: the regret at each checkpoint within `trials`, and for `auto` (and its
/// `auto-x<k>` variants) the fits it checked and its hand-over to `tpe`, as JSON.
fn study(
    problem: &Problem,
    program: &bma::ir::Program,
    strategy: &str,
    seed: u64,
    shape: Shape,
) -> (Vec<f64>, Trace, serde_json::Value) {
    let auto = match strategy.strip_prefix("auto-x").and_then(|k| k.parse().ok()) {
        Some(k) => Some(Auto::with_options(tune::auto_variant(k).expect("no such BMA_AUTO_TUNE variant"))),
        None if strategy == "auto" => Some(Auto::new()),
        None => None,
    };
    let Some(mut a) = auto else {
        let mut s = make(strategy, program);
        let (regret, trace) = run(problem, program, s.as_mut(), strategy, seed, shape);
        return (regret, trace, serde_json::Value::Null);
    };
    let (regret, trace) = run(problem, program, &mut a, strategy, seed, shape);
    let checks: Vec<serde_json::Value> = a
        .checks()
        .iter()
        .map(|q| {
            serde_json::json!({"trials": q.trials, "noise_share": q.noise_share, "loo_rank": q.loo_rank,
                "loo_density": q.loo_density, "max_length": q.max_length, "near_rank": q.near_rank, "local_rank": q.local_rank,
                "local_length": q.local_length, "near_radius": q.near_radius, "repeats": q.repeats, "recent_bests": q.recent_bests})
        })
        .collect();
    (regret, trace, serde_json::json!({"checks": checks, "switch": a.switch().map(|s| s.after)}))
}

/// Each trial's loss and, when asked for, its coordinates `x0, x1, ...` (as many as the
/// point has), in trial order.
#[derive(Default)]
struct Trace {
    losses: Vec<f64>,
    points: Vec<Vec<f64>>,
}

fn run(
    problem: &Problem,
    program: &bma::ir::Program,
    s: &mut dyn Strategy,
    strategy: &str,
    seed: u64,
    Shape { trials, parallel, points }: Shape,
) -> (Vec<f64>, Trace) {
    let exp = &program.experiments[0];
    let ctx = Context { fns: &program.fns, data: None };
    let pins = Point::new();
    let mut history = History::new(vec![Direction::Minimize], Rank::default());
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    let mut trace = Trace::default();
    let mut running: std::collections::VecDeque<Trial> = std::collections::VecDeque::new();
    for n in 0..trials as u64 {
        // Trials asked `parallel` or more asks ago have finished.
        while running.front().is_some_and(|t| t.number + parallel.max(1) <= n) {
            history.upsert(running.pop_front().unwrap());
        }
        let mut rng = Rng::derive(seed, n);
        let budget = Some(trials as u64);
        let ask = AskContext { space: &exp.space, ctx, pins: &pins, history: &history, number: n, budget };
        let Ask::Point(point) = s.ask(&ask, &mut rng).unwrap() else { panic!("{strategy}: no point at trial {n}") };
        let y = (problem.f)(&point);
        best = best.min(y);
        trace.losses.push(y);
        if points {
            trace.points.push((0..).map_while(|i| point.get(&format!("x{i}")).and_then(Value::as_f64)).collect());
        }
        if CHECKPOINTS.contains(&(n as usize + 1)) {
            out.push(best - problem.optimum);
        }
        let mut t = Trial::new(n, point, seed);
        t.state = TrialState::Complete;
        t.values = vec![y];
        running.push_back(t);
    }
    (out, trace)
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn range(s: &str) -> std::ops::Range<u64> {
    let (a, b) = s.split_once("..").expect("a range a..b");
    a.parse().unwrap()..b.parse().unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

struct Job {
    strategy: String,
    problem: String,
    instance: usize,
    seed: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let (with_losses, with_points) = (args.iter().any(|a| a == "--losses"), args.iter().any(|a| a == "--points"));
    let strategies = split::split_top(arg(&args, "--strategies").unwrap_or("tpe,random"));
    let trials: usize = arg(&args, "--trials").map_or(200, |t| t.parse().unwrap());
    let parallel: u64 = arg(&args, "--parallel").map_or(1, |t| t.parse().unwrap());
    let shape = Shape { trials, parallel, points: with_points };
    let instances: Vec<usize> =
        arg(&args, "--instances").unwrap_or("3,4,5").split(',').map(|i| i.parse().unwrap()).collect();
    let seeds = range(arg(&args, "--seeds").unwrap_or("100..110"));
    let other_seeds = range(arg(&args, "--other-seeds").unwrap_or("1000..1010"));
    let threads: usize = arg(&args, "--threads").map_or(2, |t| t.parse().unwrap());
    let names: Vec<String> = match arg(&args, "--problems") {
        Some(p) => p.split(',').map(str::to_string).collect(),
        None => [2, 5, 10, 20]
            .iter()
            .flat_map(|d| (1..=24).map(move |f| format!("bbob-f{f}-d{d}")))
            .chain(problems::mixed_spaces().into_iter().chain(problems::five()).map(|p| p.name))
            .collect(),
    };
    let mut jobs = Vec::new();
    for s in &strategies {
        for p in &names {
            assert!(problem(p, 1).is_some(), "unknown problem `{p}`");
            if p.starts_with("bbob-") {
                for &i in &instances {
                    jobs.extend(seeds.clone().map(|seed| Job {
                        strategy: s.clone(),
                        problem: p.clone(),
                        instance: i,
                        seed,
                    }));
                }
            } else {
                jobs.extend(other_seeds.clone().map(|seed| Job {
                    strategy: s.clone(),
                    problem: p.clone(),
                    instance: 0,
                    seed,
                }));
            }
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Vec<f64>, f64)>> = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(k) else { break };
                    let p = problem(&job.problem, job.instance).unwrap();
                    let program = compile_space(&p.space);
                    let (t, cpu0) = (Instant::now(), thread_cpu());
                    let (regret, trace, auto) = study(&p, &program, &job.strategy, job.seed, shape);
                    let (secs, cpu) = (t.elapsed().as_secs_f64(), thread_cpu() - cpu0);
                    if json {
                        let mut line = serde_json::json!({"strategy": job.strategy, "problem": job.problem,
                            "instance": job.instance, "seed": job.seed, "regret": regret, "seconds": secs, "cpu": cpu});
                        if !auto.is_null() {
                            line["auto"] = auto;
                        }
                        if parallel > 1 {
                            line["parallel"] = serde_json::json!(parallel);
                        }
                        if with_losses {
                            line["losses"] = serde_json::json!(trace.losses);
                        }
                        if with_points {
                            line["points"] = serde_json::json!(trace.points);
                            if let Some(b) = bbob_of(&job.problem, job.instance).filter(|b| b.f == 6) {
                                let sector: Vec<(usize, f64)> =
                                    trace.points.iter().filter_map(|x| b.sector(x)).collect();
                                line["sector"] = serde_json::json!(sector);
                            }
                        }
                        println!("{line}");
                    }
                    results.lock().unwrap().push((k, regret, secs));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    eprintln!("{} studies in {:.1} s ({threads} threads)", results.len(), start.elapsed().as_secs_f64());
    if !json {
        for s in &strategies {
            for p in &names {
                let rows: Vec<&Vec<f64>> = results
                    .iter()
                    .filter(|(k, ..)| jobs[*k].strategy == *s && jobs[*k].problem == *p)
                    .map(|(_, r, _)| r)
                    .collect();
                let med: Vec<String> = (0..rows[0].len())
                    .map(|i| format!("{:>10.4}", median(rows.iter().map(|r| r[i]).collect())))
                    .collect();
                println!("{p:<22} {s:<10} median regret @25/50/100/200: {}", med.join(" "));
            }
        }
    }
}
