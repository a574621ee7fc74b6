//! The settings checks: each section's keys, and each value against what its key
//! accepts — a type, or an entry of a catalogue (`crate::catalogue`) with its arguments.
//! The catalogue is the one list of the names; the keys of each section are here.

use std::collections::BTreeMap;

use super::facts::Fact;
use super::{HelpDefault, Ty, Walker, Want, name_span, or_list};
use crate::ast::{self, ExprKind};
use crate::catalogue::{self, Concept};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Domain, Experiment, ParamKind, Value};

const TRAIN_KEYS: [&str; 10] =
    ["optimizer", "schedule", "epochs", "batch", "loss", "early_stop", "init", "seed", "augment", "precision"];
const SEARCH_KEYS: [&str; 6] = ["strategy", "trials", "time", "parallel", "seed", "prune"];
const REPORT_KEYS: [&str; 3] = ["top", "out", "save"];

/// The keys `section` (`train`, `search` or `report`) takes; none for another.
pub fn section_keys(section: &str) -> &'static [&'static str] {
    match section {
        "train" => &TRAIN_KEYS,
        "search" => &SEARCH_KEYS,
        "report" => &REPORT_KEYS,
        _ => &[],
    }
}

impl Walker<'_> {
    pub(super) fn settings(
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

    pub(super) fn train(&mut self, exp: &Experiment) {
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
            if s.key == "augment" {
                // A list of entries (or one), each checked like any catalogue value.
                let items = match &s.value.kind {
                    ExprKind::List(items) => items.iter().collect(),
                    _ => vec![&s.value],
                };
                for item in items {
                    w.value(item, Want::OneOf(Concept::Augment), "augmentation");
                }
                return;
            }
            let want = match s.key.as_str() {
                "optimizer" => Want::OneOf(Concept::Optimizer),
                "schedule" => Want::OneOf(Concept::Schedule),
                "loss" => Want::OneOf(Concept::Loss),
                "init" => Want::OneOf(Concept::Init),
                "precision" => Want::OneOf(Concept::Precision),
                "early_stop" => Want::OneOf(Concept::EarlyStop),
                _ => Want::Int,
            };
            w.value(&s.value, want, &s.key);
            if s.key == "optimizer" {
                w.hypergradient(&s.value);
            }
            if matches!(s.key.as_str(), "epochs" | "batch") {
                w.positive_constant(&s.value, &s.key);
            }
        });
    }

    /// Each `augment` entry against the data's shape: an image operation needs `[c, h, w]`.
    pub(super) fn augment_fits(&mut self, exp: &Experiment, data: &ir::DataInfo) {
        for s in exp.train.iter().filter(|s| s.key == "augment") {
            let items: Vec<&ast::Expr> = match &s.value.kind {
                ExprKind::List(items) => items.iter().collect(),
                _ => vec![&s.value],
            };
            for item in items {
                let name = match &item.kind {
                    ExprKind::Name(n) => n.clone(),
                    ExprKind::Call(callee, _) => ir::dotted(callee).unwrap_or_default(),
                    _ => continue,
                };
                let Some(kind) = catalogue::kind(catalogue::AUGMENTS, &name) else { continue };
                if let Some(why) = catalogue::augment_unfit(kind, &data.shape) {
                    self.diags.push(
                        Diagnostic::error(
                            Code::InvalidValue,
                            why,
                            item.span,
                            format!("`{name}` does not fit this data"),
                        )
                        .with_help("`noise(std:)` applies to any data; remove the others"),
                    );
                }
            }
        }
    }

    pub(super) fn search(&mut self, exp: &Experiment) {
        self.constant_only = true;
        self.settings(&exp.search, "search", &SEARCH_KEYS, &mut |w, s| {
            let want = match s.key.as_str() {
                "strategy" => Want::OneOf(Concept::Strategy),
                "prune" => Want::OneOf(Concept::Pruner),
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

    pub(super) fn report(&mut self, exp: &Experiment) {
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

    pub(super) fn positive_constant(&mut self, e: &ast::Expr, key: &str) {
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

    pub(super) fn objective(&mut self, exp: &Experiment) {
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
                ExprKind::Call(callee, args)
                    if callee.as_name().and_then(|n| catalogue::kind(catalogue::RANKS, n))
                        == Some(catalogue::Rank::Weighted) =>
                {
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
                _ => self.value(&rank.value, Want::OneOf(Concept::Rank), "rank"),
            }
        }
        self.metrics = false;
    }

    pub(super) fn metric_expr(&mut self, e: &ast::Expr, exp: &Experiment) {
        let t = self.expr(e);
        match &t {
            Ty::Bare(n, s) => {
                let mut cands: Vec<&str> = if exp.model.is_some() { Concept::Metric.names() } else { Vec::new() };
                cands.extend(exp.space.params.iter().map(|p| p.name.as_str()));
                let reports = exp.trial.as_ref().map(ir::Trial::reports).unwrap_or_default();
                cands.extend(reports.iter().map(|(n, _)| n.as_str()));
                self.diags.push(
                    Diagnostic::error(
                        Code::UnknownMetric,
                        format!("unknown metric `{n}`"),
                        *s,
                        "not a metric or parameter",
                    )
                    .suggest(n, cands)
                    .with_help_default(&match &exp.trial {
                        Some(_) => format!(
                            "the command reports {}",
                            reports.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                        None => format!("the metrics are {}", Concept::Metric.names().join(", ")),
                    }),
                );
            }
            _ => self.need(&t, e, Want::Number),
        }
    }

    pub(super) fn average(&mut self, exp: &Experiment) {
        for e in &exp.average {
            self.metrics = true;
            self.value(e, Want::OneOf(Concept::Average), "average");
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
    pub(super) fn value(&mut self, e: &ast::Expr, want: Want, what: &str) {
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
            Want::OneOf(concept) => self.ctor(e, concept, what),
            Want::Syms(options) => self.symbol_value(e, options, what),
            Want::Metric => self.metric_value(e),
            Want::Params => self.params_value(e),
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

    /// A symbol of `options`.
    fn symbol_value(&mut self, e: &ast::Expr, options: &[&str], what: &str) {
        match &e.kind {
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
        }
    }

    /// A metric, or an objective of the experiment.
    fn metric_value(&mut self, e: &ast::Expr) {
        let name = e.as_name().unwrap_or("");
        let mut objectives: Vec<String> =
            self.exp.map(|x| x.objectives.iter().map(|o| o.name.clone()).collect()).unwrap_or_default();
        let reports = self.exp.and_then(|x| x.trial.as_ref()).map(ir::Trial::reports).unwrap_or_default();
        objectives.extend(reports.into_iter().map(|(n, _)| n));
        if !(catalogue::find(catalogue::METRICS, name).is_some() || objectives.iter().any(|o| o == name)) {
            let mut cands: Vec<&str> = Concept::Metric.names();
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

    /// A list of the space's discrete parameters (`subspace(by: [...])`).
    fn params_value(&mut self, e: &ast::Expr) {
        match &e.kind {
            ExprKind::List(items) => {
                for i in items {
                    match i.as_name().and_then(|n| self.param(n)) {
                        Some(p) => {
                            self.resolve(i.span, p.name_span, super::Resolved::Param);
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
        }
    }

    pub(super) fn ctor(&mut self, e: &ast::Expr, concept: Concept, what: &str) {
        let table = concept.sigs();
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
            self.ctor_param(p, e, &table, what);
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
        self.ctor_args(ctor, args.map(Vec::as_slice).unwrap_or(&[]), e);
    }

    /// A parameter used where an entry of `table` is wanted: its values must all be entries.
    fn ctor_param(&mut self, p: &ir::Param, e: &ast::Expr, table: &[&catalogue::Sig], what: &str) {
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
    }

    /// The arguments of a call of the entry `ctor`: known names, not too many, the required ones given.
    fn ctor_args(&mut self, ctor: &catalogue::Sig, args: &[ast::Arg], e: &ast::Expr) {
        let mut positional = 0usize;
        let mut given: Vec<&str> = Vec::new();
        for a in args {
            let slot = match &a.name {
                Some(n) => match ctor.args.iter().find(|a| a.name == n.name) {
                    Some(s) => *s,
                    None => {
                        let help = if ctor.args.is_empty() {
                            format!("`{}` takes no arguments", ctor.name)
                        } else {
                            format!(
                                "`{}` takes {}",
                                ctor.name,
                                ctor.args.iter().map(|a| format!("`{}`", a.name)).collect::<Vec<_>>().join(", ")
                            )
                        };
                        self.diags.push(
                            Diagnostic::error(
                                Code::BadArguments,
                                format!("`{}` has no argument `{}`", ctor.name, n.name),
                                n.span,
                                "unknown argument",
                            )
                            .suggest(&n.name, ctor.args.iter().map(|a| a.name))
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
            given.push(slot.name);
            self.value(&a.value, slot.ty, slot.name);
        }
        for k in ctor.args.iter().take(ctor.required()).map(|a| &a.name) {
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
