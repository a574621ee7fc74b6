//! Report rendering time against the number of trials: `report::render` of a synthetic
//! study of 1,000, 3,000 and 10,000 trials (2 objectives, 6 parameters: a log one, a
//! categorical one; 20 reported epochs per complete trial; about a third pruned at a
//! random epoch, 5% failed with an error). Prints one row per size: wall and CPU seconds
//! (the median of `--repeat` runs) and the HTML's size. See bench/report/RESULTS.md.
//!
//! `--before N` also times the report module as it was before the rewrite (a copy in
//! bench/report/baseline/, the peer) on the sizes up to N, alternating with the current
//! one run by run in the same process.
//!
//! Run: `cargo bench --bench report [-- SIZES... [--repeat N] [--before N] [--write DIR]]`,
//! e.g. `cargo bench --bench report -- 1000 3000 --repeat 3 --before 3000`. `--write DIR`
//! keeps each report as `DIR/report-N.html` to look at.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

#[path = "baseline/mod.rs"]
mod baseline;

use bma::ir::{Point, Value};
use bma::report::{Domain, ReportData, render};
use bma::rng::Rng;
use bma::trial::{Direction, FailKind, Trial, TrialState};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut sizes = Vec::new();
    let mut repeat = 3usize;
    let mut write = None;
    let mut before = 0usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--repeat" => repeat = it.next().and_then(|s| s.parse().ok()).expect("--repeat N"),
            "--write" => write = it.next().cloned(),
            "--before" => before = it.next().and_then(|s| s.parse().ok()).expect("--before N"),
            s => sizes.push(s.parse::<usize>().expect("a number of trials")),
        }
    }
    if sizes.is_empty() {
        sizes = vec![1000, 3000, 10000];
    }
    println!("{:>7} {:>8} {:>9} {:>9} {:>10}", "trials", "version", "wall s", "cpu s", "html KiB");
    for n in sizes {
        let data = study(n);
        let old =
            (n <= before).then(|| baseline::ReportData::new("synthetic", &data.trials, data.objectives.clone(), None));
        let (mut now, mut was) = (Vec::new(), Vec::new());
        let (mut html, mut old_len) = (String::new(), 0);
        for _ in 0..repeat.max(1) {
            let (c0, t0) = (cpu_seconds(), Instant::now());
            html = render(&data);
            now.push((t0.elapsed().as_secs_f64(), cpu_seconds() - c0));
            if let Some(old) = &old {
                let (c0, t0) = (cpu_seconds(), Instant::now());
                old_len = baseline::render(old).len();
                was.push((t0.elapsed().as_secs_f64(), cpu_seconds() - c0));
            }
        }
        for (name, runs, len) in [("after", &mut now, html.len()), ("before", &mut was, old_len)] {
            if runs.is_empty() {
                continue;
            }
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (wall, cpu) = runs[runs.len() / 2];
            println!("{n:>7} {name:>8} {wall:>9.3} {cpu:>9.3} {:>10.0}", len as f64 / 1024.0);
        }
        if let Some(dir) = &write {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(format!("{dir}/report-{n}.html"), &html).unwrap();
        }
    }
}

/// A study of `n` trials as a search of a noisy function would leave it.
fn study(n: usize) -> ReportData {
    let mut rng = Rng::new(7);
    let kinds = ["mlp", "cnn", "lstm"];
    let trials: Vec<Trial> = (0..n as u64)
        .map(|number| {
            let lr = 10f64.powf(rng.uniform(-5.0, -1.0));
            let dropout = rng.uniform(0.0, 0.5);
            let width = 16.0 * (rng.below(32) + 1) as f64;
            let layers = (rng.below(6) + 1) as i64;
            let momentum = rng.uniform(0.8, 0.99);
            let kind = kinds[rng.index(3)];
            let mut p = Point::new();
            p.insert("lr".into(), Value::Float(lr));
            p.insert("dropout".into(), Value::Float(dropout));
            p.insert("width".into(), Value::Float(width));
            p.insert("layers".into(), Value::Int(layers));
            p.insert("momentum".into(), Value::Float(momentum));
            p.insert("kind".into(), Value::sym(kind));
            let mut t = Trial::new(number, p, number);
            let quality = 0.95 - 0.02 * (lr.log10() + 3.0).powi(2) - 0.1 * (dropout - 0.2).abs()
                + if kind == "cnn" { 0.02 } else { 0.0 }
                + 0.01 * rng.normal();
            let latency = 0.5 + width * layers as f64 / 200.0 + 0.05 * rng.normal().abs();
            let roll = rng.f64();
            let epochs = if roll < 0.6 { 20 } else { 1 + rng.below(19) as u32 };
            t.steps = (1..=epochs).map(|e| (e, quality * (1.0 - (-f64::from(e) / 4.0).exp()))).collect();
            t.duration = 3.0 + epochs as f64 * 0.5;
            if roll < 0.6 {
                t.state = TrialState::Complete;
                t.values = vec![quality, latency];
            } else if roll < 0.95 {
                t.state = TrialState::Pruned;
            } else {
                t.state = TrialState::Failed;
                t.steps.clear();
                t.error = Some(format!("loss became NaN at epoch {}", 1 + rng.below(5)));
                t.failure = Some(FailKind::Error);
            }
            t
        })
        .collect();
    let mut data = ReportData::new(
        "synthetic",
        &trials,
        vec![("accuracy".into(), Direction::Maximize), ("latency".into(), Direction::Minimize)],
        None,
    );
    // The search space's own domains (as the study writes them), not inferred ones.
    for p in &mut data.params {
        if p.name == "lr" {
            p.domain = Domain::Numeric { lo: 1e-5, hi: 1e-1, log: true };
        }
    }
    data
}

/// User plus system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 14th, stime the 15th.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
