//! `bma check` on a generated 5,000-line file: blocks, fns and experiments with
//! conditional spaces, so that names, guards and shapes over the whole space are
//! all exercised. Prints the median of several runs of `bma::compile`. Then one very
//! large space: 2,000 structural parameters (a 72 KB file, at least 10^954 points),
//! where the whole-space check must stop at its budget rather than take minutes.
//!
//! Run: `cargo bench --bench check` (release). Not a test: nothing is asserted
//! about time.
#![allow(clippy::print_stdout)]

use std::fmt::Write;
use std::time::{Duration, Instant};

const TARGET_LINES: usize = 5_000;
const RUNS: usize = 15;

fn main() {
    let text = generate(TARGET_LINES);
    let lines = text.lines().count();
    let source = bma::Source::new("bench.bma", text);
    let first = bma::compile(&source);
    let errors: Vec<_> = first.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "the generated file must check clean: {:?}", errors.first());
    let experiments = first.program.experiments.len();
    let points: usize = first.info.iter().map(|i| i.space.checked).sum();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let compiled = bma::compile(std::hint::black_box(&source));
            let elapsed = start.elapsed();
            std::hint::black_box(compiled);
            elapsed
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "check: {lines} lines, {experiments} experiments, {points} structural points shape-checked: median {:.1} ms (min {:.1}, max {:.1}, {RUNS} runs)",
        ms(times[RUNS / 2]),
        ms(times[0]),
        ms(times[RUNS - 1])
    );
    large_space(2_000, 3);
}

/// `params` structural parameters, each the width of its own layer; `runs` timed compiles.
fn large_space(params: usize, runs: usize) {
    let mut text = String::from("experiment e {\n  data = iris\n  space {\n");
    for i in 0..params {
        let _ = writeln!(text, "    p{i}: int in 1..=3");
    }
    text.push_str("  }\n  model {");
    for i in 0..params {
        let _ = write!(text, " dense(p{i})");
    }
    text.push_str(" dense(data.classes) }\n  objective { maximize accuracy }\n}\n");
    let source = bma::Source::new("large.bma", text);
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let compiled = bma::compile(std::hint::black_box(&source));
            let elapsed = start.elapsed();
            assert!(!compiled.has_errors(), "the large space must check clean");
            std::hint::black_box(compiled);
            elapsed
        })
        .collect();
    times.sort();
    println!(
        "check: {params} structural parameters ({} bytes): median {:.2} s (min {:.2}, max {:.2}, {runs} runs)",
        source.text.len(),
        times[runs / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[runs - 1].as_secs_f64()
    );
}

/// A valid `.bma` file of about `target` lines.
fn generate(target: usize) -> String {
    let mut s = String::from(
        "// Generated for the `check` benchmark.\nuse std::blocks::{dense_act, conv_bn, res_block, mlp}\n\n",
    );
    let mut i = 0;
    while s.lines().count() < target {
        write_fn(&mut s, i);
        write_block(&mut s, i);
        write_experiment(&mut s, i);
        i += 1;
    }
    s
}

fn write_fn(s: &mut String, i: usize) {
    let _ = writeln!(
        s,
        "/// A scoring function.\nfn score_{i}(x: float, y: float) -> float = (x - {i}) ^ 2 + abs(y) * 0.5 + if x > y {{ x }} else {{ y }}\n"
    );
}

fn write_block(s: &mut String, i: usize) {
    let _ = writeln!(
        s,
        "/// A small convolutional stage.\nblock stage_{i}(c: int, k: int = 3) {{\n  conv2d(c, kernel: k, padding: same)\n  batchnorm\n  relu\n  residual {{ conv2d(c, kernel: 3, padding: same) relu }}\n}}\n"
    );
}

fn write_experiment(s: &mut String, i: usize) {
    let _ = writeln!(
        s,
        r#"/// Experiment {i}: an MLP or a CNN for the digits.
experiment e_{i} {{
  data = digits(split: [0.7, 0.15, 0.15], seed: {i})
  space {{
    kind:    in {{mlp, cnn}}
    depth:   int in 1..=3
    lr:      float in 1e-4..3e-2 log
    dropout: float in 0.0..0.5
    opt:     in {{adam, sgd}}
    when kind == mlp {{ width: int in {{32, 64, 128}} }}
    when kind == cnn {{ filters: int in 8..=16 step 8 }}
    when opt == sgd  {{ momentum: float in 0.5..0.99 }}
    let lr2 = lr * 2
  }}
  model {{
    match kind {{
      mlp => {{ flatten  repeat i in 0..depth {{ dense_act(width, relu, dropout) }} }}
      cnn => {{ repeat depth {{ stage_{i}(filters) }}  maxpool(2)  global_avgpool }}
    }}
    dense(data.classes)
  }}
  train {{
    optimizer = match opt {{ adam => adam(lr2), sgd => sgd(lr, momentum: momentum) }}
    epochs    = 10
    batch     = 64
    loss      = cross_entropy
  }}
  objective {{
    maximize accuracy
    minimize latency
    require params <= 200k
  }}
  search {{ strategy = tpe(startup: 5) trials = 30 prune = asha(min_epochs: 1, eta: 3) seed = {i} }}
  average {{ ensemble(top: 5, weights: softmax(accuracy, temperature: 0.02)) }}
}}
"#
    );
}
