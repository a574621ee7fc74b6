//! Trained models that travel through the store (issue 24), with the real binary and the
//! script's real PostgreSQL server: one `bma run` and two `bma worker`s, each in its own
//! temporary folder with its own copy of the spec and nothing shared but the database,
//! build the same final model as one machine holding every trial's folder; a worker killed
//! while it uploads leaves no half model and its trial is rerun; a damaged chunk is refused
//! by its hash.
//!
//! Needs `BMA_TEST_POSTGRES` (`eval "$(scripts/pg-test-server.sh start)"`; CI sets it);
//! without it each test fails under `CI` and is skipped with a loud line elsewhere.
//! `BMA_TEST_KILL_UPLOAD=N` (read by the CLI only, test-only) makes a process SIGKILL
//! itself right after it sent chunk `N` of a model, before the upload commits.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

mod common;

use common::{client, stderr, temp_dir, unique, write};

/// A tiny digits MLP; `width` sets the model's size (a 4096-wide hidden layer is two chunks).
fn spec(name: &str, width: u32, trials: u32) -> String {
    format!(
        "// study {name}\n\
         experiment digits_art {{\n  \
           data = digits(split: [0.7, 0.15, 0.15], seed: 1)\n  \
           space {{ lr: float in 0.005..0.05 log }}\n  \
           model {{ flatten dense({width}) relu dense(data.classes) }}\n  \
           train {{ optimizer = adam(lr)  epochs = 2  batch = 64 }}\n  \
           objective {{ maximize accuracy }}\n  \
           search {{ strategy = random  trials = {trials}  seed = 5 }}\n  \
           average {{ soup(uniform, top: 3)  ensemble(top: 3) }}\n}}\n"
    )
}

/// `bma` in `dir`, with no store from the environment and no fault injection.
fn bma_in(dir: &Path) -> Command {
    let mut c = common::bma();
    c.current_dir(dir).env_remove("BMA_STORE").env_remove("BMA_TEST_KILL_UPLOAD");
    c
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start bma")
}

fn done(child: Child, who: &str) -> Output {
    let o = child.wait_with_output().expect("wait for bma");
    assert!(o.status.success(), "{who} failed ({:?}): {}", o.status, stderr(&o));
    o
}

/// A worker in its own folder `dir` (its own copy of the spec: it creates the study if it
/// is the first), writing its models into `dir/out`.
fn worker(dir: &Path, url: &str, name: &str) -> Command {
    let mut c = bma_in(dir);
    c.args(["worker", "--store", url, "--study", name, "--file", "spec.bma", "--out", "out", "--progress", "none"]);
    c
}

/// `bma final` of the study into `dir/out`.
fn build_final(dir: &Path, url: &str, name: &str) -> Output {
    bma_in(dir).args(["final", "--store", url, "--study", name, "--out", "out"]).output().expect("run bma final")
}

