//! Epoch time of bma's trainer on a 1-D CNN over token sequences, for `bench/layers/conv1d.sh`.
//!
//! `cargo bench --bench layers_conv1d -- CSV EPOCHS` trains `embedding(data.vocab, 64)
//! conv1d(128, kernel: 5) relu global_maxpool dense(data.classes)` on the texts of CSV
//! (`text`, `label`; word tokens, `max_len: 128`, vocabulary 1002), batch 32, adam(1e-3),
//! one thread. Prints one JSON line: the training rows, the per-epoch training times (s,
//! the steps only, as `fit` measures them), the process CPU seconds over each epoch (steps
//! and the valid pass), the per-epoch mean train loss and valid accuracy, the epoch `fit`
//! would keep by its valid accuracy, and the train accuracy of the LAST epoch's weights
//! (`swa` over one epoch), as PyTorch's side reports it.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use bma::source::Source;
use bma::train::{self, Control, DeviceKind};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let csv = args.first().expect("CSV");
    let epochs: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(3);
    let src = format!(
        "experiment b {{\n  data = text(\"{csv}\", text: \"text\", target: \"label\", tokenizer: word, vocab: 1002, \
         max_len: 128, split: [0.9, 0.05, 0.05], seed: 1)\n  model {{ embedding(data.vocab, 64) conv1d(128, kernel: 5) relu \
         global_maxpool dense(data.classes) }}\n  train {{ optimizer = adam(0.001) batch = 32 epochs = {epochs} }}\n  \
         objective {{ maximize accuracy }}\n}}\n"
    );
    let compiled = bma::compile(&Source::new("bench.bma", &src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) = bma::expand_with_pins(&compiled, exp, &BTreeMap::new()).unwrap();
    let env = bma::ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let value = bma::ir::eval(&exp.data.as_ref().unwrap().value, &env).unwrap();
    let data = bma::data::load(&value, Path::new(".")).unwrap();
    let mut cfg = train::TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 1).unwrap();
    cfg.threads = 1;
    // Keep the last epoch's weights (an average over a window of one), as PyTorch's side
    // does, rather than the best valid epoch: the train accuracies then compare.
    cfg.swa = Some(1);
    let mut marks = vec![cpu_seconds()];
    let out = train::fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| {
        marks.push(cpu_seconds());
        Control::Continue
    });
    let times: Vec<f64> = out.epochs.iter().map(|m| m["epoch_time"]).collect();
    let cpu: Vec<f64> = marks.windows(2).map(|w| w[1] - w[0]).collect();
    let loss: Vec<f64> = out.epochs.iter().map(|m| (m["train_loss"] * 1e4).round() / 1e4).collect();
    let valid: Vec<f64> = out.epochs.iter().map(|m| (m["accuracy"] * 1e4).round() / 1e4).collect();
    let best = valid.iter().enumerate().fold(0, |b, (i, v)| if *v > valid[b] { i } else { b }) + 1;
    let acc = out.model.unwrap().evaluate(&data.train, &data.info).unwrap()["accuracy"];
    println!(
        "{{\"framework\":\"bma\",\"train_rows\":{},\"params\":{},\"epoch_times\":{times:?},\"epoch_cpu\":{cpu:?},\"train_loss\":{loss:?},\"valid_accuracy\":{valid:?},\"best_valid_epoch\":{best},\"train_accuracy\":{acc:.4}}}",
        data.train.n, sub.params
    );
}

/// User + system CPU seconds of this process (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
