//! The report's sections, each a function from a [`View`] of the study to HTML.
//!
//! Takes the data with what every section needs computed once (the trials with a first
//! objective value, the parameters' axes, the importances); gives the sections in the
//! order [`all`] writes them. Costs are in the parent module's header. **Invariants:**
//! a pruned trial is drawn as a ring (class `pruned`) at its last reported value, a
//! complete one as a filled point; every mark has a tooltip naming its trial; dense
//! plots draw a bounded number of marks and say how many they left out.

use std::fmt::Write as _;

use super::axis::{Axis, Scale};
use super::svg::{MAX_MARKS, Plot, esc};
use super::{Domain, Importance, MAX_CURVES, MAX_LINES, MAX_ROWS, ReportData};
use crate::ir::Value;
use crate::trial::{Direction, Trial, TrialState};

const BLUE: &str = "#4878d0";
const ORANGE: &str = "#e0a040";
const RED: &str = "#d65f5f";
const GREY: &str = "#9aa9c6";

/// The study with what the sections share.
pub struct View<'a> {
    pub data: &'a ReportData,
    /// Trials with a first-objective value (complete and pruned), in trial order.
    seen: Vec<(&'a Trial, f64)>,
    /// Each parameter's plot axis.
    axes: Vec<Axis>,
    /// The first objective's axis over `seen`.
    y0: Axis,
    importance: Importance,
}

