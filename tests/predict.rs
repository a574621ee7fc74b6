//! `bma predict` and self-contained model folders: each test trains a tiny study with the
//! real binary, on data whose test split has its own file (`test: ...`), so that the test
//! split's rows are known here: predicting them must give exactly the metrics the run
//! recorded for the best trial and the final model. A folder copied elsewhere with its
//! data deleted still predicts and evaluates (`bma eval --on`); every bad input is a
//! diagnostic naming the row or file, and `--skip-bad` predicts the rest.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{bma, results, stderr, temp_dir, tone, write};
use serde_json::Value;

/// A study's folder: the spec, its output folder, and the temporary folder holding both.
struct Study {
    tmp: tempfile::TempDir,
    out: PathBuf,
}

fn run_study(files: &[(&str, String)], spec: &str) -> Study {
    let tmp = temp_dir();
    for (name, text) in files {
        write(tmp.path(), name, text);
    }
    let spec = write(tmp.path(), "s.bma", spec);
    let out = tmp.path().join("out");
    let o = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "bma run failed: {}", stderr(&o));
    Study { tmp, out }
}

fn predict(args: &[&std::ffi::OsStr]) -> Output {
    bma().arg("predict").args(args).output().unwrap()
}

fn os<P: AsRef<std::ffi::OsStr> + ?Sized>(p: &P) -> &std::ffi::OsStr {
    p.as_ref()
}

/// The rows of a predict CSV output: `(input, prediction, rest)`.
fn rows(o: &Output) -> Vec<Vec<String>> {
    assert!(o.status.success(), "bma predict failed: {}", stderr(o));
    let text = String::from_utf8_lossy(&o.stdout);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    r.records().map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect()
}

/// A classification table: `a` (numeric, some missing), `colour` (categories), `b`, the
/// label `y` (`yes`/`no`, decided by the features).
fn table(n: usize, seed: u64) -> String {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 33) as f64) / f64::from(1u32 << 31) * 2.0 - 1.0
    };
    let mut out = String::from("a,colour,b,y\n");
    for i in 0..n {
        let (a, b) = (next() * 2.0, next() * 2.0);
        let colour = ["red", "green", "blue"][(i * 7 + (seed as usize)) % 3];
        let y = if a + b + if colour == "red" { 1.0 } else { 0.0 } > 0.3 { "yes" } else { "no" };
        let a = if i % 13 == 5 { String::new() } else { format!("{a:.3}") };
        out.push_str(&format!("{a},{colour},{b:.3},{y}\n"));
    }
    out
}

const CLASSIFY: &str = r#"use std::blocks::{dense_act}
experiment t {
  data = csv("train.csv", target: "y", split: [0.8, 0.2], seed: 1,
             test: csv("test.csv", target: "y"))
  space { width: int in {8, 16}  lr: float in 1e-2..1e-1 log }
  model { dense_act(width, relu, 0.0) dense(data.classes) }
  train { optimizer = adam(lr)  epochs = 8  batch = 16 }
  objective { maximize accuracy }
  search { strategy = random  trials = 4  seed = 4 }
  average { ensemble(top: 3, weights: softmax(accuracy, temperature: 0.1)) }
}
"#;

fn classify() -> Study {
    run_study(&[("train.csv", table(160, 1)), ("test.csv", table(60, 2))], CLASSIFY)
}

/// The share of rows whose prediction equals the label column `label` of `file`.
fn accuracy(predicted: &[Vec<String>], file: &Path, label: &str) -> f64 {
    let mut r = csv::Reader::from_path(file).unwrap();
    let at = r.headers().unwrap().iter().position(|h| h == label).unwrap();
    let truth: Vec<String> = r.records().map(|rec| rec.unwrap()[at].to_string()).collect();
    assert_eq!(truth.len(), predicted.len());
    let right = truth.iter().zip(predicted).filter(|(t, p)| **t == p[1]).count();
    right as f64 / truth.len() as f64
}

