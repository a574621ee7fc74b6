//! Bad rows of CSV tables and text files, and a split's own source whose labels the
//! training source lacks (issue 16's "Bad input"): without `skip_bad` the checker
//! (`check::data::describe_with`) and the loader (`data::load`) refuse the same file, each
//! naming the file and the 1-based line; with `skip_bad: true` both leave the same rows out,
//! the checker warns with the count, the loaded samples count them (`Extras::skipped`) and
//! `bma run` prints it. A `test:` source with a class the training source lacks is refused
//! by both for CSV, image folders, audio folders and NumPy labels; `bma run` trains on text
//! and scores the test file it names. Every fixture is written by the tests.

mod common;

use std::path::Path;

use bma::check::data::describe_with;
use bma::data::{Dataset, load};
use bma::diagnostic::{Code, Diagnostic, Severity};
use bma::ir::{DataInfo, Value};
use bma::source::Span;
use common::{bma, call, npy_bytes, s, stderr, temp_dir, write};

/// The checker's answer and its warnings.
fn check(v: &Value, base: &Path) -> (Result<DataInfo, Diagnostic>, Vec<Diagnostic>) {
    let mut notes = Vec::new();
    let info = describe_with(v, Span::default(), &|_| Span::default(), base, &mut notes);
    (info, notes)
}

/// Both refuse `v`, each message holding every one of `needles`; gives the checker's code.
fn both_refuse(v: &Value, base: &Path, needles: &[&str]) -> Code {
    let d = check(v, base).0.expect_err("the checker accepts bad data");
    let e = load(v, base).expect_err("the loader accepts bad data").to_string();
    for n in needles {
        assert!(d.message.contains(n), "checker's `{}` lacks `{n}`", d.message);
        assert!(e.contains(n), "loader's `{e}` lacks `{n}`");
    }
    d.code
}

/// Both accept `v` with the same `DataInfo`; gives the dataset and the checker's warnings.
fn both(v: &Value, base: &Path) -> (Dataset, Vec<Diagnostic>) {
    let (info, notes) = check(v, base);
    let info = info.unwrap_or_else(|d| panic!("checker refuses {v}: {}", d.message));
    let data = load(v, base).unwrap_or_else(|e| panic!("loader refuses {v}: {e}"));
    assert_eq!(info, data.info, "checker and loader disagree on {v}");
    (data, notes)
}

fn rows(d: &Dataset) -> usize {
    d.train.n + d.valid.n + d.test.n
}

/// A `x,c,y` table of `n` good rows: `x` numeric with many distinct values, `c` a category,
/// `y` the class (`a` or `b`); row `i` is on line `i + 2`.
fn table(n: usize) -> Vec<String> {
    let mut lines = vec!["x,c,y".to_string()];
    lines.extend((0..n).map(|i| format!("{}.5,{},{}", i, ["red", "blue"][i % 2], ["a", "b"][i % 2])));
    lines
}

fn csv_value(path: &str, more: Vec<(Option<&str>, Value)>) -> Value {
    let mut args = vec![(None, s(path)), (Some("target"), s("y"))];
    args.extend(more);
    call("csv", args)
}

