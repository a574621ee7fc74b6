//! Training: the only door to burn.
//!
//! Takes an expanded [`ir::SubModel`], a [`TrainConfig`] and a loaded
//! [`data::Dataset`]; [`fit`] builds the network as a burn module, trains it, calls
//! `on_epoch` after every epoch (the pruner can stop it at once), and gives a
//! [`TrialOutcome`]: status, per-epoch metrics, the final metrics of the kept weights
//! (valid split, plus `params`, `flops`, `latency`, `throughput`, `train_time`,
//! `expressivity`, `gap`) and the trained [`Model`]. With `hypergradient: β` the learning rate
//! adapts online ([`hypergradient`]): each epoch's `lr` is then the adapted one, and the final
//! metrics add it per epoch and at the end. [`Trials`] prepares an experiment
//! once (data loaded) and runs one trial per point: the search's entry. [`Model::save`] and [`evaluate_saved`]
//! write and reread a model directory (`model.safetensors` + `model.json`).
//!
//! A regression network trains on the target standardised by the dataset's
//! [`data::TargetScale`] (fitted on train), which the [`Model`] keeps (and `model.json`
//! with it): [`Model::predict`] and every metric but `loss` invert it, so predictions,
//! `mse`, `r2`... are in the target's own units.
//!
//! **Invariants:** burn types never leave this module; nothing a data file or setting
//! holds can panic here; a NaN or infinite loss ends the trial as
//! [`Status::Failed`] with the reason; each `fit` runs in its own rayon pool of
//! `TrainConfig::threads` threads (default 1), so parallel trials do not fight over one
//! global pool. Weight initialisation, batch order and dropout masks come from the
//! trial's own generator: a trial's result depends only on its seed, not on what runs
//! beside it.

mod adam;
pub mod augment;
mod batches;
mod config;
pub mod darts;
pub mod device;
pub mod hypergradient;
pub mod memory;
mod metrics;
mod net;
pub mod precision;
mod save;
mod trial;

use std::path::Path;
use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData, activation};
use serde::{Deserialize, Serialize};

pub use config::{ConfigError, EarlyStop, Init, Loss, Optimizer, OptimizerKind, Schedule, TrainConfig};
pub use metrics::{
    Head, Metrics, TOP_K_MAX, binary_auc, classification_metrics, evaluate as evaluate_outputs, log_abs_det, mean_loss,
    naswot, probability_metrics, regression_metrics,
};
pub use net::{Op, OpKind, Plan, Tensors};
pub use save::{
    SavedConfig, check_fits, data_changes, evaluate_saved, evaluate_saved_on, from_safetensors, load, load_config,
    load_on, saved_format, to_safetensors,
};
pub use trial::{Averaging, KEPT, TrialData, Trials, averaging, init_seed};

pub use device::DeviceKind;
use device::burn_device;
pub use precision::Precision;

use crate::data::{Dataset, Split, TargetScale};
use crate::ir::{self, Task};
use crate::rng::Rng;
use net::{Mode, Net};

/// Whether training goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Ran every epoch.
    Completed,
    /// Early stopping found no improvement for `patience` epochs.
    EarlyStopped {
        epoch: usize,
    },
    /// `on_epoch` said stop (the pruner).
    Stopped {
        epoch: usize,
    },
    Failed {
        reason: String,
    },
}

/// What one training gives.
#[derive(Debug)]
pub struct TrialOutcome {
    pub status: Status,
    /// Per epoch (1-based `epoch`): `train_loss`, `lr`, `epoch_time` (s, the training
    /// steps only), and the valid metrics.
    pub epochs: Vec<Metrics>,
    /// The kept weights' valid metrics, `train_*` metrics, `gap`, `params`, `flops`,
    /// `latency` (µs), `throughput` (samples/s), `train_time` (s), `expressivity`.
    pub metrics: Metrics,
    /// The epoch whose weights were kept (best valid value of the monitored metric).
    pub best_epoch: usize,
    /// The trained model; `None` when the trial failed before an epoch ended.
    pub model: Option<Model>,
}

