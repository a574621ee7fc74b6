//! The values settings take: optimisers, schedules, losses, inits, early stopping
//! (`train`), strategies and pruners (`search`), ensemble weights and averaging rules
//! (`average`), ranks and metrics (`objective`).
//!
//! Each kind enum is matched exhaustively by the runtime that builds it: `train::config`
//! (optimisers to early stopping), `search::strategy`, `search::prune::from_setting`,
//! `final_model` (weights, averaging rules), `trial::rank` (ranks).

use super::{Arg, ArgType, Concept, Entry, Form, Need, Sig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    Sgd,
    Adam,
    AdamW,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Constant,
    Cosine,
    Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    CrossEntropy,
    Mse,
    Mae,
    Huber,
    Bce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
    Bf16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    Default,
    Normal,
    Uniform,
    Xavier,
    Kaiming,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStop {
    Patience,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Grid,
    Random,
    Tpe,
    Nsga2,
    Evolution,
    Subspace,
    Gp,
    Auto,
    Darts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruner {
    None,
    Median,
    Asha,
    Hyperband,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    Uniform,
    Softmax,
    Bayes,
    Greedy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    Ensemble,
    Soup,
    Swa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    Pareto,
    Lexicographic,
    Weighted,
}

const fn req(name: &'static str, ty: ArgType) -> Arg {
    Arg { name, ty, need: Need::Required }
}

const fn opt(name: &'static str, ty: ArgType) -> Arg {
    Arg { name, ty, need: Need::Optional }
}

const fn e<K>(kind: K, name: &'static str, args: &'static [Arg], doc: &'static str) -> Entry<K> {
    Entry { kind, sig: Sig { name, args, doc, form: Form::Call } }
}

const ADAM: &[Arg] = &[
    opt("lr", ArgType::Number),
    opt("betas", ArgType::Numbers),
    opt("weight_decay", ArgType::Number),
    opt("bias_decay", ArgType::Number),
    opt("hypergradient", ArgType::Number),
];

/// `train { optimizer = ... }`.
pub const OPTIMIZERS: &[Entry<Optimizer>] = &[
    e(
        Optimizer::Sgd,
        "sgd",
        &[
            opt("lr", ArgType::Number),
            opt("momentum", ArgType::Number),
            opt("nesterov", ArgType::Bool),
            opt("weight_decay", ArgType::Number),
            opt("bias_decay", ArgType::Number),
            opt("hypergradient", ArgType::Number),
        ],
        "stochastic gradient descent, with momentum (default lr 0.01)",
    ),
    e(Optimizer::Adam, "adam", ADAM, "Adam, L2 penalty coupled (default lr 1e-3)"),
    e(Optimizer::AdamW, "adamw", ADAM, "Adam with decoupled weight decay (default lr 1e-3, weight decay 0.01)"),
];

/// `train { schedule = ... }`.
pub const SCHEDULES: &[Entry<Schedule>] = &[
    e(Schedule::Constant, "constant", &[], "the learning rate never changes"),
    e(
        Schedule::Cosine,
        "cosine",
        &[opt("warmup", ArgType::Int)],
        "linear warm-up over `warmup` epochs, then cosine decay to 0",
    ),
    e(
        Schedule::Step,
        "step",
        &[opt("every", ArgType::Int), opt("gamma", ArgType::Number)],
        "the learning rate times `gamma` every `every` epochs (default 10, 0.1)",
    ),
];

/// `train { loss = ... }`.
pub const LOSSES: &[Entry<Loss>] = &[
    e(Loss::CrossEntropy, "cross_entropy", &[], "softmax cross-entropy (the default for classification)"),
    e(Loss::Mse, "mse", &[], "mean squared error (the default for regression)"),
    e(Loss::Mae, "mae", &[], "mean absolute error"),
    e(Loss::Huber, "huber", &[opt("delta", ArgType::Number)], "squared below `delta`, absolute above"),
    e(Loss::Bce, "bce", &[], "binary cross-entropy"),
];

/// `train { precision = ... }` (`train::precision`).
pub const PRECISIONS: &[Entry<Precision>] = &[
    e(Precision::F32, "f32", &[], "every step in 32-bit floats (the default)"),
    e(
        Precision::F16,
        "f16",
        &[],
        "training steps in IEEE half floats on f32 master weights, the loss scaled by 1024; where the device computes in f16",
    ),
    e(
        Precision::Bf16,
        "bf16",
        &[],
        "training steps in bfloat16 on f32 master weights; where the device computes in bf16 (not wgpu)",
    ),
];

/// `train { init = ... }`.
pub const INITS: &[Entry<Init>] = &[
    e(Init::Default, "default", &[], "PyTorch's: weights and biases uniform in ±1/sqrt(fan_in)"),
    e(
        Init::Normal,
        "normal",
        &[opt("mean", ArgType::Number), opt("std", ArgType::Number)],
        "weights from a normal distribution (default mean 0, std 0.01)",
    ),
    e(Init::Uniform, "uniform", &[opt("limit", ArgType::Number)], "weights uniform in ±limit (default 0.05)"),
    e(Init::Xavier, "xavier", &[], "Glorot uniform, biases 0"),
    e(Init::Kaiming, "kaiming", &[], "He normal, biases 0"),
];

/// `train { early_stop = ... }`.
pub const EARLY_STOPS: &[Entry<EarlyStop>] = &[
    e(
        EarlyStop::Patience,
        "patience",
        &[req("n", ArgType::Int), opt("on", ArgType::Metric)],
        "stop after `n` epochs without improving the valid `on` metric (default loss)",
    ),
    e(EarlyStop::None, "none", &[], "train every epoch"),
];

/// `search { strategy = ... }`.
pub const STRATEGIES: &[Entry<Strategy>] = &[
    e(Strategy::Grid, "grid", &[opt("limit", ArgType::Int)], "every point of a finite space"),
    e(Strategy::Random, "random", &[], "independent uniform samples"),
    e(Strategy::Tpe, "tpe", &[opt("startup", ArgType::Int)], "tree-structured Parzen estimator"),
    e(
        Strategy::Auto,
        "auto",
        &[],
        "the default: gp for one objective, at most 200 trials and 8 parameters, tpe otherwise",
    ),
    e(Strategy::Gp, "gp", &[opt("startup", ArgType::Int)], "Gaussian-process Bayesian optimisation (one objective)"),
    e(Strategy::Nsga2, "nsga2", &[opt("population", ArgType::Int)], "evolutionary multi-objective search"),
    e(
        Strategy::Evolution,
        "evolution",
        &[opt("population", ArgType::Int), opt("sample", ArgType::Int)],
        "aging evolution",
    ),
    e(
        Strategy::Subspace,
        "subspace",
        &[req("by", ArgType::Params), opt("samples", ArgType::Int), opt("eta", ArgType::Int)],
        "partition by structural parameters, keep the best cells",
    ),
    e(
        Strategy::Darts,
        "darts",
        &[
            opt("epochs", ArgType::Int),
            opt("arch_lr", ArgType::Number),
            opt("arch_weight_decay", ArgType::Number),
            opt("stop_entropy", ArgType::Number),
            opt("patience", ArgType::Int),
            opt("then", ArgType::OneOf(Concept::Strategy)),
        ],
        "differentiable architecture search over the structural choices, then the read-off model \
         retrained (and `then:` a sampled strategy over the rest)",
    ),
];

/// `search { prune = ... }`.
pub const PRUNERS: &[Entry<Pruner>] = &[
    Entry { kind: Pruner::None, sig: Sig { name: "none", args: &[], doc: "no pruning", form: Form::Plain } },
    e(
        Pruner::Median,
        "median",
        &[opt("warmup", ArgType::Int)],
        "stop a trial below the median of others at the same epoch",
    ),
    e(
        Pruner::Asha,
        "asha",
        &[opt("min_epochs", ArgType::Int), opt("eta", ArgType::Int)],
        "asynchronous successive halving",
    ),
    e(
        Pruner::Hyperband,
        "hyperband",
        &[opt("min_epochs", ArgType::Int), opt("max_epochs", ArgType::Int), opt("eta", ArgType::Int)],
        "several ASHA brackets",
    ),
];

/// `ensemble(weights: ...)`.
pub const WEIGHTS: &[Entry<Weights>] = &[
    e(Weights::Uniform, "uniform", &[], "every member weighs 1/k"),
    e(
        Weights::Softmax,
        "softmax",
        &[opt("metric", ArgType::Metric), opt("temperature", ArgType::Number)],
        "weights ∝ exp(score / temperature) on the valid `metric`",
    ),
    e(Weights::Bayes, "bayes", &[opt("n", ArgType::Number)], "weights ∝ exp(−n · mean valid loss)"),
    e(
        Weights::Greedy,
        "greedy",
        &[opt("rounds", ArgType::Int)],
        "ensemble selection with replacement (default 20 rounds)",
    ),
];

/// `average { ... }`.
pub const AVERAGES: &[Entry<Average>] = &[
    e(
        Average::Ensemble,
        "ensemble",
        &[
            opt("top", ArgType::Int),
            opt("weights", ArgType::OneOf(Concept::Weights)),
            opt("combine", ArgType::Syms(&["mean", "vote"])),
        ],
        "averages the predictions of the best `top` trials",
    ),
    e(
        Average::Soup,
        "soup",
        &[opt("method", ArgType::Syms(&["uniform", "greedy"])), opt("top", ArgType::Int)],
        "averages the weights of the best trials of the best one's architecture",
    ),
    e(Average::Swa, "swa", &[opt("last", ArgType::Int)], "each trial's weights averaged over its `last` epochs"),
];

/// `objective { rank = ... }`.
pub const RANKS: &[Entry<Rank>] = &[
    e(Rank::Pareto, "pareto", &[], "by non-dominated front, then crowding distance"),
    e(Rank::Lexicographic, "lexicographic", &[], "by the first objective, then the next"),
    e(Rank::Weighted, "weighted", &[], "by a weighted sum of the objectives: `weighted(obj: w, ...)`"),
];

/// When a metric is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Measured on a split of the data after training.
    OnSplit,
    /// Measured on the trained network (time, speed, score of the untrained network).
    Measured,
    /// Known from the architecture alone, before training: constraints on it are decided
    /// before any point is trained.
    BeforeTraining,
}

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// What the catalogue knows of a metric: when it is known and which way it improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub known: Known,
    pub better: Better,
}

