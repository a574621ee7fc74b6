//! `bma run`: search, train, rank and report. (Being written with the search engine.)

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bma run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The .bma file.
    pub file: PathBuf,
}

pub fn run(args: &RunArgs) -> ExitCode {
    super::fail(format!("`bma run {}`: the search engine is not built yet", args.file.display()), super::INTERNAL)
}
