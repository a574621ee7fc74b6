//! `bma run`, `bma eval`, `bma ls` end to end, on the real binary: results files,
//! resume after `kill -9`, reproducibility, failures, flags, Ctrl-C and other signals,
//! one owner per out folder, outputs written whole.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{bma, results, stderr, temp_dir, write};
use serde_json::Value;

/// A temporary folder holding the spec `name` with `text`: the folder, the spec's
/// path, and `out` inside it for the run's output. Keep the folder bound (`_dir`): dropping
/// it removes everything in it.
fn setup(name: &str, text: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = temp_dir();
    let file = write(dir.path(), name, text);
    let out = dir.path().join("out");
    (dir, file, out)
}

/// `bma run FILE --out OUT ARGS...`, waited for.
fn run_study(file: &Path, out: &Path, args: &[&str]) -> Output {
    bma().arg("run").arg(file).arg("--out").arg(out).args(args).output().expect("bma runs")
}

const BRANIN: &str = "
fn branin(x: float, y: float) -> float =
  (y - 5.1 / (4 * pi ^ 2) * x ^ 2 + 5 / pi * x - 6) ^ 2 + 10 * (1 - 1 / (8 * pi)) * cos(x) + 10

experiment branin {
  space {
    x: float in -5.0..=10.0
    y: float in 0.0..=15.0
  }
  objective { minimize branin(x, y) }
  search { strategy = random  trials = 30  seed = 4 }
}
";

