//! The resolved program: what a `.bma` file means, ready for checking and running.
//!
//! Takes the [`ast::File`]s of a compilation (root file, local imports, stdlib),
//! gives an [`Program`]: blocks and fns by name, and per experiment its
//! [`Space`] (a parameter DAG in dependency order, with guards and derived
//! values), its model template and its settings as evaluated [`Value`]s.
//! [`expand`] turns a model template and a [`Point`] into a concrete
//! [`SubModel`], a petgraph DAG with every shape known.
//!
//! **Invariant:** in `Space::params`, a parameter's guard and derived expression
//! only name parameters that come before it.

pub mod command;
pub mod data_search;
mod expand;
mod layers;
mod lower;
mod rnn;
mod seq;
mod submodel;
mod unused;
mod value;

use std::collections::{BTreeMap, BTreeSet};

pub use expand::expand;
pub use lower::{Disk, Loader, lower, names_in};
pub use rnn::RnnCell;
pub use seq::conv1d_pad;
pub use submodel::{
    Activation, DataInfo, ExpandError, Layer, LayerKind, Node, Padding, Positional, Shape, SubModel, Task, fmt_shape,
};
pub use value::{
    BUILTINS, CONSTANTS, CallValue, Duration, Env, EvalError, MAX_INT, Symbol, Value, dotted, eval, pattern_matches,
};

use crate::ast;
use crate::source::Span;

/// Values of the active parameters of one point of the space, by name; derived
/// (`let`) and pinned values included, inactive conditional parameters absent.
pub type Point = BTreeMap<String, Value>;

/// Everything a compilation defines.
#[derive(Debug, Clone, Default)]
pub struct Program {
    pub experiments: Vec<Experiment>,
    /// Blocks by the name they are known by in the root file (imports included).
    pub blocks: BTreeMap<String, ast::Block>,
    /// Functions by name (imports included).
    pub fns: BTreeMap<String, ast::FnDef>,
    /// The qualified names (`std::blocks::conv_bn`) of items the root file did not
    /// import but an imported item uses; present in `blocks`/`fns`, not nameable.
    pub hidden: std::collections::BTreeSet<String>,
}

impl Program {
    pub fn experiment(&self, name: &str) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.name == name)
    }
}

/// One `experiment`.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub span: Span,
    pub name_span: Span,
    pub doc: Option<String>,
    /// `data = ...`, evaluated (`digits(split: [...])` is a call value).
    pub data: Option<Setting>,
    pub space: Space,
    pub model: Option<ast::Body>,
    /// `train { }`, `search { }`, `report { }` settings by key, in source order.
    pub train: Vec<Setting>,
    pub search: Vec<Setting>,
    pub report: Vec<Setting>,
    pub objectives: Vec<Objective>,
    pub constraints: Vec<Constraint>,
    pub rank: Option<Setting>,
    /// `average { ... }` entries.
    pub average: Vec<ast::Expr>,
    /// `trial { ... }`: the user's program runs each trial (a command experiment).
    pub trial: Option<Trial>,
    /// Where each section's keyword stands, for diagnostics.
    pub sections: BTreeMap<&'static str, Span>,
}

impl Experiment {
    pub fn train_setting(&self, key: &str) -> Option<&Setting> {
        self.train.iter().find(|s| s.key == key)
    }

    pub fn search_setting(&self, key: &str) -> Option<&Setting> {
        self.search.iter().find(|s| s.key == key)
    }

    pub fn report_setting(&self, key: &str) -> Option<&Setting> {
        self.report.iter().find(|s| s.key == key)
    }
}

/// A `trial { }` section: its `key = value` settings (`command`, `cwd`, `timeout`, `grace`,
/// `reports`, `devices`) and its `env` record, kept symbolic like every setting.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The `trial` keyword.
    pub span: Span,
    pub settings: Vec<Setting>,
    /// `env = { KEY: value }`: each name, its span and its value.
    pub env: Vec<(String, Span, ast::Expr)>,
    /// Where `env` is written, when it is.
    pub env_span: Option<Span>,
}

