//! `--format json` of `bma space`, `graph`, `ls`, `eval` and `run`: the JSON documents
//! those commands print instead of their text, as docs/json.md describes them.
//!
//! Takes what each command computed for its text (a compiled experiment, an expanded
//! sub-model, store summaries, metrics, a finished run); gives one `serde_json::Value`
//! per document. Invariant: every document is an object whose `schema_version` is
//! [`SCHEMA_VERSION`], the version `results.json` carries too; a field is only ever
//! added within a version, never renamed or removed. Numbers are JSON numbers (a NaN,
//! which JSON lacks, is `null`).

use serde_json::{Value as Json, json};

use bma::ir::{self, Domain, ParamKind};
use bma::study::outputs::{self, value_json};

/// The version of every JSON document bma prints or writes.
pub const SCHEMA_VERSION: u64 = outputs::SCHEMA_VERSION;

/// Prints `doc` on stdout, pretty, with a final newline.
pub fn print(doc: &Json) {
    match serde_json::to_string_pretty(doc) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode JSON: {e}"),
    }
}

/// A float as JSON: a number, or `null` for NaN and infinities.
pub fn num(v: f64) -> Json {
    serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
}

/// `bma space --format json`: one experiment's parameters and sizes.
pub fn space(compiled: &bma::Compiled, exp: &ir::Experiment) -> Json {
    let params: Vec<Json> = exp
        .space
        .params
        .iter()
        .map(|p| {
            let mut o = json!({
                "name": p.name,
                "when": p.guard.iter().map(|g| compiled.sources.text(g.span)).collect::<Vec<_>>(),
            });
            let fields = match &p.kind {
                ParamKind::Free(d) => json!({ "kind": "free", "domain": domain(d) }),
                ParamKind::Const(v) => json!({ "kind": "pinned", "value": value_json(v) }),
                ParamKind::Derived(e) => json!({ "kind": "derived", "expr": compiled.sources.text(e.span) }),
            };
            if let (Some(o), Json::Object(f)) = (o.as_object_mut(), fields) {
                o.extend(f);
            }
            o
        })
        .collect();
    let info = compiled.info(&exp.name);
    let range = |r: Option<(u64, u64)>| r.map_or(Json::Null, |(lo, hi)| json!({ "min": lo, "max": hi }));
    json!({
        "schema_version": SCHEMA_VERSION,
        "experiment": exp.name,
        "data": info.and_then(|i| i.data.as_ref()).map(|d| json!({
            "name": d.name,
            "input": d.shape,
            "outputs": d.outputs(),
        })),
        "parameters": params,
        // Strings: a grid may hold more points than a JSON number carries exactly.
        "grid_size": info.and_then(|i| i.space.grid_size).map(|n| n.to_string()),
        "params": range(info.and_then(|i| i.space.params)),
        "flops": range(info.and_then(|i| i.space.flops)),
        "structural_points_checked": info.map(|i| i.space.checked),
        "statically_infeasible": info.map(|i| i.space.statically_infeasible),
    })
}

fn domain(d: &Domain) -> Json {
    match d {
        Domain::Int { lo, hi, log, step } => json!({ "type": "int", "low": lo, "high": hi, "log": log, "step": step }),
        Domain::Float { lo, hi, log, step } => {
            json!({ "type": "float", "low": num(*lo), "high": num(*hi), "log": log, "step": step.map(num) })
        }
        Domain::Choice(v) => json!({ "type": "choice", "values": v.iter().map(value_json).collect::<Vec<_>>() }),
    }
}

/// `bma graph --format json`: the sub-model's metadata (not its drawing): the point, the
/// sizes, and each layer with its shape.
pub fn graph(experiment: &str, sub: &ir::SubModel, point: &ir::Point) -> Json {
    let layers: Vec<Json> = sub
        .graph
        .node_indices()
        .map(|i| {
            let l = &sub.graph[i];
            json!({
                "name": l.name,
                "shape": l.shape,
                "inputs": l.inputs,
                "params": l.params,
                "flops": l.flops,
            })
        })
        .collect();
    json!({
        "schema_version": SCHEMA_VERSION,
        "experiment": experiment,
        "point": point.iter().map(|(k, v)| (k.clone(), value_json(v))).collect::<serde_json::Map<_, _>>(),
        "input": sub.graph[sub.input].shape,
        "output": sub.output_shape(),
        "params": sub.params,
        "flops": sub.flops,
        "layers": layers,
    })
}

/// One study of `bma ls --format json`; `state` is what `bma ls` shows (a running study
/// whose owner is gone: `stopped (no live owner)`).
pub fn study(place: &str, s: &bma::store::StudySummary, state: &str) -> Json {
    json!({
        "place": place,
        "name": s.name,
        "experiment": s.experiment,
        "state": state,
        "trials": s.counts.values().sum::<u64>(),
        "counts": s.counts,
        "objectives": s.objectives.iter().map(|(n, d)| json!({ "name": n, "direction": d.as_str() })).collect::<Vec<_>>(),
        "best": s.best.as_ref().map(|(number, values)| json!({
            "trial": number,
            "values": s.objectives.iter().zip(values).map(|((n, _), v)| (n.clone(), num(*v))).collect::<serde_json::Map<_, _>>(),
        })),
        "created": num(s.created),
    })
}

/// `bma ls --format json`: the studies found, in the order the text lists them.
pub fn studies(list: Vec<Json>) -> Json {
    json!({ "schema_version": SCHEMA_VERSION, "studies": list })
}

/// `bma run --format json`: how the study ended, its counts, its best trial, its final
/// model and where the files are (the whole history is in `results.json`).
pub fn run_summary(
    plan: &bma::study::Plan<'_>,
    spec: &bma::store::StudySpec,
    history: &bma::search::History,
    ended: bma::search::study::Ended,
    why: &str,
    written: &outputs::Written,
) -> Json {
    let best = history.ranked().first().map(|t| {
        json!({
            "trial": t.number,
            "params": t.params.iter().map(|(k, v)| (k.clone(), value_json(v))).collect::<serde_json::Map<_, _>>(),
            "values": spec.objectives.iter().zip(&t.values).map(|((n, _), v)| (n.clone(), num(*v))).collect::<serde_json::Map<_, _>>(),
        })
    });
    let out = |name: &str| plan.out.join(name).display().to_string();
    json!({
        "schema_version": SCHEMA_VERSION,
        "experiment": spec.experiment,
        "study": spec.name,
        "state": ended.state().as_str(),
        "ended": why,
        "counts": outputs::counts_json(history),
        "best": best,
        "final": written.final_summary.as_ref().map(|f| json!({
            "method": f.method,
            "members": f.members.len(),
        })),
        "notes": written.notes,
        "out": plan.out.display().to_string(),
        "results": out("results.json"),
        "report": out("report.html"),
    })
}
