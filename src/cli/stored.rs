//! What the commands share about models in a shared store (issue 24), not a command
//! itself: [`build`] fetches a stored study's members and builds its `best/` and `final/`
//! (`bma final`, and [`model_place`] for `bma eval`/`bma predict --store`, which fetch into
//! a temporary folder removed afterwards); [`keep`] applies `bma run --keep top:K`;
//! [`ls_artifacts`] is `bma ls --store URL --study NAME`; [`install_kill_hook`] is the fault
//! tests' `BMA_TEST_KILL_UPLOAD`.

use std::path::PathBuf;
use std::sync::OnceLock;

use bma::search::study::Ended;
use bma::store::{self, Store, StudyState};
use bma::study::outputs::{self, regenerate};
use bma::study::{self, Error, Overrides, Plan, StoredOptions, artifacts};
use bma::trial::History;

/// A stored study: its store, its record, its trials.
pub type StoredStudy = (Box<dyn Store>, store::Study, Vec<bma::trial::Trial>);

/// Opens the study `name` in the store at `url` (with no name, the store's only study;
/// several are refused, listed); errors name the store with its password redacted.
pub fn open(url: &str, name: Option<&str>) -> Result<StoredStudy, Error> {
    let place = store::postgres::redact(url);
    let store = super::connect_store(url, 1).map_err(|e| Error::Internal(e.to_string()))?;
    let name = match name {
        Some(n) => n.to_string(),
        None => {
            let studies = store.studies().map_err(|e| Error::Internal(format!("{place}: {e}")))?;
            match studies.as_slice() {
                [] => return Err(Error::Input(format!("{place} holds no study"))),
                [one] => one.name.clone(),
                many => {
                    let names: Vec<&str> = many.iter().map(|s| s.name.as_str()).collect();
                    return Err(Error::Input(format!(
                        "{place} holds several studies ({}); pick one with --study",
                        names.join(", ")
                    )));
                }
            }
        }
    };
    let (study, trials) = store::load_study(&*store, &name).map_err(|e| match e {
        store::StoreError::NotFound(m) => Error::Input(format!("{place}: {m}")),
        e => Error::Internal(format!("{place}: {e}")),
    })?;
    Ok((store, study, trials))
}

/// Fetches what the stored study's `average` section needs into `out` (default
/// `runs/<study>`), builds `best/` and `final/` there as the run that owns the study does,
/// and writes the results files.
pub fn build(
    url: &str,
    name: Option<&str>,
    out: Option<PathBuf>,
) -> Result<(outputs::Written, artifacts::Fetched, PathBuf), Error> {
    let (store, study, trials) = open(url, name)?;
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&study.spec.name));
    if out.exists() && !out.is_dir() {
        return Err(Error::Input(format!("{} is not a folder", out.display())));
    }
    std::fs::create_dir_all(&out).map_err(|e| study::io_error("cannot create", &out, e))?;
    let compiled = outputs::stored_program(&study.spec.spec_text);
    let local = Overrides { out: Some(out.clone()), ..Overrides::default() };
    let plan = Plan::new(&compiled, &StoredOptions::for_worker(&study, &local))?;
    if plan.experiment.model.is_none() {
        return Err(Error::Input(format!(
            "study `{}` trains no model (experiment `{}` has no `model`): there is no final model to build",
            study.spec.name, plan.experiment.name
        )));
    }
    let mut history = History::new(study.spec.directions(), study::rank(plan.experiment));
    for t in trials.into_iter().filter(|t| !t.is_unproposed()) {
        history.upsert(t);
    }
    if history.ranked().is_empty() {
        return Err(Error::Input(format!("study `{}` has no complete trial yet", study.spec.name)));
    }
    let fetched = artifacts::for_final(&*store, study.id, plan.experiment, &history, &out)?;
    let ended = if study.state == StudyState::Interrupted { Ended::Interrupted } else { Ended::Budget };
    let (_, _, mut notes) = outputs::models(&plan, &history, ended);
    let mut written = regenerate(&*store, &study, &out)?;
    notes.append(&mut written.notes);
    written.notes = notes;
    Ok((written, fetched, out))
}

/// A model of a stored study brought into a fresh temporary folder for `bma eval` and
/// `bma predict --store`: trial `trial`'s (a saved model folder), or else a run folder with
/// `best/` and `final/` built from the fetched members. The folder goes when the value is
/// dropped.
pub struct Fetched {
    tmp: PathBuf,
    pub dir: PathBuf,
}

