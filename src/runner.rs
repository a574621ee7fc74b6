//! What `bma run` does around the trial loop: the model evaluator (training,
//! saving every completed trial), the out-directory layout, and the results files.
//!
//! Takes a checked experiment and a finished study's [`History`]; gives
//! `<out>/results.json`, `<out>/results.csv`, `<out>/trials/<n>/` and `<out>/best/`.
//!
//! **Invariant:** the results files are written from the store's history (nothing
//! kept only in memory), each by a write to a temporary file and a rename, so a
//! reader never sees a half-written file.
//!
//! Out-directory layout:
//!
//! ```text
//! <out>/study.db            the study store (SQLite, WAL)
//! <out>/results.json        every trial, the ranking, the Pareto front, the best trial (+ its test metrics)
//! <out>/results.csv         one row per trial
//! <out>/trials/<n>/         model.safetensors + model.json of every completed trial (model experiments)
//! <out>/best/               a copy of the best trial's model
//! <out>/models/<key>/        `bma watch`: each complete trial's model by configuration key
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value as Json, json};

use crate::data::Part;
use crate::ir::{self, Point, Value};
use crate::search::study::{Control, Evaluator, Metrics, Outcome, Status, StepFn, TrialRef};
use crate::search::{Direction, History, Trial, TrialState};
use crate::store::StudySpec;
use crate::train;

/// `runs/<experiment>`: where a run writes when neither `--out` nor `report { out = }` says.
pub fn default_out(experiment: &str) -> PathBuf {
    Path::new("runs").join(experiment)
}

/// The text a study's spec hash is taken of: every source the compilation read (the
/// root file, then its local imports), joined.
pub fn spec_text(compiled: &crate::Compiled) -> String {
    compiled.sources.iter().map(|(_, s)| s.text.as_str()).collect::<Vec<_>>().join("\n\u{1f}\n")
}

/// The folder of trial `number`'s saved model.
pub fn trial_dir(out: &Path, number: u64) -> PathBuf {
    out.join("trials").join(number.to_string())
}

/// Trains sub-models: one single-threaded trainer per trial thread.
pub struct ModelEvaluator<'a> {
    program: &'a ir::Program,
    experiment: &'a ir::Experiment,
    trials: train::Trials<'a>,
    /// Where completed trials' models go (`None`: not saved).
    out: Option<PathBuf>,
    /// Training threads per trial (1 when several trials run at once).
    threads: usize,
    saved: Mutex<BTreeMap<u64, PathBuf>>,
}

