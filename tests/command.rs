//! Command trials with real programs: the real binary runs studies whose trial is a POSIX
//! `sh` script or a `python3` standard-library script that each test writes to a temporary
//! folder. Shows that parameters arrive (argv and `BMA_PARAMS`), that intermediate values
//! prune (ASHA) and the pruned program is gone, that a crash, a malformed line, a missing
//! metric, a NaN, a hang past its timeout and a program that ignores SIGTERM each fail
//! their trial with the reason while the study goes on, that `kill -9` of bma mid-trial
//! and `--resume` complete the study, that two processes share one study of command
//! trials, that a worker refuses a command read from the store, and that `bma eval`
//! refuses a command study. Also: two workers and the owner sharing a study on the
//! PostgreSQL test server (`BMA_TEST_POSTGRES`), `--devices`, Ctrl-C mid-trial, `bma watch`
//! re-ranking without re-running, and `examples/command/` run for real with the Python
//! that `BMA_TEST_SKLEARN` names (`scripts/sklearn-python.sh` makes one). The last two
//! needs follow `tests/common`'s rule: under `CI` a missing variable fails the test;
//! elsewhere it is skipped with a loud SKIPPED line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{results, stderr, temp_dir, write};

fn bma() -> Command {
    let mut c = common::bma();
    c.env_remove("BMA_STORE").stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn run(file: &Path, out: &Path, extra: &[&str]) -> Output {
    bma()
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(["--progress", "none"])
        .args(extra)
        .output()
        .expect("bma runs")
}

fn trials(results: &serde_json::Value) -> Vec<serde_json::Value> {
    results["trials"].as_array().expect("trials").clone()
}

fn state(t: &serde_json::Value) -> &str {
    t["state"].as_str().unwrap_or_default()
}

/// Whether process `pid` still runs. A zombie is not running: the program's own zombie
/// would be bma's to reap (its pid is checked after bma exits, so it is reaped or gone), and
/// a grandchild's zombie is init's to reap once its parent (the program) is gone.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S ...`: the state follows the last `)`.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    state.is_some_and(|s| s != 'Z' && s != 'X')
}

fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.trim().parse().unwrap_or_else(|e| panic!("{}: `{text}`: {e}", path.display()))
}

