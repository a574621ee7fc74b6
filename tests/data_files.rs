//! Data files under a study and its saved models, end to end on the real binary: paths
//! resolve against the spec's folder whatever the current directory, and a data file
//! that changed since a study or a model read it is refused (`--allow-changed-data`
//! overrides), never silently used and never a panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{bma, results, stderr, temp_dir, write};

const SPEC: &str = "experiment d {
  data = csv(\"d.csv\", target: \"y\", split: [0.6, 0.2, 0.2], seed: 1)
  space { width: int in {4, 8} }
  model { dense(width) relu dense(data.classes) }
  train { optimizer = adam(0.05)  epochs = 6  batch = 8 }
  objective { maximize accuracy }
  search { strategy = random  trials = 2  seed = 1 }
  average { ensemble(top: 2, weights: uniform) }
}
";

/// `n` rows of two features, two classes split by the sign of `a` (labels swapped when
/// `flip`): a model of one scores near 1 on it and near 0 on the other.
fn two_class_csv(n: usize, flip: bool) -> String {
    let mut s = String::from("a,b,y\n");
    for i in 0..n {
        let a = (i as f64 - n as f64 / 2.0 + 0.5) / 4.0;
        let b = ((i * 7) % 11) as f64 / 11.0;
        let y = usize::from(a > 0.0) ^ usize::from(flip);
        s.push_str(&format!("{a:.3},{b:.3},{y}\n"));
    }
    s
}

/// The same file rewritten with other columns and classes: three features, three classes.
fn three_class_csv(n: usize) -> String {
    let mut s = String::from("a,b,c,y\n");
    for i in 0..n {
        let a = i as f64 / n as f64;
        s.push_str(&format!("{a:.3},{:.3},{:.3},{}\n", 1.0 - a, (i % 5) as f64, i % 3));
    }
    s
}

/// Runs `bma` with `args` in `cwd`.
fn bma_in(cwd: &Path, args: &[&str]) -> Output {
    bma().current_dir(cwd).args(args).output().expect("bma runs")
}

/// The number `bma eval` prints for `metric`.
fn printed(o: &Output, metric: &str) -> f64 {
    let stdout = String::from_utf8_lossy(&o.stdout);
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(metric).map(|v| v.trim().parse::<f64>().expect("a number")))
        .unwrap_or_else(|| panic!("no {metric} in {stdout}"))
}

/// A folder `proj/` holding the spec and `d.csv`, run from inside it (so the spec is
/// named `spec.bma`, with an empty parent) into `proj/out`; gives the temporary folder.
fn run_in_spec_folder(csv: &str) -> tempfile::TempDir {
    let dir = temp_dir();
    let proj = dir.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    write(&proj, "spec.bma", SPEC);
    write(&proj, "d.csv", csv);
    let o = bma_in(&proj, &["run", "spec.bma", "--out", "out", "--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

#[test]
fn eval_from_another_folder_reads_the_spec_folders_data() {
    let dir = run_in_spec_folder(&two_class_csv(60, false));
    let proj = dir.path().join("proj");
    let out = proj.join("out");
    // What the run measured on its own data.
    let at_home = bma_in(&proj, &["eval", "out", "--model", "best"]);
    assert!(at_home.status.success(), "{}", stderr(&at_home));
    let home = printed(&at_home, "accuracy");
    assert!(home > 0.8, "the model learnt the data: {home}");
    // Another folder with another d.csv (labels swapped): eval must not read it.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    write(&elsewhere, "d.csv", &two_class_csv(60, true));
    for which in ["best", "final"] {
        let o = bma_in(&elsewhere, &["eval", out.to_str().unwrap(), "--model", which]);
        assert!(o.status.success(), "{which}: {}", stderr(&o));
        let accuracy = printed(&o, "accuracy");
        assert!(accuracy > 0.8, "{which}: scored on the wrong d.csv: {accuracy}");
        if which == "best" {
            assert_eq!(accuracy, home, "the same model on the same file");
        }
    }
    // The stored base is absolute: the saved model names the spec's folder.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best/model.json")).unwrap()).unwrap();
    let base = Path::new(json["config"]["base"].as_str().expect("a base"));
    assert!(base.is_absolute(), "{base:?}");
    assert_eq!(base, std::fs::canonicalize(&proj).unwrap());
}

/// A finished run whose `d.csv` is then rewritten with three columns and three classes.
fn run_then_rewrite() -> tempfile::TempDir {
    let dir = run_in_spec_folder(&two_class_csv(60, false));
    write(&dir.path().join("proj"), "d.csv", &three_class_csv(60));
    dir
}

#[test]
fn eval_refuses_a_changed_data_file() {
    let dir = run_then_rewrite();
    let proj = dir.path().join("proj");
    for args in [&["eval", "out"][..], &["eval", "out", "--model", "best"], &["eval", "out/trials/0"]] {
        let o = bma_in(&proj, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("d.csv changed") && err.contains("--allow-changed-data"), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: no metrics printed");
    }
}

#[test]
fn allow_changed_data_evaluates_and_a_shape_mismatch_is_an_error_not_a_panic() {
    let dir = run_then_rewrite();
    let proj = dir.path().join("proj");
    // Other classes and columns: the model does not fit the data; a clear error, no panic.
    for which in ["best", "final"] {
        let o = bma_in(&proj, &["eval", "out", "--model", which, "--allow-changed-data"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{which}: the input's problem: {err}");
        assert!(!err.contains("panicked"), "{which}: {err}");
        assert!(
            err.contains("takes 2 features and gives 2 classes") && err.contains("3 features and 3 classes"),
            "{err}"
        );
    }
    // Same shape, other values: with the flag it evaluates on the file as it is now.
    write(&proj, "d.csv", &two_class_csv(60, true));
    let refused = bma_in(&proj, &["eval", "out", "--model", "best"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let o = bma_in(&proj, &["eval", "out", "--model", "best", "--allow-changed-data"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(printed(&o, "accuracy") < 0.5, "scored on the flipped labels: {}", printed(&o, "accuracy"));
}

#[test]
fn resume_refuses_a_changed_data_file_and_keeps_the_study_as_it_was() {
    let dir = run_then_rewrite();
    let proj = dir.path().join("proj");
    let before = results(&proj.join("out"));
    let o = bma_in(&proj, &["run", "spec.bma", "--out", "out", "--resume", "--trials", "4", "--progress", "none"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("d.csv changed") && err.contains("size") && err.contains("--allow-changed-data"), "{err}");
    // Nothing trained on the new file: the study still holds its two trials.
    let after = results(&proj.join("out"));
    assert_eq!(after["trials"].as_array().unwrap().len(), 2);
    assert_eq!(before["trials"], after["trials"]);
    // The file put back as it was: the study resumes.
    write(&proj, "d.csv", &two_class_csv(60, false));
    let o = bma_in(&proj, &["run", "spec.bma", "--out", "out", "--resume", "--trials", "3", "--progress", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(results(&proj.join("out"))["trials"].as_array().unwrap().len(), 3);
}

#[test]
fn resume_with_allow_changed_data_goes_on() {
    let dir = run_in_spec_folder(&two_class_csv(60, false));
    let proj = dir.path().join("proj");
    // Same columns and classes, other rows: allowed on request.
    write(&proj, "d.csv", &two_class_csv(72, false));
    let args = ["run", "spec.bma", "--out", "out", "--resume", "--trials", "3", "--progress", "none"];
    let o = bma_in(&proj, &args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = bma_in(&proj, &[&args[..], &["--allow-changed-data"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(results(&proj.join("out"))["trials"].as_array().unwrap().len(), 3);
}
