//! The whole-space check's results kept between compilations of the same document, so that
//! an editor's keystroke re-checks only the experiments it changed.
//!
//! Takes each experiment's whole-space check as a function of what it reads: the
//! experiment's tokens (its text less comments and the amount of whitespace, see [`runs`]),
//! the data as described, whether its other checks were clean, and the program's blocks and
//! fns (their names and texts) and every imported file (name and text). Those are hashed
//! into a key that does not depend on where the experiment sits in the file; the check's
//! diagnostics are kept under it with where the experiment's runs and the root-file blocks
//! and fns lay. A later compilation with the same key gets the diagnostics back, each span
//! moved with the run or item it lies in, and the same [`SpaceInfo`], without expanding a
//! single point: typing a comment or a doc comment inside an experiment, re-indenting it, or
//! editing above it, checks no point again.
//!
//! The sections the check does not read are left out of the key too ([`unread`]): `average`
//! and `report`; `search` but its `strategy`, `train` but its `precision`, and `objective`
//! but its `require` constraints (whose texts are in the key instead); the objectives too
//! when the data is searched (`check::data_search` reads them). Editing them keeps the
//! result, unless one of its diagnostics points into them (then the check runs again).
//!
//! [`Reuse::defer`] leaves the whole-space check of a clean experiment with no kept result
//! undone (counted in [`Reuse::deferred`]): the language server publishes the cheap
//! diagnostics first and checks the space after. `stop` (asked between the points of a
//! whole-space check) abandons a check that a newer text made useless; the compilation is
//! then incomplete ([`Reuse::stopped`]) and nothing of it is kept.
//!
//! **Invariant:** a reused result equals what the check would give now: every input of the
//! check is in the key, and a kept span outside the items it was anchored to makes the entry
//! unusable (the check runs again) rather than point somewhere wrong. Comments and whitespace
//! may be left out of the experiment's part of the key because the grammar skips them between
//! tokens (`WHITESPACE` and `COMMENT` are silent, and no atomic rule but a string spans
//! either: a string is kept whole in its run), and the whole-space check reads the lowered
//! experiment, never its text (it is given no `Sources`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use crate::diagnostic::Diagnostic;
use crate::ir::{DataInfo, Experiment, Program};
use crate::source::{FileId, Sources, Span};
use crate::syntax::lex::{self, Lexeme};

use super::data_search::{self, Case};
use super::{SpaceInfo, space};

/// How many whole-space results are kept at most (the least recently used go first): a
/// document's experiments, and a few earlier versions of each (typing, then undoing it).
const KEPT: usize = 256;

/// Whole-space results kept between compilations, and what the last compilation did.
#[derive(Debug, Default)]
pub struct Reuse {
    entries: HashMap<u64, Entry>,
    /// Counts uses, for evicting the least recently used entry.
    clock: u64,
    /// The hash of what every experiment's check reads besides its own text and data: the
    /// program's blocks and fns and the imported files (computed once per compilation).
    program: u64,
    /// The root file's blocks and fns, in [`root_items`]' order (computed once per compilation).
    items: Vec<Span>,
    /// Whole-space checks done (not taken from the cache) by the last compilation.
    checked: usize,
    /// Leave a whole-space check with no kept result undone.
    pub defer: bool,
    deferred: usize,
    reused: usize,
    stopped: bool,
    /// The checks the last compilation deferred, for [`check_deferred`].
    pending: Vec<Deferred>,
}

/// A whole-space check left undone by [`Reuse::defer`], with what it needs besides the program.
#[derive(Debug)]
struct Deferred {
    experiment: String,
    data: Option<DataInfo>,
    cases: Option<Vec<Case>>,
    clean: bool,
}

#[derive(Debug)]
struct Entry {
    /// The root-file items besides the experiment the diagnostics may point into, as they
    /// were: the root file's blocks and fns in [`root_items`]' order.
    anchors: Vec<Span>,
    /// The experiment's runs ([`runs`]), as they lay in the file.
    runs: Vec<(u32, u32)>,
    diags: Vec<Diagnostic>,
    info: SpaceInfo,
    used: u64,
}

impl Reuse {
    /// A cache that checks every space (no deferring).
    pub fn new() -> Reuse {
        Reuse::default()
    }

    /// How many whole-space checks the last compilation left undone ([`Reuse::defer`]).
    pub fn deferred(&self) -> usize {
        self.deferred
    }

