//! Output transforms: how the losses are mapped before the GP is fitted to them.
//!
//! Takes the losses (finite, lower is better); gives one value per loss, standardised
//! (mean 0, variance 1) by the caller. Every transform here is strictly increasing in the
//! loss (ties stay ties), so the best trial stays the best and the expected improvement,
//! computed in the transformed space, is measured from the same trial.
//! - [`yeo_johnson`]: the Yeo-Johnson power transform (Yeo and Johnson 2000) of the
//!   standardised losses, with its `lambda` chosen by maximum likelihood (as
//!   `scipy.stats.yeojohnson` does; HEBO's output warping): near-Gaussian losses keep
//!   `lambda` near 1 (almost the identity), a heavy upper tail gets `lambda < 1`, which
//!   compresses the tail and spreads the losses near the best.
//! - [`copula`]: the Gaussian copula, `Phi^-1((rank + 1/2) / n)` (ties at their mean rank):
//!   only the order of the losses is kept.
//!
//! **Invariant:** the result is finite and in the losses' order; with fewer than three
//! distinct losses, [`yeo_johnson`] is the standardisation alone.

/// The search interval of `lambda` (golden-section search on the profile log likelihood).
const LAMBDA_RANGE: (f64, f64) = (-5.0, 5.0);

/// The Yeo-Johnson transform of `x` with parameter `lambda`.
pub fn yj(x: f64, lambda: f64) -> f64 {
    if x >= 0.0 {
        if lambda.abs() < 1e-12 { x.ln_1p() } else { ((lambda * x.ln_1p()).exp() - 1.0) / lambda }
    } else {
        let m = 2.0 - lambda;
        if m.abs() < 1e-12 { -(-x).ln_1p() } else { -(((m * (-x).ln_1p()).exp() - 1.0) / m) }
    }
}

/// The Yeo-Johnson profile log likelihood of `lambda` (scipy's `yeojohnson_llf`):
/// `-n/2 log(var(yj(x))) + (lambda - 1) sum(sign(x) log(1 + |x|))`.
pub fn yj_llf(x: &[f64], lambda: f64) -> f64 {
    let n = x.len() as f64;
    let t: Vec<f64> = x.iter().map(|&v| yj(v, lambda)).collect();
    let mean = t.iter().sum::<f64>() / n;
    let var = t.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let jac: f64 = x.iter().map(|&v| v.signum() * v.abs().ln_1p()).sum();
    if !(var > 0.0 && var.is_finite()) {
        return f64::NEG_INFINITY;
    }
    -0.5 * n * var.ln() + (lambda - 1.0) * jac
}

/// The `lambda` of highest [`yj_llf`] in [`LAMBDA_RANGE`] (golden-section search; the
/// profile likelihood is unimodal in `lambda`).
pub fn yj_lambda(x: &[f64]) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = LAMBDA_RANGE;
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (yj_llf(x, c), yj_llf(x, d));
    while b - a > 1e-10 {
        if fc >= fd {
            (b, d, fd) = (d, c, fc);
            c = b - g * (b - a);
            fc = yj_llf(x, c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + g * (b - a);
            fd = yj_llf(x, d);
        }
    }
    (a + b) / 2.0
}

/// The losses standardised, then Yeo-Johnson transformed with the maximum-likelihood
/// `lambda` (not yet standardised again), and that `lambda`.
pub fn yeo_johnson(losses: &[f64]) -> (Vec<f64>, f64) {
    let z = super::standardise(losses);
    let mut distinct = z.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 3 {
        return (z, 1.0);
    }
    let lambda = yj_lambda(&z);
    let t: Vec<f64> = z.iter().map(|&v| yj(v, lambda)).collect();
    if t.iter().all(|v| v.is_finite()) { (t, lambda) } else { (z, 1.0) }
}

/// `Phi^-1((rank + 1/2) / n)` of each loss, ties at their mean rank.
pub fn copula(losses: &[f64]) -> Vec<f64> {
    let n = losses.len() as f64;
    ranks(losses).into_iter().map(|r| normal_quantile((r + 0.5) / n)).collect()
}

/// Each value's rank from 0 (the smallest), ties at their mean rank (scipy's
/// `rankdata(method="average") - 1`).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            out[k] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    out
}

/// The standard normal quantile (Acklam's rational approximation, relative error below
/// 1.2e-9), for `p` in `(0, 1)`.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}
