//! Searched data settings end to end (`data = text(..., vocab: vocab, max_len: len)`), on
//! files this test writes: a text study searching `vocab` and `max_len` trains every
//! setting, each trial's saved model records its own settings, and they all hold out the
//! same test rows; the final ensemble takes members of every setting; a second run
//! resumes the study. An audio study searches
//! `bins`. The checker checks the model with each setting's shape and names the setting a
//! failure happens for, refuses a searched target, and reads headers only. Augmentation
//! settings taken from the space reach each trial.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bma::source::Source;
use common::{bma, results, stderr, temp_dir, write};

/// `n` short reviews: row `i` is `pos` when `i` is odd, with a length from 1 to 7 words
/// that differs between neighbouring rows, so that the padding of a row tells it apart.
fn reviews(dir: &Path, n: usize) -> PathBuf {
    let filler = ["the", "movie", "was", "a", "plot", "and"];
    let mut text = String::from("text,label\n");
    for i in 0..n {
        let (word, label) = if i % 2 == 1 { ("good", "pos") } else { ("bad", "neg") };
        let mut words = vec![word];
        words.extend(filler.iter().take((i * 5) % 7));
        text.push_str(&format!("{},{label}\n", words.join(" ")));
    }
    write(dir, "reviews.csv", &text)
}

const TEXT_STUDY: &str = "experiment reviews {
  data = text(\"reviews.csv\", text: \"text\", target: \"label\", tokenizer: word, vocab: vocab, max_len: len,
              split: [0.5, 0.25, 0.25], seed: 3)
  space { vocab: int in {8, 40}  len: int in {8, 16} }
  model { embedding(data.vocab, 8) global_avgpool dense(data.classes) }
  train { optimizer = adam(0.05)  epochs = 3  batch = 8 }
  objective { maximize accuracy }
  search { strategy = grid  trials = 4  seed = 1 }
  average { ensemble(top: 4) }
}
";

fn run(file: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    bma().arg("run").arg(file).arg("--out").arg(out).args(["--progress", "none"]).args(extra).output().unwrap()
}

/// The saved config of every trial folder under `out/trials`.
fn saved(out: &Path) -> Vec<bma::train::SavedConfig> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(out.join("trials")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs.iter().map(|d| bma::train::load_config(d).unwrap()).collect()
}

/// Per test row: its class and how many of its ids are not padding.
fn test_rows(config: &bma::train::SavedConfig) -> Vec<(u32, usize)> {
    let data = bma::data::load_with(&config.data, &config.base, config.tokenizer.as_ref()).unwrap();
    let width = data.info.features();
    (0..data.test.n)
        .map(|i| (data.test.y[i] as u32, data.test.row(i, width).iter().filter(|id| **id != 0.0).count()))
        .collect()
}

#[test]
fn a_text_study_searching_vocab_and_max_len_trains_each_setting_on_the_same_rows() {
    let dir = temp_dir();
    reviews(dir.path(), 80);
    let file = write(dir.path(), "reviews.bma", TEXT_STUDY);
    let check = bma().arg("check").arg(&file).output().unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let out = dir.path().join("out");
    let o = run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let configs = saved(&out);
    assert_eq!(configs.len(), 4, "every trial completes and is saved");
    let settings: BTreeSet<String> = configs.iter().map(|c| c.data.to_string()).collect();
    assert_eq!(settings.len(), 4, "each trial records its own data settings: {settings:?}");
    for c in &configs {
        let (vocab, len) = (c.point["vocab"].to_string(), c.point["len"].to_string());
        let data = c.data.to_string();
        assert!(data.contains(&format!("vocab: {vocab}")) && data.contains(&format!("max_len: {len}")), "{data}");
        let tokenizer = c.tokenizer.as_ref().expect("a text model keeps its tokenizer");
        assert_eq!(tokenizer.vocab.to_string(), vocab, "the tokenizer keeps its own vocab");
        assert_eq!(tokenizer.max_len.to_string(), len, "and its own length");
        assert!(tokenizer.tokens.len() + 2 <= tokenizer.vocab);
    }
    // The same test rows, in the same order, whatever the settings: their classes and the
    // number of ids before the padding (every review is shorter than both lengths).
    let rows = test_rows(&configs[0]);
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().map(|r| r.1).collect::<BTreeSet<_>>().len() > 3, "rows tell apart: {rows:?}");
    for c in &configs[1..] {
        assert_eq!(test_rows(c), rows, "{} holds out other rows", c.data);
    }

    // The ensemble takes the top 4 whatever their settings: one member per setting, each
    // saved with its own (tests/mixed_ensemble.rs checks the blend itself).
    let r = results(&out);
    let excluded = r["final"]["excluded"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert!(excluded.is_empty(), "{r}");
    let members = r["final"]["members"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(members.len(), 4, "{r}");
    let member_settings: BTreeSet<String> = (0..4)
        .map(|i| bma::train::load_config(&out.join(format!("final/member_{i}"))).unwrap().data.to_string())
        .collect();
    assert_eq!(member_settings, settings);
    assert!(r["final"]["final_test"]["accuracy"].as_f64().is_some(), "{r}");

    // The same study again: resumed, not refused, and nothing is trained twice.
    let again = run(&file, &out, &["--resume"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(saved(&out).len(), 4);
}

/// `bma check` on `spec` written in `dir`: its success and what it printed.
fn check(dir: &Path, spec: &str) -> (bool, String) {
    let file = write(dir, "t.bma", spec);
    let o = bma().arg("check").arg(&file).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o)))
}