    /// How many whole-space checks the last compilation took from the cache.
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// How many whole-space checks the last compilation did (neither kept nor deferred).
    pub fn checked(&self) -> usize {
        self.checked
    }

    /// Whether the last compilation was abandoned by `stop`: its diagnostics are incomplete.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Forgets what the last compilation did (not the kept results); `program` and `sources`
    /// are this compilation's.
    pub(super) fn begin(&mut self, program: &Program, sources: &Sources) {
        self.program = program_key(program, sources);
        self.items = root_items(program);
        self.deferred = 0;
        self.reused = 0;
        self.checked = 0;
        self.stopped = false;
        self.pending.clear();
    }

    /// The whole-space check of `exp`: the kept result, or `run`'s (kept), or `None` when
    /// deferred. `run` pushes its diagnostics and gives the summary; it is given `stop` and
    /// reports whether it was stopped through it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn space(
        &mut self,
        sources: &Sources,
        exp: &Experiment,
        data: &str,
        data_search: bool,
        clean: bool,
        stop: &dyn Fn() -> bool,
        diags: &mut Vec<Diagnostic>,
        run: impl FnOnce(&mut Vec<Diagnostic>, &dyn Fn() -> bool) -> SpaceInfo,
    ) -> Option<SpaceInfo> {
        let anchors = self.items.clone();
        let text = sources.text(exp.span);
        let all: Vec<(u32, u32)> =
            runs(text).into_iter().map(|(a, b)| (exp.span.start + a as u32, exp.span.start + b as u32)).collect();
        let (skipped, read) = unread(exp, text, exp.span.start, &all, data_search);
        let runs: Vec<(u32, u32)> =
            all.into_iter().filter(|&(a, b)| !skipped.iter().any(|&(s, e)| s <= a && b <= e)).collect();
        let key = key(self.program, text, exp.span.start, &runs, read, data, clean);
        self.clock += 1;
        if let Some(entry) = self.entries.get_mut(&key)
            && let Some(moved) = moved(&entry.diags, (&entry.runs, &entry.anchors), (&runs, &anchors))
        {
            entry.used = self.clock;
            self.reused += 1;
            diags.extend(moved);
            return Some(entry.info.clone());
        }
        // Only a clean experiment's check expands points: the rest costs nothing to do now.
        if self.defer && clean {
            self.deferred += 1;
            return None;
        }
        if self.stopped {
            return Some(SpaceInfo::default());
        }
        let stopped = std::cell::Cell::new(false);
        let asked = || {
            let s = stopped.get() || stop();
            stopped.set(s);
            s
        };
        let mut found = Vec::new();
        self.checked += 1;
        let info = run(&mut found, &asked);
        if stopped.get() {
            self.stopped = true;
            return Some(info);
        }
        diags.extend(found.iter().cloned());
        if self.entries.len() >= KEPT
            && let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k)
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, Entry { anchors, runs, diags: found, info: info.clone(), used: self.clock });
        Some(info)
    }
}

/// The whole-space check of `exp` (its data described as `data`, or per data setting in
/// `cases`) through `reuse`: kept, done, or deferred (then recorded for [`check_deferred`],
/// and the summary is empty).
#[allow(clippy::too_many_arguments)]
pub(super) fn whole_space(
    program: &Program,
    sources: &Sources,
    exp: &Experiment,
    data: Option<&DataInfo>,
    cases: Option<&[Case]>,
    clean: bool,
    reuse: &mut Reuse,
    stop: &dyn Fn() -> bool,
    diags: &mut Vec<Diagnostic>,
) -> SpaceInfo {
    let described = match cases {
        Some(cases) => format!("{cases:?}"),
        None => format!("{data:?}"),
    };
    let run = |diags: &mut Vec<Diagnostic>, stop: &dyn Fn() -> bool| match cases {
        Some(cases) if !cases.is_empty() => data_search::check_space(program, exp, cases, clean, stop, diags),
        _ => space::check_space(program, exp, data, clean, stop, diags),
    };
    match reuse.space(sources, exp, &described, cases.is_some(), clean, stop, diags, run) {
        Some(info) => info,
        None => {
            let (data, cases) = (data.cloned(), cases.map(<[Case]>::to_vec));
            reuse.pending.push(Deferred { experiment: exp.name.clone(), data, cases, clean });
            SpaceInfo::default()
        }
    }
}