/// The summary of `<out>/final/final.json`.
fn final_summary(out: &Path) -> serde_json::Value {
    let path = out.join("final/final.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str::<serde_json::Value>(&text).expect("final.json parses")["summary"].clone()
}

/// Two final models are the same: members, weights and every valid and test metric within 1e-6.
fn assert_same_final(a: &serde_json::Value, b: &serde_json::Value, what: &str) {
    assert_eq!(a["members"].as_array().map(Vec::len), b["members"].as_array().map(Vec::len), "{what}: members");
    for (x, y) in a["members"].as_array().into_iter().flatten().zip(b["members"].as_array().into_iter().flatten()) {
        assert_eq!(x["trials"], y["trials"], "{what}: member trials");
        let (wx, wy) = (x["weight"].as_f64().expect("a weight"), y["weight"].as_f64().expect("a weight"));
        assert!((wx - wy).abs() <= 1e-6, "{what}: weights {wx} and {wy}");
    }
    assert_eq!(a["best_single"], b["best_single"], "{what}: best single trial");
    for part in ["final_valid", "final_test"] {
        let (ma, mb) = (a[part].as_object().expect("metrics"), b[part].as_object().expect("metrics"));
        assert!(ma.contains_key("accuracy") && ma.len() == mb.len(), "{what}: {part} {ma:?} vs {mb:?}");
        for (k, va) in ma {
            let (va, vb) = (va.as_f64().expect("a number"), mb[k].as_f64().expect("a number"));
            assert!((va - vb).abs() <= 1e-6, "{what}: {part}.{k} {va} vs {vb}");
        }
    }
}

fn study_id(url: &str, name: &str) -> i64 {
    client(url).query_one("SELECT id FROM bma_studies WHERE name = $1", &[&name]).expect("the study").get(0)
}

/// Chunks whose artifact has no header (what a half-finished upload would leave).
fn orphan_chunks(url: &str, study: i64) -> i64 {
    client(url)
        .query_one(
            "SELECT COUNT(*) FROM bma_artifact_chunks c WHERE c.study = $1 AND NOT EXISTS \
             (SELECT 1 FROM bma_artifacts a WHERE a.study = c.study AND a.number = c.number)",
            &[&study],
        )
        .expect("count")
        .get(0)
}

/// The trial numbers under `<out>/trials/`.
fn local_trials(out: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(out.join("trials"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for e in std::fs::read_dir(from).expect("read") {
        let e = e.expect("an entry");
        let dst: PathBuf = to.join(e.file_name());
        if e.file_type().expect("a type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

#[test]
fn a_run_and_two_workers_without_shared_files_build_the_one_machine_final_model() {
    let Some(url) = common::url("the artifacts test") else { return };
    let name = unique("art");
    let (w1, w2, run, single, fresh) = (temp_dir(), temp_dir(), temp_dir(), temp_dir(), temp_dir());
    for d in [&w1, &w2, &run] {
        write(d.path(), "spec.bma", &spec(&name, 16, 8));
    }
    let a = spawn(worker(w1.path(), &url, &name));
    let b = spawn(worker(w2.path(), &url, &name));
    let mut r = bma_in(run.path());
    r.args(["run", "spec.bma", "--store", &url, "--study", &name, "--out", "out", "--progress", "plain"]);
    let r = spawn(r);
    let (r, _, _) = (done(r, "bma run"), done(a, "worker 1"), done(b, "worker 2"));
    let study = study_id(&url, &name);

    // Every complete trial has its model in the store, whole; nothing else has one.
    let mut c = client(&url);
    let complete: Vec<i64> = c
        .query("SELECT number FROM bma_trials WHERE study = $1 AND state = 'complete' ORDER BY number", &[&study])
        .expect("trials")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(complete.len(), 8, "every trial completes");
    let stored: Vec<i64> = c
        .query("SELECT number FROM bma_artifacts WHERE study = $1 ORDER BY number", &[&study])
        .expect("artifacts")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, complete);
    assert_eq!(orphan_chunks(&url, study), 0);

    // The run built final/ from models it fetched (it trained some or none itself): the
    // members it holds are those of the top 6 (soup top 3 + ensemble top 3).
    let run_out = run.path().join("out");
    let run_final = final_summary(&run_out);
    let err = stderr(&r);
    let own: Vec<u64> = [w1.path(), w2.path()].iter().flat_map(|d| local_trials(&d.join("out"))).collect();
    assert!(!own.is_empty(), "the workers trained trials");
    if local_trials(&run_out).iter().any(|n| own.contains(n)) {
        assert!(err.contains("fetched the models of trial(s)"), "{err}");
    }

    // One machine with every trial's folder (the union of the three participants' folders)
    // builds the same final model without fetching anything.
    for d in [w1.path(), w2.path(), run.path()] {
        copy_dir(&d.join("out/trials"), &single.path().join("out/trials"));
    }
    assert_eq!(local_trials(&single.path().join("out")).len(), 8, "the three folders hold every trial");
    let s = build_final(single.path(), &url, &name);
    assert!(s.status.success(), "{}", stderr(&s));
    assert!(
        String::from_utf8_lossy(&s.stdout).contains("fetched 0 model(s)"),
        "{}",
        String::from_utf8_lossy(&s.stdout)
    );
    assert_same_final(&run_final, &final_summary(&single.path().join("out")), "one machine vs the run");

    // A fifth place with nothing at all fetches what it needs and builds it too.
    let f = build_final(fresh.path(), &url, &name);
    assert!(f.status.success(), "{}", stderr(&f));
    assert!(String::from_utf8_lossy(&f.stdout).contains("fetched 6 model(s), 0 already here"));
    assert_same_final(&run_final, &final_summary(&fresh.path().join("out")), "a fresh folder vs the run");

    // eval and predict reach the study's models through the store.
    let e = bma_in(fresh.path())
        .args(["eval", "--store", &url, "--study", &name, "--format", "json"])
        .output()
        .expect("run bma eval");
    assert!(e.status.success(), "{}", stderr(&e));
    let ev: serde_json::Value = serde_json::from_slice(&e.stdout).expect("eval's JSON");
    let acc = ev["metrics"]["accuracy"].as_f64().unwrap_or_else(|| panic!("accuracy in {ev}"));
    let want = run_final["final_test"]["accuracy"].as_f64().expect("accuracy");
    assert!((acc - want).abs() <= 1e-6, "eval --store {acc} vs the run's final model {want}");
    let first = complete[0] as u64;
    let t = bma_in(fresh.path())
        .args(["eval", "--store", &url, "--study", &name, "--trial", &first.to_string()])
        .output()
        .expect("run bma eval");
    assert!(t.status.success(), "{}", stderr(&t));

    // predict through the store answers as the run's own best/ does.
    let header: Vec<String> = (0..64).map(|i| format!("x{i}")).collect();
    let row: Vec<String> = (0..64).map(|i| ((i * 7) % 17).to_string()).collect();
    let input = write(fresh.path(), "in.csv", &format!("{}\n{}\n", header.join(","), row.join(",")));
    let p = bma_in(fresh.path())
        .args(["predict", "--store", &url, "--study", &name, "--model", "best"])
        .arg(&input)
        .output()
        .expect("run bma predict");
    assert!(p.status.success(), "{}", stderr(&p));
    let local = bma_in(fresh.path()).arg("predict").arg(run_out.join("best")).arg(&input).output().expect("predict");
    assert!(local.status.success(), "{}", stderr(&local));
    assert_eq!(String::from_utf8_lossy(&p.stdout), String::from_utf8_lossy(&local.stdout));
    assert!(String::from_utf8_lossy(&p.stdout).starts_with("input,prediction\nline 2,"));

    // bma ls lists the stored models and their total size.
    let ls = bma_in(fresh.path()).args(["ls", "--store", &url, "--study", &name]).output().expect("run bma ls");
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success() && text.contains("8 stored model(s)"), "{text}{}", stderr(&ls));

    // `--keep top:1` on a run joining the finished study: the best and the final model's
    // members (the top 6) stay in the store, the other 2 go; the final model still builds.
    let k = bma_in(run.path())
        .args(["run", "spec.bma", "--store", &url, "--study", &name, "--out", "out2", "--keep", "top:1"])
        .output()
        .expect("run bma run --keep");
    assert!(k.status.success(), "{}", stderr(&k));
    assert!(stderr(&k).contains("--keep top:1: deleted 2 stored model(s); 6 stay"), "{}", stderr(&k));
    let ranked: Vec<i64> = c
        .query("SELECT number FROM bma_artifacts WHERE study = $1 ORDER BY number", &[&study])
        .expect("artifacts")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let members: Vec<i64> = run_final["members"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["trials"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_i64())
        .collect();
    assert!(members.iter().all(|m| ranked.contains(m)), "every member's model stays: {members:?} in {ranked:?}");
    let kept = temp_dir();
    let f = build_final(kept.path(), &url, &name);
    assert!(f.status.success(), "{}", stderr(&f));
    assert_same_final(&run_final, &final_summary(&kept.path().join("out")), "after --keep");

    // A damaged chunk is refused by its hash, naming the trial and the chunk.
    let top = run_final["best_single"].as_i64().expect("the best trial");
    let n = c
        .execute(
            "UPDATE bma_artifact_chunks SET data = set_byte(data, 20, (get_byte(data, 20) + 1) % 256) \
             WHERE study = $1 AND number = $2 AND idx = 0",
            &[&study, &top],
        )
        .expect("damage a chunk");
    assert_eq!(n, 1);
    let damaged = temp_dir();
    let d = build_final(damaged.path(), &url, &name);
    assert_eq!(d.status.code(), Some(2), "a damaged model is refused: {}", stderr(&d));
    let why = stderr(&d);
    assert!(why.contains(&format!("the stored model of trial {top} is damaged: chunk 0 has SHA-256")), "{why}");
    assert!(!damaged.path().join("out/final").exists() && !damaged.path().join(format!("out/trials/{top}")).exists());

    // Deleting the study deletes its models.
    let rm = bma_in(fresh.path()).args(["rm", "--store", &url, "--study", &name]).output().expect("run bma rm");
    let said = String::from_utf8_lossy(&rm.stdout);
    assert!(rm.status.success() && said.contains("8 trial(s), 6 stored model(s)"), "{said}{}", stderr(&rm));
    let gone = bma_in(fresh.path()).args(["rm", "--store", &url, "--study", &name]).output().expect("run bma rm");
    assert_eq!(gone.status.code(), Some(1), "a second rm finds no study: {}", stderr(&gone));
    let left: i64 = c
        .query_one(
            "SELECT (SELECT COUNT(*) FROM bma_artifacts WHERE study = $1) + \
             (SELECT COUNT(*) FROM bma_artifact_chunks WHERE study = $1)",
            &[&study],
        )
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn a_worker_killed_while_uploading_leaves_no_half_model_and_its_trial_reruns() {
    let Some(url) = common::url("the artifacts kill test") else { return };
    let name = unique("artkill");
    let (killed, run) = (temp_dir(), temp_dir());
    // A 4096-wide layer: about 1.2 MB of weights, two chunks; the worker dies after the
    // first is sent, inside the upload's transaction.
    for d in [&killed, &run] {
        write(d.path(), "spec.bma", &spec(&name, 4096, 3));
    }
    let mut k = worker(killed.path(), &url, &name);
    k.env("BMA_TEST_KILL_UPLOAD", "0");
    let o = k.output().expect("run the worker");
    assert_eq!(o.status.signal(), Some(9), "the worker kills itself mid-upload: {:?} {}", o.status, stderr(&o));
    let study = study_id(&url, &name);
    let mut c = client(&url);
    let row = c
        .query_one("SELECT number, state FROM bma_trials WHERE study = $1 ORDER BY number LIMIT 1", &[&study])
        .expect("its trial");
    let (number, state): (i64, String) = (row.get(0), row.get(1));
    assert_eq!(state, "running", "its trial is not recorded complete");
    assert_eq!(local_trials(&killed.path().join("out")), vec![number as u64], "it had trained and saved it");
    let rows: i64 = c
        .query_one(
            "SELECT (SELECT COUNT(*) FROM bma_artifacts WHERE study = $1) + \
             (SELECT COUNT(*) FROM bma_artifact_chunks WHERE study = $1)",
            &[&study],
        )
        .expect("count")
        .get(0);
    assert_eq!(rows, 0, "the killed upload left nothing in the store");
    // Its heartbeat is recent: deleting the study is refused without --force.
    let rm = bma_in(run.path()).args(["rm", "--store", &url, "--study", &name]).output().expect("run bma rm");
    assert_eq!(rm.status.code(), Some(1), "{}", stderr(&rm));
    assert!(stderr(&rm).contains("1 worker(s) running trials"), "{}", stderr(&rm));

    // A run joins: the dead worker's trial is requeued and rerun, and its model stored.
    let r = bma_in(run.path())
        .args(["run", "spec.bma", "--store", &url, "--study", &name, "--out", "out", "--progress", "plain"])
        .output()
        .expect("run bma run");
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stderr(&r).contains("requeued 1 trial(s)"), "{}", stderr(&r));
    let row = c
        .query_one(
            "SELECT t.state, t.requeues, a.chunks FROM bma_trials t JOIN bma_artifacts a \
             ON a.study = t.study AND a.number = t.number WHERE t.study = $1 AND t.number = $2",
            &[&study, &number],
        )
        .expect("the rerun trial and its model");
    let (state, requeues, chunks): (String, i32, i32) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((state.as_str(), requeues, chunks), ("complete", 1, 2));
    assert_eq!(orphan_chunks(&url, study), 0);
    let fresh = temp_dir();
    let f = build_final(fresh.path(), &url, &name);
    assert!(f.status.success(), "the stored models verify: {}", stderr(&f));
    assert_same_final(&final_summary(&run.path().join("out")), &final_summary(&fresh.path().join("out")), "kill test");
}
