//! Every problem bma reports about a `.bma` file, with code, spans, labels and help.
//!
//! Stages return `Vec<Diagnostic>`; this module alone knows miette, and renders a
//! diagnostic against the [`Sources`] it points into (graphical or JSON).
//! **Invariant:** every [`Code`] has an err fixture under `tests/fixtures/*/err/`
//! named after it.

use std::fmt;

use serde::Serialize;

use crate::source::{Sources, Span};

/// The kind of a diagnostic. Each variant's doc shows a snippet that triggers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The text does not follow the grammar: `space { x: int in 1.. }`.
    SyntaxError,
    /// A name that nothing declares: `dense(widht)`.
    UnknownName,
    /// A layer or block that does not exist: `dense_ac(32)`.
    UnknownLayer,
    /// A function that does not exist: `minimize brannin(x, y)`.
    UnknownFunction,
    /// `use std::blokcs::{a}` or a name the module does not define.
    UnknownImport,
    /// `a.bma` uses `b.bma`, which uses `a.bma`.
    ImportCycle,
    /// Two parameters, blocks, fns, nodes or experiments with one name.
    DuplicateName,
    /// A section written twice in one experiment.
    DuplicateSection,
    /// A section that the experiment needs is missing: a `model` without `data`.
    MissingSection,
    /// A parameter that nothing uses.
    UnusedParam,
    /// A name imported by `use` that the file never uses: `use std::blocks::{conv_bn}` and no `conv_bn`.
    UnusedImport,
    /// A parameter declared under `when c` used where `c` is not known to hold.
    ConditionalParam,
    /// A range with nothing in it: `1..1`, `int in 0.2..0.8`.
    EmptyRange,
    /// A range whose bounds are the wrong way round: `10..1`.
    InvertedRange,
    /// A `log` range that reaches zero or below: `0.0..1.0 log`.
    NonPositiveLog,
    /// A `step` of zero or less, or larger than the range.
    BadStep,
    /// A range bound that is not a constant.
    NonConstant,
    /// A value of the wrong type: `dense(lr)` with `lr: float`.
    TypeMismatch,
    /// Positional or named arguments that do not fit the callee.
    BadArguments,
    /// A value the position does not accept: `loss = cross_entropi`, a match arm on a value the parameter never takes.
    UnknownValue,
    /// Shapes that do not fit at some point of the space.
    ShapeError,
    /// The last layer's width is not `data.classes`.
    OutputWidth,
    /// A `grid` whose space is larger than its `limit`.
    GridTooLarge,
    /// `strategy = darts` over a space where no parameter changes the network.
    DartsNoChoice,
    /// A structural parameter that `darts` cannot mix (too many values, token inputs, a
    /// connection across the decision).
    DartsUnmixable,
    /// An objective or constraint on a metric that does not exist.
    UnknownMetric,
    /// A setting that the section does not have: `train { epoch = 3 }`.
    UnknownSetting,
    /// `ensemble(top: k)` with `k` above `trials`, and other averaging mistakes.
    BadAverage,
    /// A data file that does not exist or cannot be read.
    MissingDataFile,
    /// A data file whose content cannot be used: a CSV header without rows, a quote
    /// never closed, a single-class target, an IDX file cut short or with a 0-sized dimension.
    BadDataFile,
    /// A CSV column that the file does not have.
    UnknownColumn,
    /// A warning: a numeric CSV target with many distinct values read as classes
    /// (`csv("prices.csv", target: "price")` without `task: regression`).
    ManyClasses,
    /// A dataset that does not exist: `data = digts()`.
    UnknownDataset,
    /// `let` values that depend on each other in a circle.
    CyclicDefinition,
    /// A `match` that misses some values of its parameter.
    NonExhaustiveMatch,
    /// A constraint that no point of the space satisfies.
    Infeasible,
    /// A note: a projection is inserted in a `residual` whose shapes differ.
    ResidualProjection,
    /// A value out of its allowed range: `dropout(1.5)`.
    InvalidValue,
    /// A `{name}` in a `trial` command that names no parameter or built-in: `"{lrr}"`.
    UnknownPlaceholder,
    /// Two sections that exclude each other: `trial` (the user's program) and `model`.
    ConflictingSections,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::SyntaxError => "syntax_error",
            Code::UnknownName => "unknown_name",
            Code::UnknownLayer => "unknown_layer",
            Code::UnknownFunction => "unknown_function",
            Code::UnknownImport => "unknown_import",
            Code::ImportCycle => "import_cycle",
            Code::DuplicateName => "duplicate_name",
            Code::DuplicateSection => "duplicate_section",
            Code::MissingSection => "missing_section",
            Code::UnusedParam => "unused_param",
            Code::UnusedImport => "unused_import",
            Code::ConditionalParam => "conditional_param",
            Code::EmptyRange => "empty_range",
            Code::InvertedRange => "inverted_range",
            Code::NonPositiveLog => "non_positive_log",
            Code::BadStep => "bad_step",
            Code::NonConstant => "non_constant",
            Code::TypeMismatch => "type_mismatch",
            Code::BadArguments => "bad_arguments",
            Code::UnknownValue => "unknown_value",
            Code::ShapeError => "shape_error",
            Code::OutputWidth => "output_width",
            Code::GridTooLarge => "grid_too_large",
            Code::DartsNoChoice => "darts_no_choice",
            Code::DartsUnmixable => "darts_unmixable",
            Code::UnknownMetric => "unknown_metric",
            Code::UnknownSetting => "unknown_setting",
            Code::BadAverage => "bad_average",
            Code::MissingDataFile => "missing_data_file",
            Code::BadDataFile => "bad_data_file",
            Code::UnknownColumn => "unknown_column",
            Code::ManyClasses => "many_classes",
            Code::UnknownDataset => "unknown_dataset",
            Code::CyclicDefinition => "cyclic_definition",
            Code::NonExhaustiveMatch => "non_exhaustive_match",
            Code::Infeasible => "infeasible",
            Code::ResidualProjection => "residual_projection",
            Code::InvalidValue => "invalid_value",
            Code::UnknownPlaceholder => "unknown_placeholder",
            Code::ConflictingSections => "conflicting_sections",
        }
    }

    pub const ALL: [Code; 40] = [
        Code::SyntaxError,
        Code::UnknownName,
        Code::UnknownLayer,
        Code::UnknownFunction,
        Code::UnknownImport,
        Code::ImportCycle,
        Code::DuplicateName,
        Code::DuplicateSection,
        Code::MissingSection,
        Code::UnusedParam,
        Code::UnusedImport,
        Code::ConditionalParam,
        Code::EmptyRange,
        Code::InvertedRange,
        Code::NonPositiveLog,
        Code::BadStep,
        Code::NonConstant,
        Code::TypeMismatch,
        Code::BadArguments,
        Code::UnknownValue,
        Code::ShapeError,
        Code::OutputWidth,
        Code::GridTooLarge,
        Code::DartsNoChoice,
        Code::DartsUnmixable,
        Code::UnknownMetric,
        Code::UnknownSetting,
        Code::BadAverage,
        Code::MissingDataFile,
        Code::BadDataFile,
        Code::UnknownColumn,
        Code::ManyClasses,
        Code::UnknownDataset,
        Code::CyclicDefinition,
        Code::NonExhaustiveMatch,
        Code::Infeasible,
        Code::ResidualProjection,
        Code::InvalidValue,
        Code::UnknownPlaceholder,
        Code::ConflictingSections,
    ];
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bma::{}", self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// One problem found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label { span, text: label.into() },
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message, span, label) }
    }

    pub fn note(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Note, ..Diagnostic::error(code, message, span, label) }
    }

    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label { span, text: text.into() });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean" help when a candidate is close to `name`.
    pub fn suggest<'a>(self, name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Diagnostic {
        match did_you_mean(name, candidates) {
            Some(best) => self.with_help(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1) + usize::from(name.len() > 5);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Damerau-Levenshtein distance (adjacent transpositions count one).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// `text` with every control character (C0 including line breaks and tabs, DEL, C1) written
/// as `\u{1b}`, so that text read from a data file (a CSV header, a value, a path) never
/// reaches a terminal as an escape sequence or breaks a one-line message. Applied to every
/// diagnostic when it is rendered ([`render`], [`to_json`]), and to data errors.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect(),
    )
}

