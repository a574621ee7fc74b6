//! The real `bma` binary: stdout, stderr and exit code of `check`, `space` and
//! `graph`, snapshotted, plus the JSON diagnostics parsed field by field.
//! Runs with `NO_COLOR=1` and `COLUMNS=80` for stable output.

mod common;

use common::{bma as bma_command, temp_dir};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The whole run as one snapshot.
    fn shown(&self) -> String {
        format!("exit: {}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

fn bma(args: &[&str]) -> Run {
    let out = bma_command()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("the bma binary runs");
    Run {
        // A signal (a crash) has no code; -1 fails every assertion below.
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

#[test]
fn check_clean_example_exits_0() {
    let run = bma(&["check", "examples/digits.bma"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    assert!(run.stderr.contains("examples/digits.bma: ok"));
    insta::assert_snapshot!(run.shown());
}

#[test]
fn check_err_fixture_exits_1() {
    let run = bma(&["check", "tests/fixtures/check/err/type_mismatch.bma"]);
    assert_eq!(run.code, 1, "{}", run.shown());
    assert!(run.stderr.contains("bma::type_mismatch"));
    assert!(run.stdout.is_empty());
    insta::assert_snapshot!(run.shown());
}

#[test]
fn check_json_is_one_object_per_diagnostic() {
    let run = bma(&["check", "--format", "json", "tests/fixtures/check/err/conditional_param.bma"]);
    assert_eq!(run.code, 1, "{}", run.shown());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one diagnostic, one line:\n{}", run.stdout);
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("each line is JSON");
    assert_eq!(v["code"], "conditional_param");
    assert_eq!(v["severity"], "error");
    assert_eq!(v["message"], "`momentum` is used where it may not exist");
    assert_eq!(v["file"], "tests/fixtures/check/err/conditional_param.bma");
    // `adam => adam(lr, weight_decay: momentum),` on line 12: `momentum` at columns 38..46.
    assert_eq!((v["line"].as_u64(), v["column"].as_u64()), (Some(12), Some(38)));
    assert_eq!((v["end_line"].as_u64(), v["end_column"].as_u64()), (Some(12), Some(46)));
    let labels = v["labels"].as_array().expect("labels is a list");
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0]["primary"], true);
    assert_eq!(labels[0]["text"], "`momentum` only exists when opt == sgd");
    assert_eq!(labels[1]["primary"], false);
    assert_eq!((labels[1]["line"].as_u64(), labels[1]["column"].as_u64()), (Some(7), Some(23)));
    assert_eq!(labels[1]["text"], "declared under `when opt == sgd`");
    assert!(v["help"].as_str().is_some_and(|h| h.contains("match opt")), "help: {}", v["help"]);
    insta::assert_snapshot!(run.shown());
}

#[test]
fn check_json_of_a_clean_file_is_empty() {
    let run = bma(&["check", "--format", "json", "examples/digits.bma"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    assert_eq!(run.stdout, "");
}

#[test]
fn deny_warnings_fails_on_a_warning() {
    let file = "tests/fixtures/check/err/unused_param.bma";
    let allowed = bma(&["check", file]);
    assert_eq!(allowed.code, 0, "{}", allowed.shown());
    assert!(allowed.stderr.contains("ok (1 warning)"));
    let denied = bma(&["check", "--deny-warnings", file]);
    assert_eq!(denied.code, 1, "{}", denied.shown());
    assert!(denied.stderr.contains("bma::unused_param"));
    insta::assert_snapshot!(denied.shown());
}

#[test]
fn missing_file_is_one_clear_line() {
    let run = bma(&["check", "tests/no_such_file.bma"]);
    assert_eq!(run.code, 1, "{}", run.shown());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: cannot read tests/no_such_file.bma"));
    insta::assert_snapshot!(run.shown());
}

#[test]
fn a_file_too_large_or_not_utf8_is_one_clear_line() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let big = dir.join("big.bma");
    std::fs::write(&big, vec![b' '; (16 << 20) + 1]).expect("write");
    let bad = dir.join("bad.bma");
    std::fs::write(&bad, b"experiment \xff {}").expect("write");
    for (path, want) in [(&big, "is larger than 16 MiB: not a .bma file"), (&bad, "is not UTF-8 text (byte 11)")] {
        let run = bma(&["check", &path.display().to_string()]);
        assert_eq!(run.code, 1, "{}", run.shown());
        assert_eq!(run.stderr, format!("error: {} {want}\n", path.display()));
    }
    // A device that never ends was read until memory ran out; now it is refused unread.
    if std::path::Path::new("/dev/zero").exists() {
        let run = bma(&["check", "/dev/zero"]);
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (1, "error: /dev/zero is not a regular file (a character device)\n")
        );
    }
    let run = bma_stdin(&["fmt"], &" ".repeat((16 << 20) + 1));
    assert_eq!((run.code, run.stderr.as_str()), (1, "error: stdin is larger than 16 MiB: not a .bma file\n"));
}

#[test]
fn space_shows_parameters_size_and_ranges() {
    let run = bma(&["space", "examples/digits.bma"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    for expected in ["experiment digits", "momentum", "when opt == sgd", "params", "flops"] {
        assert!(run.stdout.contains(expected), "no `{expected}` in:\n{}", run.stdout);
    }
    insta::assert_snapshot!(run.shown());
}

#[test]
fn graph_prints_dot_with_shapes() {
    let run = bma(&["graph", "examples/digits.bma", "--set", "kind=cnn", "--set", "depth=2"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    assert!(run.stdout.starts_with("digraph "), "{}", run.stdout);
    assert!(run.stdout.trim_end().ends_with('}'));
    assert_eq!(run.stdout.matches("conv2d(").count(), 2, "depth=2 gives two convolutions");
    assert!(run.stdout.contains("[10]"), "the output has data.classes = 10 units");
    insta::assert_snapshot!(run.shown());
}

#[test]
fn graph_with_a_bad_set_exits_1() {
    for (set, says) in [("kind=rnn", "mlp, cnn"), ("depth", "name=value"), ("nope=3", "nope")] {
        let run = bma(&["graph", "examples/digits.bma", "--set", set]);
        assert_eq!(run.code, 1, "--set {set}: {}", run.shown());
        assert!(run.stdout.is_empty(), "--set {set} printed a graph");
        assert!(run.stderr.contains(says), "--set {set}: `{says}` not in {}", run.stderr);
    }
    insta::assert_snapshot!(bma(&["graph", "examples/digits.bma", "--set", "kind=rnn"]).shown());
}

#[test]
fn unknown_subcommand_and_flag_exit_cleanly() {
    for args in [&["frobnicate"][..], &["check", "--bogus", "examples/digits.bma"], &["check"], &["graph"]] {
        let run = bma(args);
        assert!(run.code == 1 || run.code == 2, "{args:?}: {}", run.shown());
        assert!(run.stderr.starts_with("error:"), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn help_exits_0() {
    let run = bma(&["--help"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    for sub in ["check", "space", "graph", "run", "eval", "report", "ls"] {
        assert!(run.stdout.contains(sub), "`{sub}` missing from --help");
    }
}

fn bma_stdin(args: &[&str], input: &str) -> Run {
    use std::io::Write;
    let mut child = bma_command()
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the bma binary runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("bma exits");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

#[test]
fn fmt_filters_stdin_and_check_lists_unformatted_files() {
    let messy = "experiment t {\n space { x: float in 0.0..1.0 } // why\n objective { minimize x }\n}\n";
    let run = bma_stdin(&["fmt", "-"], messy);
    assert_eq!(run.code, 0, "{}", run.shown());
    assert_eq!(run.stdout, bma::fmt::format(&bma::Source::new("t", messy)).expect("formats"));
    assert!(run.stdout.contains("// why"));
    // Formatting is idempotent through the CLI too.
    let again = bma_stdin(&["fmt"], &run.stdout);
    assert_eq!(again.stdout, run.stdout);
    assert_eq!(bma_stdin(&["fmt", "--check"], &run.stdout).code, 0);
    assert_eq!(bma_stdin(&["fmt", "--check"], messy).code, 1);
    // Broken input: a diagnostic, exit 1, and the text given back unchanged (an editor filter loses nothing).
    let broken = bma_stdin(&["fmt"], "experiment t {");
    assert_eq!(broken.code, 1, "{}", broken.shown());
    assert!(broken.stderr.contains("expected `}`"), "{}", broken.shown());
    assert_eq!(broken.stdout, "experiment t {");

    // Files: --check lists the unformatted one and changes nothing; without it, rewrites.
    let tmp = temp_dir();
    let dir = tmp.path();
    let (a, b) = (dir.join("a.bma"), dir.join("b.bma"));
    std::fs::write(&a, messy).expect("write");
    std::fs::write(&b, &run.stdout).expect("write");
    let (a_s, b_s) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));
    let check = bma(&["fmt", "--check", a_s, b_s]);
    assert_eq!(check.code, 1, "{}", check.shown());
    assert_eq!(check.stdout.trim(), a_s);
    assert_eq!(std::fs::read_to_string(&a).expect("read"), messy);
    let write = bma(&["fmt", a_s, b_s]);
    assert_eq!(write.code, 0, "{}", write.shown());
    assert_eq!(std::fs::read_to_string(&a).expect("read"), run.stdout);
}

#[test]
fn explain_lists_each_imported_block_once_under_its_own_name() {
    let run = bma(&["check", "--explain", "examples/digits.bma"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    let blocks: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("block ")).collect();
    // digits.bma imports dense_act and conv_bn from std::blocks, nothing else.
    assert_eq!(blocks, ["block conv_bn", "block dense_act"], "{}", run.stdout);
}

/// Runs `bma args` in `dir`, killing it after a minute: a guard so that a hang fails the
/// test instead of stalling the suite (a finished run never waits for it).
fn bma_bounded(dir: &std::path::Path, args: &[&str]) -> Run {
    let mut child = bma_command()
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the bma binary runs");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bma {args:?} still runs after a minute: it hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("bma exits");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_as_an_import_the_root_file_or_fmt_input_is_refused_instead_of_hanging() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let made = std::process::Command::new("mkfifo").arg(dir.join("lib.bma")).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo failed");
    let main = "use lib::{f}\nexperiment p {\n  space {\n    x: float in {1.0, 2.0}\n  }\n  objective {\n    minimize f(x)\n  }\n}\n";
    common::write(dir, "main.bma", main);
    // The import: a diagnostic that names the file and why, exit 1.
    let run = bma_bounded(dir, &["check", "main.bma"]);
    assert_eq!(run.code, 1, "{}", run.shown());
    assert!(run.stderr.contains("cannot read module `lib.bma`"), "{}", run.shown());
    assert!(run.stderr.contains("not a regular file (a named pipe)"), "{}", run.shown());
    // The root file and fmt's input: one clear line.
    let run = bma_bounded(dir, &["check", "lib.bma"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, "error: lib.bma is not a regular file (a named pipe)\n"));
    let run = bma_bounded(dir, &["fmt", "lib.bma"]);
    assert_eq!(run.stderr, "error: lib.bma is not a regular file (a named pipe)\n", "{}", run.shown());
    assert_eq!(run.code, 1, "the user's file, the user's problem: {}", run.shown());
    // The pipe is still a pipe: nothing was written in its place.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(dir.join("lib.bma")).expect("stat").file_type().is_fifo());
}

#[test]
fn resume_on_a_folder_without_a_study_is_refused_and_creates_nothing() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let spec = "experiment p {\n  space {\n    x: float in {1.0, 2.0}\n  }\n  objective {\n    minimize x\n  }\n  search {\n    strategy = grid\n  }\n}\n";
    common::write(dir, "p.bma", spec);
    let run = bma_bounded(dir, &["run", "p.bma", "--out", "typo", "--resume", "--progress", "none"]);
    assert_eq!(run.code, 1, "{}", run.shown());
    assert!(run.stderr.contains("--resume: typo holds no study"), "{}", run.shown());
    assert!(!dir.join("typo").exists(), "a folder was created: a new study was started");
    // The same folder without --resume starts the study; then --resume continues it.
    let run = bma_bounded(dir, &["run", "p.bma", "--out", "typo", "--progress", "none"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    assert_eq!(common::results(&dir.join("typo"))["trials"].as_array().map(Vec::len), Some(2));
    let run = bma_bounded(dir, &["run", "p.bma", "--out", "typo", "--resume", "--progress", "none"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    assert!(!run.stderr.contains("holds no study"), "{}", run.shown());
}

#[test]
fn a_space_too_large_to_count_gets_a_true_lower_bound_instead_of_a_panic() {
    let tmp = temp_dir();
    let dir = tmp.path();
    // 100 structural parameters of 3 values: 3^100 (about 5e47) points, beyond u128 (the
    // grid's product overflowed and panicked).
    let params: String = (0..100).map(|i| format!("    p{i}: int in {{1, 2, 3}}\n")).collect();
    let sum: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    let spec = format!(
        "experiment big {{\n  data = iris()\n  space {{\n{params}  }}\n  model {{\n    dense({})\n    dense(data.classes)\n  }}\n  objective {{ maximize accuracy }}\n}}\n",
        sum.join(" + ")
    );
    common::write(dir, "big.bma", &spec);
    let run = bma_bounded(dir, &["check", "big.bma"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    // log10(3^100) = 47.7: "at least 10^47" is true; the walk's own count (some 10^5) was not.
    assert!(run.stderr.contains(" of at least 10^47 structural points"), "{}", run.shown());
    let run = bma_bounded(dir, &["space", "big.bma"]);
    assert_eq!(run.code, 0, "{}", run.shown());
    assert!(run.stdout.contains("size      at least 10^38 points"), "{}", run.shown());
    // `bma space` states the same bound as the check's note (it said "more than" u128::MAX).
    assert!(run.stdout.contains(" of at least 10^47 structural points"), "{}", run.shown());
}
