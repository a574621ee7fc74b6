//! `bma run`: a study from a `.bma` file, in its out folder or a shared store.
//!
//! Exit codes: 0 the study ran (or resumed) to its budget, time or the end of its
//! strategy; 1 the input is wrong (diagnostics, a bad flag, a study in `--out` that
//! needs `--resume`, a spec that changed under `--resume`, an out folder that is not a
//! study's without `--force`, cannot be written, or is owned by another run; data that
//! does not load); 2 bma failed (the store, the system); 130 interrupted by Ctrl-C,
//! SIGTERM or SIGHUP (everything recorded; `--resume` continues).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bma::study::{self, Overrides, Plan, StoredOptions};

use super::study::{ProgressMode, StudyFlags, execute, fail, parse_duration, store_url};
use super::{Format, INPUT, INTERNAL};

/// Arguments of `bma run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The .bma file.
    pub file: PathBuf,
    #[command(flatten)]
    pub flags: StudyFlags,
    /// Continue the study stored in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Write into an output folder that is not empty and holds no study (files of the
    /// same names in it, such as `best/`, are replaced).
    #[arg(long)]
    pub force: bool,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// The summary at the end: the ranked table and a line, or one JSON document
    /// (docs/json.md; progress and notes stay on stderr).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Where the study lives: `postgres://user@host/db` (shared with `bma worker`s on any
    /// machine: created, or joined if it exists) or a SQLite file (`sqlite://PATH` or a
    /// path). Default: `BMA_STORE` if set, else `<out>/study.db`.
    #[arg(long, value_name = "URL", env = "BMA_STORE")]
    pub store: Option<String>,
    /// The study's name in the store (default: the experiment's name).
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// How often this process refreshes its running trials' heartbeat (default 5s).
    #[arg(long, value_parser = parse_duration)]
    pub heartbeat: Option<Duration>,
    /// In a shared study (`--store`), a running trial with no heartbeat for this long
    /// is requeued for another worker (default 60s); stored with the study for its workers.
    #[arg(long = "stale-after", value_parser = parse_duration)]
    pub stale_after: Option<Duration>,
    /// With `--store`: once the study is done, keep in the store only the models of the K
    /// best trials and those the final model is built from (`top:K`).
    #[arg(long, value_name = "top:K", value_parser = super::stored::parse_keep)]
    pub keep: Option<usize>,
}

impl RunArgs {
    /// The flags that override the file's settings.
    pub fn overrides(&self) -> Result<Overrides, String> {
        let mut o = self.flags.overrides(store_url(self.store.as_deref()).is_some())?;
        o.heartbeat = self.heartbeat;
        o.stale_after = self.stale_after;
        o.caller_finishes = true;
        Ok(o)
    }
}

pub fn run(args: &RunArgs) -> ExitCode {
    let compiled = match super::compile_path(&args.file) {
        Ok(c) => c,
        Err(m) => return super::fail(m, INPUT),
    };
    if super::report_diagnostics(&compiled.sources, &compiled.diagnostics, Format::Human) {
        eprintln!("error: {} has errors; nothing was run", args.file.display());
        return ExitCode::from(INPUT);
    }
    let overrides = match args.overrides() {
        Ok(o) => o,
        Err(m) => return super::fail(m, INPUT),
    };
    let plan = match Plan::new(&compiled, &overrides) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let name = args.study.clone().unwrap_or_else(|| plan.experiment.name.clone());
    // `--resume` continues the folder's own study; a shared study lives in its store.
    let local_resume = args.resume && store_url(args.store.as_deref()).is_none();
    if let Err(e) = study::prepare_out(&plan.out, args.force, local_resume) {
        return fail(e);
    }
    // Held until the process ends: the folder's one owner.
    let _owner = match study::lock_out(&plan.out) {
        Ok(lock) => lock,
        Err(e) => return fail(e),
    };
    let Some(url) = store_url(args.store.as_deref()) else {
        if args.keep.is_some() {
            return super::fail("--keep applies to models kept in a shared store: give --store URL", INPUT);
        }
        return execute(&plan, || study::open_local(&plan, &name, args.resume), args.progress, false, args.format);
    };
    let code = run_shared(args, &compiled, &overrides, &plan, &name, &url);
    if let Some(k) = args.keep
        && code == ExitCode::from(super::OK)
    {
        match super::stored::keep(&url, &name, k) {
            Ok(line) if args.progress != ProgressMode::None => eprintln!("note: {line}"),
            Ok(_) => {}
            Err(e) => return super::fail(format!("--keep: {e}"), INTERNAL),
        }
    }
    code
}

/// `bma run --store URL`: creates or joins the shared study `name` and runs it.
fn run_shared(
    args: &RunArgs,
    compiled: &bma::Compiled,
    overrides: &Overrides,
    plan: &Plan<'_>,
    name: &str,
    url: &str,
) -> ExitCode {
    let (plan, name, url) = (plan, name.to_string(), url.to_string());
    let store = match super::connect_store(&url, plan.settings.parallel + 2) {
        Ok(s) => s,
        Err(e) => return super::fail(e, INTERNAL),
    };
    let options = StoredOptions::of(overrides, &plan.experiment.name);
    let opened = match study::open_shared(plan, store, &name, &options) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    // Joining a study another run created: its stored options (budget, strategy, pins) win.
    let stored = StoredOptions::stored(&opened.study);
    if !opened.study.created_now && !opened.study.spec.options.is_empty() && stored != options {
        if args.progress != ProgressMode::None {
            eprintln!(
                "note: joining study `{name}`: its stored options (budget, strategy, pins) apply, not this run's flags"
            );
        }
        return match Plan::new(compiled, &stored.apply(overrides)) {
            Ok(plan) => execute(&plan, || Ok(opened), args.progress, false, args.format),
            Err(e) => fail(e),
        };
    }
    execute(plan, || Ok(opened), args.progress, false, args.format)
}
