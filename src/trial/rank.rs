//! Ranking finished trials: Pareto fronts with crowding distance, lexicographic and
//! weighted orders, constrained domination, and the hypervolume of a front.
//!
//! Takes trials (objective values, constraint violations) and the objectives'
//! directions, gives an order (best first), the first front, or a hypervolume.
//!
//! **Invariant:** a feasible trial always ranks before an infeasible one, and
//! infeasible trials rank by total violation (Deb's constrained domination) before
//! their objectives are looked at. Ties keep the input order, so every order here is
//! deterministic. A missing or NaN objective value counts as the worst possible.

use std::cmp::Ordering;

use std::fmt;

use super::{Direction, Trial};
use crate::catalogue;
use crate::ir::Value;

/// A `rank = ...` setting or a hypervolume request that makes no sense; the search
/// reports it as a setting error.
#[derive(Debug, Clone, PartialEq)]
pub struct RankError(pub String);

impl fmt::Display for RankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RankError {}

/// How several objectives are ranked.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Rank {
    /// Non-dominated fronts, crowding distance within a front (larger first).
    #[default]
    Pareto,
    /// The first objective, ties broken by the next.
    Lexicographic,
    /// A weighted sum of the objectives' raw values, in the experiment's order; higher is
    /// better (`weighted(accuracy: 1, latency: -0.001)` rewards accuracy, penalises latency).
    Weighted(Vec<f64>),
}

impl Rank {
    /// The rank a `rank = ...` setting names; `objectives` are the experiment's objective
    /// names in order (weights are matched to them by name; an objective not named weighs 0).
    pub fn from_setting(value: &Value, objectives: &[String]) -> Result<Rank, RankError> {
        use catalogue::Rank as Kind;
        let unknown = || {
            RankError(format!(
                "unknown rank `{value}` (expected pareto, lexicographic or weighted(objective: weight, ...))"
            ))
        };
        let kind = value.head().and_then(|name| catalogue::kind(catalogue::RANKS, name)).ok_or_else(unknown)?;
        match kind {
            Kind::Pareto if !matches!(value, Value::Call(_)) => Ok(Rank::Pareto),
            Kind::Lexicographic if !matches!(value, Value::Call(_)) => Ok(Rank::Lexicographic),
            Kind::Pareto | Kind::Lexicographic => Err(unknown()),
            Kind::Weighted => {
                let Value::Call(call) = value else {
                    return Err(RankError(
                        "`weighted` needs `objective: weight` pairs, e.g. `weighted(accuracy: 1, latency: -0.001)`"
                            .into(),
                    ));
                };
                let mut weights = vec![0.0; objectives.len()];
                for (name, v) in &call.args {
                    let Some(name) = name else {
                        return Err(RankError(format!(
                            "`weighted` takes `objective: weight` pairs, found the unnamed argument {v}"
                        )));
                    };
                    let Some(i) = objectives.iter().position(|o| o == name) else {
                        return Err(RankError(format!(
                            "`weighted` names `{name}`, which is not an objective (the objectives are: {})",
                            objectives.join(", ")
                        )));
                    };
                    match v.as_f64() {
                        Some(w) if w.is_finite() => weights[i] = w,
                        _ => {
                            return Err(RankError(format!("the weight of `{name}` must be a number, found {v}")));
                        }
                    }
                }
                if call.args.is_empty() {
                    return Err(RankError("`weighted` needs at least one `objective: weight` pair".into()));
                }
                Ok(Rank::Weighted(weights))
            }
        }
    }
}

/// Losses (lower is better) of a trial; missing or NaN values are `+inf`.
pub fn losses(trial: &Trial, directions: &[Direction]) -> Vec<f64> {
    directions
        .iter()
        .enumerate()
        .map(|(i, d)| match trial.values.get(i) {
            Some(v) if !v.is_nan() => d.loss(*v),
            _ => f64::INFINITY,
        })
        .collect()
}

/// Whether `a` Pareto-dominates `b` (both losses): no worse anywhere, better somewhere.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            better = true;
        }
    }
    better
}

