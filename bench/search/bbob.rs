//! The 24 noiseless BBOB functions of COCO (the `bbob` suite), written from the COCO
//! documentation ("Real-Parameter Black-Box Optimization Benchmarking: Noiseless
//! Functions Definitions") and checked against COCO's own implementation.
//!
//! Takes a function number (1..=24), a dimension (>= 2) and an instance number, gives a
//! [`Bbob`] whose [`Bbob::eval`] is `f(x)` on `[-5, 5]^d` and whose `fopt` is the
//! optimum value, so that `eval(x) - fopt` is the regret. Everything an instance needs
//! (the optimum `xopt`, `fopt`, the rotation matrices, Gallagher's peaks) comes from the
//! instance seed through the 2009 legacy generator (a Park-Miller generator with a
//! shuffle table, Box-Muller normals, Gram-Schmidt rotations), as COCO draws them, so
//! that the values equal COCO's to rounding: `tests/bbob.rs` pins values printed by
//! `cocoex` 2.8.2 (`pip install coco-experiment==2.8.2`) for every function in 2, 5, 10
//! and 20 dimensions.
//!
//! Shared by `benches/search_suite.rs` and `tests/bbob.rs` (`#[path]` modules), not part
//! of the library.
// Index loops mirror the definitions' formulas (rows, columns, peaks).
#![allow(dead_code, clippy::needless_range_loop)]

use std::f64::consts::PI;

/// One BBOB problem: function `f` (1..=24), dimension `d`, instance `instance`.
#[derive(Debug, Clone)]
pub struct Bbob {
    pub f: usize,
    pub d: usize,
    pub instance: usize,
    pub fopt: f64,
    xopt: Vec<f64>,
    /// Row-major `d x d` matrices, their use depends on the function.
    r1: Vec<f64>,
    r2: Vec<f64>,
    /// A second optimum-like vector (Schwefel's signs, Gallagher's peaks).
    extra: Vec<f64>,
    /// Gallagher: peak heights, per-peak scales (`peaks x d`), rotated peak centres (`d x peaks`).
    peaks: usize,
    peak_values: Vec<f64>,
    scales: Vec<f64>,
    local: Vec<f64>,
}

/// The names COCO gives the 24 functions (index `f - 1`).
pub const NAMES: [&str; 24] = [
    "sphere",
    "ellipsoid",
    "rastrigin",
    "bueche-rastrigin",
    "linear-slope",
    "attractive-sector",
    "step-ellipsoid",
    "rosenbrock",
    "rosenbrock-rotated",
    "ellipsoid-rotated",
    "discus",
    "bent-cigar",
    "sharp-ridge",
    "different-powers",
    "rastrigin-rotated",
    "weierstrass",
    "schaffers-f7",
    "schaffers-f7-ill",
    "griewank-rosenbrock",
    "schwefel",
    "gallagher-101",
    "gallagher-21",
    "katsuura",
    "lunacek",
];

impl Bbob {
    pub fn new(f: usize, d: usize, instance: usize) -> Bbob {
        assert!((1..=24).contains(&f) && d >= 2, "BBOB f1..f24 in 2 or more dimensions");
        let seed = |g: usize| (g + 10_000 * instance) as i64;
        let rseed = match f {
            4 => seed(3),
            18 => seed(17),
            _ => seed(f),
        };
        let fopt = compute_fopt(f, instance);
        let mut b = Bbob {
            f,
            d,
            instance,
            fopt,
            xopt: Vec::new(),
            r1: Vec::new(),
            r2: Vec::new(),
            extra: Vec::new(),
            peaks: 0,
            peak_values: Vec::new(),
            scales: Vec::new(),
            local: Vec::new(),
        };
        match f {
            4 => {
                b.xopt = compute_xopt(rseed, d);
                for i in (0..d).step_by(2) {
                    b.xopt[i] = b.xopt[i].abs();
                }
            }
            8 => b.xopt = compute_xopt(rseed, d).into_iter().map(|v| 0.75 * v).collect(),
            9 | 19 => b.r1 = rotation(rseed, d),
            10 | 11 | 14 => {
                b.xopt = compute_xopt(rseed, d);
                b.r1 = rotation(rseed + 1_000_000, d);
            }
            12 => {
                b.xopt = compute_xopt(rseed + 1_000_000, d);
                b.r1 = rotation(rseed + 1_000_000, d);
            }
            6 | 7 | 13 | 15 | 16 | 17 | 18 | 23 | 24 => {
                b.xopt = compute_xopt(rseed, d);
                b.r1 = rotation(rseed + 1_000_000, d);
                b.r2 = rotation(rseed, d);
                if f == 24 {
                    let g = gauss(d, rseed);
                    b.xopt = g.iter().map(|v| if *v < 0.0 { -1.25 } else { 1.25 }).collect();
                }
            }
            20 => {
                let u = unif(d, rseed);
                b.xopt =
                    u.iter().map(|v| if v - 0.5 < 0.0 { -0.5 * 4.2096874637 } else { 0.5 * 4.2096874637 }).collect();
                b.extra = u;
            }
            21 | 22 => b.gallagher(rseed, if f == 21 { 101 } else { 21 }),
            _ => b.xopt = compute_xopt(rseed, d),
        }
        b
    }

