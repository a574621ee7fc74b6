//! What `strategy = darts(...)` can mix: the space's decisions, and why the other
//! parameters stay fixed.
//!
//! Takes an experiment, its data description and a point; gives [`Decisions`]: each
//! discrete parameter whose values change the network there (a layer-valued parameter, a
//! `match` over blocks, an `int in {…}` width) is a decision that DARTS mixes, unless it
//! cannot be (more than [`MAX_CHOICES`] values; token inputs, whose padding mask does not
//! cross a mixture; a connection that reads the network from before the decision into the
//! layers that differ). Continuous parameters, and discrete ones that do not change the
//! network (an optimizer's rate, a `match` on the schedule), are not decisions: DARTS
//! trains at [`point`]'s value of them, and `then:` searches them afterwards. The checker
//! ([`check`]) reports a `darts` strategy over a space without any decision
//! (`darts_no_choice`) and every decision that cannot be mixed (`darts_unmixable`); the
//! study reads the same [`decisions`] at run time, so the two never disagree.
//!
//! The mixing rule is `train::darts::Supernet`'s: the choices share the layers before
//! their first difference and mix where their tails agree again, at worst at the output,
//! so choices whose shapes differ right after the decision (`dense(w)` for several `w`)
//! mix further down, where the shapes agree; a shape difference alone never makes a
//! decision unmixable.
//!
//! **Invariant:** bounded work: each candidate parameter expands the model once per
//! value, at most [`MAX_CHOICES`] times.

use std::collections::BTreeMap;

use crate::ast;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, DataInfo, Domain, Experiment, ParamKind, Point, Program, SubModel, Value};
use crate::source::Span;

/// The most choices one decision may have.
pub const MAX_CHOICES: usize = 16;

/// A parameter DARTS mixes: its name and values in domain order.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub name: String,
    pub values: Vec<Value>,
}

/// A parameter left out of the mixture, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Left {
    pub name: String,
    pub span: Span,
    pub why: String,
}

/// The space's parameters as DARTS sees them at one point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decisions {
    /// Mixed, in the space's order.
    pub mixed: Vec<Decision>,
    /// Change the network but cannot be mixed: errors.
    pub unmixable: Vec<Left>,
    /// Fixed at the point's value (continuous, or not structural there).
    pub fixed: Vec<Left>,
}

/// The free values DARTS trains at: `pins`, else the middle of each numeric domain (the
/// geometric middle of a log one, on its step) and the first value of a choice. The middle
/// rather than the first value (the representative point of `bma graph`) because the
/// supernet trains with these values: a learning rate at its lower bound would hardly
/// train it.
pub fn free(exp: &Experiment, pins: &Point) -> Point {
    let mut free = pins.clone();
    for p in exp.space.free() {
        if let ParamKind::Free(d) = &p.kind {
            free.entry(p.name.clone()).or_insert_with(|| middle(d));
        }
    }
    free
}

/// [`free`] resolved: guards and derived values applied.
pub fn point(
    exp: &Experiment,
    fns: &BTreeMap<String, ast::FnDef>,
    data: Option<&DataInfo>,
    pins: &Point,
) -> Result<Point, String> {
    exp.space.resolve(&free(exp, pins), fns, data).map_err(|e| e.message)
}

/// The decisions of `exp`'s model at `point`, with what is left out and why.
pub fn decisions(program: &Program, exp: &Experiment, data: &DataInfo, point: &Point) -> Decisions {
    let mut out = Decisions::default();
    let Some(body) = &exp.model else { return out };
    let Ok(base) = ir::expand(program, body, point, data) else { return out };
    let tokens = base.layers().any(|l| matches!(l.kind, ir::LayerKind::Embedding { .. }));
    for p in exp.space.free() {
        let ParamKind::Free(d) = &p.kind else { continue };
        let left = |why: String| Left { name: p.name.clone(), span: p.name_span, why };
        if !point.contains_key(&p.name) {
            out.fixed.push(left("not active at the point DARTS trains at (its `when` does not hold)".into()));
            continue;
        }
        let n = d.cardinality();
        let values = match (d, n) {
            (Domain::Float { .. }, _) | (_, None) => {
                out.fixed.push(left("continuous: only a choice among values can be mixed".into()));
                continue;
            }
            (_, Some(n)) if n > MAX_CHOICES as u128 => {
                // Structural or not, judged on its first two values.
                let two: Vec<Value> = d.values().map(|v| v.into_iter().take(2).collect()).unwrap_or_default();
                if structural(program, body, data, point, &p.name, &two, &base) {
                    out.unmixable.push(left(format!("has {n} values; a decision mixes at most {MAX_CHOICES}")));
                } else {
                    out.fixed.push(left("does not change the network".into()));
                }
                continue;
            }
            _ => d.values().unwrap_or_default(),
        };
        if values.len() < 2 || !structural(program, body, data, point, &p.name, &values, &base) {
            out.fixed.push(left("does not change the network".into()));
            continue;
        }
        if tokens {
            out.unmixable.push(left(
                "the model reads tokens (an `embedding`): its padding mask does not cross a mixture".into(),
            ));
            continue;
        }
        if let Some(why) = across(program, body, data, point, &p.name, &values) {
            out.unmixable.push(left(why));
            continue;
        }
        out.mixed.push(Decision { name: p.name.clone(), values });
    }
    out
}

