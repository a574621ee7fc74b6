//! A minimal 2-D plot written as inline SVG: linear axes with ticks, points, lines.

use std::fmt::Write as _;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub struct Plot {
    w: f64,
    h: f64,
    x: (f64, f64),
    y: (f64, f64),
    body: String,
    title: String,
    xlabel: String,
    ylabel: String,
}

const L: f64 = 60.0;
const R: f64 = 15.0;
const T: f64 = 26.0;
const B: f64 = 40.0;

impl Plot {
    pub fn new(w: u32, h: u32, title: &str, xlabel: &str, ylabel: &str) -> Plot {
        Plot {
            w: f64::from(w),
            h: f64::from(h),
            x: (0.0, 1.0),
            y: (0.0, 1.0),
            body: String::new(),
            title: title.into(),
            xlabel: xlabel.into(),
            ylabel: ylabel.into(),
        }
    }

    /// Sets the ranges to cover `pts` (finite ones), with a margin.
    pub fn fit(&mut self, pts: &[(f64, f64)]) {
        let range = |vals: Vec<f64>| {
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if !lo.is_finite() || !hi.is_finite() {
                return (0.0, 1.0);
            }
            let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
            (lo - pad, hi + pad)
        };
        let fin: Vec<&(f64, f64)> = pts.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        self.x = range(fin.iter().map(|p| p.0).collect());
        self.y = range(fin.iter().map(|p| p.1).collect());
    }

    fn px(&self, x: f64) -> f64 {
        L + (self.w - L - R) * (x - self.x.0) / (self.x.1 - self.x.0)
    }

    fn py(&self, y: f64) -> f64 {
        self.h - B - (self.h - T - B) * (y - self.y.0) / (self.y.1 - self.y.0)
    }

    pub fn points(&mut self, pts: &[(f64, f64)], class: &str, colour: &str) {
        for &(x, y) in pts.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
            let _ = write!(
                self.body,
                "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\" opacity=\"0.85\"/>",
                self.px(x),
                self.py(y)
            );
        }
    }

    fn path(&mut self, d: String, class: &str, colour: &str) {
        let dash = if class.contains("pruned") { " stroke-dasharray=\"4 3\"" } else { "" };
        let _ = write!(
            self.body,
            "<path class=\"{class}\" d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\"{dash}/>"
        );
    }

    pub fn line(&mut self, pts: &[(f64, f64)], class: &str, colour: &str) {
        if pts.is_empty() {
            return;
        }
        let mut d = String::new();
        for (i, &(x, y)) in pts.iter().enumerate() {
            let _ = write!(d, "{}{:.1},{:.1} ", if i == 0 { 'M' } else { 'L' }, self.px(x), self.py(y));
        }
        self.path(d.trim_end().to_string(), class, colour);
    }

    /// A staircase through `pts` (the best so far holds until it improves).
    pub fn step_path(&mut self, pts: &[(f64, f64)], class: &str, colour: &str) {
        if pts.is_empty() {
            return;
        }
        let mut d = format!("M{:.1},{:.1}", self.px(pts[0].0), self.py(pts[0].1));
        for w in pts.windows(2) {
            let _ = write!(d, " H{:.1} V{:.1}", self.px(w[1].0), self.py(w[1].1));
        }
        self.path(d, class, colour);
    }

    pub fn finish(self) -> String {
        let (w, h) = (self.w, self.h);
        let mut s = format!(
            "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
             <text x=\"{:.1}\" y=\"16\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
            w / 2.0,
            esc(&self.title)
        );
        let _ = write!(
            s,
            "<line x1=\"{L}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\"/><line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{:.1}\" stroke=\"#444\"/>",
            h - B,
            w - R,
            h - B,
            h - B
        );
        for k in 0..=4 {
            let fx = self.x.0 + (self.x.1 - self.x.0) * f64::from(k) / 4.0;
            let fy = self.y.0 + (self.y.1 - self.y.0) * f64::from(k) / 4.0;
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
                 <line x1=\"{L}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
                self.px(fx),
                h - B + 14.0,
                tick(fx),
                L - 4.0,
                self.py(fy) + 4.0,
                tick(fy),
                self.py(fy),
                w - R,
                self.py(fy)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"12\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {:.1})\">{}</text>",
            (L + w - R) / 2.0,
            h - 6.0,
            esc(&self.xlabel),
            (T + h - B) / 2.0,
            (T + h - B) / 2.0,
            esc(&self.ylabel)
        );
        s.push_str(&self.body);
        s.push_str("</svg>");
        s
    }
}

fn tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
