//! Epoch time of bma's trainer (burn, flex backend) on digits, for `bench/train/run.sh`.
//!
//! `cargo bench --bench train -- MODEL THREADS EPOCHS` with MODEL `mlp` (64-128-64-10),
//! `cnn` (conv 1→8 3x3 valid, relu, conv 8→16 3x3 valid, relu, flatten, dense 10) or
//! `cnn-bn` (the largest CNN of examples/digits.bma).
//! Batch 64, adam(1e-3), cross-entropy, split [0.8, 0.1, 0.1] seed 1. Prints one JSON
//! line: the per-epoch training times (s) and the final test accuracy.
//!
//! `fashion-cnn` and `fashion-small` train on Fashion-MNIST (`FASHION_DIR`, default Debian's
//! `/usr/share/datasets/fashion-mnist`, gzipped IDX): 58.8k training rows, the official 10k
//! test set (`fashion-dwsep`, bench/layers/dwsep.sh, too); they also print to stderr how long `fit` spent beyond the training steps.
//!
//! `cargo bench --bench train -- parallel MODEL N EPOCHS` trains N copies (seeds 1..=N)
//! one after another, then N at once (one thread each, each in its own 1-thread pool),
//! and prints trainings per second for both, plus the OS threads the process ended with.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use bma::ir::Value;
use bma::source::Source;
use bma::train::{self, Control, DeviceKind};

