//! The global output options of every command (`-q/--quiet`, `-v/--verbose`, `--color`)
//! and what follows from them and the terminal: whether diagnostics get colour and how
//! wide they may be.
//!
//! Takes the parsed [`Global`] flags once, at start ([`set`]); gives [`quiet`],
//! [`verbose`], [`color`] and [`width`] to every command module. Invariant: `--color
//! always|never` wins over everything; `auto` (the default) colours stderr only when it
//! is a terminal and `NO_COLOR` is unset or empty (<https://no-color.org>).

use std::io::IsTerminal;
use std::sync::OnceLock;

/// The flags every command takes, before or after its name.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Global {
    /// Print only results and errors: no progress, notes or `ok` lines.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more: where a study is stored, its out folder and settings, each file checked.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to colour diagnostics and help: `auto` on a terminal unless `NO_COLOR` is set.
    #[arg(long, value_enum, global = true, default_value_t = Color::Auto, value_name = "WHEN")]
    pub color: Color,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Color {
    /// Colour on a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always colour, even into a pipe or a file.
    Always,
    /// Never colour.
    Never,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

/// Records the global flags for the rest of the process (the first call wins).
pub fn set(global: Global) {
    let _ = GLOBAL.set(global);
}

fn global() -> Global {
    GLOBAL.get().cloned().unwrap_or_default()
}

/// `-q`: progress, notes and `ok` lines are not printed.
pub fn quiet() -> bool {
    global().quiet
}

/// `-v`: the extra lines are printed.
pub fn verbose() -> bool {
    global().verbose
}

/// Whether stderr (diagnostics, progress) gets colour: `--color`, else a terminal
/// without `NO_COLOR`.
pub fn color() -> bool {
    decide_color(global().color, std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref())
}

/// The rule of [`color`], apart from the process's state.
pub fn decide_color(choice: Color, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
    }
}

/// clap's own colour choice (help and usage errors), after `--color`.
pub fn clap_color(args: &[std::ffi::OsString]) -> clap::ColorChoice {
    // Read before parsing, since clap renders its errors while parsing: the last
    // `--color X` or `--color=X` wins, as clap would decide.
    let mut choice = None;
    let mut it = args.iter().filter_map(|a| a.to_str());
    while let Some(a) = it.next() {
        let value = match a.strip_prefix("--color") {
            Some("") => it.next(),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        choice = match value {
            Some("always") => Some(clap::ColorChoice::Always),
            Some("never") => Some(clap::ColorChoice::Never),
            Some("auto") => Some(clap::ColorChoice::Auto),
            _ => choice,
        };
    }
    match choice {
        Some(c) => c,
        None if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) => clap::ColorChoice::Never,
        None => clap::ColorChoice::Auto,
    }
}

/// How wide diagnostics on stderr may be: `COLUMNS` if set, else the terminal's width,
/// else `fallback` (a pipe or a file).
pub fn width(fallback: usize) -> usize {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|c| *c > 0) {
        return c;
    }
    terminal_size::terminal_size_of(std::io::stderr()).map_or(fallback, |(w, _)| usize::from(w.0).max(20))
}

/// How wide the ranked table on stdout may be: `COLUMNS` if set, else the terminal's
/// width; none (the whole table) when stdout is a pipe or a file.
pub fn table_width() -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|c| *c > 0) {
        return Some(c);
    }
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0).max(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_colours_a_terminal_only_without_no_color() {
        assert!(decide_color(Color::Auto, true, None));
        assert!(!decide_color(Color::Auto, false, None));
        assert!(!decide_color(Color::Auto, true, Some("1".as_ref())));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(decide_color(Color::Auto, true, Some("".as_ref())));
        assert!(decide_color(Color::Always, false, Some("1".as_ref())));
        assert!(!decide_color(Color::Never, true, None));
    }

    #[test]
    fn clap_color_takes_the_last_color_flag() {
        let args: Vec<std::ffi::OsString> =
            ["bma", "--color", "never", "check", "--color=always"].iter().map(Into::into).collect();
        assert_eq!(clap_color(&args), clap::ColorChoice::Always);
        let args: Vec<std::ffi::OsString> = ["bma", "check", "--color", "never"].iter().map(Into::into).collect();
        assert_eq!(clap_color(&args), clap::ColorChoice::Never);
    }
}
