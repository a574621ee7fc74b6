//! The `multiply(a, b, …)` merge: named nodes of one shape → their element-wise product.
//!
//! A node of shape `[c]` or `[c, 1, 1]` scales each channel of a `[c, h, w]` node (the
//! gate of a squeeze-and-excitation block); every other pair of shapes must be equal.
//! The product has the largest shape among its inputs and counts one FLOP per output
//! value for each input after the first.

use petgraph::graph::NodeIndex;

use super::Expander;
use crate::diagnostic::Code;
use crate::ir::submodel::{ExpandError, LayerKind, Shape, fmt_shape};
use crate::source::Span;

impl Expander<'_> {
    pub(super) fn multiply_nodes(&mut self, nodes: Vec<NodeIndex>, span: Span) -> Result<NodeIndex, ExpandError> {
        let shapes: Vec<Shape> = nodes.iter().map(|n| self.shape(*n)).collect();
        let full = shapes.iter().max_by_key(|s| (s.len(), s.iter().product::<usize>())).cloned().unwrap_or_default();
        let fits = |s: &Shape| {
            *s == full
                || match (s.as_slice(), full.as_slice()) {
                    ([c], [fc, _, _]) | ([c, 1, 1], [fc, _, _]) => c == fc,
                    _ => false,
                }
        };
        if let Some(bad) = shapes.iter().find(|s| !fits(s)) {
            let list = shapes.iter().map(|s| fmt_shape(s)).collect::<Vec<_>>().join(", ");
            let help = match (bad.as_slice(), full.as_slice()) {
                ([c], [fc, _, _]) | ([c, 1, 1], [fc, _, _]) => format!(
                    "a per-channel scale of {} has {fc} values, one per channel; this one has {c}",
                    fmt_shape(&full)
                ),
                _ => format!(
                    "`multiply` takes nodes of one shape, or a [c] (or [c, 1, 1]) node with a [c, h, w] one; {} does not fit {}",
                    fmt_shape(bad),
                    fmt_shape(&full)
                ),
            };
            return Err(ExpandError {
                code: Code::ShapeError,
                span,
                message: "cannot multiply tensors of these shapes".into(),
                label: format!("shapes {list}"),
                help: Some(help),
            });
        }
        let flops = (full.iter().product::<usize>() * (nodes.len() - 1)) as u64;
        self.add(LayerKind::Multiply, full, nodes, 0, flops, span, false)
    }
}
