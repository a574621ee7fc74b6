//! The model walk: statements, chains, layers and blocks with their arguments,
//! checked against the catalogue's layer signatures (`crate::catalogue::LAYERS`).

use super::facts::Fact;
use super::{HelpDefault, Ty, Walker, Want, is_layer_name, name_span, or_list, want_of_type};
use crate::ast::{self, ExprKind, NumberKind};
use crate::catalogue::{self, Concept, Need};
use crate::diagnostic::{Code, Diagnostic};

impl Walker<'_> {
    pub(super) fn body(&mut self, body: &ast::Body) {
        let (locals, nodes) = (self.locals.len(), self.nodes.len());
        for s in &body.stmts {
            self.stmt(s);
        }
        self.locals.truncate(locals);
        self.nodes.truncate(nodes);
    }

    pub(super) fn stmt(&mut self, s: &ast::Stmt) {
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

    pub(super) fn chain(&mut self, chain: &ast::Chain) {
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

    pub(super) fn layer(&mut self, call: &ast::Call) {
        let name = &call.name.name;
        // A parameter or local whose value is a layer.
        let local = self.locals.iter().rev().find(|(n, _, _)| n == name).map(|(_, t, s)| (t.clone(), *s));
        let param_ty = match local {
            Some((t, def)) => {
                self.resolve(call.name.span, def, super::Resolved::Local);
                Some(t)
            }
            None => self.param(name).map(|p| {
                self.resolve(call.name.span, p.name_span, super::Resolved::Param);
                self.use_param(p, call.name.span);
                self.param_ty(p)
            }),
        };
        if let Some(t) = param_ty {
            self.layer_param(name, &t, call);
            return;
        }
        if self.exp.is_some_and(|e| e.space.rejected.contains_key(name)) {
            return;
        }
        if matches!(
            catalogue::kind(catalogue::LAYERS, name),
            Some(catalogue::Layer::Add | catalogue::Layer::Concat | catalogue::Layer::Multiply)
        ) {
            self.merge_args(name, call);
            return;
        }
        if let Some(block) = self.program.blocks.get(name) {
            self.resolve(call.name.span, block.name.span, super::Resolved::Block);
            self.block_args(block, call);
            return;
        }
        if catalogue::kind(catalogue::LAYERS, name) == Some(catalogue::Layer::Reshape) {
            for a in call.args.iter().flatten() {
                let t = self.expr(&a.value);
                if t != Ty::List {
                    self.need(&t, &a.value, Want::Int);
                }
            }
            return;
        }
        match catalogue::layer_signature(name) {
            Some(sig) => self.layer_args(name, sig, call),
            None => self.unknown_layer(name, call),
        }
    }

    /// A parameter or local used as a layer: no arguments, and its values must be layers.
    fn layer_param(&mut self, name: &str, t: &Ty, call: &ast::Call) {
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
            self.diags.push(d.with_help("a parameter is a layer when its values are layers: `act: in {relu, gelu}`"));
        } else if let Ty::Sym(values) = t
            && let Some(bad) = values.iter().find(|v| !is_layer_name(self.program, v))
        {
            self.diags.push(Diagnostic::error(
                Code::TypeMismatch,
                format!("`{name}` is used as a layer, but `{bad}` is not a layer"),
                call.span,
                "not a layer",
            ));
        }
    }

    /// The nodes `add` and `concat` merge: two or more, named with `let`.
    fn merge_args(&mut self, name: &str, call: &ast::Call) {
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
    }

    /// A layer name that no layer, block, node or parameter has.
    fn unknown_layer(&mut self, name: &str, call: &ast::Call) {
        let mut candidates: Vec<&str> = Concept::Layer.names();
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

    pub(super) fn layer_args(&mut self, name: &str, sig: &[catalogue::Arg], call: &ast::Call) {
        let args = call.args.as_deref().unwrap_or(&[]);
        let mut positional = 0usize;
        let mut given: Vec<&str> = Vec::new();
        for a in args {
            let t = self.expr(&a.value);
            let arg = match &a.name {
                Some(n) => {
                    let Some(arg) = sig.iter().find(|k| k.name == n.name) else {
                        let help = if sig.is_empty() {
                            format!("`{name}` takes no arguments")
                        } else {
                            format!(
                                "`{name}` takes {}",
                                sig.iter().map(|k| format!("`{}`", k.name)).collect::<Vec<_>>().join(", ")
                            )
                        };
                        self.diags.push(
                            Diagnostic::error(
                                Code::BadArguments,
                                format!("`{name}` has no argument `{}`", n.name),
                                n.span,
                                "unknown argument",
                            )
                            .suggest(&n.name, sig.iter().map(|k| k.name))
                            .with_help_default(&help),
                        );
                        continue;
                    };
                    arg
                }
                None => {
                    positional += 1;
                    match sig.get(positional - 1) {
                        Some(arg) => arg,
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
            let (key, want) = (arg.name, arg.ty);
            given.push(key);
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
        for k in sig.iter().filter(|k| k.need == Need::Required).map(|k| k.name) {
            if !given.contains(&k) {
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

    pub(super) fn block_args(&mut self, block: &ast::Block, call: &ast::Call) {
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

    pub(super) fn need_layer(&mut self, t: &Ty, e: &ast::Expr) {
        match t {
            Ty::Bare(n, s) if !is_layer_name(self.program, n) => {
                let mut cands: Vec<&str> = Concept::Layer.names();
                cands.extend(self.program.blocks.keys().map(String::as_str));
                self.diags.push(
                    Diagnostic::error(Code::UnknownLayer, format!("unknown layer `{n}`"), *s, "not a layer")
                        .suggest(n, cands),
                );
            }
            Ty::Call(n) if !is_layer_name(self.program, n) => {
                self.diags.push(
                    Diagnostic::error(Code::UnknownLayer, format!("unknown layer `{n}`"), e.span, "not a layer")
                        .suggest(n, Concept::Layer.names()),
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
}

fn example_arg(k: &str) -> &'static str {
    match k {
        "units" => "64",
        "filters" => "16",
        "p" => "0.2",
        _ => "...",
    }
}
