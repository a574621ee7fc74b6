//! One study shared by many `bma` processes through a real PostgreSQL server: the
//! real binary (`bma run --store`, `bma worker`), killed, restarted around.
//!
//! Needs `BMA_TEST_POSTGRES` (`scripts/pg-test-server.sh start` prints it; CI sets it);
//! the restart test also needs `BMA_PG_DIR`. Without them each test prints a loud
//! SKIPPED line and checks nothing (except the unreachable-server test, which needs
//! no server). A pure function trial takes microseconds, so the workers here run with
//! `BMA_TRIAL_DELAY` (each function trial sleeps that long; see `bma run`'s docs) and
//! short `--heartbeat` / `--stale-after` timeouts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{client, restart_server, temp_dir, unique};

/// The restart test takes this for writing, the others for reading: a server restart
/// in the middle of another test's timing (the kill test's 3 s timeout) would make it flaky.
static SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared_server() -> std::sync::RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(|p| p.into_inner())
}

fn url() -> Option<String> {
    common::url("the distributed tests")
}

/// A quick `minimize f(x, y)` experiment (no model), its text unique to `name`.
fn write_spec(dir: &Path, name: &str, trials: u64) -> PathBuf {
    let text = format!(
        "// study {name}\n\
         fn f(x: float, y: float) -> float = (x - 1) ^ 2 + (y + 2) ^ 2\n\n\
         experiment quad {{\n  space {{\n    x: float in -5.0..=5.0\n    y: float in -5.0..=5.0\n  }}\n\n  \
         objective {{\n    minimize f(x, y)\n  }}\n\n  \
         search {{\n    strategy = random\n    trials   = {trials}\n    seed     = 3\n  }}\n}}\n"
    );
    common::write(dir, &format!("{name}.bma"), &text)
}

