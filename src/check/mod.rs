//! The checker: every static problem of a [`Program`], before anything runs.
//!
//! Takes the lowered program, gives every diagnostic (not just the first) and,
//! per experiment, a [`SpaceInfo`] summary. Checks, in order: sections, data,
//! names and types of every expression (with "did you mean"), conditional
//! parameters used where their `when` is not known to hold, settings, and last
//! the model's shapes over the *whole* space, naming the first failing point.
//! Each check is a small function that pushes diagnostics.

mod arrays;
mod command;
pub mod darts;
pub mod data;
mod data_search;
mod reuse;
mod space;
mod summary;
mod walk;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, DataInfo, Program};
use crate::source::Sources;

pub use data_search::MAX_CASES as MAX_DATA_SETTINGS;
pub use reuse::{Reuse, check_deferred};
pub use space::{SpaceInfo, constraint_holds, count_grid, structural_points};
pub use summary::{human, report_space};
pub use walk::{Resolution, Resolved, resolutions, section_keys};

/// Whether `name` is a metric known from the architecture alone, before training.
pub fn is_static_metric(name: &str) -> bool {
    crate::catalogue::kind(crate::catalogue::METRICS, name).map(|m| m.known)
        == Some(crate::catalogue::Known::BeforeTraining)
}

/// Everything `check` learnt about one experiment.
#[derive(Debug, Clone)]
pub struct ExperimentInfo {
    pub name: String,
    /// The data as the checker described it; when the data is searched, the first setting's.
    pub data: Option<DataInfo>,
    pub space: SpaceInfo,
    /// When the data reads searched parameters: each checked data setting (the values of
    /// those parameters) with what it describes, the first being `data`'s; else empty.
    pub settings: Vec<(ir::Point, DataInfo)>,
}

/// Checks `program`; `base` is the folder that data paths are relative to.
pub fn check(program: &Program, sources: &Sources, base: &Path) -> (Vec<Diagnostic>, Vec<ExperimentInfo>) {
    check_reusing(program, sources, base, &mut Reuse::new(), &|| false)
}

/// Like [`check`], with the whole-space checks kept in `reuse` and taken from it (see
/// [`Reuse`]); `stop` abandons a whole-space check that is no longer wanted.
pub fn check_reusing(
    program: &Program,
    sources: &Sources,
    base: &Path,
    reuse: &mut Reuse,
    stop: &dyn Fn() -> bool,
) -> (Vec<Diagnostic>, Vec<ExperimentInfo>) {
    reuse.begin(program, sources);
    let mut diags = Vec::new();
    let mut infos = Vec::new();
    // An imported item is in the program twice (by its name and its qualified name).
    let mut seen = std::collections::HashSet::new();
    for block in program.blocks.values() {
        if seen.insert(block.span) {
            walk::check_block(program, block, &mut diags);
        }
    }
    for f in program.fns.values() {
        if seen.insert(f.span) {
            walk::check_fn(program, f, &mut diags);
        }
    }
    let items_clean = !diags.iter().any(Diagnostic::is_error);
    for exp in &program.experiments {
        let before = diags.len();
        sections(exp, &mut diags);
        objective_names(exp, &mut diags);
        // Data that reads searched parameters is described once per distinct setting.
        let cases = match ir::data_search::data_searched(exp) {
            true => Some(data_search::cases(program, exp, base, &mut diags)),
            false => None,
        };
        let data = match &cases {
            Some(cases) => cases.first().map(|c| c.info.clone()),
            None => exp.data.as_ref().and_then(|d| data_info(program, d, &BTreeMap::new(), base, &mut diags)),
        };
        let mut used = walk::check_experiment(program, exp, sources, data.as_ref(), &mut diags);
        used.extend(ir::data_search::data_params(exp).iter().map(|p| p.name.clone()));
        used.extend(command::check(exp, sources, &mut diags));
        unused(exp, &used, &mut diags);
        // Shapes are only worth checking over a space whose every parameter lowered.
        let clean = items_clean && !diags[before..].iter().any(Diagnostic::is_error) && exp.space.rejected.is_empty();
        let info =
            reuse::whole_space(program, sources, exp, data.as_ref(), cases.as_deref(), clean, reuse, stop, &mut diags);
        if clean {
            darts::check(program, exp, data.as_ref(), &mut diags);
        }
        let settings = cases.unwrap_or_default().into_iter().map(|c| (c.at, c.info)).collect();
        infos.push(ExperimentInfo { name: exp.name.clone(), data, space: info, settings });
    }
    (diags, infos)
}

