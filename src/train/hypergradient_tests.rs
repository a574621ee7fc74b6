//! Tests of `hypergradient.rs`: the paper's updates against hand-computed two-step examples
//! (SGD, momentum, Nesterov, Adam, a schedule's factor, a coupled penalty), and a learning
//! rate started 100x too small or too large recovering on a tiny problem where the same
//! fixed rate does not.

use super::hypergradient::{Hypergradient, ParamStep, Rule, trajectory};
use super::*;

/// Two steps on `f(θ) = θ²/2 · (1 + decay)` from `θ = 1`, `α_0 = 0.1`, `β = 0.01`, `scale` the
/// schedule's factor: gives `(α_1, θ_1, α_2, θ_2)`.
fn two_steps(rule: Rule, decay: f32, scale: f64) -> (f64, f64, f64, f64) {
    let mut hd: Hypergradient<u8> = Hypergradient::new(rule, 0.1, 0.01);
    let mut theta = 1.0f32;
    let mut out = Vec::new();
    for _ in 0..2 {
        // The loss's gradient; the penalty's part is added by the step.
        let mut p = [ParamStep { key: 0u8, grad: vec![theta], weights: vec![theta], decay }];
        let lr = hd.step(&mut p, scale).expect("finite");
        assert!((lr - hd.alpha() * scale).abs() < 1e-15, "the rate stepped with is α·scale");
        theta -= (lr as f32) * p[0].grad[0];
        out.push((hd.alpha(), f64::from(theta)));
    }
    (out[0].0, out[0].1, out[1].0, out[1].1)
}

fn near(got: (f64, f64, f64, f64), want: (f64, f64, f64, f64)) {
    let pairs = [(got.0, want.0), (got.1, want.1), (got.2, want.2), (got.3, want.3)];
    for (g, w) in pairs {
        assert!((g - w).abs() < 1e-6, "got {got:?}, want {want:?}");
    }
}

const SGD: Rule = Rule::Sgd { momentum: 0.0, nesterov: false };

/// SGD-HD: α_1 = α_0 (no previous direction), θ_1 = 1 - 0.1 = 0.9; h_2 = g_2·g_1 = 0.9,
/// α_2 = 0.1 + 0.01·0.9 = 0.109, θ_2 = 0.9 - 0.109·0.9 = 0.8019.
#[test]
fn sgd_hd_matches_two_hand_computed_steps() {
    near(two_steps(SGD, 0.0, 1.0), (0.1, 0.9, 0.109, 0.8019));
}

/// With momentum 0.5 (burn's velocity, v_1 = g_1): d_1 = 1, θ_1 = 0.9; h_2 = 0.9·1, α_2 = 0.109,
/// v_2 = 0.5 + 0.9 = 1.4, θ_2 = 0.9 - 0.109·1.4 = 0.7474. Nesterov (d = g + μv): d_1 = 1.5,
/// θ_1 = 0.85; h_2 = 0.85·1.5 = 1.275, α_2 = 0.11275, v_2 = 1.35, d_2 = 0.85 + 0.675 = 1.525,
/// θ_2 = 0.85 - 0.11275·1.525 = 0.67805625.
#[test]
fn sgdn_hd_matches_two_hand_computed_steps() {
    near(two_steps(Rule::Sgd { momentum: 0.5, nesterov: false }, 0.0, 1.0), (0.1, 0.9, 0.109, 0.7474));
    near(two_steps(Rule::Sgd { momentum: 0.5, nesterov: true }, 0.0, 1.0), (0.1, 0.85, 0.11275, 0.67805625));
}

/// Adam-HD (β1 0.9, β2 0.999, ε 1e-8): m̂_1 = 1, v̂_1 = 1, d_1 = 1/(1 + 1e-8), θ_1 = 0.900000001;
/// h_2 = θ_1·d_1 = 0.899999992, α_2 = 0.10899999992; m_2 = 0.18, m̂_2 = 0.18/0.19, v_2 =
/// 0.001809, v̂_2 = 0.001809/0.001999, d_2 = 0.99587771..., θ_2 = 0.79144933...
#[test]
fn adam_hd_matches_two_hand_computed_steps() {
    let adam = Rule::Adam { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, decoupled: false };
    near(two_steps(adam, 0.0, 1.0), (0.1, 0.900000001, 0.10899999992, 0.7914493303761188));
}