impl Drop for Fetched {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// A new empty folder under the system's temporary folder.
fn temp_folder() -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("bma-fetch-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn fetch_model(url: &str, name: &str, trial: Option<u64>) -> Result<Fetched, String> {
    let tmp = temp_folder()?;
    // Dropped on every path out: the folder goes with it.
    let mut fetched = Fetched { tmp: tmp.clone(), dir: tmp.clone() };
    if let Some(n) = trial {
        let (store, study, _) = open(url, Some(name)).map_err(|e| e.message().to_string())?;
        let f = artifacts::fetch(&*store, study.id, &[n], &tmp).map_err(|e| e.message().to_string())?;
        if f.fetched.is_empty() {
            return Err(format!("study `{name}` has no stored model for trial {n}"));
        }
        fetched.dir = study::trial_dir(&tmp, n);
        return Ok(fetched);
    }
    build(url, Some(name), Some(tmp)).map_err(|e| e.message().to_string())?;
    Ok(fetched)
}

/// Where `bma eval`/`bma predict` find their model: the folder given, or (`--store URL
/// --study NAME`) one fetched from a store; `--trial N` picks `trials/<N>` of either.
pub enum ModelPlace {
    Local(PathBuf),
    Fetched(Fetched),
}

impl ModelPlace {
    pub fn path(&self) -> &std::path::Path {
        match self {
            ModelPlace::Local(p) => p,
            ModelPlace::Fetched(f) => &f.dir,
        }
    }
}

pub fn model_place(
    dir: Option<&std::path::Path>,
    store: Option<&str>,
    name: Option<&str>,
    trial: Option<u64>,
) -> Result<ModelPlace, String> {
    match (dir, store) {
        (Some(_), Some(_)) => Err("give a model folder or --store, not both".into()),
        (None, Some(url)) => {
            let name = name.ok_or("--store needs --study NAME (`bma ls --store URL` lists them)")?;
            fetch_model(url, name, trial).map(ModelPlace::Fetched)
        }
        (Some(d), None) if name.is_some() => Err(format!("--study goes with --store; {} is a folder", d.display())),
        (Some(d), None) => Ok(ModelPlace::Local(match trial {
            Some(n) => study::trial_dir(d, n),
            None => d.to_path_buf(),
        })),
        (None, None) => Err("give a model folder, or --store URL --study NAME".into()),
    }
}

/// `--keep top:K` of `bma run --store`: `K`.
pub fn parse_keep(text: &str) -> Result<usize, String> {
    let bad = || format!("`{text}`: write top:K, e.g. top:5 (the K best trials' models stay in the store)");
    let k = text.trim().strip_prefix("top:").ok_or_else(bad)?.trim().parse::<usize>().map_err(|_| bad())?;
    if k == 0 {
        return Err(format!("`{text}`: K must be at least 1 (the best trial's model always stays)"));
    }
    Ok(k)
}

/// After `bma run --store ... --keep top:K`: deletes the stored models beyond the `k` best
/// and those the final model is built from. Gives a line for the user.
pub fn keep(url: &str, name: &str, k: usize) -> Result<String, String> {
    let (store, study, trials) = open(url, Some(name)).map_err(|e| e.message().to_string())?;
    let compiled = outputs::stored_program(&study.spec.spec_text);
    let exp = compiled
        .program
        .experiment(&study.spec.experiment)
        .ok_or_else(|| format!("the stored spec of study `{name}` no longer defines its experiment"))?;
    let mut history = History::new(study.spec.directions(), study::rank(exp));
    for t in trials.into_iter().filter(|t| !t.is_unproposed()) {
        history.upsert(t);
    }
    let n = artifacts::keep_top(&*store, study.id, exp, &history, k).map_err(|e| e.message().to_string())?;
    let left = store.artifacts(study.id).map_err(|e| e.to_string())?;
    let size: u64 = left.iter().map(|a| a.size).sum();
    Ok(format!("--keep top:{k}: deleted {n} stored model(s); {} stay ({})", left.len(), artifacts::human_bytes(size)))
}

/// `BMA_TEST_KILL_UPLOAD=N` (fault tests only): this process kills itself with SIGKILL right
/// after it sent chunk `N` of a model to the store, before the upload's transaction commits.
pub fn install_kill_hook(value: &str) -> Result<(), String> {
    static AT: OnceLock<u32> = OnceLock::new();
    let n: u32 = value.trim().parse().map_err(|_| format!("BMA_TEST_KILL_UPLOAD: `{value}` is not a chunk index"))?;
    let _ = AT.set(n);
    fn hook(_trial: u64, chunk: u32) {
        if AT.get() == Some(&chunk) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        }
    }
    store::artifacts::set_chunk_hook(hook);
    Ok(())
}

/// `bma ls --store URL --study NAME`: the study's stored models and their total size.
pub fn ls_artifacts(url: &str, name: &str) -> Result<String, String> {
    let (store, study, _) = open(url, Some(name)).map_err(|e| e.message().to_string())?;
    let list = store.artifacts(study.id).map_err(|e| e.to_string())?;
    let total: u64 = list.iter().map(|a| a.size).sum();
    let mut text =
        format!("study `{name}`: {} stored model(s), {} in all\n", list.len(), artifacts::human_bytes(total));
    for a in &list {
        text.push_str(&format!(
            "  trial {:>4}  {:>9}  {} chunk(s)  {} file(s)  sha256 {}  {}\n",
            a.number,
            artifacts::human_bytes(a.size),
            a.chunks,
            a.files,
            &a.sha256[..a.sha256.len().min(16)],
            a.worker.as_deref().unwrap_or("-")
        ));
    }
    Ok(text)
}