// ---------------------------------------------------------------- rendering

/// How to draw diagnostics as text.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    pub width: usize,
    pub color: bool,
}

/// Renders one diagnostic as miette's graphical report.
pub fn render(diagnostic: &Diagnostic, sources: &Sources, options: RenderOptions) -> String {
    let theme =
        if options.color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(options.width).with_links(false);
    let report = Report::new(diagnostic, sources);
    let mut out = String::new();
    match handler.render_report(&mut out, &report) {
        Ok(()) => out,
        Err(_) => format!("{}: {}\n", diagnostic.code, diagnostic.message),
    }
}

/// One diagnostic as a JSON object, for editors.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub labels: Vec<JsonLabel>,
    pub help: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct JsonLabel {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub text: String,
    pub primary: bool,
}

pub fn to_json(diagnostic: &Diagnostic, sources: &Sources) -> JsonDiagnostic {
    let label = |l: &Label, primary: bool| {
        let (file, (line, column), (end_line, end_column)) = locate(sources, l.span);
        JsonLabel { file, line, column, end_line, end_column, text: escape(&l.text).into_owned(), primary }
    };
    let primary = label(&diagnostic.primary, true);
    let mut labels = vec![];
    for l in &diagnostic.secondary {
        labels.push(label(l, false));
    }
    JsonDiagnostic {
        code: diagnostic.code.as_str().to_string(),
        severity: diagnostic.severity,
        message: escape(&diagnostic.message).into_owned(),
        file: primary.file.clone(),
        line: primary.line,
        column: primary.column,
        end_line: primary.end_line,
        end_column: primary.end_column,
        labels: std::iter::once(primary).chain(labels).collect(),
        help: diagnostic.help.as_deref().map(|h| escape(h).into_owned()),
    }
}

