//! Training time of bma's recurrent layers, for `bench/layers/lstm.sh`: embedding(V, 128)
//! → lstm(128) (or gru) → dense(2) on generated token sequences of exactly 100 tokens.
//!
//! `cargo bench --bench layers_lstm -- CELL ROWS EPOCHS` with CELL `lstm` or `gru`: ROWS
//! generated texts (a CSV under target/, 100 words each out of 1,000, the label the parity
//! of the last word), split [0.9, 0.05, 0.05], batch 32, adam(1e-3), cross-entropy, one
//! thread (`cfg.threads = 1`). Prints one JSON line: the per-epoch training times (s, the
//! training steps only, loss read every step) and the CPU seconds of each epoch.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::fmt::Write as _;

use bma::source::Source;
use bma::train::{self, Control, DeviceKind};

pub const T: usize = 100;
pub const WORDS: u64 = 1000;

fn main() {
    // The allocator as `bma` sets it, so that the benchmark measures what `bma run` runs.
    bma::configure_allocator();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let cell = args.first().map_or("lstm", String::as_str);
    let rows: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1200);
    let epochs: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(3);
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-layers-{rows}.csv"));
    if !csv.exists() {
        // A fixed LCG: the same file every time.
        let mut s: u64 = 7;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) % WORDS
        };
        let mut text = String::from("text,label\n");
        for _ in 0..rows {
            let words: Vec<u64> = (0..T).map(|_| next()).collect();
            let body = words.iter().map(|w| format!("w{w}")).collect::<Vec<_>>().join(" ");
            let _ = writeln!(text, "{body},{}", words[T - 1] % 2);
        }
        std::fs::write(&csv, text).unwrap();
    }
    let src = format!(
        "experiment b {{\n data = text(\"{}\", text: \"text\", target: \"label\", tokenizer: word, vocab: {}, max_len: {T}, \
         split: [0.9, 0.05, 0.05], seed: 1)\n model {{ embedding(data.vocab, 128) {cell}(128) dense(data.classes) }}\n \
         train {{ optimizer = adam(0.001) epochs = {epochs} batch = 32 }}\n objective {{ maximize accuracy }}\n}}\n",
        csv.display(),
        WORDS + 2
    );
    let compiled = bma::compile(&Source::new("bench.bma", src));
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) = bma::pins::expand_with_pins(&compiled, exp, &Default::default()).unwrap();
    let env = bma::ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let value = bma::ir::eval(&exp.data.as_ref().unwrap().value, &env).unwrap();
    let data = bma::data::load(&value, std::path::Path::new("/")).unwrap();
    let mut cfg = train::TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 1).unwrap();
    cfg.threads = 1;
    let cpu_start = cpu_seconds();
    let mut marks = vec![cpu_start];
    let out = train::fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| {
        marks.push(cpu_seconds());
        Control::Continue
    });
    let times: Vec<f64> = out.epochs.iter().map(|m| m["epoch_time"]).collect();
    let cpu: Vec<f64> = marks.windows(2).map(|w| w[1] - w[0]).collect();
    let steps = data.train.n.div_ceil(32);
    println!(
        "{{\"framework\": \"bma\", \"cell\": \"{cell}\", \"rows\": {}, \"steps\": {steps}, \"params\": {}, \
         \"epoch_times\": {times:?}, \"epoch_cpu\": {cpu:?}, \"train_loss\": {}}}",
        data.train.n,
        sub.params,
        out.epochs.last().and_then(|m| m.get("train_loss")).copied().unwrap_or(f64::NAN)
    );
}

/// User + system seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
