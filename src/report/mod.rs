//! The HTML report: one self-contained `report.html` (inline CSS, SVG and a small sorting
//! script; no network) from a [`ReportData`].
//!
//! Takes the trials of a study, the objectives' names and directions, the parameters'
//! domains and the final model's summary; gives HTML with: the final model against the
//! best single sub-model; the optimisation history of each objective (complete trials
//! filled, pruned ones as rings at their last reported value, the best so far over the
//! complete ones); the Pareto front of every pair of objectives with the dominated
//! trials; parallel coordinates; a slice plot per parameter; parameter importance
//! (fANOVA main effects on a random-forest surrogate, see [`forest`]); a binned map of
//! the two most important parameters; learning curves; the learning rates that
//! hypergradient descent adapted ([`rates`], when a trial did); the DARTS architecture
//! weights per epoch ([`architecture`], when the study ran `darts`); the best trials and the
//! failed ones (with their reasons) in sortable tables. Every mark carries a `<title>` tooltip
//! naming its trial, parameters and values. The timeline ([`timeline`]) draws each trial's
//! run on its slot, coloured by its state.
//!
//! Cost, for n trials, d parameters and e reported epochs per trial: counts, history and
//! slices O(n·d) (points binned to at most [`svg::MAX_MARKS`] marks per plot); each
//! Pareto pair O(n log n) (a sort and a sweep); parallel coordinates and learning curves
//! O(n log n) to choose the at most [`MAX_LINES`] and [`MAX_CURVES`] drawn, O(n·e) for the
//! curves' range; importance on at most [`MAX_FIT`] trials (a fixed-seed subsample past
//! that; the report says so), O(T·d·m log m) for T trees on m rows; the map O(n); tables
//! O(n log n) for the best [`MAX_ROWS`] rows. So O(n log n + n·(d + e)) overall, and the
//! output's size is bounded whatever n.
//!
//! **Invariant:** the output is a pure function of the data and [`Options`] (no clock, no
//! randomness beyond fixed seeds); every plotted value is finite.

mod architecture;
mod axis;
pub mod forest;
pub mod live;
mod rates;
mod sections;
mod svg;
pub mod timeline;

use std::fmt::Write as _;
use std::path::Path;

use crate::final_model::FinalSummary;
use crate::ir::Value;
use crate::trial::{Direction, INFEASIBLE, Trial, TrialState};
use svg::esc;