/// Waits (a bounded time) until `path` holds a whole line.
fn wait_for_line(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !std::fs::read_to_string(path).is_ok_and(|t| t.ends_with('\n')) {
        assert!(start.elapsed() < limit, "{} got no line within {limit:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (a bounded time) until `path` exists.
fn wait_for(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} did not appear within {limit:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

const PARAMS_PY: &str = r#"import json, os, sys
p = json.load(open(os.environ["BMA_PARAMS"]))
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
assert float(args["--lr"]) == p["lr"], (args, p)
assert int(args["--depth"]) == p["depth"], (args, p)
assert args["--act"] == p["act"], (args, p)
assert args["--dir"] == os.environ["BMA_TRIAL_DIR"], args
assert os.environ["MY_TRIAL"] == "t" + os.environ["BMA_TRIAL"]
assert os.environ["BMA_PROTOCOL"] == "1"
int(os.environ["BMA_SEED"])
print("a log line, not a report", flush=True)
for s in range(1, 4):
    print(json.dumps({"step": s, "loss": p["lr"] * p["depth"] / s}), flush=True)
print(json.dumps({"loss": p["lr"] * p["depth"], "acc": 1.0 - p["lr"]}))
"#;

#[test]
fn parameters_arrive_by_argv_and_bma_params() {
    let dir = temp_dir();
    write(dir.path(), "train.py", PARAMS_PY);
    let spec = write(
        dir.path(),
        "s.bma",
        r#"experiment cmd {
  space {
    lr: float in 0.0001..0.1 log
    depth: int in 1..=4
    act: in {"relu", "gelu tanh"}
  }
  trial {
    command = ["python3", "train.py", "--lr", "{lr}", "--depth", "{depth}", "--act", "{act}", "--dir", "{dir}"]
    env     = { MY_TRIAL: "t{trial}" }
    reports = [loss, acc]
  }
  objective { minimize loss }
  search { strategy = random  trials = 5  seed = 4 }
}
"#,
    );
    let out = dir.path().join("out");
    let o = run(&spec, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let ts = trials(&r);
    assert_eq!(ts.len(), 5);
    for t in &ts {
        assert_eq!(state(t), "complete", "{t}");
        let lr = t["params"]["lr"].as_f64().expect("lr");
        let depth = t["params"]["depth"].as_f64().expect("depth");
        let loss = t["metrics"]["loss"].as_f64().expect("loss");
        assert!((loss - lr * depth).abs() <= 1e-12 * loss.abs().max(1.0), "{t}");
        assert_eq!(t["steps"].as_array().map(Vec::len), Some(3), "{t}");
        let n = t["number"].as_u64().expect("number");
        let log = std::fs::read_to_string(out.join("trials").join(n.to_string()).join("stdout.log")).expect("log");
        assert!(log.starts_with("a log line, not a report\n"), "{log}");
    }
    // `bma eval` has no model to load in a command study.
    let e = bma().arg("eval").arg(&out).output().expect("bma eval runs");
    assert_eq!(e.status.code(), Some(1), "{}", stderr(&e));
    assert!(stderr(&e).contains("command study"), "{}", stderr(&e));
}

const CURVE_SH: &str = r#"#!/bin/sh
# A learning curve: loss = x + 1/step for 8 steps; a large x is a bad curve.
echo $$ > "$BMA_TRIAL_DIR/pid"
x=$1
s=1
while [ $s -le 8 ]; do
  echo "{\"step\": $s, \"loss\": $(awk "BEGIN { print $x + 1 / $s }")}"
  sleep 0.05
  s=$((s + 1))
done
echo "{\"loss\": $x}"
"#;

#[test]
fn asha_prunes_a_bad_curve_and_the_program_is_gone() {
    let dir = temp_dir();
    write(dir.path(), "curve.sh", CURVE_SH);
    let spec = write(
        dir.path(),
        "s.bma",
        r#"experiment curves {
  space { x: float in 0.0..10.0 }
  trial {
    command = ["sh", "curve.sh", "{x}"]
    reports = [loss]
  }
  objective { minimize loss }
  search { strategy = random  trials = 10  seed = 2  prune = asha(min_epochs: 1, eta: 2) }
}
"#,
    );
    let out = dir.path().join("out");
    let o = run(&spec, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ts = trials(&results(&out));
    assert_eq!(ts.len(), 10);
    let pruned: Vec<_> = ts.iter().filter(|t| state(t) == "pruned").collect();
    assert!(!pruned.is_empty(), "ASHA pruned nothing: {ts:?}");
    for t in &pruned {
        let steps = t["steps"].as_array().map(Vec::len).unwrap_or(0);
        assert!(steps < 8, "a pruned trial ran to its end: {t}");
        let n = t["number"].as_u64().expect("number");
        let pid = read_pid(&out.join("trials").join(n.to_string()).join("pid"));
        assert!(!alive(pid), "pruned trial {n}'s program {pid} still exists");
    }
    // The best trial is complete and among the smallest x.
    assert!(ts.iter().any(|t| state(t) == "complete"));
}

const MODES_SH: &str = r#"#!/bin/sh
echo $$ > "$BMA_TRIAL_DIR/pid"
case "$1" in
  ok) echo '{"loss": 0.5, "acc": 0.9}' ;;
  crash) echo "something broke in the trainer" >&2; exit 3 ;;
  malformed) echo '{"loss": oops}' ; sleep 30 ;;
  missing) echo '{"loss": 0.5}' ;;
  nan) echo '{"loss": "nan", "acc": 0.1}' ;;
  hang) sleep 30 & echo $! > "$BMA_TRIAL_DIR/child"; wait ;;
  stubborn) trap '' TERM; sleep 30 & echo $! > "$BMA_TRIAL_DIR/child"; wait; wait ;;
esac
"#;