    pub fn name(&self) -> &'static str {
        NAMES[self.f - 1]
    }

    fn gallagher(&mut self, rseed: i64, peaks: usize) {
        let d = self.d;
        let (b, c, maxcond1) = if peaks == 101 { (10.0, 5.0, 1000f64.sqrt()) } else { (9.8, 4.9, 1000.0) };
        self.r1 = rotation(rseed, d);
        let u = unif(peaks - 1, rseed);
        let mut perm: Vec<usize> = (0..peaks - 1).collect();
        perm.sort_by(|&a, &b| u[a].total_cmp(&u[b]));
        let mut cond = vec![maxcond1];
        self.peak_values = vec![10.0];
        for i in 1..peaks {
            cond.push(1000f64.powf(perm[i - 1] as f64 / (peaks - 2) as f64));
            self.peak_values.push((i - 1) as f64 / (peaks - 2) as f64 * (9.1 - 1.1) + 1.1);
        }
        self.scales = Vec::with_capacity(peaks * d);
        for (i, ci) in cond.iter().enumerate() {
            let u = unif(d, rseed + 1000 * i as i64);
            let mut perm: Vec<usize> = (0..d).collect();
            perm.sort_by(|&a, &b| u[a].total_cmp(&u[b]));
            self.scales.extend(perm.iter().map(|&p| ci.powf(p as f64 / (d - 1) as f64 - 0.5)));
        }
        let u = unif(d * peaks, rseed);
        self.xopt = (0..d).map(|i| 0.8 * (b * u[i] - c)).collect();
        self.local = vec![0.0; d * peaks];
        for i in 0..d {
            for j in 0..peaks {
                let mut s = 0.0;
                for k in 0..d {
                    s += self.r1[i * d + k] * (b * u[j * d + k] - c);
                }
                self.local[i * peaks + j] = if j == 0 { 0.8 * s } else { s };
            }
        }
        self.peaks = peaks;
    }

    /// The attractive sector (f6) at `x`: how many of the rotated coordinates `z` lie on
    /// their steep side (where the loss grows 10^4 times faster), and `|z|`, the distance
    /// to the optimum in those coordinates. `None` for the other functions.
    #[allow(dead_code)]
    pub fn sector(&self, x: &[f64]) -> Option<(usize, f64)> {
        if self.f != 6 {
            return None;
        }
        let d = self.d;
        let shifted: Vec<f64> = x.iter().zip(&self.xopt).map(|(a, b)| a - b).collect();
        let z = mat(&lambda_between(&self.r1, &self.r2, 10f64.sqrt(), d), &shifted, d);
        let steep = z.iter().zip(&self.xopt).filter(|(z, o)| *o * *z > 0.0).count();
        Some((steep, z.iter().map(|v| v * v).sum::<f64>().sqrt()))
    }

    /// `f(x)` for `x` in `[-5, 5]^d` (outside: COCO's boundary penalties apply).
    pub fn eval(&self, x: &[f64]) -> f64 {
        let d = self.d;
        assert_eq!(x.len(), d, "a point of the problem's dimension");
        let shifted = || -> Vec<f64> { x.iter().zip(&self.xopt).map(|(a, b)| a - b).collect() };
        let fopt = self.fopt;
        match self.f {
            1 => sum_sq(&shifted()) + fopt,
            2 => ellipsoid(&osc(&shifted())) + fopt,
            3 => rastrigin(&cond(&asy(&osc(&shifted()), 0.2), 10.0)) + fopt,
            4 => {
                let z = osc(&shifted());
                let z: Vec<f64> = z
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let mut s = 10f64.powf(i as f64 / (d as f64 - 1.0) / 2.0);
                        if *v > 0.0 && i % 2 == 0 {
                            s *= 10.0;
                        }
                        s * v
                    })
                    .collect();
                rastrigin(&z) + fopt + 100.0 * penalty(x)
            }
            5 => {
                let mut r = 0.0;
                for i in 0..d {
                    let s = 10f64.powf(i as f64 / (d as f64 - 1.0));
                    let s = if self.xopt[i] >= 0.0 { s } else { -s };
                    r += 5.0 * s.abs() - s * x[i];
                }
                r + fopt
            }
            6 => {
                let z = mat(&lambda_between(&self.r1, &self.r2, 10f64.sqrt(), d), &shifted(), d);
                let r: f64 = z.iter().zip(&self.xopt).map(|(z, o)| if o * z > 0.0 { 1e4 * z * z } else { z * z }).sum();
                osc1(r).powf(0.9) + fopt
            }
            7 => self.step_ellipsoid(x),
            8 => {
                let factor = (d as f64).sqrt() / 8.0;
                let factor = factor.max(1.0);
                rosenbrock(&shifted().iter().map(|v| factor * v + 1.0).collect::<Vec<_>>()) + fopt
            }
            9 => {
                let factor = ((d as f64).sqrt() / 8.0).max(1.0);
                let z = mat(&self.r1, x, d);
                rosenbrock(&z.iter().map(|v| factor * v + 0.5).collect::<Vec<_>>()) + fopt
            }
            10 => ellipsoid(&osc(&mat(&self.r1, &shifted(), d))) + fopt,
            11 => {
                let z = osc(&mat(&self.r1, &shifted(), d));
                1e6 * z[0] * z[0] + z[1..].iter().map(|v| v * v).sum::<f64>() + fopt
            }
            12 => {
                let z = mat(&self.r1, &asy(&mat(&self.r1, &shifted(), d), 0.5), d);
                z[0] * z[0] + 1e6 * z[1..].iter().map(|v| v * v).sum::<f64>() + fopt
            }
            13 => {
                let z = mat(&lambda_between(&self.r1, &self.r2, 10f64.sqrt(), d), &shifted(), d);
                z[0] * z[0] + 100.0 * z[1..].iter().map(|v| v * v).sum::<f64>().sqrt() + fopt
            }
            14 => {
                let z = mat(&self.r1, &shifted(), d);
                let s: f64 =
                    z.iter().enumerate().map(|(i, v)| v.abs().powf(2.0 + 4.0 * i as f64 / (d as f64 - 1.0))).sum();
                s.sqrt() + fopt
            }
            15 => {
                let inner = asy(&osc(&mat(&self.r1, &shifted(), d)), 0.2);
                rastrigin(&mat(&lambda_between(&self.r1, &self.r2, 10f64.sqrt(), d), &inner, d)) + fopt
            }
            16 => {
                let inner = osc(&mat(&self.r1, &shifted(), d));
                let z = mat(&lambda_between(&self.r1, &self.r2, 0.1, d), &inner, d);
                let (mut f0, mut r) = (0.0, 0.0);
                for k in 0..12 {
                    f0 += 0.5f64.powi(k) * (PI * 3f64.powi(k)).cos();
                }
                for v in &z {
                    for k in 0..12 {
                        r += (2.0 * PI * (v + 0.5) * 3f64.powi(k)).cos() * 0.5f64.powi(k);
                    }
                }
                10.0 * (r / d as f64 - f0).powi(3) + fopt + 10.0 / d as f64 * penalty(x)
            }
            17 | 18 => {
                let c: f64 = if self.f == 17 { 10.0 } else { 1000.0 };
                let inner = asy(&mat(&self.r1, &shifted(), d), 0.5);
                let m: Vec<f64> =
                    (0..d * d).map(|ij| self.r2[ij] * c.sqrt().powf((ij / d) as f64 / (d as f64 - 1.0))).collect();
                let z = mat(&m, &inner, d);
                let mut r = 0.0;
                for i in 0..d - 1 {
                    let t = z[i] * z[i] + z[i + 1] * z[i + 1];
                    r += t.powf(0.25) * (1.0 + (50.0 * t.powf(0.1)).sin().powi(2));
                }
                (r / (d as f64 - 1.0)).powi(2) + fopt + 10.0 * penalty(x)
            }
            19 => {
                let scale = ((d as f64).sqrt() / 8.0).max(1.0);
                let z: Vec<f64> = mat(&self.r1, x, d).iter().map(|v| scale * v + 0.5).collect();
                let mut r = 0.0;
                for i in 0..d - 1 {
                    let c1 = z[i] * z[i] - z[i + 1];
                    let c2 = 1.0 - z[i];
                    let t = 100.0 * c1 * c1 + c2 * c2;
                    r += t / 4000.0 - t.cos();
                }
                10.0 + 10.0 * r / (d as f64 - 1.0) + fopt
            }
            20 => self.schwefel(x),
            21 | 22 => self.gallagher_eval(x),
            23 => {
                let z = mat(&lambda_between(&self.r1, &self.r2, 10.0, d), &shifted(), d);
                let mut r = 1.0;
                for (i, v) in z.iter().enumerate() {
                    let mut t = 0.0;
                    for j in 1..33 {
                        let p = 2f64.powi(j);
                        t += (p * v - round(p * v)).abs() / p;
                    }
                    r *= 1.0 + (i as f64 + 1.0) * t;
                }
                let df = d as f64;
                10.0 / df / df * (-1.0 + r.powf(10.0 / df.powf(1.2))) + fopt + penalty(x)
            }
            _ => self.lunacek(x),
        }
    }

    fn step_ellipsoid(&self, x: &[f64]) -> f64 {
        let d = self.d;
        let mut z = vec![0.0; d];
        for (i, zi) in z.iter_mut().enumerate() {
            let c1 = 10f64.powf(i as f64 / (d as f64 - 1.0)).sqrt();
            for j in 0..d {
                *zi += c1 * self.r2[i * d + j] * (x[j] - self.xopt[j]);
            }
        }
        let x1 = z[0];
        for v in &mut z {
            *v = if v.abs() > 0.5 { round(*v) } else { round(10.0 * *v) / 10.0 };
        }
        let zz = mat(&self.r1, &z, d);
        let r: f64 = zz.iter().enumerate().map(|(i, v)| 100f64.powf(i as f64 / (d as f64 - 1.0)) * v * v).sum();
        0.1 * (x1.abs() * 1e-4).max(r) + penalty(x) + self.fopt
    }

    fn schwefel(&self, x: &[f64]) -> f64 {
        let d = self.d;
        // x_hat: the signs of the instance, times 2.
        let xh: Vec<f64> =
            x.iter().zip(&self.extra).map(|(v, u)| if u - 0.5 < 0.0 { -2.0 * v } else { 2.0 * v }).collect();
        let two_abs: Vec<f64> = self.xopt.iter().map(|o| 2.0 * o.abs()).collect();
        let mut zh = vec![0.0; d];
        zh[0] = xh[0];
        for i in 1..d {
            zh[i] = xh[i] + 0.25 * (xh[i - 1] - two_abs[i - 1]);
        }
        let z: Vec<f64> = (0..d)
            .map(|i| 100.0 * (10f64.sqrt().powf(i as f64 / (d as f64 - 1.0)) * (zh[i] - two_abs[i]) + two_abs[i]))
            .collect();
        let pen: f64 = z.iter().map(|v| (v.abs() - 500.0).max(0.0).powi(2)).sum();
        let s: f64 = z.iter().map(|v| v * v.abs().sqrt().sin()).sum();
        0.01 * (pen + 418.982_887_272_433_9 - s / d as f64) + self.fopt
    }

    fn gallagher_eval(&self, x: &[f64]) -> f64 {
        let d = self.d;
        let fac = -0.5 / d as f64;
        let tmx = mat(&self.r1, x, d);
        let mut f: f64 = 0.0;
        for i in 0..self.peaks {
            let mut t = 0.0;
            for j in 0..d {
                let v = tmx[j] - self.local[j * self.peaks + i];
                t += self.scales[i * d + j] * v * v;
            }
            f = f.max(self.peak_values[i] * (fac * t).exp());
        }
        let v = osc1(10.0 - f);
        v * v + penalty(x) + self.fopt
    }

    fn lunacek(&self, x: &[f64]) -> f64 {
        let d = self.d;
        let df = d as f64;
        let (mu0, dd) = (2.5, 1.0);
        let s = 1.0 - 0.5 / ((df + 20.0).sqrt() - 4.1);
        let mu1 = -((mu0 * mu0 - dd) / s).sqrt();
        let xh: Vec<f64> = x.iter().zip(&self.xopt).map(|(v, o)| if *o < 0.0 { -2.0 * v } else { 2.0 * v }).collect();
        let mut t = vec![0.0; d];
        for (i, ti) in t.iter_mut().enumerate() {
            let c1 = 10f64.powf(i as f64 / (df - 1.0));
            for j in 0..d {
                *ti += c1 * self.r2[i * d + j] * (xh[j] - mu0);
            }
        }
        let z = mat(&self.r1, &t, d);
        let s1: f64 = xh.iter().map(|v| (v - mu0).powi(2)).sum();
        let s2: f64 = xh.iter().map(|v| (v - mu1).powi(2)).sum();
        let s3: f64 = z.iter().map(|v| (2.0 * PI * v).cos()).sum();
        s1.min(dd * df + s * s2) + 10.0 * (df - s3) + 1e4 * penalty(x) + self.fopt
    }
}

