//! The layers along a sequence: `conv1d`, `maxpool1d`, `avgpool1d`, and `transpose`, which
//! turns a one-channel map (audio features) into a sequence.
//!
//! Takes a bound layer call ([`Call`]) and its input shape; gives the node (kind, output
//! shape, parameters, FLOPs) or a diagnostic naming the argument or the lengths at fault.
//! A sequence sample is `[t, c]`: time first, channels last.
//!
//! **Invariants:** an `Ok` output length is at least 1; `conv1d`'s `groups` divides both
//! its input channels and its `filters`; parameters are `kernel · c / groups · filters +
//! filters` and FLOPs `2 · kernel · c / groups · filters · t'` (a multiply-add counts two,
//! the bias none, as for `conv2d`); a pool counts one FLOP per window element.
//!
//! `padding: same` with stride `s` gives `t' = ⌈t / s⌉`, padded as TensorFlow does: the
//! `(t' − 1) · s + span − t` zeros split in two, the odd one at the end (`span` is the
//! dilated kernel, `dilation · (kernel − 1) + 1`). `valid` gives `⌊(t − span) / s⌋ + 1`.

use super::layers::{Built, Call};
use super::submodel::{ExpandError, LayerKind, Padding, fmt_shape};
use crate::diagnostic::Code;

/// The zeros `(before, after)` a `conv1d` of this kind adds to a sequence of length `t`.
pub fn conv1d_pad(t: usize, kernel: usize, stride: usize, dilation: usize, padding: Padding) -> (usize, usize) {
    match padding {
        Padding::Valid => (0, 0),
        Padding::Same => {
            let span = dilation.saturating_mul(kernel.max(1) - 1).saturating_add(1);
            let out = t.div_ceil(stride.max(1));
            let total = ((out.max(1) - 1).saturating_mul(stride)).saturating_add(span);
            let total = total.saturating_sub(t);
            (total / 2, total - total / 2)
        }
    }
}

/// `conv1d(filters, kernel, stride, padding, dilation, groups)` on `[t, c]`.
pub(super) fn conv1d(call: &Call) -> Result<Built, ExpandError> {
    let filters = call.positive("filters")?;
    let kernel = call.positive("kernel")?;
    let stride = call.positive("stride")?;
    let dilation = call.positive("dilation")?;
    let groups = call.positive("groups")?;
    let padding = match call.get("padding").map(|(v, s)| (v.as_sym().map(str::to_string), s)) {
        Some((Some(p), _)) if p == "same" => Padding::Same,
        Some((Some(p), _)) if p == "valid" => Padding::Valid,
        Some((_, s)) => {
            return Err(ExpandError {
                code: Code::UnknownValue,
                span: s,
                message: "padding is `same` or `valid`".into(),
                label: "unknown padding".into(),
                help: None,
            });
        }
        None => Padding::Same,
    };
    let (t, c) = sequence(call)?;
    for (what, n) in [("input channels", c), ("filters", filters)] {
        if !n.is_multiple_of(groups) {
            let at = call.get("groups").map_or(call.span, |(_, s)| s);
            return Err(ExpandError {
                code: Code::InvalidValue,
                span: at,
                message: format!("`conv1d` splits its {n} {what} into {groups} groups"),
                label: format!("`groups` is {groups}, which does not divide {n}"),
                help: Some(format!("use a divisor of {n} ({})", divisors(n))),
            });
        }
    }
    let span = dilation.saturating_mul(kernel - 1).saturating_add(1);
    let out = match padding {
        Padding::Same => t.div_ceil(stride),
        Padding::Valid if t < span => {
            let spans = if dilation > 1 {
                format!("the kernel of {kernel} with dilation {dilation} spans {span} positions")
            } else {
                format!("the kernel spans {span} positions")
            };
            return Err(ExpandError {
                code: Code::ShapeError,
                span: call.span,
                message: format!("the sequence has length {t}, shorter than the kernel's span {span}"),
                label: spans,
                help: Some(
                    "use `padding: same`, a smaller kernel or dilation, or shorten the sequence less before".into(),
                ),
            });
        }
        Padding::Valid => (t - span) / stride + 1,
    };
    let (k, cg, f) = (kernel as u64, (c / groups) as u64, filters as u64);
    let params = k.saturating_mul(cg).saturating_mul(f).saturating_add(f);
    let flops = 2u64.saturating_mul(k).saturating_mul(cg).saturating_mul(f).saturating_mul(out as u64);
    let kind = LayerKind::Conv1d { filters, kernel, stride, padding, dilation, groups };
    Ok((kind, vec![out, filters], params, flops))
}

