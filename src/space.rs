//! Points of a search space: sampling, grid enumeration and the encoding that
//! model-based samplers work in.
//!
//! Takes an [`ir::Space`] (parameters in dependency order, with guards, pinned and
//! derived values), gives [`ir::Point`]s: random ones ([`sample`]), built one
//! parameter at a time by a strategy ([`build`]), or every one of a grid ([`grid`]).
//! [`Encoding`] maps the free parameters to coordinates: numeric domains to `[0, 1]`
//! (after `log`), choices to an index.
//!
//! **Invariant:** every point given here is resolved: guards were evaluated in
//! order, inactive conditional parameters are absent (never filled with noise),
//! pinned and derived values are present, and every free value lies in its domain.

use std::collections::BTreeMap;
use std::fmt;

use crate::ast;
use crate::ir::{self, DataInfo, Domain, ParamKind, Point, Value};
use crate::rng::Rng;

/// What expressions in guards and `let`s may call and read.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub fns: &'a BTreeMap<String, ast::FnDef>,
    pub data: Option<&'a DataInfo>,
}

/// Points along a continuous axis that has no `step` when a grid is enumerated.
pub const GRID_FLOAT_POINTS: usize = 5;

/// Why no point could be built.
#[derive(Debug, Clone, PartialEq)]
pub enum SpaceError {
    /// A guard or `let` failed to evaluate.
    Eval(ir::EvalError),
    /// The grid has more points than the `limit` allows.
    GridTooLarge { count: u128, exact: bool, limit: u64 },
    /// A pinned value (`--set p=v`) is outside its parameter's domain.
    BadPin { name: String, message: String },
}

impl fmt::Display for SpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpaceError::Eval(e) => f.write_str(&e.message),
            SpaceError::GridTooLarge { count, exact: true, limit } => {
                write!(f, "the grid has {count} points, more than its limit of {limit}")
            }
            SpaceError::GridTooLarge { count, limit, .. } => {
                write!(f, "the grid has more than {count} points, more than its limit of {limit}")
            }
            SpaceError::BadPin { name, message } => write!(f, "cannot pin `{name}`: {message}"),
        }
    }
}

impl std::error::Error for SpaceError {}

impl From<ir::EvalError> for SpaceError {
    fn from(e: ir::EvalError) -> SpaceError {
        SpaceError::Eval(e)
    }
}

/// Builds a point by walking the parameters in order: `choose` gives the value of
/// each active free parameter that `pins` does not fix, seeing the point so far.
pub fn build(
    space: &ir::Space,
    ctx: Context<'_>,
    pins: &Point,
    mut choose: impl FnMut(&ir::Param, &Domain, &Point) -> Value,
) -> Result<Point, SpaceError> {
    let mut point = Point::new();
    for p in &space.params {
        if !space.guard_holds(p, &point, ctx.fns, ctx.data)? {
            continue;
        }
        let v = match &p.kind {
            ParamKind::Free(domain) => match pins.get(&p.name) {
                Some(v) => v.clone(),
                None => choose(p, domain, &point),
            },
            ParamKind::Const(v) => v.clone(),
            ParamKind::Derived(e) => ir::eval(e, &ir::PointEnv { point: &point, fns: ctx.fns, data: ctx.data })?,
        };
        point.insert(p.name.clone(), v);
    }
    Ok(point)
}

/// A point drawn uniformly (log-uniformly for `log` domains) from the space.
pub fn sample(space: &ir::Space, ctx: Context<'_>, pins: &Point, rng: &mut Rng) -> Result<Point, SpaceError> {
    build(space, ctx, pins, |_, d, _| sample_domain(d, rng))
}

/// One value drawn from a domain.
pub fn sample_domain(domain: &Domain, rng: &mut Rng) -> Value {
    match domain {
        Domain::Choice(values) => values.get(rng.index(values.len())).cloned().unwrap_or(Value::Bool(false)),
        _ => Axis::of(domain).map(|a| a.value(rng.f64())).unwrap_or(Value::Int(0)),
    }
}

/// Checks a pinned value against its parameter and converts ints to floats where needed.
pub fn check_pin(space: &ir::Space, name: &str, value: &Value) -> Result<Value, SpaceError> {
    let bad = |message: String| SpaceError::BadPin { name: name.to_string(), message };
    let Some(param) = space.get(name) else {
        let names: Vec<&str> = space.free().map(|p| p.name.as_str()).collect();
        return Err(bad(format!("no such parameter (the free ones are: {})", names.join(", "))));
    };
    let ParamKind::Free(domain) = &param.kind else {
        return Err(bad("it is not searched (pinned or derived in the spec)".into()));
    };
    match domain {
        Domain::Choice(values) => values
            .iter()
            .find(|v| v.loosely_eq(value) || v.to_string() == value.to_string())
            .cloned()
            .ok_or_else(|| bad(format!("{value} is not one of {}", Value::List(values.clone())))),
        Domain::Int { lo, hi, step, .. } => match value.as_i64() {
            Some(i) if i >= *lo && i <= *hi && (i - lo) % (*step).max(1) == 0 => Ok(Value::Int(i)),
            _ => Err(bad(format!("{value} is not an int in {lo}..={hi} step {step}"))),
        },
        Domain::Float { lo, hi, .. } => match value.as_f64() {
            Some(x) if x >= *lo && x <= *hi => Ok(Value::Float(x)),
            _ => Err(bad(format!("{value} is not a float in {lo}..{hi}"))),
        },
    }
}