#[test]
fn the_checker_checks_the_model_with_each_data_setting_and_names_the_one_that_fails() {
    let dir = temp_dir();
    reviews(dir.path(), 40);
    let model = "embedding(data.vocab, 4) reshape(32) dense(data.classes)";
    let spec = |lens: &str| {
        format!(
            "experiment e {{\n  data = text(\"reviews.csv\", text: \"text\", target: \"label\", max_len: len)\n  \
             space {{ len: int in {{{lens}}} }}\n  model {{ {model} }}\n  objective {{ maximize accuracy }}\n}}\n"
        )
    };
    // 8 ids of 4 values fit `reshape(32)`; 16 do not.
    let (ok, text) = check(dir.path(), &spec("8"));
    assert!(ok, "{text}");
    let (ok, text) = check(dir.path(), &spec("8, 16"));
    assert!(!ok, "{text}");
    assert!(text.contains("with len = 16: "), "the message names the data setting: {text}");
    assert!(!text.contains("with len = 8"), "{text}");
    assert!(text.contains("`max_len` with len = 16"), "a label points at the data argument: {text}");
    // A failure for every setting is reported once, as for unsearched data.
    let (ok, text) = check(dir.path(), &spec("16, 24").replace("reshape(32)", "reshape(31)"));
    assert!(!ok && text.matches("reshape").count() >= 1 && !text.contains("with len ="), "{text}");

    // The API: one DataInfo per setting, the first in the experiment's info.
    let file = write(dir.path(), "t.bma", &spec("8, 16").replace("reshape(32)", "global_avgpool"));
    let c = bma::compile(&Source::from_path(&file, std::fs::read_to_string(&file).unwrap()));
    assert!(c.diagnostics.iter().all(|d| !d.is_error()), "{:?}", c.diagnostics);
    assert_eq!(c.info[0].data.as_ref().map(|d| d.shape.clone()), Some(vec![8]));
    assert_eq!(c.info[0].space.checked, 2, "one structural point per data setting");
}

#[test]
fn a_searched_setting_that_changes_the_classes_or_is_read_outside_the_model_is_refused() {
    let dir = temp_dir();
    let mut csv = String::from("text,label,kind\n");
    for i in 0..30 {
        csv.push_str(&format!("w{} x,{},{}\n", i % 5, i % 2, i % 3));
    }
    write(dir.path(), "r.csv", &csv);
    let (ok, text) = check(
        dir.path(),
        "experiment e {\n  data = text(\"r.csv\", text: \"text\", target: t)\n  space { t: in {\"label\", \"kind\"} }\n  \
         model { embedding(data.vocab, 4) global_avgpool dense(data.classes) }\n  objective { maximize accuracy }\n}\n",
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("the data's classes depend on the searched settings: 2 at t = \"label\", 3 at t = \"kind\""),
        "{text}"
    );
    let (ok, text) = check(
        dir.path(),
        "experiment e {\n  data = text(\"r.csv\", text: \"text\", target: \"label\", max_len: len)\n  \
         space { len: int in {4, 8}  let w = data.features * 2 }\n  \
         model { embedding(data.vocab, w) global_avgpool dense(data.classes) }\n  objective { maximize accuracy }\n}\n",
    );
    assert!(!ok && text.contains("`data.features` depends on the searched data settings"), "{text}");
    let (ok, text) = check(
        dir.path(),
        "experiment e {\n  data = text(\"r.csv\", text: \"text\", target: \"label\", max_len: len)\n  \
         space { len: float in 4.0..8.0 }\n  \
         model { embedding(data.vocab, 4) global_avgpool dense(data.classes) }\n  objective { maximize accuracy }\n}\n",
    );
    assert!(!ok && text.contains("the data cannot read `len`"), "{text}");
}

#[test]
fn augmentation_settings_from_the_space_reach_each_trial() {
    let dir = temp_dir();
    let file = write(
        dir.path(),
        "aug.bma",
        "experiment e {
  data = iris(split: [0.6, 0.2, 0.2], seed: 1)
  space { s: in {0.01, 0.5} }
  model { dense(8) relu dense(data.classes) }
  train { epochs = 2  augment = [noise(std: s)] }
  objective { maximize accuracy }
  search { strategy = grid  trials = 2  seed = 1 }
}
",
    );
    let out = dir.path().join("out");
    let o = run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let configs = saved(&out);
    assert_eq!(configs.len(), 2);
    for c in &configs {
        let s = c.point["s"].as_f64().unwrap();
        assert_eq!(format!("{:?}", c.train.augment), format!("{:?}", [bma::train::augment::Op::Noise { std: s }]));
    }
}