/// Deb's constrained domination: feasible beats infeasible, less violation beats more,
/// and between feasible points plain Pareto domination.
pub fn constrained_dominates(a: &[f64], va: f64, b: &[f64], vb: f64) -> bool {
    match (va > 0.0, vb > 0.0) {
        (false, true) => true,
        (true, false) => false,
        (true, true) => va < vb,
        (false, false) => dominates(a, b),
    }
}

/// Fast non-dominated sorting (Deb et al. 2002) under constrained domination: the fronts,
/// best first, each a list of indices in increasing order. `violations[i]` is point `i`'s
/// total violation (0 when feasible).
pub fn fronts(points: &[Vec<f64>], violations: &[f64]) -> Vec<Vec<usize>> {
    let n = points.len();
    let viol = |i: usize| violations.get(i).copied().unwrap_or(0.0);
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if constrained_dominates(&points[i], viol(i), &points[j], viol(j)) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            } else if constrained_dominates(&points[j], viol(j), &points[i], viol(i)) {
                dominating[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        out.push(std::mem::replace(&mut current, next));
    }
    out
}

/// The crowding distance of each member of `front` (same order): boundary points are
/// infinite, others sum the normalised gap between their neighbours along each objective.
pub fn crowding(points: &[Vec<f64>], front: &[usize]) -> Vec<f64> {
    let k = front.len();
    let mut dist = vec![0.0; k];
    if k <= 2 {
        return vec![f64::INFINITY; k];
    }
    let m = front.iter().map(|&i| points[i].len()).min().unwrap_or(0);
    let mut idx: Vec<usize> = (0..k).collect();
    #[allow(clippy::needless_range_loop)] // `obj` indexes every point's objectives
    for obj in 0..m {
        let at = |a: usize| points[front[a]][obj];
        idx.sort_by(|&a, &b| at(a).total_cmp(&at(b)).then(a.cmp(&b)));
        let (lo, hi) = (at(idx[0]), at(idx[k - 1]));
        dist[idx[0]] = f64::INFINITY;
        dist[idx[k - 1]] = f64::INFINITY;
        let span = hi - lo;
        if !(span.is_finite() && span > 0.0) {
            continue;
        }
        for w in 1..k - 1 {
            let gap = at(idx[w + 1]) - at(idx[w - 1]);
            if gap.is_finite() {
                dist[idx[w]] += gap / span;
            }
        }
    }
    dist
}

/// Every point's (front number, crowding distance).
pub fn rank_and_crowding(points: &[Vec<f64>], violations: &[f64]) -> Vec<(usize, f64)> {
    let mut out = vec![(0, 0.0); points.len()];
    for (r, front) in fronts(points, violations).iter().enumerate() {
        for (i, c) in front.iter().zip(crowding(points, front)) {
            out[*i] = (r, c);
        }
    }
    out
}

/// Indices of `trials`, best first: feasible before infeasible (by total violation), then
/// by `rank`. With [`Rank::Pareto`]: by front, then larger crowding distance first, then by
/// the objectives in declared order.
pub fn order(trials: &[&Trial], directions: &[Direction], rank: &Rank) -> Vec<usize> {
    let points: Vec<Vec<f64>> = trials.iter().map(|t| losses(t, directions)).collect();
    let viol: Vec<f64> = trials.iter().map(|t| t.total_violation()).collect();
    let mut idx: Vec<usize> = (0..trials.len()).collect();
    let feasibility = |a: usize, b: usize| (viol[a] > 0.0).cmp(&(viol[b] > 0.0)).then(viol[a].total_cmp(&viol[b]));
    match rank {
        Rank::Pareto => {
            let rc = rank_and_crowding(&points, &viol);
            // Equal crowding (both ends of a front are infinite) falls back to the objectives in
            // the order they were declared, so the "best" of a front is the one best on the
            // first objective rather than the oldest trial.
            let lex = |a: usize, b: usize| {
                points[a]
                    .iter()
                    .zip(&points[b])
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            };
            idx.sort_by(|&a, &b| {
                rc[a].0.cmp(&rc[b].0).then(rc[b].1.total_cmp(&rc[a].1)).then(lex(a, b)).then(a.cmp(&b))
            });
        }
        Rank::Lexicographic => {
            idx.sort_by(|&a, &b| {
                let lex = points[a].iter().zip(&points[b]).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne());
                feasibility(a, b).then(lex.unwrap_or(Ordering::Equal)).then(a.cmp(&b))
            });
        }
        Rank::Weighted(weights) => {
            let score: Vec<f64> = trials.iter().map(|t| weighted_score(t, weights)).collect();
            idx.sort_by(|&a, &b| feasibility(a, b).then(score[b].total_cmp(&score[a])).then(a.cmp(&b)));
        }
    }
    idx
}