#[test]
fn a_function_study_writes_consistent_results() {
    let (tmp, file, out) = setup("b.bma", BRANIN);
    let dir = tmp.path();
    let o = run_study(&file, &out, &["--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("rank") && stdout.contains("30 trials: 30 complete"), "{stdout}");
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 30);
    assert_eq!(r["objectives"][0]["direction"], "minimize");
    assert_eq!(r["state"], "finished");
    // The best is the minimum over complete trials, and the ranking starts with it.
    let min = trials
        .iter()
        .map(|t| {
            t["values"]["branin(x, y)"]
                .as_f64()
                .or(t["values"].as_object().unwrap().values().next().unwrap().as_f64())
                .unwrap()
        })
        .fold(f64::INFINITY, f64::min);
    let best = r["best"]["values"].as_object().unwrap().values().next().unwrap().as_f64().unwrap();
    assert_eq!(best, min);
    assert_eq!(r["ranked"][0], r["best"]["number"]);
    for t in trials {
        let x = t["params"]["x"].as_f64().unwrap();
        assert!((-5.0..=10.0).contains(&x));
        assert_eq!(t["state"], "complete");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 31);
    assert!(csv.starts_with("number,state,x,y,"));
    assert!(out.join("study.db").exists());
    // Running again without --resume is refused; with it, nothing more is run.
    let again = run_study(&file, &out, &["--progress", "none"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));
    let resumed = run_study(&file, &out, &["--progress", "none", "--resume", "--trials", "35"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(results(&out)["trials"].as_array().unwrap().len(), 35);
    // bma ls lists it.
    let ls = bma().arg("ls").arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success() && text.contains("branin") && text.contains("35 trials"), "{text}");
    // bma report rewrites the files of a function study (no model) the same, from the store alone.
    let before: Vec<String> = ["results.json", "results.csv", "report.html"]
        .iter()
        .map(|f| std::fs::read_to_string(out.join(f)).unwrap())
        .collect();
    std::fs::remove_file(out.join("report.html")).unwrap();
    std::fs::remove_file(out.join("results.csv")).unwrap();
    let rep = bma().arg("report").arg(&out).output().unwrap();
    assert!(rep.status.success(), "{}", stderr(&rep));
    for (f, b) in ["results.json", "results.csv", "report.html"].iter().zip(&before) {
        assert_eq!(&std::fs::read_to_string(out.join(f)).unwrap(), b, "{f}");
    }
}

#[test]
fn a_seed_and_parallel_reproduce_the_study() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let file = write(dir, "b.bma", &BRANIN.replace("random", "tpe(startup: 5)"));
    let params = |out: &str| {
        let out = dir.join(out);
        let o = run_study(&file, &out, &["--progress", "none", "--parallel", "3", "--trials", "20"]);
        assert!(o.status.success(), "{}", stderr(&o));
        results(&out)["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["number"].clone(), t["params"].clone(), t["values"].clone()))
            .collect::<Vec<_>>()
    };
    let a = params("a");
    assert_eq!(a.len(), 20);
    assert_eq!(a, params("b"));
}

#[test]
fn an_expression_nested_just_under_the_limit_evaluates_in_trial_threads() {
    // A 390-term sum is a tree 390 deep; in a debug build its evaluation overflowed the
    // 2 MiB stack a spawned thread has by default.
    let tmp = temp_dir();
    let dir = tmp.path();
    let sum = vec!["x"; 390].join(" + ");
    let file = write(
        dir,
        "d.bma",
        &format!(
            "experiment d {{\n space {{ x: float in 0.0..=1.0 }}\n objective {{ minimize {sum} }}\n search {{ strategy = random trials = 3 seed = 1 }}\n}}\n"
        ),
    );
    let out = dir.join("out");
    let o = run_study(&file, &out, &["--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for t in results(&out)["trials"].as_array().unwrap() {
        let x = t["params"]["x"].as_f64().unwrap();
        let v = t["values"].as_object().unwrap().values().next().unwrap().as_f64().unwrap();
        assert!((v - 390.0 * x).abs() < 1e-9 * 390.0, "{t}");
    }
}

#[test]
fn a_sub_model_too_large_for_memory_fails_before_allocating() {
    // 10^11 units: about 6 TB to train. Allocating it got the process killed before. The batch
    // is larger than the data: it counts as the data's size, and the small model still trains.
    let (_dir, file, out) = setup(
        "h.bma",
        "experiment h {\n data = iris()\n space { width: int in {8, 100000000000} }\n model { dense(width) relu dense(data.classes) }\n train { epochs = 2 batch = 1000000000000000 }\n objective { maximize accuracy }\n search { strategy = grid trials = 2 }\n}\n",
    );
    let o = run_study(&file, &out, &["--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    let by_width = |w: i64| trials.iter().find(|t| t["params"]["width"] == w).unwrap();
    assert_eq!(by_width(8)["state"], "complete");
    let huge = by_width(100_000_000_000);
    assert_eq!(huge["state"], "failed");
    assert!(huge["error"].as_str().unwrap().starts_with("training it needs at least"), "{huge}");
}

#[test]
fn a_damaged_study_store_is_named_and_left_as_it_is() {
    let (_dir, file, out) = setup("b.bma", BRANIN);
    let run = |resume: bool| {
        let mut c = bma();
        c.arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none", "--trials", "5"]);
        if resume {
            c.arg("--resume");
        }
        c.output().unwrap()
    };
    assert!(run(false).status.success());
    let db = out.join("study.db");
    // Cut short (a disk that filled up), then not a database at all.
    let bytes = std::fs::read(&db).unwrap();
    for damaged in [bytes[..2000].to_vec(), b"garbage".to_vec()] {
        std::fs::write(&db, &damaged).unwrap();
        let _ = std::fs::remove_file(out.join("study.db-wal"));
        let _ = std::fs::remove_file(out.join("study.db-shm"));
        let o = run(true);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(&format!("{}:", db.display())), "the file is named: {err}");
        assert!(err.contains("malformed") || err.contains("not a database"), "{err}");
        assert_eq!(std::fs::read(&db).unwrap(), damaged, "the file is left for the user to recover");
    }
}

#[test]
fn durations_take_the_language_units_and_huge_values_mean_no_limit() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let file = write(dir, "b.bma", BRANIN);
    // `30min` and `500ms` are how the language writes durations; `1e30` and a huge number of
    // hours panicked converting to a Duration.
    for (flag, value) in [
        ("--time", "30min"),
        ("--trial-time", "500ms"),
        ("--time", "1h30m"),
        ("--time", "1e30"),
        ("--time", "99999999999999999999999h"),
    ] {
        let out = dir.join("out");
        let _ = std::fs::remove_dir_all(&out);
        let o = run_study(&file, &out, &["--progress", "none", "--trials", "3", flag, value]);
        assert!(o.status.success(), "{flag} {value}: {}", stderr(&o));
        assert_eq!(results(&out)["trials"].as_array().unwrap().len(), 3, "{flag} {value}");
    }
    for bad in ["5m30", "1h 30m", "h5", "5x", "1.2.3s"] {
        let o = bma().arg("run").arg(&file).args(["--time", bad]).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("duration"), "{bad}: {}", stderr(&o));
    }
    // In the file too.
    let huge = write(dir, "h.bma", &BRANIN.replace("search {", "search {\n  time = 1e30s"));
    let out = dir.join("huge");
    let o = run_study(&huge, &out, &["--progress", "none", "--trials", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_trial_whose_thread_is_refused_fails_with_the_reason_and_the_run_ends() {
    // A 256 TiB stack fits in no address space: the system refuses every trial thread. Before,
    // spawning panicked.
    let (_dir, file, out) = setup("b.bma", BRANIN);
    let o = bma()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args(["--progress", "none", "--trials", "6", "--parallel", "3"])
        .env("BMA_TRIAL_STACK", (1u64 << 48).to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let trials = results(&out)["trials"].as_array().unwrap().clone();
    assert_eq!(trials.len(), 6);
    for t in &trials {
        assert_eq!(t["state"], "failed", "{t}");
        assert!(t["error"].as_str().unwrap().starts_with("could not start a thread for it"), "{t}");
    }
}

#[test]
fn more_trials_at_once_than_cores_run_with_a_note() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let file = write(dir, "b.bma", BRANIN);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = |parallel: usize, out: &str| {
        let out = dir.join(out);
        let o = run_study(&file, &out, &["--progress", "plain", "--trials", "12", "--parallel", &parallel.to_string()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(results(&out)["trials"].as_array().unwrap().len(), 12);
        stderr(&o)
    };
    let note = format!("{} trials at once on {cores} cores", cores + 1);
    assert!(run(cores + 1, "over").contains(&note), "expected `{note}`");
    assert!(!run(cores, "fits").contains("trials at once on"));
}

#[test]
fn a_failing_trial_is_recorded_and_the_study_goes_on() {
    let (_dir, file, out) = setup(
        "f.bma",
        "experiment f {\n space { x: float in -1.0..=1.0 }\n objective { minimize x ^ 0.5 }\n search { strategy = random trials = 20 seed = 1 }\n}\n",
    );
    let o = run_study(&file, &out, &["--progress", "plain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 20);
    for t in trials {
        let x = t["params"]["x"].as_f64().unwrap();
        if x < 0.0 {
            assert_eq!(t["state"], "failed");
            assert!(t["error"].as_str().unwrap().contains("NaN"), "{t}");
        } else {
            assert_eq!(t["state"], "complete");
        }
    }
    assert!(trials.iter().any(|t| t["state"] == "failed") && trials.iter().any(|t| t["state"] == "complete"));
    assert!(stderr(&o).contains("failed: objective"), "plain progress names failures: {}", stderr(&o));
}

#[test]
fn bad_flags_are_clear_errors() {
    let (tmp, file, out) = setup("b.bma", BRANIN);
    let dir = tmp.path();
    for (flags, needle) in [
        (vec!["--parallel", "0"], "--parallel"),
        (vec!["--parallel", "1000000"], "at most 1024 trials run at once"),
        (vec!["--time", "5x"], "bad duration"),
        (vec!["--set", "nope=1"], "nope"),
        (vec!["--set", "x=99"], "x=99"),
        (vec!["--strategy", "tpe("], "--strategy"),
        (vec!["--strategy", "simulated_annealing"], "unknown strategy"),
        (vec!["--device", "tpu"], "--device"),
        (vec!["--experiment", "other"], "no experiment `other`"),
        (vec!["--progress", "loud"], "loud"),
    ] {
        let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(&flags).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{flags:?}: {}", stderr(&o));
    }
    let broken = write(dir, "bad.bma", "experiment e { space { x: float in 1.0..0.0 } objective { minimize x } }");
    let o = bma().arg("run").arg(&broken).arg("--out").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing was run"), "{}", stderr(&o));
}

/// A tiny model study: 2-d moons, one small dense layer, a few epochs a trial.
const TINY: &str = "
experiment tiny {
  data = synthetic.moons(n: 300, noise: 0.2, seed: 1)
  space {
    width: int in {4, 8, 16}
    lr: float in 1e-3..1e-1 log
  }
  model { dense(width) relu dense(data.classes) }
  train { optimizer = adam(lr) epochs = 12 batch = 16 loss = cross_entropy }
  objective { maximize accuracy }
  search { strategy = random trials = 16 seed = 5 }
}
";

fn count_finished(db: &Path) -> usize {
    use bma::store::{Sqlite, Store};
    let Ok(s) = Sqlite::open(db) else { return 0 };
    let Ok(studies) = s.studies() else { return 0 };
    studies
        .first()
        .map(|st| ["complete", "pruned", "failed"].iter().filter_map(|k| st.counts.get(*k)).sum::<u64>() as usize)
        .unwrap_or(0)
}

#[test]
fn a_killed_study_resumes_to_the_exact_trial_count() {
    let (_dir, file, out) = setup("t.bma", TINY);
    let mut child = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).spawn().unwrap();
    let db = out.join("study.db");
    let t0 = Instant::now();
    while count_finished(&db) < 3 {
        assert!(t0.elapsed() < Duration::from_secs(120), "the study did not start");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("finished before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let _ = child.wait();
    let before = {
        use bma::store::{Sqlite, Store};
        let s = Sqlite::open(&db).unwrap();
        let id = s.studies().unwrap()[0].id;
        s.history(id).unwrap()
    };
    assert!(before.len() < 16, "killed mid-study");
    let o = run_study(&file, &out, &["--progress", "plain", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 16, "exactly the budget");
    let numbers: Vec<u64> = trials.iter().map(|t| t["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (0..16).collect::<Vec<_>>());
    assert!(trials.iter().all(|t| t["state"] == "complete"), "{trials:?}");
    // Nothing finished before the kill was lost or changed.
    for b in before.iter().filter(|t| t.state.is_finished()) {
        let t = &trials[b.number as usize];
        // (serde_json's float parsing is not bit-exact, hence the tolerance.)
        assert!((t["values"]["accuracy"].as_f64().unwrap() - b.values[0]).abs() < 1e-12);
        assert_eq!(t["params"]["width"].as_i64().unwrap(), b.params["width"].as_i64().unwrap());
    }
    // Every complete trial's model is saved, the best is copied and evaluable.
    for n in 0..16 {
        assert!(out.join(format!("trials/{n}/model.safetensors")).exists(), "trial {n}");
    }
    assert!(r["best"]["test"]["accuracy"].as_f64().unwrap() > 0.5);
    let e = bma().arg("eval").arg(&out).args(["--split", "test"]).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    assert!(String::from_utf8_lossy(&e.stdout).contains("accuracy"));
}

/// The state of the study in `db` and its trials' counts by state (empty before it exists).
fn stored(db: &Path) -> (String, std::collections::BTreeMap<String, u64>) {
    use bma::store::{Sqlite, Store};
    let Ok(s) = Sqlite::open(db) else { return (String::new(), Default::default()) };
    let Ok(studies) = s.studies() else { return (String::new(), Default::default()) };
    studies.first().map(|st| (st.state.as_str().to_string(), st.counts.clone())).unwrap_or_default()
}

/// Starts `bma run` of TINY in `out` (with `args`) and waits until `finished` trials are
/// finished and one more is running (so a signal stops a trial mid-training).
fn start_tiny(file: &Path, out: &Path, finished: usize, args: &[&str]) -> std::process::Child {
    let mut child = bma()
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(["--progress", "none"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let db = out.join("study.db");
    let t0 = Instant::now();
    loop {
        let (_, counts) = stored(&db);
        if count_finished(&db) >= finished && counts.get("running").is_some_and(|n| *n > 0) {
            return child;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "the study did not start");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("finished before the signal: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_requeues_the_running_trial_and_resume_completes_every_trial() {
    let (_dir, file, out) = setup("t.bma", TINY);
    let mut child = start_tiny(&file, &out, 2, &[]);
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let r = results(&out);
    assert_eq!(r["state"], "interrupted");
    let trials = r["trials"].as_array().unwrap();
    assert!(trials.len() < 16);
    // The trial stopped mid-training is queued again, not failed.
    assert!(trials.iter().all(|t| t["state"] == "complete" || t["state"] == "queued"), "{trials:?}");
    let (state, counts) = stored(&out.join("study.db"));
    assert_eq!(state, "interrupted");
    assert_eq!(counts.get("failed"), None, "{counts:?}");
    let o = run_study(&file, &out, &["--progress", "none", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 16);
    assert!(trials.iter().all(|t| t["state"] == "complete"), "{trials:?}");
    assert_eq!(r["state"], "finished");
}

#[test]
fn sigterm_and_sighup_stop_like_ctrl_c() {
    for signal in ["TERM", "HUP"] {
        let (_dir, file, out) = setup("t.bma", TINY);
        let mut child = start_tiny(&file, &out, 1, &["--trials", "100000"]);
        Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "SIG{signal}");
        // Everything recorded, nothing left running: the study is interrupted, with its results.
        let (state, counts) = stored(&out.join("study.db"));
        assert_eq!(state, "interrupted", "SIG{signal}");
        assert_eq!(counts.get("running"), None, "SIG{signal}: {counts:?}");
        assert_eq!(results(&out)["state"], "interrupted", "SIG{signal}");
        let o = run_study(&file, &out, &["--progress", "none", "--resume", "--trials", "3"]);
        assert!(o.status.success(), "SIG{signal}: {}", stderr(&o));
        let counts = &results(&out)["counts"];
        assert!(counts["complete"].as_u64().is_some_and(|n| n >= 3), "SIG{signal}: {counts}");
        assert_eq!((&counts["running"], &counts["queued"], &counts["failed"]), (&0.into(), &0.into(), &0.into()));
    }
}

/// A small model study on iris: `epochs` each, `trials` in all, a uniform ensemble of the `top`.
fn tiny_iris(epochs: u32, trials: u32, top: u32) -> String {
    format!(
        "experiment tiny {{
  data = iris(split: [0.6, 0.2, 0.2], seed: 1)
  space {{ width: int in {{8, 16}}  lr: float in 1e-3..1e-1 log }}
  model {{ dense(width) relu dense(data.classes) }}
  train {{ optimizer = adam(lr)  epochs = {epochs}  batch = 16 }}
  objective {{ maximize accuracy }}
  search {{ strategy = random  trials = {trials}  seed = 3 }}
  average {{ ensemble(top: {top}, weights: uniform) }}
}}
"
    )
}

#[test]
fn a_model_study_builds_the_final_model_and_the_report() {
    let (_dir, spec, out) = setup("tiny.bma", &tiny_iris(4, 4, 3));
    let o = run_study(&spec, &out, &["--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let f = &r["final"];
    // Uniform weights over the top 3 complete trials, all saved as members.
    let members = f["members"].as_array().expect("final members");
    assert_eq!(members.len(), 3, "{f}");
    let weights: f64 = members.iter().filter_map(|m| m["weight"].as_f64()).sum();
    assert!((weights - 1.0).abs() < 1e-9, "{f}");
    assert!(f["final_test"]["accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{f}");
    assert_eq!(f["best_single"], r["best"]["number"], "{f}");
    // The report is written, self-contained, with its plots.
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.matches("<svg").count() >= 3);
    assert!(!html.contains("<script src") && !html.contains("<link ") && !html.contains("url(http"));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("final model (ensemble"), "{stdout}");
}

#[test]
fn a_study_killed_while_its_outputs_are_written_is_not_finished_and_resume_finishes_it() {
    let (_dir, spec, out) = setup("tiny.bma", &tiny_iris(3, 6, 5));
    let mut child = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).spawn().unwrap();
    let db = out.join("study.db");
    let t0 = Instant::now();
    // Every trial recorded: the run is now writing best/, final/ and the results files.
    while count_finished(&db) < 6 {
        assert!(t0.elapsed() < Duration::from_secs(120), "the study did not run");
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let (state, _) = stored(&db);
    // Whenever the kill landed: a finished study has all its outputs, and final/ is whole or absent.
    if state == "finished" {
        assert!(results(&out)["final"]["members"].is_array(), "finished without its final model");
    } else {
        assert_eq!(state, "running");
        let report = bma().arg("report").arg(&out).output().unwrap();
        assert!(stderr(&report).contains("is not finished"), "{}", stderr(&report));
    }
    if out.join("final").exists() {
        assert!(out.join("final/final.json").is_file(), "a partial final/");
        let e = bma().arg("eval").arg(&out).args(["--model", "final"]).output().unwrap();
        assert!(e.status.success(), "{}", stderr(&e));
    }
    let o = run_study(&spec, &out, &["--progress", "none", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stored(&db).0, "finished");
    let r = results(&out);
    assert_eq!(r["counts"]["complete"], 6);
    assert_eq!(r["final"]["members"].as_array().map(Vec::len), Some(5), "{}", r["final"]);
    assert!(out.join("final/final.json").is_file() && out.join("best/model.json").is_file());
}

#[test]
fn an_out_folder_that_holds_no_study_is_refused_unless_forced() {
    let (dir, file, out) = setup("b.bma", BRANIN);
    let notes = write(&out_dir(&out), "notes.txt", "mine");
    std::fs::create_dir_all(out.join("best")).unwrap();
    let best_notes = write(&out.join("best"), "notes.txt", "mine too");
    let o = run_study(&file, &out, &["--progress", "none", "--trials", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not empty and holds no study") && stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&out.display().to_string()), "{}", stderr(&o));
    // Nothing was touched.
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    assert_eq!(std::fs::read_to_string(&best_notes).unwrap(), "mine too");
    assert!(!out.join("study.db").exists() && !out.join("results.json").exists());
    // A file in place of the folder is refused too, and left alone.
    let file_out = write(dir.path(), "not-a-folder", "x");
    let o = run_study(&file, &file_out, &["--progress", "none", "--trials", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a file, not a folder"), "{}", stderr(&o));
    // With --force the run writes into it, keeping what it does not write.
    let o = run_study(&file, &out, &["--progress", "none", "--trials", "3", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    assert_eq!(results(&out)["counts"]["complete"], 3);
    // Now it holds a study: a plain run is refused as before, --resume continues.
    let o = run_study(&file, &out, &["--progress", "none", "--trials", "3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
}

/// `out`, created.
fn out_dir(out: &Path) -> PathBuf {
    std::fs::create_dir_all(out).unwrap();
    out.to_path_buf()
}

#[test]
fn an_unwritable_out_folder_is_refused_before_any_trial_and_a_failed_save_stops_the_study() {
    let (dir, file, out) = setup("t.bma", TINY);
    // A folder that cannot be made: refused at once, naming it.
    let blocked = write(dir.path(), "blocker", "x").join("out");
    let o = run_study(&file, &blocked, &["--progress", "none"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot create the output folder") && stderr(&o).contains("blocker"), "{}", stderr(&o));
    // No budget that every trial fails.
    for flags in [["--trials", "0"], ["--trial-time", "0"], ["--trial-time", "0s"]] {
        let o = run_study(&file, &out, &flags);
        assert_eq!(o.status.code(), Some(1), "{flags:?}: {}", stderr(&o));
        assert!(!out.exists(), "{flags:?}");
    }
    // The models cannot be saved (a file where trials/ goes): the first save stops the
    // study, naming the path; the trial stays queued to rerun.
    write(&out_dir(&out), "trials", "in the way");
    let o = run_study(&file, &out, &["--progress", "none", "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("cannot save trial") && err.contains(&out.join("trials").display().to_string()), "{err}");
    let (state, counts) = stored(&out.join("study.db"));
    assert_eq!(state, "interrupted");
    assert!(counts.get("queued").is_some_and(|n| *n >= 1), "{counts:?}");
    assert_eq!((counts.get("failed"), counts.get("running")), (None, None), "{counts:?}");
    assert!(count_finished(&out.join("study.db")) < 16, "the budget was not burnt");
    // Fixed, --resume retries it.
    std::fs::remove_file(out.join("trials")).unwrap();
    let o = run_study(&file, &out, &["--progress", "none", "--resume", "--trials", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert!(r["trials"].as_array().unwrap().iter().all(|t| t["state"] == "complete"), "{}", r["trials"]);
}

#[test]
fn a_run_whose_data_fails_to_load_leaves_no_study_in_the_way() {
    let spec = "experiment e {
  data = csv(\"d.csv\", target: \"y\")
  space { width: int in {4, 8} }
  model { dense(width) relu dense(data.classes) }
  train { optimizer = adam(0.01) epochs = 2 batch = 4 }
  objective { maximize accuracy }
  search { strategy = random trials = 2 }
}
";
    let (dir, file, out) = setup("s.bma", spec);
    // The file checks (the checker refuses every bad value the loader does), but two rows
    // cannot be split into train, valid and test.
    write(dir.path(), "d.csv", "a,b,y\n1,2,0\n3,4,1\n");
    let o = run_study(&file, &out, &["--progress", "none"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("d.csv") && stderr(&o).contains("2 samples"), "{}", stderr(&o));
    let ls = bma().arg("ls").arg(&out).output().unwrap();
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("running"), "{}", String::from_utf8_lossy(&ls.stdout));
    // Fixed, a plain run starts the study (no --resume needed).
    write(dir.path(), "d.csv", "a,b,y\n1,2,0\n3,4,1\n7,8,1\n5,5,0\n2,1,1\n");
    let o = run_study(&file, &out, &["--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(results(&out)["counts"]["total"], 2);
}

#[test]
fn ls_tells_a_live_run_from_a_dead_one() {
    let (_dir, file, out) = setup("t.bma", TINY);
    let mut child = start_tiny(&file, &out, 1, &["--trials", "100000"]);
    let ls = || String::from_utf8_lossy(&bma().arg("ls").arg(&out).output().unwrap().stdout).into_owned();
    let live = ls();
    assert!(live.contains("  running  "), "{live}");
    Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let dead = ls();
    assert!(dead.contains("stopped (no live owner)"), "{dead}");
    assert_eq!(stored(&out.join("study.db")).0, "running", "the store is left as the kill left it");
}

#[test]
fn a_study_folder_has_one_owner_and_its_outputs_hold_every_trial() {
    let (_dir, file, out) = setup("t.bma", TINY);
    // A budget it cannot spend while this test looks: it runs until it is stopped.
    let mut child = start_tiny(&file, &out, 1, &["--trials", "100000"]);
    let second = run_study(&file, &out, &["--progress", "none", "--resume"]);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let err = stderr(&second);
    assert!(err.contains("in use by another bma run") && err.contains(&format!("pid {}", child.id())), "{err}");
    // The owner was not disturbed: stopped, it has recorded every trial it ran.
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let ran = count_finished(&out.join("study.db"));
    assert_eq!(results(&out)["counts"]["complete"].as_u64(), Some(ran as u64));
    // Its owner gone, the folder is free again, and the outputs hold every trial of the store.
    let budget = (ran + 2).to_string();
    let o = run_study(&file, &out, &["--progress", "none", "--resume", "--trials", &budget]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["counts"]["complete"].as_u64(), Some(ran as u64 + 2), "{}", r["counts"]);
    assert_eq!(r["trials"].as_array().map(Vec::len), Some(ran + 2));
    assert_eq!(r["state"], "finished");
}

#[test]
fn the_users_own_mistakes_exit_1_not_2() {
    let (dir, file, out) = setup("b.bma", BRANIN);
    // A damaged saved model.
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    write(&model, "model.json", "{ not json");
    write(&model, "model.safetensors", "garbage");
    let o = bma().arg("eval").arg(&model).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("model.json"), "{}", stderr(&o));
    // A folder where results.json goes: the trials are recorded, the file is named.
    std::fs::create_dir_all(out.join("results.json")).unwrap();
    let o = run_study(&file, &out, &["--progress", "none", "--trials", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&out.join("results.json").display().to_string()), "{}", stderr(&o));
    assert_eq!(count_finished(&out.join("study.db")), 3);
    // `bma report` meets the same folder in the way.
    let o = bma().arg("report").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    std::fs::remove_dir(out.join("results.json")).unwrap();
    let o = bma().arg("report").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(results(&out)["counts"]["complete"], 3);
}

/// The number `bma eval` prints for `metric`.
fn printed(stdout: &str, metric: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(metric).map(|v| v.trim().parse::<f64>().expect("a number")))
        .unwrap_or_else(|| panic!("no {metric} in {stdout}"))
}

#[test]
fn report_regenerates_the_results_and_eval_reloads_the_final_model() {
    let (tmp, spec, out) = setup(
        "tiny.bma",
        "use std::blocks::{dense_act}
experiment tiny {
  data = iris(split: [0.6, 0.2, 0.2], seed: 2)
  space { width: int in {8, 16}  lr: float in 1e-3..1e-1 log }
  model { dense_act(width, relu, 0.0) dense(data.classes) }
  train { optimizer = adam(lr)  epochs = 4  batch = 16 }
  objective { maximize accuracy }
  search { strategy = random  trials = 5  seed = 4 }
  average { ensemble(top: 4, weights: softmax(accuracy, temperature: 0.05)) }
  report { top = 3 }
}
",
    );
    let dir = tmp.path();
    let o = run_study(&spec, &out, &["--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run_stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let files = ["results.json", "results.csv", "report.html"];
    let read = |f: &str| std::fs::read_to_string(out.join(f)).expect(f);
    let before: Vec<String> = files.iter().map(|f| read(f)).collect();
    // The source may change or vanish: the report reads the spec the study stored.
    std::fs::remove_file(&spec).unwrap();

    // With results.json still there, everything comes back byte for byte.
    let r = bma().arg("report").arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(&read(f), b, "{f} differs after bma report");
    }
    // The ranked table and the final model's line are the run's.
    let report_stdout = String::from_utf8_lossy(&r.stdout);
    let table_end = run_stdout.find(" trials: ").and_then(|i| run_stdout[..i].rfind('\n')).unwrap();
    assert!(report_stdout.starts_with(&run_stdout[..=table_end]), "{report_stdout}\nvs\n{run_stdout}");
    assert!(report_stdout.contains("final model (ensemble"), "{report_stdout}");

    // Deleted, they come back the same; only how the run ended is the run's own knowledge.
    for f in files {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let r = bma().arg("report").arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(read("results.csv"), before[1]);
    assert_eq!(read("report.html"), before[2]);
    let mut old: Value = serde_json::from_str(&before[0]).unwrap();
    old.as_object_mut().unwrap().remove("ended");
    assert_eq!(results(&out), old);

    // `bma eval` reloads the final model (members and weights) by default, the best trial on request.
    let res = results(&out);
    let e = bma().arg("eval").arg(&out).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let text = String::from_utf8_lossy(&e.stdout);
    assert!(text.starts_with("final model (ensemble"), "{text}");
    let recorded = res["final"]["final_test"]["accuracy"].as_f64().unwrap();
    assert!((printed(&text, "accuracy") - recorded).abs() < 5e-5, "{text} vs {recorded}");
    let recorded_loss = res["final"]["final_test"]["loss"].as_f64().unwrap();
    assert!((printed(&text, "loss") - recorded_loss).abs() < 5e-5 * (1.0 + recorded_loss), "{text}");
    let e = bma().arg("eval").arg(&out).args(["--model", "best"]).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let best = res["best"]["test"]["accuracy"].as_f64().unwrap();
    assert!((printed(&String::from_utf8_lossy(&e.stdout), "accuracy") - best).abs() < 5e-5);
    let e = bma().arg("eval").arg(out.join("final")).args(["--split", "valid"]).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let valid = res["final"]["final_valid"]["accuracy"].as_f64().unwrap();
    assert!((printed(&String::from_utf8_lossy(&e.stdout), "accuracy") - valid).abs() < 5e-5);
    // A run folder without its final model (a run stopped before building it): the best
    // trial is evaluated, and the user is told so, never silently.
    let moved = out.with_extension("final-aside");
    std::fs::rename(out.join("final"), &moved).unwrap();
    let e = bma().arg("eval").arg(&out).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    assert!(stderr(&e).contains("holds no final model"), "{}", stderr(&e));
    assert!((printed(&String::from_utf8_lossy(&e.stdout), "accuracy") - best).abs() < 5e-5);
    std::fs::rename(&moved, out.join("final")).unwrap();

    // Bad folders are clear errors, never panics.
    let check = |args: &[&std::ffi::OsStr], code: i32, needle: &str| {
        let o = bma().args(args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let missing = dir.join("nope");
    check(&[&os("report"), missing.as_os_str()], 1, "does not exist");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    check(&[&os("report"), empty.as_os_str()], 1, "no study.db");
    assert!(!empty.join("study.db").exists(), "bma report created a store");
    check(&[&os("report"), out.as_os_str(), &os("--study"), &os("other")], 1, "no study `other`");
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("study.db"), vec![0x5a; 8192]).unwrap();
    check(&[&os("report"), corrupt.as_os_str()], 2, "study.db");
    check(&[&os("eval"), empty.as_os_str(), &os("--model"), &os("final")], 1, "no saved final model");
    check(&[&os("eval"), out.as_os_str(), &os("--model"), &os("soup")], 1, "soup");
}

/// `bma run … | head -1`: the reader of stdout and stderr goes away before bma writes.
/// Printing must not panic (exit 101) nor stop the run: every trial is still recorded.
#[test]
fn a_closed_stdout_neither_panics_nor_loses_trials() {
    use std::process::Stdio;
    let (_dir, file, out) = setup("b.bma", BRANIN);
    let mut child = bma()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args(["--progress", "plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let r = results(&out);
    assert_eq!(r["trials"].as_array().map(Vec::len), Some(30));
}

/// A PostgreSQL store that does not answer is retried for BMA_STORE_RETRY seconds; the user
/// hears what bma waits for after two, then gets one clear error (exit 2), never silence.
#[test]
fn an_unreachable_store_is_announced_then_refused() {
    // Port 1 on loopback: nothing listens, every attempt is refused at once.
    let o = bma()
        .args(["ls", "--store", "postgres://bma@127.0.0.1:1/none"])
        .env("BMA_STORE_RETRY", "6")
        .env_remove("BMA_STORE")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("waiting for the store postgres://bma@127.0.0.1:1/none: no answer yet"), "{err}");
    assert!(err.contains("unreachable"), "{err}");
}

/// A point refused before training by a static `require` is an infeasible trial with its
/// reason; the summary line counts such trials apart from real failures.
#[test]
fn points_refused_before_training_are_counted_apart_in_the_summary() {
    let (_dir, spec, out) = setup(
        "r.bma",
        "experiment refused {
  data = iris(split: [0.6, 0.2, 0.2], seed: 1)
  space { width: int in {4, 64} }
  model { dense(width) relu dense(data.classes) }
  train { optimizer = adam(0.01)  epochs = 2  batch = 16 }
  objective { maximize accuracy  require params <= 100 }
  search { strategy = grid }
}
",
    );
    let o = run_study(&spec, &out, &["--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    // width 4: 4*4+4 + 4*3+3 = 35 params; width 64: 515.
    assert!(stdout.contains("2 trials: 1 complete, 0 pruned, 0 failed, 1 infeasible before training"), "{stdout}");
    let r = results(&out);
    let refused: Vec<&Value> = r["trials"].as_array().unwrap().iter().filter(|t| t["state"] == "infeasible").collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0]["error"].as_str().unwrap().starts_with("infeasible before training: params <= 100 (is 515)"));
    assert_eq!((r["counts"]["infeasible"].as_u64(), r["counts"]["failed"].as_u64()), (Some(1), Some(0)));
}

#[test]
fn resuming_a_finished_grid_adds_no_trial_and_reports_nothing_queued() {
    let spec = "experiment p {\n  space {\n    x: float in {1.0, 2.0}\n  }\n  objective {\n    minimize x\n  }\n  search {\n    strategy = grid\n  }\n}\n";
    let (_dir, file, out) = setup("grid.bma", spec);
    for args in [&["--progress", "none"][..], &["--resume", "--progress", "none"][..]] {
        let o = run_study(&file, &out, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("2 trials: 2 complete, 0 pruned, 0 failed;"), "{args:?}: {text}");
        // The number the grid claimed and gave back (it had no point left) is no trial.
        let trials = results(&out)["trials"].as_array().map(Vec::len);
        assert_eq!(trials, Some(2), "{args:?}: {}", results(&out));
    }
    let r = bma().arg("report").arg(&out).output().expect("bma report");
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(!stderr(&r).contains("queued"), "{}", stderr(&r));
    assert_eq!(results(&out)["trials"].as_array().map(Vec::len), Some(2));
}
