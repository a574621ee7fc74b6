//! CSV files: `csv(path, target:, task:, delimiter:, ignore:, max_categories:, skip_bad:)`.
//!
//! Takes a file's bytes and the [`Options`] of its `csv(...)` value; gives a [`Table`]
//! ([`analyse`]: columns typed, every value checked) and from it [`Raw`] samples. The checker
//! (`check::data`) calls [`analyse`] too, so the two cannot disagree on a file: what the
//! loader refuses, `bma check` refuses, with the same words.
//!
//! Records are split by the `csv` crate (RFC 4180: a quoted field may hold the delimiter,
//! `""` and line breaks), fields trimmed, blank lines skipped, a leading UTF-8 byte-order
//! mark dropped. The delimiter is `,`, `;` or a tab: `delimiter:` names it, otherwise
//! [`detect_delimiter`] picks the one that splits the first lines into the same number of
//! fields. The first record is a header when any of its fields is neither a number nor a
//! missing value ([`csv_columns`]).
//!
//! Columns: one whose present values all parse as numbers is numeric (missing values become
//! NaN, imputed later with the train mean); any other is categorical and one-hot encoded
//! over its sorted distinct values (a missing value is all zeros), unless it is free text
//! ([`is_free_text`]: an error pointing to `text(...)` and `ignore:`) or has more than
//! `max_categories` values (default [`MAX_CATEGORIES`]: an error naming the column and the
//! count). Columns named in `ignore:` are dropped. Classes are the sorted distinct target
//! values; a numeric target with many distinct values read as classes gets a warning
//! ([`Table::notes`], see [`many_classes`]) suggesting `task: regression`.
//!
//! A column with more than 20 distinct numbers where at most 5% of the present values are
//! not numbers ([`is_mostly_numeric`]) is numeric with bad values, not categories.
//!
//! **Invariant:** the feature count and class count equal `check::data::describe`'s.
//! A bad row: one that is not UTF-8, has the wrong number of fields, a missing or
//! non-numeric (regression) target, a value that is not a number in a numeric column, or a
//! value that is not a finite f32 (`inf`, `1e400`) in a numeric column or a regression
//! target. Without `skip_bad` the first bad row is an error naming the file and line; with
//! `skip_bad: true` every bad row is left out ([`Table::skipped`], line and why), the
//! classes and one-hot categories are those of the rows kept, and the count is a note of
//! the loaded samples (`Extras::skipped`). The header is never skipped. A quote never
//! closed, a header without rows, a file whose every row is bad, and a classification
//! target with one class are errors either way. A file whose one column holds `|` (or
//! another delimiter than the one asked for) gets a hint ([`delimiter_hint`]).

use std::collections::BTreeSet;
use std::path::Path;

use super::{DataError, Raw};
use crate::ir::{DataInfo, Task};

/// Which column is the target.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Name(String),
    Index(usize),
    Last,
}

/// The default `max_categories:`: a categorical column with more distinct values is refused
/// rather than silently widened into that many one-hot inputs.
pub const MAX_CATEGORIES: usize = 256;

/// How to read a CSV file: the arguments of its `csv(...)` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub target: Target,
    pub task: Task,
    /// `delimiter:`; `None` detects it.
    pub delimiter: Option<u8>,
    /// `ignore:`: columns dropped before typing.
    pub ignore: Vec<String>,
    /// `max_categories:`: the widest one-hot encoding of one column.
    pub max_categories: usize,
    /// `skip_bad:`: leave bad rows out (and count them) instead of refusing the file.
    pub skip_bad: bool,
}

impl Options {
    pub fn new(target: Target, task: Task) -> Options {
        Options { target, task, delimiter: None, ignore: Vec::new(), max_categories: MAX_CATEGORIES, skip_bad: false }
    }
}

