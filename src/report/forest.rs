//! A small random-forest regressor and fANOVA main-effect importances on it.
//!
//! Method (Hutter, Hoos & Leyton-Brown, ICML 2014, "An efficient approach for assessing
//! hyperparameter importance"): fit a random forest to (encoded parameters → objective);
//! each tree is a piecewise-constant function over the box of observed values. For
//! feature `i`, the marginal `fᵢ(xᵢ)` averages the tree over every other feature
//! uniformly on the box; its variance over `xᵢ` divided by the tree's total variance is
//! the fraction of the variance that `i` explains alone. Importances are those fractions
//! averaged over trees, then normalised to sum to 1 for display (the raw sum is below 1
//! when interactions matter). Trees: bootstrap samples; at each split every feature is
//! tried when there are at most 3, else ⌈d/2⌉ drawn at random; variance-reduction splits
//! at midpoints between observed values; depth ≤ 10; at least 2 samples per leaf.
//!
//! Cost: growing a tree sorts each tried feature's rows at each node and sweeps them once
//! with running sums, O(d·n log n) per level, O(d·n log n · depth) per tree; importances
//! take O(d·L log L) per tree of L leaves (a difference array over the cells of each
//! feature, not a pass over every leaf for every cell).

use crate::rng::Rng;

#[derive(Debug, Clone)]
enum Node {
    Leaf(f64),
    Split { feature: usize, at: f64, left: Box<Node>, right: Box<Node> },
}

/// A fitted forest with the box its features were observed in.
#[derive(Debug, Clone)]
pub struct Forest {
    trees: Vec<Node>,
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl Forest {
    /// Fits `trees` trees to rows `x` (all of one width) and targets `y`. `None` with
    /// fewer than two rows or no features.
    pub fn fit(x: &[Vec<f64>], y: &[f64], trees: usize, seed: u64) -> Option<Forest> {
        let d = x.first()?.len();
        if x.len() < 2 || d == 0 || y.len() != x.len() {
            return None;
        }
        let lo: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).fold(f64::INFINITY, f64::min)).collect();
        let hi: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).fold(f64::NEG_INFINITY, f64::max)).collect();
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(trees);
        for _ in 0..trees.max(1) {
            let rows: Vec<usize> = (0..x.len()).map(|_| rng.index(x.len())).collect();
            out.push(grow(x, y, rows, 0, &mut rng));
        }
        Some(Forest { trees: out, lo, hi })
    }

    /// The mean prediction of the trees at `row`.
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.trees.iter().map(|t| predict(t, row)).sum::<f64>() / self.trees.len() as f64
    }

    /// fANOVA main-effect fractions per feature (each in [0, 1]; see the module header).
    pub fn importances(&self) -> Vec<f64> {
        let d = self.lo.len();
        let mut sum = vec![0.0; d];
        let mut counted = 0usize;
        for tree in &self.trees {
            let mut leaves = Vec::new();
            collect(tree, self.lo.clone(), self.hi.clone(), &mut leaves);
            let fracs: Vec<(Vec<f64>, f64)> = leaves
                .iter()
                .map(|(lo, hi, v)| ((0..d).map(|j| frac(lo[j], hi[j], self.lo[j], self.hi[j])).collect(), *v))
                .collect();
            let mean: f64 = fracs.iter().map(|(f, v)| f.iter().product::<f64>() * v).sum();
            let total: f64 = fracs.iter().map(|(f, v)| f.iter().product::<f64>() * (v - mean).powi(2)).sum();
            if total <= 1e-15 {
                continue;
            }
            counted += 1;
            for (j, s) in sum.iter_mut().enumerate() {
                if self.hi[j] <= self.lo[j] {
                    continue;
                }
                *s += (marginal_variance(&leaves, &fracs, j, mean, self.hi[j] - self.lo[j]) / total).min(1.0);
            }
        }
        if counted == 0 {
            return vec![0.0; d];
        }
        sum.iter().map(|s| s / counted as f64).collect()
    }
}

/// The variance over feature `j`'s cells of the tree's marginal in `j`: each leaf adds
/// its value times its volume in the other features to the cells its `j` range covers.
fn marginal_variance(
    leaves: &[(Vec<f64>, Vec<f64>, f64)],
    fracs: &[(Vec<f64>, f64)],
    j: usize,
    mean: f64,
    width: f64,
) -> f64 {
    let mut cuts: Vec<f64> = leaves.iter().flat_map(|(lo, hi, _)| [lo[j], hi[j]]).collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    if cuts.len() < 2 {
        return 0.0;
    }
    let at = |v: f64| cuts.partition_point(|c| *c < v);
    let mut diff = vec![0.0; cuts.len()];
    for ((lo, hi, _), (f, v)) in leaves.iter().zip(fracs) {
        let others: f64 = f.iter().enumerate().filter(|(k, _)| *k != j).map(|(_, x)| x).product();
        let (a, b) = (at(lo[j]), at(hi[j]));
        if b > a {
            diff[a] += v * others;
            diff[b] -= v * others;
        }
    }
    let mut marginal = 0.0;
    let mut var = 0.0;
    for (k, w) in cuts.windows(2).enumerate() {
        marginal += diff[k];
        var += (w[1] - w[0]) / width * (marginal - mean).powi(2);
    }
    var
}

