//! The whole space at once: shapes, output width, static params and FLOPs, the
//! size of the grid, and constraints no point can meet.
//!
//! Enumerates every combination of the *structural* parameters (the discrete
//! ones the model reads, and those their `when`s read); continuous parameters
//! the model reads are tried at their bounds and midpoint. When there are more
//! combinations than can be checked, the corners (each parameter at its smallest
//! and largest value) are checked first. Each failure is reported once, at the
//! first point where it happens, naming that point.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, DataInfo, Domain, Experiment, ParamKind, Point, Program, Value};
use crate::source::Span;

/// Points beyond this many are not checked one by one (a note says so).
pub const MAX_POINTS: usize = 20_000;
/// Corner points (see [`corner_points`]) checked at most, on top of the enumerated ones.
const MAX_CORNERS: usize = 1024;
/// How many layers the shape check expands in all, over every point, at most.
const MAX_WORK: usize = 2_000_000;

/// What the checker learnt about an experiment's space.
#[derive(Debug, Clone, Default)]
pub struct SpaceInfo {
    /// Number of points of the discrete part (`None` when a parameter is continuous).
    pub grid_size: Option<u128>,
    /// Structural points checked, and how many there are in all.
    pub checked: usize,
    pub structural_total: u128,
    /// Whether `structural_total` is exact, not a lower bound.
    pub structural_exact: bool,
    /// The lower bound's base-10 logarithm when it is past what `u128` holds (else 0).
    pub structural_log10: f64,
    /// Range of the static parameter count and FLOPs over the checked points.
    pub params: Option<(u64, u64)>,
    pub flops: Option<(u64, u64)>,
    /// Checked points that a `require` on params or flops rules out before training.
    pub statically_infeasible: usize,
}

/// The structural points of an experiment: every combination of the discrete
/// parameters named in `names` (and the guards above them), resolved. Returns
/// the points (at most `cap`), how many there are in all, and whether that count is
/// exact (a walk too long to finish, or a domain of over a million values, gives a
/// lower bound).
pub fn structural_points(
    program: &Program,
    exp: &Experiment,
    names: &BTreeSet<String>,
    data: Option<&DataInfo>,
    cap: usize,
    stop: &dyn Fn() -> bool,
) -> (Vec<Point>, u128, bool) {
    let mut out = Vec::new();
    let mut total = 0u128;
    let mut budget = cap.saturating_mul(50).max(100_000);
    let walk = Walk { program, exp, names, data, corners: false, cut: Cell::new(false), stop };
    walk.enumerate(0, &mut Point::new(), &mut out, &mut total, cap, &mut budget);
    (out, total, !walk.cut.get())
}

/// The corners of the structural space: every combination of each structural parameter's
/// smallest and largest value (at most `cap`). Checked first, so that a space too large to
/// check point by point still has its extremes checked (the longest `repeat`, the most pools).
pub fn corner_points(
    program: &Program,
    exp: &Experiment,
    names: &BTreeSet<String>,
    data: Option<&DataInfo>,
    cap: usize,
    stop: &dyn Fn() -> bool,
) -> Vec<Point> {
    let (mut out, mut total) = (Vec::new(), 0u128);
    let mut budget = cap.saturating_mul(50).max(10_000);
    let walk = Walk { program, exp, names, data, corners: true, cut: Cell::new(false), stop };
    walk.enumerate(0, &mut Point::new(), &mut out, &mut total, cap, &mut budget);
    out
}

/// What an enumeration of structural points walks over.
struct Walk<'a> {
    program: &'a Program,
    exp: &'a Experiment,
    names: &'a BTreeSet<String>,
    data: Option<&'a DataInfo>,
    /// Only each structural parameter's smallest and largest value.
    corners: bool,
    /// Set when the walk stopped early or a domain's values were cut short.
    cut: Cell<bool>,
    /// Asked every [`STOP_EVERY`] steps: the text was replaced (`check::Reuse`); the walk
    /// then ends as if its budget were spent.
    stop: &'a dyn Fn() -> bool,
}

/// Steps of a walk between two questions to its `stop`.
const STOP_EVERY: usize = 1024;

