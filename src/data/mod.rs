//! Data: the samples a `data = ...` setting names, split and standardised for training.
//!
//! Takes the evaluated data value of an experiment (`digits(split: [...], seed: 1)`,
//! `csv("f.csv", target: "y")`, `synthetic.moons(n: 500)`, ...) and the folder of the
//! `.bma` file; gives a [`Dataset`]: train, valid and test [`Split`]s of `f32` rows.
//!
//! **Invariants:**
//! - the [`ir::DataInfo`] of a loaded dataset equals what `check::data::describe` found for
//!   the same value (shape, classes, task), so a checked model fits the data it trains on;
//!   the checker reads CSV and IDX headers with this module's readers ([`csv_columns`],
//!   [`idx_dims`]), never its own;
//! - the split is stratified by class (classification) and deterministic for a seed;
//! - standardisation, missing-value imputation and the regression target's scaling
//!   ([`TargetScale`]) are fitted on the train split only;
//! - nothing in a data file can panic: bad files give a [`DataError`] naming file and line.
//!
//! With `stream: true` (images, IDX, CIFAR, NumPy, audio) the samples stay on disk in a
//! cache file and a split is an index list into it, read a batch at a time with
//! [`Split::gather`] (see `cache`). Image-like sources in memory (images, IDX and NumPy
//! bytes, CIFAR) are kept the same way, as bytes in memory instead of a file: a quarter of
//! the f32 values, converted and standardised per batch, with the same values.
//!
//! `files` gives the absolute folder relative paths are read from ([`base_folder`]) and
//! [`Fingerprint`]s of the files a data value reads, so that a study and a saved model
//! notice when a file changed under them.

mod audio;
mod audio_features;
mod builtin;
mod cache;
mod cifar;
pub mod csv;
mod files;
pub mod fitted;
mod idx;
mod images;
mod npy;
mod synthetic;
mod text;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::catalogue;
use crate::diagnostic::escape;
use crate::ir::{DataInfo, Task, Value};
use crate::rng::Rng;

pub use audio::{
    AUDIO_MAX_BINS, AUDIO_MAX_RATE, AUDIO_MAX_SECONDS, AUDIO_MAX_WINDOW_MS, AudioArgError, AudioListing, AudioSpec,
    Features as AudioFeatures, Frames as AudioFrames, WavHeader, audio_listing, audio_spec, frame_count, wav_header,
};
pub use audio_features::{dct, hz_to_mel, log_mel, mel_filterbank, mel_to_hz};
pub use builtin::BUILTIN;
pub use cache::{CACHE_DIR, Cache, Rows as StoredRows, StreamSpec, stream_spec};
pub use cifar::{CifarSpec, describe as cifar_describe};
pub use csv::{
    Record, RecordError, csv_columns, csv_records, csv_records_with, csv_text, delimiter_hint, is_missing, single_class,
};
pub use files::{Fingerprint, absolute, base_folder, changes, files, fingerprints};
pub use idx::{IdxError, idx_dims, idx_read, idx_roles, single_label};
pub use images::{ArgError, IMAGE_EXTENSIONS, ImageSpec, describe as images_describe};
pub use npy::{Arrays, NpySpec, describe as npy_describe, parse_header as npy_header};
pub use synthetic::{SYNTHETIC_MAX_N, SYNTHETIC_MAX_NOISE};
pub use text::Tokenizer;
/// The text source's parts the checker reads (`check::data` describes `text(...)` with them).
pub mod text_source {
    pub use super::text::{
        ArgError, Kind, Rows, RowsError, Spec, TOKENIZER_ARGS, classes, describe, fixed_labels, fixed_spec, info,
        read_labels, read_rows, spec,
    };
}

/// One part of a dataset: `n` rows of `features` values, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    /// The rows as f32, when they are kept so (empty when `stored`).
    pub x: Vec<f32>,
    /// The class index (classification) or the target value (regression), per row.
    pub y: Vec<f32>,
    pub n: usize,
    /// A stored split's rows: bytes (or f32) in a cache file (`stream: true`) or in memory
    /// (image-like sources), read and scaled a batch at a time.
    pub stored: Option<cache::Rows>,
}

impl Split {
    /// Row `i` of `x` (an in-memory split; [`Split::gather`] reads either kind).
    pub fn row(&self, i: usize, features: usize) -> &[f32] {
        &self.x[i * features..(i + 1) * features]
    }

