//! `conv1d`, `maxpool1d`, `avgpool1d`, `transpose` and `std::blocks::tcn_block` through the
//! checker (shapes, parameter and FLOP counts, a diagnostic for each bad argument or input,
//! over the whole space), and a 1-D CNN on log-mel features that `bma run` trains, soups,
//! saves and `bma eval` reloads.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::Path;

use bma::diagnostic::Code;
use bma::source::Source;
use common::{bma, results, stderr, temp_dir, write};

fn compile(data: &str, model: &str, space: &str) -> bma::Compiled {
    let src = format!(
        "experiment t {{\n  data = {data}\n  space {{ {space} }}\n  model {{ {model} }}\n  \
         objective {{ maximize accuracy }}\n}}\n"
    );
    bma::compile(&Source::new("t.bma", &src))
}

/// The nodes (name, shape, params, FLOPs) of a clean model on digits' `[1, 8, 8]`.
fn nodes(model: &str) -> Vec<(String, Vec<usize>, u64, u64)> {
    let c = compile("digits()", model, "");
    assert!(!c.has_errors(), "{model}: {:#?}", c.diagnostics);
    let exp = &c.program.experiments[0];
    let (sub, _) = bma::expand_with_pins(&c, exp, &BTreeMap::new()).unwrap();
    let all: Vec<_> = sub.layers().map(|l| (l.name.clone(), l.shape.clone(), l.params, l.flops)).collect();
    assert_eq!(sub.params, all.iter().map(|n| n.2).sum::<u64>());
    assert_eq!(sub.flops, all.iter().map(|n| n.3).sum::<u64>());
    all
}

fn node(all: &[(String, Vec<usize>, u64, u64)], name: &str) -> (Vec<usize>, u64, u64) {
    let n = all.iter().find(|n| n.0 == name).unwrap_or_else(|| panic!("no {name} in {all:?}"));
    (n.1.clone(), n.2, n.3)
}

#[test]
fn sequence_layers_have_exact_shapes_parameters_and_flops() {
    // digits [1, 8, 8] → transpose [8, 8] (8 positions of 8 channels).
    let all = nodes("transpose conv1d(16, kernel: 3) flatten dense(data.classes)");
    assert_eq!(node(&all, "transpose_1"), (vec![8, 8], 0, 0));
    // same: 8 positions; 3 · 8 · 16 + 16 parameters; 2 · 3 · 8 · 16 · 8 FLOPs.
    assert_eq!(node(&all, "conv1d_1"), (vec![8, 16], 3 * 8 * 16 + 16, 2 * 3 * 8 * 16 * 8));
    // valid, dilation 2: span 5, (8 − 5) / 1 + 1 = 4 positions.
    let all = nodes("transpose conv1d(6, kernel: 3, padding: valid, dilation: 2) flatten dense(data.classes)");
    assert_eq!(node(&all, "conv1d_1"), (vec![4, 6], 3 * 8 * 6 + 6, 2 * 3 * 8 * 6 * 4));
    // same with stride 3: ⌈8 / 3⌉ = 3; groups 4: 2 input channels per filter.
    let all = nodes("transpose conv1d(12, kernel: 4, stride: 3, groups: 4) flatten dense(data.classes)");
    assert_eq!(node(&all, "conv1d_1"), (vec![3, 12], 4 * 2 * 12 + 12, 2 * 4 * 2 * 12 * 3));
    // Depthwise: groups = channels = filters.
    let all = nodes("transpose conv1d(8, kernel: 5, groups: 8) flatten dense(data.classes)");
    assert_eq!(node(&all, "conv1d_1"), (vec![8, 8], 5 * 8 + 8, 2 * 5 * 8 * 8));
    // Pools: (8 − 3) / 2 + 1 = 3 windows of 3, one FLOP per window element.
    let all = nodes("transpose maxpool1d(3, stride: 2) avgpool1d(2, stride: 1) flatten dense(data.classes)");
    assert_eq!(node(&all, "maxpool1d_1"), (vec![3, 8], 0, 3 * 8 * 3));
    assert_eq!(node(&all, "avgpool1d_1"), (vec![2, 8], 0, 2 * 8 * 2));
    // A sequence's global pool gives [channels].
    let all = nodes("transpose conv1d(10, kernel: 3) global_maxpool dense(data.classes)");
    assert_eq!(node(&all, "global_maxpool_1"), (vec![10], 0, 80));
}

