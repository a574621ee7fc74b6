//! Text data: `text(file, text: "column", target: "column", tokenizer: char | word |
//! word(ngrams: N) | bpe(vocab: N), vocab: N, max_len: L, lowercase: true, skip_bad: false)`
//! from a CSV file with a header or a JSON-lines file (`.jsonl`, `.ndjson`: one object per
//! line).
//!
//! Takes the call and the folder of the `.bma` file; gives the labelled texts ([`read_rows`]),
//! what the checker predicts of them ([`describe`]: the classes are read, no text is
//! tokenized; the checker reads labels through [`read_labels`], once per file and
//! modification time) and, after the stratified split of `data::load`, a [`Dataset`] whose rows
//! are token ids (`[max_len]` f32 values; 0 pads, 1 is unknown) and the [`Tokenizer`]
//! fitted on the train split alone. The tokenizer is saved with a model
//! (`train::SavedConfig::tokenizer`), so a saved model is evaluated with its own vocabulary.
//!
//! **Invariants:**
//! - the vocabulary (char, word) or the BPE merges are fitted on the train split only: a
//!   token seen only in valid or test is unknown (id 1);
//! - the embedding table has `vocab` rows whatever the corpus: `data.vocab` is the cap
//!   (pad and unknown included), known to the checker without reading a text; rows the
//!   corpus does not fill are never looked up;
//! - ids are never standardised; every row has `max_len` ids, cut at the end or padded
//!   with 0 after the text; a text with no token is an error naming file and line;
//! - `word(ngrams: N)` (fastText's word n-grams): after each word come the n-grams (2 to
//!   N words, joined by one space) that end at it, so cutting at `max_len` keeps the
//!   unigrams and n-grams of the same leading words; unigrams and n-grams share one
//!   vocabulary (the most frequent on train); an unknown word is id 1, an n-gram outside
//!   the vocabulary is left out (it says nothing its words do not) before the cut;
//! - a row that is not UTF-8, a CSV row with the wrong number of fields, a JSON line that
//!   is not an object or lacks a field, an empty text or a missing target gives a
//!   [`DataError`] naming the file and the line, never a panic; with `skip_bad: true` such
//!   rows are left out instead ([`Rows::skipped`]) and counted (`Extras::skipped`). A
//!   missing CSV column, a file with no usable row and one class are errors either way;
//! - a split's own text (`test: text(...)`, `valid: text(...)`, [`fixed_spec`]) names its
//!   own file, columns and `skip_bad`, and is tokenized with the training source's settings
//!   and vocabulary: a tokenizer argument given there must equal the training source's, and
//!   each of its labels must be a class of the training source ([`fixed_labels`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::csv::{csv_columns, csv_records_skipping, is_missing, single_class};
use super::{DataError, Dataset, Split};
use crate::ir::{CallValue, DataInfo, Task, Value};

/// Id 0: padding after the text (the mask is `id != 0`).
pub const PAD: u32 = 0;
/// Id 1: a token that is not in the vocabulary.
pub const UNK: u32 = 1;
/// `max_len` when not given.
pub const DEFAULT_MAX_LEN: usize = 128;
/// The largest `vocab` and `max_len` accepted (ids are exact in f32 far beyond).
pub const MAX_VOCAB: usize = 1 << 20;
pub const MAX_LEN: usize = 1 << 14;

/// How a text becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Every character (whitespace as one space).
    Char,
    /// Runs of letters, digits and inner apostrophes; every other visible character alone.
    Word,
    /// Byte-pair encoding (Sennrich et al., 2016) over the words, `</w>` ending a word.
    Bpe,
}

impl Kind {
    /// `vocab` when not given: ids 0 and 1 included.
    pub fn default_vocab(self) -> usize {
        match self {
            Kind::Char => 128,
            Kind::Word => 20_000,
            Kind::Bpe => 4_000,
        }
    }
}

/// The evaluated arguments of a `text(...)` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub path: PathBuf,
    pub text: String,
    pub target: String,
    pub kind: Kind,
    /// Table size, pad and unknown included (at least 3).
    pub vocab: usize,
    pub max_len: usize,
    pub lowercase: bool,
    /// Word n-grams up to this length (1: words only); only for `word`.
    pub ngrams: usize,
    /// Leave bad rows out (and count them) instead of refusing the file.
    pub skip_bad: bool,
}