#[test]
fn failures_fail_their_trial_with_the_reason_and_the_study_goes_on() {
    let dir = temp_dir();
    write(dir.path(), "modes.sh", MODES_SH);
    let spec = write(
        dir.path(),
        "s.bma",
        r#"experiment modes {
  space { mode: in {ok, crash, malformed, missing, nan, hang, stubborn} }
  trial {
    command = ["sh", "modes.sh", "{mode}"]
    timeout = 1s
    grace   = 500ms
    reports = [loss, acc]
  }
  objective { minimize loss }
  search { strategy = grid  trials = 7 }
}
"#,
    );
    let out = dir.path().join("out");
    let o = run(&spec, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ts = trials(&results(&out));
    assert_eq!(ts.len(), 7, "{ts:?}");
    let by_mode = |m: &str| ts.iter().find(|t| t["params"]["mode"] == m).unwrap_or_else(|| panic!("no {m}")).clone();
    let error = |t: &serde_json::Value| t["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(state(&by_mode("ok")), "complete");
    let expect = [
        ("crash", "exited with code 3"),
        ("crash", "something broke in the trainer"),
        ("malformed", "malformed report line"),
        ("missing", "did not report acc"),
        ("nan", "reported loss = NaN"),
        ("hang", "timeout of 1s"),
        ("stubborn", "timeout of 1s"),
    ];
    for (mode, text) in expect {
        let t = by_mode(mode);
        assert_eq!(state(&t), "failed", "{mode}: {t}");
        assert!(error(&t).contains(text), "{mode}: `{}` lacks `{text}`", error(&t));
    }
    // Every program of a trial that bma ended is gone, children included (whole group).
    for t in &ts {
        let folder = out.join("trials").join(t["number"].as_u64().expect("number").to_string());
        for name in ["pid", "child"] {
            if folder.join(name).exists() {
                let pid = read_pid(&folder.join(name));
                assert!(!alive(pid), "{}/{name}: {pid} still exists", folder.display());
            }
        }
    }
}

/// A study `name` of `trials` random trials of `slow.sh`, which sleeps `sleep` seconds and
/// reports its argument as the loss; written into `dir`, the spec's path returned.
fn slow_study(dir: &Path, name: &str, sleep: &str, trials: u32, seed: u32) -> PathBuf {
    write(dir, "slow.sh", &format!("#!/bin/sh\nsleep {sleep}\necho \"{{\\\"loss\\\": $1}}\"\n"));
    let spec = format!(
        r#"experiment {name} {{
  space {{ x: float in 0.0..1.0 }}
  trial {{
    command = ["sh", "slow.sh", "{{x}}"]
    reports = [loss]
  }}
  objective {{ minimize loss }}
  search {{ strategy = random  trials = {trials}  seed = {seed} }}
}}
"#
    );
    write(dir, "s.bma", &spec)
}

#[test]
fn kill_9_mid_trial_then_resume_completes_the_study() {
    let dir = temp_dir();
    let spec = slow_study(dir.path(), "slow", "0.5", 4, 9);
    let out = dir.path().join("out");
    let mut child =
        bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).spawn().expect("bma starts");
    wait_for(&out.join("trials").join("1").join("params.json"), Duration::from_secs(60));
    child.kill().expect("kill -9");
    let _ = child.wait();
    let o = run(&spec, &out, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ts = trials(&results(&out));
    let mut numbers: Vec<u64> = ts.iter().map(|t| t["number"].as_u64().expect("number")).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, vec![0, 1, 2, 3], "{ts:?}");
    assert!(ts.iter().all(|t| state(t) == "complete"), "{ts:?}");
}