    /// Appends rows `rows` to `out`, from memory or from the cache file: the same values
    /// either way.
    pub fn gather(&self, rows: &[usize], features: usize, out: &mut Vec<f32>) -> Result<(), DataError> {
        match &self.stored {
            Some(s) => s.gather(rows, out),
            None => {
                out.reserve(rows.len() * features);
                for &i in rows {
                    let row = self.x.get(i * features..(i + 1) * features).ok_or_else(|| {
                        DataError::new(format!("row {i} of a split of {} rows of {features}", self.n))
                    })?;
                    out.extend_from_slice(row);
                }
                Ok(())
            }
        }
    }

    /// Rows `rows` of this split (a stored split stays stored: only its index is copied).
    pub fn subset(&self, rows: &[usize], features: usize) -> Result<Split, DataError> {
        let y = rows.iter().map(|&i| self.y.get(i).copied().unwrap_or(f32::NAN)).collect();
        if let Some(s) = &self.stored {
            return Ok(Split { x: Vec::new(), y, n: rows.len(), stored: Some(s.subset(rows)) });
        }
        let mut x = Vec::new();
        self.gather(rows, features, &mut x)?;
        Ok(Split { x, y, n: rows.len(), stored: None })
    }
}

/// Which split to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Train,
    Valid,
    Test,
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Part, String> {
        match s {
            "train" => Ok(Part::Train),
            "valid" => Ok(Part::Valid),
            "test" => Ok(Part::Test),
            other => Err(format!("unknown split `{other}` (train, valid or test)")),
        }
    }
}

/// A loaded, split and standardised dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub info: DataInfo,
    pub train: Split,
    pub valid: Split,
    pub test: Split,
    /// What was subtracted and divided per feature (fitted on train).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// The regression target's standardisation (fitted on train; the identity for
    /// classification). The splits keep `y` in the target's own units: a model trains on
    /// `target.apply(y)` and its outputs are `target.invert`ed before anything measures or
    /// shows them.
    pub target: TargetScale,
    pub extras: Extras,
    /// Text data: the tokenizer fitted on the train split (saved with a model).
    pub tokenizer: Option<Tokenizer>,
    /// How one new input becomes a raw row (set by [`load_with`]; saved with a model as
    /// part of [`fitted::Preprocess`]).
    pub input: Option<fitted::Input>,
}

/// A regression target's standardisation, `(y - mean) / std`: a network's weights start
/// near unit scale, and a target of order 1e5 would otherwise take the whole training to
/// reach, while its squared errors swamp the optimiser's steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetScale {
    pub mean: f32,
    pub std: f32,
}

impl Default for TargetScale {
    /// The identity.
    fn default() -> TargetScale {
        TargetScale { mean: 0.0, std: 1.0 }
    }
}

impl TargetScale {
    /// Mean and deviation of `y` (a constant target: deviation 1).
    pub fn fit(y: impl Iterator<Item = f32>) -> TargetScale {
        let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
        for v in y {
            n += 1.0;
            sum += f64::from(v);
            sq += f64::from(v) * f64::from(v);
        }
        if n == 0.0 {
            return TargetScale::default();
        }
        let mean = sum / n;
        let sd = (sq / n - mean * mean).max(0.0).sqrt();
        TargetScale { mean: mean as f32, std: if sd > 1e-8 * mean.abs().max(1.0) { sd as f32 } else { 1.0 } }
    }

    /// A target value in the scale the model trains on.
    pub fn apply(&self, y: f32) -> f32 {
        (y - self.mean) / self.std
    }

    /// A model output back in the target's own units.
    pub fn invert(&self, z: f32) -> f32 {
        z * self.std + self.mean
    }
}

impl Dataset {
    pub fn features(&self) -> usize {
        self.info.features()
    }

    pub fn part(&self, part: Part) -> &Split {
        match part {
            Part::Train => &self.train,
            Part::Valid => &self.valid,
            Part::Test => &self.test,
        }
    }
}

/// Samples before splitting: `x` may hold NaN for missing numeric values.
#[derive(Debug, Clone)]
pub struct Raw {
    pub info: DataInfo,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub extras: Extras,
    /// Stored samples: a streamed source's cache file (`stream: true`), or an image-like
    /// source's bytes in memory (images, IDX and NumPy `u1` bytes, CIFAR); `x` is then empty.
    pub stored: Option<std::sync::Arc<cache::Cache>>,
}

/// What a loader knows beyond the samples (empty for most sources).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// The name of each class index, where the source names them (image class folders,
    /// CIFAR's label files); empty otherwise.
    pub class_names: Vec<String>,
    /// Sentences for the user about the load (samples `skip_bad` left out).
    pub notes: Vec<String>,
    /// How many samples `skip_bad: true` left out.
    pub skipped: usize,
}

