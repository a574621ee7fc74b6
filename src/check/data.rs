//! What the `data = ...` of an experiment describes, found without loading it all:
//! the built-in datasets' known shapes, the headers of IDX files, and CSV files typed (read
//! with `data`'s own readers, [`crate::data::csv::analyse`], [`crate::data::idx_dims`] and
//! [`crate::data::idx_roles`], so the checker and the loader cannot disagree on a file). A
//! CSV file is read whole, as its one-hot widths and classes depend on every row, but not
//! encoded. A file whose content the loader would refuse (a header without rows, a quote
//! never closed, a row of the wrong width or not UTF-8, a value that is not a finite number,
//! one class, a free-text column, a column over `max_categories`, an IDX file cut short or
//! with a 0-sized dimension, images in the labels' place) is `bad_data_file` here already;
//! a numeric target with many values read as classes is a `many_classes` warning, and the
//! rows `skip_bad: true` leaves out of a CSV or text file a `bad_data_file` warning with
//! their count. A split's own source (`test:`, `valid:`) must fit the main one
//! (`data::compatible`) and, where both name their classes, name the same ones
//! (`data::same_classes`); a split's own text is read with the training source's tokenizer
//! settings (`data::text_source::fixed_spec`) and each of its labels must be a training class.

mod audio;

use std::path::{Path, PathBuf};

use crate::catalogue::{self, DATASETS, Dataset};
use crate::data::{
    FIXED_PARTS, IdxError, SYNTHETIC_MAX_N, SYNTHETIC_MAX_NOISE, compatible, idx_read, idx_roles, nested_split_arg,
    same_classes, single_label, split_rule,
};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DataInfo, Task, Value};
use crate::source::Span;

/// Resolves a data value to what the model sees. `base` is the folder of the `.bma` file.
///
/// A split's own source (`test: <source>`, `valid: <source>`, any data value) is described
/// too, and must agree with the main source (`data::compatible`); `split:` is then checked
/// against the parts left to carve (`data::split_rule`). Errors in the nested source point
/// at its argument.
pub fn describe(
    value: &Value,
    span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
) -> Result<DataInfo, Diagnostic> {
    describe_with(value, span, arg_span, base, &mut Vec::new())
}

/// [`describe`], pushing warnings on data that loads but probably not as meant (a numeric
/// CSV target with many values read as classes) to `notes`.
pub fn describe_with(
    value: &Value,
    span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
    notes: &mut Vec<Diagnostic>,
) -> Result<DataInfo, Diagnostic> {
    // The class names of the sources that name them, to compare a split's own source's with.
    let mut classes = Vec::new();
    let info = describe_source(value, span, arg_span, base, notes, &mut classes)?;
    let Value::Call(call) = value else { return Ok(info) };
    let mut fixed = [false; 2];
    for (i, part) in FIXED_PARTS.iter().enumerate() {
        let Some(nested) = call.arg(part, usize::MAX) else { continue };
        fixed[i] = true;
        let at = arg_span(part);
        if let Some(own) = nested_split_arg(nested) {
            return Err(Diagnostic::error(
                Code::BadArguments,
                format!("the `{part}:` source takes no `{own}`"),
                at,
                "a split's own source is used whole",
            )
            .with_help(format!(
                "give `{own}` to the main source: `data = SOURCE(..., {part}: SOURCE(...), {own}: ...)`"
            )));
        }
        let mut theirs = Vec::new();
        let other = if catalogue::kind(DATASETS, &call.name) == Some(Dataset::Text) {
            text_fixed(call, nested, part, at, base, &classes, notes, &mut theirs)?
        } else {
            describe_source(nested, at, &|_| at, base, notes, &mut theirs)?
        };
        if let Err(why) =
            compatible(&info, &other, part).and_then(|()| same_classes(&classes, &theirs, part, &other.name))
        {
            return Err(Diagnostic::error(Code::InvalidValue, why, at, format!("does not fit `{}`", info.name))
                .with_label(span, "the training source"));
        }
    }
    let [test, valid] = fixed;
    if let Some(split) = call.arg("split", usize::MAX) {
        check_split(split, arg_span("split"), valid, test)?;
    }
    Ok(info)
}

