//! Training settings: the `train { }` block of an experiment, evaluated at one point.
//!
//! Takes `(key, Value)` pairs (`optimizer = adam(lr)`, `epochs = 30`, ...), gives a
//! [`TrainConfig`]. Unknown keys and malformed values are a [`ConfigError`]; what is
//! not set takes the documented default. The names are the catalogue's (`catalogue`): each
//! value is found there and built by an exhaustive `match` on its kind.

use serde::{Deserialize, Serialize};

use crate::catalogue;
use crate::ir::{self, DataInfo, Task, Value};

/// Everything that decides how one sub-model is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Default 10.
    pub epochs: usize,
    /// Default 32.
    pub batch: usize,
    /// Default cross_entropy for classification, mse for regression.
    pub loss: Loss,
    pub early_stop: Option<EarlyStop>,
    pub init: Init,
    /// Weight initialisation and batch order; the trial's seed unless `seed =` is set.
    pub seed: u64,
    /// Threads of the private pool a trial trains in (default 1: one trainer per core).
    pub threads: usize,
    /// `average { swa(last: k) }`: keep the mean of the last `k` epochs' weights (batch-norm
    /// statistics recomputed on the train split) instead of the best epoch's.
    #[serde(default)]
    pub swa: Option<usize>,
    /// `average { soup(...) }`: the weight initialisation's seed, shared by every sub-model of
    /// one architecture so that their weights can be averaged; `None`: the trial's `seed`.
    #[serde(default)]
    pub init_seed: Option<u64>,
    /// `augment = [...]`: what is done to each train sample, in order (`train::augment`);
    /// empty by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub augment: Vec<super::augment::Op>,
    /// `precision = f16 | bf16`: what a training step computes in (`train::precision`); f32
    /// by default, and not written then.
    #[serde(default, skip_serializing_if = "super::precision::is_f32")]
    pub precision: super::precision::Precision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub lr: f64,
    /// L2 penalty on weights (coupled for sgd/adam, decoupled for adamw).
    pub weight_decay: f64,
    /// The penalty on biases and normalisation scales/shifts; default 0.
    pub bias_decay: f64,
    /// `hypergradient: β`: the learning rate adapted online (`train::hypergradient`); `None`
    /// for a fixed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypergradient: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd { momentum: f64, nesterov: bool },
    Adam { beta1: f64, beta2: f64 },
    AdamW { beta1: f64, beta2: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    /// Linear warm-up over `warmup` epochs, then cosine decay to 0.
    Cosine {
        warmup: f64,
    },
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    CrossEntropy,
    Bce,
    Mse,
    Mae,
    Huber,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStop {
    pub patience: usize,
    /// A valid-split metric (`loss`, `accuracy`, ...); default `loss`.
    pub on: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// PyTorch's: weights and biases uniform in `±1/sqrt(fan_in)`.
    Default,
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        limit: f64,
    },
    /// Glorot uniform, biases 0.
    Xavier,
    /// He normal (`std = sqrt(2 / fan_in)`), biases 0.
    Kaiming,
}

