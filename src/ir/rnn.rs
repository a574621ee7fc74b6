//! The recurrent layers `lstm` and `gru`: their arguments and a sequence input `[t, d]`
//! → the node (kind, output shape, exact parameter and FLOP counts), or why not.
//!
//! Takes the bound call of the layer table (`layers.rs`); gives a [`LayerKind::Recurrent`].
//! **Invariant:** the counts are those of the tensors `train` builds for the node (per
//! direction: LSTM an input weight `[d, 4u]`, a recurrent weight `[u, 4u]` and one bias
//! `[4u]`; GRU `[d, 3u]`, `[u, 3u]` and two biases `[3u]`, the recurrent one inside the
//! reset gate's product as in PyTorch and cuDNN), and the output is `[units · directions]`
//! (`return: last`) or `[t, units · directions]` (`return: sequence`).

use serde::{Deserialize, Serialize};

use super::Value;
use super::layers::Built;
use super::submodel::{ExpandError, LayerKind, Shape, fmt_shape};
use crate::diagnostic::Code;
use crate::source::Span;

/// Which recurrence a recurrent layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RnnCell {
    /// Gates `[i, f, g, o]`: `c' = f·c + i·g`, `h' = o·tanh(c')`.
    Lstm,
    /// Gates `[r, z, n]`: `n = tanh(W_n x + b_n + r·(U_n h + b'_n))`, `h' = (1 − z)·n + z·h`.
    Gru,
}

impl RnnCell {
    /// The layer's name in the language.
    pub fn name(self) -> &'static str {
        match self {
            RnnCell::Lstm => "lstm",
            RnnCell::Gru => "gru",
        }
    }

    /// Gate blocks in the weights: 4 for LSTM, 3 for GRU.
    pub fn gates(self) -> usize {
        match self {
            RnnCell::Lstm => 4,
            RnnCell::Gru => 3,
        }
    }

    /// Bias vectors per direction (each `[gates · units]`).
    pub fn biases(self) -> usize {
        match self {
            RnnCell::Lstm => 1,
            RnnCell::Gru => 2,
        }
    }

    /// Element-wise FLOPs per unit and step besides the gate matmuls: LSTM adds the bias (4)
    /// and the recurrent product (4), the activations (4), `f·c + i·g` (3), `tanh(c')` (1),
    /// `o·tanh(c')` (1); GRU adds both biases (6), the r and z sums (2), their sigmoids (2),
    /// `r·(U_n h + b'_n)` (1), its sum (1), tanh (1) and `n + z·(h − n)` (3).
    fn pointwise(self) -> u64 {
        match self {
            RnnCell::Lstm => 17,
            RnnCell::Gru => 16,
        }
    }
}

/// `lstm` / `gru` on `[t, d]`, arguments already bound to the catalogue's signature.
pub(super) fn recurrent(
    cell: RnnCell,
    get: &dyn Fn(&str) -> Option<(Value, Span)>,
    units: usize,
    input: &Shape,
    span: Span,
) -> Result<Built, ExpandError> {
    let name = cell.name();
    let bidirectional = match get("bidirectional") {
        Some((Value::Bool(b), _)) => b,
        Some((other, s)) => {
            return Err(ExpandError {
                code: Code::TypeMismatch,
                span: s,
                message: format!("`bidirectional` of `{name}` must be a bool"),
                label: format!("this is the {} `{other}`", other.type_name()),
                help: Some("write `bidirectional: true` or `bidirectional: false`".into()),
            });
        }
        None => false,
    };
    let sequence = match get("return") {
        Some((v, s)) => match v.as_sym() {
            Some("last") => false,
            Some("sequence") => true,
            _ => {
                return Err(ExpandError {
                    code: Code::UnknownValue,
                    span: s,
                    message: format!("`return` of `{name}` is `last` or `sequence`"),
                    label: format!("this is `{v}`"),
                    help: Some("`last`: the state after the last token, `sequence`: the state at every step".into()),
                });
            }
        },
        None => false,
    };
    let [t, d] = input.as_slice() else {
        let help = match input.as_slice() {
            [n] => format!(
                "a flat input of {n} values is no sequence: `reshape(t, d)` makes one, `embedding` makes one from token ids"
            ),
            [_, _, _] => "an image is no sequence: `reshape(t, d)` makes one".to_string(),
            _ => "give it a sequence [length, dim]".to_string(),
        };
        return Err(ExpandError {
            code: Code::ShapeError,
            span,
            message: format!("`{name}` needs a sequence [length, dim]"),
            label: format!("the input here is {}", fmt_shape(input)),
            help: Some(help),
        });
    };
    let (t, d) = (*t as u64, *d as u64);
    let (u, g, dirs) = (units as u64, cell.gates() as u64, if bidirectional { 2 } else { 1 });
    let params = dirs * (g * u * (d + u) + cell.biases() as u64 * g * u);
    let flops = dirs * t * (2 * g * u * (d + u) + cell.pointwise() * u);
    let width = units * dirs as usize;
    let shape = if sequence { vec![t as usize, width] } else { vec![width] };
    Ok((LayerKind::Recurrent { cell, units, bidirectional, sequence }, shape, params, flops))
}