/// COCO's rounding: `floor(x + 0.5)`.
fn round(x: f64) -> f64 {
    (x + 0.5).floor()
}

fn sum_sq(z: &[f64]) -> f64 {
    z.iter().map(|v| v * v).sum()
}

fn ellipsoid(z: &[f64]) -> f64 {
    let d = z.len() as f64;
    z.iter().enumerate().map(|(i, v)| 1e6f64.powf(i as f64 / (d - 1.0)) * v * v).sum()
}

fn rastrigin(z: &[f64]) -> f64 {
    let d = z.len() as f64;
    10.0 * (d - z.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>()) + sum_sq(z)
}

fn rosenbrock(z: &[f64]) -> f64 {
    (0..z.len() - 1).map(|i| 100.0 * (z[i] * z[i] - z[i + 1]).powi(2) + (z[i] - 1.0).powi(2)).sum()
}

/// `sum max(0, |x_i| - 5)^2`: the boundary penalty of several functions.
fn penalty(x: &[f64]) -> f64 {
    x.iter().map(|v| (v.abs() - 5.0).max(0.0).powi(2)).sum()
}

/// `T_osz` on one value.
fn osc1(v: f64) -> f64 {
    if v > 0.0 {
        let t = v.ln() / 0.1;
        (t + 0.49 * (t.sin() + (0.79 * t).sin())).exp().powf(0.1)
    } else if v < 0.0 {
        let t = (-v).ln() / 0.1;
        -(t + 0.49 * ((0.55 * t).sin() + (0.31 * t).sin())).exp().powf(0.1)
    } else {
        v
    }
}

