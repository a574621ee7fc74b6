//! Predicting with a saved model on new inputs: what `bma predict` and `bma eval --on` call.
//!
//! Takes a model folder (`final/`: the members and weights of `final.json`, a soup or SWA
//! being one member; `best/` or `trials/<n>`: one model) and inputs read by its saved
//! [`Preprocess`] ([`Preprocess::read`]); gives one [`Answer`] per usable input: the
//! class name (the most probable class) or the value in the target's own units, and the
//! class probabilities (an ensemble: the weighted mean of its members', or with `combine:
//! vote` the weighted share of votes), plus the inputs that could not be used, each with
//! why. No training data is read: everything comes from the folder.
//!
//! **Invariant:** on the rows of a split of the training data, the outputs are those
//! `bma eval` measures on that split (the same preprocessing, the same members and
//! weights); a folder saved before format 2 ([`crate::data::fitted::FORMAT`]), a newer
//! one, or members whose preprocessing differs is an error that says what to do.

use std::path::{Path, PathBuf};

use crate::data::Split;
use crate::data::fitted::{Preprocess, Sample};
use crate::ir::Task;
use crate::train::{self, Metrics};

use super::FinalModel;

/// A loaded model and the preprocessing its inputs need.
#[derive(Debug, Clone)]
pub struct Predictor {
    pub model: FinalModel,
    pub pre: Preprocess,
    /// What was loaded, for the user: `final model (ensemble(top: 3), 3 members)` or `model`.
    pub title: String,
}

/// The answer for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The input ([`Sample::id`]).
    pub id: String,
    /// The class name, or the value (each output's, joined by `;` when there are several).
    pub prediction: String,
    /// Classification: the probability of each class, in the order of [`Preprocess::classes`].
    pub proba: Vec<f32>,
    /// The raw outputs: probabilities, or values in the target's units.
    pub outputs: Vec<f32>,
    pub label: Option<String>,
}

/// The answers for the usable inputs (in input order) and the inputs that could not be
/// used, `(id, why)`.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    pub answers: Vec<Answer>,
    pub failed: Vec<(String, String)>,
}

/// Loads the model saved in `dir` (a `final.json` or `model.json` folder).
pub fn open(dir: &Path) -> Result<Predictor, String> {
    let (model, members, title) = if dir.join("final.json").is_file() {
        let (model, _) = super::load(dir)?;
        let summary = super::load_summary(dir)?;
        let dirs = member_dirs(dir)?;
        let n = summary.members.len();
        let title = format!("final model ({}, {n} member{})", summary.method, if n == 1 { "" } else { "s" });
        (model, dirs, title)
    } else if dir.join("model.json").is_file() {
        let (m, _) = train::load(dir)?;
        (FinalModel { members: vec![(m, 1.0)], vote: false }, vec![dir.to_path_buf()], "model".to_string())
    } else {
        return Err(format!("{} holds no saved model (no final.json or model.json)", dir.display()));
    };
    let mut pre: Option<Preprocess> = None;
    for member in &members {
        let config = train::load_config(member)?;
        let Some(p) = config.preprocess else {
            let format = train::saved_format(member)?;
            return Err(format!(
                "{} was saved by an older bma (model folder format {format}), without its preprocessing: \
                 predicting needs format {}; train it again with `bma run` (`bma eval` still evaluates it on its data)",
                member.display(),
                crate::data::fitted::FORMAT
            ));
        };
        match &pre {
            Some(first) if *first != p => {
                return Err(format!(
                    "{}: its preprocessing differs from the first member's; the members did not train on the same data",
                    member.display()
                ));
            }
            Some(_) => {}
            None => pre = Some(p),
        }
    }
    let pre = pre.ok_or_else(|| format!("{}: the final model has no members", dir.display()))?;
    for (m, _) in &model.members {
        if m.plan.in_features() != pre.features() {
            return Err(format!(
                "{}: the network takes {} inputs, its preprocessing gives {}",
                dir.display(),
                m.plan.in_features(),
                pre.features()
            ));
        }
    }
    Ok(Predictor { model, pre, title })
}

impl Predictor {
    /// Predicts `samples`, `batch` rows at a time; the unusable ones go to `failed`.
    pub fn predict(&self, samples: Vec<Sample>, batch: usize) -> Result<Predictions, String> {
        let f = self.pre.features();
        let mut out = Predictions::default();
        let mut ready: Vec<(String, Option<String>, Vec<f32>)> = Vec::new();
        for s in samples {
            match s.x {
                Ok(mut x) => {
                    self.pre.scale(&mut x);
                    ready.push((s.id, s.label, x));
                }
                Err(why) => out.failed.push((s.id, why)),
            }
        }
        for chunk in ready.chunks(batch.max(1)) {
            let x: Vec<f32> = chunk.iter().flat_map(|(_, _, x)| x.iter().copied()).collect();
            debug_assert_eq!(x.len(), chunk.len() * f);
            let split = Split { x, y: vec![0.0; chunk.len()], n: chunk.len(), stored: None };
            let outputs = self.model.predict(&split)?;
            let k = if chunk.is_empty() { 1 } else { outputs.len() / chunk.len() };
            for ((id, label, _), row) in chunk.iter().zip(outputs.chunks(k.max(1))) {
                out.answers.push(self.answer(id.clone(), label.clone(), row));
            }
        }
        Ok(out)
    }

    fn answer(&self, id: String, label: Option<String>, row: &[f32]) -> Answer {
        if !self.pre.classification() {
            let prediction = row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(";");
            return Answer { id, prediction, proba: Vec::new(), outputs: row.to_vec(), label };
        }
        let proba = match row {
            [p] => vec![1.0 - p, *p],
            _ => row.to_vec(),
        };
        let best = (0..proba.len()).fold(0, |b, i| if proba[i] > proba[b] { i } else { b });
        let prediction = self.pre.classes.get(best).cloned().unwrap_or_else(|| best.to_string());
        Answer { id, prediction, proba, outputs: row.to_vec(), label }
    }

    /// Metrics of `answers` against their labels (each answer needs one): what `bma eval`
    /// reports on a split, here on a labelled input file. A label that is not a class (or
    /// not a number, for regression) is an error naming the input.
    pub fn evaluate(&self, answers: &[Answer]) -> Result<Metrics, String> {
        let (first, _) = self.model.members.first().ok_or("the final model has no members")?;
        let mut y = Vec::with_capacity(answers.len());
        for a in answers {
            let Some(label) = &a.label else {
                return Err(format!("{}: no label to measure against", a.id));
            };
            y.push(if self.pre.classification() {
                self.pre
                    .classes
                    .iter()
                    .position(|c| c == label)
                    .ok_or_else(|| format!("{}: the label `{label}` is not one of the model's classes", a.id))?
                    as f32
            } else {
                label
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("{}: the label `{label}` is not a number", a.id))?
            });
        }
        if y.is_empty() {
            return Err("no input to measure".into());
        }
        let out: Vec<f32> = answers.iter().flat_map(|a| a.outputs.iter().copied()).collect();
        let split = Split { x: Vec::new(), y, n: answers.len(), stored: None };
        debug_assert!(first.task == Task::Classification || !self.pre.classification());
        Ok(super::outputs_metrics(first, &out, &split))
    }
}

/// The member folders of the final model in `dir`.
fn member_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let path = dir.join("final.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let saved: super::SavedFinal = super::from_json_exact(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(saved.members.iter().map(|(sub, _)| dir.join(sub)).collect())
}
