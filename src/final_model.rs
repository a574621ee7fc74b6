//! The final model: the best trials of a search combined per the experiment's `average`.
//!
//! Takes the program, the experiment, the folder of its `.bma` file, an output folder and
//! the ranked complete trials with the directories their models were saved in (best
//! first, as [`crate::train::Model::save`] wrote them); gives a [`FinalSummary`] and
//! writes the final model under the output folder. [`evaluate`] reloads and evaluates
//! it (what `bma eval` calls on a final-model directory); [`data_changes`] tells what
//! changed in its data files since its members trained. A member or trial whose inputs
//! or outputs do not fit the data is an error (`train::check_fits`), never a panic.
//!
//! The `average` entries, in this order whatever their order in the file:
//! - `swa(last: k)` acts during training (see [`crate::train::averaging`]): each trial's
//!   saved weights already are the mean of its last k epochs.
//! - `soup(uniform | greedy, top: k)`: weight averaging θ = Σ wᵢθᵢ of the top k trials
//!   that share the best one's architecture and initialisation (trials of a soup
//!   experiment start from [`crate::train::init_seed`]); `greedy` (Wortsman et al., 2022)
//!   adds ingredients best first and keeps one only when the valid score does not drop.
//!   Batch-norm statistics of a soup of two or more are recomputed on the train split.
//!   Every trial left out is listed with the reason.
//! - `ensemble(top: k, weights: ...)`: prediction averaging (class probabilities, or raw
//!   outputs for regression) of the top k candidates, the soup (if any) counting as the
//!   first candidate in place of its ingredients. Weights: `uniform`; `softmax(metric,
//!   temperature: T)`: wᵢ ∝ exp(sᵢ/T), sᵢ the trial's valid metric (negated when lower
//!   is better); `bayes(n: N)`: wᵢ ∝ exp(−N · Lᵢ), Lᵢ the member's mean valid loss
//!   (negative log-likelihood for classification), N the number of valid samples unless
//!   given, i.e. each member weighted by the likelihood of the whole valid split, a
//!   Bayesian model average under a flat prior; `greedy(rounds: R)`: ensemble selection
//!   with replacement (Caruana et al., 2004) for R rounds (default 20).
//!   `combine: vote` (classification): a weighted majority vote of the members' classes
//!   ([`average::vote`]) in place of the mean of their probabilities; `greedy` selects on it.
//!
//! Scores used for selection are on the valid split: accuracy − 0.001·loss for
//! classification (the loss only breaks ties), −loss for regression. The test split is
//! used exactly once per model, after every choice is made.
//!
//! Saved layout: `<out>/final.json` ([`SavedFinal`]: members and weights, the summary)
//! and one model directory per member, `<out>/member_<i>/` (a soup is one member).
//!
//! **Searched data settings.** When `data = ...` reads space parameters
//! (`ir::data_search`), members may come from different settings: [`build`] loads one
//! `Dataset` per distinct saved data value, with the tokenizer of a member that read it,
//! once per setting (`settings.rs`); each candidate's valid predictions (for the weights)
//! and each member's test predictions are made on its own setting's splits, and blended
//! against the shared targets ([`FinalModel::predict_each`]). A `soup` takes only trials of
//! the best's setting (weights need equal shapes); the others are listed out with their
//! setting. [`evaluate`] (`bma eval`) loads each member's data from its member directory's
//! config; `predict` reads an input once per member preprocessing.
//!
//! **Invariant:** a greedy soup or a greedy ensemble never scores below its best member
//! on valid (the score above); weights are non-negative and sum to 1; predictions of
//! different data settings are blended only after every setting's valid and test splits
//! were found to hold the best's rows in the same order (their targets, row by row); a
//! candidate whose setting draws other rows (a searched split seed) is left out of the
//! ensemble with a reason naming the settings, the split and the row, and the next in rank
//! takes its place. `bma eval` on a saved final model checks the same and fails if not.

pub mod predict;
mod settings;
pub(crate) use settings::data_difference;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::average::{self, Predictions, Weighting};
use crate::catalogue;
use crate::data::{Dataset, Part, Split};
use crate::ir::{self, Task, Value};
use crate::train::{self, Head, Metrics, Model, SavedConfig};
use crate::trial::Trial;
use settings::Settings;

