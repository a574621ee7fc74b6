//! `bma export`: writes a saved model (a run's final model, its best trial, or one
//! `trials/<n>` folder) as an ONNX file, and optionally test vectors from its test split.
//!
//! Exit codes: 0 written; 1 the folder holds no such model, a bad flag, a layer that cannot
//! be exported (named), a data file that changed since the model trained (only read for
//! `--samples` and `--fold-scaling`), a file that cannot be written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bma::{export, final_model};

use super::{INPUT, OK};

/// The file formats `bma export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// ONNX (opset 17): one graph, an ensemble's weighted mean included.
    Onnx,
}

/// Which of a run folder's models to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The final model (`final/`: ensemble members and weights, soup, SWA).
    Final,
    /// The best single trial (`best/`).
    Best,
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
    /// unscaled features (reads the model's data).
    #[arg(long = "fold-scaling")]
    pub fold_scaling: bool,
    /// Read the data even if a file changed since the model trained.
    #[arg(long = "allow-changed-data")]
    pub allow_changed_data: bool,
}

/// The model folder `args` names, or why there is none.
fn model_dir(args: &ExportArgs) -> Result<PathBuf, String> {
    let d = &args.dir;
    if !d.is_dir() {
        return Err(format!("{} is not a folder", d.display()));
    }
    let saved = |p: &Path| p.join("final.json").is_file() || p.join("model.json").is_file();
    if saved(d) {
        if args.model.is_some() {
            return Err(format!("--model picks a model in a run folder; {} is a saved model itself", d.display()));
        }
        return Ok(d.clone());
    }
    let which = match args.model {
        Some(w) => w,
        None if d.join("final").join("final.json").is_file() => Which::Final,
        None => {
            eprintln!("note: {} holds no final model; exporting its best trial, best/", d.display());
            Which::Best
        }
    };
    let (sub, file) = match which {
        Which::Final => ("final", "final.json"),
        Which::Best => ("best", "model.json"),
    };
    let dir = d.join(sub);
    if !dir.join(file).is_file() {
        return Err(format!("{} holds no saved {sub} model (expected {})", d.display(), dir.join(file).display()));
    }
    Ok(dir)
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
    let dir = model_dir(args)?;
    let out = args.out.clone().unwrap_or_else(|| dir.join("model.onnx"));
    let (model, config) = export::load(&dir)?;
    let reads_data = args.samples.is_some() || args.fold_scaling;
    if reads_data && !args.allow_changed_data {
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
