//! The checks of a `trial { }` section (a command experiment), all static: nothing runs.
//!
//! Takes an experiment and its sources; pushes a diagnostic for a `trial` beside a `model`,
//! an unknown setting, a `command` that is not a constant non-empty list of strings, a
//! `{name}` placeholder that names no parameter or built-in (with "did you mean") or a
//! conditional parameter (absent at some points), an `env`, `cwd`, `timeout`, `grace`,
//! `devices` or `reports` of the wrong kind; gives the parameters the placeholders use, so
//! that they are not reported unused. The metrics `reports` declares are checked against
//! the objectives by the walk (`walk::settings`), which reads [`ir::Trial::reports`].

use std::collections::{BTreeMap, BTreeSet};

use crate::ast;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Value, command};
use crate::source::{Sources, Span};

/// The settings of `trial { }` (the catalogue's); `env` is the one record.
fn trial_keys() -> impl Iterator<Item = &'static str> {
    crate::catalogue::trial::TRIAL_SETTINGS.iter().map(|d| d.name)
}

/// Checks `exp`'s `trial` section; gives the names of the parameters its placeholders use.
pub(super) fn check(exp: &ir::Experiment, sources: &Sources, diags: &mut Vec<Diagnostic>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let Some(trial) = &exp.trial else { return used };
    if let Some(model) = exp.sections.get("model") {
        diags.push(
            Diagnostic::error(
                Code::ConflictingSections,
                format!("experiment `{}` has both a `trial` and a `model`", exp.name),
                trial.span,
                "the user's program is the trial here",
            )
            .with_label(*model, "and bma trains this model")
            .with_help("keep `model` for a model bma trains, or `trial` to run your own program; remove the other"),
        );
    }
    for s in &trial.settings {
        if !trial_keys().any(|k| k == s.key) || s.key == "env" {
            diags.push(
                Diagnostic::error(
                    Code::UnknownSetting,
                    format!("`trial` has no setting `{}`", s.key),
                    s.key_span,
                    if s.key == "env" { "`env` is a record: `env = { NAME: \"value\" }`" } else { "unknown setting" },
                )
                .suggest(&s.key, trial_keys().filter(|k| *k != "env")),
            );
        }
    }
    let mut check_text = |text: &str, e: &ast::Expr, diags: &mut Vec<Diagnostic>| {
        placeholders(exp, sources, text, e, &mut used, diags);
    };
    match trial.setting("command") {
        None => diags.push(
            Diagnostic::error(Code::MissingSection, "`trial` has no `command`", trial.span, "nothing to run")
                .with_help("add `command = [\"python\", \"train.py\", \"--lr\", \"{lr}\"]`"),
        ),
        Some(s) => match (&s.value.kind, constant(&s.value)) {
            (ast::ExprKind::List(items), Some(Value::List(values))) if !values.is_empty() => {
                for (e, v) in items.iter().zip(&values) {
                    match v {
                        Value::Str(text) => check_text(text, e, diags),
                        other => diags.push(type_error(e, "a command argument", "a string", other)),
                    }
                }
            }
            (_, value) => diags.push(
                Diagnostic::error(
                    Code::TypeMismatch,
                    "`command` is a non-empty list of strings",
                    s.value.span,
                    match value {
                        Some(v) => format!("this is {}", describe(&v)),
                        None => "not a constant list".to_string(),
                    },
                )
                .with_help("write the program and its arguments: `[\"python\", \"train.py\", \"--lr\", \"{lr}\"]`"),
            ),
        },
    }
    for (name, _, e) in &trial.env {
        match constant(e) {
            Some(Value::Str(text)) => check_text(&text, e, diags),
            Some(v) => diags.push(type_error(e, &format!("`env` value `{name}`"), "a string", &v)),
            None => diags.push(not_constant(e, &format!("`env` value `{name}`"))),
        }
    }
    for s in &trial.settings {
        let v = constant(&s.value);
        match (s.key.as_str(), v) {
            (_, None) if trial_keys().any(|k| k == s.key) && s.key != "command" && s.key != "reports" => {
                diags.push(not_constant(&s.value, &format!("`{}`", s.key)))
            }
            ("cwd", Some(Value::Str(_))) => {}
            ("cwd", Some(v)) => diags.push(type_error(&s.value, "`cwd`", "a string (a folder)", &v)),
            ("timeout" | "grace", Some(Value::Duration(d))) if d.seconds > 0.0 && d.seconds.is_finite() => {}
            ("timeout" | "grace", Some(v)) => diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{}` is a positive duration", s.key),
                    s.value.span,
                    format!("this is {}", describe(&v)),
                )
                .with_help(format!("for example `{} = 10min` or `30s`", s.key)),
            ),
            ("devices", Some(Value::List(items)))
                if !items.is_empty() && items.iter().all(|i| matches!(i, Value::Str(_) | Value::Int(_))) => {}
            ("devices", Some(v)) => diags.push(
                type_error(&s.value, "`devices`", "a non-empty list of device names or numbers", &v)
                    .with_help("for example `devices = [0, 1]`: each parallel slot gets one"),
            ),
            _ => {}
        }
    }
    reports(trial, diags);
    used
}

/// `reports = [accuracy, loss]`: a non-empty list of distinct names.
fn reports(trial: &ir::Trial, diags: &mut Vec<Diagnostic>) {
    let Some(s) = trial.setting("reports") else {
        diags.push(
            Diagnostic::error(Code::MissingSection, "`trial` declares no `reports`", trial.span, "no metrics declared")
                .with_help("name the metrics the program prints: `reports = [accuracy, loss]`"),
        );
        return;
    };
    let ast::ExprKind::List(items) = &s.value.kind else {
        diags.push(
            Diagnostic::error(Code::TypeMismatch, "`reports` is a list of metric names", s.value.span, "not a list")
                .with_help("for example `reports = [accuracy, loss]`"),
        );
        return;
    };
    if items.is_empty() {
        diags.push(Diagnostic::error(Code::InvalidValue, "`reports` names no metric", s.value.span, "empty"));
    }
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for e in items {
        match e.as_name() {
            Some(n) => {
                if let Some(prev) = seen.insert(n, e.span) {
                    diags.push(
                        Diagnostic::error(
                            Code::DuplicateName,
                            format!("`{n}` is reported twice"),
                            e.span,
                            "again here",
                        )
                        .with_label(prev, "first here"),
                    );
                }
            }
            None => diags.push(Diagnostic::error(
                Code::TypeMismatch,
                "`reports` is a list of metric names",
                e.span,
                "not a name",
            )),
        }
    }
}

/// Checks the placeholders of one string (a command argument or an `env` value) written at `e`.
fn placeholders(
    exp: &ir::Experiment,
    sources: &Sources,
    text: &str,
    e: &ast::Expr,
    used: &mut BTreeSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let pieces = match command::parse(text) {
        Ok(p) => p,
        Err(why) => {
            diags.push(Diagnostic::error(Code::UnknownPlaceholder, "a malformed placeholder", e.span, why));
            return;
        }
    };
    // Exact spans when the literal holds no escapes (its source is the text in quotes).
    let exact = sources.text(e.span).len() == text.len() + 2;
    for piece in pieces {
        let command::Piece::Name(name, range) = piece else { continue };
        let span = if exact {
            Span {
                file: e.span.file,
                start: e.span.start + 1 + range.start as u32,
                end: e.span.start + 1 + range.end as u32,
            }
        } else {
            e.span
        };
        if command::BUILTINS.contains(&name.as_str()) {
            continue;
        }
        let Some(p) = exp.space.get(&name) else {
            let mut cands: Vec<&str> = exp.space.params.iter().map(|p| p.name.as_str()).collect();
            cands.extend(command::BUILTINS);
            diags.push(
                Diagnostic::error(
                    Code::UnknownPlaceholder,
                    format!("`{{{name}}}` names no parameter"),
                    span,
                    "not a parameter or built-in",
                )
                .suggest(&name, cands)
                .with_help_if_none(format!(
                    "a placeholder is a parameter of `space` or one of {}",
                    command::BUILTINS.map(|b| format!("`{{{b}}}`")).join(", ")
                )),
            );
            continue;
        };
        used.insert(p.name.clone());
        if p.is_conditional() {
            let guard = p.guard.iter().map(|g| sources.text(g.span).to_string()).collect::<Vec<_>>().join(" and ");
            diags.push(
                Diagnostic::error(
                    Code::ConditionalParam,
                    format!("`{{{name}}}` may have no value: `{name}` exists only when {guard}"),
                    span,
                    "used in every trial",
                )
                .with_label(p.name_span, format!("declared under `when {guard}`"))
                .with_help(format!(
                    "read it from `BMA_PARAMS` (absent parameters are left out), or pass a `let` that has a value at every point: `let {name}_or = if {guard} {{ {name} }} else {{ ... }}`"
                )),
            );
        }
    }
}

fn constant(e: &ast::Expr) -> Option<Value> {
    ir::eval(e, &BTreeMap::new()).ok()
}

fn describe(v: &Value) -> String {
    format!("a {} `{v}`", v.type_name())
}

fn type_error(e: &ast::Expr, what: &str, want: &str, v: &Value) -> Diagnostic {
    Diagnostic::error(Code::TypeMismatch, format!("{what} is {want}"), e.span, format!("this is {}", describe(v)))
}

fn not_constant(e: &ast::Expr, what: &str) -> Diagnostic {
    Diagnostic::error(Code::NonConstant, format!("{what} must be a constant"), e.span, "not a constant")
        .with_help("the command's settings are the same for every trial; parameters go in `{name}` placeholders")
}

trait HelpIfNone {
    fn with_help_if_none(self, help: String) -> Self;
}

impl HelpIfNone for Diagnostic {
    fn with_help_if_none(self, help: String) -> Self {
        if self.help.is_some() { self } else { self.with_help(help) }
    }
}
