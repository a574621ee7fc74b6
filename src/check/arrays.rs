//! What `images(...)`, `cifar(...)`, `npy(...)` and `npz(...)` describe, found with `data`'s
//! own readers ([`crate::data::images_describe`], [`crate::data::cifar_describe`],
//! [`crate::data::npy_describe`]) so that the checker and the loader cannot disagree: folder
//! listings, image headers (only without `size:`), batch sizes and `.npy` headers, never the
//! pixels. An argument the loader would refuse is `invalid_value` (or `type_mismatch`) at
//! the argument; a path that does not exist is `missing_data_file`; content the loader would
//! refuse is `bad_data_file`, naming the file (and CSV line).

use std::path::{Path, PathBuf};

use crate::catalogue::Dataset;
use crate::data::{ArgError, CifarSpec, DataError, ImageSpec, NpySpec, cifar_describe, images_describe, npy_describe};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{CallValue, DataInfo};
use crate::source::Span;

pub(super) fn describe(
    kind: Dataset,
    call: Option<&CallValue>,
    span: Span,
    arg_span: &dyn Fn(&str) -> Span,
    base: &Path,
    classes: &mut Vec<String>,
) -> Result<DataInfo, Diagnostic> {
    let Some(call) = call else {
        return Err(Diagnostic::error(
            Code::BadArguments,
            "this dataset reads files: give their paths",
            span,
            "no arguments",
        )
        .with_help("for example `images(\"photos\", size: [32, 32], channels: 3)`"));
    };
    let arg_err = |e: ArgError| {
        let code = if call.arg(e.arg, usize::MAX).is_none() && matches!(e.arg, "dir" | "path" | "x" | "y") {
            Code::BadArguments
        } else {
            Code::InvalidValue
        };
        Diagnostic::error(code, e.message, arg_span(e.arg), "cannot be used")
    };
    let data_err = |e: DataError, main: &Path, at: &str| {
        let code = if main.exists() { Code::BadDataFile } else { Code::MissingDataFile };
        let label = if code == Code::MissingDataFile { "no such file or folder" } else { "not usable" };
        let d = Diagnostic::error(code, e.to_string(), arg_span(at), label);
        if code == Code::MissingDataFile { d.with_help("paths are relative to the folder of the .bma file") } else { d }
    };
    match kind {
        Dataset::Images => {
            let spec = ImageSpec::from_call(call, base).map_err(arg_err)?;
            let (info, names) = images_describe(&spec).map_err(|e| data_err(e, &spec.path, "dir"))?;
            *classes = names;
            Ok(info)
        }
        Dataset::Cifar => {
            let spec = CifarSpec::from_call(call, base).map_err(arg_err)?;
            let (info, names) = cifar_describe(&spec).map_err(|e| data_err(e, &spec.dir, "dir"))?;
            *classes = names;
            Ok(info)
        }
        _ => {
            let spec = NpySpec::from_call(call, base).map_err(arg_err)?;
            npy_describe(&spec).map_err(|e| {
                let (main, at): (PathBuf, &str) = match &spec.arrays {
                    crate::data::Arrays::Npz { path, .. } => (path.clone(), "path"),
                    crate::data::Arrays::Files { y, .. } if e.path.as_deref() == Some(y.as_path()) => (y.clone(), "y"),
                    crate::data::Arrays::Files { x, .. } => (x.clone(), "x"),
                };
                data_err(e, &main, at)
            })
        }
    }
}
