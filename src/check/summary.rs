//! `bma space`: the space of an experiment as text.
//!
//! Takes a checked program and one of its experiments; gives the text `bma space` prints.
//! When the data reads searched parameters, the `data` line describes the first data
//! setting and a `settings` block lists every setting the checker described (its values,
//! input shape and vocabulary), with how many there are in all.

use std::fmt::Write;

use crate::Compiled;
use crate::ir::{DataInfo, Domain, Experiment, ParamKind, Point, Value};

/// Parameters, domains, conditions, the size of the discrete part, and the range
/// of parameter counts and FLOPs over the space.
pub fn report_space(compiled: &Compiled, exp: &Experiment) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "experiment {}", exp.name);
    let info = compiled.info(&exp.name);
    if let Some(d) = info.and_then(|i| i.data.as_ref()) {
        let _ =
            writeln!(s, "  data      {}  input {}  outputs {}", d.name, crate::ir::fmt_shape(&d.shape), d.outputs());
    }
    if let Some(i) = info.filter(|i| !i.settings.is_empty()) {
        data_settings(&mut s, exp, &i.settings);
    }
    let width = exp.space.params.iter().map(|p| p.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(s, "  parameters");
    for p in &exp.space.params {
        let domain = match &p.kind {
            ParamKind::Free(d) => describe_domain(d),
            ParamKind::Const(v) => format!("= {v}  (pinned)"),
            ParamKind::Derived(e) => format!("= {}  (derived)", compiled.sources.text(e.span)),
        };
        let cond = if p.guard.is_empty() {
            String::new()
        } else {
            format!(
                "  when {}",
                p.guard.iter().map(|g| compiled.sources.text(g.span)).collect::<Vec<_>>().join(" and ")
            )
        };
        let _ = writeln!(s, "    {:width$}  {domain}{cond}", p.name);
    }
    if let Some(info) = info {
        let grid = match info.space.grid_size {
            Some(n) => format!("{} points", super::space::count_text(n, true, 0.0)),
            None => "continuous".to_string(),
        };
        let _ = writeln!(s, "  size      {grid}");
        if let Some((lo, hi)) = info.space.params {
            let _ = writeln!(s, "  params    {} .. {}", human(lo), human(hi));
        }
        if let Some((lo, hi)) = info.space.flops {
            let _ = writeln!(s, "  flops     {} .. {}", human(lo), human(hi));
        }
        if info.space.checked > 0 {
            let _ = writeln!(
                s,
                "  shapes    checked at {} of {} structural points",
                info.space.checked,
                super::space::count_text(
                    info.space.structural_total,
                    info.space.structural_exact,
                    info.space.structural_log10
                )
            );
        }
        if info.space.statically_infeasible > 0 {
            let _ = writeln!(
                s,
                "  pruned    {} structural point{} break{} a `require` before training",
                info.space.statically_infeasible,
                if info.space.statically_infeasible == 1 { "" } else { "s" },
                if info.space.statically_infeasible == 1 { "s" } else { "" }
            );
        }
    }
    s
}

/// The `settings` block: one line per described data setting (see the header).
fn data_settings(s: &mut String, exp: &Experiment, settings: &[(Point, DataInfo)]) {
    let (_, total) = crate::ir::data_search::data_points(exp, 0);
    let described = settings.len();
    let of =
        if total > described as u128 { format!(", {described} described (the corners first)") } else { String::new() };
    let _ = writeln!(
        s,
        "  settings  {total} data setting{}{of}; the input above is the first's, the shapes follow each",
        if total == 1 { "" } else { "s" }
    );
    let rows: Vec<String> = settings.iter().map(|(at, _)| crate::ir::data_search::describe(at)).collect();
    let width = rows.iter().map(String::len).max().unwrap_or(0);
    for (row, (_, d)) in rows.iter().zip(settings) {
        let vocab = d.vocab.map(|v| format!("  vocab {v}")).unwrap_or_default();
        let _ = writeln!(s, "    {row:width$}  input {}{vocab}", crate::ir::fmt_shape(&d.shape));
    }
}

fn describe_domain(d: &Domain) -> String {
    match d {
        Domain::Int { lo, hi, log, step } => {
            format!(
                "int in {lo}..={hi}{}{}",
                if *step > 1 { format!(" step {step}") } else { String::new() },
                if *log { " log" } else { "" }
            )
        }
        Domain::Float { lo, hi, log, step } => {
            format!(
                "float in {}..{}{}{}",
                Value::Float(*lo),
                Value::Float(*hi),
                step.map(|s| format!(" step {s}")).unwrap_or_default(),
                if *log { " log" } else { "" }
            )
        }
        Domain::Choice(v) => {
            let ty = if v.iter().all(|x| matches!(x, Value::Int(_))) {
                "int "
            } else if v.iter().all(|x| matches!(x, Value::Float(_) | Value::Int(_))) {
                "float "
            } else if v.iter().all(|x| matches!(x, Value::Bool(_))) {
                "bool "
            } else {
                ""
            };
            format!("{ty}in {{{}}}", v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        }
    }
}

/// `61.2k`, `1.3M`.
pub fn human(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        1_000_000_000..=999_999_999_999 => format!("{:.2}G", n as f64 / 1e9),
        _ => format!("{:.2}T", n as f64 / 1e12),
    }
}
