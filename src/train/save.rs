//! Saved models: `model.safetensors` (the weights) and `model.json` (what they mean).
//!
//! Takes a [`Model`] and the [`SavedConfig`] that produced it; writes a directory that
//! [`load`] and [`evaluate_saved`] read back ([`load_on`] and [`evaluate_saved_on`] onto a
//! given device). Weights are plain safetensors (little-endian
//! F32, tensors named `<layer>.weight`, `.bias`, `.running_mean`, `.running_var`), so
//! any safetensors reader (PyTorch, numpy) can open them; the format is written here
//! directly (a JSON header and raw bytes) rather than through burn-store.
//!
//! `model.json` also records the regression target's scaling the network trained with
//! (`data::TargetScale`; the identity when absent, as in a model saved before it existed)
//! and the data files the model trained on ([`SavedConfig::data_files`]); [`data_changes`]
//! tells what changed in them since, and [`check_fits`] refuses data whose shape is not the
//! model's.
//!
//! **Invariant:** a malformed or truncated file, or data that no longer fits the model,
//! is an error, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::config::{Loss, TrainConfig};
use super::metrics::Metrics;
use super::net::{Net, Plan, Tensors};
use super::{DeviceKind, Model, burn_device};
use crate::data::{self, Part};
use crate::ir::{DataInfo, Point, Task, Value};
use crate::rng::Rng;

/// What is needed to rebuild and re-evaluate a saved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedConfig {
    pub experiment: String,
    /// The `data = ...` value and the folder its paths are relative to.
    pub data: Value,
    /// Absolute (see [`crate::data::base_folder`]).
    pub base: PathBuf,
    /// The data files as they were when the model trained (none in a model saved by an
    /// older bma): [`data_changes`] compares them with the files now.
    #[serde(default)]
    pub data_files: Vec<data::Fingerprint>,
    pub point: Point,
    pub train: TrainConfig,
    /// Text data: the tokenizer fitted on the train split when the model trained; the
    /// model is evaluated with it, never with one fitted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<data::Tokenizer>,
    /// What turns a new input into the model's row and its outputs into answers (`bma
    /// predict`; none in a model saved before format 2, see [`data::fitted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<data::fitted::Preprocess>,
}

/// The format of the folder `model.json` (`"format"`) describes: 1 when absent (saved before
/// formats were numbered); see [`data::fitted::FORMAT`].
pub fn saved_format(dir: &Path) -> Result<u32, String> {
    manifest(dir).map(|m| m.format)
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    /// The folder's format ([`data::fitted::FORMAT`]); 1 in a folder saved before it was numbered.
    #[serde(default = "format_one")]
    format: u32,
    plan: Plan,
    classification: bool,
    loss: Loss,
    config: SavedConfig,
    /// The regression target's scaling (the identity in a model saved by an older bma, which
    /// trained on the raw target).
    #[serde(default)]
    target: data::TargetScale,
}

pub(super) fn save(model: &Model, dir: &Path, config: &SavedConfig) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("model.safetensors"), to_safetensors(&model.tensors()))?;
    let manifest = Manifest {
        format: data::fitted::FORMAT,
        plan: model.plan.clone(),
        classification: model.task == Task::Classification,
        loss: model.loss,
        config: config.clone(),
        target: model.target,
    };
    let json = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("model.json"), json)
}

fn format_one() -> u32 {
    1
}

fn manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join("model.json");
    let json = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The format first: a newer folder may not parse as this bma's manifest at all.
    #[derive(Deserialize)]
    struct Format {
        #[serde(default = "format_one")]
        format: u32,
    }
    if let Ok(Format { format }) = serde_json::from_str::<Format>(&json)
        && format > data::fitted::FORMAT
    {
        return Err(format!(
            "{}: saved by a newer bma (model folder format {format}; this bma reads formats 1 to {}): update bma",
            path.display(),
            data::fitted::FORMAT
        ));
    }
    serde_json::from_str(&json).map_err(|e| format!("{}: {e}", path.display()))
}

/// The config saved with the model in `dir` (its `model.json` only; the weights are not read).
pub fn load_config(dir: &Path) -> Result<SavedConfig, String> {
    manifest(dir).map(|m| m.config)
}

/// What changed in the data files `config`'s model trained on, one sentence per file
/// (see [`data::changes`]); empty when nothing did or the model recorded none.
pub fn data_changes(config: &SavedConfig) -> Vec<String> {
    data::changes(&config.data_files)
}

