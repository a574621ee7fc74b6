//! The `bma` command line: a thin layer over the library.
#![allow(clippy::print_stdout, clippy::print_stderr)]

// The printing macros of this binary shadow std's (a `macro_rules!` defined before `mod cli`
// is in scope in every module below): they write and ignore errors, so a closed pipe
// (`bma run … | head`) or a full disk never panics mid-run; the run goes on and records
// everything in its store and output files.
macro_rules! print {
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = write!(std::io::stdout().lock(), $($arg)*); }};
}
macro_rules! println {
    () => {{ use std::io::Write as _; let _ = writeln!(std::io::stdout().lock()); }};
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stdout().lock(), $($arg)*); }};
}
macro_rules! eprint {
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = write!(std::io::stderr().lock(), $($arg)*); }};
}
macro_rules! eprintln {
    () => {{ use std::io::Write as _; let _ = writeln!(std::io::stderr().lock()); }};
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stderr().lock(), $($arg)*); }};
}

mod cli;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use cli::{Format, INPUT, INTERNAL, OK};

/// Declarative automatic model search: check a search space statically, search,
/// train, average.
#[derive(Parser)]
#[command(name = "bma", version, about, long_about = None, after_help = ENVIRONMENT)]
struct Cli {
    #[command(flatten)]
    global: cli::output::Global,
    #[command(subcommand)]
    command: Command,
}

