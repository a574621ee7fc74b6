//! Mixed precision: `train { precision = f32 | f16 | bf16 }`.
//!
//! Takes a [`Precision`] and, for a training step, the f32 network; gives a low-precision
//! view of it ([`view`]) whose forward and backward passes compute in f16 or bf16, and tells
//! whether a device can compute in that type ([`supported`]) and whether a sub-model's
//! layers can ([`unsupported_layer`]).
//!
//! burn 0.22 has no autocast. What this does is autocast at the network's boundary, the
//! usual "f32 master weights" recipe:
//! - the weights the optimizer steps, its moments, and the weights that are evaluated,
//!   saved (`model.safetensors` is always f32), averaged and exported stay f32;
//! - each training step casts every trainable weight to the low type through burn's
//!   differentiable `cast` (its gradient is cast back to f32 onto the master weight), and the
//!   input batch likewise; the network's output is cast back to f32 and the loss computed in
//!   f32. Batch-norm running statistics are updated in the low type on the view and copied
//!   back to the master as f32 after each step;
//! - f16 (5 exponent bits) scales the loss before the backward pass so that small gradients
//!   do not flush to zero in f16, and each weight's gradient is divided by the scale again on
//!   its way back to f32 ([`grad_scaled`]). The scale is dynamic ([`LossScale`], PyTorch's
//!   `GradScaler` recipe and defaults): it starts at 2^16; a step whose gradients are not
//!   finite (f16 overflowed) is skipped and the scale halved; after 2,000 steps in a row
//!   with finite gradients it doubles. A scale driven below 2^-24 (gradients that overflow
//!   f16 even scaled down that far) ends the trial as `Failed`, naming the epoch and step.
//!   bf16 has f32's exponent range and needs no scale;
//! - validation metrics (and so early stopping, pruning and ranking) are computed with the
//!   f32 master weights in f32, like every later use of the model.
//!
//! **Invariants:** `F32` changes nothing (no view, no cast, no scale); a layer whose
//! forward pass makes f32 constants of its own (embedding masks, recurrent states,
//! attention masks, positional codes) is refused by [`unsupported_layer`] before training
//! (and by the checker)
//! rather than mixing types (which flex only checks in debug builds).

use burn::module::{ModuleMapper, Param, RunningState};
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use super::device::DeviceKind;
use super::net::{Net, Part};
use crate::ast::ExprKind;
use crate::catalogue;
use crate::ir::{self, Experiment, Value};

/// The float type a training step computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32 (the default).
    #[default]
    F32,
    /// IEEE half: 5 exponent bits, 10 mantissa bits; the loss is scaled.
    F16,
    /// bfloat16: f32's 8 exponent bits, 7 mantissa bits.
    Bf16,
}

/// For serde's `skip_serializing_if`: the default is not written.
pub(super) fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

/// The first loss scale of f16 training (a power of two, so scaling is exact): PyTorch's
/// `GradScaler` default.
pub const F16_LOSS_SCALE: f64 = 65536.0;

/// Steps in a row with finite gradients after which the f16 loss scale doubles.
pub const F16_GROWTH_INTERVAL: u32 = 2000;

/// The smallest f16 loss scale: below it, the gradients overflow f16 whatever the scale.
pub const F16_MIN_SCALE: f64 = 1.0 / 16_777_216.0;

/// The dynamic loss scale of a training run (1 but for f16, whose steps update it).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LossScale {
    scale: f64,
    /// Steps in a row with finite gradients since the last change.
    good: u32,
    /// Steps skipped because their gradients were not finite.
    pub(super) skipped: u64,
}

impl LossScale {
    pub(super) fn new(precision: Precision) -> LossScale {
        LossScale { scale: precision.loss_scale(), good: 0, skipped: 0 }
    }

    /// The factor the loss is multiplied by before the backward pass.
    pub(super) fn get(&self) -> f64 {
        self.scale
    }

    /// After a backward pass whose gradients were `finite` or not: whether the optimizer
    /// steps with them (`Ok(false)`: skip this step). Halves the scale on an overflow and
    /// doubles it after [`F16_GROWTH_INTERVAL`] finite steps (only f16 training asks).
    /// `Err` when an overflow would take the scale below [`F16_MIN_SCALE`].
    pub(super) fn update(&mut self, finite: bool) -> Result<bool, String> {
        if finite {
            self.good += 1;
            if self.good >= F16_GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good = 0;
            }
            return Ok(true);
        }
        self.good = 0;
        self.skipped += 1;
        let halved = self.scale / 2.0;
        if halved < F16_MIN_SCALE {
            return Err(format!(
                "the f16 gradients overflow even with the loss scaled by {}; use `precision = bf16` or `f32`",
                self.scale
            ));
        }
        self.scale = halved;
        Ok(false)
    }
}

/// Whether every gradient in `grads` of `net`'s weights is finite, with one read from the
/// device: the sum over the weights of `sum(g - g)`, zero when every element is finite and
/// NaN as soon as one is infinite or NaN.
pub(super) fn grads_finite(net: &Net, grads: &burn::optim::GradientsParams) -> bool {
    use burn::module::{Module, ModuleVisitor};
    struct Check<'a> {
        grads: &'a burn::optim::GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Check<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(g) = self.grads.get::<D>(param.id) else { return };
            let zero = (g.clone() - g).sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + zero,
                None => zero,
            });
        }
    }
    let mut check = Check { grads, total: None };
    net.visit(&mut check);
    check.total.is_none_or(|t| t.into_scalar::<f32>() == 0.0)
}

