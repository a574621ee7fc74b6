//! `bma report RUNDIR`, and what the end of `bma run` writes: `results.json`,
//! `results.csv`, `report.html` and the ranked table.
//!
//! [`write_outputs`] is the one place those files are written; `bma run` calls it with
//! the study it just ran, [`regenerate`] with a study read back from a store (the spec
//! text it was started from, its history) and the saved `final/` summary, without
//! training: only the saved best model is re-evaluated on test, as the run did.
//!
//! Exit codes of `bma report`: 0 written; 1 the folder is not a run folder (missing, no
//! `study.db`, no study or several without `--study`); 2 the store or the files failed
//! (a corrupt `study.db`, a folder that cannot be written).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bma::final_model::{self, FinalSummary};
use bma::ir;
use bma::runner;
use bma::search::{History, TrialState};
use bma::store::{Sqlite, Store, Study, StudySpec, StudyState};
use bma::train::Metrics;

use super::run::{fmt_num, fmt_value, rank_of};
use super::{INPUT, INTERNAL, OK};

/// A message and the exit code it ends with.
pub type Failure = (String, u8);

fn internal(e: impl std::fmt::Display) -> Failure {
    (e.to_string(), INTERNAL)
}

/// Arguments of `bma report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// A run folder (the `--out` of `bma run`, holding `study.db`).
    pub dir: Option<PathBuf>,
    /// The study to report (needed when the store holds several).
    #[arg(long)]
    pub study: Option<String>,
    /// Report a study from this store instead of a run folder's `study.db`
    /// (`postgres://...`; with no folder given, `BMA_STORE` if set).
    #[arg(long, value_name = "URL", conflicts_with = "dir")]
    pub store: Option<String>,
    /// With a store: the folder to write into (default `runs/<study>`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What the end of a run, or `bma report`, writes into `out`.
pub struct Outputs<'a> {
    pub out: &'a Path,
    pub spec: &'a StudySpec,
    /// The experiment's space (the CSV's columns, the table's parameters).
    pub space: &'a ir::Space,
    /// Rows of the ranked table (`report { top = }`).
    pub top: usize,
    pub history: &'a History,
    pub state: StudyState,
    /// How the run ended (`budget`, `time`, `exhausted`, `interrupted`), when known.
    pub ended: Option<String>,
    /// The best trial's metrics on the test split (model experiments).
    pub best_test: Option<&'a Metrics>,
    pub final_summary: Option<&'a FinalSummary>,
    /// More top-level fields for `results.json` (watch's reuse counts).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What [`write_outputs`] produced: the terminal report (table, best trial on test,
/// final model) and notes about what could not be written.
pub struct Written {
    pub text: String,
    pub notes: Vec<String>,
}

