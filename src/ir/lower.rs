//! Lowering: syntax trees → [`Program`].
//!
//! Resolves imports (the embedded stdlib and local files, relative to the
//! importing file), gathers blocks and fns, and turns each experiment's sections
//! into IR: the space's domains are evaluated to constants, its parameters sorted
//! by dependency (petgraph), settings kept as expressions.
//! Reports every problem it meets; what it could not lower is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use petgraph::graph::DiGraph;

use super::{Constraint, Domain, Experiment, Objective, Param, ParamKind, Program, Setting, Space, Value, eval};
use crate::ast::{self, SectionBody, SpaceItem};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{FileId, Source, Sources, Span};
use crate::{stdlib, syntax};

/// Where imported files come from: the disk for the CLI, memory for tests.
pub trait Loader {
    /// Reads a local `.bma` file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// Reads imports from the file system.
pub struct Disk;

impl Loader for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        crate::source::read_file(path)
    }
}

/// Lowers the parsed root file `root` (already in `sources`) and everything it imports.
pub fn lower(root: FileId, file: &ast::File, sources: &mut Sources, loader: &dyn Loader) -> (Program, Vec<Diagnostic>) {
    let mut cx = Lowerer {
        sources,
        loader,
        diags: Vec::new(),
        modules: BTreeMap::new(),
        stack: Vec::new(),
        rejected: BTreeMap::new(),
        hidden: BTreeMap::new(),
        qualified: BTreeMap::new(),
    };
    let mut program = Program::default();
    let mut origins: BTreeMap<String, Span> = BTreeMap::new();
    let root_key = cx.sources.get(root).map(module_key).unwrap_or_default();
    cx.stack.push(root_key);
    // Imported items first, so that the root file's own definitions can clash with them.
    let mut imported = BTreeSet::new();
    for item in &file.items {
        if let ast::Item::Use(u) = item {
            for (name, def) in cx.import(root, u) {
                imported.insert(name.name.clone());
                cx.define(&mut program, &mut origins, name, def);
            }
        }
    }
    cx.diags.extend(super::unused::imports(file, &imported));
    for item in &file.items {
        match item {
            ast::Item::Block(b) => cx.define(&mut program, &mut origins, b.name.clone(), Def::Block(b.clone())),
            ast::Item::Fn(f) => cx.define(&mut program, &mut origins, f.name.clone(), Def::Fn(f.clone())),
            _ => {}
        }
    }
    // Imported modules' items under their qualified names, for the blocks that use them.
    for (name, def) in std::mem::take(&mut cx.hidden) {
        program.hidden.insert(name.clone());
        match def {
            Def::Block(b) => {
                program.blocks.entry(name).or_insert(b);
            }
            Def::Fn(f) => {
                program.fns.entry(name).or_insert(f);
            }
        }
    }
    let mut seen: BTreeMap<String, Span> = BTreeMap::new();
    for item in &file.items {
        if let ast::Item::Experiment(e) = item {
            if let Some(prev) = seen.insert(e.name.name.clone(), e.name.span) {
                cx.diags.push(duplicate("experiment", &e.name, prev));
                continue;
            }
            let exp = cx.experiment(e, &program);
            program.experiments.push(exp);
        }
    }
    (program, cx.diags)
}

/// A block or fn that a module defines.
#[derive(Clone)]
enum Def {
    Block(ast::Block),
    Fn(ast::FnDef),
}

struct Lowerer<'a> {
    sources: &'a mut Sources,
    loader: &'a dyn Loader,
    diags: Vec<Diagnostic>,
    /// Modules already loaded, by key (stdlib name or canonical path): their definitions.
    modules: BTreeMap<String, Option<BTreeMap<String, Def>>>,
    /// The chain of modules being loaded, for cycle detection.
    stack: Vec<String>,
    /// The current experiment's rejected parameters (see [`Space::rejected`]).
    rejected: BTreeMap<String, BTreeSet<String>>,
    /// Every item of every imported module, under its qualified name (`std::blocks::conv_bn`).
    hidden: BTreeMap<String, Def>,
    /// The qualified name of each name a `use` imported, by the file and name of the `use`.
    qualified: BTreeMap<(FileId, String), String>,
}

fn module_key(source: &Source) -> String {
    match &source.path {
        Some(p) => p.canonicalize().unwrap_or_else(|_| p.clone()).display().to_string(),
        None => source.name.clone(),
    }
}

fn duplicate(what: &str, name: &ast::Ident, prev: Span) -> Diagnostic {
    Diagnostic::error(
        Code::DuplicateName,
        format!("{what} `{}` is defined twice", name.name),
        name.span,
        "defined again here",
    )
    .with_label(prev, "first defined here")
}