#[test]
fn each_bad_csv_row_is_named_with_its_line_and_skip_bad_leaves_them_all_out() {
    let t = temp_dir();
    // Each bad row alone, on line 6, refused by both with the file and line.
    let cases: [(&[u8], &str); 6] = [
        (b"\xff\xfe,red,a", "not UTF-8"),
        (b"7.5,red", "2 fields where the header has 3"),
        (b"abc,red,a", "`x` is `abc`, not a number"),
        (b"inf,red,a", "`x` is `inf`, not a finite 32-bit number"),
        (b"1e39,red,a", "`x` is `1e39`, not a finite 32-bit number"),
        (b"8.5,red,NA", "the target `y` is missing"),
    ];
    for (i, (bad, why)) in cases.iter().enumerate() {
        let mut body = table(30).join("\n").into_bytes();
        let at = body.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(4).map(|(k, _)| k + 1).expect("line 6");
        body.splice(at..at, bad.iter().copied().chain(*b"\n"));
        let name = format!("bad{i}.csv");
        std::fs::write(t.path().join(&name), &body).expect("write");
        let code = both_refuse(&csv_value(&name, vec![]), t.path(), &[&name, why]);
        assert_eq!(code, Code::BadDataFile, "{why}");
        let d = check(&csv_value(&name, vec![]), t.path()).0.expect_err("refused");
        assert!(d.message.contains(", line 6: "), "{}", d.message);
        assert!(d.help.as_deref().is_some_and(|h| h.contains("skip_bad: true")), "{why}: {:?}", d.help);
        let e = load(&csv_value(&name, vec![]), t.path()).expect_err("refused").to_string();
        assert!(e.contains(&format!("{name}:6: ")), "{e}");
    }
    // All six together, and a NaN (a missing value, imputed: not a bad row), with skip_bad.
    let mut lines: Vec<Vec<u8>> = table(30).into_iter().map(String::into_bytes).collect();
    for (k, (row, _)) in cases.iter().enumerate() {
        lines.insert(3 + 5 * k, row.to_vec());
    }
    lines.push(b"NaN,blue,b".to_vec());
    let body = lines.join(&b'\n');
    std::fs::write(t.path().join("all.csv"), &body).expect("write");
    let v = csv_value("all.csv", vec![(Some("skip_bad"), Value::Bool(true))]);
    let (data, notes) = both(&v, t.path());
    assert_eq!(rows(&data), 31, "30 good rows and the NaN one are kept");
    assert_eq!(data.extras.skipped, 6);
    let note = data.extras.notes.iter().find(|n| n.contains("all.csv")).expect("a note");
    assert!(note.contains("skipped 6 bad row(s) of 37") && note.contains("the first: line 4: field 1 is not UTF-8"));
    let warning = notes.iter().find(|d| d.severity == Severity::Warning).expect("the checker warns");
    assert_eq!(warning.code, Code::BadDataFile);
    assert!(warning.message.contains("skipped 6 bad row(s) of 37"), "{}", warning.message);
    // The one-hot categories and classes are those of the rows kept.
    assert_eq!(data.info.shape, vec![3]);
    assert_eq!(data.extras.class_names, vec!["a", "b"]);
}

#[test]
fn a_csv_whose_every_row_is_bad_is_refused_even_with_skip_bad() {
    let t = temp_dir();
    std::fs::write(t.path().join("worse.csv"), "x,c,y\n1,red\n2,blue\n3,red,NA\n").expect("write");
    let v = csv_value("worse.csv", vec![(Some("skip_bad"), Value::Bool(true))]);
    both_refuse(&v, t.path(), &["worse.csv", "every row is bad (3 skipped)", "line 2"]);
    let v = csv_value("worse.csv", vec![(Some("skip_bad"), Value::Int(1))]);
    both_refuse(&v, t.path(), &["`skip_bad` is true or false"]);
}

#[test]
fn a_category_column_of_few_numbers_and_words_stays_categories() {
    // Sizes `1`, `2`, `3`, `XL`: four categories, not a numeric column with a bad value.
    let t = temp_dir();
    let mut body = String::from("size,y\n");
    for i in 0..40 {
        body.push_str(&format!("{},{}\n", ["1", "2", "3", "XL"][i % 4], ["a", "b"][i % 2]));
    }
    std::fs::write(t.path().join("sizes.csv"), body).expect("write");
    let (data, _) = both(&csv_value("sizes.csv", vec![]), t.path());
    assert_eq!(data.info.shape, vec![4]);
}

fn reviews(n: usize) -> Vec<String> {
    let mut lines = vec!["review,label".to_string()];
    lines.extend((0..n).map(|i| format!("\"{} film {i}\",{}", ["good", "bad"][i % 2], ["pos", "neg"][i % 2])));
    lines
}

fn text_value(path: &str, more: Vec<(Option<&str>, Value)>) -> Value {
    let mut args = vec![(None, s(path)), (Some("text"), s("review")), (Some("target"), s("label"))];
    args.extend(more);
    call("text", args)
}

