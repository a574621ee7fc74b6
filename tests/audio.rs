//! `audio(dir, ...)` end to end, on clip folders this test writes with hound: the checker's
//! DataInfo equals the loader's for every kind of features (frame counts at their
//! boundaries included); each bad clip is named by `bma check` and `bma run`, and
//! `skip_bad: true` skips and counts them; a tiny study trains on two tones and tells them
//! apart.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use bma::ir::{self, DataInfo, Point, Value};
use bma::source::Source;
use common::{bma, results, stderr, temp_dir, tone, write};

/// `dir/low/*.wav` (300 Hz tones) and `dir/high/*.wav` (2 kHz), `per` of each, at 8 kHz
/// and of lengths around 0.4 s.
fn two_tones(dir: &Path, per: usize) {
    for (class, freq) in [("low", 300.0), ("high", 2000.0)] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..per {
            let f = freq * (1.0 + 0.02 * i as f64);
            tone(&dir.join(class).join(format!("{i:02}.wav")), 8000, f, 3000 + 100 * i, i as u64);
        }
    }
}

/// An experiment on `data`.
fn spec(data: &str) -> String {
    format!(
        "experiment t {{\n  data = {data}\n  model {{ flatten dense(4) relu dense(data.classes) }}\n  \
         objective {{ maximize accuracy }}\n  search {{ trials = 1 }}\n  train {{ epochs = 1 }}\n}}\n"
    )
}

/// The checker's DataInfo of `data` (a spec written in `dir`), and its diagnostics.
fn checked(dir: &Path, data: &str) -> (Option<DataInfo>, Vec<String>) {
    let path = write(dir, "t.bma", &spec(data));
    let c = bma::compile(&Source::from_path(&path, std::fs::read_to_string(&path).unwrap()));
    let diags = c.diagnostics.iter().map(|d| d.message.clone()).collect();
    (c.info.first().and_then(|i| i.data.clone()), diags)
}

/// The data value of `data`, evaluated as `bma run` evaluates it.
fn value(data: &str) -> Value {
    let c = bma::compile(&Source::new("v.bma", spec(data)));
    let setting = c.program.experiments[0].data.clone().unwrap();
    let env = ir::PointEnv { point: &Point::new(), fns: &c.program.fns, data: None };
    ir::eval(&setting.value, &env).unwrap()
}