#[test]
fn predictions_on_the_test_split_give_the_recorded_metrics_of_best_and_final() {
    let s = classify();
    let test = s.tmp.path().join("test.csv");
    let res = results(&s.out);
    for (which, recorded) in [
        ("best", res["best"]["test"]["accuracy"].as_f64().unwrap()),
        ("final", res["final"]["final_test"]["accuracy"].as_f64().unwrap()),
    ] {
        let o = predict(&[os(&s.out), os(&test), os("--model"), os(which)]);
        let got = rows(&o);
        assert_eq!(got.len(), 60);
        assert!((accuracy(&got, &test, "y") - recorded).abs() < 1e-9, "{which}: {got:?} vs {recorded}");
        // The same through the saved folder itself.
        let o = predict(&[os(&s.out.join(which)), os(&test)]);
        assert_eq!(rows(&o), got, "{which}/ directly");
    }
    // The run folder's default is the final model.
    let default = rows(&predict(&[os(&s.out), os(&test)]));
    assert_eq!(default, rows(&predict(&[os(&s.out.join("final")), os(&test)])));
    // A trial folder predicts too.
    let trial = std::fs::read_dir(s.out.join("trials")).unwrap().next().unwrap().unwrap().path();
    assert_eq!(rows(&predict(&[os(&trial), os(&test)])).len(), 60);
}

#[test]
fn probabilities_sum_to_one_and_pick_the_predicted_class_in_csv_and_json() {
    let s = classify();
    let test = s.tmp.path().join("test.csv");
    let got = rows(&predict(&[os(&s.out), os(&test), os("--proba"), os("--batch"), os("7")]));
    let text = String::from_utf8_lossy(&predict(&[os(&s.out), os(&test), os("--proba")]).stdout).into_owned();
    assert!(text.starts_with("input,prediction,p_no,p_yes\n"), "{text}");
    for r in &got {
        let (no, yes): (f64, f64) = (r[2].parse().unwrap(), r[3].parse().unwrap());
        assert!((no + yes - 1.0).abs() < 1e-5, "{r:?}");
        assert_eq!(r[1], if yes > no { "yes" } else { "no" }, "{r:?}");
    }
    let o = predict(&[os(&s.out), os(&test), os("--proba"), os("--format"), os("json")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), got.len());
    for (j, r) in lines.iter().zip(&got) {
        assert_eq!(j["input"], r[0].as_str());
        assert_eq!(j["prediction"], r[1].as_str());
        let p = j["proba"]["yes"].as_f64().unwrap();
        assert!((p - r[3].parse::<f64>().unwrap()).abs() < 1e-6);
    }
    // --out writes the same to a file.
    let file = s.tmp.path().join("answers.csv");
    let o = predict(&[os(&s.out), os(&test), os("--out"), os(&file)]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", stderr(&o));
    let plain = String::from_utf8_lossy(&predict(&[os(&s.out), os(&test)]).stdout).into_owned();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), plain);
}

/// `text` with its columns in the order `order` (names), the others dropped, and a column
/// `extra` added first.
fn reorder(text: &str, order: &[&str]) -> String {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let at: Vec<usize> = order.iter().map(|n| header.iter().position(|h| h == n).unwrap()).collect();
    let mut out = format!("extra,{}\n", order.join(","));
    for rec in r.records() {
        let rec = rec.unwrap();
        let fields: Vec<&str> = at.iter().map(|i| &rec[*i]).collect();
        out.push_str(&format!("zzz,{}\n", fields.join(",")));
    }
    out
}

#[test]
fn a_model_folder_moved_away_from_its_deleted_data_still_predicts_and_evaluates() {
    let s = classify();
    let test = s.tmp.path().join("test.csv");
    let before = rows(&predict(&[os(&s.out), os(&test), os("--proba")]));
    let eval = bma().arg("eval").arg(&s.out).output().unwrap();
    assert!(eval.status.success(), "{}", stderr(&eval));
    let eval_text = String::from_utf8_lossy(&eval.stdout).into_owned();
    // Elsewhere, the columns reordered, the target dropped and another column added.
    let elsewhere = temp_dir();
    let input =
        write(elsewhere.path(), "new.csv", &reorder(&std::fs::read_to_string(&test).unwrap(), &["b", "colour", "a"]));
    let labelled = write(elsewhere.path(), "labelled.csv", &std::fs::read_to_string(&test).unwrap());
    let moved = elsewhere.path().join("final");
    copy_dir(&s.out.join("final"), &moved);
    drop(s);
    let after = rows(&predict(&[os(&moved), os(&input), os("--proba")]));
    assert_eq!(after, before);
    // `bma eval --on` measures the labelled file with the folder alone: the run's test metrics.
    let e = bma().arg("eval").arg(&moved).arg("--on").arg(&labelled).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let text = String::from_utf8_lossy(&e.stdout);
    for metric in ["accuracy", "loss"] {
        assert_eq!(printed(&text, metric), printed(&eval_text, metric), "{text} vs {eval_text}");
    }
    // Evaluating a split needs the data, which is gone: a clear error.
    let e = bma().arg("eval").arg(&moved).output().unwrap();
    assert_eq!(e.status.code(), Some(1), "{}", stderr(&e));
}

