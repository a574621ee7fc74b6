//! Save-to-diagnostics latency of `bma watch`: the real binary (`--check-only`)
//! watches a copy of an example; each round saves it (alternating an in-place write
//! and an atomic rename, alternating a clean and a broken text) and times the moment
//! the file is written to the moment the `check:` line arrives on stdout. This covers
//! the file event, the debounce (15 ms default), the compile and the printing.
//!
//! `cargo bench --bench watch` (optionally `-- ROUNDS`). Prints median, p95 and max per file.

#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(40);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("bma watch: save -> `check:` line, {rounds} saves per file (half broken, half atomic renames)");
    println!("{:<24} {:>9} {:>9} {:>9} {:>12}", "file", "median ms", "p95 ms", "max ms", "compile ms");
    for name in ["branin.bma", "wine.bma", "resnet.bma", "multi_objective.bma"] {
        let text = match std::fs::read_to_string(root.join("examples").join(name)) {
            Ok(t) => t,
            Err(e) => {
                println!("{name}: {e}");
                continue;
            }
        };
        let dir = std::env::temp_dir().join(format!("bma-bench-watch-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(name);
        if std::fs::write(&file, &text).is_err() {
            continue;
        }
        let mut child = match Command::new(env!("CARGO_BIN_EXE_bma"))
            .args(["watch", "--check-only"])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                println!("cannot start bma: {e}");
                return;
            }
        };
        let Some(stdout) = child.stdout.take() else { return };
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let wait_check = |deadline: Duration| -> Option<(Instant, String)> {
            let end = Instant::now() + deadline;
            while let Ok((t, line)) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                if line.starts_with("check:") {
                    return Some((t, line));
                }
            }
            None
        };
        let _ = wait_check(Duration::from_secs(10));
        let mut ms = Vec::new();
        let mut compile = Vec::new();
        for i in 0..rounds {
            std::thread::sleep(Duration::from_millis(60));
            let body = if i % 2 == 0 {
                format!("{text}\n// edit {i}\n")
            } else {
                format!("{text}\nexperiment {{ broken {i}\n")
            };
            let saved = if i % 4 < 2 {
                let _ = std::fs::write(&file, &body);
                Instant::now()
            } else {
                let tmp = dir.join(format!(".{name}.tmp"));
                let _ = std::fs::write(&tmp, &body);
                let _ = std::fs::rename(&tmp, &file);
                Instant::now()
            };
            match wait_check(Duration::from_secs(5)) {
                Some((t, line)) => {
                    ms.push(t.saturating_duration_since(saved).as_secs_f64() * 1000.0);
                    if let Some(c) =
                        line.split('(').nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse::<f64>().ok())
                    {
                        compile.push(c);
                    }
                }
                None => println!("{name}: save {i} not seen within 5 s"),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        if ms.is_empty() {
            continue;
        }
        ms.sort_by(f64::total_cmp);
        compile.sort_by(f64::total_cmp);
        let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        let c = if compile.is_empty() { f64::NAN } else { pct(&compile, 0.5) };
        println!("{name:<24} {:>9.1} {:>9.1} {:>9.1} {:>12.2}", pct(&ms, 0.5), pct(&ms, 0.95), pct(&ms, 1.0), c);
    }
}