/// The [`Options`] of a `csv(...)` value's arguments (`path` aside), as the loader and the
/// checker both read them; an error names the argument and what is wrong with it.
pub fn options(call: Option<&crate::ir::CallValue>) -> Result<Options, (&'static str, String)> {
    use crate::ir::Value;
    let arg = |k: &str, pos: usize| call.and_then(|c| c.arg(k, pos));
    let target = match arg("target", 1) {
        Some(Value::Str(s)) => Target::Name(s.clone()),
        Some(Value::Sym(s)) => Target::Name(s.sym.clone()),
        Some(Value::Int(i)) if *i >= 0 => Target::Index(*i as usize),
        Some(other) => return Err(("target", format!("no column `{other}`"))),
        None => Target::Last,
    };
    let task = match arg("task", 2).and_then(Value::as_sym) {
        None | Some("classification") => Task::Classification,
        Some("regression") => Task::Regression,
        Some(other) => return Err(("task", format!("unknown task `{other}`"))),
    };
    let mut o = Options::new(target, task);
    match arg("delimiter", usize::MAX) {
        None => {}
        Some(Value::Str(d)) if DELIMITERS.iter().any(|(b, _)| d.as_bytes() == std::slice::from_ref(b)) => {
            o.delimiter = d.as_bytes().first().copied();
        }
        Some(v) => {
            let names: Vec<&str> = DELIMITERS.iter().map(|(_, n)| *n).collect();
            return Err(("delimiter", format!("`delimiter` is one of {}, not `{v}`", names.join(", "))));
        }
    }
    match arg("ignore", usize::MAX) {
        None => {}
        Some(Value::List(items)) if items.iter().all(|v| matches!(v, Value::Str(_))) => {
            o.ignore =
                items.iter().filter_map(|v| if let Value::Str(s) = v { Some(s.clone()) } else { None }).collect();
        }
        Some(v) => return Err(("ignore", format!("`ignore` is a list of column names, like `[\"id\"]`, not `{v}`"))),
    }
    match arg("max_categories", usize::MAX) {
        None => {}
        Some(Value::Int(k)) if (1..=100_000).contains(k) => o.max_categories = *k as usize,
        Some(v) => return Err(("max_categories", format!("`max_categories` is an int from 1 to 100000, not `{v}`"))),
    }
    match arg("skip_bad", usize::MAX) {
        None => {}
        Some(Value::Bool(b)) => o.skip_bad = *b,
        Some(v) => return Err(("skip_bad", format!("`skip_bad` is true or false, not `{v}`"))),
    }
    Ok(o)
}

/// The delimiters `delimiter:` accepts and detection chooses from, with their names.
pub const DELIMITERS: [(u8, &str); 3] = [(b',', "\",\""), (b';', "\";\""), (b'\t', "\"\\t\"")];

/// A CSV file's text: UTF-8 (invalid bytes replaced), without the byte-order mark that
/// spreadsheet programs write first, which would otherwise become part of the first column's name.
pub fn csv_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(strip_bom(bytes))
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
}

/// One record of a CSV file: its fields, and the 1-based lines it starts and ends on (more
/// than one when a quoted field holds a line break).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub line: usize,
    pub last_line: usize,
    pub fields: Vec<String>,
}

/// A CSV text that cannot be split into records: the line and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub line: usize,
    pub message: String,
}

/// The records of a CSV text, its delimiter detected ([`csv_records_with`]).
pub fn csv_records(text: &str) -> Result<Vec<Record>, RecordError> {
    csv_records_with(text.as_bytes(), None).map(|(_, r)| r)
}

/// The delimiter of a CSV file's first lines: of `,`, `;` and tab, the one that splits the
/// most of the first 20 non-blank lines into as many fields as the first line (and at
/// least two), ties going to `,` then `;`; `,` when none splits the first line. Quotes are
/// honoured within a line.
pub fn detect_delimiter(bytes: &[u8]) -> u8 {
    let lines: Vec<&[u8]> = strip_bom(bytes)
        .split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .take(20)
        .collect();
    let count = |line: &[u8], d: u8| {
        let mut quoted = false;
        line.iter()
            .filter(|b| {
                if **b == b'"' {
                    quoted = !quoted;
                }
                !quoted && **b == d
            })
            .count()
    };
    let mut best = (b',', 0usize);
    for (d, _) in DELIMITERS {
        let Some(first) = lines.first().map(|l| count(l, d)) else { break };
        if first == 0 {
            continue;
        }
        let agree = lines.iter().filter(|l| count(l, d) == first).count();
        if agree > best.1 {
            best = (d, agree);
        }
    }
    best.0
}