impl<'a> View<'a> {
    pub fn new(data: &'a ReportData) -> View<'a> {
        let seen: Vec<(&Trial, f64)> = data.trials.iter().filter_map(|t| Some((t, data.value0(t)?))).collect();
        let axes = data
            .params
            .iter()
            .map(|p| match &p.domain {
                Domain::Numeric { lo, hi, log: true } if *lo > 0.0 => Axis::fit([*lo, *hi].into_iter(), Scale::Log),
                Domain::Numeric { lo, hi, .. } => {
                    let integer =
                        data.trials.iter().filter_map(|t| t.params.get(&p.name)).all(|v| matches!(v, Value::Int(_)));
                    Axis::fit([*lo, *hi].into_iter(), Scale::Linear { integer })
                }
                Domain::Categorical(c) => Axis::fit(std::iter::empty(), Scale::Categorical(c.clone())),
            })
            .collect();
        let y0 = Axis::fit(seen.iter().map(|s| s.1), Scale::Linear { integer: false });
        View { data, seen, axes, y0, importance: data.importance() }
    }

    fn objective0(&self) -> (&str, Direction) {
        self.data.objectives.first().map_or(("value", Direction::Minimize), |(n, d)| (n.as_str(), *d))
    }

    /// Trial `t`'s tooltip: number, state, the objectives' values, the parameters.
    fn tip(&self, t: &Trial) -> String {
        let mut s = format!("trial #{} ({})", t.number, t.state.as_str());
        if t.state == TrialState::Pruned
            && let (Some((epoch, _)), Some(v)) = (t.steps.last(), self.data.value0(t))
        {
            let _ = write!(s, "\n{} {} at epoch {epoch}", self.objective0().0, num(v));
        }
        for ((name, _), v) in self.data.objectives.iter().zip(&t.values) {
            let _ = write!(s, "\n{name} = {}", num(*v));
        }
        for (k, v) in &t.params {
            let _ = write!(s, "\n{k} = {}", value(v));
        }
        s
    }
}

/// Every section but the final model's, in order.
pub fn all(h: &mut String, v: &View) {
    h.push_str("<h2>Optimisation history</h2><div class=\"plots\">");
    for i in 0..v.data.objectives.len() {
        h.push_str(&history(v, i));
    }
    h.push_str("</div>");
    if v.data.objectives.len() > 1 {
        h.push_str("<h2>Pareto front</h2><div class=\"plots\">");
        for i in 0..v.data.objectives.len() {
            for j in i + 1..v.data.objectives.len() {
                h.push_str(&pareto(v, i, j));
            }
        }
        h.push_str("</div>");
    }
    h.push_str("<h2>Parallel coordinates</h2>");
    h.push_str(&parallel(v));
    h.push_str("<h2>Slices</h2><div class=\"plots\" id=\"slices\">");
    for k in 0..v.data.params.len() {
        h.push_str(&slice(v, k));
    }
    h.push_str("</div><h2>Parameter importance</h2>");
    h.push_str(&importance(v));
    h.push_str("<h2>The two most important parameters</h2>");
    h.push_str(&contour(v));
    h.push_str("<h2>Learning curves</h2>");
    h.push_str(&curves(v));
    let best_first: Vec<&Trial> = ranked(v).into_iter().map(|(t, _)| t).collect();
    if let Some(rates) = super::rates::section(&best_first, &|t| v.tip(t)) {
        h.push_str("<h2>Learning rates (hypergradient)</h2>");
        h.push_str(&rates);
    }
    if let Some(arch) = super::architecture::section(&v.data.trials, &|t| v.tip(t)) {
        h.push_str("<h2>Architecture weights (DARTS)</h2>");
        h.push_str(&arch);
    }
    h.push_str("<h2>Timeline</h2><div id=\"timeline\">");
    h.push_str(&super::timeline::section(&v.data.trials, &|t| v.tip(t)));
    h.push_str("</div>");
    h.push_str("<h2>Best trials</h2>");
    h.push_str(&best_table(v));
    h.push_str("<h2>Failed trials</h2>");
    h.push_str(&failed_table(v));
}

fn history(v: &View, i: usize) -> String {
    let (name, dir) = (&v.data.objectives[i].0, v.data.objectives[i].1);
    // The first objective counts pruned trials at their last value; the others have
    // values for complete trials only.
    let pts: Vec<(&Trial, f64)> = if i == 0 {
        v.seen.clone()
    } else {
        v.data.trials.iter().filter(|t| v.data.is_complete(t)).map(|t| (t, t.values[i])).collect()
    };
    let last = v.data.trials.iter().map(|t| t.number).max().unwrap_or(0) as f64;
    let x = Axis::fit(v.data.trials.iter().map(|t| t.number as f64), Scale::Linear { integer: true });
    let y = Axis::fit(pts.iter().map(|p| p.1), Scale::Linear { integer: false });
    let mut plot = Plot::new(460, 300, &format!("{name} ({})", dir.as_str()), ("trial", x), (name, y));
    let (complete, pruned): (Vec<_>, Vec<_>) = pts.iter().partition(|p| p.0.state == TrialState::Complete);
    let xy = |s: &[&(&Trial, f64)]| s.iter().map(|p| (p.0.number as f64, p.1)).collect::<Vec<_>>();
    plot.points(&xy(&pruned), "pt pruned", ORANGE, true, &|k| v.tip(pruned[k].0));
    plot.points(&xy(&complete), "pt", BLUE, false, &|k| v.tip(complete[k].0));
    // The best so far over the complete trials, held to the last trial of any state.
    let mut best: Vec<(f64, f64)> = Vec::new();
    for p in &complete {
        let b = match best.last() {
            Some(&(_, b)) if dir.loss(b) <= dir.loss(p.1) => b,
            _ => p.1,
        };
        best.push((p.0.number as f64, b));
    }
    if let Some(&(_, b)) = best.last() {
        best.push((last, b));
        plot.step_path(&best, "best", RED, Some(&format!("best {name} so far: {}", num(b))));
    }
    plot.finish()
}

/// Indices of the non-dominated points of `losses` (both smaller is better): a sort by
/// the first loss and a sweep keeping the least second loss seen, O(n log n).
pub(super) fn front(losses: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..losses.len()).collect();
    order.sort_by(|a, b| losses[*a].0.total_cmp(&losses[*b].0).then(losses[*a].1.total_cmp(&losses[*b].1)));
    let mut out = Vec::new();
    let mut least = f64::INFINITY;
    let mut k = 0;
    while k < order.len() {
        // A group of equal first losses: only its least second losses can be on the front.
        let a = losses[order[k]].0;
        let end = k + order[k..].iter().take_while(|i| losses[**i].0 == a).count();
        let group_least = losses[order[k]].1;
        if group_least < least {
            out.extend(order[k..end].iter().filter(|i| losses[**i].1 == group_least));
            least = group_least;
        }
        k = end;
    }
    out.sort_unstable();
    out
}

