//! `strategy = darts(...)` end to end through `bma run`: the architecture phase picks the
//! better arm on a task built so that one cannot fit (a linear path on concentric circles),
//! stores softmax(α) per epoch with the read-off trial (results.json, the store: `bma report`
//! redraws the section from it alone), retrains that sub-model from scratch as the first trial,
//! and `then:` searches the learning rate afterwards with the choice pinned (the phase cut short
//! by its entropy stop); two processes on one SQLite store run the phase once between them.

mod common;

use common::{bma, results, stderr, temp_dir, write};

/// `kind in {lin, mlp}`: `lin` keeps the shared `dense(16)`'s output, which cannot separate
/// the circles; `mlp` adds ReLUs around a second `dense(16)`.
fn spec(strategy: &str, trials: u64) -> String {
    format!(
        "
experiment circles {{
  data = synthetic.circles(n: 600, noise: 0.05, seed: 3)
  space {{
    kind: in {{lin, mlp}}
    lr: float in 0.005..0.02
  }}
  model {{
    flatten
    dense(16)
    match kind {{
      lin => {{ }}
      mlp => {{ relu dense(16) relu }}
    }}
    dense(data.classes)
  }}
  train {{ optimizer = adam(lr) epochs = 20 batch = 32 }}
  objective {{ maximize accuracy }}
  search {{ strategy = {strategy} trials = {trials} seed = 1 }}
}}
"
    )
}

fn num(v: &serde_json::Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn run(spec: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = temp_dir();
    let file = write(tmp.path(), "d.bma", spec);
    let out = tmp.path().join("out");
    let run = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().expect("runs");
    assert!(run.status.success(), "{}", stderr(&run));
    (tmp, out)
}

#[test]
fn darts_chooses_the_arm_that_fits_stores_its_weights_and_retrains_it() {
    let (_tmp, out) = run(&spec("darts(epochs: 8, arch_lr: 0.03)", 5));
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    // Without `then:` the study is the read-off trial alone, whatever the budget.
    assert_eq!(trials.len(), 1, "{r}");
    let t = &trials[0];
    assert_eq!(t["state"], "complete", "{t}");
    assert_eq!(t["params"]["kind"], "mlp", "{t}");
    // The other parameters are at the middle of their domain while DARTS trains and after.
    assert!((num(&t["params"]["lr"]).unwrap() - 0.0125).abs() < 1e-9, "{t}");
    let m = &t["metrics"];
    assert_eq!(num(&m["darts_epochs@kind"]), Some(8.0), "{m}");
    let weight = |e: u32, v: &str| num(&m[format!("darts@kind@{e}@{v}")]).unwrap_or_else(|| panic!("{e} {v}: {m}"));
    assert_eq!((weight(0, "lin"), weight(0, "mlp")), (0.5, 0.5), "the uniform start");
    for e in 0..=8 {
        assert!((weight(e, "lin") + weight(e, "mlp") - 1.0).abs() < 1e-6, "epoch {e}");
    }
    assert!(weight(8, "mlp") > weight(8, "lin"), "{m}");
    assert!(weight(8, "mlp") > weight(1, "mlp"), "the weight grows: {m}");
    // Retrained from scratch, the chosen sub-model separates the circles.
    assert!(num(&t["values"]["accuracy"]).unwrap() > 0.9, "{t}");
    assert!(out.join("trials/0/model.safetensors").exists());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Architecture weights (DARTS)</h2>"), "no section");
    assert!(html.contains("mlp (chosen)"));
    // The store holds the trajectory: the report is redrawn from it alone.
    std::fs::remove_file(out.join("report.html")).unwrap();
    let rep = bma().arg("report").arg(&out).output().unwrap();
    assert!(rep.status.success(), "{}", stderr(&rep));
    let again = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(again.contains("mlp (chosen)"));
    assert_eq!(again.matches("<path class=\"curve arch\"").count(), 2);
}

#[test]
fn then_searches_the_other_parameters_with_the_choice_pinned() {
    let (_tmp, out) = run(&spec("darts(epochs: 8, arch_lr: 0.03, stop_entropy: 0.9, patience: 2, then: random)", 3));
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{r}");
    let lrs: Vec<f64> = trials.iter().map(|t| num(&t["params"]["lr"]).unwrap()).collect();
    for t in trials {
        assert_eq!(t["params"]["kind"], "mlp", "{t}");
        assert_eq!(t["state"], "complete", "{t}");
    }
    // The first trial is the read-off point; the others are the sampled strategy's.
    assert!((lrs[0] - 0.0125).abs() < 1e-9);
    assert!(lrs[1] != lrs[0] && lrs[2] != lrs[1], "{lrs:?}");
    let carries = |t: &serde_json::Value| t["metrics"].as_object().unwrap().keys().any(|k| k.starts_with("darts@"));
    assert!(carries(&trials[0]));
    // The entropy stop ended the phase early; the weights stored are those of the epochs run.
    let m = trials[0]["metrics"].as_object().unwrap();
    let ran = num(&m["darts_epochs@kind"]).unwrap();
    assert!(ran < 8.0, "{m:?}");
    assert_eq!(m.keys().filter(|k| k.starts_with("darts@kind@")).count(), 2 * (ran as usize + 1));
    let last = |v: &str| num(&m[&format!("darts@kind@{ran}@{v}")]).unwrap();
    assert!(last("mlp") > last("lin"));
    assert!(!carries(&trials[1]) && !carries(&trials[2]));
}

#[test]
fn a_space_without_a_structural_choice_is_refused_before_anything_runs() {
    let tmp = temp_dir();
    let text = spec("darts(epochs: 2)", 2).replace("kind: in {lin, mlp}", "kind = mlp");
    let file = write(tmp.path(), "d.bma", &text);
    let out = tmp.path().join("out");
    let run = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("darts_no_choice"), "{}", stderr(&run));
    assert!(!out.join("results.json").exists());
    // Pinned from the command line, the only decision leaves nothing to mix either.
    let file = write(tmp.path(), "e.bma", &spec("darts(epochs: 2)", 2));
    let run = bma()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(tmp.path().join("out2"))
        .args(["--progress", "none", "--set", "kind=lin"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("no structural choice"), "{}", stderr(&run));
}

#[test]
fn a_resumed_study_keeps_its_read_off_trial_and_does_not_search_again() {
    let (tmp, out) = run(&spec("darts(epochs: 8, arch_lr: 0.03, then: random)", 2));
    let file = tmp.path().join("d.bma");
    let resumed = bma()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args(["--progress", "none", "--resume", "--trials", "4"])
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4, "{r}");
    let carries = |t: &serde_json::Value| t["metrics"].as_object().unwrap().keys().any(|k| k.starts_with("darts@"));
    // Only the first trial is the read-off one: the resumed run proposed no second.
    assert_eq!(trials.iter().filter(|t| carries(t)).count(), 1, "{r}");
    assert!(carries(&trials[0]));
    for t in trials {
        assert_eq!(t["params"]["kind"], "mlp", "{t}");
    }
}

