//! `bma export --format onnx` on models of every layer family, each trained for one epoch
//! by the test itself: an MLP (every activation, batch and layer norm, dropout; a
//! two-member ensemble, and its standardisation folded in), a CNN (batch norm, max and
//! average pooling, a softmax head), depthwise and inverted residual blocks with
//! squeeze-excite (grouped conv, multiply), transposed convolutions, upsampling, group and
//! RMS norm, a transformer and recurrent layers on image rows, token models with padding
//! (conv1d, the 1-D pools, LSTM and GRU, attention, positions, the masked global pools; a
//! voting ensemble), a regression (a weight soup, the target scaling folded in), recurrent
//! layers on rows left with no position (`sequence_lens` 0), and `--fold-scaling` from the
//! folder's saved preprocessing with the data deleted. The list of examples that
//! `scripts/onnx-examples.sh` leaves out is held to the examples without a network.
//!
//! Each export is decoded (opset, inputs, outputs) and, when `BMA_TEST_ONNXRUNTIME` names
//! a Python with onnxruntime, onnx and numpy (`scripts/onnx-check.sh --python` makes one),
//! `scripts/onnx-check.py` runs the file with onnxruntime on rows of the model's test split
//! and compares with bma's own outputs within 1e-4. Under `CI` a missing variable fails
//! the test; elsewhere it is skipped with a loud SKIPPED line.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use bma::export::proto::ModelProto;
use common::{bma, stderr, temp_dir, write};
use prost::Message;

/// The Python that runs the onnxruntime check, by the rule tests/common's `url` states.
fn python() -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(p) = set("BMA_TEST_ONNXRUNTIME") {
        return Some(p);
    }
    assert!(
        set("CI").is_none(),
        "CI is set but BMA_TEST_ONNXRUNTIME is not: the onnxruntime check cannot run. \
         Set it to `$(scripts/onnx-check.sh --python)`."
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED: BMA_TEST_ONNXRUNTIME is not set; the onnxruntime check did not run.\n\
         !!! Set it to `$(scripts/onnx-check.sh --python)` and rerun.\n"
    );
    None
}

const DIGITS: &str = "digits(split: [0.7, 0.15, 0.15], seed: 1)";

/// A spec of one experiment: `data`, `model`, two trials (lr on a grid) and `average`.
fn spec(data: &str, model: &str, average: &str) -> String {
    format!(
        "use std::blocks::{{squeeze_excite, inverted_residual, transformer_block}}
experiment t {{
  data = {data}
  space {{ lr: float in {{0.01, 0.003}} }}
  model {{
    {model}
  }}
  train {{ optimizer = adam(lr) epochs = 1 batch = 32 seed = 2 }}
  objective {{ {objective} }}
  search {{ strategy = grid trials = 2 }}
  average {{ {average} }}
}}
",
        objective = if data.contains("regression") { "minimize mse" } else { "maximize accuracy" }
    )
}

/// A corpus where the class is decided by the words "good"/"bad", of texts shorter than
/// `max_len`, so that token models see padding.
fn corpus(dir: &Path) {
    let mut s = String::from("review,label\n");
    let pos = ["good fun film", "a good story", "great good acting here today", "fun and great", "good"];
    let neg = ["bad dull film", "a bad story", "awful bad acting here today", "dull and awful", "bad"];
    for i in 0..30 {
        s.push_str(&format!("\"{} {}\",pos\n\"{} {}\",neg\n", pos[i % 5], i % 7, neg[i % 5], i % 7));
    }
    write(dir, "reviews.csv", &s);
}

const TEXT: &str = "text(\"reviews.csv\", text: \"review\", target: \"label\", tokenizer: word, max_len: 8, seed: 1)";

/// A regression table: y = 3·a − 2·b + c², with a missing value or two.
fn table(dir: &Path) {
    let mut s = String::from("a,b,c,y\n");
    for i in 0..160 {
        let (a, b, c) = ((i % 13) as f64 * 0.7, (i % 7) as f64 - 3.0, ((i * 5) % 11) as f64 / 4.0);
        s.push_str(&format!("{a},{b},{c},{}\n", 3.0 * a - 2.0 * b + c * c + 50.0));
    }
    write(dir, "d.csv", &s);
}

const TABLE: &str = "csv(\"d.csv\", target: \"y\", task: regression, split: [0.7, 0.15, 0.15], seed: 1)";

/// Runs `spec` in `dir`; gives the run folder.
fn train(dir: &Path, spec: &str) -> PathBuf {
    let file = write(dir, "t.bma", spec);
    let out = dir.join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "bma run failed:\n{}", stderr(&o));
    out
}