/// The largest `ngrams` of `word(ngrams: N)`.
pub const MAX_NGRAMS: usize = 3;

/// An argument of `text(...)` that is wrong: which one and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgError {
    pub arg: &'static str,
    pub message: String,
}

fn arg_err(arg: &'static str, message: impl Into<String>) -> ArgError {
    ArgError { arg, message: message.into() }
}

fn column(call: &CallValue, k: &'static str, pos: usize) -> Result<String, ArgError> {
    match call.arg(k, pos) {
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(Value::Sym(s)) => Ok(s.sym.clone()),
        Some(other) => Err(arg_err(k, format!("`{k}` must be a column name, not the {} `{other}`", other.type_name()))),
        None => Err(arg_err(k, format!("`text` needs the `{k}` column"))),
    }
}

fn bounded(v: Option<&Value>, k: &'static str, lo: usize, hi: usize) -> Result<Option<usize>, ArgError> {
    match v {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(i) if i >= lo as i64 && i <= hi as i64 => Ok(Some(i as usize)),
            _ => Err(arg_err(k, format!("`{k}` must be an int from {lo} to {hi}, not `{v}`"))),
        },
    }
}

/// Reads the arguments of `text(...)`; `base` is the folder relative paths start from.
pub fn spec(call: &CallValue, base: &Path) -> Result<Spec, ArgError> {
    let path = match call.arg("path", 0) {
        Some(Value::Str(s)) => base.join(s),
        _ => return Err(arg_err("path", "`text` needs a string path for `path`")),
    };
    let text = column(call, "text", 1)?;
    let target = column(call, "target", 2)?;
    let mut bpe_vocab = None;
    let mut ngrams = 1;
    let kind = match call.arg("tokenizer", usize::MAX) {
        None => Kind::Word,
        Some(Value::Sym(s)) if s.sym == "char" => Kind::Char,
        Some(Value::Sym(s)) if s.sym == "word" => Kind::Word,
        Some(Value::Sym(s)) if s.sym == "bpe" => Kind::Bpe,
        Some(Value::Call(c)) if c.name == "bpe" => {
            if let Some((Some(k), _)) = c.args.iter().find(|(k, _)| k.as_deref() != Some("vocab")) {
                return Err(arg_err("tokenizer", format!("`bpe` has no argument `{k}`; it takes `vocab`")));
            }
            bpe_vocab = bounded(c.arg("vocab", 0), "tokenizer", 3, MAX_VOCAB)?;
            Kind::Bpe
        }
        Some(Value::Call(c)) if c.name == "word" => {
            if let Some((Some(k), _)) = c.args.iter().find(|(k, _)| k.as_deref() != Some("ngrams")) {
                return Err(arg_err("tokenizer", format!("`word` has no argument `{k}`; it takes `ngrams`")));
            }
            ngrams = match c.arg("ngrams", 0) {
                None => 1,
                Some(v) => match v.as_i64() {
                    Some(i) if (1..=MAX_NGRAMS as i64).contains(&i) => i as usize,
                    _ => {
                        return Err(arg_err(
                            "tokenizer",
                            format!("`ngrams` of `word(ngrams: N)` must be an int from 1 to {MAX_NGRAMS}, not `{v}`"),
                        ));
                    }
                },
            };
            Kind::Word
        }
        Some(other) => {
            return Err(arg_err(
                "tokenizer",
                format!("`tokenizer` is `char`, `word`, `word(ngrams: N)` or `bpe(vocab: N)`, not `{other}`"),
            ));
        }
    };
    let top = bounded(call.arg("vocab", usize::MAX), "vocab", 3, MAX_VOCAB)?;
    if let (Some(a), Some(b)) = (top, bpe_vocab)
        && a != b
    {
        return Err(arg_err("vocab", format!("`vocab: {a}` and `bpe(vocab: {b})` disagree; give one")));
    }
    let vocab = bpe_vocab.or(top).unwrap_or(kind.default_vocab());
    let max_len = bounded(call.arg("max_len", usize::MAX), "max_len", 1, MAX_LEN)?.unwrap_or(DEFAULT_MAX_LEN);
    let lowercase = match call.arg("lowercase", usize::MAX) {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(arg_err("lowercase", format!("`lowercase` is `true` or `false`, not `{other}`"))),
    };
    let skip_bad = match call.arg("skip_bad", usize::MAX) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(arg_err("skip_bad", format!("`skip_bad` is `true` or `false`, not `{other}`"))),
    };
    Ok(Spec { path, text, target, kind, vocab, max_len, lowercase, ngrams, skip_bad })
}