/// What `skip_bad: true` left out of the rows of a file (`(line, why)` each, `kept` rows
/// left), as a sentence for the user; `None` when nothing was.
pub(crate) fn skipped_rows_note(path: &Path, skipped: &[(usize, String)], kept: usize) -> Option<String> {
    let (line, why) = skipped.first()?;
    Some(format!(
        "{}: skipped {} bad row(s) of {} (skip_bad: true); the first: line {line}: {why}",
        path.display(),
        skipped.len(),
        kept + skipped.len()
    ))
}

impl Raw {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Every sample's values, unscaled, as f32 (from `x` or the stored samples).
    pub fn values(&self) -> Result<Vec<f32>, DataError> {
        match &self.stored {
            None => Ok(self.x.clone()),
            Some(c) => {
                let mut out = Vec::with_capacity(c.len() * c.features());
                c.read_rows(&(0..c.len()).collect::<Vec<_>>(), &mut Vec::new(), &mut out)?;
                Ok(out)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// A data file or data value that cannot be used, with where.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    pub path: Option<PathBuf>,
    /// 1-based line of the file.
    pub line: Option<usize>,
    pub message: String,
}

impl DataError {
    pub(crate) fn new(message: impl Into<String>) -> DataError {
        DataError { path: None, line: None, message: message.into() }
    }

    pub(crate) fn at(path: &Path, line: Option<usize>, message: impl Into<String>) -> DataError {
        DataError { path: Some(path.to_path_buf()), line, message: message.into() }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A data file's text (a column name, a value, its path) reaches the terminal escaped.
        let message = escape(&self.message);
        match (&self.path, self.line) {
            (Some(p), Some(l)) => write!(f, "{}:{l}: {message}", escape(&p.display().to_string())),
            (Some(p), None) => write!(f, "{}: {message}", escape(&p.display().to_string())),
            _ => f.write_str(&message),
        }
    }
}

impl std::error::Error for DataError {}

/// The default `split:` fractions: train, valid, test.
pub const DEFAULT_SPLIT: [f64; 3] = [0.7, 0.15, 0.15];

/// The default `split:` of a source with one fixed split (`test:` or `valid:`): the two
/// parts it still carves, in the order train, then the other one.
pub const DEFAULT_SPLIT_FIXED: [f64; 2] = [0.85, 0.15];

/// The arguments every data source takes to name a split's own files: `test: <source>`,
/// `valid: <source>` (`catalogue::FIXED_SPLITS`).
pub const FIXED_PARTS: [&str; 2] = ["test", "valid"];

/// What `split:` must be for a source with these fixed parts, as a sentence; `None` when
/// both are fixed and there is nothing to split.
pub fn split_rule(valid_fixed: bool, test_fixed: bool) -> Option<&'static str> {
    match (valid_fixed, test_fixed) {
        (false, false) => Some("three fractions: train, valid, test"),
        (false, true) => Some("two fractions, train and valid: `test:` names the test split's own source"),
        (true, false) => Some("two fractions, train and test: `valid:` names the valid split's own source"),
        (true, true) => None,
    }
}

/// Loads, splits and standardises the dataset a data value names. `base` is the folder
/// that relative paths are read from (the `.bma` file's).
///
/// `test: <source>` and `valid: <source>` (any data value, without splits of its own) give
/// those splits their own samples; `split:` then carves only the parts left (see
/// [`split_rule`]), and with both the main source is all train.
pub fn load(value: &Value, base: &Path) -> Result<Dataset, DataError> {
    load_with(value, base, None)
}

/// [`load`], with the tokenizer a saved model kept (text data only; `None` fits one on
/// the train split).
pub fn load_with(value: &Value, base: &Path, tokenizer: Option<&Tokenizer>) -> Result<Dataset, DataError> {
    let call = match value {
        Value::Call(c) => Some(c),
        _ => None,
    };
    let arg = |k: &str| call.and_then(|c| c.arg(k, usize::MAX));
    if let Some(c) = call
        && catalogue::kind(catalogue::DATASETS, &c.name) == Some(catalogue::Dataset::Text)
    {
        let fixed = [arg("valid"), arg("test")];
        for (nested, part) in fixed.iter().zip(["valid", "test"]) {
            if let Some(own) = nested.and_then(nested_split_arg) {
                return Err(DataError::new(format!("the `{part}:` source takes no `{own}`: it is one split, whole")));
            }
        }
        let (valid_fixed, test_fixed) = (fixed[0].is_some(), fixed[1].is_some());
        let fractions = fractions(arg("split"), valid_fixed, test_fixed)?;
        let seed = arg("seed").and_then(Value::as_i64).unwrap_or(0) as u64;
        // Text is split first, then tokenized with a vocabulary fitted on train alone.
        let mut data = text::load(c, base, tokenizer, fixed, |y, info| {
            split_indices_fixed(y, info, fractions, seed, valid_fixed, test_fixed)
        })?;
        data.input = data.tokenizer.as_ref().and_then(|t| fitted::text_input(c, base, t));
        return Ok(data);
    }
    let (raw, input) = fitted::load_raw(value, base)?;
    let fixed_part = |part: &str| -> Result<Option<Raw>, DataError> {
        let Some(nested) = arg(part) else { return Ok(None) };
        if let Some(own) = nested_split_arg(nested) {
            return Err(DataError::new(format!("the `{part}:` source takes no `{own}`: it is one split, whole")));
        }
        let other =
            load_raw(nested, base).map_err(|e| DataError { message: format!("`{part}:` {}", e.message), ..e })?;
        compatible(&raw.info, &other.info, part).map_err(DataError::new)?;
        same_classes(&raw.extras.class_names, &other.extras.class_names, part, &other.info.name)
            .map_err(DataError::new)?;
        Ok(Some(other))
    };
    let fixed = Fixed { valid: fixed_part("valid")?, test: fixed_part("test")? };
    let fractions = fractions(arg("split"), fixed.valid.is_some(), fixed.test.is_some())?;
    let seed = arg("seed").and_then(Value::as_i64).unwrap_or(0) as u64;
    let mut data = split_with(raw, fixed, fractions, seed)?;
    data.input = input;
    Ok(data)
}

/// The train, valid and test fractions of `split` (`None`: the default) for a source whose
/// valid and test parts may have their own sources (see [`split_rule`]); a fixed part's is 0.
fn fractions(split: Option<&Value>, valid_fixed: bool, test_fixed: bool) -> Result<[f64; 3], DataError> {
    let rule = split_rule(valid_fixed, test_fixed);
    Ok(match (split, rule) {
        (Some(_), None) => {
            return Err(DataError::new(
                "with both `test:` and `valid:` the source is all train: `split` has nothing to split",
            ));
        }
        (Some(Value::List(items)), Some(rule)) => {
            let f: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
            let positive = f.len() == items.len() && f.iter().all(|x| *x > 0.0);
            match (f.as_slice(), valid_fixed, test_fixed) {
                ([a, b, c], false, false) if positive => [*a, *b, *c],
                ([a, b], false, true) if positive => [*a, *b, 0.0],
                ([a, c], true, false) if positive => [*a, 0.0, *c],
                _ => return Err(DataError::new(format!("`split` needs {rule}, each positive"))),
            }
        }
        (Some(_), Some(rule)) => return Err(DataError::new(format!("`split` is a list of {rule}"))),
        (None, _) => match (valid_fixed, test_fixed) {
            (false, false) => DEFAULT_SPLIT,
            (false, true) => [DEFAULT_SPLIT_FIXED[0], DEFAULT_SPLIT_FIXED[1], 0.0],
            (true, false) => [DEFAULT_SPLIT_FIXED[0], 0.0, DEFAULT_SPLIT_FIXED[1]],
            (true, true) => [1.0, 0.0, 0.0],
        },
    })
}

/// Why a split's own source (`part`) cannot stand beside the main source although its
/// class count fits: both name their classes (class folders, label files, CSV or text
/// labels) and the names differ, which would silently mislabel every sample. Sources that
/// do not name their classes (empty) pass. `name` is the split's own source's
/// (`DataInfo::name`, its path). The checker's and the loader's one rule.
pub fn same_classes(mine: &[String], theirs: &[String], part: &str, name: &str) -> Result<(), String> {
    if mine.is_empty() || theirs.is_empty() || mine == theirs {
        return Ok(());
    }
    let odd = match theirs.iter().find(|c| !mine.contains(c)) {
        Some(c) => format!(": `{c}` is a class of {name}, not of the training source"),
        None => match mine.iter().find(|c| !theirs.contains(c)) {
            Some(c) => format!(": `{c}` is a class of the training source, not of {name}"),
            None => String::new(),
        },
    };
    Err(format!("the `{part}:` source's classes are not the training source's{odd}"))
}

/// The argument of a split's own source that only the main source may have (`split`,
/// `test`, `valid`), if it has one. (`seed` is allowed: a generator's seed there.)
pub fn nested_split_arg(nested: &Value) -> Option<&'static str> {
    let Value::Call(c) = nested else { return None };
    ["split", "test", "valid"].into_iter().find(|k| c.arg(k, usize::MAX).is_some())
}

/// Why a split's own source (`part`: `test` or `valid`) cannot stand beside the main
/// source: another sample shape, task, or number of classes (class `i` must mean the same
/// in both). The checker's and the loader's one rule.
pub fn compatible(main: &DataInfo, other: &DataInfo, part: &str) -> Result<(), String> {
    let show = |s: &[usize]| format!("[{}]", s.iter().map(usize::to_string).collect::<Vec<_>>().join(", "));
    if other.shape != main.shape {
        return Err(format!(
            "the `{part}:` source's samples are {}, the training source's {}",
            show(&other.shape),
            show(&main.shape)
        ));
    }
    if other.task != main.task {
        let task = |t: Task| if t == Task::Classification { "classification" } else { "regression" };
        return Err(format!("the `{part}:` source is {}, the training source {}", task(other.task), task(main.task)));
    }
    if main.task == Task::Classification && other.classes != main.classes {
        let lacking = if other.classes > main.classes {
            format!(": the training source has no class {}", other.classes - 1)
        } else {
            String::new()
        };
        return Err(format!(
            "the `{part}:` source has {} classes, the training source {}{lacking}",
            other.classes, main.classes
        ));
    }
    Ok(())
}

/// The splits that have their own samples (`test:`, `valid:`) instead of a share of the
/// main source's.
#[derive(Debug, Default)]
pub struct Fixed {
    pub valid: Option<Raw>,
    pub test: Option<Raw>,
}

/// Loads the samples a data value names, without splitting.
pub fn load_raw(value: &Value, base: &Path) -> Result<Raw, DataError> {
    use catalogue::Dataset as Kind;
    let (name, call) = match value {
        Value::Sym(s) => (s.sym.as_str(), None),
        Value::Call(c) => (c.name.as_str(), Some(c)),
        other => return Err(DataError::new(format!("`data` must name a dataset, not a {}", other.type_name()))),
    };
    let arg = |k: &str, pos: usize| call.and_then(|c| c.arg(k, pos));
    let path = |k: &str, pos: usize| match arg(k, pos) {
        Some(Value::Str(s)) => Ok(base.join(s)),
        _ => Err(DataError::new(format!("`{name}` needs a string path for `{k}`"))),
    };
    let int = |k: &str, default: i64| arg(k, usize::MAX).and_then(Value::as_i64).unwrap_or(default);
    let float = |k: &str, default: f64| arg(k, usize::MAX).and_then(Value::as_f64).unwrap_or(default);
    let Some(kind) = catalogue::kind(catalogue::DATASETS, name) else {
        return Err(DataError::new(format!("unknown dataset `{name}`")));
    };
    match kind {
        Kind::Digits | Kind::Iris | Kind::Wine | Kind::BreastCancer => builtin::load(name),
        Kind::Csv => {
            let opts = csv::options(call).map_err(|(_, e)| DataError::new(e))?;
            csv::load(&path("path", 0)?, &opts)
        }
        Kind::Idx | Kind::Images => match (kind, stream_of(call, base)?) {
            (Kind::Idx, None) => idx::load(&path("images", 0)?, &path("labels", 1)?),
            (Kind::Idx, Some(s)) => {
                idx::load_streamed(call_of(call, name)?, base, &path("images", 0)?, &path("labels", 1)?, &s)
            }
            (_, stream) => {
                let spec = ImageSpec::from_call(call_of(call, name)?, base).map_err(arg_error)?;
                match stream {
                    Some(s) => images::load_streamed(call_of(call, name)?, base, &spec, &s),
                    None => images::load(&spec),
                }
            }
        },
        Kind::Cifar => {
            let spec = CifarSpec::from_call(call_of(call, name)?, base).map_err(arg_error)?;
            match stream_of(call, base)? {
                Some(s) => cifar::load_streamed(call_of(call, name)?, base, &spec, &s),
                None => cifar::load(&spec),
            }
        }
        Kind::Npy | Kind::Npz => {
            let spec = NpySpec::from_call(call_of(call, name)?, base).map_err(arg_error)?;
            match stream_of(call, base)? {
                Some(s) => npy::load_streamed(call_of(call, name)?, base, &spec, &s),
                None => npy::load(&spec),
            }
        }
        Kind::Text => Err(DataError::new("text is tokenized after the split: load it with `data::load`")),
        Kind::Audio => {
            if let Some(s) = stream_of(call, base)? {
                let c = call_of(call, name)?;
                return audio::load_streamed(c, base, &audio_spec(c, base).map_err(|e| DataError::new(e.message))?, &s);
            }
            let (mut raw, skipped) = load_audio(value, base)?;
            let kept = raw.len();
            note_skipped_clips(&mut raw.extras, &skipped, kept);
            Ok(raw)
        }
        Kind::Spirals | Kind::Moons | Kind::Circles | Kind::Sine => {
            let spec = synthetic::Spec {
                n: int("n", 1000).max(0) as usize,
                noise: float("noise", 0.1),
                seed: int("seed", 0) as u64,
                classes: int("classes", 2).max(2) as usize,
            };
            synthetic::generate(name.strip_prefix("synthetic.").unwrap_or(name), &spec)
        }
    }
}

/// The note and count of the clips `skip_bad: true` left out (`kept` clips loaded).
fn note_skipped_clips(extras: &mut Extras, skipped: &[(PathBuf, String)], kept: usize) {
    if let Some((first, why)) = skipped.first() {
        extras.skipped = skipped.len();
        extras.notes.push(format!(
            "`skip_bad`: skipped {} bad clip(s) of {} (the first: {}: {why})",
            skipped.len(),
            skipped.len() + kept,
            first.display()
        ));
    }
}

fn call_of<'v>(call: Option<&'v crate::ir::CallValue>, name: &str) -> Result<&'v crate::ir::CallValue, DataError> {
    call.ok_or_else(|| DataError::new(format!("`{name}` needs arguments: `{name}(...)`")))
}

