//! Throughput of the PostgreSQL store: trials per second claimed and completed by
//! `--workers` separate processes on trivial trials (a random point, `x^2 + y^2`).
//!
//! `cargo bench --bench distributed -- --url postgres://... [--workers 8] [--trials 4000]`
//! (or `BMA_TEST_POSTGRES`). The parent creates a study and re-runs this binary as
//! each worker; every worker loops `claim_within` → `finished_since` (the trials the
//! others finished since its last look, what the trial loop reads before each
//! proposal) → `start` → `finish` until the budget is spent.
//! Prints one line: `bma: N trials, W processes, T s, R trials/s`.
//! `bench/distributed/run.sh` runs it beside Optuna's RDB storage.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::process::Command;
use std::time::Instant;

use bma::ir::{Point, Value};
use bma::rng::Rng;
use bma::search::{Direction, TrialState};
use bma::store::{Postgres, Store, StudySpec, spec_hash};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").or_else(|| std::env::var("BMA_TEST_POSTGRES").ok()).unwrap_or_default();
    if url.is_empty() {
        eprintln!("distributed bench: give --url postgres://... or set BMA_TEST_POSTGRES; skipped");
        return;
    }
    if let Some(study) = arg(&args, "--worker-of") {
        worker(&url, study.parse().unwrap(), arg(&args, "--trials").unwrap().parse().unwrap());
        return;
    }
    let workers: usize = arg(&args, "--workers").map(|w| w.parse().unwrap()).unwrap_or(8);
    let trials: u64 = arg(&args, "--trials").map(|w| w.parse().unwrap()).unwrap_or(4000);
    let store = Postgres::connect(&url).unwrap();
    let name = format!("bench-{}-{}", std::process::id(), bma::store::now());
    let text = format!("// bench study {name}");
    let study = store
        .open(&StudySpec {
            name: name.clone(),
            experiment: "bench".into(),
            spec_text: text.clone(),
            spec_hash: spec_hash(&text),
            objectives: vec![("f".into(), Direction::Minimize)],
            constraints: vec![],
            seed: 1,
            options: String::new(),
        })
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..workers)
        .map(|_| {
            Command::new(&exe)
                .args(["--url", &url, "--worker-of", &study.id.to_string(), "--trials", &trials.to_string()])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a worker failed");
    }
    let secs = start.elapsed().as_secs_f64();
    let h = store.history(study.id).unwrap();
    let complete = h.iter().filter(|t| t.state == TrialState::Complete).count() as u64;
    assert_eq!(complete, trials, "every trial complete exactly once");
    println!("bma: {trials} trials, {workers} processes, {secs:.2} s, {:.0} trials/s", trials as f64 / secs);
}

fn worker(url: &str, study: i64, budget: u64) {
    let store = Postgres::connect(url).unwrap();
    let me = format!("bench:{}", std::process::id());
    let (mut cursor, mut seen) = (0, 0);
    while let Some(claim) = store.claim_within(study, &me, Some(budget)).unwrap() {
        // What the trial loop reads before each proposal: the others' newly finished trials.
        let (fresh, next) = store.finished_since(study, cursor).unwrap();
        cursor = next;
        seen += fresh.len();
        let mut rng = Rng::derive(1, claim.number);
        let (x, y) = (rng.uniform(-5.0, 10.0), rng.uniform(0.0, 15.0));
        let mut p = Point::new();
        p.insert("x".into(), Value::Float(x));
        p.insert("y".into(), Value::Float(y));
        store.start(study, claim.number, &p, claim.number, &me).unwrap();
        let mut t = bma::search::Trial::new(claim.number, p, claim.number);
        t.state = TrialState::Complete;
        t.values = vec![x * x + y * y];
        t.duration = 0.0;
        std::hint::black_box(seen);
        store.finish(study, &t).unwrap();
    }
}