/// The records of a CSV file's bytes (byte-order mark dropped), blank lines skipped, fields
/// trimmed, with the delimiter used (`delimiter`, or detected). A record that is not UTF-8
/// and a quote that is never closed are errors naming the line, not a field that swallows
/// the rest of the file. The one CSV splitter: the checker (`check::data`) calls it too.
pub fn csv_records_with(bytes: &[u8], delimiter: Option<u8>) -> Result<(u8, Vec<Record>), RecordError> {
    csv_records_skipping(bytes, delimiter, false).map(|(d, records, _)| (d, records))
}

/// [`csv_records_with`]; with `skip_bad`, a record after the first that is not UTF-8 is
/// left out and returned with why (in file order) instead of ending the read. A quote never
/// closed is an error either way: it swallows the rest of the file.
pub fn csv_records_skipping(
    bytes: &[u8],
    delimiter: Option<u8>,
    skip_bad: bool,
) -> Result<(u8, Vec<Record>, Vec<RecordError>), RecordError> {
    let bytes = strip_bom(bytes);
    let mut bad = Vec::new();
    let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(bytes));
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(bytes);
    let mut records = Vec::new();
    let mut last_start = None;
    // Lines are counted here from byte offsets: the `csv` crate's own line numbers skip
    // blank lines and count a CRLF file's lines short. A record's offset is where its
    // reading began, before the line ends and blank lines it skipped.
    let start_of = |offset: u64| {
        let mut offset = (offset as usize).min(bytes.len());
        while bytes.get(offset).is_some_and(|b| *b == b'\n' || *b == b'\r') {
            offset += 1;
        }
        offset
    };
    let (mut seen, mut lines) = (0usize, 1usize);
    let mut line_at = |offset: usize| {
        if offset >= seen {
            lines += bytes[seen..offset].iter().filter(|b| **b == b'\n').count();
            seen = offset;
        }
        lines
    };
    for record in reader.byte_records() {
        let record = record.map_err(|e| RecordError {
            line: e.position().map_or(1, |p| line_at(start_of(p.byte()))),
            message: format!("cannot split the line into fields: {e}"),
        })?;
        let Some(pos) = record.position() else { continue };
        let start = start_of(pos.byte());
        let line = line_at(start);
        if record.is_empty() || (record.len() == 1 && record[0].is_empty()) {
            continue;
        }
        let mut fields = Vec::with_capacity(record.len());
        let mut breaks = 0;
        let mut not_utf8 = None;
        for (i, f) in record.iter().enumerate() {
            match std::str::from_utf8(f) {
                Ok(s) => {
                    breaks += s.matches('\n').count();
                    fields.push(s.to_string());
                }
                Err(e) => {
                    not_utf8 = Some(RecordError {
                        line,
                        message: format!(
                            "field {} is not UTF-8 text (byte 0x{:02x}); save the file as UTF-8",
                            i + 1,
                            f.get(e.valid_up_to()).copied().unwrap_or(0)
                        ),
                    });
                    break;
                }
            }
        }
        last_start = Some((start, line));
        match not_utf8 {
            Some(e) if skip_bad && !records.is_empty() => bad.push(e),
            Some(e) => return Err(e),
            None => records.push(Record { line, last_line: line + breaks, fields }),
        }
    }
    if let Some((start, line)) = last_start
        && let Some(open) = unclosed_quote(bytes.get(start..).unwrap_or_default(), delimiter)
    {
        return Err(RecordError { line: line + open, message: "a quote opened on this line is never closed".into() });
    }
    Ok((delimiter, records, bad))
}

/// Whether `tail` (the last record to the end of the file) leaves a quote open, as the `csv`
/// crate reads quotes (one opens a field); the open quote's line, counted from 0.
fn unclosed_quote(tail: &[u8], delimiter: u8) -> Option<usize> {
    let (mut open, mut at_start, mut line) = (None, true, 0usize);
    let mut i = 0;
    while i < tail.len() {
        let b = tail[i];
        match open {
            Some(_) if b == b'"' && tail.get(i + 1) == Some(&b'"') => i += 1,
            Some(_) if b == b'"' => open = None,
            None if b == b'"' && at_start => open = Some(line),
            _ => {}
        }
        if open.is_none() {
            at_start = b == delimiter || b == b'\n';
        }
        if b == b'\n' {
            line += 1;
        }
        i += 1;
    }
    open
}

