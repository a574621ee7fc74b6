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
                let step = step.filter(|s| *s > 0.0);
                // A stepped axis is padded half a step either side, like an int one, so
                // that every level (the ends included) owns an equal share of `[0, 1]`.
                let (a, b) = match step {
                    Some(s) => {
                        let top = lo + ((hi - lo) / s + 1e-9).floor().max(0.0) * s;
                        (lo - s / 2.0, top + s / 2.0)
                    }
                    None => (lo, hi),
                };
                let log = log && a > 0.0;
                let t = |x: f64| if log { x.ln() } else { x };
                Some(Axis { lo: t(a), hi: t(b), log, kind: AxisKind::Float { base: lo, top: hi, step } })
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

    /// For a discrete axis (int or stepped) of at most `max` levels: each level's bin of
    /// `[0, 1]` as `(from, to, at)`, where `at` is the level's own coordinate. Every value
    /// owns the interval half a step either side of it (in log units for `log` axes),
    /// so the bins tile `[0, 1]`.
    pub fn bins(&self, max: u64) -> Option<Vec<(f64, f64, f64)>> {
        let n = self.levels().filter(|n| *n <= max)?;
        let (base, step) = match self.kind {
            AxisKind::Int { base, step, .. } => (base as f64, step as f64),
            AxisKind::Float { base, step: Some(s), .. } => (base, s),
            AxisKind::Float { step: None, .. } => return None,
        };
        let unit = |x: f64| self.unit(&Value::Float(x)).unwrap_or(0.5);
        Some(
            (0..n)
                .map(|i| {
                    let v = base + i as f64 * step;
                    (unit(v - step / 2.0), unit(v + step / 2.0), unit(v))
                })
                .collect(),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
fn double(n: int) -> int = 2 * n
experiment t {
  space {
    lr:     float in 1e-4..1e-1 log
    width:  int in 16..=256 step 16
    depth:  int in 1..=4
    p:      float in 0.0..=0.5 step 0.1
    batch:  int in 8..=512 log
    opt:    in {sgd, adam}
    bn:     bool in {true, false}
    seed    = 3
    let units = double(width)
    when opt == sgd {
      momentum: float in 0.5..0.99
      when momentum > 0.9 {
        nesterov: bool in {true, false}
      }
    }
  }
  objective { minimize 0 }
}
"#;

    fn program(text: &str) -> ir::Program {
        let compiled = crate::compile(&crate::Source::new("t.bma", text));
        let errors: Vec<_> = compiled.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        compiled.program
    }

    fn points(n: usize, seed: u64) -> (ir::Program, Vec<Point>) {
        let prog = program(SPEC);
        let mut rng = Rng::new(seed);
        let ctx = Context { fns: &prog.fns, data: None };
        let pts = (0..n).map(|_| sample(&prog.experiments[0].space, ctx, &Point::new(), &mut rng).unwrap()).collect();
        (prog, pts)
    }

    fn f(p: &Point, k: &str) -> f64 {
        p[k].as_f64().unwrap()
    }

    #[test]
    fn every_domain_kind_samples_inside_its_domain() {
        let (_, pts) = points(4000, 1);
        for p in &pts {
            let lr = f(p, "lr");
            assert!((1e-4..=1e-1).contains(&lr), "{lr}");
            let width = p["width"].as_i64().unwrap();
            assert!((16..=256).contains(&width) && width % 16 == 0, "{width}");
            assert!(matches!(p["depth"], Value::Int(1..=4)));
            let q = f(p, "p");
            assert!((0.0..=0.5 + 1e-12).contains(&q) && ((q * 10.0).round() - q * 10.0).abs() < 1e-9, "{q}");
            assert!((8..=512).contains(&p["batch"].as_i64().unwrap()));
            assert!(matches!(p["bn"], Value::Bool(_)));
            assert_eq!(p["seed"], Value::Int(3), "constants are present");
            assert_eq!(p["units"], Value::Int(2 * width), "derived values follow their inputs");
        }
        // Every level of every discrete domain is reached, the ends included, about equally.
        let mut widths = BTreeMap::new();
        let mut ps = BTreeMap::new();
        for p in &pts {
            *widths.entry(p["width"].as_i64().unwrap()).or_insert(0) += 1;
            *ps.entry((f(p, "p") * 10.0).round() as i64).or_insert(0) += 1;
        }
        assert_eq!(widths.len(), 16);
        assert!(widths.values().all(|&c| (150..350).contains(&c)), "{widths:?}");
        assert_eq!(ps.len(), 6);
        assert!(ps.values().all(|&c| (500..850).contains(&c)), "step ends get a full share: {ps:?}");
    }

    #[test]
    fn log_domains_spread_evenly_over_decades() {
        let (_, pts) = points(6000, 2);
        let mut decades = [0u32; 3];
        for p in &pts {
            let d = (f(p, "lr").log10() + 4.0).floor().clamp(0.0, 2.0) as usize;
            decades[d] += 1;
        }
        assert!(decades.iter().all(|&c| (1800..2200).contains(&c)), "{decades:?}");
        // A log int: as many draws in 8..=22 as in 181..=512 (equal log widths, about).
        let low = pts.iter().filter(|p| p["batch"].as_i64().unwrap() <= 22).count();
        let high = pts.iter().filter(|p| p["batch"].as_i64().unwrap() >= 181).count();
        assert!((low as f64 / high as f64 - 1.0).abs() < 0.2, "{low} {high}");
    }

    #[test]
    fn inactive_conditional_parameters_are_absent() {
        let (_, pts) = points(2000, 3);
        let (mut sgd, mut nest) = (0, 0);
        for p in &pts {
            let is_sgd = p["opt"] == Value::sym("sgd");
            assert_eq!(p.contains_key("momentum"), is_sgd, "{p:?}");
            let deep = is_sgd && f(p, "momentum") > 0.9;
            assert_eq!(p.contains_key("nesterov"), deep, "nested `when`: {p:?}");
            sgd += usize::from(is_sgd);
            nest += usize::from(deep);
        }
        assert!((850..1150).contains(&sgd) && nest > 100, "{sgd} {nest}");
    }

    #[test]
    fn pins_are_kept_and_checked() {
        let prog = program(SPEC);
        let space = &prog.experiments[0].space;
        let ctx = Context { fns: &prog.fns, data: None };
        let pin = check_pin(space, "width", &Value::Int(64)).unwrap();
        let pins: Point = [("width".to_string(), pin), ("opt".to_string(), Value::sym("adam"))].into();
        let mut rng = Rng::new(4);
        for _ in 0..50 {
            let p = sample(space, ctx, &pins, &mut rng).unwrap();
            assert_eq!(p["width"], Value::Int(64));
            assert_eq!(p["units"], Value::Int(128));
            assert!(!p.contains_key("momentum"));
        }
        assert!(check_pin(space, "width", &Value::Int(20)).is_err(), "off the step");
        assert!(check_pin(space, "units", &Value::Int(2)).is_err(), "derived");
        assert!(check_pin(space, "nope", &Value::Int(2)).is_err());
        assert!(check_pin(space, "lr", &Value::Int(0)).map_err(|e| e.to_string()).unwrap_err().contains("lr"));
    }

    #[test]
    fn grid_enumerates_and_honours_its_limit() {
        let prog = program(
            "experiment g {\n  space {\n    a: int in 1..=3\n    k: in {x, y}\n    when k == x { b: float in 0.0..=1.0 }\n  }\n  objective { minimize 0 }\n}\n",
        );
        let space = &prog.experiments[0].space;
        let ctx = Context { fns: &prog.fns, data: None };
        let all = grid(space, ctx, &Point::new(), 100).unwrap();
        // a: 3 values; k = x gives b's 5 points, k = y none.
        assert_eq!(all.len(), 3 * (GRID_FLOAT_POINTS + 1));
        assert!(all.iter().filter(|p| p["k"] == Value::sym("y")).all(|p| !p.contains_key("b")));
        let err = grid(space, ctx, &Point::new(), 10).unwrap_err();
        assert_eq!(err, SpaceError::GridTooLarge { count: 18, exact: true, limit: 10 });
        assert!(err.to_string().contains("18"), "{err}");
        let pins: Point = [("a".to_string(), Value::Int(2))].into();
        assert_eq!(grid(space, ctx, &pins, 10).unwrap().len(), GRID_FLOAT_POINTS + 1);
    }

    #[test]
    fn encoding_marks_absent_parameters_and_round_trips() {
        let (prog, pts) = points(300, 5);
        let enc = Encoding::new(&prog.experiments[0].space);
        let names: Vec<&str> = enc.dims.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["lr", "width", "depth", "p", "batch", "opt", "bn", "momentum", "nesterov"]);
        assert!(enc.dims[enc.index("momentum").unwrap()].conditional);
        assert!(!enc.dims[enc.index("lr").unwrap()].conditional);
        for p in &pts {
            let x = enc.encode(p);
            for (d, c) in enc.dims.iter().zip(&x) {
                match c {
                    None => assert!(!p.contains_key(&d.name), "absent, not noise"),
                    Some(c) => {
                        assert!(d.categories().is_some() || (0.0..=1.0).contains(c));
                        let back = d.value(*c);
                        let orig = &p[&d.name];
                        match (back.as_f64(), orig.as_f64()) {
                            (Some(a), Some(b)) => {
                                assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{} {a} {b}", d.name)
                            }
                            _ => assert_eq!(&back, orig),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn discrete_bins_tile_the_unit_interval() {
        for d in [
            Domain::Int { lo: 1, hi: 4, log: false, step: 1 },
            Domain::Int { lo: 8, hi: 512, log: true, step: 1 },
            Domain::Float { lo: 0.0, hi: 0.5, log: false, step: Some(0.1) },
        ] {
            let axis = Axis::of(&d).unwrap();
            let bins = axis.bins(1000).unwrap();
            assert_eq!(bins.len() as u64, axis.levels().unwrap());
            assert!(bins[0].0.abs() < 1e-9 && (bins[bins.len() - 1].1 - 1.0).abs() < 1e-9);
            for w in bins.windows(2) {
                assert!((w[0].1 - w[1].0).abs() < 1e-9);
            }
            for (i, b) in bins.iter().enumerate() {
                assert!(b.0 <= b.2 && b.2 <= b.1);
                assert_eq!(axis.value(b.2), d.values().unwrap()[i], "{d:?}");
            }
        }
        assert!(Axis::of(&Domain::Float { lo: 0.0, hi: 1.0, log: false, step: None }).unwrap().bins(10).is_none());
    }
}
