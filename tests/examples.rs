//! Every example and every stdlib module compiles without errors or warnings.

use std::path::Path;

use bma::diagnostic::{self, RenderOptions};
use bma::source::Source;

fn assert_clean(source: &Source) {
    let c = bma::compile(source);
    let options = RenderOptions { width: 80, color: false };
    let shown: Vec<String> = c
        .diagnostics
        .iter()
        .filter(|d| d.severity >= diagnostic::Severity::Warning)
        .map(|d| diagnostic::render(d, &c.sources, options))
        .collect();
    assert!(shown.is_empty(), "{} is not clean:\n{}", source.name, shown.join("\n"));
}

#[test]
fn examples_check_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "bma") {
            let text = std::fs::read_to_string(&path).expect("readable");
            assert!(text.starts_with("//"), "{} must open with a comment saying what it shows", path.display());
            assert_clean(&Source::from_path(&path, text));
            n += 1;
        }
    }
    assert!(n >= 1, "no examples found");
}

#[test]
fn stdlib_checks_clean() {
    for (_, display, text) in bma::stdlib::MODULES {
        assert_clean(&Source::new(display, text));
    }
}