fn pareto(v: &View, i: usize, j: usize) -> String {
    let (ni, di) = &v.data.objectives[i];
    let (nj, dj) = &v.data.objectives[j];
    let complete: Vec<&Trial> = v.data.complete();
    let pts: Vec<(f64, f64)> = complete.iter().map(|t| (t.values[i], t.values[j])).collect();
    let losses: Vec<(f64, f64)> = pts.iter().map(|p| (di.loss(p.0), dj.loss(p.1))).collect();
    let on = front(&losses);
    let mut is_on = vec![false; pts.len()];
    for k in &on {
        is_on[*k] = true;
    }
    let dominated: Vec<usize> = (0..pts.len()).filter(|k| !is_on[*k]).collect();
    let x = Axis::fit(pts.iter().map(|p| p.0), Scale::Linear { integer: false });
    let y = Axis::fit(pts.iter().map(|p| p.1), Scale::Linear { integer: false });
    let mut plot = Plot::new(420, 320, &format!("{ni} vs {nj}: front in red"), (ni, x), (nj, y));
    let dpts: Vec<(f64, f64)> = dominated.iter().map(|k| pts[*k]).collect();
    plot.points(&dpts, "pt dominated", GREY, false, &|k| v.tip(complete[dominated[k]]));
    let mut f: Vec<usize> = on;
    f.sort_by(|a, b| pts[*a].0.total_cmp(&pts[*b].0));
    let fpts: Vec<(f64, f64)> = f.iter().map(|k| pts[*k]).collect();
    plot.line(&fpts, "frontline", RED, Some(&format!("Pareto front: {} trials", f.len())));
    plot.points(&fpts, "front", RED, false, &|k| v.tip(complete[f[k]]));
    plot.finish()
}

/// At most `cap` of `ranked` (best first): the best half of `cap`, then an even sample
/// of the rest, in `ranked`'s order.
fn thin<T: Copy>(ranked: &[T], cap: usize) -> Vec<T> {
    if ranked.len() <= cap {
        return ranked.to_vec();
    }
    let head = cap / 2;
    let rest = &ranked[head..];
    let tail = cap - head;
    let mut out: Vec<T> = ranked[..head].to_vec();
    out.extend((0..tail).map(|k| rest[k * rest.len() / tail]));
    out
}

/// `seen`, best first for the first objective.
fn ranked<'a>(v: &View<'a>) -> Vec<(&'a Trial, f64)> {
    let dir = v.objective0().1;
    let mut r = v.seen.clone();
    r.sort_by(|a, b| dir.loss(a.1).total_cmp(&dir.loss(b.1)).then(a.0.number.cmp(&b.0.number)));
    r
}

