//! `bma watch` driven as a user would: the real binary, run in a temporary folder,
//! real edits to a file there, and its stdout read line by line; what was (not)
//! retrained is also read back from the study store (`runs/<experiment>/study.db`)
//! and `results.json`. Every wait has a timeout, and the child is killed when a test ends.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::bma;

const TIMEOUT: Duration = Duration::from_secs(120);

struct Watch {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn start(file: &Path) -> Watch {
        Watch::start_with(file, &[])
    }

    /// `bma watch FILE --progress plain` with more flags.
    fn start_with(file: &Path, flags: &[&str]) -> Watch {
        let mut child = bma()
            .current_dir(file.parent().expect("a folder"))
            .arg("watch")
            .arg(file)
            .args(["--progress", "plain"])
            .args(flags)
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
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spec(domain: &str, epochs: u32, n: u32, objective: &str) -> String {
    spec_with(domain, epochs, n, objective, "")
}

/// [`spec`] with `extra` sections (`average { .. }`, `report { .. }`) after the objective.
fn spec_with(domain: &str, epochs: u32, n: u32, objective: &str, extra: &str) -> String {
    format!(
        "// a watched experiment\nexperiment e {{\n  data = synthetic.moons(n: {n}, noise: 0.1, seed: 1)\n  space {{\n    width: int in {domain}\n  }}\n  model {{\n    dense(width)\n    relu\n    dense(data.classes)\n  }}\n  train {{\n    optimizer = adam(0.01)\n    epochs = {epochs}\n  }}\n  objective {{\n    {objective}\n  }}\n{extra}  search {{\n    strategy = grid\n    trials = 10\n    seed = 1\n  }}\n}}\n"
    )
}

/// The study store of experiment `exp` under the temp folder `dir`.
fn store(dir: &Path, exp: &str) -> bma::store::Sqlite {
    bma::store::Sqlite::open(&dir.join("runs").join(exp).join("study.db")).expect("the study store")
}

/// The study named `name` in `store`, with its trials.
fn study(store: &bma::store::Sqlite, name: &str) -> (i64, Vec<bma::search::Trial>) {
    use bma::store::Store as _;
    let s = store.studies().expect("studies").into_iter().find(|s| s.name == name).expect("the study");
    (s.id, store.history(s.id).expect("history"))
}

fn results(dir: &Path, exp: &str) -> serde_json::Value {
    common::results(&dir.join("runs").join(exp))
}

fn line(n: u32, exp: &str, reused: u32, trained: u32, pruned: u32, cancelled: u32, failed: u32) -> String {
    format!(
        "cycle {n} {exp}: reused {reused}, trained {trained}, pruned {pruned}, cancelled {cancelled}, failed {failed}"
    )
}

fn temp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = common::temp_dir();
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
    let (dir, file) = temp("a.bma");
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    let first = w.until("cycle 1: done");
    assert!(first.iter().any(|l| l.starts_with("check: ok")), "{first:?}");
    assert!(first.contains(&line(1, "e", 0, 2, 0, 0, 0)), "{first:?}");
    assert!(first.contains(&"cycle 1 e: results in runs/e".to_string()), "{first:?}");
    assert_eq!(count(&first, " complete"), 2);

    // Only the objective: re-ranked, nothing trained (saved in place).
    std::fs::write(&file, spec("{4, 8}", 2, 64, "minimize loss")).expect("write");
    let second = w.until("cycle 2: done");
    assert!(second.contains(&line(2, "e", 2, 0, 0, 0, 0)), "{second:?}");
    assert_eq!(count(&second, " training"), 0, "{second:?}");
    // The store: a study per version, the new one's trials copied by key from the old one's.
    let db = store(dir.path(), "e");
    let (old_id, old) =
        study(&db, &format!("e@{}", bma::store::spec_hash(&spec("{4, 8}", 2, 64, "maximize accuracy"))));
    let (new_id, new) = study(&db, "e");
    assert_eq!(old.iter().filter(|t| t.state == bma::search::TrialState::Complete).count(), 2);
    assert_eq!(new.iter().filter(|t| t.state == bma::search::TrialState::Complete).count(), 2);
    assert_eq!(db.config_keys(old_id).expect("keys"), db.config_keys(new_id).expect("keys"));
    let complete = |t: &&bma::search::Trial| t.state == bma::search::TrialState::Complete;
    for (o, n) in old.iter().filter(complete).zip(new.iter().filter(complete)) {
        assert_eq!((o.number, &o.params, &o.metrics), (n.number, &n.params, &n.metrics), "copied");
        assert_ne!(o.values, n.values, "measured again by the new objective");
    }
    let r = results(dir.path(), "e");
    assert_eq!(r["watch"]["reused"], serde_json::json!([0, 1]), "{r}");
    assert_eq!(r["watch"]["trained"], serde_json::json!([]), "{r}");
    assert_eq!(r["objectives"][0]["name"], "loss");

    // A wider domain (atomic save): only the new point trains.
    save_atomic(&file, &spec("{4, 8, 16}", 2, 64, "minimize loss"));
    let third = w.until("cycle 3: done");
    assert!(third.contains(&line(3, "e", 2, 1, 0, 0, 0)), "{third:?}");
    assert_eq!(count(&third, " training"), 1, "{third:?}");
    assert_eq!(results(dir.path(), "e")["watch"]["trained"], serde_json::json!([2]));

    // A training setting changes every key: everything trains again.
    std::fs::write(&file, spec("{4, 8, 16}", 3, 64, "minimize loss")).expect("write");
    let fourth = w.until("cycle 4: done");
    assert!(fourth.contains(&line(4, "e", 0, 3, 0, 0, 0)), "{fourth:?}");
}

#[test]
fn an_average_edit_rebuilds_the_final_model_without_training() {
    let (dir, file) = temp("f.bma");
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    let first = w.until("cycle 1: done");
    assert!(first.contains(&line(1, "e", 0, 2, 0, 0, 0)), "{first:?}");
    let final_json = dir.path().join("runs").join("e").join("final").join("final.json");
    let before = std::fs::read_to_string(&final_json).expect("a final model");
    assert_eq!(results(dir.path(), "e")["final"]["members"].as_array().map(Vec::len), Some(1), "the best single trial");

    std::fs::write(&file, spec_with("{4, 8}", 2, 64, "maximize accuracy", "  average {\n    ensemble(top: 2)\n  }\n"))
        .expect("write");
    let second = w.until("cycle 2: done");
    assert!(second.contains(&line(2, "e", 2, 0, 0, 0, 0)), "{second:?}");
    assert!(second.contains(&"cycle 2 e final: ensemble(top: 2) (2 members)".to_string()), "{second:?}");
    let after = std::fs::read_to_string(&final_json).expect("a final model");
    assert_ne!(before, after, "the final model was rebuilt");
    let r = results(dir.path(), "e");
    assert_eq!(r["final"]["method"], "ensemble(top: 2)", "{r}");
    assert_eq!(r["final"]["members"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["watch"]["trained"], serde_json::json!([]), "{r}");
    // `bma eval` reads what watch wrote.
    let eval = bma().current_dir(dir.path()).args(["eval", "runs/e"]).output().expect("bma eval runs");
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
    assert!(String::from_utf8_lossy(&eval.stdout).contains("accuracy"));
    // `bma ls` lists both versions' studies; `bma run --resume` continues the current one.
    let bma = |args: &[&str]| {
        let out = bma().current_dir(dir.path()).args(args).output().expect("bma runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ls = bma(&["ls"]);
    assert_eq!(ls.lines().filter(|l| l.contains("2 complete")).count(), 2, "{ls}");
    let resumed = bma(&["run", "f.bma", "--resume", "--progress", "none"]);
    assert!(resumed.contains("2 complete") && resumed.contains("finished"), "{resumed}");
}

#[test]
fn a_pruner_stops_trials_in_a_watch_cycle_and_sees_the_reused_ones() {
    let (dir, file) = temp("g.bma");
    // A good learning rate first, a useless one second: asha keeps only the best at epoch 1.
    let text = |extra: &str| {
        format!(
            "experiment e {{\n  data = synthetic.moons(n: 128, noise: 0.1, seed: 1)\n  space {{\n    lr: float in {{0.05, 0.0000001}}\n  }}\n  model {{\n    dense(8)\n    relu\n    dense(data.classes)\n  }}\n  train {{\n    optimizer = adam(lr)\n    epochs = 4\n  }}\n  objective {{\n    minimize loss\n  }}\n{extra}  search {{\n    strategy = grid\n    trials = 10\n    prune = asha(min_epochs: 1, eta: 2)\n  }}\n}}\n"
        )
    };
    std::fs::write(&file, text("")).expect("write");
    let mut w = Watch::start(&file);
    let first = w.until("cycle 1: done");
    assert!(first.contains(&line(1, "e", 0, 2, 1, 0, 0)), "{first:?}");
    let db = store(dir.path(), "e");
    let (_, trials) = study(&db, "e");
    // (The grid's end leaves its last claim queued, as in `bma run`.)
    let states: Vec<&str> = trials.iter().filter(|t| t.state.is_finished()).map(|t| t.state.as_str()).collect();
    assert_eq!(states, vec!["complete", "pruned"]);

    // A report edit: the complete trial is reused, its steps replayed to the pruner,
    // which prunes the other again.
    std::fs::write(&file, text("  report {\n    top = 3\n  }\n")).expect("write");
    let second = w.until("cycle 2: done");
    assert!(second.contains(&line(2, "e", 1, 1, 1, 0, 0)), "{second:?}");
    let (_, trials) = study(&db, "e");
    // (The grid's end leaves its last claim queued, as in `bma run`.)
    let states: Vec<&str> = trials.iter().filter(|t| t.state.is_finished()).map(|t| t.state.as_str()).collect();
    assert_eq!(states, vec!["complete", "pruned"]);
    assert!(!trials[0].steps.is_empty(), "the reused trial keeps its steps");
}

#[test]
fn a_broken_edit_shows_its_diagnostics_and_keeps_the_last_results() {
    let (dir, file) = temp("b.bma");
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    w.until("cycle 1: done");
    let results = dir.path().join("runs").join("e").join("results.json");
    let before = std::fs::read_to_string(&results).expect("results written");
    assert!(before.contains("\"complete\": 2"), "{before}");

    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy").replace("epochs = 2", "epochs = "))
        .expect("write");
    let broken = w.until("check: ");
    let last = broken.last().expect("a line");
    assert!(last.contains("error") && last.ends_with("keeping the last good results"), "{last}");
    assert_eq!(std::fs::read_to_string(&results).expect("results kept"), before);

    // Fixed again: the same version, the same study, nothing to train. Cycles are
    // numbered as they start, so cycle 2 starting after the fix's `check: ok` shows the
    // broken edit started none (no waiting for something not to happen).
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let fixed = w.until("cycle 2: done");
    let checked = fixed.iter().position(|l| l.starts_with("check: ok"));
    let started = fixed.iter().position(|l| l == "cycle 2: start");
    assert!(checked.zip(started).is_some_and(|(c, s)| c < s), "a broken edit started a run: {fixed:?}");
    assert!(fixed.contains(&line(2, "e", 0, 0, 0, 0, 0)), "{fixed:?}");
    use bma::store::Store as _;
    assert_eq!(store(dir.path(), "e").studies().expect("studies").len(), 1, "one version, one study");
}

#[test]
fn a_save_during_a_run_cancels_it_and_starts_the_next() {
    let (dir, file) = temp("c.bma");
    // Long enough to be mid-training when the save comes: the `trial e … training`
    // line is printed once the trial is recorded as started.
    std::fs::write(&file, spec("{4, 8}", 100_000, 256, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    w.until("trial e ");
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let lines = w.until("cycle 2: done");
    let cancelled = lines.iter().position(|l| l == "cycle 1: cancelled").expect("cycle 1 cancelled");
    let started = lines.iter().position(|l| l == "cycle 2: start").expect("cycle 2 started");
    assert!(cancelled < started, "{lines:?}");
    assert!(lines.contains(&line(1, "e", 0, 0, 0, 1, 0)), "{lines:?}");
    assert!(lines.contains(&line(2, "e", 0, 2, 0, 0, 0)), "{lines:?}");
    // The store kept the cancelled trial, marked so, in the first version's study, and
    // the two complete ones in the second's.
    let db = store(dir.path(), "e");
    let (_, old) =
        study(&db, &format!("e@{}", bma::store::spec_hash(&spec("{4, 8}", 100_000, 256, "maximize accuracy"))));
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(old[0].state, bma::search::TrialState::Failed);
    assert_eq!(old[0].error.as_deref(), Some(bma::study::reuse::CANCELLED));
    let (_, new) = study(&db, "e");
    assert_eq!(new.iter().filter(|t| t.state == bma::search::TrialState::Complete).count(), 2, "{new:?}");
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
    assert!(first.contains(&line(1, "p", 0, 2, 0, 0, 0)), "{first:?}");
    // The imported fn changes: a pure-function result depends on it, so both re-evaluate.
    std::fs::write(&lib, "fn f(x: float) -> float = x * x + 1.0\n").expect("write");
    let second = w.until("cycle 2: done");
    assert!(second.contains(&line(2, "p", 0, 2, 0, 0, 0)), "{second:?}");
    assert!(second.iter().any(|l| l.starts_with("cycle 2 p best: x=1") && l.ends_with("[2]")), "{second:?}");
    assert_eq!(results(dir.path(), "p")["best"]["values"]["f(x)"], 2.0);
}

#[test]
fn a_killed_watch_leaves_nothing_running_once_restarted() {
    let (dir, file) = temp("k.bma");
    let long = spec("{4, 8}", 100_000, 256, "maximize accuracy");
    std::fs::write(&file, &long).expect("write");
    let mut w = Watch::start(&file);
    w.until("trial e ");
    drop(w); // SIGKILL mid-training
    let db = store(dir.path(), "e");
    let running = |db: &bma::store::Sqlite, name: &str| {
        study(db, name).1.iter().filter(|t| t.state == bma::search::TrialState::Running).count()
    };
    assert_eq!(running(&db, "e"), 1, "the killed trial is left running");

    // Edited while bma was down: a new version; its first cycle requeues the dead trial.
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    let first = w.until("cycle 1: done");
    assert!(first.contains(&line(1, "e", 0, 2, 0, 0, 0)), "{first:?}");
    let old = format!("e@{}", bma::store::spec_hash(&long));
    assert_eq!(running(&db, &old), 0);
    assert_eq!(study(&db, &old).1[0].state, bma::search::TrialState::Queued, "kept for a resume of that version");
}

#[test]
fn watch_takes_the_run_flags_out_set_seed_and_trials() {
    let (dir, file) = temp("flags.bma");
    std::fs::write(&file, spec("4..=8 step 2", 2, 60, "maximize accuracy")).expect("write");
    let mut w = Watch::start_with(&file, &["--out", "elsewhere", "--set", "width=6", "--seed", "7", "--trials", "2"]);
    let got = w.until("cycle 1: done");
    assert!(got.iter().any(|l| l == "cycle 1 e: results in elsewhere"), "{got:?}");
    // The pin holds every trial at width 6: the grid has one point left.
    assert!(got.contains(&line(1, "e", 0, 1, 0, 0, 0)), "{got:?}");
    let out = dir.path().join("elsewhere");
    let json = common::results(&out);
    assert_eq!(json["seed"], 7, "{json}");
    let trials = json["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 1, "{json}");
    assert_eq!(trials[0]["params"]["width"], 6, "{json}");
    assert!(!dir.path().join("runs").exists(), "nothing is written to the default folder");
    drop(w);

    // A pin that names no parameter is the cycle's error, said once per experiment.
    let mut w = Watch::start_with(&file, &["--set", "depth=2"]);
    let got = w.until("cycle 1: done");
    assert!(got.iter().any(|l| l.starts_with("cycle 1 e: error: `depth` is not a parameter of `e`")), "{got:?}");
}

#[test]
fn an_imported_folder_moved_away_and_back_is_watched_again() {
    let (dir, file) = temp("m.bma");
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).expect("mkdir");
    std::fs::write(lib.join("fns.bma"), "fn f(x: float) -> float = x * x\n").expect("write");
    let main = "use lib::fns::{f}\nexperiment p {\n  space {\n    x: float in {1.0, 2.0}\n  }\n  objective {\n    minimize f(x)\n  }\n  search {\n    strategy = grid\n    trials = 10\n  }\n}\n";
    std::fs::write(&file, main).expect("write");
    let mut w = Watch::start(&file);
    w.until("cycle 1: done");
    // Away: the import is gone, and the check says so.
    std::fs::rename(&lib, dir.path().join("lib.bak")).expect("mv lib lib.bak");
    let away = w.until("check: ");
    assert!(away.last().is_some_and(|l| l.contains(" error")), "{away:?}");
    // Back: seen, checked clean and run again.
    std::fs::rename(dir.path().join("lib.bak"), &lib).expect("mv lib.bak lib");
    let back = w.until("cycle 2: done");
    assert!(back.iter().any(|l| l.starts_with("check: ok")), "{back:?}");
    // And an edit inside it afterwards is seen too.
    std::fs::write(lib.join("fns.bma"), "fn f(x: float) -> float = x * x + 1.0\n").expect("write");
    let edited = w.until("cycle 3: done");
    assert!(edited.iter().any(|l| l.starts_with("cycle 3 p best: x=1") && l.ends_with("[2]")), "{edited:?}");
    assert_eq!(results(dir.path(), "p")["best"]["values"]["f(x)"], 2.0);
}

#[test]
fn ctrl_c_ends_the_watched_study_like_run_and_writes_its_results() {
    let (dir, file) = temp("c.bma");
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    w.until("cycle 1: done");
    // A version that trains for a long time; Ctrl-C while it trains.
    std::fs::write(&file, spec("{4, 8}", 100_000, 256, "maximize accuracy")).expect("write");
    w.until("trial e ");
    let sent = std::process::Command::new("kill").args(["-INT", &w.child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let got = w.until("cycle 2: interrupted");
    assert!(got.iter().any(|l| l == "cycle 2 e: results in runs/e"), "{got:?}");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = w.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "watch did not exit after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "exit 130 like bma run");
    // The study ended, nothing left running, and this cycle's results were written.
    let db = store(dir.path(), "e");
    let summary = {
        use bma::store::Store as _;
        db.studies().expect("studies").into_iter().find(|s| s.name == "e").expect("the study")
    };
    assert_eq!(summary.state.as_str(), "interrupted");
    let (_, trials) = study(&db, "e");
    assert!(trials.iter().all(|t| t.state != bma::search::TrialState::Running), "{trials:?}");
    let r = results(dir.path(), "e");
    assert_eq!((r["state"].as_str(), r["watch"]["cycle"].as_u64()), (Some("interrupted"), Some(2)), "{r}");
}

#[test]
fn a_watch_cycle_owns_its_out_folder_and_finishes_its_study_with_its_outputs() {
    use bma::store::Store as _;
    let (dir, file) = temp("owner.bma");
    std::fs::write(&file, spec("{4, 8}", 2, 64, "maximize accuracy")).expect("write");
    let mut w = Watch::start(&file);
    w.until("cycle 1: done");
    let state = |name: &str| {
        let db = store(dir.path(), "e");
        db.studies().expect("studies").into_iter().find(|s| s.name == name).map(|s| s.state)
    };
    assert_eq!(state("e"), Some(bma::store::StudyState::Finished), "finished once results.json is written");
    assert!(dir.path().join("runs/e/results.json").is_file());

    // A long cycle: while it trains, a `bma run` on the same folder is refused.
    save_atomic(&file, &spec("{4, 8}", 100_000, 256, "maximize accuracy"));
    w.until("trial e ");
    let run = bma()
        .current_dir(dir.path())
        .arg("run")
        .arg(&file)
        .args(["--resume", "--progress", "none"])
        .output()
        .expect("bma run");
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("is in use by another bma run"), "{err}");
}

/// `report.html` of `dir`'s experiment `exp`, once it holds what `ready` wants (waiting for
/// the write, with the file's [`TIMEOUT`]).
fn report_when(dir: &Path, exp: &str, ready: impl Fn(&str) -> bool) -> String {
    let path = dir.join("runs").join(exp).join("report.html");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let html = std::fs::read_to_string(&path).unwrap_or_default();
        if ready(&html) {
            return html;
        }
        assert!(Instant::now() < deadline, "report.html never became ready:\n{html}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cycle_rewrites_report_html_live_and_the_refresh_goes_when_it_ends() {
    let (dir, file) = temp("l.bma");
    // Grid order: the 1-epoch point finishes at once, the next trains until the save.
    let text = |long: u32| {
        format!(
            "experiment l {{\n  data = synthetic.moons(n: 64, noise: 0.1, seed: 1)\n  space {{\n    n_epochs: int in {{1, {long}}}\n  }}\n  model {{\n    dense(4)\n    relu\n    dense(data.classes)\n  }}\n  train {{\n    optimizer = adam(0.01)\n    epochs = n_epochs\n  }}\n  objective {{\n    maximize accuracy\n  }}\n  search {{\n    strategy = grid\n    trials = 2\n    seed = 1\n  }}\n}}\n"
        )
    };
    std::fs::write(&file, text(1_000_000)).expect("write");
    let mut w = Watch::start(&file);
    w.until("trial l ");
    w.until("trial l ");
    // The first trial is done and the second is training: the live page, reloading itself.
    let live = report_when(dir.path(), "l", |h| h.contains("http-equiv=\"refresh\""));
    assert!(live.contains("<html"), "{live}");
    std::fs::write(&file, text(2)).expect("write");
    let lines = w.until("cycle 2: done");
    assert!(lines.iter().any(|l| l == "cycle 1: cancelled"), "{lines:?}");
    // The cycle's end wrote the report without the refresh.
    let html = std::fs::read_to_string(dir.path().join("runs/l/report.html")).expect("report.html");
    assert!(!html.contains("http-equiv=\"refresh\""), "a finished cycle's page still reloads");
}
