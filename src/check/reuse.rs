//! The whole-space check's results kept between compilations of the same document, so that
//! an editor's keystroke re-checks only the experiments it changed.
//!
//! Takes each experiment's whole-space check as a function of what it reads: the
//! experiment's own text, the data as described, whether its other checks were clean, and
//! the program's blocks and fns (their names and texts) and every imported file (name and
//! text). Those are hashed into a key that does not depend on where the experiment sits in
//! the file; the check's diagnostics are kept under it with the spans of the root-file items
//! they may point into (the experiment, its blocks and fns). A later compilation with the
//! same key gets the diagnostics back, each span moved with the item it lies in, and the
//! same [`SpaceInfo`], without expanding a single point.
//!
//! [`Reuse::defer`] leaves the whole-space check of a clean experiment with no kept result
//! undone (counted in [`Reuse::deferred`]): the language server publishes the cheap
//! diagnostics first and checks the space after. `stop` (asked between the points of a
//! whole-space check) abandons a check that a newer text made useless; the compilation is
//! then incomplete ([`Reuse::stopped`]) and nothing of it is kept.
//!
//! **Invariant:** a reused result equals what the check would give now: every input of the
//! check is in the key, and a kept span outside the items it was anchored to makes the entry
//! unusable (the check runs again) rather than point somewhere wrong.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use crate::diagnostic::Diagnostic;
use crate::ir::{DataInfo, Experiment, Program};
use crate::source::{FileId, Sources, Span};

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
    /// The root-file items the diagnostics may point into, as they were: the experiment
    /// first, then the root file's blocks and fns in [`root_items`]' order.
    anchors: Vec<Span>,
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
        clean: bool,
        stop: &dyn Fn() -> bool,
        diags: &mut Vec<Diagnostic>,
        run: impl FnOnce(&mut Vec<Diagnostic>, &dyn Fn() -> bool) -> SpaceInfo,
    ) -> Option<SpaceInfo> {
        let anchors: Vec<Span> = std::iter::once(exp.span).chain(self.items.iter().copied()).collect();
        let key = key(self.program, sources, exp, data, clean);
        self.clock += 1;
        if let Some(entry) = self.entries.get_mut(&key)
            && let Some(moved) = moved(&entry.diags, &entry.anchors, &anchors)
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
        self.entries.insert(key, Entry { anchors, diags: found, info: info.clone(), used: self.clock });
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
    match reuse.space(sources, exp, &described, clean, stop, diags, run) {
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

/// Everything the whole-space check of `exp` reads, as a hash that does not change when the
/// experiment moves in its file; `program` is [`program_key`]'s.
fn key(program: u64, sources: &Sources, exp: &Experiment, data: &str, clean: bool) -> u64 {
    let mut h = DefaultHasher::new();
    sources.text(exp.span).hash(&mut h);
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

/// `diags` with every root-file span moved as the anchor it lies in moved; `None` when a
/// span lies in no anchor, or the anchors do not line up.
fn moved(diags: &[Diagnostic], old: &[Span], new: &[Span]) -> Option<Vec<Diagnostic>> {
    if old.len() != new.len() || old.iter().zip(new).any(|(a, b)| a.len() != b.len()) {
        return None;
    }
    let shift = |s: Span| -> Option<Span> {
        if s.file != FileId(0) {
            return Some(s);
        }
        // The innermost anchor: an experiment's span holds no item, so any will do.
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
}