/// A trained network ready for inference, saving and averaging.
#[derive(Debug, Clone)]
pub struct Model {
    net: Net,
    pub plan: Plan,
    pub task: Task,
    pub loss: Loss,
    device: DeviceKind,
    /// The regression target's scaling the network trained on: [`Model::predict`] and the
    /// metrics invert it, so they are in the target's own units.
    pub target: TargetScale,
}

/// Trains `sub` on `data` by `cfg`; see the module header.
pub fn fit<F>(device: DeviceKind, sub: &ir::SubModel, cfg: &TrainConfig, data: &Dataset, on_epoch: F) -> TrialOutcome
where
    F: FnMut(usize, &Metrics) -> Control + Send,
{
    fit_until(device, sub, cfg, data, None, on_epoch)
}

/// [`fit`] that also stops between batches once `deadline` has passed (a trial's time
/// limit, a study's time budget): [`Status::Stopped`] at the last whole epoch, the
/// unfinished one dropped (no model when none had finished).
pub fn fit_until<F>(
    device: DeviceKind,
    sub: &ir::SubModel,
    cfg: &TrainConfig,
    data: &Dataset,
    deadline: Option<Instant>,
    on_epoch: F,
) -> TrialOutcome
where
    F: FnMut(usize, &Metrics) -> Control + Send,
{
    if let Some(why) = precision::unsupported_layer(sub, cfg.precision) {
        return failed(why, Vec::new());
    }
    let plan = Plan::new(sub);
    in_pool(cfg.threads, || fit_plan(device, plan, cfg, data, deadline, on_epoch))
}

/// Runs `f` in a private rayon pool of `threads` threads (on failure, where it is).
pub fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

fn failed(reason: String, epochs: Vec<Metrics>) -> TrialOutcome {
    TrialOutcome { status: Status::Failed { reason }, epochs, metrics: Metrics::new(), best_epoch: 0, model: None }
}

