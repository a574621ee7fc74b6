//! What a finished study leaves in its out folder, and its terminal summary.
//!
//! Takes a study's [`History`] as its store holds it (and, for model experiments, the
//! trials' saved models); gives `results.json`, `results.csv`, `report.html`, `best/`
//! (the best trial's model, evaluated on test) and `final/` (the `average` section's
//! model) through [`write`] at the end of a run, or [`regenerate`] from a stored study
//! without training (`bma report`), plus the ranked table as text.
//!
//! **Invariants:** the files are written from the store's history, each through a
//! temporary file and a rename, so a reader never sees a half-written file; `best/` and
//! `final/` are made in a temporary folder and put in place whole, so a run killed while
//! it builds them never leaves a partial one; the test split is read once per model,
//! after every choice was made on valid.

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use super::{Error, Plan, layout, trial_dir};
use crate::data::Part;
use crate::final_model::{self, FinalSummary};
use crate::ir::{self, Point, Value};
use crate::search::study::{Ended, INFEASIBLE, Metrics};
use crate::store::{Store, Study, StudySpec, StudyState};
use crate::train;
use crate::trial::{Direction, History, Trial, TrialState, rank};

/// What [`write`] and [`regenerate`] made: the terminal report (the ranked table, the
/// best trial on test, the final model), the final model's summary, and notes about
/// what could not be made and why.
pub struct Written {
    /// The ranked table (`None`: no trial completed), laid out by [`Written::terminal`].
    pub table: Option<layout::Table>,
    /// What follows the table: the best trial on test, the final model.
    pub text: String,
    pub final_summary: Option<FinalSummary>,
    pub notes: Vec<String>,
}

impl Written {
    /// The terminal report: the ranked table laid out for `width` (none: whole), then `text`.
    pub fn terminal(&self, width: Option<usize>) -> String {
        format!("{}{}", table_text(self.table.as_ref(), width), self.text)
    }
}

/// Everything a finished study leaves in its out folder, from the store's history:
/// `best/` (evaluated on test), `final/` (the `average` section over the ranked trials'
/// saved models, not after an interrupted run), then `results.json` (with `extra`
/// merged in), `results.csv` and `report.html`.
pub fn write(
    plan: &Plan<'_>,
    spec: &StudySpec,
    history: &History,
    ended: Ended,
    extra: serde_json::Map<String, Json>,
) -> Result<Written, Error> {
    let exp = plan.experiment;
    let (best_test, final_summary, mut notes) = models(plan, history, ended);
    let mut written = write_files(&Files {
        out: &plan.out,
        spec,
        space: &exp.space,
        top: plan.top,
        history,
        state: ended.state(),
        ended: Some(format!("{ended:?}").to_lowercase()),
        best_test: best_test.as_ref(),
        final_summary: final_summary.as_ref(),
        extra,
    })?;
    notes.append(&mut written.notes);
    written.notes = notes;
    written.final_summary = final_summary;
    Ok(written)
}

/// `best/` (the best trial's model, evaluated on test) and `final/` (the `average` section
/// over the ranked trials whose models are in `<out>/trials/`, not after an interrupted
/// run) of a model experiment, with notes on what could not be made: what [`write`] makes
/// before the results files, and `bma final` on a stored study.
pub fn models(
    plan: &Plan<'_>,
    history: &History,
    ended: Ended,
) -> (Option<Metrics>, Option<FinalSummary>, Vec<String>) {
    let exp = plan.experiment;
    let ranked = history.ranked();
    let mut best_test = None;
    let mut notes = Vec::new();
    if exp.model.is_some()
        && let Some(best) = ranked.first()
    {
        match save_best(&plan.out, best.number) {
            Ok(m) => best_test = Some(m),
            Err(e) => notes.push(format!("the best trial's model could not be evaluated on test: {e}")),
        }
    }
    // The final model (the `average` section over the ranked trials' saved models),
    // evaluated once on the test split; not after an interrupted run.
    let mut final_summary = None;
    if exp.model.is_some() && ended != Ended::Interrupted {
        let saved: Vec<(Trial, PathBuf)> = ranked
            .iter()
            .map(|t| ((*t).clone(), trial_dir(&plan.out, t.number)))
            .filter(|(_, dir)| dir.join("model.json").exists())
            .collect();
        if !saved.is_empty() {
            // Built in a temporary folder, then put in place whole: a run killed while it is
            // built never leaves a partial `final/`.
            let built = in_place(&plan.out.join("final"), |tmp| {
                final_model::build(&plan.compiled.program, exp, &plan.base, tmp, &saved)
            });
            match built {
                Ok(summary) => final_summary = Some(FinalSummary { dir: plan.out.join("final"), ..summary }),
                Err(e) => notes.push(format!("the final model could not be built: {e}")),
            }
        }
    }
    (best_test, final_summary, notes)
}

