//! STUB (being written): ranking of finished trials.

use super::{Direction, Trial};

/// How several objectives are ranked.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Rank {
    /// Non-dominated fronts, crowding distance within a front.
    #[default]
    Pareto,
    /// The first objective, ties broken by the next.
    Lexicographic,
    /// A weighted sum of the objectives, by name in the experiment's order.
    Weighted(Vec<f64>),
}

/// Indices of `trials`, best first: feasible before infeasible (by total violation).
pub fn order(trials: &[&Trial], directions: &[Direction], _rank: &Rank) -> Vec<usize> {
    let key = |t: &Trial| -> (bool, f64, f64) {
        let loss = directions.first().zip(t.values.first()).map(|(d, v)| d.loss(*v)).unwrap_or(f64::INFINITY);
        (!t.is_feasible(), t.total_violation(), loss)
    };
    let mut idx: Vec<usize> = (0..trials.len()).collect();
    idx.sort_by(|&a, &b| {
        let (ka, kb) = (key(trials[a]), key(trials[b]));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(ka.2.total_cmp(&kb.2)).then(a.cmp(&b))
    });
    idx
}
