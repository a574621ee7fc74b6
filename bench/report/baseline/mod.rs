//! The report module as it was before the rewrite (commit 6ae455b, `src/report/`), kept
//! unchanged but for `crate::` paths so the benchmark times both in one run.
#![allow(dead_code, clippy::all)]

//! (Original header:) The HTML report: one self-contained `report.html` (inline CSS and SVG, no script, no
//! network) from a [`ReportData`].
//!
//! Takes the trials of a study, the objectives' names and directions, the parameters'
//! domains and the final model's summary; gives HTML with: the optimisation history of
//! each objective with the best so far; the Pareto front (every pair of objectives) when
//! there is more than one; parallel coordinates of the parameters and the first
//! objective; parameter importance (fANOVA main effects on a random-forest surrogate, see
//! [`forest`]); learning curves of every trial that reported epochs, pruned ones
//! included; the final model against the best single sub-model.
//!
//! **Invariant:** the output is a pure function of the data (no clock, no randomness
//! beyond the forest's fixed seed); every plotted trial value is finite.

#[path = "forest.rs"]
pub mod forest;
#[path = "svg.rs"]
mod svg;

use std::fmt::Write as _;
use std::path::Path;

use bma::final_model::FinalSummary;
use bma::ir::Value;
use bma::trial::{Direction, INFEASIBLE, Trial, TrialState};
use svg::{Plot, esc};

/// A parameter's domain, for axes and encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Numbers in `[lo, hi]`, on a log axis when `log`.
    Numeric { lo: f64, hi: f64, log: bool },
    /// Choices, in order.
    Categorical(Vec<String>),
}

/// A searched parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub domain: Domain,
}

impl ParamInfo {
    /// Domains read from the values the trials took: numbers give a range (log when all
    /// are positive and span more than two decades), anything else a list of choices.
    pub fn infer(trials: &[Trial]) -> Vec<ParamInfo> {
        let mut names: Vec<String> = trials.iter().flat_map(|t| t.params.keys().cloned()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let values: Vec<&Value> = trials.iter().filter_map(|t| t.params.get(&name)).collect();
                let nums: Option<Vec<f64>> = values.iter().map(|v| v.as_f64()).collect();
                let domain = match nums {
                    Some(n) if !n.is_empty() => {
                        let lo = n.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = n.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        Domain::Numeric { lo, hi, log: lo > 0.0 && hi / lo > 100.0 }
                    }
                    _ => {
                        let mut c: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                        c.sort();
                        c.dedup();
                        Domain::Categorical(c)
                    }
                };
                ParamInfo { name, domain }
            })
            .collect()
    }

    /// The value on a `[0, 1]` axis; `None` when the parameter is inactive.
    fn unit(&self, v: Option<&Value>) -> Option<f64> {
        let v = v?;
        match &self.domain {
            Domain::Numeric { lo, hi, log } => {
                let x = v.as_f64()?;
                let (a, b, x) = if *log { (lo.ln(), hi.ln(), x.max(1e-300).ln()) } else { (*lo, *hi, x) };
                Some(if b > a { ((x - a) / (b - a)).clamp(0.0, 1.0) } else { 0.5 })
            }
            Domain::Categorical(c) => {
                let i = c.iter().position(|s| *s == v.to_string())?;
                Some(if c.len() > 1 { i as f64 / (c.len() - 1) as f64 } else { 0.5 })
            }
        }
    }
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub title: String,
    /// Objective names and directions, in the experiment's order (`values` follow it).
    pub objectives: Vec<(String, Direction)>,
    pub params: Vec<ParamInfo>,
    pub trials: Vec<Trial>,
    pub final_model: Option<FinalSummary>,
}

impl ReportData {
    /// Report data for `trials`, parameter domains inferred from them.
    pub fn new(
        title: &str,
        trials: &[Trial],
        objectives: Vec<(String, Direction)>,
        final_model: Option<FinalSummary>,
    ) -> ReportData {
        ReportData {
            title: title.to_string(),
            objectives,
            params: ParamInfo::infer(trials),
            trials: trials.to_vec(),
            final_model,
        }
    }