fn parallel(v: &View) -> String {
    if v.seen.is_empty() {
        return "<p class=\"muted\">No complete or pruned trial has a value yet.</p>".into();
    }
    let (obj, dir) = v.objective0();
    let n = v.data.params.len() + 1;
    let (w, hgt) = ((120 * n).max(480) as f64, 340.0);
    let (left, right, top, bottom) = (50.0, 50.0, 30.0, 40.0);
    let ax = |k: usize| left + (w - left - right) * k as f64 / (n - 1).max(1) as f64;
    let ay = |u: f64| top + (hgt - top - bottom) * (1.0 - u.clamp(0.0, 1.0));
    let drawn = thin(&ranked(v), MAX_LINES);
    let mut s = String::new();
    if drawn.len() < v.seen.len() {
        let _ = write!(
            s,
            "<p class=\"muted\">{} of {} trials drawn: the {} best and an even sample of the rest.</p>",
            drawn.len(),
            v.seen.len(),
            MAX_LINES / 2
        );
    }
    let _ = write!(
        s,
        "<svg class=\"parallel\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\">"
    );
    // Worst first, so the best lie on top.
    for (t, val) in drawn.iter().rev() {
        let mut d = String::new();
        let mut pen = 'M';
        for (k, p) in v.data.params.iter().enumerate() {
            match p.coord(t.params.get(&p.name)) {
                Some(c) => {
                    let _ = write!(d, "{pen}{:.1},{:.1} ", ax(k), ay(v.axes[k].unit(c)));
                    pen = 'L';
                }
                None => pen = 'M',
            }
        }
        let u = v.y0.unit(*val);
        let _ = write!(d, "{pen}{:.1},{:.1}", ax(n - 1), ay(u));
        // Better trials are darker and redder; pruned ones dashed.
        let good = if dir == Direction::Maximize { u } else { 1.0 - u };
        let (class, dash) =
            if t.state == TrialState::Pruned { ("trial pruned", " stroke-dasharray=\"4 3\"") } else { ("trial", "") };
        let _ = write!(
            s,
            "<path class=\"{class}\" d=\"{d}\" fill=\"none\" stroke=\"hsl({:.0},70%,{:.0}%)\" stroke-width=\"1.3\" opacity=\"0.75\"{dash}><title>{}</title></path>",
            220.0 - 220.0 * good,
            65.0 - 25.0 * good,
            esc(&v.tip(t))
        );
    }
    let mut names: Vec<&str> = v.data.params.iter().map(|p| p.name.as_str()).collect();
    names.push(obj);
    for (k, name) in names.iter().enumerate() {
        let x = ax(k);
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
            hgt - bottom,
            hgt - bottom + 18.0,
            esc(name)
        );
        let axis = v.axes.get(k).unwrap_or(&v.y0);
        for (tv, label) in axis.ticks() {
            let y = ay(axis.unit(tv));
            let _ = write!(
                s,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{y:.1}\" stroke=\"#444\"/><text class=\"ptick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                x - 3.0,
                x - 5.0,
                y + 4.0,
                esc(&label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A deterministic spread in `[-0.3, 0.3]` for trial `n` on a categorical axis.
fn jitter(n: u64) -> f64 {
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64 * 0.6 - 0.3
}

fn slice(v: &View, k: usize) -> String {
    let p = &v.data.params[k];
    let (obj, _) = v.objective0();
    let cat = matches!(p.domain, Domain::Categorical(_));
    let mut complete = Vec::new();
    let mut pruned = Vec::new();
    for (t, val) in &v.seen {
        let Some(c) = p.coord(t.params.get(&p.name)) else { continue };
        let x = if cat { c + jitter(t.number) } else { c };
        if t.state == TrialState::Pruned { &mut pruned } else { &mut complete }.push((*t, (x, *val)));
    }
    let mut plot = Plot::new(340, 260, &p.name, (&p.name, v.axes[k].clone()), (obj, v.y0.clone()));
    let xy = |s: &[(&Trial, (f64, f64))]| s.iter().map(|e| e.1).collect::<Vec<_>>();
    plot.points(&xy(&pruned), "pt pruned", ORANGE, true, &|i| v.tip(pruned[i].0));
    plot.points(&xy(&complete), "pt", BLUE, false, &|i| v.tip(complete[i].0));
    plot.finish()
}

fn importance(v: &View) -> String {
    let imp = &v.importance;
    if imp.by_param.is_empty() {
        return format!(
            "<p class=\"muted\">Too few trials with a value ({} of the 4 needed) to fit the surrogate.</p>",
            imp.trials
        );
    }
    let sub = if imp.fitted < imp.trials {
        format!(" (a subsample of {} of them, drawn with a fixed seed)", imp.fitted)
    } else {
        String::new()
    };
    let mut s = format!(
        "<p class=\"muted\">fANOVA main effects of each parameter on the first objective, on a 64-tree \
         random-forest surrogate fitted to the {} complete and pruned trials{sub}, pruned ones at their last \
         reported value (normalised to sum to 1).</p>",
        imp.trials
    );
    let row = 22.0;
    let (w, hgt) = (560.0, 20.0 + row * imp.by_param.len() as f64);
    let _ = write!(
        s,
        "<svg class=\"importance\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\">"
    );
    for (k, (name, val)) in imp.by_param.iter().enumerate() {
        let y = 10.0 + row * k as f64;
        let len = 360.0 * val.clamp(0.0, 1.0);
        let _ = write!(
            s,
            "<text x=\"130\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"140\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{BLUE}\"><title>{}: {:.3}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.3}</text>",
            y + 14.0,
            esc(name),
            row - 6.0,
            esc(name),
            val,
            145.0 + len,
            y + 14.0,
            val
        );
    }
    s.push_str("</svg>");
    s
}

/// A parameter's bins for the map: (lo, hi) in axis coordinates.
fn bins(axis: &Axis) -> Vec<(f64, f64)> {
    match &axis.scale {
        Scale::Categorical(c) => (0..c.len()).map(|i| (i as f64 - 0.5, i as f64 + 0.5)).collect(),
        _ => {
            let at = |u: f64| axis.at(u);
            (0..12).map(|i| (at(i as f64 / 12.0), at((i + 1) as f64 / 12.0))).collect()
        }
    }
}

fn bin_of(axis: &Axis, bins: usize, c: f64) -> usize {
    match axis.scale {
        Scale::Categorical(_) => (c.round().max(0.0) as usize).min(bins - 1),
        _ => ((axis.unit(c) * bins as f64).floor().max(0.0) as usize).min(bins - 1),
    }
}

fn contour(v: &View) -> String {
    let names: Vec<&str> = if v.importance.by_param.len() >= 2 {
        v.importance.by_param.iter().take(2).map(|p| p.0.as_str()).collect()
    } else {
        v.data.params.iter().take(2).map(|p| p.name.as_str()).collect()
    };
    let [a, b] = names[..] else {
        return "<p class=\"muted\">Fewer than two parameters.</p>".into();
    };
    let pos = |n: &str| v.data.params.iter().position(|p| p.name == n);
    let (Some(ka), Some(kb)) = (pos(a), pos(b)) else { return String::new() };
    let (pa, pb) = (&v.data.params[ka], &v.data.params[kb]);
    let (xa, xb) = (&v.axes[ka], &v.axes[kb]);
    let (ba, bb) = (bins(xa), bins(xb));
    let (obj, dir) = v.objective0();
    // Per cell: trials and the best value.
    let mut cells: Vec<(usize, f64)> = vec![(0, f64::NAN); ba.len() * bb.len()];
    for (t, val) in &v.seen {
        let (Some(ca), Some(cb)) = (pa.coord(t.params.get(&pa.name)), pb.coord(t.params.get(&pb.name))) else {
            continue;
        };
        let cell = &mut cells[bin_of(xa, ba.len(), ca) * bb.len() + bin_of(xb, bb.len(), cb)];
        cell.0 += 1;
        if cell.1.is_nan() || dir.loss(*val) < dir.loss(cell.1) {
            cell.1 = *val;
        }
    }
    let (lo, hi) =
        cells.iter().filter(|c| c.0 > 0).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), c| (l.min(c.1), h.max(c.1)));
    if !lo.is_finite() {
        return "<p class=\"muted\">No trial has a value yet.</p>".into();
    }
    let mut plot =
        Plot::new(460, 360, &format!("best {obj} per cell (darker is better)"), (a, xa.clone()), (b, xb.clone()));
    for (i, ra) in ba.iter().enumerate() {
        for (j, rb) in bb.iter().enumerate() {
            let (n, best) = cells[i * bb.len() + j];
            if n == 0 {
                continue;
            }
            let u = if hi > lo { (best - lo) / (hi - lo) } else { 0.5 };
            let good = if dir == Direction::Maximize { u } else { 1.0 - u };
            let range = |p: &super::ParamInfo, r: (f64, f64)| match &p.domain {
                Domain::Categorical(c) => c.get(((r.0 + r.1) / 2.0).round() as usize).cloned().unwrap_or_default(),
                _ => format!("{}..{}", num(r.0), num(r.1)),
            };
            let tip =
                format!("{a} {}, {b} {}: {n} trial(s), best {obj} = {}", range(pa, *ra), range(pb, *rb), num(best));
            plot.cell(*ra, *rb, &format!("hsl(220,70%,{:.0}%)", 92.0 - 55.0 * good), &tip);
        }
    }
    plot.finish()
}

fn curves(v: &View) -> String {
    let (name, _) = v.objective0();
    let with: Vec<(&Trial, f64)> = ranked(v).into_iter().filter(|(t, _)| !t.steps.is_empty()).collect();
    if with.is_empty() {
        return "<p class=\"muted\">No trial reported per-epoch values.</p>".into();
    }
    let drawn = thin(&with, MAX_CURVES);
    let x = Axis::fit(
        with.iter().flat_map(|(t, _)| [t.steps[0].0, t.steps[t.steps.len() - 1].0]).map(f64::from),
        Scale::Linear { integer: true },
    );
    let y = Axis::fit(with.iter().flat_map(|(t, _)| t.steps.iter().map(|s| s.1)), Scale::Linear { integer: false });
    let mut s = String::new();
    if drawn.len() < with.len() {
        let _ = write!(
            s,
            "<p class=\"muted\">{} of {} curves drawn: the {} best by their last value and an even sample of the rest.</p>",
            drawn.len(),
            with.len(),
            MAX_CURVES / 2
        );
    }
    let mut plot =
        Plot::new(700, 340, &format!("{name} per epoch (valid); pruned trials dashed"), ("epoch", x), (name, y));
    for (t, _) in drawn.iter().rev() {
        // At most MAX_MARKS points a curve: every k-th epoch and the last.
        let every = t.steps.len().div_ceil(MAX_MARKS).max(1);
        let mut pts: Vec<(f64, f64)> = t.steps.iter().step_by(every).map(|(e, v)| (f64::from(*e), *v)).collect();
        if let Some(&(e, val)) = t.steps.last()
            && pts.last().map(|p| p.0) != Some(f64::from(e))
        {
            pts.push((f64::from(e), val));
        }
        let (class, colour) = match t.state {
            TrialState::Pruned => ("curve pruned", ORANGE),
            TrialState::Failed => ("curve failed", "#999999"),
            _ => ("curve", BLUE),
        };
        plot.line(&pts, class, colour, Some(&v.tip(t)));
    }
    s.push_str(&plot.finish());
    s
}

fn best_table(v: &View) -> String {
    let r = ranked(v);
    if r.is_empty() {
        return "<p class=\"muted\">No complete or pruned trial has a value yet.</p>".into();
    }
    let shown = &r[..r.len().min(MAX_ROWS / 4)];
    let mut s = format!(
        "<p class=\"muted\">The {} best of {} trials with a value (click a heading to sort).</p>\
         <table id=\"trials\" class=\"sortable\"><thead><tr><th>trial</th><th>state</th>",
        shown.len(),
        r.len()
    );
    for (n, _) in &v.data.objectives {
        let _ = write!(s, "<th>{}</th>", esc(n));
    }
    for p in &v.data.params {
        let _ = write!(s, "<th>{}</th>", esc(&p.name));
    }
    // Command trials placed on devices (`devices`, `--devices`) show where each ran.
    let devices = shown.iter().any(|(t, _)| t.device.is_some());
    if devices {
        s.push_str("<th>device</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for (t, val) in shown {
        let _ = write!(s, "<tr><td>{}</td><td class=\"text\">{}</td>", t.number, t.state.as_str());
        for k in 0..v.data.objectives.len() {
            let x = t.values.get(k).copied().or(if k == 0 { Some(*val) } else { None });
            let _ = write!(s, "<td data-v=\"{}\">{}</td>", x.unwrap_or(f64::NAN), x.map_or("-".into(), num));
        }
        for p in &v.data.params {
            let _ = write!(s, "<td>{}</td>", t.params.get(&p.name).map_or("-".into(), |x| esc(&value(x))));
        }
        if devices {
            let _ = write!(s, "<td class=\"text\">{}</td>", esc(t.device.as_deref().unwrap_or("-")));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

fn failed_table(v: &View) -> String {
    let failed: Vec<&Trial> = v.data.trials.iter().filter(|t| t.state == TrialState::Failed).collect();
    if failed.is_empty() {
        return "<p class=\"muted\">No trial failed.</p>".into();
    }
    let shown = &failed[..failed.len().min(MAX_ROWS)];
    let mut s = String::new();
    if shown.len() < failed.len() {
        let _ = write!(s, "<p class=\"muted\">The first {} of {} failed trials.</p>", shown.len(), failed.len());
    }
    s.push_str(
        "<table id=\"failed\" class=\"sortable\"><thead><tr><th>trial</th><th>kind</th><th>reason</th><th>parameters</th></tr></thead><tbody>",
    );
    for t in shown {
        let params: Vec<String> = t.params.iter().map(|(k, x)| format!("{k} = {}", value(x))).collect();
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
            t.number,
            t.failure.map_or("error", |f| f.as_str()),
            esc(t.error.as_deref().unwrap_or("no reason recorded")),
            esc(&params.join(", "))
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// A number in at most 4 significant digits, no trailing zeros.
pub(super) fn num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    let s = if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.3e}")
    };
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
        None if s.contains('.') => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        _ => s,
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Float(x) => num(*x),
        other => other.to_string(),
    }
}
