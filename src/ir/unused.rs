//! Imported names that the root file never uses.
//!
//! Takes the root file's syntax tree and the names its `use` items imported (those that
//! resolved: an unknown import has its own error); gives a warning for each name that no
//! item of the file mentions: as a layer or block in a model, a called function, or a name
//! in an expression. **Invariant:** no warning for a name the file mentions anywhere outside
//! its `use` items, even one that a local of the same name shadows (a warning is never
//! wrong; a shadowed import may go unreported).

use std::collections::BTreeSet;

use crate::ast::{self, ExprKind, Item, SectionBody, SpaceItem, Stmt};
use crate::diagnostic::{Code, Diagnostic};

/// A warning for each of `imported` (names of `use` items of `file`) that `file` does not use.
pub(super) fn imports(file: &ast::File, imported: &BTreeSet<String>) -> Vec<Diagnostic> {
    let mut used = BTreeSet::new();
    for item in &file.items {
        match item {
            Item::Use(_) => {}
            Item::Block(b) => {
                params(&b.params, &mut used);
                body(&b.body, &mut used);
            }
            Item::Fn(f) => {
                params(&f.params, &mut used);
                expr(&f.body, &mut used);
            }
            Item::Experiment(e) => {
                for s in &e.sections {
                    section(&s.body, &mut used);
                }
            }
        }
    }
    let mut out = Vec::new();
    for item in &file.items {
        let Item::Use(u) = item else { continue };
        for n in &u.names {
            if imported.contains(&n.name) && !used.contains(n.name.as_str()) {
                out.push(
                    Diagnostic::warning(
                        Code::UnusedImport,
                        format!("`{}` is imported but never used", n.name),
                        n.span,
                        "not used in this file",
                    )
                    .with_help("remove it from the `use`"),
                );
            }
        }
    }
    out
}

fn params<'a>(params: &'a [ast::ParamDecl], used: &mut BTreeSet<&'a str>) {
    for p in params {
        if let Some(d) = &p.default {
            expr(d, used);
        }
    }
}

fn section<'a>(s: &'a SectionBody, used: &mut BTreeSet<&'a str>) {
    match s {
        SectionBody::Data(e) => expr(e, used),
        SectionBody::Space(items) => space(items, used),
        SectionBody::Model(b) => body(b, used),
        SectionBody::Assigns(assigns) => assigns.iter().for_each(|a| expr(&a.value, used)),
        SectionBody::Objective(items) => {
            for item in items {
                match item {
                    ast::ObjectiveItem::Goal { metric, .. } => expr(metric, used),
                    ast::ObjectiveItem::Require { expr: e, .. } => expr(e, used),
                    ast::ObjectiveItem::Assign(a) => expr(&a.value, used),
                }
            }
        }
        SectionBody::Average(exprs) => exprs.iter().for_each(|e| expr(e, used)),
        SectionBody::Trial(items) => {
            for item in items {
                match item {
                    ast::TrialItem::Assign(a) => expr(&a.value, used),
                    ast::TrialItem::Record { fields, .. } => fields.iter().for_each(|(_, e)| expr(e, used)),
                }
            }
        }
    }
}

fn space<'a>(items: &'a [SpaceItem], used: &mut BTreeSet<&'a str>) {
    for item in items {
        match item {
            SpaceItem::Param { domain, .. } => match domain {
                ast::Domain::Choice { values, .. } => values.iter().for_each(|v| expr(v, used)),
                ast::Domain::Range { lo, hi, step, .. } => {
                    expr(lo, used);
                    expr(hi, used);
                    if let Some(s) = step {
                        expr(s, used);
                    }
                }
            },
            SpaceItem::Const { value, .. } | SpaceItem::Let { value, .. } => expr(value, used),
            SpaceItem::When { cond, items, .. } => {
                expr(cond, used);
                space(items, used);
            }
        }
    }
}

fn body<'a>(b: &'a ast::Body, used: &mut BTreeSet<&'a str>) {
    for s in &b.stmts {
        match s {
            Stmt::Chain(chain) | Stmt::Let { chain, .. } => {
                for link in &chain.links {
                    used.insert(&link.name.name);
                    link.args.iter().flatten().for_each(|a| expr(&a.value, used));
                }
            }
            Stmt::Repeat { from, count, body: inner, .. } => {
                if let Some(f) = from {
                    expr(f, used);
                }
                expr(count, used);
                body(inner, used);
            }
            Stmt::Match { scrutinee, arms, .. } => {
                expr(scrutinee, used);
                arms.iter().for_each(|arm| body(&arm.body, used));
            }
            Stmt::If { cond, then, otherwise, .. } => {
                expr(cond, used);
                body(then, used);
                if let Some(o) = otherwise {
                    body(o, used);
                }
            }
            Stmt::Residual { body: inner, .. } => body(inner, used),
            Stmt::Parallel { branches, .. } => branches.iter().for_each(|b| body(b, used)),
        }
    }
}

fn expr<'a>(e: &'a ast::Expr, used: &mut BTreeSet<&'a str>) {
    match &e.kind {
        ExprKind::Number(..) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
        ExprKind::Name(n) => {
            used.insert(n);
        }
        ExprKind::List(items) => items.iter().for_each(|x| expr(x, used)),
        ExprKind::Unary(_, x) | ExprKind::Field(x, _) => expr(x, used),
        ExprKind::Binary(_, a, b) => {
            expr(a, used);
            expr(b, used);
        }
        ExprKind::Call(callee, args) => {
            expr(callee, used);
            args.iter().for_each(|a| expr(&a.value, used));
        }
        ExprKind::If(c, a, b) => {
            expr(c, used);
            expr(a, used);
            expr(b, used);
        }
        ExprKind::Match(s, arms) => {
            expr(s, used);
            arms.iter().for_each(|arm| expr(&arm.value, used));
        }
    }
}