fn fit_plan<F>(
    kind: DeviceKind,
    plan: Plan,
    cfg: &TrainConfig,
    data: &Dataset,
    deadline: Option<Instant>,
    mut on_epoch: F,
) -> TrialOutcome
where
    F: FnMut(usize, &Metrics) -> Control,
{
    let start = Instant::now();
    let device = match burn_device(kind) {
        Ok(d) => d,
        Err(e) => return failed(e, Vec::new()),
    };
    let features = data.features();
    if plan.in_features() != features {
        return failed(format!("the model takes {} features, the data has {features}", plan.in_features()), Vec::new());
    }
    let k = plan.out_features();
    let classification = data.info.task == Task::Classification;
    if classification && cfg.loss == Loss::CrossEntropy && k != data.info.classes {
        return failed(format!("the model gives {k} outputs for {} classes", data.info.classes), Vec::new());
    }
    if data.train.n == 0 {
        return failed("the train split is empty".into(), Vec::new());
    }
    let head = head_of(&plan);
    // `precision`: refused before training where the device cannot compute in it (a layer
    // that cannot: in `fit_until`).
    let low = cfg.precision;
    if let Err(why) = precision::supported(kind, low) {
        return failed(why, Vec::new());
    }
    let ad = device.clone().autodiff();
    let mut rng = Rng::new(cfg.seed);
    // A shared init seed (soups) draws the weights apart from the trial's generator, which
    // still decides batch order and dropout.
    let mut net = match cfg.init_seed {
        Some(seed) => Net::init(&plan, cfg.init, &mut Rng::new(seed), &ad),
        None => Net::init(&plan, cfg.init, &mut rng, &ad),
    };
    let expressivity = expressivity(&net, &plan, &data.train, features, &device, &mut rng);
    let mut opt = optimizer(cfg, &net);
    let steps_per_epoch = data.train.n.div_ceil(cfg.batch.max(1));
    // `hypergradient: β`: the rate adapts online, stepped by burn's plain SGD (`hypergradient.rs`).
    let mut hyper = hypergradient::Runner::new(&cfg.optimizer, &net);
    let mut stepped_lr = cfg.lr_at(0, steps_per_epoch);
    let mut alphas = Vec::new();
    let monitor = cfg.early_stop.as_ref().map_or("loss", |e| e.on.as_str()).to_string();
    let maximize = higher_is_better(&monitor);
    let mut best: Option<(f64, usize, Net)> = None;
    let mut epochs = Vec::new();
    let mut status = Status::Completed;
    let mut step = 0usize;
    let mut loss_scale = precision::LossScale::new(low);
    let mut order: Vec<usize> = (0..data.train.n).collect();
    // Apart from `rng`, so that batch order, initialisation and dropout are the same with
    // augmentation or without.
    let mut augment_rng = Rng::new(crate::rng::mix_seed(cfg.seed, AUGMENT_STREAM));
    let swa = cfg.swa.filter(|k| *k >= 1);
    let mut window: std::collections::VecDeque<Tensors> = std::collections::VecDeque::new();
    for epoch in 1..=cfg.epochs {
        rng.shuffle(&mut order);
        let epoch_start = Instant::now();
        let (mut sum, mut count) = (0.0f64, 0usize);
        let mut out_of_time = false;
        for (chunk, values) in batches::batches(&data.train, &order, cfg.batch, features) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                out_of_time = true;
                break;
            }
            // A batch of one breaks batch statistics; it is at most one sample per epoch.
            if chunk.len() < 2 && order.len() >= 2 {
                continue;
            }
            let mut v = match values {
                Ok(v) => v,
                Err(e) => return failed(e.to_string(), epochs),
            };
            if !cfg.augment.is_empty() {
                // Train batches only, from the trial's own augmentation stream.
                augment::apply(&cfg.augment, &mut v, &data.info.shape, &mut augment_rng);
            }
            let x = Tensor::from_data(TensorData::new(v, [chunk.len(), features]), &ad);
            let t = batch_t(&data.train, chunk, k, classification, cfg.loss, data.target, &ad);
            let out = if low == Precision::F32 {
                net::forward(&net, &plan, x, Mode::Train(&mut rng), None)
            } else {
                // f32 master weights, the step in `low` (`precision.rs`).
                let view = precision::view(&net, low, &loss_scale);
                let out = net::forward(&view, &plan, precision::cast_in(x, low), Mode::Train(&mut rng), None);
                precision::keep_statistics(&mut net, &view);
                out.map(|o| precision::cast_out(o, low))
            };
            let out = match out {
                Ok(o) => o,
                Err(e) => return failed(e, epochs),
            };
            let loss = loss_tensor(out, t, cfg.loss, head);
            let value = scalar(loss.clone());
            if !value.is_finite() {
                return failed(format!("the training loss became {value} at epoch {epoch}, step {}", step + 1), epochs);
            }
            sum += value * chunk.len() as f64;
            count += chunk.len();
            let scale = loss_scale.get();
            let loss = if scale == 1.0 { loss } else { loss.mul_scalar(scale) };
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            // f16: a step whose gradients overflowed is skipped, and the scale lowered.
            if low == Precision::F16 {
                match loss_scale.update(precision::grads_finite(&net, &grads)) {
                    Ok(true) => {}
                    Ok(false) => {
                        step += 1;
                        continue;
                    }
                    Err(e) => return failed(format!("{e} (epoch {epoch}, step {})", step + 1), epochs),
                }
            }
            let lr = cfg.lr_at(step, steps_per_epoch);
            net = match &mut hyper {
                None => opt.step(lr, net, grads),
                Some(h) => match h.step(net, grads, lr / cfg.optimizer.lr) {
                    Ok((net, used)) => {
                        stepped_lr = used;
                        net
                    }
                    Err(e) => return failed(format!("{e} (epoch {epoch})"), epochs),
                },
            };
            step += 1;
        }
        if out_of_time {
            status = Status::Stopped { epoch: epoch - 1 };
            break;
        }
        let epoch_time = epoch_start.elapsed().as_secs_f64();
        if let Some(k) = swa {
            if window.len() == k {
                window.pop_front();
            }
            window.push_back(net.tensors(&plan));
        }
        let valid = evaluate_net(
            &net.valid(),
            &plan,
            &data.valid,
            features,
            k,
            (classification, cfg.loss, head, data.target),
            &device,
        );
        let mut m = match valid {
            Ok(m) => m,
            Err(e) => return failed(e, epochs),
        };
        m.insert("epoch".into(), epoch as f64);
        m.insert("train_loss".into(), sum / count.max(1) as f64);
        m.insert("epoch_time".into(), epoch_time);
        if low == Precision::F16 {
            // The dynamic loss scale at the epoch's end, and the steps skipped so far.
            m.insert("loss_scale".into(), loss_scale.get());
            m.insert("skipped_steps".into(), loss_scale.skipped as f64);
        }
        match &hyper {
            None => m.insert("lr".into(), cfg.lr_at(step.saturating_sub(1), steps_per_epoch)),
            // The rate of the epoch's last step, adapted.
            Some(h) => {
                alphas.push(h.alpha());
                m.insert("lr".into(), stepped_lr)
            }
        };
        let valid_loss = m.get("loss").copied().unwrap_or(f64::NAN);
        if !valid_loss.is_finite() {
            epochs.push(m);
            return failed(format!("the valid loss became {valid_loss} at epoch {epoch}"), epochs);
        }
        let value = m.get(&monitor).copied().unwrap_or(valid_loss);
        let better = best.as_ref().is_none_or(|(b, _, _)| if maximize { value > *b } else { value < *b });
        if better {
            // A snapshot, not a clone: burn's `RunningState` (batch-norm statistics) is
            // shared between clones, so a plain clone would keep this epoch's weights with
            // the statistics of the last epoch run.
            best = Some((value, epoch, net.snapshot()));
        }
        let control = on_epoch(epoch, &m);
        epochs.push(m);
        if control == Control::Stop {
            status = Status::Stopped { epoch };
            break;
        }
        if let (Some(es), Some((_, be, _))) = (&cfg.early_stop, &best)
            && epoch - be >= es.patience
        {
            status = Status::EarlyStopped { epoch };
            break;
        }
    }
    let train_time = start.elapsed().as_secs_f64();
    let Some((_, mut best_epoch, mut kept)) = best else {
        if let Status::Stopped { .. } = status {
            return TrialOutcome { status, epochs, metrics: Metrics::new(), best_epoch: 0, model: None };
        }
        return failed("no epoch ran".into(), epochs);
    };
    if swa.is_some() {
        // Stochastic weight averaging: the mean of the last k epochs run, not the best one.
        match swa_net(&window, net, &plan, &data.train, features, cfg.batch, &ad) {
            Ok(n) => kept = n,
            Err(e) => return failed(format!("weight averaging: {e}"), epochs),
        }
        best_epoch = epochs.len();
    }
    let model =
        Model { net: kept.valid(), plan, task: data.info.task, loss: cfg.loss, device: kind, target: data.target };
    // The kept epoch's valid metrics were measured on these very weights; only averaged
    // weights (swa) need a new pass.
    let kept_valid = if swa.is_none() { epochs.get(best_epoch.wrapping_sub(1)).map(valid_part) } else { None };
    let mut metrics = match kept_valid.map_or_else(|| model.evaluate(&data.valid, &data.info), Ok) {
        Ok(m) => m,
        Err(e) => return failed(e, epochs),
    };
    if let Ok(train) = train_sample(&data.train, features).and_then(|s| model.evaluate(&s, &data.info)) {
        let gap = if classification {
            train.get("accuracy").copied().unwrap_or(0.0) - metrics.get("accuracy").copied().unwrap_or(0.0)
        } else {
            metrics.get("loss").copied().unwrap_or(0.0) - train.get("loss").copied().unwrap_or(0.0)
        };
        metrics.extend(train.into_iter().map(|(k, v)| (format!("train_{k}"), v)));
        metrics.insert("gap".into(), gap);
    }
    let (latency, throughput) = model.speed(&data.valid, features);
    metrics.insert("params".into(), model.param_count() as f64);
    metrics.insert("flops".into(), model.plan.flops as f64);
    metrics.insert("latency".into(), latency);
    metrics.insert("throughput".into(), throughput);
    metrics.insert("train_time".into(), train_time);
    if let Some(e) = expressivity {
        metrics.insert("expressivity".into(), e);
    }
    if let Some(h) = &hyper {
        metrics.insert(hypergradient::FINAL.into(), h.alpha());
        for (e, a) in alphas.iter().enumerate() {
            metrics.insert(format!("{}{}", hypergradient::EPOCH_PREFIX, e + 1), *a);
        }
    }
    TrialOutcome { status, epochs, metrics, best_epoch, model: Some(model) }
}

