//! The checks of an experiment whose `data = ...` reads searched parameters
//! (`text(..., vocab: vocab, max_len: len)`): what the model sees then depends on the point.
//!
//! Takes the experiment and the folder data paths are read from; gives one [`Case`] per
//! distinct data setting ([`crate::ir::data_search::data_points`], at most [`MAX_CASES`],
//! the corners first), each described once from headers and listings (the same describe
//! path as unsearched data: nothing is decoded), and the whole-space check run for each
//! case with its own `DataInfo` ([`check_space`]). A failure that happens for some data
//! settings only names the first of them (`with len = 16: ...`) and points at the data
//! argument; one that happens for all is reported as for unsearched data.
//!
//! **Invariants:** the classes and the task do not depend on the point (a searched `target:`
//! is refused), and neither does anything evaluated outside the model and the training
//! settings: guards, `let`s, objectives and constraints may not read `data.shape`,
//! `data.features` or `data.vocab` when the data is searched (they are evaluated with one
//! `DataInfo` for the whole study). Each distinct data value is described once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::space::{self, SpaceInfo};
use crate::ast;
use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::ir::{self, DataInfo, Experiment, ParamKind, Point, Program, data_search};
use crate::source::Span;

/// Distinct data settings checked at most (each is described, and its space checked).
pub const MAX_CASES: usize = 16;

/// The `data.*` values that differ between data settings.
const POINT_DEPENDENT: [&str; 3] = ["data.shape", "data.features", "data.vocab"];

/// One data setting: the values of the parameters the data reads, and what it describes.
#[derive(Debug, Clone)]
pub struct Case {
    pub at: Point,
    pub info: DataInfo,
}

/// Describes every data setting of `exp` (its data reads searched parameters). Pushes what
/// is wrong; gives the cases that described (empty when one failed: their errors are out).
pub(super) fn cases(program: &Program, exp: &Experiment, base: &Path, diags: &mut Vec<Diagnostic>) -> Vec<Case> {
    let Some(setting) = &exp.data else { return Vec::new() };
    let before = diags.len();
    for p in data_search::data_params(exp) {
        if let Some(why) = data_search::unsupported(p) {
            diags.push(
                Diagnostic::error(Code::InvalidValue, format!("the data cannot read `{}`", p.name), p.name_span, why)
                    .with_label(setting.value.span, "read here")
                    .with_help("the data may read parameters with a list or range of values (`len: int in {64, 128}`)"),
            );
        }
    }
    point_dependent_reads(exp, diags);
    if diags[before..].iter().any(Diagnostic::is_error) {
        return Vec::new();
    }
    let (points, total) = data_search::data_points(exp, MAX_CASES);
    if total > points.len() as u128 {
        diags.push(Diagnostic::note(
            Code::ShapeError,
            format!("checked {} of the {total} data settings", points.len()),
            setting.value.span,
            "the corners first; the rest are checked when they are loaded",
        ));
    }
    let mut cases: Vec<Case> = Vec::new();
    let mut described: BTreeMap<String, DataInfo> = BTreeMap::new();
    for at in points {
        let value = match data_search::data_value(exp, &program.fns, &at) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                diags.push(Diagnostic::error(Code::NonConstant, "cannot evaluate the data", e.span, e.message));
                return Vec::new();
            }
            None => return Vec::new(),
        };
        let key = format!("{value:?}");
        let info = match described.get(&key) {
            Some(info) => info.clone(),
            None => {
                let mut found = Vec::new();
                let info = super::data_info(program, setting, &at, base, &mut found);
                let failed = found.iter().any(Diagnostic::is_error);
                diags.extend(found.into_iter().map(|d| if d.is_error() { with_setting(d, &at, exp) } else { d }));
                match info {
                    Some(info) if !failed => info,
                    _ => return Vec::new(),
                }
            }
        };
        if let Some(first) = cases.first()
            && (first.info.classes != info.classes || first.info.task != info.task)
        {
            diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!(
                        "the data's classes depend on the searched settings: {} at {}, {} at {}",
                        first.info.classes,
                        data_search::describe(&first.at),
                        info.classes,
                        data_search::describe(&at)
                    ),
                    setting.value.span,
                    "every trial must predict the same classes",
                )
                .with_help("search settings such as `vocab`, `max_len` or `bins`, not the target or the task"),
            );
            return Vec::new();
        }
        described.insert(key, info.clone());
        cases.push(Case { at, info });
    }
    cases
}

