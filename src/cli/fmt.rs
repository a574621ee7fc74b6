//! `bma fmt [--check] FILE...`: rewrites files in the canonical layout of
//! [`bma::fmt`], or with `--check` lists those that would change.
//!
//! A file is only ever rewritten when the output parses to the same tree and keeps
//! every comment: a formatter bug fails loudly instead of corrupting a file. Links
//! are written through: a symlink's final target is formatted (the link stays a
//! link), and a file with several hard links is rewritten in place so every name
//! sees the new text; any other file is replaced whole (a temporary file renamed
//! over it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bma::Sources;
use bma::source::FileId;

/// Formats `files` in place, or only checks them; exit 1 if any is unparsable or,
/// with `check`, would change; 2 if one cannot be read, written or formatted safely.
pub fn fmt_command(files: &[PathBuf], check: bool) -> ExitCode {
    if files.is_empty() || (files.len() == 1 && files[0].as_os_str() == "-") {
        return fmt_stdin(check);
    }
    let mut worst = super::OK;
    for path in files {
        let code = match fmt_file(path, check) {
            Ok(Outcome::Unchanged) => super::OK,
            Ok(Outcome::Changed) if check => {
                println!("{}", path.display());
                super::INPUT
            }
            Ok(Outcome::Changed) => super::OK,
            Err(Failure::Input) => super::INPUT,
            Err(Failure::User(message)) => {
                eprintln!("error: {message}");
                super::INPUT
            }
            Err(Failure::Internal(message)) => {
                eprintln!("error: {message}");
                super::INTERNAL
            }
        };
        worst = worst.max(code);
    }
    ExitCode::from(worst)
}

/// Reads stdin, writes the formatted text to stdout (for editors' `formatprg`);
/// with `check`, prints nothing and exits 1 when the text would change.
fn fmt_stdin(check: bool) -> ExitCode {
    let text = match bma::source::read_text(std::io::stdin()) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            eprintln!("error: stdin is {e}");
            return ExitCode::from(super::INPUT);
        }
        Err(e) => {
            eprintln!("error: cannot read stdin: {e}");
            return ExitCode::from(super::INTERNAL);
        }
    };
    let source = bma::Source::new("<stdin>", text);
    let formatted = match bma::fmt::format(&source) {
        Ok(formatted) => formatted,
        Err(d) => {
            let mut sources = Sources::default();
            sources.add(source.clone());
            super::report_diagnostics(&sources, &[d], super::Format::Human);
            // A filter never eats text: an editor that pipes through us gets it back.
            if !check {
                print!("{}", source.text);
            }
            return ExitCode::from(super::INPUT);
        }
    };
    if formatted != source.text
        && let Err(why) = verify(&source.text, &formatted)
    {
        eprintln!("error: formatting would {why}; input left as is");
        // Give the input back unchanged so an editor filter never loses text.
        print!("{}", source.text);
        return ExitCode::from(super::INTERNAL);
    }
    if check {
        return ExitCode::from(if formatted == source.text { super::OK } else { super::INPUT });
    }
    print!("{formatted}");
    ExitCode::from(super::OK)
}

enum Outcome {
    Unchanged,
    Changed,
}

enum Failure {
    /// The file does not parse; its diagnostic is printed.
    Input,
    /// The user's file cannot be read or written (missing, not a regular file, not UTF-8,
    /// read-only): exit 1, like every input problem.
    User(String),
    Internal(String),
}

/// A write that failed for the user's reasons (permissions, a read-only file system) is
/// theirs to fix; anything else is bma's or the system's.
fn write_failure(path: &Path, e: std::io::Error) -> Failure {
    use std::io::ErrorKind::*;
    let message = format!("cannot write {}: {e}", path.display());
    match e.kind() {
        NotFound | PermissionDenied | ReadOnlyFilesystem | IsADirectory | NotADirectory => Failure::User(message),
        _ => Failure::Internal(message),
    }
}

fn fmt_file(path: &Path, check: bool) -> Result<Outcome, Failure> {
    let source = super::read_source(path).map_err(Failure::User)?;
    let formatted = match bma::fmt::format(&source) {
        Ok(text) => text,
        Err(d) => {
            let mut sources = Sources::default();
            sources.add(source);
            super::report_diagnostics(&sources, &[d], super::Format::Human);
            return Err(Failure::Input);
        }
    };
    if formatted == source.text {
        return Ok(Outcome::Unchanged);
    }
    verify(&source.text, &formatted)
        .map_err(|why| Failure::Internal(format!("{}: formatting would {why}; file left as is", path.display())))?;
    if !check {
        write_through(path, &formatted).map_err(|e| write_failure(path, e))?;
    }
    Ok(Outcome::Changed)
}

/// The formatter's invariants, checked on the real input before anything is written.
fn verify(before: &str, after: &str) -> Result<(), &'static str> {
    let (Ok(a), Ok(b)) = (bma::syntax::parse(FileId(0), before), bma::syntax::parse(FileId(0), after)) else {
        return Err("produce text that does not parse");
    };
    if !bma::fmt::same_tree(&a, &b) {
        return Err("change the file's meaning");
    }
    if bma::fmt::comments(before) != bma::fmt::comments(after) {
        return Err("lose or reorder a comment");
    }
    Ok(())
}

/// Writes `text` to the file `path` names, through links: a symlink is resolved to its
/// final target, which is written in its own folder, so the link stays a link and the
/// file it points to is the one formatted. A target with several hard links is written
/// in place: renaming a new file over one name would give that name a new inode and
/// leave every other name with the old text (the links split). Writing in place keeps
/// the one inode every name shares, at the cost of atomicity (a crash mid-write leaves
/// a partial file); the text was verified before, so only a crash can cut it. Any
/// other file is replaced atomically.
fn write_through(path: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path)?;
    if hard_links(&target)? > 1 {
        let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&target)?;
        file.write_all(text.as_bytes())?;
        return file.sync_all();
    }
    write_atomically(&target, text)
}

/// How many names the file at `path` has.
#[cfg(unix)]
fn hard_links(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.nlink())
}

/// How many names the file at `path` has (only counted on Unix).
#[cfg(not(unix))]
fn hard_links(_path: &Path) -> std::io::Result<u64> {
    Ok(1)
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(|| "bma".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.bma-fmt-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
