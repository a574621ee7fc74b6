//! `bma export`: a saved model as an ONNX file (opset 17), and test vectors to check it.
//!
//! Takes a saved model folder (a final model's, with `final.json`, or one model's, with
//! `model.json`: `best/`, `trials/<n>/`); gives the bytes of an ONNX model ([`onnx`]) and,
//! from the model's own test split, an `.npz` of inputs and bma's outputs for them
//! ([`samples`]).
//!
//! The graph: input `input`, `[N, features]` float32, the features after bma's
//! preprocessing (standardised, imputed, one-hot, token ids as floats); an optional
//! [`InputScaling`] is a subgraph prepended to it (`(x − mean) / std`, a missing value
//! (NaN) to 0, as `data` scales), so the graph then reads the unscaled features; its values
//! come from the folder's saved preprocessing ([`input_scaling`]), not from the data. Output
//! `output`, `[N, outputs]`: what bma's final model gives (`final_model::FinalModel::predict`),
//! class probabilities for classification (a network ending in logits gets its softmax, or
//! its sigmoid for one output), values in the target's own units for regression (the
//! target scaling of `model.json` folded in as `· std + mean`); an ensemble is one graph with
//! the weighted mean of its members' outputs, or their weighted vote as `average::vote`
//! counts it (soups and SWA are single networks already).
//! Each network's steps are mapped by `net.rs`; the protobuf messages are `proto.rs`'s.
//!
//! **Invariant:** the file holds what bma computes, or no file is written: a layer or
//! that cannot be mapped is an error naming it; so is an ensemble whose members read their
//! inputs differently (members of other searched data settings, [`load`]), one graph taking
//! one input.

mod graph;
mod net;
pub mod proto;

use std::path::Path;

use prost::Message;

use crate::average;
use crate::data::{self, Part};
use crate::final_model::{self, FinalModel};
use crate::ir::Task;
use crate::train::{self, Head, SavedConfig};
use graph::{Graph, int};
use proto::{
    Dimension, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto, TensorTypeProto,
    TypeProto, ValueInfoProto, data_type,
};

/// The ONNX operator set the graphs use.
pub const OPSET: i64 = 17;
/// The IR version of opset 17.
const IR_VERSION: i64 = 8;

