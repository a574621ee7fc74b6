//! Tests of `darts.rs`: the supernet's split of a decision's choices, its mixture against
//! each single choice when the weights are one-hot (exactly) or nearly so (softmax of a
//! large margin), gradients reaching `α`, and `α` moving towards the better of two choices
//! on a task where one of them cannot fit (a linear path on concentric circles).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Tensor, TensorData, activation};

use super::darts::{self, Supernet};
use super::test_support::{device, values};
use super::*;
use crate::data;
use crate::source::Source;

/// `kind in {lin, mlp}`: the linear path keeps the shared `dense(16)`'s output; the MLP
/// path adds two ReLUs around a second `dense(16)`. Both end in the shared `dense(2)`.
const CIRCLES: &str = r#"experiment t {
  data = synthetic.circles(n: 600, noise: 0.05, seed: 3)
  space { kind: in {lin, mlp} }
  model {
    flatten
    dense(16)
    match kind {
      lin => { }
      mlp => { relu dense(16) relu }
    }
    dense(data.classes)
  }
  train { optimizer = adam(0.01) epochs = 20 batch = 32 loss = cross_entropy }
  objective { maximize accuracy }
}
"#;

/// The plans of `kind`'s choices, in order, with the data and the train settings.
fn choices(src: &str, param: &str, values: &[&str]) -> (Vec<Plan>, Dataset, TrainConfig) {
    let compiled = crate::compile(&Source::new("t.bma", src));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let mut plans = Vec::new();
    let mut last = None;
    for v in values {
        let pins = BTreeMap::from([(param.to_string(), v.to_string())]);
        let (sub, point) = crate::pins::expand_with_pins(&compiled, exp, &pins).expect("expands");
        plans.push(Plan::new(&sub));
        last = Some(point);
    }
    let point = last.expect("a choice");
    let env = ir::PointEnv { point: &point, fns: &compiled.program.fns, data: None };
    let value = ir::eval(&exp.data.as_ref().expect("data").value, &env).expect("data value");
    let data = data::load(&value, Path::new(".")).expect("loads");
    let cfg = TrainConfig::from_experiment(&compiled.program, exp, &point, &data.info, 1).expect("config");
    (plans, data, cfg)
}

fn rows(data: &Dataset, n: usize, dev: &burn::tensor::Device) -> Tensor<2> {
    let idx: Vec<usize> = (0..n).collect();
    batch_x(&data.train, &idx, data.features(), dev).expect("rows")
}

#[test]
fn the_choices_split_into_a_shared_prefix_one_arm_each_and_a_shared_suffix() {
    let (plans, _, _) = choices(CIRCLES, "kind", &["lin", "mlp"]);
    let net = Supernet::new(&plans).expect("mixes");
    assert_eq!(net.choices(), 2);
    let p = net.prefix_ops();
    let kinds = |ops: &[Op]| ops.iter().map(|o| format!("{:?}", o.kind)).collect::<Vec<_>>();
    assert_eq!(kinds(&p), ["Input", "Flatten", "Dense { units: 16 }"]);
    assert_eq!(kinds(&net.arm_ops(0)), ["Input"], "the linear path is the identity");
    assert_eq!(kinds(&net.arm_ops(1)), ["Input", "Relu", "Dense { units: 16 }", "Relu"]);
    assert_eq!(kinds(&net.suffix_ops()), ["Input", "Dense { units: 2 }"]);
}

#[test]
fn identical_choices_are_refused() {
    let (plans, _, _) = choices(CIRCLES, "kind", &["lin", "lin"]);
    let err = Supernet::new(&plans).expect_err("nothing to mix");
    assert!(err.contains("same network"), "{err}");
}

