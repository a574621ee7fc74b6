//! Plot axes: a value range on a linear, log or categorical scale, its position on
//! `[0, 1]` and its tick marks.
//!
//! Takes a range (or the values to cover) and the scale; gives `unit(v)` and ticks.
//! **Invariants:** linear ticks are multiples of 1, 2 or 5 × 10^k inside the range (of at
//! least 1 on an integer axis, so trial and epoch axes never read −0.05); log ticks are
//! powers of ten (with 2× and 5× between them when the range spans under three decades);
//! a label never shows more digits than its step needs, and never `-0`. O(ticks).

/// How values lie along an axis.
#[derive(Debug, Clone, PartialEq)]
pub enum Scale {
    Linear {
        integer: bool,
    },
    /// Positive values, by their logarithm.
    Log,
    /// Choices at positions 0, 1, ... (a value is its index).
    Categorical(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub scale: Scale,
}

impl Axis {
    /// An axis covering the finite values of `vals` (positive ones on a log scale) with a
    /// 5% margin each side; `[0, 1]` when there are none.
    pub fn fit(vals: impl Iterator<Item = f64>, scale: Scale) -> Axis {
        let log = scale == Scale::Log;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in vals.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if let Scale::Categorical(c) = &scale {
            return Axis { lo: -0.5, hi: c.len().max(1) as f64 - 0.5, scale };
        }
        if !lo.is_finite() {
            return if log { Axis { lo: 0.1, hi: 10.0, scale } } else { Axis { lo: 0.0, hi: 1.0, scale } };
        }
        if log {
            let (a, b) = (lo.log10(), hi.log10());
            let pad = if b > a { 0.05 * (b - a) } else { 0.5 };
            return Axis { lo: 10f64.powf(a - pad), hi: 10f64.powf(b + pad), scale };
        }
        let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
        Axis { lo: lo - pad, hi: hi + pad, scale }
    }

    /// Where `v` lies: 0 at `lo`, 1 at `hi` (outside for values out of range).
    pub fn unit(&self, v: f64) -> f64 {
        let (a, b, x) = match self.scale {
            Scale::Log => (self.lo.max(1e-300).ln(), self.hi.max(1e-300).ln(), v.max(1e-300).ln()),
            _ => (self.lo, self.hi, v),
        };
        if b > a { (x - a) / (b - a) } else { 0.5 }
    }

    /// The value at `u` along the axis (the inverse of [`Axis::unit`]).
    pub fn at(&self, u: f64) -> f64 {
        match self.scale {
            Scale::Log => (self.lo.max(1e-300).ln() + u * (self.hi.max(1e-300).ln() - self.lo.max(1e-300).ln())).exp(),
            _ => self.lo + u * (self.hi - self.lo),
        }
    }

    /// Tick values and their labels, low to high.
    pub fn ticks(&self) -> Vec<(f64, String)> {
        match &self.scale {
            Scale::Categorical(c) => c.iter().enumerate().map(|(i, s)| (i as f64, s.clone())).collect(),
            Scale::Log => log_ticks(self.lo, self.hi),
            Scale::Linear { integer } => linear_ticks(self.lo, self.hi, *integer),
        }
    }
}

/// 1-2-5 ticks inside `[lo, hi]`: about five of them.
pub fn linear_ticks(lo: f64, hi: f64, integer: bool) -> Vec<(f64, String)> {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo {
        return Vec::new();
    }
    if hi == lo {
        return vec![(lo, label(lo, lo.abs().max(1.0) / 10.0))];
    }
    let mut step = nice_step((hi - lo) / 5.0);
    if integer {
        step = step.max(1.0).round();
    }
    // A tick a rounding error outside the range still counts as inside.
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).take(50).map(|k| k as f64 * step).map(|v| (v, label(v, step))).collect()
}

/// The smallest 1, 2 or 5 × 10^k at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|s| *s >= raw * (1.0 - 1e-9)).unwrap_or(10.0 * p)
}

/// Powers of ten inside `[lo, hi]` (every other one or sparser past ten decades), with
/// 2× and 5× ticks when there are fewer than three.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Vec::new();
    }
    let (a, b) = ((lo.log10() - 1e-9).ceil() as i32, (hi.log10() + 1e-9).floor() as i32);
    let decades = (b - a + 1).max(0);
    let mut out = Vec::new();
    if decades < 3 {
        for k in a - 1..=b {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powi(k);
                if v >= lo * (1.0 - 1e-12) && v <= hi * (1.0 + 1e-12) {
                    out.push((v, log_label(v)));
                }
            }
        }
    } else {
        let every = (decades as usize).div_ceil(8).max(1);
        for k in (a..=b).step_by(every) {
            let v = 10f64.powi(k);
            out.push((v, log_label(v)));
        }
    }
    out
}

/// `v` with as many decimals as `step` needs (scientific past 1e5 or below 1e-4).
pub fn label(v: f64, step: f64) -> String {
    if v == 0.0 || v.abs() < step * 1e-9 {
        return "0".into();
    }
    let a = v.abs();
    if a >= 1e5 || step < 1e-4 {
        let digits = ((a.log10().floor() - step.log10().floor()).max(0.0) as usize).min(6);
        return trim_exp(&format!("{v:.digits$e}"));
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

fn log_label(v: f64) -> String {
    if (1e-3..1e5).contains(&v) {
        let decimals = (-v.log10().floor()).max(0.0) as usize;
        format!("{v:.decimals$}")
    } else {
        trim_exp(&format!("{v:.0e}"))
    }
}

/// `1.50e-5` as `1.5e-5`.
fn trim_exp(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
        _ => s.to_string(),
    }
}
