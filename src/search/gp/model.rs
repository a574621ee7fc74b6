//! The Gaussian-process regressor: a Matérn kernel (`nu = 5/2`, or `3/2` where the caller
//! lets the fit choose, [`Smoothness`]) with one length scale per dimension (ARD), a signal
//! variance and a noise variance, fitted by maximising the log marginal likelihood plus
//! Optuna's `GPSampler` priors.
//!
//! Takes inputs already scaled (numeric coordinates in `[0, 1]`, categorical ones as an
//! index compared by Hamming distance) and standardised outputs; gives the posterior mean
//! and variance at any point, with their gradients along the numeric coordinates.
//!
//! Parameters are fitted in log space: `log rho_k` (inverse squared length scales),
//! `log s` (signal variance) and `log (noise - MIN_NOISE)`. The priors are Optuna 5's
//! (`optuna/_gp/prior.py`): `-(0.1 / rho + 0.1 rho)` per dimension, Gamma(2, 1) on `s`,
//! Gamma(1.1, 30) on the noise. The objective's gradient comes from the Cholesky factor:
//! `K^-1` as `L^-T L^-1` once per evaluation (`n^3 / 3` flops beside the factorisation's
//! `n^3 / 6`), the inputs' pairwise differences once per fit ([`Pairs`]). How many
//! iterations, and from which starts, is the caller's [`Effort`].
//!
//! **Invariant:** a [`Model`] always holds a valid Cholesky factor: the noise is at least
//! [`MIN_NOISE`], and when the factorisation fails anyway a jitter is added until it
//! succeeds; the posterior variance is never negative.

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

use super::lbfgs;

/// The smallest noise variance (Optuna's `DEFAULT_MINIMUM_NOISE_VAR`).
pub const MIN_NOISE: f64 = 1e-6;

/// The kernel's smoothness: Matérn with `nu = 5/2` (twice differentiable samples, the
/// default and Optuna's) or `nu = 3/2` (once differentiable: kinks and rugged functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smoothness {
    Matern52,
    Matern32,
}

impl Smoothness {
    /// The correlation at squared (scaled) distance `d2`, and its derivative in `d2`.
    pub fn correlation(self, d2: f64) -> (f64, f64) {
        match self {
            Smoothness::Matern52 => matern52(d2),
            Smoothness::Matern32 => matern32(d2),
        }
    }
}

/// Kernel hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// One inverse squared length scale per input dimension.
    pub rho: Vec<f64>,
    /// Signal variance (`k(x, x)`).
    pub scale: f64,
    /// Noise variance.
    pub noise: f64,
    /// The kernel ([`Smoothness`]): chosen by the fit when the [`Effort`] offers both.
    pub smoothness: Smoothness,
}

impl Params {
    /// Optuna's starting point: every parameter 1.
    pub fn default_for(d: usize) -> Params {
        Params { rho: vec![1.0; d], scale: 1.0, noise: 1.0, smoothness: Smoothness::Matern52 }
    }

    fn to_raw(&self) -> Vec<f64> {
        let mut raw: Vec<f64> = self.rho.iter().map(|r| r.ln()).collect();
        raw.push(self.scale.ln());
        // The inverse of `from_raw` (a start at the noise floor sits at the lower bound).
        raw.push((self.noise - MIN_NOISE).max(1e-300).ln());
        raw
    }

    fn from_raw(raw: &[f64], smoothness: Smoothness) -> Params {
        let d = raw.len() - 2;
        Params {
            rho: raw[..d].iter().map(|r| r.exp()).collect(),
            scale: raw[d].exp(),
            noise: raw[d + 1].exp() + MIN_NOISE,
            smoothness,
        }
    }
}

/// The Matérn-5/2 correlation at squared (scaled) distance `d2`, and its derivative in `d2`.
pub fn matern52(d2: f64) -> (f64, f64) {
    let r = (5.0 * d2.max(0.0)).sqrt();
    let e = (-r).exp();
    (e * (1.0 + r + r * r / 3.0), -5.0 / 6.0 * (1.0 + r) * e)
}

/// The Matérn-3/2 correlation at squared (scaled) distance `d2`, and its derivative in `d2`.
pub fn matern32(d2: f64) -> (f64, f64) {
    let r = (3.0 * d2.max(0.0)).sqrt();
    let e = (-r).exp();
    (e * (1.0 + r), -1.5 * e)
}

/// Squared difference of two points along each dimension (Hamming for categorical ones).
fn sq_diff(a: &[f64], b: &[f64], cat: &[bool], out: &mut [f64]) {
    for k in 0..a.len() {
        out[k] = if cat[k] { if a[k] == b[k] { 0.0 } else { 1.0 } } else { (a[k] - b[k]) * (a[k] - b[k]) };
    }
}

