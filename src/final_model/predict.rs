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
//! Members of different data settings (a searched `vocab`, `max_len`, mel `bins`, ...)
//! each keep their own [`Preprocess`]: [`Predictor::read`] reads the input once per distinct
//! preprocessing, and each member predicts from the rows its own preprocessing made. An
//! input is usable when every preprocessing can use it.
//!
//! **Invariant:** on the rows of a split of the training data, the outputs are those
//! `bma eval` measures on that split (the same preprocessing per member, the same members
//! and weights); a folder saved before format 2 ([`crate::data::fitted::FORMAT`]), a newer
//! one, or members whose answers differ in kind (task, classes) is an error that says what
//! to do.

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
    /// The first member's preprocessing: the task, the class names and how answers read.
    pub pre: Preprocess,
    /// The members' distinct preprocessings, the first being `pre`.
    pub pres: Vec<Preprocess>,
    /// Each member's index into `pres`.
    pub member_pre: Vec<usize>,
    /// What was loaded, for the user: `final model (ensemble(top: 3), 3 members)` or `model`.
    pub title: String,
}

/// Inputs read once per distinct preprocessing of a [`Predictor`] ([`Predictor::read`]): the
/// same inputs in the same order in each.
#[derive(Debug, Clone)]
pub struct Inputs {
    per: Vec<Vec<Sample>>,
}

impl Inputs {
    /// How many inputs were read.
    pub fn len(&self) -> usize {
        self.per.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    let mut pres: Vec<Preprocess> = Vec::new();
    let mut member_pre = Vec::new();
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
        if let Some(first) = pres.first()
            && (first.task != p.task || first.classes != p.classes)
        {
            return Err(format!(
                "{}: it predicts {} where the first member predicts {}; the members did not train on the same data",
                member.display(),
                answers_of(&p),
                answers_of(first)
            ));
        }
        member_pre.push(match pres.iter().position(|q| *q == p) {
            Some(i) => i,
            None => {
                pres.push(p);
                pres.len() - 1
            }
        });
    }
    let pre = pres.first().cloned().ok_or_else(|| format!("{}: the final model has no members", dir.display()))?;
    if member_pre.len() != model.members.len() {
        return Err(format!("{}: final.json lists {} members", dir.display(), member_pre.len()));
    }
    for ((m, _), p) in model.members.iter().zip(&member_pre) {
        let p = &pres[*p];
        if m.plan.in_features() != p.features() {
            return Err(format!(
                "{}: the network takes {} inputs, its preprocessing gives {}",
                dir.display(),
                m.plan.in_features(),
                p.features()
            ));
        }
    }
    Ok(Predictor { model, pre, pres, member_pre, title })
}

/// What a preprocessing's answers are, for a message.
fn answers_of(p: &Preprocess) -> String {
    if p.classification() { format!("the classes [{}]", p.classes.join(", ")) } else { "values".to_string() }
}

impl Predictor {
    /// Reads the inputs at `path` once per distinct preprocessing of the members
    /// ([`Preprocess::read`]). Errors: the input cannot be read by one of them.
    pub fn read(&self, path: &Path) -> Result<Inputs, String> {
        let per: Vec<Vec<Sample>> =
            self.pres.iter().map(|p| p.read(path)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        if let Some((first, rest)) = per.split_first()
            && rest.iter().any(|o| o.len() != first.len() || o.iter().zip(first).any(|(a, b)| a.id != b.id))
        {
            return Err(format!("{}: the members' preprocessings read different inputs from it", path.display()));
        }
        Ok(Inputs { per })
    }

    /// Predicts `inputs`, `batch` rows at a time; the unusable ones go to `failed`.
    pub fn predict(&self, inputs: Inputs, batch: usize) -> Result<Predictions, String> {
        let mut out = Predictions::default();
        // Per usable input: its id, label and one scaled row per preprocessing.
        let mut ready: Vec<(String, Option<String>, Vec<Vec<f32>>)> = Vec::new();
        let mut per: Vec<std::vec::IntoIter<Sample>> = inputs.per.into_iter().map(Vec::into_iter).collect();
        let n = per.first().map_or(0, ExactSizeIterator::len);
        for _ in 0..n {
            let samples: Vec<Sample> = per.iter_mut().filter_map(Iterator::next).collect();
            let Some(first) = samples.first() else { break };
            let (id, label) = (first.id.clone(), first.label.clone());
            let mut rows = Vec::with_capacity(samples.len());
            let mut why = None;
            for (s, p) in samples.into_iter().zip(&self.pres) {
                match s.x {
                    Ok(mut x) => {
                        p.scale(&mut x);
                        rows.push(x);
                    }
                    Err(e) => {
                        why.get_or_insert(e);
                    }
                }
            }
            match why {
                None => ready.push((id, label, rows)),
                Some(why) => out.failed.push((id, why)),
            }
        }
        for chunk in ready.chunks(batch.max(1)) {
            let splits: Vec<Split> = (0..self.pres.len())
                .map(|k| {
                    let x: Vec<f32> = chunk.iter().flat_map(|(_, _, rows)| rows[k].iter().copied()).collect();
                    debug_assert_eq!(x.len(), chunk.len() * self.pres[k].features());
                    Split { x, y: vec![0.0; chunk.len()], n: chunk.len(), stored: None }
                })
                .collect();
            let of_member: Vec<&Split> = self.member_pre.iter().map(|k| &splits[*k]).collect();
            let outputs = self.model.predict_each(&of_member)?;
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
