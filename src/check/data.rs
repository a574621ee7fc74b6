//! What the `data = ...` of an experiment describes, found without loading it all:
//! the built-in datasets' known shapes, and the headers of CSV and IDX files (read with
//! `data`'s own readers, [`crate::data::csv_records`], [`crate::data::csv_columns`],
//! [`crate::data::idx_dims`] and [`crate::data::idx_roles`], so the checker and the loader
//! cannot disagree on a file). A file whose content the loader would refuse (a header without
//! rows, a quote never closed, a row of the wrong width, one class, an IDX file cut short or
//! with a 0-sized dimension, images in the labels' place) is `bad_data_file` here already.

use std::path::{Path, PathBuf};

use crate::catalogue::{self, DATASETS, Dataset};
use crate::data::{
    SYNTHETIC_MAX_N, SYNTHETIC_MAX_NOISE, csv_columns, csv_records, csv_text, delimiter_hint, idx_dims, idx_roles,
    is_missing, single_class, single_label,
};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DataInfo, Task, Value};
use crate::source::Span;

/// Resolves a data value to what the model sees. `base` is the folder of the `.bma` file.
pub fn describe(
    value: &Value,
    span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
) -> Result<DataInfo, Diagnostic> {
    let (name, call) = match value {
        Value::Sym(s) => (s.sym.clone(), None),
        Value::Call(c) => (c.name.clone(), Some(c)),
        other => {
            return Err(Diagnostic::error(
                Code::TypeMismatch,
                "`data` must name a dataset",
                span,
                format!("this is a {}", other.type_name()),
            )
            .with_help("for example `data = digits(split: [0.7, 0.15, 0.15], seed: 1)`"));
        }
    };
    let arg = |k: &str, pos: usize| call.and_then(|c| c.arg(k, pos));
    let entry = catalogue::find(DATASETS, &name);
    if let (Some(c), Some(entry)) = (call, entry) {
        let allowed: Vec<&str> = entry.sig.args.iter().map(|a| a.name).collect();
        // `classes` on a two-class generator gets its own message below.
        let synthetic = matches!(entry.kind, Dataset::Moons | Dataset::Circles | Dataset::Sine);
        for (k, _) in &c.args {
            if let Some(k) = k
                && !allowed.contains(&k.as_str())
                && !(synthetic && k == "classes")
            {
                return Err(Diagnostic::error(
                    Code::BadArguments,
                    format!("`{name}` has no argument `{k}`"),
                    arg_span(k),
                    "unknown argument",
                )
                .suggest(k, allowed.iter().copied())
                .with_help_default(format!(
                    "`{name}` takes {}",
                    allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    if let Some(split) = arg("split", usize::MAX) {
        check_split(split, arg_span("split"))?;
    }
    let fixed = |shape: Vec<usize>, classes: usize| {
        Ok(DataInfo { name: name.clone(), shape, classes, task: Task::Classification, vocab: None })
    };
    let Some(entry) = entry else {
        let names = catalogue::names(DATASETS);
        return Err(Diagnostic::error(
            Code::UnknownDataset,
            format!("unknown dataset `{name}`"),
            span,
            "no such dataset",
        )
        .suggest(&name, names.iter().copied())
        .with_help_default(format!(
            "the datasets are {}",
            names.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
        )));
    };
    match entry.kind {
        Dataset::Digits => fixed(vec![1, 8, 8], 10),
        Dataset::Iris => fixed(vec![4], 3),
        Dataset::Wine => fixed(vec![13], 3),
        Dataset::BreastCancer => fixed(vec![30], 2),
        Dataset::Spirals | Dataset::Moons | Dataset::Circles | Dataset::Sine => {
            let n = synthetic_args(&arg, arg_span)?;
            if entry.kind == Dataset::Sine {
                return Ok(DataInfo {
                    name: name.clone(),
                    shape: vec![1],
                    classes: 1,
                    task: Task::Regression,
                    vocab: None,
                });
            }
            let classes = match arg("classes", usize::MAX) {
                Some(Value::Int(k)) if *k >= 2 && entry.kind == Dataset::Spirals => *k as usize,
                Some(v) if entry.kind == Dataset::Spirals => {
                    return Err(Diagnostic::error(
                        Code::InvalidValue,
                        "`classes` must be an int of at least 2",
                        arg_span("classes"),
                        format!("`{v}`"),
                    ));
                }
                Some(_) => {
                    return Err(Diagnostic::error(
                        Code::BadArguments,
                        format!("`{name}` always has 2 classes"),
                        arg_span("classes"),
                        "not adjustable",
                    ));
                }
                None => 2,
            };
            if classes > n {
                return Err(Diagnostic::error(
                    Code::InvalidValue,
                    format!("{classes} classes from {n} samples"),
                    arg_span("classes"),
                    "more classes than samples",
                )
                .with_help("some classes would have no samples at all; raise `n` or lower `classes`"));
            }
            fixed(vec![2], classes)
        }
        Dataset::Csv => csv(arg("path", 0), arg("target", 1), arg("task", 2), span, arg_span, base),
        Dataset::Idx => idx(arg("images", 0), arg("labels", 1), span, arg_span, base),
        Dataset::Text => match call {
            Some(c) => text(c, arg_span, base),
            None => Err(Diagnostic::error(
                Code::BadArguments,
                "`text` needs a file and its `text` and `target` columns",
                span,
                "no arguments",
            )
            .with_help("for example `data = text(\"reviews.csv\", text: \"review\", target: \"label\")`")),
        },
    }
}

trait HelpDefault {
    fn with_help_default(self, help: String) -> Self;
}

impl HelpDefault for Diagnostic {
    fn with_help_default(self, help: String) -> Self {
        if self.help.is_none() { self.with_help(help) } else { self }
    }
}

/// Checks `n`, `noise` and `seed` of a `synthetic.*` call; gives `n` (default 1000).
fn synthetic_args<'a>(
    arg: &dyn Fn(&str, usize) -> Option<&'a Value>,
    arg_span: &dyn Fn(&str) -> Span,
) -> Result<usize, Diagnostic> {
    let n = match arg("n", usize::MAX) {
        None => 1000,
        Some(Value::Int(n)) if (3..=SYNTHETIC_MAX_N).contains(n) => *n,
        Some(v) => {
            return Err(Diagnostic::error(
                Code::InvalidValue,
                format!("`n` must be an int from 3 to {SYNTHETIC_MAX_N}"),
                arg_span("n"),
                format!("`{v}`"),
            )
            .with_help("`n` is the number of samples, generated in memory before the run"));
        }
    };
    match arg("noise", usize::MAX) {
        None => {}
        Some(v) if v.as_f64().is_some_and(|x| (0.0..=SYNTHETIC_MAX_NOISE).contains(&x)) => {}
        Some(v) => {
            return Err(Diagnostic::error(
                Code::InvalidValue,
                format!("`noise` must be a number from 0 to {SYNTHETIC_MAX_NOISE}"),
                arg_span("noise"),
                format!("`{v}`"),
            )
            .with_help("`noise` is the standard deviation of the Gaussian noise added to coordinates of order 1"));
        }
    }
    match arg("seed", usize::MAX) {
        None | Some(Value::Int(_)) => {}
        Some(v) => {
            return Err(Diagnostic::error(
                Code::InvalidValue,
                "`seed` must be an int",
                arg_span("seed"),
                format!("`{v}`"),
            ));
        }
    }
    Ok(n as usize)
}

fn check_split(split: &Value, span: Span) -> Result<(), Diagnostic> {
    let Value::List(items) = split else {
        return Err(Diagnostic::error(Code::TypeMismatch, "`split` is a list of three fractions", span, "not a list")
            .with_help("train, valid and test: `split: [0.7, 0.15, 0.15]`"));
    };
    let fr: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
    if items.len() != 3 || fr.len() != 3 {
        return Err(Diagnostic::error(
            Code::InvalidValue,
            "`split` needs three fractions: train, valid, test",
            span,
            format!("{} values", items.len()),
        ));
    }
    if fr.iter().any(|f| *f <= 0.0) || (fr.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
        return Err(Diagnostic::error(
            Code::InvalidValue,
            "the split fractions must be positive and add up to 1",
            span,
            format!("they add up to {}", fr.iter().sum::<f64>()),
        ));
    }
    Ok(())
}

fn path_arg(v: Option<&Value>, key: &str, span: Span, base: &Path) -> Result<PathBuf, Diagnostic> {
    match v {
        Some(Value::Str(s)) => Ok(base.join(s)),
        Some(other) => Err(Diagnostic::error(
            Code::TypeMismatch,
            format!("`{key}` must be a string path"),
            span,
            format!("this is a {}", other.type_name()),
        )),
        None => Err(Diagnostic::error(
            Code::BadArguments,
            format!("a path is needed for `{key}`"),
            span,
            format!("`{key}` is missing"),
        )),
    }
}

fn read(path: &Path, span: Span) -> Result<Vec<u8>, Diagnostic> {
    // Only regular files: reading a folder fails, and a device (`/dev/zero`) never ends.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        return Err(Diagnostic::error(
            Code::MissingDataFile,
            format!("`{}` is not a file", path.display()),
            span,
            "not a regular file",
        )
        .with_help("paths are relative to the folder of the .bma file"));
    }
    std::fs::read(path).map_err(|e| {
        Diagnostic::error(
            Code::MissingDataFile,
            format!("cannot read data file `{}`", path.display()),
            span,
            e.to_string(),
        )
        .with_help("paths are relative to the folder of the .bma file")
    })
}

fn csv(
    path: Option<&Value>,
    target: Option<&Value>,
    task: Option<&Value>,
    span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
) -> Result<DataInfo, Diagnostic> {
    let path_span = arg_span("path");
    let path = path_arg(path, "path", path_span, base)?;
    let bytes = read(&path, path_span)?;
    let text = csv_text(&bytes);
    let bad = |line: Option<usize>, message: String, label: &str| {
        let at = line.map_or(String::new(), |l| format!(", line {l}"));
        Diagnostic::error(Code::BadDataFile, format!("`{}`{at}: {message}", path.display()), path_span, label)
    };
    let records = csv_records(&text).map_err(|e| bad(Some(e.line), e.message, "unclosed quote"))?;
    let mut records = records.into_iter();
    let Some(first) = records.next() else {
        return Err(Diagnostic::error(
            Code::MissingDataFile,
            format!("`{}` is empty", path.display()),
            path_span,
            "no rows",
        ));
    };
    let (header, columns) = csv_columns(&first.fields);
    let hint = delimiter_hint(&columns);
    let target_span = arg_span("target");
    let target_idx = match target {
        Some(Value::Str(t)) | Some(Value::Sym(crate::ir::Symbol { sym: t })) => {
            match columns.iter().position(|c| c == t) {
                Some(i) => i,
                None => {
                    return Err(Diagnostic::error(
                        Code::UnknownColumn,
                        format!("`{}` has no column `{t}`", path.display()),
                        target_span,
                        "no such column",
                    )
                    .suggest(t, columns.iter().map(String::as_str))
                    .with_help_default(hint.clone().unwrap_or_else(|| {
                        format!(
                            "the columns are {}",
                            columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                        )
                    })));
                }
            }
        }
        Some(Value::Int(i)) if (*i as usize) < columns.len() && *i >= 0 => *i as usize,
        Some(other) => {
            return Err(Diagnostic::error(
                Code::UnknownColumn,
                format!("no column `{other}`"),
                target_span,
                "no such column",
            ));
        }
        None => columns.len() - 1,
    };
    let task = match task.and_then(Value::as_sym) {
        None | Some("classification") => Task::Classification,
        Some("regression") => Task::Regression,
        Some(other) => {
            return Err(Diagnostic::error(
                Code::UnknownValue,
                format!("unknown task `{other}`"),
                arg_span("task"),
                "not a task",
            )
            .suggest(other, ["classification", "regression"]));
        }
    };
    let rows: Vec<Vec<String>> = if header { None } else { Some(first.clone()) }
        .into_iter()
        .chain(records)
        .map(|r| {
            if r.fields.len() == columns.len() {
                return Ok(r.fields);
            }
            let runs_on = if r.last_line > r.line {
                format!(" (a quoted field runs on to line {}: is a quote missing?)", r.last_line)
            } else {
                String::new()
            };
            let what = if header { "header" } else { "first row" };
            Err(bad(
                Some(r.line),
                format!("{} fields where the {what} has {}{runs_on}", r.fields.len(), columns.len()),
                "a row with the wrong number of fields",
            ))
        })
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Err(bad(None, "the file has a header but no rows".to_string(), "no rows"));
    }
    let mut features = 0usize;
    let mut classes = std::collections::BTreeSet::new();
    for (ci, _) in columns.iter().enumerate() {
        let values: Vec<&str> =
            rows.iter().filter_map(|r| r.get(ci).map(String::as_str)).filter(|f| !is_missing(f)).collect();
        if ci == target_idx {
            classes.extend(values.iter().map(|v| v.to_string()));
            continue;
        }
        let numeric = values.iter().all(|v| v.parse::<f64>().is_ok());
        features += if numeric { 1 } else { values.iter().collect::<std::collections::BTreeSet<_>>().len() };
    }
    if features == 0 {
        let d = Diagnostic::error(Code::UnknownColumn, "the CSV file has no feature columns", span, "only the target");
        return Err(match hint {
            Some(hint) => d.with_help(hint),
            None => d,
        });
    }
    let classes = match task {
        Task::Classification => match classes.len() {
            0 => {
                return Err(bad(
                    None,
                    format!("the target `{}` is missing in every row", columns[target_idx]),
                    "no target values",
                ));
            }
            1 => {
                let only = classes.first().map_or("", String::as_str);
                return Err(Diagnostic::error(
                    Code::BadDataFile,
                    format!("`{}`: {}", path.display(), single_class(&columns[target_idx], only)),
                    arg_span("target"),
                    "one class",
                ));
            }
            n => n,
        },
        Task::Regression => 1,
    };
    Ok(DataInfo { name: format!("csv({})", path.display()), shape: vec![features], classes, task, vocab: None })
}

fn idx(
    images: Option<&Value>,
    labels: Option<&Value>,
    _span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
) -> Result<DataInfo, Diagnostic> {
    let (is, ls) = (arg_span("images"), arg_span("labels"));
    let ipath = path_arg(images, "images", is, base)?;
    let lpath = path_arg(labels, "labels", ls, base)?;
    let ibytes = read(&ipath, is)?;
    let lbytes = read(&lpath, ls)?;
    let header_of = |bytes: &[u8], path: &Path, at: Span| {
        idx_dims(bytes).map_err(|e| {
            Diagnostic::error(Code::BadDataFile, format!("`{}`: {e}", path.display()), at, "not a usable IDX file")
        })
    };
    let dims = header_of(&ibytes, &ipath, is)?;
    let ldims = header_of(&lbytes, &lpath, ls)?;
    if let Err((is_labels, e)) = idx_roles(&dims, &ldims) {
        let (path, at) = if is_labels { (&lpath, ls) } else { (&ipath, is) };
        return Err(Diagnostic::error(
            Code::BadDataFile,
            format!("`{}`: {e}", path.display()),
            at,
            if is_labels { "not a labels file" } else { "not an images file" },
        ));
    }
    if ldims[0] != dims[0] {
        return Err(Diagnostic::error(
            Code::BadDataFile,
            "images and labels hold different numbers of samples",
            ls,
            format!("{} labels for {} images", ldims[0], dims[0]),
        ));
    }
    let header = 4 + 4 * ldims.len();
    let body = lbytes.get(header..).unwrap_or_default();
    let classes = body.iter().copied().max().map_or(0, |m| m as usize + 1);
    if let Some(first) = body.first()
        && body.iter().all(|b| b == first)
    {
        return Err(Diagnostic::error(
            Code::BadDataFile,
            format!("`{}`: {}", lpath.display(), single_label(i64::from(*first))),
            ls,
            "one class",
        ));
    }
    let shape = match &dims[1..] {
        [h, w] => vec![1, *h, *w],
        rest => rest.to_vec(),
    };
    Ok(DataInfo { name: format!("idx({})", ipath.display()), shape, classes, task: Task::Classification, vocab: None })
}

/// `text(...)`: the data source's own reader (`data::text_source`) finds the columns and the
/// classes; no text is tokenized. `data.vocab` is the `vocab` cap, known without reading.
fn text(call: &crate::ir::CallValue, arg_span: &dyn Fn(&str) -> Span, base: &Path) -> Result<DataInfo, Diagnostic> {
    use crate::data::text_source::{RowsError, describe, spec};
    let spec = spec(call, base).map_err(|e| {
        let code = if e.arg == "path" { Code::TypeMismatch } else { Code::InvalidValue };
        Diagnostic::error(code, e.message.clone(), arg_span(e.arg), "not usable here")
    })?;
    let path_span = arg_span("path");
    if std::fs::metadata(&spec.path).is_err() {
        return Err(Diagnostic::error(
            Code::MissingDataFile,
            format!("cannot read data file `{}`", spec.path.display()),
            path_span,
            "no such file",
        )
        .with_help("paths are relative to the folder of the .bma file"));
    }
    describe(&spec).map_err(|e| match e {
        RowsError::NoColumn { error, column, columns } => {
            let at = if column == spec.text { arg_span("text") } else { arg_span("target") };
            Diagnostic::error(Code::UnknownColumn, error.to_string(), at, "no such column")
                .suggest(&column, columns.iter().map(String::as_str))
                .with_help_default(format!(
                    "the columns are {}",
                    columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ))
        }
        RowsError::Bad(error) => {
            Diagnostic::error(Code::BadDataFile, error.to_string(), path_span, "not a usable text file")
        }
    })
}