impl Walk<'_> {
    fn enumerate(
        &self,
        i: usize,
        point: &mut Point,
        out: &mut Vec<Point>,
        total: &mut u128,
        cap: usize,
        budget: &mut usize,
    ) {
        if *budget == 0 || (budget.is_multiple_of(STOP_EVERY) && (self.stop)()) {
            *budget = 0;
            self.cut.set(true);
            return;
        }
        *budget -= 1;
        let (program, data) = (self.program, self.data);
        let Some(p) = self.exp.space.params.get(i) else {
            *total += 1;
            if out.len() < cap {
                out.push(point.clone());
            }
            return;
        };
        let holds = matches!(self.exp.space.guard_holds(p, point, &program.fns, data), Ok(true));
        if !holds {
            self.enumerate(i + 1, point, out, total, cap, budget);
            return;
        }
        let values: Vec<Value> = match &p.kind {
            ParamKind::Free(d) if self.names.contains(&p.name) && self.corners => extremes(d),
            ParamKind::Free(d) if self.names.contains(&p.name) => {
                let values = representatives(d);
                if d.cardinality().is_some_and(|n| n > values.len() as u128) {
                    self.cut.set(true);
                }
                values
            }
            ParamKind::Free(d) => representatives(d).into_iter().take(1).collect(),
            ParamKind::Const(v) => vec![v.clone()],
            ParamKind::Derived(e) => match ir::eval(e, &ir::PointEnv { point, fns: &program.fns, data }) {
                Ok(v) => vec![v],
                Err(_) => Vec::new(),
            },
        };
        for v in values {
            point.insert(p.name.clone(), v);
            self.enumerate(i + 1, point, out, total, cap, budget);
        }
        point.remove(&p.name);
    }
}

/// The smallest and largest value of a domain (one value if they are equal; the first and
/// last of a choice), without listing the values in between.
fn extremes(d: &Domain) -> Vec<Value> {
    let (first, last) = match d {
        Domain::Int { lo, hi, step, .. } => {
            let step = (*step).max(1);
            if hi < lo {
                return Vec::new();
            }
            let top = i128::from(*lo) + (i128::from(*hi) - i128::from(*lo)) / i128::from(step) * i128::from(step);
            (Value::Int(*lo), Value::Int(top as i64))
        }
        Domain::Float { lo, hi, step: Some(s), .. } if *s > 0.0 => {
            let n = d.cardinality().unwrap_or(1).max(1);
            (Value::Float(*lo), Value::Float((lo + (n - 1) as f64 * s).min(*hi)))
        }
        Domain::Float { lo, hi, .. } => (Value::Float(*lo), Value::Float(*hi)),
        Domain::Choice(v) => match (v.first(), v.last()) {
            (Some(a), Some(b)) => (a.clone(), b.clone()),
            _ => return Vec::new(),
        },
    };
    if first == last { vec![first] } else { vec![first, last] }
}

/// Every value of a discrete domain; bounds and midpoint of a continuous one.
fn representatives(d: &Domain) -> Vec<Value> {
    match d.values() {
        Some(v) => v,
        None => match d {
            Domain::Float { lo, hi, log, .. } => {
                let mid = if *log { (lo * hi).sqrt() } else { (lo + hi) / 2.0 };
                vec![Value::Float(*lo), Value::Float(mid), Value::Float(*hi)]
            }
            _ => Vec::new(),
        },
    }
}

/// The number of points of the space with every parameter discrete, `None` if one is continuous.
pub fn count_grid(program: &Program, exp: &Experiment, data: Option<&DataInfo>) -> Option<u128> {
    if exp.space.free().any(|p| matches!(&p.kind, ParamKind::Free(d) if d.cardinality().is_none())) {
        return None;
    }
    if exp.space.params.iter().all(|p| p.guard.is_empty()) {
        return Some(
            exp.space
                .free()
                .filter_map(|p| if let ParamKind::Free(d) = &p.kind { d.cardinality() } else { None })
                // Saturating: 2,000 parameters of 3 values overflowed (a panic in a debug build).
                .fold(1u128, u128::saturating_mul),
        );
    }
    let all: BTreeSet<String> = exp.space.params.iter().map(|p| p.name.clone()).collect();
    let (_, total, _) = structural_points(program, exp, &all, data, 0, &|| false);
    Some(total)
}

