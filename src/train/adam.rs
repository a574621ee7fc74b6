//! Adam and AdamW in one pass over each parameter, with subnormal moments stored as zero.
//!
//! Takes the optimizer's settings (betas, epsilon, weight decay, coupled for `adam` and
//! decoupled for `adamw`); gives [`Adam`], a burn [`Optimizer`] that `train` wraps in a
//! `ModuleOptimizer` like burn's own. For an f32 parameter on the CPU (`flex`) device the step
//! reads the parameter, its gradient and both moments as f32 slices and updates them in one
//! loop ([`step_slices`]), in place when burn hands over uniquely owned buffers; burn's
//! `Adam`/`AdamW` run about a dozen element-wise tensor operations per parameter, each with
//! its own output buffer. Anything else (other dtypes or devices, AMSGrad state) takes burn's
//! optimizer with the same state.
//!
//! Why the flush: a parameter whose gradient has become exactly zero (a ReLU unit that no
//! longer fires, a dense weight fed only by such units) keeps moments that shrink by `beta1`
//! and `beta2` every step until they are subnormal, and there `m * 0.9` rounds back to `m` at a
//! few ulps: they never reach zero, and every later step multiplies subnormals, which x86
//! cores run through a microcode assist (about a hundred cycles per instruction). In the
//! Fashion-MNIST CNN benchmark this made the second epoch 25-35 % slower than the first
//! (`bench/train/RESULTS-fashion.md`). A moment below `f32::MIN_POSITIVE` in magnitude is
//! therefore stored as zero. Its contribution to the update is below `lr * 1.2e-38 / epsilon`
//! (about 1e-33 with Adam's `lr = 1e-3`, `epsilon = 1e-8`), far under half an ulp of any
//! weight above 1e-26 in magnitude.
//!
//! **Invariants:** the arithmetic is burn-optim 0.22.1's, operation for operation in the same
//! order and precision (f32, no fused multiply-add; `lr` and the AdamW decay factor rounded to
//! f32 as burn's scalar ops do), so parameters and moments equal burn's bit for bit whenever
//! no moment falls below `f32::MIN_POSITIVE`; the state type is burn's [`AdamState`], so
//! optimizer records keep burn's layout; NaN and infinities propagate as in burn's
//! (the flush compares magnitudes, which a NaN fails). Tested in `adam_tests.rs`.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    AdamConfig, AdamState, AdamW as BurnAdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer,
};
use burn::tensor::{DType, Device, Tensor, TensorData};

/// Adam (`decoupled == false`: weight decay added to the gradient) or AdamW (decay applied to
/// the weight, scaled by the learning rate), with burn's optimizer as the fallback.
#[derive(Clone)]
pub(crate) struct Adam {
    hyper: Hyper,
    fallback: Fallback,
}

/// The settings [`step_slices`] reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Hyper {
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub decay: Decay,
}

/// Weight decay as burn's two optimizers apply it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Decay {
    /// Adam without weight decay.
    None,
    /// Adam's L2 penalty: `g + w * penalty` before the moments.
    Coupled(f32),
    /// AdamW: `w * (1 - lr * decay)` before the update (nothing when `lr * decay == 0`).
    Decoupled(f32),
}

#[derive(Clone)]
enum Fallback {
    Adam(burn::optim::Adam),
    AdamW(BurnAdamW),
}

impl Adam {
    /// `adam(...)`: `weight_decay` is the L2 penalty added to the gradient, none when not positive.
    pub(crate) fn coupled(beta1: f32, beta2: f32, epsilon: f32, weight_decay: f64) -> Adam {
        let penalty = (weight_decay > 0.0).then_some(weight_decay as f32);
        let fallback = AdamConfig::new()
            .with_beta_1(beta1)
            .with_beta_2(beta2)
            .with_epsilon(epsilon)
            .with_weight_decay(penalty.map(|penalty| WeightDecayConfig { penalty }))
            .build();
        Adam {
            hyper: Hyper { beta1, beta2, epsilon, decay: penalty.map_or(Decay::None, Decay::Coupled) },
            fallback: Fallback::Adam(fallback),
        }
    }

    /// `adamw(...)`: decoupled weight decay.
    pub(crate) fn decoupled(beta1: f32, beta2: f32, epsilon: f32, weight_decay: f64) -> Adam {
        let decay = weight_decay as f32;
        let fallback = AdamWConfig::new()
            .with_beta_1(beta1)
            .with_beta_2(beta2)
            .with_epsilon(epsilon)
            .with_weight_decay(decay)
            .build();
        Adam {
            hyper: Hyper { beta1, beta2, epsilon, decay: Decay::Decoupled(decay) },
            fallback: Fallback::AdamW(fallback),
        }
    }

    /// burn's own step, on the same state.
    fn fallback_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        match &self.fallback {
            Fallback::Adam(adam) => adam.step(lr, tensor, grad, state),
            Fallback::AdamW(adamw) => {
                let (tensor, state) = adamw.step(lr, tensor, grad, state.map(|s| AdamWState::new(s.momentum)));
                (tensor, state.map(|s| AdamState::new(s.momentum)))
            }
        }
    }
}

