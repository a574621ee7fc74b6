//! Pinned parameter values from the command line (`--set depth=2`), and the
//! representative point built around them.
//!
//! Takes a checked program and `name=value` pins; gives the point (every other free
//! parameter at its first value) and the model expanded there. **Invariant:** when the data
//! reads searched parameters (`text(..., max_len: len)`), the model is expanded with the
//! `DataInfo` of the data setting at that point (the checker's [`crate::check::ExperimentInfo`]
//! `settings`), never another setting's; a setting the checker did not describe (beyond its
//! cap) is refused with a message rather than shown with wrong shapes.

use std::collections::BTreeMap;

use crate::ir::{self, DataInfo, Domain, Experiment, ParamKind, Point, SubModel, Value};
use crate::{Compiled, diagnostic};

/// Why pins could not be applied.
#[derive(Debug, Clone, PartialEq)]
pub enum PinError {
    /// A wrong name or value: the user's mistake.
    Input(String),
    /// Something bma should have caught earlier.
    Internal(String),
}

/// Parses `text` as a value of `param`'s domain.
pub fn parse_pin(exp: &Experiment, name: &str, text: &str) -> Result<Value, PinError> {
    let Some(param) = exp.space.get(name) else {
        let names: Vec<&str> = exp.space.params.iter().map(|p| p.name.as_str()).collect();
        let hint = diagnostic::did_you_mean(name, names.iter().copied())
            .map(|b| format!("; did you mean `{b}`?"))
            .unwrap_or_default();
        return Err(PinError::Input(format!("`{name}` is not a parameter of `{}`{hint}", exp.name)));
    };
    let ParamKind::Free(domain) = &param.kind else {
        return Err(PinError::Input(format!("`{name}` is not searched (it is pinned or derived); it cannot be set")));
    };
    let bad = |why: String| PinError::Input(format!("`{name}={text}`: {why}"));
    // The value as the language reads it (`2`, `1e-3`, `relu`, `[64, 32]`, `2 * 16`).
    let parsed =
        crate::syntax::parse_expr(text).ok().and_then(|e| ir::eval(&e, &BTreeMap::<String, Value>::new()).ok());
    match domain {
        Domain::Int { lo, hi, step, .. } => {
            let Some(Value::Int(v)) = parsed else { return Err(bad("expected an int".into())) };
            if v < *lo || v > *hi || (v - lo) % step.max(&1) != 0 {
                return Err(bad(format!(
                    "not in the domain {lo}..={hi}{}",
                    if *step > 1 { format!(" step {step}") } else { String::new() }
                )));
            }
            Ok(Value::Int(v))
        }
        Domain::Float { lo, hi, .. } => {
            let Some(v) = parsed.as_ref().and_then(|p| match p {
                Value::Int(_) | Value::Float(_) => p.as_f64(),
                _ => None,
            }) else {
                return Err(bad("expected a number".into()));
            };
            if !(v >= *lo && v <= *hi) {
                return Err(bad(format!("not in the domain {lo}..{hi}")));
            }
            Ok(Value::Float(v))
        }
        // A choice is matched as written in the space (`relu`, `"adam"`), else by value.
        Domain::Choice(values) => values
            .iter()
            .find(|v| v.to_string() == text || v.head() == Some(text) || matches!(v, Value::Str(s) if s == text))
            .or_else(|| parsed.as_ref().and_then(|p| values.iter().find(|v| *v == p)))
            .cloned()
            .ok_or_else(|| {
                bad(format!(
                    "expected one of {}",
                    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ))
            }),
    }
}

/// A point with the pins applied and every other free parameter at its first
/// value (the lower bound, or the first choice); guards and derived values resolved.
pub fn representative_point(
    compiled: &Compiled,
    exp: &Experiment,
    pins: &BTreeMap<String, String>,
) -> Result<Point, PinError> {
    point_and_data(compiled, exp, pins).map(|(point, _)| point)
}

/// The representative point for `pins` and the `DataInfo` of its data setting.
fn point_and_data<'c>(
    compiled: &'c Compiled,
    exp: &Experiment,
    pins: &BTreeMap<String, String>,
) -> Result<(Point, Option<&'c DataInfo>), PinError> {
    let mut free = Point::new();
    for (k, v) in pins {
        free.insert(k.clone(), parse_pin(exp, k, v)?);
    }
    for p in exp.space.free() {
        if let ParamKind::Free(d) = &p.kind {
            free.entry(p.name.clone()).or_insert_with(|| first_value(d));
        }
    }
    let data = data_at(compiled, exp, &free)?;
    let point = exp.space.resolve(&free, &compiled.program.fns, data).map_err(|e| PinError::Input(e.message))?;
    Ok((point, data))
}

/// The `DataInfo` of the data setting at `free` (the values of the free parameters): the
/// checked setting whose values agree with `free`, or the only description when the data
/// is not searched.
fn data_at<'c>(compiled: &'c Compiled, exp: &Experiment, free: &Point) -> Result<Option<&'c DataInfo>, PinError> {
    let Some(info) = compiled.info(&exp.name) else { return Ok(None) };
    if info.settings.is_empty() {
        return Ok(info.data.as_ref());
    }
    let agrees = |at: &Point| at.iter().all(|(k, v)| free.get(k).is_none_or(|f| f == v));
    match info.settings.iter().find(|(at, _)| agrees(at)) {
        Some((_, data)) => Ok(Some(data)),
        None => {
            let wanted: Point = info
                .settings
                .first()
                .map(|(at, _)| at.keys().filter_map(|k| free.get(k).map(|v| (k.clone(), v.clone()))).collect())
                .unwrap_or_default();
            Err(PinError::Input(format!(
                "the data setting {} is not among the {} the checker described (it describes at most {}); \
                 its shapes are known once it is loaded: pin another",
                ir::data_search::describe(&wanted),
                info.settings.len(),
                crate::check::MAX_DATA_SETTINGS
            )))
        }
    }
}

fn first_value(d: &Domain) -> Value {
    match d {
        Domain::Int { lo, .. } => Value::Int(*lo),
        Domain::Float { lo, .. } => Value::Float(*lo),
        Domain::Choice(v) => v.first().cloned().unwrap_or(Value::Int(0)),
    }
}

/// Expands the model of `exp` at the representative point for `pins`.
pub fn expand_with_pins(
    compiled: &Compiled,
    exp: &Experiment,
    pins: &BTreeMap<String, String>,
) -> Result<(SubModel, Point), PinError> {
    let (point, data) = point_and_data(compiled, exp, pins)?;
    let Some(model) = &exp.model else {
        return Err(PinError::Input(format!("experiment `{}` has no model", exp.name)));
    };
    let Some(data) = data else {
        return Err(PinError::Internal("the data of a checked experiment is unknown".into()));
    };
    let sub = ir::expand(&compiled.program, model, &point, data).map_err(|e| PinError::Input(e.to_string()))?;
    Ok((sub, point))
}
