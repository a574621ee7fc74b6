//! What `audio(dir, ...)` describes, from the folder listing and the WAV headers alone:
//! the arguments parsed by [`crate::data::audio_spec`] (so the shape is the loader's), the
//! classes and clips listed by [`crate::data::audio_listing`], and each clip's header read by
//! [`crate::data::wav_header`]. A clip the loader would refuse for its header (not WAV, cut
//! short, empty, an unsupported encoding) is `bad_data_file` here already, or with
//! `skip_bad: true` a warning that counts the clips skipped.

use std::path::Path;

use crate::data::{audio_listing, audio_spec, wav_header};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DataInfo, Task, Value};
use crate::source::Span;

pub(super) fn describe(
    call: Option<&crate::ir::CallValue>,
    span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
    notes: &mut Vec<Diagnostic>,
    classes: &mut Vec<String>,
) -> Result<DataInfo, Diagnostic> {
    let Some(call) = call.filter(|c| c.arg("dir", 0).is_some()) else {
        return Err(Diagnostic::error(Code::BadArguments, "`audio` needs a folder", span, "`dir` is missing")
            .with_help("one folder of WAV clips per class: `audio(\"data/speech/train\")`"));
    };
    let spec = audio_spec(call, base).map_err(|e| {
        let code = if matches!(call.arg("dir", 0), Some(Value::Str(_))) || e.arg != "dir" {
            Code::InvalidValue
        } else {
            Code::TypeMismatch
        };
        Diagnostic::error(code, e.message, arg_span(e.arg), format!("this `{}`", e.arg))
    })?;
    let dir_span = arg_span("dir");
    let listing = audio_listing(&spec.dir).map_err(|e| {
        let code = if spec.dir.is_dir() { Code::BadDataFile } else { Code::MissingDataFile };
        Diagnostic::error(code, e.to_string(), dir_span, "not a usable audio folder")
            .with_help("paths are relative to the folder of the .bma file; each class is a folder of WAV clips")
    })?;
    let mut good = vec![0usize; listing.classes.len()];
    let mut bad = Vec::new();
    for (path, class) in &listing.clips {
        match wav_header(path) {
            Ok(_) => good[*class] += 1,
            Err(why) => bad.push((path, why)),
        }
    }
    if let Some((path, why)) = bad.first() {
        let total = listing.clips.len();
        let more = match bad.len() {
            1 => String::new(),
            n => format!(" (and {} more of the {total} clips)", n - 1),
        };
        if !spec.skip_bad {
            return Err(Diagnostic::error(
                Code::BadDataFile,
                format!("`{}`: {why}{more}", path.display()),
                dir_span,
                "a clip that cannot be used",
            )
            .with_help("`skip_bad: true` leaves out the clips that cannot be used, and counts them"));
        }
        if let Some(c) = good.iter().position(|g| *g == 0) {
            return Err(Diagnostic::error(
                Code::BadDataFile,
                format!("class `{}` has no usable clip: `{}`: {why}{more}", listing.classes[c], path.display()),
                dir_span,
                "a class with no usable clip",
            ));
        }
        notes.push(Diagnostic::warning(
            Code::BadDataFile,
            format!("{} of {total} clips are skipped; the first: `{}`: {why}", bad.len(), path.display()),
            span,
            "skip_bad: true",
        ));
    }
    *classes = listing.classes.clone();
    Ok(DataInfo {
        name: spec.name(),
        shape: spec.shape(),
        classes: listing.classes.len(),
        task: Task::Classification,
        vocab: None,
    })
}