/// The `stream:` settings of a call (`None`: in memory).
fn stream_of(call: Option<&crate::ir::CallValue>, base: &Path) -> Result<Option<StreamSpec>, DataError> {
    match call {
        Some(c) => stream_spec(c, base).map_err(|(_, why)| DataError::new(why)),
        None => Ok(None),
    }
}

fn arg_error(e: ArgError) -> DataError {
    DataError::new(e.message)
}

/// Loads an `audio(...)` value: its samples, and the clips `skip_bad: true` skipped, each
/// with why.
pub fn load_audio(value: &Value, base: &Path) -> Result<(Raw, Vec<(PathBuf, String)>), DataError> {
    let Value::Call(call) = value else {
        return Err(DataError::new("`audio` needs the folder of class folders: `audio(\"data/speech\")`"));
    };
    let spec = audio_spec(call, base).map_err(|e| DataError::new(e.message))?;
    audio::load(&spec)
}

/// Splits `raw` into train/valid/test (stratified by class for classification), then
/// standardises every split with the train split's mean and deviation, and fits the
/// regression target's [`TargetScale`] on the train split.
///
/// Images (`[c, h, w]`) are scaled by one mean and deviation over all train pixels, so
/// that a pixel's meaning does not depend on its position; flat features per feature.
/// Missing values (NaN) become the train mean, which is 0 after standardising.
pub fn split(raw: Raw, fractions: [f64; 3], seed: u64) -> Result<Dataset, DataError> {
    split_with(raw, Fixed::default(), fractions, seed)
}