fn bma(delay: &str) -> Command {
    let mut c = common::bma();
    c.env("BMA_TRIAL_DELAY", delay).env_remove("BMA_STORE").stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// `bma run FILE --store URL --study NAME` with fast timeouts, in the background.
fn start_run(url: &str, file: &Path, name: &str, out: &Path, delay: &str, stale: &str) -> Child {
    bma(delay)
        .arg("run")
        .arg(file)
        .args(["--store", url, "--study", name, "--progress", "none", "--heartbeat", "0.2s", "--stale-after", stale])
        .arg("--out")
        .arg(out)
        .spawn()
        .expect("start bma run")
}

fn start_worker(url: &str, name: &str, out: &Path, delay: &str) -> Child {
    bma(delay)
        .args(["worker", "--store", url, "--study", name, "--progress", "none"])
        .arg("--out")
        .arg(out)
        .spawn()
        .expect("start bma worker")
}

/// Waits for a child, killing it after `limit` (a hang is a failure, not a stuck test).
fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "a bma process did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn assert_ok(out: &Output, who: &str) {
    assert!(
        out.status.success(),
        "{who} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One row of `bma_trials`.
#[derive(Debug)]
struct Row {
    number: i64,
    state: String,
    attempt: i32,
    requeues: i32,
    worker: Option<String>,
    params: Option<String>,
}

fn study_id(url: &str, name: &str) -> Option<i64> {
    // Before the first process has run the migrations the table does not exist yet: not yet.
    client(url).query_opt("SELECT id FROM bma_studies WHERE name = $1", &[&name]).ok().flatten().map(|r| r.get(0))
}

/// Polls until the study exists (its creator committed it).
fn wait_for_study(url: &str, name: &str) -> i64 {
    let start = Instant::now();
    loop {
        if let Some(id) = study_id(url, name) {
            return id;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "study {name} was never created");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rows(url: &str, study: i64) -> Vec<Row> {
    client(url)
        .query(
            "SELECT number, state, attempt, requeues, worker, params::text FROM bma_trials WHERE study = $1 \
             ORDER BY number",
            &[&study],
        )
        .expect("query trials")
        .iter()
        .map(|r| Row {
            number: r.get(0),
            state: r.get(1),
            attempt: r.get(2),
            requeues: r.get(3),
            worker: r.get(4),
            params: r.get(5),
        })
        .collect()
}

fn count_complete(url: &str, study: i64) -> i64 {
    client(url)
        .query_one("SELECT COUNT(*) FROM bma_trials WHERE study = $1 AND state = 'complete'", &[&study])
        .expect("count")
        .get(0)
}

fn allocated(url: &str, study: i64) -> i64 {
    client(url).query_one("SELECT next_number FROM bma_studies WHERE id = $1", &[&study]).expect("next").get(0)
}

/// The pid in a worker id `host:pid:nonce`.
fn pid_of(worker: &str) -> Option<u32> {
    worker.rsplit(':').nth(1)?.parse().ok()
}

/// Every number `0..n` exactly once, all complete, the study's allocation exactly `n`.
fn assert_exact(url: &str, study: i64, n: i64, rows: &[Row]) {
    let numbers: Vec<i64> = rows.iter().map(|r| r.number).collect();
    assert_eq!(numbers, (0..n).collect::<Vec<_>>(), "every trial number once, none lost, none extra");
    let not_complete: Vec<&Row> = rows.iter().filter(|r| r.state != "complete").collect();
    assert!(not_complete.is_empty(), "trials not complete: {not_complete:?}");
    assert_eq!(allocated(url, study), n, "the study allocated exactly its budget");
}

#[test]
fn eight_workers_share_one_study_of_400_trials_exactly_once() {
    let Some(url) = url() else { return };
    let _server = shared_server();
    let dir = temp_dir();
    let name = unique("eight");
    let file = write_spec(dir.path(), &name, 400);
    // The creator's trials are ten times slower than the workers': alone it would need
    // 20 s, so the trials are shared however late the workers start on a loaded machine.
    let creator = start_run(&url, &file, &name, &dir.path().join("run"), "50ms", "30s");
    let study = wait_for_study(&url, &name);
    let workers: Vec<Child> =
        (0..8).map(|i| start_worker(&url, &name, &dir.path().join(format!("w{i}")), "5ms")).collect();
    let mut pids: BTreeSet<u32> = workers.iter().map(Child::id).collect();
    for (i, w) in workers.into_iter().enumerate() {
        let out = finish(w, Duration::from_secs(300));
        assert_ok(&out, &format!("worker {i}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("400 trials: 400 complete"), "worker {i} reports the whole study:\n{stdout}");
    }
    pids.insert(creator.id());
    assert_ok(&finish(creator, Duration::from_secs(300)), "bma run");

    let rows = rows(&url, study);
    assert_exact(&url, study, 400, &rows);
    let twice: Vec<&Row> = rows.iter().filter(|r| r.attempt != 1 || r.requeues != 0).collect();
    assert!(twice.is_empty(), "no trial claimed twice: {twice:?}");
    let ran: BTreeSet<u32> = rows.iter().filter_map(|r| r.worker.as_deref().and_then(pid_of)).collect();
    assert!(ran.is_subset(&pids), "trials ran only in this test's processes: {ran:?} vs {pids:?}");
    assert!(ran.len() >= 2, "the trials were shared between processes: {ran:?}");
    let state: String =
        client(&url).query_one("SELECT state FROM bma_studies WHERE id = $1", &[&study]).expect("state").get(0);
    assert_eq!(state, "finished");
}

#[test]
fn a_worker_killed_mid_trial_has_its_trial_requeued_and_finished_by_another() {
    let Some(url) = url() else { return };
    let _server = shared_server();
    let dir = temp_dir();
    let name = unique("kill");
    let file = write_spec(dir.path(), &name, 12);
    // The victim creates the study and sits in trial 0 for a minute.
    let mut victim = start_run(&url, &file, &name, &dir.path().join("victim"), "60s", "3s");
    let study = wait_for_study(&url, &name);
    let started = Instant::now();
    let before = loop {
        let r = rows(&url, study);
        if let Some(t) = r.iter().find(|t| t.number == 0 && t.state == "running" && t.params.is_some()) {
            break t.params.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the victim never started trial 0: {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Two workers join while the victim is alive (so nothing is requeued when they start).
    let workers: Vec<Child> =
        (0..2).map(|i| start_worker(&url, &name, &dir.path().join(format!("w{i}")), "50ms")).collect();
    let started = Instant::now();
    while count_complete(&url, study) < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "the workers never completed a trial");
        std::thread::sleep(Duration::from_millis(20));
    }
    let victim_pid = victim.id();
    victim.kill().expect("kill -9 the victim"); // SIGKILL on Unix
    let _ = victim.wait();
    assert_eq!(
        rows(&url, study).iter().find(|t| t.number == 0).map(|t| t.state.clone()),
        Some("running".to_string()),
        "trial 0 was mid-run when its worker was killed"
    );
    for (i, w) in workers.into_iter().enumerate() {
        assert_ok(&finish(w, Duration::from_secs(120)), &format!("worker {i}"));
    }
    let rows = rows(&url, study);
    assert_exact(&url, study, 12, &rows);
    let t0 = &rows[0];
    assert_eq!((t0.attempt, t0.requeues), (2, 1), "trial 0 requeued once and rerun once: {t0:?}");
    let by = t0.worker.as_deref().and_then(pid_of).expect("trial 0 has a worker");
    assert_ne!(by, victim_pid, "trial 0 was finished by another worker");
    assert_eq!(t0.params, before, "the rerun kept the point the killed worker had started");
    let others: Vec<&Row> = rows[1..].iter().filter(|r| r.attempt != 1).collect();
    assert!(others.is_empty(), "no other trial ran twice: {others:?}");
}

#[test]
fn workers_reconnect_after_a_server_restart_and_finish() {
    let Some(url) = url() else { return };
    let _server = SERVER.write().unwrap_or_else(|p| p.into_inner());
    let Some(pg_dir) = common::pg_dir("workers_reconnect_after_a_server_restart") else { return };
    let dir = temp_dir();
    let name = unique("restart");
    let n = 120;
    let file = write_spec(dir.path(), &name, n);
    let creator = start_run(&url, &file, &name, &dir.path().join("run"), "100ms", "60s");
    let study = wait_for_study(&url, &name);
    let workers: Vec<Child> =
        (0..3).map(|i| start_worker(&url, &name, &dir.path().join(format!("w{i}")), "100ms")).collect();
    let started = Instant::now();
    while count_complete(&url, study) < 8 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress before the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    restart_server(&pg_dir);
    let at_restart = count_complete(&url, study);
    assert!(at_restart < n as i64, "the study was still running when the server restarted ({at_restart} done)");
    for (i, w) in workers.into_iter().enumerate() {
        assert_ok(&finish(w, Duration::from_secs(180)), &format!("worker {i}"));
    }
    assert_ok(&finish(creator, Duration::from_secs(180)), "bma run");
    let rows = rows(&url, study);
    assert_exact(&url, study, n as i64, &rows);
}

#[test]
fn a_worker_or_run_with_a_different_spec_is_refused() {
    let Some(url) = url() else { return };
    let _server = shared_server();
    let dir = temp_dir();
    let name = unique("spec");
    let file = write_spec(dir.path(), &name, 5);
    assert_ok(
        &finish(start_run(&url, &file, &name, &dir.path().join("run"), "0ms", "30s"), Duration::from_secs(60)),
        "bma run",
    );
    let changed = dir.path().join("changed.bma");
    let text = std::fs::read_to_string(&file).expect("read").replace("seed     = 3", "seed     = 4");
    std::fs::write(&changed, text).expect("write");

    let out = bma("0ms")
        .args(["worker", "--store", &url, "--study", &name, "--progress", "none", "--file"])
        .arg(&changed)
        .output()
        .expect("run bma worker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused as bad input: {err}");
    assert!(err.contains(&format!("study `{name}` was started from a different spec")), "{err}");
    assert!(err.contains("stored hash"), "{err}");

    let out = bma("0ms")
        .arg("run")
        .arg(&changed)
        .args(["--store", &url, "--study", &name, "--progress", "none"])
        .arg("--out")
        .arg(dir.path().join("again"))
        .output()
        .expect("run bma run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("different spec"), "{err}");

    // The original study is untouched, and `bma ls --store` shows it.
    let out = bma("0ms").args(["ls", "--store", &url]).output().expect("run bma ls");
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = listing.lines().find(|l| l.contains(&name)).unwrap_or_else(|| panic!("{name} listed:\n{listing}"));
    assert!(line.contains("finished") && line.contains("5 trials (5 complete)") && line.contains("best #"), "{line}");
}

#[test]
fn bma_report_writes_a_shared_study_from_the_database() {
    let Some(url) = url() else { return };
    let _server = shared_server();
    let dir = temp_dir();
    let name = unique("report");
    let file = write_spec(dir.path(), &name, 6);
    let run_out = dir.path().join("run");
    assert_ok(&finish(start_run(&url, &file, &name, &run_out, "0ms", "30s"), Duration::from_secs(60)), "bma run");
    let results = |folder: &Path| -> serde_json::Value {
        let text = std::fs::read_to_string(folder.join("results.json")).expect("results.json written");
        serde_json::from_str(&text).expect("results.json parses")
    };

    // From the database alone (no file, no study.db), into a folder of its own.
    let out = dir.path().join("from-db");
    let report = bma("0ms")
        .args(["report", "--store", &url, "--study", &name, "--out"])
        .arg(&out)
        .output()
        .expect("run bma report");
    assert_ok(&report, "bma report --store");
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(stdout.contains("wrote") && stdout.contains("report.html"), "{stdout}");
    assert!(out.join("report.html").is_file() && out.join("results.csv").is_file(), "report files written");
    let (from_db, from_run) = (results(&out), results(&run_out));
    assert_eq!(from_db["study"], serde_json::json!(name));
    assert_eq!(from_db["counts"]["complete"], serde_json::json!(6), "{from_db}");
    assert_eq!(from_db["state"], serde_json::json!("finished"));
    // The same study as the run's own report: same trials, same best.
    assert_eq!(from_db["trials"], from_run["trials"]);
    assert_eq!(from_db["best"], from_run["best"]);

    // BMA_STORE instead of --store.
    let out2 = dir.path().join("from-env");
    let report = bma("0ms")
        .env("BMA_STORE", &url)
        .args(["report", "--study", &name, "--out"])
        .arg(&out2)
        .output()
        .expect("run bma report");
    assert_ok(&report, "bma report with BMA_STORE");
    assert_eq!(results(&out2)["trials"], from_run["trials"]);

    // A study the database does not hold: bad input, named.
    let report = bma("0ms").args(["report", "--store", &url, "--study", "no-such-study"]).output().expect("run");
    let err = String::from_utf8_lossy(&report.stderr);
    assert_eq!(report.status.code(), Some(1), "{err}");
    assert!(err.contains("no study `no-such-study`"), "{err}");
}

#[test]
fn an_unreachable_store_is_a_clear_error_not_a_hang() {
    // Needs no server: port 1 on loopback refuses connections.
    let out = bma("0ms")
        .env("BMA_STORE_RETRY", "1")
        .args(["worker", "--store", "postgres://bma@127.0.0.1:1/bma", "--study", "x"])
        .output()
        .expect("run bma worker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot use the store postgres://bma@127.0.0.1:1/bma") && err.contains("unreachable"),
        "{err}"
    );

    let out = bma("0ms")
        .env("BMA_STORE_RETRY", "1")
        .args(["report", "--store", "postgres://bma@127.0.0.1:1/bma", "--study", "x"])
        .output()
        .expect("run bma report");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unreachable"), "{err}");

    let out = bma("0ms").arg("report").output().expect("run bma report");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a run folder") && err.contains("--store URL or BMA_STORE"), "{err}");

    let out = bma("0ms").args(["worker", "--study", "x"]).output().expect("run bma worker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--store URL or set BMA_STORE"), "{err}");

    let out = bma("0ms").args(["ls", "--store", "mysql://h/db"]).output().expect("run bma ls");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown store `mysql://`"), "{err}");
}