/// A hint for a file whose header is one column holding `;`, a tab or `|`: it is probably
/// separated by that character, which is not the delimiter it was read with.
pub fn delimiter_hint(columns: &[String]) -> Option<String> {
    let [only] = columns else { return None };
    let name = [(';', "`;`"), ('\t', "tabs"), ('|', "`|`")].into_iter().find(|(c, _)| only.contains(*c))?.1;
    Some(format!(
        "the file has one column, `{only}`: it seems to be separated by {name}; bma reads `,`, `;` and tabs \
         (`delimiter: \",\"`, `\";\"` or `\"\\t\"`): replace the {name}, or name the delimiter"
    ))
}

/// Whether a CSV field is a missing value.
pub fn is_missing(field: &str) -> bool {
    matches!(field, "" | "NA" | "N/A" | "NaN" | "nan" | "?" | "null")
}

/// Whether `first` (the first non-empty line, split) is a header, and the column names:
/// a header when any field is neither a number nor a missing value; otherwise the columns
/// are `column0`, `column1`, ...
pub fn csv_columns(first: &[String]) -> (bool, Vec<String>) {
    let header = first.iter().any(|f| !is_missing(f) && f.parse::<f64>().is_err());
    let columns = if header { first.to_vec() } else { (0..first.len()).map(|i| format!("column{i}")).collect() };
    (header, columns)
}

/// Why a classification target with one value cannot be learnt: every model scores
/// perfectly by always answering it, and trains to a loss of 0.
pub fn single_class(target: &str, class: &str) -> String {
    format!(
        "the target `{target}` has one class, `{class}`, in every row: a classifier needs at least 2 \
         (for a numeric target, `task: regression`)"
    )
}

/// Whether a categorical column of `values` (present values, with repeats) is free text
/// rather than categories: at least 20 distinct values, more than half of the values
/// distinct, and either a mean length of 20 characters or more, or whitespace inside more
/// than half of the values. Categories repeat (`red`, `SW1`); sentences, reviews and
/// addresses mostly do not, and one-hot encoding them gives one input per row that says
/// nothing about an unseen row.
pub fn is_free_text(values: &[&str], distinct: usize) -> bool {
    let n = values.len();
    if distinct < 20 || 2 * distinct <= n {
        return false;
    }
    let chars: usize = values.iter().map(|v| v.chars().count()).sum();
    let spaced = values.iter().filter(|v| v.contains(char::is_whitespace)).count();
    chars >= 20 * n || 2 * spaced > n
}

/// A warning for a numeric target read as classes with `distinct` values over `rows` rows,
/// when there are more than 20 distinct values and they are more than 5% of the rows, i.e.
/// fewer than 20 rows per class on average: class labels coded as numbers rarely number more
/// than 20 (digits have 10), and a classifier learns little from fewer than 20 samples a
/// class; prices, ages and measurements have both many values and few repeats.
pub fn many_classes(target: &str, distinct: usize, rows: usize) -> Option<String> {
    (distinct > 20 && distinct * 20 > rows).then(|| {
        format!(
            "the target `{target}` is numeric with {distinct} distinct values in {rows} rows, read as {distinct} \
             classes; for a quantity, add `task: regression`"
        )
    })
}

/// How one column of a table becomes inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// One input: the number, NaN when missing.
    Numeric,
    /// One input per category (sorted): one-hot.
    Categories(Vec<String>),
    /// No input: the target, or a column named in `ignore:`.
    Dropped,
}

/// What is wrong with a CSV file, so the checker can place it (the target argument, the
/// path) and name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Unreadable, empty, malformed, or a value that cannot be used.
    File,
    /// The file has no data row at all.
    Empty,
    /// The target or an `ignore:` column is not in the file.
    NoColumn,
    /// Nothing is left to learn from.
    NoFeatures,
    /// The target has one class.
    SingleClass,
}

/// A CSV file that cannot be used: where and what, and a help line.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvError {
    pub line: Option<usize>,
    pub message: String,
    pub problem: Problem,
    pub help: Option<String>,
    /// For [`Problem::NoColumn`]: the name asked for and the columns there are.
    pub no_column: Option<Box<(String, Vec<String>)>>,
    /// What the checker's label under the path says.
    pub label: &'static str,
    /// A bad row that `skip_bad: true` would leave out (the checker says so in its help).
    pub skippable: bool,
}

