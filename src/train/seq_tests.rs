//! `conv1d`, `maxpool1d`, `avgpool1d` and `transpose` against direct f64 computations
//! (forward and gradients), the padding mask that follows them, and a text model with
//! `conv1d` that trains, saves, reloads and averages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};

use super::net::{Mode, Net, Part, Plan, forward};
use super::*;
use crate::data;
use crate::rng::Rng;
use crate::source::Source;
use crate::train::test_support::{device, ids, values};

fn compile_model(data: &str, model: &str, train: &str) -> (ir::SubModel, crate::Compiled) {
    let src = format!(
        "experiment t {{\n data = {data}\n model {{ {model} }}\n train {{ {train} }}\n objective {{ maximize accuracy }}\n}}\n"
    );
    let compiled = crate::compile(&Source::new("t.bma", &src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, _) = crate::pins::expand_with_pins(&compiled, exp, &BTreeMap::new()).expect("expands");
    (sub, compiled)
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

fn close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{what}[{i}]: {a} vs {b}");
    }
}

/// A 1-D convolution written out: `x` `[b, t, c]`, `w` `[f, c / g, k]`; gives `[b, t', f]`.
#[derive(Clone, Copy, Debug)]
struct Conv {
    t: usize,
    c: usize,
    f: usize,
    k: usize,
    s: usize,
    d: usize,
    g: usize,
    same: bool,
}

impl Conv {
    fn span(&self) -> usize {
        self.d * (self.k - 1) + 1
    }
    /// Output length and zeros before, as TensorFlow pads `same`.
    fn out_and_before(&self) -> (usize, usize) {
        if self.same {
            let out = self.t.div_ceil(self.s);
            let total = ((out - 1) * self.s + self.span()).saturating_sub(self.t);
            (out, total / 2)
        } else {
            ((self.t - self.span()) / self.s + 1, 0)
        }
    }
    /// The input position read by output `j`, tap `i`, if inside the sequence.
    fn at(&self, j: usize, i: usize) -> Option<usize> {
        let (_, before) = self.out_and_before();
        (j * self.s + i * self.d).checked_sub(before).filter(|p| *p < self.t)
    }
    fn forward(&self, b: usize, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
        let (out, _) = self.out_and_before();
        let (cg, fg) = (self.c / self.g, self.f / self.g);
        let mut y = vec![0.0; b * out * self.f];
        for n in 0..b {
            for j in 0..out {
                for f in 0..self.f {
                    let grp = f / fg;
                    let mut acc = bias[f];
                    for i in 0..self.k {
                        let Some(p) = self.at(j, i) else { continue };
                        for cc in 0..cg {
                            acc += w[(f * cg + cc) * self.k + i] * x[(n * self.t + p) * self.c + grp * cg + cc];
                        }
                    }
                    y[(n * out + j) * self.f + f] = acc;
                }
            }
        }
        y
    }
    /// Gradients of `Σ y · r` for x, w and the bias.
    fn backward(&self, b: usize, x: &[f64], w: &[f64], r: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (out, _) = self.out_and_before();
        let (cg, fg) = (self.c / self.g, self.f / self.g);
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; self.f]);
        for n in 0..b {
            for j in 0..out {
                for f in 0..self.f {
                    let g = r[(n * out + j) * self.f + f];
                    db[f] += g;
                    let grp = f / fg;
                    for i in 0..self.k {
                        let Some(p) = self.at(j, i) else { continue };
                        for cc in 0..cg {
                            let xi = (n * self.t + p) * self.c + grp * cg + cc;
                            let wi = (f * cg + cc) * self.k + i;
                            dw[wi] += g * x[xi];
                            dx[xi] += g * w[wi];
                        }
                    }
                }
            }
        }
        (dx, dw, db)
    }
}

/// digits' `[1, 8, 8]` images through `transpose` are sequences `[8, 8]`: position `p` is
/// column `p`, channel `h` row `h`.
fn digits_as_sequence(x: &[f32], b: usize) -> Vec<f64> {
    let mut seq = vec![0.0; b * 64];
    for n in 0..b {
        for p in 0..8 {
            for h in 0..8 {
                seq[(n * 8 + p) * 8 + h] = f64::from(x[n * 64 + h * 8 + p]);
            }
        }
    }
    seq
}

