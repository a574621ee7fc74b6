//! Command trials with real programs: the real binary runs studies whose trial is a POSIX
//! `sh` script or a `python3` standard-library script that each test writes to a temporary
//! folder. Shows that parameters arrive (argv and `BMA_PARAMS`), that intermediate values
//! prune (ASHA) and the pruned program is gone, that a crash, a malformed line, a missing
//! metric, a NaN, a hang past its timeout and a program that ignores SIGTERM each fail
//! their trial with the reason while the study goes on, that `kill -9` of bma mid-trial
//! and `--resume` complete the study, that two processes share one study of command
//! trials, that a worker refuses a command read from the store, and that `bma eval`
//! refuses a command study.

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