/// One member of the final model and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberWeight {
    /// The trials whose weights this member holds (several for a soup).
    pub trials: Vec<u64>,
    pub weight: f64,
}

/// A trial left out of a soup or ensemble, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludedTrial {
    pub trial: u64,
    pub reason: String,
}

/// What the final model is and how it does against the best single sub-model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalSummary {
    /// The `average` entries applied, as written (`soup(greedy, top: 5)`), or `best single`.
    pub method: String,
    pub members: Vec<MemberWeight>,
    pub excluded: Vec<ExcludedTrial>,
    /// `swa(last: k)` when the trials' weights are averages of their last k epochs.
    pub swa: Option<usize>,
    /// The top-ranked trial.
    pub best_single: u64,
    pub final_valid: Metrics,
    pub final_test: Metrics,
    pub single_valid: Metrics,
    pub single_test: Metrics,
    /// Where the final model was saved.
    pub dir: PathBuf,
}

/// `<out>/final.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedFinal {
    /// Member directories relative to the final model's directory, with weights.
    pub members: Vec<(String, f64)>,
    pub summary: FinalSummary,
    /// `ensemble(combine: vote)`: members vote (see [`average::vote`]).
    #[serde(default)]
    pub vote: bool,
}

/// A loaded final model: members and weights.
#[derive(Debug, Clone)]
pub struct FinalModel {
    pub members: Vec<(Model, f64)>,
    /// Weighted votes of the members' classes instead of their mean probabilities.
    pub vote: bool,
}

impl FinalModel {
    /// The same model with every member's weights on `device`.
    pub fn on_device(&self, device: train::DeviceKind) -> Result<FinalModel, String> {
        let members =
            self.members.iter().map(|(m, w)| Ok((m.on_device(device)?, *w))).collect::<Result<_, String>>()?;
        Ok(FinalModel { members, vote: self.vote })
    }

    /// The weighted mean of the members' probabilities (classification) or outputs, `n x k`;
    /// with `vote` (classification), the weighted share of votes per class instead.
    pub fn predict(&self, split: &Split) -> Result<Vec<f32>, String> {
        self.predict_each(&vec![split; self.members.len()])
    }

    /// [`FinalModel::predict`] with one split per member: each member's rows as its own data
    /// setting prepares them (the same samples in the same order in every split).
    pub fn predict_each(&self, splits: &[&Split]) -> Result<Vec<f32>, String> {
        if splits.len() != self.members.len() {
            return Err(format!("{} splits for {} members", splits.len(), self.members.len()));
        }
        let preds =
            self.members.iter().zip(splits).map(|((m, _), s)| probabilities(m, s)).collect::<Result<Vec<_>, _>>()?;
        Ok(self.combine(&preds))
    }

    /// The members' predictions (one [`Predictions`] per member, rows of probabilities
    /// or values, on the same samples) blended or voted with the members' weights.
    pub fn combine(&self, preds: &[Predictions]) -> Vec<f32> {
        let weights: Vec<f64> = self.members.iter().map(|(_, w)| *w).collect();
        let classification = self.members.first().is_some_and(|(m, _)| m.task == Task::Classification);
        flatten(&if self.vote && classification {
            average::vote(preds, &weights)
        } else {
            average::blend(&preds.iter().collect::<Vec<_>>(), &weights)
        })
    }

    /// Metrics of the final model on `split`.
    pub fn evaluate(&self, split: &Split) -> Result<Metrics, String> {
        self.evaluate_each(&vec![split; self.members.len()])
    }

    /// Metrics of the final model with one split per member ([`FinalModel::predict_each`]),
    /// measured against the first split's targets (every split holds the same rows).
    pub fn evaluate_each(&self, splits: &[&Split]) -> Result<Metrics, String> {
        let (first, _) = self.members.first().ok_or("the final model has no members")?;
        let targets = splits.first().ok_or("the final model has no members")?;
        let out = self.predict_each(splits)?;
        Ok(outputs_metrics(first, &out, targets))
    }
}