#[test]
fn conv1d_after_transpose_matches_a_direct_computation_forward_and_backward() {
    let cases = [
        ("conv1d(6, kernel: 3)", Conv { t: 8, c: 8, f: 6, k: 3, s: 1, d: 1, g: 1, same: true }),
        (
            "conv1d(6, kernel: 3, stride: 2, padding: valid, dilation: 2, groups: 2)",
            Conv { t: 8, c: 8, f: 6, k: 3, s: 2, d: 2, g: 2, same: false },
        ),
        ("conv1d(8, kernel: 2, stride: 2, groups: 8)", Conv { t: 8, c: 8, f: 8, k: 2, s: 2, d: 1, g: 8, same: true }),
        // Stride 3 on 8 positions: 3 outputs, 2 zeros before and 2 after.
        ("conv1d(4, kernel: 4, stride: 3)", Conv { t: 8, c: 8, f: 4, k: 4, s: 3, d: 1, g: 1, same: true }),
        ("conv1d(5, kernel: 8, padding: valid)", Conv { t: 8, c: 8, f: 5, k: 8, s: 1, d: 1, g: 1, same: false }),
    ];
    let dev = device();
    let mut rng = Rng::new(3);
    for (layer, cv) in cases {
        let (sub, _) =
            compile_model("digits()", &format!("transpose {layer} flatten dense(data.classes)"), "epochs = 1");
        let conv = sub.layers().find(|l| l.name == "conv1d_1").expect("conv1d_1");
        let (out, _) = cv.out_and_before();
        assert_eq!(conv.shape, vec![out, cv.f], "{layer}");
        let per_group = (cv.c / cv.g * cv.k) as u64;
        assert_eq!(conv.params, per_group * cv.f as u64 + cv.f as u64, "{layer}");
        assert_eq!(conv.flops, 2 * per_group * (cv.f * out) as u64, "{layer}");
        let mut plan = Plan::new(&sub);
        plan.output = plan.ops.iter().position(|o| o.name == "conv1d_1").expect("op");
        let net = Net::init(&plan, Init::Default, &mut rng, &dev);
        let Some(Part::Conv1d(c)) = net.parts.first() else { panic!("conv1d first") };
        let (w, bias) = (values(c.w.val()), values(c.b.val()));
        assert_eq!(c.w.dims(), [cv.f, cv.c / cv.g, cv.k]);
        let b = 3;
        let xin = random(&mut rng, b * 64);
        let x = Tensor::<2>::from_data(TensorData::new(xin.clone(), [b, 64]), &dev).require_grad();
        let y = forward(&net, &plan, x.clone(), Mode::Eval, None).expect("forward");
        let seq = digits_as_sequence(&xin, b);
        close(&values(y.clone()), &cv.forward(b, &seq, &w, &bias), &format!("{layer} forward"));
        let r = random(&mut rng, b * out * cv.f);
        let rt = Tensor::<2>::from_data(TensorData::new(r.clone(), [b, out * cv.f]), &dev);
        let grads = (y * rt).sum().backward();
        let r: Vec<f64> = r.into_iter().map(f64::from).collect();
        let (dx, dw, db) = cv.backward(b, &seq, &w, &r);
        close(&values(c.w.val().grad(&grads).expect("dw")), &dw, &format!("{layer} dW"));
        close(&values(c.b.val().grad(&grads).expect("db")), &db, &format!("{layer} db"));
        // Back from sequence order to the image's.
        let gx = values(x.grad(&grads).expect("dx"));
        let gx_seq = digits_as_sequence(&gx.iter().map(|v| *v as f32).collect::<Vec<_>>(), b);
        close(&gx_seq, &dx, &format!("{layer} dx"));
    }
}

