//! Names, types and guards: a walk over every expression of an experiment.
//!
//! Tracks what is in scope (parameters, `repeat` indices, block parameters,
//! named nodes) and which facts are known to hold (the arms of `match` and
//! `if`, the `when` around a declaration). A conditional parameter may only be
//! used where the facts imply its `when`; implication is decided by enumerating
//! the finite parameters involved, falling back to syntactic equality.

use std::collections::{BTreeMap, BTreeSet};

use crate::ast::{self, BinaryOp, ExprKind, NumberKind, PatternAlt, UnaryOp};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, DataInfo, Domain, Experiment, ParamKind, Program, Value};
use crate::source::{Sources, Span};

use super::MODEL_METRICS;

/// A static type.
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

/// What a position accepts.
#[derive(Debug, Clone, Copy)]
enum Want {
    Int,
    Number,
    Bool,
    Dur,
    Str,
    /// A metric name.
    Metric,
    /// One of these symbols.
    Syms(&'static [&'static str]),
    /// A list of parameter names.
    Params,
    /// A list of numbers.
    Numbers,
    /// A constructor from this table.
    Ctor(&'static [Ctor]),
    /// Anything.
    Any,
}

/// A constructor a setting accepts: `tpe(startup: 10)`.
#[derive(Debug, Clone, Copy)]
struct Ctor {
    name: &'static str,
    args: &'static [(&'static str, Want)],
    /// How many leading arguments are required.
    required: usize,
}

