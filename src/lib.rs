//! bma: declarative automatic model search.
//!
//! The pipeline, in reading order: `source` → `syntax` → `ast` → `ir` → `check`,
//! reported through `diagnostic`. [`compile`] is the one entry point for
//! `bma check`, `run`, `watch`, the LSP and the tests. The library prints nothing
//! and never exits the process.

pub mod ast;
pub mod average;
pub mod catalogue;
pub mod check;
pub mod data;
pub mod diagnostic;
pub mod export;
pub mod final_model;
pub mod fmt;
pub mod ide;
pub mod ir;
pub mod limits;
pub mod pins;
pub mod report;
pub mod reuse;
pub mod rng;
pub mod search;
pub mod source;
pub mod space;
pub mod stdlib;
pub mod store;
pub mod study;
pub mod syntax;
pub mod train;
pub mod trial;
pub mod watch;

/// Every binary built on the library (`bma`, the tests, the benchmarks) allocates through
/// mimalloc: training frees and reallocates tensors of megabytes every step, which glibc's
/// malloc returned to the kernel and faulted in again (a quarter of a transformer step).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's purge delay as bma sets it ([`configure_allocator`]), in milliseconds: freed
/// memory goes back to the OS at most every 10 s instead of every second (mimalloc's default),
/// so the large tensors a training step frees are reused by the next steps instead of being
/// faulted in and zeroed by the kernel again (bench/layers/RESULTS-transformer.md, "mimalloc's
/// purge delay set by bma"); an idle process still returns them.
pub const ALLOCATOR_PURGE_DELAY_MS: i64 = 10_000;

/// Sets bma's allocator options ([`ALLOCATOR_PURGE_DELAY_MS`]) for the whole process. Call it
/// first thing in `main`, before any thread starts (the benchmarks do, as `bma` does).
pub fn configure_allocator() {
    mimalloc_options::set_purge_delay(ALLOCATOR_PURGE_DELAY_MS);
}

pub use check::report_space;
pub use diagnostic::Diagnostic;
pub use pins::{PinError, expand_with_pins};
pub use source::{Source, Sources};

/// The longest duration bma works with: about 317 years. A time budget written larger (`1e30s`)
/// means "no limit" in practice; capped here, it can still be added to an `Instant`, and
/// `Duration::from_secs_f64` does not panic on it.
pub const MAX_SECONDS: f64 = 1e10;

/// `seconds` as a `Duration` (capped at [`MAX_SECONDS`]); `None` for a negative or NaN value.
pub fn seconds(seconds: f64) -> Option<std::time::Duration> {
    (seconds >= 0.0).then(|| std::time::Duration::from_secs_f64(seconds.min(MAX_SECONDS)))
}

/// The result of compiling one file: everything read, what it means, every problem.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub sources: Sources,
    pub program: ir::Program,
    pub info: Vec<check::ExperimentInfo>,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn info(&self, experiment: &str) -> Option<&check::ExperimentInfo> {
        self.info.iter().find(|i| i.name == experiment)
    }
}

/// Does the whole-space checks that [`compile_reusing`] left to do (`check::Reuse::defer`)
/// and adds what they find to `compiled`, which that call gave. With `stop`, as
/// `compile_reusing`: when `reuse.stopped()`, `compiled` is incomplete.
pub fn finish_deferred(compiled: &mut Compiled, reuse: &mut check::Reuse, stop: &dyn Fn() -> bool) {
    let (diagnostics, infos) = check::check_deferred(&compiled.program, &compiled.sources, reuse, stop);
    for (name, space) in infos {
        if let Some(info) = compiled.info.iter_mut().find(|i| i.name == name) {
            info.space = space;
        }
    }
    compiled.diagnostics.extend(diagnostics);
    compiled.diagnostics.sort_by_key(|d| (d.primary.span.file, d.primary.span.start, d.primary.span.end, d.code));
    compiled.diagnostics.dedup();
}

/// Parses, lowers and checks `source`, reading imports from disk.
pub fn compile(source: &Source) -> Compiled {
    compile_with(source, &ir::Disk)
}

/// Like [`compile`], with imports read through `loader`.
pub fn compile_with(source: &Source, loader: &dyn ir::Loader) -> Compiled {
    compile_reusing(source, loader, &mut check::Reuse::new(), &|| false)
}

/// Like [`compile_with`], with each experiment's whole-space check taken from `reuse` when
/// nothing it reads changed (`check::Reuse`: what the language server keeps per document);
/// `stop` abandons the whole-space checks of a text that is no longer wanted.
pub fn compile_reusing(
    source: &Source,
    loader: &dyn ir::Loader,
    reuse: &mut check::Reuse,
    stop: &dyn Fn() -> bool,
) -> Compiled {
    let mut sources = Sources::default();
    let root = sources.add(source.clone());
    // A file with syntax errors is analysed without its broken items (`syntax::Recovered`).
    let parsed = syntax::parse_recovering(root, &source.text);
    if parsed.file.items.is_empty() && !parsed.errors.is_empty() {
        let diagnostics = parsed.errors;
        return Compiled { sources, program: ir::Program::default(), info: Vec::new(), diagnostics };
    }
    let (program, mut diagnostics) = ir::lower(root, &parsed.file, &mut sources, loader);
    // Absolute, so that what is read (and stored) never depends on the current directory.
    let base = data::base_folder(source.path.as_deref());
    let (more, info) = if parsed.damage.is_empty() {
        check::check_reusing(&program, &sources, &base, reuse, stop)
    } else {
        // What the checker would say of a broken experiment is left out anyway: it is not
        // checked (its whole-space check would cost as much as a clean file's, per keystroke).
        let mut intact = program.clone();
        intact.experiments.retain(|e| !parsed.is_damaged(e.span));
        check::check_reusing(&intact, &sources, &base, reuse, stop)
    };
    diagnostics.extend(more);
    if !parsed.errors.is_empty() {
        diagnostics.retain(|d| parsed.keeps(d, &source.text));
        diagnostics.extend(parsed.errors);
    }
    diagnostics.sort_by_key(|d| (d.primary.span.file, d.primary.span.start, d.primary.span.end, d.code));
    diagnostics.dedup();
    Compiled { sources, program, info, diagnostics }
}
