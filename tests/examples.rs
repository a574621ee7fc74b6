//! Every example and every stdlib module compiles without errors or warnings, and is
//! in the canonical layout of `bma fmt` (so `bma fmt --check examples/*.bma
//! stdlib/*.bma`, which `.ci/run` runs, passes).

mod common;

use std::path::{Path, PathBuf};

use bma::diagnostic::{self, RenderOptions};
use bma::source::Source;

fn assert_clean(source: &Source) {
    // An example whose opening comment names its install script (`scripts/install-…`)
    // reads data that the script writes (a corpus a package ships, git-ignored): where
    // it was not installed, that data file's absence is the one diagnostic allowed.
    let installed_data =
        source.text.lines().take_while(|l| l.starts_with("//")).any(|l| l.contains("scripts/install-"));
    let c = bma::compile(source);
    let options = RenderOptions { width: 80, color: false };
    let shown: Vec<String> = c
        .diagnostics
        .iter()
        .filter(|d| d.severity >= diagnostic::Severity::Warning)
        .filter(|d| !(installed_data && d.code == diagnostic::Code::MissingDataFile))
        .map(|d| diagnostic::render(d, &c.sources, options))
        .collect();
    assert!(shown.is_empty(), "{} is not clean:\n{}", source.name, shown.join("\n"));
}

fn project_files(dir: &str) -> Vec<PathBuf> {
    common::bma_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
}

#[test]
fn examples_check_clean() {
    let examples = project_files("examples");
    assert!(!examples.is_empty(), "no examples found");
    for path in examples {
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.starts_with("//"), "{} must open with a comment saying what it shows", path.display());
        assert_clean(&Source::from_path(&path, text));
    }
}

#[test]
fn stdlib_checks_clean() {
    for (_, display, text) in bma::stdlib::MODULES {
        assert_clean(&Source::new(display, text));
    }
}

#[test]
fn examples_and_stdlib_are_in_the_canonical_layout() {
    let files: Vec<PathBuf> = ["examples", "stdlib"].into_iter().flat_map(project_files).collect();
    assert!(files.len() > bma::stdlib::MODULES.len(), "examples and stdlib found: {files:?}");
    let mut unformatted = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        let formatted = bma::fmt::format(&Source::from_path(path, text.clone())).expect("parses");
        if formatted != text {
            unformatted.push(path.display().to_string());
        }
    }
    assert!(
        unformatted.is_empty(),
        "not in `bma fmt`'s layout (`cargo run -- fmt FILE` rewrites one): {unformatted:?}"
    );
}