/// One data source, without its `test:`/`valid:` sources; `classes` gets the class names
/// of a source that names them (class folders, CIFAR label files, CSV and text labels), and
/// stays empty otherwise.
fn describe_source(
    value: &Value,
    span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
    notes: &mut Vec<Diagnostic>,
    classes: &mut Vec<String>,
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
        // Every source names its splits' own sources the same way (`catalogue::FIXED_SPLITS`).
        let allowed: Vec<&str> =
            entry.sig.args.iter().map(|a| a.name).chain(catalogue::FIXED_SPLITS.iter().map(|a| a.name)).collect();
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
    if let (Some(c), Dataset::Idx | Dataset::Images | Dataset::Cifar | Dataset::Npy | Dataset::Npz | Dataset::Audio) =
        (call, entry.kind)
        && let Err((arg, why)) = crate::data::stream_spec(c, base)
    {
        return Err(Diagnostic::error(Code::InvalidValue, why, arg_span(arg), "not usable"));
    }
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
        Dataset::Csv => csv(call, span, arg_span, base, notes, classes),
        Dataset::Idx => idx(arg("images", 0), arg("labels", 1), span, arg_span, base),
        Dataset::Images | Dataset::Cifar | Dataset::Npy | Dataset::Npz => {
            crate::check::arrays::describe(entry.kind, call, span, arg_span, base, classes)
        }
        Dataset::Audio => audio::describe(call, span, arg_span, base, notes, classes),
        Dataset::Text => match call {
            Some(c) => text(c, arg_span, base, notes, classes),
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

fn check_split(split: &Value, span: Span, valid_fixed: bool, test_fixed: bool) -> Result<(), Diagnostic> {
    let Some(rule) = split_rule(valid_fixed, test_fixed) else {
        return Err(Diagnostic::error(
            Code::BadArguments,
            "nothing to split: with both `test:` and `valid:` the source is all train",
            span,
            "no split left to carve",
        )
        .with_help("remove `split`"));
    };
    let want = if valid_fixed || test_fixed { 2 } else { 3 };
    let example = match (valid_fixed, test_fixed) {
        (false, true) => "train and valid: `split: [0.85, 0.15]`",
        (true, false) => "train and test: `split: [0.85, 0.15]`",
        _ => "train, valid and test: `split: [0.7, 0.15, 0.15]`",
    };
    let Value::List(items) = split else {
        return Err(Diagnostic::error(Code::TypeMismatch, format!("`split` is a list of {rule}"), span, "not a list")
            .with_help(example));
    };
    let fr: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
    if items.len() != want || fr.len() != want {
        return Err(Diagnostic::error(
            Code::InvalidValue,
            format!("`split` needs {rule}"),
            span,
            format!("{} values", items.len()),
        )
        .with_help(example));
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
    call: Option<&crate::ir::CallValue>,
    span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
    notes: &mut Vec<Diagnostic>,
    classes: &mut Vec<String>,
) -> Result<DataInfo, Diagnostic> {
    use crate::data::csv::{Problem, analyse, options};
    let path_span = arg_span("path");
    let path = path_arg(call.and_then(|c| c.arg("path", 0)), "path", path_span, base)?;
    let opts = options(call).map_err(|(arg, message)| {
        let code = if arg == "task" { Code::UnknownValue } else { Code::InvalidValue };
        let d = Diagnostic::error(code, message, arg_span(arg), format!("`{arg}`"));
        match arg {
            "task" => {
                let given = call.and_then(|c| c.arg("task", 2)).and_then(Value::as_sym).unwrap_or_default();
                Diagnostic { primary: crate::diagnostic::Label { span: arg_span(arg), text: "not a task".into() }, ..d }
                    .suggest(given, ["classification", "regression"])
            }
            "target" => Diagnostic { code: Code::UnknownColumn, ..d },
            _ => d,
        }
    })?;
    let bytes = read(&path, path_span)?;
    let table = analyse(&bytes, &opts).map_err(|e| {
        let at = e.line.map_or(String::new(), |l| format!(", line {l}"));
        let file = path.display();
        let d = match e.problem {
            Problem::Empty => {
                Diagnostic::error(Code::MissingDataFile, format!("`{file}` is empty"), path_span, "no rows")
            }
            Problem::NoColumn => {
                let (asked, columns) = e.no_column.as_deref().cloned().unwrap_or_default();
                let d = Diagnostic::error(
                    Code::UnknownColumn,
                    format!("`{file}` has {}", e.message),
                    if e.message.ends_with("to ignore") { arg_span("ignore") } else { arg_span("target") },
                    "no such column",
                )
                .suggest(&asked, columns.iter().map(String::as_str));
                let listed = columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
                return d.with_help_default(e.help.clone().unwrap_or_else(|| format!("the columns are {listed}")));
            }
            Problem::NoFeatures => {
                Diagnostic::error(Code::UnknownColumn, "the CSV file has no feature columns", span, "only the target")
            }
            Problem::SingleClass => Diagnostic::error(
                Code::BadDataFile,
                format!("`{file}`: {}", e.message),
                arg_span("target"),
                "one class",
            ),
            Problem::File => {
                Diagnostic::error(Code::BadDataFile, format!("`{file}`{at}: {}", e.message), path_span, e.label)
            }
        };
        match e.help {
            Some(h) => d.with_help(h),
            None if e.skippable => {
                d.with_help("`skip_bad: true` leaves out the rows that cannot be used, and counts them")
            }
            None => d,
        }
    })?;
    for note in &table.notes {
        notes.push(Diagnostic::warning(Code::ManyClasses, note.clone(), arg_span("target"), "read as classes"));
    }
    if let Some(note) = table.skipped_note(&path) {
        notes.push(Diagnostic::warning(Code::BadDataFile, note, path_span, "skip_bad: true"));
    }
    *classes = table.classes.clone();
    Ok(table.info(&path))
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
    // The images' header only (their body is never read here); the labels whole, for the classes.
    let read_idx = |path: &Path, at: Span, whole: bool| {
        idx_read(path, whole).map_err(|e| match e {
            IdxError::Unreadable(why) => {
                Diagnostic::error(Code::MissingDataFile, format!("cannot read data file `{}`", path.display()), at, why)
                    .with_help("paths are relative to the folder of the .bma file")
            }
            IdxError::Bad(why) => Diagnostic::error(
                Code::BadDataFile,
                format!("`{}`: {why}", path.display()),
                at,
                "not a usable IDX file",
            ),
        })
    };
    let (dims, _) = read_idx(&ipath, is, false)?;
    let (ldims, _) = read_idx(&lpath, ls, false)?;
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
    // Read whole only once it is known to be a labels file (one byte per sample).
    let (_, lbytes) = read_idx(&lpath, ls, true)?;
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
fn text(
    call: &crate::ir::CallValue,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
    notes: &mut Vec<Diagnostic>,
    classes: &mut Vec<String>,
) -> Result<DataInfo, Diagnostic> {
    use crate::data::text_source::spec;
    let spec = spec(call, base).map_err(|e| {
        let code = if e.arg == "path" { Code::TypeMismatch } else { Code::InvalidValue };
        Diagnostic::error(code, e.message.clone(), arg_span(e.arg), "not usable here")
    })?;
    text_rows(&spec, arg_span("path"), &|column| arg_span(column), notes, classes).map(|(info, _)| info)
}

/// A split's own `text(...)` source (`test:` or `valid:`, at `at`) of the text source
/// `call`: read with the training source's tokenizer settings (`data::text_source::fixed_spec`),
/// each label one of the training source's `main_classes`.
#[allow(clippy::too_many_arguments)]
fn text_fixed(
    call: &crate::ir::CallValue,
    nested: &Value,
    part: &str,
    at: Span,
    base: &Path,
    main_classes: &[String],
    notes: &mut Vec<Diagnostic>,
    classes: &mut Vec<String>,
) -> Result<DataInfo, Diagnostic> {
    use crate::data::text_source::{fixed_labels, fixed_spec, spec};
    let bad_args = |message: String| Diagnostic::error(Code::BadArguments, message, at, "not usable here");
    let main = spec(call, base).map_err(|e| bad_args(e.message))?;
    let own = fixed_spec(&main, nested, part, base).map_err(|e| bad_args(e.message))?;
    let (info, rows) = text_rows(&own, at, &|_| at, notes, classes)?;
    fixed_labels(main_classes, part, &rows, &own.path)
        .map_err(|e| Diagnostic::error(Code::InvalidValue, e.to_string(), at, "a label the training source lacks"))?;
    Ok(info)
}

/// The rows of a text source read by the loader's reader, and its `DataInfo`; its classes
/// into `classes`, a `skip_bad` warning into `notes`.
fn text_rows(
    spec: &crate::data::text_source::Spec,
    path_span: Span,
    column_span: &dyn Fn(&str) -> Span,
    notes: &mut Vec<Diagnostic>,
    classes: &mut Vec<String>,
) -> Result<(DataInfo, std::sync::Arc<crate::data::text_source::Rows>), Diagnostic> {
    use crate::data::text_source::{RowsError, info, read_labels};
    if std::fs::metadata(&spec.path).is_err() {
        return Err(Diagnostic::error(
            Code::MissingDataFile,
            format!("cannot read data file `{}`", spec.path.display()),
            path_span,
            "no such file",
        )
        .with_help("paths are relative to the folder of the .bma file"));
    }
    let refused = |e: RowsError| match e {
        RowsError::NoColumn { error, column, columns } => {
            let at = if column == spec.text { column_span("text") } else { column_span("target") };
            Diagnostic::error(Code::UnknownColumn, error.to_string(), at, "no such column")
                .suggest(&column, columns.iter().map(String::as_str))
                .with_help_default(format!(
                    "the columns are {}",
                    columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ))
        }
        RowsError::Bad(error) => {
            let d = Diagnostic::error(Code::BadDataFile, error.to_string(), path_span, "not a usable text file");
            match error.line {
                Some(_) if !spec.skip_bad => {
                    d.with_help("`skip_bad: true` leaves out the rows that cannot be used, and counts them")
                }
                _ => d,
            }
        }
    };
    let rows = read_labels(spec).map_err(refused)?;
    let info = info(spec, &rows).map_err(refused)?;
    if let Some(note) = rows.skipped_note(&spec.path) {
        notes.push(Diagnostic::warning(Code::BadDataFile, note, path_span, "skip_bad: true"));
    }
    *classes = crate::data::text_source::classes(&rows);
    Ok((info, rows))
}
