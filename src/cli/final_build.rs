//! `bma final --store URL --study NAME --out DIR`: builds a shared study's `best/` and
//! `final/` on any machine from the models its workers stored (fetched into `DIR/trials/`
//! unless there already), then its results files and report, as the `bma run` that owns
//! the study does at its end.
//!
//! Exit codes: 0 built; 1 no such study, no complete trial, no model to build; 2 the
//! store failed or a stored model is damaged (its SHA-256 does not match).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{INPUT, OK};

/// Arguments of `bma final`.
#[derive(clap::Args, Debug)]
pub struct FinalArgs {
    /// The shared store (default: `BMA_STORE`).
    #[arg(long, value_name = "URL", env = "BMA_STORE")]
    pub store: Option<String>,
    /// The study (needed when the store holds several).
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// The folder to build in (default `runs/<study>`): `trials/<n>/` for the fetched
    /// models, `best/`, `final/`, the results files and the report.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `bma final`.
pub fn final_command(args: &FinalArgs) -> ExitCode {
    let Some(url) = super::study::store_url(args.store.as_deref()) else {
        return super::fail("bma final needs the study's store: pass --store URL or set BMA_STORE", INPUT);
    };
    match super::stored::build(&url, args.study.as_deref(), args.out.clone()) {
        Ok((written, fetched, out)) => {
            print!("{}", written.text);
            if let Some(n) = fetched.note() {
                eprintln!("note: {n}");
            }
            for n in &written.notes {
                eprintln!("note: {n}");
            }
            let built: Vec<String> = ["best", "final"]
                .iter()
                .filter(|d| out.join(d).is_dir())
                .map(|d| out.join(d).display().to_string())
                .collect();
            println!(
                "fetched {} model(s), {} already here; built {}",
                fetched.fetched.len(),
                fetched.present.len(),
                if built.is_empty() { "no model".to_string() } else { built.join(", ") }
            );
            ExitCode::from(OK)
        }
        Err(e) => super::study::fail(e),
    }
}
