//! A small bounded L-BFGS: minimises a smooth function inside a box.
//!
//! Takes a function giving its value and gradient, a start and per-coordinate bounds
//! (infinite ends allowed); gives the best point found and its value. The direction is
//! the two-loop L-BFGS step on the coordinates not held at a bound (a projected
//! quasi-Newton step, as in L-BFGS-B's subspace phase without its Cauchy point), the step
//! length a backtracking Armijo search along the projected path.
//!
//! **Invariant:** every point evaluated lies inside the box; the point returned is never
//! worse than the (clamped) start; non-finite values are treated as worse than any finite
//! one, so a line search backs off from them.

/// When to stop.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_iter: usize,
    /// Stop when every projected gradient coordinate is below this.
    pub gtol: f64,
    /// Stop when an iteration improves the value by less than this (relative).
    pub ftol: f64,
    /// Pairs kept in memory.
    pub memory: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { max_iter: 200, gtol: 1e-5, ftol: 1e-10, memory: 10 }
    }
}

/// Minimises `f` (value, gradient written into its second argument) from `x0` within
/// `lo..=hi`; gives the point and its value.
pub fn minimize(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    options: Options,
) -> (Vec<f64>, f64) {
    let n = x0.len();
    let clamp = |x: &mut [f64]| {
        for i in 0..n {
            x[i] = x[i].clamp(lo[i], hi[i]);
        }
    };
    let mut x = x0.to_vec();
    clamp(&mut x);
    let mut g = vec![0.0; n];
    let mut fx = finite(f(&x, &mut g));
    if n == 0 || !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return (x, fx);
    }
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    for iter in 0..options.max_iter {
        // Coordinates held at a bound by the gradient do not move.
        let free: Vec<bool> =
            (0..n).map(|i| !((x[i] <= lo[i] && g[i] > 0.0) || (x[i] >= hi[i] && g[i] < 0.0))).collect();
        let pg: Vec<f64> = (0..n).map(|i| if free[i] { g[i] } else { 0.0 }).collect();
        if pg.iter().all(|v| v.abs() < options.gtol) {
            break;
        }
        let mut d = two_loop(&pg, &s_hist, &y_hist);
        for i in 0..n {
            if !free[i] {
                d[i] = 0.0;
            }
        }
        let mut slope: f64 = d.iter().zip(&pg).map(|(a, b)| a * b).sum();
        if slope >= 0.0 || !slope.is_finite() {
            s_hist.clear();
            y_hist.clear();
            d = pg.iter().map(|v| -v).collect();
            slope = -pg.iter().map(|v| v * v).sum::<f64>();
        }
        let mut t = if iter == 0 && s_hist.is_empty() {
            (1.0 / d.iter().map(|v| v.abs()).fold(0.0, f64::max)).min(1.0)
        } else {
            1.0
        };
        let mut accepted = false;
        let mut f_new = fx;
        for _ in 0..40 {
            for i in 0..n {
                x_new[i] = x[i] + t * d[i];
            }
            clamp(&mut x_new);
            f_new = finite(f(&x_new, &mut g_new));
            let moved: f64 = (0..n).map(|i| g[i] * (x_new[i] - x[i])).sum();
            if f_new.is_finite() && f_new <= fx + 1e-4 * moved.min(0.0) {
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted || g_new.iter().any(|v| !v.is_finite()) {
            if s_hist.is_empty() {
                break;
            }
            s_hist.clear();
            y_hist.clear();
            continue;
        }
        let s: Vec<f64> = (0..n).map(|i| x_new[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| g_new[i] - g[i]).collect();
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        if sy > 1e-12 {
            if s_hist.len() == options.memory {
                s_hist.remove(0);
                y_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
        }
        let improvement = fx - f_new;
        x.copy_from_slice(&x_new);
        g.copy_from_slice(&g_new);
        fx = f_new;
        if improvement <= options.ftol * fx.abs().max(1.0) {
            break;
        }
    }
    (x, fx)
}

/// `+inf` for NaN, so that comparisons treat it as worst.
fn finite(v: f64) -> f64 {
    if v.is_nan() { f64::INFINITY } else { v }
}

/// The L-BFGS direction `-H g` from the stored pairs.
fn two_loop(g: &[f64], s_hist: &[Vec<f64>], y_hist: &[Vec<f64>]) -> Vec<f64> {
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut q = g.to_vec();
    let m = s_hist.len();
    let mut alpha = vec![0.0; m];
    for k in (0..m).rev() {
        let rho = 1.0 / dot(&y_hist[k], &s_hist[k]);
        alpha[k] = rho * dot(&s_hist[k], &q);
        for (qi, yi) in q.iter_mut().zip(&y_hist[k]) {
            *qi -= alpha[k] * yi;
        }
    }
    if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
        let gamma = dot(s, y) / dot(y, y);
        for qi in &mut q {
            *qi *= gamma;
        }
    }
    for k in 0..m {
        let rho = 1.0 / dot(&y_hist[k], &s_hist[k]);
        let beta = rho * dot(&y_hist[k], &q);
        for (qi, si) in q.iter_mut().zip(&s_hist[k]) {
            *qi += (alpha[k] - beta) * si;
        }
    }
    q.iter().map(|v| -v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_rosenbrock() {
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = -2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] * x[0]);
            g[1] = 200.0 * (x[1] - x[0] * x[0]);
            (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2)
        };
        let (x, v) = minimize(f, &[-1.2, 1.0], &[-5.0, -5.0], &[5.0, 5.0], Options::default());
        assert!(v < 1e-8 && (x[0] - 1.0).abs() < 1e-4 && (x[1] - 1.0).abs() < 1e-4, "{x:?} {v}");
    }

    #[test]
    fn stops_at_an_active_bound() {
        // The unconstrained minimum (3, -2) lies outside the box: the answer is its corner.
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 3.0);
            g[1] = 2.0 * (x[1] + 2.0);
            (x[0] - 3.0).powi(2) + (x[1] + 2.0).powi(2)
        };
        let (x, v) = minimize(f, &[0.5, 0.5], &[0.0, 0.0], &[1.0, 1.0], Options::default());
        assert!((x[0] - 1.0).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        assert!((v - 8.0).abs() < 1e-9);
    }
}
