//! The acquisition: log expected improvement, times the probability of feasibility when
//! the study has constraints, both in log space.
//!
//! Takes posterior means and variances (of a standardised loss, lower is better); gives
//! `log EI` computed as in Ament et al. 2023, "Unexpected improvements to expected
//! improvement" (eq. 9): stable where the naive `log(sigma (z Phi(z) + phi(z)))`
//! underflows to `-inf` (from `z < -38`), with its derivative in `z`.
//!
//! **Invariant:** [`log_h`] and [`log_ncdf`] are finite for every finite `z`.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// `log(phi(z) + z Phi(z))`, the log of the standard expected improvement at `z`, and its
/// derivative `Phi(z) / h(z)`.
pub fn log_h(z: f64) -> (f64, f64) {
    let c1 = 0.5 * (2.0 * PI).ln();
    let value = if z > -1.0 {
        (normal_pdf(z) + z * normal_cdf(z)).ln()
    } else if z > -1e8 {
        // h(z) = phi(z) (1 - |z| erfcx(-z / sqrt 2) sqrt(pi / 2)), the bracket in log space.
        let c2 = 0.5 * (PI / 2.0).ln();
        -0.5 * z * z - c1 + log1mexp((z.abs() * erfcx(-z * FRAC_1_SQRT_2)).ln() + c2)
    } else {
        -0.5 * z * z - c1 - 2.0 * z.abs().ln()
    };
    (value, (log_ncdf(z) - value).exp())
}

/// `log Phi(z)`, stable in the lower tail.
pub fn log_ncdf(z: f64) -> f64 {
    if z > -5.0 {
        normal_cdf(z).ln()
    } else {
        // Phi(z) = erfc(-z / sqrt 2) / 2 = erfcx(-z / sqrt 2) exp(-z^2 / 2) / 2.
        (0.5 * erfcx(-z * FRAC_1_SQRT_2)).ln() - 0.5 * z * z
    }
}

/// `log EI` of improving on `best` (lower is better) under `N(mean, var)`, and its
/// derivatives in the mean and in the variance.
pub fn log_ei(mean: f64, var: f64, best: f64) -> (f64, f64, f64) {
    let sigma = var.max(1e-40).sqrt();
    let z = (best - mean) / sigma;
    let (lh, dlh) = log_h(z);
    // d/dmean: dlh * (-1 / sigma); d/dvar: dlh * dz/dvar + 1 / (2 var), dz/dvar = -z / (2 var).
    let v = sigma * sigma;
    (lh + sigma.ln(), -dlh / sigma, -dlh * z / (2.0 * v) + 1.0 / (2.0 * v))
}

/// `log P(c <= threshold)` under `N(mean, var)`, and its derivatives in the mean and variance.
pub fn log_pof(mean: f64, var: f64, threshold: f64) -> (f64, f64, f64) {
    let sigma = var.max(1e-40).sqrt();
    let z = (threshold - mean) / sigma;
    let lp = log_ncdf(z);
    // d log Phi(z) / dz = phi(z) / Phi(z).
    let r = (normal_log_pdf(z) - lp).exp();
    let v = sigma * sigma;
    (lp, -r / sigma, -r * z / (2.0 * v))
}

pub fn normal_pdf(z: f64) -> f64 {
    normal_log_pdf(z).exp()
}

fn normal_log_pdf(z: f64) -> f64 {
    -0.5 * z * z - 0.5 * (2.0 * PI).ln()
}

pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * FRAC_1_SQRT_2)
}

/// `exp(x^2) erfc(x)`, for any `x >= 0` (and moderate negative `x`).
pub fn erfcx(x: f64) -> f64 {
    if x < 25.0 {
        (x * x).exp() * libm::erfc(x)
    } else {
        // The asymptotic series; its fifth term is below 1e-13 of the first from x = 25.
        let x2 = x * x;
        let s = 1.0 - 1.0 / (2.0 * x2) + 3.0 / (4.0 * x2 * x2) - 15.0 / (8.0 * x2 * x2 * x2)
            + 105.0 / (16.0 * x2 * x2 * x2 * x2);
        s / (x * PI.sqrt())
    }
}