/// What [`write_files`] writes into `out`.
struct Files<'a> {
    out: &'a Path,
    spec: &'a StudySpec,
    /// The experiment's space (the CSV's columns, the table's parameters).
    space: &'a ir::Space,
    /// Rows of the ranked table (`report { top = }`).
    top: usize,
    history: &'a History,
    state: StudyState,
    /// How the run ended (`budget`, `time`, `exhausted`, `interrupted`), when known.
    ended: Option<String>,
    /// The best trial's metrics on the test split (model experiments).
    best_test: Option<&'a Metrics>,
    final_summary: Option<&'a FinalSummary>,
    /// More top-level fields for `results.json` (watch's reuse counts).
    extra: serde_json::Map<String, Json>,
}

/// Writes `results.json`, `results.csv` and `report.html` into `o.out`; gives the
/// terminal report. An HTML report that cannot be written is a note, not a failure.
fn write_files(o: &Files<'_>) -> Result<Written, Error> {
    let mut notes = Vec::new();
    let mut extra = o.extra.clone();
    if let Some(ended) = &o.ended {
        extra.insert("ended".into(), serde_json::json!(ended));
    }
    if let Some(summary) = o.final_summary {
        extra.insert("final".into(), serde_json::to_value(summary).map_err(Error::internal)?);
    }
    let mut json = results_json(o.spec, o.history, o.state.as_str(), o.best_test, extra);
    if let Some(obj) = json.as_object_mut() {
        obj.insert("state".into(), serde_json::json!(o.state.as_str()));
    }
    let text = serde_json::to_string_pretty(&json).map_err(Error::internal)?;
    let io = |path: &Path, e: std::io::Error| super::io_error("cannot write", path, e);
    let path = o.out.join("results.json");
    write_atomic(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
    let path = o.out.join("results.csv");
    write_atomic(&path, results_csv(o.spec, o.space, o.history).as_bytes()).map_err(|e| io(&path, e))?;
    let report = crate::report::ReportData::new(
        &o.spec.experiment,
        &o.history.trials,
        o.spec.objectives.clone(),
        o.final_summary.cloned(),
    );
    if let Err(e) = crate::report::write(&o.out.join("report.html"), &report) {
        notes.push(format!("the HTML report could not be written: {e}"));
    }

    let table = table(o.history, o.spec, o.space, o.top);
    let mut text = String::new();
    let ranked = o.history.ranked();
    if let (Some(m), Some(best)) = (o.best_test, ranked.first()) {
        let shown: Vec<String> = ["accuracy", "f1", "loss", "mse", "r2"]
            .iter()
            .filter_map(|k| m.get(*k).map(|v| format!("{k} {}", fmt_num(*v))))
            .collect();
        text.push_str(&format!("best trial {} on test: {}\n", best.number, shown.join(", ")));
    }
    if let Some(f) = o.final_summary {
        let show = |m: &Metrics| {
            ["accuracy", "r2", "loss"]
                .iter()
                .find_map(|k| m.get(*k).map(|v| format!("{k} {}", fmt_num(*v))))
                .unwrap_or_default()
        };
        text.push_str(&format!(
            "final model ({}, {} member{}): test {} (valid {}); best single trial {}: test {} (valid {})\n",
            f.method,
            f.members.len(),
            if f.members.len() == 1 { "" } else { "s" },
            show(&f.final_test),
            show(&f.final_valid),
            f.best_single,
            show(&f.single_test),
            show(&f.single_valid),
        ));
    }
    Ok(Written { table, text, final_summary: None, notes })
}

/// Rewrites `out`'s results files and report from `study` as `store` holds it, and the
/// final model summary saved in `out/final/` (if any). Nothing is trained: the best
/// trial's saved model (`out/best/`) is evaluated on test, as at the end of the run.
pub fn regenerate(store: &dyn Store, study: &Study, out: &Path) -> Result<Written, Error> {
    let spec = &study.spec;
    let compiled = stored_program(&spec.spec_text);
    let exp = compiled.program.experiment(&spec.experiment).ok_or_else(|| {
        Error::Internal(format!(
            "the stored spec of study `{}` does not define experiment `{}` (it no longer compiles?)",
            spec.name, spec.experiment
        ))
    })?;
    let mut history = History::new(spec.directions(), super::rank(exp));
    for t in store.history(study.id).map_err(Error::internal)?.into_iter().filter(|t| !t.is_unproposed()) {
        history.upsert(t);
    }
    let mut notes = Vec::new();
    let best_test = match (&exp.model, history.ranked().first()) {
        (Some(_), Some(best)) => match best_model_test(out, best.number) {
            Ok(m) => m,
            Err(e) => {
                notes.push(format!("the best trial's model could not be evaluated on test: {e}"));
                None
            }
        },
        _ => None,
    };
    // As at the end of a run: no final model after an interrupted one, and one built
    // for another ranking (an older run in the same folder) is left out.
    let best_number = history.ranked().first().map(|t| t.number);
    let final_summary = if out.join("final/final.json").exists() && study.state != StudyState::Interrupted {
        match final_model::load_summary(&out.join("final")) {
            Ok(s) if Some(s.best_single) == best_number => Some(FinalSummary { dir: out.join("final"), ..s }),
            Ok(s) => {
                notes.push(format!(
                    "{} was built when trial {} ranked first, not trial {}; left out of the report",
                    out.join("final").display(),
                    s.best_single,
                    best_number.map_or_else(|| "-".to_string(), |n| n.to_string())
                ));
                None
            }
            Err(e) => {
                notes.push(format!("the final model's summary could not be read: {e}"));
                None
            }
        }
    } else {
        None
    };
    notes.extend(unfinished(study, exp, out, final_summary.is_some()));
    // Only the run knew why it stopped; a results.json already there remembers it.
    let ended = std::fs::read_to_string(out.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("ended").and_then(|e| e.as_str()).map(str::to_string))
        .or_else(|| (study.state == StudyState::Interrupted).then(|| "interrupted".to_string()));
    let mut written = write_files(&Files {
        out,
        spec,
        space: &exp.space,
        top: super::report_top(exp),
        history: &history,
        state: study.state,
        ended,
        best_test: best_test.as_ref(),
        final_summary: final_summary.as_ref(),
        extra: serde_json::Map::new(),
    })?;
    notes.append(&mut written.notes);
    written.notes = notes;
    written.final_summary = final_summary;
    Ok(written)
}

/// What [`regenerate`] must say about a study whose outputs are not all there: one still
/// `running` (its run was stopped before it wrote them, or it runs now), or a finished one
/// with an `average` section and no final model in `out`.
fn unfinished(study: &Study, exp: &ir::Experiment, out: &Path, has_final: bool) -> Vec<String> {
    match study.state {
        StudyState::Running => vec![format!(
            "study `{}` is not finished (its run stopped before it wrote its outputs, or it still runs): \
             `bma run --resume` finishes it",
            study.spec.name
        )],
        StudyState::Finished if exp.model.is_some() && !exp.average.is_empty() && !has_final => {
            vec![format!(
                "the final model is missing from {}: `bma run --resume` builds it",
                out.join("final").display()
            )]
        }
        _ => Vec::new(),
    }
}

/// `out/best/` evaluated on test, when it holds trial `number`'s model; `None` when
/// there is no saved best model (a run without saved models).
fn best_model_test(out: &Path, number: u64) -> Result<Option<Metrics>, String> {
    let best = out.join("best");
    if !best.join("model.json").exists() {
        return Ok(None);
    }
    let saved = std::fs::read_to_string(best.join("trial")).ok().and_then(|t| t.trim().parse::<u64>().ok());
    if saved != Some(number) {
        let shown = saved.map_or_else(|| "an unknown trial".to_string(), |n| format!("trial {n}"));
        return Err(format!("{} holds {shown}, not the best trial {number}", best.display()));
    }
    train::evaluate_saved(&best, Part::Test).map(Some)
}

/// Compiles a stored spec text: the root file, then the files it imported, joined by
/// `\n\x1f\n` as `bma run` stored them. Imports are served from the stored copies in
/// the order they were first read (the standard library's modules are built in), so
/// the program is the one that ran even if the files changed since. Diagnostics (a
/// data file that moved, say) are ignored: only the space and settings are needed.
pub fn stored_program(text: &str) -> crate::Compiled {
    let mut parts = text.split("\n\u{1f}\n");
    let root = parts.next().unwrap_or_default();
    let std_texts: Vec<&str> = crate::stdlib::MODULES.iter().map(|(_, _, t)| *t).collect();
    let imported: Vec<String> = parts.filter(|p| !std_texts.contains(p)).map(str::to_string).collect();
    let loader = Replay { texts: imported, next: std::sync::atomic::AtomicUsize::new(0) };
    crate::compile_with(&crate::Source::new("study.bma", root), &loader)
}

/// Hands out stored import texts in order.
struct Replay {
    texts: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
}

impl ir::Loader for Replay {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.texts.get(i).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} is not in the stored spec", path.display()))
        })
    }
}