impl CsvError {
    fn new(line: Option<usize>, problem: Problem, message: impl Into<String>) -> CsvError {
        CsvError {
            line,
            message: message.into(),
            problem,
            help: None,
            no_column: None,
            label: "cannot be used",
            skippable: false,
        }
    }

    fn skippable(mut self) -> CsvError {
        self.skippable = true;
        self
    }

    fn label(mut self, label: &'static str) -> CsvError {
        self.label = label;
        self
    }

    fn help(mut self, help: Option<String>) -> CsvError {
        self.help = help;
        self
    }

    /// The loader's error: file, line, message; the help after a `;`.
    pub fn at(&self, path: &Path) -> DataError {
        let message = match &self.help {
            Some(h) => format!("{}; {h}", self.message),
            None => self.message.clone(),
        };
        DataError::at(path, self.line, message)
    }
}

/// A CSV file read and typed: every value checked, nothing encoded yet.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    /// The target's column.
    pub target: usize,
    /// Per column (the target's is [`Column::Dropped`]).
    pub encodings: Vec<Column>,
    /// Sorted distinct target values (classification); empty for regression.
    pub classes: Vec<String>,
    /// The data rows (the header excluded).
    pub rows: Vec<Record>,
    pub delimiter: u8,
    /// Warnings: the data loads, but probably not as meant.
    pub notes: Vec<String>,
    pub task: Task,
    /// The rows `skip_bad: true` left out: 1-based line and why, in file order.
    pub skipped: Vec<(usize, String)>,
}

impl Table {
    /// The number of inputs a row becomes.
    pub fn features(&self) -> usize {
        width(&self.encodings)
    }

    /// What `skip_bad: true` left out, as a sentence for the user; `None` when nothing was.
    pub fn skipped_note(&self, path: &Path) -> Option<String> {
        super::skipped_rows_note(path, &self.skipped, self.rows.len())
    }

    /// What the model sees.
    pub fn info(&self, path: &Path) -> DataInfo {
        let classes = match self.task {
            Task::Classification => self.classes.len(),
            Task::Regression => 1,
        };
        DataInfo {
            name: format!("csv({})", path.display()),
            shape: vec![self.features()],
            classes,
            task: self.task,
            vocab: None,
        }
    }
}

/// The inputs that columns encoded by `encodings` give.
fn width(encodings: &[Column]) -> usize {
    encodings
        .iter()
        .map(|e| match e {
            Column::Numeric => 1,
            Column::Categories(c) => c.len(),
            Column::Dropped => 0,
        })
        .sum()
}

/// Whether a column whose present `values` are not all numbers is still a numeric column
/// with bad values: more than 20 distinct numbers, and at most 5% of the values not
/// numbers. Categories coded as numbers rarely number more than 20; a quantity does, and a
/// stray `abc` or `12,5` among its values is a bad value, not a reason to one-hot encode
/// every number as a category of its own.
pub fn is_mostly_numeric(values: &[&str]) -> bool {
    let numbers: Vec<&str> = values.iter().copied().filter(|v| v.parse::<f64>().is_ok()).collect();
    let distinct = numbers.iter().collect::<BTreeSet<_>>().len();
    distinct > 20 && (values.len() - numbers.len()) * 20 <= values.len()
}

