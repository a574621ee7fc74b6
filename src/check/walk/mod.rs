//! Names, types and guards: a walk over every expression of an experiment.
//!
//! Takes a lowered [`Program`] and one experiment (or one block, one `fn`); pushes every
//! problem found into the diagnostics and gives the names of the parameters used.
//! Tracks what is in scope (parameters, `repeat` indices, block parameters,
//! named nodes) and which facts are known to hold (the arms of `match` and
//! `if`, the `when` around a declaration). A conditional parameter may only be
//! used where the facts imply its `when`; implication is decided by enumerating
//! the finite parameters involved, falling back to syntactic equality. Each name it
//! resolves to a user definition (a local, a parameter, a block, a fn) is recorded with the
//! definition's span ([`resolutions`], what the editor's index is checked against).
//!
//! The walk is one [`Walker`] whose methods live by concern: `facts` (conditional
//! parameters and what is known to hold), `expr` (names, types, calls, `match`
//! patterns), `model` (layers, blocks and their arguments), `settings` (the sections'
//! keys and values, checked against the catalogue's signatures, `crate::catalogue`).

mod expr;
mod facts;
mod hypergradient;
mod model;
mod settings;

pub use settings::section_keys;

use std::collections::{BTreeMap, BTreeSet};

use crate::ast;
use crate::catalogue::{self, ArgType as Want};
use crate::diagnostic::Diagnostic;
use crate::ir::{self, DataInfo, Domain, Experiment, ParamKind, Program, Value};
use crate::source::{Sources, Span};

use facts::Fact;

#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Int,
    Float,
    Bool,
    Str,
    Dur,
    /// One of these symbols.
    Sym(Vec<String>),
    Layer,
    List,
    /// A constructor call: `adam(lr)`.
    Call(String),
    Data,
    Unknown,
    /// A name that nothing binds: a symbol if the position accepts one.
    Bare(String, Span),
}

impl Ty {
    fn describe(&self) -> String {
        match self {
            Ty::Int => "an int".into(),
            Ty::Float => "a float".into(),
            Ty::Bool => "a bool".into(),
            Ty::Str => "a string".into(),
            Ty::Dur => "a duration".into(),
            Ty::Sym(_) => "a symbol".into(),
            Ty::Layer => "a layer".into(),
            Ty::List => "a list".into(),
            Ty::Call(n) => format!("a `{n}(...)` value"),
            Ty::Data => "the data".into(),
            Ty::Unknown => "a value".into(),
            Ty::Bare(n, _) => format!("the symbol `{n}`"),
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Unknown)
    }
}

/// A name the walk resolved to a user definition: where the reference stands, the
/// definition's name, and what kind of definition it is. The walk's own lookups
/// ([`resolutions`]), for the editor to be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub at: Span,
    pub def: Span,
    pub kind: Resolved,
}

/// What a [`Resolution`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// A `repeat` index, or a block's or fn's parameter.
    Local,
    /// A parameter of the experiment's space.
    Param,
    Block,
    Fn,
}

/// Every name the checker's walks of `program`'s blocks, fns and experiments resolve to a
/// user definition (what `check` walks, with the same lookups; the diagnostics dropped),
/// in the order the walks meet them.
pub fn resolutions(program: &Program, sources: &Sources) -> Vec<Resolution> {
    let mut diags = Vec::new();
    let mut out = Vec::new();
    for block in program.blocks.values() {
        out.extend(walk_block(program, block, &mut diags));
    }
    for f in program.fns.values() {
        out.extend(walk_fn(program, f, &mut diags));
    }
    for exp in &program.experiments {
        out.extend(walk_experiment(program, exp, sources, None, &mut diags).1);
    }
    out
}

struct Walker<'a> {
    program: &'a Program,
    exp: Option<&'a Experiment>,
    sources: Option<&'a Sources>,
    diags: &'a mut Vec<Diagnostic>,
    used: BTreeSet<String>,
    /// Local names (repeat indices, block and fn parameters), innermost last.
    locals: Vec<(String, Ty, Span)>,
    /// Names of model nodes in scope.
    nodes: Vec<String>,
    facts: Vec<Fact>,
    derived: BTreeMap<String, Ty>,
    /// Metric names are values here (objectives, constraints).
    metrics: bool,
    /// Parameters may not be used here (search and report settings).
    constant_only: bool,
    /// The names resolved to user definitions, for [`resolutions`].
    resolved: Vec<Resolution>,
}

