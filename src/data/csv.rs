//! CSV files: `csv(path, target:, task:)`.
//!
//! Takes a path, the target column and the task; gives [`Raw`] samples. Records are split
//! by [`csv_records`] (a quoted field may hold commas and line breaks). The first record
//! is a header when any of its fields is neither a number nor a missing value
//! ([`csv_columns`]; the checker's `check::data` calls both). A column whose present values all parse as numbers
//! is numeric (missing values become NaN, imputed later with the train mean); any other
//! column is categorical and one-hot encoded over its sorted distinct values (a missing
//! value is all zeros). Classes are the sorted distinct target values.
//!
//! **Invariant:** the feature count and class count equal `check::data::describe`'s.
//! A missing or non-numeric (regression) target, a value that is not a finite f32 (`inf`,
//! `1e400`) in a numeric column or a regression target, or a row with the wrong number of
//! fields, is an error naming the file and line; so are a quote never closed, a header
//! without rows and a classification target with one class. A file whose one column holds
//! `;`, tabs or `|` gets a hint ([`delimiter_hint`]). A leading UTF-8 byte-order mark is dropped.

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

/// A CSV file's text: UTF-8 (invalid bytes replaced), without the byte-order mark that
/// spreadsheet programs write first, which would otherwise become part of the first column's name.
pub fn csv_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes))
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

/// The records of a CSV text, blank lines skipped: fields split on commas and trimmed;
/// double quotes honoured, so a quoted field may hold commas, `""` (one quote) and line
/// breaks. A quote that is never closed is an error naming the line it opens on, not a
/// field that swallows the rest of the file. The one CSV splitter: the checker
/// (`check::data`) calls it too.
pub fn csv_records(text: &str) -> Result<Vec<Record>, RecordError> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut cur = String::new();
    // The line of the quote that is open, if one is.
    let mut open: Option<usize> = None;
    let (mut line, mut start) = (1usize, 1usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if open.is_some() && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' if open.is_some() => open = None,
            '"' => open = Some(line),
            ',' if open.is_none() => fields.push(std::mem::take(&mut cur).trim().to_string()),
            '\n' if open.is_none() => {
                fields.push(std::mem::take(&mut cur).trim().to_string());
                let fields = std::mem::take(&mut fields);
                if !(fields.len() == 1 && fields[0].is_empty()) {
                    records.push(Record { line: start, last_line: line, fields });
                }
                line += 1;
                start = line;
            }
            c => {
                if c == '\n' {
                    line += 1;
                }
                cur.push(c);
            }
        }
    }
    if let Some(at) = open {
        return Err(RecordError { line: at, message: "a quote opened on this line is never closed".to_string() });
    }
    fields.push(cur.trim().to_string());
    if !(fields.len() == 1 && fields[0].is_empty()) {
        records.push(Record { line: start, last_line: line, fields });
    }
    Ok(records)
}

/// A hint for a file whose header is one column holding `;`, a tab or `|`: it is
/// probably separated by that character, and bma reads comma-separated files only.
pub fn delimiter_hint(columns: &[String]) -> Option<String> {
    let [only] = columns else { return None };
    let name = [(';', "`;`"), ('\t', "tabs"), ('|', "`|`")].into_iter().find(|(c, _)| only.contains(*c))?.1;
    Some(format!(
        "the file has one column, `{only}`: it seems to be separated by {name}, and bma reads \
         comma-separated files only; replace the {name} with commas"
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

pub(super) fn load(path: &Path, target: &Target, task: Task) -> Result<Raw, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))?;
    parse(&csv_text(&bytes), path, target, task)
}

