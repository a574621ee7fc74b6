//! `bma rm --store URL --study NAME`: deletes a study from a store with its trials, their
//! steps and the models stored with them (`Store::delete_study`). A study with a trial
//! whose worker beat in the last minute is refused unless `--force`: its workers would
//! lose their claims mid-trial.
//!
//! Exit codes: 0 deleted; 1 no such study, or a live study without `--force`; 2 the store
//! failed.

use std::process::ExitCode;

use bma::store;

use super::{INPUT, INTERNAL, OK};

/// Arguments of `bma rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// The store (`postgres://...`, or a SQLite file; default: `BMA_STORE`).
    #[arg(long, value_name = "URL", env = "BMA_STORE")]
    pub store: Option<String>,
    /// The study to delete.
    #[arg(long, value_name = "NAME")]
    pub study: String,
    /// Delete it even if its workers are running.
    #[arg(long)]
    pub force: bool,
}

/// How recent a heartbeat proves a worker alive (as `bma ls` shows it).
const ALIVE: f64 = 60.0;

pub fn rm(args: &RmArgs) -> ExitCode {
    let Some(url) = super::study::store_url(args.store.as_deref()) else {
        return super::fail("bma rm needs the store: pass --store URL or set BMA_STORE", INPUT);
    };
    let place = store::postgres::redact(&url);
    let store = match super::connect_store(&url, 1) {
        Ok(s) => s,
        Err(e) => return super::fail(e, INTERNAL),
    };
    let study = match store::load_study(&*store, &args.study) {
        Ok((s, _)) => s,
        Err(store::StoreError::NotFound(m)) => return super::fail(format!("{place}: {m}"), INPUT),
        Err(e) => return super::fail(format!("{place}: {e}"), INTERNAL),
    };
    let live = match store.running_workers(study.id) {
        Ok(w) => w.into_iter().filter(|(_, beat)| store::now() - beat < ALIVE).count(),
        Err(e) => return super::fail(e, INTERNAL),
    };
    if live > 0 && !args.force {
        return super::fail(
            format!(
                "study `{}` has {live} worker(s) running trials (a heartbeat in the last minute); stop them \
                 first, or pass --force",
                args.study
            ),
            INPUT,
        );
    }
    let (trials, models) = match (store.history(study.id), store.artifacts(study.id)) {
        (Ok(t), Ok(a)) => (t.len(), a),
        (Err(e), _) | (_, Err(e)) => return super::fail(e, INTERNAL),
    };
    match store.delete_study(&args.study) {
        Ok(true) => {
            let size: u64 = models.iter().map(|a| a.size).sum();
            println!(
                "deleted study `{}` from {place}: {trials} trial(s), {} stored model(s) ({})",
                args.study,
                models.len(),
                bma::study::artifacts::human_bytes(size)
            );
            ExitCode::from(OK)
        }
        Ok(false) => super::fail(format!("{place}: no study `{}` (deleted meanwhile?)", args.study), INPUT),
        Err(e) => super::fail(e, INTERNAL),
    }
}