#[test]
fn tcn_block_is_built_from_primitives_with_a_projection_when_channels_change() {
    let model = "use std::blocks::tcn_block";
    let c = bma::compile(&Source::new(
        "t.bma",
        format!(
            "{model}\nexperiment t {{\n  data = digits()\n  model {{ transpose tcn_block(16, dilation: 2) \
             tcn_block(16, dilation: 4) global_avgpool dense(data.classes) }}\n  objective {{ maximize accuracy }}\n}}\n"
        ),
    ));
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    let (sub, _) = bma::expand_with_pins(&c, &c.program.experiments[0], &BTreeMap::new()).unwrap();
    let names: Vec<&str> = sub.layers().map(|l| l.name.as_str()).collect();
    // Two blocks of two conv1d, and one shortcut projection (8 → 16 channels) in the first.
    assert_eq!(names.iter().filter(|n| n.starts_with("conv1d")).count(), 5, "{names:?}");
    let projection = sub.layers().find(|l| l.inserted).expect("a projection");
    assert_eq!((projection.shape.clone(), projection.params), (vec![8, 16], 8 * 16 + 16));
    assert!(sub.layers().filter(|l| l.name.starts_with("layernorm")).count() == 4);
    // Same padding keeps the 8 positions through both blocks.
    assert!(sub.layers().filter(|l| l.name.starts_with("conv1d")).all(|l| l.shape == vec![8, 16]));
}

/// The first error of a model on `data`, as (code, message, primary label, help).
fn error(data: &str, model: &str, space: &str) -> (Code, String, String, String) {
    let c = compile(data, model, space);
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.severity == bma::diagnostic::Severity::Error)
        .unwrap_or_else(|| panic!("no error for {model}"));
    (d.code, d.message.clone(), d.primary.text.clone(), d.help.clone().unwrap_or_default())
}

#[test]
fn bad_arguments_and_inputs_are_diagnostics_naming_the_values() {
    let digits = "digits()";
    let (code, msg, label, help) = error(digits, "transpose conv1d(6, groups: 3) flatten dense(data.classes)", "");
    assert_eq!(code, Code::InvalidValue);
    assert_eq!(msg, "`conv1d` splits its 8 input channels into 3 groups");
    assert_eq!(label, "`groups` is 3, which does not divide 8");
    assert_eq!(help, "use a divisor of 8 (1, 2, 4, 8)");
    let (code, msg, _, _) = error(digits, "transpose conv1d(6, groups: 4) flatten dense(data.classes)", "");
    assert_eq!((code, msg.as_str()), (Code::InvalidValue, "`conv1d` splits its 6 filters into 4 groups"));
    let (code, msg, label, _) =
        error(digits, "transpose conv1d(6, kernel: 4, dilation: 3, padding: valid) flatten dense(data.classes)", "");
    assert_eq!(code, Code::ShapeError);
    assert_eq!(msg, "the sequence has length 8, shorter than the kernel's span 10");
    assert_eq!(label, "the kernel of 4 with dilation 3 spans 10 positions");
    // An image is no sequence; `transpose` is named as the way from a one-channel map.
    let (code, msg, label, help) = error(digits, "conv1d(6) flatten dense(data.classes)", "");
    assert_eq!(code, Code::ShapeError);
    assert_eq!(msg, "`conv1d` needs a sequence [length, channels]");
    assert_eq!(label, "the input here is [1, 8, 8]");
    assert!(help.contains("`transpose`"), "{help}");
    let (code, msg, _, _) = error(digits, "transpose maxpool1d(9) flatten dense(data.classes)", "");
    assert_eq!((code, msg.as_str()), (Code::ShapeError, "`maxpool1d(9)` shrinks the sequence of length 8 to nothing"));
    let (code, msg, label, _) = error(digits, "flatten transpose dense(data.classes)", "");
    assert_eq!(code, Code::ShapeError);
    assert_eq!(
        (msg.as_str(), label.as_str()),
        ("`transpose` needs a sequence [a, b] or a one-channel map [1, h, w]", "the input here is [64]")
    );
    let (code, _, _, _) = error(digits, "transpose conv1d(6, padding: full) flatten dense(data.classes)", "");
    assert_eq!(code, Code::UnknownValue);
    let (code, msg, _, _) = error(digits, "transpose conv1d(6, stride: 0) flatten dense(data.classes)", "");
    assert_eq!((code, msg.as_str()), (Code::InvalidValue, "`conv1d` needs a positive `stride`"));
    let (code, msg, _, _) = error(digits, "transpose conv1d(6, dilaton: 2) flatten dense(data.classes)", "");
    assert_eq!((code, msg.as_str()), (Code::BadArguments, "`conv1d` has no argument `dilaton`"));
    // Token ids need their embedding first.
    let dir = temp_dir();
    let csv = write(dir.path(), "r.csv", "review,label\n\"good film\",pos\n\"bad film\",neg\n");
    let text = format!("text(\"{}\", text: \"review\", target: \"label\", max_len: 6)", csv.display());
    let (code, _, label, help) = error(&text, "conv1d(4) global_maxpool dense(data.classes)", "");
    assert_eq!((code, label.as_str()), (Code::ShapeError, "the input here is [6]"));
    assert!(help.contains("embedding(data.vocab, dim)"), "{help}");
}

