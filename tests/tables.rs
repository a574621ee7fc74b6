//! Tables as they come, on the real binary: the metrics users expect flow from a CSV
//! through `bma run` into results.json, a free-text column is refused with a pointer to
//! `text(...)`, and a numeric target read as classes is warned about.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bma, results, stderr, temp_dir, write};

/// A CSV of `n` rows: two numbers and a class that depends on them (`classes` of them),
/// generated without randomness so that every run sees the same file.
fn classes_csv(n: usize, classes: usize) -> String {
    let mut s = String::from("a,b,label\n");
    for i in 0..n {
        let a = (i * 37 % 101) as f64 / 10.0;
        let b = (i * 53 % 97) as f64 / 10.0;
        let c = ((a + b) / 20.0 * classes as f64).floor().min(classes as f64 - 1.0) as usize;
        s += &format!("{a},{b},c{c}\n");
    }
    s
}

fn spec(data: &str, objective: &str) -> String {
    format!(
        "experiment t {{\n  data = {data}\n  model {{ dense(16) relu dense(data.classes) }}\n  \
         train {{ epochs = 8  optimizer = adam(0.01)  batch = 16 }}\n  objective {{ {objective} }}\n  \
         search {{ trials = 1 }}\n}}\n"
    )
}

#[test]
fn maximize_auc_runs_end_to_end_and_the_new_metrics_reach_results_json() {
    let dir = temp_dir();
    write(dir.path(), "d.csv", &classes_csv(240, 2));
    let file = write(dir.path(), "t.bma", &spec("csv(\"d.csv\", target: \"label\", seed: 1)", "maximize auc"));
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let trial = &r["trials"][0];
    assert_eq!(trial["state"], "complete", "{r}");
    let auc = trial["metrics"]["auc"].as_f64().unwrap();
    // The objective is the valid auc, and a separable problem is learnt well.
    assert_eq!(trial["values"]["auc"].as_f64(), Some(auc), "{trial}");
    assert!(auc > 0.8, "auc {auc}");
    for m in ["log_loss", "balanced_accuracy", "top_k(1)", "top_k(2)", "train_auc"] {
        assert!(trial["metrics"][m].as_f64().is_some_and(f64::is_finite), "{m} missing: {trial}");
    }
    assert!(r["final"]["final_test"]["auc"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{}", r["final"]);
}

#[test]
fn maximize_top_k_checks_and_runs_and_a_k_out_of_range_is_refused() {
    let dir = temp_dir();
    write(dir.path(), "d.csv", &classes_csv(240, 4));
    let data = "csv(\"d.csv\", target: \"label\", seed: 2)";
    let file = write(dir.path(), "t.bma", &spec(data, "maximize top_k(2)\n    require balanced_accuracy >= 0"));
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let trial = &r["trials"][0];
    let top2 = trial["metrics"]["top_k(2)"].as_f64().unwrap();
    assert_eq!(trial["values"]["top_k(2)"].as_f64(), Some(top2), "{trial}");
    // The true class among the 2 most probable at least as often as it is the most probable.
    assert!(top2 >= trial["metrics"]["accuracy"].as_f64().unwrap(), "{trial}");
    for bad in ["top_k(11)", "top_k(0)", "top_k(2.5)", "top_k(k)"] {
        let file = write(dir.path(), "bad.bma", &spec(data, &format!("maximize {bad}")));
        let o = bma().arg("check").arg(&file).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{bad}: {err}");
        assert!(err.contains("bad_arguments") && err.contains("one int `k` from 1 to 10"), "{bad}: {err}");
    }
}

#[test]
fn a_free_text_column_is_refused_by_check_and_run_with_a_pointer_to_text() {
    let dir = temp_dir();
    let mut csv = String::from("review,stars,label\n");
    for i in 0..80 {
        csv += &format!("\"I bought this {i} days ago, and it works as it should\",{},{}\n", i % 5, i % 2);
    }
    write(dir.path(), "d.csv", &csv);
    let file = write(dir.path(), "t.bma", &spec("csv(\"d.csv\", target: \"label\")", "maximize accuracy"));
    let out = dir.path().join("out");
    for args in [vec!["check"], vec!["run", "--progress", "none", "--out"]] {
        let mut c = bma();
        c.arg(args[0]).arg(&file).args(&args[1..]);
        if args[0] == "run" {
            c.arg(&out);
        }
        let o = c.output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("bad_data_file") && err.contains("the column `review` is free text"), "{err}");
        // (The rendering may wrap the help between `ignore:` and its list.)
        assert!(err.contains("text(...)") && err.contains("ignore:") && err.contains("[\"review\"]"), "{err}");
    }
    assert!(!out.exists());
    // Dropped with `ignore`, the rest checks clean.
    let data = "csv(\"d.csv\", target: \"label\", ignore: [\"review\"])";
    let file = write(dir.path(), "t.bma", &spec(data, "maximize accuracy"));
    let o = bma().arg("check").arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_numeric_target_with_many_values_read_as_classes_is_warned_about() {
    let dir = temp_dir();
    let csv: String = std::iter::once("size,price\n".to_string())
        .chain((0..200).map(|i| format!("{i},{}\n", 1000 + 5 * i)))
        .collect();
    write(dir.path(), "d.csv", &csv);
    let file = write(dir.path(), "t.bma", &spec("csv(\"d.csv\", target: \"price\")", "maximize accuracy"));
    let o = bma().arg("check").arg(&file).output().unwrap();
    let err = stderr(&o);
    assert!(err.contains("many_classes") && err.contains("200 distinct values in 200 rows"), "{err}");
    assert!(err.contains("task: regression"), "{err}");
    let file = write(
        dir.path(),
        "t.bma",
        "experiment t {\n  data = csv(\"d.csv\", target: \"price\", task: regression)\n  \
         model { dense(8) relu dense(1) }\n  objective { minimize rmse }\n}\n",
    );
    let o = bma().arg("check").arg(&file).output().unwrap();
    assert!(o.status.success() && !stderr(&o).contains("many_classes"), "{}", stderr(&o));
}

#[test]
fn a_spreadsheet_export_with_a_bom_semicolons_crlf_and_quoted_fields_checks_and_trains() {
    let dir = temp_dir();
    let mut csv = String::from("\u{feff}size;colour;note;label\r\n");
    for i in 0..60 {
        let note = if i % 3 == 0 { "\"two\r\nlines; one field\"" } else { "plain" };
        csv += &format!("{};{};{note};{}\r\n", i % 7, ["red", "blue"][i % 2], ["yes", "no"][(i / 2) % 2]);
    }
    write(dir.path(), "d.csv", &csv);
    let file = write(dir.path(), "t.bma", &spec("csv(\"d.csv\", target: \"label\")", "maximize balanced_accuracy"));
    let o = bma().arg("check").arg(&file).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success() && !err.contains("warning") && !err.contains("error"), "{err}");
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["trials"][0]["state"], "complete", "{r}");
    assert!(r["trials"][0]["metrics"]["balanced_accuracy"].as_f64().is_some(), "{r}");
}

