//! CSV files: `csv(path, target:, task:)`.
//!
//! Takes a path, the target column and the task; gives [`Raw`] samples. The first line
//! is a header when any of its fields is neither a number nor a missing value
//! ([`csv_columns`], which the checker's `check::data` calls too). A column whose present values all parse as numbers
//! is numeric (missing values become NaN, imputed later with the train mean); any other
//! column is categorical and one-hot encoded over its sorted distinct values (a missing
//! value is all zeros). Classes are the sorted distinct target values.
//!
//! **Invariant:** the feature count and class count equal `check::data::describe`'s.
//! A missing or non-numeric (regression) target, a value that is not a finite f32 (`inf`,
//! `1e400`) in a numeric column or a regression target, or a row with the wrong number of
//! fields, is an error naming the file and line. A leading UTF-8 byte-order mark is dropped.

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

/// Splits one CSV line on commas, honouring double quotes.
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().trim_end_matches('\r').to_string());
    out
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

pub(super) fn load(path: &Path, target: &Target, task: Task) -> Result<Raw, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))?;
    parse(&csv_text(&bytes), path, target, task)
}

pub(super) fn parse(text: &str, path: &Path, target: &Target, task: Task) -> Result<Raw, DataError> {
    let mut lines =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, split_csv_line(l)));
    let Some((first_line, first)) = lines.next() else {
        return Err(DataError::at(path, None, "the file is empty"));
    };
    let (header, columns) = csv_columns(&first);
    let t = match target {
        Target::Name(name) => columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| DataError::at(path, Some(first_line), format!("no column `{name}`")))?,
        Target::Index(i) if *i < columns.len() => *i,
        Target::Index(i) => return Err(DataError::at(path, Some(first_line), format!("no column {i}"))),
        Target::Last => columns.len() - 1,
    };
    let rows: Vec<(usize, Vec<String>)> =
        if header { Vec::new() } else { vec![(first_line, first.clone())] }.into_iter().chain(lines).collect();
    for (line, r) in &rows {
        if r.len() != columns.len() {
            return Err(DataError::at(
                path,
                Some(*line),
                format!(
                    "{} fields where the {} has {}",
                    r.len(),
                    if header { "header" } else { "first row" },
                    columns.len()
                ),
            ));
        }
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
        return Err(DataError::at(path, None, "the file has no feature columns"));
    }
    let classes: Vec<String> = match task {
        Task::Classification => rows.iter().map(|(_, r)| r[t].clone()).collect::<BTreeSet<_>>().into_iter().collect(),
        Task::Regression => Vec::new(),
    };
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
    let info = DataInfo { name: format!("csv({})", path.display()), shape: vec![features], classes, task };
    Ok(Raw { info, x, y })
}