/// [`split`] with fixed parts: a part of `fixed` takes its samples from there and its
/// fraction (0) from `raw` nothing; the other parts are carved from `raw` as [`split`]
/// carves them (the same samples for the same seed when nothing is fixed). Scaling is
/// fitted on the train rows of `raw` alone and applied to every part.
pub fn split_with(raw: Raw, fixed: Fixed, fractions: [f64; 3], seed: u64) -> Result<Dataset, DataError> {
    let n = raw.len();
    let f = raw.info.features();
    let carved = 1 + usize::from(fixed.valid.is_none()) + usize::from(fixed.test.is_none());
    if n < carved {
        return Err(DataError::new(format!(
            "`{}` has {n} samples; at least {carved} are needed to split",
            raw.info.name
        )));
    }
    for (r, part) in [(Some(&raw), "the source"), (fixed.valid.as_ref(), "`valid:`"), (fixed.test.as_ref(), "`test:`")]
    {
        if let Some(r) = r
            && r.stored.as_ref().map_or(r.x.len() != r.len() * f, |c| c.len() != r.len() || c.features() != f)
        {
            return Err(DataError::new(format!(
                "`{}` ({part}): {} values for {} samples of {f} features",
                r.info.name,
                r.x.len(),
                r.len()
            )));
        }
    }
    if let Some(r) = fixed.valid.as_ref().into_iter().chain(fixed.test.as_ref()).find(|r| r.is_empty()) {
        return Err(DataError::new(format!("`{}` holds no samples", r.info.name)));
    }
    let [tr, va, te] = carve(&raw.y, &raw.info, fractions, seed, fixed.valid.is_some(), fixed.test.is_some());
    let image = raw.info.shape.len() == 3;
    let (mean, std) = match &raw.stored {
        Some(c) => fit_scaling_stored(c, &tr, image)?,
        None => fit_scaling(&raw.x, &tr, f, image),
    };
    let scaling: (std::sync::Arc<[f32]>, std::sync::Arc<[f32]>) = (mean.as_slice().into(), std.as_slice().into());
    let take = |src: &Raw, idx: &mut dyn Iterator<Item = usize>| {
        if let Some(c) = &src.stored {
            let index: std::sync::Arc<[usize]> = idx.collect();
            let y: Vec<f32> = index.iter().map(|&i| src.y[i]).collect();
            let (mean, std) = scaling.clone();
            return Split {
                n: y.len(),
                x: Vec::new(),
                y,
                stored: Some(cache::Rows { cache: c.clone(), index, mean, std }),
            };
        }
        let mut x = Vec::with_capacity(src.len() * f);
        let mut y = Vec::with_capacity(src.len());
        for i in idx {
            for j in 0..f {
                x.push(cache::scale(src.x[i * f + j], mean[j], std[j]));
            }
            y.push(src.y[i]);
        }
        Split { n: y.len(), x, y, stored: None }
    };
    let part = |own: &Option<Raw>, carved: &[usize]| match own {
        Some(r) => take(r, &mut (0..r.len())),
        None => take(&raw, &mut carved.iter().copied()),
    };
    let (valid, test) = (part(&fixed.valid, &va), part(&fixed.test, &te));
    let target = match raw.info.task {
        Task::Regression => TargetScale::fit(tr.iter().map(|&i| raw.y[i])),
        Task::Classification => TargetScale::default(),
    };
    let mut extras = raw.extras.clone();
    for own in [&fixed.valid, &fixed.test].into_iter().flatten() {
        extras.notes.extend(own.extras.notes.iter().cloned());
        extras.skipped += own.extras.skipped;
    }
    Ok(Dataset {
        train: take(&raw, &mut tr.iter().copied()),
        valid,
        test,
        info: raw.info,
        mean,
        std,
        target,
        extras,
        tokenizer: None,
        input: None,
    })
}