/// `Σ wᵢ·valueᵢ` on raw values (higher is better); `-inf` when a weighted value is missing or NaN.
pub fn weighted_score(trial: &Trial, weights: &[f64]) -> f64 {
    let mut s = 0.0;
    for (i, w) in weights.iter().enumerate() {
        if *w == 0.0 {
            continue;
        }
        match trial.values.get(i) {
            Some(v) if v.is_finite() => s += w * v,
            _ => return f64::NEG_INFINITY,
        }
    }
    s
}

/// Indices of the trials on the first front (constrained domination), in input order.
pub fn pareto_front(trials: &[&Trial], directions: &[Direction]) -> Vec<usize> {
    let points: Vec<Vec<f64>> = trials.iter().map(|t| losses(t, directions)).collect();
    let viol: Vec<f64> = trials.iter().map(|t| t.total_violation()).collect();
    fronts(&points, &viol).into_iter().next().unwrap_or_default()
}

/// The exact hypervolume dominated by `points` (losses, lower is better) and bounded by
/// `reference`, for 1, 2 or 3 objectives. Points not strictly better than the reference
/// on every objective add nothing. More than 3 objectives is an error.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> Result<f64, RankError> {
    let m = reference.len();
    if let Some(p) = points.iter().find(|p| p.len() != m) {
        return Err(RankError(format!(
            "hypervolume: a point has {} objectives but the reference point has {m}",
            p.len()
        )));
    }
    let inside: Vec<&[f64]> = points
        .iter()
        .filter(|p| p.iter().zip(reference).all(|(x, r)| !x.is_nan() && x < r))
        .map(|p| p.as_slice())
        .collect();
    match m {
        1 => Ok(inside.iter().map(|p| reference[0] - p[0]).fold(0.0, f64::max)),
        2 => Ok(hv2(inside.iter().map(|p| (p[0], p[1])).collect(), reference[0], reference[1])),
        3 => Ok(hv3(&inside, reference)),
        _ => Err(RankError(format!("hypervolume is computed for 1 to 3 objectives, not {m}"))),
    }
}

/// 2-d hypervolume: sort by the first objective, sweep the staircase.
fn hv2(mut pts: Vec<(f64, f64)>, r0: f64, r1: f64) -> f64 {
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut area = 0.0;
    let mut best_y = r1;
    for (x, y) in pts {
        if y < best_y {
            area += (r0 - x) * (best_y - y);
            best_y = y;
        }
    }
    area
}

