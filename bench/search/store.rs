//! Store overhead: ask + tell per trial with the SQLite store (file, WAL), at 1,000
//! and 5,000 completed trials in a 10-d space, through the real trial loop
//! (`TrialLoop::run` with a pure-function experiment). Prints a table; see
//! bench/search/RESULTS.md. Run: `cargo bench --bench store`.
//!
//! `TrialLoop::run` loads the whole history from the store once when it starts (what a
//! resumed study pays once): that load is timed on its own (a run with nothing left to
//! do) and taken out of the per-trial figure, which is the steady state of the loop:
//! claim, ask, start, evaluate, finish, three committed SQLite transactions per trial.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bma::ir::{Point, Value};
use bma::search::prune::NoPruner;
use bma::search::study::{FunctionEvaluator, Objectives, Quiet, Settings, TrialLoop};
use bma::search::{Rank, Trial, TrialState};
use bma::store::{Sqlite, Store};
use bma::{Source, space};

const SPEC: &str = "
experiment sphere10 {
  space {
    x0: float in -5.0..=5.0
    x1: float in -5.0..=5.0
    x2: float in -5.0..=5.0
    x3: float in -5.0..=5.0
    x4: float in -5.0..=5.0
    x5: float in -5.0..=5.0
    x6: float in -5.0..=5.0
    x7: float in -5.0..=5.0
    x8: float in -5.0..=5.0
    x9: float in -5.0..=5.0
  }
  objective { minimize x0^2 + x1^2 + x2^2 + x3^2 + x4^2 + x5^2 + x6^2 + x7^2 + x8^2 + x9^2 }
}
";

/// Delegates to a strategy and adds up the time its asks take.
struct Timed {
    inner: Box<dyn bma::search::Strategy>,
    spent: Arc<Mutex<Duration>>,
}

impl bma::search::Strategy for Timed {
    fn ask(
        &mut self,
        ctx: &bma::search::AskContext<'_>,
        rng: &mut bma::rng::Rng,
    ) -> Result<bma::search::Ask, bma::search::SearchError> {
        let t0 = Instant::now();
        let r = self.inner.ask(ctx, rng);
        *self.spent.lock().unwrap() += t0.elapsed();
        r
    }
}

fn main() {
    let compiled = bma::compile(&Source::new("bench.bma", SPEC));
    assert!(!compiled.has_errors());
    let exp = &compiled.program.experiments[0];
    let ctx = space::Context { fns: &compiled.program.fns, data: None };
    let measured = 1000u64;
    println!(
        "| completed | strategy | store | ask+tell per trial (ms) | of which ask (ms) | store calls only per trial (ms) | resume: history load (ms) |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for &n in &[1000u64, 5000] {
        for strategy in ["random", "tpe"] {
            let dir = std::env::temp_dir().join(format!("bma-store-bench-{}-{n}-{strategy}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let store = Sqlite::open(&dir.join("study.db")).unwrap();
            let spec = TrialLoop::spec("b", exp, SPEC, 1);
            let stored = store.open(&spec).unwrap();
            // Fill: n completed trials, written through the store as the loop would.
            let mut rng = bma::rng::Rng::new(9);
            let t0 = Instant::now();
            for _ in 0..n {
                let c = store.claim(stored.id, "fill", None).unwrap().unwrap();
                let p: Point = space::sample(&exp.space, ctx, &Point::new(), &mut rng).unwrap();
                store.start(stored.id, c.number, &p, 0, "fill").unwrap();
                let mut t = Trial::new(c.number, p.clone(), 0);
                t.values = vec![p.values().map(|v| v.as_f64().unwrap().powi(2)).sum()];
                t.state = TrialState::Complete;
                store.finish(stored.id, &t).unwrap();
            }
            let store_only = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
            let strategy_value = Value::sym(strategy);
            let spent = Arc::new(Mutex::new(Duration::ZERO));
            let study_for = |trials: u64| TrialLoop {
                store: &store,
                study: stored.clone(),
                experiment: exp,
                fns: &compiled.program.fns,
                data: None,
                objectives: Objectives::new(exp),
                strategy: Box::new(Timed {
                    inner: bma::search::strategy(&strategy_value, &exp.space, ctx, &Point::new()).unwrap(),
                    spent: spent.clone(),
                }),
                pruner: Box::new(NoPruner),
                pins: Point::new(),
                rank: Rank::Lexicographic,
                settings: Settings { trials: Some(trials), parallel: 1, ..Settings::default() },
                worker: "bench".into(),
            };
            // A run with nothing left to do: the history load alone.
            let t0 = Instant::now();
            study_for(n).run(&FunctionEvaluator, &Quiet, &AtomicBool::new(false)).unwrap();
            let load = t0.elapsed().as_secs_f64() * 1e3;
            *spent.lock().unwrap() = Duration::ZERO;
            let t0 = Instant::now();
            let (h, _) = study_for(n + measured).run(&FunctionEvaluator, &Quiet, &AtomicBool::new(false)).unwrap();
            let per = (t0.elapsed().as_secs_f64() * 1e3 - load) / measured as f64;
            assert_eq!(h.trials.len() as u64, n + measured);
            let ask = spent.lock().unwrap().as_secs_f64() * 1e3 / measured as f64;
            println!(
                "| {n} | {strategy} | SQLite file, WAL, synchronous=NORMAL | {per:.3} | {ask:.3} | {store_only:.3} | {load:.1} |"
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