/// The arguments of `text(...)` that decide how a text becomes ids: a split's own text
/// source takes the training source's.
pub const TOKENIZER_ARGS: [&str; 4] = ["tokenizer", "vocab", "max_len", "lowercase"];

/// The spec of a split's own text source (`part` is `test` or `valid`): the file, columns
/// and `skip_bad` of `nested`, the tokenizer settings of `main`. `nested` must be a
/// `text(...)`, and each tokenizer argument it gives must equal `main`'s (an error names it).
pub fn fixed_spec(main: &Spec, nested: &Value, part: &str, base: &Path) -> Result<Spec, ArgError> {
    let call = match nested {
        Value::Call(c) if c.name == "text" => c,
        other => {
            return Err(arg_err(
                "path",
                format!(
                    "the `{part}:` source of `text(...)` is a `text(...)` too, not `{other}`: its rows are \
                     tokenized with the training source's vocabulary"
                ),
            ));
        }
    };
    let own = spec(call, base)?;
    let differs = |k: &str| match k {
        "tokenizer" => {
            let bpe_vocab =
                matches!(call.arg("tokenizer", usize::MAX), Some(Value::Call(c)) if c.arg("vocab", 0).is_some());
            (own.kind, own.ngrams) != (main.kind, main.ngrams) || (bpe_vocab && own.vocab != main.vocab)
        }
        "vocab" => own.vocab != main.vocab,
        "max_len" => own.max_len != main.max_len,
        _ => own.lowercase != main.lowercase,
    };
    if let Some(k) = TOKENIZER_ARGS.into_iter().find(|k| call.arg(k, usize::MAX).is_some() && differs(k)) {
        let show = |s: &Spec| match k {
            "tokenizer" => {
                format!("{:?}{}", s.kind, if s.ngrams > 1 { format!(" of {}-grams", s.ngrams) } else { String::new() })
                    .to_lowercase()
            }
            "vocab" => s.vocab.to_string(),
            "max_len" => s.max_len.to_string(),
            _ => s.lowercase.to_string(),
        };
        return Err(arg_err(
            "path",
            format!(
                "the `{part}:` source's `{k}` is {}, the training source's {}: a split's own text is tokenized \
                 with the training source's settings; leave `{k}` out there",
                show(&own),
                show(main)
            ),
        ));
    }
    Ok(Spec { path: own.path, text: own.text, target: own.target, skip_bad: own.skip_bad, ..main.clone() })
}

/// The class index of each label of a split's own `rows` among `classes` (the training
/// source's); a label that is not one of them is an error naming the file and line.
pub fn fixed_labels(classes: &[String], part: &str, rows: &Rows, path: &Path) -> Result<Vec<f32>, DataError> {
    rows.labels
        .iter()
        .zip(&rows.lines)
        .map(|(label, line)| match classes.binary_search(label) {
            Ok(i) => Ok(i as f32),
            Err(_) => Err(DataError::at(
                path,
                Some(*line),
                format!(
                    "the `{part}:` source's label `{label}` is not a class of the training source ({})",
                    classes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ),
            )),
        })
        .collect()
}

/// Labelled texts as read: one entry per sample, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    pub texts: Vec<String>,
    pub labels: Vec<String>,
    pub lines: Vec<usize>,
    /// The rows `skip_bad: true` left out: 1-based line and why, in file order.
    pub skipped: Vec<(usize, String)>,
}

impl Rows {
    /// A bad row at `line`: skipped with `spec.skip_bad`, an error otherwise.
    fn bad(&mut self, spec: &Spec, line: usize, why: String) -> Result<(), RowsError> {
        if !spec.skip_bad {
            return Err(RowsError::Bad(DataError::at(&spec.path, Some(line), why)));
        }
        self.skipped.push((line, why));
        Ok(())
    }

    /// What `skip_bad: true` left out, as a sentence for the user; `None` when nothing was.
    pub fn skipped_note(&self, path: &Path) -> Option<String> {
        super::skipped_rows_note(path, &self.skipped, self.texts.len())
    }
}

