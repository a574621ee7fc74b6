//! The multi-objective bench problems: ZDT1, ZDT2, ZDT3 (Zitzler, Deb & Thiele 2000;
//! 30 variables in `[0, 1]`, two objectives) and DTLZ2 (Deb, Thiele, Laumanns & Zitzler
//! 2002; 12 variables in `[0, 1]`, three objectives, `k = 10`), every objective minimised.
//!
//! Takes a point `x` (its length is the problem's `dims`), gives the objective values.
//! Each problem carries two reference points for the hypervolume, on the raw objectives
//! (each Pareto front already lies in `[0, 1]^m`, ZDT3's `f2` down to -0.7733): a tight one,
//! `1.1` in each objective, and a wide one that holds every value the problem can take
//! (ZDT: `f1 <= 1`, `f2 <= g <= 10` plus ZDT3's `f1 sin(.) <= 1`, so `(1.1, 11)`; DTLZ2:
//! `f_i <= 1 + g <= 3.5`, so `3.5` each), which tells strategies apart before any point is
//! inside the tight box. `bench/search/moo.py` has the same definitions for Optuna's side;
//! `tests/moo.rs` checks values against pymoo 0.6.2.

/// One problem: its name, dimension, objective function and reference points
/// (`references[0]` tight, `references[1]` wide).
pub struct MooProblem {
    pub name: &'static str,
    pub dims: usize,
    pub f: fn(&[f64]) -> Vec<f64>,
    pub references: [&'static [f64]; 2],
}

/// Every problem, in table order.
pub fn problems() -> Vec<MooProblem> {
    const ZDT: [&[f64]; 2] = [&[1.1, 1.1], &[1.1, 11.0]];
    vec![
        MooProblem { name: "zdt1", dims: 30, f: zdt1, references: ZDT },
        MooProblem { name: "zdt2", dims: 30, f: zdt2, references: ZDT },
        MooProblem { name: "zdt3", dims: 30, f: zdt3, references: ZDT },
        MooProblem { name: "dtlz2", dims: 12, f: dtlz2, references: [&[1.1, 1.1, 1.1], &[3.5, 3.5, 3.5]] },
    ]
}

/// ZDT's distance term: `1 + 9 * mean(x[1..])`; 1 on the Pareto front.
fn zdt_g(x: &[f64]) -> f64 {
    1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64
}

/// Convex front `f2 = 1 - sqrt(f1)`.
pub fn zdt1(x: &[f64]) -> Vec<f64> {
    let (f1, g) = (x[0], zdt_g(x));
    vec![f1, g * (1.0 - (f1 / g).sqrt())]
}

/// Concave front `f2 = 1 - f1^2`.
pub fn zdt2(x: &[f64]) -> Vec<f64> {
    let (f1, g) = (x[0], zdt_g(x));
    vec![f1, g * (1.0 - (f1 / g).powi(2))]
}

/// Disconnected front (five pieces) `f2 = 1 - sqrt(f1) - f1 sin(10 pi f1)`.
pub fn zdt3(x: &[f64]) -> Vec<f64> {
    let (f1, g) = (x[0], zdt_g(x));
    let r = f1 / g;
    vec![f1, g * (1.0 - r.sqrt() - r * (10.0 * std::f64::consts::PI * f1).sin())]
}

/// Spherical front `f1^2 + f2^2 + f3^2 = 1`; `g = sum((x_i - 0.5)^2)` over `x[2..]`.
pub fn dtlz2(x: &[f64]) -> Vec<f64> {
    let g: f64 = x[2..].iter().map(|v| (v - 0.5).powi(2)).sum();
    let half_pi = std::f64::consts::FRAC_PI_2;
    let (a, b) = (x[0] * half_pi, x[1] * half_pi);
    vec![(1.0 + g) * a.cos() * b.cos(), (1.0 + g) * a.cos() * b.sin(), (1.0 + g) * a.sin()]
}
