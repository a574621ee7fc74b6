//! `attention`, `positional` and `dense` over sequences: forward and gradients against a
//! direct f64 computation written here, the padding mask and the causal mask, exact
//! parameter and FLOP counts, and a whole transformer model that ignores its padding.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::net::attention::{self as att, Attention};
use super::net::{Dense, Mode, Net, Part, Plan, forward};
use super::*;
use crate::source::Source;
use crate::train::test_support::device;

/// A small labelled corpus, written under `name` (tests run in parallel).
fn corpus(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bma-train-attention-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join(format!("{name}.csv"));
    let mut s = String::from("review,label\n");
    for i in 0..10 {
        s.push_str(&format!("\"good fun film {i}\",pos\n\"bad dull film {i}\",neg\n"));
    }
    std::fs::write(&p, s).expect("write");
    p
}

/// The sub-model of `model` on token ids of `max_len` (vocab 40).
fn expand(name: &str, model: &str, max_len: usize) -> ir::SubModel {
    let path = corpus(name);
    let src = format!(
        "use std::blocks::transformer_block\nexperiment t {{\n data = text(\"{}\", text: \"review\", target: \"label\", \
         max_len: {max_len}, vocab: 40, seed: 2)\n model {{ {model} }}\n objective {{ maximize accuracy }}\n}}\n",
        path.display()
    );
    let compiled = crate::compile(&Source::new("t.bma", &src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    crate::pins::expand_with_pins(&compiled, exp, &BTreeMap::new()).expect("expands").0
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Token ids with padding (0) at the end; every row has a token first.
const IDS: [[usize; 6]; 3] = [[2, 5, 5, 0, 0, 0], [7, 3, 1, 9, 4, 2], [6, 0, 0, 0, 0, 0]];

fn ids_tensor(rows: &[Vec<usize>], device: &Device) -> Tensor<2> {
    let t = rows[0].len();
    let flat: Vec<f32> = rows.iter().flatten().map(|v| *v as f32).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), t]), device)
}

/// The model `embedding(40, D) positional(kind) attention(H, causal, rotary)
/// global_avgpool dense(2)` computed directly in f64 from named weights.
struct Direct {
    w: BTreeMap<String, Vec<f64>>,
    learned: bool,
    causal: bool,
    rotary: bool,
}

const D: usize = 8;
const H: usize = 2;
const T: usize = 6;

impl Direct {
    fn get(&self, n: &str) -> &[f64] {
        self.w.get(n).unwrap_or_else(|| panic!("no {n}"))
    }

    /// `x W + b` for `x` rows of `D`, `W` `[D, D]` row-major.
    fn linear(&self, x: &[Vec<f64>], name: &str, out: usize) -> Vec<Vec<f64>> {
        let (w, b) = (self.get(&format!("{name}.weight")), self.get(&format!("{name}.bias")));
        x.iter()
            .map(|r| (0..out).map(|o| b[o] + (0..r.len()).map(|i| r[i] * w[i * out + o]).sum::<f64>()).collect())
            .collect()
    }

    /// Rotates each pair (c, c + dh/2) of each head of row `p`.
    fn rotate(&self, x: &mut [Vec<f64>]) {
        let (dh, half) = (D / H, D / H / 2);
        for (p, row) in x.iter_mut().enumerate() {
            for h in 0..H {
                for c in 0..half {
                    let angle = p as f64 / 10000f64.powf(2.0 * c as f64 / dh as f64);
                    let (a, b) = (row[h * dh + c], row[h * dh + c + half]);
                    row[h * dh + c] = a * angle.cos() - b * angle.sin();
                    row[h * dh + c + half] = a * angle.sin() + b * angle.cos();
                }
            }
        }
    }