/// The environment variables bma reads, listed under `bma --help`.
const ENVIRONMENT: &str = "\
Environment:
  BMA_STORE        the study store of run, worker, ls and report when no --store or folder is given
  BMA_STORE_RETRY  how long a PostgreSQL store that does not answer is retried (default 60s)
  NO_COLOR         no colour with --color auto (the default)
  COLUMNS          the width of diagnostics and of the ranked table (default: the terminal's)";

#[derive(Subcommand)]
enum Command {
    /// Finds every mistake in .bma files before anything runs.
    Check {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Print the doc comments of the experiments, blocks and parameters.
        #[arg(long)]
        explain: bool,
    },
    /// Shows the search space: parameters, domains, conditions, size, params and FLOPs.
    Space {
        file: PathBuf,
        /// Only this experiment (default: all).
        #[arg(long)]
        experiment: Option<String>,
        /// Text, or JSON: one document per experiment, one per line (docs/json.md).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Prints one expanded sub-model as Graphviz DOT, with shapes.
    Graph {
        file: PathBuf,
        /// Pin a parameter: `--set depth=2` (others take their first value).
        #[arg(long = "set", value_name = "P=V")]
        set: Vec<String>,
        #[arg(long)]
        experiment: Option<String>,
        /// DOT, or JSON: the point, sizes and layers with their shapes (docs/json.md).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Searches: samples, trains, prunes, ranks and reports.
    Run(cli::run::RunArgs),
    /// Rewrites files in the one canonical layout (comments kept); `-` or no file: stdin to stdout.
    Fmt {
        files: Vec<PathBuf>,
        /// Change nothing; list the files that are not formatted and exit 1 if any.
        #[arg(long)]
        check: bool,
    },
    /// Reloads a run's final model (or its best trial, or a saved trial) and evaluates it on a split.
    Eval(cli::eval::EvalArgs),
    /// Writes a saved model as an ONNX file (and test vectors from its test split with --samples).
    Export(cli::export::ExportArgs),
    /// Predicts new inputs (a CSV, images, texts, WAV clips) with a saved model, from its folder alone.
    Predict(cli::predict::PredictArgs),
    /// Rewrites a run folder's results, ranked table and HTML report from its study store, without training.
    Report(cli::report::ReportArgs),
    /// Joins a shared study (`--store postgres://...`) by name and runs its trials.
    Worker(cli::worker::WorkerArgs),
    /// Lists the studies under a folder, or in a store, with their state and best values.
    Ls(cli::ls::LsArgs),
    /// Builds a shared study's final model on any machine from the models stored with its trials.
    Final(cli::final_build::FinalArgs),
    /// Deletes a study from a store, with its trials and the models stored with them.
    Rm(cli::rm::RmArgs),
    /// Runs the language server on stdin and stdout (for editors).
    Lsp,
    /// Re-checks on every save and re-runs what changed, reusing trained trials.
    Watch(cli::watch::WatchArgs),
    /// Prints a shell completion script: `bma completions bash > ~/.local/share/bash-completion/completions/bma`.
    Completions(cli::completions::CompletionsArgs),
    /// Prints the man page (roff): `bma man > ~/.local/share/man/man1/bma.1`.
    Man,
}

fn main() -> ExitCode {
    bma::configure_allocator();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = Cli::command().color(cli::output::clap_color(&args));
    let cli = match command.try_get_matches_from(&args).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { INPUT } else { OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    cli::output::set(cli.global);
    // Fault tests only (docs/distributed.md): die while a model is being stored.
    if let Ok(v) = std::env::var("BMA_TEST_KILL_UPLOAD")
        && let Err(e) = cli::stored::install_kill_hook(&v)
    {
        return cli::fail(e, INPUT);
    }
    match cli.command {
        Command::Check { files, format, deny_warnings, explain } => check(&files, format, deny_warnings, explain),
        Command::Space { file, experiment, format } => space(&file, experiment.as_deref(), format),
        Command::Graph { file, set, experiment, format } => graph(&file, &set, experiment.as_deref(), format),
        Command::Run(args) => cli::run::run(&args),
        Command::Fmt { files, check } => cli::fmt::fmt_command(&files, check),
        Command::Eval(args) => cli::eval::eval(&args),
        Command::Export(args) => cli::export::export(&args),
        Command::Predict(args) => cli::predict::predict(&args),
        Command::Report(args) => cli::report::report(&args),
        Command::Worker(args) => cli::worker::worker(&args),
        Command::Ls(args) => cli::ls::ls(&args),
        Command::Final(args) => cli::final_build::final_command(&args),
        Command::Rm(args) => cli::rm::rm(&args),
        Command::Lsp => cli::lsp::lsp(),
        Command::Watch(args) => cli::watch::watch(&args),
        Command::Completions(args) => cli::completions::completions(&args, Cli::command()),
        Command::Man => cli::completions::man(Cli::command()),
    }
}

fn check(files: &[PathBuf], format: Format, deny_warnings: bool, explain: bool) -> ExitCode {
    let mut failed = false;
    for path in files {
        if cli::output::verbose() {
            eprintln!("checking {}", path.display());
        }
        let compiled = match cli::compile_path(path) {
            Ok(c) => c,
            Err(message) => {
                eprintln!("error: {message}");
                failed = true;
                continue;
            }
        };
        let errors = cli::report_diagnostics(&compiled.sources, &compiled.diagnostics, format);
        let warnings = compiled.diagnostics.iter().any(|d| d.severity == bma::diagnostic::Severity::Warning);
        failed |= errors || (deny_warnings && warnings);
        if explain && format == Format::Human {
            print!("{}", explain_program(&compiled));
        }
        if format == Format::Human && !errors && !cli::output::quiet() {
            let n = compiled.diagnostics.iter().filter(|d| d.severity == bma::diagnostic::Severity::Warning).count();
            let suffix = if n > 0 { format!(" ({n} warning{})", if n == 1 { "" } else { "s" }) } else { String::new() };
            eprintln!("{}: ok{suffix}", path.display());
        }
    }
    ExitCode::from(if failed { INPUT } else { OK })
}

fn explain_program(c: &bma::Compiled) -> String {
    let mut s = String::new();
    for e in &c.program.experiments {
        s.push_str(&format!("experiment {}\n", e.name));
        if let Some(d) = &e.doc {
            s.push_str(&indent(d, "  "));
        }
        for p in &e.space.params {
            if let Some(d) = &p.doc {
                s.push_str(&format!("  {}:\n{}", p.name, indent(d, "    ")));
            }
        }
    }
    // Each item once, under the name the file uses (not the qualified copies imports bring).
    for (name, b) in c.program.blocks.iter().filter(|(n, _)| !c.program.hidden.contains(*n)) {
        if let Some(d) = &b.doc {
            s.push_str(&format!("block {name}\n{}", indent(d, "  ")));
        }
    }
    for (name, f) in c.program.fns.iter().filter(|(n, _)| !c.program.hidden.contains(*n)) {
        if let Some(d) = &f.doc {
            s.push_str(&format!("fn {name}\n{}", indent(d, "  ")));
        }
    }
    s
}

fn indent(text: &str, pad: &str) -> String {
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// Compiles and stops at errors, printing them.
fn compile_clean(path: &std::path::Path) -> Result<bma::Compiled, ExitCode> {
    let compiled = cli::compile_path(path).map_err(|m| cli::fail(m, INPUT))?;
    if cli::report_diagnostics(&compiled.sources, &compiled.diagnostics, Format::Human) {
        return Err(ExitCode::from(INPUT));
    }
    Ok(compiled)
}

fn pick<'a>(compiled: &'a bma::Compiled, name: Option<&str>) -> Result<Vec<&'a bma::ir::Experiment>, ExitCode> {
    let all = &compiled.program.experiments;
    match name {
        None if all.is_empty() => Err(cli::fail("the file defines no experiment", INPUT)),
        None => Ok(all.iter().collect()),
        Some(n) => match compiled.program.experiment(n) {
            Some(e) => Ok(vec![e]),
            None => {
                let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
                Err(cli::fail(format!("no experiment `{n}` (the file has {})", names.join(", ")), INPUT))
            }
        },
    }
}

fn space(path: &std::path::Path, experiment: Option<&str>, format: Format) -> ExitCode {
    let compiled = match compile_clean(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let exps = match pick(&compiled, experiment) {
        Ok(e) => e,
        Err(code) => return code,
    };
    for exp in exps {
        match format {
            Format::Human => print!("{}", bma::report_space(&compiled, exp)),
            Format::Json => println!("{}", cli::json::space(&compiled, exp)),
        }
    }
    ExitCode::from(OK)
}

fn graph(path: &std::path::Path, set: &[String], experiment: Option<&str>, format: Format) -> ExitCode {
    let compiled = match compile_clean(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let exps = match pick(&compiled, experiment) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let [exp] = exps.as_slice() else {
        let names: Vec<&str> = exps.iter().map(|e| e.name.as_str()).collect();
        return cli::fail(
            format!("the file has several experiments ({}); pick one with --experiment", names.join(", ")),
            INPUT,
        );
    };
    let mut pins = BTreeMap::new();
    for s in set {
        let Some((k, v)) = s.split_once('=') else {
            return cli::fail(format!("`--set {s}` is not of the form name=value"), INPUT);
        };
        pins.insert(k.trim().to_string(), v.trim().to_string());
    }
    match bma::expand_with_pins(&compiled, exp, &pins) {
        Ok((sub, point)) if format == Format::Json => {
            cli::json::print(&cli::json::graph(&exp.name, &sub, &point));
            ExitCode::from(OK)
        }
        Ok((sub, point)) => {
            let title = point.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            print!("{}", sub.to_dot(&format!("{} {title}", exp.name)));
            ExitCode::from(OK)
        }
        Err(bma::PinError::Input(m)) => cli::fail(m, INPUT),
        Err(bma::PinError::Internal(m)) => cli::fail(m, INTERNAL),
    }
}
