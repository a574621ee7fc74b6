//! The library's layering holds: a top-level module of `src/` imports only modules below
//! it in [`ORDER`] (the list ARCHITECTURE.md's "Cross-cutting invariants" states, with a
//! line on each module).
//!
//! Reads every `.rs` file under `src/` but the command line (`src/cli/`, `src/main.rs`)
//! and the crate root (`src/lib.rs`, whose `compile`, `Compiled` and `seconds` are the
//! library's front door and are not a layer), tests included: a test of a low module
//! that needs a high one belongs to the high one or to `tests/`, but for the few listed
//! in [`TESTS_ACROSS`] with their reason. Every `crate::NAME`
//! path counts, in `use` lines, in grouped `use crate::{a, b}` imports and inline in
//! code; comments do not (a doc link is not an import). A module not in [`ORDER`] fails
//! the test too, so a new module is placed on purpose.

use std::path::{Path, PathBuf};

/// The library's top-level modules, bottom to top: each may import those before it.
const ORDER: &[&str] = &[
    "source",      // source files and spans
    "diagnostic",  // the one Diagnostic type and its rendering
    "ast",         // the spanned syntax tree
    "syntax",      // the parser (pest grammar, Pratt precedence)
    "fmt",         // the formatter (`bma fmt`)
    "stdlib",      // the embedded `std::` modules
    "rng",         // the deterministic generator
    "limits",      // limits the checker and the search share (MAX_PARALLEL)
    "catalogue",   // one table per concept (layers, strategies, ...): plain data
    "ir",          // lowering, values, the space, expansion into sub-models
    "trial",       // Trial, TrialState, FailKind, Direction, History, ranking
    "data",        // datasets, their header readers, splits
    "check",       // every static problem of a program
    "pins",        // `--set` values and representative points
    "space",       // sampling and encoding a search space
    "average",     // ensembles, soups, SWA
    "train",       // the only door to burn
    "store",       // SQLite and PostgreSQL study stores
    "search",      // strategies, pruners, the trial loop
    "reuse",       // configuration keys, reuse across studies
    "final_model", // averaging the best trials into the final model
    "export",      // ONNX export of saved models (`bma export`)
    "report",      // the HTML report
    "watch",       // `bma watch`'s file watcher and cancel token
    "ide",         // hover, completion, diagnostics for the language server
    "study",       // running a study: the one API of run, worker and watch (the top)
];

/// Upward imports still to remove, each `(file, imported module)`: the files' owners fix
/// them, then the line goes. Keep this list empty once they are gone.
// TODO(issue 14): empty this list.
const KNOWN_UPWARD: &[(&str, &str)] = &[];

