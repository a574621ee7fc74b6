//! Every name of a file resolved: each occurrence (a reference or a definition) with what
//! it names, so that hover, definition, references, rename and highlight agree.
//!
//! Takes a [`Compiled`] file and the syntax tree of one of its sources (recovered around
//! syntax errors: `syntax::parse_recovering`); gives an [`Index`] of [`Occurrence`]s in
//! text order. Names are looked up in the checker's order (`check::walk`): innermost
//! locals (`repeat` indices, block and fn parameters), then the model's `let` nodes, then
//! the experiment's parameters, then the program's blocks and fns, then the catalogue
//! entry that the position accepts (a strategy after `strategy =`, an optimiser after
//! `optimizer =`, an argument's own concept inside a call). Comments and strings hold no
//! occurrences; a named argument (`momentum:`) is the argument, not a parameter of the same
//! name. **Invariant:** every occurrence's span is the name's own, in the indexed file; a
//! name the checker resolves (`check::resolutions`) is indexed to the same definition, and
//! where a file checks clean the reverse holds for locals, parameters, blocks and fns
//! (`tests::the_index_resolves_every_name_as_the_checker_does`, on every example, stdlib
//! module and check fixture).

use crate::Compiled;
use crate::ast::{self, ExprKind, Item, PatternAlt, SectionBody, SpaceItem, Stmt};
use crate::catalogue::{self, ArgType, Concept};
use crate::source::{FileId, Span};

/// What a user-defined name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    Experiment,
    Block,
    Fn,
    /// A parameter of an experiment's `space` (searched, pinned or `let`).
    Param,
    BlockParam,
    FnParam,
    /// `let a = ...` in a model.
    Node,
    /// `repeat i in ...`.
    RepeatVar,
}

/// What one occurrence names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user-defined name, known by its definition's span (in this file or an import).
    Symbol { kind: SymbolKind, def: Span },
    /// An entry of the catalogue.
    Builtin(Concept, String),
    /// The named argument `name:` of a call of `callee` (an entry of `concept`), or of a
    /// block (`block` is its definition's name span; the argument's own definition is then
    /// the block parameter).
    Arg { concept: Option<Concept>, callee: String, name: String, param: Option<Span> },
    /// `data.NAME`.
    DataField(String),
    /// The key of a section's setting (`epochs` in `train { }`).
    Key { section: &'static str, key: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub span: Span,
    pub name: String,
    pub target: Target,
    /// Whether this occurrence is the definition itself.
    pub is_def: bool,
    /// Where the name is visible, for a definition (its scope); for a reference, the
    /// innermost experiment, block or fn around it.
    pub scope: Span,
    /// The experiment it is in, as an index of `program.experiments`.
    pub experiment: Option<usize>,
}

/// Every occurrence of a file, in text order.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub file: Option<FileId>,
    pub occurrences: Vec<Occurrence>,
}

impl Index {
    /// The occurrence whose name covers `offset` (its end included, as a cursor after a
    /// name is on it).
    pub fn at(&self, offset: u32) -> Option<&Occurrence> {
        let on = |o: &&Occurrence| o.span.start <= offset && offset <= o.span.end;
        self.occurrences.iter().filter(on).min_by_key(|o| (offset == o.span.end, o.span.end - o.span.start))
    }

    /// Every occurrence of the same symbol as `o` (itself included), definition first.
    pub fn same(&self, o: &Occurrence) -> Vec<&Occurrence> {
        let Target::Symbol { def, .. } = o.target else { return vec![] };
        let mut out: Vec<&Occurrence> = self
            .occurrences
            .iter()
            .filter(|x| match &x.target {
                Target::Symbol { def: d, .. } => *d == def,
                Target::Arg { param: Some(p), .. } => *p == def,
                _ => false,
            })
            .collect();
        out.sort_by_key(|x| (!x.is_def, x.span.start));
        out
    }
}