/// Writes `results.json`, `results.csv` and `report.html` into `o.out`; gives the
/// terminal report. An HTML report that cannot be written is a note, not a failure.
pub fn write_outputs(o: &Outputs<'_>) -> Result<Written, Failure> {
    let mut notes = Vec::new();
    let mut extra = o.extra.clone();
    if let Some(ended) = &o.ended {
        extra.insert("ended".into(), serde_json::json!(ended));
    }
    if let Some(summary) = o.final_summary {
        extra.insert("final".into(), serde_json::to_value(summary).map_err(internal)?);
    }
    let mut json = runner::results_json(o.spec, o.history, o.state.as_str(), o.best_test, extra);
    if let Some(obj) = json.as_object_mut() {
        obj.insert("state".into(), serde_json::json!(o.state.as_str()));
    }
    let text = serde_json::to_string_pretty(&json).map_err(internal)?;
    let io = |path: &Path, e: std::io::Error| (format!("cannot write {}: {e}", path.display()), INTERNAL);
    let path = o.out.join("results.json");
    runner::write_atomic(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
    let path = o.out.join("results.csv");
    runner::write_atomic(&path, runner::results_csv(o.spec, o.space, o.history).as_bytes())
        .map_err(|e| io(&path, e))?;
    let report = bma::report::ReportData::new(
        &o.spec.experiment,
        &o.history.trials,
        o.spec.objectives.clone(),
        o.final_summary.cloned(),
    );
    if let Err(e) = bma::report::write(&o.out.join("report.html"), &report) {
        notes.push(format!("the HTML report could not be written: {e}"));
    }

    let mut text = table(o.history, o.spec, o.space, o.top);
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
    Ok(Written { text, notes })
}

/// Rewrites `out`'s results files and report from `study` as `store` holds it, and the
/// final model summary saved in `out/final/` (if any). Nothing is trained: the best
/// trial's saved model (`out/best/`) is evaluated on test, as at the end of the run.
pub fn regenerate(store: &dyn Store, study: &Study, out: &Path) -> Result<Written, Failure> {
    let spec = &study.spec;
    let compiled = stored_program(&spec.spec_text);
    let exp = compiled.program.experiment(&spec.experiment).ok_or_else(|| {
        (
            format!(
                "the stored spec of study `{}` does not define experiment `{}` (it no longer compiles?)",
                spec.name, spec.experiment
            ),
            INTERNAL,
        )
    })?;
    let mut history = History::new(spec.directions(), rank_of(exp));
    for t in store.history(study.id).map_err(internal)? {
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
            Ok(s) if Some(s.best_single) == best_number => Some(s),
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
    // Only the run knew why it stopped; a results.json already there remembers it.
    let ended = std::fs::read_to_string(out.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("ended").and_then(|e| e.as_str()).map(str::to_string))
        .or_else(|| (study.state == StudyState::Interrupted).then(|| "interrupted".to_string()));
    let mut written = write_outputs(&Outputs {
        out,
        spec,
        space: &exp.space,
        top: report_top(exp),
        history: &history,
        state: study.state,
        ended,
        best_test: best_test.as_ref(),
        final_summary: final_summary.as_ref(),
        extra: serde_json::Map::new(),
    })?;
    notes.append(&mut written.notes);
    written.notes = notes;
    Ok(written)
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
    bma::train::eval_saved(&best, bma::data::Part::Test).map(Some)
}

/// `report { top = }`, default 10.
pub fn report_top(exp: &ir::Experiment) -> usize {
    exp.report_setting("top")
        .and_then(|s| ir::eval(&s.value, &BTreeMap::<String, ir::Value>::new()).ok())
        .and_then(|v| v.as_i64())
        .filter(|t| *t > 0)
        .unwrap_or(10) as usize
}

/// Compiles a stored spec text: the root file, then the files it imported, joined by
/// `\n\x1f\n` as `bma run` stored them. Imports are served from the stored copies in
/// the order they were first read (the standard library's modules are built in), so
/// the program is the one that ran even if the files changed since. Diagnostics (a
/// data file that moved, say) are ignored: only the space and settings are needed.
fn stored_program(text: &str) -> bma::Compiled {
    let mut parts = text.split("\n\u{1f}\n");
    let root = parts.next().unwrap_or_default();
    let std_texts: Vec<&str> = bma::stdlib::MODULES.iter().map(|(_, _, t)| *t).collect();
    let imported: Vec<String> = parts.filter(|p| !std_texts.contains(p)).map(str::to_string).collect();
    let loader = Replay { texts: imported, next: std::sync::atomic::AtomicUsize::new(0) };
    bma::compile_with(&bma::Source::new("study.bma", root), &loader)
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
pub fn table(history: &History, spec: &StudySpec, space: &ir::Space, top: usize) -> String {
    let ranked = history.ranked();
    if ranked.is_empty() {
        return "no trial completed\n".into();
    }
    let front = runner::pareto_front(history);
    let params: Vec<&str> = space.free().map(|p| p.name.as_str()).take(6).collect();
    let mut header: Vec<String> = vec!["rank".into(), "trial".into()];
    header.extend(params.iter().map(|p| p.to_string()));
    header.extend(spec.objectives.iter().map(|(n, d)| format!("{n} {}", runner::arrow(*d))));
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
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (ri, r) in rows.iter().enumerate() {
        let line: Vec<String> = r.iter().zip(&widths).map(|(s, w)| format!("{s:>w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if ri == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (cols - 1)));
            out.push('\n');
        }
    }
    out
}

/// `bma report RUNDIR [--study NAME]`, or `bma report --store URL [--study NAME] [--out DIR]`.
pub fn report(args: &ReportArgs) -> ExitCode {
    let url = match &args.dir {
        Some(_) => None,
        None => super::run::store_url(args.store.as_deref()),
    };
    let result = match (&args.dir, url) {
        (_, Some(url)) => report_store(&url, args),
        (Some(dir), None) if args.out.is_none() => report_dir(dir, args).map(|w| (w, dir.clone())),
        (Some(_), None) => Err((
            "--out goes with --store (a run folder's report is written into the folder itself)".to_string(),
            INPUT,
        )),
        (None, None) => Err((
            "bma report needs a run folder (bma report runs/<experiment>) or a store (--store URL or BMA_STORE)"
                .to_string(),
            INPUT,
        )),
    };
    match result {
        Ok((written, dir)) => {
            print!("{}", written.text);
            for n in &written.notes {
                eprintln!("note: {n}");
            }
            let counts: Vec<String> = ["results.json", "results.csv", "report.html"]
                .iter()
                .filter(|f| dir.join(f).exists())
                .map(|f| dir.join(f).display().to_string())
                .collect();
            println!("wrote {}", counts.join(", "));
            ExitCode::from(OK)
        }
        Err((m, code)) => super::fail(m, code),
    }
}

/// A study read from a store (a shared PostgreSQL database, or a SQLite file), its
/// report written into `--out` (default `runs/<study>`).
fn report_store(url: &str, args: &ReportArgs) -> Result<(Written, PathBuf), Failure> {
    let place = bma::store::postgres::redact(url);
    let store = super::connect_store(url, 1).map_err(|e| (e.to_string(), INTERNAL))?;
    let name = match &args.study {
        Some(n) => n.clone(),
        None => {
            let studies = store.studies().map_err(|e| (format!("{place}: {e}"), INTERNAL))?;
            match studies.as_slice() {
                [] => return Err((format!("{place} holds no study"), INPUT)),
                [one] => one.name.clone(),
                many => {
                    let names: Vec<&str> = many.iter().map(|s| s.name.as_str()).collect();
                    return Err((
                        format!("{place} holds several studies ({}); pick one with --study", names.join(", ")),
                        INPUT,
                    ));
                }
            }
        }
    };
    let (study, trials) = bma::store::load_study(&*store, &name).map_err(|e| match e {
        bma::store::StoreError::NotFound(m) => (format!("{place}: {m}"), INPUT),
        e => (format!("{place}: {e}"), INTERNAL),
    })?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&name));
    if out.exists() && !out.is_dir() {
        return Err((format!("{} is not a folder", out.display()), INPUT));
    }
    std::fs::create_dir_all(&out).map_err(|e| (format!("cannot create {}: {e}", out.display()), INTERNAL))?;
    let mut written = regenerate(&*store, &study, &out)?;
    let unfinished = trials.iter().filter(|t| matches!(t.state, TrialState::Running | TrialState::Queued)).count();
    if unfinished > 0 {
        written.notes.push(format!("{unfinished} trial(s) are still running or queued; the report shows them as such"));
    }
    Ok((written, out))
}

fn report_dir(dir: &Path, args: &ReportArgs) -> Result<Written, Failure> {
    if !dir.exists() {
        return Err((format!("{} does not exist", dir.display()), INPUT));
    }
    if !dir.is_dir() {
        return Err((
            format!("{} is not a folder (give the run folder, e.g. runs/<experiment>)", dir.display()),
            INPUT,
        ));
    }
    let db = dir.join("study.db");
    if !db.is_file() {
        return Err((
            format!(
                "{} holds no study.db: not a run folder (`bma ls` lists the run folders under a folder)",
                dir.display()
            ),
            INPUT,
        ));
    }
    let store = Sqlite::open(&db).map_err(|e| (format!("{}: {e}", db.display()), INTERNAL))?;
    let studies = store.studies().map_err(|e| (format!("{}: {e}", db.display()), INTERNAL))?;
    let name = match (&args.study, studies.as_slice()) {
        (Some(n), _) => n.clone(),
        (None, []) => return Err((format!("{} holds no study", db.display()), INPUT)),
        (None, [one]) => one.name.clone(),
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|s| s.name.as_str()).collect();
            return Err((
                format!("{} holds several studies ({}); pick one with --study", db.display(), names.join(", ")),
                INPUT,
            ));
        }
    };
    let study = store.study(&name).map_err(|e| match e {
        bma::store::StoreError::NotFound(_) => {
            let names: Vec<&str> = studies.iter().map(|s| s.name.as_str()).collect();
            (format!("{} holds no study `{name}` (it has {})", db.display(), names.join(", ")), INPUT)
        }
        e => (format!("{}: {e}", db.display()), INTERNAL),
    })?;
    let written = regenerate(&store, &study, dir)?;
    let unfinished = store
        .history(study.id)
        .map(|h| h.iter().filter(|t| matches!(t.state, TrialState::Running | TrialState::Queued)).count())
        .unwrap_or(0);
    let mut written = written;
    if unfinished > 0 {
        written.notes.push(format!("{unfinished} trial(s) are still running or queued; the report shows them as such"));
    }
    Ok(written)
}
