//! Epoch time of bma's trainer (burn, flex backend) on digits, for `bench/train/run.sh`.
//!
//! `cargo bench --bench train -- MODEL THREADS EPOCHS` with MODEL `mlp` (64-128-64-10) or
//! `cnn` (conv 1→8 3x3 valid, relu, conv 8→16 3x3 valid, relu, flatten, dense 10).
//! Batch 64, adam(1e-3), cross-entropy, split [0.8, 0.1, 0.1] seed 1. Prints one JSON
//! line: the per-epoch training times (s) and the final test accuracy.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::Path;

use bma::ir::Value;
use bma::source::Source;
use bma::train::{self, Control, DeviceKind};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let model = args.first().map_or("mlp", String::as_str);
    let threads: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
    let epochs: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(20);
    let body = match model {
        "cnn" => {
            "conv2d(8, kernel: 3, padding: valid) relu conv2d(16, kernel: 3, padding: valid) relu flatten dense(10)"
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
    let mut cfg = train::TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 7).expect("config");
    cfg.threads = threads;
    let out = train::fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    let times: Vec<f64> = out.epochs.iter().map(|m| m["epoch_time"]).collect();
    let model_ref = out.model.expect("trained");
    let test = model_ref.evaluate(&data.test, &data.info).expect("evaluates");
    println!(
        "{{\"framework\":\"burn-flex\",\"model\":\"{model}\",\"threads\":{threads},\"params\":{},\"epoch_times\":{:?},\"test_accuracy\":{:.4}}}",
        model_ref.param_count(),
        times,
        test["accuracy"]
    );
}
