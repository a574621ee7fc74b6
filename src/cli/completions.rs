//! `bma completions SHELL` and `bma man`: shell completion scripts (clap_complete) and the
//! man page (clap_mangen, roff), both generated from the one clap definition of the
//! command line that `main.rs` hands in, so they never fall behind a new flag.
//!
//! Takes the clap `Command` and a shell (or nothing); gives the script or the page on
//! stdout. Exit codes: 0 written; 2 stdout could not be written.

use std::io::Write;
use std::process::ExitCode;

use super::{INTERNAL, OK};

/// Arguments of `bma completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete in. Install: bash `bma completions bash > ~/.local/share/bash-completion/completions/bma`;
    /// zsh `bma completions zsh > ~/.zfunc/_bma` (with `fpath+=~/.zfunc` before `compinit`);
    /// fish `bma completions fish > ~/.config/fish/completions/bma.fish`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script of `command` for `args.shell` to stdout.
pub fn completions(args: &CompletionsArgs, mut command: clap::Command) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "bma", &mut script);
    write_out(&script)
}

/// Writes the man page of `command` (section 1, roff) to stdout:
/// `bma man > ~/.local/share/man/man1/bma.1`.
pub fn man(command: clap::Command) -> ExitCode {
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
        return super::fail(format!("cannot render the man page: {e}"), INTERNAL);
    }
    write_out(&page)
}

fn write_out(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::from(OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(OK),
        Err(e) => super::fail(format!("cannot write to stdout: {e}"), INTERNAL),
    }
}