fn main() {
    // The allocator as `bma` sets it, so that the benchmark measures what `bma run` runs.
    bma::configure_allocator();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    match args.first().map(String::as_str) {
        Some("parallel") => return parallel(&args[1..]),
        Some("search") => return search(&args[1..]),
        _ => {}
    }
    let model = args.first().map_or("mlp", String::as_str);
    let threads: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
    let epochs: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(20);
    let (sub, data, mut cfg) = setup(model, epochs);
    cfg.threads = threads;
    let mut threads_seen = 0;
    let fit_start = Instant::now();
    // CPU seconds of the process at each epoch's end (training steps and the valid pass).
    let cpu_start = cpu_seconds();
    let mut cpu_marks = vec![cpu_start];
    let out = train::fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| {
        threads_seen = threads_seen.max(os_threads());
        cpu_marks.push(cpu_seconds());
        Control::Continue
    });
    let cpu_fit = cpu_seconds() - cpu_start;
    let epoch_cpu: Vec<f64> = cpu_marks.windows(2).map(|w| w[1] - w[0]).collect();
    let fit_s = fit_start.elapsed().as_secs_f64();
    let times: Vec<f64> = out.epochs.iter().map(|m| m["epoch_time"]).collect();
    // What `fit` spends beyond the training steps: initialisation and expressivity, a valid
    // pass per epoch, and after the epochs the valid and train metrics and the speed runs.
    let steps: f64 = times.iter().sum();
    eprintln!(
        "fit {fit_s:.2} s wall ({cpu_fit:.2} s CPU): training steps {steps:.2} s, beyond them {:.2} s ({:.1} %), of \
         which after the epochs {:.2} s; CPU per epoch (steps and valid pass) {epoch_cpu:.2?}",
        fit_s - steps,
        100.0 * (fit_s - steps) / steps,
        fit_s - out.metrics.get("train_time").copied().unwrap_or(fit_s)
    );
    let model_ref = out.model.expect("trained");
    let eval_start = Instant::now();
    let test = model_ref.evaluate(&data.test, &data.info).expect("evaluates");
    let eval_s = eval_start.elapsed().as_secs_f64();
    if model.starts_with("fashion") {
        // Inference on the test split: as evaluation runs it (chunks of `memory::EVAL_ROWS`
        // rows), and in chunks of 64 rows, the training batch.
        let (n, f) = (data.test.n, data.features());
        // Image rows are held as bytes (`stored`): gather them as f32 once, outside the timing.
        let mut x = Vec::new();
        data.test.gather(&(0..n).collect::<Vec<_>>(), f, &mut x).expect("test rows");
        let t = Instant::now();
        model_ref.predict(&x, n).expect("predicts");
        let whole = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for start in (0..n).step_by(64) {
            let rows = 64.min(n - start);
            model_ref.predict(&x[start * f..(start + rows) * f], rows).expect("predicts");
        }
        let small = t.elapsed().as_secs_f64();
        eprintln!(
            "test evaluation of {n} rows {eval_s:.2} s; inference alone {whole:.2} s in chunks of {} rows, {small:.2} s \
             in chunks of 64",
            train::memory::EVAL_ROWS
        );
    }
    println!(
        "{{\"framework\":\"burn-flex\",\"model\":\"{model}\",\"threads\":{threads},\"params\":{},\"epoch_times\":{:?},\"epoch_cpu\":{:?},\"test_accuracy\":{:.4},\"os_threads\":{}}}",
        model_ref.param_count(),
        times,
        epoch_cpu,
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

/// A proxy for `bma run examples/digits.bma` until the search engine lands: TRIALS random
/// points of the example's space (seeded), points over the `params <= 60k` constraint
/// skipped before training, JOBS trials at once, 30 epochs unless pruned (random search,
/// not TPE). Prints each finished trial and the time the first one reached 0.97 test
/// accuracy. Pruning: asynchronous successive halving as Optuna's `SuccessiveHalvingPruner`
/// (rungs at epochs 2, 6, 18; a trial goes on only if in the top third of its rung so far).
fn search(args: &[String]) {
    let trials_n: u64 = args.first().and_then(|t| t.parse().ok()).unwrap_or(60);
    let jobs: u64 = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(2);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits.bma");
    let text = std::fs::read_to_string(&path).expect("examples/digits.bma");
    let compiled = bma::compile(&Source::from_path(&path, text));
    let exp = &compiled.program.experiments[0];
    let start = Instant::now();
    let trials = train::Trials::new(&compiled.program, exp, path.parent().expect("examples"), DeviceKind::Cpu)
        .expect("loads digits");
    let next = std::sync::atomic::AtomicU64::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    let rungs = std::sync::Mutex::new(std::collections::BTreeMap::<usize, Vec<f64>>::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= trials_n {
                        break;
                    }
                    let mut rng = bma::rng::Rng::derive(42, n);
                    let mut free = bma::ir::Point::new();
                    for p in exp.space.free() {
                        if let bma::ir::ParamKind::Free(d) = &p.kind {
                            free.insert(p.name.clone(), sample(d, &mut rng));
                        }
                    }
                    let Ok(point) = exp.space.resolve(&free, &compiled.program.fns, Some(&trials.data.info)) else {
                        continue;
                    };
                    let body = exp.model.as_ref().expect("a model");
                    match bma::ir::expand(&compiled.program, body, &point, &trials.data.info) {
                        Ok(sub) if sub.params <= 60_000 => {}
                        _ => continue,
                    }
                    let out = trials.run(&point, n, |epoch, m| asha(&rungs, epoch, m["accuracy"]));
                    if out.status != train::Status::Completed {
                        continue;
                    }
                    let Some(model) = out.model else { continue };
                    let test = model.evaluate(&trials.data.test, &trials.data.info).expect("evaluates")["accuracy"];
                    let elapsed = start.elapsed().as_secs_f64();
                    println!(
                        "{{\"trial\":{n},\"elapsed\":{elapsed:.2},\"valid\":{:.4},\"test\":{test:.4},\"params\":{},\"point\":{}}}",
                        out.metrics["accuracy"],
                        out.metrics["params"],
                        serde_json::to_string(&point).unwrap_or_default()
                    );
                    results.lock().expect("lock").push((elapsed, out.metrics["accuracy"], test));
                }
            });
        }
    });
    let mut r = results.into_inner().expect("lock");
    r.sort_by(|a, b| a.0.total_cmp(&b.0));
    let hit = r.iter().find(|x| x.2 >= 0.97).map(|x| x.0);
    let best = r.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    println!(
        "{{\"summary\":\"bma-proxy-random\",\"trials\":{trials_n},\"jobs\":{jobs},\"total_s\":{:.2},\"first_test_0.97_s\":{},\"finished\":{},\"best_valid\":{},\"best_test\":{}}}",
        start.elapsed().as_secs_f64(),
        json(hit),
        r.len(),
        json(best.map(|b| b.1)),
        json(best.map(|b| b.2))
    );
}

