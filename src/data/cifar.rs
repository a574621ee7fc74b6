//! CIFAR binary batches: `cifar(dir, part: train | test, label: fine | coarse)`.
//!
//! Takes the folder of the "binary version" of CIFAR-10 (`data_batch_1.bin` ...
//! `data_batch_5.bin`, `test_batch.bin`: records of 1 label byte and 3,072 pixel bytes) or
//! CIFAR-100 (`train.bin`, `test.bin`: records of a coarse and a fine label byte and 3,072
//! pixel bytes); the folder may also be the one that holds `cifar-10-batches-bin` or
//! `cifar-100-binary`. `part: train` (default) reads the training batches (the CIFAR-10
//! batches present, from 1 on), `part: test` the official test batch. Gives [`Raw`]
//! samples `[3, 32, 32]` with values in [0, 1]; 10 classes (CIFAR-10), 100 (`label: fine`,
//! the default) or 20 (`label: coarse`) for CIFAR-100. Class names come from
//! `batches.meta.txt`, `fine_label_names.txt` or `coarse_label_names.txt` when present.
//!
//! The pixels are kept as bytes, in memory or, with `stream: true`, in a cache file
//! (`data::cache`), both read [`cache::CHUNK_ROWS`] records at a time.
//!
//! The checker ([`describe`]) reads the folder listing and the batch files' sizes only.
//!
//! **Invariants:** [`describe`] and [`load`] give the same [`DataInfo`]; a batch that is not
//! a whole number of records says how many bytes were expected and found; a label byte out
//! of range names the file and record; nothing panics.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ArgError, DataError, Extras, Raw, cache};
use crate::ir::{CallValue, DataInfo, Task, Value};

const PIXELS: usize = 3 * 32 * 32;

/// The arguments of a `cifar(...)` call.
#[derive(Debug, Clone, PartialEq)]
pub struct CifarSpec {
    pub dir: PathBuf,
    pub test: bool,
    pub coarse: bool,
}

impl CifarSpec {
    /// Reads the arguments of `call` (relative paths from `base`).
    pub fn from_call(call: &CallValue, base: &Path) -> Result<CifarSpec, ArgError> {
        let bad = |arg: &'static str, message: String| ArgError { arg, message };
        let dir = match call.arg("dir", 0) {
            Some(Value::Str(s)) => base.join(s),
            Some(v) => return Err(bad("dir", format!("`dir` must be a string path, not a {}", v.type_name()))),
            None => return Err(bad("dir", "`cifar` needs the folder of the binary batches as `dir`".into())),
        };
        let test = match call.arg("part", usize::MAX).map(|v| (v, v.as_sym())) {
            None | Some((_, Some("train"))) => false,
            Some((_, Some("test"))) => true,
            Some((v, _)) => return Err(bad("part", format!("`part` is `train` or `test`, not `{v}`"))),
        };
        let coarse = match call.arg("label", usize::MAX).map(|v| (v, v.as_sym())) {
            None | Some((_, Some("fine"))) => false,
            Some((_, Some("coarse"))) => true,
            Some((v, _)) => return Err(bad("label", format!("`label` is `fine` or `coarse`, not `{v}`"))),
        };
        Ok(CifarSpec { dir, test, coarse })
    }
}

/// Which CIFAR and which files.
struct Layout {
    hundred: bool,
    files: Vec<PathBuf>,
    names_file: PathBuf,
}

impl Layout {
    fn record(&self) -> usize {
        PIXELS + if self.hundred { 2 } else { 1 }
    }
}

fn layout(spec: &CifarSpec) -> Result<Layout, DataError> {
    let mut dir = spec.dir.clone();
    for sub in ["cifar-10-batches-bin", "cifar-100-binary"] {
        if dir.join(sub).is_dir() {
            dir = dir.join(sub);
        }
    }
    if !dir.is_dir() {
        return Err(DataError::at(&dir, None, "not a folder: `cifar` reads the folder of the binary batches"));
    }
    let ten = dir.join("data_batch_1.bin").is_file() || dir.join("test_batch.bin").is_file();
    let hundred = dir.join("train.bin").is_file() || dir.join("test.bin").is_file();
    let files = match (ten, hundred, spec.test) {
        (true, _, false) => {
            (1..=5).map(|i| dir.join(format!("data_batch_{i}.bin"))).take_while(|p| p.is_file()).collect()
        }
        (true, _, true) => vec![dir.join("test_batch.bin")],
        (false, true, false) => vec![dir.join("train.bin")],
        (false, true, true) => vec![dir.join("test.bin")],
        (false, false, _) => {
            return Err(DataError::at(
                &dir,
                None,
                "no CIFAR batches here: CIFAR-10 has data_batch_1.bin ... data_batch_5.bin and test_batch.bin, \
                 CIFAR-100 train.bin and test.bin (the binary versions)",
            ));
        }
    };
    if ten && spec.coarse {
        return Err(DataError::at(&dir, None, "CIFAR-10 has one label per image: `label: coarse` is for CIFAR-100"));
    }
    let part = if spec.test { "test" } else { "training" };
    match files.first() {
        None => Err(DataError::at(&dir, None, format!("no {part} batch (data_batch_1.bin)"))),
        Some(f) if !f.is_file() => Err(DataError::at(f, None, format!("the {part} batch is missing"))),
        _ => {
            let names_file = dir.join(match (ten, spec.coarse) {
                (true, _) => "batches.meta.txt",
                (false, true) => "coarse_label_names.txt",
                (false, false) => "fine_label_names.txt",
            });
            Ok(Layout { hundred: !ten, files, names_file })
        }
    }
}

