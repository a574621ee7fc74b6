//! What is known to hold where the walk is, and the use of conditional parameters.
//!
//! A [`Fact`] is pushed by each `match` arm, `if` branch and `when` around the walk's
//! position and popped after it; a parameter declared under `when c` may be used only
//! where the facts imply `c` (`conditional_param` otherwise). Implication is decided by
//! enumerating the finite parameters involved, falling back to syntactic equality.

use std::collections::BTreeSet;

use super::{Walker, name_span};
use crate::ast::{self, BinaryOp, ExprKind, PatternAlt};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, ParamKind, Value};
use crate::source::Span;

/// A condition known to hold where the walk is.
#[derive(Debug, Clone)]
pub(super) enum Fact {
    /// `expr` evaluates to the bool.
    Holds(ast::Expr, bool),
    /// The parameter matches (or, `false`, matches none of) these patterns.
    Matches(String, Vec<PatternAlt>, bool),
}

impl Walker<'_> {
    pub(super) fn use_param(&mut self, p: &ir::Param, span: Span) {
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

    /// Whether the current facts imply every condition in `guard`.
    pub(super) fn implied(&self, guard: &[ast::Expr]) -> bool {
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

    /// Pushes the facts an arm establishes; returns how many.
    pub(super) fn arm_facts(
        &mut self,
        scrutinee: &ast::Expr,
        pattern: &ast::Pattern,
        previous: &[PatternAlt],
    ) -> usize {
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
}