#[test]
fn bad_csv_arguments_are_named_at_check_time() {
    let dir = temp_dir();
    write(dir.path(), "d.csv", &classes_csv(30, 2));
    for (args, code, words) in [
        ("delimiter: \"|\"", "invalid_value", "`delimiter` is one of"),
        ("max_categories: 0", "invalid_value", "`max_categories` is an int from 1 to 100000"),
        ("ignore: \"a\"", "invalid_value", "`ignore` is a list of column names"),
        ("ignore: [\"nope\"]", "unknown_column", "has no column `nope` to ignore"),
        ("ignore: [\"label\"]", "bad_data_file", "`ignore` names the target `label`"),
    ] {
        let data = format!("csv(\"d.csv\", target: \"label\", {args})");
        let file = write(dir.path(), "t.bma", &spec(&data, "maximize accuracy"));
        let o = bma().arg("check").arg(&file).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args}: {err}");
        assert!(err.contains(code) && err.contains(words), "{args}: {err}");
    }
}

/// A data value with a list argument (`ignore: ["id"]`) reloads from a saved model as it was
/// written: the best trial is evaluated on test by `bma run` and again by `bma eval`. (Read
/// back as untagged JSON, `["id"]` once became the symbol `id`, and both failed.)
#[test]
fn a_model_trained_with_ignored_columns_reloads_and_evaluates() {
    let dir = temp_dir();
    let mut csv = String::from("id,");
    for (i, line) in classes_csv(120, 2).lines().enumerate() {
        csv += &if i == 0 { format!("{line}\n") } else { format!("{i},{line}\n") };
    }
    write(dir.path(), "d.csv", &csv);
    let data = "csv(\"d.csv\", target: \"label\", ignore: [\"id\"], seed: 1)";
    let file = write(dir.path(), "t.bma", &spec(data, "maximize accuracy"));
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("could not be evaluated"), "{}", stderr(&o));
    let o = bma().arg("eval").arg(&out).args(["--model", "best"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("accuracy"), "{}", String::from_utf8_lossy(&o.stdout));
}