/// Exports `model` (a run folder or a model folder, with `flags`) to `file` with 48
/// samples; checks the file's opset, input and output; runs the onnxruntime check.
fn export_and_check(model: &Path, file: &Path, flags: &[&str], features: usize, outputs: usize) {
    let o = bma()
        .arg("export")
        .arg(model)
        .args(["--format", "onnx", "--samples", "48", "--out"])
        .arg(file)
        .args(flags)
        .output()
        .unwrap();
    assert!(o.status.success(), "bma export failed:\n{}", stderr(&o));
    let decoded = ModelProto::decode(std::fs::read(file).unwrap().as_slice()).expect("the file decodes as ONNX");
    assert_eq!(decoded.opset_import.iter().map(|o| o.version).collect::<Vec<_>>(), [17]);
    let graph = decoded.graph.expect("a graph");
    let width = |v: &bma::export::proto::ValueInfoProto| {
        let shape = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).and_then(|t| t.shape.as_ref()).unwrap();
        shape.dim.get(1).and_then(|d| d.dim_value).unwrap()
    };
    assert_eq!((graph.input.len(), graph.output.len()), (1, 1));
    assert_eq!((width(&graph.input[0]), width(&graph.output[0])), (features as i64, outputs as i64));
    let samples = file.with_extension("samples.npz");
    assert!(samples.is_file(), "no {}", samples.display());
    let Some(python) = python() else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/onnx-check.py");
    let c = std::process::Command::new(&python).arg(script).arg(file).output().unwrap();
    let text = String::from_utf8_lossy(&c.stdout);
    assert!(c.status.success(), "onnxruntime disagrees with bma:\n{text}{}", stderr(&c));
    assert!(text.starts_with("ok "), "{text}");
}

/// Trains `model` on `data` with `average`, exports the final and the best model, checks both.
fn case(name: &str, data: &str, model: &str, average: &str, features: usize, outputs: usize) {
    let dir = temp_dir();
    if data.starts_with("text") {
        corpus(dir.path());
    }
    if data.starts_with("csv") {
        table(dir.path());
    }
    let out = train(dir.path(), &spec(data, model, average));
    export_and_check(&out, &dir.path().join(format!("{name}-final.onnx")), &[], features, outputs);
    export_and_check(&out, &dir.path().join(format!("{name}-best.onnx")), &["--model", "best"], features, outputs);
}

#[test]
fn an_mlp_with_every_activation_and_norm_as_an_ensemble_and_with_its_scaling_folded_in() {
    let dir = temp_dir();
    let model = "flatten dense(32) batchnorm relu dropout(0.2) dense(16) gelu layernorm dense(16) tanh \
                 dense(16) silu dense(16) leaky_relu(0.1) dense(16) sigmoid dense(data.classes)";
    let out = train(dir.path(), &spec(DIGITS, model, "ensemble(top: 2)"));
    let summary = std::fs::read_to_string(out.join("final/final.json")).unwrap();
    assert!(summary.matches("\"trials\"").count() == 2, "a two-member ensemble: {summary}");
    export_and_check(&out, &dir.path().join("mlp.onnx"), &[], 64, 10);
    // The standardisation in the graph: it reads the unscaled features.
    export_and_check(&out, &dir.path().join("mlp-raw.onnx"), &["--fold-scaling"], 64, 10);
    // A trial folder.
    export_and_check(&out.join("trials/1"), &dir.path().join("trial.onnx"), &[], 64, 10);
}

#[test]
fn a_cnn_with_batch_norm_pooling_and_a_softmax_head() {
    case(
        "cnn",
        DIGITS,
        "conv2d(8) batchnorm relu maxpool(2) conv2d(16, stride: 2) relu conv2d(16, kernel: 1, padding: valid) \
         avgpool(2) flatten dense(data.classes) softmax",
        "soup(uniform, top: 2)",
        64,
        10,
    );
}

#[test]
fn depthwise_and_inverted_residual_blocks_with_squeeze_excite() {
    case(
        "mobile",
        DIGITS,
        "conv2d(8) conv2d(8, groups: 8) squeeze_excite(8, ratio: 4) inverted_residual(16, 8, 1) \
         inverted_residual(16, 12, 2) global_maxpool dense(data.classes)",
        "ensemble(top: 2)",
        64,
        10,
    );
}