/// The whole-space checks that the last compilation of `program` through `reuse` deferred,
/// done now (and kept): their diagnostics, and each experiment's summary by its name. With
/// `stop`, as [`Reuse`] says: when [`Reuse::stopped`], the result is incomplete.
pub fn check_deferred(
    program: &Program,
    sources: &Sources,
    reuse: &mut Reuse,
    stop: &dyn Fn() -> bool,
) -> (Vec<Diagnostic>, Vec<(String, SpaceInfo)>) {
    let pending = std::mem::take(&mut reuse.pending);
    let defer = std::mem::replace(&mut reuse.defer, false);
    reuse.deferred = 0;
    reuse.stopped = false;
    let (mut diags, mut infos) = (Vec::new(), Vec::new());
    for d in pending {
        let Some(exp) = program.experiment(&d.experiment) else { continue };
        let (data, cases) = (d.data.as_ref(), d.cases.as_deref());
        let info = whole_space(program, sources, exp, data, cases, d.clean, reuse, stop, &mut diags);
        if reuse.stopped {
            break;
        }
        infos.push((d.experiment, info));
    }
    reuse.defer = defer;
    (diags, infos)
}

/// The root-file items besides the experiment that a whole-space diagnostic may point into:
/// the root file's blocks and fns, by name.
fn root_items(program: &Program) -> Vec<Span> {
    let root = |s: &Span| s.file == FileId(0);
    let mut out = Vec::new();
    out.extend(program.blocks.values().map(|b| b.span).filter(root));
    out.extend(program.fns.values().map(|f| f.span).filter(root));
    out
}

/// Everything the whole-space check of an experiment reads, as a hash that does not change
/// when the experiment moves in its file, nor with its comments and whitespace: `text` is
/// its text, starting at `start` in the file, `runs` its [`runs`] there; `program` is
/// [`program_key`]'s.
fn key(program: u64, text: &str, start: u32, runs: &[(u32, u32)], read: u64, data: &str, clean: bool) -> u64 {
    let mut h = DefaultHasher::new();
    read.hash(&mut h);
    runs.len().hash(&mut h);
    for &(a, b) in runs {
        // `str`'s hash ends each run with a marker: `ab c` and `a bc` differ.
        text.get(a.saturating_sub(start) as usize..b.saturating_sub(start) as usize).unwrap_or("").hash(&mut h);
    }
    data.hash(&mut h);
    clean.hash(&mut h);
    program.hash(&mut h);
    h.finish()
}

/// The program's blocks and fns (by name, with their texts) and every imported file (name
/// and text), hashed.
fn program_key(program: &Program, sources: &Sources) -> u64 {
    let mut h = DefaultHasher::new();
    let items = |h: &mut DefaultHasher, spans: BTreeMap<&String, Span>| {
        spans.len().hash(h);
        for (name, span) in spans {
            name.hash(h);
            span.file.0.hash(h);
            sources.text(span).hash(h);
        }
    };
    items(&mut h, program.blocks.iter().map(|(n, b)| (n, b.span)).collect());
    items(&mut h, program.fns.iter().map(|(n, f)| (n, f.span)).collect());
    program.hidden.hash(&mut h);
    for (id, source) in sources.iter().skip(1) {
        id.0.hash(&mut h);
        source.name.hash(&mut h);
        source.text.hash(&mut h);
    }
    h.finish()
}