/// A schedule's factor 0.5 scales the step and the direction the hypergradient sees:
/// θ_1 = 1 - 0.05 = 0.95, u_1 = 0.5; h_2 = 0.95·0.5, α_2 = 0.10475, θ_2 = 0.95 - 0.052375·0.95.
/// A coupled penalty 0.1 is part of the gradient: g = 1.1θ, θ_1 = 0.89, h_2 = (1.1·0.89)·1.1
/// = 1.0769, α_2 = 0.110769, θ_2 = 0.89 - 0.110769·0.979 = 0.781557149. Decoupled (adamw),
/// the hypergradient reads the loss's gradient alone.
#[test]
fn the_schedule_factor_and_the_penalty_enter_as_derived() {
    near(two_steps(SGD, 0.0, 0.5), (0.1, 0.95, 0.10475, 0.90024375));
    near(two_steps(SGD, 0.1, 1.0), (0.1, 0.89, 0.110769, 0.781557149));
    // adamw: d_1 = 1 + 0.1·1 (decay on the weight), θ_1 = 1 - 0.11 = 0.89; h_2 = 0.89·1.1.
    let adamw = Rule::Adam { beta1: 0.9, beta2: 0.999, epsilon: 0.0, decoupled: true };
    let (a1, t1, a2, _) = two_steps(adamw, 0.1, 1.0);
    near((a1, t1, a2, 0.0), (0.1, 0.89, 0.1 + 0.01 * 0.89 * 1.1, 0.0));
}

/// β = 0 leaves the rate where it started; a rate that overflows is an error, not a NaN step.
#[test]
fn beta_zero_keeps_the_rate_and_an_overflow_is_an_error() {
    let mut hd: Hypergradient<u8> = Hypergradient::new(SGD, 0.1, 0.0);
    for _ in 0..3 {
        let mut p = [ParamStep::from((0u8, vec![2.0f32]))];
        assert_eq!(hd.step(&mut p, 1.0), Ok(0.1));
    }
    let mut hd: Hypergradient<u8> = Hypergradient::new(SGD, 0.1, f64::MAX);
    let mut p = [ParamStep::from((0u8, vec![1e30f32]))];
    assert!(hd.step(&mut p, 1.0).is_ok(), "the first step has no hypergradient yet");
    let mut p = [ParamStep::from((0u8, vec![1e30f32]))];
    let err = hd.step(&mut p, 1.0).expect_err("overflows");
    assert!(err.contains("hypergradient learning rate became inf"), "{err}");
}

/// The sub-model, data and train settings of a one-experiment source.
fn setup(data: &str, model: &str, train: &str) -> (ir::SubModel, Dataset, TrainConfig) {
    super::test_support::setup(
        &format!(
            "experiment t {{\n data = {data}\n model {{ {model} }}\n train {{ {train} }}\n objective {{ maximize accuracy }}\n}}\n"
        ),
        1,
    )
}

fn final_train_loss(optimizer: &str) -> (f64, TrialOutcome) {
    let (sub, data, cfg) = setup(
        "iris(seed: 3)",
        "dense(16) relu dense(data.classes)",
        &format!("optimizer = {optimizer} epochs = 30 batch = 16 early_stop = none"),
    );
    let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(out.status, Status::Completed, "{optimizer}");
    let last = out.epochs.last().map_or(f64::NAN, |m| m["train_loss"]);
    (last, out)
}