/// Resolves every name of `file` (whose tree is `tree`) against `c`.
pub fn index(c: &Compiled, file: FileId, tree: &ast::File) -> Index {
    let mut r =
        Resolver { c, file, out: Vec::new(), scopes: Vec::new(), experiment: None, scope: Span::new(file, 0, 0) };
    for item in &tree.items {
        r.item(item);
    }
    r.out.sort_by_key(|o| (o.span.start, o.span.end));
    r.out.dedup_by(|a, b| a.span == b.span);
    Index { file: Some(file), occurrences: r.out }
}

struct Local {
    name: String,
    def: Span,
    kind: SymbolKind,
}

struct Resolver<'a> {
    c: &'a Compiled,
    file: FileId,
    out: Vec<Occurrence>,
    /// Names in scope, innermost last: locals and nodes.
    scopes: Vec<Local>,
    experiment: Option<usize>,
    scope: Span,
}

/// What a position accepts, for a name that is no user definition.
#[derive(Clone, Copy)]
enum Want {
    Nothing,
    Entry(Concept),
    /// A metric, or a name the experiment reports.
    Metric,
}

impl Resolver<'_> {
    fn push(&mut self, ident: &ast::Ident, target: Target, is_def: bool, scope: Span) {
        if ident.span.file != self.file {
            return;
        }
        self.out.push(Occurrence {
            span: ident.span,
            name: ident.name.clone(),
            target,
            is_def,
            scope,
            experiment: self.experiment,
        });
    }

    /// A name written in an expression, with no `ast::Ident`: its span is the expression's.
    fn push_name(&mut self, name: &str, span: Span, target: Target) {
        let ident = ast::Ident { name: name.to_string(), span };
        self.push(&ident, target, false, self.scope);
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(u) => {
                for n in &u.names {
                    if let Some(t) = self.program_item(&n.name) {
                        self.push(n, t, false, n.span);
                    }
                }
            }
            Item::Block(b) => {
                self.scope = b.span;
                self.push(&b.name, Target::Symbol { kind: SymbolKind::Block, def: b.name.span }, true, b.span);
                self.params(&b.params, SymbolKind::BlockParam, b.span);
                self.body(&b.body);
                self.scopes.clear();
            }
            Item::Fn(f) => {
                self.scope = f.span;
                self.push(&f.name, Target::Symbol { kind: SymbolKind::Fn, def: f.name.span }, true, f.span);
                self.params(&f.params, SymbolKind::FnParam, f.span);
                self.expr(&f.body, Want::Nothing);
                self.scopes.clear();
            }
            Item::Experiment(e) => self.experiment(e),
        }
    }

    fn params(&mut self, params: &[ast::ParamDecl], kind: SymbolKind, scope: Span) {
        for p in params {
            if let Some(d) = &p.default {
                self.expr(d, Want::Nothing);
            }
            self.push(&p.name, Target::Symbol { kind, def: p.name.span }, true, scope);
            self.scopes.push(Local { name: p.name.name.clone(), def: p.name.span, kind });
        }
    }

    /// A block or fn of the program by the name the root file knows it by.
    fn program_item(&self, name: &str) -> Option<Target> {
        if let Some(b) = self.c.program.blocks.get(name) {
            return Some(Target::Symbol { kind: SymbolKind::Block, def: b.name.span });
        }
        self.c.program.fns.get(name).map(|f| Target::Symbol { kind: SymbolKind::Fn, def: f.name.span })
    }

    fn experiment(&mut self, e: &ast::Experiment) {
        self.experiment = self.c.program.experiments.iter().position(|x| x.name_span == e.name.span);
        self.scope = e.span;
        self.push(&e.name, Target::Symbol { kind: SymbolKind::Experiment, def: e.name.span }, true, e.span);
        // Parameters first: a section may use one declared in a later `space`.
        for s in &e.sections {
            if let SectionBody::Space(items) = &s.body {
                self.space_defs(items, e.span);
            }
        }
        for s in &e.sections {
            match &s.body {
                SectionBody::Data(expr) => self.expr(expr, Want::Entry(Concept::Dataset)),
                SectionBody::Space(items) => self.space_uses(items),
                SectionBody::Model(body) => self.body(body),
                SectionBody::Assigns(assigns) => {
                    let section = s.kind.as_str();
                    for a in assigns {
                        self.assign(section, a);
                    }
                }
                SectionBody::Objective(items) => {
                    for item in items {
                        match item {
                            ast::ObjectiveItem::Goal { metric, .. } => self.expr(metric, Want::Metric),
                            ast::ObjectiveItem::Require { expr, .. } => self.expr(expr, Want::Metric),
                            ast::ObjectiveItem::Assign(a) => self.assign("objective", a),
                        }
                    }
                }
                SectionBody::Average(exprs) => {
                    for x in exprs {
                        self.expr(x, Want::Entry(Concept::Average));
                    }
                }
                SectionBody::Trial(_) => {}
            }
        }
        self.experiment = None;
    }

    fn assign(&mut self, section: &'static str, a: &ast::Assign) {
        self.push(&a.key, Target::Key { section, key: a.key.name.clone() }, false, self.scope);
        let want = match (section, a.key.name.as_str()) {
            ("train", "optimizer") => Want::Entry(Concept::Optimizer),
            ("train", "schedule") => Want::Entry(Concept::Schedule),
            ("train", "loss") => Want::Entry(Concept::Loss),
            ("train", "precision") => Want::Entry(Concept::Precision),
            ("train", "init") => Want::Entry(Concept::Init),
            ("train", "early_stop") => Want::Entry(Concept::EarlyStop),
            ("train", "augment") => Want::Entry(Concept::Augment),
            ("search", "strategy") => Want::Entry(Concept::Strategy),
            ("search", "prune") => Want::Entry(Concept::Pruner),
            ("objective", "rank") => Want::Entry(Concept::Rank),
            _ => Want::Nothing,
        };
        self.expr(&a.value, want);
    }

    fn space_defs(&mut self, items: &[SpaceItem], scope: Span) {
        for item in items {
            match item {
                SpaceItem::Param { name, .. } | SpaceItem::Const { name, .. } | SpaceItem::Let { name, .. } => {
                    self.push(name, Target::Symbol { kind: SymbolKind::Param, def: name.span }, true, scope);
                }
                SpaceItem::When { items, .. } => self.space_defs(items, scope),
            }
        }
    }

    fn space_uses(&mut self, items: &[SpaceItem]) {
        for item in items {
            match item {
                SpaceItem::Param { domain, .. } => match domain {
                    ast::Domain::Choice { values, .. } => {
                        for v in values {
                            self.expr(v, Want::Entry(Concept::Layer));
                        }
                    }
                    ast::Domain::Range { lo, hi, step, .. } => {
                        self.expr(lo, Want::Nothing);
                        self.expr(hi, Want::Nothing);
                        if let Some(s) = step {
                            self.expr(s, Want::Nothing);
                        }
                    }
                },
                SpaceItem::Const { value, .. } | SpaceItem::Let { value, .. } => self.expr(value, Want::Nothing),
                SpaceItem::When { cond, items, .. } => {
                    self.expr(cond, Want::Nothing);
                    self.space_uses(items);
                }
            }
        }
    }

    /// The experiment's parameter named `name`, by its definition.
    fn param(&self, name: &str) -> Option<Span> {
        let e = self.c.program.experiments.get(self.experiment?)?;
        e.space.get(name).map(|p| p.name_span)
    }

    fn local(&self, name: &str) -> Option<&Local> {
        self.scopes.iter().rev().find(|l| l.name == name)
    }

    /// A name used as a value.
    fn value_name(&mut self, name: &str, span: Span, want: Want) {
        let target = if let Some(l) = self.local(name) {
            Some(Target::Symbol { kind: l.kind, def: l.def })
        } else if let Some(def) = self.param(name) {
            Some(Target::Symbol { kind: SymbolKind::Param, def })
        } else {
            self.builtin(name, want)
        };
        if let Some(t) = target {
            self.push_name(name, span, t);
        }
    }

    fn builtin(&self, name: &str, want: Want) -> Option<Target> {
        let has = |c: Concept| c.sigs().iter().any(|s| s.name == name);
        match want {
            Want::Entry(c) if has(c) => Some(Target::Builtin(c, name.to_string())),
            Want::Metric if has(Concept::Metric) => Some(Target::Builtin(Concept::Metric, name.to_string())),
            // A bare layer name as a value: `act: in {relu, gelu}`.
            _ if has(Concept::Layer) && !matches!(want, Want::Metric) => {
                Some(Target::Builtin(Concept::Layer, name.to_string()))
            }
            _ => None,
        }
    }

    fn expr(&mut self, e: &ast::Expr, want: Want) {
        match &e.kind {
            ExprKind::Number(..) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
            ExprKind::Name(n) => self.value_name(n, e.span, want),
            ExprKind::List(items) => {
                for x in items {
                    self.expr(x, want);
                }
            }
            ExprKind::Unary(_, x) => self.expr(x, want),
            ExprKind::Binary(_, a, b) => {
                self.expr(a, want);
                self.expr(b, want);
            }
            ExprKind::Field(base, field) => {
                if base.as_name() == Some("data") && self.local("data").is_none() && self.param("data").is_none() {
                    self.push(field, Target::DataField(field.name.clone()), false, self.scope);
                } else {
                    self.expr(base, want);
                }
            }
            ExprKind::Call(callee, args) => self.call(callee, args, want),
            ExprKind::If(c, a, b) => {
                self.expr(c, Want::Nothing);
                self.expr(a, want);
                self.expr(b, want);
            }
            ExprKind::Match(s, arms) => {
                self.expr(s, Want::Nothing);
                for arm in arms {
                    self.expr(&arm.value, want);
                }
            }
        }
    }

    fn call(&mut self, callee: &ast::Expr, args: &[ast::Arg], want: Want) {
        // `synthetic.spirals(...)`, `std::x`: only plain names resolve.
        let Some(name) = callee.as_name() else {
            self.expr(callee, Want::Nothing);
            for a in args {
                self.expr(&a.value, Want::Nothing);
            }
            return;
        };
        let user = self.local(name).map(|l| Target::Symbol { kind: l.kind, def: l.def }).or_else(|| {
            self.c.program.fns.get(name).map(|f| Target::Symbol { kind: SymbolKind::Fn, def: f.name.span })
        });
        let entry = match want {
            Want::Entry(c) => c.sigs().into_iter().find(|s| s.name == name).map(|s| (c, s)),
            Want::Metric => Concept::Metric.sigs().into_iter().find(|s| s.name == name).map(|s| (Concept::Metric, s)),
            Want::Nothing => None,
        };
        match (&user, entry) {
            (Some(t), _) => self.push_name(name, callee.span, t.clone()),
            (None, Some((c, _))) => self.push_name(name, callee.span, Target::Builtin(c, name.to_string())),
            (None, None) => {}
        }
        let fn_params: Vec<Span> = match &user {
            Some(Target::Symbol { kind: SymbolKind::Fn, .. }) => {
                self.c.program.fns.get(name).map(|f| f.params.iter().map(|p| p.name.span).collect()).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        for (i, a) in args.iter().enumerate() {
            let sig_arg = entry.and_then(|(_, s)| match &a.name {
                Some(n) => s.args.iter().find(|x| x.name == n.name),
                None => s.args.get(i),
            });
            if let Some(n) = &a.name {
                let target = Target::Arg {
                    concept: entry.map(|(c, _)| c),
                    callee: name.to_string(),
                    name: n.name.clone(),
                    param: None,
                };
                if entry.is_some() || !fn_params.is_empty() {
                    self.push(n, target, false, self.scope);
                }
            }
            let inner = match sig_arg.map(|x| x.ty) {
                Some(ArgType::OneOf(c)) => Want::Entry(c),
                Some(ArgType::Metric) => Want::Metric,
                _ => Want::Nothing,
            };
            self.expr(&a.value, inner);
        }
    }

    fn body(&mut self, body: &ast::Body) {
        let depth = self.scopes.len();
        for s in &body.stmts {
            self.stmt(s);
        }
        self.scopes.truncate(depth);
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Chain(chain) => self.chain(chain),
            Stmt::Let { name, chain, .. } => {
                self.chain(chain);
                self.push(name, Target::Symbol { kind: SymbolKind::Node, def: name.span }, true, self.scope);
                self.scopes.push(Local { name: name.name.clone(), def: name.span, kind: SymbolKind::Node });
            }
            Stmt::Repeat { var, from, count, body, span } => {
                if let Some(f) = from {
                    self.expr(f, Want::Nothing);
                }
                self.expr(count, Want::Nothing);
                let depth = self.scopes.len();
                if let Some(v) = var {
                    self.push(v, Target::Symbol { kind: SymbolKind::RepeatVar, def: v.span }, true, *span);
                    self.scopes.push(Local { name: v.name.clone(), def: v.span, kind: SymbolKind::RepeatVar });
                }
                self.body(body);
                self.scopes.truncate(depth);
            }
            Stmt::Match { scrutinee, arms, .. } => {
                self.expr(scrutinee, Want::Nothing);
                for arm in arms {
                    for alt in &arm.pattern.alts {
                        if let PatternAlt::Name(n) = alt
                            && let Some(t) = self.builtin(&n.name, Want::Entry(Concept::Layer))
                        {
                            self.push(n, t, false, self.scope);
                        }
                    }
                    self.body(&arm.body);
                }
            }
            Stmt::If { cond, then, otherwise, .. } => {
                self.expr(cond, Want::Nothing);
                self.body(then);
                if let Some(o) = otherwise {
                    self.body(o);
                }
            }
            Stmt::Residual { body, .. } => self.body(body),
            Stmt::Parallel { merge, branches, .. } => {
                if let Some(t) = self.builtin(&merge.name, Want::Entry(Concept::Layer)) {
                    self.push(merge, t, false, self.scope);
                }
                for b in branches {
                    self.body(b);
                }
            }
        }
    }

    fn chain(&mut self, chain: &ast::Chain) {
        for link in &chain.links {
            self.layer(link);
        }
    }

    /// One layer of a chain, in the checker's order: a local (a parameter whose value is a
    /// layer, a node), a parameter, a block, a layer of the catalogue.
    fn layer(&mut self, call: &ast::Call) {
        let name = &call.name.name;
        let mut block_params: Vec<(String, Span)> = Vec::new();
        let mut sig: Option<&'static catalogue::Sig> = None;
        let target = if let Some(l) = self.local(name) {
            Some(Target::Symbol { kind: l.kind, def: l.def })
        } else if let Some(def) = self.param(name) {
            Some(Target::Symbol { kind: SymbolKind::Param, def })
        } else if let Some(b) = self.c.program.blocks.get(name) {
            block_params = b.params.iter().map(|p| (p.name.name.clone(), p.name.span)).collect();
            Some(Target::Symbol { kind: SymbolKind::Block, def: b.name.span })
        } else if let Some(s) = Concept::Layer.sigs().into_iter().find(|s| s.name == *name) {
            sig = Some(s);
            Some(Target::Builtin(Concept::Layer, name.clone()))
        } else {
            None
        };
        if let Some(t) = target {
            self.push(&call.name, t, false, self.scope);
        }
        // `add(a, b)` and `concat(a, b)` merge nodes: their arguments are names of nodes.
        let merges = sig.is_some_and(|s| matches!(s.form, catalogue::Form::Variadic(_)));
        for (i, a) in call.args.iter().flatten().enumerate() {
            if let Some(n) = &a.name {
                let param = block_params.iter().find(|(p, _)| *p == n.name).map(|(_, s)| *s);
                let concept = sig.map(|_| Concept::Layer);
                if param.is_some() || sig.is_some() {
                    let target = Target::Arg { concept, callee: name.clone(), name: n.name.clone(), param };
                    self.push(n, target, false, self.scope);
                }
            }
            let inner = match sig.and_then(|s| s.args.get(i)).map(|x| x.ty) {
                Some(ArgType::OneOf(c)) => Want::Entry(c),
                _ if merges => Want::Nothing,
                _ => Want::Nothing,
            };
            self.expr(&a.value, inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Resolved, resolutions};
    use crate::source::Source;

    /// Whether the index's kind is the checker's.
    fn same_kind(kind: SymbolKind, resolved: Resolved) -> bool {
        matches!(
            (kind, resolved),
            (SymbolKind::BlockParam | SymbolKind::FnParam | SymbolKind::RepeatVar, Resolved::Local)
                | (SymbolKind::Param, Resolved::Param)
                | (SymbolKind::Block, Resolved::Block)
                | (SymbolKind::Fn, Resolved::Fn)
        )
    }

    /// The index against the checker's own lookups (`check::resolutions`), on every example,
    /// stdlib module and check fixture: every name the checker resolves to a user definition
    /// is indexed at the same span with the same definition and kind; and in every file the
    /// checker accepts, every reference the index resolves to a parameter, a block or fn
    /// parameter, a `repeat` index, a block or a fn, the checker resolves the same (a `use`
    /// list's, the lowering: the program's block or fn of that name). `let` nodes are the
    /// index's alone: the checker keeps their names, not where they are defined.
    #[test]
    fn the_index_resolves_every_name_as_the_checker_does() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["examples", "stdlib", "tests/fixtures/check/ok", "tests/fixtures/check/err"] {
            let entries = std::fs::read_dir(root.join(dir)).expect("a folder of the repository");
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "bma")));
        }
        files.sort();
        let (mut compared, mut wrong) = (0, Vec::new());
        for path in &files {
            let text = std::fs::read_to_string(path).expect("a readable file");
            let a = crate::ide::Analysis::new(crate::compile(&Source::from_path(path, text)));
            let (c, tree) = (&a.compiled, &a.tree);
            let line = |s: Span| c.sources.get(s.file).map_or((0, 0), |src| src.line_col(s.start));
            let checker: Vec<_> =
                resolutions(&c.program, &c.sources).into_iter().filter(|r| r.at.file == FileId(0)).collect();
            for r in &checker {
                compared += 1;
                let o = a.index.occurrences.iter().find(|o| o.span == r.at);
                match o.map(|o| &o.target) {
                    Some(Target::Symbol { kind, def }) if *def == r.def && same_kind(*kind, r.kind) => {}
                    got => wrong.push(format!(
                        "{}:{:?}: the checker resolves it to {:?} at {:?}, the index to {got:?}",
                        path.display(),
                        line(r.at),
                        r.kind,
                        line(r.def)
                    )),
                }
            }
            // The other way, where the checker accepts the file: where it rejects a reference
            // (a bound naming a parameter, a second block of one name) the index still
            // resolves it, for hover and definition, and the checker has nothing to say.
            if c.has_errors() {
                continue;
            }
            let uses: Vec<Span> = tree
                .items
                .iter()
                .filter_map(|i| match i {
                    Item::Use(u) => Some(u.span),
                    _ => None,
                })
                .collect();
            for o in a.index.occurrences.iter().filter(|o| !o.is_def) {
                let Target::Symbol { kind, def } = &o.target else { continue };
                if *kind == SymbolKind::Node || *kind == SymbolKind::Experiment {
                    continue;
                }
                compared += 1;
                // A `use` list's names are resolved by the lowering (`ir::lower`), not the
                // walk: they must name the program's own block or fn of that name.
                if uses.iter().any(|u| u.start <= o.span.start && o.span.end <= u.end) {
                    let table = match kind {
                        SymbolKind::Block => c.program.blocks.get(&o.name).map(|b| b.name.span),
                        SymbolKind::Fn => c.program.fns.get(&o.name).map(|f| f.name.span),
                        _ => None,
                    };
                    if table != Some(*def) {
                        wrong.push(format!(
                            "{}:{:?}: the index resolves `{}` in `use` to {kind:?} at {:?}, the program's is at {table:?}",
                            path.display(),
                            line(o.span),
                            o.name,
                            line(*def)
                        ));
                    }
                    continue;
                }
                if !checker.iter().any(|r| r.at == o.span && r.def == *def) {
                    wrong.push(format!(
                        "{}:{:?}: the index resolves `{}` to {kind:?} at {:?}, the checker does not",
                        path.display(),
                        line(o.span),
                        o.name,
                        line(*def)
                    ));
                }
            }
        }
        assert!(files.len() > 50 && compared > 500, "{} files, {compared} names compared", files.len());
        assert!(wrong.is_empty(), "{} of {compared} names differ:\n{}", wrong.len(), wrong.join("\n"));
    }
}