/// The most train rows the `train_*` metrics (and `gap`) are measured on after training.
pub const TRAIN_SAMPLE: usize = 4096;

/// The rows the `train_*` metrics are measured on: all of `train` when it has at most
/// [`TRAIN_SAMPLE`] rows, else [`TRAIN_SAMPLE`] rows evenly spaced through it (the split is
/// already shuffled, stratified for classification), the same rows for every trial. A full
/// pass over a large train split cost a third of an epoch (Fashion-MNIST, 58.8k rows); the
/// sample's accuracy is within about 1 point of the whole split's (binomial standard error
/// at most 0.8 points at 4,096 rows), enough for `gap` and `on train` objectives.
fn train_sample(train: &Split, features: usize) -> Result<std::borrow::Cow<'_, Split>, String> {
    if train.n <= TRAIN_SAMPLE {
        return Ok(std::borrow::Cow::Borrowed(train));
    }
    let rows: Vec<usize> = (0..TRAIN_SAMPLE).map(|k| k * train.n / TRAIN_SAMPLE).collect();
    train.subset(&rows, features).map(std::borrow::Cow::Owned).map_err(|e| e.to_string())
}

/// The valid metrics among an epoch's (without `epoch`, `train_loss`, `epoch_time`, `lr`).
fn valid_part(epoch: &Metrics) -> Metrics {
    epoch
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "epoch" | "train_loss" | "epoch_time" | "lr"))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// The element-wise mean of the snapshots in `window`, loaded into `net` (on `device`),
/// with its batch-norm statistics recomputed on `train`.
fn swa_net(
    window: &std::collections::VecDeque<Tensors>,
    net: Net,
    plan: &Plan,
    train: &Split,
    features: usize,
    batch: usize,
    device: &Device,
) -> Result<Net, String> {
    let first = window.front().ok_or("no epoch to average")?;
    // The same uniform weight averaging as a soup (`average::average_params`).
    let snapshots: Vec<crate::average::Params> =
        window.iter().map(|t| t.iter().map(|(name, _, v)| (name.clone(), v.clone())).collect()).collect();
    let refs: Vec<&crate::average::Params> = snapshots.iter().collect();
    let weights = vec![1.0 / window.len() as f64; window.len()];
    let mut averaged = crate::average::average_params(&refs, &weights).ok_or("epoch snapshots differ in shape")?;
    let mean: Tensors = first
        .iter()
        .map(|(name, shape, _)| (name.clone(), shape.clone(), averaged.remove(name).unwrap_or_default()))
        .collect();
    let net = net.load_tensors(plan, &mean, device)?;
    recompute_batchnorm(net, plan, train, features, batch, device)
}