/// `maxpool1d` (`max`) or `avgpool1d` on `[t, c]`: windows of `kernel` every `stride`, none
/// past the end.
pub(super) fn pool1d(call: &Call, max: bool) -> Result<Built, ExpandError> {
    let name = call.name;
    let kernel = call.positive("kernel")?;
    let stride = if call.get("stride").is_some_and(|(v, _)| v.as_sym() != Some("kernel")) {
        call.positive("stride")?
    } else {
        kernel
    };
    let (t, c) = sequence(call)?;
    if t < kernel {
        return Err(ExpandError {
            code: Code::ShapeError,
            span: call.span,
            message: format!("`{name}({kernel})` shrinks the sequence of length {t} to nothing"),
            label: format!("the sequence has length {t} here, the window {kernel}"),
            help: Some("use fewer pooling layers, or a smaller kernel".into()),
        });
    }
    let out = (t - kernel) / stride + 1;
    let kind = if max { LayerKind::MaxPool1d { kernel, stride } } else { LayerKind::AvgPool1d { kernel, stride } };
    Ok((kind, vec![out, c], 0, (c as u64).saturating_mul(out as u64).saturating_mul(kernel as u64)))
}

/// `transpose`: `[a, b]` → `[b, a]`; a one-channel map `[1, h, w]` → `[w, h]`.
pub(super) fn transpose(call: &Call) -> Result<Built, ExpandError> {
    match call.input.as_slice() {
        [a, b] | [1, a, b] => Ok((LayerKind::Transpose, vec![*b, *a], 0, 0)),
        other => Err(ExpandError {
            code: Code::ShapeError,
            span: call.span,
            message: "`transpose` needs a sequence [a, b] or a one-channel map [1, h, w]".into(),
            label: format!("the input here is {}", fmt_shape(other)),
            help: match other {
                [c, h, w] => Some(format!("`reshape({}, {w})` first makes the {c} channels one", c * h)),
                _ => None,
            },
        }),
    }
}

/// `conv1d(16, kernel: 3)`, as `bma graph` shows the node.
pub(super) fn describe(kind: &LayerKind) -> String {
    match kind {
        LayerKind::Conv1d { filters, kernel, stride, padding, dilation, groups } => format!(
            "conv1d({filters}, kernel: {kernel}, stride: {stride}, padding: {}, dilation: {dilation}, groups: {groups})",
            if *padding == Padding::Same { "same" } else { "valid" }
        ),
        LayerKind::MaxPool1d { kernel, stride } => format!("maxpool1d({kernel}, stride: {stride})"),
        LayerKind::AvgPool1d { kernel, stride } => format!("avgpool1d({kernel}, stride: {stride})"),
        LayerKind::Transpose => "transpose".into(),
        _ => String::new(),
    }
}

/// The input as a sequence `(t, c)`, or a shape error saying what makes one.
fn sequence(call: &Call) -> Result<(usize, usize), ExpandError> {
    match call.input.as_slice() {
        [t, c] => Ok((*t, *c)),
        other => Err(ExpandError {
            code: Code::ShapeError,
            span: call.span,
            message: format!("`{}` needs a sequence [length, channels]", call.name),
            label: format!("the input here is {}", fmt_shape(other)),
            help: Some(
                match other {
                    [_] => "token ids become a sequence with `embedding(data.vocab, dim)`",
                    [1, _, _] => {
                        "`transpose` turns a one-channel map [1, bins, frames] into the sequence [frames, bins]"
                    }
                    _ => "`reshape(t, c)` or `transpose` makes a sequence",
                }
                .into(),
            ),
        }),
    }
}

/// `1, 2, 3, 6` for 6.
fn divisors(n: usize) -> String {
    let all: Vec<String> =
        (1..=n.min(1 << 16)).filter(|d| n.is_multiple_of(*d)).take(12).map(|d| d.to_string()).collect();
    all.join(", ")
}