impl<'a> ModelEvaluator<'a> {
    pub fn new(
        program: &'a ir::Program,
        experiment: &'a ir::Experiment,
        base: &Path,
        device: train::DeviceKind,
        out: Option<PathBuf>,
        threads: usize,
    ) -> Result<ModelEvaluator<'a>, String> {
        let trials = train::Trials::new(program, experiment, base, device)?;
        Ok(ModelEvaluator {
            program,
            experiment,
            trials,
            out,
            threads: threads.max(1),
            saved: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn data_info(&self) -> &ir::DataInfo {
        &self.trials.data.info
    }
}

impl Evaluator for ModelEvaluator<'_> {
    fn static_metrics(&self, trial: TrialRef<'_>) -> Result<Metrics, String> {
        let Some(body) = &self.experiment.model else { return Ok(Metrics::new()) };
        let sub = ir::expand(self.program, body, trial.point, &self.trials.data.info).map_err(|e| e.message)?;
        Ok(Metrics::from([("params".to_string(), sub.params as f64), ("flops".to_string(), sub.flops as f64)]))
    }

    fn evaluate(&self, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        let mut cfg = match self.trials.config(trial.point, trial.seed) {
            Ok(c) => c,
            Err(e) => return Outcome { status: Status::Failed(e), metrics: Metrics::new() },
        };
        cfg.threads = cfg.threads.min(self.threads).max(1);
        let Some(body) = &self.experiment.model else {
            return Outcome { status: Status::Failed("no model".into()), metrics: Metrics::new() };
        };
        let sub = match ir::expand(self.program, body, trial.point, &self.trials.data.info) {
            Ok(s) => s,
            Err(e) => return Outcome { status: Status::Failed(e.message), metrics: Metrics::new() },
        };
        // A sub-model that cannot fit fails here, before anything is allocated: allocating it
        // would get the whole process killed. (On a GPU the limit is the device's, unknown here.)
        if self.trials.device == train::DeviceKind::Cpu
            && let Some(why) = train::memory::available()
                .and_then(|a| train::memory::refuse(&sub, cfg.batch.min(self.trials.data.train.n), a))
        {
            return Outcome { status: Status::Failed(why), metrics: Metrics::new() };
        }
        let outcome = train::fit_until(
            self.trials.device,
            &sub,
            &cfg,
            &self.trials.data,
            trial.deadline,
            |epoch, m| match on_step(epoch as u32, m) {
                Control::Continue => train::Control::Continue,
                Control::Stop => train::Control::Stop,
            },
        );
        let status = match &outcome.status {
            train::Status::Completed | train::Status::EarlyStopped { .. } => Status::Complete,
            train::Status::Stopped { .. } => Status::Stopped,
            train::Status::Failed { reason } => Status::Failed(reason.clone()),
        };
        let mut metrics = outcome.metrics.clone();
        metrics.insert("epochs".into(), outcome.epochs.len() as f64);
        metrics.insert("best_epoch".into(), outcome.best_epoch as f64);
        if status == Status::Complete
            && let (Some(out), Some(model)) = (&self.out, &outcome.model)
        {
            let dir = trial_dir(out, trial.number);
            let config = self.trials.saved_config(trial.point, cfg);
            if let Err(e) = model.save(&dir, &config) {
                return Outcome { status: Status::Failed(format!("cannot save the model: {e}")), metrics };
            }
            self.saved.lock().unwrap_or_else(|p| p.into_inner()).insert(trial.number, dir);
        }
        Outcome { status, metrics }
    }

    fn finished(&self, trial: &Trial) {
        let dir = self.saved.lock().unwrap_or_else(|p| p.into_inner()).remove(&trial.number);
        if trial.state != TrialState::Complete
            && let Some(dir) = dir
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Complete, feasible trials that no other complete feasible trial dominates (lower-is-better losses).
pub fn pareto_front(history: &History) -> Vec<u64> {
    let cands: Vec<(&Trial, Vec<f64>)> =
        history.completed().filter(|t| t.is_feasible()).map(|t| (t, history.losses(t))).collect();
    let dominates = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y);
    cands.iter().filter(|(_, l)| !cands.iter().any(|(_, m)| dominates(m, l))).map(|(t, _)| t.number).collect()
}

/// A value as plain JSON (symbols as strings, durations as seconds).
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Int(i) => json!(i),
        Value::Float(x) => float(*x),
        Value::Bool(b) => json!(b),
        Value::Str(s) => json!(s),
        Value::Sym(s) => json!(s.sym),
        Value::Duration(d) => float(d.seconds),
        Value::List(items) => Json::Array(items.iter().map(value_json).collect()),
        Value::Call(_) => json!(v.to_string()),
    }
}

fn float(x: f64) -> Json {
    if x.is_finite() { json!(x) } else { json!(x.to_string()) }
}