fn sections(exp: &ir::Experiment, diags: &mut Vec<Diagnostic>) {
    if exp.model.is_some() && exp.data.is_none() {
        let span = exp.sections.get("model").copied().unwrap_or(exp.name_span);
        diags.push(
            Diagnostic::error(
                Code::MissingSection,
                format!("experiment `{}` has a model but no data", exp.name),
                exp.name_span,
                "no `data = ...` here",
            )
            .with_label(span, "the model needs data to train on")
            .with_help("add `data = digits(split: [0.7, 0.15, 0.15])` or another dataset"),
        );
    }
    if exp.objectives.is_empty() {
        diags.push(
            Diagnostic::error(
                Code::MissingSection,
                format!("experiment `{}` has no objective", exp.name),
                exp.name_span,
                "nothing to optimise",
            )
            .with_help("add `objective { maximize accuracy }` (or `minimize f(x)` for a function search)"),
        );
    }
}

/// Two objectives shown under one name (`maximize accuracy` twice, or `minimize loss = a`
/// beside `minimize loss`): results, ranking and `weighted(...)` key objectives by name.
fn objective_names(exp: &ir::Experiment, diags: &mut Vec<Diagnostic>) {
    let mut first: BTreeMap<&str, &ir::Objective> = BTreeMap::new();
    for o in &exp.objectives {
        match first.get(o.name.as_str()) {
            Some(prev) => diags.push(
                Diagnostic::error(
                    Code::DuplicateName,
                    format!("two objectives are named `{}`", o.name),
                    o.span,
                    "named again here",
                )
                .with_label(prev.span, "first objective of that name")
                .with_help("name one of them (`minimize other = ...`) or remove the repeat"),
            ),
            None => {
                first.insert(&o.name, o);
            }
        }
    }
}

/// What the data describes with the parameters it reads at `point` (empty: unsearched data).
fn data_info(
    program: &Program,
    setting: &ir::Setting,
    point: &ir::Point,
    base: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Option<DataInfo> {
    let env = ir::PointEnv { point, fns: &program.fns, data: None };
    let value = match ir::eval(&setting.value, &env) {
        Ok(v) => v,
        Err(e) => {
            diags.push(Diagnostic::error(Code::NonConstant, "cannot evaluate the data", e.span, e.message));
            return None;
        }
    };
    let arg_span = |name: &str| -> crate::source::Span {
        if let crate::ast::ExprKind::Call(_, args) = &setting.value.kind {
            let named = args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == name));
            if let Some(a) = named {
                return a.value.span;
            }
            let pos = match name {
                "path" | "images" | "dir" | "x" => 0,
                "target" | "labels" | "y" => 1,
                "task" => 2,
                _ => usize::MAX,
            };
            if let Some(a) = args.iter().filter(|a| a.name.is_none()).nth(pos) {
                return a.value.span;
            }
        }
        setting.value.span
    };
    match data::describe_with(&value, setting.value.span, &arg_span, base, diags) {
        Ok(d) => Some(d),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

fn unused(exp: &ir::Experiment, used: &BTreeSet<String>, diags: &mut Vec<Diagnostic>) {
    let mentioned: BTreeSet<&String> = exp.space.rejected.values().flatten().collect();
    for p in &exp.space.params {
        if used.contains(&p.name) || mentioned.contains(&p.name) || p.name.starts_with('_') {
            continue;
        }
        let what = match p.kind {
            ir::ParamKind::Free(_) => "parameter",
            ir::ParamKind::Const(_) => continue, // pinned values are reported, not searched
            ir::ParamKind::Derived(_) => "value",
        };
        let span = p.name_span;
        diags.push(
            Diagnostic::warning(
                Code::UnusedParam,
                format!("{what} `{}` is never used", p.name),
                span,
                "declared here, used nowhere",
            )
            .with_help("use it in the model, training or objective, remove it, or start its name with `_`"),
        );
    }
}
