//! Fitted preprocessing: what turns one new input (a CSV row, an image file, a text, a WAV
//! clip) into the standardised feature row a saved model takes, kept as plain data so that
//! a model folder needs nothing else to predict (`bma predict`) and an exporter can fold
//! it into another runtime's graph.
//!
//! Takes a loaded [`Dataset`] (its [`Input`], set by `data::load_with`, and the scaling
//! fitted on its train split); gives a [`Preprocess`], saved in `model.json` under
//! `"preprocess"` (manifest `"format": 2`, [`FORMAT`]). [`Preprocess::read`] reads an input
//! file or folder into [`Sample`]s: raw features, or why that one input cannot be used.
//!
//! A sample becomes the model's row in two steps, both described here:
//! 1. **featurise** by [`Input`]: a table row's columns by name (numbers as they are, a
//!    missing number NaN; a category one-hot over the saved sorted categories, a missing
//!    one all zeros); an image decoded to grey or RGB planes `[c, h, w]` in [0, 1],
//!    centre-cropped and resized (bilinear) to `size` when it trained with `size:`; a text
//!    tokenized with the saved vocabulary; a clip resampled and turned into its features;
//! 2. **scale** ([`Preprocess::scale`]): `x' = (x - mean[j]) / std[j]`, a NaN becoming 0 (the
//!    train mean: imputation). `mean` and `std` hold one value per feature, or one value for
//!    every feature (images, token ids).
//!
//! Decisions for new inputs: a category never seen in training is a bad input (an error
//! naming the row, column and value), never a silent all-zero encoding that would read as
//! "missing"; an image of another size than the model's, when the model trained without
//! `size:`, is a bad input (with `size:` it is cropped and resized as in training).
//!
//! **Invariant:** for a sample of the training data, featurise then scale gives the row the
//! model trained or was evaluated on (the loaders' own decoders are used); nothing in an
//! input panics: a whole-input problem (unreadable file, a missing column) is a
//! [`DataError`], a problem of one sample is that sample's `Err`, naming it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::csv::{self as csvfile, Column, Table, is_missing};
use super::{DataError, Dataset, Raw, Tokenizer, audio, images};
use crate::ir::{Task, Value};

/// The model folder format this bma writes: 2 adds [`Preprocess`] (format 1, or no
/// `"format"`: weights and graph only, predicting needs the training data).
pub const FORMAT: u32 = 2;

/// Everything a saved model needs to turn new inputs into its rows and its outputs into
/// answers; see the module header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// How one input becomes raw feature values.
    pub input: Input,
    /// One sample's shape (`[features]`, `[c, h, w]`, `[max_len]`, ...).
    pub shape: Vec<usize>,
    /// Subtracted per feature after featurising (one value: for every feature).
    pub mean: Vec<f32>,
    /// Divided per feature after subtracting (one value: for every feature).
    pub std: Vec<f32>,
    /// `classification` or `regression`.
    pub task: String,
    /// Classification: the name of each class index (the indices themselves when the data
    /// names none); empty for regression.
    pub classes: Vec<String>,
    /// Regression: the model's outputs are `z * std + mean` in the target's units.
    pub target: super::TargetScale,
}

/// How one input becomes raw feature values (step 1 of the module header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// A CSV row: the feature columns by name, in feature order; `target` is the label's column.
    Table { columns: Vec<TableColumn>, target: String },
    /// A row of numbers (built-in, generated, IDX, NumPy and CIFAR data): a CSV row of
    /// `features` numbers in feature order.
    Numbers { features: usize },
    /// An image file.
    Images {
        channels: usize,
        /// `[h, w]` of the model's input.
        size: [usize; 2],
        /// Trained with `size:`: other sizes are centre-cropped and resized; without, an
        /// image of another size is a bad input.
        resize: bool,
    },
    /// A text: a CSV or JSON-lines field `column`, or a line of a plain text file.
    Text { column: String, target: String, tokenizer: Tokenizer },
    /// A WAV clip.
    Audio(AudioSettings),
}