/// The number of structural points when a walk was cut short (`exact` false): the larger of
/// the points walked and the product of the value counts of the structural parameters that
/// exist at every point (each combination of their values is another point), so the count
/// is a true lower bound; exact when every structural parameter is such a parameter and the
/// product fits. Gives the count (saturated at `u128::MAX`), whether it is exact, and the
/// bound's log10 (for a count beyond `u128`: 2,000 parameters of 3 values have 3^2000).
fn lower_bound(exp: &Experiment, names: &BTreeSet<String>, walked: u128, exact: bool) -> (u128, bool, f64) {
    if exact {
        return (walked, true, 0.0);
    }
    let (mut product, mut log10, mut unconditional) = (Some(1u128), 0.0f64, true);
    for p in exp.space.params.iter().filter(|p| names.contains(&p.name)) {
        match &p.kind {
            ParamKind::Free(d) if p.guard.is_empty() => match d.cardinality() {
                Some(n) => {
                    product = product.and_then(|m| m.checked_mul(n));
                    log10 += (n.max(1) as f64).log10();
                }
                None => unconditional = false,
            },
            ParamKind::Free(_) => unconditional = false,
            ParamKind::Const(_) | ParamKind::Derived(_) => {}
        }
    }
    match product {
        Some(n) if unconditional => (n, true, 0.0),
        Some(n) => (n.max(walked), false, 0.0),
        None => (u128::MAX, false, log10),
    }
}

/// A count of points for a message: exact, or "at least N" (a lower bound), written
/// "at least 10^K" beyond what `u128` holds (`log10`: the bound's, when known).
pub(super) fn count_text(n: u128, exact: bool, log10: f64) -> String {
    if exact && n < u128::MAX {
        n.to_string()
    } else if n == u128::MAX {
        // Floored just below, so that rounding never overstates the bound.
        // `u128::MAX` is 3.4e38: at least 10^38 when no larger bound is known.
        let k = if log10 > 38.0 { (log10 - 1e-9).floor() } else { 38.0 };
        format!("at least 10^{}", k as u64)
    } else {
        format!("at least {n}")
    }
}

/// The names that decide the model's structure: those it reads, through `let`s and `when`s.
fn structural_names(exp: &Experiment) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Some(model) = &exp.model {
        body_names(model, &mut names);
    }
    // Close over derived values and guards.
    loop {
        let before = names.len();
        for p in &exp.space.params {
            if names.contains(&p.name) {
                for g in &p.guard {
                    ir::names_in(g, &mut names);
                }
                if let ParamKind::Derived(e) = &p.kind {
                    ir::names_in(e, &mut names);
                }
            }
        }
        if names.len() == before {
            break;
        }
    }
    names
}

fn body_names(body: &crate::ast::Body, out: &mut BTreeSet<String>) {
    use crate::ast::Stmt;
    for s in &body.stmts {
        match s {
            Stmt::Chain(c) | Stmt::Let { chain: c, .. } => chain_names(c, out),
            Stmt::Repeat { from, count, body, .. } => {
                if let Some(f) = from {
                    ir::names_in(f, out);
                }
                ir::names_in(count, out);
                body_names(body, out);
            }
            Stmt::Match { scrutinee, arms, .. } => {
                ir::names_in(scrutinee, out);
                for a in arms {
                    body_names(&a.body, out);
                }
            }
            Stmt::If { cond, then, otherwise, .. } => {
                ir::names_in(cond, out);
                body_names(then, out);
                if let Some(o) = otherwise {
                    body_names(o, out);
                }
            }
            Stmt::Residual { body, .. } => body_names(body, out),
            Stmt::Parallel { branches, .. } => branches.iter().for_each(|b| body_names(b, out)),
        }
    }
}

fn chain_names(c: &crate::ast::Chain, out: &mut BTreeSet<String>) {
    for l in &c.links {
        out.insert(l.name.name.clone());
        for a in l.args.iter().flatten() {
            ir::names_in(&a.value, out);
        }
    }
}

/// `kind = cnn, depth = 3`: the structural values of a point, for messages.
fn describe_point(point: &Point, names: &BTreeSet<String>, exp: &Experiment) -> String {
    let parts: Vec<String> = exp
        .space
        .free()
        .filter(|p| names.contains(&p.name))
        .filter_map(|p| point.get(&p.name).map(|v| format!("{} = {v}", p.name)))
        .collect();
    parts.join(", ")
}

