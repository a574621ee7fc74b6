//! `bma eval`: reloads a saved model (a run's final model, its best trial, or one
//! `trials/<n>` folder) and evaluates it on a split of its data, or with `--on FILE` on a
//! labelled input read by the folder's saved preprocessing (`bma::data::fitted`): then the
//! training data is not read at all, and may be gone.
//!
//! Exit codes: 0 evaluated; 1 the folder holds no such model, a bad flag, a data file
//! that changed since the model trained (size or content; `--allow-changed-data`
//! evaluates anyway), the model or its data did not load or the data no longer fits the
//! model (a damaged file is the input's problem).

use std::path::PathBuf;
use std::process::ExitCode;

use bma::data::Part;
use bma::final_model;

use super::{Format, INPUT, OK, Which};
use bma::study::outputs::fmt_num;
use serde_json::{Value as Json, json};

use super::json;

/// Arguments of `bma eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A run folder, or a saved model folder (`final/`, `best/`, `trials/<n>`).
    #[arg(required_unless_present = "store")]
    pub dir: Option<PathBuf>,
    /// Evaluate a model of a shared study, fetched from this store (with `--study`): its
    /// final model (built from the stored members), its best trial, or `--trial N`.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// With `--store`: the study.
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// Trial N's model (`trials/<N>` of a run folder, or fetched with `--store`).
    #[arg(long, value_name = "N", conflicts_with = "model")]
    pub trial: Option<u64>,
    /// The split to evaluate on (default test).
    #[arg(long, value_parser = ["train", "valid", "test"])]
    pub split: Option<String>,
    /// In a run folder: the final model (the default when the run built one) or the best trial.
    #[arg(long, value_enum)]
    pub model: Option<Which>,
    /// Evaluate even if a data file changed since the model trained (its size or content).
    #[arg(long = "allow-changed-data")]
    pub allow_changed_data: bool,
    /// Evaluate on this labelled input (as `bma predict` reads it, with the label's column
    /// or class folders) instead of a split: the model folder alone, no training data.
    #[arg(long, conflicts_with = "split")]
    pub on: Option<PathBuf>,
    /// Text, or one JSON document (docs/json.md).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Where the model runs: cpu, wgpu[:N] or cuda[:N] (README: GPU).
    #[arg(long, default_value = "cpu", value_parser = super::study::parse_device)]
    pub device: bma::train::DeviceKind,
}

pub fn eval(args: &EvalArgs) -> ExitCode {
    let split_name = args.split.as_deref().unwrap_or("test");
    let split: Part = match split_name.parse() {
        Ok(p) => p,
        Err(e) => return super::fail(format!("--split: {e}"), INPUT),
    };
    // A device this machine lacks (`cuda` without a card) is refused before any work.
    if let Err(e) = bma::train::device::check(args.device) {
        return super::fail(format!("--device: {e}"), INPUT);
    }
    let place =
        match super::stored::model_place(args.dir.as_deref(), args.store.as_deref(), args.study.as_deref(), args.trial)
        {
            Ok(p) => p,
            Err(e) => return super::fail(e, INPUT),
        };
    let d = &place.path().to_path_buf();
    if !d.is_dir() {
        return super::fail(format!("{} is not a folder", d.display()), INPUT);
    }
    if let Some(why) = command_study(d) {
        return super::fail(why, INPUT);
    }
    let is_final = |p: &std::path::Path| p.join("final.json").is_file();
    let is_single = |p: &std::path::Path| p.join("model.json").is_file();
    let dir = if is_final(d) || is_single(d) {
        if args.model.is_some() {
            return super::fail(
                format!("--model picks a model in a run folder; {} is a saved model itself", d.display()),
                INPUT,
            );
        }
        d.clone()
    } else {
        let which = match args.model {
            Some(which) => which,
            None if is_final(&d.join("final")) => Which::Final,
            None => {
                // Never silently: the run may have been stopped before its final model.
                eprintln!(
                    "note: {} holds no final model (its run was interrupted, or built none); \
                     evaluating its best trial, best/",
                    d.display()
                );
                Which::Best
            }
        };
        let (sub, what) = match which {
            Which::Final => ("final", "final.json"),
            Which::Best => ("best", "model.json"),
        };
        let dir = d.join(sub);
        if !dir.join(what).is_file() {
            let why = match which {
                Which::Final => " (the run was interrupted, or built none; `--model best` evaluates the best trial)",
                Which::Best => "",
            };
            return super::fail(
                format!("{} holds no saved {sub} model (expected {}){why}", d.display(), dir.join(what).display()),
                INPUT,
            );
        }
        dir
    };
    let title = if is_final(&dir) {
        match final_model::load_summary(&dir) {
            Ok(s) => format!(
                "final model ({}, {} member{})",
                s.method,
                s.members.len(),
                if s.members.len() == 1 { "" } else { "s" }
            ),
            Err(e) => return super::fail(e, INPUT),
        }
    } else {
        "model".to_string()
    };
    if let Some(input) = &args.on {
        return eval_on(&dir, input, args.format, args.device);
    }
    match final_model::data_changes(&dir) {
        Ok(changes) if !changes.is_empty() && !args.allow_changed_data => {
            return super::fail(
                format!(
                    "the data changed since the model in {} trained: {}; its metrics would not be those of its own \
                     data (pass --allow-changed-data to evaluate anyway)",
                    dir.display(),
                    changes.join("; ")
                ),
                INPUT,
            );
        }
        Ok(_) => {}
        Err(e) => return super::fail(e, INPUT),
    }
    match final_model::evaluate_on(&dir, split, args.device) {
        Ok(m) => {
            show(args.format, &title, &dir, &json!({ "split": split_name }), &format!("on {split_name}"), &m);
            ExitCode::from(OK)
        }
        Err(e) => super::fail(e, INPUT),
    }
}

