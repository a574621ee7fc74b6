//! The layers of modern convnets: a call of `conv2d`'s `groups`, `conv_transpose2d`,
//! `upsample`, `groupnorm` or `rmsnorm` and its input shape → the node (kind, output
//! shape, parameters, FLOPs), or why not.
//!
//! Counting conventions, as for the other layers: a multiply-add is two FLOPs, a copy
//! one, a normalisation five (`groupnorm`, as `layernorm`) or four (`rmsnorm`: square,
//! sum, divide, scale) per value.

use super::{Built, Call};
use crate::diagnostic::Code;
use crate::ir::submodel::{ExpandError, LayerKind, Padding, fail};

/// `padding: same | valid` of a convolution.
pub(super) fn padding(call: &Call) -> Result<Padding, ExpandError> {
    match call.get("padding").map(|(v, s)| (v.as_sym().map(str::to_string), s)) {
        Some((Some(p), _)) if p == "same" => Ok(Padding::Same),
        Some((Some(p), _)) if p == "valid" => Ok(Padding::Valid),
        Some((_, s)) => fail(Code::UnknownValue, s, "padding is `same` or `valid`", "unknown padding"),
        None => Ok(Padding::Same),
    }
}

/// `conv2d`'s `groups`: a positive divisor of both the input channels `c` and `filters`.
pub(super) fn groups(call: &Call, c: usize, filters: usize) -> Result<usize, ExpandError> {
    let g = call.positive("groups")?;
    if c.is_multiple_of(g) && filters.is_multiple_of(g) {
        return Ok(g);
    }
    let at = call.get("groups").map_or(call.span, |(_, s)| s);
    let common: Vec<String> = (1..=gcd(c, filters))
        .filter(|d| c.is_multiple_of(*d) && filters.is_multiple_of(*d))
        .map(|d| d.to_string())
        .collect();
    Err(ExpandError {
        code: Code::InvalidValue,
        span: at,
        message: format!("`groups: {g}` does not divide the {c} input channels and the {filters} filters"),
        label: format!("{c} channels in, {filters} filters, {g} groups"),
        help: Some(format!(
            "`groups` divides both (here one of {}); a depthwise convolution has groups = channels = filters",
            common.join(", ")
        )),
    })
}

/// `conv_transpose2d(filters, kernel, stride, padding)`: `[c, h, w]` → `[filters, h·s, w·s]`
/// (same) or `[filters, (h-1)·s + k, (w-1)·s + k]` (valid). Every input value meets
/// `filters · k²` weights.
pub(super) fn conv_transpose2d(call: &Call) -> Result<Built, ExpandError> {
    let filters = call.positive("filters")?;
    let kernel = call.positive("kernel")?;
    let stride = call.positive("stride")?;
    let padding = padding(call)?;
    let (c, h, w) = call.image("conv_transpose2d")?;
    let (oh, ow) = match padding {
        Padding::Same => (h * stride, w * stride),
        Padding::Valid => ((h - 1) * stride + kernel, (w - 1) * stride + kernel),
    };
    let (k, c64, f) = (kernel as u64, c as u64, filters as u64);
    let params = c64 * f * k * k + f;
    let flops = 2 * c64 * f * k * k * (h * w) as u64;
    let kind = LayerKind::ConvTranspose2d { filters, kernel, stride, padding };
    Ok((kind, vec![filters, oh, ow], params, flops))
}

/// `upsample(factor, mode)`: `[c, h, w]` → `[c, h·f, w·f]`; a copy (nearest) or four
/// multiply-adds (bilinear) per output value.
pub(super) fn upsample(call: &Call) -> Result<Built, ExpandError> {
    let factor = call.positive("factor")?;
    let bilinear = match call.get("mode") {
        Some((v, s)) => match v.as_sym() {
            Some("nearest") => false,
            Some("bilinear") => true,
            _ => return fail(Code::UnknownValue, s, "`mode` is `nearest` or `bilinear`", "unknown mode"),
        },
        None => false,
    };
    let (c, h, w) = call.image("upsample")?;
    let out = vec![c, h * factor, w * factor];
    let n = out.iter().product::<usize>() as u64;
    Ok((LayerKind::Upsample { factor, bilinear }, out, 0, if bilinear { 8 * n } else { n }))
}

/// `groupnorm(groups)` on `[c, h, w]`, `groups` dividing `c`: a scale and a shift per channel.
pub(super) fn groupnorm(call: &Call) -> Result<Built, ExpandError> {
    let groups = call.positive("groups")?;
    let (c, _, _) = call.image("groupnorm")?;
    if !c.is_multiple_of(groups) {
        let at = call.get("groups").map_or(call.span, |(_, s)| s);
        let divisors: Vec<String> = (1..=c).filter(|d| c.is_multiple_of(*d)).map(|d| d.to_string()).collect();
        return Err(ExpandError {
            code: Code::InvalidValue,
            span: at,
            message: format!("`groupnorm({groups})` does not divide the {c} channels"),
            label: format!("{c} channels, {groups} groups"),
            help: Some(format!("the number of groups divides the channels: one of {}", divisors.join(", "))),
        });
    }
    let c64 = c as u64;
    Ok((LayerKind::GroupNorm { groups }, call.input.clone(), 2 * c64, 5 * call.size()))
}

/// `rmsnorm` over the last axis of any input: a scale per feature.
pub(super) fn rmsnorm(call: &Call) -> Result<Built, ExpandError> {
    let Some(&d) = call.input.last() else {
        return fail(Code::ShapeError, call.span, "`rmsnorm` needs an input with at least one axis", "an empty shape");
    };
    Ok((LayerKind::RmsNorm, call.input.clone(), d as u64, 4 * call.size()))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