/// Why the rows cannot be read: a column that is not there (with the columns that are,
/// for a suggestion), or anything else.
#[derive(Debug, Clone, PartialEq)]
pub enum RowsError {
    NoColumn { error: DataError, column: String, columns: Vec<String> },
    Bad(DataError),
}

impl RowsError {
    pub fn data_error(self) -> DataError {
        match self {
            RowsError::NoColumn { error, .. } | RowsError::Bad(error) => error,
        }
    }
}

fn is_jsonl(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("jsonl" | "ndjson"))
}

/// Reads the texts and labels of `spec`'s file (CSV with a header, or JSON lines).
pub fn read_rows(spec: &Spec) -> Result<Rows, RowsError> {
    let path = spec.path.as_path();
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(RowsError::Bad(DataError::at(path, None, "not a regular file")));
    }
    let bytes =
        std::fs::read(path).map_err(|e| RowsError::Bad(DataError::at(path, None, format!("cannot read: {e}"))))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut rows = if is_jsonl(path) { jsonl_rows(bytes, spec)? } else { csv_rows(bytes, spec)? };
    rows.skipped.sort_by_key(|(line, _)| *line);
    if rows.texts.is_empty() {
        return Err(RowsError::Bad(DataError::at(
            path,
            None,
            match rows.skipped.first() {
                Some((line, why)) => {
                    format!("every row is bad ({} skipped); the first, line {line}: {why}", rows.skipped.len())
                }
                None => "the file has no samples".to_string(),
            },
        )));
    }
    Ok(rows)
}

/// [`read_rows`] for the checker: the labels, lines and skipped rows of `spec`'s file, with
/// every text left empty (only their count is kept). Read once per file, text and target
/// columns and `skip_bad`, and kept while the file's modification time and size stay the
/// same, so the settings that do not change the rows (`vocab`, `max_len`, the tokenizer),
/// searched or edited, never read the file again.
pub fn read_labels(spec: &Spec) -> Result<std::sync::Arc<Rows>, RowsError> {
    use std::sync::{Arc, Mutex, OnceLock};
    type Key = (PathBuf, String, String, bool);
    type Stamp = (Option<std::time::SystemTime>, u64);
    type Labels = HashMap<Key, (Stamp, Result<Arc<Rows>, RowsError>)>;
    /// Entries kept at most (the oldest are not tracked: past it, the cache starts over).
    const MAX_ENTRIES: usize = 64;
    static CACHE: OnceLock<Mutex<Labels>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let stamp = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.modified().ok(), m.len()));
    let key = (spec.path.clone(), spec.text.clone(), spec.target.clone(), spec.skip_bad);
    let Some(before) = stamp(&spec.path) else { return read_rows(spec).map(Arc::new) };
    if let Ok(c) = cache.lock()
        && let Some((at, got)) = c.get(&key)
        && *at == before
    {
        return got.clone();
    }
    let got = read_rows(spec).map(|mut rows| {
        rows.texts = vec![String::new(); rows.texts.len()];
        Arc::new(rows)
    });
    // Kept only when the file did not change while it was read.
    if stamp(&spec.path) == Some(before)
        && let Ok(mut c) = cache.lock()
    {
        if c.len() >= MAX_ENTRIES {
            c.clear();
        }
        c.insert(key, (before, got.clone()));
    }
    got
}

fn csv_rows(bytes: &[u8], spec: &Spec) -> Result<Rows, RowsError> {
    let path = spec.path.as_path();
    let (_, records, unreadable) = csv_records_skipping(bytes, None, spec.skip_bad)
        .map_err(|e| RowsError::Bad(DataError::at(path, Some(e.line), e.message)))?;
    let mut rows = Rows { skipped: unreadable.into_iter().map(|e| (e.line, e.message)).collect(), ..Rows::default() };
    let mut records = records.into_iter();
    let Some(first) = records.next() else {
        return Err(RowsError::Bad(DataError::at(path, None, "the file is empty")));
    };
    let (header, columns) = csv_columns(&first.fields);
    if !header {
        return Err(RowsError::Bad(DataError::at(
            path,
            Some(first.line),
            "a text file needs a header naming its columns",
        )));
    }
    let find = |name: &str| {
        columns.iter().position(|c| c == name).ok_or_else(|| RowsError::NoColumn {
            error: DataError::at(path, Some(first.line), format!("no column `{name}`")),
            column: name.to_string(),
            columns: columns.clone(),
        })
    };
    let (ti, yi) = (find(&spec.text)?, find(&spec.target)?);
    for r in records {
        if r.fields.len() != columns.len() {
            rows.bad(spec, r.line, format!("{} fields where the header has {}", r.fields.len(), columns.len()))?;
            continue;
        }
        push(&mut rows, r.line, &r.fields[ti], &r.fields[yi], spec)?;
    }
    Ok(rows)
}

