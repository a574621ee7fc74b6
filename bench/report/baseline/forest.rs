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

use bma::rng::Rng;

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
                // Cells between consecutive split points along j.
                let mut cuts: Vec<f64> = leaves.iter().flat_map(|(lo, hi, _)| [lo[j], hi[j]]).collect();
                cuts.sort_by(f64::total_cmp);
                cuts.dedup();
                let width = self.hi[j] - self.lo[j];
                let mut var = 0.0;
                for w in cuts.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    let mid = 0.5 * (a + b);
                    let marginal: f64 = leaves
                        .iter()
                        .zip(&fracs)
                        .filter(|((lo, hi, _), _)| lo[j] <= mid && mid <= hi[j])
                        .map(|(_, (f, v))| v * (0..d).filter(|k| *k != j).map(|k| f[k]).product::<f64>())
                        .sum();
                    var += (b - a) / width * (marginal - mean).powi(2);
                }
                *s += (var / total).min(1.0);
            }
        }
        if counted == 0 {
            return vec![0.0; d];
        }
        sum.iter().map(|s| s / counted as f64).collect()
    }
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

fn sse(y: &[f64], rows: &[usize]) -> f64 {
    let m = mean(y, rows);
    rows.iter().map(|i| (y[*i] - m).powi(2)).sum()
}

fn grow(x: &[Vec<f64>], y: &[f64], rows: Vec<usize>, depth: usize, rng: &mut Rng) -> Node {
    let here = sse(y, &rows);
    if depth >= 10 || rows.len() < 4 || here <= 1e-12 {
        return Node::Leaf(mean(y, &rows));
    }
    let d = x[0].len();
    let mut features: Vec<usize> = (0..d).collect();
    rng.shuffle(&mut features);
    let tried = if d <= 3 { d } else { d.div_ceil(2) };
    let mut best: Option<(f64, usize, f64)> = None;
    for &j in &features[..tried] {
        let mut values: Vec<f64> = rows.iter().map(|i| x[*i][j]).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        for w in values.windows(2) {
            let at = 0.5 * (w[0] + w[1]);
            let (l, r): (Vec<usize>, Vec<usize>) = rows.iter().partition(|i| x[**i][j] <= at);
            if l.len() < 2 || r.len() < 2 {
                continue;
            }
            let cost = sse(y, &l) + sse(y, &r);
            if best.is_none_or(|(c, _, _)| cost < c) {
                best = Some((cost, j, at));
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
        _ => Node::Leaf(mean(y, &rows)),
    }
}