    /// The attention outputs `[t][D]` of one sequence `x` with its token `mask`.
    fn attention(&self, x: &[Vec<f64>], mask: &[bool]) -> Vec<Vec<f64>> {
        let mut q = self.linear(x, "attention_1.q", D);
        let mut k = self.linear(x, "attention_1.k", D);
        let v = self.linear(x, "attention_1.v", D);
        if self.rotary {
            self.rotate(&mut q);
            self.rotate(&mut k);
        }
        let dh = D / H;
        let t = x.len();
        let mut out = vec![vec![0.0; D]; t];
        for h in 0..H {
            for i in 0..t {
                let seen: Vec<usize> = (0..t).filter(|j| mask[*j] && !(self.causal && *j > i)).collect();
                let s: Vec<f64> = seen
                    .iter()
                    .map(|j| (0..dh).map(|c| q[i][h * dh + c] * k[*j][h * dh + c]).sum::<f64>() / (dh as f64).sqrt())
                    .collect();
                let top = s.iter().copied().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - top).exp()).collect();
                let z: f64 = e.iter().sum();
                for (n, j) in seen.iter().enumerate() {
                    for c in 0..dh {
                        out[i][h * dh + c] += e[n] / z * v[*j][h * dh + c];
                    }
                }
            }
        }
        self.linear(&out, "attention_1.o", D)
    }

    /// The logits `[batch][2]` of `ids`.
    fn logits(&self, ids: &[[usize; T]]) -> Vec<Vec<f64>> {
        let emb = self.get("embedding_1.weight");
        ids.iter()
            .map(|row| {
                let mask: Vec<bool> = row.iter().map(|i| *i != 0).collect();
                let x: Vec<Vec<f64>> = row
                    .iter()
                    .enumerate()
                    .map(|(p, id)| {
                        (0..D)
                            .map(|j| {
                                let code = if self.learned {
                                    self.get("positional_1.weight")[p * D + j]
                                } else {
                                    let angle = p as f64 / 10000f64.powf((j - j % 2) as f64 / D as f64);
                                    if j % 2 == 0 { angle.sin() } else { angle.cos() }
                                };
                                emb[id * D + j] + code
                            })
                            .collect()
                    })
                    .collect();
                let y = self.attention(&x, &mask);
                let n = mask.iter().filter(|m| **m).count() as f64;
                let pooled: Vec<f64> =
                    (0..D).map(|j| (0..T).filter(|p| mask[*p]).map(|p| y[p][j]).sum::<f64>() / n).collect();
                self.linear(&[pooled], "dense_1", 2).remove(0)
            })
            .collect()
    }

    /// Σ logits · r.
    fn loss(&self, r: &[f64]) -> f64 {
        self.logits(&IDS).iter().flatten().zip(r).map(|(a, b)| a * b).sum()
    }
}

fn floats<const N: usize>(t: Tensor<N>) -> Vec<f64> {
    t.into_data().try_to_vec::<f32>().expect("f32").into_iter().map(f64::from).collect()
}

