//! Fixture folders, one behaviour per file: `tests/fixtures/{parse,check}/{ok,err}/NAME.bma`.
//! An `ok` file compiles without errors; an `err` file named after a diagnostic
//! code (`CODE.bma`, or `CODE-variant.bma` for a further case of one code)
//! produces that code, and its rendered diagnostics are snapshotted. Modules
//! that fixtures import live in `check/lib/` (linked as `ok/lib` and `err/lib`),
//! data files in `check/data/`.

use std::path::Path;

use bma::diagnostic::{self, Code, RenderOptions, Severity};
use bma::source::Source;

fn compile_fixture(path: &Path) -> (bma::Compiled, String) {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = path.strip_prefix(root).unwrap_or(path).display().to_string();
    // Relative to the package root (the tests' working folder), so that imported
    // modules and data files are named the same on every machine.
    let source = Source { path: Some(std::path::PathBuf::from(&name)), name, text: text.clone() };
    (bma::compile(&source), text)
}

fn render_all(c: &bma::Compiled) -> String {
    let options = RenderOptions { width: 80, color: false };
    c.diagnostics.iter().map(|d| diagnostic::render(d, &c.sources, options)).collect::<Vec<_>>().join("\n")
}

fn stem(path: &Path) -> String {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string()
}

fn check_ok(path: &Path) {
    let (c, _) = compile_fixture(path);
    let errors: Vec<_> = c.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
    assert!(errors.is_empty(), "{} should compile, got:\n{}", path.display(), render_all(&c));
}

fn check_err(kind: &str, path: &Path) {
    let (c, text) = compile_fixture(path);
    let stem = stem(path);
    let code = stem.split('-').next().unwrap_or_default();
    assert!(Code::ALL.iter().any(|c| c.as_str() == code), "{}: `{code}` is not a diagnostic code", path.display());
    assert!(
        c.diagnostics.iter().any(|d| d.code.as_str() == code),
        "{} should report `{code}`, got:\n{}",
        path.display(),
        render_all(&c)
    );
    // Data paths are absolute (read from the spec's folder); the snapshot names them from
    // the package root, so that it is the same on every machine.
    let root = format!("{}/", std::fs::canonicalize(env!("CARGO_MANIFEST_DIR")).expect("package root").display());
    let mut c = c;
    for d in &mut c.diagnostics {
        d.message = d.message.replace(&root, "");
        for l in std::iter::once(&mut d.primary).chain(&mut d.secondary) {
            l.text = l.text.replace(&root, "");
        }
        d.help = d.help.as_ref().map(|h| h.replace(&root, ""));
    }
    insta::assert_snapshot!(kind, format!("{text}\n---\n{}", render_all(&c)));
}

#[test]
fn parse_ok() {
    insta::glob!("fixtures/parse/ok/*.bma", check_ok);
}

#[test]
fn parse_err() {
    insta::glob!("fixtures/parse/err/*.bma", |path| check_err("parse", path));
}

#[test]
fn check_ok_fixtures() {
    insta::glob!("fixtures/check/ok/*.bma", check_ok);
}

#[test]
fn check_err_fixtures() {
    insta::glob!("fixtures/check/err/*.bma", |path| check_err("check", path));
}

#[test]
fn every_code_has_an_err_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut missing = Vec::new();
    for code in Code::ALL {
        let name = format!("{}.bma", code.as_str());
        let found = ["parse/err", "check/err"].iter().any(|dir| root.join(dir).join(&name).exists());
        if !found {
            missing.push(code.as_str());
        }
    }
    assert!(missing.is_empty(), "codes without an err fixture: {missing:?}");
}