#[test]
fn transposed_convolutions_upsampling_group_and_rms_norm() {
    case(
        "decoder",
        DIGITS,
        "conv_transpose2d(4, kernel: 3, stride: 2) upsample(2, mode: bilinear) groupnorm(2) rmsnorm maxpool(4) \
         upsample(2) conv_transpose2d(2, kernel: 2, stride: 2, padding: valid) maxpool(4) flatten dense(data.classes)",
        "ensemble(top: 1)",
        64,
        10,
    );
}

#[test]
fn a_transformer_and_recurrent_layers_on_image_rows() {
    case(
        "rows",
        DIGITS,
        "reshape(8, 8) positional(learned) transformer_block(8, 2, 16, 0.1) attention(4, causal: true, rotary: true) \
         conv1d(8, kernel: 3, stride: 2, dilation: 1) transpose transpose gru(8, return: sequence) \
         lstm(8, bidirectional: true) dense(data.classes)",
        "ensemble(top: 1)",
        64,
        10,
    );
}

#[test]
fn token_models_with_padding_conv1d_pools_and_bidirectional_recurrences() {
    case(
        "text-rnn",
        TEXT,
        "embedding(data.vocab, 8) conv1d(8, kernel: 3, dilation: 2) relu maxpool1d(2, stride: 1) \
         lstm(8, bidirectional: true, return: sequence) gru(8, bidirectional: true, return: sequence) \
         avgpool1d(2) global_maxpool dense(data.classes)",
        "ensemble(top: 2)",
        8,
        2,
    );
}

#[test]
fn a_token_transformer_with_sinusoidal_positions_as_a_voting_ensemble() {
    case(
        "text-transformer",
        TEXT,
        "embedding(data.vocab, 16) positional(sinusoidal) transformer_block(16, 2, 32, 0.1) \
         attention(4, causal: true) gru(8) dense(data.classes)",
        "ensemble(top: 2, combine: vote)",
        8,
        2,
    );
}

#[test]
fn a_token_model_with_masked_global_average_pooling() {
    case(
        "text-pool",
        TEXT,
        "embedding(data.vocab, 8) conv1d(8, kernel: 2, stride: 2) gelu global_avgpool dense(data.classes) sigmoid",
        "ensemble(top: 1)",
        8,
        2,
    );
}

#[test]
fn a_regression_soup_with_the_target_scaling_folded_in() {
    case("regression", TABLE, "dense(16) relu dense(8) tanh dense(1)", "soup(uniform, top: 2)", 3, 1);
}

#[test]
fn a_folder_without_a_model_is_refused_by_name() {
    let dir = temp_dir();
    let o = bma().arg("export").arg(dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("holds no saved model"), "{}", stderr(&o));
    let o = bma().arg("export").arg(dir.path().join("missing")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a folder"), "{}", stderr(&o));
}

/// `scripts/onnx-examples.sh` (CI: every example's best and final model through
/// onnxruntime) leaves out the examples in its `NOT_EXPORTABLE` list: that list must be
/// exactly the examples with no bma network (no experiment with a `model` section: function
/// searches, command trials), each with its reason, so a new example is never left out
/// silently and a listed one is never exportable.
#[test]
fn the_examples_onnx_check_leaves_out_exactly_the_examples_without_a_network() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("scripts/onnx-examples.sh")).unwrap();
    let list =
        script.split("NOT_EXPORTABLE=(").nth(1).and_then(|s| s.split("\n)").next()).expect("a NOT_EXPORTABLE list");
    let mut listed = std::collections::BTreeSet::new();
    for line in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let entry = line.trim_matches('"');
        let (name, why) = entry.split_once(": ").unwrap_or_else(|| panic!("`{line}`: not \"NAME: why\""));
        assert!(why.len() > 10, "{name}: say why it cannot be exported");
        listed.insert(name.to_string());
    }
    let examples = root.join("examples");
    let mut without = std::collections::BTreeSet::new();
    for path in common::bma_files(&examples) {
        let text = std::fs::read_to_string(&path).unwrap();
        let compiled = bma::compile(&bma::source::Source::from_path(&path, text));
        assert!(!compiled.program.experiments.is_empty(), "{}: no experiment", path.display());
        if compiled.program.experiments.iter().all(|e| e.model.is_none()) {
            let name = path.strip_prefix(&examples).unwrap().to_string_lossy().replace('\\', "/");
            without.insert(name);
        }
    }
    assert!(without.contains("branin.bma") && without.contains("command/sklearn.bma"), "{without:?}");
    assert_eq!(listed, without, "scripts/onnx-examples.sh's NOT_EXPORTABLE against the examples without a model");
}