impl Optimizer for Adam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        let fused = device == Device::flex()
            && tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && grad.shape() == tensor.shape()
            && state.as_ref().is_none_or(|s| {
                let m = &s.momentum;
                m.max_moment_2.is_none()
                    && m.moment_1.dtype() == DType::F32
                    && m.moment_2.dtype() == DType::F32
                    && m.moment_1.shape() == tensor.shape()
                    && m.moment_2.shape() == tensor.shape()
            });
        if !fused {
            return self.fallback_step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let n = shape.num_elements();
        let mut w = tensor.into_data();
        let g = grad.into_data();
        let (first, time, mut m1, mut m2) = match state {
            Some(s) => {
                let m = s.momentum;
                (false, m.time + 1, m.moment_1.into_data(), m.moment_2.into_data())
            }
            None => (true, 1, TensorData::new(vec![0.0f32; n], shape.clone()), TensorData::new(vec![0.0f32; n], shape)),
        };
        let done =
            match (w.as_mut_slice::<f32>(), g.as_slice::<f32>(), m1.as_mut_slice::<f32>(), m2.as_mut_slice::<f32>()) {
                (Ok(w), Ok(g), Ok(m1), Ok(m2)) if w.len() == n && g.len() == n && m1.len() == n && m2.len() == n => {
                    step_slices(&self.hyper, lr, time, first, w, g, m1, m2);
                    true
                }
                _ => false,
            };
        let tensor = Tensor::<D>::from_data(w, (&device, DType::F32));
        if !done {
            // Storage that cannot be read as f32 slices: burn's step, the data untouched.
            let grad = Tensor::<D>::from_data(g, (&device, DType::F32));
            let state = (!first).then(|| {
                AdamState::new(AdaptiveMomentumState::new(
                    time - 1,
                    Tensor::from_data(m1, (&device, DType::F32)),
                    Tensor::from_data(m2, (&device, DType::F32)),
                ))
            });
            return self.fallback_step(lr, tensor, grad, state);
        }
        let momentum = AdaptiveMomentumState::new(
            time,
            Tensor::from_data(m1, (&device, DType::F32)),
            Tensor::from_data(m2, (&device, DType::F32)),
        );
        (tensor, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// `x`, or zero when it is subnormal (NaN and the infinities stay).
#[inline(always)]
fn flush(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE { 0.0 } else { x }
}

/// One step of Adam (or AdamW) at step number `time` (1 for the first) over one parameter:
/// `w` the weights, `g` their gradient, `m1`/`m2` the moments (read unless `first`, when
/// they are the moments' initial values as burn computes them: `g * (1 - beta1)`, not
/// `0 * beta1 + ...`, which differs in the sign of a zero). burn-optim 0.22.1's arithmetic,
/// operation for operation, but the moments flushed (see the module header).
#[allow(clippy::too_many_arguments)]
pub(crate) fn step_slices(
    h: &Hyper,
    lr: LearningRate,
    time: usize,
    first: bool,
    w: &mut [f32],
    g: &[f32],
    m1: &mut [f32],
    m2: &mut [f32],
) {
    let (b1, b2) = (h.beta1, h.beta2);
    let (f1, f2) = (1.0 - b1, 1.0 - b2);
    let t = i32::try_from(time).unwrap_or(i32::MAX);
    let lr32 = lr as f32;
    // The moments' update, shared by both optimizers.
    let moments = |gi: f32, a: &mut f32, v: &mut f32| {
        let (na, nv) = if first { (gi * f1, (gi * gi) * f2) } else { (*a * b1 + gi * f1, *v * b2 + (gi * gi) * f2) };
        *a = flush(na);
        *v = flush(nv);
    };
    match h.decay {
        Decay::None | Decay::Coupled(_) => {
            let bc2 = (1.0 - b2.powi(t)).sqrt();
            let cf = bc2 / (1.0 - b1.powi(t));
            let eps = h.epsilon * bc2;
            let penalty = match h.decay {
                Decay::Coupled(p) => Some(p),
                _ => None,
            };
            let update = |wi: &mut f32, gi: f32, a: &mut f32, v: &mut f32| {
                moments(gi, a, v);
                let u = (*a * cf) / (v.sqrt() + eps);
                *wi -= u * lr32;
            };
            match penalty {
                None => {
                    for (((wi, gi), a), v) in w.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut()) {
                        update(wi, *gi, a, v);
                    }
                }
                Some(p) => {
                    for (((wi, gi), a), v) in w.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut()) {
                        let gi = *wi * p + *gi;
                        update(wi, gi, a, v);
                    }
                }
            }
        }
        Decay::Decoupled(decay) => {
            let c1 = 1.0f32 - b1.powi(t);
            let c2 = 1.0f32 - b2.powi(t);
            let eps = h.epsilon;
            let rate = lr * f64::from(decay);
            let keep = (1.0 - rate) as f32;
            let update = |wi: &mut f32, gi: f32, a: &mut f32, v: &mut f32| {
                moments(gi, a, v);
                let u = (*a / c1) / ((*v / c2).sqrt() + eps);
                *wi -= u * lr32;
            };
            if rate == 0.0 {
                for (((wi, gi), a), v) in w.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut()) {
                    update(wi, *gi, a, v);
                }
            } else {
                for (((wi, gi), a), v) in w.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut()) {
                    *wi *= keep;
                    update(wi, *gi, a, v);
                }
            }
        }
    }
}