/// Sets every batch-norm layer's running statistics to the mean over `train` of its
/// batch statistics (a cumulative average: momentum `1/(i+1)` at batch `i`), as after
/// weight averaging the old statistics describe none of the averaged networks. `device`
/// must be an autodiff device (batch norm takes its training path there); no gradient is
/// taken and no other weight changes.
fn recompute_batchnorm(
    mut net: Net,
    plan: &Plan,
    train: &Split,
    features: usize,
    batch: usize,
    device: &Device,
) -> Result<Net, String> {
    if !net.parts.iter().any(|p| matches!(p, net::Part::BatchNorm(_))) {
        return Ok(net);
    }
    let set_momentum = |net: &mut Net, m: f64| {
        for p in &mut net.parts {
            if let net::Part::BatchNorm(bn) = p {
                bn.momentum = m;
            }
        }
    };
    let rows: Vec<usize> = (0..train.n).collect();
    let mut i = 0usize;
    for (chunk, values) in batches::batches(train, &rows, batch.max(2), features) {
        if chunk.len() < 2 {
            continue;
        }
        set_momentum(&mut net, 1.0 / (i + 1) as f64);
        let x = Tensor::from_data(TensorData::new(values.map_err(|e| e.to_string())?, [chunk.len(), features]), device);
        net::forward(&net, plan, x, Mode::Eval, None)?;
        i += 1;
    }
    set_momentum(&mut net, 0.1);
    Ok(net)
}