/// With the weights `[0, 1]` / `[1, 0]` the supernet computes exactly what each choice's own
/// sub-model computes with the same weights; with softmax of a margin of 30 it does so
/// within float tolerance.
#[test]
fn a_one_hot_mixture_equals_the_single_choice() {
    let (plans, data, cfg) = choices(CIRCLES, "kind", &["lin", "mlp"]);
    let net = Supernet::new(&plans).expect("mixes");
    let dev = device();
    let w = net.init(cfg.init, &mut crate::rng::Rng::new(7), &dev);
    let x = rows(&data, 50, &dev);
    for k in 0..2 {
        let plan = net.choice(k).expect("choice");
        let single = Net::init(plan, cfg.init, &mut crate::rng::Rng::new(99), &dev)
            .load_tensors(plan, &net.choice_tensors(k, &w).expect("tensors"), &dev)
            .expect("loads");
        let want = values(net::forward(&single, plan, x.clone(), net::Mode::Eval, None).expect("forward"));
        let mut hot = vec![0f32; 2];
        hot[k] = 1.0;
        let mix = Tensor::<1>::from_data(TensorData::new(hot, [2]), &dev);
        let got = values(net.forward(&w, x.clone(), mix, None).expect("forward"));
        assert_eq!(got, want, "choice {k}, one-hot weights");
        let mut logits = vec![0f32; 2];
        logits[k] = 30.0;
        let mix = activation::softmax(Tensor::<1>::from_data(TensorData::new(logits, [2]), &dev), 0);
        let near = values(net.forward(&w, x.clone(), mix, None).expect("forward"));
        let worst = near.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-5, "choice {k}, softmax of a margin of 30: off by {worst}");
        // The other choice gives another output: the comparison can fail.
        let other = values(net.forward(&w, x.clone(), mix_of(1 - k, &dev), None).expect("forward"));
        assert!(other.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-3), "choice {k}: the arms differ");
    }
}

fn mix_of(k: usize, dev: &burn::tensor::Device) -> Tensor<1> {
    let mut hot = vec![0f32; 2];
    hot[k] = 1.0;
    Tensor::from_data(TensorData::new(hot, [2]), dev)
}

#[test]
fn the_loss_has_a_gradient_with_respect_to_alpha() {
    let (plans, data, cfg) = choices(CIRCLES, "kind", &["lin", "mlp"]);
    let net = Supernet::new(&plans).expect("mixes");
    let ad = device().autodiff();
    let w = net.init(cfg.init, &mut crate::rng::Rng::new(7), &ad);
    let idx: Vec<usize> = (0..64).collect();
    let x = batch_x(&data.train, &idx, data.features(), &ad).expect("rows");
    let t = batch_t(&data.train, &idx, 2, true, Loss::CrossEntropy, data.target, &ad);
    let a = Tensor::<1>::from_data(TensorData::new(vec![0.3f32, -0.2], [2]), &ad).require_grad();
    let out = net.forward(&w, x, activation::softmax(a.clone(), 0), None).expect("forward");
    let loss = loss_tensor(out, t, Loss::CrossEntropy, Head::Logits);
    let g = values(a.grad(&loss.backward()).expect("α has a gradient"));
    assert_eq!(g.len(), 2);
    assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| v.abs() > 1e-6), "{g:?}");
    // softmax's gradient sums to zero over the choices.
    assert!((g[0] + g[1]).abs() < 1e-5, "{g:?}");
}