#[test]
fn pools_along_a_sequence_match_a_direct_computation_forward_and_backward() {
    let dev = device();
    let mut rng = Rng::new(8);
    for (layer, k, s, max) in [
        ("maxpool1d(2)", 2, 2, true),
        ("maxpool1d(3, stride: 2)", 3, 2, true),
        ("avgpool1d(3, stride: 1)", 3, 1, false),
    ] {
        let (sub, _) =
            compile_model("digits()", &format!("transpose {layer} flatten dense(data.classes)"), "epochs = 1");
        let out = (8 - k) / s + 1;
        let pool = sub.layers().nth(2).expect("pool");
        assert_eq!((pool.shape.clone(), pool.params, pool.flops), (vec![out, 8], 0, (8 * out * k) as u64), "{layer}");
        let mut plan = Plan::new(&sub);
        plan.output = 2;
        let net = Net::init(&plan, Init::Default, &mut rng, &dev);
        let b = 2;
        let xin = random(&mut rng, b * 64);
        let x = Tensor::<2>::from_data(TensorData::new(xin.clone(), [b, 64]), &dev).require_grad();
        let y = forward(&net, &plan, x.clone(), Mode::Eval, None).expect("forward");
        let seq = digits_as_sequence(&xin, b);
        let r = random(&mut rng, b * out * 8);
        let (mut want, mut dx) = (vec![0.0; b * out * 8], vec![0.0; b * 64]);
        for n in 0..b {
            for j in 0..out {
                for ch in 0..8 {
                    let at = |i: usize| (n * 8 + j * s + i) * 8 + ch;
                    let g = f64::from(r[(n * out + j) * 8 + ch]);
                    if max {
                        let best = (0..k).max_by(|a, b| seq[at(*a)].total_cmp(&seq[at(*b)])).expect("a tap");
                        want[(n * out + j) * 8 + ch] = seq[at(best)];
                        dx[at(best)] += g;
                    } else {
                        want[(n * out + j) * 8 + ch] = (0..k).map(|i| seq[at(i)]).sum::<f64>() / k as f64;
                        (0..k).for_each(|i| dx[at(i)] += g / k as f64);
                    }
                }
            }
        }
        close(&values(y.clone()), &want, &format!("{layer} forward"));
        let rt = Tensor::<2>::from_data(TensorData::new(r, [b, out * 8]), &dev);
        let grads = (y * rt).sum().backward();
        let gx = values(x.grad(&grads).expect("dx"));
        close(&digits_as_sequence(&gx.iter().map(|v| *v as f32).collect::<Vec<_>>(), b), &dx, &format!("{layer} dx"));
    }
}

/// A small labelled corpus ("good" reviews positive), written under `name`.
fn corpus(name: &str) -> PathBuf {
    super::test_support::corpus("seq", name)
}

fn text_data(name: &str, max_len: usize) -> String {
    format!(
        "text(\"{}\", text: \"review\", target: \"label\", max_len: {max_len}, vocab: 40, seed: 2)",
        corpus(name).display()
    )
}

#[test]
fn padding_after_a_text_does_not_change_what_conv1d_and_the_pools_give() {
    let dev = device();
    for body in [
        "conv1d(5, kernel: 3, stride: 2, padding: valid) global_maxpool",
        "conv1d(5, kernel: 3, dilation: 2) relu global_avgpool",
        "conv1d(5, kernel: 2, padding: valid) maxpool1d(2) global_maxpool",
        "avgpool1d(2, stride: 1) conv1d(4, kernel: 3, stride: 3, padding: valid) layernorm global_avgpool",
        // std::blocks::tcn_block(6, dilation: 2), written out: the shortcut gets a projection.
        "residual { conv1d(6, kernel: 3, dilation: 2) layernorm relu conv1d(6, kernel: 3, dilation: 2) layernorm } \
         relu global_maxpool",
    ] {
        let model = format!("embedding(data.vocab, 4) {body} dense(data.classes)");
        let mut outs = Vec::new();
        let mut weights: Option<Tensors> = None;
        for len in [6, 11] {
            let (sub, _) = compile_model(&text_data("pad", len), &model, "epochs = 1");
            let plan = Plan::new(&sub);
            let mut net = Net::init(&plan, Init::Default, &mut Rng::new(4), &dev);
            match &weights {
                Some(w) => net = net.load_tensors(&plan, w, &dev).expect("same tensors"),
                None => weights = Some(net.tensors(&plan)),
            }
            outs.push(values(forward(&net, &plan, ids(len, &dev), Mode::Eval, None).expect("forward")));
        }
        close(&outs[1], &outs[0], body);
    }
}