/// A per-feature standardisation folded in front of the network: `(x − mean) / std`, and 0
/// for a missing value (NaN), as `data` scales a row.
#[derive(Debug, Clone, PartialEq)]
pub struct InputScaling {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Reads the model saved in `dir`: a final model (`final.json`) or one model
/// (`model.json`, as a final model of one member with weight 1), with its saved config.
/// A final model whose members read their inputs differently (members of different data
/// settings: another tokenizer, length, image size, ...) is refused: one graph takes one
/// input.
pub fn load(dir: &Path) -> Result<(FinalModel, SavedConfig), String> {
    if dir.join("final.json").is_file() {
        let (model, configs) = final_model::load_members(dir)?;
        one_input(dir, &configs)?;
        let config = configs.into_iter().next().ok_or_else(|| format!("{}: no members", dir.display()))?;
        Ok((model, config))
    } else if dir.join("model.json").is_file() {
        let (model, config) = train::load(dir)?;
        Ok((FinalModel { members: vec![(model, 1.0)], vote: false }, config))
    } else {
        Err(format!("{} holds no saved model (no final.json or model.json)", dir.display()))
    }
}

/// Every member of a final model reads one input the same way: the same preprocessing (or,
/// in folders saved without one, the same data value and tokenizer); else an error naming
/// the members and how their settings differ.
fn one_input(dir: &Path, configs: &[SavedConfig]) -> Result<(), String> {
    let Some((first, rest)) = configs.split_first() else { return Ok(()) };
    for (i, c) in rest.iter().enumerate() {
        let same = match (&first.preprocess, &c.preprocess) {
            (Some(a), Some(b)) => a == b,
            _ => first.data == c.data && first.tokenizer == c.tokenizer,
        };
        if !same {
            return Err(format!(
                "{}: its members trained on different data settings and read their inputs differently \
                 (member_0 and member_{}: {}), but one ONNX graph takes one input; export one member's folder \
                 ({}) or the best trial (`--model best` in the run folder)",
                dir.display(),
                i + 1,
                final_model::data_difference(&first.data, &c.data),
                dir.join("member_0").display()
            ));
        }
    }
    Ok(())
}

/// The ONNX model of `model` (see the module header), encoded.
pub fn onnx(model: &FinalModel, scaling: Option<&InputScaling>) -> Result<Vec<u8>, String> {
    let (first, _) = model.members.first().ok_or("the model has no members")?;
    let classification = first.task == Task::Classification;
    let (features, outputs) = (first.plan.in_features(), first.plan.out_features());
    for (m, _) in &model.members {
        if (m.plan.in_features(), m.plan.out_features()) != (features, outputs) || m.task != first.task {
            return Err("the ensemble's members do not share their inputs, outputs and task".into());
        }
    }
    let mut g = Graph::default();
    let input = match scaling {
        None => "input".to_string(),
        Some(s) => {
            if s.mean.len() != features || s.std.len() != features {
                return Err(format!(
                    "the input scaling has {} means and {} deviations for {features} features",
                    s.mean.len(),
                    s.std.len()
                ));
            }
            g.prefix = "scaling/".into();
            let mean = g.floats("mean", &[1, features], &s.mean);
            let std = g.floats("std", &[1, features], &s.std);
            let centred = g.sub("input", &mean);
            let scaled = g.node("Div", &[&centred, &std], vec![]);
            let missing = g.node("IsNaN", &["input"], vec![]);
            let zero = g.scalar(0.0);
            g.node("Where", &[&missing, &zero, &scaled], vec![])
        }
    };
    let single = model.members.len() == 1;
    let mut probs: Vec<(String, f64)> = Vec::new();
    for (k, (m, weight)) in model.members.iter().enumerate() {
        g.prefix = if single { String::new() } else { format!("m{k}/") };
        let raw = net::network(&mut g, &m.plan, &m.tensors(), &input)
            .map_err(|e| if single { e } else { format!("ensemble member {}: {e}", k + 1) })?;
        let out = match (classification, m.head()) {
            (true, Head::Softmax | Head::Sigmoid) => raw,
            (true, Head::Logits) if outputs == 1 => g.node("Sigmoid", &[&raw], vec![]),
            (true, Head::Logits) => g.node("Softmax", &[&raw], vec![int("axis", 1)]),
            (false, _) => {
                let std = g.scalar(m.target.std);
                let mean = g.scalar(m.target.mean);
                let scaled = g.mul(&raw, &std);
                g.add(&scaled, &mean)
            }
        };
        probs.push((out, *weight));
    }
    g.prefix = String::new();
    let weighted = |g: &mut Graph, parts: &[(String, f64)]| -> Option<String> {
        let mut acc: Option<String> = None;
        for (p, w) in parts {
            let term = if single {
                p.clone()
            } else {
                let w = g.scalar(*w as f32);
                g.mul(p, &w)
            };
            acc = Some(match acc {
                None => term,
                Some(a) => g.add(&a, &term),
            });
        }
        acc
    };
    let mut blended = weighted(&mut g, &probs);
    if model.vote && classification {
        // `average::vote`: each member's weight goes to its most probable class (the first
        // of equals; one sigmoid output votes for 1 at p ≥ 0.5), plus `VOTE_SMOOTHING` times
        // the weighted mean, over 1 + `VOTE_SMOOTHING`.
        let mut votes = Vec::new();
        for (p, w) in &probs {
            let hit = if outputs == 1 {
                let half = g.scalar(0.5);
                g.node("GreaterOrEqual", &[p, &half], vec![])
            } else {
                let top = g.node("ArgMax", &[p], vec![int("axis", 1), int("keepdims", 1)]);
                let classes: Vec<i64> = (0..outputs as i64).collect();
                let classes = g.ints(&classes);
                g.node("Equal", &[&top, &classes], vec![])
            };
            votes.push((g.node("Cast", &[&hit], vec![int("to", 1)]), *w));
        }
        let votes = weighted(&mut g, &votes);
        if let (Some(mean), Some(votes)) = (blended, votes) {
            let s = g.scalar(average::VOTE_SMOOTHING as f32);
            let sm = g.mul(&mean, &s);
            let sum = g.add(&votes, &sm);
            let d = g.scalar((1.0 + average::VOTE_SMOOTHING) as f32);
            blended = Some(g.node("Div", &[&sum, &d], vec![]));
        } else {
            blended = None;
        }
    }
    let last = blended.ok_or("the model has no members")?;
    g.node("Identity", &[&last], vec![]);
    if let Some(node) = g.nodes.last_mut() {
        node.output = vec!["output".into()];
    }
    let tensor = |name: &str, width: usize| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension { dim_value: None, dim_param: Some("N".into()) },
                        Dimension { dim_value: Some(width as i64), dim_param: None },
                    ],
                }),
            }),
        }),
    };
    let what = if classification { "probabilities" } else { "values" };
    let graph = GraphProto {
        node: g.nodes,
        name: "bma".into(),
        initializer: g.constants,
        doc_string: String::new(),
        input: vec![tensor("input", features)],
        output: vec![tensor("output", outputs)],
    };
    let meta = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
    let members = model.members.len();
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "bma".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "input: [N, {features}] float32 features{}; output: [N, {outputs}] {what}",
            if scaling.is_some() { " before standardisation" } else { " after bma's preprocessing" }
        ),
        graph: Some(graph),
        metadata_props: vec![
            meta("bma.task", if classification { "classification" } else { "regression" }.into()),
            meta("bma.output", what.into()),
            meta("bma.members", members.to_string()),
            meta("bma.input_scaled", scaling.is_some().to_string()),
        ],
    };
    Ok(model.encode_to_vec())
}