fn osc(z: &[f64]) -> Vec<f64> {
    z.iter().map(|v| osc1(*v)).collect()
}

/// `T_asy^beta`.
fn asy(z: &[f64], beta: f64) -> Vec<f64> {
    let d = z.len() as f64;
    z.iter()
        .enumerate()
        .map(|(i, v)| if *v > 0.0 { v.powf(1.0 + beta * i as f64 / (d - 1.0) * v.sqrt()) } else { *v })
        .collect()
}

/// `Lambda^alpha`: `z_i * alpha^(i / (2 (d - 1)))`.
fn cond(z: &[f64], alpha: f64) -> Vec<f64> {
    let d = z.len() as f64;
    z.iter().enumerate().map(|(i, v)| alpha.powf(0.5 * i as f64 / (d - 1.0)) * v).collect()
}

/// `r1 diag(base^(k / (d - 1))) r2`, row-major.
fn lambda_between(r1: &[f64], r2: &[f64], base: f64, d: usize) -> Vec<f64> {
    let mut m = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            let mut s = 0.0;
            for k in 0..d {
                s += r1[i * d + k] * base.powf(k as f64 / (d as f64 - 1.0)) * r2[k * d + j];
            }
            m[i * d + j] = s;
        }
    }
    m
}

fn mat(m: &[f64], x: &[f64], d: usize) -> Vec<f64> {
    (0..d).map(|i| (0..d).map(|j| m[i * d + j] * x[j]).sum()).collect()
}