#[test]
fn the_checker_predicts_the_loaders_data_info_for_every_kind_of_features() {
    let dir = temp_dir();
    two_tones(&dir.path().join("clips"), 3);
    let base = bma::data::absolute(dir.path());
    // 0.75 s with 512-sample windows every 256: 1 + (12000 - 512) / 256 = 45 (44.9 rounds down).
    // At 16 kHz, a 25 ms window is 400 samples and a 10 ms hop 160: 0.055 s (880 samples)
    // holds exactly 4 frames, 0.0549375 s (879) 3, and 0.025 s (400) exactly 1.
    for (features, seconds, shape) in [
        ("waveform", "1.0", vec![1, 1, 16_000]),
        ("mel", "1.0", vec![1, 40, 98]),
        ("mel(bins: 32, win_ms: 25, hop_ms: 10)", "0.055", vec![1, 32, 4]),
        ("mel(bins: 32, win_ms: 25, hop_ms: 10)", "0.0549375", vec![1, 32, 3]),
        ("mel(bins: 64, win_ms: 25, hop_ms: 10)", "0.025", vec![1, 64, 1]),
        ("mfcc(n: 13)", "0.5", vec![1, 13, 48]),
        ("mfcc(n: 20, bins: 32, win_ms: 32, hop_ms: 16)", "0.75", vec![1, 20, 45]),
    ] {
        let data = format!("audio(\"clips\", rate: 16000, seconds: {seconds}, features: {features})");
        let (info, diags) = checked(dir.path(), &data);
        assert!(diags.is_empty(), "{data}: {diags:?}");
        let info = info.unwrap();
        assert_eq!(info.shape, shape, "{data}");
        let (raw, skipped) = bma::data::load_audio(&value(&data), &base).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(raw.info, info, "{data}: the loader disagrees with the checker");
        assert_eq!(raw.len(), 6);
        assert_eq!(raw.x.len(), 6 * shape.iter().product::<usize>());
        assert!(raw.x.iter().all(|v| v.is_finite()), "{data}");
        // Classes are the sorted folder names: high (0), then low (1).
        assert_eq!(raw.y, vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    }
    // A window longer than the clip is refused by both.
    let data = "audio(\"clips\", seconds: 0.02, features: mel(win_ms: 25))";
    let (info, diags) = checked(dir.path(), data);
    assert!(info.is_none() && diags.iter().any(|d| d.contains("longer than the clip")), "{diags:?}");
    assert!(bma::data::load_audio(&value(data), &base).unwrap_err().to_string().contains("longer than the clip"));
}

#[test]
fn the_log_mel_of_a_tone_peaks_in_the_bin_of_its_frequency() {
    let dir = temp_dir();
    two_tones(&dir.path().join("clips"), 1);
    let base = bma::data::absolute(dir.path());
    let data = "audio(\"clips\", rate: 8000, seconds: 0.3, features: mel(bins: 20))";
    let (raw, _) = bma::data::load_audio(&value(data), &base).unwrap();
    let frames = raw.info.shape[2];
    // The bin whose centre is nearest each tone, on the HTK mel scale from 0 to 4 kHz.
    let top = bma::data::hz_to_mel(4000.0);
    for (sample, freq) in [(0, 2000.0), (1, 300.0)] {
        let x = &raw.x[sample * 20 * frames..(sample + 1) * 20 * frames];
        let mean = |m: usize| x[m * frames..(m + 1) * frames].iter().sum::<f32>() / frames as f32;
        let loudest = (0..20).max_by(|a, b| mean(*a).total_cmp(&mean(*b))).unwrap();
        let want = (0..20)
            .min_by(|a, b| {
                let d = |m: usize| (bma::data::mel_to_hz(top * (m + 1) as f64 / 21.0) - freq).abs();
                d(*a).total_cmp(&d(*b))
            })
            .unwrap();
        assert_eq!(loudest, want, "{freq} Hz");
    }
}

/// Writes the two-tone folder under `dir/clips` and `extra` (name, bytes) in it; gives the
/// paths of the extras.
fn with_extras(dir: &Path, extra: &[(&str, Vec<u8>)]) -> Vec<PathBuf> {
    two_tones(&dir.join("clips"), 3);
    extra
        .iter()
        .map(|(name, bytes)| {
            let p = dir.join("clips").join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect()
}

/// A valid clip's bytes, with its body cut to `keep` bytes past the header (44 bytes).
fn cut_clip(dir: &Path, keep: usize) -> Vec<u8> {
    let p = dir.join("whole.wav");
    tone(&p, 8000, 440.0, 1000, 9);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    bytes[..44 + keep].to_vec()
}

/// A WAV header announcing no samples.
fn empty_clip(dir: &Path) -> Vec<u8> {
    let p = dir.join("empty.wav");
    tone(&p, 8000, 440.0, 0, 1);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    bytes
}

#[test]
fn each_bad_clip_is_named_by_check_and_run_and_skip_bad_counts_them() {
    // The terminal shows `short` (long lines wrap there); the checker's message holds `why`.
    type Bytes = Box<dyn Fn(&Path) -> Vec<u8>>;
    let cases: Vec<(&str, Bytes, &str, &str)> = vec![
        ("low/notes.txt", Box::new(|_| b"not audio".to_vec()), "not a WAV file", "not a WAV file (no RIFF tag found)"),
        (
            "low/cut.wav",
            Box::new(|d| cut_clip(d, 100)),
            "cut short",
            "cut short: the header announces 2000 bytes of samples, the file holds 100",
        ),
        ("high/empty.wav", Box::new(empty_clip), "no samples", "no samples: the clip is empty"),
        (
            "high/half.wav",
            Box::new(|d| cut_clip(d, 0)[..30].to_vec()),
            "header is cut short",
            "not a WAV file, or its header is cut short",
        ),
    ];
    for (name, bytes, short, why) in cases {
        let dir = temp_dir();
        let bytes = bytes(dir.path());
        let paths = with_extras(dir.path(), &[(name, bytes)]);
        let shown = paths[0].file_name().unwrap().to_string_lossy().into_owned();
        // `bma check` and `bma run` refuse it, naming the file and the reason.
        let file = write(dir.path(), "t.bma", &spec("audio(\"clips\", rate: 8000, seconds: 0.3)"));
        let out = dir.path().join("out");
        let check = bma().arg("check").arg(&file).output().unwrap();
        let run = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
        for (what, o) in [("check", &check), ("run", &run)] {
            let err = stderr(o);
            assert_eq!(o.status.code(), Some(1), "{what} {name}: {err}");
            assert!(err.contains(&shown) && err.contains(short), "{what} {name}: `{short}` not in\n{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
        assert!(!out.exists());
        // With skip_bad, the checker warns with the count and the loader leaves it out.
        let data = "audio(\"clips\", rate: 8000, seconds: 0.3, skip_bad: true)";
        let (info, diags) = checked(dir.path(), data);
        assert!(info.is_some(), "{name}: {diags:?}");
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].starts_with("1 of 7 clips are skipped") && diags[0].contains(why), "{diags:?}");
        let (raw, skipped) = bma::data::load_audio(&value(data), &bma::data::absolute(dir.path())).unwrap();
        assert_eq!(raw.len(), 6);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].0.ends_with(name) && skipped[0].1.contains(why), "{skipped:?}");
    }
}

#[test]
fn folders_that_cannot_be_used_are_named() {
    let dir = temp_dir();
    let check = |data: &str| checked(dir.path(), data).1.join("\n");
    let load =
        |data: &str| bma::data::load_audio(&value(data), &bma::data::absolute(dir.path())).unwrap_err().to_string();
    assert!(check("audio(\"nowhere\")").contains("nowhere: does not exist"), "{}", check("audio(\"nowhere\")"));
    two_tones(&dir.path().join("clips"), 2);
    std::fs::create_dir_all(dir.path().join("clips/empty")).unwrap();
    for said in [check("audio(\"clips\")"), load("audio(\"clips\")")] {
        assert!(said.contains("empty") && said.contains("class folder `empty` holds no clips"), "{said}");
    }
    std::fs::remove_dir(dir.path().join("clips/empty")).unwrap();
    std::fs::create_dir_all(dir.path().join("clips/low/nested")).unwrap();
    for said in [check("audio(\"clips\")"), load("audio(\"clips\")")] {
        assert!(said.contains("nested") && said.contains("a folder inside a class folder"), "{said}");
    }
    std::fs::remove_dir(dir.path().join("clips/low/nested")).unwrap();
    std::fs::remove_dir_all(dir.path().join("clips/high")).unwrap();
    for said in [check("audio(\"clips\")"), load("audio(\"clips\")")] {
        assert!(said.contains("1 class folder: an audio folder holds one folder of clips per class"), "{said}");
    }
    // Hidden files are not clips.
    two_tones(&dir.path().join("clips"), 2);
    std::fs::write(dir.path().join("clips/low/.DS_Store"), b"x").unwrap();
    assert_eq!(check("audio(\"clips\")"), "");
    // Every clip of a class skipped leaves the class empty: an error even with skip_bad.
    std::fs::remove_dir_all(dir.path().join("clips/high")).unwrap();
    std::fs::create_dir_all(dir.path().join("clips/high")).unwrap();
    std::fs::write(dir.path().join("clips/high/a.wav"), b"RIFF").unwrap();
    let data = "audio(\"clips\", skip_bad: true)";
    for said in [check(data), load(data)] {
        assert!(said.contains("class `high` has no usable clip"), "{said}");
    }
}

#[test]
fn a_tiny_study_tells_two_tones_apart() {
    let dir = temp_dir();
    two_tones(&dir.path().join("clips"), 12);
    let file = write(
        dir.path(),
        "tones.bma",
        "experiment tones {
  data = audio(\"clips\", rate: 8000, seconds: 0.25, features: mel(bins: 16, win_ms: 32, hop_ms: 32),
               split: [0.5, 0.25, 0.25], seed: 1)
  model { flatten dense(8) relu dense(data.classes) }
  train { optimizer = adam(0.01)  epochs = 15  batch = 4 }
  objective { maximize accuracy }
  search { strategy = random  trials = 1  seed = 1 }
}
",
    );
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let acc = r["final"]["final_test"]["accuracy"].as_f64().unwrap_or_else(|| panic!("{r}"));
    assert!(acc >= 0.99, "test accuracy {acc}: {r}");
}

