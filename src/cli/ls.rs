//! `bma ls`: the studies of run folders (their `study.db`) or of a store; a `running`
//! study whose owner is gone shows as `stopped (no live owner)`.
//!
//! Exit codes: 0 listed (possibly nothing); 1 the folder does not exist; 2 a store or a
//! `study.db` could not be read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bma::store::{self, Sqlite, Store};
use bma::study::outputs::fmt_num;

use super::json;
use super::study::store_url;
use super::{Format, INPUT, INTERNAL, OK};

/// Arguments of `bma ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// A run folder or a folder of run folders (default `runs`).
    pub dir: Option<PathBuf>,
    /// List the studies in this store instead (`postgres://...`; default with no folder: `BMA_STORE`).
    #[arg(long, value_name = "URL", conflicts_with = "dir")]
    pub store: Option<String>,
    /// With a store: list this study's stored models (trial, size, chunks, hash, worker)
    /// and their total size.
    #[arg(long, value_name = "NAME", conflicts_with = "dir")]
    pub study: Option<String>,
    /// A line per study, or one JSON document (docs/json.md).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// How long a running trial's heartbeat proves its worker alive, for `bma ls`.
const ALIVE: f64 = 60.0;

/// A study's state as `bma ls` shows it: a `running` study whose owner is gone (killed,
/// the machine restarted) is `stopped (no live owner)`. The owner is the process holding
/// the run folder `dir` when that can be told, else any worker whose running trial beat
/// in the last minute.
fn shown_state(s: &store::StudySummary, store: &dyn Store, dir: Option<&Path>) -> String {
    if s.state != store::StudyState::Running {
        return s.state.as_str().to_string();
    }
    let alive = match dir.and_then(bma::study::out_owned) {
        Some(owned) => owned,
        None => {
            store.running_workers(s.id).map(|w| w.iter().any(|(_, beat)| store::now() - beat < ALIVE)).unwrap_or(true)
        }
    };
    if alive { "running".into() } else { "stopped (no live owner)".into() }
}

/// One `bma ls` line: where, name, state, counts, best values.
fn ls_line(place: &str, s: &store::StudySummary, state: &str) -> String {
    let n: u64 = s.counts.values().sum();
    let counts: Vec<String> = s.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let best = s
        .best
        .as_ref()
        .map(|(num, vals)| {
            let v: Vec<String> =
                s.objectives.iter().zip(vals).map(|((name, _), v)| format!("{name} {}", fmt_num(*v))).collect();
            format!("best #{num}: {}", v.join(", "))
        })
        .unwrap_or_else(|| "no complete trial".into());
    format!("{place}  {}  {state}  {n} trials ({})  {best}", s.name, counts.join(", "))
}

fn ls_store(url: &str, format: Format) -> ExitCode {
    let place = store::postgres::redact(url);
    let (store, studies) = match super::connect_store(url, 1).and_then(|s| s.studies().map(|l| (s, l))) {
        Ok(s) => s,
        Err(e) => return super::fail(e, INTERNAL),
    };
    if format == Format::Json {
        let list = studies.iter().map(|s| json::study(&place, s, &shown_state(s, &*store, None))).collect();
        json::print(&json::studies(list));
        return ExitCode::from(OK);
    }
    if studies.is_empty() {
        println!("no study in {place}");
    }
    for s in &studies {
        println!("{}", ls_line(&place, s, &shown_state(s, &*store, None)));
    }
    ExitCode::from(OK)
}

fn find_dbs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let db = dir.join("study.db");
    if db.is_file() {
        out.push(db);
    }
    if depth == 0 {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for d in dirs {
            if d.file_name().is_some_and(|n| n == "trials" || n == "best") {
                continue;
            }
            find_dbs(&d, depth - 1, out);
        }
    }
}

pub fn ls(args: &LsArgs) -> ExitCode {
    let url = match (&args.dir, &args.store) {
        (_, Some(u)) => Some(u.clone()),
        (None, None) => store_url(None),
        (Some(_), None) => None,
    };
    if args.study.is_some() && url.is_none() {
        return super::fail(
            "--study lists a study's stored models: give the store too (--store URL or BMA_STORE)",
            INPUT,
        );
    }
    if args.study.is_some() && args.format == Format::Json {
        return super::fail(
            "--study lists a study's stored models as text; --format json is not offered for it",
            INPUT,
        );
    }
    if let (Some(url), Some(name)) = (&url, &args.study) {
        return match super::stored::ls_artifacts(url, name) {
            Ok(text) => {
                print!("{text}");
                ExitCode::from(OK)
            }
            Err(e) => super::fail(e, INTERNAL),
        };
    }
    if let Some(url) = url {
        return ls_store(&url, args.format);
    }
    let root = args.dir.clone().unwrap_or_else(|| PathBuf::from("runs"));
    if !root.exists() {
        return super::fail(format!("{} does not exist", root.display()), INPUT);
    }
    let mut dbs = Vec::new();
    find_dbs(&root, 3, &mut dbs);
    if dbs.is_empty() && args.format == Format::Human {
        println!("no study under {}", root.display());
        return ExitCode::from(OK);
    }
    let mut failed = false;
    let mut list = Vec::new();
    for db in dbs {
        let dir = db.parent().unwrap_or(Path::new("."));
        match Sqlite::open(&db).and_then(|s| s.studies().map(|l| (s, l))) {
            Ok((store, studies)) => {
                for s in &studies {
                    let (place, state) = (dir.display().to_string(), shown_state(s, &store, Some(dir)));
                    match args.format {
                        Format::Human => println!("{}", ls_line(&place, s, &state)),
                        Format::Json => list.push(json::study(&place, s, &state)),
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e}", db.display());
                failed = true;
            }
        }
    }
    if args.format == Format::Json {
        json::print(&json::studies(list));
    }
    ExitCode::from(if failed { INTERNAL } else { OK })
}