impl Model {
    /// The same weights with batch-norm statistics recomputed on `split` (after weight
    /// averaging); the model itself when it has no batch norm.
    pub fn recompute_batchnorm(&self, split: &Split, batch: usize) -> Result<Model, String> {
        let ad = burn_device(self.device)?.autodiff();
        let features = self.plan.in_features();
        in_pool(1, || {
            let net = Net::init(&self.plan, Init::Default, &mut Rng::new(0), &ad).load_tensors(
                &self.plan,
                &self.tensors(),
                &ad,
            )?;
            let net = recompute_batchnorm(net, &self.plan, split, features, batch, &ad)?;
            Ok(Model { net: net.valid(), ..self.clone() })
        })
    }

    /// How the outputs read: softmax probabilities, a sigmoid probability, or raw values.
    pub fn head(&self) -> Head {
        head_of(&self.plan)
    }

    /// Metrics of this model on `split`.
    pub fn evaluate(&self, split: &Split, info: &ir::DataInfo) -> Result<Metrics, String> {
        let device = burn_device(self.device)?;
        let k = self.plan.out_features();
        let classification = self.task == Task::Classification;
        let head = head_of(&self.plan);
        let how = (classification, self.loss, head, self.target);
        in_pool(1, || evaluate_net(&self.net, &self.plan, split, info.features(), k, how, &device))
    }

    /// The outputs (`n x outputs`, row-major) for `n` rows of `x`; a regression model's in
    /// the target's own units.
    pub fn predict(&self, x: &[f32], n: usize) -> Result<Vec<f32>, String> {
        let device = burn_device(self.device)?;
        let mut out = predict(&self.net, &self.plan, x, n, self.plan.in_features(), &device)?;
        if self.task == Task::Regression {
            out.iter_mut().for_each(|v| *v = self.target.invert(*v));
        }
        Ok(out)
    }

    /// [`Model::predict`] on every row of `split` (in memory or streamed).
    pub fn predict_split(&self, split: &Split) -> Result<Vec<f32>, String> {
        let device = burn_device(self.device)?;
        let mut out = predict_split(&self.net, &self.plan, split, self.plan.in_features(), &device)?;
        if self.task == Task::Regression {
            out.iter_mut().for_each(|v| *v = self.target.invert(*v));
        }
        Ok(out)
    }

    /// The exact number of trainable parameters.
    pub fn param_count(&self) -> usize {
        self.net.trainable()
    }

    /// Every tensor by name, shape and values (for saving and weight averaging).
    pub fn tensors(&self) -> Tensors {
        self.net.tensors(&self.plan)
    }

    /// The same architecture with other tensors (all present, same shapes).
    pub fn with_tensors(&self, tensors: &Tensors) -> Result<Model, String> {
        let device = burn_device(self.device)?;
        let net = self.net.clone().load_tensors(&self.plan, tensors, &device)?;
        Ok(Model { net, ..self.clone() })
    }