#[test]
fn two_processes_share_a_study_and_a_worker_refuses_a_stored_command() {
    let dir = temp_dir();
    let spec = slow_study(dir.path(), "shared", "0.2", 8, 5);
    let db: PathBuf = dir.path().join("study.db");
    let db = db.to_str().expect("utf-8 path").to_string();
    let out1 = dir.path().join("out1");
    let out2 = dir.path().join("out2");
    let first = bma()
        .arg("run")
        .arg(&spec)
        .args(["--store", &db, "--study", "s", "--progress", "none", "--out"])
        .arg(&out1)
        .spawn()
        .expect("bma run starts");
    wait_for(&out1.join("trials").join("0").join("params.json"), Duration::from_secs(60));
    let second = bma()
        .arg("worker")
        .args(["--store", &db, "--study", "s", "--progress", "none", "--file"])
        .arg(&spec)
        .arg("--out")
        .arg(&out2)
        .spawn()
        .expect("bma worker starts");
    let a = first.wait_with_output().expect("run ends");
    let b = second.wait_with_output().expect("worker ends");
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let ts = trials(&results(&out1));
    let mut numbers: Vec<u64> = ts.iter().map(|t| t["number"].as_u64().expect("number")).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..8).collect::<Vec<_>>());
    assert!(ts.iter().all(|t| state(t) == "complete"), "{ts:?}");
    // The folders of both processes hold every trial's run, each exactly once.
    let ran = |out: &Path| -> Vec<u64> {
        std::fs::read_dir(out.join("trials"))
            .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default()
    };
    let mut all = ran(&out1);
    all.extend(ran(&out2));
    all.sort_unstable();
    assert_eq!(all, (0..8).collect::<Vec<_>>());

    // Without --file, a worker does not run a command it read from the store.
    let refused = bma()
        .current_dir(dir.path())
        .arg("worker")
        .args(["--store", &db, "--study", "s", "--progress", "none"])
        .output()
        .expect("bma worker runs");
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--allow-commands"), "{}", stderr(&refused));
}

const HELPER_PY: &str = r#"from bma_report import bma_params, bma_report
p = bma_params()
for epoch in range(1, 4):
    bma_report(step=epoch, loss=p["x"] / epoch)
bma_report(loss=p["x"], accuracy=1.0 - p["x"])
try:
    bma_report(step=1.5, loss=1.0)
except ValueError:
    print("a fractional step is refused")
"#;

#[test]
fn the_python_helper_speaks_the_protocol() {
    let dir = temp_dir();
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/bma_report.py");
    std::fs::copy(&helper, dir.path().join("bma_report.py")).expect("copy the helper");
    write(dir.path(), "train.py", HELPER_PY);
    let spec = write(
        dir.path(),
        "s.bma",
        r#"experiment helper {
  space { x: float in 0.0..1.0 }
  trial {
    command = ["python3", "train.py"]
    reports = [loss, accuracy]
  }
  objective { minimize loss }
  search { strategy = random  trials = 2  seed = 1 }
}
"#,
    );
    let out = dir.path().join("out");
    let o = run(&spec, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for t in trials(&results(&out)) {
        assert_eq!(state(&t), "complete", "{t}");
        let x = t["params"]["x"].as_f64().expect("x");
        assert_eq!(t["metrics"]["loss"].as_f64(), Some(x), "{t}");
        assert_eq!(t["metrics"]["accuracy"].as_f64(), Some(1.0 - x), "{t}");
        assert_eq!(t["steps"].as_array().map(Vec::len), Some(3), "{t}");
        let n = t["number"].as_u64().expect("number").to_string();
        let log = std::fs::read_to_string(out.join("trials").join(n).join("stdout.log")).expect("log");
        assert!(log.contains("a fractional step is refused"), "{log}");
    }
}

/// Waits for `child`, killing it after `limit` (a hang is a failure, not a stuck test).
fn finish(mut child: std::process::Child, limit: Duration, who: &str) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let o = child.wait_with_output().expect("output");
                panic!("{who} did not finish within {limit:?}\nstderr:\n{}", stderr(&o));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The trial numbers that have a folder under `<out>/trials/` (the program ran there).