/// The ranked table: rank, trial, key parameters, objectives, constraints, Pareto marker.
pub fn table(history: &History, spec: &StudySpec, space: &ir::Space, top: usize) -> Option<layout::Table> {
    let ranked = history.ranked();
    if ranked.is_empty() {
        return None;
    }
    let front = pareto_front(history);
    let params: Vec<&str> = space.free().map(|p| p.name.as_str()).take(6).collect();
    let mut header: Vec<String> = vec!["rank".into(), "trial".into()];
    header.extend(params.iter().map(|p| p.to_string()));
    header.extend(spec.objectives.iter().map(|(n, d)| format!("{n} {}", arrow(*d))));
    if !spec.constraints.is_empty() {
        header.push("require".into());
    }
    if spec.objectives.len() > 1 {
        header.push("pareto".into());
    }
    let mut rows = vec![header];
    for (i, t) in ranked.iter().take(top).enumerate() {
        let mut row = vec![(i + 1).to_string(), t.number.to_string()];
        row.extend(params.iter().map(|p| t.params.get(*p).map(fmt_value).unwrap_or_else(|| "·".into())));
        row.extend(t.values.iter().map(|v| fmt_num(*v)));
        if !spec.constraints.is_empty() {
            let broken: Vec<&str> = spec
                .constraints
                .iter()
                .zip(&t.violations)
                .filter(|(_, v)| **v > 0.0)
                .map(|(n, _)| n.as_str())
                .collect();
            row.push(if broken.is_empty() { "ok".into() } else { format!("✗ {}", broken.join(", ")) });
        }
        if spec.objectives.len() > 1 {
            row.push(if front.contains(&t.number) { "*".into() } else { String::new() });
        }
        rows.push(row);
    }
    // rank and trial are kept whole, parameters may go, the rest may be cut.
    let fits = (0..rows[0].len()).map(|c| match c {
        0 | 1 => layout::Fit::Keep,
        c if c < 2 + params.len() => layout::Fit::Optional,
        _ if c + 1 == rows[0].len() && spec.objectives.len() > 1 => layout::Fit::Keep,
        _ => layout::Fit::Cut,
    });
    let columns = fits
        .enumerate()
        .map(|(c, fit)| layout::Column {
            header: rows[0][c].clone(),
            cells: rows[1..].iter().map(|r| r[c].clone()).collect(),
            fit,
        })
        .collect();
    Some(layout::Table { columns })
}