fn jsonl_rows(bytes: &[u8], spec: &Spec) -> Result<Rows, RowsError> {
    let path = spec.path.as_path();
    let mut rows = Rows::default();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            rows.bad(spec, n, "this line is not UTF-8 text".to_string())?;
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let obj = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(obj)) => obj,
            Ok(_) => {
                rows.bad(spec, n, "this line is not a JSON object".to_string())?;
                continue;
            }
            Err(e) => {
                rows.bad(spec, n, format!("this line is not JSON: {e}"))?;
                continue;
            }
        };
        let field = |name: &str| -> Result<String, (String, bool)> {
            match obj.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(serde_json::Value::Number(x)) => Ok(x.to_string()),
                Some(serde_json::Value::Bool(b)) => Ok(b.to_string()),
                Some(serde_json::Value::Null) | None => Err((format!("no field `{name}`"), true)),
                Some(other) => Err((format!("field `{name}` is {other}, not a string or number"), false)),
            }
        };
        match (field(&spec.text), field(&spec.target)) {
            (Ok(t), Ok(y)) => push(&mut rows, n, &t, &y, spec)?,
            (Err((why, missing)), _) | (_, Err((why, missing))) if spec.skip_bad || !missing => {
                rows.bad(spec, n, why)?
            }
            (Err((why, _)), _) | (_, Err((why, _))) => {
                let column = if field(&spec.text).is_err() { &spec.text } else { &spec.target };
                return Err(RowsError::NoColumn {
                    error: DataError::at(path, Some(n), why),
                    column: column.clone(),
                    columns: obj.keys().cloned().collect(),
                });
            }
        }
    }
    Ok(rows)
}

fn push(rows: &mut Rows, line: usize, text: &str, label: &str, spec: &Spec) -> Result<(), RowsError> {
    if text.trim().is_empty() {
        return rows.bad(spec, line, format!("the text `{}` is empty", spec.text));
    }
    if is_missing(label.trim()) {
        return rows.bad(spec, line, format!("the target `{}` is missing", spec.target));
    }
    rows.texts.push(text.to_string());
    rows.labels.push(label.trim().to_string());
    rows.lines.push(line);
    Ok(())
}

/// The classes of `rows`, sorted (the class index of a label is its position).
pub fn classes(rows: &Rows) -> Vec<String> {
    rows.labels.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

/// What the model sees, found by reading the labels only: `[max_len]` token ids, `vocab`
/// table rows, the classes of the target. The loader's `DataInfo` is this one.
pub fn describe(spec: &Spec) -> Result<DataInfo, RowsError> {
    let rows = read_rows(spec)?;
    info(spec, &rows)
}

/// [`describe`] of rows already read.
pub fn info(spec: &Spec, rows: &Rows) -> Result<DataInfo, RowsError> {
    let classes = classes(rows);
    if let [only] = classes.as_slice() {
        return Err(RowsError::Bad(DataError::at(&spec.path, None, single_class(&spec.target, only))));
    }
    Ok(DataInfo {
        name: format!("text({})", spec.path.display()),
        shape: vec![spec.max_len],
        classes: classes.len(),
        task: Task::Classification,
        vocab: Some(spec.vocab),
    })
}

/// The words of a text: runs of letters and digits (an apostrophe between two letters
/// stays inside), and every other non-space character on its own.
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_alphanumeric() {
            let mut j = i + 1;
            while j < chars.len() {
                let d = chars[j].1;
                let inner_apostrophe = d == '\''
                    && chars.get(j + 1).is_some_and(|n| n.1.is_alphanumeric())
                    && chars[j - 1].1.is_alphanumeric();
                if d.is_alphanumeric() || inner_apostrophe {
                    j += 1;
                } else {
                    break;
                }
            }
            let end = chars.get(j).map_or(text.len(), |x| x.0);
            out.push(&text[start..end]);
            i = j;
        } else {
            out.push(&text[start..start + c.len_utf8()]);
            i += 1;
        }
    }
    out
}

