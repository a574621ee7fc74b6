//! Tests of `adam.rs`: the one-pass Adam/AdamW against burn-optim's (bit for bit, several
//! steps, odd sizes, weight decay, NaN and infinities), against Adam written out in f64, the
//! subnormal moments of a parameter whose gradient stops, and burn's step for f64 tensors.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamState, AdamWConfig, AdamWState, Optimizer};
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::adam::Adam;
use crate::rng::Rng;

/// Which optimizer, as `train` builds it and as burn builds it.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Adam(f64),
    AdamW(f64),
}

fn ours(kind: Kind, beta2: f32) -> Adam {
    match kind {
        Kind::Adam(wd) => Adam::coupled(0.9, beta2, 1e-8, wd),
        Kind::AdamW(wd) => Adam::decoupled(0.9, beta2, 1e-8, wd),
    }
}

/// burn's optimizer for `kind`, stepping burn's own state types.
struct Burn {
    kind: Kind,
    beta2: f32,
}

impl Burn {
    fn step<const D: usize>(
        &self,
        lr: f64,
        w: Tensor<D>,
        g: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        match self.kind {
            Kind::Adam(wd) => AdamConfig::new()
                .with_beta_2(self.beta2)
                .with_epsilon(1e-8)
                .with_weight_decay((wd > 0.0).then_some(WeightDecayConfig { penalty: wd as f32 }))
                .build()
                .step(lr, w, g, state),
            Kind::AdamW(wd) => {
                let opt =
                    AdamWConfig::new().with_beta_2(self.beta2).with_epsilon(1e-8).with_weight_decay(wd as f32).build();
                let (w, s) = opt.step(lr, w, g, state.map(|s| AdamWState::new(s.momentum)));
                (w, s.map(|s| AdamState::new(s.momentum)))
            }
        }
    }
}

fn dev() -> Device {
    Device::flex()
}

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), &dev())
}

fn f32s<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.clone().into_data().try_to_vec::<f32>().expect("f32")
}

fn bits<const D: usize>(t: &Tensor<D>) -> Vec<u32> {
    f32s(t).into_iter().map(f32::to_bits).collect()
}

/// Parameter, moments (first, second), each as f32 bits.
fn snapshot<const D: usize>(w: &Tensor<D>, s: &Option<AdamState<D>>) -> [Vec<u32>; 3] {
    let s = s.as_ref().expect("state");
    [bits(w), bits(&s.momentum.moment_1), bits(&s.momentum.moment_2)]
}

/// Values of both signs over seven decades, as gradients and weights come.
fn values(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale * 10f64.powf(rng.uniform(-6.0, 0.0))) as f32).collect()
}

const KINDS: [Kind; 4] = [Kind::Adam(0.0), Kind::Adam(0.01), Kind::AdamW(0.01), Kind::AdamW(0.0)];

#[test]
fn fused_adam_and_adamw_equal_burns_bit_for_bit() {
    fn run<const D: usize>(kind: Kind, shape: [usize; D], seed: u64) {
        let n: usize = shape.iter().product();
        let mut rng = Rng::new(seed);
        let w0 = values(&mut rng, n, 1.0);
        let (opt, reference) = (ours(kind, 0.999), Burn { kind, beta2: 0.999 });
        let (mut a, mut sa) = (tensor(w0.clone(), shape), None);
        let (mut b, mut sb) = (tensor(w0, shape), None);
        for step in 0..7 {
            let g = values(&mut rng, n, 3.0);
            // A schedule's changing rate, and one step at zero (a warm-up's first).
            let lr = if step == 3 { 0.0 } else { 1e-3 * (1.0 + 0.37 * step as f64) };
            (a, sa) = opt.step(lr, a, tensor(g.clone(), shape), sa);
            (b, sb) = reference.step(lr, b, tensor(g, shape), sb);
            assert_eq!(snapshot(&a, &sa), snapshot(&b, &sb), "{kind:?} {shape:?} step {step}");
            assert_eq!(sa.as_ref().map(|s| s.momentum.time), Some(step + 1));
        }
        assert_ne!(f32s(&a), values(&mut Rng::new(seed), n, 1.0), "the weights moved");
    }
    for (i, kind) in KINDS.into_iter().enumerate() {
        run(kind, [1], i as u64);
        run(kind, [37], 10 + i as u64);
        run(kind, [3, 5, 2, 7], 20 + i as u64);
        run(kind, [130, 17], 30 + i as u64);
    }
}