fn classes(spec: &CifarSpec, l: &Layout) -> usize {
    match (l.hundred, spec.coarse) {
        (false, _) => 10,
        (true, true) => 20,
        (true, false) => 100,
    }
}

/// Checks a batch's size: a whole, non-zero number of records.
fn records(path: &Path, len: u64, record: usize) -> Result<usize, DataError> {
    let r = record as u64;
    if len == 0 {
        return Err(DataError::at(path, None, "the batch is empty"));
    }
    if !len.is_multiple_of(r) {
        let whole = len / r + 1;
        return Err(DataError::at(
            path,
            None,
            format!(
                "the batch is cut short: {} bytes expected ({whole} records of {record} bytes), {len} found",
                whole * r
            ),
        ));
    }
    Ok((len / r) as usize)
}

/// The shape and classes of a CIFAR source, and its class names, from file sizes only.
pub fn describe(spec: &CifarSpec) -> Result<(DataInfo, Vec<String>), DataError> {
    let l = layout(spec)?;
    for f in &l.files {
        let len = std::fs::metadata(f).map_err(|e| DataError::at(f, None, format!("cannot read: {e}")))?.len();
        records(f, len, l.record())?;
    }
    let k = classes(spec, &l);
    let names = std::fs::read_to_string(&l.names_file)
        .map(|t| t.lines().map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect::<Vec<_>>())
        .ok()
        .filter(|n| n.len() == k)
        .unwrap_or_default();
    let name = format!("cifar({}{})", spec.dir.display(), if spec.test { ", test" } else { "" });
    Ok((DataInfo { name, shape: vec![3, 32, 32], classes: k, task: Task::Classification, vocab: None }, names))
}

/// Loads the batches `spec` names, the pixels kept as bytes in memory (a quarter of their
/// f32 values; `data::cache::in_memory`).
pub(super) fn load(spec: &CifarSpec) -> Result<Raw, DataError> {
    let (info, class_names) = describe(spec)?;
    cache::in_memory(cache::Elem::Unit, info.clone(), |w| append(spec, &info, class_names, w))
}

/// [`load`] into a dataset cache (`stream: true`, see `data::cache`): read and appended
/// [`cache::CHUNK_ROWS`] records at a time, never held whole.
pub(super) fn load_streamed(
    call: &CallValue,
    base: &Path,
    spec: &CifarSpec,
    stream: &cache::StreamSpec,
) -> Result<Raw, DataError> {
    let (info, class_names) = describe(spec)?;
    cache::open_or_build(call, base, stream, cache::Elem::Unit, info.clone(), |w| append(spec, &info, class_names, w))
}

/// Reads every record of the batches, [`cache::CHUNK_ROWS`] at a time, and appends its
/// pixels to `w`: what both [`load`] and [`load_streamed`] store.
fn append(
    spec: &CifarSpec,
    info: &DataInfo,
    class_names: Vec<String>,
    w: &mut cache::Writer,
) -> Result<cache::Built, DataError> {
    let l = layout(spec)?;
    let record = l.record();
    let mut y = Vec::new();
    let mut chunk = vec![0u8; cache::CHUNK_ROWS * record];
    let mut pixels = Vec::with_capacity(cache::CHUNK_ROWS * PIXELS);
    for f in &l.files {
        let io = |e: std::io::Error| DataError::at(f, None, format!("cannot read: {e}"));
        let mut file = std::fs::File::open(f).map_err(io)?;
        let n = records(f, file.metadata().map_err(io)?.len(), record)?;
        let mut done = 0;
        while done < n {
            let k = (n - done).min(cache::CHUNK_ROWS);
            file.read_exact(&mut chunk[..k * record]).map_err(io)?;
            pixels.clear();
            for (i, r) in chunk[..k * record].chunks_exact(record).enumerate() {
                let label = if l.hundred && !spec.coarse { r[1] } else { r[0] };
                if usize::from(label) >= info.classes {
                    return Err(DataError::at(
                        f,
                        None,
                        format!("record {}: label {label} is not one of the {} classes", done + i, info.classes),
                    ));
                }
                y.push(f32::from(label));
                pixels.extend_from_slice(&r[record - PIXELS..]);
            }
            w.rows(&pixels)?;
            done += k;
        }
    }
    Ok((y, Extras { class_names, ..Extras::default() }))
}

/// The batch files a CIFAR source reads (none when the folder is not one).
pub(super) fn files(spec: &CifarSpec) -> Vec<PathBuf> {
    layout(spec).map(|l| l.files).unwrap_or_default()
}