#[test]
fn attention_and_positions_match_a_direct_computation_forward_and_backward() {
    for (learned, causal, rotary) in
        [(false, false, false), (true, true, false), (false, false, true), (true, true, true)]
    {
        let kind = if learned { "learned" } else { "sinusoidal" };
        let sub = expand(
            kind,
            &format!(
                "embedding(data.vocab, {D}) positional({kind}) attention({H}, causal: {causal}, rotary: {rotary}) \
                 global_avgpool dense(data.classes)"
            ),
            T,
        );
        let (t, d, h) = (T as u64, D as u64, H as u64);
        let att_params = 4 * (d * d + d);
        let pos_params = if learned { t * d } else { 0 };
        assert_eq!(sub.params, 40 * d + pos_params + att_params + d * 2 + 2);
        let flops: BTreeMap<String, u64> = sub.layers().map(|l| (l.name.clone(), l.flops)).collect();
        let rot = if rotary { 6 * t * d } else { 0 };
        assert_eq!(flops["attention_1"], 8 * t * d * d + 4 * t * t * d + 5 * h * t * t + rot);
        assert_eq!(flops["positional_1"], t * d);
        let plan = Plan::new(&sub);
        let device = device();
        let net = Net::init(&plan, Init::Default, &mut crate::rng::Rng::new(3), &device);
        assert_eq!(net.trainable() as u64, sub.params);
        let tensors = net.tensors(&plan);
        let mut direct = Direct {
            w: tensors.iter().map(|(n, _, v)| (n.clone(), v.iter().map(|x| f64::from(*x)).collect())).collect(),
            learned,
            causal,
            rotary,
        };
        let rows: Vec<Vec<usize>> = IDS.iter().map(|r| r.to_vec()).collect();
        let out = forward(&net, &plan, ids_tensor(&rows, &device), Mode::Eval, None).expect("forward");
        let got = floats(out.clone());
        let want: Vec<f64> = direct.logits(&IDS).into_iter().flatten().collect();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() < 1e-4, "{kind} causal {causal} rotary {rotary}: logit {i}: {a} vs {b}");
        }
        // Gradients of Σ logits · r against central differences of the f64 model.
        let r = values(want.len(), 11);
        let rt = Tensor::<2>::from_data(
            TensorData::new(r.iter().map(|x| *x as f32).collect::<Vec<f32>>(), [IDS.len(), 2]),
            &device,
        );
        let grads = (out * rt).sum().backward();
        let mut burn_grads: Vec<(String, Vec<f64>)> = Vec::new();
        for (i, op) in plan.ops.iter().enumerate() {
            let Some(s) = net.slots[i].checked_sub(1) else { continue };
            let n = &op.name;
            let g = |p: &Param<Tensor<2>>| floats(p.val().grad(&grads).expect("grad"));
            let g1 = |p: &Param<Tensor<1>>| floats(p.val().grad(&grads).expect("grad"));
            match &net.parts[s] {
                Part::Embedding(e) => burn_grads.push((format!("{n}.weight"), g(&e.w))),
                Part::Positions(p) => burn_grads.push((format!("{n}.weight"), g(&p.w))),
                Part::Dense(d) => {
                    burn_grads.extend([(format!("{n}.weight"), g(&d.w)), (format!("{n}.bias"), g1(&d.b))])
                }
                Part::Attention(a) => {
                    for (p, d) in [("q", &a.q), ("k", &a.k), ("v", &a.v), ("o", &a.o)] {
                        burn_grads.push((format!("{n}.{p}.weight"), g(&d.w)));
                        burn_grads.push((format!("{n}.{p}.bias"), g1(&d.b)));
                    }
                }
                other => panic!("unexpected part {other:?}"),
            }
        }
        assert_eq!(burn_grads.len(), if learned { 12 } else { 11 });
        for (name, g) in &burn_grads {
            for (i, gi) in g.iter().enumerate() {
                let keep = direct.w[name][i];
                let eps = 1e-5;
                direct.w.get_mut(name).expect("w")[i] = keep + eps;
                let up = direct.loss(&r);
                direct.w.get_mut(name).expect("w")[i] = keep - eps;
                let down = direct.loss(&r);
                direct.w.get_mut(name).expect("w")[i] = keep;
                let fd = (up - down) / (2.0 * eps);
                assert!(
                    (gi - fd).abs() < 1e-4 * (1.0 + fd.abs()),
                    "{kind} causal {causal} rotary {rotary}: d/d {name}[{i}]: {gi} vs {fd}"
                );
            }
        }
        // Padding (id 0) is masked everywhere: its embedding row gets no gradient.
        let emb_grad = &burn_grads[0].1;
        assert!(emb_grad[..D].iter().all(|x| *x == 0.0), "{emb_grad:?}");
    }
}

/// An attention part with weights drawn from `seed`.
fn attention_part(seed: u64, device: &Device) -> Attention {
    let mut s = seed;
    let mut dense = || {
        s += 1;
        let w = values(D * D, s).into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let b = values(D, s + 100).into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        Dense {
            w: Param::from_tensor(Tensor::from_data(TensorData::new(w, [D, D]), device)),
            b: Param::from_tensor(Tensor::from_data(TensorData::new(b, [D]), device)),
        }
    };
    Attention { q: dense(), k: dense(), v: dense(), o: dense() }
}

fn sequence(b: usize, t: usize, seed: u64, device: &Device) -> Tensor<3> {
    let v = values(b * t * D, seed).into_iter().map(|x| (3.0 * x) as f32).collect::<Vec<f32>>();
    Tensor::from_data(TensorData::new(v, [b, t, D]), device)
}

fn mask(lengths: &[usize], t: usize, device: &Device) -> Tensor<2> {
    let m: Vec<f32> = lengths.iter().flat_map(|l| (0..t).map(move |p| if p < *l { 1.0 } else { 0.0 })).collect();
    Tensor::from_data(TensorData::new(m, [lengths.len(), t]), device)
}

