//! Epoch time of bma's trainer (burn, flex backend) on digits, for `bench/train/run.sh`.
//!
//! `cargo bench --bench train -- MODEL THREADS EPOCHS` with MODEL `mlp` (64-128-64-10),
//! `cnn` (conv 1→8 3x3 valid, relu, conv 8→16 3x3 valid, relu, flatten, dense 10) or
//! `cnn-bn` (the largest CNN of examples/digits.bma).
//! Batch 64, adam(1e-3), cross-entropy, split [0.8, 0.1, 0.1] seed 1. Prints one JSON
//! line: the per-epoch training times (s) and the final test accuracy.
//!
//! `cargo bench --bench train -- parallel MODEL N EPOCHS` trains N copies (seeds 1..=N)
//! one after another, then N at once (one thread each, each in its own 1-thread pool),
//! and prints trainings per second for both, plus the OS threads the process ended with.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use bma::ir::Value;
use bma::source::Source;
use bma::train::{self, Control, DeviceKind};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.first().map(String::as_str) == Some("parallel") {
        return parallel(&args[1..]);
    }
    let model = args.first().map_or("mlp", String::as_str);
    let threads: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
    let epochs: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(20);
    let (sub, data, mut cfg) = setup(model, epochs);
    cfg.threads = threads;
    let mut threads_seen = 0;
    let out = train::fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| {
        threads_seen = threads_seen.max(os_threads());
        Control::Continue
    });
    let times: Vec<f64> = out.epochs.iter().map(|m| m["epoch_time"]).collect();
    let model_ref = out.model.expect("trained");
    let test = model_ref.evaluate(&data.test, &data.info).expect("evaluates");
    println!(
        "{{\"framework\":\"burn-flex\",\"model\":\"{model}\",\"threads\":{threads},\"params\":{},\"epoch_times\":{:?},\"test_accuracy\":{:.4},\"os_threads\":{}}}",
        model_ref.param_count(),
        times,
        test["accuracy"],
        threads_seen
    );
}

fn parallel(args: &[String]) {
    let model = args.first().map_or("mlp", String::as_str);
    let n: u64 = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(2);
    let epochs: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(20);
    let (sub, data, cfg) = setup(model, epochs);
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let one = |seed: u64| {
        let mut c = cfg.clone();
        c.seed = seed;
        train::fit(DeviceKind::Cpu, &sub, &c, &data, |_, _| {
            seen.fetch_max(os_threads(), std::sync::atomic::Ordering::Relaxed);
            Control::Continue
        })
        .metrics["accuracy"]
    };
    let t = Instant::now();
    let seq: Vec<f64> = (1..=n).map(one).collect();
    let seq_rate = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let par: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=n).map(|seed| s.spawn(move || one(seed))).collect();
        hs.into_iter().map(|h| h.join().expect("trains")).collect()
    });
    let par_rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"parallel\",\"model\":\"{model}\",\"trainings\":{n},\"epochs\":{epochs},\"sequential_per_s\":{seq_rate:.3},\"parallel_per_s\":{par_rate:.3},\"speedup\":{:.2},\"same_results\":{},\"os_threads\":{}}}",
        par_rate / seq_rate,
        seq == par,
        seen.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Threads of this process now (Linux). While training: main + one pool worker per
/// trial (+ one thread per parallel trial); a global rayon pool would add one per core.
fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn setup(model: &str, epochs: usize) -> (bma::ir::SubModel, bma::data::Dataset, train::TrainConfig) {
    let body = match model {
        "cnn" => {
            "conv2d(8, kernel: 3, padding: valid) relu conv2d(16, kernel: 3, padding: valid) relu flatten dense(10)"
        }
        // The largest CNN of examples/digits.bma: repeat 3 { conv_bn(32, kernel: 3) }, global pool.
        "cnn-bn" => {
            "conv2d(32, kernel: 3, padding: same) batchnorm relu conv2d(32, kernel: 3, padding: same) batchnorm relu \
             conv2d(32, kernel: 3, padding: same) batchnorm relu global_avgpool dense(10)"
        }
        _ => "flatten dense(128) relu dense(64) relu dense(10)",
    };
    let src = format!(
        "experiment b {{\n data = digits(split: [0.8, 0.1, 0.1], seed: 1)\n model {{ {body} }}\n train {{ optimizer = adam(0.001) epochs = {epochs} batch = 64 }}\n objective {{ maximize accuracy }}\n}}\n"
    );
    let compiled = bma::compile(&Source::new("bench.bma", src));
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) = bma::pins::expand_with_pins(&compiled, exp, &Default::default()).expect("expands");
    let data_value = Value::Call(bma::ir::CallValue {
        name: "digits".into(),
        args: vec![
            (Some("split".into()), Value::List(vec![Value::Float(0.8), Value::Float(0.1), Value::Float(0.1)])),
            (Some("seed".into()), Value::Int(1)),
        ],
    });
    let data = bma::data::load(&data_value, Path::new(".")).expect("digits");
    let cfg = train::TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 7).expect("config");
    (sub, data, cfg)
}