/// The runs of an experiment's text, as the tokens see it: the stretches between whitespace
/// and comments (`//` to the end of the line, `/* */`), each as its start and end in `text`.
/// A string literal is kept whole inside its run (its spaces and `//` are its value). Two
/// texts with the same runs parse to the same tree (the grammar skips any whitespace and
/// comments between tokens alike); they differ only in where the runs lie.
fn runs(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut i, mut start) = (0, None);
    let end_run = |start: &mut Option<usize>, at: usize, out: &mut Vec<(usize, usize)>| {
        if let Some(s) = start.take() {
            out.push((s, at));
        }
    };
    while i < text.len() {
        match lex::skip_at(text, i) {
            Some(skip) if skip.lexeme == Lexeme::String => {
                start.get_or_insert(i);
                i = skip.end;
            }
            Some(comment) => {
                end_run(&mut start, i, &mut out);
                i = comment.end;
            }
            None if matches!(text.as_bytes()[i], b' ' | b'\t' | b'\r' | b'\n') => {
                end_run(&mut start, i, &mut out);
                i += 1;
            }
            None => {
                start.get_or_insert(i);
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    end_run(&mut start, text.len(), &mut out);
    out
}

/// The sections of `exp` (whose text is `text`, starting at `start` in the file, its runs
/// `runs`, in file positions) that its
/// whole-space check does not read, as the file ranges of their runs, and a hash of what
/// the check does read in them: `search`'s `strategy` (`space::grid_limit`), `train`'s
/// `precision`, `objective`'s `require` constraints. `data_search`: the data is searched,
/// and `check::data_search` reads the objectives too, so `objective` is read whole.
///
/// A section is left out only when its keyword starts a run and its closing brace ends one
/// (its extent found by counting braces outside strings); otherwise it stays in the key.
fn unread(exp: &Experiment, text: &str, start: u32, runs: &[(u32, u32)], data_search: bool) -> (Vec<(u32, u32)>, u64) {
    let at =
        |a: u32, b: u32| text.get(a.saturating_sub(start) as usize..b.saturating_sub(start) as usize).unwrap_or("");
    let mut h = DefaultHasher::new();
    // The texts of the runs in `span`, cut to it.
    let hash_span = |h: &mut DefaultHasher, span: Span| {
        for &(a, b) in runs.iter().filter(|&&(a, b)| a < span.end && span.start < b) {
            at(a.max(span.start), b.min(span.end)).hash(h);
        }
        0xffu8.hash(h);
    };
    // What the check reads in them, whether or not the sections are left out.
    for s in exp.search.iter().filter(|s| s.key == "strategy") {
        hash_span(&mut h, s.value.span);
    }
    0xfeu8.hash(&mut h);
    for s in exp.train.iter().filter(|s| s.key == "precision") {
        hash_span(&mut h, s.value.span);
    }
    0xfeu8.hash(&mut h);
    for c in &exp.constraints {
        hash_span(&mut h, c.span);
    }
    let mut sections = vec!["average", "report", "search", "train"];
    if !data_search {
        sections.push("objective");
    }
    let out = sections.into_iter().filter_map(|name| extent(runs, exp.sections.get(name)?.start, &at)).collect();
    (out, h.finish())
}

/// The file range of the runs of the section whose keyword starts at `keyword`: from that
/// run to the one that ends with the brace closing the section's first `{`; `None` when the
/// keyword does not start a run or the closing brace does not end one.
fn extent<'t>(runs: &[(u32, u32)], keyword: u32, at: &dyn Fn(u32, u32) -> &'t str) -> Option<(u32, u32)> {
    let first = runs.iter().position(|&(a, _)| a == keyword)?;
    let (mut depth, mut opened, mut in_string) = (0usize, false, false);
    for &(a, b) in &runs[first..] {
        let run = at(a, b).as_bytes();
        let mut i = 0;
        while i < run.len() {
            match run[i] {
                b'\\' if in_string => i += 1,
                b'"' => in_string = !in_string,
                b'{' if !in_string => {
                    depth += 1;
                    opened = true;
                }
                b'}' if !in_string => {
                    depth = depth.checked_sub(1)?;
                    if opened && depth == 0 {
                        return (i + 1 == run.len()).then_some((keyword, b));
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    None
}

/// `diags` with every root-file span moved: one in the experiment as the run its ends lie in
/// moved (`runs`: the old and new runs; the two lists have the same texts, by the key), one
/// in a block or fn as that item moved (`items`: the old and new spans); `None` when an end
/// lies between runs, or a span in no item, or the items do not line up.
fn moved(
    diags: &[Diagnostic],
    (old_runs, old): (&[(u32, u32)], &[Span]),
    (new_runs, new): (&[(u32, u32)], &[Span]),
) -> Option<Vec<Diagnostic>> {
    if old.len() != new.len()
        || old.iter().zip(new).any(|(a, b)| a.len() != b.len())
        || old_runs.len() != new_runs.len()
    {
        return None;
    }
    // A place in a run (its end included) moves with the run.
    let in_run = |at: u32| -> Option<u32> {
        let i = old_runs.partition_point(|&(_, end)| end < at);
        let (&(a, b), &(na, _)) = (old_runs.get(i)?, new_runs.get(i)?);
        (a <= at && at <= b).then_some(at - a + na)
    };
    let (exp_start, exp_end) = (old_runs.first()?.0, old_runs.last()?.1);
    let shift = |s: Span| -> Option<Span> {
        if s.file != FileId(0) {
            return Some(s);
        }
        if exp_start <= s.start && s.end <= exp_end {
            return Some(Span { file: s.file, start: in_run(s.start)?, end: in_run(s.end)? });
        }
        // The item that holds it: an experiment holds no item, so any will do.
        let (a, b) = old.iter().zip(new).find(|(a, _)| a.start <= s.start && s.end <= a.end)?;
        Some(Span { file: s.file, start: s.start - a.start + b.start, end: s.end - a.start + b.start })
    };
    diags
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.primary.span = shift(d.primary.span)?;
            for l in &mut d.secondary {
                l.span = shift(l.span)?;
            }
            Some(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    fn compile(text: &str, reuse: &mut Reuse) -> crate::Compiled {
        crate::compile_reusing(&Source::new("r.bma", text), &crate::ir::Disk, reuse, &|| false)
    }

    const SPEC: &str = "block twice(u: int) {\n  dense(u)\n  dense(u)\n}\n\nexperiment e {\n  data = iris\n  \
                        space {\n    w: in {4, 8}\n    flat: in {true, false}\n  }\n  model {\n    twice(w)\n    \
                        conv2d(8)\n    dense(data.classes)\n  }\n  objective { maximize accuracy }\n}\n";

    /// A text moved down by an edit before it reuses the whole-space result, and the shape
    /// error it gives points where a full check puts it.
    #[test]
    fn a_moved_experiment_reuses_its_space_check_at_its_new_place() {
        let mut reuse = Reuse::new();
        let first = compile(SPEC, &mut reuse);
        assert_eq!(reuse.reused(), 0);
        assert!(first.diagnostics.iter().any(|d| d.code == crate::diagnostic::Code::ShapeError), "{first:?}");
        let edited = format!("// a comment typed above\n{SPEC}");
        let again = compile(&edited, &mut reuse);
        assert_eq!(reuse.reused(), 1);
        let fresh = crate::compile(&Source::new("r.bma", edited.as_str()));
        assert_eq!(again.diagnostics, fresh.diagnostics);
        assert_eq!(format!("{:?}", again.info), format!("{:?}", fresh.info));
    }

    /// A change inside a block the model uses is a change of every experiment that might use it.
    #[test]
    fn a_changed_block_checks_the_space_again() {
        let mut reuse = Reuse::new();
        compile(SPEC, &mut reuse);
        let edited = SPEC.replace("  dense(u)\n  dense(u)", "  dense(u)\n  flatten");
        let again = compile(&edited, &mut reuse);
        assert_eq!(reuse.reused(), 0);
        assert_eq!(again.diagnostics, crate::compile(&Source::new("r.bma", edited.as_str())).diagnostics);
    }

    /// Deferred: the cheap diagnostics now, no whole-space result; then the full check.
    #[test]
    fn a_deferred_space_check_is_counted_and_done_later() {
        let mut reuse = Reuse { defer: true, ..Reuse::new() };
        let cheap = compile(SPEC, &mut reuse);
        assert_eq!(reuse.deferred(), 1);
        assert!(!cheap.diagnostics.iter().any(|d| d.code == crate::diagnostic::Code::ShapeError));
        let mut full = cheap.clone();
        crate::finish_deferred(&mut full, &mut reuse, &|| false);
        assert_eq!(reuse.deferred(), 0);
        let fresh = crate::compile(&Source::new("r.bma", SPEC));
        assert_eq!(full.diagnostics, fresh.diagnostics);
        assert_eq!(format!("{:?}", full.info), format!("{:?}", fresh.info));
        // And kept: the same text again needs no check.
        compile(SPEC, &mut reuse);
        assert_eq!((reuse.reused(), reuse.deferred()), (1, 0));
    }

    /// A check stopped part way is reported as such and not kept.
    #[test]
    fn a_stopped_space_check_is_not_kept() {
        let mut reuse = Reuse::new();
        crate::compile_reusing(&Source::new("r.bma", SPEC), &crate::ir::Disk, &mut reuse, &|| true);
        assert!(reuse.stopped());
        compile(SPEC, &mut reuse);
        assert!(!reuse.stopped());
        assert_eq!(reuse.reused(), 0);
    }

    /// The texts of `runs`.
    fn run_texts(text: &str) -> Vec<&str> {
        runs(text).into_iter().map(|(a, b)| &text[a..b]).collect()
    }

    /// Comments and whitespace split runs and are left out; a string is one run with its
    /// spaces and `//`; `a/**/b` is two runs, as the grammar reads two tokens.
    #[test]
    fn runs_are_the_text_between_whitespace_and_comments() {
        assert_eq!(
            run_texts("a  = f(\"x  // y\", 2) // c\n/* d\n e */ b/**/c /// doc\n\tq"),
            ["a", "=", "f(\"x  // y\",", "2)", "b", "c", "q"]
        );
        assert_eq!(run_texts("s = \"a \\\" b\" t"), ["s", "=", "\"a \\\" b\"", "t"]);
        assert_ne!(run_texts("\"a  b\""), run_texts("\"a b\""));
        assert_ne!(run_texts("a = = b"), run_texts("a == b"));
    }

    /// Typing a comment inside the model, a doc comment in the space, re-indenting a line,
    /// and editing what the check does not read (objectives, search and train settings but
    /// `strategy` and `precision`, a new `average`) keep the whole-space result, its shape
    /// error moved to where a full check puts it.
    #[test]
    fn comments_and_whitespace_inside_an_experiment_keep_its_space_check() {
        let mut reuse = Reuse::new();
        compile(SPEC, &mut reuse);
        assert_eq!(reuse.checked(), 1);
        for edited in [
            SPEC.replace("  model {\n", "  model {\n    // a comment typed in the model\n"),
            SPEC.replace("    w: in", "    /// The width.\n    w: in"),
            SPEC.replace("    conv2d(8)\n", "      conv2d(8) /* why */\n\n"),
            // Sections, or parts of them, that the check does not read.
            SPEC.replace("maximize accuracy }", "maximize f1 }"),
            SPEC.replace("maximize accuracy }", "maximize accuracy\n    minimize latency }"),
            SPEC.replace("maximize accuracy }", "maximize accuracy }\n  search { trials = 7 }"),
            SPEC.replace("  model {", "  train { epochs = 3 }\n  model {"),
            SPEC.replace("maximize accuracy }", "maximize accuracy }\n  average { ensemble(top: 2) }"),
        ] {
            let again = compile(&edited, &mut reuse);
            assert_eq!((reuse.reused(), reuse.checked()), (1, 0), "{edited}");
            let fresh = crate::compile(&Source::new("r.bma", edited.as_str()));
            assert!(fresh.diagnostics.iter().any(|d| d.code == crate::diagnostic::Code::ShapeError));
            assert_eq!(again.diagnostics, fresh.diagnostics, "{edited}");
            assert_eq!(format!("{:?}", again.info), format!("{:?}", fresh.info));
        }
    }

    /// A change of a token inside the experiment (a domain, a layer's argument, a setting the
    /// check reads, the data) checks the space again, and gives what a full check gives.
    #[test]
    fn a_changed_token_inside_an_experiment_checks_its_space_again() {
        for edited in [
            SPEC.replace("w: in {4, 8}", "w: in {4, 16}"),
            SPEC.replace("conv2d(8)", "conv2d(16)"),
            SPEC.replace("conv2d(8)\n", "conv2d(8)\n    flatten\n"),
            SPEC.replace("maximize accuracy }", "maximize accuracy }\n  search { strategy = grid }"),
            SPEC.replace("maximize accuracy }", "maximize accuracy\n    require params <= 100 }"),
            SPEC.replace("  model {", "  train { precision = bf16 }\n  model {"),
            SPEC.replace("data = iris", "data = digits"),
        ] {
            let mut reuse = Reuse::new();
            compile(SPEC, &mut reuse);
            let again = compile(&edited, &mut reuse);
            assert_eq!((reuse.reused(), reuse.checked()), (0, 1), "{edited}");
            let fresh = crate::compile(&Source::new("r.bma", edited.as_str()));
            assert_eq!(again.diagnostics, fresh.diagnostics, "{edited}");
            assert_eq!(format!("{:?}", again.info), format!("{:?}", fresh.info));
        }
    }
}