#[test]
fn the_whole_space_is_checked_and_the_failing_point_named() {
    // kernel 9 does not fit in 8 positions with valid padding; kernel 3 does.
    let c = compile(
        "digits()",
        "transpose conv1d(6, kernel: k, padding: valid) flatten dense(data.classes)",
        "k: int in {3, 9}",
    );
    let errors: Vec<_> = c.diagnostics.iter().filter(|d| d.severity == bma::diagnostic::Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = errors[0];
    assert_eq!(e.code, Code::ShapeError);
    // The point is named; kernel 3 (checked first) passed.
    assert_eq!(e.message, "at k = 9: the sequence has length 8, shorter than the kernel's span 9");
}

/// A 16-bit mono clip of `n` samples at 8 kHz: a tone of `freq` Hz with a little noise.
fn tone(path: &Path, freq: f64, n: usize, seed: u64) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let noise = (s % 1000) as f64 / 1000.0 - 0.5;
        let v = 0.5 * (2.0 * PI * freq * i as f64 / 8000.0).sin() + 0.05 * noise;
        w.write_sample((v * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn a_1d_cnn_on_log_mel_frames_trains_soups_saves_and_reloads() {
    let dir = temp_dir();
    for (class, freq) in [("low", 300.0), ("high", 2000.0)] {
        std::fs::create_dir_all(dir.path().join("clips").join(class)).unwrap();
        for i in 0..12 {
            let path = dir.path().join("clips").join(class).join(format!("{i:02}.wav"));
            tone(&path, freq * (1.0 + 0.02 * i as f64), 3000 + 100 * i, i as u64);
        }
    }
    // mel features are [1, 16 bins, frames]; `transpose` makes them [frames, 16].
    let file = write(
        dir.path(),
        "tones.bma",
        "experiment tones {
  data = audio(\"clips\", rate: 8000, seconds: 0.25, features: mel(bins: 16, win_ms: 32, hop_ms: 16),
               split: [0.5, 0.25, 0.25], seed: 1)
  space { lr: float in {0.01, 0.02} }
  model {
    transpose
    conv1d(8, kernel: 3, padding: valid)
    relu
    maxpool1d(2)
    conv1d(8, kernel: 3, dilation: 2)
    relu
    global_avgpool
    dense(data.classes)
  }
  train { optimizer = adam(lr)  epochs = 15  batch = 4 }
  objective { maximize accuracy }
  search { strategy = grid  trials = 2  seed = 1 }
  average { soup(uniform, top: 2) }
}
",
    );
    let check = bma().arg("check").arg(&file).output().unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let best = r["best"]["test"]["accuracy"].as_f64().unwrap_or_else(|| panic!("{r}"));
    assert!(best >= 0.9, "best trial's test accuracy {best}: {r}");
    let fin = r["final"]["final_test"]["accuracy"].as_f64().unwrap_or_else(|| panic!("{r}"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("soup"), "{}", String::from_utf8_lossy(&o.stdout));
    // The saved final model reloads and gives the recorded test accuracy.
    let e = bma().arg("eval").arg(&out).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let text = String::from_utf8_lossy(&e.stdout);
    let printed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("accuracy").map(|v| v.trim().parse::<f64>().unwrap()))
        .unwrap_or_else(|| panic!("no accuracy in {text}"));
    assert!((printed - fin).abs() < 5e-5, "{text} vs {fin}");
}