impl Lowerer<'_> {
    fn define(&mut self, program: &mut Program, origins: &mut BTreeMap<String, Span>, name: ast::Ident, def: Def) {
        if let Some(prev) = origins.get(&name.name) {
            self.diags.push(duplicate("item", &name, *prev));
            return;
        }
        origins.insert(name.name.clone(), name.span);
        match def {
            Def::Block(b) => {
                program.blocks.insert(name.name, b);
            }
            Def::Fn(f) => {
                program.fns.insert(name.name, f);
            }
        }
    }

    /// Resolves one `use` in file `from`: the imported names with their definitions.
    fn import(&mut self, from: FileId, u: &ast::Use) -> Vec<(ast::Ident, Def)> {
        let Some(first) = u.module.first() else { return Vec::new() };
        let module_span =
            u.module.first().map(|f| f.span.to(u.module.last().map_or(f.span, |l| l.span))).unwrap_or(u.span);
        let (key, loaded) = if first.name == "std" {
            let rest: Vec<&str> = u.module[1..].iter().map(|i| i.name.as_str()).collect();
            let name = rest.join("::");
            match stdlib::module(&name) {
                Some((display, text)) => (display.to_string(), Some((Source::new(display, text), None))),
                None => {
                    let candidates: Vec<String> = stdlib::MODULES.iter().map(|(n, _, _)| format!("std::{n}")).collect();
                    let wanted = format!("std::{name}");
                    self.diags.push(
                        Diagnostic::error(
                            Code::UnknownImport,
                            format!("no module `{wanted}` in the standard library"),
                            module_span,
                            "no such module",
                        )
                        .suggest(&wanted, candidates.iter().map(String::as_str)),
                    );
                    return Vec::new();
                }
            }
        } else {
            let base = self
                .sources
                .get(from)
                .and_then(|s| s.path.as_ref())
                .and_then(|p| p.parent())
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let mut path = base;
            for seg in &u.module {
                path.push(&seg.name);
            }
            path.set_extension("bma");
            let key = path.canonicalize().unwrap_or_else(|_| path.clone()).display().to_string();
            if self.modules.contains_key(&key) || self.stack.contains(&key) {
                (key, None)
            } else {
                match self.loader.read(&path) {
                    Ok(text) => (key, Some((Source::from_path(&path, text), Some(path)))),
                    Err(e) => {
                        let shown = display_path(&path);
                        self.diags.push(
                            Diagnostic::error(
                                Code::UnknownImport,
                                format!("cannot read module `{shown}`"),
                                module_span,
                                format!("{e}"),
                            )
                            .with_help(format!(
                                "`use a::b` reads `a/b.bma` next to the importing file; looked for {shown}"
                            )),
                        );
                        return Vec::new();
                    }
                }
            }
        };
        if self.stack.contains(&key) {
            let mut cycle: Vec<String> = self.stack.iter().skip_while(|k| **k != key).map(|k| short_name(k)).collect();
            cycle.push(short_name(&key));
            self.diags.push(
                Diagnostic::error(
                    Code::ImportCycle,
                    "imports form a cycle",
                    module_span,
                    "this import leads back here",
                )
                .with_help(format!("the cycle: {}", cycle.join(" → "))),
            );
            return Vec::new();
        }
        if let Some((source, _)) = loaded {
            let id = self.sources.add(source);
            let text = self.sources.get(id).map(|s| s.text.clone()).unwrap_or_default();
            let defs = match syntax::parse(id, &text) {
                Ok(file) => {
                    self.stack.push(key.clone());
                    // Inside a module, its own items and the names it imports (which it
                    // does not re-export) are renamed to unique qualified names, so that
                    // its blocks expand the same wherever they are imported.
                    let mut renames: BTreeMap<String, String> = BTreeMap::new();
                    for item in &file.items {
                        match item {
                            ast::Item::Use(inner) => {
                                for (name, _) in self.import(id, inner) {
                                    if let Some(q) = self.qualified.get(&(name.span.file, name.name.clone())) {
                                        renames.insert(name.name.clone(), q.clone());
                                    }
                                }
                            }
                            ast::Item::Block(ast::Block { name, .. }) | ast::Item::Fn(ast::FnDef { name, .. }) => {
                                renames.insert(name.name.clone(), format!("{}::{}", short_name(&key), name.name));
                            }
                            ast::Item::Experiment(_) => {}
                        }
                    }
                    let mut defs = BTreeMap::new();
                    for item in &file.items {
                        let (name, def) = match item {
                            ast::Item::Block(b) => {
                                let mut b = b.clone();
                                rename::block(&mut b, &renames);
                                (b.name.name.clone(), Def::Block(b))
                            }
                            ast::Item::Fn(f) => {
                                let mut f = f.clone();
                                rename::fn_def(&mut f, &renames);
                                (f.name.name.clone(), Def::Fn(f))
                            }
                            _ => continue,
                        };
                        if let Some(q) = renames.get(&name) {
                            self.hidden.entry(q.clone()).or_insert_with(|| def.clone());
                        }
                        defs.insert(name, def);
                    }
                    self.stack.pop();
                    Some(defs)
                }
                Err(d) => {
                    self.diags.push(d);
                    None
                }
            };
            self.modules.insert(key.clone(), defs);
        }
        let Some(Some(defs)) = self.modules.get(&key) else { return Vec::new() };
        let defs = defs.clone();
        let mut out = Vec::new();
        for name in &u.names {
            match defs.get(&name.name) {
                Some(def) => {
                    self.qualified
                        .insert((name.span.file, name.name.clone()), format!("{}::{}", short_name(&key), name.name));
                    out.push((name.clone(), def.clone()));
                }
                None => self.diags.push(
                    Diagnostic::error(
                        Code::UnknownImport,
                        format!("`{}` is not defined in `{}`", name.name, short_name(&key)),
                        name.span,
                        "not found in the module",
                    )
                    .suggest(&name.name, defs.keys().map(String::as_str)),
                ),
            }
        }
        out
    }

    fn experiment(&mut self, e: &ast::Experiment, program: &Program) -> Experiment {
        let mut exp = Experiment {
            name: e.name.name.clone(),
            span: e.span,
            name_span: e.name.span,
            doc: e.doc.clone(),
            data: None,
            space: Space::default(),
            model: None,
            train: Vec::new(),
            search: Vec::new(),
            report: Vec::new(),
            objectives: Vec::new(),
            constraints: Vec::new(),
            rank: None,
            average: Vec::new(),
            trial: None,
            sections: BTreeMap::new(),
        };
        for section in &e.sections {
            let name = section.kind.as_str();
            if let Some(prev) = exp.sections.get(name) {
                self.diags.push(
                    Diagnostic::error(
                        Code::DuplicateSection,
                        format!("section `{name}` is written twice"),
                        section.keyword,
                        "written again here",
                    )
                    .with_label(*prev, "first written here")
                    .with_help("merge the two into one section"),
                );
                continue;
            }
            exp.sections.insert(name, section.keyword);
            match &section.body {
                SectionBody::Data(expr) => {
                    exp.data = Some(Setting { key: "data".into(), key_span: section.keyword, value: expr.clone() })
                }
                SectionBody::Space(items) => exp.space = self.space(items, program),
                SectionBody::Model(body) => exp.model = Some(body.clone()),
                SectionBody::Assigns(assigns) => {
                    let settings = self.settings(assigns, name);
                    match section.kind {
                        ast::SectionKind::Train => exp.train = settings,
                        ast::SectionKind::Search => exp.search = settings,
                        _ => exp.report = settings,
                    }
                }
                SectionBody::Objective(items) => self.objective(items, &mut exp),
                SectionBody::Average(exprs) => exp.average = exprs.clone(),
                SectionBody::Trial(items) => exp.trial = Some(self.trial(items, section.keyword)),
            }
        }
        exp
    }

    fn settings(&mut self, assigns: &[ast::Assign], section: &str) -> Vec<Setting> {
        let mut out: Vec<Setting> = Vec::new();
        for a in assigns {
            if let Some(prev) = out.iter().find(|s| s.key == a.key.name) {
                self.diags.push(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("`{}` is set twice in `{section}`", a.key.name),
                        a.key.span,
                        "set again here",
                    )
                    .with_label(prev.key_span, "first set here"),
                );
                continue;
            }
            out.push(Setting { key: a.key.name.clone(), key_span: a.key.span, value: a.value.clone() });
        }
        out
    }

    fn trial(&mut self, items: &[ast::TrialItem], keyword: Span) -> super::Trial {
        let assigns: Vec<ast::Assign> = items
            .iter()
            .filter_map(|i| match i {
                ast::TrialItem::Assign(a) => Some(a.clone()),
                ast::TrialItem::Record { .. } => None,
            })
            .collect();
        let mut trial =
            super::Trial { span: keyword, settings: self.settings(&assigns, "trial"), env: Vec::new(), env_span: None };
        for item in items {
            let ast::TrialItem::Record { key, fields, .. } = item else { continue };
            if key.name != "env" {
                self.diags.push(
                    Diagnostic::error(
                        Code::UnknownSetting,
                        format!("`trial` has no record `{}`", key.name),
                        key.span,
                        "only `env` takes `{ NAME: value }`",
                    )
                    .suggest(&key.name, ["env"]),
                );
                continue;
            }
            if let Some(prev) = trial.env_span {
                self.diags.push(
                    Diagnostic::error(Code::DuplicateName, "`env` is set twice in `trial`", key.span, "set again here")
                        .with_label(prev, "first set here"),
                );
                continue;
            }
            trial.env_span = Some(key.span);
            for (name, value) in fields {
                if let Some((_, prev, _)) = trial.env.iter().find(|(n, _, _)| *n == name.name) {
                    self.diags.push(
                        Diagnostic::error(
                            Code::DuplicateName,
                            format!("`{}` is set twice in `env`", name.name),
                            name.span,
                            "set again here",
                        )
                        .with_label(*prev, "first set here"),
                    );
                    continue;
                }
                trial.env.push((name.name.clone(), name.span, value.clone()));
            }
        }
        trial
    }

    fn objective(&mut self, items: &[ast::ObjectiveItem], exp: &mut Experiment) {
        for item in items {
            match item {
                ast::ObjectiveItem::Goal { direction, name, metric, on, span } => {
                    // Named (`minimize loss = a^2 + b^2`): the name; else the metric's text.
                    let name = match name {
                        Some(n) => n.name.clone(),
                        None => self.sources.text(metric.span).to_string(),
                    };
                    exp.objectives.push(Objective {
                        direction: *direction,
                        metric: metric.clone(),
                        split: on.as_ref().map(|o| o.name.clone()),
                        name,
                        span: *span,
                    });
                }
                ast::ObjectiveItem::Require { expr, span } => match &expr.kind {
                    ast::ExprKind::Binary(op, lhs, rhs)
                        if op.is_comparison() && !matches!(op, ast::BinaryOp::Eq | ast::BinaryOp::Ne) =>
                    {
                        exp.constraints.push(Constraint {
                            lhs: (**lhs).clone(),
                            op: *op,
                            bound: (**rhs).clone(),
                            name: self.sources.text(expr.span).to_string(),
                            span: *span,
                        })
                    }
                    _ => self.diags.push(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            "`require` needs a comparison",
                            expr.span,
                            "not a `<=`, `<`, `>=` or `>` comparison",
                        )
                        .with_help("write it as `require params <= 60k`"),
                    ),
                },
                ast::ObjectiveItem::Assign(a) if a.key.name == "rank" => {
                    if let Some(prev) = &exp.rank {
                        self.diags.push(
                            Diagnostic::error(Code::DuplicateName, "`rank` is set twice", a.key.span, "set again here")
                                .with_label(prev.key_span, "first set here"),
                        );
                    } else {
                        exp.rank = Some(Setting { key: "rank".into(), key_span: a.key.span, value: a.value.clone() });
                    }
                }
                ast::ObjectiveItem::Assign(a) => self.diags.push(
                    Diagnostic::error(
                        Code::UnknownSetting,
                        format!("`objective` has no setting `{}`", a.key.name),
                        a.key.span,
                        "unknown setting",
                    )
                    .suggest(&a.key.name, ["rank"])
                    .with_help_if_none(
                        "the objective section holds `maximize`, `minimize`, `require` and `rank = ...`",
                    ),
                ),
            }
        }
    }

    fn space(&mut self, items: &[SpaceItem], program: &Program) -> Space {
        let mut params = Vec::new();
        self.space_items(items, &mut Vec::new(), &mut params, program);
        // Duplicates.
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        let mut unique = Vec::new();
        for p in params {
            if let Some(prev) = seen.get(&p.name) {
                self.diags.push(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("parameter `{}` is declared twice", p.name),
                        name_span(&p),
                        "declared again here",
                    )
                    .with_label(*prev, "first declared here")
                    .with_help("a parameter has one domain; give the second one another name"),
                );
                continue;
            }
            seen.insert(p.name.clone(), name_span(&p));
            unique.push(p);
        }
        Space { params: self.sort(unique), rejected: std::mem::take(&mut self.rejected) }
    }

    /// Orders parameters so that each comes after those its guard and value name.
    fn sort(&mut self, params: Vec<Param>) -> Vec<Param> {
        let index: BTreeMap<&str, usize> = params.iter().enumerate().map(|(i, p)| (p.name.as_str(), i)).collect();
        let mut graph = DiGraph::<usize, ()>::new();
        let nodes: Vec<_> = (0..params.len()).map(|i| graph.add_node(i)).collect();
        for (i, p) in params.iter().enumerate() {
            let mut deps = BTreeSet::new();
            for g in &p.guard {
                names_in(g, &mut deps);
            }
            if let ParamKind::Derived(e) = &p.kind {
                names_in(e, &mut deps);
            }
            for d in deps {
                if let Some(&j) = index.get(d.as_str())
                    && j != i
                {
                    graph.add_edge(nodes[j], nodes[i], ());
                } else if index.get(d.as_str()) == Some(&i) && matches!(p.kind, ParamKind::Derived(_)) {
                    self.diags.push(Diagnostic::error(
                        Code::CyclicDefinition,
                        format!("`{}` is defined in terms of itself", p.name),
                        p.span,
                        "refers to itself",
                    ));
                }
            }
        }
        if petgraph::algo::toposort(&graph, None).is_err() {
            for scc in petgraph::algo::tarjan_scc(&graph) {
                let mut members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
                if members.len() < 2 {
                    continue;
                }
                members.sort_unstable();
                let names: Vec<String> = members.iter().map(|&i| format!("`{}`", params[i].name)).collect();
                let first = &params[members[0]];
                let mut d = Diagnostic::error(
                    Code::CyclicDefinition,
                    format!("{} depend on each other in a circle", join_and(&names)),
                    name_span(first),
                    "defined in terms of the others",
                );
                for &i in &members[1..] {
                    d = d.with_label(name_span(&params[i]), "part of the circle");
                }
                self.diags
                    .push(d.with_help("`let` values and `when` conditions must not depend on each other in a circle"));
            }
            return params;
        }
        // Kahn's algorithm, always taking the earliest declared ready parameter,
        // so that the order stays the source order wherever it can.
        let mut placed = vec![false; params.len()];
        let mut order = Vec::with_capacity(params.len());
        while order.len() < params.len() {
            let Some(next) = (0..params.len()).find(|&i| {
                !placed[i]
                    && graph.neighbors_directed(nodes[i], petgraph::Direction::Incoming).all(|d| placed[graph[d]])
            }) else {
                break;
            };
            placed[next] = true;
            order.push(next);
        }
        let mut slots: Vec<Option<Param>> = params.into_iter().map(Some).collect();
        order.into_iter().filter_map(|i| slots[i].take()).collect()
    }

    fn space_items(
        &mut self,
        items: &[SpaceItem],
        guard: &mut Vec<ast::Expr>,
        out: &mut Vec<Param>,
        program: &Program,
    ) {
        for item in items {
            match item {
                SpaceItem::When { cond, items, .. } => {
                    guard.push(cond.clone());
                    self.space_items(items, guard, out, program);
                    guard.pop();
                }
                SpaceItem::Let { name, value, doc, span } => out.push(Param {
                    name: name.name.clone(),
                    span: name.span.to(*span),
                    name_span: name.span,
                    doc: doc.clone(),
                    kind: ParamKind::Derived(value.clone()),
                    guard: guard.clone(),
                }),
                SpaceItem::Const { name, value, doc, span } => {
                    let v = match self.constant(value, program) {
                        Some(v) => v,
                        None => {
                            self.reject(name, std::slice::from_ref(value));
                            continue;
                        }
                    };
                    out.push(Param {
                        name: name.name.clone(),
                        span: name.span.to(*span),
                        name_span: name.span,
                        doc: doc.clone(),
                        kind: ParamKind::Const(v),
                        guard: guard.clone(),
                    })
                }
                SpaceItem::Param { name, ty, domain, doc, span } => {
                    if let Some(d) = self.domain(name, *ty, domain, program) {
                        out.push(Param {
                            name: name.name.clone(),
                            span: name.span.to(*span),
                            name_span: name.span,
                            doc: doc.clone(),
                            kind: ParamKind::Free(d),
                            guard: guard.clone(),
                        });
                    } else {
                        let exprs: Vec<ast::Expr> = match domain {
                            ast::Domain::Choice { values, .. } => values.clone(),
                            ast::Domain::Range { lo, hi, step, .. } => {
                                [Some(lo), Some(hi), step.as_ref()].into_iter().flatten().cloned().collect()
                            }
                        };
                        self.reject(name, &exprs);
                    }
                }
            }
        }
    }

    /// Remembers a parameter whose declaration failed (already reported).
    fn reject(&mut self, name: &ast::Ident, exprs: &[ast::Expr]) {
        let mut names = BTreeSet::new();
        for e in exprs {
            names_in(e, &mut names);
        }
        self.rejected.entry(name.name.clone()).or_default().extend(names);
    }

    /// Evaluates a value that must not depend on any parameter.
    fn constant(&mut self, e: &ast::Expr, program: &Program) -> Option<Value> {
        let mut names = BTreeSet::new();
        names_in(e, &mut names);
        let env = super::PointEnv { point: &BTreeMap::new(), fns: &program.fns, data: None };
        match eval(e, &env) {
            Ok(v) => Some(v),
            Err(err) => {
                self.diags.push(Diagnostic::error(
                    Code::NonConstant,
                    "cannot evaluate this value",
                    err.span,
                    err.message,
                ));
                None
            }
        }
    }

    fn number(&mut self, e: &ast::Expr, program: &Program, what: &str) -> Option<Value> {
        let v = self.constant(e, program)?;
        match v {
            Value::Int(_) | Value::Float(_) => Some(v),
            Value::Sym(s) => {
                self.diags.push(
                    Diagnostic::error(
                        Code::NonConstant,
                        format!("{what} must be a constant number"),
                        e.span,
                        format!("`{}` is not a constant", s.sym),
                    )
                    .with_help(
                        "domains are fixed before the search starts; use `let` to derive a value from other parameters",
                    ),
                );
                None
            }
            other => {
                self.diags.push(Diagnostic::error(
                    Code::TypeMismatch,
                    format!("{what} must be a number"),
                    e.span,
                    format!("this is a {}", other.type_name()),
                ));
                None
            }
        }
    }

    fn domain(
        &mut self,
        name: &ast::Ident,
        ty: Option<(ast::TypeName, Span)>,
        d: &ast::Domain,
        program: &Program,
    ) -> Option<Domain> {
        match d {
            ast::Domain::Choice { values, span } => self.choice_domain(name, ty, values, *span, program),
            ast::Domain::Range { .. } => self.range_domain(name, ty, d, program),
        }
    }

    /// `name: T in {a, b, ...}`: the values, converted to the declared type, duplicates warned.
    fn choice_domain(
        &mut self,
        name: &ast::Ident,
        ty: Option<(ast::TypeName, Span)>,
        values: &[ast::Expr],
        span: Span,
        program: &Program,
    ) -> Option<Domain> {
        if values.is_empty() {
            self.diags.push(Diagnostic::error(
                Code::EmptyRange,
                format!("`{}` has no values to choose from", name.name),
                span,
                "empty choice",
            ));
            return None;
        }
        let mut out: Vec<Value> = Vec::new();
        for e in values {
            let v = self.constant(e, program)?;
            let v = self.choice_value(name, ty, e, v)?;
            if out.iter().any(|o| o.loosely_eq(&v)) {
                self.diags.push(Diagnostic::warning(
                    Code::DuplicateName,
                    format!("`{v}` is listed twice in `{}`", name.name),
                    e.span,
                    "listed again here",
                ));
                continue;
            }
            out.push(v);
        }
        Some(Domain::Choice(out))
    }

    /// One listed value as the declared type `ty` takes it.
    fn choice_value(
        &mut self,
        name: &ast::Ident,
        ty: Option<(ast::TypeName, Span)>,
        e: &ast::Expr,
        v: Value,
    ) -> Option<Value> {
        use ast::TypeName as T;
        Some(match (ty.map(|t| t.0), v) {
            (Some(T::Float), Value::Int(i)) => Value::Float(i as f64),
            (Some(T::Int), Value::Float(f)) if f.fract() != 0.0 => {
                self.diags.push(type_mismatch_value(name, "int", e.span, "a float", ty));
                return None;
            }
            (Some(T::Int), Value::Float(f)) => Value::Int(f as i64),
            (Some(t @ (T::Int | T::Float)), v @ (Value::Sym(_) | Value::Str(_) | Value::Bool(_) | Value::Call(_))) => {
                self.diags.push(type_mismatch_value(name, t.as_str(), e.span, &format!("a {}", v.type_name()), ty));
                return None;
            }
            (Some(T::Bool), v) if !matches!(v, Value::Bool(_)) => {
                self.diags.push(type_mismatch_value(name, "bool", e.span, &format!("a {}", v.type_name()), ty));
                return None;
            }
            (_, v) => v,
        })
    }

    /// `name: T in lo..hi [log] [step s]`.
    fn range_domain(
        &mut self,
        name: &ast::Ident,
        ty: Option<(ast::TypeName, Span)>,
        d: &ast::Domain,
        program: &Program,
    ) -> Option<Domain> {
        use ast::TypeName as T;
        let ast::Domain::Range { lo, hi, inclusive, log, step, span } = d else { return None };
        let lo_v = self.number(lo, program, "a range bound");
        let hi_v = self.number(hi, program, "a range bound");
        let step_v = match step {
            Some(s) => Some(self.number(s, program, "a step")?),
            None => None,
        };
        let (lo_v, hi_v) = (lo_v?, hi_v?);
        if matches!(ty.map(|t| t.0), Some(T::Bool | T::Layer | T::Symbol | T::String)) {
            let t = ty.map_or("", |t| t.0.as_str());
            self.diags.push(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("a `{t}` parameter cannot take a range"),
                    *span,
                    "a numeric range",
                )
                .with_help(format!("list the values instead: `{}: {t} in {{...}}`", name.name)),
            );
            return None;
        }
        let is_int = self.range_is_int(name, ty, (&lo_v, lo), (&hi_v, hi), step_v.as_ref())?;
        let lo_f = lo_v.as_f64().unwrap_or(0.0);
        let hi_f = hi_v.as_f64().unwrap_or(0.0);
        self.range_holds_values(name, d, (&lo_v, lo_f), (&hi_v, hi_f), is_int)?;
        if let Some(s) = &step_v {
            self.step_fits(name, ty, d, s, hi_f - lo_f, is_int)?;
        }
        if is_int {
            let l = lo_v.as_i64().unwrap_or(0);
            let h = hi_v.as_i64().unwrap_or(0) - i64::from(!*inclusive);
            Some(Domain::Int { lo: l, hi: h, log: log.is_some(), step: step_v.and_then(|s| s.as_i64()).unwrap_or(1) })
        } else {
            Some(Domain::Float { lo: lo_f, hi: hi_f, log: log.is_some(), step: step_v.and_then(|s| s.as_f64()) })
        }
    }

    /// Whether a range is of ints: its declared type, else its bounds and step.
    fn range_is_int(
        &mut self,
        name: &ast::Ident,
        ty: Option<(ast::TypeName, Span)>,
        lo: (&Value, &ast::Expr),
        hi: (&Value, &ast::Expr),
        step: Option<&Value>,
    ) -> Option<bool> {
        use ast::TypeName as T;
        Some(match ty.map(|t| t.0) {
            Some(T::Int) => {
                for (v, e) in [lo, hi] {
                    if v.as_i64().is_none() {
                        let what = match v.as_f64() {
                            Some(f) if f.fract() == 0.0 => "a bound too large for an int (more than 9e15)",
                            _ => "a fractional bound",
                        };
                        self.diags.push(type_mismatch_value(name, "int", e.span, what, ty));
                        return None;
                    }
                }
                true
            }
            Some(_) => false,
            None => {
                matches!((lo.0, hi.0), (Value::Int(_), Value::Int(_)))
                    && step.is_none_or(|s| matches!(s, Value::Int(_)))
            }
        })
    }

    /// A range that runs forward, holds a value, and (on a log scale) stays positive.
    fn range_holds_values(
        &mut self,
        name: &ast::Ident,
        d: &ast::Domain,
        (lo_v, lo_f): (&Value, f64),
        (hi_v, hi_f): (&Value, f64),
        is_int: bool,
    ) -> Option<()> {
        let ast::Domain::Range { inclusive, log, span, .. } = d else { return None };
        let range_text = format!("{}..{}{}", lo_v, if *inclusive { "=" } else { "" }, hi_v);
        if lo_f > hi_f {
            self.diags.push(
                Diagnostic::error(
                    Code::InvertedRange,
                    format!("the range of `{}` runs backwards", name.name),
                    *span,
                    format!("{range_text} goes from high to low"),
                )
                .with_help(format!("write `{hi_v}..{}{lo_v}`", if *inclusive { "=" } else { "" })),
            );
            return None;
        }
        let empty = if is_int {
            let (l, h) = (lo_v.as_i64().unwrap_or(0), hi_v.as_i64().unwrap_or(0));
            if *inclusive { l > h } else { l >= h }
        } else {
            lo_f == hi_f
        };
        if empty {
            self.diags.push(
                Diagnostic::error(
                    Code::EmptyRange,
                    format!("the range of `{}` is empty", name.name),
                    *span,
                    format!("{range_text} holds no value"),
                )
                .with_help(if *inclusive || !is_int {
                    "widen the range, or pin the value with `name = value`".to_string()
                } else {
                    format!("`..` excludes the upper bound: did you mean `{lo_v}..={hi_v}`?")
                }),
            );
            return None;
        }
        if let Some(log_span) = log
            && lo_f <= 0.0
        {
            self.diags.push(
                Diagnostic::error(
                    Code::NonPositiveLog,
                    format!("the log range of `{}` reaches {lo_v}", name.name),
                    *span,
                    "starts at or below zero",
                )
                .with_label(*log_span, "log scale asked here")
                .with_help("a log scale needs a positive lower bound, e.g. `1e-4..1e-1 log`"),
            );
            return None;
        }
        Some(())
    }

    /// A range's step: positive, no larger than the range, not with `log`, an int for ints.
    fn step_fits(
        &mut self,
        name: &ast::Ident,
        ty: Option<(ast::TypeName, Span)>,
        d: &ast::Domain,
        s: &Value,
        width: f64,
        is_int: bool,
    ) -> Option<()> {
        let ast::Domain::Range { log, step, span, .. } = d else { return None };
        let sf = s.as_f64().unwrap_or(0.0);
        let sspan = step.as_ref().map_or(*span, |e| e.span);
        if sf <= 0.0 {
            self.diags.push(Diagnostic::error(
                Code::BadStep,
                format!("the step of `{}` must be positive", name.name),
                sspan,
                format!("step {s}"),
            ));
            return None;
        }
        if sf > width {
            self.diags.push(
                Diagnostic::error(
                    Code::BadStep,
                    format!("the step of `{}` is larger than its range", name.name),
                    sspan,
                    format!("step {s} > {width}"),
                )
                .with_help("with this step the range holds one value; pin it with `name = value` instead"),
            );
            return None;
        }
        if log.is_some() {
            self.diags.push(
                Diagnostic::error(
                    Code::BadStep,
                    format!("`{}` has both `log` and `step`", name.name),
                    sspan,
                    "step here",
                )
                .with_help("a stepped range is evenly spaced; drop `log` or `step`"),
            );
            return None;
        }
        if is_int && s.as_i64().is_none() {
            self.diags.push(type_mismatch_value(name, "int", sspan, "a fractional step", ty));
            return None;
        }
        Some(())
    }
}

