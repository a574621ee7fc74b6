//! Training time of a 2-layer transformer encoder in bma (burn, flex backend), for
//! `bench/layers/transformer.sh`, beside `bench/layers/torch_transformer.py`.
//!
//! `cargo bench --bench layers -- CSV THREADS EPOCHS` trains on the token CSV the script
//! writes (`text`, `label`; every text at least 128 words, so no padding):
//! `embedding(data.vocab, 128) positional(learned) 2 × transformer_block(128, 4, 512, 0.0)
//! global_avgpool dense(data.classes)`, max_len 128, batch 32, adam(1e-3), cross-entropy.
//! Prints one JSON line: per-epoch training-step times (s, `epoch_time`, the valid pass
//! left out), per-epoch process CPU seconds (steps and valid pass), the number of steps
//! per epoch and the parameter count.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::Path;

use bma::source::Source;
use bma::train::{self, Control, DeviceKind};

fn main() {
    // The allocator as `bma` sets it, so that the benchmark measures what `bma run` runs.
    bma::configure_allocator();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let csv = args.first().expect("the CSV written by bench/layers/transformer.sh");
    let threads: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
    let epochs: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(3);
    let src = format!(
        "use std::blocks::transformer_block
experiment b {{
  data = text(\"{csv}\", text: \"text\", target: \"label\", tokenizer: word, vocab: 1000, max_len: 128,
              split: [0.9, 0.05, 0.05], seed: 1)
  model {{
    embedding(data.vocab, 128)
    positional(learned)
    transformer_block(128, 4, 512, 0.0)
    transformer_block(128, 4, 512, 0.0)
    global_avgpool
    dense(data.classes)
  }}
  train {{ optimizer = adam(0.001) epochs = {epochs} batch = 32 }}
  objective {{ maximize accuracy }}
}}
"
    );
    let compiled = bma::compile(&Source::new("bench.bma", src));
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) = bma::pins::expand_with_pins(&compiled, exp, &Default::default()).expect("expands");
    let env = bma::ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let data_value = bma::ir::eval(&exp.data.as_ref().expect("data").value, &env).expect("evaluates");
    let data = bma::data::load(&data_value, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = train::TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 7).expect("config");
    cfg.threads = threads;
    let mut marks = vec![cpu_seconds()];
    let out = train::fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| {
        marks.push(cpu_seconds());
        Control::Continue
    });
    let times: Vec<f64> = out.epochs.iter().map(|m| m["epoch_time"]).collect();
    let cpu: Vec<f64> = marks.windows(2).map(|w| w[1] - w[0]).collect();
    println!(
        "{{\"framework\":\"burn-flex\",\"threads\":{threads},\"params\":{},\"flops\":{},\"steps\":{},\"epoch_times\":{times:?},\"epoch_cpu\":{cpu:?}}}",
        sub.params,
        sub.flops,
        data.train.n.div_ceil(32),
    );
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