pub(super) fn parse(text: &str, path: &Path, target: &Target, task: Task) -> Result<Raw, DataError> {
    let records = csv_records(text).map_err(|e| DataError::at(path, Some(e.line), e.message))?;
    let mut records = records.into_iter();
    let Some(first) = records.next() else {
        return Err(DataError::at(path, None, "the file is empty"));
    };
    let (header, columns) = csv_columns(&first.fields);
    let with_hint = |message: String| match delimiter_hint(&columns) {
        Some(hint) => format!("{message}; {hint}"),
        None => message,
    };
    let t = match target {
        Target::Name(name) => columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| DataError::at(path, Some(first.line), with_hint(format!("no column `{name}`"))))?,
        Target::Index(i) if *i < columns.len() => *i,
        Target::Index(i) => return Err(DataError::at(path, Some(first.line), with_hint(format!("no column {i}")))),
        Target::Last => columns.len() - 1,
    };
    let rows: Vec<(usize, Vec<String>)> = if header { None } else { Some(first.clone()) }
        .into_iter()
        .chain(records)
        .map(|r| {
            if r.fields.len() != columns.len() {
                let spans = if r.last_line > r.line {
                    format!(" (a quoted field runs on to line {}: is a quote missing?)", r.last_line)
                } else {
                    String::new()
                };
                return Err(DataError::at(
                    path,
                    Some(r.line),
                    format!(
                        "{} fields where the {} has {}{spans}",
                        r.fields.len(),
                        if header { "header" } else { "first row" },
                        columns.len()
                    ),
                ));
            }
            Ok((r.line, r.fields))
        })
        .collect::<Result<_, _>>()?;
    for (line, r) in &rows {
        if is_missing(&r[t]) {
            return Err(DataError::at(path, Some(*line), format!("the target `{}` is missing", columns[t])));
        }
    }
    if rows.is_empty() {
        return Err(DataError::at(path, None, "the file has a header but no rows"));
    }
    // Per feature column: None for numeric, Some(sorted categories) for categorical.
    let mut encodings: Vec<(usize, Option<Vec<String>>)> = Vec::new();
    for c in (0..columns.len()).filter(|c| *c != t) {
        let present = rows.iter().map(|(_, r)| r[c].as_str()).filter(|f| !is_missing(f));
        let numeric = present.clone().all(|v| v.parse::<f64>().is_ok());
        let cats = (!numeric).then(|| present.map(str::to_string).collect::<BTreeSet<_>>().into_iter().collect());
        encodings.push((c, cats));
    }
    let features: usize = encodings.iter().map(|(_, e)| e.as_ref().map_or(1, Vec::len)).sum();
    if features == 0 {
        return Err(DataError::at(path, None, with_hint("the file has no feature columns".to_string())));
    }
    let classes: Vec<String> = match task {
        Task::Classification => rows.iter().map(|(_, r)| r[t].clone()).collect::<BTreeSet<_>>().into_iter().collect(),
        Task::Regression => Vec::new(),
    };
    if let [only] = classes.as_slice() {
        return Err(DataError::at(path, None, single_class(&columns[t], only)));
    }
    let mut x = Vec::with_capacity(rows.len() * features);
    let mut y = Vec::with_capacity(rows.len());
    // Training runs in f32: `inf`, `1e400` or `1e39` would turn the column's mean and every
    // standardised value into NaN or inf, so they are errors here rather than silent garbage.
    let not_finite = |line: usize, what: String, v: &str| {
        DataError::at(path, Some(line), format!("{what} is `{v}`, not a finite 32-bit number (|x| < 3.4e38)"))
    };
    for (line, r) in &rows {
        for (c, enc) in &encodings {
            let v = &r[*c];
            match enc {
                None if is_missing(v) => x.push(f32::NAN),
                None => match v.parse::<f32>() {
                    Ok(f) if f.is_finite() => x.push(f),
                    _ => return Err(not_finite(*line, format!("`{}`", columns[*c]), v)),
                },
                Some(cats) => x.extend(cats.iter().map(|k| if k == v { 1.0 } else { 0.0 })),
            }
        }
        y.push(match task {
            Task::Classification => classes.iter().position(|k| *k == r[t]).unwrap_or(0) as f32,
            Task::Regression => match r[t].parse::<f32>() {
                Ok(f) if f.is_finite() => f,
                Ok(_) => return Err(not_finite(*line, format!("the target `{}`", columns[t]), &r[t])),
                Err(_) => {
                    return Err(DataError::at(
                        path,
                        Some(*line),
                        format!("the target `{}` is `{}`, not a number", columns[t], r[t]),
                    ));
                }
            },
        });
    }
    let classes = match task {
        Task::Classification => classes.len(),
        Task::Regression => 1,
    };
    let info = DataInfo { name: format!("csv({})", path.display()), shape: vec![features], classes, task, vocab: None };
    Ok(Raw { info, x, y })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Target, csv_records, parse};
    use crate::ir::Task;

    fn read(text: &str, task: Task) -> Result<super::Raw, String> {
        parse(text, Path::new("f.csv"), &Target::Last, task).map_err(|e| e.to_string())
    }

    #[test]
    fn a_quoted_field_may_hold_a_line_break_and_lines_are_still_counted() {
        let text = "a,y\n1,\"first\nkind\"\n\n2,\"second, kind\"\n3,\"first\nkind\"\n4,x,5\n";
        let records = csv_records(text).unwrap();
        let spans: Vec<(usize, usize)> = records.iter().map(|r| (r.line, r.last_line)).collect();
        assert_eq!(spans, [(1, 1), (2, 3), (5, 5), (6, 7), (8, 8)]);
        assert_eq!(records[1].fields, ["1", "first\nkind"]);
        // The bad row is named by its own line, after the quoted line breaks.
        assert_eq!(read(text, Task::Classification).unwrap_err(), "f.csv:8: 3 fields where the header has 2");
        let raw = read(&text[..text.len() - 6], Task::Classification).unwrap();
        assert_eq!((raw.info.classes, raw.y.clone()), (2, vec![0.0, 1.0, 0.0]));
    }

    #[test]
    fn a_quote_never_closed_is_named_with_its_line() {
        let text = "a,y\n1,x\n2,\"y\n3,x\n";
        assert_eq!(csv_records(text).unwrap_err().line, 3);
        assert_eq!(
            read(text, Task::Classification).unwrap_err(),
            "f.csv:3: a quote opened on this line is never closed"
        );
        // Closed further down, it swallows lines: the row's field count says so.
        let closed = "a,b,y\n1,\"2,x\n3\",4,x\n";
        assert_eq!(
            read(closed, Task::Classification).unwrap_err(),
            "f.csv:2: 4 fields where the header has 3 (a quoted field runs on to line 3: is a quote missing?)"
        );
    }

    #[test]
    fn a_header_without_rows_and_a_single_class_are_errors() {
        assert_eq!(read("a,y\n", Task::Classification).unwrap_err(), "f.csv: the file has a header but no rows");
        let one = read("a,y\n1,x\n2,x\n3,x\n", Task::Classification).unwrap_err();
        assert!(one.starts_with("f.csv: the target `y` has one class, `x`, in every row"), "{one}");
        // The same column is a fine regression target when it is numeric.
        assert!(read("a,y\n1,2\n2,2\n3,2\n", Task::Regression).is_ok());
    }

    #[test]
    fn a_file_separated_by_semicolons_gets_a_hint() {
        let e = read("a;b;y\n1;2;x\n3;4;z\n", Task::Classification).unwrap_err();
        assert!(e.contains("no feature columns") && e.contains("separated by `;`"), "{e}");
        let e = parse("a\tb\ty\n1\t2\tx\n", Path::new("f.csv"), &Target::Name("y".into()), Task::Classification)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column `y`") && e.contains("separated by tabs") && e.contains("a\\u{9}b"), "{e}");
    }

    #[test]
    fn data_text_in_an_error_is_escaped() {
        let e = read("a,y\n1,\u{1b}[2J\n", Task::Regression).unwrap_err();
        assert!(!e.contains('\u{1b}') && e.contains("`\\u{1b}[2J`, not a number"), "{e}");
    }
}