/// The end-of-word mark of BPE symbols.
pub const END: &str = "</w>";

/// A fitted tokenizer: the vocabulary (ids from 2 in order) and, for BPE, the merges in
/// the order they were learnt. Saved with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokenizer {
    pub kind: Kind,
    pub lowercase: bool,
    pub max_len: usize,
    /// The table size (the cap), pad and unknown included.
    pub vocab: usize,
    /// Token `i` has id `i + 2`.
    pub tokens: Vec<String>,
    #[serde(default)]
    pub merges: Vec<(String, String)>,
    /// Word n-grams up to this length (1: words only; tokenizers saved before n-grams).
    #[serde(default = "one")]
    pub ngrams: usize,
}

fn one() -> usize {
    1
}

/// The words of `words` each followed by the n-grams (2 to `n` words, shortest first,
/// joined by one space) that end at it: `a b c` with `n` 2 is `a`, `b`, `a b`, `c`, `b c`.
pub fn with_ngrams(words: &[&str], n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len() * n.max(1));
    for i in 0..words.len() {
        out.push(words[i].to_string());
        for len in 2..=n.min(i + 1) {
            out.push(words[i + 1 - len..=i].join(" "));
        }
    }
    out
}

fn normalise(text: &str, lowercase: bool) -> String {
    if lowercase { text.to_lowercase() } else { text.to_string() }
}

/// The most frequent `n` keys of `counts`, ties by the key's order.
fn top(counts: &HashMap<String, u64>, n: usize) -> Vec<String> {
    let mut all: Vec<(&String, &u64)> = counts.iter().collect();
    all.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    all.into_iter().take(n).map(|(k, _)| k.clone()).collect()
}

fn char_pieces(text: &str) -> Vec<String> {
    text.chars().map(|c| if c.is_whitespace() { " ".to_string() } else { c.to_string() }).collect()
}

fn word_symbols(word: &str) -> Vec<String> {
    let mut s: Vec<String> = word.chars().map(|c| c.to_string()).collect();
    if let Some(last) = s.last_mut() {
        last.push_str(END);
    }
    s
}

impl Tokenizer {
    /// Fits the vocabulary (or the BPE merges) of `spec` on `texts`, the train split.
    pub fn fit(spec: &Spec, texts: &[&str]) -> Tokenizer {
        let cap = spec.vocab.saturating_sub(2);
        let mut t = Tokenizer {
            kind: spec.kind,
            lowercase: spec.lowercase,
            max_len: spec.max_len,
            vocab: spec.vocab,
            tokens: Vec::new(),
            merges: Vec::new(),
            ngrams: spec.ngrams,
        };
        let mut counts: HashMap<String, u64> = HashMap::new();
        match spec.kind {
            Kind::Char => {
                for text in texts {
                    for p in char_pieces(&normalise(text, spec.lowercase)) {
                        *counts.entry(p).or_default() += 1;
                    }
                }
                t.tokens = top(&counts, cap);
            }
            Kind::Word => {
                for text in texts {
                    for w in with_ngrams(&words(&normalise(text, spec.lowercase)), spec.ngrams) {
                        *counts.entry(w).or_default() += 1;
                    }
                }
                t.tokens = top(&counts, cap);
            }
            Kind::Bpe => {
                for text in texts {
                    for w in words(&normalise(text, spec.lowercase)) {
                        *counts.entry(w.to_string()).or_default() += 1;
                    }
                }
                let (tokens, merges) = learn_bpe(&counts, cap);
                t.tokens = tokens;
                t.merges = merges;
            }
        }
        t
    }

    /// The tokens of `text` before ids (BPE symbols for `bpe`), untruncated.
    pub fn pieces(&self, text: &str, cache: &mut HashMap<String, Vec<String>>) -> Vec<String> {
        let text = normalise(text, self.lowercase);
        match self.kind {
            Kind::Char => char_pieces(&text),
            Kind::Word => with_ngrams(&words(&text), self.ngrams),
            Kind::Bpe => {
                let ranks: HashMap<(&str, &str), usize> =
                    self.merges.iter().enumerate().map(|(i, (a, b))| ((a.as_str(), b.as_str()), i)).collect();
                let mut out = Vec::new();
                for w in words(&text) {
                    let syms = cache.entry(w.to_string()).or_insert_with(|| apply_merges(w, &ranks));
                    out.extend(syms.iter().cloned());
                }
                out
            }
        }
    }

