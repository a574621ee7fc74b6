//! `bma space`: the space of an experiment as text.

use std::fmt::Write;

use crate::Compiled;
use crate::ir::{Domain, Experiment, ParamKind, Value};

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
