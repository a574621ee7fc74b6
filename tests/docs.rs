//! The code blocks of `docs/language.md` and `README.md` compile as they say.
//!
//! Info strings: `bma` is a complete file that must have no errors or warnings;
//! `bma,file=PATH` is one too, and other blocks of the same document import it as
//! `PATH`; `bma,expect=CODE` must report the diagnostic `CODE`; `bma,fragment` is a
//! sketch and is not compiled. Any other `bma,...` is a mistake in the document.
//!
//! The reference also names every diagnostic code, and every entry of every catalogue
//! (`bma::catalogue`: layers, optimisers, strategies, ...) in the section of its concept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bma::catalogue::Concept;
use bma::diagnostic::{self, Code, RenderOptions, Severity};
use bma::source::Source;

/// One fenced code block whose info string starts with `bma`.
struct Block {
    /// `doc.md#LLINE`, the line of the opening fence.
    name: String,
    kind: Kind,
    text: String,
}

enum Kind {
    File,
    Module(String),
    Expect(String),
    Fragment,
}

/// Imports served from the document's `bma,file=PATH` blocks.
struct DocFiles(BTreeMap<PathBuf, String>);

impl bma::ir::Loader for DocFiles {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not a file of this document"))
    }
}

fn blocks(doc: &str) -> Vec<Block> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else { continue };
        let info = info.trim();
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        let name = format!("{doc}#L{}", i + 1);
        let kind = match info {
            "bma" => Kind::File,
            "bma,fragment" => Kind::Fragment,
            other => match other.strip_prefix("bma,") {
                Some(rest) => match rest.split_once('=') {
                    Some(("file", p)) => Kind::Module(p.to_string()),
                    Some(("expect", c)) => Kind::Expect(c.to_string()),
                    _ => panic!("{name}: unknown info string `{other}`"),
                },
                None => continue,
            },
        };
        out.push(Block { name, kind, text: body });
    }
    out
}

fn check_doc(doc: &str) -> usize {
    let blocks = blocks(doc);
    let files = DocFiles(
        blocks
            .iter()
            .filter_map(|b| match &b.kind {
                Kind::Module(p) => Some((PathBuf::from(p), b.text.clone())),
                _ => None,
            })
            .collect(),
    );
    let options = RenderOptions { width: 80, color: false };
    let mut compiled = 0;
    for b in &blocks {
        if matches!(b.kind, Kind::Fragment) {
            continue;
        }
        let c = bma::compile_with(&Source::new(b.name.clone(), b.text.clone()), &files);
        let shown = |min: Severity| -> Vec<String> {
            c.diagnostics
                .iter()
                .filter(|d| d.severity >= min)
                .map(|d| diagnostic::render(d, &c.sources, options))
                .collect()
        };
        match &b.kind {
            Kind::File | Kind::Module(_) => {
                let problems = shown(Severity::Warning);
                assert!(problems.is_empty(), "{} is not clean:\n{}", b.name, problems.join("\n"));
            }
            Kind::Expect(code) => {
                assert!(Code::ALL.iter().any(|k| k.as_str() == code), "{}: `{code}` is not a diagnostic code", b.name);
                assert!(
                    c.diagnostics.iter().any(|d| d.code.as_str() == code),
                    "{} should report `{code}`, and reports:\n{}",
                    b.name,
                    shown(Severity::Note).join("\n")
                );
            }
            Kind::Fragment => {}
        }
        compiled += 1;
    }
    compiled
}

#[test]
fn language_reference_blocks_compile() {
    let n = check_doc("docs/language.md");
    assert!(n >= 20, "only {n} compiled blocks found in docs/language.md");
}

#[test]
fn readme_blocks_compile() {
    let n = check_doc("README.md");
    assert!(n >= 1, "no compiled block found in README.md");
}

#[test]
fn language_reference_lists_every_diagnostic() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/language.md");
    let text = std::fs::read_to_string(path).expect("docs/language.md is readable");
    let missing: Vec<&str> =
        Code::ALL.iter().map(|c| c.as_str()).filter(|c| !text.contains(&format!("| `{c}` |"))).collect();
    assert!(missing.is_empty(), "docs/language.md's diagnostics table lacks {missing:?}");
}

/// The text of the section of `doc` under `heading`, up to the next heading of its level or above.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let Some(start) = doc.find(&format!("\n{heading}\n")) else {
        return "";
    };
    let body = &doc[start + heading.len() + 2..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| body[i + 1..].chars().take_while(|c| *c == '#').count() <= level)
        .map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// `Concept::name` for each catalogue entry that `doc` does not show as `` `name` `` or
/// `` `name(...)`` in its concept's section.
fn missing_entries(doc: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for concept in Concept::ALL {
        let text = section(doc, concept.docs_section());
        for name in concept.names() {
            if !text.contains(&format!("`{name}`")) && !text.contains(&format!("`{name}(")) {
                missing.push(format!("{concept:?}::{name}"));
            }
        }
    }
    missing
}

#[test]
fn language_reference_lists_every_catalogue_entry() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/language.md");
    let text = std::fs::read_to_string(path).expect("docs/language.md is readable");
    let missing = missing_entries(&text);
    assert!(missing.is_empty(), "docs/language.md does not document {missing:?}");
    // The check sees an entry left out: drop `swa` from the reference and it is missing.
    let without = text.replace("`swa(", "`(");
    assert_eq!(missing_entries(&without), vec!["Average::swa".to_string()]);
}
