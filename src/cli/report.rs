//! `bma report RUNDIR` (or `--store URL`): rewrites `results.json`, `results.csv`,
//! `report.html` and the ranked table of a stored study through
//! [`bma::study::outputs::regenerate`], without training: only the saved best model is
//! re-evaluated on test, as the run did.
//!
//! Exit codes of `bma report`: 0 written; 1 the folder is not a run folder (missing, no
//! `study.db`, no study or several without `--study`) or cannot be written (read-only, a
//! file in the way); 2 the store or the system failed (a corrupt `study.db`, a full disk).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bma::store::{Sqlite, Store};
use bma::study::Error;
use bma::study::outputs::{Written, regenerate};
use bma::trial::TrialState;

use super::OK;

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

/// `bma report RUNDIR [--study NAME]`, or `bma report --store URL [--study NAME] [--out DIR]`.
pub fn report(args: &ReportArgs) -> ExitCode {
    let url = match &args.dir {
        Some(_) => None,
        None => super::study::store_url(args.store.as_deref()),
    };
    let result = match (&args.dir, url) {
        (_, Some(url)) => report_store(&url, args),
        (Some(dir), None) if args.out.is_none() => report_dir(dir, args).map(|w| (w, dir.clone())),
        (Some(_), None) => Err(Error::Input(
            "--out goes with --store (a run folder's report is written into the folder itself)".to_string(),
        )),
        (None, None) => Err(Error::Input(
            "bma report needs a run folder (bma report runs/<experiment>) or a store (--store URL or BMA_STORE)"
                .to_string(),
        )),
    };
    match result {
        Ok((written, dir)) => {
            print!("{}", written.terminal(super::output::table_width()));
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
        Err(e) => super::study::fail(e),
    }
}

/// A study read from a store (a shared PostgreSQL database, or a SQLite file), its
/// report written into `--out` (default `runs/<study>`).
fn report_store(url: &str, args: &ReportArgs) -> Result<(Written, PathBuf), Error> {
    let (store, study, trials) = super::stored::open(url, args.study.as_deref())?;
    let name = study.spec.name.clone();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&name));
    if out.exists() && !out.is_dir() {
        return Err(Error::Input(format!("{} is not a folder", out.display())));
    }
    std::fs::create_dir_all(&out).map_err(|e| bma::study::io_error("cannot create", &out, e))?;
    let mut written = regenerate(&*store, &study, &out)?;
    let unfinished = trials
        .iter()
        .filter(|t| !t.is_unproposed() && matches!(t.state, TrialState::Running | TrialState::Queued))
        .count();
    if unfinished > 0 {
        written.notes.push(format!("{unfinished} trial(s) are still running or queued; the report shows them as such"));
    }
    Ok((written, out))
}

fn report_dir(dir: &Path, args: &ReportArgs) -> Result<Written, Error> {
    if !dir.exists() {
        return Err(Error::Input(format!("{} does not exist", dir.display())));
    }
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "{} is not a folder (give the run folder, e.g. runs/<experiment>)",
            dir.display()
        )));
    }
    let db = dir.join("study.db");
    if !db.is_file() {
        return Err(Error::Input(format!(
            "{} holds no study.db: not a run folder (`bma ls` lists the run folders under a folder)",
            dir.display()
        )));
    }
    let store = Sqlite::open(&db).map_err(|e| Error::Internal(format!("{}: {e}", db.display())))?;
    let studies = store.studies().map_err(|e| Error::Internal(format!("{}: {e}", db.display())))?;
    let name = match (&args.study, studies.as_slice()) {
        (Some(n), _) => n.clone(),
        (None, []) => return Err(Error::Input(format!("{} holds no study", db.display()))),
        (None, [one]) => one.name.clone(),
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::Input(format!(
                "{} holds several studies ({}); pick one with --study",
                db.display(),
                names.join(", ")
            )));
        }
    };
    let study = store.study(&name).map_err(|e| match e {
        bma::store::StoreError::NotFound(_) => {
            let names: Vec<&str> = studies.iter().map(|s| s.name.as_str()).collect();
            Error::Input(format!("{} holds no study `{name}` (it has {})", db.display(), names.join(", ")))
        }
        e => Error::Internal(format!("{}: {e}", db.display())),
    })?;
    let written = regenerate(&store, &study, dir)?;
    let unfinished = store
        .history(study.id)
        .map(|h| {
            h.iter()
                .filter(|t| !t.is_unproposed() && matches!(t.state, TrialState::Running | TrialState::Queued))
                .count()
        })
        .unwrap_or(0);
    let mut written = written;
    if unfinished > 0 {
        written.notes.push(format!("{unfinished} trial(s) are still running or queued; the report shows them as such"));
    }
    Ok(written)
}