fn locate(sources: &Sources, span: Span) -> (String, (usize, usize), (usize, usize)) {
    match sources.get(span.file) {
        Some(s) => (s.name.clone(), s.line_col(span.start), s.line_col(span.end)),
        None => (String::new(), (1, 1), (1, 1)),
    }
}

/// Lines longer than this (bytes) are not drawn under a diagnostic; its labels name their place.
const LONG_LINE: usize = 400;

/// A diagnostic joined with the source of its primary span, as miette wants it.
/// Secondary labels in another file become help lines naming their place.
struct Report {
    code: Code,
    severity: Severity,
    message: String,
    source: miette::NamedSource<String>,
    labels: Vec<miette::LabeledSpan>,
    help: Option<String>,
}

impl Report {
    fn new(d: &Diagnostic, sources: &Sources) -> Report {
        let file = d.primary.span.file;
        let (name, text) =
            sources.get(file).map_or((String::new(), String::new()), |s| (s.name.clone(), s.text.clone()));
        let len = text.len();
        let labeled = |l: &Label, primary: bool| {
            let start = (l.span.start as usize).min(len);
            let end = (l.span.end as usize).clamp(start, len);
            let text = (!l.text.is_empty()).then(|| escape(&l.text).into_owned());
            if primary {
                miette::LabeledSpan::new_primary_with_span(text, (start, end - start))
            } else {
                miette::LabeledSpan::new_with_span(text, (start, end - start))
            }
        };
        let mut labels = vec![labeled(&d.primary, true)];
        let mut help: Vec<String> = Vec::new();
        let mut here = vec![&d.primary];
        for l in &d.secondary {
            if l.span.file == file {
                labels.push(labeled(l, false));
                here.push(l);
            } else if let Some(src) = sources.get(l.span.file) {
                let (line, col) = src.line_col(l.span.start);
                help.push(format!("{} ({}:{line}:{col})", escape(&l.text), src.name));
            }
        }
        // A label on a very long line (a generated or minified file): miette would draw the whole
        // line, and past column 65535 it panics. The labels become lines naming their place.
        let long = |l: &&Label| {
            let at = (l.span.start as usize).min(len);
            let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = text[at..].find('\n').map_or(len, |i| at + i);
            to - from > LONG_LINE
        };
        let (text, labels) = if here.iter().any(long) {
            let places = here.iter().filter_map(|l| {
                let src = sources.get(l.span.file)?;
                let (line, col) = src.line_col(l.span.start);
                Some(if l.text.is_empty() {
                    format!("at {}:{line}:{col}", src.name)
                } else {
                    format!("{} (at {}:{line}:{col})", escape(&l.text), src.name)
                })
            });
            help.splice(0..0, places);
            (String::new(), Vec::new())
        } else {
            (text, labels)
        };
        help.extend(d.help.as_deref().map(|h| escape(h).into_owned()));
        Report {
            code: d.code,
            severity: d.severity,
            message: escape(&d.message).into_owned(),
            source: miette::NamedSource::new(name, text),
            labels,
            help: (!help.is_empty()).then(|| help.join("\n")),
        }
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_writes_every_control_character_as_a_unicode_escape() {
        assert_eq!(escape("plain `name`, ünïcode"), "plain `name`, ünïcode");
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
        // ESC (a terminal escape sequence), BEL, a line break, a tab, DEL and C1's CSI.
        assert_eq!(escape("\u{1b}[31mred\u{7}\n\t\u{7f}\u{9b}"), "\\u{1b}[31mred\\u{7}\\u{a}\\u{9}\\u{7f}\\u{9b}");
    }
}
