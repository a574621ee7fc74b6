//! `embedding`, the masked global pools over token sequences, and text models end to end:
//! forward and gradients against direct f64 computations, save/reload, averaging.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};

use super::net::{Mode, Net, Plan, forward};
use super::*;
use crate::data;
use crate::source::Source;

/// A small labelled corpus: "good" reviews are positive, "bad" ones negative.
/// Written under `name`: tests run in parallel, and one must not read a file another
/// is writing.
fn corpus(name: &str) -> PathBuf {
    super::test_support::corpus("text", name)
}

fn setup(name: &str, model: &str, train: &str) -> (ir::SubModel, Dataset, TrainConfig, crate::Compiled) {
    let path = corpus(name);
    let src = format!(
        "experiment t {{\n data = text(\"{}\", text: \"review\", target: \"label\", max_len: 6, vocab: 40, seed: 2)\n \
         model {{ {model} }}\n train {{ {train} }}\n objective {{ maximize accuracy }}\n}}\n",
        path.display()
    );
    let compiled = crate::compile(&Source::new("t.bma", &src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) = crate::pins::expand_with_pins(&compiled, exp, &BTreeMap::new()).expect("expands");
    let env = ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let value = ir::eval(&exp.data.as_ref().expect("data").value, &env).expect("data value");
    let data = data::load(&value, Path::new(".")).expect("loads");
    let cfg = TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 1).expect("config");
    (sub, data, cfg, compiled)
}

fn tensor(t: &Tensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let (_, s, v) = t.iter().find(|x| x.0 == name).unwrap_or_else(|| panic!("no {name}"));
    (s.clone(), v.iter().map(|x| f64::from(*x)).collect())
}

/// Rows of ids with padding at the end, one row all padding but one token.
const IDS: [[f32; 6]; 3] =
    [[2.0, 5.0, 5.0, 0.0, 0.0, 0.0], [7.0, 3.0, 1.0, 9.0, 4.0, 2.0], [6.0, 0.0, 0.0, 0.0, 0.0, 0.0]];

/// The pooled vectors computed directly: per row, the mean (or max) of the embedding
/// rows of its non-padding ids.
fn direct_pool(emb: &[f64], dim: usize, max: bool) -> Vec<Vec<f64>> {
    IDS.iter()
        .map(|row| {
            let toks: Vec<usize> = row.iter().filter(|v| **v != 0.0).map(|v| *v as usize).collect();
            (0..dim)
                .map(|j| {
                    let vals = toks.iter().map(|t| emb[t * dim + j]);
                    if max { vals.fold(f64::MIN, f64::max) } else { vals.sum::<f64>() / toks.len() as f64 }
                })
                .collect()
        })
        .collect()
}

fn ids_tensor(device: &burn::tensor::Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(IDS.iter().flatten().copied().collect::<Vec<f32>>(), [3, 6]), device)
}

#[test]
fn embedding_and_masked_pools_match_a_direct_computation_forward_and_backward() {
    for (pool, max) in [("global_avgpool", false), ("global_maxpool", true)] {
        let (sub, _data, _cfg, _) =
            setup(pool, &format!("embedding(data.vocab, 3) {pool} dense(data.classes)"), "epochs = 1");
        // vocab 40 · dim 3 + dense 3·2 + 2.
        assert_eq!(sub.params, 40 * 3 + 3 * 2 + 2);
        // Embedding: one copy per output value (6·3); pool: one per input value (6·3).
        let flops: Vec<(String, u64)> = sub.layers().map(|l| (l.name.clone(), l.flops)).collect();
        assert!(flops.contains(&("embedding_1".to_string(), 18)), "{flops:?}");
        assert!(flops.contains(&(format!("{pool}_1"), 18)), "{flops:?}");
        let plan = Plan::new(&sub);
        let device = burn_device(DeviceKind::Cpu).expect("device").autodiff();
        let net = Net::init(&plan, Init::Default, &mut crate::rng::Rng::new(5), &device);
        assert_eq!(net.trainable() as u64, sub.params);
        let t = net.tensors(&plan);
        let (eshape, emb) = tensor(&t, "embedding_1.weight");
        assert_eq!(eshape, vec![40, 3]);
        let (_, w) = tensor(&t, "dense_1.weight");
        let (_, b) = tensor(&t, "dense_1.bias");
        let out = forward(&net, &plan, ids_tensor(&device), Mode::Eval, None).expect("forward");
        let got: Vec<f32> = out.clone().into_data().try_to_vec::<f32>().expect("f32");
        let pooled = direct_pool(&emb, 3, max);
        for (r, p) in pooled.iter().enumerate() {
            for k in 0..2 {
                let want = b[k] + (0..3).map(|j| p[j] * w[j * 2 + k]).sum::<f64>();
                assert!(
                    (f64::from(got[r * 2 + k]) - want).abs() < 1e-5,
                    "{pool} row {r}: {} vs {want}",
                    got[r * 2 + k]
                );
            }
        }
        // d(sum of outputs)/d(pooled_j) = Σ_k w[j, k]; the embedding rows get it shared
        // over the tokens (mean) or at the argmax token (max); padding (row 0) gets none.
        let grads = out.sum().backward();
        let Some(super::net::Part::Embedding(e)) = net.parts.first() else { panic!("embedding first") };
        let g: Vec<f32> = e.w.val().grad(&grads).expect("grad").into_data().try_to_vec::<f32>().expect("f32");
        let mut want = vec![0f64; 40 * 3];
        for row in &IDS {
            let toks: Vec<usize> = row.iter().filter(|v| **v != 0.0).map(|v| *v as usize).collect();
            for j in 0..3 {
                let up: f64 = (0..2).map(|k| w[j * 2 + k]).sum();
                if max {
                    let best =
                        toks.iter().copied().max_by(|a, b| emb[a * 3 + j].total_cmp(&emb[b * 3 + j])).expect("a token");
                    want[best * 3 + j] += up;
                } else {
                    for t in &toks {
                        want[t * 3 + j] += up / toks.len() as f64;
                    }
                }
            }
        }
        for (i, (a, b)) in g.iter().zip(&want).enumerate() {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{pool} grad[{i}]: {a} vs {b}");
        }
        assert!(g[..3].iter().all(|x| *x == 0.0), "padding gets no gradient");
    }
}