const fn metric(known: Known, better: Better, name: &'static str, doc: &'static str) -> Entry<Metric> {
    Entry { kind: Metric { known, better }, sig: Sig { name, args: &[], doc, form: Form::Plain } }
}

/// Whether a larger value of `metric` is better (a metric the catalogue does not know: no).
/// A metric with an argument is named as written, `top_k(5)`.
pub fn higher_is_better(metric: &str) -> bool {
    super::kind(METRICS, metric_name(metric)).is_some_and(|m| m.better == Better::Higher)
}

/// The catalogue name of a measured metric's key: `top_k` for `top_k(5)`.
pub fn metric_name(key: &str) -> &str {
    key.split_once('(').map_or(key, |(name, _)| name)
}

/// The key the value of a metric with an argument is stored under, as the language writes
/// it: `top_k(5)`. An objective `maximize top_k(5)` reads that key.
pub fn metric_key(name: &str, k: i64) -> String {
    format!("{name}({k})")
}

/// The metrics a trained model is measured by (objectives, constraints, `early_stop(on:)`).
pub const METRICS: &[Entry<Metric>] = &[
    metric(
        Known::OnSplit,
        Better::Higher,
        "accuracy",
        "fraction of correctly classified samples on the split (valid by default)",
    ),
    metric(Known::OnSplit, Better::Higher, "f1", "macro-averaged F1 score on the split"),
    metric(Known::OnSplit, Better::Higher, "precision", "macro-averaged precision on the split"),
    metric(Known::OnSplit, Better::Higher, "recall", "macro-averaged recall on the split"),
    metric(Known::OnSplit, Better::Lower, "loss", "the training loss measured on the split"),
    metric(Known::OnSplit, Better::Lower, "mse", "mean squared error on the split"),
    metric(Known::OnSplit, Better::Lower, "mae", "mean absolute error on the split"),
    metric(Known::OnSplit, Better::Higher, "r2", "coefficient of determination on the split"),
    metric(Known::OnSplit, Better::Lower, "rmse", "root mean squared error on the split, in the target's units"),
    metric(
        Known::OnSplit,
        Better::Lower,
        "mape",
        "mean absolute percentage error on the split, as a fraction, over the rows whose target is not 0",
    ),
    metric(
        Known::OnSplit,
        Better::Higher,
        "auc",
        "area under the ROC curve on the split (several classes: macro mean of one-vs-rest)",
    ),
    metric(Known::OnSplit, Better::Lower, "log_loss", "mean negative log-probability of the true class on the split"),
    metric(Known::OnSplit, Better::Higher, "balanced_accuracy", "mean recall over the classes present in the split"),
    Entry {
        kind: Metric { known: Known::OnSplit, better: Better::Higher },
        sig: Sig {
            name: "top_k",
            args: &[Arg { name: "k", ty: ArgType::Int, need: Need::Required }],
            doc: "share of samples whose class is among the `k` most probable (k from 1 to 10): `top_k(5)`",
            form: Form::Call,
        },
    },
    metric(
        Known::Measured,
        Better::Lower,
        "latency",
        "median inference time per sample at batch 1, after warm-up (µs)",
    ),
    metric(Known::Measured, Better::Higher, "throughput", "samples per second at inference"),
    metric(Known::BeforeTraining, Better::Lower, "params", "number of trainable parameters (known before training)"),
    metric(
        Known::BeforeTraining,
        Better::Lower,
        "flops",
        "floating-point operations per sample, multiply-add = 2 (known before training)",
    ),
    metric(Known::Measured, Better::Lower, "train_time", "wall time spent training the trial (s)"),
    metric(
        Known::Measured,
        Better::Higher,
        "expressivity",
        "NASWOT score of the untrained network: log-determinant of the kernel of its ReLU codes",
    ),
];
