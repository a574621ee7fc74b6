//! Helpers shared by the train unit tests of each layer family (`seq_tests`, `text_tests`,
//! `convnet_tests`): test-only.

use super::Tensors;

/// The element-wise mean of two models' tensors (a uniform soup of two), in `a`'s order
/// with `a`'s names and shapes.
pub(super) fn mean_tensors(a: &Tensors, b: &Tensors) -> Tensors {
    a.iter()
        .zip(b)
        .map(|((n, s, x), (_, _, y))| (n.clone(), s.clone(), x.iter().zip(y).map(|(x, y)| 0.5 * (x + y)).collect()))
        .collect()
}