#[test]
fn fused_adam_and_adamw_follow_the_algorithm_in_f64() {
    let (n, steps, lr) = (41, 9, 2e-3);
    for kind in KINDS {
        let mut rng = Rng::new(5);
        let w0 = values(&mut rng, n, 1.0);
        let grads: Vec<Vec<f32>> = (0..steps).map(|_| values(&mut rng, n, 2.0)).collect();
        let opt = ours(kind, 0.999);
        let (mut w, mut s) = (tensor(w0.clone(), [n]), None);
        for g in &grads {
            (w, s) = opt.step(lr, w, tensor(g.clone(), [n]), s);
        }
        // Kingma & Ba's Adam (decay as an L2 term), Loshchilov & Hutter's AdamW.
        // The settings as the f32 values the optimizer holds (0.999f32 is 0.999 + 1.3e-8, which
        // moves `1 - beta2` by 1.3e-5 relative).
        let (b1, b2, eps) = (f64::from(0.9f32), f64::from(0.999f32), f64::from(1e-8f32));
        let mut w64: Vec<f64> = w0.iter().map(|v| f64::from(*v)).collect();
        let (mut m, mut v) = (vec![0.0f64; n], vec![0.0f64; n]);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            for i in 0..n {
                let mut gi = f64::from(g[i]);
                if let Kind::Adam(wd) = kind {
                    gi += wd * w64[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let (mh, vh) = (m[i] / (1.0 - b1.powi(t)), v[i] / (1.0 - b2.powi(t)));
                match kind {
                    // burn's Adam scales epsilon by sqrt(1 - beta2^t): the same as adding it to sqrt(v).
                    Kind::Adam(_) => w64[i] -= lr * mh / (vh.sqrt() + eps),
                    Kind::AdamW(wd) => w64[i] = w64[i] * (1.0 - lr * wd) - lr * mh / (vh.sqrt() + eps),
                }
            }
        }
        let got = f32s(&w);
        for i in 0..n {
            let err = (f64::from(got[i]) - w64[i]).abs();
            // f32 rounding of the weight and of each step's update (at most about 3.2 lr, its
            // first moment a difference of terms up to that size, so relative to lr, not to itself).
            assert!(
                err <= 1e-6 * w64[i].abs() + 1e-5 * lr * steps as f64,
                "{kind:?} [{i}]: {} vs {} (error {err:e})",
                got[i],
                w64[i]
            );
        }
    }
}

#[test]
fn moments_of_a_parameter_whose_gradient_stops_are_flushed_not_left_subnormal() {
    // beta2 = 0.95 so that the second moment, too, decays into the subnormals within the test.
    let subnormal = |x: &f32| *x != 0.0 && x.abs() < f32::MIN_POSITIVE;
    for kind in [Kind::Adam(0.0), Kind::AdamW(0.01)] {
        let (n, lr) = (64, 1e-3);
        let mut rng = Rng::new(9);
        let w0 = values(&mut rng, n, 1.0);
        let (opt, reference) = (ours(kind, 0.95), Burn { kind, beta2: 0.95 });
        let (mut a, mut sa) = (tensor(w0.clone(), [n]), None);
        let (mut b, mut sb) = (tensor(w0, [n]), None);
        for step in 0..2200 {
            let g = if step < 20 { values(&mut rng, n, 1.0) } else { vec![0.0; n] };
            (a, sa) = opt.step(lr, a, tensor(g.clone(), [n]), sa);
            (b, sb) = reference.step(lr, b, tensor(g, [n]), sb);
        }
        let [wa, m1a, m2a] = snapshot(&a, &sa).map(|v| v.into_iter().map(f32::from_bits).collect::<Vec<_>>());
        let [wb, m1b, m2b] = snapshot(&b, &sb).map(|v| v.into_iter().map(f32::from_bits).collect::<Vec<_>>());
        // burn's moments got stuck a few ulps above zero (what made the epochs slow) ...
        assert!(m1b.iter().all(subnormal) && m2b.iter().filter(|x| subnormal(x)).count() > n / 2, "{kind:?}: {m2b:?}");
        // ... ours are zero, and the weights are burn's to the bit: what the flush dropped was
        // far below half an ulp of every weight.
        assert!(m1a.iter().chain(&m2a).all(|x| *x == 0.0), "{kind:?}: {m1a:?} {m2a:?}");
        assert_eq!(
            wa.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            wb.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn nan_and_infinite_gradients_reach_the_weights_as_in_burn() {
    for kind in KINDS {
        let w0 = vec![0.5, -0.25, 1.0, 2.0, -3.0, 0.0];
        let g = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e-30, 0.0];
        let (opt, reference) = (ours(kind, 0.999), Burn { kind, beta2: 0.999 });
        let (a, sa) = opt.step(1e-3, tensor(w0.clone(), [6]), tensor(g.clone(), [6]), None);
        let (b, sb) = reference.step(1e-3, tensor(w0, [6]), tensor(g, [6]), None);
        let [wa, ma, va] = snapshot(&a, &sa);
        let [wb, mb, vb] = snapshot(&b, &sb);
        let same = |x: &[u32], y: &[u32]| {
            x.iter().zip(y).all(|(p, q)| {
                let (p, q) = (f32::from_bits(*p), f32::from_bits(*q));
                (p.is_nan() && q.is_nan()) || p.to_bits() == q.to_bits()
            })
        };
        assert!(same(&wa, &wb) && same(&ma, &mb) && same(&va, &vb), "{kind:?}: {wa:x?} vs {wb:x?}");
        assert!(f32::from_bits(wa[0]).is_nan() && f32::from_bits(wa[1]).is_nan(), "{kind:?}");
    }
}

#[test]
fn f64_parameters_take_burns_step_with_the_same_state() {
    let f64s = |t: &Tensor<1>| t.clone().into_data().try_to_vec::<f64>().expect("f64");
    let t64 = |v: &[f64]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), (&dev(), DType::F64));
    for kind in KINDS {
        let w0 = [0.5, -0.25, 1.0, 2.0, -3.0];
        let (opt, reference) = (ours(kind, 0.999), Burn { kind, beta2: 0.999 });
        let (mut a, mut sa) = (t64(&w0), None);
        let (mut b, mut sb) = (t64(&w0), None);
        for step in 0..3 {
            let g = [0.1, -0.2 * step as f64, 3.0, 1e-3, -1.0];
            (a, sa) = opt.step(1e-2, a, t64(&g), sa);
            (b, sb) = reference.step(1e-2, b, t64(&g), sb);
        }
        assert_eq!(a.dtype(), DType::F64);
        assert_eq!(f64s(&a), f64s(&b), "{kind:?}");
        let (ma, mb) = (sa.expect("state").momentum, sb.expect("state").momentum);
        assert_eq!((ma.time, f64s(&ma.moment_2)), (mb.time, f64s(&mb.moment_2)), "{kind:?}");
    }
}