/// One feature column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableColumn {
    pub name: String,
    /// The sorted categories of a one-hot column (one input each); absent: a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
}

/// The settings of an `audio(...)` value, as `data::audio` reads clips with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioSettings {
    pub rate: u32,
    pub seconds: f64,
    /// `waveform`, `mel` or `mfcc`.
    pub features: String,
    pub bins: usize,
    pub win_ms: f64,
    pub hop_ms: f64,
    /// MFCC: the coefficients kept.
    pub n: usize,
}

/// One input read for prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Which input: `line N` of a file, or an image or clip's path.
    pub id: String,
    /// Its raw features ([`Preprocess::scale`] makes them the model's row), or why not.
    pub x: Result<Vec<f32>, String>,
    /// Its label where the input has one (the table's target column, an image's or clip's
    /// class folder): what `bma eval --on` measures against.
    pub label: Option<String>,
}

impl Preprocess {
    /// The preprocessing of a loaded dataset; `None` when its loader recorded no [`Input`].
    pub fn of(data: &Dataset) -> Option<Preprocess> {
        let input = data.input.clone()?;
        let classes = match data.info.task {
            Task::Classification if data.extras.class_names.len() == data.info.classes => {
                data.extras.class_names.clone()
            }
            Task::Classification => (0..data.info.classes).map(|c| c.to_string()).collect(),
            Task::Regression => Vec::new(),
        };
        let (mean, std) = (squeeze(&data.mean), squeeze(&data.std));
        Some(Preprocess {
            input,
            shape: data.info.shape.clone(),
            mean,
            std,
            task: match data.info.task {
                Task::Classification => "classification".into(),
                Task::Regression => "regression".into(),
            },
            classes,
            target: data.target,
        })
    }

    /// Values per sample.
    pub fn features(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn classification(&self) -> bool {
        self.task == "classification"
    }

    /// Step 2 of the module header, in place.
    pub fn scale(&self, row: &mut [f32]) {
        for (j, v) in row.iter_mut().enumerate() {
            let (m, s) = self.scaling_of(j);
            *v = super::cache::scale(*v, m, s);
        }
    }

    /// The mean and deviation that step 2 applies to feature `j` (one saved value: every
    /// feature's).
    pub fn scaling_of(&self, j: usize) -> (f32, f32) {
        let m = self.mean.get(j).or(self.mean.first()).copied().unwrap_or(0.0);
        let s = self.std.get(j).or(self.std.first()).copied().unwrap_or(1.0);
        (m, s)
    }

    /// Reads the inputs at `path` (a file, or a folder of images or clips) as this model's
    /// [`Input`] reads them. Errors: the input cannot be read at all, or lacks a column.
    pub fn read(&self, path: &Path) -> Result<Vec<Sample>, DataError> {
        let f = self.features();
        let mut samples = match &self.input {
            Input::Table { columns, target } => read_table(path, columns, target)?,
            Input::Numbers { features } => read_numbers(path, *features)?,
            Input::Images { channels, size, resize } => files(path, images::IMAGE_EXTENSIONS)?
                .into_iter()
                .map(|(file, label)| Sample {
                    id: file.display().to_string(),
                    x: images::decode_file(&file, *channels, *size, *resize),
                    label,
                })
                .collect(),
            Input::Text { column, target, tokenizer } => read_texts(path, column, target, tokenizer)?,
            Input::Audio(a) => {
                let spec = a.spec(path);
                files(path, &["wav"])?
                    .into_iter()
                    .map(|(file, label)| Sample {
                        id: file.display().to_string(),
                        x: audio::clip_features(&file, &spec),
                        label,
                    })
                    .collect()
            }
        };
        for s in &mut samples {
            if let Ok(x) = &s.x
                && x.len() != f
            {
                s.x = Err(format!("{} values where the model takes {f}", x.len()));
            }
        }
        Ok(samples)
    }
}

impl AudioSettings {
    fn of(spec: &audio::AudioSpec) -> AudioSettings {
        let (features, m, n) = match spec.features {
            audio::Features::Waveform => ("waveform", audio::Frames::default(), 0),
            audio::Features::Mel(m) => ("mel", m, 0),
            audio::Features::Mfcc { n, mel } => ("mfcc", mel, n),
        };
        AudioSettings {
            rate: spec.rate,
            seconds: spec.seconds,
            features: features.into(),
            bins: m.bins,
            win_ms: m.win_ms,
            hop_ms: m.hop_ms,
            n,
        }
    }