/// Concentric circles: a linear path cannot separate them, the MLP path can. From equal
/// weights (α = 0), the architecture steps move the MLP's weight above 0.7 in 8 epochs and
/// the read-off picks it; put first instead of second, it is still picked.
#[test]
fn alpha_moves_towards_the_better_choice() {
    let config = darts::Config { epochs: 8, arch_lr: 0.03, arch_weight_decay: 1e-3, stop_entropy: None, patience: 1 };
    for (order, better) in [(["lin", "mlp"], 1usize), (["mlp", "lin"], 0)] {
        let (plans, data, cfg) = choices(CIRCLES, "kind", &order);
        let net = Supernet::new(&plans).expect("mixes");
        let mut seen = Vec::new();
        let out = darts::search(DeviceKind::Cpu, &net, &cfg, &config, &data, |e, w| seen.push((e, w.to_vec())))
            .expect("searches");
        assert_eq!(out.start, [0.5, 0.5], "α starts at zero");
        assert_eq!(seen.len(), 8);
        assert_eq!(out.weights.len(), 8);
        let last = out.weights.last().expect("an epoch");
        assert!((last.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(last[better] > 0.7, "{order:?}: weights per epoch {:?}", out.weights);
        assert_eq!(out.chosen, better, "{order:?}");
        assert!(out.train_loss.iter().chain(&out.arch_loss).all(|l| l.is_finite()));
    }
}

/// The same experiment compiled, for [`darts::decision`].
fn compiled(src: &str) -> crate::Compiled {
    let c = crate::compile(&Source::new("t.bma", src));
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    c
}

/// `decision` over `param` at the representative point (pins none).
fn decide(src: &str, param: &str) -> Result<(Vec<ir::Value>, Supernet), String> {
    let c = compiled(src);
    let exp = &c.program.experiments[0];
    let (_, point) = crate::pins::expand_with_pins(&c, exp, &BTreeMap::new()).expect("expands");
    let data = c.info(&exp.name).and_then(|i| i.data.as_ref()).expect("data");
    let p = exp.space.get(param).expect("param");
    darts::decision(&c.program, exp.model.as_ref().expect("model"), &point, data, p)
}

fn experiment(space: &str, model: &str) -> String {
    format!(
        "experiment t {{\n data = synthetic.circles(n: 100, seed: 1)\n space {{ {space} }}\n model {{ {model} }}\n train {{ optimizer = adam(0.01) epochs = 1 }}\n objective {{ maximize accuracy }}\n}}\n"
    )
}

#[test]
fn a_decision_expands_the_model_once_per_value() {
    // A layer-valued parameter: the choices share both dense layers and mix the activations.
    let (values, net) =
        decide(&experiment("act: in {relu, tanh, gelu}", "dense(8) act dense(data.classes)"), "act").expect("mixes");
    assert_eq!(values.len(), 3);
    assert_eq!(net.choices(), 3);
    let kinds: Vec<String> = (0..3).map(|k| format!("{:?}", net.arm_ops(k)[1].kind)).collect();
    assert_eq!(kinds, ["Relu", "Tanh", "Gelu"]);
    assert_eq!(net.suffix_ops().len(), 2, "the last dense is shared");
    // An int width: different shapes after the sized layer, so the arms run to the output.
    let (values, net) =
        decide(&experiment("w: int in {4, 8}", "dense(w) relu dense(data.classes)"), "w").expect("mixes");
    assert_eq!(values, [ir::Value::Int(4), ir::Value::Int(8)]);
    assert_eq!(net.arm_ops(0).len(), 4, "input, dense(4), relu, dense(2)");
    assert_eq!(net.suffix_ops().len(), 1, "only the mixed output");
    // A residual around the decision: the mixing point moves after the join.
    let (_, net) =
        decide(&experiment("act: in {relu, tanh}", "dense(8) residual { act dense(8) } dense(data.classes)"), "act")
            .expect("mixes");
    let last = net.arm_ops(0).last().map(|o| format!("{:?}", o.kind)).expect("ops");
    assert_eq!(last, "Add", "the add joins the skip inside each arm");
}

#[test]
fn a_decision_over_a_continuous_fixed_or_too_large_domain_is_refused() {
    let err = decide(&experiment("lr: float in 0.001..0.1 act = relu", "dense(8) relu dense(data.classes)"), "lr")
        .expect_err("continuous");
    assert!(err.contains("continuous"), "{err}");
    let err = decide(&experiment("lr: float in 0.001..0.1 act = relu", "dense(8) act dense(data.classes)"), "act")
        .expect_err("pinned");
    assert!(err.contains("not searched"), "{err}");
    let err = decide(&experiment("w: int in 1..=64", "dense(w) relu dense(data.classes)"), "w").expect_err("too many");
    assert!(err.contains("64 values"), "{err}");
}

/// The whole step: the decision's supernet searched, its choice read off and retrained from
/// scratch as a normal trial, which fits the circles where the other choice cannot.
#[test]
fn the_chosen_sub_model_retrains_from_scratch_and_beats_the_other() {
    let c = compiled(CIRCLES);
    let exp = &c.program.experiments[0];
    let pins = BTreeMap::from([("kind".to_string(), "lin".to_string())]);
    let (_, point) = crate::pins::expand_with_pins(&c, exp, &pins).expect("expands");
    let (_, data, cfg) = choices(CIRCLES, "kind", &["lin"]);
    let body = exp.model.as_ref().expect("model");
    let config = darts::Config { epochs: 8, arch_lr: 0.03, arch_weight_decay: 1e-3, stop_entropy: None, patience: 1 };
    let param = exp.space.get("kind").expect("kind");
    let choice = darts::choose(DeviceKind::Cpu, &c.program, body, &point, &data, &cfg, &config, param, |_, _| {})
        .expect("chooses");
    assert_eq!(choice.value.to_string(), "mlp");
    assert_eq!(choice.outcome.weights.len(), 8);
    let accuracy = |value: &ir::Value| {
        let mut at = point.clone();
        at.insert("kind".into(), value.clone());
        let sub = ir::expand(&c.program, body, &at, &data.info).expect("expands");
        let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
        assert_eq!(out.status, Status::Completed);
        out.metrics["accuracy"]
    };
    let chosen = accuracy(&choice.value);
    let other = choice.values.iter().find(|v| **v != choice.value).expect("another value");
    let rejected = accuracy(other);
    assert!(chosen > 0.9 && rejected < 0.8, "chosen {chosen}, rejected {rejected}");
}

/// The entropy stop: on the circles α settles towards the MLP; with a threshold the phase
/// ends at the first epoch that completes `patience` epochs in a row below it, its weights
/// those of the epochs that ran, and picks what the full run picks; without one it runs
/// every epoch.
#[test]
fn the_entropy_stop_ends_the_phase_once_alpha_has_settled() {
    let full = darts::Config { epochs: 12, arch_lr: 0.03, arch_weight_decay: 1e-3, stop_entropy: None, patience: 2 };
    let (plans, data, cfg) = choices(CIRCLES, "kind", &["lin", "mlp"]);
    let net = Supernet::new(&plans).expect("mixes");
    let all = darts::search(DeviceKind::Cpu, &net, &cfg, &full, &data, |_, _| {}).expect("searches");
    assert_eq!((all.weights.len(), all.stopped_at), (12, None));
    let h: Vec<f64> = all.weights.iter().map(|w| darts::entropy(w)).collect();
    // A threshold between the entropies reached: the first run of two epochs below it.
    let limit = 0.9;
    let expected = (1..h.len()).find(|&i| h[i] < limit && h[i - 1] < limit).map(|i| i + 1).expect("settles below 0.9");
    assert!(expected < 12, "{h:?}");
    let stop = darts::Config { stop_entropy: Some(limit), ..full };
    let early = darts::search(DeviceKind::Cpu, &net, &cfg, &stop, &data, |_, _| {}).expect("searches");
    assert_eq!(early.stopped_at, Some(expected), "entropies {h:?}");
    assert_eq!(early.weights.len(), expected);
    // Same seed, same steps: the epochs that ran are those of the full run.
    assert_eq!(early.weights[..], all.weights[..expected]);
    assert_eq!(early.chosen, 1);
}

#[test]
fn entropy_is_one_when_uniform_and_zero_when_one_hot() {
    assert!((darts::entropy(&[0.25; 4]) - 1.0).abs() < 1e-12);
    assert!((darts::entropy(&[0.5, 0.5]) - 1.0).abs() < 1e-12);
    assert_eq!(darts::entropy(&[0.0, 1.0, 0.0]), 0.0);
    let mid = darts::entropy(&[0.9, 0.1]);
    assert!(mid > 0.0 && mid < 1.0);
}

/// The checker's decisions (`check::darts`) and the supernet agree on what can be mixed: a
/// parameter the checker mixes builds a supernet, one it calls unmixable does not, and one
/// it leaves fixed for not changing the network gives the same network for every value.
#[test]
fn the_checker_and_the_supernet_agree_on_what_mixes() {
    let cases = [
        ("act: in {relu, tanh, gelu}", "dense(8) act dense(data.classes)", "act"),
        ("w: int in {4, 8}", "dense(w) relu dense(data.classes)", "w"),
        ("act: in {relu, tanh}", "dense(8) residual { act dense(8) } dense(data.classes)", "act"),
        ("act: in {relu, tanh}", "dense(8) residual { dense(8) act dense(8) } dense(data.classes)", "act"),
        ("k: in {a, b}", "dense(8) relu dense(data.classes)", "k"),
    ];
    let mut seen = [0usize; 3];
    for (space, model, name) in cases {
        let src = experiment(space, model);
        let c = compiled(&src);
        let exp = &c.program.experiments[0];
        let data = c.info(&exp.name).and_then(|i| i.data.as_ref()).expect("data");
        let at = crate::check::darts::point(exp, &c.program.fns, Some(data), &ir::Point::new()).expect("a point");
        let found = crate::check::darts::decisions(&c.program, exp, data, &at);
        let built = decide(&src, name);
        if found.mixed.iter().any(|d| d.name == name) {
            assert!(built.is_ok(), "{model}: {:?}", built.err());
            seen[0] += 1;
        } else if found.unmixable.iter().any(|d| d.name == name) {
            assert!(built.is_err(), "{model}");
            seen[1] += 1;
        } else {
            assert!(found.fixed.iter().any(|d| d.name == name), "{model}: {found:?}");
            assert!(built.expect_err("nothing to mix").contains("same network"), "{model}");
            seen[2] += 1;
        }
    }
    assert_eq!(seen, [3, 1, 1]);
}

/// Two independent decisions on the circles: `pre` (a 16-wide layer, or a linear
/// one-unit bottleneck, after which no network can tell the circles apart) and `kind` (the
/// linear path or the MLP, as in [`CIRCLES`]). The `flatten` after `pre` is shared by both
/// of its choices, so `pre` mixes there, before `kind`'s layers.
const TWO: &str = r#"experiment t {
  data = synthetic.circles(n: 600, noise: 0.05, seed: 3)
  space { pre: in {wide, thin} kind: in {lin, mlp} }
  model {
    flatten
    match pre {
      wide => { dense(16) }
      thin => { dense(1) dense(16) }
    }
    flatten
    match kind {
      lin => { }
      mlp => { relu dense(16) relu }
    }
    dense(data.classes)
  }
  train { optimizer = adam(0.01) epochs = 20 batch = 32 loss = cross_entropy }
  objective { maximize accuracy }
}
"#;

/// [`TWO`]'s joint supernet over `pre` and `kind` (in that order), its data and settings.
fn two() -> (crate::Compiled, darts::Joint, Vec<Vec<ir::Value>>, Dataset, TrainConfig) {
    let c = compiled(TWO);
    let exp = &c.program.experiments[0];
    let (_, point) = crate::pins::expand_with_pins(&c, exp, &BTreeMap::new()).expect("expands");
    let info = c.info(&exp.name).and_then(|i| i.data.as_ref()).expect("data");
    let params: Vec<&ir::Param> = ["pre", "kind"].iter().map(|n| exp.space.get(n).expect("param")).collect();
    let (values, net) =
        darts::joint(&c.program, exp.model.as_ref().expect("model"), &point, info, &params).expect("mixes");
    let (_, data, cfg) = choices(TWO, "kind", &["lin"]);
    (c, net, values, data, cfg)
}

#[test]
fn a_joint_supernet_gives_each_decision_its_own_mixture_and_one_hot_is_each_combination() {
    let (_c, net, values, data, cfg) = two();
    assert_eq!(net.decisions(), 2);
    assert_eq!(values.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
    assert_eq!(net.mix_order(), [0, 1], "`pre` differs first");
    let dev = device();
    let w = net.init(cfg.init, &mut crate::rng::Rng::new(7), &dev);
    let x = rows(&data, 50, &dev);
    let mut outputs = Vec::new();
    for c in [[0, 0], [0, 1], [1, 0], [1, 1]] {
        let plan = net.plan(&c).expect("combination");
        let single = Net::init(plan, cfg.init, &mut crate::rng::Rng::new(99), &dev)
            .load_tensors(plan, &net.choice_tensors(&c, &w).expect("tensors"), &dev)
            .expect("loads");
        let want = values_of(net::forward(&single, plan, x.clone(), net::Mode::Eval, None).expect("forward"));
        let mix: Vec<Tensor<1>> = net.mix_order().iter().map(|&d| mix_of(c[d], &dev)).collect();
        let got = values_of(net.forward(&w, x.clone(), &mix, None).expect("forward"));
        assert_eq!(got, want, "combination {c:?}, one-hot weights");
        outputs.push(got);
    }
    // Each decision changes the output: the comparisons can fail.
    for (i, a) in outputs.iter().enumerate() {
        for b in &outputs[i + 1..] {
            assert!(a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-4), "two combinations agree");
        }
    }
}

fn values_of(t: Tensor<2>) -> Vec<f64> {
    values(t)
}

/// From uniform weights on both decisions, the joint search moves each towards its better
/// choice (`wide`: the bottleneck loses the radius; `mlp`: the linear path cannot separate
/// the circles) and reads off both.
#[test]
fn a_two_decision_search_picks_the_better_choice_of_each() {
    let (_c, net, values, data, cfg) = two();
    let config = darts::Config { epochs: 10, arch_lr: 0.03, arch_weight_decay: 1e-3, stop_entropy: None, patience: 1 };
    let out = darts::search_joint(DeviceKind::Cpu, &net, &cfg, &config, &data, |_, _| {}).expect("searches");
    assert_eq!(out.start, [vec![0.5, 0.5], vec![0.5, 0.5]]);
    assert_eq!(out.weights.len(), 10);
    let last = out.weights.last().expect("an epoch");
    let chosen: Vec<String> = out.chosen.iter().zip(&values).map(|(&k, v)| v[k].to_string()).collect();
    assert_eq!(chosen, ["wide", "mlp"], "weights per epoch {:?}", out.weights);
    // Both moved away from the uniform start, towards the better choice.
    assert!(last[0][0] > 0.55 && last[1][1] > 0.55, "{last:?}");
}

/// A decision nested in another's arm is not a chain: the joint supernet is refused (the
/// study then chooses them one after the other).
#[test]
fn nested_decisions_are_not_mixed_jointly() {
    let src = experiment(
        "kind: in {lin, mlp} act: in {relu, tanh}",
        "dense(8) match kind { lin => { }, mlp => { dense(8) act } } dense(data.classes)",
    );
    let c = compiled(&src);
    let exp = &c.program.experiments[0];
    let (_, point) = crate::pins::expand_with_pins(&c, exp, &BTreeMap::new()).expect("expands");
    let info = c.info(&exp.name).and_then(|i| i.data.as_ref()).expect("data");
    let params: Vec<&ir::Param> = ["kind", "act"].iter().map(|n| exp.space.get(n).expect("param")).collect();
    let err = darts::joint(&c.program, exp.model.as_ref().expect("model"), &point, info, &params).expect_err("nested");
    assert!(err.contains("not independent") || err.contains("same network") || err.contains("across"), "{err}");
}