/// Every point of the grid over the free parameters (continuous axes without a
/// `step` take [`GRID_FLOAT_POINTS`] evenly spaced values), in a stable order.
/// More than `limit` points is an error that gives the count.
pub fn grid(space: &ir::Space, ctx: Context<'_>, pins: &Point, limit: u64) -> Result<Vec<Point>, SpaceError> {
    let mut out = Vec::new();
    let mut count: u128 = 0;
    // Counting stops after this many partial points, so a huge space errors quickly.
    let mut budget: u64 = 2_000_000;
    grid_walk(space, ctx, pins, 0, Point::new(), limit, &mut out, &mut count, &mut budget)?;
    if count > u128::from(limit) {
        let exact = budget > 0;
        let count = if exact { count } else { count.max(grid_upper_bound(space)) };
        return Err(SpaceError::GridTooLarge { count, exact, limit });
    }
    Ok(out)
}

/// The values a grid takes along one domain.
pub fn grid_values(domain: &Domain) -> Vec<Value> {
    match domain {
        Domain::Float { step: None, .. } => match Axis::of(domain) {
            Some(a) => (0..GRID_FLOAT_POINTS).map(|k| a.value(k as f64 / (GRID_FLOAT_POINTS - 1) as f64)).collect(),
            None => Vec::new(),
        },
        d => d.values().unwrap_or_default(),
    }
}

/// The product of every free parameter's grid size: an upper bound on the grid.
pub fn grid_upper_bound(space: &ir::Space) -> u128 {
    space.free().fold(1u128, |acc, p| match &p.kind {
        ParamKind::Free(d) => acc.saturating_mul(d.cardinality().unwrap_or(GRID_FLOAT_POINTS as u128).max(1)),
        _ => acc,
    })
}

#[allow(clippy::too_many_arguments)]
fn grid_walk(
    space: &ir::Space,
    ctx: Context<'_>,
    pins: &Point,
    index: usize,
    mut point: Point,
    limit: u64,
    out: &mut Vec<Point>,
    count: &mut u128,
    budget: &mut u64,
) -> Result<(), SpaceError> {
    if *budget == 0 {
        return Ok(());
    }
    *budget -= 1;
    let mut i = index;
    while let Some(p) = space.params.get(i) {
        i += 1;
        if !space.guard_holds(p, &point, ctx.fns, ctx.data)? {
            continue;
        }
        match &p.kind {
            ParamKind::Free(domain) => {
                let values = match pins.get(&p.name) {
                    Some(v) => vec![v.clone()],
                    None => grid_values(domain),
                };
                for v in values {
                    let mut next = point.clone();
                    next.insert(p.name.clone(), v);
                    grid_walk(space, ctx, pins, i, next, limit, out, count, budget)?;
                }
                return Ok(());
            }
            ParamKind::Const(v) => {
                point.insert(p.name.clone(), v.clone());
            }
            ParamKind::Derived(e) => {
                let v = ir::eval(e, &ir::PointEnv { point: &point, fns: ctx.fns, data: ctx.data })?;
                point.insert(p.name.clone(), v);
            }
        }
    }
    *count += 1;
    if *count <= u128::from(limit) {
        out.push(point);
    }
    Ok(())
}

/// A numeric domain as a map from `[0, 1]` to values, `log` taken into account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axis {
    /// The ends of the axis in transformed (maybe log) units.
    lo: f64,
    hi: f64,
    log: bool,
    kind: AxisKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum AxisKind {
    /// Reals in `[lo, hi]`, quantised to `base + k*step` when `step` is set.
    Float { base: f64, top: f64, step: Option<f64> },
    /// Integers `base + k*step` up to `top`.
    Int { base: i64, top: i64, step: i64 },
}

impl Axis {
    /// The axis of a numeric domain; `None` for choices.
    pub fn of(domain: &Domain) -> Option<Axis> {
        match *domain {
            Domain::Choice(_) => None,
            Domain::Float { lo, hi, log, step } => {
                let log = log && lo > 0.0;
                let t = |x: f64| if log { x.ln() } else { x };
                let step = step.filter(|s| *s > 0.0);
                Some(Axis { lo: t(lo), hi: t(hi), log, kind: AxisKind::Float { base: lo, top: hi, step } })
            }
            Domain::Int { lo, hi, log, step } => {
                let step = step.max(1);
                let top = lo + (hi.saturating_sub(lo) / step) * step;
                // Each integer owns the interval half a step either side of it.
                let half = step as f64 / 2.0;
                let (a, b) = (lo as f64 - half, top as f64 + half);
                let log = log && a > 0.0;
                let t = |x: f64| if log { x.ln() } else { x };
                Some(Axis { lo: t(a), hi: t(b), log, kind: AxisKind::Int { base: lo, top, step } })
            }
        }
    }