/// The 2009 legacy uniform generator: `n` numbers in `(0, 1)` from `seed`.
fn unif(n: usize, seed: i64) -> Vec<f64> {
    let mut seed = seed.abs().max(1);
    let step = |s: i64| {
        let t = s / 127_773;
        let s = 16_807 * (s - t * 127_773) - 2_836 * t;
        if s < 0 { s + 2_147_483_647 } else { s }
    };
    let mut table = [0i64; 32];
    for i in (0..40).rev() {
        seed = step(seed);
        if i < 32 {
            table[i] = seed;
        }
    }
    let mut current = table[0];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        seed = step(seed);
        let t = (current / 67_108_865) as usize;
        current = table[t];
        table[t] = seed;
        let r = current as f64 / 2.147_483_647e9;
        out.push(if r == 0.0 { 1e-99 } else { r });
    }
    out
}

fn gauss(n: usize, seed: i64) -> Vec<f64> {
    let u = unif(2 * n, seed);
    (0..n)
        .map(|i| {
            let g = (-2.0 * u[i].ln()).sqrt() * (2.0 * PI * u[n + i]).cos();
            if g == 0.0 { 1e-99 } else { g }
        })
        .collect()
}

/// A `d x d` rotation, row-major: Gram-Schmidt over the columns of a normal matrix.
fn rotation(seed: i64, d: usize) -> Vec<f64> {
    let g = gauss(d * d, seed);
    // b[k][i] = g[i * d + k]: element (row k, column i).
    let mut b: Vec<f64> = (0..d * d).map(|ki| g[(ki % d) * d + ki / d]).collect();
    for i in 0..d {
        for j in 0..i {
            let prod: f64 = (0..d).map(|k| b[k * d + i] * b[k * d + j]).sum();
            for k in 0..d {
                b[k * d + i] -= prod * b[k * d + j];
            }
        }
        let norm = (0..d).map(|k| b[k * d + i] * b[k * d + i]).sum::<f64>().sqrt();
        for k in 0..d {
            b[k * d + i] /= norm;
        }
    }
    b
}

fn compute_xopt(seed: i64, d: usize) -> Vec<f64> {
    unif(d, seed)
        .into_iter()
        .map(|u| {
            let v = 8.0 * (1e4 * u).floor() / 1e4 - 4.0;
            if v == 0.0 { -1e-5 } else { v }
        })
        .collect()
}

fn compute_fopt(f: usize, instance: usize) -> f64 {
    let base = match f {
        4 => 3,
        18 => 17,
        _ => f,
    };
    let s = (base + 10_000 * instance) as i64;
    let (g1, g2) = (gauss(1, s)[0], gauss(1, s + 1)[0]);
    (round(100.0 * 100.0 * g1 / g2) / 100.0).clamp(-1000.0, 1000.0)
}

impl Bbob {
    /// A point where `f = fopt`, for the functions whose optimum is the shift `xopt`
    /// itself (every one but linear slope, the two Rosenbrocks, Griewank-Rosenbrock and
    /// Schwefel, whose optimum sits elsewhere or on the boundary).
    pub fn optimum(&self) -> Option<Vec<f64>> {
        match self.f {
            5 | 8 | 9 | 19 | 20 => None,
            _ => Some(self.xopt.clone()),
        }
    }
}