    fn spec(&self, dir: &Path) -> audio::AudioSpec {
        let mel = audio::Frames { bins: self.bins, win_ms: self.win_ms, hop_ms: self.hop_ms };
        let features = match self.features.as_str() {
            "waveform" => audio::Features::Waveform,
            "mfcc" => audio::Features::Mfcc { n: self.n, mel },
            _ => audio::Features::Mel(mel),
        };
        audio::AudioSpec { dir: dir.to_path_buf(), rate: self.rate, seconds: self.seconds, features, skip_bad: false }
    }
}

/// The raw samples of a data value and how one input becomes them: `data::load_raw`, with
/// a CSV's column encodings kept.
pub(super) fn load_raw(value: &Value, base: &Path) -> Result<(Raw, Option<Input>), DataError> {
    use crate::catalogue::{self, Dataset as Kind};
    let call = match value {
        Value::Call(c) => Some(c),
        _ => None,
    };
    let kind = call.and_then(|c| catalogue::kind(catalogue::DATASETS, &c.name));
    match (kind, call) {
        (Some(Kind::Csv), Some(c)) => {
            let opts = csvfile::options(Some(c)).map_err(|(_, e)| DataError::new(e))?;
            let path = match c.arg("path", 0) {
                Some(Value::Str(s)) => base.join(s),
                _ => return Err(DataError::new("`csv` needs a string path for `path`")),
            };
            let bytes = std::fs::read(&path).map_err(|e| DataError::at(&path, None, format!("cannot read: {e}")))?;
            let table = csvfile::analyse(&bytes, &opts).map_err(|e| e.at(&path))?;
            let input = table_input(&table);
            Ok((csvfile::encode(&table, &path), Some(input)))
        }
        (Some(Kind::Images), Some(c)) => {
            let raw = super::load_raw(value, base)?;
            let spec = images::ImageSpec::from_call(c, base).map_err(|e| DataError::new(e.message))?;
            let input = match raw.info.shape.as_slice() {
                [ch, h, w] => Some(Input::Images { channels: *ch, size: [*h, *w], resize: spec.size.is_some() }),
                _ => None,
            };
            Ok((raw, input))
        }
        (Some(Kind::Audio), Some(c)) => {
            let raw = super::load_raw(value, base)?;
            let spec = audio::audio_spec(c, base).map_err(|e| DataError::new(e.message))?;
            Ok((raw, Some(Input::Audio(AudioSettings::of(&spec)))))
        }
        _ => {
            let raw = super::load_raw(value, base)?;
            let features = raw.info.features();
            Ok((raw, Some(Input::Numbers { features })))
        }
    }
}

/// The [`Input`] of a text dataset: its column names and its fitted tokenizer.
pub(super) fn text_input(call: &crate::ir::CallValue, base: &Path, tokenizer: &Tokenizer) -> Option<Input> {
    let spec = super::text::spec(call, base).ok()?;
    Some(Input::Text { column: spec.text, target: spec.target, tokenizer: tokenizer.clone() })
}

fn table_input(table: &Table) -> Input {
    let columns = table
        .columns
        .iter()
        .zip(&table.encodings)
        .filter_map(|(name, enc)| match enc {
            Column::Numeric => Some(TableColumn { name: name.clone(), categories: None }),
            Column::Categories(c) => Some(TableColumn { name: name.clone(), categories: Some(c.clone()) }),
            Column::Dropped => None,
        })
        .collect();
    Input::Table { columns, target: table.columns.get(table.target).cloned().unwrap_or_default() }
}

/// One value for every feature when they are all equal (pooled image scaling, token ids).
fn squeeze(v: &[f32]) -> Vec<f32> {
    match v.first() {
        Some(first) if v.iter().all(|x| x.to_bits() == first.to_bits()) => vec![*first],
        _ => v.to_vec(),
    }
}

fn records(path: &Path) -> Result<Vec<csvfile::Record>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))?;
    csvfile::csv_records_with(&bytes, None).map(|(_, r)| r).map_err(|e| DataError::at(path, Some(e.line), e.message))
}

