//! Data settings that are searched: `data = text(..., max_len: len)` with `len` a parameter.
//!
//! Takes an [`Experiment`] whose `data = ...` may read space parameters; gives the
//! parameters it reads ([`data_params`]), the data value at a point ([`data_value`]), and
//! the distinct data settings of the space ([`data_points`]): every combination of the
//! values of those parameters, the corners first, at most a cap.
//!
//! **Invariants:** the data value at a point depends only on the values of
//! [`data_params`] there (so two points that agree on them read the same data); the data
//! may read only unconditional parameters that are free with finitely many values or pinned
//! (the checker refuses the rest, [`unsupported`]), so that every point has one data value and
//! the distinct values can be listed.

use std::collections::{BTreeMap, BTreeSet};

use super::{EvalError, Experiment, Param, ParamKind, Point, PointEnv, Value, eval, names_in};
use crate::ast;

/// The space parameters that the experiment's `data = ...` reads, in the space's order.
pub fn data_params(exp: &Experiment) -> Vec<&Param> {
    let Some(setting) = &exp.data else { return Vec::new() };
    let mut names = BTreeSet::new();
    names_in(&setting.value, &mut names);
    exp.space.params.iter().filter(|p| names.contains(&p.name)).collect()
}

/// Whether the data depends on the point (it reads a parameter that is searched).
pub fn data_searched(exp: &Experiment) -> bool {
    data_params(exp).iter().any(|p| !matches!(p.kind, ParamKind::Const(_)))
}

/// The experiment's data value at `point` (its free and pinned values suffice); `None`
/// without `data = ...`.
pub fn data_value(
    exp: &Experiment,
    fns: &BTreeMap<String, ast::FnDef>,
    point: &Point,
) -> Option<Result<Value, EvalError>> {
    let setting = exp.data.as_ref()?;
    Some(eval(&setting.value, &PointEnv { point, fns, data: None }))
}

/// Why `param` cannot be read by the data, if it cannot (see the module header).
pub fn unsupported(param: &Param) -> Option<&'static str> {
    if param.is_conditional() {
        return Some("a conditional parameter has no value at some points");
    }
    match &param.kind {
        ParamKind::Const(_) => None,
        ParamKind::Free(d) if d.values().is_some() => None,
        ParamKind::Free(_) => Some("a continuous parameter has no finite list of values"),
        ParamKind::Derived(_) => Some("a `let` may read the data, which would read itself"),
    }
}

/// The distinct data settings: each combination of the values of [`data_params`] (those
/// [`unsupported`] refuses left out), as a partial point, at most `cap`. Each parameter's
/// smallest and largest values are combined first (the corners), then the rest in order.
/// Gives the points and how many combinations there are in all (saturated).
pub fn data_points(exp: &Experiment, cap: usize) -> (Vec<Point>, u128) {
    let axes: Vec<(&str, Vec<Value>)> = data_params(exp)
        .into_iter()
        .filter(|p| unsupported(p).is_none())
        .map(|p| {
            let values = match &p.kind {
                ParamKind::Const(v) => vec![v.clone()],
                ParamKind::Free(d) => d.values().unwrap_or_default(),
                ParamKind::Derived(_) => Vec::new(),
            };
            (p.name.as_str(), values)
        })
        .collect();
    let total = axes.iter().fold(1u128, |n, (_, v)| n.saturating_mul(v.len() as u128));
    let corners: Vec<(&str, Vec<Value>)> = axes.iter().map(|(n, v)| (*n, extremes(v))).collect();
    let mut out: Vec<Point> = Vec::new();
    for axes in [&corners, &axes] {
        combine(axes, 0, &mut Point::new(), &mut out, cap);
    }
    (out, total)
}

/// `len = 16, vocab = 2000`: a data setting, for messages.
pub fn describe(at: &Point) -> String {
    at.iter().map(|(n, v)| format!("{n} = {v}")).collect::<Vec<_>>().join(", ")
}

fn extremes(values: &[Value]) -> Vec<Value> {
    match (values.first(), values.last()) {
        (Some(a), Some(b)) if values.len() > 1 => vec![a.clone(), b.clone()],
        (Some(a), _) => vec![a.clone()],
        _ => Vec::new(),
    }
}

/// Every combination of `axes[i..]` added to `point`, each once in `out`, until `out` holds `cap`.
fn combine(axes: &[(&str, Vec<Value>)], i: usize, point: &mut Point, out: &mut Vec<Point>, cap: usize) {
    if out.len() >= cap {
        return;
    }
    let Some((name, values)) = axes.get(i) else {
        if !out.contains(point) {
            out.push(point.clone());
        }
        return;
    };
    for v in values {
        point.insert((*name).to_string(), v.clone());
        combine(axes, i + 1, point, out, cap);
        if out.len() >= cap {
            break;
        }
    }
    point.remove(*name);
}