/// Successive halving, eta 3, minimum 2 epochs: at a rung, stop unless in the top third.
fn asha(rungs: &std::sync::Mutex<std::collections::BTreeMap<usize, Vec<f64>>>, epoch: usize, value: f64) -> Control {
    if ![2, 6, 18].contains(&epoch) {
        return Control::Continue;
    }
    let mut r = rungs.lock().expect("lock");
    let seen = r.entry(epoch).or_default();
    seen.push(value);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let keep = (sorted.len() / 3).max(1);
    if value >= sorted[keep - 1] { Control::Continue } else { Control::Stop }
}

fn json(v: Option<f64>) -> String {
    v.map_or("null".to_string(), |x| format!("{x:.4}"))
}

fn sample(d: &bma::ir::Domain, rng: &mut bma::rng::Rng) -> Value {
    match d {
        bma::ir::Domain::Int { lo, hi, step, .. } => {
            let k = (hi - lo) / step.max(&1) + 1;
            Value::Int(lo + step.max(&1) * rng.below(k as u64) as i64)
        }
        bma::ir::Domain::Float { lo, hi, log, .. } => {
            Value::Float(if *log { rng.uniform(lo.ln(), hi.ln()).exp() } else { rng.uniform(*lo, *hi) })
        }
        bma::ir::Domain::Choice(v) => v[rng.index(v.len())].clone(),
    }
}

/// User and system CPU seconds of this process so far (Linux, `/proc/self/stat`, 100 Hz ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name in parentheses: utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
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
        "mlp" => "flatten dense(128) relu dense(64) relu dense(10)",
        // Fashion-MNIST (28x28): the CNN of examples/fashion.bma's search, at its smaller width,
        // and at its larger one.
        "fashion-cnn" => {
            "conv2d(32, kernel: 3, padding: same) batchnorm relu maxpool conv2d(64, kernel: 3, padding: same) \
             batchnorm relu maxpool flatten dense(128) relu dense(10)"
        }
        "fashion-small" => {
            "conv2d(16, kernel: 3, padding: same) batchnorm relu maxpool conv2d(32, kernel: 3, padding: same) \
             batchnorm relu maxpool flatten dense(64) relu dense(10)"
        }
        // The depthwise-separable CNN of bench/layers/dwsep.sh (the speed target):
        // three stages of depthwise 3x3 (stride 2, 2, 1) and pointwise 1x1, bn, relu.
        "fashion-dwsep" => {
            "conv2d(32, kernel: 3) batchnorm relu \
             conv2d(32, kernel: 3, stride: 2, groups: 32) conv2d(64, kernel: 1) batchnorm relu \
             conv2d(64, kernel: 3, stride: 2, groups: 64) conv2d(128, kernel: 1) batchnorm relu \
             conv2d(128, kernel: 3, groups: 128) conv2d(128, kernel: 1) batchnorm relu global_avgpool dense(10)"
        }
        // Any other MODEL is a model body written out (`"conv2d(8) relu flatten dense(10)"`).
        body => body,
    };
    let data_src = if model.starts_with("fashion") {
        // The official files as scripts/install-data.sh installs them; 58.8k training rows,
        // the official test set as the test split.
        let dir = std::env::var("FASHION_DIR").unwrap_or_else(|_| "/usr/share/datasets/fashion-mnist".to_string());
        format!(
            "idx(\"{dir}/train-images-idx3-ubyte.gz\", \"{dir}/train-labels-idx1-ubyte.gz\", test: \
             idx(\"{dir}/t10k-images-idx3-ubyte.gz\", \"{dir}/t10k-labels-idx1-ubyte.gz\"), split: [0.98, 0.02], seed: 1)"
        )
    } else {
        "digits(split: [0.8, 0.1, 0.1], seed: 1)".to_string()
    };
    let src = format!(
        "experiment b {{\n data = {data_src}\n model {{ {body} }}\n train {{ optimizer = adam(0.001) epochs = {epochs} batch = 64 }}\n objective {{ maximize accuracy }}\n}}\n"
    );
    let compiled = bma::compile(&Source::new("bench.bma", src));
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) = bma::pins::expand_with_pins(&compiled, exp, &Default::default()).expect("expands");
    let env = bma::ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let data_value = bma::ir::eval(&exp.data.as_ref().expect("data").value, &env).expect("evaluates");
    let data = bma::data::load(&data_value, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let cfg = train::TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 7).expect("config");
    (sub, data, cfg)
}