#[test]
fn padded_keys_never_change_the_real_positions() {
    let device = device();
    let a = attention_part(1, &device);
    let lengths = [3, 5];
    let short = sequence(2, 5, 7, &device);
    // Four more positions of large junk: what a padded position holds must not matter.
    let long = Tensor::cat(vec![short.clone(), sequence(2, 4, 8, &device) * 10.0], 1);
    for (causal, rotary) in [(false, false), (true, false), (false, true), (true, true)] {
        let y5 = floats(att::attention(short.clone(), &a, H, causal, rotary, Some(&mask(&lengths, 5, &device))));
        let y9 = floats(att::attention(long.clone(), &a, H, causal, rotary, Some(&mask(&lengths, 9, &device))));
        for (row, len) in lengths.iter().enumerate() {
            for p in 0..*len {
                for j in 0..D {
                    let (x, y) = (y5[(row * 5 + p) * D + j], y9[(row * 9 + p) * D + j]);
                    assert!(
                        (x - y).abs() < 1e-5,
                        "causal {causal} rotary {rotary}: row {row} position {p}: {x} vs {y}"
                    );
                }
            }
        }
        // Without the mask the junk is attended to: the test can tell.
        let open = floats(att::attention(long.clone(), &a, H, causal, rotary, None));
        assert!((open[0] - y9[0]).abs() > 1e-3 || causal, "the junk changed nothing: the check is blind");
    }
}

#[test]
fn a_causal_output_depends_only_on_the_positions_up_to_its_own() {
    let device = device();
    let a = attention_part(4, &device);
    let x = sequence(1, 6, 3, &device);
    let mut changed = floats(x.clone());
    for j in 0..D {
        changed[4 * D + j] += 1.5;
    }
    let x2 = Tensor::<3>::from_data(
        TensorData::new(changed.iter().map(|v| *v as f32).collect::<Vec<f32>>(), [1, 6, D]),
        &device,
    );
    for (causal, rotary) in [(true, false), (true, true), (false, false)] {
        let y1 = floats(att::attention(x.clone(), &a, H, causal, rotary, None));
        let y2 = floats(att::attention(x2.clone(), &a, H, causal, rotary, None));
        let moved = |p: usize| (0..D).map(|j| (y1[p * D + j] - y2[p * D + j]).abs()).fold(0.0, f64::max);
        if causal {
            for p in 0..4 {
                assert!(moved(p) < 1e-6, "rotary {rotary}: position {p} saw position 4 ({})", moved(p));
            }
        } else {
            // The check can fail: without `causal`, earlier positions do see position 4.
            assert!((0..4).any(|p| moved(p) > 1e-4), "without causal, no earlier position saw position 4");
        }
        assert!(moved(4) > 1e-4, "position 4 itself changed");
    }
}

#[test]
fn dense_on_a_sequence_applies_one_map_at_each_position() {
    let sub = expand("dense_seq", "embedding(data.vocab, 4) dense(3) global_avgpool dense(data.classes)", T);
    let dense = sub.layers().find(|l| l.name == "dense_1").expect("dense_1");
    assert_eq!(dense.shape, vec![T, 3]);
    assert_eq!((dense.params, dense.flops), (4 * 3 + 3, 2 * T as u64 * 4 * 3));
    let plan = Plan::new(&sub);
    let device = device();
    let net = Net::init(&plan, Init::Default, &mut crate::rng::Rng::new(2), &device);
    assert_eq!(net.trainable() as u64, sub.params);
    let t = net.tensors(&plan);
    let w = |n: &str| t.iter().find(|x| x.0 == n).map(|x| x.2.iter().map(|v| f64::from(*v)).collect::<Vec<_>>());
    let (emb, w1, b1, w2, b2) = (
        w("embedding_1.weight").expect("e"),
        w("dense_1.weight").expect("w1"),
        w("dense_1.bias").expect("b1"),
        w("dense_2.weight").expect("w2"),
        w("dense_2.bias").expect("b2"),
    );
    let rows: Vec<Vec<usize>> = IDS.iter().map(|r| r.to_vec()).collect();
    let got = floats(forward(&net, &plan, ids_tensor(&rows, &device), Mode::Eval, None).expect("forward"));
    for (r, row) in IDS.iter().enumerate() {
        let toks: Vec<usize> = row.iter().copied().filter(|i| *i != 0).collect();
        let pooled: Vec<f64> = (0..3)
            .map(|o| {
                toks.iter().map(|id| b1[o] + (0..4).map(|i| emb[id * 4 + i] * w1[i * 3 + o]).sum::<f64>()).sum::<f64>()
                    / toks.len() as f64
            })
            .collect();
        for k in 0..2 {
            let want = b2[k] + (0..3).map(|o| pooled[o] * w2[o * 2 + k]).sum::<f64>();
            assert!((got[r * 2 + k] - want).abs() < 1e-5, "row {r}: {} vs {want}", got[r * 2 + k]);
        }
    }
}