/// Builds, evaluates and saves the final model of `experiment`; see the module header.
/// `ranked` holds complete trials best first, each with the directory its model was saved
/// in; `out` receives `final.json` and the members. Errors: no trial, a model directory
/// that does not load, data that does not load. Candidates whose data setting holds other
/// valid or test rows than the best's are left out (listed with the reason), not blended.
pub fn build(
    program: &ir::Program,
    experiment: &ir::Experiment,
    base: &Path,
    out: &Path,
    ranked: &[(Trial, PathBuf)],
) -> Result<FinalSummary, String> {
    if ranked.is_empty() {
        return Err("no complete trial to build a final model from".into());
    }
    let mut loaded: Vec<Loaded> = Vec::new();
    for (trial, dir) in ranked {
        let (model, config) = train::load(dir).map_err(|e| format!("trial {}: {e}", trial.number))?;
        loaded.push(Loaded { trial: trial.clone(), model, config });
    }
    // Searched data: one dataset per member's setting, the best's first (the reference).
    let trials;
    let mut settings = if ir::data_search::data_searched(experiment) {
        Settings::by_value()
    } else {
        trials = train::Trials::new(program, experiment, base, train::DeviceKind::Cpu)?;
        Settings::fixed(&trials.data.data)
    };
    let best_setting = settings.index(&loaded[0].config)?;
    let entries: Vec<ir::CallValue> = experiment
        .average
        .iter()
        .filter_map(|e| match ir::eval(e, &std::collections::BTreeMap::new()) {
            Ok(Value::Call(c)) => Some(c),
            Ok(Value::Sym(s)) => Some(ir::CallValue { name: s.sym, args: Vec::new() }),
            _ => None,
        })
        .collect();
    let (soup_entry, ensemble_entry) = by_kind(&entries);
    let swa = train::averaging(experiment).swa;
    let mut methods = Vec::new();
    let mut excluded = Vec::new();
    let mut candidates: Vec<Candidate> = loaded
        .iter()
        .map(|l| Candidate { model: l.model.clone(), config: l.config.clone(), trials: vec![l.trial.number] })
        .collect();
    if let Some(soup) = soup_entry {
        let greedy = soup.arg("method", 0).map(|v| v.to_string()).as_deref() == Some("greedy");
        let top = int_arg(soup, "top", 1).unwrap_or(5).max(1);
        // A soup averages weights, so it stays within the best's data setting.
        let best = &loaded[0];
        let mut ingredients: Vec<&Loaded> = Vec::new();
        for l in &loaded[..top.min(loaded.len())] {
            if l.config.data == best.config.data && l.config.tokenizer == best.config.tokenizer {
                ingredients.push(l);
            } else {
                let reason = format!(
                    "{}: a soup averages the weights of one setting",
                    other_data(experiment, &best.config, &l.config)
                );
                excluded.push(ExcludedTrial { trial: l.trial.number, reason });
            }
        }
        let data = settings.get(best_setting)?;
        for l in &ingredients {
            train::check_fits(&l.model, &data.info).map_err(|e| format!("trial {}: {e}", l.trial.number))?;
        }
        let (model, kept, out_of) = make_soup(&ingredients, greedy, data)?;
        excluded.extend(out_of);
        let config = ingredients[kept[0]].config.clone();
        let held: Vec<u64> = kept.iter().map(|i| ingredients[*i].trial.number).collect();
        candidates.retain(|c| !held.contains(&c.trials[0]));
        candidates.insert(0, Candidate { model, config, trials: held });
        methods.push(Value::Call(soup.clone()).to_string());
    }
    let top = match ensemble_entry {
        Some(ens) => int_arg(ens, "top", 0).unwrap_or(5).max(1).min(candidates.len()),
        None => 1,
    };
    // Each candidate on its own setting's rows. A setting whose valid or test split holds
    // other rows than the best's (a searched split seed) cannot be blended: its candidates
    // are left out, with the reason, and the next ones in rank take their places.
    let mut pool: Vec<Candidate> = Vec::with_capacity(top);
    let mut pool_settings: Vec<usize> = Vec::with_capacity(top);
    for c in &candidates {
        if pool.len() == top {
            break;
        }
        let i = settings.index(&c.config)?;
        if let Err((rows, how)) = settings.aligned(i, &[Part::Valid, Part::Test]) {
            let reason =
                format!("its data setting holds other {rows}: {how}; predictions of other rows cannot be blended");
            excluded.extend(c.trials.iter().map(|t| ExcludedTrial { trial: *t, reason: reason.clone() }));
            continue;
        }
        train::check_fits(&c.model, &settings.get(i)?.info).map_err(|e| format!("trial {}: {e}", c.trials[0]))?;
        pool.push(c.clone());
        pool_settings.push(i);
    }
    let pool = &pool[..];
    let data = settings.get(best_setting)?;
    let mut members: Vec<(Candidate, usize, f64)> = vec![(pool[0].clone(), pool_settings[0], 1.0)];
    let mut vote = false;
    if let Some(ens) = ensemble_entry {
        vote = ens.arg("combine", 2).map(|v| v.to_string()).as_deref() == Some("vote");
        let valid: Vec<Predictions> = pool
            .iter()
            .zip(&pool_settings)
            .map(|(c, i)| probabilities(&c.model, &settings.get(*i)?.valid))
            .collect::<Result<_, _>>()?;
        let weights = ensemble_weights(ens, pool, &valid, &loaded, &data.valid, vote)?;
        for (c, w) in pool.iter().zip(&weights) {
            if *w == 0.0 {
                excluded.extend(
                    c.trials
                        .iter()
                        .map(|t| ExcludedTrial { trial: *t, reason: "ensemble selection never picked it".into() }),
                );
            }
        }
        members = pool
            .iter()
            .cloned()
            .zip(pool_settings.iter().copied())
            .zip(weights)
            .filter(|(_, w)| *w > 0.0)
            .map(|((c, i), w)| (c, i, w))
            .collect();
        methods.push(Value::Call(ens.clone()).to_string());
    }
    if let Some(k) = swa {
        methods.insert(0, format!("swa(last: {k})"));
    }
    let method = if methods.is_empty() { "best single".to_string() } else { methods.join(" + ") };
    let final_model = FinalModel { members: members.iter().map(|(c, _, w)| (c.model.clone(), *w)).collect(), vote };
    let splits = |part: Part| -> Result<Vec<&Split>, String> {
        members.iter().map(|(_, i, _)| Ok(settings.get(*i)?.part(part))).collect()
    };
    let best = &loaded[0];
    let summary = FinalSummary {
        method,
        members: members.iter().map(|(c, _, w)| MemberWeight { trials: c.trials.clone(), weight: *w }).collect(),
        excluded,
        swa,
        best_single: best.trial.number,
        final_valid: final_model.evaluate_each(&splits(Part::Valid)?)?,
        final_test: final_model.evaluate_each(&splits(Part::Test)?)?,
        single_valid: best.model.evaluate(&data.valid, &data.info)?,
        single_test: best.model.evaluate(&data.test, &data.info)?,
        dir: out.to_path_buf(),
    };
    let saved: Vec<(Candidate, f64)> = members.into_iter().map(|(c, _, w)| (c, w)).collect();
    save(out, &saved, &summary, vote)?;
    Ok(summary)
}