    /// Token ids of every text, `max_len` per text (cut at the end, padded with 0),
    /// row-major as f32.
    pub fn encode_all(&self, texts: &[&str]) -> Vec<f32> {
        let ids: HashMap<&str, u32> = self.tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32 + 2)).collect();
        let mut cache = HashMap::new();
        let mut out = Vec::with_capacity(texts.len() * self.max_len);
        for text in texts {
            let pieces = self.pieces(text, &mut cache);
            // An n-gram (a piece with a space, only from `word(ngrams: N)`) outside the
            // vocabulary is left out; any other unknown piece is UNK.
            let known = |p: &&String| self.ngrams < 2 || !p.contains(' ') || ids.contains_key(p.as_str());
            let row: Vec<f32> = pieces
                .iter()
                .filter(known)
                .take(self.max_len)
                .map(|p| ids.get(p.as_str()).copied().unwrap_or(UNK) as f32)
                .collect();
            out.extend_from_slice(&row);
            out.extend(std::iter::repeat_n(PAD as f32, self.max_len - row.len()));
        }
        out
    }
}

/// Segments `word` by applying the merges in rank order (the lowest-ranked adjacent pair
/// first, every occurrence left to right), as learnt.
fn apply_merges(word: &str, ranks: &HashMap<(&str, &str), usize>) -> Vec<String> {
    let mut syms = word_symbols(word);
    loop {
        let best = syms.windows(2).filter_map(|w| ranks.get(&(w[0].as_str(), w[1].as_str())).copied()).min();
        let Some(rank) = best else { break };
        let mut merged = Vec::with_capacity(syms.len());
        let mut i = 0;
        while i < syms.len() {
            if i + 1 < syms.len() && ranks.get(&(syms[i].as_str(), syms[i + 1].as_str())) == Some(&rank) {
                merged.push(format!("{}{}", syms[i], syms[i + 1]));
                i += 2;
            } else {
                merged.push(syms[i].clone());
                i += 1;
            }
        }
        syms = merged;
    }
    syms
}

/// Learns BPE on word counts: the base symbols (characters, the last of a word marked
/// `</w>`) most frequent first up to `cap`, then merges of the most frequent adjacent pair
/// (ties: the smallest pair) while the vocabulary has room and a pair occurs twice.
fn learn_bpe(counts: &HashMap<String, u64>, cap: usize) -> (Vec<String>, Vec<(String, String)>) {
    // Words in a fixed order, so ties and results do not depend on hashing.
    let ordered: BTreeMap<&String, u64> = counts.iter().map(|(k, v)| (k, *v)).collect();
    let mut words: Vec<(Vec<String>, u64)> = ordered.iter().map(|(w, c)| (word_symbols(w), *c)).collect();
    let mut base: HashMap<String, u64> = HashMap::new();
    for (syms, c) in &words {
        for s in syms {
            *base.entry(s.clone()).or_default() += c;
        }
    }
    let mut tokens = top(&base, cap);
    let mut merges = Vec::new();
    let mut pairs: HashMap<(String, String), u64> = HashMap::new();
    for (syms, c) in &words {
        for w in syms.windows(2) {
            *pairs.entry((w[0].clone(), w[1].clone())).or_default() += c;
        }
    }
    while tokens.len() < cap {
        let Some((pair, n)) = pairs
            .iter()
            .filter(|(_, n)| **n > 0)
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(p, n)| (p.clone(), *n))
        else {
            break;
        };
        if n < 2 {
            break;
        }
        let joined = format!("{}{}", pair.0, pair.1);
        for (syms, c) in &mut words {
            if !syms.windows(2).any(|w| w[0] == pair.0 && w[1] == pair.1) {
                continue;
            }
            for w in syms.windows(2) {
                if let Some(x) = pairs.get_mut(&(w[0].clone(), w[1].clone())) {
                    *x -= *c;
                }
            }
            let mut merged = Vec::with_capacity(syms.len());
            let mut i = 0;
            while i < syms.len() {
                if i + 1 < syms.len() && syms[i] == pair.0 && syms[i + 1] == pair.1 {
                    merged.push(joined.clone());
                    i += 2;
                } else {
                    merged.push(syms[i].clone());
                    i += 1;
                }
            }
            *syms = merged;
            for w in syms.windows(2) {
                *pairs.entry((w[0].clone(), w[1].clone())).or_default() += *c;
            }
        }
        pairs.retain(|_, n| *n > 0);
        tokens.push(joined);
        merges.push(pair);
    }
    (tokens, merges)
}