    /// The value at `u` in `[0, 1]` (clamped), on the domain's grid.
    pub fn value(&self, u: f64) -> Value {
        let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
        let t = self.lo + (self.hi - self.lo) * u;
        let x = if self.log { t.exp() } else { t };
        match self.kind {
            AxisKind::Float { base, top, step } => {
                let x = match step {
                    Some(s) => base + ((x - base) / s).round() * s,
                    None => x,
                };
                let top = match step {
                    Some(s) => base + ((top - base) / s + 1e-9).floor() * s,
                    None => top,
                };
                Value::Float(x.clamp(base, top))
            }
            AxisKind::Int { base, top, step } => {
                let k = ((x - base as f64) / step as f64).round();
                let k = if k.is_finite() { k.max(0.0) as i64 } else { 0 };
                Value::Int(base.saturating_add(k.saturating_mul(step)).clamp(base, top))
            }
        }
    }

    /// Where a value sits on the axis, in `[0, 1]`.
    pub fn unit(&self, value: &Value) -> Option<f64> {
        let x = value.as_f64()?;
        let t = if self.log { x.max(f64::MIN_POSITIVE).ln() } else { x };
        let span = self.hi - self.lo;
        Some(if span > 0.0 { ((t - self.lo) / span).clamp(0.0, 1.0) } else { 0.5 })
    }

    /// The number of distinct values, for int and stepped axes.
    pub fn levels(&self) -> Option<u64> {
        match self.kind {
            AxisKind::Int { base, top, step } => Some(((top - base) / step) as u64 + 1),
            AxisKind::Float { base, top, step: Some(s) } => Some(((top - base) / s + 1e-9).floor() as u64 + 1),
            AxisKind::Float { step: None, .. } => None,
        }
    }
}

/// The coordinates model-based samplers see: one per free parameter.
#[derive(Debug, Clone)]
pub struct Encoding {
    pub dims: Vec<Dim>,
}

#[derive(Debug, Clone)]
pub struct Dim {
    pub name: String,
    pub kind: DimKind,
    /// Whether the parameter can be absent (it sits under a `when`, maybe transitively).
    pub conditional: bool,
}

#[derive(Debug, Clone)]
pub enum DimKind {
    /// Coordinate in `[0, 1]`.
    Numeric(Axis),
    /// Coordinate is the index of the value.
    Categorical(Vec<Value>),
}

impl Encoding {
    pub fn new(space: &ir::Space) -> Encoding {
        let dims = space
            .params
            .iter()
            .filter_map(|p| match &p.kind {
                ParamKind::Free(Domain::Choice(values)) => Some(Dim {
                    name: p.name.clone(),
                    kind: DimKind::Categorical(values.clone()),
                    conditional: p.is_conditional(),
                }),
                ParamKind::Free(d) => Axis::of(d).map(|a| Dim {
                    name: p.name.clone(),
                    kind: DimKind::Numeric(a),
                    conditional: p.is_conditional(),
                }),
                _ => None,
            })
            .collect();
        Encoding { dims }
    }

    /// The index of the dimension for parameter `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.dims.iter().position(|d| d.name == name)
    }

    /// A point's coordinates; `None` where the parameter is absent.
    pub fn encode(&self, point: &Point) -> Vec<Option<f64>> {
        self.dims.iter().map(|d| point.get(&d.name).and_then(|v| d.coordinate(v))).collect()
    }
}

impl Dim {
    pub fn coordinate(&self, value: &Value) -> Option<f64> {
        match &self.kind {
            DimKind::Numeric(axis) => axis.unit(value),
            DimKind::Categorical(values) => {
                values.iter().position(|c| c == value || c.loosely_eq(value)).map(|i| i as f64)
            }
        }
    }

    /// The value at a coordinate (clamped into the domain).
    pub fn value(&self, x: f64) -> Value {
        match &self.kind {
            DimKind::Numeric(axis) => axis.value(x),
            DimKind::Categorical(values) => {
                let i = if x.is_finite() { (x.max(0.0) as usize).min(values.len().saturating_sub(1)) } else { 0 };
                values.get(i).cloned().unwrap_or(Value::Bool(false))
            }
        }
    }

    /// The number of categories, for a categorical dimension.
    pub fn categories(&self) -> Option<usize> {
        match &self.kind {
            DimKind::Categorical(v) => Some(v.len()),
            DimKind::Numeric(_) => None,
        }
    }
}