/// The train, valid and test indices [`split`] carves from `y` when nothing is fixed.
#[cfg(test)]
fn split_indices(y: &[f32], info: &DataInfo, fractions: [f64; 3], seed: u64) -> Result<[Vec<usize>; 3], DataError> {
    split_indices_fixed(y, info, fractions, seed, false, false)
}

/// The train, valid and test indices [`split_with`] carves from `y` (text is split this way
/// before it is tokenized); a part with its own source (`valid_fixed`, `test_fixed`) gets none.
fn split_indices_fixed(
    y: &[f32],
    info: &DataInfo,
    fractions: [f64; 3],
    seed: u64,
    valid_fixed: bool,
    test_fixed: bool,
) -> Result<[Vec<usize>; 3], DataError> {
    let n = y.len();
    let carved = 1 + usize::from(!valid_fixed) + usize::from(!test_fixed);
    if n < carved {
        return Err(DataError::new(format!("`{}` has {n} samples; at least {carved} are needed to split", info.name)));
    }
    Ok(carve(y, info, fractions, seed, valid_fixed, test_fixed))
}

/// The train, valid and test indices of the `y.len()` samples: stratified by class for
/// classification, shuffled, deterministic for `seed`. A part that has its own source
/// (`valid_fixed`, `test_fixed`) gets nothing; what train leaves goes to the other part.
fn carve(
    y: &[f32],
    info: &DataInfo,
    fractions: [f64; 3],
    seed: u64,
    valid_fixed: bool,
    test_fixed: bool,
) -> [Vec<usize>; 3] {
    let n = y.len();
    let total: f64 = fractions.iter().sum();
    let [a, b, _] = fractions.map(|x| x / total);
    let mut rng = Rng::new(seed);
    let groups: Vec<Vec<usize>> = match info.task {
        Task::Classification => {
            let mut g = vec![Vec::new(); info.classes.max(1)];
            for (i, y) in y.iter().enumerate() {
                let c = (*y as usize).min(g.len() - 1);
                g[c].push(i);
            }
            g
        }
        Task::Regression => vec![(0..n).collect()],
    };
    let (mut tr, mut va, mut te) = (Vec::new(), Vec::new(), Vec::new());
    for mut g in groups {
        rng.shuffle(&mut g);
        let m = g.len();
        let (ntr, nva) = match (valid_fixed, test_fixed) {
            (true, true) => (m, 0),
            // One part fixed: what train leaves goes to the other, whatever the rounding.
            (true, false) => (((m as f64 * a).round() as usize).min(m), 0),
            (false, true) => {
                let ntr = ((m as f64 * a).round() as usize).min(m);
                (ntr, m - ntr)
            }
            (false, false) => {
                let ntr = ((m as f64 * a).round() as usize).min(m);
                (ntr, ((m as f64 * b).round() as usize).min(m - ntr))
            }
        };
        tr.extend_from_slice(&g[..ntr]);
        va.extend_from_slice(&g[ntr..ntr + nva]);
        te.extend_from_slice(&g[ntr + nva..]);
    }
    // Tiny classes can leave a carved split empty; take one sample from train for it.
    for (part, own) in [(&mut va, valid_fixed), (&mut te, test_fixed)] {
        if !own
            && part.is_empty()
            && tr.len() > 1
            && let Some(i) = tr.pop()
        {
            part.push(i);
        }
    }
    for part in [&mut tr, &mut va, &mut te] {
        rng.shuffle(part);
    }
    [tr, va, te]
}