/// A train setting that cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "train setting `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl TrainConfig {
    /// The defaults for a task: adam(1e-3), constant, 10 epochs, batch 32.
    pub fn defaults(task: Task, seed: u64) -> TrainConfig {
        TrainConfig {
            optimizer: Optimizer {
                kind: OptimizerKind::Adam { beta1: 0.9, beta2: 0.999 },
                lr: 1e-3,
                weight_decay: 0.0,
                bias_decay: 0.0,
                hypergradient: None,
            },
            schedule: Schedule::Constant,
            epochs: 10,
            batch: 32,
            loss: match task {
                Task::Classification => Loss::CrossEntropy,
                Task::Regression => Loss::Mse,
            },
            early_stop: None,
            init: Init::Default,
            seed,
            threads: 1,
            swa: None,
            init_seed: None,
            augment: Vec::new(),
            precision: super::precision::Precision::F32,
        }
    }

    /// Reads evaluated settings over the defaults for `task`, `augment` for samples of
    /// `shape`.
    pub fn from_values(values: &[(String, Value)], task: Task, seed: u64) -> Result<TrainConfig, ConfigError> {
        TrainConfig::read(values, task, &[], seed)
    }

    fn read(values: &[(String, Value)], task: Task, shape: &[usize], seed: u64) -> Result<TrainConfig, ConfigError> {
        let mut c = TrainConfig::defaults(task, seed);
        for (key, v) in values {
            let bad = |m: &str| ConfigError { key: key.clone(), message: m.to_string() };
            match key.as_str() {
                "optimizer" => c.optimizer = optimizer(v).map_err(|m| bad(&m))?,
                "schedule" => c.schedule = schedule(v).map_err(|m| bad(&m))?,
                "epochs" => c.epochs = positive(v).ok_or_else(|| bad("must be a positive int"))?,
                "batch" => c.batch = positive(v).ok_or_else(|| bad("must be a positive int"))?,
                "seed" => c.seed = v.as_i64().ok_or_else(|| bad("must be an int"))? as u64,
                "threads" => c.threads = positive(v).ok_or_else(|| bad("must be a positive int"))?,
                "loss" => c.loss = loss(v).ok_or_else(|| bad("is one of cross_entropy, bce, mse, mae, huber"))?,
                "early_stop" => c.early_stop = early_stop(v).map_err(|m| bad(&m))?,
                "init" => c.init = init(v).map_err(|m| bad(&m))?,
                "precision" => {
                    c.precision =
                        super::precision::Precision::from_value(v).ok_or_else(|| bad("is one of f32, f16, bf16"))?
                }
                "augment" => c.augment = super::augment::parse_list(v, shape).map_err(|m| bad(&m))?,
                _ => return Err(bad("unknown setting")),
            }
        }
        Ok(c)
    }

    /// Evaluates an experiment's `train { }` settings at `point` and reads them.
    pub fn from_experiment(
        program: &ir::Program,
        experiment: &ir::Experiment,
        point: &ir::Point,
        data: &DataInfo,
        seed: u64,
    ) -> Result<TrainConfig, ConfigError> {
        let env = ir::PointEnv { point, fns: &program.fns, data: Some(data) };
        let mut values = Vec::new();
        for s in &experiment.train {
            let v = ir::eval(&s.value, &env).map_err(|e| ConfigError { key: s.key.clone(), message: e.message })?;
            values.push((s.key.clone(), v));
        }
        TrainConfig::read(&values, data.task, &data.shape, seed)
    }

    /// The learning rate at `step` of `steps_per_epoch * epochs`.
    pub fn lr_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        let lr = self.optimizer.lr;
        let spe = steps_per_epoch.max(1);
        let total = (self.epochs * spe).max(1) as f64;
        match self.schedule {
            Schedule::Constant => lr,
            Schedule::Step { every, gamma } => lr * gamma.powi((step / spe / every.max(1)) as i32),
            Schedule::Cosine { warmup } => {
                let warm = warmup * spe as f64;
                let s = step as f64;
                if s < warm {
                    lr * (s + 1.0) / warm
                } else {
                    let t = ((s - warm) / (total - warm).max(1.0)).min(1.0);
                    lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
        }
    }
}

fn positive(v: &Value) -> Option<usize> {
    v.as_i64().filter(|i| *i >= 1).map(|i| i as usize)
}

fn num(c: &ir::CallValue, name: &str, pos: usize) -> Result<Option<f64>, String> {
    match c.arg(name, pos) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| format!("`{name}` of `{}` must be a number", c.name)),
    }
}

fn loss(v: &Value) -> Option<Loss> {
    Some(match catalogue::kind(catalogue::LOSSES, v.head()?)? {
        catalogue::Loss::CrossEntropy => Loss::CrossEntropy,
        catalogue::Loss::Bce => Loss::Bce,
        catalogue::Loss::Mse => Loss::Mse,
        catalogue::Loss::Mae => Loss::Mae,
        catalogue::Loss::Huber => Loss::Huber,
    })
}

