//! Gradients of a token model (`embedding` → `conv1d` → a global pool → `dense`) with and
//! without padding after the texts: every parameter's gradient (the embedding's scatter
//! included) is the same whatever the padding, and the embedding's gradient matches finite
//! differences where the model is linear in it. Written for the conv1d bench's question
//! (bench/layers/RESULTS-conv1d.md: bma's lower train accuracy than PyTorch's).

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};

use super::net::{Mode, Net, Part, Plan, forward};
use super::*;
use crate::rng::Rng;
use crate::source::Source;
use crate::train::test_support::{device, ids, values};

/// A small labelled corpus (more than 10 distinct words), written under `name` (one per
/// test: tests run at once).
fn corpus(name: &str) -> PathBuf {
    super::test_support::corpus("seq-grad", name)
}

/// The sub-model of `model` over that corpus cut at `max_len`.
fn sub_model(name: &str, model: &str, max_len: usize) -> ir::SubModel {
    let data = format!(
        "text(\"{}\", text: \"review\", target: \"label\", max_len: {max_len}, vocab: 40, seed: 2)",
        corpus(name).display()
    );
    let src = format!(
        "experiment t {{\n data = {data}\n model {{ {model} }}\n train {{ epochs = 1 }}\n objective {{ maximize accuracy }}\n}}\n"
    );
    let compiled = crate::compile(&Source::new("t.bma", &src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    crate::pins::expand_with_pins(&compiled, exp, &BTreeMap::new()).expect("expands").0
}

/// The weights of `sub`'s net, the same for every `len` (drawn once, then loaded).
fn net_for(sub: &ir::SubModel, weights: &mut Option<net::Tensors>, dev: &Device) -> (Plan, Net) {
    let plan = Plan::new(sub);
    let mut net = Net::init(&plan, Init::Default, &mut Rng::new(11), dev);
    match weights {
        Some(w) => net = net.load_tensors(&plan, w, dev).expect("same tensors"),
        None => *weights = Some(net.tensors(&plan)),
    }
    (plan, net)
}

/// `sum(output · r)` for a fixed `r` (`[4, outputs]`), as the loss to differentiate.
fn loss(net: &Net, plan: &Plan, x: Tensor<2>, dev: &Device) -> Tensor<1> {
    let y = forward(net, plan, x, Mode::Eval, None).expect("forward");
    let [b, o] = y.dims();
    let r: Vec<f32> = (0..b * o).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.5).collect();
    (y * Tensor::<2>::from_data(TensorData::new(r, [b, o]), dev)).sum()
}

/// Every parameter's gradient, by part: (what, values).
fn gradients(net: &Net, grads: &burn::tensor::Gradients) -> Vec<(String, Vec<f64>)> {
    let mut out = Vec::new();
    for (i, part) in net.parts.iter().enumerate() {
        match part {
            Part::Embedding(e) => out.push((format!("{i} embedding"), values(e.w.val().grad(grads).expect("dE")))),
            Part::Conv1d(c) => {
                out.push((format!("{i} conv1d w"), values(c.w.val().grad(grads).expect("dW"))));
                out.push((format!("{i} conv1d b"), values(c.b.val().grad(grads).expect("db"))));
            }
            Part::Dense(d) => {
                out.push((format!("{i} dense w"), values(d.w.val().grad(grads).expect("dW"))));
                out.push((format!("{i} dense b"), values(d.b.val().grad(grads).expect("db"))));
            }
            other => panic!("unexpected part {other:?}"),
        }
    }
    out
}

#[test]
fn gradients_through_embedding_conv1d_and_the_global_pools_do_not_depend_on_padding() {
    let dev = device();
    for body in [
        // The bench's model, small: `same` padding, relu, global max.
        "conv1d(5, kernel: 3) relu global_maxpool",
        "conv1d(5, kernel: 5) relu global_maxpool",
        "conv1d(4, kernel: 3, padding: valid) relu global_avgpool",
        "conv1d(4, kernel: 2, dilation: 2) global_maxpool",
    ] {
        let model = format!("embedding(data.vocab, 4) {body} dense(data.classes)");
        let mut weights = None;
        let mut all = Vec::new();
        for len in [6, 11] {
            let (plan, net) = net_for(&sub_model("pad", &model, len), &mut weights, &dev);
            let grads = loss(&net, &plan, ids(len, &dev), &dev).backward();
            all.push(gradients(&net, &grads));
        }
        let (short, long) = (&all[0], &all[1]);
        assert_eq!(short.len(), 5, "{body}: embedding, conv1d w and b, dense w and b");
        for ((what, a), (_, b)) in short.iter().zip(long) {
            assert_eq!(a.len(), b.len(), "{body} {what}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!((x - y).abs() < 1e-5 * (1.0 + y.abs()), "{body} {what}[{i}]: {x} at len 6, {y} at len 11");
            }
            assert!(a.iter().any(|v| v.abs() > 1e-6), "{body} {what}: a gradient at all");
        }
        // The padding id (0) reaches no output: its embedding row gets no gradient, and
        // neither does an id no row holds (10..).
        let (_, emb) = &long[0];
        assert!(emb[..4].iter().all(|v| *v == 0.0), "{body}: the padding row's gradient {:?}", &emb[..4]);
        assert!(emb[40..].iter().all(|v| *v == 0.0), "{body}: unused rows");
    }
}

#[test]
fn the_embedding_gradient_matches_finite_differences_through_conv1d_and_the_average() {
    // Linear in the embedding (no activation, an average), so central differences are
    // exact up to f32 rounding: this checks the scatter of the gradient to the rows of
    // repeated ids (5 twice in row 0, 8 twice in row 3) through the masked conv1d.
    let dev = device();
    let sub = sub_model("fd", "embedding(data.vocab, 3) conv1d(4, kernel: 3) global_avgpool dense(data.classes)", 9);
    let mut weights = None;
    let (plan, net) = net_for(&sub, &mut weights, &dev);
    let grads = loss(&net, &plan, ids(9, &dev), &dev).backward();
    let emb = gradients(&net, &grads).remove(0).1;
    let base = weights.expect("weights");
    let at = |row: usize, col: usize, delta: f32| {
        let mut w = base.clone();
        let (_, shape, v) = w.iter_mut().find(|(n, _, _)| n.contains("embedding")).expect("embedding tensor");
        v[row * shape[1] + col] += delta;
        let net = Net::init(&plan, Init::Default, &mut Rng::new(11), &dev).load_tensors(&plan, &w, &dev).expect("load");
        values(loss(&net, &plan, ids(9, &dev), &dev))[0]
    };
    for (row, col) in [(5, 0), (8, 2), (2, 1), (6, 0), (9, 2), (0, 1), (12, 0)] {
        let numeric = (at(row, col, 0.25) - at(row, col, -0.25)) / 0.5;
        let analytic = emb[row * 3 + col];
        assert!(
            (numeric - analytic).abs() < 1e-3 * (1.0 + analytic.abs()),
            "row {row} col {col}: finite differences {numeric}, gradient {analytic}"
        );
    }
}