impl Precision {
    /// As written in a `.bma` file.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// The burn float type.
    pub(super) fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// The loss scale of this precision (1 but for f16).
    pub fn loss_scale(self) -> f64 {
        match self {
            Precision::F16 => F16_LOSS_SCALE,
            _ => 1.0,
        }
    }

    /// Reads a setting's value (`f16`), through the catalogue's names.
    pub fn from_value(v: &Value) -> Option<Precision> {
        Some(match catalogue::kind(catalogue::PRECISIONS, v.head()?)? {
            catalogue::Precision::F32 => Precision::F32,
            catalogue::Precision::F16 => Precision::F16,
            catalogue::Precision::Bf16 => Precision::Bf16,
        })
    }
}

/// Which precisions a device says it computes in (storage, conversion and arithmetic, as
/// burn's `Device::supports_dtype` answers), `f32` first.
pub fn of_device(kind: DeviceKind) -> Result<Vec<Precision>, String> {
    let device = super::device::burn_device(kind)?;
    Ok([Precision::F32, Precision::F16, Precision::Bf16]
        .into_iter()
        .filter(|p| *p == Precision::F32 || device.supports_dtype(p.dtype()))
        .collect())
}

/// The precision an experiment's `train { precision = ... }` names, when it is written as a
/// name (a searched or computed one is read per trial).
pub fn of_experiment(exp: &Experiment) -> Option<Precision> {
    let s = exp.train.iter().find(|s| s.key == "precision")?;
    match &s.value.kind {
        ExprKind::Name(n) => Precision::from_value(&Value::sym(n)),
        _ => None,
    }
}

/// Before a run: `Ok` when each of `devices` computes in the experiment's precision, else
/// the refusal for the first that does not.
pub fn preflight(exp: &Experiment, devices: &[DeviceKind]) -> Result<(), String> {
    let Some(p) = of_experiment(exp) else { return Ok(()) };
    devices.iter().try_for_each(|d| supported(*d, p))
}

/// `Ok` when `kind` computes in `precision`; else the message naming the device and what it
/// supports.
pub fn supported(kind: DeviceKind, precision: Precision) -> Result<(), String> {
    if precision == Precision::F32 {
        return Ok(());
    }
    let has = of_device(kind)?;
    refusal(kind, precision, &has).map_or(Ok(()), Err)
}

/// The message for `precision` on `kind`, which supports `has`; `None` when it is among them.
pub fn refusal(kind: DeviceKind, precision: Precision, has: &[Precision]) -> Option<String> {
    (!has.contains(&precision)).then(|| {
        format!(
            "`precision = {}`: the device {kind} cannot compute in {} (it supports {}); use `precision = {}`{}",
            precision.name(),
            precision.name(),
            has.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
            has.last().map_or("f32", |p| p.name()),
            if kind.backend() == "wgpu" && precision == Precision::Bf16 {
                " (wgpu's shaders have no bf16 arithmetic)"
            } else {
                ""
            }
        )
    })
}

/// The first layer of `sub` that cannot train in a low precision, as a message; `None` when
/// every layer can (see [`ir::LayerKind::f32_only`]).
pub fn unsupported_layer(sub: &ir::SubModel, precision: Precision) -> Option<String> {
    if precision == Precision::F32 {
        return None;
    }
    sub.layers().find(|l| l.kind.f32_only()).map(|l| {
        format!(
            "`precision = {}`: `{}` trains in f32 only (its forward pass makes f32 masks or states of its \
             own); use `precision = f32` for this model",
            precision.name(),
            l.name
        )
    })
}

/// Identity forward; the gradient times `factor` backward: `x·f + detach(x − x·f)`.
pub(super) fn grad_scaled<const D: usize>(x: Tensor<D>, factor: f64) -> Tensor<D> {
    let scaled = x.clone().mul_scalar(factor);
    scaled.clone() + (x - scaled).detach()
}

/// Casts every float tensor of a module: trainable ones through the gradient unscaling.
struct Cast {
    dtype: FloatDType,
    /// `1 / loss scale`.
    unscale: f64,
}

impl ModuleMapper for Cast {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (dtype, unscale) = (self.dtype, self.unscale);
        param.map(|t| {
            if t.is_require_grad() && unscale != 1.0 { grad_scaled(t, unscale).cast(dtype) } else { t.cast(dtype) }
        })
    }
}

/// The network in `precision` for one training step: its weights are differentiable casts
/// of `net`'s (so the gradients land on `net`'s f32 weights, divided by `scale`), its
/// batch-norm running statistics its own copies.
pub(super) fn view(net: &Net, precision: Precision, scale: &LossScale) -> Net {
    use burn::module::Module;
    net.snapshot().map(&mut Cast { dtype: precision.dtype(), unscale: 1.0 / scale.get() })
}

/// Puts the batch-norm running statistics `view` updated (its training forward pass) onto
/// `net`, as f32.
pub(super) fn keep_statistics(net: &mut Net, view: &Net) {
    for (mine, theirs) in net.parts.iter_mut().zip(&view.parts) {
        if let (Part::BatchNorm(m), Part::BatchNorm(t)) = (mine, theirs) {
            m.running_mean = RunningState::new(t.running_mean.value_sync().cast(FloatDType::F32));
            m.running_var = RunningState::new(t.running_var.value_sync().cast(FloatDType::F32));
        }
    }
}

/// `x` in `precision` (itself in f32).
pub(super) fn cast_in<const D: usize>(x: Tensor<D>, precision: Precision) -> Tensor<D> {
    if precision == Precision::F32 { x } else { x.cast(precision.dtype()) }
}

/// `x` back in f32.
pub(super) fn cast_out<const D: usize>(x: Tensor<D>, precision: Precision) -> Tensor<D> {
    if precision == Precision::F32 { x } else { x.cast(FloatDType::F32) }
}