fn type_mismatch_value(
    name: &ast::Ident,
    expected: &str,
    span: Span,
    found: &str,
    ty: Option<(ast::TypeName, Span)>,
) -> Diagnostic {
    let d = Diagnostic::error(
        Code::TypeMismatch,
        format!("`{}` is declared `{expected}` but this is {found}", name.name),
        span,
        found.to_string(),
    );
    match ty {
        Some((_, s)) => d.with_label(s, format!("declared `{expected}` here")),
        None => d,
    }
}

fn name_span(p: &Param) -> Span {
    p.name_span
}

fn display_path(p: &Path) -> String {
    let cwd: PathBuf = std::env::current_dir().unwrap_or_default();
    p.strip_prefix(&cwd).unwrap_or(p).display().to_string()
}

fn short_name(key: &str) -> String {
    if key.starts_with("std::") {
        return key.to_string();
    }
    display_path(Path::new(key))
}

/// Every bare name an expression refers to (not field names, not call heads that are builtins).
pub fn names_in(e: &ast::Expr, out: &mut BTreeSet<String>) {
    e.walk(&mut |x| {
        if let ast::ExprKind::Name(n) = &x.kind {
            out.insert(n.clone());
        }
    });
}

trait HelpIfNone {
    fn with_help_if_none(self, help: &str) -> Self;
}