/// 3-d hypervolume: slices along the third objective, each a 2-d hypervolume.
fn hv3(pts: &[&[f64]], r: &[f64]) -> f64 {
    let mut sorted: Vec<&[f64]> = pts.to_vec();
    sorted.sort_by(|a, b| a[2].total_cmp(&b[2]));
    let mut vol = 0.0;
    for i in 0..sorted.len() {
        let z = sorted[i][2];
        let z_next = sorted.get(i + 1).map(|p| p[2]).unwrap_or(r[2]);
        if z_next <= z {
            continue;
        }
        let slice: Vec<(f64, f64)> = sorted[..=i].iter().map(|p| (p[0], p[1])).collect();
        vol += hv2(slice, r[0], r[1]) * (z_next - z);
    }
    vol
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{CallValue, Point};

    fn trial(n: u64, values: &[f64], violations: &[f64]) -> Trial {
        let mut t = Trial::new(n, Point::new(), 0);
        t.values = values.to_vec();
        t.violations = violations.to_vec();
        t.state = super::super::TrialState::Complete;
        t
    }

    const MIN2: [Direction; 2] = [Direction::Minimize, Direction::Minimize];

    #[test]
    fn fronts_by_hand() {
        // (1,5) (2,3) (4,1) on front 0; (3,4) dominated by (2,3); (5,5) dominated by all of them.
        let pts = vec![vec![1.0, 5.0], vec![3.0, 4.0], vec![2.0, 3.0], vec![5.0, 5.0], vec![4.0, 1.0]];
        let f = fronts(&pts, &[0.0; 5]);
        assert_eq!(f, vec![vec![0, 2, 4], vec![1], vec![3]]);
    }

    #[test]
    fn crowding_by_hand() {
        // Front (0,4) (1,2) (3,1) (4,0): spans 4 and 4.
        let pts = vec![vec![0.0, 4.0], vec![1.0, 2.0], vec![3.0, 1.0], vec![4.0, 0.0]];
        let c = crowding(&pts, &[0, 1, 2, 3]);
        assert!(c[0].is_infinite() && c[3].is_infinite());
        // (1,2): x gap 3-0 = 3, y gap 4-1 = 3 → 3/4 + 3/4.
        assert!((c[1] - 1.5).abs() < 1e-12);
        // (3,1): x gap 4-1 = 3, y gap 2-0 = 2 → 3/4 + 2/4.
        assert!((c[2] - 1.25).abs() < 1e-12);
    }

    #[test]
    fn constraints_feasibility_first_then_violation() {
        let ts = [
            trial(0, &[0.0, 0.0], &[2.0]),   // best values, infeasible by 2
            trial(1, &[9.0, 9.0], &[0.0]),   // feasible, poor
            trial(2, &[-1.0, -1.0], &[0.5]), // infeasible by 0.5
            trial(3, &[5.0, 5.0], &[0.0]),   // feasible, dominates 1
        ];
        let refs: Vec<&Trial> = ts.iter().collect();
        for rank in [Rank::Pareto, Rank::Lexicographic, Rank::Weighted(vec![-1.0, -1.0])] {
            assert_eq!(order(&refs, &MIN2, &rank), vec![3, 1, 2, 0], "{rank:?}");
        }
        assert_eq!(pareto_front(&refs, &MIN2), vec![3]);
    }

    #[test]
    fn pareto_order_uses_crowding_within_a_front() {
        let ts = [
            trial(0, &[1.0, 2.0], &[]),
            trial(1, &[0.0, 4.0], &[]),
            trial(2, &[3.0, 1.0], &[]),
            trial(3, &[4.0, 0.0], &[]),
            trial(4, &[5.0, 5.0], &[]),
        ];
        let refs: Vec<&Trial> = ts.iter().collect();
        // Front {0,1,2,3}: 1 and 3 are boundaries (inf), then 0 (1.5) before 2 (1.25); then 4.
        assert_eq!(order(&refs, &MIN2, &Rank::Pareto), vec![1, 3, 0, 2, 4]);
        assert_eq!(pareto_front(&refs, &MIN2), vec![0, 1, 2, 3]);
    }

    #[test]
    fn pareto_ends_of_a_front_are_ordered_by_the_first_objective() {
        // Trial 0 is the cheap end (best second objective), trial 1 the accurate end: both
        // have infinite crowding; the first declared objective decides, not the trial number.
        let ts = [trial(0, &[0.04, 7.0], &[]), trial(1, &[0.01, 78.0], &[]), trial(2, &[0.05, 80.0], &[])];
        let refs: Vec<&Trial> = ts.iter().collect();
        assert_eq!(order(&refs, &MIN2, &Rank::Pareto), vec![1, 0, 2]);
    }

    #[test]
    fn lexicographic_and_weighted() {
        let dirs = [Direction::Maximize, Direction::Minimize]; // accuracy, latency
        let ts = [trial(0, &[0.90, 100.0], &[]), trial(1, &[0.95, 900.0], &[]), trial(2, &[0.90, 50.0], &[])];
        let refs: Vec<&Trial> = ts.iter().collect();
        assert_eq!(order(&refs, &dirs, &Rank::Lexicographic), vec![1, 2, 0]);
        // 0.9 - 0.1 = 0.8; 0.95 - 0.9 = 0.05; 0.9 - 0.05 = 0.85.
        assert_eq!(order(&refs, &dirs, &Rank::Weighted(vec![1.0, -0.001])), vec![2, 0, 1]);
    }

    #[test]
    fn nan_values_rank_last() {
        let ts = [trial(0, &[f64::NAN], &[]), trial(1, &[3.0], &[]), trial(2, &[1.0], &[])];
        let refs: Vec<&Trial> = ts.iter().collect();
        let d = [Direction::Minimize];
        assert_eq!(order(&refs, &d, &Rank::Pareto), vec![2, 1, 0]);
        assert_eq!(order(&refs, &d, &Rank::Lexicographic), vec![2, 1, 0]);
        assert_eq!(order(&refs, &d, &Rank::Weighted(vec![-1.0])), vec![2, 1, 0]);
    }

    #[test]
    fn from_setting() {
        let names = vec!["accuracy".to_string(), "latency".to_string()];
        assert_eq!(Rank::from_setting(&Value::sym("pareto"), &names), Ok(Rank::Pareto));
        assert_eq!(Rank::from_setting(&Value::sym("lexicographic"), &names), Ok(Rank::Lexicographic));
        let w = Value::Call(CallValue {
            name: "weighted".into(),
            args: vec![(Some("accuracy".into()), Value::Int(1)), (Some("latency".into()), Value::Float(-0.001))],
        });
        assert_eq!(Rank::from_setting(&w, &names), Ok(Rank::Weighted(vec![1.0, -0.001])));
        let bad = Value::Call(CallValue { name: "weighted".into(), args: vec![(Some("acc".into()), Value::Int(1))] });
        let err = Rank::from_setting(&bad, &names).unwrap_err().to_string();
        assert!(err.contains("`acc`") && err.contains("accuracy, latency"), "{err}");
        assert!(Rank::from_setting(&Value::sym("best"), &names).is_err());
    }

    #[test]
    fn hypervolume_2d_by_hand() {
        // Reference (4,4); points (1,3) (2,2) (3,1): staircase area = 3*1 + 2*1 + 1*1 = 6.
        let pts = vec![vec![1.0, 3.0], vec![2.0, 2.0], vec![3.0, 1.0]];
        assert_eq!(hypervolume(&pts, &[4.0, 4.0]), Ok(6.0));
        // A dominated point and one outside the reference change nothing.
        let more = [pts.clone(), vec![vec![3.0, 3.0], vec![5.0, 0.0]]].concat();
        assert_eq!(hypervolume(&more, &[4.0, 4.0]), Ok(6.0));
        assert_eq!(hypervolume(&[], &[1.0, 1.0]), Ok(0.0));
    }

    #[test]
    fn hypervolume_3d_by_hand() {
        // One point (0,0,0), reference (1,2,3): a box of 6.
        assert_eq!(hypervolume(&[vec![0.0, 0.0, 0.0]], &[1.0, 2.0, 3.0]), Ok(6.0));
        // (0,0,1) and (1,1,0), reference (2,2,2): 2*2*1 + 1*1*2 - overlap 1*1*1 = 5.
        let pts = vec![vec![0.0, 0.0, 1.0], vec![1.0, 1.0, 0.0]];
        assert_eq!(hypervolume(&pts, &[2.0, 2.0, 2.0]), Ok(5.0));
        // (0,1,1) (1,0,1) (1,1,0), reference (2,2,2): each dominates a 2x1x1 box, each pair and
        // the triple share [1,2]^3, so by inclusion-exclusion 3*2 - 3*1 + 1 = 4.
        let pts = vec![vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 1.0], vec![1.0, 1.0, 0.0]];
        assert_eq!(hypervolume(&pts, &[2.0, 2.0, 2.0]), Ok(4.0));
        assert!(hypervolume(&[vec![0.0; 4]], &[1.0; 4]).is_err());
        assert!(hypervolume(&[vec![0.0; 2]], &[1.0; 3]).is_err());
    }
}