/// The kernel between two points.
pub fn kernel(a: &[f64], b: &[f64], cat: &[bool], p: &Params) -> f64 {
    let mut d2 = 0.0;
    for k in 0..a.len() {
        let sd = if cat[k] { if a[k] == b[k] { 0.0 } else { 1.0 } } else { (a[k] - b[k]) * (a[k] - b[k]) };
        d2 += p.rho[k] * sd;
    }
    p.scale * p.smoothness.correlation(d2).0
}

/// The kernel matrix of `xs` with itself, noise not included.
pub fn kernel_matrix(xs: &[Vec<f64>], cat: &[bool], p: &Params) -> DMatrix<f64> {
    let n = xs.len();
    let mut k = DMatrix::zeros(n, n);
    for i in 0..n {
        k[(i, i)] = p.scale;
        for j in 0..i {
            let v = kernel(&xs[i], &xs[j], cat, p);
            k[(i, j)] = v;
            k[(j, i)] = v;
        }
    }
    k
}

/// How much work a fit does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effort {
    /// L-BFGS iterations from each start, at most.
    pub max_iter: usize,
    /// Optuna's default start is tried beside the given ones (always when none is given).
    pub default_start: bool,
    /// The smoothnesses each start is fitted with, the best log posterior kept (empty: each
    /// start's own; the default start's is Matérn-5/2).
    pub smoothness: &'static [Smoothness],
}

impl Effort {
    /// A fit from scratch: the default start beside the given ones, 200 iterations.
    pub const FULL: Effort = Effort { max_iter: 200, default_start: true, smoothness: &[] };
    /// [`Effort::FULL`] with both smoothnesses tried from every start.
    pub const FULL_EITHER: Effort =
        Effort { smoothness: &[Smoothness::Matern52, Smoothness::Matern32], ..Effort::FULL };
    /// A fit from the given starts only, with their own smoothness.
    pub const fn warm(max_iter: usize) -> Effort {
        Effort { max_iter, default_start: false, smoothness: &[] }
    }
}

/// A GP conditioned on data: the factor of `K + noise I` and `alpha = (K + noise I)^-1 y`.
#[derive(Debug, Clone)]
pub struct Model {
    pub xs: Vec<Vec<f64>>,
    pub cat: Vec<bool>,
    pub params: Params,
    chol: Cholesky<f64, Dyn>,
    alpha: DVector<f64>,
}

impl Model {
    /// The posterior given `params` (no fitting).
    pub fn new(xs: Vec<Vec<f64>>, ys: &[f64], cat: Vec<bool>, params: Params) -> Model {
        let chol = factor(kernel_matrix(&xs, &cat, &params), params.noise);
        let alpha = chol.solve(&DVector::from_column_slice(ys));
        Model { xs, cat, params, chol, alpha }
    }

    /// The model with hyperparameters fitted to `(xs, ys)`: L-BFGS on the log posterior from
    /// each of `starts` (Optuna's default is always tried too), the best kept.
    pub fn fit(xs: Vec<Vec<f64>>, ys: &[f64], cat: Vec<bool>, starts: &[Params]) -> Model {
        Model::fit_with(xs, ys, cat, starts, Effort::FULL)
    }

    /// [`Model::fit`] with `effort`'s iterations, from `starts` and, when
    /// `effort.default_start` holds or `starts` is empty, Optuna's default start; each start
    /// fitted with every smoothness of `effort.smoothness` (or its own), the best log
    /// posterior kept: the marginal likelihood chooses the kernel too.
    pub fn fit_with(xs: Vec<Vec<f64>>, ys: &[f64], cat: Vec<bool>, starts: &[Params], effort: Effort) -> Model {
        let d = cat.len();
        let mut inits: Vec<Params> = starts.iter().filter(|p| p.rho.len() == d).cloned().collect();
        let default = Params::default_for(d);
        if (effort.default_start || inits.is_empty()) && !inits.contains(&default) {
            inits.push(default.clone());
        }
        let mut lo = vec![-12.0; d + 2];
        let mut hi = vec![12.0; d + 2];
        lo[d] = -12.0;
        hi[d] = 6.0;
        lo[d + 1] = -40.0;
        hi[d + 1] = 2.0;
        let options = lbfgs::Options { max_iter: effort.max_iter, gtol: 1e-2, ftol: 1e-9, memory: 10 };
        let pairs = Pairs::new(&xs, &cat);
        let mut best: Option<(f64, Params)> = None;
        for init in &inits {
            let own = [init.smoothness];
            let smoothnesses = if effort.smoothness.is_empty() { &own[..] } else { effort.smoothness };
            for &smoothness in smoothnesses {
                let (raw, v) = lbfgs::minimize(
                    |raw, grad| neg_log_posterior_pairs(&pairs, ys, raw, smoothness, grad),
                    &init.to_raw(),
                    &lo,
                    &hi,
                    options,
                );
                if v.is_finite() && best.as_ref().is_none_or(|(b, _)| v < *b) {
                    best = Some((v, Params::from_raw(&raw, smoothness)));
                }
            }
        }
        let params = best.map(|(_, p)| p).unwrap_or(default);
        Model::new(xs, ys, cat, params)
    }