#[test]
fn a_transformer_block_counts_exactly_and_ignores_padding() {
    let model = "embedding(data.vocab, 8) positional(sinusoidal) transformer_block(8, 2, 16) \
                 attention(2, rotary: true) global_avgpool dense(data.classes)";
    let short = expand("block6", model, 6);
    let long = expand("block11", model, 11);
    // The block: two layer norms (2·8 each), attention 4·(64 + 8), dense 8→16 and 16→8.
    let block = 2 * 16 + 4 * (64 + 8) + (8 * 16 + 16) + (16 * 8 + 8);
    assert_eq!(short.params, 40 * 8 + block + 4 * (64 + 8) + 8 * 2 + 2);
    let names: Vec<&str> = short.layers().map(|l| l.name.as_str()).collect();
    for n in ["layernorm_1", "attention_1", "add_1", "layernorm_2", "dense_1", "gelu_1", "dense_2", "add_2"] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
    let (t, d) = (6u64, 8u64);
    let flops = |s: &ir::SubModel, n: &str| s.layers().find(|l| l.name == n).map(|l| l.flops);
    assert_eq!(flops(&short, "dense_1"), Some(2 * t * d * 16));
    assert_eq!(flops(&short, "attention_1"), Some(8 * t * d * d + 4 * t * t * d + 5 * 2 * t * t));
    assert_eq!(flops(&long, "attention_1"), Some(8 * 11 * d * d + 4 * 11 * 11 * d + 5 * 2 * 11 * 11));
    let device = device();
    let (ps, pl) = (Plan::new(&short), Plan::new(&long));
    let net_s = Net::init(&ps, Init::Default, &mut crate::rng::Rng::new(8), &device);
    // The same weights in the model of length 11: only the padding differs.
    let net_l = Net::init(&pl, Init::Default, &mut crate::rng::Rng::new(99), &device)
        .load_tensors(&pl, &net_s.tensors(&ps), &device)
        .expect("same tensors");
    let rows6: Vec<Vec<usize>> = IDS.iter().map(|r| r.to_vec()).collect();
    let rows11: Vec<Vec<usize>> = rows6.iter().map(|r| r.iter().copied().chain([0; 5]).collect()).collect();
    let y6 = floats(forward(&net_s, &ps, ids_tensor(&rows6, &device), Mode::Eval, None).expect("forward"));
    let y11 = floats(forward(&net_l, &pl, ids_tensor(&rows11, &device), Mode::Eval, None).expect("forward"));
    for (a, b) in y6.iter().zip(&y11) {
        assert!((a - b).abs() < 1e-5, "{y6:?} vs {y11:?}");
    }
}

#[test]
fn the_memory_estimate_counts_the_attention_scores() {
    let with = expand("mem_a", "embedding(data.vocab, 8) attention(2) global_avgpool dense(data.classes)", 64);
    let without = expand("mem_b", "embedding(data.vocab, 8) layernorm global_avgpool dense(data.classes)", 64);
    // Same output shapes; attention holds 4·(64 + 8) parameters, layernorm 2·8; each
    // parameter counts 16 bytes, each kept value 4 bytes per row.
    let rows = (3 * 32).max(2 * memory::EVAL_ROWS) as u64;
    let diff = memory::estimate(&with, 32) - memory::estimate(&without, 32);
    assert_eq!(diff, (4 * (64 + 8) - 16) * 16 + 2 * 2 * 64 * 64 * rows * 4);
}
