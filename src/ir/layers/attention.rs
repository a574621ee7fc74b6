//! The sequence layers of the layer table: `attention(heads, causal, rotary)` and
//! `positional(kind)` on a sequence `[t, d]` → `[t, d]`.
//!
//! Takes a bound call ([`super::Call`]) and its input shape; gives the node (kind, output
//! shape, exact parameter and FLOP counts per sample) or the diagnostic that says why not.
//! **Invariant:** the counts are the ones `train::net` builds and runs: attention holds four
//! `d → d` projections with biases, `4(d² + d)` parameters, and costs
//! `8td² + 4t²d + 5ht²` FLOPs (`+ 6td` with rotary): the projections, `QKᵀ` and `AV`
//! (two FLOPs per multiply-add, so they grow with t²), five per attention score for the
//! scaling and the softmax (shift, exp, sum, divide), three per rotated query and key value.

use super::{Built, Call};
use crate::diagnostic::Code;
use crate::ir::Value;
use crate::ir::submodel::{ExpandError, LayerKind, Positional, fail, fmt_shape};

/// `attention(heads, causal: false, rotary: false)`.
pub(super) fn attention(call: &Call) -> Result<Built, ExpandError> {
    let heads = call.positive("heads")?;
    let causal = flag(call, "causal")?;
    let rotary = flag(call, "rotary")?;
    let (t, d) = sequence(call, "attention")?;
    let at = call.get("heads").map_or(call.span, |(_, s)| s);
    if d % heads != 0 {
        let divisors: Vec<String> = (1..=d).filter(|k| d % k == 0).take(8).map(|k| k.to_string()).collect();
        return Err(ExpandError {
            code: Code::InvalidValue,
            span: at,
            message: format!("`attention` splits the dim {d} into {heads} heads, and {heads} does not divide {d}"),
            label: format!("`heads` is {heads}, the sequence's dim is {d}"),
            help: Some(format!("use a number of heads that divides {d}: {}", divisors.join(", "))),
        });
    }
    let head = d / heads;
    if rotary && head % 2 == 1 {
        return Err(ExpandError {
            code: Code::InvalidValue,
            span: call.get("rotary").map_or(call.span, |(_, s)| s),
            message: format!("rotary positions rotate pairs of values, and each head has {head} (an odd number)"),
            label: format!("{heads} heads of {head} dims over the dim {d}"),
            help: Some("use a number of heads that leaves an even size per head".into()),
        });
    }
    let (t, d, h) = (t as u64, d as u64, heads as u64);
    let params = 4 * (d * d + d);
    let flops = 8 * t * d * d + 4 * t * t * d + 5 * h * t * t + if rotary { 6 * t * d } else { 0 };
    Ok((LayerKind::Attention { heads, causal, rotary }, call.input.clone(), params, flops))
}

/// `positional(kind: sinusoidal | learned)`: adds a position code to each position, one
/// FLOP per value; `learned` holds a `[t, d]` table sized by the input's length.
pub(super) fn positional(call: &Call) -> Result<Built, ExpandError> {
    let (v, s) = call.get("kind").unwrap_or((Value::sym("sinusoidal"), call.span));
    let kind = match v.as_sym() {
        Some("sinusoidal") => Positional::Sinusoidal,
        Some("learned") => Positional::Learned,
        Some("rotary") => {
            return Err(ExpandError {
                code: Code::InvalidValue,
                span: s,
                message: "rotary positions rotate the queries and keys inside attention, not the sequence".into(),
                label: "`positional` adds a code to the sequence".into(),
                help: Some("leave out `positional` and write `attention(heads, rotary: true)`".into()),
            });
        }
        _ => {
            return fail(
                Code::UnknownValue,
                s,
                "`kind` of `positional` is `sinusoidal` or `learned`",
                format!("this is `{v}`"),
            );
        }
    };
    let (t, d) = sequence(call, "positional")?;
    let params = if kind == Positional::Learned { (t * d) as u64 } else { 0 };
    Ok((LayerKind::Positional(kind), call.input.clone(), params, (t * d) as u64))
}

/// The `[t, d]` of a sequence input.
fn sequence(call: &Call, what: &str) -> Result<(usize, usize), ExpandError> {
    match call.input.as_slice() {
        [t, d] => Ok((*t, *d)),
        _ => Err(ExpandError {
            code: Code::ShapeError,
            span: call.span,
            message: format!("`{what}` needs a sequence [length, dim]"),
            label: format!("the input here is {}", fmt_shape(call.input)),
            help: Some("a sequence comes from token ids, `embedding(data.vocab, dim)`, or from `reshape(t, d)`".into()),
        }),
    }
}

/// A `true`/`false` argument (its default is written as a symbol in the signature).
fn flag(call: &Call, k: &str) -> Result<bool, ExpandError> {
    let Some((v, s)) = call.get(k) else { return Ok(false) };
    match (&v, v.as_sym()) {
        (Value::Bool(b), _) => Ok(*b),
        (_, Some("true")) => Ok(true),
        (_, Some("false")) => Ok(false),
        _ => fail(
            Code::TypeMismatch,
            s,
            format!("`{k}` of `{}` must be `true` or `false`", call.name),
            format!("this is the {} `{v}`", v.type_name()),
        ),
    }
}