fn printed(stdout: &str, metric: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(metric).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {metric} in {stdout}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// Runs predict on `text` (written as `bad.csv` beside the study), expecting exit 1 and
/// `needles` in stderr.
fn refused(s: &Study, text: &str, extra: &[&str], needles: &[&str]) -> Output {
    let file = write(s.tmp.path(), "bad.csv", text);
    let mut args = vec![os(&s.out), os(&file)];
    args.extend(extra.iter().map(os));
    let o = predict(&args);
    for n in needles {
        assert!(stderr(&o).contains(n), "expected `{n}` in: {}", stderr(&o));
    }
    o
}

#[test]
fn every_bad_input_names_its_row_or_file_and_skip_bad_predicts_the_rest() {
    let s = classify();
    // A missing column: the whole input is refused.
    let o = refused(&s, "a,b\n1,2\n", &[], &["no column `colour`"]);
    assert_eq!(o.status.code(), Some(1));
    // A category never seen, a value that is not a number, a short row: each named by line.
    let text = "a,colour,b\n0.5,red,1\n0.1,purple,0.2\nx,blue,1\n1,green\n-1,green,0.5\n";
    let o = refused(&s, text, &[], &["line 3", "`purple`", "never saw", "line 4", "`x`", "line 5", "3 of 5 inputs"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let o = refused(&s, text, &["--skip-bad"], &["skipped", "line 3", "3 of 5 inputs skipped"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = rows(&o);
    assert_eq!(got.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["line 2", "line 6"]);
    // A missing value is imputed as in training (a number: the train mean; a category: all zeros).
    let o = refused(&s, "a,colour,b\n,,1\n", &[], &[]);
    assert_eq!(rows(&o).len(), 1);
    // An input that cannot be read names the path.
    let o = predict(&[os(&s.out), os(&s.tmp.path().join("nowhere.csv"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nowhere.csv") && stderr(&o).contains("cannot read"), "{}", stderr(&o));
    // Bad flags and folders.
    let test = s.tmp.path().join("test.csv");
    assert_eq!(predict(&[os(&s.out), os(&test), os("--batch"), os("0")]).status.code(), Some(1));
    let o = predict(&[os(s.tmp.path()), os(&test)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("holds no saved model"), "{}", stderr(&o));
}

#[test]
fn a_model_folder_of_another_format_says_what_to_do() {
    let s = classify();
    let test = s.tmp.path().join("test.csv");
    let best = s.out.join("best");
    let path = best.join("model.json");
    let mut manifest: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(manifest["format"], 2);
    let columns = &manifest["config"]["preprocess"]["input"]["columns"];
    let names: Vec<&str> = columns.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "colour", "b"]);
    assert_eq!(columns[1]["categories"], serde_json::json!(["blue", "green", "red"]));
    assert_eq!(manifest["config"]["preprocess"]["classes"], serde_json::json!(["no", "yes"]));
    // Saved by an older bma: no format, no preprocessing.
    let mut old = manifest.clone();
    old.as_object_mut().unwrap().remove("format");
    old["config"].as_object_mut().unwrap().remove("preprocess");
    std::fs::write(&path, old.to_string()).unwrap();
    let o = predict(&[os(&best), os(&test)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("older bma (model folder format 1)") && stderr(&o).contains("bma run"),
        "{}",
        stderr(&o)
    );
    // `bma eval` still evaluates it on its data.
    let e = bma().arg("eval").arg(&best).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    // Saved by a newer bma.
    manifest["format"] = serde_json::json!(99);
    std::fs::write(&path, manifest.to_string()).unwrap();
    let o = predict(&[os(&best), os(&test)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("newer bma (model folder format 99"), "{}", stderr(&o));
}

/// Regression rows: `y = 300 + 100 (x1 - 2 x2) + category offset`, far from unit scale.
fn regression_table(n: usize, seed: u64) -> String {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 33) as f64) / f64::from(1u32 << 31)
    };
    let mut out = String::from("x1,x2,kind,y\n");
    for i in 0..n {
        let (x1, x2) = (next(), next());
        let kind = ["p", "q"][i % 2];
        let y = 300.0 + 100.0 * (x1 - 2.0 * x2) + if kind == "p" { 40.0 } else { 0.0 };
        out.push_str(&format!("{x1:.4},{x2:.4},{kind},{y:.3}\n"));
    }
    out
}

#[test]
fn regression_predictions_are_in_the_targets_units_and_give_the_recorded_rmse() {
    let s = run_study(
        &[("train.csv", regression_table(150, 3)), ("test.csv", regression_table(40, 4))],
        r#"experiment r {
  data = csv("train.csv", target: "y", task: regression, split: [0.8, 0.2], seed: 1,
             test: csv("test.csv", target: "y", task: regression))
  space { lr: float in 1e-2..5e-2 log }
  model { dense(16) relu dense(1) }
  train { optimizer = adam(lr)  epochs = 30  batch = 16 }
  objective { minimize loss }
  search { strategy = random  trials = 2  seed = 1 }
  average { ensemble(top: 2, weights: uniform) }
}
"#,
    );
    let test = s.tmp.path().join("test.csv");
    let truth: Vec<f64> =
        csv::Reader::from_path(&test).unwrap().records().map(|r| r.unwrap()[3].parse().unwrap()).collect();
    let res = results(&s.out);
    for (which, recorded) in [
        ("best", res["best"]["test"]["rmse"].as_f64().unwrap()),
        ("final", res["final"]["final_test"]["rmse"].as_f64().unwrap()),
    ] {
        let got = rows(&predict(&[os(&s.out), os(&test), os("--model"), os(which), os("--proba")]));
        assert_eq!(got[0].len(), 2, "no probabilities for regression: {got:?}");
        let pred: Vec<f64> = got.iter().map(|r| r[1].parse().unwrap()).collect();
        let rmse = (pred.iter().zip(&truth).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / truth.len() as f64).sqrt();
        assert!((rmse - recorded).abs() < 1e-3 * (1.0 + recorded), "{which}: {rmse} vs {recorded}");
        // In the target's units: the predictions spread like the targets, around 300.
        let mean = pred.iter().sum::<f64>() / pred.len() as f64;
        assert!((150.0..450.0).contains(&mean), "{which}: mean prediction {mean}");
    }
}

/// A grey PNG of `side` x `side` pixels, all `level`, with one brighter pixel at `spot`.
fn png(path: &Path, side: u32, level: u8, spot: u32) {
    let mut img = image::GrayImage::from_pixel(side, side, image::Luma([level]));
    img.put_pixel(spot % side, (spot / side) % side, image::Luma([level.saturating_add(40)]));
    img.save(path).unwrap();
}

/// `dir/dark` and `dir/light` class folders of `n` images each.
fn image_classes(dir: &Path, n: u32, side: u32, offset: u32) {
    for (class, level) in [("dark", 30u8), ("light", 200u8)] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            png(&dir.join(class).join(format!("{i}.png")), side, level.wrapping_add((i % 7) as u8 * 3), i + offset);
        }
    }
}

#[test]
fn images_are_predicted_from_a_folder_and_bad_or_other_size_files_are_named() {
    let tmp = temp_dir();
    image_classes(&tmp.path().join("train"), 16, 8, 0);
    image_classes(&tmp.path().join("test"), 6, 8, 3);
    let spec = write(
        tmp.path(),
        "s.bma",
        r#"experiment i {
  data = images("train", size: [8, 8], channels: 1, split: [0.75, 0.25], seed: 1,
                test: images("test", size: [8, 8], channels: 1))
  space { lr: float in 2e-2..5e-2 log }
  model { flatten dense(8) relu dense(data.classes) }
  train { optimizer = adam(lr)  epochs = 6  batch = 8 }
  objective { maximize accuracy }
  search { strategy = random  trials = 2  seed = 1 }
}
"#,
    );
    let out = tmp.path().join("out");
    let o = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let recorded = results(&out)["best"]["test"]["accuracy"].as_f64().unwrap();
    let got = rows(&predict(&[os(&out), os(&tmp.path().join("test"))]));
    assert_eq!(got.len(), 12);
    // The class folder of each file is its truth.
    let right = got.iter().filter(|r| Path::new(&r[0]).parent().unwrap().ends_with(&r[1])).count();
    assert!((right as f64 / 12.0 - recorded).abs() < 1e-9, "{got:?} vs {recorded}");
    let e = bma()
        .arg("eval")
        .arg(&out)
        .arg("--model")
        .arg("best")
        .arg("--on")
        .arg(tmp.path().join("test"))
        .output()
        .unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    assert_eq!(printed(&String::from_utf8_lossy(&e.stdout), "accuracy").parse::<f64>().unwrap(), recorded);
    // New images: a larger one is cropped and resized as in training; a corrupt one is named.
    let new = tmp.path().join("new");
    std::fs::create_dir_all(&new).unwrap();
    png(&new.join("big-light.png"), 16, 210, 5);
    std::fs::write(new.join("broken.png"), b"not a png").unwrap();
    let o = predict(&[os(&out), os(&new)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("broken.png") && stderr(&o).contains("not a usable image"), "{}", stderr(&o));
    let got = rows(&predict(&[os(&out), os(&new), os("--skip-bad")]));
    assert_eq!(got.len(), 1);
    assert!(got[0][0].ends_with("big-light.png"));
    // A list of paths.
    let list = write(tmp.path(), "list.txt", "new/big-light.png\n");
    assert_eq!(rows(&predict(&[os(&out), os(&list)])), got);
}

#[test]
fn texts_are_predicted_from_a_csv_column_or_plain_lines_with_the_saved_vocabulary() {
    let corpus = |n: usize, shift: usize| {
        let good = ["great fun", "lovely day", "really good", "very nice"];
        let bad = ["awful mess", "terrible day", "really bad", "very poor"];
        let mut s = String::from("text,label\n");
        for i in 0..n {
            let (t, l) =
                if i % 2 == 0 { (good[(i / 2 + shift) % 4], "pos") } else { (bad[(i / 2 + shift) % 4], "neg") };
            s.push_str(&format!("{t},{l}\n"));
        }
        s
    };
    let s = run_study(
        &[("train.csv", corpus(60, 0)), ("test.csv", corpus(16, 1))],
        r#"experiment x {
  data = text("train.csv", text: "text", target: "label", tokenizer: word, max_len: 4, split: [0.8, 0.2], seed: 1,
              test: text("test.csv", text: "text", target: "label"))
  space { lr: float in 2e-2..5e-2 log }
  model { embedding(data.vocab, 16) global_avgpool dense(data.classes) }
  train { optimizer = adam(lr)  epochs = 8  batch = 8 }
  objective { maximize accuracy }
  search { strategy = random  trials = 1  seed = 1 }
}
"#,
    );
    let test = s.tmp.path().join("test.csv");
    let recorded = results(&s.out)["best"]["test"]["accuracy"].as_f64().unwrap();
    let got = rows(&predict(&[os(&s.out), os(&test)]));
    assert!((accuracy(&got, &test, "label") - recorded).abs() < 1e-9);
    // One text a line: the same answers.
    let texts: Vec<String> =
        csv::Reader::from_path(&test).unwrap().records().map(|r| r.unwrap()[0].to_string()).collect();
    let plain = write(s.tmp.path(), "new.txt", &(texts.join("\n") + "\n"));
    let lines = rows(&predict(&[os(&s.out), os(&plain)]));
    assert_eq!(lines.iter().map(|r| &r[1]).collect::<Vec<_>>(), got.iter().map(|r| &r[1]).collect::<Vec<_>>());
    // A CSV without the text column is refused, naming it.
    let o = refused(&s, "words\nhello\n", &[], &["no column `text`"]);
    assert_eq!(o.status.code(), Some(1));
}

/// `dir/low/*.wav` (300 Hz) and `dir/high/*.wav` (2 kHz) class folders, `per` clips each at
/// 8 kHz, about 0.4 s long; `seed` varies the noise.
fn tone_classes(dir: &Path, per: usize, seed: u64) {
    for (class, freq) in [("low", 300.0), ("high", 2000.0)] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..per {
            let f = freq * (1.0 + 0.02 * i as f64);
            tone(&dir.join(class).join(format!("{i:02}.wav")), 8000, f, 3000 + 100 * i, seed + i as u64);
        }
    }
}

#[test]
fn clips_are_predicted_from_a_wav_folder_without_the_training_clips_and_bad_ones_are_named() {
    let tmp = temp_dir();
    tone_classes(&tmp.path().join("train"), 8, 1);
    tone_classes(&tmp.path().join("test"), 3, 100);
    let spec = write(
        tmp.path(),
        "s.bma",
        r#"experiment a {
  data = audio("train", rate: 8000, seconds: 0.25, features: mel(bins: 16, win_ms: 32, hop_ms: 32),
               split: [0.75, 0.25], seed: 1,
               test: audio("test", rate: 8000, seconds: 0.25, features: mel(bins: 16, win_ms: 32, hop_ms: 32)))
  space { lr: float in 1e-2..3e-2 log }
  model { flatten dense(8) relu dense(data.classes) }
  train { optimizer = adam(lr)  epochs = 10  batch = 4 }
  objective { maximize accuracy }
  search { strategy = random  trials = 2  seed = 1 }
  average { ensemble(top: 2) }
}
"#,
    );
    let out = tmp.path().join("out");
    let o = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Nothing of the training data is read from here on.
    std::fs::remove_dir_all(tmp.path().join("train")).unwrap();
    let res = results(&out);
    let test = tmp.path().join("test");
    for (which, recorded) in [
        ("best", res["best"]["test"]["accuracy"].as_f64().unwrap()),
        ("final", res["final"]["final_test"]["accuracy"].as_f64().unwrap()),
    ] {
        let got = rows(&predict(&[os(&out), os(&test), os("--model"), os(which), os("--proba")]));
        assert_eq!(got.len(), 6, "{which}: {got:?}");
        // The class folder of each clip is its truth.
        let right = got.iter().filter(|r| Path::new(&r[0]).parent().unwrap().ends_with(&r[1])).count();
        assert!((right as f64 / 6.0 - recorded).abs() < 1e-9, "{which}: {got:?} vs {recorded}");
        for r in &got {
            let p: Vec<f64> = r[2..].iter().map(|v| v.parse().unwrap()).collect();
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{which}: {r:?}");
        }
        let e = bma().arg("eval").arg(&out).args(["--model", which, "--on"]).arg(&test).output().unwrap();
        assert!(e.status.success(), "{}", stderr(&e));
        let printed_acc: f64 = printed(&String::from_utf8_lossy(&e.stdout), "accuracy").parse().unwrap();
        assert!((printed_acc - recorded).abs() < 1e-4, "{which}: eval --on gave {printed_acc}, run {recorded}");
    }
    assert!(res["best"]["test"]["accuracy"].as_f64().unwrap() >= 0.99, "the tones are easy: {res}");
    // New clips: one at another rate (resampled as in training), one that is no WAV, one
    // empty: the bad ones are named, --skip-bad predicts the rest.
    let new = tmp.path().join("new");
    std::fs::create_dir_all(&new).unwrap();
    tone(&new.join("high-16k.wav"), 16000, 2000.0, 8000, 7);
    tone(&new.join("low-8k.wav"), 8000, 310.0, 4000, 8);
    std::fs::write(new.join("broken.wav"), b"RIFF....WAVEnope").unwrap();
    let o = predict(&[os(&out), os(&new)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.wav") && stderr(&o).contains("1 of 3 inputs"), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "nothing is written when an input is bad");
    let got = rows(&predict(&[os(&out), os(&new), os("--skip-bad")]));
    let answers: Vec<(String, String)> = got
        .iter()
        .map(|r| (Path::new(&r[0]).file_name().unwrap().to_string_lossy().into_owned(), r[1].clone()))
        .collect();
    assert_eq!(answers, [("high-16k.wav".into(), "high".into()), ("low-8k.wav".into(), "low".into())]);
    // One file, and a list of paths.
    assert_eq!(rows(&predict(&[os(&out), os(&new.join("low-8k.wav"))]))[0][1], "low");
    let list = write(tmp.path(), "clips.txt", "new/high-16k.wav\nnew/low-8k.wav\n");
    assert_eq!(rows(&predict(&[os(&out), os(&list)])), got);
}

/// A version-1 `.npy` of float32 values.
fn npy(path: &Path, shape: &[usize], values: &[f32]) {
    std::fs::write(path, bma::export::npy(shape, values)).unwrap();
}

/// `n` rows of 4 numbers in 3 classes (the class decides the means of the features), and
/// their labels.
fn number_rows(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut noise = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 2000) as f32 / 1000.0 - 1.0
    };
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % 3;
        let centre = [[4.0, 0.0, -2.0, 10.0], [0.0, 4.0, 2.0, 12.0], [-4.0, -4.0, 0.0, 8.0]][c];
        x.extend(centre.iter().map(|m| m + 1.5 * noise()));
        y.push(c as f32);
    }
    (x, y)
}