#[test]
fn a_strided_conv1d_hands_the_global_pool_the_mask_of_its_shorter_output() {
    let dev = device();
    let len = 8;
    let (sub, _) = compile_model(
        &text_data("strided", len),
        "embedding(data.vocab, 3) conv1d(2, kernel: 3, stride: 2, padding: valid) global_maxpool dense(data.classes)",
        "epochs = 1",
    );
    let plan = Plan::new(&sub);
    let net = Net::init(&plan, Init::Default, &mut Rng::new(11), &dev);
    let t = net.tensors(&plan);
    let get = |n: &str| t.iter().find(|x| x.0 == n).map(|x| x.2.iter().map(|v| f64::from(*v)).collect::<Vec<_>>());
    let (emb, w, bias) = (get("embedding_1.weight"), get("conv1d_1.weight"), get("conv1d_1.bias"));
    let (emb, w, bias) = (emb.expect("emb"), w.expect("w"), bias.expect("b"));
    let (dw, db) = (get("dense_1.weight").expect("dense w"), get("dense_1.bias").expect("dense b"));
    let x = ids(len, &dev);
    let rows = x.clone().into_data().try_to_vec::<f32>().expect("f32");
    let got = values(forward(&net, &plan, x, Mode::Eval, None).expect("forward"));
    let cv = Conv { t: len, c: 3, f: 2, k: 3, s: 2, d: 1, g: 1, same: false };
    for (r, row) in rows.chunks(len).enumerate() {
        let emb = &emb;
        let seq: Vec<f64> = row.iter().flat_map(|id| (0..3).map(move |j| emb[*id as usize * 3 + j])).collect();
        let y = cv.forward(1, &seq, &w, &bias);
        // Real windows: those a text of exactly its n tokens has, ⌊(n − 3) / 2⌋ + 1.
        let n = row.iter().filter(|v| **v != 0.0).count();
        let real = if n >= 3 { (n - 3) / 2 + 1 } else { 0 };
        let pooled: Vec<f64> = (0..2)
            .map(|f| if real == 0 { 0.0 } else { (0..real).map(|j| y[j * 2 + f]).fold(f64::MIN, f64::max) })
            .collect();
        for k in 0..2 {
            let want = db[k] + (0..2).map(|f| pooled[f] * dw[f * 2 + k]).sum::<f64>();
            assert!((got[r * 2 + k] - want).abs() < 1e-5, "row {r} (n = {n}): {} vs {want}", got[r * 2 + k]);
        }
    }
}

fn text_setup(name: &str, model: &str, train: &str) -> (ir::SubModel, Dataset, TrainConfig, ir::Value) {
    let data = text_data(name, 8);
    let (sub, compiled) = compile_model(&data, model, train);
    let exp = &compiled.program.experiments[0];
    let (_, point) = crate::pins::expand_with_pins(&compiled, exp, &BTreeMap::new()).expect("expands");
    let env = ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let value = ir::eval(&exp.data.as_ref().expect("data").value, &env).expect("data value");
    let loaded = data::load(&value, Path::new(".")).expect("loads");
    let cfg = TrainConfig::from_experiment(&compiled.program, exp, &point, &loaded.info, 1).expect("config");
    (sub, loaded, cfg, value)
}

#[test]
fn a_conv1d_text_model_trains_saves_reloads_and_averages() {
    let (sub, data, mut cfg, value) = text_setup(
        "trains",
        "embedding(data.vocab, 8) conv1d(8, kernel: 2, padding: valid) relu maxpool1d(2) global_maxpool dense(data.classes)",
        "optimizer = adam(0.02)\n epochs = 30\n batch = 8",
    );
    let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(out.status, Status::Completed, "{:?}", out.status);
    let model = out.model.expect("model");
    assert_eq!(out.metrics["params"] as u64, sub.params);
    assert_eq!(out.metrics["flops"] as u64, sub.flops);
    let train = model.evaluate(&data.train, &data.info).expect("evaluates");
    assert!(train["accuracy"] >= 0.9, "{train:?}");
    let dir = std::env::temp_dir().join(format!("bma-train-seq-save-{}", std::process::id()));
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
    let (back, _) = load(&dir).expect("loads");
    assert_eq!(back.tensors(), model.tensors());
    assert!(model.tensors().iter().any(|(n, s, _)| n == "conv1d_1.weight" && *s == vec![8, 8, 2]));
    let test = evaluate_saved(&dir, data::Part::Test).expect("evaluates");
    let direct = model.evaluate(&data.test, &data.info).expect("evaluates");
    assert_eq!(test["accuracy"], direct["accuracy"]);
    assert!((test["loss"] - direct["loss"]).abs() < 1e-9);
    // A soup: the mean of two models' tensors loads, and gives what its weights give.
    cfg.seed = 9;
    let other = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue).model.expect("model");
    let mean = super::test_support::mean_tensors(&model.tensors(), &other.tensors());
    let soup = model.with_tensors(&mean).expect("loads the mean");
    assert_eq!(soup.tensors(), mean);
    assert!(soup.evaluate(&data.test, &data.info).expect("evaluates")["loss"].is_finite());
    // SWA over the last epochs: trains and evaluates.
    cfg.swa = Some(3);
    let swa = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(swa.status, Status::Completed, "{:?}", swa.status);
    let swa = swa.model.expect("model").evaluate(&data.train, &data.info).expect("evaluates");
    assert!(swa["accuracy"] >= 0.8, "{swa:?}");
}
