//! The weights of a model folder (`model.safetensors`) against Hugging Face's own
//! `safetensors` crate, both ways: the file bma writes is read by the crate with every
//! tensor's name, dtype, shape and value those of the model bma loads (a network with
//! convolutions, batch-norm statistics and dense layers, trained by the test), and a file
//! the crate writes is read by bma: the same weights rewritten by the crate predict exactly
//! as before, and weights the crate changed change the predictions as they must.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{bma, stderr, temp_dir, write};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// A run of a small CNN with batch norm on the digits; gives the run folder.
fn train(dir: &Path) -> std::path::PathBuf {
    let spec = write(
        dir,
        "s.bma",
        "experiment s {
  data = digits(split: [0.7, 0.15, 0.15], seed: 1)
  model { conv2d(4) batchnorm relu maxpool(2) flatten dense(16) relu dense(data.classes) }
  train { optimizer = adam(0.01)  epochs = 2  batch = 32 }
  objective { maximize accuracy }
  search { strategy = random  trials = 1  seed = 1 }
}
",
    );
    let out = dir.join("out");
    let o = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "bma run failed:\n{}", stderr(&o));
    out
}

/// Name → (shape, values) of the tensors the crate reads from `bytes`, each checked F32.
fn read_with_crate(bytes: &[u8]) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let st = SafeTensors::deserialize(bytes).expect("the crate reads bma's file");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{name}");
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// The model's tensors as bma loads them from `dir`.
fn read_with_bma(dir: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let (model, _) = bma::train::load(dir).unwrap();
    model.tensors().into_iter().map(|(name, shape, values)| (name, (shape, values))).collect()
}

/// `tensors` written by the crate.
fn write_with_crate(tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (shape, values))| {
            (name.clone(), shape.clone(), values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, shape, data)| (name.clone(), TensorView::new(Dtype::F32, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn predict(model: &Path, input: &Path) -> String {
    let o = bma().arg("predict").arg(model).arg(input).arg("--proba").output().unwrap();
    assert!(o.status.success(), "bma predict failed:\n{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn the_crate_reads_the_weights_bma_writes_and_bma_reads_the_weights_the_crate_writes() {
    let dir = temp_dir();
    let out = train(dir.path());
    let best = out.join("best");
    let bytes = std::fs::read(best.join("model.safetensors")).unwrap();
    let from_crate = read_with_crate(&bytes);
    let from_bma = read_with_bma(&best);
    assert_eq!(from_crate, from_bma, "the crate and bma read different tensors");

    // The names are the layers' parameters: conv and dense weights and biases, and the
    // batch norm's scale, shift and running statistics, with the shapes of the layers.
    let shapes: BTreeMap<&str, &[usize]> = from_crate.iter().map(|(n, (s, _))| (n.as_str(), s.as_slice())).collect();
    let suffixes: Vec<&str> = shapes.keys().filter_map(|n| n.rsplit_once('.').map(|(_, s)| s)).collect();
    for suffix in ["weight", "bias", "running_mean", "running_var"] {
        assert!(suffixes.contains(&suffix), "no `.{suffix}` tensor in {shapes:?}");
    }
    let conv = shapes.iter().find(|(n, s)| n.ends_with(".weight") && s.len() == 4).expect("a conv weight");
    assert_eq!(&conv.1[..2], [4, 1], "conv2d(4) on one channel: {conv:?}");
    let stats = shapes.iter().filter(|(n, _)| n.ends_with(".running_var")).map(|(_, s)| *s).collect::<Vec<_>>();
    assert_eq!(stats, [&[4usize][..]], "one batch norm over 4 channels");
    let running_var = &from_crate.iter().find(|(n, _)| n.ends_with(".running_var")).unwrap().1.1;
    assert!(running_var.iter().all(|v| *v > 0.0 && *v != 1.0), "trained statistics: {running_var:?}");
    let dense = shapes.values().filter(|s| s.len() == 2).map(|s| s.to_vec()).collect::<Vec<_>>();
    assert!(dense.contains(&vec![16, 10]), "dense(data.classes) is [in, out] = [16, 10]: {dense:?}");

    // The same tensors written by the crate: bma reads them, and predicts exactly as before.
    let rows = dir.path().join("rows.csv");
    std::fs::write(&rows, rows_text()).unwrap();
    let before = predict(&best, &rows);
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(best.join("model.json"), copy.join("model.json")).unwrap();
    std::fs::write(copy.join("model.safetensors"), write_with_crate(&from_crate)).unwrap();
    assert_eq!(read_with_bma(&copy), from_crate);
    assert_eq!(predict(&copy, &rows), before);

    // Weights the crate changed: every weight and bias zeroed but the last layer's bias,
    // which then alone decides: every row gets the softmax of that bias.
    let last = shapes.iter().find(|(n, s)| n.ends_with(".bias") && s.to_vec() == [10]).map(|(n, _)| n.to_string());
    let last = last.expect("the last dense layer's bias");
    let mut changed = from_crate.clone();
    for (name, (_, values)) in changed.iter_mut() {
        let keep = name.ends_with(".running_mean") || name.ends_with(".running_var");
        if !keep {
            values.iter_mut().for_each(|v| *v = 0.0);
        }
        if *name == last {
            values.iter_mut().enumerate().for_each(|(i, v)| *v = if i == 7 { 3.0 } else { 0.0 });
        }
    }
    std::fs::write(copy.join("model.safetensors"), write_with_crate(&changed)).unwrap();
    let text = predict(&copy, &rows);
    let p7 = 3f64.exp() / (3f64.exp() + 9.0);
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[1], "7", "{line}");
        let p: f64 = fields[2 + 7].parse().unwrap();
        assert!((p - p7).abs() < 1e-5, "p_7 = {p}, softmax of the bias gives {p7}: {line}");
    }
}

/// Five rows of 64 numbers (8x8 digit images as the built-in digits hold them, 0..16).
fn rows_text() -> String {
    (0..5).map(|r| (0..64).map(|j| ((r * 7 + j * 3) % 17).to_string()).collect::<Vec<_>>().join(",") + "\n").collect()
}