#[test]
fn each_bad_text_row_is_named_with_its_line_and_skip_bad_leaves_them_all_out() {
    let t = temp_dir();
    let cases: [(&[u8], &str); 4] = [
        (b"\"caf\xe9 film\",pos", "not UTF-8"),
        (b"\"fine film\",pos,extra", "3 fields where the header has 2"),
        (b"\"  \",neg", "the text `review` is empty"),
        (b"\"odd film\",", "the target `label` is missing"),
    ];
    let mut all = reviews(20).join("\n").into_bytes();
    all.push(b'\n');
    for (i, (bad, why)) in cases.iter().enumerate() {
        let mut body = reviews(20).join("\n").into_bytes();
        body.push(b'\n');
        let at = body.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(2).map(|(k, _)| k + 1).expect("line 4");
        body.splice(at..at, bad.iter().copied().chain(*b"\n"));
        let name = format!("bad{i}.csv");
        std::fs::write(t.path().join(&name), &body).expect("write");
        assert_eq!(both_refuse(&text_value(&name, vec![]), t.path(), &[&name, ":4: ", why]), Code::BadDataFile);
        all.extend_from_slice(bad);
        all.push(b'\n');
    }
    std::fs::write(t.path().join("all.csv"), &all).expect("write");
    let v = text_value("all.csv", vec![(Some("skip_bad"), Value::Bool(true))]);
    let (data, notes) = both(&v, t.path());
    assert_eq!((rows(&data), data.extras.skipped), (20, 4));
    assert!(data.extras.notes.iter().any(|n| n.contains("skipped 4 bad row(s) of 24") && n.contains("line 22")));
    assert!(notes.iter().any(|d| d.severity == Severity::Warning && d.message.contains("skipped 4 bad row(s)")));

    // JSON lines: not UTF-8, not JSON, not an object, a field missing.
    let mut jl = Vec::new();
    for i in 0..12 {
        jl.extend_from_slice(format!("{{\"review\": \"film {i}\", \"label\": {}}}\n", i % 2).as_bytes());
    }
    jl.extend_from_slice(b"{\"review\": \"caf\xe9\", \"label\": 1}\nnot json\n[1]\n{\"label\": 0}\n");
    std::fs::write(t.path().join("bad.jsonl"), &jl).expect("write");
    both_refuse(&text_value("bad.jsonl", vec![]), t.path(), &["bad.jsonl", ":13: ", "not UTF-8"]);
    let (data, notes) = both(&text_value("bad.jsonl", vec![(Some("skip_bad"), Value::Bool(true))]), t.path());
    assert_eq!((rows(&data), data.extras.skipped), (12, 4));
    assert!(notes.iter().any(|d| d.message.contains("skipped 4 bad row(s) of 16")), "{notes:?}");
}

#[test]
fn a_test_label_the_training_classes_lack_is_refused_for_csv_and_images() {
    let t = temp_dir();
    // CSV: the same number of classes, but `c` instead of `b`.
    std::fs::write(t.path().join("train.csv"), table(20).join("\n")).expect("write");
    let other: Vec<String> = table(10).iter().map(|l| l.replace(",b", ",c")).collect();
    std::fs::write(t.path().join("test.csv"), other.join("\n")).expect("write");
    let v = csv_value("train.csv", vec![(Some("test"), csv_value("test.csv", vec![]))]);
    let code = both_refuse(
        &v,
        t.path(),
        &["the `test:` source's classes are not the training source's", "`c` is a class of csv(", "test.csv)"],
    );
    assert_eq!(code, Code::InvalidValue);
    // The same labels load; class `b` is class 1 in both.
    std::fs::write(t.path().join("test.csv"), table(10).join("\n")).expect("write");
    let (data, _) = both(&v, t.path());
    assert_eq!(data.test.y, (0..10).map(|i| (i % 2) as f32).collect::<Vec<_>>());

    // Images: class folders `cats`, `dogs` against `cats`, `owls`.
    let png = |path: &Path| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        image::RgbImage::from_fn(2, 2, |_, _| image::Rgb([9, 9, 9])).save(path).expect("encode");
    };
    for (dir, classes) in [("train", ["cats", "dogs"]), ("test", ["cats", "owls"])] {
        for c in classes {
            for i in 0..3 {
                png(&t.path().join(format!("{dir}/{c}/{i}.png")));
            }
        }
    }
    let images = |dir: &str| call("images", vec![(None, s(dir)), (Some("size"), Value::List(vec![Value::Int(2); 2]))]);
    let v = call(
        "images",
        vec![(None, s("train")), (Some("size"), Value::List(vec![Value::Int(2); 2])), (Some("test"), images("test"))],
    );
    let code = both_refuse(
        &v,
        t.path(),
        &["the `test:` source's classes are not the training source's", "`owls` is a class of images(", "test)"],
    );
    assert_eq!(code, Code::InvalidValue);
}

#[test]
fn bma_run_says_how_many_bad_csv_rows_it_skipped() {
    let t = temp_dir();
    let mut lines = table(40);
    lines.insert(3, "oops,red".into());
    lines.insert(9, "9.5,blue,".into());
    std::fs::write(t.path().join("d.csv"), lines.join("\n")).expect("write");
    let spec = write(
        t.path(),
        "t.bma",
        "experiment t {\n  data = csv(\"d.csv\", target: \"y\", skip_bad: true, seed: 1)\n  \
         model { dense(4) relu dense(data.classes) }\n  objective { maximize accuracy }\n  \
         search { trials = 1 }\n  train { epochs = 1 }\n}\n",
    );
    let check = bma().arg("check").arg(&spec).output().expect("bma check");
    let said = stderr(&check);
    assert!(check.status.success(), "{said}");
    assert!(said.contains("skipped 2 bad row(s) of 42") && said.contains("line 4"), "{said}");
    let out = t.path().join("out");
    let run = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).output().expect("run");
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(said.contains("skipped 2 bad row(s) of 42"), "{said}");
}