/// How `config`'s data settings differ from `best`'s, by the searched parameters (a soup
/// needs the best's shapes, so it leaves such trials out).
fn other_data(experiment: &ir::Experiment, best: &SavedConfig, config: &SavedConfig) -> String {
    let differ: Vec<String> = ir::data_search::data_params(experiment)
        .iter()
        .filter_map(|p| {
            let (a, b) = (best.point.get(&p.name)?, config.point.get(&p.name)?);
            (a != b).then(|| format!("{} = {b}, not {a}", p.name))
        })
        .collect();
    format!("trained on other data settings than the best trial ({})", differ.join(", "))
}

/// Reloads the final model saved in `dir` (by [`build`]) and evaluates it on `part` of
/// its data: each member on its own data setting's rows (its member directory's config, with
/// its own tokenizer), the settings' `part` checked to hold the same rows. A plain model
/// directory (`model.json`) is evaluated as one model.
pub fn evaluate(dir: &Path, part: Part) -> Result<Metrics, String> {
    evaluate_on(dir, part, train::DeviceKind::Cpu)
}

/// [`evaluate`] with the model's weights on `device`.
pub fn evaluate_on(dir: &Path, part: Part, device: train::DeviceKind) -> Result<Metrics, String> {
    if !dir.join("final.json").exists() {
        return train::evaluate_saved_on(dir, part, device);
    }
    let (model, configs) = load_members(dir)?;
    let model = model.on_device(device)?;
    let mut settings = Settings::by_value();
    let at: Vec<usize> = configs.iter().map(|c| settings.index(c)).collect::<Result<_, _>>()?;
    settings.check_aligned(&[part])?;
    let mut splits = Vec::with_capacity(at.len());
    for ((m, _), i) in model.members.iter().zip(&at) {
        let data = settings.get(*i)?;
        train::check_fits(m, &data.info)?;
        splits.push(data.part(part));
    }
    model.evaluate_each(&splits)
}

