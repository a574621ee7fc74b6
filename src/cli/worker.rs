//! `bma worker`: joins a shared study by name and runs trials until its budget is done.
//!
//! The worker needs no copy of the `.bma` file: it compiles the spec text stored with
//! the study (imports are read from disk relative to the current folder, or to
//! `--file`'s folder), checks that the result has the stored spec hash, and runs the
//! same trial loop as `bma run` with the study's stored options (budget, strategy,
//! pins, heartbeat and stale timeouts). Exit codes as `bma run`'s.

use std::path::PathBuf;
use std::process::ExitCode;

use bma::Source;
use bma::search::study::MAX_PARALLEL;
use bma::store;
use bma::study::{self, Overrides, Plan, StoredOptions};

use super::study::{self as front, ProgressMode};
use super::{Format, INPUT, INTERNAL};

/// Arguments of `bma worker`.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The shared store, e.g. `postgres://user:password@host/db` (default: `BMA_STORE`).
    #[arg(long, value_name = "URL", env = "BMA_STORE")]
    pub store: Option<String>,
    /// The study to join (as `bma ls --store URL` lists it).
    #[arg(long, value_name = "NAME")]
    pub study: String,
    /// Trials at once in this worker (default: the spec's `search { parallel = }`, else 1).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Use this copy of the spec instead of the stored text; refused unless it has the
    /// study's spec hash. Relative data and import paths resolve from its folder. When
    /// the study does not exist yet, it is created from this file (its own settings).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Where this worker writes trained models and the results files (default: the spec's
    /// `report { out = }`, else `runs/<experiment>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Where to train: cpu, wgpu[:N] or cuda[:N] (a GPU needs a build with its feature, README: GPU).
    #[arg(long, default_value = "cpu", value_parser = front::parse_device)]
    pub device: bma::train::DeviceKind,
    /// Join even if a data file changed since the study started.
    #[arg(long = "allow-changed-data")]
    pub allow_changed_data: bool,
    /// Run a command study's program from the spec stored in the shared store, without
    /// `--file`: whoever can write the store could otherwise make this worker run anything.
    #[arg(long = "allow-commands")]
    pub allow_commands: bool,
    /// A command study's devices on this machine, e.g. `0,1` (as `bma run --devices`).
    #[arg(long, value_name = "LIST", value_parser = front::parse_devices)]
    pub devices: Option<front::Devices>,
}

impl WorkerArgs {
    /// This worker's own flags (the study's stored options supply the rest).
    fn overrides(&self) -> Result<Overrides, String> {
        Ok(Overrides {
            parallel: self.parallel,
            out: self.out.clone(),
            device: self.device,
            shared: true,
            allow_changed_data: self.allow_changed_data,
            devices: self.devices.clone().map(|d| d.0),
            ..Overrides::default()
        })
    }
}

pub fn worker(args: &WorkerArgs) -> ExitCode {
    let Some(url) = front::store_url(args.store.as_deref()) else {
        return super::fail("bma worker needs the shared store: pass --store URL or set BMA_STORE", INPUT);
    };
    if args.parallel == Some(0) {
        return super::fail("--parallel must be at least 1", INPUT);
    }
    if let Some(p) = args.parallel.filter(|p| *p > MAX_PARALLEL) {
        return super::fail(format!("--parallel {p}: at most {MAX_PARALLEL} trials run at once in one process"), INPUT);
    }
    let store = match super::connect_store(&url, args.parallel.unwrap_or(1) + 2) {
        Ok(s) => s,
        Err(e) => return super::fail(e, INTERNAL),
    };
    let stored = match store.study(&args.study) {
        Ok(Some(s)) => s,
        Ok(None) if args.file.is_some() => return create_and_run(store, args),
        Ok(None) => {
            let names: Vec<String> =
                store.studies().map(|s| s.into_iter().map(|s| s.name).collect()).unwrap_or_default();
            let known =
                if names.is_empty() { "it holds none".to_string() } else { format!("it holds {}", names.join(", ")) };
            return super::fail(
                format!(
                    "no study `{}` in {} ({known}); start it with `bma run FILE --store URL`",
                    args.study,
                    store::postgres::redact(&url)
                ),
                INPUT,
            );
        }
        Err(e) => return super::fail(e, INTERNAL),
    };
    let source = match &args.file {
        Some(path) => match super::read_source(path) {
            Ok(s) => s,
            Err(m) => return super::fail(m, INPUT),
        },
        None => {
            let cwd = std::env::current_dir().unwrap_or_default();
            Source {
                name: format!("study `{}` (stored spec)", args.study),
                path: Some(cwd.join(format!("{}.bma", args.study))),
                text: study::root_text(&stored.spec.spec_text).to_string(),
            }
        }
    };
    let compiled = bma::compile(&source);
    if super::report_diagnostics(&compiled.sources, &compiled.diagnostics, Format::Human) {
        return super::fail(
            format!("the spec of study `{}` has errors with this bma; nothing was run", args.study),
            INPUT,
        );
    }
    let hash = store::spec_hash(&study::spec_text(&compiled));
    if args.file.is_some() && hash != stored.spec.spec_hash {
        let e =
            store::StoreError::SpecMismatch { name: args.study.clone(), stored: stored.spec.spec_hash, given: hash };
        return super::fail(e, INPUT);
    }
    let local = match args.overrides() {
        Ok(o) => o,
        Err(m) => return super::fail(m, INPUT),
    };
    let plan = match Plan::new(&compiled, &StoredOptions::for_worker(&stored, &local)) {
        Ok(p) => p,
        Err(e) => return front::fail(e),
    };
    if args.file.is_none() && !args.allow_commands && plan.experiment.trial.is_some() {
        return super::fail(
            format!(
                "study `{}` runs a command (`trial {{ command }}`) read from the shared store; a worker runs \
                 one only from a spec given here: pass the same file with --file, or --allow-commands if you \
                 trust everyone who can write the store",
                args.study
            ),
            INPUT,
        );
    }
    match study::join(&plan, store, &args.study) {
        Ok(opened) => front::execute(&plan, || Ok(opened), args.progress, true, super::Format::Human),
        Err(study::Error::Input(m)) => {
            let hint = if args.file.is_none() && m.contains("different spec") {
                " (the stored spec imports files that differ here; run the worker where they match)"
            } else {
                ""
            };
            super::fail(format!("{m}{hint}"), INPUT)
        }
        Err(e) => front::fail(e),
    }
}

/// `--file` given and no such study yet: creates it from the file (its own `search`
/// settings; every worker started the same way agrees), then runs it.
fn create_and_run(store: Box<dyn store::Store>, args: &WorkerArgs) -> ExitCode {
    let Some(path) = &args.file else { return super::fail("bma worker: no --file", INPUT) };
    let compiled = match super::compile_path(path) {
        Ok(c) => c,
        Err(m) => return super::fail(m, INPUT),
    };
    if super::report_diagnostics(&compiled.sources, &compiled.diagnostics, Format::Human) {
        return super::fail(format!("{} has errors; nothing was run", path.display()), INPUT);
    }
    let local = match args.overrides() {
        Ok(o) => o,
        Err(m) => return super::fail(m, INPUT),
    };
    let plan = match Plan::new(&compiled, &local) {
        Ok(p) => p,
        Err(e) => return front::fail(e),
    };
    match study::join(&plan, store, &args.study) {
        Ok(opened) => front::execute(&plan, || Ok(opened), args.progress, true, super::Format::Human),
        Err(e) => front::fail(e),
    }
}