    /// The same hyperparameters, conditioned on more points as well (kriging believer:
    /// pending points enter with their own posterior mean as the observation), and those
    /// means.
    pub fn with_fantasies(&self, ys: &[f64], pending: &[Vec<f64>]) -> (Model, Vec<f64>) {
        if pending.is_empty() {
            return (self.clone(), Vec::new());
        }
        let means: Vec<f64> = pending.iter().map(|x| self.posterior(x).0).collect();
        let mut xs = self.xs.clone();
        xs.extend(pending.iter().cloned());
        let ys: Vec<f64> = ys.iter().chain(&means).copied().collect();
        (Model::new(xs, &ys, self.cat.clone(), self.params.clone()), means)
    }

    /// Leave-one-out predictions at the model's own points, in closed form from the factor
    /// (Rasmussen & Williams, eq. 5.12): the mean `y_i - [K^-1 y]_i / [K^-1]_ii` and the
    /// variance `1 / [K^-1]_ii` (noise included) of each `y_i` predicted from the others,
    /// with these hyperparameters. `ys` are the outputs the model was conditioned on.
    pub fn leave_one_out(&self, ys: &[f64]) -> Vec<(f64, f64)> {
        let inv = self.chol.inverse();
        ys.iter()
            .enumerate()
            .map(|(i, y)| {
                let d = inv[(i, i)].max(1e-300);
                (y - self.alpha[i] / d, 1.0 / d)
            })
            .collect()
    }

    /// [`Model::leave_one_out`]'s means at the points `at` only: `[K^-1]_ii` is `|L^-1 e_i|^2`,
    /// one triangular solve per point (`n^2` each) instead of the whole inverse (`n^3`).
    pub fn leave_one_out_means_at(&self, ys: &[f64], at: &[usize]) -> Vec<f64> {
        let n = self.xs.len();
        let l = self.chol.l_dirty();
        at.iter()
            .map(|&i| {
                let mut e = DVector::zeros(n);
                e[i] = 1.0;
                let d = l.solve_lower_triangular(&e).map_or(f64::INFINITY, |v| v.norm_squared()).max(1e-300);
                ys[i] - self.alpha[i] / d
            })
            .collect()
    }

    /// Posterior mean and variance at `x`.
    pub fn posterior(&self, x: &[f64]) -> (f64, f64) {
        let kx = DVector::from_iterator(self.xs.len(), self.xs.iter().map(|xi| kernel(x, xi, &self.cat, &self.params)));
        let mean = kx.dot(&self.alpha);
        let v = self.chol.l_dirty().solve_lower_triangular(&kx).unwrap_or_else(|| DVector::zeros(kx.len()));
        (mean, (self.params.scale - v.norm_squared()).max(0.0))
    }

    /// Posterior mean and variance at `x`, with their gradients along every coordinate
    /// (zero along categorical ones, which do not vary continuously).
    pub fn posterior_grad(&self, x: &[f64]) -> (f64, f64, Vec<f64>, Vec<f64>) {
        let n = self.xs.len();
        let d = x.len();
        let mut kx = DVector::zeros(n);
        // dk_i/dx_c = s f'(d2) rho_c 2 (x_c - X_ic)
        let mut dkdd2 = vec![0.0; n];
        let mut diff = vec![0.0; d];
        for (i, xi) in self.xs.iter().enumerate() {
            sq_diff(x, xi, &self.cat, &mut diff);
            let d2: f64 = diff.iter().zip(&self.params.rho).map(|(a, r)| a * r).sum();
            let (f, df) = self.params.smoothness.correlation(d2);
            kx[i] = self.params.scale * f;
            dkdd2[i] = self.params.scale * df;
        }
        let mean = kx.dot(&self.alpha);
        let w = self.chol.solve(&kx);
        let var = (self.params.scale - kx.dot(&w)).max(0.0);
        let mut dmean = vec![0.0; d];
        let mut dvar = vec![0.0; d];
        for (i, xi) in self.xs.iter().enumerate() {
            for c in 0..d {
                if self.cat[c] {
                    continue;
                }
                let dk = dkdd2[i] * self.params.rho[c] * 2.0 * (x[c] - xi[c]);
                dmean[c] += self.alpha[i] * dk;
                dvar[c] -= 2.0 * w[i] * dk;
            }
        }
        (mean, var, dmean, dvar)
    }
}