/// A 16-bit mono WAV of `n` samples of a tone at 8 kHz.
fn wav(path: &Path, freq: f64, n: usize) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).expect("create");
    for i in 0..n {
        let v = 0.5 * (std::f64::consts::TAU * freq * i as f64 / 8000.0).sin();
        w.write_sample((v * 32767.0) as i16).expect("sample");
    }
    w.finalize().expect("finalize");
}

#[test]
fn a_test_clip_class_the_training_folders_lack_is_refused_by_checker_and_loader() {
    let t = temp_dir();
    for (dir, classes) in [("train", ["high", "low"]), ("test", ["high", "mid"])] {
        for (c, freq) in classes.iter().zip([2000.0, 300.0]) {
            for i in 0..3 {
                wav(&t.path().join(format!("{dir}/{c}/{i}.wav")), freq, 2000);
            }
        }
    }
    let audio = |dir: &str, more: Vec<(Option<&str>, Value)>| {
        let mut args =
            vec![(None, s(dir)), (Some("seconds"), Value::Float(0.25)), (Some("features"), Value::sym("waveform"))];
        args.extend(more);
        call("audio", args)
    };
    let v = audio("train", vec![(Some("test"), audio("test", vec![]))]);
    let code = both_refuse(
        &v,
        t.path(),
        &["the `test:` source's classes are not the training source's", "`mid` is a class of audio("],
    );
    assert_eq!(code, Code::InvalidValue);
    std::fs::rename(t.path().join("test/mid"), t.path().join("test/low")).expect("rename");
    let (data, _) = both(&v, t.path());
    assert_eq!(data.test.n, 6);
}

/// A version-1 `.npy` file of `descr` values with `shape`, written at `path`.
fn npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    std::fs::write(path, npy_bytes(1, descr, false, shape, data)).expect("write");
}

#[test]
fn a_test_label_the_training_npy_labels_lack_is_refused_by_checker_and_loader() {
    let t = temp_dir();
    let xs: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
    npy(&t.path().join("x.npy"), "<f4", &[6, 2], &xs);
    npy(
        &t.path().join("y.npy"),
        "<i8",
        &[6],
        &[0i64, 1, 0, 1, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
    );
    npy(&t.path().join("tx.npy"), "<f4", &[2, 2], &xs[..16]);
    npy(&t.path().join("ty.npy"), "<i8", &[2], &[0i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
    let arrays = |x: &str, y: &str| call("npy", vec![(Some("x"), s(x)), (Some("y"), s(y))]);
    let v =
        call("npy", vec![(Some("x"), s("x.npy")), (Some("y"), s("y.npy")), (Some("test"), arrays("tx.npy", "ty.npy"))]);
    both_refuse(
        &v,
        t.path(),
        &["the `test:` source has 3 classes, the training source 2: the training source has no class 2"],
    );
}

#[test]
fn bma_run_trains_on_text_and_scores_its_own_test_file() {
    let t = temp_dir();
    let mut train = String::from("review,label\n");
    let mut test = String::from("review,label\n");
    for i in 0..40 {
        let (words, label) = if i % 2 == 0 { ("good fine great", "pos") } else { ("bad dull awful", "neg") };
        train.push_str(&format!("\"{words} film {i}\",{label}\n"));
        if i < 10 {
            test.push_str(&format!("\"{words} show {i}\",{label}\n"));
        }
    }
    std::fs::write(t.path().join("train.csv"), train).expect("write");
    std::fs::write(t.path().join("test.csv"), test).expect("write");
    let spec = write(
        t.path(),
        "t.bma",
        "experiment t {\n  data = text(\"train.csv\", text: \"review\", target: \"label\", max_len: 8,\n    \
         test: text(\"test.csv\", text: \"review\", target: \"label\"), split: [0.8, 0.2], seed: 1)\n  \
         model { embedding(data.vocab, 16) global_avgpool dense(data.classes) }\n  objective { maximize accuracy }\n  \
         search { trials = 1 }\n  train { epochs = 20  optimizer = adam(0.05) }\n}\n",
    );
    let check = bma().arg("check").arg(&spec).output().expect("bma check");
    assert!(check.status.success(), "{}", stderr(&check));
    let out = t.path().join("out");
    let run = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).output().expect("run");
    assert!(run.status.success(), "{}", stderr(&run));
    // The test file's words are all in train (only `show` is not): every review is told apart.
    let r = common::results(&out);
    let acc = r["best"]["test"]["accuracy"].as_f64().unwrap_or_else(|| panic!("{r}"));
    assert!(acc >= 0.9, "test accuracy {acc} on the test file's 10 reviews: {r}");
}