/// Reads and types a CSV file's bytes by `opts`; see the module header.
pub fn analyse(bytes: &[u8], opts: &Options) -> Result<Table, CsvError> {
    let (delimiter, records, unreadable) = csv_records_skipping(bytes, opts.delimiter, opts.skip_bad).map_err(|e| {
        let label = if e.message.contains("UTF-8") { "not UTF-8" } else { "unclosed quote" };
        let error = CsvError::new(Some(e.line), Problem::File, e.message).label(label);
        if label == "not UTF-8" { error.skippable() } else { error }
    })?;
    let mut skipped: Vec<(usize, String)> = unreadable.into_iter().map(|e| (e.line, e.message)).collect();
    let mut records = records.into_iter();
    let Some(first) = records.next() else {
        return Err(CsvError::new(None, Problem::Empty, "the file is empty"));
    };
    let (header, columns) = csv_columns(&first.fields);
    let hint = delimiter_hint(&columns);
    let no_column = |asked: &str, what: String| CsvError {
        no_column: Some(Box::new((asked.to_string(), columns.clone()))),
        ..CsvError::new(Some(first.line), Problem::NoColumn, what).help(hint.clone())
    };
    let t = match &opts.target {
        Target::Name(name) => {
            columns.iter().position(|c| c == name).ok_or_else(|| no_column(name, format!("no column `{name}`")))?
        }
        Target::Index(i) if *i < columns.len() => *i,
        Target::Index(i) => return Err(no_column(&i.to_string(), format!("no column {i}"))),
        Target::Last => columns.len() - 1,
    };
    let mut dropped = vec![false; columns.len()];
    dropped[t] = true;
    for name in &opts.ignore {
        match columns.iter().position(|c| c == name) {
            Some(i) if i == t => {
                return Err(CsvError::new(None, Problem::File, format!("`ignore` names the target `{name}`")));
            }
            Some(i) => dropped[i] = true,
            None => return Err(no_column(name, format!("no column `{name}` to ignore"))),
        }
    }
    let what = if header { "header" } else { "first row" };
    let mut rows: Vec<Record> = Vec::new();
    for r in if header { None } else { Some(first.clone()) }.into_iter().chain(records) {
        if r.fields.len() == columns.len() {
            rows.push(r);
            continue;
        }
        let runs_on = if r.last_line > r.line {
            format!(" (a quoted field runs on to line {}: is a quote missing?)", r.last_line)
        } else {
            String::new()
        };
        let message = format!("{} fields where the {what} has {}{runs_on}", r.fields.len(), columns.len());
        if !opts.skip_bad {
            return Err(CsvError::new(Some(r.line), Problem::File, message)
                .label("a row with the wrong number of fields")
                .skippable());
        }
        skipped.push((r.line, message));
    }
    if rows.is_empty() && skipped.is_empty() {
        return Err(CsvError::new(None, Problem::File, "the file has a header but no rows").label("no rows"));
    }
    // Numeric columns are typed on every row: a bad value in one is found below, by row.
    let numeric: Vec<bool> = (0..columns.len())
        .map(|c| {
            let present: Vec<&str> = rows.iter().map(|r| r.fields[c].as_str()).filter(|f| !is_missing(f)).collect();
            !dropped[c] && (present.iter().all(|v| v.parse::<f64>().is_ok()) || is_mostly_numeric(&present))
        })
        .collect();
    // Training runs in f32: `inf`, `1e400` or `1e39` would turn the column's mean and every
    // standardised value into NaN or inf, so they are bad values rather than silent garbage.
    let target = &columns[t];
    let bad_value = |r: &Record| -> Option<String> {
        for (c, name) in columns.iter().enumerate() {
            let v = r.fields[c].as_str();
            if !numeric[c] || is_missing(v) {
                continue;
            }
            match v.parse::<f32>() {
                Ok(f) if f.is_finite() => {}
                Ok(_) => return Some(not_finite(&format!("`{name}`"), v)),
                Err(_) if v.parse::<f64>().is_ok() => return Some(not_finite(&format!("`{name}`"), v)),
                Err(_) => {
                    return Some(format!("`{name}` is `{v}`, not a number (the column's other values are numbers)"));
                }
            }
        }
        let v = r.fields[t].as_str();
        if is_missing(v) {
            return Some(format!("the target `{target}` is missing"));
        }
        if opts.task == Task::Regression {
            match v.parse::<f32>() {
                Ok(f) if f.is_finite() => {}
                Ok(_) => return Some(not_finite(&format!("the target `{target}`"), v)),
                Err(_) => return Some(format!("the target `{target}` is `{v}`, not a number")),
            }
        }
        None
    };
    let mut kept = Vec::with_capacity(rows.len());
    for r in rows {
        match bad_value(&r) {
            None => kept.push(r),
            Some(why) if opts.skip_bad => skipped.push((r.line, why)),
            Some(why) => return Err(CsvError::new(Some(r.line), Problem::File, why).skippable()),
        }
    }
    let rows = kept;
    skipped.sort_by_key(|(line, _)| *line);
    if rows.is_empty() {
        let (line, why) = skipped.first().cloned().unwrap_or_default();
        return Err(CsvError::new(
            None,
            Problem::File,
            format!("every row is bad ({} skipped); the first, line {line}: {why}", skipped.len()),
        )
        .label("no usable rows"));
    }
    let mut encodings = Vec::with_capacity(columns.len());
    for (c, name) in columns.iter().enumerate() {
        if dropped[c] {
            encodings.push(Column::Dropped);
            continue;
        }
        if numeric[c] {
            encodings.push(Column::Numeric);
            continue;
        }
        let values: Vec<&str> = rows.iter().map(|r| r.fields[c].as_str()).filter(|f| !is_missing(f)).collect();
        let cats: BTreeSet<&str> = values.iter().copied().collect();
        let ignore = format!("`ignore: [\"{name}\"]` drops it");
        if is_free_text(&values, cats.len()) {
            return Err(CsvError::new(
                None,
                Problem::File,
                format!(
                    "the column `{name}` is free text ({} distinct values in {} rows), not categories",
                    cats.len(),
                    values.len()
                ),
            )
            .label("free text")
            .help(Some(format!(
                "one-hot encoding it would give one input per row; read text with `text(...)`, or {ignore}"
            ))));
        }
        if cats.len() > opts.max_categories {
            return Err(CsvError::new(
                None,
                Problem::File,
                format!(
                    "the column `{name}` has {} categories, more than the {} one-hot inputs a column may have",
                    cats.len(),
                    opts.max_categories
                ),
            )
            .label("too many categories")
            .help(Some(format!("`max_categories: {}` allows them, or {ignore}", cats.len()))));
        }
        encodings.push(Column::Categories(cats.into_iter().map(str::to_string).collect()));
    }
    if width(&encodings) == 0 {
        return Err(CsvError::new(None, Problem::NoFeatures, "the file has no feature columns").help(hint));
    }
    let mut notes = Vec::new();
    let classes: Vec<String> = match opts.task {
        Task::Classification => rows.iter().map(|r| r.fields[t].clone()).collect::<BTreeSet<_>>().into_iter().collect(),
        Task::Regression => Vec::new(),
    };
    if let [only] = classes.as_slice() {
        return Err(CsvError::new(None, Problem::SingleClass, single_class(target, only)));
    }
    if classes.iter().all(|c| c.parse::<f64>().is_ok())
        && let Some(note) = many_classes(target, classes.len(), rows.len())
    {
        notes.push(note);
    }
    Ok(Table { columns, target: t, encodings, classes, rows, delimiter, notes, task: opts.task, skipped })
}

