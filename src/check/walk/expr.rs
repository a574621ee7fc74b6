//! The expression walk: names in scope, static types, calls of functions and
//! builtins, operators, and the patterns of `match` against its scrutinee's values.

use super::facts::Fact;
use super::{Ty, Walker, Want, join, name_span, type_of_name, want_of_type};
use crate::ast::{self, BinaryOp, ExprKind, NumberKind, PatternAlt, UnaryOp};
use crate::catalogue;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Domain, ParamKind, Value};
use crate::source::Span;

impl Walker<'_> {
    pub(super) fn lookup(&mut self, name: &str, span: Span) -> Ty {
        if let Some((_, t, def)) = self.locals.iter().rev().find(|(n, _, _)| n == name) {
            let (t, def) = (t.clone(), *def);
            self.resolve(span, def, super::Resolved::Local);
            return t;
        }
        if let Some(p) = self.param(name) {
            self.resolve(span, p.name_span, super::Resolved::Param);
            self.use_param(p, span);
            return self.param_ty(p);
        }
        if self.exp.is_some_and(|e| e.space.rejected.contains_key(name)) {
            return Ty::Unknown;
        }
        if self.metrics
            && let Some(trial) = self.exp.and_then(|e| e.trial.as_ref())
        {
            // A command experiment's metrics are those its program reports, and only those.
            let reports = trial.reports();
            if reports.iter().any(|(n, _)| n == name) {
                return Ty::Float;
            }
            if catalogue::find(catalogue::METRICS, name).is_some() {
                self.diags.push(
                    Diagnostic::error(
                        Code::UnknownMetric,
                        format!("`{name}` is not a metric the command reports"),
                        span,
                        "not in `reports`",
                    )
                    .suggest(name, reports.iter().map(|(n, _)| n.as_str()))
                    .with_help("add it to `reports = [...]` in `trial` if the program prints it"),
                );
                return Ty::Unknown;
            }
        }
        if self.metrics
            && let Some(entry) = catalogue::find(catalogue::METRICS, name)
        {
            if entry.sig.form == catalogue::Form::Call {
                self.diags.push(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("`{name}` takes one int `k` from 1 to {}", crate::limits::TOP_K_MAX),
                        span,
                        "no `k`",
                    )
                    .with_help(format!("for example `maximize {name}(5)`")),
                );
                return Ty::Unknown;
            }
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

    pub(super) fn expr(&mut self, e: &ast::Expr) -> Ty {
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
                    (Ty::Data, "classes" | "features" | "vocab") => Ty::Int,
                    (Ty::Data, "shape") => Ty::List,
                    (Ty::Data, other) => {
                        self.diags.push(
                            Diagnostic::error(
                                Code::UnknownName,
                                format!("`data` has no field `{other}`"),
                                field.span,
                                "unknown field",
                            )
                            .suggest(other, catalogue::DATA_FIELDS.iter().map(|f| f.name)),
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

    /// Checks a match's patterns against the scrutinee's values, and exhaustiveness.
    pub(super) fn patterns(&mut self, scrutinee: &ast::Expr, st: &Ty, pats: &[&ast::Pattern], span: Span) {
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

    pub(super) fn binary(&mut self, op: BinaryOp, a: &ast::Expr, b: &ast::Expr) -> Ty {
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
    pub(super) fn compare(&mut self, ta: &Ty, a: &ast::Expr, tb: &Ty, b: &ast::Expr) {
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

    pub(super) fn call(&mut self, callee: &ast::Expr, args: &[ast::Arg], whole: &ast::Expr) -> Ty {
        let name = ir::dotted(callee).unwrap_or_default();
        if let Some(f) = self.program.fns.get(&name) {
            if let ast::ExprKind::Name(_) = &callee.kind {
                self.resolve(callee.span, f.name.span, super::Resolved::Fn);
            }
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
        if self.metrics
            && !shadowed
            && let Some(entry) = catalogue::find(catalogue::METRICS, &name)
            && entry.sig.form == catalogue::Form::Call
        {
            self.metric_call(&name, args, whole);
            return Ty::Float;
        }
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

    /// A metric with an argument (`top_k(5)`): one int from 1 to `train::TOP_K_MAX`,
    /// written as a literal so that the key its value is stored under is known.
    fn metric_call(&mut self, name: &str, args: &[ast::Arg], whole: &ast::Expr) {
        let k = match args {
            [a] if a.name.as_ref().is_none_or(|n| n.name == "k") => match &a.value.kind {
                ExprKind::Number(v, NumberKind::Int) => Some(*v),
                _ => None,
            },
            _ => None,
        };
        if !k.is_some_and(|k| (1.0..=crate::limits::TOP_K_MAX as f64).contains(&k)) {
            self.diags.push(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("`{name}` takes one int `k` from 1 to {}", crate::limits::TOP_K_MAX),
                    whole.span,
                    "not a literal k in range",
                )
                .with_help(format!("for example `maximize {name}(5)`")),
            );
        }
    }

    pub(super) fn unknown_name(&mut self, name: &str, span: Span) {
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
    pub(super) fn need(&mut self, got: &Ty, e: &ast::Expr, want: Want) {
        if let Ty::Bare(n, s) = got {
            match want {
                Want::Any | Want::Syms(_) | Want::OneOf(_) | Want::Metric => {}
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
}