/// Mean and deviation per feature over the `rows` of `x`, ignoring NaN; one pair for all
/// features when `pooled`. A constant feature gets deviation 1.
fn fit_scaling(x: &[f32], rows: &[usize], f: usize, pooled: bool) -> (Vec<f32>, Vec<f32>) {
    let mut s = Scaling::new(f);
    for &i in rows {
        s.add(&x[i * f..(i + 1) * f]);
    }
    s.finish(pooled)
}

/// [`fit_scaling`] over a cache's rows, read [`cache::CHUNK_ROWS`] at a time in the same
/// order, so the same sums in the same order give the same scaling.
fn fit_scaling_stored(c: &cache::Cache, rows: &[usize], pooled: bool) -> Result<(Vec<f32>, Vec<f32>), DataError> {
    let f = c.features();
    let mut s = Scaling::new(f);
    let (mut buf, mut x) = (Vec::new(), Vec::new());
    for chunk in rows.chunks(cache::CHUNK_ROWS) {
        x.clear();
        c.read_rows(chunk, &mut buf, &mut x)?;
        for row in x.chunks_exact(f.max(1)) {
            s.add(row);
        }
    }
    Ok(s.finish(pooled))
}

/// Running sums per feature for [`fit_scaling`], NaN left out.
struct Scaling {
    sum: Vec<f64>,
    sq: Vec<f64>,
    cnt: Vec<f64>,
}

