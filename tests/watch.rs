//! `bma watch` driven as a user would: the real binary, real edits to a file in a
//! temporary folder, and its stdout read line by line. Every wait has a timeout, and
//! the child is killed when a test ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

struct Watch {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn start(file: &Path) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bma"))
            .arg("watch")
            .arg(file)
            .args(["--progress", "plain"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bma starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines, seen: Vec::new() }
    }

    /// Reads lines until one equals or starts with `prefix`; gives the lines read (that one included).
    fn until(&mut self, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    got.push(line.clone());
                    if line.starts_with(prefix) {
                        return got;
                    }
                }
                Err(_) => {
                    panic!("no line starting `{prefix}` in {TIMEOUT:?}; output so far:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// The lines that arrive within `wait`.
    fn quiet(&mut self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(line.clone());
            got.push(line);
        }
        got
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spec(domain: &str, epochs: u32, n: u32, objective: &str) -> String {
    format!(
        "// a watched experiment\nexperiment e {{\n  data = synthetic.moons(n: {n}, noise: 0.1, seed: 1)\n  space {{\n    width: int in {domain}\n  }}\n  model {{\n    dense(width)\n    relu\n    dense(data.classes)\n  }}\n  train {{\n    optimizer = adam(0.01)\n    epochs = {epochs}\n  }}\n  objective {{\n    {objective}\n  }}\n  search {{\n    strategy = grid\n    trials = 10\n    seed = 1\n  }}\n}}\n"
    )
}

fn temp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(name);
    (dir, file)
}

/// Saves like an editor with atomic saves: a temporary file renamed over the old one.
fn save_atomic(file: &Path, text: &str) {
    let tmp = file.with_extension("bma.swp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, file).expect("rename");
}

fn count(lines: &[String], suffix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with("trial ") && l.ends_with(suffix)).count()
}

#[test]
fn an_objective_edit_trains_nothing_and_a_wider_domain_trains_only_the_new_points() {
    let (_dir, file) = temp("a.bma");
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    let first = w.until("cycle 1: done");
    assert!(first.iter().any(|l| l.starts_with("check: ok")), "{first:?}");
    assert!(first.contains(&"cycle 1 e: reused 0, trained 2, cancelled 0, failed 0".to_string()), "{first:?}");
    assert_eq!(count(&first, " complete"), 2);

    // Only the objective: re-ranked, nothing trained (saved in place).
    std::fs::write(&file, spec("{4, 8}", 2, 64, "minimize loss")).expect("write");
    let second = w.until("cycle 2: done");
    assert!(second.contains(&"cycle 2 e: reused 2, trained 0, cancelled 0, failed 0".to_string()), "{second:?}");
    assert_eq!(count(&second, " training"), 0, "{second:?}");

    // A wider domain (atomic save): only the new point trains.
    save_atomic(&file, &spec("{4, 8, 16}", 2, 64, "minimize loss"));
    let third = w.until("cycle 3: done");
    assert!(third.contains(&"cycle 3 e: reused 2, trained 1, cancelled 0, failed 0".to_string()), "{third:?}");
    assert_eq!(count(&third, " training"), 1, "{third:?}");
    let training: Vec<&String> = third.iter().filter(|l| l.ends_with(" training")).collect();
    assert_eq!(training.len(), 1);

    // A training setting changes every key: everything trains again.
    std::fs::write(&file, spec("{4, 8, 16}", 3, 64, "minimize loss")).expect("write");
    let fourth = w.until("cycle 4: done");
    assert!(fourth.contains(&"cycle 4 e: reused 0, trained 3, cancelled 0, failed 0".to_string()), "{fourth:?}");
}

#[test]
fn a_broken_edit_shows_its_diagnostics_and_keeps_the_last_results() {
    let (dir, file) = temp("b.bma");
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    w.until("cycle 1: done");
    let results = dir.path().join(".bma").join("b.results.json");
    let before = std::fs::read_to_string(&results).expect("results written");
    assert!(before.contains("\"reused\": 0"), "{before}");

    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy").replace("epochs = 2", "epochs = "))
        .expect("write");
    let broken = w.until("check: ");
    let last = broken.last().expect("a line");
    assert!(last.contains("error") && last.ends_with("keeping the last good results"), "{last}");
    let after = w.quiet(Duration::from_millis(700));
    assert!(!after.iter().any(|l| l.starts_with("cycle 2")), "a broken edit started a run: {after:?}");
    assert_eq!(std::fs::read_to_string(&results).expect("results kept"), before);

    // Fixed again: nothing to train.
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let fixed = w.until("cycle 2: done");
    assert!(fixed.contains(&"cycle 2 e: reused 2, trained 0, cancelled 0, failed 0".to_string()), "{fixed:?}");
}

#[test]
fn a_save_during_a_run_cancels_it_and_starts_the_next() {
    let (dir, file) = temp("c.bma");
    // Long enough to be mid-training when the save comes.
    std::fs::write(&file, spec("{4, 8}", 100_000, 256, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    w.until("trial e ");
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let lines = w.until("cycle 2: done");
    let cancelled = lines.iter().position(|l| l == "cycle 1: cancelled").expect("cycle 1 cancelled");
    let started = lines.iter().position(|l| l == "cycle 2: start").expect("cycle 2 started");
    assert!(cancelled < started, "{lines:?}");
    assert!(lines.contains(&"cycle 1 e: reused 0, trained 0, cancelled 1, failed 0".to_string()), "{lines:?}");
    assert!(lines.contains(&"cycle 2 e: reused 0, trained 2, cancelled 0, failed 0".to_string()), "{lines:?}");
    // The store kept the cancelled trial, marked so, and the two complete ones.
    let store = std::fs::read_to_string(dir.path().join(".bma").join("c.trials.json")).expect("store");
    assert_eq!(store.matches("\"state\": \"cancelled\"").count(), 1, "{store}");
    assert_eq!(store.matches("\"state\": \"complete\"").count(), 2, "{store}");
}

#[test]
fn an_edit_to_a_local_import_is_seen_and_the_import_set_follows_the_file() {
    let (dir, file) = temp("d.bma");
    let lib = dir.path().join("lib.bma");
    std::fs::write(&lib, "fn f(x: float) -> float = x * x\n").expect("write");
    let main = "use lib::{f}\nexperiment p {\n  space {\n    x: float in {1.0, 2.0}\n  }\n  objective {\n    minimize f(x)\n  }\n  search {\n    strategy = grid\n    trials = 10\n  }\n}\n";
    std::fs::write(&file, main).expect("write");
    let mut w = Watch::start(&file);
    let first = w.until("cycle 1: done");
    assert!(first.contains(&"cycle 1 p: reused 0, trained 2, cancelled 0, failed 0".to_string()), "{first:?}");
    // The imported fn changes: a pure-function result depends on it, so both re-evaluate.
    std::fs::write(&lib, "fn f(x: float) -> float = x * x + 1.0\n").expect("write");
    let second = w.until("cycle 2: done");
    assert!(second.contains(&"cycle 2 p: reused 0, trained 2, cancelled 0, failed 0".to_string()), "{second:?}");
    assert!(second.iter().any(|l| l.starts_with("cycle 2 p best: x=1") && l.ends_with("[2.0]")), "{second:?}");
}