/// The Cholesky factor of `k + noise I`, with jitter added until it exists.
fn factor(k: DMatrix<f64>, noise: f64) -> Cholesky<f64, Dyn> {
    let n = k.nrows();
    let mut jitter = 0.0;
    loop {
        let mut m = k.clone();
        for i in 0..n {
            m[(i, i)] += noise + jitter;
        }
        if let Some(c) = m.cholesky() {
            return c;
        }
        jitter = if jitter == 0.0 { 1e-8 } else { jitter * 10.0 };
        if jitter > 1e6 {
            // Unreachable for a kernel matrix (positive semi-definite); the identity keeps
            // the model defined.
            let id = DMatrix::<f64>::identity(n, n);
            if let Some(c) = id.cholesky() {
                return c;
            }
        }
    }
}

/// The log marginal likelihood of `ys` under the GP with `params` (the constant
/// `-n/2 log 2 pi` included); the tests' reference for [`neg_log_posterior`].
#[cfg(test)]
pub fn log_marginal_likelihood(xs: &[Vec<f64>], ys: &[f64], cat: &[bool], params: &Params) -> f64 {
    let n = xs.len();
    let mut k = kernel_matrix(xs, cat, params);
    for i in 0..n {
        k[(i, i)] += params.noise;
    }
    let Some(chol) = k.cholesky() else { return f64::NEG_INFINITY };
    let y = DVector::from_column_slice(ys);
    let v = chol.l_dirty().solve_lower_triangular(&y).unwrap_or_else(|| DVector::zeros(n));
    let logdet: f64 = (0..n).map(|i| chol.l_dirty()[(i, i)].ln()).sum::<f64>() * 2.0;
    -0.5 * v.norm_squared() - 0.5 * logdet - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln()
}

/// Optuna's log prior on the hyperparameters, without constants.
pub fn log_prior(p: &Params) -> f64 {
    let gamma = |x: f64, a: f64, b: f64| (a - 1.0) * x.ln() - b * x;
    -p.rho.iter().map(|r| 0.1 / r + 0.1 * r).sum::<f64>() + gamma(p.scale, 2.0, 1.0) + gamma(p.noise, 1.1, 30.0)
}

/// The squared differences of every pair of inputs along each dimension (Hamming for
/// categorical ones): they do not depend on the hyperparameters, so a fit computes them
/// once. Pair `(i, j)`, `j < i`, is row `i (i - 1) / 2 + j` of `diffs` (`d` values).
pub struct Pairs {
    n: usize,
    d: usize,
    diffs: Vec<f64>,
}

impl Pairs {
    pub fn new(xs: &[Vec<f64>], cat: &[bool]) -> Pairs {
        let (n, d) = (xs.len(), cat.len());
        let mut diffs = vec![0.0; n * n.saturating_sub(1) / 2 * d];
        let mut row = 0;
        for i in 0..n {
            for j in 0..i {
                sq_diff(&xs[i], &xs[j], cat, &mut diffs[row * d..(row + 1) * d]);
                row += 1;
            }
        }
        Pairs { n, d, diffs }
    }
}

/// `sum a_i b_i` with four accumulators (so that the compiler vectorises it).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `-(log marginal likelihood + log prior)` at raw (log) parameters, and its gradient (the
/// tests' entry; a fit computes the [`Pairs`] once and calls [`neg_log_posterior_pairs`]).
#[cfg(test)]
pub fn neg_log_posterior(
    xs: &[Vec<f64>],
    ys: &[f64],
    cat: &[bool],
    raw: &[f64],
    smoothness: Smoothness,
    grad: &mut [f64],
) -> f64 {
    neg_log_posterior_pairs(&Pairs::new(xs, cat), ys, raw, smoothness, grad)
}