/// `log(1 - exp(x))` for `x < 0`.
fn log1mexp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 { (-x.exp_m1()).ln() } else { (-x.exp()).ln_1p() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// References from mpmath at 50 digits (bench/search/gp_reference.py):
    /// `log(phi(z) + z Phi(z))`.
    #[test]
    fn log_h_matches_high_precision_references() {
        for (z, want) in REFERENCE_LOG_H {
            let (got, _) = log_h(*z);
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "z = {z}: {got} vs {want}");
        }
        // Where the naive formula underflows, the stable one still orders the points.
        let naive = |z: f64| (normal_pdf(z) + z * normal_cdf(z)).ln();
        assert_eq!(naive(-40.0), f64::NEG_INFINITY);
        assert!(log_h(-40.0).0 > log_h(-41.0).0 && log_h(-1e9).0.is_finite());
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for z in [-1e4, -300.0, -30.0, -5.5, -1.2, -0.3, 0.0, 0.7, 4.0] {
            let h = 1e-6 * f64::max(1.0, f64::abs(z));
            let fd = (log_h(z + h).0 - log_h(z - h).0) / (2.0 * h);
            let (_, d) = log_h(z);
            assert!((fd - d).abs() < 1e-5 * d.abs().max(1.0), "z = {z}: {d} vs {fd}");
        }
        let (m, v, b) = (0.3, 0.2, -0.5);
        let (_, dm, dv) = log_ei(m, v, b);
        let h = 1e-7;
        assert!(((log_ei(m + h, v, b).0 - log_ei(m - h, v, b).0) / (2.0 * h) - dm).abs() < 1e-5);
        assert!(((log_ei(m, v + h, b).0 - log_ei(m, v - h, b).0) / (2.0 * h) - dv).abs() < 1e-5);
        let (_, dm, dv) = log_pof(m, v, b);
        assert!(((log_pof(m + h, v, b).0 - log_pof(m - h, v, b).0) / (2.0 * h) - dm).abs() < 1e-5);
        assert!(((log_pof(m, v + h, b).0 - log_pof(m, v - h, b).0) / (2.0 * h) - dv).abs() < 1e-5);
    }

    #[test]
    fn log_ei_is_the_expected_improvement_in_the_body() {
        // EI = sigma h((best - mean) / sigma), checked against scipy's closed form.
        for (mean, var, best, want) in REFERENCE_EI {
            let got = log_ei(*mean, *var, *best).0.exp();
            assert!((got - want).abs() <= 1e-10 * want.abs(), "{mean} {var} {best}: {got} vs {want}");
        }
    }

    #[test]
    fn log_ncdf_is_accurate_in_the_tail() {
        for (z, want) in REFERENCE_LOG_NCDF {
            let got = log_ncdf(*z);
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "z = {z}: {got} vs {want}");
        }
    }

    const REFERENCE_LOG_H: &[(f64, f64)] = &[
        (3.0, 1.098_739_665_327_707_7),
        (0.5, -0.359_827_683_745_063_8),
        (0.0, -0.918_938_533_204_672_8),
        (-0.5, -1.620_516_264_387_319_9),
        (-1.0, -2.485_121_025_712_641_3),
        (-3.0, -7.869_686_059_603_029),
        (-10.0, -55.553_122_036_122_35),
        (-30.0, -457.724_653_760_598),
        (-40.0, -808.298_568_356_62),
        (-100.0, -5_010.129_578_800_25),
        (-1000.0, -500_014.734_452_091_16),
        (-100_000.0, -5_000_000_023.944_79),
    ];
    const REFERENCE_EI: &[(f64, f64, f64, f64)] = &[
        (0.0, 1.0, 0.0, 0.398_942_280_401_432_7),
        (0.3, 0.2, -0.5, 0.006_565_536_624_032_612),
        (-1.0, 0.04, 0.2, 1.200_000_000_031_271_2),
        (2.0, 0.5, 0.1, 0.000_782_092_882_356_561_9),
    ];
    const REFERENCE_LOG_NCDF: &[(f64, f64)] = &[
        (1.0, -0.172_753_779_023_449_88),
        (-1.0, -1.841_021_645_009_263_6),
        (-4.9, -14.551_182_689_355_313),
        (-5.0, -15.064_998_393_988_725),
        (-10.0, -53.231_285_150_512_47),
        (-40.0, -804.608_442_013_753_8),
        (-1000.0, -500_007.826_694_812_16),
    ];
}