/// The ranked table as text for `width` (none: whole), or that no trial completed.
pub fn table_text(table: Option<&layout::Table>, width: Option<usize>) -> String {
    table.map_or_else(|| "no trial completed\n".into(), |t| t.render(width))
}

/// `60 trials: 3 complete, 52 pruned, 0 failed, 5 infeasible before training`.
pub fn counts_line(history: &History) -> String {
    let counts = |s: TrialState| history.trials.iter().filter(|t| t.state == s).count();
    let infeasible = history.trials.iter().filter(|t| t.state == TrialState::Infeasible).count();
    let mut apart = if infeasible > 0 { format!(", {infeasible} {INFEASIBLE}") } else { String::new() };
    let queued = counts(TrialState::Queued);
    if queued > 0 {
        apart.push_str(&format!(", {queued} queued to rerun"));
    }
    format!(
        "{} trials: {} complete, {} pruned, {} failed{apart}",
        history.trials.len(),
        counts(TrialState::Complete),
        counts(TrialState::Pruned),
        counts(TrialState::Failed)
    )
}

/// The trials by state, with their total (results.json's `counts` and `bma run --format
/// json`'s).
pub fn counts_json(history: &History) -> Json {
    let count = |s: TrialState| history.trials.iter().filter(|t| t.state == s).count();
    json!({
        "total": history.trials.len(),
        "complete": count(TrialState::Complete),
        "pruned": count(TrialState::Pruned),
        "failed": count(TrialState::Failed),
        "infeasible": count(TrialState::Infeasible),
        "running": count(TrialState::Running),
        "queued": count(TrialState::Queued),
    })
}