/// A 32-bit float mono clip of `n` samples at 8 kHz: a tone of `freq` Hz, with `nan` at
/// sample 10 (a clip the loader refuses and a header the checker accepts) when asked.
fn clip(path: &Path, freq: f64, n: usize, nan: bool) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..n {
        let v = 0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin() + 0.01 * ((i * 7919) % 13) as f64;
        w.write_sample(if nan && i == 10 { f32::NAN } else { v as f32 }).unwrap();
    }
    w.finalize().unwrap();
}

fn tones(dir: &Path, per: usize) {
    for (class, freq) in [("low", 300.0), ("high", 2000.0)] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..per {
            clip(&dir.join(class).join(format!("{i:02}.wav")), freq * (1.0 + 0.02 * i as f64), 2000 + 100 * i, false);
        }
    }
}

const AUDIO_STUDY: &str = "experiment tones {
  data = audio(\"clips\", rate: 8000, seconds: 0.25, features: mel(bins: bins, win_ms: 32, hop_ms: 32),
               split: [0.5, 0.25, 0.25], seed: 1)
  space { bins: int in {8, 16} }
  model { flatten dense(8) relu dense(data.classes) }
  train { optimizer = adam(0.01)  epochs = 15  batch = 4 }
  objective { maximize accuracy }
  search { strategy = grid  trials = 2  seed = 1 }
}
";

#[test]
fn an_audio_study_searching_bins_trains_both_on_the_same_clips_and_check_reads_headers_only() {
    let dir = temp_dir();
    tones(&dir.path().join("clips"), 12);
    // A clip with a NaN sample: only decoding finds it, and `bma check` does not decode.
    clip(&dir.path().join("clips/low/nan.wav"), 300.0, 2000, true);
    let (ok, text) = check(dir.path(), AUDIO_STUDY);
    assert!(ok, "the checker reads headers only: {text}");
    let file = write(dir.path(), "tones.bma", AUDIO_STUDY);
    let out = dir.path().join("bad");
    let o = run(&file, &out, &[]);
    assert!(!o.status.success() && stderr(&o).contains("nan.wav"), "the loader decodes it: {}", stderr(&o));

    std::fs::remove_file(dir.path().join("clips/low/nan.wav")).unwrap();
    let out = dir.path().join("out");
    let o = run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let configs = saved(&out);
    assert_eq!(configs.len(), 2);
    let shapes: Vec<Vec<usize>> =
        configs.iter().map(|c| bma::data::load_with(&c.data, &c.base, None).unwrap().info.shape).collect();
    assert_eq!(shapes.iter().map(|s| s[1]).collect::<BTreeSet<_>>(), BTreeSet::from([8, 16]), "{shapes:?}");
    let ys: Vec<Vec<f32>> =
        configs.iter().map(|c| bma::data::load_with(&c.data, &c.base, None).unwrap().test.y).collect();
    assert_eq!(ys[0], ys[1], "the same test clips in the same order");
    let r = results(&out);
    let acc = r["final"]["final_test"]["accuracy"].as_f64().unwrap_or_else(|| panic!("{r}"));
    assert!(acc >= 0.99, "test accuracy {acc}: {r}");
}

#[test]
fn trials_with_the_same_data_setting_share_one_load_and_the_cache_stays_bounded() {
    use bma::ir::{Point, Value};
    use std::sync::Arc;
    let dir = temp_dir();
    reviews(dir.path(), 40);
    let file = write(dir.path(), "reviews.bma", TEXT_STUDY);
    let c = bma::compile(&Source::from_path(&file, std::fs::read_to_string(&file).unwrap()));
    let exp = &c.program.experiments[0];
    let trials = bma::train::Trials::new(&c.program, exp, dir.path(), bma::train::DeviceKind::Cpu).unwrap();
    let at = |vocab: i64, len: i64| Point::from([("vocab".into(), Value::Int(vocab)), ("len".into(), Value::Int(len))]);
    // The first setting (each parameter's first value) is loaded by `new` and kept.
    let first = trials.data_at(&at(8, 8)).unwrap();
    assert!(Arc::ptr_eq(&first, &trials.data));
    let a = trials.data_at(&at(40, 16)).unwrap();
    assert_eq!((a.info.shape.clone(), a.info.vocab), (vec![16], Some(40)));
    assert!(Arc::ptr_eq(&a, &trials.data_at(&at(40, 16)).unwrap()), "one load per setting");
    // Two other settings push it out of the cache (KEPT = 2): it loads again, alike.
    assert_eq!(bma::train::KEPT, 2);
    trials.data_at(&at(8, 16)).unwrap();
    trials.data_at(&at(40, 8)).unwrap();
    let again = trials.data_at(&at(40, 16)).unwrap();
    assert!(!Arc::ptr_eq(&a, &again));
    assert_eq!((again.value.clone(), again.test.y.clone()), (a.value.clone(), a.test.y.clone()));
    assert!(Arc::ptr_eq(&first, &trials.data_at(&at(8, 8)).unwrap()), "the first setting is never evicted");
}
