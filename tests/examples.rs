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

/// Examples whose data a script installs outside the repository (`scripts/install-data.sh`),
/// with the folder it lands in.
/// (`examples/data/speech` is written by `scripts/make-speech.sh`, relative to the package.)
const INSTALLED_DATA: &[(&str, &str)] = &[
    ("fashion.bma", "/usr/share/datasets/fashion-mnist"),
    ("fashion-families.bma", "/usr/share/datasets/fashion-mnist"),
    ("speech.bma", "examples/data/speech"),
];

#[test]
fn examples_check_clean() {
    let examples = project_files("examples");
    assert!(!examples.is_empty(), "no examples found");
    for path in examples {
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.starts_with("//"), "{} must open with a comment saying what it shows", path.display());
        let source = Source::from_path(&path, text);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        match INSTALLED_DATA.iter().find(|(example, _)| *example == name) {
            Some((_, folder)) if !Path::new(folder).exists() => assert_only_missing_data(&source, folder),
            _ => assert_clean(&source),
        }
    }
}

/// Without its installed data, an example reports exactly that: `missing_data_file` errors
/// naming files under `folder`, and nothing else (the rest of the file checks clean).
fn assert_only_missing_data(source: &Source, folder: &str) {
    let c = bma::compile(source);
    let shown: Vec<(String, String)> = c
        .diagnostics
        .iter()
        .filter(|d| d.severity >= diagnostic::Severity::Warning)
        .map(|d| (d.code.as_str().to_string(), d.message.clone()))
        .collect();
    assert!(!shown.is_empty(), "{}: {folder} is absent, yet the data was found", source.name);
    for (code, message) in &shown {
        assert!(
            code == "missing_data_file" && message.contains(folder),
            "{}: with {folder} absent (run scripts/install-data.sh) only its missing files may be reported: \
             {shown:?}",
            source.name
        );
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