pub(super) fn check_space(
    program: &Program,
    exp: &Experiment,
    data: Option<&DataInfo>,
    clean: bool,
    stop: &dyn Fn() -> bool,
    diags: &mut Vec<Diagnostic>,
) -> SpaceInfo {
    let mut info = SpaceInfo { grid_size: count_grid(program, exp, data), ..SpaceInfo::default() };
    grid_limit(exp, &info, diags);
    let (Some(model), Some(data), true) = (&exp.model, data, clean) else { return info };
    let names = structural_names(exp);
    // No more points than the layer budget can expand: each point expands about a layer
    // per structural parameter, and a point of 2,000 parameters is costly to build and
    // copy (enumerating 20,000 of them took most of a minute when 1,000 were checked).
    let cap = MAX_POINTS.min(MAX_WORK / names.len().max(1)).max(1);
    let (enumerated, total, exact) = structural_points(program, exp, &names, Some(data), cap, stop);
    let (total, exact, log10) = lower_bound(exp, &names, total, exact);
    info.structural_total = total;
    info.structural_exact = exact;
    info.structural_log10 = log10;
    // The corners first (when the points are too many to check them all, they are what a
    // lexicographic walk would never reach), then the points in order, each once.
    let corners = if total > enumerated.len() as u128 {
        corner_points(program, exp, &names, Some(data), MAX_CORNERS.min(cap), stop)
    } else {
        Vec::new()
    };
    // Points hold floats (no `Hash`): their printed form is the key.
    let seen: std::collections::HashSet<String> = corners.iter().map(|p| format!("{p:?}")).collect();
    let rest: Vec<Point> =
        enumerated.into_iter().filter(|p| seen.is_empty() || !seen.contains(&format!("{p:?}"))).collect();
    let points: Vec<Point> = corners.into_iter().chain(rest).collect();
    let mut failed: BTreeSet<(u32, u32, Code)> = BTreeSet::new();
    let mut width_failed = false;
    // `train { precision = f16 | bf16 }` and a layer that trains in f32 only: said once.
    let mut low_precision = exp.train.iter().find_map(|s| match &s.value.kind {
        crate::ast::ExprKind::Name(n) if s.key == "precision" && (n == "f16" || n == "bf16") => Some((n, s.value.span)),
        _ => None,
    });
    let mut notes: BTreeMap<(crate::source::FileId, u32, u32), String> = BTreeMap::new();
    let static_constraints: Vec<&ir::Constraint> =
        exp.constraints.iter().filter(|c| c.lhs.as_name().is_some_and(super::is_static_metric)).collect();
    let mut feasible_any = static_constraints.is_empty();
    // Layers expanded so far: a space of long `repeat`s stops early rather than
    // expanding for minutes; the rest is checked when sampled.
    let mut work = 0usize;
    for point in &points {
        // Stopped: what follows is thrown away (`Reuse::stopped`).
        if work > MAX_WORK || stop() {
            break;
        }
        info.checked += 1;
        match ir::expand(program, model, point, data) {
            Err(e) => {
                if failed.insert((e.span.start, e.span.end, e.code)) {
                    let at = describe_point(point, &names, exp);
                    let message = if at.is_empty() { e.message.clone() } else { format!("at {at}: {}", e.message) };
                    let mut d = Diagnostic::error(e.code, message, e.span, e.label.clone());
                    if let Some(h) = &e.help {
                        d = d.with_help(h.clone());
                    }
                    diags.push(d);
                }
            }
            Ok(sub) => {
                work += sub.graph.node_count();
                let out = sub.output_shape();
                if !width_failed && out.as_slice() != [data.outputs()] {
                    width_failed = true;
                    let last = &sub.graph[sub.output];
                    let at = describe_point(point, &names, exp);
                    let what = match data.task {
                        ir::Task::Classification => format!("data.classes = {}", data.classes),
                        ir::Task::Regression => "regression needs one output".to_string(),
                    };
                    let span = if last.span == Span::default() {
                        exp.sections.get("model").copied().unwrap_or(exp.name_span)
                    } else {
                        last.span
                    };
                    diags.push(
                        Diagnostic::error(
                            Code::OutputWidth,
                            format!(
                                "{}the model ends with {} outputs, not {}",
                                if at.is_empty() { String::new() } else { format!("at {at}: ") },
                                ir::fmt_shape(out),
                                data.outputs()
                            ),
                            span,
                            format!("the last layer gives {}; {what}", ir::fmt_shape(out)),
                        )
                        .with_help(
                            "end the model with `dense(data.classes)` (after `flatten` or `global_avgpool` for images)",
                        ),
                    );
                }
                if let Some((name, span)) = low_precision
                    && let Some(layer) = sub.layers().find(|l| l.kind.f32_only())
                {
                    low_precision = None;
                    let mut d = Diagnostic::error(
                        Code::InvalidValue,
                        format!("`precision = {name}`: `{}` trains in f32 only", layer.name),
                        span,
                        format!("the model has `{}`", layer.name),
                    )
                    .with_help(
                        "embedding, lstm, gru, attention and positional make f32 masks or states of their own; \
                         use `precision = f32` for this model",
                    );
                    if layer.span != Span::default() {
                        d = d.with_label(layer.span, "trains in f32 only");
                    }
                    diags.push(d);
                }
                for (span, note) in &sub.notes {
                    notes.entry((span.file, span.start, span.end)).or_insert_with(|| note.clone());
                }
                let (pp, ff) = (sub.params, sub.flops);
                info.params = Some(info.params.map_or((pp, pp), |(a, b)| (a.min(pp), b.max(pp))));
                info.flops = Some(info.flops.map_or((ff, ff), |(a, b)| (a.min(ff), b.max(ff))));
                let ok = static_constraints.iter().all(|c| constraint_holds(c, pp, ff));
                if ok {
                    feasible_any = true;
                } else {
                    info.statically_infeasible += 1;
                }
            }
        }
    }
    for ((file, start, end), note) in notes {
        diags.push(Diagnostic::note(
            Code::ResidualProjection,
            "the residual's shapes differ",
            Span { file, start, end },
            note,
        ));
    }
    // "No point" is only a claim once every point was checked.
    if !feasible_any && info.checked > 0 && info.checked as u128 == total && failed.is_empty() {
        let c = static_constraints[0];
        let (lo, _) = if c.lhs.as_name() == Some("params") {
            info.params.unwrap_or((0, 0))
        } else {
            info.flops.unwrap_or((0, 0))
        };
        diags.push(
            Diagnostic::error(
                Code::Infeasible,
                "no point of the space meets this constraint",
                c.span,
                format!("the smallest model has {lo} {}", c.lhs.as_name().unwrap_or("")),
            )
            .with_help("loosen the constraint or allow smaller models"),
        );
    }
    if total > info.checked as u128 && info.checked > 0 {
        let span = exp.sections.get("model").copied().unwrap_or(exp.name_span);
        diags.push(Diagnostic::note(
            Code::ShapeError,
            format!("checked the shapes of {} of {} structural points", info.checked, count_text(total, exact, log10)),
            span,
            "the rest are checked when they are sampled",
        ));
    }
    info
}