#[test]
fn number_rows_are_predicted_in_feature_order_with_or_without_a_header_and_bad_rows_are_named() {
    let tmp = temp_dir();
    let (x, y) = number_rows(90, 1);
    let (tx, ty) = number_rows(30, 2);
    npy(&tmp.path().join("x.npy"), &[90, 4], &x);
    npy(&tmp.path().join("y.npy"), &[90], &y);
    npy(&tmp.path().join("tx.npy"), &[30, 4], &tx);
    npy(&tmp.path().join("ty.npy"), &[30], &ty);
    let spec = write(
        tmp.path(),
        "s.bma",
        r#"experiment n {
  data = npy("x.npy", "y.npy", split: [0.8, 0.2], seed: 1, test: npy("tx.npy", "ty.npy"))
  space { lr: float in 1e-2..3e-2 log }
  model { dense(8) relu dense(data.classes) }
  train { optimizer = adam(lr)  epochs = 6  batch = 8 }
  objective { maximize accuracy }
  search { strategy = random  trials = 2  seed = 1 }
  average { ensemble(top: 2) }
}
"#,
    );
    let out = tmp.path().join("out");
    let o = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["x.npy", "y.npy", "tx.npy", "ty.npy"] {
        std::fs::remove_file(tmp.path().join(f)).unwrap();
    }
    let lines: Vec<String> =
        tx.chunks(4).map(|r| r.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(",")).collect();
    let plain = write(tmp.path(), "rows.csv", &(lines.join("\n") + "\n"));
    let headed = write(tmp.path(), "headed.csv", &format!("f0,f1,f2,f3\n{}\n", lines.join("\n")));
    let res = results(&out);
    for (which, recorded) in [
        ("best", res["best"]["test"]["accuracy"].as_f64().unwrap()),
        ("final", res["final"]["final_test"]["accuracy"].as_f64().unwrap()),
    ] {
        let got = rows(&predict(&[os(&out), os(&plain), os("--model"), os(which)]));
        assert_eq!(got.len(), 30);
        assert_eq!(got[0][0], "line 1");
        // The classes of NumPy labels are named by their index.
        let right = got.iter().zip(&ty).filter(|(r, t)| r[1] == format!("{}", **t as usize)).count();
        assert!((right as f64 / 30.0 - recorded).abs() < 1e-9, "{which}: {got:?} vs {recorded}");
        let with_header = rows(&predict(&[os(&out), os(&headed), os("--model"), os(which)]));
        let answers = |r: &[Vec<String>]| r.iter().map(|r| r[1].clone()).collect::<Vec<_>>();
        assert_eq!(answers(&with_header), answers(&got), "{which}: the header row is skipped");
        assert_eq!(with_header[0][0], "line 2");
    }
    assert!(res["best"]["test"]["accuracy"].as_f64().unwrap() >= 0.9, "the classes are far apart: {res}");
    // Bad rows, each named by its line; a bad value in the first row is a bad row, not a header.
    let bad = write(
        tmp.path(),
        "bad.csv",
        &format!("{},x\n{}\n1,2,3\n{}\n", &lines[0][..lines[0].rfind(',').unwrap()], lines[1], lines[2]),
    );
    let o = predict(&[os(&out), os(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("line 1: value 4 is `x`, not a finite number"), "{err}");
    assert!(err.contains("line 3: 3 values where the model takes 4"), "{err}");
    let got = rows(&predict(&[os(&out), os(&bad), os("--skip-bad")]));
    assert_eq!(got.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["line 2", "line 4"]);
}