/// The most trials the importance surrogate is fitted to.
pub const MAX_FIT: usize = 1000;
/// The most trials drawn in the parallel coordinates.
pub const MAX_LINES: usize = 300;
/// The most learning curves drawn.
pub const MAX_CURVES: usize = 100;
/// The most rows in a table.
pub const MAX_ROWS: usize = 200;

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

    /// The value's coordinate on this parameter's plot axis (a choice's index).
    fn coord(&self, v: Option<&Value>) -> Option<f64> {
        let v = v?;
        match &self.domain {
            Domain::Numeric { .. } => v.as_f64().filter(|x| x.is_finite()),
            Domain::Categorical(c) => c.iter().position(|s| *s == v.to_string()).map(|i| i as f64),
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

/// How to render.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// While a run goes on: the page reloads itself every this many seconds.
    pub refresh: Option<u32>,
}

/// Parameter importances and what they were fitted to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Importance {
    /// (name, fraction), highest first; empty when too few trials.
    pub by_param: Vec<(String, f64)>,
    /// Complete and pruned trials with a value for the first objective.
    pub trials: usize,
    /// Those the forest was fitted to (a fixed-seed subsample when fewer).
    pub fitted: usize,
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

    /// Whether `t` is complete with every objective's value finite.
    fn is_complete(&self, t: &Trial) -> bool {
        t.state == TrialState::Complete
            && t.values.len() >= self.objectives.len().max(1)
            && t.values.iter().all(|v| v.is_finite())
    }

    /// Complete trials whose objective values are all finite.
    fn complete(&self) -> Vec<&Trial> {
        self.trials.iter().filter(|t| self.is_complete(t)).collect()
    }

    /// The first objective's value of a complete trial, or a pruned one's last reported
    /// value (as Optuna's plots and importance take it); `None` for any other trial.
    fn value0(&self, t: &Trial) -> Option<f64> {
        match t.state {
            TrialState::Complete if self.is_complete(t) => t.values.first().copied(),
            TrialState::Pruned => t
                .values
                .first()
                .copied()
                .filter(|v| v.is_finite())
                .or_else(|| t.steps.iter().rev().map(|s| s.1).find(|v| v.is_finite())),
            _ => None,
        }
    }

    /// Parameter importances for the first objective, highest first: (name, fraction).
    pub fn importances(&self) -> Vec<(String, f64)> {
        self.importance().by_param
    }

    /// Parameter importances for the first objective from the complete and pruned
    /// trials, on at most [`MAX_FIT`] of them (a subsample with a fixed seed).
    pub fn importance(&self) -> Importance {
        let mut seen: Vec<(&Trial, f64)> = self.trials.iter().filter_map(|t| Some((t, self.value0(t)?))).collect();
        let trials = seen.len();
        if seen.len() > MAX_FIT {
            let mut rng = crate::rng::Rng::new(0x5eed);
            rng.shuffle(&mut seen);
            seen.truncate(MAX_FIT);
            seen.sort_by_key(|(t, _)| t.number);
        }
        let mut out = Importance { by_param: Vec::new(), trials, fitted: seen.len() };
        if seen.len() < 4 || self.params.is_empty() {
            return out;
        }
        // Inactive conditional parameters sit just below their range.
        let x: Vec<Vec<f64>> = seen
            .iter()
            .map(|(t, _)| self.params.iter().map(|p| p.unit(t.params.get(&p.name)).unwrap_or(-0.1)).collect())
            .collect();
        let y: Vec<f64> = seen.iter().map(|(_, v)| *v).collect();
        let Some(forest) = forest::Forest::fit(&x, &y, 64, 0x5eed) else { return out };
        let imp = forest.importances();
        let total: f64 = imp.iter().sum();
        out.by_param = self
            .params
            .iter()
            .zip(&imp)
            .map(|(p, v)| (p.name.clone(), if total > 0.0 { v / total } else { 0.0 }))
            .collect();
        out.by_param.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

/// Writes `report.html` for `data` at `path` (whole: a reader never sees half a file).
pub fn write(path: &Path, data: &ReportData) -> std::io::Result<()> {
    write_with(path, data, &Options::default())
}

/// [`write`] with options.
pub fn write_with(path: &Path, data: &ReportData, options: &Options) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, render_with(data, options))?;
    std::fs::rename(&tmp, path)
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff;max-width:1100px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}table.sortable th{cursor:pointer}td.text{text-align:left}\
.plots{display:flex;flex-wrap:wrap;gap:12px}svg{background:#fff;border:1px solid #eee}\
svg text{font-size:11px;fill:#333}.muted{color:#777;font-size:13px}.live{color:#a60;font-size:13px}";

/// Sorts a `table.sortable` by the clicked column (numbers as numbers), again to reverse.
const SORT_SCRIPT: &str = "document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{\
const b=th.closest('table').tBodies[0],d=th.dataset.dir==='a'?-1:1;th.dataset.dir=d>0?'a':'d';\
const k=r=>{const c=r.cells[i],s=c.dataset.v??c.textContent,n=parseFloat(s);return isNaN(n)?s:n};\
[...b.rows].sort((x,y)=>{const p=k(x),q=k(y);return(typeof p==='number'&&typeof q==='number'?p-q:String(p).localeCompare(String(q)))*d})\
.forEach(r=>b.appendChild(r))}));";

/// The report as HTML.
pub fn render(data: &ReportData) -> String {
    render_with(data, &Options::default())
}

/// The report as HTML, with options.
pub fn render_with(data: &ReportData, options: &Options) -> String {
    let view = sections::View::new(data);
    let mut h = String::with_capacity(1 << 16);
    let refresh = options.refresh.map_or(String::new(), |s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"));
    let count = |s: TrialState| data.trials.iter().filter(|t| t.state == s).count();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}<title>{t}</title><style>{CSS}</style></head><body>\
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
    if let Some(s) = options.refresh {
        let _ = write!(h, "<p class=\"live\" id=\"live\">Live: the run goes on; this page reloads every {s} s.</p>");
    }
    final_section(&mut h, data);
    sections::all(&mut h, &view);
    let _ = writeln!(h, "<script>{SORT_SCRIPT}</script></body></html>");
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
    let row = |h: &mut String, name: &str, v: &crate::train::Metrics, t: &crate::train::Metrics| {
        let _ = write!(h, "<tr><td>{}</td>", esc(name));
        for m in &metrics {
            let g = |x: &crate::train::Metrics| x.get(*m).map_or("-".into(), |v| fmt_num(*v));
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

#[cfg(test)]
mod tests;