/// `--fold-scaling` takes the standardisation from the model folder's saved preprocessing
/// (`model.json`'s `config.preprocess`), not from the data: with the data file deleted the
/// export still folds it in, byte for byte the file exported beside the data (which
/// onnxruntime checked), and the folded values are the saved ones. `--samples` still needs
/// the data and names the missing file.
#[test]
fn fold_scaling_reads_the_saved_preprocessing_so_a_folder_without_its_data_still_exports() {
    let dir = temp_dir();
    table(dir.path());
    let out = train(dir.path(), &spec(TABLE, "dense(8) relu dense(1)", "ensemble(top: 2)"));
    let beside = dir.path().join("beside.onnx");
    export_and_check(&out, &beside, &["--fold-scaling"], 3, 1);
    std::fs::remove_file(dir.path().join("d.csv")).unwrap();
    let alone = dir.path().join("alone.onnx");
    let o = bma().arg("export").arg(&out).args(["--fold-scaling", "--out"]).arg(&alone).output().unwrap();
    assert!(o.status.success(), "bma export --fold-scaling without the data failed:\n{}", stderr(&o));
    assert!(std::fs::read(&beside).unwrap() == std::fs::read(&alone).unwrap(), "the two exports differ");

    let manifest = std::fs::read_to_string(out.join("final/member_0/model.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let saved = |key: &str| -> Vec<f32> {
        let v = &manifest["config"]["preprocess"][key];
        v.as_array()
            .unwrap_or_else(|| panic!("no preprocess.{key}: {v}"))
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let graph = ModelProto::decode(std::fs::read(&alone).unwrap().as_slice()).unwrap().graph.unwrap();
    let folded = |prefix: &str| -> Vec<f32> {
        let t = graph.initializer.iter().find(|t| t.name.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix}"));
        t.raw_data.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    let (mean, std) = (saved("mean"), saved("std"));
    assert_eq!(mean.len(), 3, "one mean per feature: {mean:?}");
    assert!(std.iter().all(|s| *s > 0.0 && (*s - 1.0).abs() > 1e-3), "fitted deviations: {std:?}");
    assert_eq!(folded("scaling/mean"), mean);
    assert_eq!(folded("scaling/std"), std);

    let o = bma()
        .arg("export")
        .arg(&out)
        .args(["--samples", "8", "--out"])
        .arg(dir.path().join("s.onnx"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("d.csv"), "{}", stderr(&o));
}

/// A test split where half the texts are one token long: `maxpool1d(2)` leaves them no
/// position at all, so the recurrent layers see rows of length 0 (`sequence_lens` = 0), for
/// which bma gives a zero state (`last`) and zero outputs (`sequence`). onnxruntime must
/// agree on those rows too.
#[test]
fn recurrent_layers_on_rows_of_length_zero_give_what_bma_gives() {
    let dir = temp_dir();
    let rows = |n: usize, shift: usize| {
        let long = ["good fun film", "a bad story", "good acting here", "dull and bad"];
        let mut s = String::from("review,label\n");
        for i in 0..n {
            let k = i + shift;
            let (text, label) = match k % 4 {
                0 => ("good", "pos"),
                1 => ("bad", "neg"),
                _ => (long[k % 4], if long[k % 4].contains("good") { "pos" } else { "neg" }),
            };
            s.push_str(&format!("{text},{label}\n"));
        }
        s
    };
    write(dir.path(), "reviews.csv", &rows(80, 0));
    write(dir.path(), "test.csv", &rows(24, 1));
    let data = "text(\"reviews.csv\", text: \"review\", target: \"label\", tokenizer: word, max_len: 6, \
                split: [0.8, 0.2], seed: 1, test: text(\"test.csv\", text: \"review\", target: \"label\"))";
    let model = "embedding(data.vocab, 8) maxpool1d(2) lstm(8, bidirectional: true, return: sequence) \
                 gru(8, bidirectional: true) dense(data.classes)";
    let out = train(dir.path(), &spec(data, model, "ensemble(top: 2)"));
    let single = std::fs::read_to_string(dir.path().join("test.csv")).unwrap();
    let empty_after_pool = single.lines().skip(1).filter(|l| !l.split(',').next().unwrap().contains(' ')).count();
    assert_eq!(empty_after_pool, 12, "half the 24 test rows are one token long");
    export_and_check(&out, &dir.path().join("zero-final.onnx"), &[], 6, 2);
    export_and_check(&out, &dir.path().join("zero-best.onnx"), &["--model", "best"], 6, 2);
}