/// [`neg_log_posterior`] from the inputs' [`Pairs`]. The gradient is
/// `1/2 tr((alpha alpha^T - K^-1) dK/dtheta)`: `K^-1 = L^-T L^-1` is formed once per call from
/// the Cholesky factor `L` (the triangular inverse and its Gram product, `n^3 / 3` flops in
/// all), then every hyperparameter's term is a sum over the pairs.
pub fn neg_log_posterior_pairs(
    pairs: &Pairs,
    ys: &[f64],
    raw: &[f64],
    smoothness: Smoothness,
    grad: &mut [f64],
) -> f64 {
    let (n, d) = (pairs.n, pairs.d);
    let p = Params::from_raw(raw, smoothness);
    let npairs = n * n.saturating_sub(1) / 2;
    // The correlation and its derivative in the scaled squared distance, per pair.
    let mut corr = vec![0.0; npairs];
    let mut dcorr = vec![0.0; npairs];
    // Only the lower triangle is read by the factorisation.
    let mut k = DMatrix::zeros(n, n);
    let mut row = 0;
    for i in 0..n {
        k[(i, i)] = p.scale + p.noise;
        for j in 0..i {
            let d2 = dot(&pairs.diffs[row * d..(row + 1) * d], &p.rho);
            let (f, df) = smoothness.correlation(d2);
            corr[row] = f;
            dcorr[row] = df;
            k[(i, j)] = p.scale * f;
            row += 1;
        }
    }
    let Some(chol) = Cholesky::new(k) else {
        grad.iter_mut().for_each(|g| *g = 0.0);
        return f64::INFINITY;
    };
    let y = DVector::from_column_slice(ys);
    let alpha = chol.solve(&y);
    let l = chol.l_dirty();
    let logdet: f64 = (0..n).map(|i| l[(i, i)].ln()).sum::<f64>() * 2.0;
    let mll = -0.5 * y.dot(&alpha) - 0.5 * logdet - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
    // X = L^-1, column-major (column j is zero above row j): forward substitution of e_j,
    // along the contiguous columns of L.
    let ls = l.as_slice();
    let mut x = vec![0.0; n * n];
    for j in 0..n {
        let col = &mut x[j * n..(j + 1) * n];
        col[j] = 1.0;
        for m in j..n {
            let v = col[m] / ls[m * n + m];
            col[m] = v;
            for (c, lv) in col[m + 1..].iter_mut().zip(&ls[m * n + m + 1..(m + 1) * n]) {
                *c -= v * lv;
            }
        }
    }
    // W = alpha alpha^T - K^-1, (K^-1)_ij = sum_{m >= i} X_mi X_mj for j <= i.
    let w = |i: usize, j: usize| alpha[i] * alpha[j] - dot(&x[i * n + i..(i + 1) * n], &x[j * n + i..(j + 1) * n]);
    let mut g_rho = vec![0.0; d];
    let mut g_scale = 0.0;
    let mut g_noise = 0.0;
    let mut row = 0;
    for i in 0..n {
        let wii = w(i, i);
        g_scale += 0.5 * wii * p.scale;
        g_noise += 0.5 * wii;
        for j in 0..i {
            let wij = w(i, j);
            // Symmetric: both (i, j) and (j, i).
            g_scale += wij * p.scale * corr[row];
            let c = wij * p.scale * dcorr[row];
            for (g, sd) in g_rho.iter_mut().zip(&pairs.diffs[row * d..(row + 1) * d]) {
                *g += c * sd;
            }
            row += 1;
        }
    }
    // Chain rule to log parameters, plus the prior's gradient.
    let noise_raw = raw[d + 1].exp();
    for kk in 0..d {
        let r = p.rho[kk];
        grad[kk] = -(g_rho[kk] * r + (0.1 / r - 0.1 * r));
    }
    grad[d] = -(g_scale + (1.0 - p.scale));
    grad[d + 1] = -(g_noise * noise_raw + (0.1 / p.noise - 30.0) * noise_raw);
    -(mll + log_prior(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<Vec<f64>>, Vec<f64>, Vec<bool>, Params) {
        let xs = vec![vec![0.1, 0.9, 0.0], vec![0.4, 0.2, 1.0], vec![0.75, 0.5, 2.0], vec![0.3, 0.35, 1.0]];
        let ys = vec![0.5, -1.2, 0.3, 0.9];
        let cat = vec![false, false, true];
        let p = Params { rho: vec![2.0, 0.5, 1.5], scale: 1.3, noise: 0.01, smoothness: Smoothness::Matern52 };
        (xs, ys, cat, p)
    }

    /// The closed form equals conditioning on the other points: the posterior mean there,
    /// and its variance plus the noise.
    #[test]
    fn leave_one_out_matches_dropping_the_point() {
        let (xs, ys, cat, p) = data();
        let m = Model::new(xs.clone(), &ys, cat.clone(), p.clone());
        for (i, (mean, var)) in m.leave_one_out(&ys).into_iter().enumerate() {
            let others: Vec<usize> = (0..xs.len()).filter(|&j| j != i).collect();
            let rest = Model::new(
                others.iter().map(|&j| xs[j].clone()).collect(),
                &others.iter().map(|&j| ys[j]).collect::<Vec<_>>(),
                cat.clone(),
                p.clone(),
            );
            let (m2, v2) = rest.posterior(&xs[i]);
            assert!((mean - m2).abs() < 1e-9, "{i}: {mean} vs {m2}");
            assert!((var - (v2 + p.noise)).abs() < 1e-9, "{i}: {var} vs {}", v2 + p.noise);
            assert!((m.leave_one_out_means_at(&ys, &[i])[0] - m2).abs() < 1e-9, "{i}: the means at one point");
        }
        let all = m.leave_one_out(&ys);
        let at = [3, 0, 2];
        for (k, mean) in m.leave_one_out_means_at(&ys, &at).into_iter().enumerate() {
            assert!((mean - all[at[k]].0).abs() < 1e-12, "{}: {mean} vs {}", at[k], all[at[k]].0);
        }
    }

    /// The references were computed with numpy (float64) from the textbook formulas
    /// (Rasmussen and Williams, eq. 2.25-2.26 and 5.8; bench/search/gp_reference.py).
    #[test]
    fn kernel_matrix_matches_numpy() {
        let (xs, _, cat, p) = data();
        let k = kernel_matrix(&xs, &cat, &p);
        let want = [
            [1.3, 0.427_112_411_898_077_64, 0.340_658_486_813_955_6, 0.468_219_588_599_776],
            [0.427_112_411_898_077_64, 1.3, 0.455_226_522_555_625_73, 1.267_221_007_425_482_6],
            [0.340_658_486_813_955_6, 0.455_226_522_555_625_73, 1.3, 0.428_864_701_855_239_6],
            [0.468_219_588_599_776, 1.267_221_007_425_482_6, 0.428_864_701_855_239_6, 1.3],
        ];
        for i in 0..4 {
            for j in 0..4 {
                assert!((k[(i, j)] - want[i][j]).abs() < 1e-12, "({i}, {j}): {} vs {}", k[(i, j)], want[i][j]);
            }
        }
    }

    #[test]
    fn posterior_and_marginal_likelihood_match_numpy() {
        let (xs, ys, cat, p) = data();
        let lml = log_marginal_likelihood(&xs, &ys, &cat, &p);
        assert!((lml - -29.085_580_787_010_13).abs() < 1e-9, "{lml}");
        let m = Model::new(xs, &ys, cat, p);
        for (x, mean, var) in [
            ([0.2, 0.6, 1.0], 2.266_623_080_017_587, 0.071_034_069_505_791_16),
            ([0.4, 0.2, 1.0], -0.947_571_966_328_407_2, 0.008_777_970_254_757_683),
            ([0.9, 0.9, 3.0], -0.285_760_013_092_663_25, 1.068_447_539_744_733_7),
        ] {
            let (m_, v_) = m.posterior(&x);
            assert!((m_ - mean).abs() < 1e-9 && (v_ - var).abs() < 1e-9, "{x:?}: {m_} {v_} vs {mean} {var}");
        }
    }

    /// The gradient of the log posterior against central finite differences, for both
    /// smoothnesses.
    #[test]
    fn marginal_likelihood_gradient_matches_finite_differences() {
        for s in [Smoothness::Matern52, Smoothness::Matern32] {
            let (xs, ys, cat, p) = data();
            let raw = p.to_raw();
            let mut g = vec![0.0; raw.len()];
            let f0 = neg_log_posterior(&xs, &ys, &cat, &raw, s, &mut g);
            assert!(f0.is_finite());
            let mut scratch = vec![0.0; raw.len()];
            for i in 0..raw.len() {
                let h = 1e-6;
                let (mut a, mut b) = (raw.clone(), raw.clone());
                a[i] += h;
                b[i] -= h;
                let fd = (neg_log_posterior(&xs, &ys, &cat, &a, s, &mut scratch)
                    - neg_log_posterior(&xs, &ys, &cat, &b, s, &mut scratch))
                    / (2.0 * h);
                assert!((fd - g[i]).abs() < 1e-5 * fd.abs().max(1.0), "{s:?} d/draw[{i}]: {} vs {fd}", g[i]);
            }
            // The value is -(log marginal likelihood + log prior).
            let p = Params::from_raw(&raw, s);
            let want = -(log_marginal_likelihood(&xs, &ys, &cat, &p) + log_prior(&p));
            assert!((f0 - want).abs() < 1e-9, "{s:?}: {f0} vs {want}");
        }
    }

    /// Matérn-3/2 against its closed form `(1 + sqrt(3) r) exp(-sqrt(3) r)` at a few
    /// distances (reference values from numpy, bench/search/gp_reference.py), and both
    /// correlations' derivatives in `d2` against finite differences.
    #[test]
    fn matern32_matches_numpy_and_both_derivatives_match_finite_differences() {
        for (d2, want) in [
            (0.0, 1.0),
            (0.04, 0.952_211_361_477_234_8),
            (0.5, 0.653_702_694_212_112_4),
            (2.0, 0.297_820_767_929_631_6),
        ] {
            let got = matern32(d2).0;
            assert!((got - want).abs() < 1e-12, "matern32({d2}) = {got}, numpy {want}");
        }
        for s in [Smoothness::Matern52, Smoothness::Matern32] {
            for d2 in [0.01, 0.3, 1.7] {
                let h = 1e-7;
                let fd = (s.correlation(d2 + h).0 - s.correlation(d2 - h).0) / (2.0 * h);
                assert!((fd - s.correlation(d2).1).abs() < 1e-6, "{s:?} at {d2}: {fd} vs {}", s.correlation(d2).1);
            }
        }
    }

    /// With both smoothnesses offered, the fit keeps Matérn-5/2 on a smooth function and
    /// Matérn-3/2 on one with kinks (`||x - 0.3| - 0.2| + ||y - 0.6| - 0.15|`), and each choice
    /// has the higher log posterior of the two.
    #[test]
    fn the_fit_chooses_the_smoothness_the_data_support() {
        let mut rng = crate::rng::Rng::new(17);
        let xs: Vec<Vec<f64>> = (0..40).map(|_| vec![rng.f64(), rng.f64()]).collect();
        let cat = vec![false; 2];
        let smooth: Vec<f64> = xs.iter().map(|x| (3.0 * x[0]).sin() + (x[1] - 0.4).powi(2)).collect();
        let kinked: Vec<f64> =
            xs.iter().map(|x| ((x[0] - 0.3).abs() - 0.2).abs() + ((x[1] - 0.6).abs() - 0.15).abs()).collect();
        for (ys, want) in [(&smooth, Smoothness::Matern52), (&kinked, Smoothness::Matern32)] {
            let m = Model::fit_with(xs.clone(), ys, cat.clone(), &[], Effort::FULL_EITHER);
            assert_eq!(m.params.smoothness, want, "{:?}", m.params);
            let only = |s| {
                let start = Params { smoothness: s, ..Params::default_for(2) };
                Model::fit_with(xs.clone(), ys, cat.clone(), &[start], Effort { default_start: false, ..Effort::FULL })
            };
            let score = |p: &Params| log_marginal_likelihood(&xs, ys, &cat, p) + log_prior(p);
            let (a, b) = (only(Smoothness::Matern52), only(Smoothness::Matern32));
            assert!(score(&m.params) >= score(&a.params).max(score(&b.params)) - 1e-9);
        }
        // Without the option, a fit keeps its starts' smoothness.
        let plain = Model::fit(xs.clone(), &kinked, cat.clone(), &[]);
        assert_eq!(plain.params.smoothness, Smoothness::Matern52);
    }

    /// The textbook gradient, `1/2 tr((alpha alpha^T - K^-1) dK/dtheta)` with `K^-1` from
    /// nalgebra's `Cholesky::inverse` and every `dK/dtheta` formed as a matrix: the
    /// reference for the pairwise sums of [`neg_log_posterior_pairs`].
    fn dense_gradient(xs: &[Vec<f64>], ys: &[f64], cat: &[bool], raw: &[f64], s: Smoothness) -> Vec<f64> {
        let (n, d) = (xs.len(), cat.len());
        let p = Params::from_raw(raw, s);
        let mut k = kernel_matrix(xs, cat, &p);
        for i in 0..n {
            k[(i, i)] += p.noise;
        }
        let chol = k.cholesky().unwrap();
        let alpha = chol.solve(&DVector::from_column_slice(ys));
        let w = &alpha * alpha.transpose() - chol.inverse();
        let half_trace = |dk: &DMatrix<f64>| 0.5 * w.component_mul(dk).sum();
        let mut grad = vec![0.0; d + 2];
        let mut diff = vec![0.0; d];
        for c in 0..d {
            let dk = DMatrix::from_fn(n, n, |i, j| {
                sq_diff(&xs[i], &xs[j], cat, &mut diff);
                let d2: f64 = diff.iter().zip(&p.rho).map(|(a, r)| a * r).sum();
                // d k / d log rho_c = s f'(d2) diff_c rho_c
                p.scale * p.smoothness.correlation(d2).1 * diff[c] * p.rho[c]
            });
            grad[c] = -(half_trace(&dk) + (0.1 / p.rho[c] - 0.1 * p.rho[c]));
        }
        let ks = kernel_matrix(xs, cat, &p);
        grad[d] = -(half_trace(&ks) + (1.0 - p.scale));
        let noise_raw = raw[d + 1].exp();
        let dn = DMatrix::<f64>::identity(n, n) * noise_raw;
        grad[d + 1] = -(half_trace(&dn) + (0.1 / p.noise - 30.0) * noise_raw);
        grad
    }

    /// On 41 points (odd, so that the vectorised sums have a remainder) with a categorical
    /// dimension, the pairwise gradient equals the dense textbook one.
    #[test]
    fn pairwise_gradient_matches_the_dense_formula() {
        let mut rng = crate::rng::Rng::new(11);
        let xs: Vec<Vec<f64>> = (0..41).map(|_| vec![rng.f64(), rng.f64(), rng.index(3) as f64, rng.f64()]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| (4.0 * x[0]).sin() + x[1] * x[3] - 0.3 * x[2]).collect();
        let cat = vec![false, false, true, false];
        let raw = Params { rho: vec![3.0, 0.7, 0.4, 1.9], scale: 0.8, noise: 0.02, smoothness: Smoothness::Matern52 }
            .to_raw();
        for s in [Smoothness::Matern52, Smoothness::Matern32] {
            let mut g = vec![0.0; raw.len()];
            let v = neg_log_posterior(&xs, &ys, &cat, &raw, s, &mut g);
            let p = Params::from_raw(&raw, s);
            let want_v = -(log_marginal_likelihood(&xs, &ys, &cat, &p) + log_prior(&p));
            assert!((v - want_v).abs() < 1e-9 * want_v.abs().max(1.0), "{s:?}: {v} vs {want_v}");
            let want = dense_gradient(&xs, &ys, &cat, &raw, s);
            for (i, (a, b)) in g.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-8 * b.abs().max(1.0), "{s:?} d/draw[{i}]: {a} vs {b}");
            }
        }
    }

    #[test]
    fn posterior_gradient_matches_finite_differences() {
        let (xs, ys, cat, p) = data();
        let m = Model::new(xs, &ys, cat, p);
        let x = [0.33, 0.61, 1.0];
        let (_, _, dm, dv) = m.posterior_grad(&x);
        for c in 0..2 {
            let h = 1e-6;
            let (mut a, mut b) = (x, x);
            a[c] += h;
            b[c] -= h;
            let ((ma, va), (mb, vb)) = (m.posterior(&a), m.posterior(&b));
            assert!(((ma - mb) / (2.0 * h) - dm[c]).abs() < 1e-6, "mean along {c}");
            assert!(((va - vb) / (2.0 * h) - dv[c]).abs() < 1e-6, "variance along {c}");
        }
        assert_eq!((dm[2], dv[2]), (0.0, 0.0), "categorical coordinates have no gradient");
    }

    /// A warm fit (20 iterations from the fit before one more point came in) reaches the
    /// log posterior of a full fit from scratch, to 1e-3: what lets the strategy refit in full
    /// only every `refit_every` trials.
    #[test]
    fn a_short_warm_fit_after_one_more_point_reaches_the_full_fit() {
        let mut rng = crate::rng::Rng::new(5);
        let f = |x: &[f64]| (5.0 * x[0]).sin() * (1.0 + x[1]) + 0.3 * (x[2] - 0.5).powi(2);
        let xs: Vec<Vec<f64>> = (0..60).map(|_| vec![rng.f64(), rng.f64(), rng.f64()]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| f(x)).collect();
        let cat = vec![false; 3];
        let before = Model::fit(xs[..59].to_vec(), &ys[..59], cat.clone(), &[]);
        let score = |p: &Params| log_marginal_likelihood(&xs, &ys, &cat, p) + log_prior(p);
        let full = Model::fit(xs.clone(), &ys, cat.clone(), &[]);
        let warm = Effort::warm(20);
        let quick = Model::fit_with(xs.clone(), &ys, cat.clone(), std::slice::from_ref(&before.params), warm);
        let (s_full, s_quick, s_stale) = (score(&full.params), score(&quick.params), score(&before.params));
        assert!(s_quick >= s_stale - 1e-9, "a warm fit never loses: {s_quick} < {s_stale}");
        assert!((s_full - s_quick).abs() < 1e-3 * s_full.abs(), "full {s_full}, warm {s_quick}");
    }

    /// Fitting raises the log posterior above its start and finds a long length scale for
    /// a dimension the data do not depend on.
    #[test]
    fn fitting_learns_relevant_dimensions() {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        let mut rng = crate::rng::Rng::new(3);
        for _ in 0..30 {
            let x = vec![rng.f64(), rng.f64()];
            ys.push((6.0 * x[0]).sin());
            xs.push(x);
        }
        let cat = vec![false, false];
        let m = Model::fit(xs.clone(), &ys, cat.clone(), &[]);
        let score = |p: &Params| log_marginal_likelihood(&xs, &ys, &cat, p) + log_prior(p);
        assert!(score(&m.params) > score(&Params::default_for(2)) + 1.0);
        assert!(m.params.rho[0] > 10.0 * m.params.rho[1], "{:?}", m.params);
        assert!(m.params.noise < 1e-3, "{:?}", m.params);
    }
}