/// The whole-space check ([`space::check_space`]) once per data setting, with its own
/// `DataInfo`; merges the figures and reports each failure once (see the module header).
pub(super) fn check_space(
    program: &Program,
    exp: &Experiment,
    cases: &[Case],
    clean: bool,
    stop: &dyn Fn() -> bool,
    diags: &mut Vec<Diagnostic>,
) -> SpaceInfo {
    // The grid's size and limit, from the space as it is (every data parameter searched).
    let mut info = space::check_space(program, exp, cases.first().map(|c| &c.info), false, stop, diags);
    if !clean || exp.model.is_none() {
        return info;
    }
    // Failures by where and what, with the cases they happened for.
    let mut failures: BTreeMap<Key, (Diagnostic, &Case, usize)> = BTreeMap::new();
    let mut order: Vec<Key> = Vec::new();
    let (mut checked, mut total, mut exact, mut log10) = (0usize, 0u128, true, 0.0f64);
    for case in cases {
        let pinned = pin(exp, &case.at);
        let mut found = Vec::new();
        let part = space::check_space(program, &pinned, Some(&case.info), true, stop, &mut found);
        checked += part.checked;
        total = total.saturating_add(part.structural_total);
        exact &= part.structural_exact;
        log10 = log10.max(part.structural_log10);
        info.params = merge(info.params, part.params);
        info.flops = merge(info.flops, part.flops);
        info.statically_infeasible += part.statically_infeasible;
        for d in found {
            // The grid was reported above; the count of checked points is reported below.
            if d.code == Code::GridTooLarge || (d.code == Code::ShapeError && d.severity == Severity::Note) {
                continue;
            }
            let key = key(&d);
            match failures.get_mut(&key) {
                Some((_, _, n)) => *n += 1,
                None => {
                    order.push(key);
                    failures.insert(key, (d, case, 1));
                }
            }
        }
    }
    for key in order {
        let Some((d, case, n)) = failures.remove(&key) else { continue };
        diags.push(if n < cases.len() && d.severity == Severity::Error { with_setting(d, &case.at, exp) } else { d });
    }
    info.checked = checked;
    info.structural_total = total;
    info.structural_exact = exact;
    info.structural_log10 = log10;
    if total > checked as u128 && checked > 0 {
        let span = exp.sections.get("model").copied().unwrap_or(exp.name_span);
        diags.push(Diagnostic::note(
            Code::ShapeError,
            format!(
                "checked the shapes of {checked} of {} structural points over {} data settings",
                space::count_text(total, exact, log10),
                cases.len()
            ),
            span,
            "the rest are checked when they are sampled",
        ));
    }
    info
}

/// Where a diagnostic points, its code and whether it is an error: one failure, whatever the case.
type Key = (crate::source::FileId, u32, u32, Code, bool);

fn key(d: &Diagnostic) -> Key {
    let s = d.primary.span;
    (s.file, s.start, s.end, d.code, d.is_error())
}

/// `exp` with the parameters of a data setting pinned to its values.
fn pin(exp: &Experiment, at: &Point) -> Experiment {
    let mut pinned = exp.clone();
    for p in &mut pinned.space.params {
        if let Some(v) = at.get(&p.name) {
            p.kind = ParamKind::Const(v.clone());
        }
    }
    pinned
}

fn merge(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
        (x, None) | (None, x) => x,
    }
}

/// `d` said of one data setting: its message names the values, and a label points at the
/// data arguments that read them.
fn with_setting(d: Diagnostic, at: &Point, exp: &Experiment) -> Diagnostic {
    let mut d = Diagnostic { message: format!("with {}: {}", data_search::describe(at), d.message), ..d };
    if let Some(setting) = &exp.data
        && let ast::ExprKind::Call(_, args) = &setting.value.kind
    {
        for a in args {
            let mut names = BTreeSet::new();
            ir::names_in(&a.value, &mut names);
            let read: Vec<String> =
                at.iter().filter(|(n, _)| names.contains(*n)).map(|(n, v)| format!("{n} = {v}")).collect();
            if read.is_empty() {
                continue;
            }
            let what = a.name.as_ref().map_or_else(|| "this argument".to_string(), |n| format!("`{}`", n.name));
            d = d.with_label(a.value.span, format!("{what} with {}", read.join(", ")));
        }
    }
    d
}

/// Guards, `let`s, objectives and constraints that read a `data.*` value that differs
/// between data settings.
fn point_dependent_reads(exp: &Experiment, diags: &mut Vec<Diagnostic>) {
    let mut exprs: Vec<(&ast::Expr, &str)> = Vec::new();
    for p in &exp.space.params {
        exprs.extend(p.guard.iter().map(|g| (g, "a `when`")));
        if let ParamKind::Derived(e) = &p.kind {
            exprs.push((e, "a `let`"));
        }
    }
    exprs.extend(exp.objectives.iter().map(|o| (&o.metric, "an objective")));
    for c in &exp.constraints {
        exprs.push((&c.lhs, "a constraint"));
        exprs.push((&c.bound, "a constraint"));
    }
    for (e, what) in exprs {
        let mut found: Option<(String, Span)> = None;
        e.walk(&mut |x| {
            if found.is_none()
                && let Some(n) = ir::dotted(x)
                && POINT_DEPENDENT.contains(&n.as_str())
            {
                found = Some((n, x.span));
            }
        });
        if let Some((name, span)) = found {
            diags.push(
                Diagnostic::error(
                    Code::NonConstant,
                    format!("`{name}` depends on the searched data settings"),
                    span,
                    format!("read in {what}"),
                )
                .with_help("the model and the `train` settings may read it; elsewhere it has no single value"),
            );
        }
    }
}