impl Trial {
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// The metric names `reports = [a, b]` declares, with their spans.
    pub fn reports(&self) -> Vec<(String, Span)> {
        match self.setting("reports").map(|s| &s.value.kind) {
            Some(ast::ExprKind::List(items)) => {
                items.iter().filter_map(|e| e.as_name().map(|n| (n.to_string(), e.span))).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// `key = expr` in a section. The expression may name parameters, so it is kept
/// symbolic; evaluate it against a [`Point`] with [`PointEnv`].
#[derive(Debug, Clone)]
pub struct Setting {
    pub key: String,
    pub key_span: Span,
    pub value: ast::Expr,
}

#[derive(Debug, Clone)]
pub struct Objective {
    pub direction: ast::Direction,
    /// A metric name (`accuracy`) or any expression over parameters and fns.
    pub metric: ast::Expr,
    /// `on valid` / `on train`; `None` means valid.
    pub split: Option<String>,
    /// How the objective is shown: the metric's source text.
    pub name: String,
    pub span: Span,
}

/// `require lhs op bound`.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub lhs: ast::Expr,
    pub op: ast::BinaryOp,
    pub bound: ast::Expr,
    /// The constraint's source text.
    pub name: String,
    pub span: Span,
}

/// The search space: parameters in dependency order.
#[derive(Debug, Clone, Default)]
pub struct Space {
    pub params: Vec<Param>,
    /// Parameters whose declaration was rejected (a bad domain, already reported),
    /// with the names their declaration mentions: uses of them are not reported again.
    pub rejected: BTreeMap<String, BTreeSet<String>>,
}

impl Space {
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The parameters that are searched (not pinned, not derived).
    pub fn free(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| matches!(p.kind, ParamKind::Free(_)))
    }
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// The whole declaration.
    pub span: Span,
    /// Just the name, for labels.
    pub name_span: Span,
    pub doc: Option<String>,
    pub kind: ParamKind,
    /// The `when` conditions around the declaration, outermost first; all must hold.
    pub guard: Vec<ast::Expr>,
}

impl Param {
    pub fn is_conditional(&self) -> bool {
        !self.guard.is_empty()
    }
}

#[derive(Debug, Clone)]
pub enum ParamKind {
    /// Searched over its domain.
    Free(Domain),
    /// `name = value`: pinned, still reported.
    Const(Value),
    /// `let name = expr`.
    Derived(ast::Expr),
}

/// A parameter's domain, with constant bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Integers `lo..=hi` (an exclusive `..` is lowered to `..=hi-1`), multiples of `step` from `lo`.
    Int { lo: i64, hi: i64, log: bool, step: i64 },
    /// Reals `lo..hi`, optionally quantised to `lo + k*step`.
    Float { lo: f64, hi: f64, log: bool, step: Option<f64> },
    /// One of these values.
    Choice(Vec<Value>),
}

impl Domain {
    /// The number of values, or `None` for a continuous domain.
    pub fn cardinality(&self) -> Option<u128> {
        match self {
            Domain::Int { lo, hi, step, .. } => {
                Some(if hi < lo { 0 } else { (i128::from(*hi) - i128::from(*lo)) as u128 / (*step).max(1) as u128 + 1 })
            }
            Domain::Float { lo, hi, step: Some(s), .. } if *s > 0.0 => {
                Some(((hi - lo) / s + 1e-9).floor().max(0.0) as u128 + 1)
            }
            Domain::Float { .. } => None,
            Domain::Choice(v) => Some(v.len() as u128),
        }
    }

    /// Every value, for a discrete domain.
    pub fn values(&self) -> Option<Vec<Value>> {
        match self {
            Domain::Int { lo, hi, step, .. } => {
                let step = (*step).max(1);
                let mut out = Vec::new();
                let mut v = *lo;
                while v <= *hi && out.len() < 1_000_000 {
                    out.push(Value::Int(v));
                    v = v.checked_add(step)?;
                }
                Some(out)
            }
            Domain::Float { lo, step: Some(s), .. } => {
                let n = self.cardinality()?.min(1_000_000);
                Some((0..n).map(|k| Value::Float(lo + k as f64 * s)).collect())
            }
            Domain::Float { .. } => None,
            Domain::Choice(v) => Some(v.clone()),
        }
    }
}

/// Evaluation environment for one point: its parameters, `data.*`, and the program's fns.
pub struct PointEnv<'a> {
    pub point: &'a Point,
    pub fns: &'a BTreeMap<String, ast::FnDef>,
    pub data: Option<&'a DataInfo>,
}

impl Env for PointEnv<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.point.get(name) {
            return Some(v.clone());
        }
        let data = self.data?;
        match name {
            "data.classes" => Some(Value::Int(data.classes as i64)),
            "data.features" => Some(Value::Int(data.features() as i64)),
            "data.shape" => Some(Value::List(data.shape.iter().map(|d| Value::Int(*d as i64)).collect())),
            "data.vocab" => data.vocab.map(|v| Value::Int(v as i64)),
            _ => None,
        }
    }

    fn function(&self, name: &str) -> Option<&ast::FnDef> {
        self.fns.get(name)
    }
}

impl Space {
    /// Completes a point of free values with pinned and derived values, dropping
    /// parameters whose guard does not hold. Errors name the expression that failed.
    pub fn resolve(
        &self,
        free: &Point,
        fns: &BTreeMap<String, ast::FnDef>,
        data: Option<&DataInfo>,
    ) -> Result<Point, EvalError> {
        let mut point = Point::new();
        for p in &self.params {
            if !self.guard_holds(p, &point, fns, data)? {
                continue;
            }
            let v = match &p.kind {
                ParamKind::Free(_) => match free.get(&p.name) {
                    Some(v) => v.clone(),
                    None => return Err(EvalError { span: p.span, message: format!("no value for `{}`", p.name) }),
                },
                ParamKind::Const(v) => v.clone(),
                ParamKind::Derived(e) => eval(e, &PointEnv { point: &point, fns, data })?,
            };
            point.insert(p.name.clone(), v);
        }
        Ok(point)
    }

    /// Whether every `when` around `param` holds at the (partial) point.
    pub fn guard_holds(
        &self,
        param: &Param,
        point: &Point,
        fns: &BTreeMap<String, ast::FnDef>,
        data: Option<&DataInfo>,
    ) -> Result<bool, EvalError> {
        for g in &param.guard {
            match eval(g, &PointEnv { point, fns, data })? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(false),
                v => {
                    return Err(EvalError {
                        span: g.span,
                        message: format!("`when` needs a bool, found a {}", v.type_name()),
                    });
                }
            }
        }
        Ok(true)
    }
}
