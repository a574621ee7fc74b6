//! Inlay hints: the output shape of each statement of an experiment's model.
//!
//! Takes an [`Analysis`] and a range of one of its files; gives, for each model statement in
//! it (a layer or block call, each link of a chain, and the statements holding others:
//! `repeat`, `match`, `if`, `residual`, `parallel`), the shape it gives. Shapes are those of
//! the model expanded at the experiment's representative point (`pins::representative_point`:
//! every free parameter at its first value, as `bma graph` expands it without `--set`); the
//! arms of a `match` on a parameter that this point does not take are expanded at the point
//! that pins the parameter to the arm's pattern (first come, first kept). A statement run
//! several times (in a `repeat`) shows the shape after its last run and how many runs.
//! **Invariant:** a hint is only given for a statement that was expanded: a model that does
//! not expand at any of these points (a shape error) gets no hint, never a guessed shape.

use std::collections::BTreeMap;

use super::Analysis;
use crate::ast::{self, PatternAlt, Stmt};
use crate::ir::{self, Experiment, ParamKind};
use crate::pins;
use crate::source::FileId;

/// How many points one experiment is expanded at for its hints, at most.
const MAX_EXPANSIONS: usize = 16;

/// A hint shown after the text at `offset` (the end of a statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlayHint {
    pub offset: u32,
    pub label: String,
}

/// The hints of the model statements of `file` that end within `start..=end`, in text order.
pub fn inlay_hints(a: &Analysis, file: FileId, start: u32, end: u32) -> Vec<InlayHint> {
    let c = &a.compiled;
    let mut out = Vec::new();
    for exp in &c.program.experiments {
        if exp.span.file != file || exp.span.end < start || exp.span.start > end {
            continue;
        }
        let Some(model) = &exp.model else { continue };
        // By statement span: its label, from the first point that expanded it.
        let mut labels: BTreeMap<(u32, u32), String> = BTreeMap::new();
        for pinned in points(c, exp, model).into_iter().take(MAX_EXPANSIONS) {
            let Ok((sub, _)) = pins::expand_with_pins(c, exp, &pinned) else { continue };
            let mut here: BTreeMap<(u32, u32), (String, usize)> = BTreeMap::new();
            for (span, node) in &sub.steps {
                let inside = span.file == file && model.span.start <= span.start && span.end <= model.span.end;
                let Some(layer) = sub.graph.node_weight(petgraph::graph::NodeIndex::new(*node)).filter(|_| inside)
                else {
                    continue;
                };
                let entry = here.entry((span.start, span.end)).or_default();
                *entry = (ir::fmt_shape(&layer.shape), entry.1 + 1);
            }
            for (at, (shape, runs)) in here {
                let label = if runs > 1 { format!("→ {shape} (×{runs})") } else { format!("→ {shape}") };
                labels.entry(at).or_insert(label);
            }
        }
        out.extend(
            labels
                .into_iter()
                .filter(|((_, e), _)| start <= *e && *e <= end)
                .map(|((_, e), label)| InlayHint { offset: e, label }),
        );
    }
    out.sort_by_key(|h| h.offset);
    out
}

/// The pins to expand `exp` at: none (the representative point), then each pattern of each
/// `match` on a searched parameter.
fn points(c: &crate::Compiled, exp: &Experiment, model: &ast::Body) -> Vec<BTreeMap<String, String>> {
    let mut out = vec![BTreeMap::new()];
    let mut matches = Vec::new();
    match_arms(model, &mut matches);
    for (scrutinee, alt) in matches {
        let Some(name) = scrutinee.as_name() else { continue };
        if !matches!(exp.space.get(name).map(|p| &p.kind), Some(ParamKind::Free(_))) {
            continue;
        }
        if matches!(alt, PatternAlt::Wildcard(_)) {
            continue;
        }
        let pin = BTreeMap::from([(name.to_string(), c.sources.text(alt.span()).to_string())]);
        if !out.contains(&pin) {
            out.push(pin);
        }
    }
    out
}

/// Every `match` of `body` (nested ones too): its scrutinee with each of its patterns.
fn match_arms<'a>(body: &'a ast::Body, out: &mut Vec<(&'a ast::Expr, &'a PatternAlt)>) {
    for s in &body.stmts {
        match s {
            Stmt::Chain(_) | Stmt::Let { .. } => {}
            Stmt::Repeat { body, .. } | Stmt::Residual { body, .. } => match_arms(body, out),
            Stmt::Match { scrutinee, arms, .. } => {
                for arm in arms {
                    out.extend(arm.pattern.alts.iter().map(|alt| (scrutinee, alt)));
                    match_arms(&arm.body, out);
                }
            }
            Stmt::If { then, otherwise, .. } => {
                match_arms(then, out);
                if let Some(o) = otherwise {
                    match_arms(o, out);
                }
            }
            Stmt::Parallel { branches, .. } => {
                for b in branches {
                    match_arms(b, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    fn hints(text: &str) -> Vec<(String, String)> {
        let a = Analysis::new(crate::compile(&Source::new("h.bma", text)));
        inlay_hints(&a, FileId(0), 0, text.len() as u32)
            .into_iter()
            .map(|h| {
                let before = &text[..h.offset as usize];
                let line = before.rsplit('\n').next().unwrap_or("").trim().to_string();
                (line, h.label)
            })
            .collect()
    }

    #[test]
    fn each_statement_shows_its_shape_at_the_representative_point_and_every_arm_its_own() {
        let text = "experiment e {\n  data = digits()\n  space {\n    kind: in {mlp, cnn}\n    depth: int in 2..=3\n  }\n  \
                    model {\n    match kind {\n      mlp => {\n        flatten\n        repeat depth { dense(32) }\n      }\n      \
                    cnn => {\n        conv2d(4, kernel: 3, padding: valid)\n        flatten\n      }\n    }\n    \
                    dense(data.classes)\n  }\n  objective { maximize accuracy }\n}\n";
        let got = hints(text);
        let want = [
            ("flatten", "→ [64]"),
            ("repeat depth { dense(32)", "→ [32] (×2)"),
            ("repeat depth { dense(32) }", "→ [32]"),
            ("conv2d(4, kernel: 3, padding: valid)", "→ [4, 6, 6]"),
            ("flatten", "→ [144]"),
            ("}", "→ [32]"),
            ("dense(data.classes)", "→ [10]"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_model_that_does_not_expand_gets_no_hint() {
        let text = "experiment e {\n  data = iris\n  model {\n    conv2d(4)\n    dense(data.classes)\n  }\n  \
                    objective { maximize accuracy }\n}\n";
        assert_eq!(hints(text), Vec::new());
    }
}
