//! No input panics the front end, and every diagnostic points inside its source.
//!
//! Feeds `bma::compile` every prefix (at char boundaries; sampled evenly on long
//! files) of every fixture, example and stdlib module, then a few thousand
//! deterministic random mutations of them. Each compilation must return without
//! panicking, and every label's span must lie inside its file, on char boundaries.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use bma::Source;

/// Prefixes tried per file at most (evenly spread, always including the whole file).
const MAX_PREFIXES: usize = 4000;
/// Random mutations in all.
const MUTATIONS: usize = 5000;

#[test]
fn every_prefix_compiles_without_panic() {
    let corpus = corpus();
    assert!(corpus.len() >= 20, "the corpus is too small: {} files", corpus.len());
    let mut failures = Vec::new();
    let mut runs = 0;
    for source in &corpus {
        let bounds: Vec<usize> = (0..=source.text.len()).filter(|&i| source.text.is_char_boundary(i)).collect();
        let stride = bounds.len().div_ceil(MAX_PREFIXES).max(1);
        let mut picked: Vec<usize> = bounds.iter().copied().step_by(stride).collect();
        picked.push(source.text.len());
        for end in picked {
            let prefix = Source { text: source.text[..end].to_string(), ..source.clone() };
            runs += 1;
            if let Err(why) = compile_checked(&prefix) {
                failures.push(format!("{} cut at byte {end}: {why}", source.name));
            }
        }
    }
    assert!(runs > corpus.len() * 10, "only {runs} prefixes tried");
    assert!(failures.is_empty(), "{} of {runs} prefixes failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn random_mutations_compile_without_panic() {
    let corpus = corpus();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut failures = Vec::new();
    let mut with_errors = 0;
    for i in 0..MUTATIONS {
        let base = &corpus[rng.below(corpus.len())];
        let donor = &corpus[rng.below(corpus.len())];
        let mut bytes = base.text.as_bytes().to_vec();
        for _ in 0..=rng.below(4) {
            mutate(&mut bytes, donor.text.as_bytes(), &mut rng);
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let source = Source { text, ..base.clone() };
        match compile_checked(&source) {
            Ok(errors) => with_errors += usize::from(errors),
            Err(why) => {
                failures.push(format!("mutation {i} of {}: {why}\n--- input ---\n{}\n---", base.name, source.text))
            }
        }
    }
    assert!(failures.is_empty(), "{} of {MUTATIONS} mutations failed:\n{}", failures.len(), failures.join("\n"));
    // The mutations must reach past the parser's first error most of the time to be worth it,
    // but they must also break things: neither all clean nor nothing reported.
    assert!(
        with_errors > MUTATIONS / 4 && with_errors < MUTATIONS,
        "{with_errors} of {MUTATIONS} mutations had errors"
    );
}

/// Compiles `source`; `Ok(has_errors)`, or why the result is unacceptable.
fn compile_checked(source: &Source) -> Result<bool, String> {
    let compiled = catch_unwind(AssertUnwindSafe(|| bma::compile(source))).map_err(|e| {
        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("panicked: {}", msg.unwrap_or_default())
    })?;
    for d in &compiled.diagnostics {
        for label in std::iter::once(&d.primary).chain(&d.secondary) {
            let src =
                compiled.sources.get(label.span.file).ok_or_else(|| format!("label in an unknown file: {d:?}"))?;
            let (start, end) = (label.span.start as usize, label.span.end as usize);
            if start > end || end > src.text.len() {
                return Err(format!("span {start}..{end} outside the {} bytes of {}: {d:?}", src.text.len(), src.name));
            }
            if !src.text.is_char_boundary(start) || !src.text.is_char_boundary(end) {
                return Err(format!("span {start}..{end} off a char boundary of {}: {d:?}", src.name));
            }
        }
    }
    Ok(compiled.has_errors())
}

/// Every fixture (with the modules fixtures import), example and stdlib module.
fn corpus() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    collect(&root.join("tests/fixtures"), &mut paths);
    collect(&root.join("examples"), &mut paths);
    paths.sort();
    let mut out: Vec<Source> = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            Source::from_path(&rel, text)
        })
        .collect();
    out.extend(bma::stdlib::MODULES.iter().map(|(_, display, text)| Source::new(*display, *text)));
    out
}

/// `.bma` files under `dir`, not following the `lib` links (their targets are walked once).
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            collect(&path, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "bma") {
            out.push(path);
        }
    }
}