/// Whether a static constraint (`params <= 60k`) holds for these figures.
pub fn constraint_holds(c: &ir::Constraint, params: u64, flops: u64) -> bool {
    let value = match c.lhs.as_name() {
        Some("params") => params as f64,
        Some("flops") => flops as f64,
        _ => return true,
    };
    let Ok(bound) = ir::eval(&c.bound, &BTreeMap::new()).map(|v| v.as_f64().unwrap_or(f64::NAN)) else { return true };
    use crate::ast::BinaryOp::*;
    match c.op {
        Le => value <= bound,
        Lt => value < bound,
        Ge => value >= bound,
        Gt => value > bound,
        _ => true,
    }
}

fn grid_limit(exp: &Experiment, info: &SpaceInfo, diags: &mut Vec<Diagnostic>) {
    let Some(strategy) = exp.search_setting("strategy") else { return };
    let Ok(v) = ir::eval(&strategy.value, &BTreeMap::new()) else { return };
    if v.head() != Some("grid") {
        return;
    }
    let limit = match &v {
        Value::Call(c) => c.arg("limit", 0).and_then(Value::as_i64),
        _ => None,
    }
    .unwrap_or(10_000);
    match info.grid_size {
        None => {
            let cont: Vec<&str> = exp
                .space
                .free()
                .filter(|p| matches!(&p.kind, ParamKind::Free(d) if d.cardinality().is_none()))
                .map(|p| p.name.as_str())
                .collect();
            let mut d = Diagnostic::error(
                Code::GridTooLarge,
                "a grid needs every parameter to have finitely many values",
                strategy.value.span,
                format!(
                    "{} {} continuous",
                    cont.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                    if cont.len() == 1 { "is" } else { "are" }
                ),
            )
            .with_help("give continuous parameters a `step`, list their values, or use another strategy");
            if let Some(p) = cont.first().and_then(|n| exp.space.get(n)) {
                d = d.with_label(p.name_span, "continuous");
            }
            diags.push(d);
        }
        Some(n) if n > limit as u128 => diags.push(
            Diagnostic::error(
                Code::GridTooLarge,
                format!("the grid has {} points, more than its limit of {limit}", count_text(n, true, 0.0)),
                strategy.value.span,
                format!("{} points", count_text(n, true, 0.0)),
            )
            .with_help(if n < u128::MAX {
                format!("raise it with `grid(limit: {n})`, coarsen the steps, or use `random` or `tpe`")
            } else {
                "coarsen the steps, or use `random` or `tpe`".to_string()
            }),
        ),
        Some(_) => {}
    }
}