/// SGD on iris (16 hidden units, 30 epochs): lr 0.1 reaches a train loss of about 0.14; 100x
/// smaller (0.001) or larger (10) it stays above 1.0. Started there with `hypergradient:
/// 0.001`, the rate climbs (to about 0.035) or falls (to about 1.3) and the loss ends below 0.5.
/// Each trajectory is recorded per epoch with the final rate.
#[test]
fn sgd_from_a_rate_100x_too_small_or_too_large_recovers() {
    const BELOW: f64 = 0.5;
    for (lr, climbs) in [(0.001, true), (10.0, false)] {
        let (fixed, _) = final_train_loss(&format!("sgd({lr})"));
        assert!(fixed > BELOW, "sgd({lr}) fixed: loss {fixed}: not a bad rate here");
        let (adapted, out) = final_train_loss(&format!("sgd({lr}, hypergradient: 0.001)"));
        assert!(adapted < BELOW, "sgd({lr}) adapted: loss {adapted}, fixed {fixed}");
        let lrs = trajectory(&out.metrics);
        assert_eq!(lrs.len(), 30, "{lrs:?}");
        assert_eq!(lrs.iter().map(|(e, _)| *e).collect::<Vec<_>>(), (1..=30).collect::<Vec<u32>>());
        let last = lrs[29].1;
        assert_eq!(out.metrics[hypergradient::FINAL], last);
        assert_eq!(out.epochs[29]["lr"], last, "the epoch's `lr` is the adapted one (constant schedule)");
        if climbs {
            assert!(last > 10.0 * lr, "{lrs:?}");
        } else {
            assert!(last < lr / 5.0, "{lrs:?}");
        }
    }
}

/// Adam on the same problem: lr 1e-4 (100x below 0.01) ends with a loss above 1.0, and with
/// `hypergradient: 1e-4` below 0.2 (lr 0.01 itself: about 0.07). Adam at 100x too large
/// (1.0) still trains here (about 0.12), so this problem shows only the climb.
#[test]
fn adam_from_a_rate_100x_too_small_recovers() {
    let (fixed, _) = final_train_loss("adam(0.0001)");
    assert!(fixed > 0.9, "fixed: {fixed}");
    let (adapted, out) = final_train_loss("adam(0.0001, hypergradient: 1e-4)");
    assert!(adapted < 0.2, "adapted: {adapted}");
    assert!(out.metrics[hypergradient::FINAL] > 0.001, "{:?}", trajectory(&out.metrics));
}

/// `hypergradient: 0` trains exactly as the fixed rate does (the same steps, the same loss).
#[test]
fn beta_zero_trains_as_the_fixed_rate() {
    let (fixed, a) = final_train_loss("sgd(0.1, momentum: 0.9)");
    let (zero, b) = final_train_loss("sgd(0.1, momentum: 0.9, hypergradient: 0.0)");
    assert!((fixed - zero).abs() < 1e-6 * fixed.abs().max(1.0), "{fixed} {zero}");
    assert!((a.metrics["accuracy"] - b.metrics["accuracy"]).abs() < 1e-12);
    assert_eq!(b.metrics[hypergradient::FINAL], 0.1);
}

/// `adamw` with decoupled decay (weights read each step; none on biases) and a cosine
/// schedule: the sine is still learnt, and each epoch's `lr` is the adapted base rate times
/// the schedule's factor at the epoch's last step.
#[test]
fn adamw_with_decay_and_a_cosine_schedule_adapts_the_base_rate() {
    let (sub, data, cfg) = setup(
        "synthetic.sine(n: 400, noise: 0.05, seed: 2)",
        "dense(32) tanh dense(32) tanh dense(1)",
        "optimizer = adamw(0.001, weight_decay: 1e-4, bias_decay: 0.0, hypergradient: 1e-5) \
         schedule = cosine(warmup: 1) epochs = 30 batch = 32 loss = mse init = xavier",
    );
    let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(out.status, Status::Completed);
    assert!(out.metrics["r2"] > 0.8, "{:?}", out.metrics);
    let rates = trajectory(&out.metrics);
    assert_eq!(rates.len(), 30);
    let steps = data.train.n.div_ceil(32);
    for (e, alpha) in &rates {
        let last = *e as usize * steps - 1;
        let factor = cfg.lr_at(last, steps) / cfg.optimizer.lr;
        let lr = out.epochs[*e as usize - 1]["lr"];
        assert!((lr - alpha * factor).abs() <= 1e-12 * alpha.abs().max(1.0), "epoch {e}: {lr} vs {alpha} x {factor}");
    }
    assert!(rates.iter().any(|(_, a)| (a - 0.001).abs() > 1e-6), "the rate moved: {rates:?}");
}