/// One random edit: flip, insert, delete, duplicate, or splice from `donor`.
fn mutate(bytes: &mut Vec<u8>, donor: &[u8], rng: &mut XorShift) {
    const INTERESTING: &[u8] = b"{}()[],:;=.<>-+*/^%!\"_ \n0123456789eEkMsxyz";
    let at = rng.below(bytes.len() + 1);
    match rng.below(6) {
        0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
        1 => bytes.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
        2 => {
            let end = (at + 1 + rng.below(16)).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        3 => {
            let end = (at + 1 + rng.below(32)).min(bytes.len());
            let slice = bytes[at.min(end)..end].to_vec();
            let to = rng.below(bytes.len() + 1);
            bytes.splice(to..to, slice);
        }
        4 if !donor.is_empty() => {
            let from = rng.below(donor.len());
            let end = (from + 1 + rng.below(64)).min(donor.len());
            bytes.splice(at..at, donor[from..end].iter().copied());
        }
        _ => {
            // A multi-byte character, to exercise char boundaries.
            let ch = ["é", "λ", "→", "🦀", "\u{0}"][rng.below(5)];
            bytes.splice(at..at, ch.bytes());
        }
    }
}

/// xorshift64*: a tiny deterministic generator, enough for picking edits.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Files nested far deeper than anyone writes: each kind of nesting, 100,000 deep.
fn deep(kind: &str, n: usize) -> String {
    let head = "experiment e { space { x: float in 0.0..=1.0 } objective { minimize ";
    match kind {
        "brackets" => format!("{head}{}x{} }} }}", "(".repeat(n), ")".repeat(n)),
        "calls" => format!("fn f(a: float) -> float = a\n{head}{}x{} }} }}", "f(".repeat(n), ")".repeat(n)),
        "negations" => format!("{head}{}x }} }}", "-".repeat(n)),
        "sum" => format!("{head}{} }} }}", vec!["x"; n].join(" + ")),
        "powers" => format!("{head}{} }} }}", vec!["x"; n].join(" ^ ")),
        "blocks" => format!(
            "experiment e {{ data = iris() model {{ {}dense(4){} dense(data.classes) }} objective {{ maximize accuracy }} }}",
            "residual { ".repeat(n),
            " }".repeat(n)
        ),
        _ => unreachable!(),
    }
}

const KINDS: [&str; 6] = ["brackets", "calls", "negations", "sum", "powers", "blocks"];

/// Runs `f` on a thread with a 2 MiB stack (what a test thread or a spawned thread has by
/// default), so that the outcome does not depend on `RUST_MIN_STACK`.
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let thread = std::thread::Builder::new().stack_size(2 << 20).spawn_scoped(s, f).expect("a thread starts");
        thread.join().expect("the thread does not panic")
    })
}

#[test]
fn deep_nesting_is_a_diagnostic_not_a_stack_overflow() {
    for kind in KINDS {
        let text = deep(kind, 100_000);
        let (codes, messages, rendered) = on_small_stack(|| {
            let compiled = bma::compile(&Source::new("deep.bma", text));
            let rendered: Vec<String> = compiled
                .diagnostics
                .iter()
                .map(|d| {
                    let options = bma::diagnostic::RenderOptions { width: 100, color: false };
                    bma::diagnostic::render(d, &compiled.sources, options)
                })
                .collect();
            let codes: Vec<&str> = compiled.diagnostics.iter().map(|d| d.code.as_str()).collect();
            let messages: Vec<String> = compiled.diagnostics.iter().map(|d| d.message.clone()).collect();
            (codes, messages, rendered)
        });
        assert_eq!(codes, ["syntax_error"], "{kind}: {messages:?}");
        assert_eq!(messages, ["nested too deeply"], "{kind}");
        // The one line is far too long to draw: the place is named instead.
        assert!(rendered[0].contains("(at deep.bma:"), "{kind}: {}", rendered[0]);
    }
}

#[test]
fn nesting_just_under_the_limit_compiles() {
    // 130 brackets, calls or blocks and 390-term operator chains are within the limit.
    for (kind, n) in
        [("brackets", 130), ("calls", 130), ("blocks", 130), ("negations", 390), ("sum", 390), ("powers", 390)]
    {
        let text = deep(kind, n);
        let errors = on_small_stack(|| {
            let compiled = bma::compile(&Source::new("deep.bma", text));
            compiled.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.message.clone()).collect::<Vec<_>>()
        });
        assert!(errors.is_empty(), "{kind} {n}: {errors:?}");
    }
    // What the limit is measured against: the examples and the standard library.
    let deepest = corpus().iter().filter_map(|s| bma::syntax::nesting(&s.text)).max().unwrap();
    assert!(deepest < bma::syntax::MAX_NESTING / 4, "the corpus nests {deepest} deep");
}

#[test]
fn a_diagnostic_on_a_very_long_line_names_its_place_instead_of_drawing_it() {
    // miette panicked ("Formatting argument out of range") on a label past column 65535.
    let text = format!(
        "// one short line first\nexperiment e {{ space {{ x: float in 0.0..=1.0 }} objective {{ minimize x{} + y }} }}",
        " ".repeat(70_000)
    );
    let compiled = bma::compile(&Source::new("long.bma", text));
    let d = compiled.diagnostics.iter().find(|d| d.is_error()).expect("`y` is unknown");
    let out =
        bma::diagnostic::render(d, &compiled.sources, bma::diagnostic::RenderOptions { width: 100, color: false });
    assert!(out.contains("(at long.bma:2:"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() < 200), "no line drawn in full: {out}");
}