pub(super) fn check_experiment(
    program: &Program,
    exp: &Experiment,
    sources: &Sources,
    data: Option<&DataInfo>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeSet<String> {
    walk_experiment(program, exp, sources, data, diags).0
}

fn walk_experiment(
    program: &Program,
    exp: &Experiment,
    sources: &Sources,
    data: Option<&DataInfo>,
    diags: &mut Vec<Diagnostic>,
) -> (BTreeSet<String>, Vec<Resolution>) {
    let mut w = Walker::new(program, Some(exp), Some(sources), diags);
    w.space(exp);
    if let Some(model) = &exp.model {
        w.body(model);
    }
    w.train(exp);
    if let Some(data) = data {
        w.augment_fits(exp, data);
    }
    w.objective(exp);
    w.search(exp);
    w.average(exp);
    w.report(exp);
    (w.used, w.resolved)
}

pub(super) fn check_block(program: &Program, block: &ast::Block, diags: &mut Vec<Diagnostic>) {
    walk_block(program, block, diags);
}

fn walk_block(program: &Program, block: &ast::Block, diags: &mut Vec<Diagnostic>) -> Vec<Resolution> {
    let mut w = Walker::new(program, None, None, diags);
    for p in &block.params {
        let ty = match (&p.ty, &p.default) {
            (Some((t, _)), _) => type_of_name(*t),
            (None, Some(d)) => {
                let t = w.expr(d);
                if let Ty::Bare(n, _) = &t
                    && (is_layer_name(program, n))
                {
                    Ty::Layer
                } else {
                    t
                }
            }
            (None, None) => Ty::Unknown,
        };
        if let Some(d) = &p.default
            && let Some((t, _)) = p.ty
        {
            let want = want_of_type(t);
            let got = w.expr(d);
            w.need(&got, d, want);
        }
        w.locals.push((p.name.name.clone(), ty, p.name.span));
    }
    w.nodes.push("input".into());
    w.body(&block.body);
    w.resolved
}

pub(super) fn check_fn(program: &Program, f: &ast::FnDef, diags: &mut Vec<Diagnostic>) {
    walk_fn(program, f, diags);
}

fn walk_fn(program: &Program, f: &ast::FnDef, diags: &mut Vec<Diagnostic>) -> Vec<Resolution> {
    let mut w = Walker::new(program, None, None, diags);
    for p in &f.params {
        let ty = p.ty.map_or(Ty::Float, |(t, _)| type_of_name(t));
        w.locals.push((p.name.name.clone(), ty, p.name.span));
    }
    let t = w.expr(&f.body);
    w.need(&t, &f.body, Want::Any);
    w.resolved
}

fn type_of_name(t: ast::TypeName) -> Ty {
    match t {
        ast::TypeName::Int => Ty::Int,
        ast::TypeName::Float => Ty::Float,
        ast::TypeName::Bool => Ty::Bool,
        ast::TypeName::Layer => Ty::Layer,
        ast::TypeName::Symbol => Ty::Sym(Vec::new()),
        ast::TypeName::String => Ty::Str,
    }
}

fn want_of_type(t: ast::TypeName) -> Want {
    match t {
        ast::TypeName::Int => Want::Int,
        ast::TypeName::Float => Want::Number,
        ast::TypeName::Bool => Want::Bool,
        ast::TypeName::String => Want::Str,
        ast::TypeName::Layer | ast::TypeName::Symbol => Want::Any,
    }
}

fn is_layer_name(program: &Program, n: &str) -> bool {
    catalogue::is_layer(n) || program.blocks.contains_key(n)
}

/// The static type of a domain's values.
fn domain_ty(program: &Program, d: &Domain) -> Ty {
    match d {
        Domain::Int { .. } => Ty::Int,
        Domain::Float { .. } => Ty::Float,
        Domain::Choice(values) => {
            if values.iter().all(|v| matches!(v, Value::Int(_))) {
                Ty::Int
            } else if values.iter().all(|v| matches!(v, Value::Int(_) | Value::Float(_))) {
                Ty::Float
            } else if values.iter().all(|v| matches!(v, Value::Bool(_))) {
                Ty::Bool
            } else if values.iter().all(|v| matches!(v, Value::Str(_))) {
                Ty::Str
            } else if values.iter().all(|v| v.head().is_some_and(|h| is_layer_name(program, h))) {
                Ty::Layer
            } else if values.iter().all(|v| matches!(v, Value::Sym(_) | Value::Call(_))) {
                Ty::Sym(values.iter().filter_map(|v| v.head().map(str::to_string)).collect())
            } else {
                Ty::Unknown
            }
        }
    }
}

fn value_ty(v: &Value) -> Ty {
    match v {
        Value::Int(_) => Ty::Int,
        Value::Float(_) => Ty::Float,
        Value::Bool(_) => Ty::Bool,
        Value::Str(_) => Ty::Str,
        Value::Sym(s) => Ty::Sym(vec![s.sym.clone()]),
        Value::Duration(_) => Ty::Dur,
        Value::List(_) => Ty::List,
        Value::Call(c) => Ty::Call(c.name.clone()),
    }
}

impl<'a> Walker<'a> {
    fn new(
        program: &'a Program,
        exp: Option<&'a Experiment>,
        sources: Option<&'a Sources>,
        diags: &'a mut Vec<Diagnostic>,
    ) -> Self {
        Walker {
            program,
            exp,
            sources,
            diags,
            used: BTreeSet::new(),
            locals: Vec::new(),
            nodes: Vec::new(),
            facts: Vec::new(),
            derived: BTreeMap::new(),
            metrics: false,
            constant_only: false,
            resolved: Vec::new(),
        }
    }

    /// Records that the name at `at` names the definition at `def`.
    fn resolve(&mut self, at: Span, def: Span, kind: Resolved) {
        self.resolved.push(Resolution { at, def, kind });
    }

    fn param(&self, name: &str) -> Option<&'a ir::Param> {
        self.exp.and_then(|e| e.space.get(name))
    }

    fn param_ty(&self, p: &ir::Param) -> Ty {
        match &p.kind {
            ParamKind::Free(d) => domain_ty(self.program, d),
            ParamKind::Const(v) => value_ty(v),
            ParamKind::Derived(_) => self.derived.get(&p.name).cloned().unwrap_or(Ty::Unknown),
        }
    }

    /// Every name a value could be, for "did you mean".
    fn value_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.locals.iter().map(|(n, _, _)| n.clone()).collect();
        if !self.constant_only
            && let Some(e) = self.exp
        {
            out.extend(e.space.params.iter().map(|p| p.name.clone()));
        }
        if self.metrics {
            out.extend(catalogue::METRICS.iter().map(|m| m.sig.name.to_string()));
        }
        out.extend(["pi", "e", "data"].iter().map(|s| s.to_string()));
        out
    }

    fn text(&self, span: Span) -> String {
        self.sources.map(|s| s.text(span).split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default()
    }

    fn space(&mut self, exp: &Experiment) {
        for p in &exp.space.params {
            for (i, g) in p.guard.iter().enumerate() {
                let outer: Vec<Fact> = p.guard[..i].iter().map(|x| Fact::Holds(x.clone(), true)).collect();
                let saved = std::mem::replace(&mut self.facts, outer);
                let t = self.expr(g);
                self.need(&t, g, Want::Bool);
                self.facts = saved;
            }
            if let ParamKind::Derived(e) = &p.kind {
                let saved =
                    std::mem::replace(&mut self.facts, p.guard.iter().map(|x| Fact::Holds(x.clone(), true)).collect());
                let t = self.expr(e);
                self.facts = saved;
                let t = match t {
                    Ty::Bare(n, s) => {
                        self.unknown_name(&n, s);
                        Ty::Unknown
                    }
                    t => t,
                };
                self.derived.insert(p.name.clone(), t);
            }
        }
        // `when` conditions mark their parameters used; a parameter only used there still counts.
    }
}

fn join(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (x, y) if x == y => x,
        (Ty::Int, Ty::Float) | (Ty::Float, Ty::Int) => Ty::Float,
        (Ty::Sym(mut x), Ty::Sym(y)) => {
            x.extend(y);
            Ty::Sym(x)
        }
        _ => Ty::Unknown,
    }
}

fn or_list(options: &[&str]) -> String {
    match options {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., last] => {
            format!("{} or `{last}`", init.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", "))
        }
    }
}

fn name_span(p: &ir::Param) -> Span {
    p.name_span
}

trait HelpDefault {
    fn with_help_default(self, help: &str) -> Self;
}

impl HelpDefault for Diagnostic {
    fn with_help_default(self, help: &str) -> Self {
        if self.help.is_none() { self.with_help(help) } else { self }
    }
}