    /// Complete trials whose objective values are all finite.
    fn complete(&self) -> Vec<&Trial> {
        self.trials
            .iter()
            .filter(|t| {
                t.state == TrialState::Complete
                    && t.values.len() >= self.objectives.len().max(1)
                    && t.values.iter().all(|v| v.is_finite())
            })
            .collect()
    }

    /// Parameter importances for the first objective, highest first: (name, fraction).
    pub fn importances(&self) -> Vec<(String, f64)> {
        let complete = self.complete();
        if complete.len() < 4 || self.params.is_empty() {
            return Vec::new();
        }
        // Inactive conditional parameters sit just below their range.
        let x: Vec<Vec<f64>> = complete
            .iter()
            .map(|t| self.params.iter().map(|p| p.unit(t.params.get(&p.name)).unwrap_or(-0.1)).collect())
            .collect();
        let y: Vec<f64> = complete.iter().map(|t| t.values[0]).collect();
        let Some(forest) = forest::Forest::fit(&x, &y, 64, 0x5eed) else { return Vec::new() };
        let imp = forest.importances();
        let total: f64 = imp.iter().sum();
        let mut out: Vec<(String, f64)> = self
            .params
            .iter()
            .zip(&imp)
            .map(|(p, v)| (p.name.clone(), if total > 0.0 { v / total } else { 0.0 }))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

/// Writes `report.html` for `data` at `path`.
pub fn write(path: &Path, data: &ReportData) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, render(data))
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff;max-width:1100px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}.plots{display:flex;flex-wrap:wrap;gap:12px}svg{background:#fff;border:1px solid #eee}\
svg text{font-size:11px;fill:#333}.muted{color:#777;font-size:13px}";

/// The report as HTML.
pub fn render(data: &ReportData) -> String {
    let mut h = String::new();
    let count = |s: TrialState| data.trials.iter().filter(|t| t.state == s).count();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{CSS}</style></head><body>\
         <h1>{t}</h1><p class=\"muted\">{} trials: {} complete, {} pruned, {} failed{}.</p>",
        data.trials.len(),
        count(TrialState::Complete),
        count(TrialState::Pruned),
        count(TrialState::Failed),
        match count(TrialState::Infeasible) {
            0 => String::new(),
            n => format!(", {n} {INFEASIBLE}"),
        },
        t = esc(&data.title),
    );
    final_section(&mut h, data);
    h.push_str("<h2>Optimisation history</h2><div class=\"plots\">");
    for (i, (name, dir)) in data.objectives.iter().enumerate() {
        h.push_str(&history(data, i, name, *dir));
    }
    h.push_str("</div>");
    if data.objectives.len() > 1 {
        h.push_str("<h2>Pareto front</h2><div class=\"plots\">");
        for i in 0..data.objectives.len() {
            for j in i + 1..data.objectives.len() {
                h.push_str(&pareto(data, i, j));
            }
        }
        h.push_str("</div>");
    }
    h.push_str("<h2>Parallel coordinates</h2>");
    h.push_str(&parallel(data));
    h.push_str("<h2>Parameter importance</h2><p class=\"muted\">fANOVA main effects of each parameter on the first \
                objective, on a 64-tree random-forest surrogate fitted to the complete trials (normalised to sum to 1).</p>");
    h.push_str(&importance(data));
    h.push_str("<h2>Learning curves</h2>");
    h.push_str(&curves(data));
    h.push_str("</body></html>\n");
    h
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 || (1e-3..1e5).contains(&v.abs()) { format!("{v:.4}") } else { format!("{v:.3e}") }
}

fn final_section(h: &mut String, data: &ReportData) {
    let Some(f) = &data.final_model else { return };
    let _ = write!(h, "<h2>Final model</h2><p>{} &mdash; {} member(s): ", esc(&f.method), f.members.len());
    let parts: Vec<String> = f
        .members
        .iter()
        .map(|m| {
            let ts: Vec<String> = m.trials.iter().map(|t| format!("#{t}")).collect();
            format!("{} ({:.3})", ts.join("+"), m.weight)
        })
        .collect();
    let _ = write!(h, "{}</p>", esc(&parts.join(", ")));
    let mut metrics: Vec<&String> = f.final_test.keys().filter(|k| f.single_test.contains_key(*k)).collect();
    metrics.retain(|k| ["accuracy", "loss", "f1", "mse", "mae", "r2"].contains(&k.as_str()));
    h.push_str("<table id=\"final\"><tr><th>model</th>");
    for m in &metrics {
        let _ = write!(h, "<th>valid {0}</th><th>test {0}</th>", esc(m));
    }
    h.push_str("</tr>");
    let row = |h: &mut String, name: &str, v: &bma::train::Metrics, t: &bma::train::Metrics| {
        let _ = write!(h, "<tr><td>{}</td>", esc(name));
        for m in &metrics {
            let g = |x: &bma::train::Metrics| x.get(*m).map_or("-".into(), |v| fmt_num(*v));
            let _ = write!(h, "<td>{}</td><td>{}</td>", g(v), g(t));
        }
        h.push_str("</tr>");
    };
    row(h, "final", &f.final_valid, &f.final_test);
    row(h, &format!("best single (#{})", f.best_single), &f.single_valid, &f.single_test);
    h.push_str("</table>");
    if !f.excluded.is_empty() {
        h.push_str("<p>Left out:</p><ul>");
        for e in &f.excluded {
            let _ = write!(h, "<li>#{}: {}</li>", e.trial, esc(&e.reason));
        }
        h.push_str("</ul>");
    }
}

fn history(data: &ReportData, i: usize, name: &str, dir: Direction) -> String {
    let complete = data.complete();
    let pts: Vec<(f64, f64)> = complete.iter().map(|t| (t.number as f64, t.values[i])).collect();
    let mut plot = Plot::new(460, 300, &format!("{name} ({})", dir.as_str()), "trial", name);
    plot.fit(&pts);
    let mut best: Vec<(f64, f64)> = Vec::new();
    for &(x, y) in &pts {
        let b = match best.last() {
            Some(&(_, b)) if dir.loss(b) <= dir.loss(y) => b,
            _ => y,
        };
        best.push((x, b));
    }
    plot.points(&pts, "pt", "#4878d0");
    plot.step_path(&best, "best", "#d65f5f");
    plot.finish()
}

/// Indices of the non-dominated points (all objectives turned to losses).
fn front(losses: &[Vec<f64>]) -> Vec<usize> {
    (0..losses.len())
        .filter(|&i| {
            !losses
                .iter()
                .any(|o| o.iter().zip(&losses[i]).all(|(a, b)| a <= b) && o.iter().zip(&losses[i]).any(|(a, b)| a < b))
        })
        .collect()
}

fn pareto(data: &ReportData, i: usize, j: usize) -> String {
    let complete = data.complete();
    let (ni, di) = &data.objectives[i];
    let (nj, dj) = &data.objectives[j];
    let pts: Vec<(f64, f64)> = complete.iter().map(|t| (t.values[i], t.values[j])).collect();
    let losses: Vec<Vec<f64>> = complete.iter().map(|t| vec![di.loss(t.values[i]), dj.loss(t.values[j])]).collect();
    let on: Vec<usize> = front(&losses);
    let mut plot = Plot::new(420, 320, &format!("{ni} vs {nj}"), ni, nj);
    plot.fit(&pts);
    plot.points(&pts, "pt", "#9aa9c6");
    let mut f: Vec<(f64, f64)> = on.iter().map(|k| pts[*k]).collect();
    f.sort_by(|a, b| a.0.total_cmp(&b.0));
    plot.points(&f, "front", "#d65f5f");
    plot.line(&f, "frontline", "#d65f5f");
    plot.finish()
}

fn parallel(data: &ReportData) -> String {
    let complete = data.complete();
    let Some((obj, dir)) = data.objectives.first() else { return String::new() };
    let axes = data.params.len() + 1;
    let (w, hgt) = ((120 * axes).max(480) as f64, 320.0);
    let (left, right, top, bottom) = (40.0, 40.0, 30.0, 40.0);
    let ax = |k: usize| left + (w - left - right) * k as f64 / (axes - 1).max(1) as f64;
    let ay = |u: f64| top + (hgt - top - bottom) * (1.0 - u);
    let ys: Vec<f64> = complete.iter().map(|t| t.values[0]).collect();
    let (lo, hi) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let unit = |v: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    let mut s = format!(
        "<svg class=\"parallel\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\">"
    );
    for t in &complete {
        let mut d = String::new();
        let mut pen = 'M';
        for (k, p) in data.params.iter().enumerate() {
            match p.unit(t.params.get(&p.name)) {
                Some(u) => {
                    let _ = write!(d, "{pen}{:.1},{:.1} ", ax(k), ay(u));
                    pen = 'L';
                }
                None => pen = 'M',
            }
        }
        let u = unit(t.values[0]);
        let _ = write!(d, "{pen}{:.1},{:.1}", ax(axes - 1), ay(u));
        // Better trials are darker and redder.
        let good = if *dir == Direction::Maximize { u } else { 1.0 - u };
        let _ = write!(
            s,
            "<path class=\"trial\" d=\"{d}\" fill=\"none\" stroke=\"hsl({:.0},70%,{:.0}%)\" stroke-width=\"1.3\" opacity=\"0.75\"/>",
            220.0 - 220.0 * good,
            65.0 - 25.0 * good
        );
    }
    let mut names: Vec<String> = data.params.iter().map(|p| p.name.clone()).collect();
    names.push(obj.clone());
    for (k, name) in names.iter().enumerate() {
        let x = ax(k);
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            hgt - bottom,
            hgt - bottom + 16.0,
            esc(name)
        );
        let (lo_l, hi_l) = match data.params.get(k).map(|p| &p.domain) {
            Some(Domain::Numeric { lo, hi, .. }) => (fmt_num(*lo), fmt_num(*hi)),
            Some(Domain::Categorical(c)) => {
                (c.first().cloned().unwrap_or_default(), c.last().cloned().unwrap_or_default())
            }
            None => (fmt_num(lo), fmt_num(hi)),
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 3.0,
            hgt - bottom - 2.0,
            esc(&lo_l),
            x + 3.0,
            top + 10.0,
            esc(&hi_l)
        );
    }
    s.push_str("</svg>");
    s
}