/// The numbers of the complete, feasible trials that no other such trial dominates.
pub fn pareto_front(history: &History) -> Vec<u64> {
    let complete: Vec<&Trial> = history.completed().filter(|t| t.is_feasible()).collect();
    rank::pareto_front(&complete, &history.directions).into_iter().map(|i| complete[i].number).collect()
}

/// A value as plain JSON (symbols as strings, durations as seconds).
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Int(i) => json!(i),
        Value::Float(x) => float(*x),
        Value::Bool(b) => json!(b),
        Value::Str(s) => json!(s),
        Value::Sym(s) => json!(s.sym),
        Value::Duration(d) => float(d.seconds),
        Value::List(items) => Json::Array(items.iter().map(value_json).collect()),
        Value::Call(_) => json!(v.to_string()),
    }
}

fn float(x: f64) -> Json {
    if x.is_finite() { json!(x) } else { json!(x.to_string()) }
}

fn params_json(p: &Point) -> Json {
    Json::Object(p.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

fn trial_json(t: &Trial, spec: &StudySpec) -> Json {
    let values: serde_json::Map<String, Json> =
        spec.objectives.iter().zip(&t.values).map(|((n, _), v)| (n.clone(), float(*v))).collect();
    let constraints: serde_json::Map<String, Json> = spec
        .constraints
        .iter()
        .zip(t.constraints.iter().zip(&t.violations))
        .map(|(n, (v, viol))| {
            (n.clone(), json!({ "value": float(*v), "violation": float(*viol), "holds": *viol <= 0.0 }))
        })
        .collect();
    let mut row = json!({
        "number": t.number,
        "state": t.state.as_str(),
        "params": params_json(&t.params),
        "seed": t.seed,
        "values": values,
        "constraints": constraints,
        "feasible": t.is_feasible(),
        "metrics": Json::Object(t.metrics.iter().map(|(k, v)| (k.clone(), float(*v))).collect()),
        "steps": t.steps.iter().map(|(s, v)| json!([s, float(*v)])).collect::<Vec<_>>(),
        "error": t.error,
        "failure": t.failure.map(|k| k.as_str()),
        "duration": t.duration,
    });
    // Only a command trial placed on a device has one (`devices`, `--devices`).
    if let (Some(device), Some(o)) = (&t.device, row.as_object_mut()) {
        o.insert("device".into(), json!(device));
    }
    if let (Some(worker), Some(o)) = (&t.worker, row.as_object_mut()) {
        o.insert("worker".into(), json!(worker));
    }
    row
}

/// The version of the layout of `results.json` (and of the CLI's `--format json`
/// documents, docs/json.md): fields are only added within a version.
pub const SCHEMA_VERSION: u64 = 1;

/// Everything `results.json` holds, given the history and (for model experiments) the best trial's test metrics.
pub fn results_json(
    spec: &StudySpec,
    history: &History,
    state: &str,
    best_test: Option<&Metrics>,
    extra: serde_json::Map<String, Json>,
) -> Json {
    let ranked: Vec<u64> = history.ranked().iter().map(|t| t.number).collect();
    let best = ranked.first().and_then(|n| history.get(*n)).map(|t| {
        let mut b = trial_json(t, spec);
        if let (Some(m), Some(obj)) = (best_test, b.as_object_mut()) {
            obj.insert("test".into(), Json::Object(m.iter().map(|(k, v)| (k.clone(), float(*v))).collect()));
        }
        b
    });
    let mut out = json!({
        "schema_version": SCHEMA_VERSION,
        "experiment": spec.experiment,
        "study": spec.name,
        "spec_hash": spec.spec_hash,
        "seed": spec.seed,
        "state": state,
        "objectives": spec.objectives.iter().map(|(n, d)| json!({"name": n, "direction": d.as_str()})).collect::<Vec<_>>(),
        "constraints": spec.constraints,
        "counts": counts_json(history),
        "ranked": ranked,
        "pareto": pareto_front(history),
        "best": best,
        "trials": history.trials.iter().map(|t| trial_json(t, spec)).collect::<Vec<_>>(),
    });
    if let Some(obj) = out.as_object_mut() {
        if let Some(auto) = serde_json::from_str::<super::StoredOptions>(&spec.options).ok().and_then(|o| o.auto) {
            obj.insert("strategy_auto".into(), json!(auto));
        }
        obj.extend(extra);
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn csv_float(x: f64) -> String {
    if x.is_nan() { String::new() } else { format!("{x}") }
}

/// `results.csv`: one row per trial: number, state, every parameter, objectives,
/// constraints (their measured values), duration, error, failure kind.
pub fn results_csv(spec: &StudySpec, space: &ir::Space, history: &History) -> String {
    let params: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
    let mut header: Vec<String> = vec!["number".into(), "state".into()];
    header.extend(params.iter().map(|p| p.to_string()));
    header.extend(spec.objectives.iter().map(|(n, _)| n.clone()));
    header.extend(spec.constraints.iter().map(|n| format!("require {n}")));
    header.extend(["feasible".into(), "duration".into(), "error".into(), "failure".into()]);
    let mut out = header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for t in &history.trials {
        let mut row: Vec<String> = vec![t.number.to_string(), t.state.as_str().into()];
        for p in &params {
            row.push(t.params.get(*p).map(|v| csv_field(&v.to_string())).unwrap_or_default());
        }
        for i in 0..spec.objectives.len() {
            row.push(t.values.get(i).map(|v| csv_float(*v)).unwrap_or_default());
        }
        for i in 0..spec.constraints.len() {
            row.push(t.constraints.get(i).map(|v| csv_float(*v)).unwrap_or_default());
        }
        row.push(t.is_feasible().to_string());
        row.push(format!("{:.4}", t.duration));
        row.push(csv_field(t.error.as_deref().unwrap_or("")));
        row.push(t.failure.map(|k| k.as_str()).unwrap_or("").into());
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Writes `contents` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Copies the best trial's saved model to `<out>/best/` (through a temporary folder, put
/// in place whole) and evaluates it on the test split.
pub fn save_best(out: &Path, number: u64) -> Result<Metrics, String> {
    let src = trial_dir(out, number);
    let dst = out.join("best");
    in_place(&dst, |tmp| {
        std::fs::create_dir_all(tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        for name in ["model.safetensors", "model.json"] {
            std::fs::copy(src.join(name), tmp.join(name)).map_err(|e| format!("{}: {e}", src.join(name).display()))?;
        }
        std::fs::write(tmp.join("trial"), number.to_string()).map_err(|e| format!("{}: {e}", tmp.display()))
    })?;
    train::evaluate_saved(&dst, Part::Test)
}

/// Makes the folder `dst` with `make`, which writes into a fresh temporary folder next to
/// it (`.<name>.tmp`); only when it succeeds does that folder replace `dst` (the old one
/// moved aside, then removed). A failure leaves `dst` as it was and removes the temporary.
fn in_place<T>(dst: &Path, make: impl FnOnce(&Path) -> Result<T, String>) -> Result<T, String> {
    let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let parent = dst.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".{name}.tmp"));
    let old = parent.join(format!(".{name}.old"));
    let clear = |p: &Path| match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("cannot remove {}: {e}", p.display())),
        _ => Ok(()),
    };
    clear(&tmp)?;
    let made = match make(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = clear(&tmp);
            return Err(e);
        }
    };
    clear(&old)?;
    if dst.exists() {
        std::fs::rename(dst, &old).map_err(|e| format!("cannot move {} aside: {e}", dst.display()))?;
    }
    std::fs::rename(&tmp, dst).map_err(|e| format!("cannot put {} in place: {e}", dst.display()))?;
    let _ = clear(&old);
    Ok(made)
}

/// The losses' directions (lower is better), for display.
pub fn arrow(d: Direction) -> &'static str {
    match d {
        Direction::Minimize => "↓",
        Direction::Maximize => "↑",
    }
}

pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 1000.0 || v.abs() < 0.001 {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

pub fn fmt_value(v: &Value) -> String {
    match v {
        Value::Float(x) => fmt_num(*x),
        other => other.to_string(),
    }
}