fn not_finite(what: &str, v: &str) -> String {
    format!("{what} is `{v}`, not a finite 32-bit number (|x| < 3.4e38)")
}

/// The samples of a typed table: one-hot categories, NaN for a missing number, the class
/// index or the target value.
pub fn encode(table: &Table, path: &Path) -> Raw {
    let features = table.features();
    let mut x = Vec::with_capacity(table.rows.len() * features);
    let mut y = Vec::with_capacity(table.rows.len());
    for r in &table.rows {
        for (v, enc) in r.fields.iter().zip(&table.encodings) {
            match enc {
                Column::Numeric if is_missing(v) => x.push(f32::NAN),
                // Checked finite by `analyse`.
                Column::Numeric => x.push(v.parse::<f32>().unwrap_or(f32::NAN)),
                Column::Categories(cats) => x.extend(cats.iter().map(|k| if k == v { 1.0 } else { 0.0 })),
                Column::Dropped => {}
            }
        }
        let v = &r.fields[table.target];
        y.push(match table.task {
            Task::Classification => table.classes.binary_search(v).unwrap_or(0) as f32,
            Task::Regression => v.parse::<f32>().unwrap_or(f32::NAN),
        });
    }
    let mut extras = super::Extras { skipped: table.skipped.len(), ..Default::default() };
    if table.task == Task::Classification {
        extras.class_names = table.classes.clone();
    }
    if let Some(note) = table.skipped_note(path) {
        extras.notes.push(note);
    }
    Raw { info: table.info(path), x, y, extras, stored: None }
}

pub(super) fn load(path: &Path, opts: &Options) -> Result<Raw, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))?;
    let table = analyse(&bytes, opts).map_err(|e| e.at(path))?;
    Ok(encode(&table, path))
}

/// [`load`] of a text, for tests: `target` and `task` only.
#[cfg(test)]
pub(super) fn parse(text: &str, path: &Path, target: &Target, task: Task) -> Result<Raw, DataError> {
    let table = analyse(text.as_bytes(), &Options::new(target.clone(), task)).map_err(|e| e.at(path))?;
    Ok(encode(&table, path))
}

#[cfg(test)]
mod tests;