/// What changed in the data files the model saved in `dir` (a final model: each member;
/// or a plain model directory) trained on, one sentence per file; empty when nothing did
/// or the model recorded no fingerprints (saved by an older bma).
pub fn data_changes(dir: &Path) -> Result<Vec<String>, String> {
    let configs = if dir.join("final.json").exists() {
        let path = dir.join("final.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let saved: SavedFinal = from_json_exact(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut configs = Vec::new();
        for (sub, _) in &saved.members {
            if sub.contains("..") || Path::new(sub).is_absolute() {
                return Err(format!("{}: member `{sub}` lies outside the directory", path.display()));
            }
            configs.push(train::load_config(&dir.join(sub))?);
        }
        configs
    } else {
        vec![train::load_config(dir)?]
    };
    let mut out: Vec<String> = Vec::new();
    for c in &configs {
        for change in train::data_changes(c) {
            if !out.contains(&change) {
                out.push(change);
            }
        }
    }
    Ok(out)
}

/// Reads a final model directory: the members with their weights, and the first
/// member's saved config (its data and base folder).
pub fn load(dir: &Path) -> Result<(FinalModel, SavedConfig), String> {
    let (model, mut configs) = load_members(dir)?;
    let config = configs.drain(..).next().ok_or_else(|| format!("{}: no members", dir.join("final.json").display()))?;
    Ok((model, config))
}

/// Reads a final model directory: the members with their weights, and each member's saved
/// config (its own data setting), in member order; never empty.
pub fn load_members(dir: &Path) -> Result<(FinalModel, Vec<SavedConfig>), String> {
    let path = dir.join("final.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let saved: SavedFinal = from_json_exact(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut members = Vec::new();
    let mut configs = Vec::new();
    for (sub, w) in &saved.members {
        if sub.contains("..") || Path::new(sub).is_absolute() {
            return Err(format!("{}: member `{sub}` lies outside the directory", path.display()));
        }
        let (m, c) = train::load(&dir.join(sub))?;
        configs.push(c);
        members.push((m, *w));
    }
    if members.is_empty() {
        return Err(format!("{}: no members", path.display()));
    }
    Ok((FinalModel { members, vote: saved.vote }, configs))
}

/// Reads the summary saved with a final model.
pub fn load_summary(dir: &Path) -> Result<FinalSummary, String> {
    let path = dir.join("final.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The folder is where the summary is read from: a final model is built in a temporary
    // folder and moved into place, so the `dir` written inside names the temporary one.
    from_json_exact::<SavedFinal>(&text)
        .map(|s| FinalSummary { dir: dir.to_path_buf(), ..s.summary })
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Marks a number token while [`from_json_exact`] reads it back.
const NUMBER: char = '\u{E000}';

/// Like `serde_json::from_str`, but every float comes back bit for bit as written
/// (serde_json writes the shortest round-trip text, yet its default parser may be one
/// ulp off), so a summary reloaded from `final.json` reports exactly what was measured.
/// Number tokens are read as marked strings, then parsed with Rust's exact parser.
pub fn from_json_exact<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut marked = String::with_capacity(text.len() + 64);
    let mut chars = text.chars().peekable();
    let (mut in_string, mut escaped) = (false, false);
    while let Some(c) = chars.next() {
        if in_string {
            marked.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            marked.push(c);
        } else if c == '-' || c.is_ascii_digit() {
            marked.push('"');
            marked.push(NUMBER);
            marked.push(c);
            while let Some(&d) = chars.peek() {
                if !(d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E' | '+' | '-')) {
                    break;
                }
                marked.push(d);
                chars.next();
            }
            marked.push('"');
        } else {
            marked.push(c);
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(&marked).map_err(|e| e.to_string())?;
    restore_numbers(&mut value)?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn restore_numbers(v: &mut serde_json::Value) -> Result<(), String> {
    use serde_json::Value as J;
    match v {
        J::String(s) if s.starts_with(NUMBER) => {
            let t = &s[NUMBER.len_utf8()..];
            let number = if let Ok(u) = t.parse::<u64>() {
                serde_json::Number::from(u)
            } else if let Ok(i) = t.parse::<i64>() {
                serde_json::Number::from(i)
            } else {
                let x = t.parse::<f64>().map_err(|_| format!("bad number `{t}`"))?;
                serde_json::Number::from_f64(x).ok_or_else(|| format!("bad number `{t}`"))?
            };
            *v = J::Number(number);
        }
        J::Array(items) => items.iter_mut().try_for_each(restore_numbers)?,
        J::Object(map) => map.values_mut().try_for_each(restore_numbers)?,
        _ => {}
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Loaded {
    trial: Trial,
    model: Model,
    config: SavedConfig,
}

#[derive(Debug, Clone)]
struct Candidate {
    model: Model,
    config: SavedConfig,
    trials: Vec<u64>,
}

fn int_arg(c: &ir::CallValue, name: &str, pos: usize) -> Option<usize> {
    c.arg(name, pos).and_then(Value::as_i64).filter(|v| *v >= 0).map(|v| v as usize)
}

fn save(out: &Path, members: &[(Candidate, f64)], summary: &FinalSummary, vote: bool) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", out.display());
    std::fs::create_dir_all(out).map_err(io)?;
    let mut list = Vec::new();
    for (i, (c, w)) in members.iter().enumerate() {
        let sub = format!("member_{i}");
        c.model.save(&out.join(&sub), &c.config).map_err(io)?;
        list.push((sub, *w));
    }
    let saved = SavedFinal { members: list, summary: summary.clone(), vote };
    let json = serde_json::to_string_pretty(&saved).map_err(|e| e.to_string())?;
    std::fs::write(out.join("final.json"), json).map_err(io)
}

/// The model's outputs as rows of probabilities (classification) or values.
fn probabilities(model: &Model, split: &Split) -> Result<Predictions, String> {
    let k = model.plan.out_features().max(1);
    let out = model.predict_split(split)?;
    let classification = model.task == Task::Classification;
    Ok(out
        .chunks(k)
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
            match (classification, model.head()) {
                (false, _) | (true, Head::Softmax | Head::Sigmoid) => row,
                (true, Head::Logits) if k == 1 => vec![1.0 / (1.0 + (-row[0]).exp())],
                (true, Head::Logits) => average::softmax(&row),
            }
        })
        .collect())
}

fn flatten(p: &Predictions) -> Vec<f32> {
    p.iter().flat_map(|r| r.iter().map(|v| *v as f32)).collect()
}

/// Metrics of blended outputs (probabilities for classification) against `split`.
fn outputs_metrics(like: &Model, out: &[f32], split: &Split) -> Metrics {
    let k = like.plan.out_features().max(1);
    let classification = like.task == Task::Classification;
    let head = match (classification, k) {
        (false, _) => Head::Logits,
        (true, 1) => Head::Sigmoid,
        (true, _) => Head::Softmax,
    };
    train::evaluate_outputs(out, k, &split.y, like.loss, head, classification, like.target)
}

/// The selection score of predictions on `split`: higher is better.
fn score(like: &Model, p: &Predictions, split: &Split) -> f64 {
    score_of(&outputs_metrics(like, &flatten(p), split), like.task)
}

fn score_of(m: &Metrics, task: Task) -> f64 {
    let loss = m.get("loss").copied().unwrap_or(f64::INFINITY);
    match task {
        Task::Classification => m.get("accuracy").copied().unwrap_or(0.0) - 1e-3 * loss,
        Task::Regression => -loss,
    }
}

/// The first `soup` and the first `ensemble` of the `average` entries; `swa` acts during
/// training (`train::averaging`).
/// How many of the ranked trials, best first, [`build`] can use for `experiment`'s
/// `average` section: the soup's `top` plus the ensemble's `top` (a soup's ingredients
/// leave the ensemble's candidates; 5 each when not given), 1 without either. `None` when
/// any trial may be needed: with searched data settings a candidate whose setting draws
/// other rows is left out and the next in rank takes its place.
pub fn members_needed(experiment: &ir::Experiment) -> Option<usize> {
    if ir::data_search::data_searched(experiment) {
        return None;
    }
    let entries: Vec<ir::CallValue> = experiment
        .average
        .iter()
        .filter_map(|e| match ir::eval(e, &std::collections::BTreeMap::new()) {
            Ok(Value::Call(c)) => Some(c),
            Ok(Value::Sym(s)) => Some(ir::CallValue { name: s.sym, args: Vec::new() }),
            _ => None,
        })
        .collect();
    let (soup, ensemble) = by_kind(&entries);
    let soup_top = soup.map_or(0, |s| int_arg(s, "top", 1).unwrap_or(5).max(1));
    let ensemble_top = ensemble.map_or(0, |e| int_arg(e, "top", 0).unwrap_or(5).max(1));
    Some((soup_top + ensemble_top).max(1))
}

fn by_kind(entries: &[ir::CallValue]) -> (Option<&ir::CallValue>, Option<&ir::CallValue>) {
    let (mut soup, mut ensemble) = (None, None);
    for c in entries {
        match catalogue::kind(catalogue::AVERAGES, &c.name) {
            Some(catalogue::Average::Soup) => soup = soup.or(Some(c)),
            Some(catalogue::Average::Ensemble) => ensemble = ensemble.or(Some(c)),
            Some(catalogue::Average::Swa) | None => {}
        }
    }
    (soup, ensemble)
}

fn ensemble_weights(
    ens: &ir::CallValue,
    pool: &[Candidate],
    valid: &[Predictions],
    loaded: &[Loaded],
    split: &Split,
    vote: bool,
) -> Result<Vec<f64>, String> {
    let like = &pool[0].model;
    let weighting = ens.arg("weights", 1).cloned().unwrap_or(Value::sym("uniform"));
    let name = weighting.head().unwrap_or("uniform").to_string();
    let call = match &weighting {
        Value::Call(c) => Some(c.clone()),
        _ => None,
    };
    let Some(kind) = catalogue::kind(catalogue::WEIGHTS, &name) else {
        return Err(format!("unknown ensemble weighting `{name}`"));
    };
    let metrics: Vec<Metrics> = valid.iter().map(|p| outputs_metrics(like, &flatten(p), split)).collect();
    Ok(match kind {
        catalogue::Weights::Uniform => vec![1.0 / pool.len() as f64; pool.len()],
        catalogue::Weights::Softmax => {
            let metric = call.as_ref().and_then(|c| c.arg("metric", 0)).map_or("accuracy".into(), |v| v.to_string());
            let t = call.as_ref().and_then(|c| c.arg("temperature", 1)).and_then(Value::as_f64).unwrap_or(1.0);
            let sign = if train::higher_is_better(&metric) { 1.0 } else { -1.0 };
            let scores: Vec<f64> = pool
                .iter()
                .zip(&metrics)
                .map(|(c, m)| {
                    // The trial's own measurement (latency, params, ...), else the member's valid metric.
                    let own = (c.trials.len() == 1)
                        .then(|| loaded.iter().find(|l| l.trial.number == c.trials[0]))
                        .flatten()
                        .and_then(|l| l.trial.metrics.get(&metric).copied());
                    sign * own.or_else(|| m.get(&metric).copied()).unwrap_or(f64::NAN)
                })
                .collect();
            average::closed_form_weights(&Weighting::Softmax { temperature: t }, &scores, &[])
        }
        catalogue::Weights::Bayes => {
            let n = call.as_ref().and_then(|c| c.arg("n", 0)).and_then(Value::as_f64).unwrap_or(split.n as f64);
            let losses: Vec<f64> = metrics.iter().map(|m| m.get("loss").copied().unwrap_or(f64::INFINITY)).collect();
            average::closed_form_weights(&Weighting::Bayes { n }, &[], &losses)
        }
        catalogue::Weights::Greedy => {
            let rounds = call.as_ref().and_then(|c| int_arg(c, "rounds", 0)).unwrap_or(20);
            if vote && like.task == Task::Classification {
                average::ensemble_selection_with(valid, rounds, &|preds, w| {
                    score(like, &average::vote(preds, w), split)
                })
            } else {
                average::ensemble_selection(valid, rounds, &|p| score(like, p, split))
            }
        }
    })
}

/// A soup of `ingredients` (best first): the model, the kept indices, the exclusions.
fn make_soup(
    ingredients: &[&Loaded],
    greedy: bool,
    data: &Dataset,
) -> Result<(Model, Vec<usize>, Vec<ExcludedTrial>), String> {
    let own: Vec<f64> = ingredients
        .iter()
        .map(|l| Ok(score_of(&l.model.evaluate(&data.valid, &data.info)?, l.model.task)))
        .collect::<Result<_, String>>()?;
    let base = if greedy { argmax(&own) } else { 0 };
    let shapes = |m: &Model| m.tensors().into_iter().map(|(n, s, _)| (n, s)).collect::<Vec<_>>();
    let base_shapes = shapes(&ingredients[base].model);
    let base_init = ingredients[base].config.train.init_seed;
    let compatible = |i: usize| -> Result<(), String> {
        let l = &ingredients[i];
        if shapes(&l.model) != base_shapes {
            return Err(format!("another architecture than trial {}", ingredients[base].trial.number));
        }
        match (base_init, l.config.train.init_seed) {
            (Some(a), Some(b)) if a == b => Ok(()),
            (None, None) if l.config.train.seed == ingredients[base].config.train.seed => Ok(()),
            _ => Err(format!("another initialisation than trial {}", ingredients[base].trial.number)),
        }
    };
    let mix = |kept: &[usize]| -> Result<Model, String> {
        let params: Vec<average::Params> = kept.iter().map(|i| to_params(&ingredients[*i].model)).collect();
        let refs: Vec<&average::Params> = params.iter().collect();
        let w = vec![1.0 / kept.len() as f64; kept.len()];
        let avg = average::average_params(&refs, &w).ok_or("the ingredients' tensors differ")?;
        let like = &ingredients[kept[0]].model;
        let tensors = like.tensors().into_iter().map(|(n, s, _)| (n.clone(), s, avg[&n].clone())).collect();
        let m = like.with_tensors(&tensors)?;
        // One ingredient is itself; for more, the mean statistics describe none of them.
        if kept.len() > 1 { m.recompute_batchnorm(&data.train, ingredients[kept[0]].config.train.batch) } else { Ok(m) }
    };
    let mut excluded = Vec::new();
    let kept = if greedy {
        let mut failure = None;
        let mut evaluate = |kept: &[usize]| -> f64 {
            match mix(kept).and_then(|m| m.evaluate(&data.valid, &data.info)) {
                Ok(m) => score_of(&m, ingredients[kept[0]].model.task),
                Err(e) => {
                    failure = Some(e);
                    f64::NEG_INFINITY
                }
            }
        };
        let soup = average::greedy_soup(&own, &compatible, &mut evaluate);
        if let Some(e) = failure {
            return Err(e);
        }
        for (i, why) in soup.excluded {
            let reason = match why {
                average::Excluded::Incompatible(r) => r,
                average::Excluded::NoGain { without, with } => {
                    format!("the valid score would drop from {without:.4} to {with:.4}")
                }
            };
            excluded.push(ExcludedTrial { trial: ingredients[i].trial.number, reason });
        }
        soup.kept
    } else {
        let mut kept = vec![base];
        for (i, ingredient) in ingredients.iter().enumerate() {
            if i == base {
                continue;
            }
            match compatible(i) {
                Ok(()) => kept.push(i),
                Err(reason) => excluded.push(ExcludedTrial { trial: ingredient.trial.number, reason }),
            }
        }
        kept
    };
    Ok((mix(&kept)?, kept, excluded))
}

fn to_params(m: &Model) -> average::Params {
    m.tensors().into_iter().map(|(n, _, v)| (n, v)).collect()
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

#[cfg(test)]
mod tests;