fn ran_here(out: &Path) -> Vec<u64> {
    let mut ran: Vec<u64> = std::fs::read_dir(out.join("trials"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    ran.sort_unstable();
    ran
}

/// Reports its argument as the loss, but first waits (at most two minutes) until the file
/// `$RELEASE` exists: the test holds each process's first trial until all three have one.
const HELD_SH: &str = r#"#!/bin/sh
n=0
while [ ! -e "$RELEASE" ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
echo "{\"loss\": $1}"
"#;

#[test]
fn two_workers_share_a_postgres_study_of_command_trials_each_trial_run_once() {
    let Some(url) = common::url("the PostgreSQL command-trial test") else { return };
    let dir = temp_dir();
    let name = common::unique("cmd");
    write(dir.path(), "held.sh", HELD_SH);
    let spec = write(
        dir.path(),
        "s.bma",
        &format!(
            r#"// study {name}
experiment held {{
  space {{ x: float in 0.0..1.0 }}
  trial {{
    command = ["sh", "held.sh", "{{x}}"]
    reports = [loss]
  }}
  objective {{ minimize loss }}
  search {{ strategy = random  trials = 12  seed = 8 }}
}}
"#
        ),
    );
    let release = dir.path().join("release");
    let outs: Vec<PathBuf> = ["owner", "file", "allow"].iter().map(|o| dir.path().join(o)).collect();
    let spawn = |c: &mut Command| c.env("RELEASE", &release).spawn().expect("bma starts");
    let owner = spawn(
        bma()
            .arg("run")
            .arg(&spec)
            .args(["--store", &url, "--study", &name, "--progress", "none", "--out"])
            .arg(&outs[0]),
    );
    let started = Instant::now();
    let study: i64 = loop {
        let row = common::client(&url).query_opt("SELECT id FROM bma_studies WHERE name = $1", &[&name]).ok().flatten();
        if let Some(r) = row {
            break r.get(0);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "study {name} was never created");
        std::thread::sleep(Duration::from_millis(50));
    };
    // One worker with the same spec given locally, one trusting the stored spec.
    let with_file = spawn(
        bma()
            .args(["worker", "--store", &url, "--study", &name, "--progress", "none", "--devices", "7", "--file"])
            .arg(&spec)
            .arg("--out")
            .arg(&outs[1]),
    );
    let allowed = spawn(
        bma()
            .current_dir(dir.path())
            .args(["worker", "--store", &url, "--study", &name, "--progress", "none", "--allow-commands", "--out"])
            .arg(&outs[2]),
    );
    // A worker with neither runs nothing and writes nothing.
    let refused_out = dir.path().join("refused");
    let refused = bma()
        .current_dir(dir.path())
        .env("RELEASE", &release)
        .args(["worker", "--store", &url, "--study", &name, "--progress", "none", "--out"])
        .arg(&refused_out)
        .output()
        .expect("bma worker runs");
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--allow-commands"), "{}", stderr(&refused));
    assert!(!refused_out.exists(), "the refused worker wrote {}", refused_out.display());
    // Each of the three processes holds a trial before any trial ends: all three share the study.
    for out in &outs {
        let held = Instant::now();
        while ran_here(out).is_empty() {
            assert!(held.elapsed() < Duration::from_secs(90), "{} never started a trial", out.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::fs::write(&release, "").expect("release the trials");
    let pids = [owner.id(), with_file.id(), allowed.id()];
    for (child, who) in [(owner, "bma run"), (with_file, "worker --file"), (allowed, "worker --allow-commands")] {
        let o = finish(child, Duration::from_secs(180), who);
        assert!(o.status.success(), "{who}: {}", stderr(&o));
    }

    let rows = common::client(&url)
        .query(
            "SELECT number, state, attempt, requeues, worker, device FROM bma_trials WHERE study = $1 ORDER BY number",
            &[&study],
        )
        .expect("query trials");
    let numbers: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(numbers, (0..12).collect::<Vec<_>>(), "every trial number once, none lost, none extra");
    for r in &rows {
        let (number, state, attempt, requeues): (i64, String, i32, i32) = (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!((state.as_str(), attempt, requeues), ("complete", 1, 0), "trial {number} ran once and completed");
        let worker: Option<String> = r.get(4);
        let pid = worker.as_deref().and_then(|w| w.rsplit(':').nth(1)?.parse::<u32>().ok());
        assert!(pid.is_some_and(|p| pids.contains(&p)), "trial {number} ran in this test's processes: {worker:?}");
        // Only the worker started with `--devices 7` placed its trials on a device.
        let device: Option<String> = r.get(5);
        let want = (pid == Some(pids[1])).then(|| "7".to_string());
        assert_eq!(device, want, "trial {number}'s device");
    }
    let next: i64 = common::client(&url)
        .query_one("SELECT next_number FROM bma_studies WHERE id = $1", &[&study])
        .expect("next")
        .get(0);
    assert_eq!(next, 12, "the study allocated exactly its budget");
    // Every trial's program ran exactly once, in one of the three processes' folders.
    let mut all: Vec<u64> = outs.iter().flat_map(|o| ran_here(o)).collect();
    all.sort_unstable();
    assert_eq!(all, (0..12).collect::<Vec<_>>());
    for out in &outs {
        for n in ran_here(out) {
            let log = out.join("trials").join(n.to_string()).join("stdout.log");
            let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
            assert!(text.starts_with("{\"loss\": "), "{}: {text}", log.display());
        }
    }
    // The owner's results hold the whole study.
    let ts = trials(&results(&outs[0]));
    assert_eq!(ts.len(), 12);
    assert!(ts.iter().all(|t| state(t) == "complete"), "{ts:?}");
    // Each trial names the process that ran it, in results.json and on the report's
    // timeline, one group of lanes per worker.
    let ran_by: Vec<Option<String>> = rows.iter().map(|r| r.get(4)).collect();
    for (t, worker) in ts.iter().zip(&ran_by) {
        assert_eq!(t["worker"].as_str(), worker.as_deref(), "{t}");
    }
    let workers: std::collections::BTreeSet<&str> = ran_by.iter().flatten().map(String::as_str).collect();
    assert_eq!(workers.len(), 3, "each process ran a trial: {workers:?}");
    let report = std::fs::read_to_string(outs[0].join("report.html")).expect("report.html");
    assert!(report.contains("Workers: w1 = <code>"), "no worker list in the report");
    for w in &workers {
        assert!(report.contains(&format!("<code>{w}</code> (")), "{w} is not on the timeline");
    }
    for lane in ["w1 s1", "w2 s1", "w3 s1"] {
        assert!(report.contains(&format!(">{lane}<")), "no lane {lane} on the timeline");
    }
}

/// Holds the lock file of its device while it runs: a second trial on the same device at
/// once finds the lock taken and says so in `locks/collisions`.
const DEVICE_SH: &str = r#"#!/bin/sh
env | grep -E '^(BMA_DEVICE|CUDA_VISIBLE_DEVICES)=' | sort > "$BMA_TRIAL_DIR/env"
lock="locks/$BMA_DEVICE"
if ( set -C; echo "$BMA_TRIAL" > "$lock" ) 2>/dev/null; then
  sleep 0.3
  rm -f "$lock"
else
  echo "$BMA_TRIAL on $BMA_DEVICE while $(cat "$lock") held it" >> locks/collisions
fi
echo "{\"loss\": $1}"
"#;

#[test]
fn devices_flag_gives_each_running_trial_its_own_device() {
    let dir = temp_dir();
    write(dir.path(), "device.sh", DEVICE_SH);
    std::fs::create_dir(dir.path().join("locks")).expect("locks folder");
    let spec = write(
        dir.path(),
        "s.bma",
        r#"experiment placed {
  space { x: float in 0.0..1.0 }
  trial {
    command = ["sh", "device.sh", "{x}"]
    devices = ["9"]
    reports = [loss]
  }
  objective { minimize loss }
  search { strategy = random  trials = 8  seed = 3  parallel = 2 }
}
"#,
    );
    let out = dir.path().join("out");
    // `--devices` replaces the spec's `devices = ["9"]`.
    let o = run(&spec, &out, &["--devices", "0,1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let collisions = std::fs::read_to_string(dir.path().join("locks/collisions")).unwrap_or_default();
    assert!(collisions.is_empty(), "two running trials shared a device:\n{collisions}");
    let ts = trials(&results(&out));
    assert_eq!(ts.len(), 8);
    let mut used = std::collections::BTreeSet::new();
    for t in &ts {
        assert_eq!(state(t), "complete", "{t}");
        let device = t["device"].as_str().unwrap_or_else(|| panic!("no device recorded: {t}")).to_string();
        let n = t["number"].as_u64().expect("number").to_string();
        let env = std::fs::read_to_string(out.join("trials").join(n).join("env")).expect("the program's env");
        assert_eq!(env, format!("BMA_DEVICE={device}\nCUDA_VISIBLE_DEVICES={device}\n"), "{t}");
        used.insert(device);
    }
    assert_eq!(used.into_iter().collect::<Vec<_>>(), vec!["0", "1"], "both devices were used");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("<th>device</th>"), "the report's trial table shows the device");

    // A bad list, and --devices on an experiment that neither trains nor runs a command, are refused.
    let o = run(&spec, &dir.path().join("bad"), &["--devices", "0,,1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("empty entry"), "{}", stderr(&o));
    let plain = write(
        dir.path(),
        "f.bma",
        "experiment f {\n  space { x: float in 0.0..1.0 }\n  objective { minimize x }\n  search { trials = 2 }\n}\n",
    );
    let o = run(&plain, &dir.path().join("plain"), &["--devices", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--devices places trials that train a model or run a command"), "{}", stderr(&o));
}

/// While the file `hold` exists in its folder, waits (at most a minute, in a child it
/// starts) before it reports its argument.
const HOLD_SH: &str = r#"#!/bin/sh
echo $$ > "$BMA_TRIAL_DIR/pid"
if [ -e hold ]; then
  sleep 60 & echo $! > "$BMA_TRIAL_DIR/child"
  wait
fi
echo "{\"loss\": $1}"
"#;

#[test]
fn ctrl_c_mid_trial_ends_the_program_requeues_the_trial_and_resume_finishes() {
    let dir = temp_dir();
    write(dir.path(), "hold.sh", HOLD_SH);
    write(dir.path(), "hold", "");
    let spec = write(
        dir.path(),
        "s.bma",
        r#"experiment held {
  space { x: float in 0.0..1.0 }
  trial {
    command = ["sh", "hold.sh", "{x}"]
    reports = [loss]
  }
  objective { minimize loss }
  search { strategy = random  trials = 3  seed = 6 }
}
"#,
    );
    let out = dir.path().join("out");
    let child =
        bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).spawn().expect("bma starts");
    let folder = out.join("trials").join("0");
    // The shell creates `child` before `echo` writes the pid into it: wait for the line.
    wait_for_line(&folder.join("child"), Duration::from_secs(60));
    let (pid, grandchild) = (read_pid(&folder.join("pid")), read_pid(&folder.join("child")));
    let bma_pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    nix::sys::signal::kill(bma_pid, nix::sys::signal::Signal::SIGINT).expect("Ctrl-C");
    let o = finish(child, Duration::from_secs(60), "bma run after Ctrl-C");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(!alive(pid) && !alive(grandchild), "the program's group is gone ({pid}, {grandchild})");
    let db = rusqlite::Connection::open(out.join("study.db")).expect("the study store");
    let rows: Vec<(i64, String)> = db
        .prepare("SELECT number, state FROM trials ORDER BY number")
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .expect("read the trials");
    assert_eq!(rows, vec![(0, "queued".to_string())], "the interrupted trial is queued again, not failed");

    std::fs::remove_file(dir.path().join("hold")).expect("let the programs finish");
    let o = run(&spec, &out, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ts = trials(&results(&out));
    let mut numbers: Vec<u64> = ts.iter().map(|t| t["number"].as_u64().expect("number")).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, vec![0, 1, 2], "{ts:?}");
    assert!(ts.iter().all(|t| state(t) == "complete"), "{ts:?}");
}

/// Appends its argument to `runs.log` in its folder (one line per run), then reports it.
const COUNT_SH: &str = r#"#!/bin/sh
echo "$1" >> runs.log
echo "{\"loss\": $1, \"acc\": $(awk "BEGIN { print 1 - $1 }")}"
"#;

fn watched(objective: &str, extra_arg: &str) -> String {
    format!(
        r#"// a watched command study
experiment counted {{
  space {{ x: in {{0.1, 0.2, 0.3}} }}
  trial {{
    command = ["sh", "count.sh", "{{x}}"{extra_arg}]
    reports = [loss, acc]
  }}
  objective {{ {objective} }}
  search {{ strategy = grid  trials = 3 }}
}}
"#
    )
}

#[test]
fn watch_reranks_an_objective_edit_without_running_and_reruns_a_command_edit() {
    use std::io::BufRead;
    let dir = temp_dir();
    write(dir.path(), "count.sh", COUNT_SH);
    let file = write(dir.path(), "w.bma", &watched("minimize loss", ""));
    let mut child = bma()
        .current_dir(dir.path())
        .arg("watch")
        .arg(&file)
        .args(["--progress", "plain"])
        .stderr(Stdio::null())
        .spawn()
        .expect("bma watch starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _watch = Kill(child);
    let mut seen = Vec::new();
    let mut until = |prefix: &str| -> Vec<String> {
        let mut got = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    seen.push(line.clone());
                    got.push(line.clone());
                    if line.starts_with(prefix) {
                        return got;
                    }
                }
                Err(_) => panic!("no line starting `{prefix}`; output so far:\n{}", seen.join("\n")),
            }
        }
    };
    let runs = || std::fs::read_to_string(dir.path().join("runs.log")).unwrap_or_default().lines().count();
    let best_x = || {
        let r = common::results(&dir.path().join("runs").join("counted"));
        r["best"]["params"]["x"].as_f64().expect("the best trial's x")
    };
    let tally = |n: u32, reused: u32, ran: u32| {
        format!("cycle {n} counted: reused {reused}, trained {ran}, pruned 0, cancelled 0, failed 0")
    };

    let first = until("cycle 1: done");
    assert!(first.contains(&tally(1, 0, 3)), "{first:?}");
    assert_eq!(runs(), 3);
    assert_eq!(best_x(), 0.1);

    // The objective changes: the stored metrics are ranked again, no program runs.
    let save = |text: &str| {
        let tmp = file.with_extension("bma.swp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
    };
    save(&watched("maximize loss", ""));
    let second = until("cycle 2: done");
    assert!(second.contains(&tally(2, 3, 0)), "{second:?}");
    assert_eq!(runs(), 3, "an objective edit ran the program");
    assert_eq!(best_x(), 0.3, "the edit re-ranked the trials");

    // The command changes: every trial runs again.
    save(&watched("maximize loss", r#", "--v2""#));
    let third = until("cycle 3: done");
    assert!(third.contains(&tally(3, 0, 3)), "{third:?}");
    assert_eq!(runs(), 6, "a command edit re-ran every trial");
}

/// The Python with scikit-learn that runs `examples/command/train.py`, by the rule
/// `tests/common`'s `url` states.
fn sklearn_python() -> Option<String> {
    use std::io::Write as _;
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(p) = set("BMA_TEST_SKLEARN") {
        return Some(p);
    }
    assert!(
        set("CI").is_none(),
        "CI is set but BMA_TEST_SKLEARN is not: examples/command cannot run. \
         Set it to `$(scripts/sklearn-python.sh)`."
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED: BMA_TEST_SKLEARN is not set; examples/command did not run.\n\
         !!! Set it to `$(scripts/sklearn-python.sh)` and rerun.\n"
    );
    None
}

#[test]
fn the_scikit_learn_example_runs_and_learns_the_digits() {
    let Some(python) = sklearn_python() else { return };
    let dir = temp_dir();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/command");
    for name in ["sklearn.bma", "train.py"] {
        std::fs::copy(example.join(name), dir.path().join(name)).expect("copy the example");
    }
    // The example runs `python3`: here, the one with scikit-learn, first on PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin folder");
    write(&bin, "python3", &format!("#!/bin/sh\nexec '{python}' \"$@\"\n"));
    let shim = bin.join("python3");
    let status = Command::new("chmod").arg("+x").arg(&shim).status().expect("chmod");
    assert!(status.success());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = dir.path().join("out");
    let o = bma()
        .env("PATH", path)
        .arg("run")
        .arg(dir.path().join("sklearn.bma"))
        .args(["--trials", "4", "--seed", "1", "--progress", "none", "--out"])
        .arg(&out)
        .output()
        .expect("bma runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let ts = trials(&r);
    assert_eq!(ts.len(), 4);
    for t in &ts {
        assert!(["complete", "pruned"].contains(&state(t)), "{t}");
        assert!(!t["steps"].as_array().map(Vec::is_empty).unwrap_or(true), "epochs reported: {t}");
    }
    // A small MLP on the digits: the best of four runs is far above chance (0.1).
    let best = r["best"]["metrics"]["accuracy"].as_f64().expect("the best trial's accuracy");
    assert!(best > 0.8, "best accuracy {best}: {r}");
}
