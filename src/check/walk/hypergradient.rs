//! The `hypergradient: β` argument of an optimizer (`train::hypergradient`): β scales a
//! gradient step on the learning rate, so it must be at least 0 (0 keeps the rate fixed).
//!
//! Takes the `optimizer = ...` value (through `match` and `if` arms); pushes an
//! `invalid_value` error for a constant β below 0 or not finite, and for a parameter some of
//! whose values are (the error names the parameter's declaration). A β computed from other
//! parameters is left to the runtime, which refuses it the same way.

use std::collections::BTreeMap;

use super::{Walker, name_span};
use crate::ast::{self, ExprKind};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Domain, ParamKind, Value};

const HELP: &str = "β is the step size of the learning rate's own gradient descent: 0 keeps the rate fixed; \
                    the paper uses about 1e-3 for sgd and 1e-7 to 1e-4 for adam";

impl Walker<'_> {
    /// Every `hypergradient:` argument of the optimizer calls in `e`.
    pub(super) fn hypergradient(&mut self, e: &ast::Expr) {
        match &e.kind {
            ExprKind::Match(_, arms) => arms.iter().for_each(|a| self.hypergradient(&a.value)),
            ExprKind::If(_, a, b) => {
                self.hypergradient(a);
                self.hypergradient(b);
            }
            ExprKind::Call(_, args) => {
                for a in args.iter().filter(|a| a.name.as_ref().is_some_and(|n| n.name == "hypergradient")) {
                    self.beta(&a.value);
                }
            }
            _ => {}
        }
    }

    fn beta(&mut self, e: &ast::Expr) {
        let bad = |x: f64| !(x >= 0.0 && x.is_finite());
        let Some(p) = e.as_name().and_then(|n| self.param(n)) else {
            // A bare name evaluates to a symbol: only numbers are checked here.
            if let Ok(v) = ir::eval(e, &BTreeMap::new())
                && let Some(x) = v.as_f64().filter(|x| bad(*x))
            {
                self.diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "`hypergradient` must be at least 0",
                        e.span,
                        format!("β is {x}"),
                    )
                    .with_help(HELP),
                );
            }
            return;
        };
        let lowest = match &p.kind {
            ParamKind::Free(Domain::Float { lo, .. }) => Some(*lo),
            ParamKind::Free(Domain::Int { lo, .. }) => Some(*lo as f64),
            ParamKind::Free(Domain::Choice(values)) => {
                values.iter().filter_map(Value::as_f64).filter(|x| bad(*x)).reduce(f64::min)
            }
            ParamKind::Const(v) => v.as_f64(),
            ParamKind::Derived(_) => None,
        };
        if let Some(x) = lowest.filter(|x| bad(*x)) {
            self.diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`hypergradient` must be at least 0, and `{}` can be {x}", p.name),
                    e.span,
                    format!("`{}` can be below 0", p.name),
                )
                .with_label(name_span(p), "its values are declared here")
                .with_help(HELP),
            );
        }
    }
}
