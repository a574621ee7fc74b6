//! `bma export`: writes a saved model (a run's final model, its best trial, or one
//! `trials/<n>` folder) as an ONNX file, and optionally test vectors from its test split.
//!
//! Exit codes: 0 written; 1 the folder holds no such model, a bad flag, a layer that cannot
//! be exported (named), a data file that changed since the model trained (only read for
//! `--samples`; `--fold-scaling` takes the folder's saved preprocessing), a file that
//! cannot be written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bma::{export, final_model};

use super::{INPUT, OK, Which, model_dir};

/// The file formats `bma export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// ONNX (opset 17): one graph, an ensemble's weighted mean included.
    Onnx,
}

/// Arguments of `bma export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A run folder, or a saved model folder (`final/`, `best/`, `trials/<n>`).
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value = "onnx")]
    pub format: ExportFormat,
    /// The file to write (default: `model.onnx` in the model's folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// In a run folder: the final model (the default when the run built one) or the best trial.
    #[arg(long, value_enum)]
    pub model: Option<Which>,
    /// Also write the first N rows of the test split and bma's outputs for them to
    /// `<out>.samples.npz` (`input`, `output`), for `scripts/onnx-check.py`.
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// Fold the standardisation fitted on the train split into the graph, so that it reads
    /// unscaled features (from the model folder's saved preprocessing).
    #[arg(long = "fold-scaling")]
    pub fold_scaling: bool,
    /// Read the data even if a file changed since the model trained.
    #[arg(long = "allow-changed-data")]
    pub allow_changed_data: bool,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn export(args: &ExportArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::from(OK),
        Err(e) => super::fail(e, INPUT),
    }
}

fn run(args: &ExportArgs) -> Result<(), String> {
    let ExportFormat::Onnx = args.format;
    let dir = model_dir(&args.dir, args.model, "exporting")?;
    let out = args.out.clone().unwrap_or_else(|| dir.join("model.onnx"));
    let (model, config) = export::load(&dir)?;
    if args.samples.is_some() && !args.allow_changed_data {
        let changes = final_model::data_changes(&dir)?;
        if !changes.is_empty() {
            return Err(format!(
                "the data changed since the model in {} trained: {} (pass --allow-changed-data to read it anyway)",
                dir.display(),
                changes.join("; ")
            ));
        }
    }
    let scaling = if args.fold_scaling { Some(export::input_scaling(&config)?) } else { None };
    let bytes = export::onnx(&model, scaling.as_ref()).map_err(|e| format!("{}: {e}", dir.display()))?;
    write(&out, &bytes)?;
    println!("wrote {} (ONNX opset {}, {} bytes)", out.display(), export::OPSET, bytes.len());
    if let Some(n) = args.samples {
        let npz = export::samples(&model, &config, n, args.fold_scaling)?;
        let path = out.with_extension("samples.npz");
        write(&path, &npz)?;
        println!("wrote {} (the first {n} rows of the test split at most, and bma's outputs)", path.display());
    }
    Ok(())
}
