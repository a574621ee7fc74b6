//! `bma predict MODEL INPUT`: a saved model's answers for new inputs, from the model folder
//! alone (its saved preprocessing, `bma::data::fitted`), never the training data.
//!
//! MODEL is a run folder (its final model, else its best trial with a note; `--model
//! final|best` picks), or a saved model folder (`final/`, `best/`, `trials/<n>`). INPUT is what the
//! model trained on: a CSV (feature columns by name, in any order, others ignored), an
//! image or WAV file, a folder of them (class folders too), a `.txt` list of their paths,
//! a text file (one text a line) or a CSV/JSON-lines file with the text column. Output: CSV
//! (`input,prediction`, and `p_<class>` columns with `--proba`) or JSON lines, to stdout or
//! `--out`.
//!
//! Exit codes: 0 predicted (with `--skip-bad`, the bad inputs left out and listed on
//! stderr); 1 no such model, a model folder of another format, an input that cannot be
//! read, a missing column, any bad input without `--skip-bad` (every one is listed, by
//! line or file), a bad flag; 2 the output cannot be written.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bma::final_model::predict::{self, Answer, Predictor};

use super::{INPUT, INTERNAL, OK};
use super::{Which, model_dir};

/// How the answers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// `input,prediction[,p_<class>...]` with a header.
    #[default]
    Csv,
    /// One JSON object a line: `{"input", "prediction", "proba"}`.
    Json,
}

/// Arguments of `bma predict`.
#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// A run folder, or a saved model folder (`final/`, `best/`, `trials/<n>`).
    #[arg(value_name = "MODEL", required_unless_present = "store")]
    pub dir: Option<PathBuf>,
    /// The inputs: a CSV, a text file, an image or WAV file, a folder of them, or a `.txt` list of paths.
    /// (With `--store`, the one path given is the input.)
    pub input: Option<PathBuf>,
    /// Write the answers here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Classification: also each class's probability.
    #[arg(long)]
    pub proba: bool,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Predict the usable inputs and list the bad ones, instead of refusing the input.
    #[arg(long = "skip-bad")]
    pub skip_bad: bool,
    /// In a run folder: the final model (the default when the run built one) or the best trial.
    #[arg(long = "model", value_enum)]
    pub which: Option<Which>,
    /// Predict with a model of a shared study, fetched from this store (with `--study`):
    /// its final model (built from the stored members), its best trial, or `--trial N`.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// With `--store`: the study.
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// Trial N's model (`trials/<N>` of a run folder, or fetched with `--store`).
    #[arg(long, value_name = "N", conflicts_with = "which")]
    pub trial: Option<u64>,
    /// Where the model runs: cpu, wgpu[:N] or cuda[:N] (README: GPU).
    #[arg(long, default_value = "cpu", value_parser = super::study::parse_device)]
    pub device: bma::train::DeviceKind,
}

pub fn predict(args: &PredictArgs) -> ExitCode {
    if args.batch == 0 {
        return super::fail("--batch: at least 1", INPUT);
    }
    // A device this machine lacks (`cuda` without a card) is refused before any work.
    if let Err(e) = bma::train::device::check(args.device) {
        return super::fail(format!("--device: {e}"), INPUT);
    }
    // With --store the model comes from the store: the one path given is the input.
    let (model, input) = match (&args.store, &args.dir, &args.input) {
        (Some(_), Some(input), None) => (None, input.clone()),
        (_, dir, Some(input)) => (dir.as_deref(), input.clone()),
        (_, _, None) => return super::fail("bma predict needs the inputs: bma predict MODEL INPUT", INPUT),
    };
    let place = match super::stored::model_place(model, args.store.as_deref(), args.study.as_deref(), args.trial) {
        Ok(p) => p,
        Err(e) => return super::fail(e, INPUT),
    };
    let dir = match model_dir(place.path(), args.which, "predicting with") {
        Ok(d) => d,
        Err(e) => return super::fail(e, INPUT),
    };
    let opened = predict::open(&dir).and_then(|mut p| {
        p.model = p.model.on_device(args.device)?;
        Ok(p)
    });
    let predictor = match opened {
        Ok(p) => p,
        Err(e) => return super::fail(e, INPUT),
    };
    let samples = match predictor.read(&input) {
        Ok(s) => s,
        Err(e) => return super::fail(e, INPUT),
    };
    let result = match predictor.predict(samples, args.batch) {
        Ok(r) => r,
        Err(e) => return super::fail(e, INPUT),
    };
    if !result.failed.is_empty() {
        let shown = 20;
        let word = if args.skip_bad { "skipped" } else { "bad input" };
        for (id, why) in result.failed.iter().take(shown) {
            eprintln!("{word}: {}: {id}: {}", input.display(), bma::diagnostic::escape(why));
        }
        if result.failed.len() > shown {
            eprintln!("... and {} more", result.failed.len() - shown);
        }
        if !args.skip_bad {
            return super::fail(
                format!(
                    "{} of {} inputs cannot be used (--skip-bad predicts the others)",
                    result.failed.len(),
                    result.failed.len() + result.answers.len()
                ),
                INPUT,
            );
        }
        eprintln!(
            "note: {} of {} inputs skipped (--skip-bad)",
            result.failed.len(),
            result.failed.len() + result.answers.len()
        );
    }
    let text = match args.format {
        Format::Csv => to_csv(&predictor, &result.answers, args.proba),
        Format::Json => to_json(&predictor, &result.answers, args.proba),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return super::fail(e, INTERNAL),
    };
    let written = match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display())),
        None => std::io::stdout().write_all(text.as_bytes()).map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => ExitCode::from(OK),
        Err(e) => super::fail(e, INTERNAL),
    }
}

fn to_csv(p: &Predictor, answers: &[Answer], proba: bool) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["input".to_string(), "prediction".to_string()];
    let with_proba = proba && p.pre.classification();
    if with_proba {
        header.extend(p.pre.classes.iter().map(|c| format!("p_{c}")));
    }
    w.write_record(&header).map_err(|e| e.to_string())?;
    for a in answers {
        let mut row = vec![a.id.clone(), a.prediction.clone()];
        if with_proba {
            row.extend(a.proba.iter().map(|v| v.to_string()));
        }
        w.write_record(&row).map_err(|e| e.to_string())?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

fn to_json(p: &Predictor, answers: &[Answer], proba: bool) -> Result<String, String> {
    let mut out = String::new();
    for a in answers {
        let prediction = match (p.pre.classification(), a.outputs.as_slice()) {
            (false, [v]) => serde_json::json!(v),
            (false, vs) => serde_json::json!(vs),
            (true, _) => serde_json::json!(a.prediction),
        };
        let mut o = serde_json::json!({ "input": a.id, "prediction": prediction });
        if proba && p.pre.classification() {
            let map: serde_json::Map<String, serde_json::Value> =
                p.pre.classes.iter().zip(&a.proba).map(|(c, v)| (c.clone(), serde_json::json!(v))).collect();
            o["proba"] = serde_json::Value::Object(map);
        }
        out.push_str(&serde_json::to_string(&o).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    Ok(out)
}