/// Whether `model` can be evaluated on data described by `info`: its inputs, outputs
/// and task must be the data's. Checked before any tensor is built, so that data that
/// changed under a saved model gives this error, not a panic inside burn.
pub fn check_fits(model: &Model, info: &DataInfo) -> Result<(), String> {
    let (inputs, outputs) = (model.plan.in_features(), model.plan.out_features());
    if model.task != info.task {
        return Err(format!(
            "the model was trained for {} but the data `{}` is now a {} task; its data changed since",
            task_name(model.task),
            info.name,
            task_name(info.task)
        ));
    }
    if inputs != info.features() || outputs != info.outputs() {
        let what = if info.task == Task::Classification { "classes" } else { "outputs" };
        return Err(format!(
            "the model takes {inputs} features and gives {outputs} {what}, but the data `{}` has {} features and {} {what}; \
             its data changed since the model was trained",
            info.name,
            info.features(),
            info.outputs()
        ));
    }
    Ok(())
}

fn task_name(task: Task) -> &'static str {
    match task {
        Task::Classification => "classification",
        Task::Regression => "regression",
    }
}

/// Reads a saved model directory onto the CPU.
pub fn load(dir: &Path) -> Result<(Model, SavedConfig), String> {
    load_on(dir, DeviceKind::Cpu)
}

/// Reads a saved model directory, its weights onto `kind`'s device.
pub fn load_on(dir: &Path, kind: DeviceKind) -> Result<(Model, SavedConfig), String> {
    let m = manifest(dir)?;
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tensors = from_safetensors(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let device: Device = burn_device(kind)?;
    let net = Net::init(&m.plan, m.config.train.init, &mut Rng::new(0), &device)
        .load_tensors(&m.plan, &tensors, &device)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let task = if m.classification { Task::Classification } else { Task::Regression };
    Ok((Model { net, plan: m.plan, task, loss: m.loss, device: kind, target: m.target }, m.config))
}

/// Reloads the model saved in `dir` and its dataset, and evaluates it on `split`.
pub fn evaluate_saved(dir: &Path, split: Part) -> Result<Metrics, String> {
    evaluate_saved_on(dir, split, DeviceKind::Cpu)
}

/// [`evaluate_saved`] with the model on `kind`'s device.
pub fn evaluate_saved_on(dir: &Path, split: Part, kind: DeviceKind) -> Result<Metrics, String> {
    let (model, config) = load_on(dir, kind)?;
    let data = data::load_with(&config.data, &config.base, config.tokenizer.as_ref()).map_err(|e| e.to_string())?;
    check_fits(&model, &data.info)?;
    model.evaluate(data.part(split), &data.info)
}

/// The safetensors encoding of named F32 tensors.
pub fn to_safetensors(tensors: &Tensors) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let end = offset + 4 * values.len();
        header
            .insert(name.clone(), serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }));
        offset = end;
    }
    header.insert("__metadata__".into(), serde_json::json!({ "format": "bma" }));
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    // The data must start 8-byte aligned.
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + offset);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for (_, _, values) in tensors {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Decodes safetensors holding F32 tensors.
pub fn from_safetensors(bytes: &[u8]) -> Result<Tensors, String> {
    let len = bytes.get(..8).ok_or("truncated safetensors header")?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| "bad header")?) as usize;
    let header = bytes.get(8..8usize.saturating_add(len)).ok_or("truncated safetensors header")?;
    let body = &bytes[8 + len..];
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        if info.get("dtype").and_then(|d| d.as_str()) != Some("F32") {
            return Err(format!("tensor `{name}` is not F32"));
        }
        let shape: Vec<usize> = serde_json::from_value(info.get("shape").cloned().unwrap_or_default())
            .map_err(|e| format!("`{name}`: {e}"))?;
        let offs: [usize; 2] = serde_json::from_value(info.get("data_offsets").cloned().unwrap_or_default())
            .map_err(|e| format!("`{name}`: {e}"))?;
        let raw = body.get(offs[0]..offs[1]).ok_or_else(|| format!("tensor `{name}` lies outside the file"))?;
        if raw.len() != 4 * shape.iter().product::<usize>() {
            return Err(format!("tensor `{name}` has {} bytes for shape {shape:?}", raw.len()));
        }
        let values = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.push((name, shape, values));
    }
    Ok(out)
}