fn read_table(path: &Path, columns: &[TableColumn], target: &str) -> Result<Vec<Sample>, DataError> {
    let records = records(path)?;
    let Some((header, rows)) = records.split_first() else {
        return Err(DataError::at(path, None, "the file is empty"));
    };
    let names = &header.fields;
    let mut at = Vec::with_capacity(columns.len());
    for c in columns {
        match names.iter().position(|n| *n == c.name) {
            Some(i) => at.push(i),
            None => {
                return Err(DataError::at(
                    path,
                    Some(header.line),
                    format!(
                        "no column `{}`: the model reads the columns {}",
                        c.name,
                        columns.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    let label_at = names.iter().position(|n| n == target);
    Ok(rows
        .iter()
        .map(|r| {
            let label = label_at.and_then(|i| r.fields.get(i)).filter(|v| !is_missing(v)).cloned();
            Sample { id: format!("line {}", r.line), x: table_row(r, names.len(), columns, &at), label }
        })
        .collect())
}

fn table_row(r: &csvfile::Record, width: usize, columns: &[TableColumn], at: &[usize]) -> Result<Vec<f32>, String> {
    if r.fields.len() != width {
        return Err(format!("{} fields where the header has {width}", r.fields.len()));
    }
    let mut x = Vec::new();
    for (c, &i) in columns.iter().zip(at) {
        let v = r.fields[i].as_str();
        match &c.categories {
            None if is_missing(v) => x.push(f32::NAN),
            None => match v.parse::<f32>() {
                Ok(f) if f.is_finite() => x.push(f),
                _ => return Err(format!("`{}` is `{v}`, not a finite number", c.name)),
            },
            Some(cats) if is_missing(v) => x.extend(std::iter::repeat_n(0.0, cats.len())),
            Some(cats) => {
                if !cats.iter().any(|k| k == v) {
                    return Err(format!(
                        "`{}` is `{v}`, a category the model never saw (it knows {})",
                        c.name,
                        shown(cats)
                    ));
                }
                x.extend(cats.iter().map(|k| if k == v { 1.0 } else { 0.0 }));
            }
        }
    }
    Ok(x)
}

fn shown(cats: &[String]) -> String {
    let mut s: Vec<String> = cats.iter().take(8).map(|c| format!("`{c}`")).collect();
    if cats.len() > 8 {
        s.push(format!("and {} more", cats.len() - 8));
    }
    s.join(", ")
}

/// Rows of numbers; a first row with no number in it is a header and skipped.
fn read_numbers(path: &Path, features: usize) -> Result<Vec<Sample>, DataError> {
    let records = records(path)?;
    // A header names columns: no field of it is a number. A first row with one bad value
    // among numbers is a bad input, named, never dropped as a header.
    let header = records.first().is_some_and(|r| r.fields.iter().all(|f| f.trim().parse::<f32>().is_err()));
    Ok(records
        .iter()
        .skip(usize::from(header))
        .map(|r| {
            let x = if r.fields.len() != features {
                Err(format!("{} values where the model takes {features}", r.fields.len()))
            } else {
                r.fields
                    .iter()
                    .enumerate()
                    .map(|(j, v)| match v.trim().parse::<f32>() {
                        Ok(f) if f.is_finite() => Ok(f),
                        _ => Err(format!("value {} is `{v}`, not a finite number", j + 1)),
                    })
                    .collect()
            };
            Sample { id: format!("line {}", r.line), x, label: None }
        })
        .collect())
}

/// Texts: a CSV's or JSON lines' field `column` (`.csv`, `.jsonl`, `.ndjson`), else one
/// text per non-blank line.
fn read_texts(path: &Path, column: &str, target: &str, tokenizer: &Tokenizer) -> Result<Vec<Sample>, DataError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let encode = |text: &str| -> Result<Vec<f32>, String> {
        if text.trim().is_empty() {
            return Err("the text is empty".into());
        }
        Ok(tokenizer.encode_all(&[text]))
    };
    if ext == "csv" {
        return read_text_csv(path, column, target, &encode);
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    match ext.as_str() {
        "jsonl" | "ndjson" => Ok(lines(&text)
            .map(|(line, text)| {
                let object = serde_json::from_str::<serde_json::Value>(text).ok();
                let field = |k: &str| {
                    object.as_ref().and_then(|o| o.get(k)).and_then(|v| match v {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Null => None,
                        other => Some(other.to_string()),
                    })
                };
                let x = match (&object, field(column)) {
                    (None, _) => Err("not a JSON object".to_string()),
                    (Some(_), None) => Err(format!("no field `{column}`")),
                    (Some(_), Some(t)) => encode(&t),
                };
                Sample { id: format!("line {line}"), x, label: field(target) }
            })
            .collect()),
        _ => Ok(lines(&text)
            .map(|(line, text)| Sample { id: format!("line {line}"), x: encode(text), label: None })
            .collect()),
    }
}

fn read_text_csv(
    path: &Path,
    column: &str,
    target: &str,
    encode: &dyn Fn(&str) -> Result<Vec<f32>, String>,
) -> Result<Vec<Sample>, DataError> {
    let records = records(path)?;
    let Some((header, rows)) = records.split_first() else {
        return Err(DataError::at(path, None, "the file is empty"));
    };
    let Some(i) = header.fields.iter().position(|n| n == column) else {
        return Err(DataError::at(
            path,
            Some(header.line),
            format!("no column `{column}`: the model reads its text from it"),
        ));
    };
    let label_at = header.fields.iter().position(|n| n == target);
    Ok(rows
        .iter()
        .map(|r| Sample {
            id: format!("line {}", r.line),
            x: match r.fields.get(i) {
                Some(t) if r.fields.len() == header.fields.len() => encode(t),
                _ => Err(format!("{} fields where the header has {}", r.fields.len(), header.fields.len())),
            },
            label: label_at.and_then(|j| r.fields.get(j)).filter(|v| !is_missing(v)).cloned(),
        })
        .collect())
}

/// The non-blank lines of a file with their 1-based numbers; a line that is not UTF-8 is
/// kept, replaced characters and all, for the tokenizer to see as unknown.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
}

/// The files with one of `extensions` at `path`: the file itself, the files listed in a
/// `.txt` list (one path a line, relative to the list), or every such file in a folder and
/// its class folders (sorted; hidden entries skipped), with the class folder as label.
fn files(path: &Path, extensions: &[&str]) -> Result<Vec<(PathBuf, Option<String>)>, DataError> {
    let wanted = |p: &Path| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
    };
    let hidden = |p: &Path| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    if path.is_file() {
        if wanted(path) {
            return Ok(vec![(path.to_path_buf(), None)]);
        }
        let text = std::fs::read_to_string(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        return Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| (dir.join(l), None)).collect());
    }
    let list = |dir: &Path| -> Result<Vec<PathBuf>, DataError> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| DataError::at(dir, None, format!("cannot read: {e}")))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| !hidden(p))
            .collect();
        out.sort();
        Ok(out)
    };
    let mut out = Vec::new();
    for p in list(path)? {
        if p.is_dir() {
            let label = p.file_name().and_then(|n| n.to_str()).map(str::to_string);
            out.extend(list(&p)?.into_iter().filter(|f| f.is_file() && wanted(f)).map(|f| (f, label.clone())));
        } else if wanted(&p) {
            out.push((p, None));
        }
    }
    if out.is_empty() {
        let names: Vec<String> = extensions.iter().map(|e| format!(".{e}")).collect();
        return Err(DataError::at(path, None, format!("holds no {} file", names.join(", "))));
    }
    Ok(out)
}