    /// Median per-sample latency at batch 1 (µs, after warm-up) and throughput at
    /// batch 256 (samples/s), on the rows of `split`.
    pub fn speed(&self, split: &Split, features: usize) -> (f64, f64) {
        let Ok(device) = burn_device(self.device) else { return (f64::NAN, f64::NAN) };
        in_pool(1, || {
            let n = split.n.min(256);
            let mut x = Vec::new();
            let first: Vec<usize> = (0..n).collect();
            if n == 0 || split.gather(&first, features, &mut x).is_err() {
                return (f64::NAN, f64::NAN);
            }
            let mut times = Vec::new();
            for i in 0..60 {
                let row = x[(i % n) * features..(i % n + 1) * features].to_vec();
                let t = Instant::now();
                let _ = predict(&self.net, &self.plan, &row, 1, features, &device);
                if i >= 10 {
                    times.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            times.sort_by(f64::total_cmp);
            let latency = times[times.len() / 2];
            let t = Instant::now();
            let reps = 5;
            for _ in 0..reps {
                let _ = predict(&self.net, &self.plan, &x, n, features, &device);
            }
            (latency, (n * reps) as f64 / t.elapsed().as_secs_f64().max(1e-9))
        })
    }

    /// Writes `model.safetensors` and `model.json` (the plan and `config`) under `dir`.
    pub fn save(&self, dir: &Path, config: &SavedConfig) -> std::io::Result<()> {
        save::save(self, dir, config)
    }
}

fn head_of(plan: &Plan) -> Head {
    match plan.head() {
        OpKind::Softmax => Head::Softmax,
        OpKind::Sigmoid => Head::Sigmoid,
        _ => Head::Logits,
    }
}

/// Whether a larger value of the metric is better (the metric catalogue says).
pub use crate::catalogue::higher_is_better;

/// The sub-stream of a trial's seed that augmentation draws from.
const AUGMENT_STREAM: u64 = 0x6175_676d;

fn batch_x(split: &Split, rows: &[usize], features: usize, device: &Device) -> Result<Tensor<2>, String> {
    let mut v = Vec::with_capacity(rows.len() * features);
    split.gather(rows, features, &mut v).map_err(|e| e.to_string())?;
    Ok(Tensor::from_data(TensorData::new(v, [rows.len(), features]), device))
}

/// Targets as `[b, k]`: one-hot classes, or the values (regression: scaled by `target`; or
/// one output).
fn batch_t(
    split: &Split,
    rows: &[usize],
    k: usize,
    classification: bool,
    loss: Loss,
    target: TargetScale,
    device: &Device,
) -> Tensor<2> {
    let k = k.max(1);
    let mut v = vec![0f32; rows.len() * k];
    for (r, &i) in rows.iter().enumerate() {
        let y = split.y[i];
        if classification && (k > 1 || loss == Loss::CrossEntropy) {
            let c = (y as usize).min(k - 1);
            v[r * k + c] = 1.0;
        } else {
            let y = if classification { y } else { target.apply(y) };
            for j in 0..k {
                v[r * k + j] = y;
            }
        }
    }
    Tensor::from_data(TensorData::new(v, [rows.len(), k]), device)
}

fn loss_tensor(out: Tensor<2>, t: Tensor<2>, loss: Loss, head: Head) -> Tensor<1> {
    match loss {
        Loss::CrossEntropy => {
            let logp = match head {
                Head::Softmax => out.clamp_min(1e-7).log(),
                _ => activation::log_softmax(out, 1),
            };
            -(logp * t).sum_dim(1).mean()
        }
        Loss::Bce => match head {
            Head::Logits => {
                let z = out;
                (z.clone().clamp_min(0.0) - z.clone() * t + z.abs().neg().exp().log1p()).mean()
            }
            _ => {
                let p = out.clamp(1e-7, 1.0 - 1e-7);
                let q = p.clone().neg().add_scalar(1.0);
                (t.clone() * p.log() + t.neg().add_scalar(1.0) * q.log()).neg().mean()
            }
        },
        Loss::Mse => (out - t).powf_scalar(2.0).mean(),
        Loss::Mae => (out - t).abs().mean(),
        Loss::Huber => {
            let a = (out - t).abs();
            let q = a.clone().clamp_max(1.0);
            (q.clone() * q.clone() * 0.5 + (a - q)).mean()
        }
    }
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().try_into_vec::<f32>().ok().and_then(|v| v.first().copied()).map_or(f64::NAN, f64::from)
}

fn predict(net: &Net, plan: &Plan, x: &[f32], n: usize, features: usize, device: &Device) -> Result<Vec<f32>, String> {
    if n.checked_mul(features).is_none_or(|want| x.len() < want) {
        return Err(format!(
            "{n} rows of {features} inputs need {} values, got {} (a stored split is read with `predict_split`)",
            n.saturating_mul(features),
            x.len()
        ));
    }
    let mut out = Vec::with_capacity(n * plan.out_features());
    let chunk = memory::EVAL_ROWS;
    let mut i = 0;
    while i < n {
        let b = chunk.min(n - i);
        let t = Tensor::from_data(TensorData::new(x[i * features..(i + b) * features].to_vec(), [b, features]), device);
        let o = net::forward(net, plan, t, Mode::Eval, None)?;
        out.extend(o.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?);
        i += b;
    }
    Ok(out)
}

/// The outputs of `net` for every row of `split`, [`memory::EVAL_ROWS`] rows at a time (a
/// streamed split read ahead as in training).
fn predict_split(net: &Net, plan: &Plan, split: &Split, features: usize, device: &Device) -> Result<Vec<f32>, String> {
    if split.stored.is_none() {
        return predict(net, plan, &split.x, split.n, features, device);
    }
    let mut out = Vec::with_capacity(split.n * plan.out_features());
    let rows: Vec<usize> = (0..split.n).collect();
    for (chunk, values) in batches::batches(split, &rows, memory::EVAL_ROWS, features) {
        let t = Tensor::from_data(TensorData::new(values.map_err(|e| e.to_string())?, [chunk.len(), features]), device);
        let o = net::forward(net, plan, t, Mode::Eval, None)?;
        out.extend(o.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?);
    }
    Ok(out)
}

/// Metrics of `net` on `split`; `how`: classification, the loss, the head, and the
/// regression target's scaling (outputs are inverted before they are measured).
fn evaluate_net(
    net: &Net,
    plan: &Plan,
    split: &Split,
    features: usize,
    k: usize,
    how: (bool, Loss, Head, TargetScale),
    device: &Device,
) -> Result<Metrics, String> {
    let (classification, loss, head, target) = how;
    let mut out = predict_split(net, plan, split, features, device)?;
    if !classification {
        out.iter_mut().for_each(|v| *v = target.invert(*v));
    }
    Ok(metrics::evaluate(&out, k, &split.y, loss, head, classification, target))
}

/// NASWOT at initialisation over one mini-batch (up to 64 train rows).
fn expressivity(net: &Net, plan: &Plan, train: &Split, features: usize, device: &Device, rng: &mut Rng) -> Option<f64> {
    let n = train.n.min(64);
    if n < 2 {
        return None;
    }
    let mut rows: Vec<usize> = (0..train.n).collect();
    rng.shuffle(&mut rows);
    rows.truncate(n);
    let x = batch_x(train, &rows, features, device).ok()?;
    let mut pre = Vec::new();
    net::forward(&net.valid(), plan, x, Mode::Eval, Some(&mut pre)).ok()?;
    let mut codes = vec![Vec::new(); n];
    for t in pre {
        let units = t.dims()[1];
        let v = t.into_data().try_into_vec::<f32>().ok()?;
        for (i, code) in codes.iter_mut().enumerate() {
            code.extend(v[i * units..(i + 1) * units].iter().map(|a| *a > 0.0));
        }
    }
    metrics::naswot(&codes)
}

fn optimizer(cfg: &TrainConfig, net: &Net) -> ModuleOptimizer {
    let o = &cfg.optimizer;

    let decay = |p: f64| (p > 0.0).then_some(WeightDecayConfig { penalty: p as f32 });
    let group = ParamGroup::from_ids(net.bias_ids());
    let separate = o.bias_decay != o.weight_decay;
    // The weights' optimizer for every parameter, then the biases' for their group.
    macro_rules! build {
        ($make:expr) => {{
            let main = ModuleOptimizer::from($make(o.weight_decay));
            if separate { main.with_group(group, $make(o.bias_decay), None) } else { main }
        }};
    }
    match o.kind {
        OptimizerKind::Sgd { momentum, nesterov } => {
            let m = (momentum > 0.0).then_some(MomentumConfig { momentum, dampening: 0.0, nesterov });
            build!(|wd| SgdConfig::new().with_momentum(m.clone()).with_weight_decay(decay(wd)).build())
        }
        // burn's arithmetic in one pass, subnormal moments flushed (`adam.rs`).
        OptimizerKind::Adam { beta1, beta2 } => build!(|wd| adam::Adam::coupled(beta1 as f32, beta2 as f32, 1e-8, wd)),
        OptimizerKind::AdamW { beta1, beta2 } => {
            build!(|wd| adam::Adam::decoupled(beta1 as f32, beta2 as f32, 1e-8, wd))
        }
    }
}

#[cfg(test)]
mod adam_tests;
#[cfg(test)]
mod attention_tests;
#[cfg(test)]
mod convnet_tests;
#[cfg(test)]
mod darts_tests;
#[cfg(test)]
mod hypergradient_tests;
#[cfg(test)]
mod precision_tests;
#[cfg(test)]
mod seq_grad_tests;
#[cfg(test)]
mod seq_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod text_tests;