/// Loads a text dataset: reads the rows (and those of the split's own sources in `fixed`:
/// `[valid, test]` nested values), splits the main rows (`split` gives the train, valid
/// and test indices from the labels; a part with its own source gets none), fits the
/// tokenizer on train (or takes `saved`, a model's) and encodes every split with it.
pub fn load(
    call: &CallValue,
    base: &Path,
    saved: Option<&Tokenizer>,
    fixed: [Option<&Value>; 2],
    split: impl FnOnce(&[f32], &DataInfo) -> Result<[Vec<usize>; 3], DataError>,
) -> Result<Dataset, DataError> {
    let spec = spec(call, base).map_err(|e| DataError::new(e.message))?;
    let rows = read_rows(&spec).map_err(RowsError::data_error)?;
    let info = info(&spec, &rows).map_err(RowsError::data_error)?;
    let classes = classes(&rows);
    let y: Vec<f32> = rows.labels.iter().map(|l| classes.binary_search(l).unwrap_or(0) as f32).collect();
    let mut extras = super::Extras { class_names: classes.clone(), skipped: rows.skipped.len(), ..Default::default() };
    extras.notes.extend(rows.skipped_note(&spec.path));
    // A split's own rows and labels, read with the training source's settings.
    let mut own: [Option<(Rows, Vec<f32>)>; 2] = [None, None];
    for ((slot, nested), part) in own.iter_mut().zip(fixed).zip(["valid", "test"]) {
        let Some(nested) = nested else { continue };
        let at = |e: DataError| DataError { message: format!("`{part}:` {}", e.message), ..e };
        let fspec = fixed_spec(&spec, nested, part, base).map_err(|e| DataError::new(e.message))?;
        let frows = read_rows(&fspec).map_err(|e| at(e.data_error()))?;
        let fy = fixed_labels(&classes, part, &frows, &fspec.path)?;
        let finfo = self::info(&fspec, &frows).map_err(|e| at(e.data_error()))?;
        super::compatible(&info, &finfo, part).map_err(DataError::new)?;
        super::same_classes(&classes, &self::classes(&frows), part, &finfo.name).map_err(DataError::new)?;
        extras.skipped += frows.skipped.len();
        extras.notes.extend(frows.skipped_note(&fspec.path));
        *slot = Some((frows, fy));
    }
    let [tr, va, te] = split(&y, &info)?;
    let texts = |idx: &[usize]| idx.iter().map(|i| rows.texts[*i].as_str()).collect::<Vec<_>>();
    let tokenizer = match saved {
        Some(t) => {
            if (t.vocab, t.max_len, t.ngrams) != (spec.vocab, spec.max_len, spec.ngrams) {
                return Err(DataError::at(
                    &spec.path,
                    None,
                    format!(
                        "the saved tokenizer has vocab {}, max_len {} and ngrams {}, the data value asks for {}, {} and {}",
                        t.vocab, t.max_len, t.ngrams, spec.vocab, spec.max_len, spec.ngrams
                    ),
                ));
            }
            t.clone()
        }
        None => Tokenizer::fit(&spec, &texts(&tr)),
    };
    let take = |idx: &[usize]| Split {
        x: tokenizer.encode_all(&texts(idx)),
        y: idx.iter().map(|i| y[*i]).collect(),
        n: idx.len(),
        stored: None,
    };
    let part = |own: &Option<(Rows, Vec<f32>)>, carved: &[usize]| match own {
        Some((r, fy)) => Split {
            x: tokenizer.encode_all(&r.texts.iter().map(String::as_str).collect::<Vec<_>>()),
            y: fy.clone(),
            n: fy.len(),
            stored: None,
        },
        None => take(carved),
    };
    let (train, valid, test) = (take(&tr), part(&own[0], &va), part(&own[1], &te));
    let f = spec.max_len;
    Ok(Dataset {
        info,
        train,
        valid,
        test,
        mean: vec![0.0; f],
        std: vec![1.0; f],
        tokenizer: Some(tokenizer),
        target: Default::default(),
        extras,
        input: None,
    })
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