/// `--on FILE`: the saved preprocessing reads `input`, and the answers are measured against
/// its labels; every bad input is listed and refused (exit 1).
fn eval_on(dir: &std::path::Path, input: &std::path::Path, format: Format, device: bma::train::DeviceKind) -> ExitCode {
    let run = || -> Result<(String, bma::train::Metrics), String> {
        let mut predictor = final_model::predict::open(dir)?;
        predictor.model = predictor.model.on_device(device)?;
        let samples = predictor.read(input)?;
        let result = predictor.predict(samples, 256)?;
        if let Some((id, why)) = result.failed.first() {
            return Err(format!(
                "{}: {id}: {} ({} of {} inputs cannot be used)",
                input.display(),
                bma::diagnostic::escape(why),
                result.failed.len(),
                result.failed.len() + result.answers.len()
            ));
        }
        Ok((predictor.title.clone(), predictor.evaluate(&result.answers)?))
    };
    match run() {
        Ok((title, m)) => {
            let on = json!({ "input": input.display().to_string() });
            show(format, &title, dir, &on, &format!("on {}", input.display()), &m);
            ExitCode::from(OK)
        }
        Err(e) => super::fail(e, INPUT),
    }
}

/// Prints the metrics: a title line and a line per metric, or one JSON document with
/// `on` (`split` or `input`) among its fields.
fn show(format: Format, title: &str, dir: &std::path::Path, on: &Json, on_text: &str, m: &bma::train::Metrics) {
    match format {
        Format::Human => {
            println!("{title} {} {on_text}:", dir.display());
            for (k, v) in m {
                println!("  {k:<12} {}", fmt_num(*v));
            }
        }
        Format::Json => {
            let mut doc = json!({
                "schema_version": json::SCHEMA_VERSION,
                "model": title,
                "dir": dir.display().to_string(),
                "metrics": m.iter().map(|(k, v)| (k.clone(), json::num(*v))).collect::<serde_json::Map<_, _>>(),
            });
            if let (Some(d), Some(o)) = (doc.as_object_mut(), on.as_object()) {
                d.extend(o.clone());
            }
            json::print(&doc);
        }
    }
}

/// Why `dir` cannot be evaluated when it is a command study's run folder or trial folder: a
/// command trial's model, if any, is the user's program's own, which bma never loads.
fn command_study(dir: &std::path::Path) -> Option<String> {
    let is_command_trial = |p: &std::path::Path| p.join("params.json").is_file() && !p.join("model.json").is_file();
    let trial = if is_command_trial(dir) {
        true
    } else {
        let Ok(entries) = std::fs::read_dir(dir.join("trials")) else { return None };
        let any = entries.flatten().any(|e| is_command_trial(&e.path()));
        if !any {
            return None;
        }
        false
    };
    let what =
        if trial { "a command trial's folder" } else { "the run folder of a command study (`trial { command }`)" };
    Some(format!(
        "{} is {what}: each trial ran your own program, so bma holds no model to evaluate; \
         evaluate with your program (each trial's folder, trials/<n>/, holds params.json and its logs)",
        dir.display()
    ))
}