impl HelpIfNone for Diagnostic {
    fn with_help_if_none(self, help: &str) -> Self {
        if self.help.is_none() { self.with_help(help) } else { self }
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Renaming the names a module's items refer to (see `Lowerer::import`).
mod rename {
    use std::collections::BTreeMap;

    use crate::ast::{self, ExprKind, Stmt};

    type Renames = BTreeMap<String, String>;

    pub(super) fn block(b: &mut ast::Block, r: &Renames) {
        let r = without_params(r, &b.params);
        for p in &mut b.params {
            p.default.iter_mut().for_each(|e| expr(e, &r));
        }
        body(&mut b.body, &r);
    }

    pub(super) fn fn_def(f: &mut ast::FnDef, r: &Renames) {
        let r = without_params(r, &f.params);
        for p in &mut f.params {
            p.default.iter_mut().for_each(|e| expr(e, &r));
        }
        expr(&mut f.body, &r);
    }

    /// Parameters shadow the module's items.
    fn without_params(r: &Renames, params: &[ast::ParamDecl]) -> Renames {
        r.iter()
            .filter(|(k, _)| !params.iter().any(|p| &p.name.name == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn body(b: &mut ast::Body, r: &Renames) {
        for s in &mut b.stmts {
            stmt(s, r);
        }
    }

    fn stmt(s: &mut Stmt, r: &Renames) {
        match s {
            Stmt::Chain(c) | Stmt::Let { chain: c, .. } => {
                for call in &mut c.links {
                    if let Some(q) = r.get(&call.name.name) {
                        call.name.name = q.clone();
                    }
                    for a in call.args.iter_mut().flatten() {
                        expr(&mut a.value, r);
                    }
                }
            }
            Stmt::Repeat { from, count, body: b, .. } => {
                from.iter_mut().for_each(|e| expr(e, r));
                expr(count, r);
                body(b, r);
            }
            Stmt::Match { scrutinee, arms, .. } => {
                expr(scrutinee, r);
                for a in arms {
                    body(&mut a.body, r);
                }
            }
            Stmt::If { cond, then, otherwise, .. } => {
                expr(cond, r);
                body(then, r);
                otherwise.iter_mut().for_each(|b| body(b, r));
            }
            Stmt::Residual { body: b, .. } => body(b, r),
            Stmt::Parallel { branches, .. } => branches.iter_mut().for_each(|b| body(b, r)),
        }
    }

    fn expr(e: &mut ast::Expr, r: &Renames) {
        match &mut e.kind {
            ExprKind::Name(n) => {
                if let Some(q) = r.get(n.as_str()) {
                    *n = q.clone();
                }
            }
            ExprKind::Number(..) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
            ExprKind::List(items) => items.iter_mut().for_each(|i| expr(i, r)),
            ExprKind::Unary(_, a) | ExprKind::Field(a, _) => expr(a, r),
            ExprKind::Binary(_, a, b) => {
                expr(a, r);
                expr(b, r);
            }
            ExprKind::Call(callee, args) => {
                expr(callee, r);
                args.iter_mut().for_each(|a| expr(&mut a.value, r));
            }
            ExprKind::If(c, a, b) => {
                expr(c, r);
                expr(a, r);
                expr(b, r);
            }
            ExprKind::Match(s, arms) => {
                expr(s, r);
                arms.iter_mut().for_each(|a| expr(&mut a.value, r));
            }
        }
    }
}