fn params_json(p: &Point) -> Json {
    Json::Object(p.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

fn trial_json(t: &Trial, spec: &StudySpec) -> Json {
    let values: serde_json::Map<String, Json> =
        spec.objectives.iter().zip(&t.values).map(|((n, _), v)| (n.clone(), float(*v))).collect();
    let constraints: serde_json::Map<String, Json> = spec
        .constraints
        .iter()
        .zip(t.constraints.iter().zip(&t.violations))
        .map(|(n, (v, viol))| {
            (n.clone(), json!({ "value": float(*v), "violation": float(*viol), "holds": *viol <= 0.0 }))
        })
        .collect();
    json!({
        "number": t.number,
        "state": t.state.as_str(),
        "params": params_json(&t.params),
        "seed": t.seed,
        "values": values,
        "constraints": constraints,
        "feasible": t.is_feasible(),
        "metrics": Json::Object(t.metrics.iter().map(|(k, v)| (k.clone(), float(*v))).collect()),
        "steps": t.steps.iter().map(|(s, v)| json!([s, float(*v)])).collect::<Vec<_>>(),
        "error": t.error,
        "failure": t.failure.map(|k| k.as_str()),
        "duration": t.duration,
    })
}

/// Everything `results.json` holds, given the history and (for model experiments) the best trial's test metrics.
pub fn results_json(
    spec: &StudySpec,
    history: &History,
    state: &str,
    best_test: Option<&Metrics>,
    extra: serde_json::Map<String, Json>,
) -> Json {
    let ranked: Vec<u64> = history.ranked().iter().map(|t| t.number).collect();
    let best = ranked.first().and_then(|n| history.get(*n)).map(|t| {
        let mut b = trial_json(t, spec);
        if let (Some(m), Some(obj)) = (best_test, b.as_object_mut()) {
            obj.insert("test".into(), Json::Object(m.iter().map(|(k, v)| (k.clone(), float(*v))).collect()));
        }
        b
    });
    let count = |s: TrialState| history.trials.iter().filter(|t| t.state == s).count();
    let mut out = json!({
        "experiment": spec.experiment,
        "study": spec.name,
        "spec_hash": spec.spec_hash,
        "seed": spec.seed,
        "state": state,
        "objectives": spec.objectives.iter().map(|(n, d)| json!({"name": n, "direction": d.as_str()})).collect::<Vec<_>>(),
        "constraints": spec.constraints,
        "counts": {
            "total": history.trials.len(),
            "complete": count(TrialState::Complete),
            "pruned": count(TrialState::Pruned),
            "failed": count(TrialState::Failed),
            "infeasible": count(TrialState::Infeasible),
            "running": count(TrialState::Running),
            "queued": count(TrialState::Queued),
        },
        "ranked": ranked,
        "pareto": pareto_front(history),
        "best": best,
        "trials": history.trials.iter().map(|t| trial_json(t, spec)).collect::<Vec<_>>(),
    });
    if let Some(obj) = out.as_object_mut() {
        obj.extend(extra);
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn csv_float(x: f64) -> String {
    if x.is_nan() { String::new() } else { format!("{x}") }
}

/// `results.csv`: one row per trial: number, state, every parameter, objectives,
/// constraints (their measured values), duration, error, failure kind.
pub fn results_csv(spec: &StudySpec, space: &ir::Space, history: &History) -> String {
    let params: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
    let mut header: Vec<String> = vec!["number".into(), "state".into()];
    header.extend(params.iter().map(|p| p.to_string()));
    header.extend(spec.objectives.iter().map(|(n, _)| n.clone()));
    header.extend(spec.constraints.iter().map(|n| format!("require {n}")));
    header.extend(["feasible".into(), "duration".into(), "error".into(), "failure".into()]);
    let mut out = header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for t in &history.trials {
        let mut row: Vec<String> = vec![t.number.to_string(), t.state.as_str().into()];
        for p in &params {
            row.push(t.params.get(*p).map(|v| csv_field(&v.to_string())).unwrap_or_default());
        }
        for i in 0..spec.objectives.len() {
            row.push(t.values.get(i).map(|v| csv_float(*v)).unwrap_or_default());
        }
        for i in 0..spec.constraints.len() {
            row.push(t.constraints.get(i).map(|v| csv_float(*v)).unwrap_or_default());
        }
        row.push(t.is_feasible().to_string());
        row.push(format!("{:.4}", t.duration));
        row.push(csv_field(t.error.as_deref().unwrap_or("")));
        row.push(t.failure.map(|k| k.as_str()).unwrap_or("").into());
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Writes `contents` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Copies the best trial's saved model to `<out>/best/` and evaluates it on the test split.
pub fn save_best(out: &Path, number: u64) -> Result<Metrics, String> {
    let src = trial_dir(out, number);
    let dst = out.join("best");
    if dst.exists() {
        std::fs::remove_dir_all(&dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    }
    std::fs::create_dir_all(&dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    for name in ["model.safetensors", "model.json"] {
        std::fs::copy(src.join(name), dst.join(name)).map_err(|e| format!("{}: {e}", src.join(name).display()))?;
    }
    std::fs::write(dst.join("trial"), number.to_string()).map_err(|e| format!("{}: {e}", dst.display()))?;
    train::eval_saved(&dst, Part::Test)
}

/// The losses' directions (lower is better), for display.
pub fn arrow(d: Direction) -> &'static str {
    match d {
        Direction::Minimize => "↓",
        Direction::Maximize => "↑",
    }
}
