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
//! - standardisation and missing-value imputation are fitted on the train split only;
//! - nothing in a data file can panic: bad files give a [`DataError`] naming file and line.
//!
//! `files` gives the absolute folder relative paths are read from ([`base_folder`]) and
//! [`Fingerprint`]s of the files a data value reads, so that a study and a saved model
//! notice when a file changed under them.

mod builtin;
mod csv;
mod files;
mod idx;
mod synthetic;
mod text;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::catalogue;
use crate::diagnostic::escape;
use crate::ir::{DataInfo, Task, Value};
use crate::rng::Rng;

pub use builtin::BUILTIN;
pub use csv::{Record, RecordError, csv_columns, csv_records, csv_text, delimiter_hint, is_missing, single_class};
pub use files::{Fingerprint, absolute, base_folder, changes, fingerprints};
pub use idx::{idx_dims, idx_roles, single_label};
pub use synthetic::{SYNTHETIC_MAX_N, SYNTHETIC_MAX_NOISE};
pub use text::Tokenizer;
/// The text source's parts the checker reads (`check::data` describes `text(...)` with them).
pub mod text_source {
    pub use super::text::{ArgError, Kind, RowsError, Spec, describe, spec};
}

/// One part of a dataset: `n` rows of `features` values, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub x: Vec<f32>,
    /// The class index (classification) or the target value (regression), per row.
    pub y: Vec<f32>,
    pub n: usize,
}

impl Split {
    /// Row `i` of `x`.
    pub fn row(&self, i: usize, features: usize) -> &[f32] {
        &self.x[i * features..(i + 1) * features]
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
    /// Text data: the tokenizer fitted on the train split (saved with a model).
    pub tokenizer: Option<Tokenizer>,
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
}

impl Raw {
    pub fn len(&self) -> usize {
        self.y.len()
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

/// Loads, splits and standardises the dataset a data value names. `base` is the folder
/// that relative paths are read from (the `.bma` file's).
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
    let fractions = match arg("split") {
        Some(Value::List(items)) => {
            let f: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
            match f.as_slice() {
                [a, b, c] if *a > 0.0 && *b > 0.0 && *c > 0.0 => [*a, *b, *c],
                _ => return Err(DataError::new("`split` needs three positive fractions: train, valid, test")),
            }
        }
        Some(_) => return Err(DataError::new("`split` is a list of three fractions")),
        None => DEFAULT_SPLIT,
    };
    let seed = arg("seed").and_then(Value::as_i64).unwrap_or(0) as u64;
    if let Some(c) = call
        && catalogue::kind(catalogue::DATASETS, &c.name) == Some(catalogue::Dataset::Text)
    {
        // Text is split first, then tokenized with a vocabulary fitted on train alone.
        return text::load(c, base, tokenizer, |y, info| split_indices(y, info, fractions, seed));
    }
    split(load_raw(value, base)?, fractions, seed)
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
            let target = match arg("target", 1) {
                Some(Value::Str(s)) => csv::Target::Name(s.clone()),
                Some(Value::Sym(s)) => csv::Target::Name(s.sym.clone()),
                Some(Value::Int(i)) if *i >= 0 => csv::Target::Index(*i as usize),
                Some(other) => return Err(DataError::new(format!("no column `{other}`"))),
                None => csv::Target::Last,
            };
            let task = match arg("task", 2).and_then(Value::as_sym) {
                None | Some("classification") => Task::Classification,
                Some("regression") => Task::Regression,
                Some(other) => return Err(DataError::new(format!("unknown task `{other}`"))),
            };
            csv::load(&path("path", 0)?, &target, task)
        }
        Kind::Idx => idx::load(&path("images", 0)?, &path("labels", 1)?),
        Kind::Text => Err(DataError::new("text is tokenized after the split: load it with `data::load`")),
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

/// Splits `raw` into train/valid/test (stratified by class for classification), then
/// standardises every split with the train split's mean and deviation.
///
/// Images (`[c, h, w]`) are scaled by one mean and deviation over all train pixels, so
/// that a pixel's meaning does not depend on its position; flat features per feature.
/// Missing values (NaN) become the train mean, which is 0 after standardising.
pub fn split(raw: Raw, fractions: [f64; 3], seed: u64) -> Result<Dataset, DataError> {
    let n = raw.len();
    let f = raw.info.features();
    if raw.x.len() != n * f {
        return Err(DataError::new(format!(
            "`{}`: {} values for {n} samples of {f} features",
            raw.info.name,
            raw.x.len()
        )));
    }
    let [tr, va, te] = split_indices(&raw.y, &raw.info, fractions, seed)?;
    let image = raw.info.shape.len() == 3;
    let (mean, std) = fit_scaling(&raw.x, &tr, f, image);
    let take = |idx: &[usize]| {
        let mut x = Vec::with_capacity(idx.len() * f);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            for j in 0..f {
                let v = raw.x[i * f + j];
                x.push(if v.is_nan() { 0.0 } else { (v - mean[j]) / std[j] });
            }
            y.push(raw.y[i]);
        }
        Split { x, y, n: idx.len() }
    };
    Ok(Dataset { train: take(&tr), valid: take(&va), test: take(&te), info: raw.info, mean, std, tokenizer: None })
}

/// The train, valid and test indices of `n = y.len()` samples: stratified by class for
/// classification, shuffled, deterministic for `seed`.
fn split_indices(y: &[f32], info: &DataInfo, fractions: [f64; 3], seed: u64) -> Result<[Vec<usize>; 3], DataError> {
    let n = y.len();
    if n < 3 {
        return Err(DataError::new(format!("`{}` has {n} samples; at least 3 are needed to split", info.name)));
    }
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
        let ntr = ((m as f64 * a).round() as usize).min(m);
        let nva = ((m as f64 * b).round() as usize).min(m - ntr);
        tr.extend_from_slice(&g[..ntr]);
        va.extend_from_slice(&g[ntr..ntr + nva]);
        te.extend_from_slice(&g[ntr + nva..]);
    }
    // Tiny classes can leave a split empty; take one sample from train for it.
    for part in [&mut va, &mut te] {
        if part.is_empty()
            && tr.len() > 1
            && let Some(i) = tr.pop()
        {
            part.push(i);
        }
    }
    for part in [&mut tr, &mut va, &mut te] {
        rng.shuffle(part);
    }
    Ok([tr, va, te])
}

/// Mean and deviation per feature over the `rows` of `x`, ignoring NaN; one pair for all
/// features when `pooled`. A constant feature gets deviation 1.
fn fit_scaling(x: &[f32], rows: &[usize], f: usize, pooled: bool) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0f64; f];
    let mut sq = vec![0f64; f];
    let mut cnt = vec![0f64; f];
    for &i in rows {
        for j in 0..f {
            let v = x[i * f + j];
            if !v.is_nan() {
                sum[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
                cnt[j] += 1.0;
            }
        }
    }
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

#[cfg(test)]
mod tests;