#[test]
fn a_text_model_trains_saves_reloads_and_averages() {
    let (sub, data, mut cfg, _) = setup(
        "trains",
        "embedding(data.vocab, 8) global_avgpool dense(data.classes)",
        "optimizer = adam(0.05)\n epochs = 30\n batch = 8",
    );
    cfg.epochs = 30;
    let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(out.status, Status::Completed, "{:?}", out.status);
    let model = out.model.expect("model");
    assert_eq!(out.metrics["params"] as u64, sub.params);
    assert_eq!(out.metrics["flops"] as u64, sub.flops);
    // good/bad words decide the class: the model learns it.
    let train = model.evaluate(&data.train, &data.info).expect("evaluates");
    assert!(train["accuracy"] >= 0.9, "{train:?}");
    // Save with the tokenizer, reload, evaluate: the same numbers.
    let dir = std::env::temp_dir().join(format!("bma-train-text-save-{}", std::process::id()));
    let path = corpus("trains");
    let value = ir::Value::Call(ir::CallValue {
        name: "text".into(),
        args: vec![
            (None, ir::Value::Str(path.display().to_string())),
            (Some("text".into()), ir::Value::Str("review".into())),
            (Some("target".into()), ir::Value::Str("label".into())),
            (Some("max_len".into()), ir::Value::Int(6)),
            (Some("vocab".into()), ir::Value::Int(40)),
            (Some("seed".into()), ir::Value::Int(2)),
        ],
    });
    let config = SavedConfig {
        experiment: "t".into(),
        data: value,
        base: "/".into(),
        data_files: Vec::new(),
        point: Default::default(),
        train: cfg.clone(),
        tokenizer: data.tokenizer.clone(),
        preprocess: None,
    };
    model.save(&dir, &config).expect("saves");
    let (back, back_cfg) = load(&dir).expect("loads");
    assert_eq!(back_cfg.tokenizer, data.tokenizer);
    assert_eq!(back.tensors(), model.tensors());
    let test = evaluate_saved(&dir, data::Part::Test).expect("evaluates");
    let direct = model.evaluate(&data.test, &data.info).expect("evaluates");
    assert_eq!(test["accuracy"], direct["accuracy"]);
    assert!((test["loss"] - direct["loss"]).abs() < 1e-9);
    // The saved vocabulary is the one used: a model whose tokenizer lost its words sees
    // only unknown ids, and evaluates differently.
    let mut blind = config.clone();
    if let Some(t) = blind.tokenizer.as_mut() {
        t.tokens.clear();
    }
    model.save(&dir, &blind).expect("saves");
    let unknown = evaluate_saved(&dir, data::Part::Train).expect("evaluates");
    assert!((unknown["loss"] - train["loss"]).abs() > 1e-6, "{unknown:?} vs {train:?}");
    // Averaging (soups, SWA): the mean of two models' tensors loads and evaluates.
    cfg.seed = 9;
    let other = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue).model.expect("model");
    let mean = super::test_support::mean_tensors(&model.tensors(), &other.tensors());
    let soup = model.with_tensors(&mean).expect("loads the mean");
    assert_eq!(soup.tensors(), mean);
    assert!(soup.evaluate(&data.test, &data.info).expect("evaluates")["accuracy"].is_finite());
    cfg.swa = Some(3);
    let swa = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(swa.status, Status::Completed, "{:?}", swa.status);
}