/// The standardisation fitted on the train split, as the model folder saved it
/// (`config.preprocess`, `model.json` format 2): the data is not read, so a folder whose
/// data was moved or deleted still folds it in. A folder saved before format 2 keeps no
/// preprocessing: its data is read for it, and an error says so when that fails.
pub fn input_scaling(config: &SavedConfig) -> Result<InputScaling, String> {
    if let Some(pre) = &config.preprocess {
        let (mean, std) = (0..pre.features()).map(|j| pre.scaling_of(j)).unzip();
        return Ok(InputScaling { mean, std });
    }
    let data = data::load_with(&config.data, &config.base, config.tokenizer.as_ref()).map_err(|e| {
        format!(
            "the model folder keeps no preprocessing (saved before format {}), and its data cannot be read \
             for the scaling: {e}",
            data::fitted::FORMAT
        )
    })?;
    Ok(InputScaling { mean: data.mean, std: data.std })
}

/// Test vectors: the first `n` rows of the model's test split (preprocessed as the model
/// reads them; unscaled again when `scaled_back`, for a graph with an [`InputScaling`]) and
/// bma's outputs for them, as an `.npz` holding `input.npy` and `output.npy` (float32).
pub fn samples(model: &FinalModel, config: &SavedConfig, n: usize, scaled_back: bool) -> Result<Vec<u8>, String> {
    let data = data::load_with(&config.data, &config.base, config.tokenizer.as_ref()).map_err(|e| e.to_string())?;
    for (m, _) in &model.members {
        train::check_fits(m, &data.info)?;
    }
    let features = data.info.features();
    let test = data.part(Part::Test);
    let rows: Vec<usize> = (0..n.min(test.n)).collect();
    if rows.is_empty() {
        return Err("the model's test split is empty: no samples to write".into());
    }
    let subset = test.subset(&rows, features).map_err(|e| e.to_string())?;
    let out = model.predict(&subset)?;
    let mut x = Vec::with_capacity(rows.len() * features);
    subset.gather(&(0..rows.len()).collect::<Vec<_>>(), features, &mut x).map_err(|e| e.to_string())?;
    if scaled_back {
        for row in x.chunks_mut(features.max(1)) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = *v * data.std[j] + data.mean[j];
            }
        }
    }
    let k = out.len() / rows.len();
    npz(&[("input", &[rows.len(), features], &x), ("output", &[rows.len(), k], &out)])
}

/// A `.npy` (version 1.0, little-endian float32, C order).
pub fn npy(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

type Array<'a> = (&'a str, &'a [usize], &'a [f32]);

/// An `.npz` (a zip of `.npy` files, stored) of named arrays.
pub fn npz(arrays: &[Array]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, shape, values) in arrays {
        zip.start_file(format!("{name}.npy"), options).map_err(|e| e.to_string())?;
        zip.write_all(&npy(shape, values)).map_err(|e| e.to_string())?;
    }
    zip.finish().map(|c| c.into_inner()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