impl Scaling {
    fn new(f: usize) -> Scaling {
        Scaling { sum: vec![0f64; f], sq: vec![0f64; f], cnt: vec![0f64; f] }
    }

    fn add(&mut self, row: &[f32]) {
        for (j, &v) in row.iter().enumerate() {
            if !v.is_nan() {
                self.sum[j] += f64::from(v);
                self.sq[j] += f64::from(v) * f64::from(v);
                self.cnt[j] += 1.0;
            }
        }
    }

    /// Mean and deviation per feature; one pair for all when `pooled`.
    fn finish(self, pooled: bool) -> (Vec<f32>, Vec<f32>) {
        let Scaling { mut sum, mut sq, mut cnt } = self;
        let f = sum.len();
        if pooled {
            let (s, q, c) = (sum.iter().sum::<f64>(), sq.iter().sum::<f64>(), cnt.iter().sum::<f64>());
            sum = vec![s; f];
            sq = vec![q; f];
            cnt = vec![c; f];
        }
        let mut mean = vec![0f32; f];
        let mut std = vec![1f32; f];
        for j in 0..f {
            if cnt[j] > 0.0 {
                let m = sum[j] / cnt[j];
                let var = (sq[j] / cnt[j] - m * m).max(0.0);
                mean[j] = m as f32;
                if var.sqrt() > 1e-8 {
                    std[j] = var.sqrt() as f32;
                }
            }
        }
        (mean, std)
    }
}

#[cfg(test)]
mod tests;