/// Test files that import a module above their own on purpose, each `(file, imported
/// module)` with the reason. Not a to-do list: the test states an invariant of both.
const TESTS_ACROSS: &[(&str, &str)] = &[
    // Loads each dataset and checks its `DataInfo` against `check::data::describe`'s
    // prediction: the invariant that a checked model fits the data it trains on.
    ("src/data/tests.rs", "check"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("read src/").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/store/sqlite.rs` -> `store`; `None` for the crate root and the command line.
fn top_module(rel: &str) -> Option<&str> {
    let rest = rel.strip_prefix("src/")?;
    if rest == "lib.rs" || rest == "main.rs" || rest.starts_with("cli/") {
        return None;
    }
    Some(rest.split('/').next()?.trim_end_matches(".rs"))
}

/// The code of a line: what is before a `//` comment (string contents are not told apart;
/// no code here writes `//` inside a string next to a `crate::` path).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// The first segment of every `crate::` path in `text` (a file's code), with its line:
/// `crate::ir::Point` gives `ir`; `crate::{ir::Point, rng}` gives `ir` and `rng`.
fn imports(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().map(code).collect();
    let joined = lines.join("\n");
    let line_of = |at: usize| joined[..at].matches('\n').count() + 1;
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = joined[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        let before = joined[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &joined[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // A grouped import: the first segment of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start => {
                        item_start = false;
                        out.push((line_of(from + 1 + k), ident(&group[k..])));
                    }
                    _ => {}
                }
            }
        } else {
            out.push((line_of(from), ident(rest)));
        }
    }
    out
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let level = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut problems = Vec::new();
    let mut known_seen = Vec::new();
    let mut scanned = 0;
    for path in &files {
        let rel = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
        let Some(module) = top_module(&rel) else { continue };
        scanned += 1;
        let Some(mine) = level(module) else {
            problems.push(format!("{rel}: module `{module}` is not in the layering ORDER (place it there)"));
            continue;
        };
        let text = std::fs::read_to_string(path).expect("read a source file");
        for (line, target) in imports(&text) {
            // Items of the crate root (`crate::compile`, `crate::Compiled`, `crate::seconds`).
            let Some(theirs) = level(&target) else { continue };
            if theirs <= mine {
                continue;
            }
            if TESTS_ACROSS.contains(&(rel.as_str(), target.as_str())) {
                continue;
            }
            if KNOWN_UPWARD.contains(&(rel.as_str(), target.as_str())) {
                known_seen.push((rel.clone(), target.clone()));
                continue;
            }
            problems.push(format!(
                "{rel}:{line}: `{module}` imports `crate::{target}`, which is above it in the layering \
                 ({module} is #{}, {target} #{})",
                mine + 1,
                theirs + 1
            ));
        }
    }
    assert!(scanned > 50, "only {scanned} library files found under src/");
    for (file, target) in KNOWN_UPWARD {
        if !known_seen.iter().any(|(f, t)| f == file && t == target) {
            problems.push(format!("{file} no longer imports `crate::{target}`: remove it from KNOWN_UPWARD"));
        }
    }
    assert!(problems.is_empty(), "imports that break the layering:\n{}", problems.join("\n"));
}

#[test]
fn the_scanner_finds_plain_grouped_and_inline_paths_but_not_comments() {
    let text = "use crate::ir::Point;\n\
                use crate::{data::Dataset, rng::{self, Rng}};\n\
                // crate::search::Trial in a comment\n\
                let x = crate::store::now(); /// crate::report\n\
                pub(crate) fn f() {}\n\
                use crate::{\n    train,\n    trial::Trial,\n};\n";
    let found = imports(text);
    let want: Vec<(usize, String)> = [(1, "ir"), (2, "data"), (2, "rng"), (4, "store"), (7, "train"), (8, "trial")]
        .iter()
        .map(|(l, m)| (*l, m.to_string()))
        .collect();
    assert_eq!(found, want);
}

#[test]
fn architecture_md_states_the_same_order() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let section = doc.split("## Cross-cutting invariants").nth(1).expect("a Cross-cutting invariants section");
    let section = section.split("\n## ").next().unwrap_or(section);
    // The order as the page lists it: lines `N. `name` ...`.
    let listed: Vec<String> = section
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (n, rest) = l.split_once(". `")?;
            n.parse::<usize>().ok()?;
            Some(rest.split('`').next()?.to_string())
        })
        .collect();
    assert_eq!(listed, ORDER, "ARCHITECTURE.md's layering order differs from tests/architecture.rs");
}

/// The command line's modules that are not a command: what every command may import.
const CLI_SHARED: &[&str] = &["mod", "study", "output", "json", "stored"];

#[test]
fn no_command_imports_another_commands_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/cli"), &mut files);
    let commands: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|c| !CLI_SHARED.contains(&c.as_str()))
        .collect();
    assert!(commands.len() >= 8, "the command modules of src/cli/: {commands:?}");
    let mut problems = Vec::new();
    for path in &files {
        let own = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(path).expect("read");
        for (n, line) in text.lines().enumerate() {
            let line = code(line);
            for other in &commands {
                let used = [format!("super::{other}::"), format!("super::{other};"), format!("super::{other} ")]
                    .iter()
                    .any(|p| line.contains(p.as_str()))
                    || line.contains(&format!("super::{{{other}"))
                    || line.contains(&format!("cli::{other}::")) && own != "main";
                if *other != own && used {
                    problems.push(format!("src/cli/{own}.rs:{}: imports the command module `{other}`", n + 1));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "a command's module is its own; share through cli/mod.rs or cli/study.rs:\n{}",
        problems.join("\n")
    );
}