fn optimizer(v: &Value) -> Result<Optimizer, String> {
    let Value::Call(c) = v else {
        return match v.as_sym() {
            Some(s) if catalogue::kind(catalogue::OPTIMIZERS, s).is_some() => {
                optimizer(&Value::Call(ir::CallValue { name: s.to_string(), args: Vec::new() }))
            }
            _ => Err("is sgd(lr, ...), adam(lr, ...) or adamw(lr, ...)".into()),
        };
    };
    let betas = || -> Result<(f64, f64), String> {
        match c.arg("betas", usize::MAX) {
            None => Ok((0.9, 0.999)),
            Some(Value::List(b)) => match b.iter().filter_map(Value::as_f64).collect::<Vec<_>>().as_slice() {
                [a, b] => Ok((*a, *b)),
                _ => Err("`betas` is a list of two numbers".into()),
            },
            Some(_) => Err("`betas` is a list of two numbers".into()),
        }
    };
    let Some(kind) = catalogue::kind(catalogue::OPTIMIZERS, &c.name) else {
        return Err(format!("unknown optimizer `{}`", c.name));
    };
    let (kind, default_lr, default_wd) = match kind {
        catalogue::Optimizer::Sgd => {
            let momentum = num(c, "momentum", usize::MAX)?.unwrap_or(0.0);
            let nesterov = c.arg("nesterov", usize::MAX).and_then(Value::as_bool).unwrap_or(false);
            (OptimizerKind::Sgd { momentum, nesterov }, 0.01, 0.0)
        }
        catalogue::Optimizer::Adam => {
            let (beta1, beta2) = betas()?;
            (OptimizerKind::Adam { beta1, beta2 }, 1e-3, 0.0)
        }
        catalogue::Optimizer::AdamW => {
            let (beta1, beta2) = betas()?;
            (OptimizerKind::AdamW { beta1, beta2 }, 1e-3, 0.01)
        }
    };
    let lr = num(c, "lr", 0)?.unwrap_or(default_lr);
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(format!("the learning rate must be positive, not {lr}"));
    }
    let hypergradient = num(c, "hypergradient", usize::MAX)?;
    if let Some(beta) = hypergradient
        && !(beta >= 0.0 && beta.is_finite())
    {
        return Err(format!("`hypergradient` must be a finite number at least 0, not {beta}"));
    }
    Ok(Optimizer {
        kind,
        lr,
        weight_decay: num(c, "weight_decay", usize::MAX)?.unwrap_or(default_wd),
        bias_decay: num(c, "bias_decay", usize::MAX)?.unwrap_or(0.0),
        hypergradient,
    })
}

fn schedule(v: &Value) -> Result<Schedule, String> {
    let (name, call) = match v {
        Value::Sym(s) => (s.sym.as_str(), None),
        Value::Call(c) => (c.name.as_str(), Some(c)),
        _ => return Err(format!("is {}", catalogue::written(catalogue::Concept::Schedule))),
    };
    let get = |k: &str, pos: usize| call.map_or(Ok(None), |c| num(c, k, pos));
    let Some(kind) = catalogue::kind(catalogue::SCHEDULES, name) else {
        return Err(format!("unknown schedule `{name}`"));
    };
    match kind {
        catalogue::Schedule::Constant => Ok(Schedule::Constant),
        catalogue::Schedule::Cosine => Ok(Schedule::Cosine { warmup: get("warmup", 0)?.unwrap_or(0.0).max(0.0) }),
        catalogue::Schedule::Step => Ok(Schedule::Step {
            every: get("every", 0)?.unwrap_or(10.0).max(1.0) as usize,
            gamma: get("gamma", 1)?.unwrap_or(0.1),
        }),
    }
}