/// The fraction of `[lo_d, hi_d]` that `[lo, hi]` covers (1 for a flat dimension).
fn frac(lo: f64, hi: f64, lo_d: f64, hi_d: f64) -> f64 {
    if hi_d <= lo_d { 1.0 } else { ((hi.min(hi_d) - lo.max(lo_d)) / (hi_d - lo_d)).max(0.0) }
}

fn collect(node: &Node, lo: Vec<f64>, hi: Vec<f64>, out: &mut Vec<(Vec<f64>, Vec<f64>, f64)>) {
    match node {
        Node::Leaf(v) => out.push((lo, hi, *v)),
        Node::Split { feature, at, left, right } => {
            let mut left_hi = hi.clone();
            left_hi[*feature] = at.min(hi[*feature]);
            let mut right_lo = lo.clone();
            right_lo[*feature] = at.max(lo[*feature]);
            collect(left, lo, left_hi, out);
            collect(right, right_lo, hi, out);
        }
    }
}

fn predict(node: &Node, row: &[f64]) -> f64 {
    match node {
        Node::Leaf(v) => *v,
        Node::Split { feature, at, left, right } => {
            if row.get(*feature).copied().unwrap_or(0.0) <= *at {
                predict(left, row)
            } else {
                predict(right, row)
            }
        }
    }
}

fn mean(y: &[f64], rows: &[usize]) -> f64 {
    rows.iter().map(|i| y[*i]).sum::<f64>() / rows.len().max(1) as f64
}

fn grow(x: &[Vec<f64>], y: &[f64], rows: Vec<usize>, depth: usize, rng: &mut Rng) -> Node {
    let m = mean(y, &rows);
    // Targets centred on the node's mean, so running sums of squares do not cancel.
    let here: f64 = rows.iter().map(|i| (y[*i] - m).powi(2)).sum();
    if depth >= 10 || rows.len() < 4 || here <= 1e-12 {
        return Node::Leaf(m);
    }
    let d = x[0].len();
    let mut features: Vec<usize> = (0..d).collect();
    rng.shuffle(&mut features);
    let tried = if d <= 3 { d } else { d.div_ceil(2) };
    let n = rows.len() as f64;
    let (total, total_sq) = rows.iter().fold((0.0, 0.0), |(s, q), i| (s + (y[*i] - m), q + (y[*i] - m).powi(2)));
    let mut best: Option<(f64, usize, f64)> = None;
    let mut sorted = rows.clone();
    for &j in &features[..tried] {
        sorted.sort_by(|a, b| x[*a][j].total_cmp(&x[*b][j]));
        let (mut s, mut q) = (0.0, 0.0);
        for k in 0..sorted.len() - 1 {
            let v = y[sorted[k]] - m;
            s += v;
            q += v * v;
            let (a, b) = (x[sorted[k]][j], x[sorted[k + 1]][j]);
            // A split lies between distinct values, with at least 2 rows each side.
            if a == b || k + 1 < 2 || sorted.len() - k - 1 < 2 {
                continue;
            }
            let (nl, nr) = ((k + 1) as f64, n - (k + 1) as f64);
            let cost = (q - s * s / nl) + ((total_sq - q) - (total - s).powi(2) / nr);
            if best.is_none_or(|(c, _, _)| cost < c) {
                best = Some((cost, j, 0.5 * (a + b)));
            }
        }
    }
    match best {
        Some((cost, feature, at)) if cost < here - 1e-12 => {
            let (l, r): (Vec<usize>, Vec<usize>) = rows.iter().partition(|i| x[**i][feature] <= at);
            Node::Split {
                feature,
                at,
                left: Box::new(grow(x, y, l, depth + 1, rng)),
                right: Box::new(grow(x, y, r, depth + 1, rng)),
            }
        }
        _ => Node::Leaf(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forest_fits_a_step_and_finds_the_feature_that_matters() {
        let mut rng = Rng::new(3);
        let x: Vec<Vec<f64>> = (0..120).map(|_| vec![rng.f64(), rng.f64(), rng.f64()]).collect();
        let y: Vec<f64> = x.iter().map(|r| if r[1] > 0.5 { 2.0 } else { 0.0 } + 0.01 * r[0]).collect();
        let f = Forest::fit(&x, &y, 32, 1).expect("fits");
        assert!((f.predict(&[0.5, 0.9, 0.5]) - 2.0).abs() < 0.2);
        assert!(f.predict(&[0.5, 0.1, 0.5]).abs() < 0.2);
        let imp = f.importances();
        assert!(imp[1] > 0.9, "{imp:?}");
        assert!(imp[0] < 0.05 && imp[2] < 0.05, "{imp:?}");
    }

    #[test]
    fn an_additive_function_splits_its_variance_by_the_terms() {
        let mut rng = Rng::new(4);
        let x: Vec<Vec<f64>> = (0..300).map(|_| vec![rng.f64(), rng.f64()]).collect();
        // Var(2·x0) = 4/12, Var(x1) = 1/12: fractions 0.8 and 0.2.
        let y: Vec<f64> = x.iter().map(|r| 2.0 * r[0] + r[1]).collect();
        let imp = Forest::fit(&x, &y, 32, 2).expect("fits").importances();
        assert!((imp[0] - 0.8).abs() < 0.1 && (imp[1] - 0.2).abs() < 0.1, "{imp:?}");
    }

    #[test]
    fn too_little_data_is_none() {
        assert!(Forest::fit(&[vec![1.0]], &[1.0], 4, 0).is_none());
        assert!(Forest::fit(&[], &[], 4, 0).is_none());
    }
}
