//! Synthetic datasets: `synthetic.{spirals, moons, circles, sine}(n:, noise:, seed:)`.
//!
//! Takes a generator name and its settings, gives [`Raw`] samples that depend only on
//! them. Two features for spirals (k classes), moons and circles (2 classes); one
//! feature and a regression target for sine (`y = sin(x) + noise`, `x` in `[-pi, pi]`).
//! Samples are spread over classes as evenly as `n` allows; noise is Gaussian.

use std::f64::consts::{PI, TAU};

use super::{DataError, Raw};
use crate::ir::{DataInfo, Task};
use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub n: usize,
    pub noise: f64,
    pub seed: u64,
    /// Spirals only.
    pub classes: usize,
}

/// The most samples a `synthetic.*` set may have: it is generated in memory before the run, and
/// an `n` with a few zeros too many would otherwise exhaust it.
pub const SYNTHETIC_MAX_N: i64 = 10_000_000;

/// The largest `noise` (standard deviation) of a `synthetic.*` set, whose curves have
/// coordinates of order 1.
pub const SYNTHETIC_MAX_NOISE: f64 = 1000.0;

pub(super) fn generate(kind: &str, spec: &Spec) -> Result<Raw, DataError> {
    let mut rng = Rng::new(spec.seed);
    let n = spec.n;
    let max = SYNTHETIC_MAX_N as usize;
    if n > max {
        return Err(DataError::new(format!("`synthetic.{kind}` with {n} samples; at most {max} are generated")));
    }
    let classes = match kind {
        "spirals" => spec.classes,
        "moons" | "circles" => 2,
        "sine" => 1,
        other => return Err(DataError::new(format!("unknown dataset `synthetic.{other}`"))),
    };
    let (mut x, mut y) = (Vec::with_capacity(2 * n), Vec::with_capacity(n));
    for i in 0..n {
        let c = i % classes;
        // Position along the class's curve in [0, 1].
        let t = (i / classes) as f64 / ((n / classes).max(2) - 1) as f64;
        let mut e = || spec.noise * rng.normal();
        let (a, b) = match kind {
            "spirals" => {
                let r = 0.1 + t;
                let angle = TAU * c as f64 / classes as f64 + 1.75 * PI * t;
                (r * angle.cos() + e(), r * angle.sin() + e())
            }
            "moons" => {
                let u = PI * t;
                if c == 0 { (u.cos() + e(), u.sin() + e()) } else { (1.0 - u.cos() + e(), 0.5 - u.sin() + e()) }
            }
            "circles" => {
                let r = if c == 0 { 1.0 } else { 0.5 };
                let u = TAU * t;
                (r * u.cos() + e(), r * u.sin() + e())
            }
            _ => {
                let u = -PI + TAU * rng.f64();
                x.push(u as f32);
                y.push((u.sin() + spec.noise * rng.normal()) as f32);
                continue;
            }
        };
        x.push(a as f32);
        x.push(b as f32);
        y.push(c as f32);
    }
    let (shape, task) = if kind == "sine" { (vec![1], Task::Regression) } else { (vec![2], Task::Classification) };
    let info = DataInfo { name: format!("synthetic.{kind}"), shape, classes, task, vocab: None };
    Ok(Raw { info, x, y, extras: Default::default(), stored: None })
}