/// Two decisions: independent ones in sequence share one supernet; a decision nested in
/// another's arm is chosen after it, by a second supernet.
#[test]
fn independent_decisions_share_one_supernet_and_nested_ones_take_turns() {
    let joint = spec("darts(epochs: 10, arch_lr: 0.03)", 1)
        .replace("kind: in {lin, mlp}", "kind: in {lin, mlp}\n    pre: in {wide, thin}")
        .replace(
            "    dense(16)\n    match kind",
            "    match pre { wide => { dense(16) }, thin => { dense(1) dense(16) } }\n    flatten\n    match kind",
        );
    let (_tmp, out) = run(&joint);
    let t = &results(&out)["trials"][0];
    let m = &t["metrics"];
    assert_eq!(num(&m["darts_supernets"]), Some(1.0), "{m}");
    assert_eq!((t["params"]["pre"].as_str(), t["params"]["kind"].as_str()), (Some("wide"), Some("mlp")), "{m}");
    for name in ["pre", "kind"] {
        assert_eq!(num(&m[format!("darts_epochs@{name}")]), Some(10.0), "{m}");
    }
    let nested = spec("darts(epochs: 4, arch_lr: 0.03)", 1)
        .replace("kind: in {lin, mlp}", "kind: in {lin, mlp}\n    act: in {relu, tanh}")
        .replace("mlp => {{ relu dense(16) relu }}", "mlp => {{ act dense(16) act }}")
        .replace("mlp => { relu dense(16) relu }", "mlp => { act dense(16) act }");
    let (_tmp2, out2) = run(&nested);
    let t = &results(&out2)["trials"][0];
    let m = &t["metrics"];
    assert_eq!(num(&m["darts_supernets"]), Some(2.0), "{m}");
    assert!(num(&m["darts_epochs@kind"]).is_some() && num(&m["darts_epochs@act"]).is_some(), "{m}");
}

/// `bma run --store` and a `bma worker` on one SQLite store, the worker joining as soon as the
/// study exists (during the phase or the read-off trial): the phase runs once between them
/// (one read-off trial carries α, the store's record names it), and nothing else is trained.
#[test]
fn two_workers_on_one_sqlite_store_run_the_phase_once() {
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    use bma::store::Store;

    let tmp = temp_dir();
    // A read-off trial long enough that the worker joins before it ends on a loaded machine.
    let text = spec("darts(epochs: 8, arch_lr: 0.03)", 5).replace("epochs = 20", "epochs = 60");
    let file = write(tmp.path(), "d.bma", &text);
    let db = tmp.path().join("shared.db");
    let start = |args: &[&str], out: &str| -> Child {
        bma()
            .args(args)
            .arg("--store")
            .arg(&db)
            .args(["--study", "s", "--progress", "none", "--out"])
            .arg(tmp.path().join(out))
            .env_remove("BMA_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts")
    };
    let runner = start(&["run", file.to_str().expect("utf-8 path")], "run");
    let opened = Instant::now();
    let store = loop {
        if db.exists()
            && let Ok(store) = bma::store::Sqlite::open(&db)
            && Store::study(&store, "s").ok().flatten().is_some()
        {
            break store;
        }
        assert!(opened.elapsed() < Duration::from_secs(120), "the study was not created");
        std::thread::sleep(Duration::from_millis(20));
    };
    let worker = start(&["worker"], "worker");
    for (who, child) in [("bma run", runner), ("bma worker", worker)] {
        let out = child.wait_with_output().expect("waits");
        assert!(out.status.success(), "{who}: {}", stderr(&out));
    }
    let study = Store::study(&store, "s").expect("reads").expect("the study");
    let trials = store.history(study.id).expect("history");
    let trained: Vec<_> = trials.iter().filter(|t| !t.params.is_empty()).collect();
    assert_eq!(trained.len(), 1, "one read-off trial, trained once: {trials:?}");
    let t = trained[0];
    assert_eq!(format!("{:?}", t.state), "Complete", "{t:?}");
    assert!(t.metrics.keys().any(|k| k.starts_with("darts@kind@")), "{t:?}");
    let record = store.record(study.id, "darts.phase").expect("reads").expect("the phase's record");
    let record: serde_json::Value = serde_json::from_str(&record).expect("json");
    assert_eq!(record["state"], "done", "{record}");
    assert_eq!(record["trial"].as_u64(), Some(t.number), "{record}");
    assert_eq!(num(&record["metrics"]["darts_epochs@kind"]), Some(8.0), "{record}");
}