fn importance(data: &ReportData) -> String {
    let imp = data.importances();
    if imp.is_empty() {
        return "<p class=\"muted\">Too few complete trials (4 needed) to fit the surrogate.</p>".into();
    }
    let row = 22.0;
    let (w, hgt) = (560.0, 20.0 + row * imp.len() as f64);
    let mut s = format!(
        "<svg class=\"importance\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\">"
    );
    for (k, (name, v)) in imp.iter().enumerate() {
        let y = 10.0 + row * k as f64;
        let len = 360.0 * v.clamp(0.0, 1.0);
        let _ = write!(
            s,
            "<text x=\"130\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"140\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"#4878d0\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.3}</text>",
            y + 14.0,
            esc(name),
            row - 6.0,
            145.0 + len,
            y + 14.0,
            v
        );
    }
    s.push_str("</svg>");
    s
}

fn curves(data: &ReportData) -> String {
    let with: Vec<&Trial> = data.trials.iter().filter(|t| !t.steps.is_empty()).collect();
    if with.is_empty() {
        return "<p class=\"muted\">No trial reported per-epoch values.</p>".into();
    }
    let name = data.objectives.first().map_or("value".to_string(), |o| o.0.clone());
    let all: Vec<(f64, f64)> = with
        .iter()
        .flat_map(|t| t.steps.iter().map(|(e, v)| (f64::from(*e), *v)))
        .filter(|p| p.1.is_finite())
        .collect();
    let mut plot = Plot::new(700, 340, &format!("{name} per epoch (valid); pruned trials dashed"), "epoch", &name);
    plot.fit(&all);
    for t in &with {
        let pts: Vec<(f64, f64)> =
            t.steps.iter().map(|(e, v)| (f64::from(*e), *v)).filter(|p| p.1.is_finite()).collect();
        let (class, colour) = match t.state {
            TrialState::Pruned => ("curve pruned", "#e0a040"),
            TrialState::Failed => ("curve failed", "#999999"),
            _ => ("curve", "#4878d0"),
        };
        plot.line(&pts, class, colour);
    }
    plot.finish()
}