/// The checker's part: a `darts` strategy over a space with no decision, or with decisions
/// that cannot be mixed, at [`point`] without pins.
pub(super) fn check(program: &Program, exp: &Experiment, data: Option<&DataInfo>, diags: &mut Vec<Diagnostic>) {
    let Some(setting) = exp.search_setting("strategy") else { return };
    let Ok(v) = ir::eval(&setting.value, &BTreeMap::new()) else { return };
    if v.head() != Some("darts") {
        return;
    }
    let span = setting.value.span;
    if exp.model.is_none() {
        diags.push(
            Diagnostic::error(
                Code::DartsNoChoice,
                "`darts` searches a model's architecture",
                span,
                "no `model` to mix",
            )
            .with_help("use a sampled strategy (`tpe`, `random`) for an experiment without a model"),
        );
        return;
    }
    let Some(data) = data else { return };
    let Ok(at) = point(exp, &program.fns, Some(data), &Point::new()) else { return };
    let found = decisions(program, exp, data, &at);
    for u in &found.unmixable {
        diags.push(
            Diagnostic::error(
                Code::DartsUnmixable,
                format!("`{}` cannot be mixed by `darts`", u.name),
                u.span,
                u.why.clone(),
            )
            .with_label(span, "the strategy that mixes it")
            .with_help(format!(
                "pin `{}` (`{} = value` in `space`, or `--set`), or use a sampled strategy",
                u.name, u.name
            )),
        );
    }
    if found.mixed.is_empty() && found.unmixable.is_empty() {
        let mut d = Diagnostic::error(
            Code::DartsNoChoice,
            "`darts` has no structural choice to mix",
            span,
            "no parameter of the space changes the network",
        )
        .with_help(
            "DARTS mixes layer-valued parameters, `match` arms and `int in {…}` widths; search the others with a \
             sampled strategy",
        );
        for f in &found.fixed {
            d = d.with_label(f.span, f.why.clone());
        }
        diags.push(d);
    }
}

fn middle(d: &Domain) -> Value {
    match d {
        Domain::Int { lo, hi, step, log } => {
            let step = (*step).max(1);
            let mid =
                if *log && *lo > 0 { ((*lo as f64) * (*hi as f64)).sqrt() } else { (*lo as f64 + *hi as f64) / 2.0 };
            let k = ((mid - *lo as f64) / step as f64).round().max(0.0) as i64;
            Value::Int((lo + k * step).min(*hi))
        }
        Domain::Float { lo, hi, log, step } => {
            let mid = if *log && *lo > 0.0 { (lo * hi).sqrt() } else { (lo + hi) / 2.0 };
            Value::Float(match step {
                Some(s) if *s > 0.0 => (lo + ((mid - lo) / s).round() * s).min(*hi),
                _ => mid,
            })
        }
        Domain::Choice(v) => v.first().cloned().unwrap_or(Value::Int(0)),
    }
}

/// Whether some value of `name` expands to another network than `base`.
fn structural(
    program: &Program,
    body: &ast::Body,
    data: &DataInfo,
    point: &Point,
    name: &str,
    values: &[Value],
    base: &SubModel,
) -> bool {
    let key = layout(base);
    values.iter().any(|v| expand_at(program, body, data, point, name, v).is_some_and(|s| layout(&s) != key))
}

/// `(name, kind, shape, inputs)` of every layer, in order: what `train::net::Plan` compares.
fn layout(sub: &SubModel) -> Vec<(&str, &ir::LayerKind, &ir::Shape, &[usize])> {
    sub.layers().map(|l| (l.name.as_str(), &l.kind, &l.shape, l.inputs.as_slice())).collect()
}

fn expand_at(
    program: &Program,
    body: &ast::Body,
    data: &DataInfo,
    point: &Point,
    name: &str,
    v: &Value,
) -> Option<SubModel> {
    let mut at = point.clone();
    at.insert(name.to_string(), v.clone());
    ir::expand(program, body, &at, data).ok()
}

/// Why the choices of `name` cannot share a prefix: a layer after their first difference
/// reads a layer before the last shared one (a connection across the decision).
fn across(
    program: &Program,
    body: &ast::Body,
    data: &DataInfo,
    point: &Point,
    name: &str,
    values: &[Value],
) -> Option<String> {
    let subs: Vec<SubModel> = values.iter().filter_map(|v| expand_at(program, body, data, point, name, v)).collect();
    let layouts: Vec<_> = subs.iter().map(layout).collect();
    let first = layouts.first()?;
    let p = (0..first.len()).take_while(|&i| layouts.iter().all(|l| l.get(i) == Some(&first[i]))).count();
    for (sub, v) in subs.iter().zip(values) {
        let layers: Vec<&ir::Layer> = sub.layers().collect();
        for l in layers.iter().skip(p) {
            if let Some(&i) = l.inputs.iter().find(|&&i| i + 1 < p) {
                let from = layers.get(i).map(|f| f.name.as_str()).unwrap_or("?");
                return Some(format!(
                    "with `{name} = {v}`, `{}` reads `{from}` from before the decision: a connection across it cannot \
                     be mixed",
                    l.name
                ));
            }
        }
    }
    None
}
