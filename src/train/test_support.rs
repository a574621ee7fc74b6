//! Helpers shared by the train unit tests of each layer family (`seq_tests`, `seq_grad_tests`,
//! `text_tests`, `convnet_tests`, `attention_tests`, `net::rnn_tests`, `net::fused_tests`): test-only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use super::{DeviceKind, Tensors, TrainConfig, burn_device};
use crate::data::{self, Dataset};
use crate::ir;
use crate::source::Source;

/// The CPU device with autodiff, as training uses it.
pub(super) fn device() -> Device {
    burn_device(DeviceKind::Cpu).expect("device").autodiff()
}

/// A tensor's values as f64, in row-major order.
pub(super) fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_to_vec::<f32>().expect("f32").into_iter().map(f64::from).collect()
}

/// Rows of token ids (real length 3, 6, 1, 5; ids below 10), padded with 0 to `len`.
pub(super) fn ids(len: usize, dev: &Device) -> Tensor<2> {
    let rows: [&[f32]; 4] = [&[2.0, 5.0, 5.0], &[7.0, 3.0, 1.0, 9.0, 4.0, 2.0], &[6.0], &[8.0, 8.0, 3.0, 2.0, 9.0]];
    let mut v = Vec::new();
    for r in rows {
        v.extend(r.iter().copied().chain(std::iter::repeat(0.0)).take(len));
    }
    Tensor::from_data(TensorData::new(v, [4, len]), dev)
}

/// The element-wise mean of two models' tensors (a uniform soup of two), in `a`'s order
/// with `a`'s names and shapes.
pub(super) fn mean_tensors(a: &Tensors, b: &Tensors) -> Tensors {
    a.iter()
        .zip(b)
        .map(|((n, s, x), (_, _, y))| (n.clone(), s.clone(), x.iter().zip(y).map(|(x, y)| 0.5 * (x + y)).collect()))
        .collect()
}

/// A small labelled corpus of 24 reviews ("good" ones positive, more than 10 distinct
/// words), written as `bma-train-{folder}-{pid}/{name}.csv` in the temporary folder: one
/// file per test, as tests run at once and one must not read a file another is writing.
pub(super) fn corpus(folder: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bma-train-{folder}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join(format!("{name}.csv"));
    let mut s = String::from("review,label\n");
    let pos = ["good fun film", "a good story", "great good acting", "fun and great", "good good good"];
    let neg = ["bad dull film", "a bad story", "awful bad acting", "dull and awful", "bad bad"];
    for i in 0..12 {
        s.push_str(&format!("\"{} {i}\",pos\n", pos[i % 5]));
        s.push_str(&format!("\"{} {i}\",neg\n", neg[i % 5]));
    }
    std::fs::write(&p, s).expect("write");
    p
}

/// The sub-model (expanded at the representative point), the loaded data and the train
/// settings (with `seed`) of the first experiment in `src`, which must compile clean.
pub(super) fn setup(src: &str, seed: u64) -> (ir::SubModel, Dataset, TrainConfig) {
    let compiled = crate::compile(&Source::new("t.bma", src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) = crate::pins::expand_with_pins(&compiled, exp, &BTreeMap::new()).expect("expands");
    let env = ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let value = ir::eval(&exp.data.as_ref().expect("data").value, &env).expect("data value");
    let data = data::load(&value, Path::new(".")).expect("loads");
    let cfg = TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, seed).expect("config");
    (sub, data, cfg)
}

/// d/dv_i of Σ f(v) ⊙ w by central differences.
pub(super) fn numeric_grad(v: &[f64], w: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let loss = |v: &[f64]| f(v).iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
    let mut v = v.to_vec();
    (0..v.len())
        .map(|i| {
            let keep = v[i];
            let h = 1e-6;
            v[i] = keep + h;
            let up = loss(&v);
            v[i] = keep - h;
            let down = loss(&v);
            v[i] = keep;
            (up - down) / (2.0 * h)
        })
        .collect()
}