/// `None` for `early_stop = none`, which the checker accepts and the docs list.
fn early_stop(v: &Value) -> Result<Option<EarlyStop>, String> {
    let wrong = || "is patience(n, on: metric)".to_string();
    match v.head().and_then(|h| catalogue::kind(catalogue::EARLY_STOPS, h)) {
        Some(catalogue::EarlyStop::Patience) => {
            let Value::Call(c) = v else { return Err(wrong()) };
            let patience =
                c.arg("n", 0).and_then(Value::as_i64).filter(|n| *n >= 1).ok_or("patience needs a positive int")?;
            let on = c.arg("on", 1).and_then(|v| v.as_sym().map(str::to_string)).unwrap_or_else(|| "loss".to_string());
            Ok(Some(EarlyStop { patience: patience as usize, on }))
        }
        Some(catalogue::EarlyStop::None) => match v {
            Value::Sym(_) => Ok(None),
            _ => Err(wrong()),
        },
        None => match v {
            Value::Int(n) if *n >= 1 => Ok(Some(EarlyStop { patience: *n as usize, on: "loss".into() })),
            _ => Err(wrong()),
        },
    }
}

fn init(v: &Value) -> Result<Init, String> {
    let (name, call) = match v {
        Value::Sym(s) => (s.sym.as_str(), None),
        Value::Call(c) => (c.name.as_str(), Some(c)),
        _ => return Err(format!("is {}", catalogue::written(catalogue::Concept::Init))),
    };
    let get = |k: &str, pos: usize| call.map_or(Ok(None), |c| num(c, k, pos));
    let Some(kind) = catalogue::kind(catalogue::INITS, name) else {
        return Err(format!("unknown init `{name}`"));
    };
    match kind {
        catalogue::Init::Default => Ok(Init::Default),
        catalogue::Init::Normal => {
            Ok(Init::Normal { mean: get("mean", usize::MAX)?.unwrap_or(0.0), std: get("std", 0)?.unwrap_or(0.01) })
        }
        catalogue::Init::Uniform => Ok(Init::Uniform { limit: get("limit", 0)?.unwrap_or(0.05) }),
        catalogue::Init::Xavier => Ok(Init::Xavier),
        catalogue::Init::Kaiming => Ok(Init::Kaiming),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(key: &str, v: Value) -> Result<TrainConfig, ConfigError> {
        TrainConfig::from_values(&[(key.to_string(), v)], Task::Classification, 1)
    }

    /// Each catalogue entry builds its own kind, by name.
    #[test]
    fn catalogue_names_build_their_kinds() {
        let loss = |n: &str| read("loss", Value::sym(n)).map(|c| c.loss);
        assert_eq!(loss("huber"), Ok(Loss::Huber));
        assert_eq!(loss("bce"), Ok(Loss::Bce));
        assert!(loss("hinge").is_err());
        assert_eq!(read("init", Value::sym("xavier")).map(|c| c.init), Ok(Init::Xavier));
        assert_eq!(read("schedule", Value::sym("constant")).map(|c| c.schedule), Ok(Schedule::Constant));
        let sgd = read("optimizer", Value::sym("sgd")).map(|c| c.optimizer.kind);
        assert_eq!(sgd, Ok(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }));
        let unknown = read("schedule", Value::sym("linear")).err().map(|e| e.message);
        assert_eq!(unknown.as_deref(), Some("unknown schedule `linear`"));
        let wrong = |k: &str| read(k, Value::Int(3)).err().map(|e| e.message);
        assert_eq!(wrong("schedule").as_deref(), Some("is constant, cosine(warmup:) or step(every:, gamma:)"));
        let inits = "is default, normal(mean:, std:), uniform(limit:), xavier or kaiming";
        assert_eq!(wrong("init").as_deref(), Some(inits));
    }

    /// `early_stop = none`, which the checker accepts and the reference lists, trains every epoch.
    #[test]
    fn early_stop_none_stops_nothing() {
        assert_eq!(read("early_stop", Value::sym("none")).map(|c| c.early_stop), Ok(None));
        assert!(read("early_stop", Value::sym("patience")).is_err());
    }
}
