//! A 2-D plot written as inline SVG: two [`Axis`] (linear, log or categorical) with 1-2-5
//! ticks, points, lines and cells, each mark with a `<title>` tooltip.
//!
//! Takes data coordinates; gives one `<svg>` element. **Invariants:** non-finite
//! coordinates are never drawn; a call to [`Plot::points`] draws at most [`MAX_MARKS`]
//! marks whatever the number of points (denser points are binned into pixel cells, the
//! first point of a cell drawn with a tooltip that counts the rest), so a plot's size is
//! bounded; a tooltip is built only for a drawn mark. `points` is O(n) (a few binning
//! passes when dense), the rest O(marks).

use std::collections::HashMap;
use std::fmt::Write as _;

use super::axis::Axis;

/// The most marks one [`Plot::points`] call draws.
pub const MAX_MARKS: usize = 800;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub struct Plot {
    w: f64,
    h: f64,
    x: Axis,
    y: Axis,
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
    pub fn new(w: u32, h: u32, title: &str, (xlabel, x): (&str, Axis), (ylabel, y): (&str, Axis)) -> Plot {
        Plot {
            w: f64::from(w),
            h: f64::from(h),
            x,
            y,
            body: String::new(),
            title: title.into(),
            xlabel: xlabel.into(),
            ylabel: ylabel.into(),
        }
    }

    fn px(&self, x: f64) -> f64 {
        L + (self.w - L - R) * self.x.unit(x)
    }

    fn py(&self, y: f64) -> f64 {
        self.h - B - (self.h - T - B) * self.y.unit(y)
    }

    /// Circles at `pts` (filled, or hollow rings), `tip(i)` naming point `i`; binned past
    /// [`MAX_MARKS`]. Gives the number of marks drawn.
    pub fn points(
        &mut self,
        pts: &[(f64, f64)],
        class: &str,
        colour: &str,
        hollow: bool,
        tip: &dyn Fn(usize) -> String,
    ) -> usize {
        let pix: Vec<(usize, f64, f64)> = pts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.0.is_finite() && p.1.is_finite())
            .map(|(i, p)| (i, self.px(p.0), self.py(p.1)))
            .collect();
        let marks = bin(&pix);
        let paint = if hollow {
            format!("fill=\"#fff\" stroke=\"{colour}\" stroke-width=\"1.4\"")
        } else {
            format!("fill=\"{colour}\" opacity=\"0.85\"")
        };
        for &(i, x, y, n) in &marks {
            let more = if n > 1 { format!("\n(and {} more trials here)", n - 1) } else { String::new() };
            let _ = write!(
                self.body,
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" {paint}><title>{}{more}</title></circle>",
                esc(&tip(i))
            );
        }
        marks.len()
    }

    fn path(&mut self, d: &str, class: &str, colour: &str, tip: Option<&str>) {
        let dash = if class.contains("pruned") { " stroke-dasharray=\"4 3\"" } else { "" };
        let _ = write!(
            self.body,
            "<path class=\"{class}\" d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\"{dash}>"
        );
        if let Some(t) = tip {
            let _ = write!(self.body, "<title>{}</title>", esc(t));
        }
        self.body.push_str("</path>");
    }

    /// A polyline through the finite points of `pts`.
    pub fn line(&mut self, pts: &[(f64, f64)], class: &str, colour: &str, tip: Option<&str>) {
        let mut d = String::new();
        for &(x, y) in pts.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
            let _ = write!(d, "{}{:.1},{:.1} ", if d.is_empty() { 'M' } else { 'L' }, self.px(x), self.py(y));
        }
        if !d.is_empty() {
            self.path(d.trim_end(), class, colour, tip);
        }
    }

    /// A staircase through `pts` (the best so far holds until it improves).
    pub fn step_path(&mut self, pts: &[(f64, f64)], class: &str, colour: &str, tip: Option<&str>) {
        let Some(first) = pts.first() else { return };
        let mut d = format!("M{:.1},{:.1}", self.px(first.0), self.py(first.1));
        let mut last = (self.px(first.0), self.py(first.1));
        for p in &pts[1..] {
            let (x, y) = (self.px(p.0), self.py(p.1));
            // Only corners: a flat stretch is one segment however many trials it spans.
            if (y - last.1).abs() >= 0.05 {
                let _ = write!(d, " H{x:.1} V{y:.1}");
                last = (x, y);
            }
        }
        let end = self.px(pts[pts.len() - 1].0);
        if end > last.0 + 0.05 {
            let _ = write!(d, " H{end:.1}");
        }
        self.path(&d, class, colour, tip);
    }

    /// A filled cell over data coordinates `[x0, x1] × [y0, y1]`.
    pub fn cell(&mut self, (x0, x1): (f64, f64), (y0, y1): (f64, f64), fill: &str, tip: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let (c, d) = (self.py(y1), self.py(y0));
        let _ = write!(
            self.body,
            "<rect class=\"cell\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"><title>{}</title></rect>",
            a.min(b),
            c.min(d),
            (b - a).abs(),
            (d - c).abs(),
            esc(tip)
        );
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
        for (v, label) in self.x.ticks() {
            let x = self.px(v);
            let _ = write!(
                s,
                "<text class=\"xtick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
                 <line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>",
                h - B + 14.0,
                esc(&label),
                h - B,
                h - B + 3.0
            );
        }
        for (v, label) in self.y.ticks() {
            let y = self.py(v);
            let _ = write!(
                s,
                "<text class=\"ytick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
                 <line x1=\"{L}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>",
                L - 4.0,
                y + 4.0,
                esc(&label),
                w - R
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

/// Marks for pixel points `(index, x, y)`: every point when there are few, else one per
/// occupied cell (cells grow until at most [`MAX_MARKS`] are occupied): `(index of the
/// cell's first point, x, y, points in the cell)`, in input order.
fn bin(pix: &[(usize, f64, f64)]) -> Vec<(usize, f64, f64, usize)> {
    if pix.len() <= MAX_MARKS {
        return pix.iter().map(|&(i, x, y)| (i, x, y, 1)).collect();
    }
    let mut size = 2.0;
    loop {
        let mut cells: HashMap<(i64, i64), usize> = HashMap::new();
        let mut marks: Vec<(usize, f64, f64, usize)> = Vec::new();
        for &(i, x, y) in pix {
            let key = ((x / size).floor() as i64, (y / size).floor() as i64);
            match cells.get(&key) {
                Some(&m) => marks[m].3 += 1,
                None => {
                    cells.insert(key, marks.len());
                    marks.push((i, x, y, 1));
                }
            }
        }
        if marks.len() <= MAX_MARKS || size > 1e4 {
            return marks;
        }
        size *= 1.5;
    }
}