const fn c(name: &'static str, args: &'static [(&'static str, Want)], required: usize) -> Ctor {
    Ctor { name, args, required }
}

const OPTIMIZERS: &[Ctor] = &[
    c(
        "sgd",
        &[
            ("lr", Want::Number),
            ("momentum", Want::Number),
            ("nesterov", Want::Bool),
            ("weight_decay", Want::Number),
            ("bias_decay", Want::Number),
        ],
        0,
    ),
    c(
        "adam",
        &[("lr", Want::Number), ("betas", Want::Numbers), ("weight_decay", Want::Number), ("bias_decay", Want::Number)],
        0,
    ),
    c(
        "adamw",
        &[("lr", Want::Number), ("betas", Want::Numbers), ("weight_decay", Want::Number), ("bias_decay", Want::Number)],
        0,
    ),
];
const SCHEDULES: &[Ctor] = &[
    c("constant", &[], 0),
    c("cosine", &[("warmup", Want::Int)], 0),
    c("step", &[("every", Want::Int), ("gamma", Want::Number)], 0),
];
const LOSSES: &[Ctor] = &[
    c("cross_entropy", &[], 0),
    c("mse", &[], 0),
    c("mae", &[], 0),
    c("huber", &[("delta", Want::Number)], 0),
    c("bce", &[], 0),
];
const INITS: &[Ctor] = &[
    c("default", &[], 0),
    c("normal", &[("mean", Want::Number), ("std", Want::Number)], 0),
    c("uniform", &[("limit", Want::Number)], 0),
    c("xavier", &[], 0),
    c("kaiming", &[], 0),
];
const EARLY_STOP: &[Ctor] = &[c("patience", &[("n", Want::Int), ("on", Want::Metric)], 1), c("none", &[], 0)];
const STRATEGIES: &[Ctor] = &[
    c("grid", &[("limit", Want::Int)], 0),
    c("random", &[], 0),
    c("tpe", &[("startup", Want::Int)], 0),
    c("nsga2", &[("population", Want::Int)], 0),
    c("evolution", &[("population", Want::Int), ("sample", Want::Int)], 0),
    c("subspace", &[("by", Want::Params), ("samples", Want::Int), ("eta", Want::Int)], 1),
];
const PRUNERS: &[Ctor] = &[
    c("none", &[], 0),
    c("median", &[("warmup", Want::Int)], 0),
    c("asha", &[("min_epochs", Want::Int), ("eta", Want::Int)], 0),
    c("hyperband", &[("min_epochs", Want::Int), ("max_epochs", Want::Int), ("eta", Want::Int)], 0),
];
const WEIGHTS: &[Ctor] = &[
    c("uniform", &[], 0),
    c("softmax", &[("metric", Want::Metric), ("temperature", Want::Number)], 0),
    c("bayes", &[("n", Want::Number)], 0),
    c("greedy", &[("rounds", Want::Int)], 0),
];
const AVERAGES: &[Ctor] = &[
    c(
        "ensemble",
        &[("top", Want::Int), ("weights", Want::Ctor(WEIGHTS)), ("combine", Want::Syms(&["mean", "vote"]))],
        0,
    ),
    c("soup", &[("method", Want::Syms(&["uniform", "greedy"])), ("top", Want::Int)], 0),
    c("swa", &[("last", Want::Int)], 0),
];
const RANKS: &[Ctor] = &[c("pareto", &[], 0), c("lexicographic", &[], 0), c("weighted", &[], 0)];

const TRAIN_KEYS: [&str; 8] = ["optimizer", "schedule", "epochs", "batch", "loss", "early_stop", "init", "seed"];
const SEARCH_KEYS: [&str; 6] = ["strategy", "trials", "time", "parallel", "seed", "prune"];
const REPORT_KEYS: [&str; 3] = ["top", "out", "save"];

/// A condition known to hold where the walk is.
#[derive(Debug, Clone)]
enum Fact {
    /// `expr` evaluates to the bool.
    Holds(ast::Expr, bool),
    /// The parameter matches (or, `false`, matches none of) these patterns.
    Matches(String, Vec<PatternAlt>, bool),
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
}

pub(super) fn check_experiment(
    program: &Program,
    exp: &Experiment,
    sources: &Sources,
    _data: Option<&DataInfo>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeSet<String> {
    let mut w = Walker::new(program, Some(exp), Some(sources), diags);
    w.space(exp);
    if let Some(model) = &exp.model {
        w.body(model);
    }
    w.train(exp);
    w.objective(exp);
    w.search(exp);
    w.average(exp);
    w.report(exp);
    w.used
}

pub(super) fn check_block(program: &Program, block: &ast::Block, diags: &mut Vec<Diagnostic>) {
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
}

pub(super) fn check_fn(program: &Program, f: &ast::FnDef, diags: &mut Vec<Diagnostic>) {
    let mut w = Walker::new(program, None, None, diags);
    for p in &f.params {
        let ty = p.ty.map_or(Ty::Float, |(t, _)| type_of_name(t));
        w.locals.push((p.name.name.clone(), ty, p.name.span));
    }
    let t = w.expr(&f.body);
    w.need(&t, &f.body, Want::Any);
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
    ir::expand_layers().contains(&n) || program.blocks.contains_key(n)
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
        }
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
            out.extend(MODEL_METRICS.iter().map(|m| m.to_string()));
        }
        out.extend(["pi", "e", "data"].iter().map(|s| s.to_string()));
        out
    }

    // ------------------------------------------------------------ guards

    fn use_param(&mut self, p: &ir::Param, span: Span) {
        self.used.insert(p.name.clone());
        if self.constant_only {
            self.diags.push(
                Diagnostic::error(
                    Code::NonConstant,
                    format!("this setting cannot depend on the parameter `{}`", p.name),
                    span,
                    "a parameter",
                )
                .with_label(name_span(p), "declared here")
                .with_help("search and report settings are fixed for the whole study"),
            );
            return;
        }
        if p.guard.is_empty() || self.implied(&p.guard) {
            return;
        }
        let cond = p.guard.iter().map(|g| self.text(g.span)).collect::<Vec<_>>().join(" and ");
        let scrut = p.guard.iter().find_map(|g| match &g.kind {
            ExprKind::Binary(BinaryOp::Eq, a, b) => Some((self.text(a.span), self.text(b.span))),
            _ => None,
        });
        let help = match scrut {
            Some((a, b)) => format!(
                "use it inside `match {a} {{ {b} => ... }}` or `if {cond} {{ ... }}`, or declare it outside the `when`"
            ),
            None => format!("use it inside `if {cond} {{ ... }}`, or declare it outside the `when`"),
        };
        self.diags.push(
            Diagnostic::error(
                Code::ConditionalParam,
                format!("`{}` is used where it may not exist", p.name),
                span,
                format!("`{}` only exists when {cond}", p.name),
            )
            .with_label(name_span(p), format!("declared under `when {cond}`"))
            .with_help(help),
        );
    }

    fn text(&self, span: Span) -> String {
        self.sources.map(|s| s.text(span).split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default()
    }

    /// Whether the current facts imply every condition in `guard`.
    fn implied(&self, guard: &[ast::Expr]) -> bool {
        let Some(exp) = self.exp else { return true };
        let mut names = BTreeSet::new();
        for g in guard {
            ir::names_in(g, &mut names);
        }
        let guard_names = names.clone();
        for f in &self.facts {
            match f {
                Fact::Holds(e, _) => ir::names_in(e, &mut names),
                Fact::Matches(p, _, _) => {
                    names.insert(p.clone());
                }
            }
        }
        // Enumerate the finite parameters involved.
        let mut vars: Vec<(String, Vec<Value>)> = Vec::new();
        let mut finite = true;
        for n in &names {
            let Some(p) = exp.space.get(n) else { continue };
            match &p.kind {
                ParamKind::Free(d) => match d.values() {
                    Some(v) if v.len() <= 256 => vars.push((n.clone(), v)),
                    _ => {
                        if guard_names.contains(n) {
                            finite = false;
                        }
                    }
                },
                ParamKind::Const(v) => vars.push((n.clone(), vec![v.clone()])),
                ParamKind::Derived(_) => {
                    if guard_names.contains(n) {
                        finite = false;
                    }
                }
            }
        }
        let total: u128 = vars.iter().map(|(_, v)| v.len() as u128).product();
        if finite && total <= 50_000 {
            let mut idx = vec![0usize; vars.len()];
            loop {
                let point: ir::Point =
                    vars.iter().zip(&idx).map(|((n, vals), i)| (n.clone(), vals[*i].clone())).collect();
                let env = ir::PointEnv { point: &point, fns: &self.program.fns, data: None };
                let facts_hold = self.facts.iter().all(|f| match f {
                    Fact::Holds(e, truth) => matches!(ir::eval(e, &env), Ok(Value::Bool(b)) if b == *truth),
                    Fact::Matches(p, alts, positive) => match point.get(p) {
                        Some(v) => {
                            let pat = ast::Pattern { alts: alts.clone(), span: Span::default() };
                            ir::pattern_matches(&pat, v) == *positive
                        }
                        None => true,
                    },
                });
                if facts_hold {
                    let guard_holds = guard.iter().all(|g| matches!(ir::eval(g, &env), Ok(Value::Bool(true))));
                    if !guard_holds {
                        return false;
                    }
                }
                // Next assignment.
                let mut k = 0;
                loop {
                    if k == idx.len() {
                        return true;
                    }
                    idx[k] += 1;
                    if idx[k] < vars[k].1.len() {
                        break;
                    }
                    idx[k] = 0;
                    k += 1;
                }
            }
        }
        // Syntactic fallback: each condition is literally a fact.
        guard.iter().all(|g| {
            let t = self.text(g.span);
            self.facts.iter().any(|f| matches!(f, Fact::Holds(e, true) if self.text(e.span) == t))
        })
    }

    // ------------------------------------------------------------ expressions

    fn lookup(&mut self, name: &str, span: Span) -> Ty {
        if let Some((_, t, _)) = self.locals.iter().rev().find(|(n, _, _)| n == name) {
            return t.clone();
        }
        if let Some(p) = self.param(name) {
            self.use_param(p, span);
            return self.param_ty(p);
        }
        if self.exp.is_some_and(|e| e.space.rejected.contains_key(name)) {
            return Ty::Unknown;
        }
        if self.metrics && MODEL_METRICS.contains(&name) {
            if self.exp.is_some_and(|e| e.model.is_none()) {
                self.diags.push(
                    Diagnostic::error(
                        Code::UnknownMetric,
                        format!("`{name}` is measured on a trained model"),
                        span,
                        "this experiment has no `model`",
                    )
                    .with_help("a function search optimises an expression of its parameters: `minimize f(x, y)`"),
                );
                return Ty::Unknown;
            }
            return Ty::Float;
        }
        match name {
            "pi" | "e" => Ty::Float,
            "data" => Ty::Data,
            _ => Ty::Bare(name.to_string(), span),
        }
    }

    fn expr(&mut self, e: &ast::Expr) -> Ty {
        match &e.kind {
            ExprKind::Number(v, NumberKind::Int) => {
                if v.abs() >= ir::MAX_INT {
                    self.diags.push(
                        Diagnostic::error(Code::InvalidValue, "this int is too large", e.span, "more than 9e15")
                            .with_help("ints are exact up to 9e15 (they pass through f64); write a float (`1e20`)"),
                    );
                }
                Ty::Int
            }
            ExprKind::Number(_, NumberKind::Float) => Ty::Float,
            ExprKind::Number(_, NumberKind::Duration) => Ty::Dur,
            ExprKind::Str(_) => Ty::Str,
            ExprKind::Bool(_) => Ty::Bool,
            ExprKind::Name(n) => self.lookup(n, e.span),
            ExprKind::List(items) => {
                for i in items {
                    self.expr(i);
                }
                Ty::List
            }
            ExprKind::Unary(UnaryOp::Neg, x) => {
                let t = self.expr(x);
                self.need(&t, x, Want::Number);
                if t == Ty::Int { Ty::Int } else { Ty::Float }
            }
            ExprKind::Unary(UnaryOp::Not, x) => {
                let t = self.expr(x);
                self.need(&t, x, Want::Bool);
                Ty::Bool
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b),
            ExprKind::Call(callee, args) => self.call(callee, args, e),
            ExprKind::Field(base, field) => {
                let t = self.expr(base);
                match (t, field.name.as_str()) {
                    (Ty::Data, "classes" | "features") => Ty::Int,
                    (Ty::Data, "shape") => Ty::List,
                    (Ty::Data, other) => {
                        self.diags.push(
                            Diagnostic::error(
                                Code::UnknownName,
                                format!("`data` has no field `{other}`"),
                                field.span,
                                "unknown field",
                            )
                            .suggest(other, ["classes", "features", "shape"]),
                        );
                        Ty::Unknown
                    }
                    (Ty::Bare(n, s), f) => Ty::Bare(format!("{n}.{f}"), s.to(field.span)),
                    (t, f) => {
                        self.diags.push(Diagnostic::error(
                            Code::TypeMismatch,
                            format!("{} has no field `{f}`", t.describe()),
                            field.span,
                            "no such field",
                        ));
                        Ty::Unknown
                    }
                }
            }
            ExprKind::If(cond, a, b) => {
                let t = self.expr(cond);
                self.need(&t, cond, Want::Bool);
                self.facts.push(Fact::Holds((**cond).clone(), true));
                let ta = self.expr(a);
                self.facts.pop();
                self.facts.push(Fact::Holds((**cond).clone(), false));
                let tb = self.expr(b);
                self.facts.pop();
                join(ta, tb)
            }
            ExprKind::Match(s, arms) => {
                let st = self.expr(s);
                let mut out: Option<Ty> = None;
                let pats: Vec<&ast::Pattern> = arms.iter().map(|a| &a.pattern).collect();
                self.patterns(s, &st, &pats, e.span);
                let mut previous: Vec<PatternAlt> = Vec::new();
                for arm in arms {
                    let n = self.arm_facts(s, &arm.pattern, &previous);
                    let t = self.expr(&arm.value);
                    self.facts.truncate(self.facts.len() - n);
                    previous.extend(arm.pattern.alts.iter().cloned());
                    out = Some(match out {
                        None => t,
                        Some(o) => join(o, t),
                    });
                }
                out.unwrap_or(Ty::Unknown)
            }
        }
    }

    /// Pushes the facts an arm establishes; returns how many.
    fn arm_facts(&mut self, scrutinee: &ast::Expr, pattern: &ast::Pattern, previous: &[PatternAlt]) -> usize {
        let Some(name) = scrutinee.as_name().filter(|n| self.param(n).is_some()) else { return 0 };
        let wildcard = pattern.alts.iter().any(|a| matches!(a, PatternAlt::Wildcard(_)));
        if wildcard {
            if previous.is_empty() {
                return 0;
            }
            self.facts.push(Fact::Matches(name.to_string(), previous.to_vec(), false));
        } else {
            self.facts.push(Fact::Matches(name.to_string(), pattern.alts.clone(), true));
        }
        1
    }

    /// Checks a match's patterns against the scrutinee's values, and exhaustiveness.
    fn patterns(&mut self, scrutinee: &ast::Expr, st: &Ty, pats: &[&ast::Pattern], span: Span) {
        let domain = scrutinee.as_name().and_then(|n| self.param(n)).and_then(|p| match &p.kind {
            ParamKind::Free(Domain::Choice(v)) => Some(v.clone()),
            ParamKind::Free(d @ Domain::Int { .. }) if d.cardinality().is_some_and(|c| c <= 64) => d.values(),
            _ => None,
        });
        if let Ty::Bare(n, s) = st {
            self.unknown_name(n, *s);
            return;
        }
        let Some(values) = domain else { return };
        let shown: Vec<String> =
            values.iter().map(|v| v.head().map_or_else(|| v.to_string(), str::to_string)).collect();
        let mut wildcard = false;
        for pat in pats {
            for alt in &pat.alts {
                let ok = match alt {
                    PatternAlt::Wildcard(_) => {
                        wildcard = true;
                        true
                    }
                    PatternAlt::Name(i) => values.iter().any(|v| v.head() == Some(i.name.as_str())),
                    PatternAlt::Number(x, _) => values.iter().any(|v| v.as_f64() == Some(*x)),
                    PatternAlt::Str(s, _) => values.iter().any(|v| matches!(v, Value::Str(t) if t == s)),
                    PatternAlt::Bool(b, _) => values.iter().any(|v| v.as_bool() == Some(*b)),
                };
                if !ok {
                    let pname = scrutinee.as_name().unwrap_or("");
                    let txt = self.text(alt.span());
                    let mut d = Diagnostic::error(
                        Code::UnknownValue,
                        format!("`{pname}` never takes the value `{txt}`"),
                        alt.span(),
                        format!("not one of {}", shown.join(", ")),
                    );
                    if let Some(p) = self.param(pname) {
                        d = d.with_label(name_span(p), "its values are declared here");
                    }
                    self.diags.push(d.suggest(&txt, shown.iter().map(String::as_str)));
                }
            }
        }
        if !wildcard {
            let missing: Vec<&String> = shown
                .iter()
                .zip(&values)
                .filter(|(_, v)| !pats.iter().any(|p| ir::pattern_matches(p, v)))
                .map(|(s, _)| s)
                .collect();
            if !missing.is_empty() {
                let pname = scrutinee.as_name().unwrap_or("");
                self.diags.push(
                    Diagnostic::error(
                        Code::NonExhaustiveMatch,
                        format!("this match does not cover every value of `{pname}`"),
                        span,
                        format!("missing {}", missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")),
                    )
                    .with_help("add an arm for each missing value, or a `_ => ...` arm"),
                );
            }
        }
    }

    fn binary(&mut self, op: BinaryOp, a: &ast::Expr, b: &ast::Expr) -> Ty {
        let ta = self.expr(a);
        let tb = self.expr(b);
        match op {
            BinaryOp::And | BinaryOp::Or => {
                self.need(&ta, a, Want::Bool);
                self.need(&tb, b, Want::Bool);
                Ty::Bool
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                self.compare(&ta, a, &tb, b);
                Ty::Bool
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                self.need(&ta, a, Want::Number);
                self.need(&tb, b, Want::Number);
                Ty::Bool
            }
            _ => {
                if (ta == Ty::Dur || tb == Ty::Dur)
                    && matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div)
                {
                    return Ty::Dur;
                }
                self.need(&ta, a, Want::Number);
                self.need(&tb, b, Want::Number);
                match (op, &ta, &tb) {
                    (BinaryOp::Div, _, _) => Ty::Float,
                    (_, Ty::Int, Ty::Int) => Ty::Int,
                    _ if ta == Ty::Unknown || tb == Ty::Unknown => Ty::Unknown,
                    _ => Ty::Float,
                }
            }
        }
    }

    /// `kind == mlp`: a symbol compared with a parameter must be one of its values.
    fn compare(&mut self, ta: &Ty, a: &ast::Expr, tb: &Ty, b: &ast::Expr) {
        let check = |w: &mut Self, param: &ast::Expr, sym: &str, span: Span| {
            let Some(p) = param.as_name().and_then(|n| w.param(n)) else { return };
            let ParamKind::Free(Domain::Choice(values)) = &p.kind else {
                w.diags.push(
                    Diagnostic::error(
                        Code::UnknownName,
                        format!("unknown name `{sym}`"),
                        span,
                        "not declared anywhere",
                    )
                    .suggest(sym, w.value_names().iter().map(String::as_str)),
                );
                return;
            };
            if !values.iter().any(|v| v.head() == Some(sym)) {
                let shown: Vec<String> = values.iter().map(ToString::to_string).collect();
                w.diags.push(
                    Diagnostic::error(
                        Code::UnknownValue,
                        format!("`{}` never takes the value `{sym}`", p.name),
                        span,
                        format!("not one of {}", shown.join(", ")),
                    )
                    .with_label(name_span(p), "its values are declared here")
                    .suggest(sym, values.iter().filter_map(Value::head)),
                );
            }
        };
        match (ta, tb) {
            (Ty::Bare(n, s), Ty::Bare(..)) => self.unknown_name(n, *s),
            (_, Ty::Bare(n, s)) => check(self, a, n, *s),
            (Ty::Bare(n, s), _) => check(self, b, n, *s),
            _ => {}
        }
    }

    fn call(&mut self, callee: &ast::Expr, args: &[ast::Arg], whole: &ast::Expr) -> Ty {
        let name = ir::dotted(callee).unwrap_or_default();
        if let Some(f) = self.program.fns.get(&name) {
            if args.len() > f.params.len() {
                self.diags.push(Diagnostic::error(
                    Code::BadArguments,
                    format!("`{name}` takes {} arguments, found {}", f.params.len(), args.len()),
                    whole.span,
                    "too many arguments",
                ));
            }
            let mut positional = 0;
            for a in args {
                let t = self.expr(&a.value);
                let p = match &a.name {
                    Some(n) => match f.params.iter().find(|p| p.name.name == n.name) {
                        Some(p) => Some(p),
                        None => {
                            self.diags.push(
                                Diagnostic::error(
                                    Code::BadArguments,
                                    format!("`{name}` has no parameter `{}`", n.name),
                                    n.span,
                                    "unknown argument",
                                )
                                .suggest(&n.name, f.params.iter().map(|p| p.name.name.as_str())),
                            );
                            None
                        }
                    },
                    None => {
                        positional += 1;
                        f.params.get(positional - 1)
                    }
                };
                let want = p.and_then(|p| p.ty).map_or(Want::Number, |(t, _)| want_of_type(t));
                self.need(&t, &a.value, want);
            }
            for p in f.params.iter().skip(positional) {
                if p.default.is_none() && !args.iter().any(|a| a.name.as_ref().is_some_and(|n| n.name == p.name.name)) {
                    self.diags.push(
                        Diagnostic::error(
                            Code::BadArguments,
                            format!("`{name}` needs a value for `{}`", p.name.name),
                            whole.span,
                            format!("`{}` is missing", p.name.name),
                        )
                        .with_label(p.name.span, "declared here"),
                    );
                }
            }
            return f.ret.map_or(Ty::Float, |(t, _)| type_of_name(t));
        }
        let shadowed = self.locals.iter().any(|(n, _, _)| *n == name) || self.param(&name).is_some();
        if ir::BUILTINS.contains(&name.as_str()) && !shadowed {
            let mut all_int = true;
            for a in args {
                let t = self.expr(&a.value);
                self.need(&t, &a.value, Want::Number);
                all_int &= t == Ty::Int;
            }
            let arity_ok = if matches!(name.as_str(), "min" | "max") { !args.is_empty() } else { args.len() == 1 };
            if !arity_ok {
                self.diags.push(Diagnostic::error(
                    Code::BadArguments,
                    format!(
                        "`{name}` takes {}",
                        if matches!(name.as_str(), "min" | "max") { "one or more arguments" } else { "one argument" }
                    ),
                    whole.span,
                    format!("{} given", args.len()),
                ));
            }
            return match name.as_str() {
                "floor" | "ceil" | "round" => Ty::Int,
                "min" | "max" | "abs" if all_int => Ty::Int,
                _ => Ty::Float,
            };
        }
        // A constructor: its arguments may be symbols.
        for a in args {
            self.expr(&a.value);
        }
        Ty::Call(name)
    }

    fn unknown_name(&mut self, name: &str, span: Span) {
        let candidates = self.value_names();
        // A misspelt use is still a use: no "never used" warning for what it meant.
        if let Some(meant) = crate::diagnostic::did_you_mean(name, candidates.iter().map(String::as_str)) {
            self.used.insert(meant.to_string());
        }
        self.diags.push(
            Diagnostic::error(Code::UnknownName, format!("unknown name `{name}`"), span, "not declared anywhere")
                .suggest(name, candidates.iter().map(String::as_str)),
        );
    }

    /// Reports when a value of type `got` cannot stand where `want` is needed.
    fn need(&mut self, got: &Ty, e: &ast::Expr, want: Want) {
        if let Ty::Bare(n, s) = got {
            match want {
                Want::Any | Want::Syms(_) | Want::Ctor(_) | Want::Metric => {}
                _ => {
                    self.unknown_name(n, *s);
                    return;
                }
            }
        }
        if let Ty::Call(n) = got
            && matches!(want, Want::Int | Want::Number | Want::Bool)
            && !self.program.fns.contains_key(n)
        {
            let mut names: Vec<&str> = self.program.fns.keys().map(String::as_str).collect();
            names.extend(ir::BUILTINS);
            let callee_span = match &e.kind {
                ExprKind::Call(c, _) => c.span,
                _ => e.span,
            };
            self.diags.push(
                Diagnostic::error(
                    Code::UnknownFunction,
                    format!("unknown function `{n}`"),
                    callee_span,
                    "no such function",
                )
                .suggest(n, names),
            );
            return;
        }
        let ok = match want {
            Want::Int => matches!(got, Ty::Int | Ty::Unknown),
            Want::Number => got.numeric(),
            Want::Bool => matches!(got, Ty::Bool | Ty::Unknown),
            Want::Dur => matches!(got, Ty::Dur | Ty::Unknown),
            Want::Str => matches!(got, Ty::Str | Ty::Unknown),
            _ => true,
        };
        if ok {
            return;
        }
        let wanted = match want {
            Want::Int => "an int",
            Want::Number => "a number",
            Want::Bool => "a bool",
            Want::Dur => "a duration (`30s`, `10min`)",
            Want::Str => "a string",
            _ => "another value",
        };
        let mut d = Diagnostic::error(
            Code::TypeMismatch,
            format!("expected {wanted}, found {}", got.describe()),
            e.span,
            format!("this is {}", got.describe()),
        );
        if let Some(p) = e.as_name().and_then(|n| self.param(n)) {
            d = d.with_label(name_span(p), format!("`{}` is declared here", p.name));
        }
        if matches!(want, Want::Int) && *got == Ty::Float {
            d = d.with_help("use `floor(x)` or `round(x)` to make an int, or declare the parameter `int`");
        }
        self.diags.push(d);
    }

    // ------------------------------------------------------------ space

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

    // ------------------------------------------------------------ model

    fn body(&mut self, body: &ast::Body) {
        let (locals, nodes) = (self.locals.len(), self.nodes.len());
        for s in &body.stmts {
            self.stmt(s);
        }
        self.locals.truncate(locals);
        self.nodes.truncate(nodes);
    }

    fn stmt(&mut self, s: &ast::Stmt) {
        match s {
            ast::Stmt::Chain(chain) => self.chain(chain),
            ast::Stmt::Let { name, chain, .. } => {
                self.chain(chain);
                if self.nodes.contains(&name.name) {
                    self.diags.push(Diagnostic::error(
                        Code::DuplicateName,
                        format!("node `{}` is named twice", name.name),
                        name.span,
                        "named again here",
                    ));
                }
                self.nodes.push(name.name.clone());
            }
            ast::Stmt::Repeat { var, from, count, body, .. } => {
                if let Some(f) = from {
                    let t = self.expr(f);
                    self.need(&t, f, Want::Int);
                }
                let t = self.expr(count);
                self.need(&t, count, Want::Int);
                let n = self.locals.len();
                if let Some(v) = var {
                    self.locals.push((v.name.clone(), Ty::Int, v.span));
                }
                self.body(body);
                self.locals.truncate(n);
            }
            ast::Stmt::Match { scrutinee, arms, span } => {
                let st = self.expr(scrutinee);
                let pats: Vec<&ast::Pattern> = arms.iter().map(|a| &a.pattern).collect();
                self.patterns(scrutinee, &st, &pats, *span);
                let mut previous = Vec::new();
                for arm in arms {
                    let n = self.arm_facts(scrutinee, &arm.pattern, &previous);
                    self.body(&arm.body);
                    self.facts.truncate(self.facts.len() - n);
                    previous.extend(arm.pattern.alts.iter().cloned());
                }
            }
            ast::Stmt::If { cond, then, otherwise, .. } => {
                let t = self.expr(cond);
                self.need(&t, cond, Want::Bool);
                self.facts.push(Fact::Holds(cond.clone(), true));
                self.body(then);
                self.facts.pop();
                if let Some(o) = otherwise {
                    self.facts.push(Fact::Holds(cond.clone(), false));
                    self.body(o);
                    self.facts.pop();
                }
            }
            ast::Stmt::Residual { body, .. } => self.body(body),
            ast::Stmt::Parallel { merge, branches, .. } => {
                if !matches!(merge.name.as_str(), "concat" | "add") {
                    self.diags.push(
                        Diagnostic::error(
                            Code::UnknownValue,
                            format!("`parallel` merges by `concat` or `add`, not `{}`", merge.name),
                            merge.span,
                            "unknown merge",
                        )
                        .suggest(&merge.name, ["concat", "add"]),
                    );
                }
                for b in branches {
                    self.body(b);
                }
            }
        }
    }

    fn chain(&mut self, chain: &ast::Chain) {
        for (i, link) in chain.links.iter().enumerate() {
            let name = &link.name.name;
            let is_local = self.locals.iter().any(|(n, _, _)| n == name);
            if link.args.is_none()
                && !is_local
                && (self.nodes.contains(name) || name == "input")
                && self.param(name).is_none()
            {
                if i > 0 {
                    self.diags.push(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            format!("`{name}` names a node; it can only start a chain"),
                            link.span,
                            "a node in the middle of a chain",
                        )
                        .with_help(format!("write `{name} -> ...` to continue from it")),
                    );
                }
                continue;
            }
            self.layer(link);
        }
    }

    fn layer(&mut self, call: &ast::Call) {
        let name = &call.name.name;
        // A parameter or local whose value is a layer.
        let local = self.locals.iter().rev().find(|(n, _, _)| n == name).map(|(_, t, s)| (t.clone(), *s));
        let param_ty = match local {
            Some((t, _)) => Some(t),
            None => self.param(name).map(|p| {
                self.use_param(p, call.name.span);
                self.param_ty(p)
            }),
        };
        if let Some(t) = param_ty {
            if call.args.is_some() {
                let mut d = Diagnostic::error(
                    Code::TypeMismatch,
                    format!("`{name}` is a parameter; it cannot take arguments"),
                    call.span,
                    "called here",
                );
                if is_layer_name(self.program, name) {
                    d = d.with_help(format!(
                        "the parameter `{name}` hides the layer `{name}`; rename the parameter (e.g. `{name}_rate`)"
                    ));
                }
                self.diags.push(d);
            } else if !matches!(t, Ty::Layer | Ty::Unknown | Ty::Sym(_)) {
                let mut d = Diagnostic::error(
                    Code::TypeMismatch,
                    format!("`{name}` is used as a layer, but it is {}", t.describe()),
                    call.span,
                    "not a layer",
                );
                if let Some(p) = self.param(name) {
                    d = d.with_label(name_span(p), "declared here");
                }
                self.diags
                    .push(d.with_help("a parameter is a layer when its values are layers: `act: in {relu, gelu}`"));
            } else if let Ty::Sym(values) = &t
                && let Some(bad) = values.iter().find(|v| !is_layer_name(self.program, v))
            {
                self.diags.push(Diagnostic::error(
                    Code::TypeMismatch,
                    format!("`{name}` is used as a layer, but `{bad}` is not a layer"),
                    call.span,
                    "not a layer",
                ));
            }
            return;
        }
        if self.exp.is_some_and(|e| e.space.rejected.contains_key(name)) {
            return;
        }
        if matches!(name.as_str(), "add" | "concat") {
            let args = call.args.as_deref().unwrap_or(&[]);
            if args.len() < 2 {
                self.diags.push(Diagnostic::error(
                    Code::BadArguments,
                    format!("`{name}` needs at least two nodes"),
                    call.span,
                    "too few nodes",
                ));
            }
            for a in args {
                match a.value.as_name() {
                    Some(n) if self.nodes.iter().any(|x| x == n) || n == "input" => {}
                    _ => self.diags.push(
                        Diagnostic::error(
                            Code::UnknownName,
                            format!("`{name}` merges nodes named with `let`"),
                            a.value.span,
                            "not a named node",
                        )
                        .suggest(a.value.as_name().unwrap_or(""), self.nodes.iter().map(String::as_str)),
                    ),
                }
            }
            return;
        }
        if let Some(block) = self.program.blocks.get(name) {
            self.block_args(block, call);
            return;
        }
        if name == "reshape" {
            for a in call.args.iter().flatten() {
                let t = self.expr(&a.value);
                if t != Ty::List {
                    self.need(&t, &a.value, Want::Int);
                }
            }
            return;
        }
        match ir::layer_signature(name) {
            Some(sig) => self.layer_args(name, sig, call),
            None => {
                let mut candidates: Vec<&str> = ir::expand_layers().to_vec();
                candidates.extend(self.program.blocks.keys().map(String::as_str));
                candidates.extend(self.nodes.iter().map(String::as_str));
                let more: Vec<String> =
                    self.exp.map(|e| e.space.params.iter().map(|p| p.name.clone()).collect()).unwrap_or_default();
                candidates.extend(more.iter().map(String::as_str));
                self.diags.push(
                    Diagnostic::error(
                        Code::UnknownLayer,
                        format!("unknown layer `{name}`"),
                        call.name.span,
                        "no layer, block or node has this name",
                    )
                    .suggest(name, candidates)
                    .with_help_default("blocks must be defined in this file or imported with `use`"),
                );
                for a in call.args.iter().flatten() {
                    self.expr(&a.value);
                }
            }
        }
    }

    fn layer_args(&mut self, name: &str, sig: &[(&str, Option<&str>)], call: &ast::Call) {
        let args = call.args.as_deref().unwrap_or(&[]);
        let mut positional = 0usize;
        let mut given: Vec<&str> = Vec::new();
        for a in args {
            let t = self.expr(&a.value);
            let key = match &a.name {
                Some(n) => {
                    if !sig.iter().any(|(k, _)| *k == n.name) {
                        let help = if sig.is_empty() {
                            format!("`{name}` takes no arguments")
                        } else {
                            format!(
                                "`{name}` takes {}",
                                sig.iter().map(|(k, _)| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                            )
                        };
                        self.diags.push(
                            Diagnostic::error(
                                Code::BadArguments,
                                format!("`{name}` has no argument `{}`", n.name),
                                n.span,
                                "unknown argument",
                            )
                            .suggest(&n.name, sig.iter().map(|(k, _)| *k))
                            .with_help_default(&help),
                        );
                        continue;
                    }
                    n.name.as_str()
                }
                None => {
                    positional += 1;
                    match sig.get(positional - 1) {
                        Some((k, _)) => k,
                        None => {
                            self.diags.push(Diagnostic::error(
                                Code::BadArguments,
                                format!(
                                    "`{name}` takes at most {} argument{}",
                                    sig.len(),
                                    if sig.len() == 1 { "" } else { "s" }
                                ),
                                a.span,
                                "one too many",
                            ));
                            continue;
                        }
                    }
                }
            };
            given.push(key);
            let want = match key {
                "units" | "filters" | "kernel" | "stride" => Want::Int,
                "p" | "a" => Want::Number,
                "padding" => Want::Syms(&["same", "valid"]),
                _ => Want::Any,
            };
            if let (Want::Syms(options), Ty::Bare(v, s)) = (want, &t) {
                if !options.contains(&v.as_str()) {
                    self.diags.push(
                        Diagnostic::error(
                            Code::UnknownValue,
                            format!("`{key}` is {}, not `{v}`", or_list(options)),
                            *s,
                            "unknown value",
                        )
                        .suggest(v, options.iter().copied()),
                    );
                }
                continue;
            }
            self.need(&t, &a.value, want);
        }
        for (k, default) in sig {
            if default.is_none() && !given.contains(k) {
                self.diags.push(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("`{name}` needs `{k}`"),
                        call.span,
                        format!("`{k}` is missing"),
                    )
                    .with_help(format!("for example `{name}({})`", example_arg(k))),
                );
            }
        }
    }

    fn block_args(&mut self, block: &ast::Block, call: &ast::Call) {
        let args = call.args.as_deref().unwrap_or(&[]);
        let mut positional = 0usize;
        let mut given: Vec<&str> = Vec::new();
        for a in args {
            let t = self.expr(&a.value);
            let p = match &a.name {
                Some(n) => match block.params.iter().find(|p| p.name.name == n.name) {
                    Some(p) => p,
                    None => {
                        self.diags.push(
                            Diagnostic::error(
                                Code::BadArguments,
                                format!("block `{}` has no parameter `{}`", block.name.name, n.name),
                                n.span,
                                "unknown argument",
                            )
                            .with_label(block.name.span, "block defined here")
                            .suggest(&n.name, block.params.iter().map(|p| p.name.name.as_str())),
                        );
                        continue;
                    }
                },
                None => {
                    positional += 1;
                    match block.params.get(positional - 1) {
                        Some(p) => p,
                        None => {
                            self.diags.push(
                                Diagnostic::error(
                                    Code::BadArguments,
                                    format!("block `{}` takes {} arguments", block.name.name, block.params.len()),
                                    a.span,
                                    "one too many",
                                )
                                .with_label(block.name.span, "block defined here"),
                            );
                            continue;
                        }
                    }
                }
            };
            given.push(&p.name.name);
            let want = match (p.ty, &p.default) {
                (Some((ast::TypeName::Layer, _)), _) => {
                    self.need_layer(&t, &a.value);
                    continue;
                }
                (Some((t, _)), _) => want_of_type(t),
                (None, Some(d)) => match &d.kind {
                    ExprKind::Number(_, NumberKind::Int) => Want::Int,
                    ExprKind::Number(..) => Want::Number,
                    ExprKind::Bool(_) => Want::Bool,
                    ExprKind::Name(n) if is_layer_name(self.program, n) => {
                        self.need_layer(&t, &a.value);
                        continue;
                    }
                    _ => Want::Any,
                },
                (None, None) => Want::Any,
            };
            self.need(&t, &a.value, want);
        }
        for p in &block.params {
            if p.default.is_none() && !given.contains(&p.name.name.as_str()) {
                self.diags.push(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("block `{}` needs a value for `{}`", block.name.name, p.name.name),
                        call.span,
                        format!("`{}` is missing", p.name.name),
                    )
                    .with_label(p.name.span, "declared here"),
                );
            }
        }
    }

    fn need_layer(&mut self, t: &Ty, e: &ast::Expr) {
        match t {
            Ty::Bare(n, s) if !is_layer_name(self.program, n) => {
                let mut cands: Vec<&str> = ir::expand_layers().to_vec();
                cands.extend(self.program.blocks.keys().map(String::as_str));
                self.diags.push(
                    Diagnostic::error(Code::UnknownLayer, format!("unknown layer `{n}`"), *s, "not a layer")
                        .suggest(n, cands),
                );
            }
            Ty::Call(n) if !is_layer_name(self.program, n) => {
                self.diags.push(
                    Diagnostic::error(Code::UnknownLayer, format!("unknown layer `{n}`"), e.span, "not a layer")
                        .suggest(n, ir::expand_layers().iter().copied()),
                );
            }
            Ty::Int | Ty::Float | Ty::Bool | Ty::Str | Ty::Dur | Ty::List | Ty::Data => {
                self.diags.push(Diagnostic::error(
                    Code::TypeMismatch,
                    format!("expected a layer, found {}", t.describe()),
                    e.span,
                    "not a layer",
                ));
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------ settings

    fn settings(
        &mut self,
        settings: &[ir::Setting],
        section: &str,
        keys: &[&str],
        f: &mut dyn FnMut(&mut Self, &ir::Setting),
    ) {
        for s in settings {
            if keys.contains(&s.key.as_str()) {
                f(self, s);
            } else {
                self.diags.push(
                    Diagnostic::error(
                        Code::UnknownSetting,
                        format!("`{section}` has no setting `{}`", s.key),
                        s.key_span,
                        "unknown setting",
                    )
                    .suggest(&s.key, keys.iter().copied())
                    .with_help_default(&format!(
                        "`{section}` takes {}",
                        keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    )),
                );
            }
        }
    }

    fn train(&mut self, exp: &Experiment) {
        if exp.model.is_none() && !exp.train.is_empty() {
            let span = exp.sections.get("train").copied().unwrap_or(exp.name_span);
            self.diags.push(Diagnostic::warning(
                Code::UnknownSetting,
                "`train` has no effect without a `model`",
                span,
                "nothing is trained",
            ));
        }
        self.settings(&exp.train, "train", &TRAIN_KEYS, &mut |w, s| {
            let want = match s.key.as_str() {
                "optimizer" => Want::Ctor(OPTIMIZERS),
                "schedule" => Want::Ctor(SCHEDULES),
                "loss" => Want::Ctor(LOSSES),
                "init" => Want::Ctor(INITS),
                "early_stop" => Want::Ctor(EARLY_STOP),
                _ => Want::Int,
            };
            w.value(&s.value, want, &s.key);
            if matches!(s.key.as_str(), "epochs" | "batch") {
                w.positive_constant(&s.value, &s.key);
            }
        });
    }

    fn search(&mut self, exp: &Experiment) {
        self.constant_only = true;
        self.settings(&exp.search, "search", &SEARCH_KEYS, &mut |w, s| {
            let want = match s.key.as_str() {
                "strategy" => Want::Ctor(STRATEGIES),
                "prune" => Want::Ctor(PRUNERS),
                "time" => Want::Dur,
                _ => Want::Int,
            };
            w.value(&s.value, want, &s.key);
            if matches!(s.key.as_str(), "trials" | "parallel") {
                w.positive_constant(&s.value, &s.key);
            }
            if s.key == "parallel"
                && let Ok(Value::Int(i)) = ir::eval(&s.value, &BTreeMap::new())
                && i > crate::limits::MAX_PARALLEL as i64
            {
                w.diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`parallel` must be at most {}", crate::limits::MAX_PARALLEL),
                        s.value.span,
                        format!("`parallel` is {i}"),
                    )
                    .with_help("each trial at once is a thread; beyond the machine's cores they only share the cores"),
                );
            }
        });
        self.constant_only = false;
    }

    fn report(&mut self, exp: &Experiment) {
        self.constant_only = true;
        self.settings(&exp.report, "report", &REPORT_KEYS, &mut |w, s| {
            let want = match s.key.as_str() {
                "out" => Want::Str,
                "save" => Want::Syms(&["best", "final", "none"]),
                _ => Want::Int,
            };
            w.value(&s.value, want, &s.key);
        });
        self.constant_only = false;
    }

    fn positive_constant(&mut self, e: &ast::Expr, key: &str) {
        if let Ok(Value::Int(i)) = ir::eval(e, &BTreeMap::new())
            && i < 1
        {
            self.diags.push(Diagnostic::error(
                Code::InvalidValue,
                format!("`{key}` must be at least 1"),
                e.span,
                format!("`{key}` is {i}"),
            ));
        }
    }

    fn objective(&mut self, exp: &Experiment) {
        self.metrics = true;
        for o in &exp.objectives {
            self.metric_expr(&o.metric, exp);
            if let Some(split) = &o.split {
                let span = o.span;
                match split.as_str() {
                    "valid" | "train" => {}
                    "test" => self.diags.push(
                        Diagnostic::error(Code::InvalidValue, "the search never sees the test split", span, "`on test` here")
                            .with_help("objectives are measured on `valid` (default) or `train`; the final model is evaluated on test once"),
                    ),
                    other => self.diags.push(
                        Diagnostic::error(Code::UnknownValue, format!("unknown split `{other}`"), span, "not a split").suggest(other, ["valid", "train"]),
                    ),
                }
            }
        }
        for c in &exp.constraints {
            self.metric_expr(&c.lhs, exp);
            let t = self.expr(&c.bound);
            // Times may be bounded by a duration (`require latency < 2ms`, in seconds).
            let timed = matches!(c.lhs.as_name(), Some("latency" | "train_time"));
            if !(timed && t == Ty::Dur) {
                self.need(&t, &c.bound, Want::Number);
            }
        }
        if let Some(rank) = &exp.rank {
            match &rank.value.kind {
                ExprKind::Call(callee, args) if callee.as_name() == Some("weighted") => {
                    let names: Vec<String> = exp.objectives.iter().map(|o| o.name.clone()).collect();
                    for a in args {
                        match &a.name {
                            Some(n) if names.contains(&n.name) => {}
                            Some(n) => self.diags.push(
                                Diagnostic::error(
                                    Code::UnknownMetric,
                                    format!("`{}` is not an objective of this experiment", n.name),
                                    n.span,
                                    "not an objective",
                                )
                                .suggest(&n.name, names.iter().map(String::as_str)),
                            ),
                            None => self.diags.push(Diagnostic::error(
                                Code::BadArguments,
                                "`weighted` takes `objective: weight` pairs",
                                a.span,
                                "no objective named",
                            )),
                        }
                        let t = self.expr(&a.value);
                        self.need(&t, &a.value, Want::Number);
                    }
                }
                _ => self.value(&rank.value, Want::Ctor(RANKS), "rank"),
            }
        }
        self.metrics = false;
    }

    fn metric_expr(&mut self, e: &ast::Expr, exp: &Experiment) {
        let t = self.expr(e);
        match &t {
            Ty::Bare(n, s) => {
                let mut cands: Vec<&str> = if exp.model.is_some() { MODEL_METRICS.to_vec() } else { Vec::new() };
                cands.extend(exp.space.params.iter().map(|p| p.name.as_str()));
                self.diags.push(
                    Diagnostic::error(
                        Code::UnknownMetric,
                        format!("unknown metric `{n}`"),
                        *s,
                        "not a metric or parameter",
                    )
                    .suggest(n, cands)
                    .with_help_default(&format!("the metrics are {}", MODEL_METRICS.join(", "))),
                );
            }
            _ => self.need(&t, e, Want::Number),
        }
    }

    fn average(&mut self, exp: &Experiment) {
        for e in &exp.average {
            self.metrics = true;
            self.value(e, Want::Ctor(AVERAGES), "average");
            self.metrics = false;
            let head = match &e.kind {
                ExprKind::Call(c, _) => c.as_name(),
                ExprKind::Name(n) => Some(n.as_str()),
                _ => None,
            };
            if exp.model.is_none() && head.is_some() {
                self.diags.push(
                    Diagnostic::error(
                        Code::BadAverage,
                        "averaging combines trained models, and this experiment has no `model`",
                        e.span,
                        "nothing to average",
                    )
                    .with_help("remove the `average` section, or add a `model`"),
                );
            }
            if let ExprKind::Call(_, args) = &e.kind {
                let top = args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == "top" || n.name == "last"));
                let trials = exp
                    .search_setting("trials")
                    .and_then(|s| ir::eval(&s.value, &BTreeMap::new()).ok())
                    .and_then(|v| v.as_i64());
                if let (Some(top), Some(trials)) = (top, trials)
                    && let Ok(Value::Int(k)) = ir::eval(&top.value, &BTreeMap::new())
                {
                    let is_top = top.name.as_ref().is_some_and(|n| n.name == "top");
                    if is_top && k > trials {
                        let trials_span = exp.search_setting("trials").map_or(exp.name_span, |s| s.value.span);
                        self.diags.push(
                            Diagnostic::error(
                                Code::BadAverage,
                                format!("`top: {k}` asks for more models than the {trials} trials make"),
                                top.value.span,
                                format!("{k} > {trials}"),
                            )
                            .with_label(trials_span, "the study runs this many trials"),
                        );
                    } else if k < 1 {
                        self.diags.push(Diagnostic::error(
                            Code::BadAverage,
                            "averaging needs at least one model",
                            top.value.span,
                            format!("{k}"),
                        ));
                    }
                }
            }
        }
    }

    /// Checks a setting's value: a constructor from a table (through `match`/`if`), or a plain type.
    fn value(&mut self, e: &ast::Expr, want: Want, what: &str) {
        match &e.kind {
            ExprKind::Match(s, arms) => {
                let st = self.expr(s);
                let pats: Vec<&ast::Pattern> = arms.iter().map(|a| &a.pattern).collect();
                self.patterns(s, &st, &pats, e.span);
                let mut previous = Vec::new();
                for arm in arms {
                    let n = self.arm_facts(s, &arm.pattern, &previous);
                    self.value(&arm.value, want, what);
                    self.facts.truncate(self.facts.len() - n);
                    previous.extend(arm.pattern.alts.iter().cloned());
                }
                return;
            }
            ExprKind::If(cond, a, b) => {
                let t = self.expr(cond);
                self.need(&t, cond, Want::Bool);
                self.facts.push(Fact::Holds((**cond).clone(), true));
                self.value(a, want, what);
                self.facts.pop();
                self.facts.push(Fact::Holds((**cond).clone(), false));
                self.value(b, want, what);
                self.facts.pop();
                return;
            }
            _ => {}
        }
        match want {
            Want::Ctor(table) => self.ctor(e, table, what),
            Want::Syms(options) => match &e.kind {
                ExprKind::Name(n) if options.contains(&n.as_str()) => {}
                _ => {
                    let t = self.expr(e);
                    if let Ty::Bare(n, s) = &t {
                        self.diags.push(
                            Diagnostic::error(
                                Code::UnknownValue,
                                format!("`{what}` is {}, not `{n}`", or_list(options)),
                                *s,
                                "unknown value",
                            )
                            .suggest(n, options.iter().copied()),
                        );
                    } else if !matches!(t, Ty::Unknown | Ty::Sym(_)) {
                        self.diags.push(Diagnostic::error(
                            Code::TypeMismatch,
                            format!("`{what}` is {}", or_list(options)),
                            e.span,
                            format!("this is {}", t.describe()),
                        ));
                    }
                }
            },
            Want::Metric => {
                let name = e.as_name().unwrap_or("");
                let objectives: Vec<String> =
                    self.exp.map(|x| x.objectives.iter().map(|o| o.name.clone()).collect()).unwrap_or_default();
                if !(MODEL_METRICS.contains(&name) || objectives.iter().any(|o| o == name)) {
                    let mut cands: Vec<&str> = MODEL_METRICS.to_vec();
                    cands.extend(objectives.iter().map(String::as_str));
                    self.diags.push(
                        Diagnostic::error(
                            Code::UnknownMetric,
                            format!("unknown metric `{}`", self.text(e.span)),
                            e.span,
                            "not a metric",
                        )
                        .suggest(name, cands),
                    );
                }
            }
            Want::Params => match &e.kind {
                ExprKind::List(items) => {
                    for i in items {
                        match i.as_name().and_then(|n| self.param(n)) {
                            Some(p) => {
                                self.used.insert(p.name.clone());
                                let discrete = matches!(&p.kind, ParamKind::Free(d) if d.cardinality().is_some());
                                if !discrete {
                                    self.diags.push(
                                        Diagnostic::error(
                                            Code::TypeMismatch,
                                            format!("`{}` cannot partition the space", p.name),
                                            i.span,
                                            "not a discrete parameter",
                                        )
                                        .with_label(name_span(p), "declared here")
                                        .with_help("`subspace(by: ...)` names parameters with finitely many values"),
                                    );
                                }
                            }
                            None => {
                                let names: Vec<String> = self
                                    .exp
                                    .map(|x| x.space.params.iter().map(|p| p.name.clone()).collect())
                                    .unwrap_or_default();
                                let n = self.text(i.span);
                                self.diags.push(
                                    Diagnostic::error(
                                        Code::UnknownName,
                                        format!("unknown parameter `{n}`"),
                                        i.span,
                                        "not a parameter of the space",
                                    )
                                    .suggest(&n, names.iter().map(String::as_str)),
                                );
                            }
                        }
                    }
                }
                _ => self.diags.push(
                    Diagnostic::error(Code::TypeMismatch, "expected a list of parameters", e.span, "not a list")
                        .with_help("for example `by: [kind, depth]`"),
                ),
            },
            Want::Numbers => {
                let t = self.expr(e);
                if !matches!(t, Ty::List | Ty::Unknown) {
                    self.diags.push(Diagnostic::error(
                        Code::TypeMismatch,
                        format!("expected a list of numbers, found {}", t.describe()),
                        e.span,
                        "not a list",
                    ));
                }
            }
            _ => {
                let t = self.expr(e);
                self.need(&t, e, want);
            }
        }
    }

    fn ctor(&mut self, e: &ast::Expr, table: &[Ctor], what: &str) {
        let (name, callee_span, args) = match &e.kind {
            ExprKind::Name(n) => (n.clone(), e.span, None),
            ExprKind::Call(callee, args) => (ir::dotted(callee).unwrap_or_default(), callee.span, Some(args)),
            _ => {
                let t = self.expr(e);
                if !matches!(t, Ty::Unknown) {
                    let options: Vec<&str> = table.iter().map(|c| c.name).collect();
                    self.diags.push(Diagnostic::error(
                        Code::TypeMismatch,
                        format!("`{what}` is {}", or_list(&options)),
                        e.span,
                        format!("this is {}", t.describe()),
                    ));
                }
                return;
            }
        };
        // A parameter whose values are the constructors (`optimizer = opt`).
        if args.is_none()
            && let Some(p) = self.param(&name)
        {
            self.use_param(p, e.span);
            if let ParamKind::Free(Domain::Choice(values)) = &p.kind {
                for v in values {
                    if let Some(h) = v.head()
                        && !table.iter().any(|c| c.name == h)
                    {
                        self.diags.push(
                            Diagnostic::error(
                                Code::UnknownValue,
                                format!("`{}` can be `{h}`, which is not a {what}", p.name),
                                e.span,
                                format!("`{h}` is not a {what}"),
                            )
                            .with_label(name_span(p), "its values are declared here"),
                        );
                    }
                }
            }
            return;
        }
        let Some(ctor) = table.iter().find(|c| c.name == name) else {
            let options: Vec<&str> = table.iter().map(|c| c.name).collect();
            self.diags.push(
                Diagnostic::error(
                    Code::UnknownValue,
                    format!("unknown {what} `{name}`"),
                    callee_span,
                    format!("not a {what}"),
                )
                .suggest(&name, options.iter().copied())
                .with_help_default(&format!("`{what}` is {}", or_list(&options))),
            );
            if let Some(args) = args {
                for a in args {
                    self.expr(&a.value);
                }
            }
            return;
        };
        let args = args.map(Vec::as_slice).unwrap_or(&[]);
        let mut positional = 0usize;
        let mut given: Vec<&str> = Vec::new();
        for a in args {
            let slot = match &a.name {
                Some(n) => match ctor.args.iter().find(|(k, _)| *k == n.name) {
                    Some(s) => *s,
                    None => {
                        let help = if ctor.args.is_empty() {
                            format!("`{}` takes no arguments", ctor.name)
                        } else {
                            format!(
                                "`{}` takes {}",
                                ctor.name,
                                ctor.args.iter().map(|(k, _)| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                            )
                        };
                        self.diags.push(
                            Diagnostic::error(
                                Code::BadArguments,
                                format!("`{}` has no argument `{}`", ctor.name, n.name),
                                n.span,
                                "unknown argument",
                            )
                            .suggest(&n.name, ctor.args.iter().map(|(k, _)| *k))
                            .with_help_default(&help),
                        );
                        self.expr(&a.value);
                        continue;
                    }
                },
                None => {
                    positional += 1;
                    match ctor.args.get(positional - 1) {
                        Some(s) => *s,
                        None => {
                            self.diags.push(Diagnostic::error(
                                Code::BadArguments,
                                format!(
                                    "`{}` takes at most {} positional argument{}",
                                    ctor.name,
                                    ctor.args.len(),
                                    if ctor.args.len() == 1 { "" } else { "s" }
                                ),
                                a.span,
                                "one too many",
                            ));
                            self.expr(&a.value);
                            continue;
                        }
                    }
                }
            };
            given.push(slot.0);
            self.value(&a.value, slot.1, slot.0);
        }
        for (k, _) in ctor.args.iter().take(ctor.required) {
            if !given.contains(k) {
                self.diags.push(Diagnostic::error(
                    Code::BadArguments,
                    format!("`{}` needs `{k}`", ctor.name),
                    e.span,
                    format!("`{k}` is missing"),
                ));
            }
        }
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

fn example_arg(k: &str) -> &'static str {
    match k {
        "units" => "64",
        "filters" => "16",
        "p" => "0.2",
        _ => "...",
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