#[test]
fn a_fixed_test_split_of_other_clips_is_checked_and_loaded_alike() {
    let dir = temp_dir();
    two_tones(&dir.path().join("train"), 6);
    two_tones(&dir.path().join("test"), 2);
    let base = bma::data::absolute(dir.path());
    let data = "audio(\"train\", rate: 8000, seconds: 0.25, features: mfcc(n: 8), \
                test: audio(\"test\", rate: 8000, seconds: 0.25, features: mfcc(n: 8)), split: [0.75, 0.25], seed: 2)";
    let (info, diags) = checked(dir.path(), data);
    assert!(diags.is_empty(), "{diags:?}");
    let loaded = bma::data::load(&value(data), &base).unwrap();
    assert_eq!(Some(loaded.info.clone()), info);
    assert_eq!(loaded.info.shape, vec![1, 8, 23]);
    // The test split is exactly the other folder's 4 clips; train and valid share the 12.
    assert_eq!(loaded.test.n, 4);
    assert_eq!(loaded.train.n + loaded.valid.n, 12);
    // Other features in the test source are refused by both, naming the shapes.
    let other = "audio(\"train\", rate: 8000, seconds: 0.25, features: mfcc(n: 8), \
                 test: audio(\"test\", rate: 8000, seconds: 0.25, features: mfcc(n: 9)))";
    let (info, diags) = checked(dir.path(), other);
    assert!(info.is_none() && diags.iter().any(|d| d.contains("[1, 9, 23]")), "{diags:?}");
    let e = bma::data::load(&value(other), &base).unwrap_err().to_string();
    assert!(e.contains("[1, 9, 23]") && e.contains("[1, 8, 23]"), "{e}");
}
