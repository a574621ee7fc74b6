//! `train { precision = ... }` on the CPU (flex computes in f16 and bf16): accuracy parity
//! with f32 on the digits, f32 master weights, the f16 dynamic loss scale, and the refusals.

use burn::tensor::{DType, FloatDType, Tensor, TensorData};

use super::precision::{self, F16_LOSS_SCALE, Precision};
use super::test_support::{device, values};
use super::{Control, DeviceKind, Status, fit};

/// The trained valid accuracy of `model` on the digits with `train` settings and `precision`
/// (the same seed, split, batches and initial weights whatever the precision), and the model.
fn digits(model: &str, train: &str, precision: &str) -> (f64, super::Model) {
    let src = format!(
        "experiment t {{\n data = digits(split: [0.7, 0.15, 0.15], seed: 1)\n model {{ {model} }}\n \
         train {{ {train} precision = {precision} }}\n objective {{ maximize accuracy }}\n}}\n"
    );
    let (sub, data, cfg) = super::test_support::setup(&src, 11);
    assert_eq!(cfg.precision.name(), precision);
    let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(out.status, Status::Completed, "{precision}: {:?}", out.status);
    (out.metrics["accuracy"], out.model.expect("a model"))
}

/// The float types of a network's tensors.
fn dtypes(net: &super::net::Net) -> Vec<DType> {
    use burn::module::{ModuleVisitor, Param};
    struct Dtypes(Vec<DType>);
    impl ModuleVisitor for Dtypes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().dtype());
        }
    }
    let mut seen = Dtypes(Vec::new());
    burn::module::Module::visit(net, &mut seen);
    assert!(!seen.0.is_empty());
    seen.0
}

/// Every float tensor of the model is f32 and finite (the master weights), and the step's
/// view of them is in the low type.
fn master_weights_are_f32(model: &super::Model, low: Precision) {
    let seen = dtypes(&model.net);
    assert!(seen.iter().all(|d| *d == DType::F32), "{seen:?}");
    let view = dtypes(&precision::view(&model.net, low, &precision::LossScale::new(low)));
    let want: DType = low.dtype().into();
    assert!(view.iter().all(|d| *d == want), "{view:?}");
    assert!(model.tensors().iter().all(|(_, _, v)| v.iter().all(|x| x.is_finite())));
}

// The parity tolerance: 0.03 of valid accuracy (8 of the 270 valid digits). f32 runs of
// this MLP from other seeds spread by about 0.01; f16 and bf16 round each product to 11 and
// 8 significant bits.
const TOLERANCE: f64 = 0.03;

#[test]
fn an_mlp_trains_on_the_digits_in_f16_and_bf16_to_the_f32_accuracy() {
    let (model, train) =
        ("flatten dense(64) relu dense(data.classes)", "optimizer = adam(0.003) epochs = 8 batch = 64");
    let (f32_acc, f32_model) = digits(model, train, "f32");
    for p in ["f16", "bf16"] {
        let (acc, m) = digits(model, train, p);
        // The steps did compute in the low type: the weights moved apart from f32's.
        let apart = f32_model
            .tensors()
            .iter()
            .zip(m.tensors())
            .flat_map(|((_, _, a), (_, _, b))| a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect::<Vec<_>>())
            .fold(0.0f32, f32::max);
        eprintln!(
            "digits MLP, valid accuracy after 8 epochs: f32 {f32_acc:.4}, {p} {acc:.4}; weights apart by {apart}"
        );
        assert!(apart > 1e-4, "{p}: the weights are f32's");
        assert!(acc > 0.9, "{p} trained to {acc}");
        assert!((acc - f32_acc).abs() <= TOLERANCE, "f32 {f32_acc} vs {p} {acc}");
        master_weights_are_f32(&m, if p == "f16" { Precision::F16 } else { Precision::Bf16 });
    }
}

#[test]
fn a_cnn_with_batch_norm_and_dropout_trains_in_bf16_to_the_f32_accuracy() {
    let model = "conv2d(8, kernel: 3) batchnorm relu maxpool(2) flatten dropout(0.1) dense(data.classes)";
    let train = "optimizer = adam(0.01) epochs = 4 batch = 64";
    let (f32_acc, _) = digits(model, train, "f32");
    let (acc, m) = digits(model, train, "bf16");
    eprintln!("digits CNN, valid accuracy after 4 epochs: f32 {f32_acc:.4}, bf16 {acc:.4}");
    assert!(acc > 0.85, "bf16 trained to {acc}");
    assert!((acc - f32_acc).abs() <= TOLERANCE, "f32 {f32_acc} vs bf16 {acc}");
    // The running statistics came back from the bf16 steps as f32, and moved off their
    // initial 0 (mean) and 1 (variance).
    master_weights_are_f32(&m, Precision::Bf16);
    let tensors = m.tensors();
    let stat = |suffix: &str| tensors.iter().find(|(n, _, _)| n.ends_with(suffix)).expect(suffix).2.clone();
    assert!(stat("running_mean").iter().any(|v| v.abs() > 1e-3));
    assert!(stat("running_var").iter().any(|v| (v - 1.0).abs() > 1e-3));
}

#[test]
fn the_f16_loss_scale_keeps_a_small_gradient_that_f16_flushes_to_zero() {
    let dev = device();
    // A weight whose gradient is 1e-8: below f16's smallest subnormal (6e-8).
    let grad_of = |scale: f64| -> f64 {
        let w: Tensor<1> = Tensor::from_data(TensorData::new(vec![1.0f32; 4], [4]), &dev).require_grad();
        let low = precision::grad_scaled(w.clone(), 1.0 / scale).cast(FloatDType::F16);
        let out = low.mul_scalar(1e-4).cast(FloatDType::F32);
        let loss = out.mul_scalar(1e-4).sum().mul_scalar(scale);
        let grads = loss.backward();
        let g = w.grad(&grads).expect("a gradient");
        assert_eq!(g.dtype(), DType::F32);
        values(g)[0]
    };
    assert_eq!(grad_of(1.0), 0.0, "f16 flushes 1e-8 to zero without a scale");
    let scaled = grad_of(F16_LOSS_SCALE);
    assert!((scaled - 1e-8).abs() < 1e-10, "with the scale: {scaled}");
    // The scale is undone on the way back: identity forward.
    let x: Tensor<1> = Tensor::from_data(TensorData::new(vec![0.5f32, -3.0], [2]), &dev);
    assert_eq!(values(precision::grad_scaled(x, 1.0 / 1024.0)), vec![0.5, -3.0]);
}

#[test]
fn a_device_without_the_type_is_refused_naming_what_it_has() {
    assert_eq!(precision::of_device(DeviceKind::Cpu), Ok(vec![Precision::F32, Precision::F16, Precision::Bf16]));
    assert_eq!(precision::supported(DeviceKind::Cpu, Precision::Bf16), Ok(()));
    let m = precision::refusal(DeviceKind::Wgpu(0), Precision::Bf16, &[Precision::F32, Precision::F16])
        .expect("bf16 is not among them");
    assert!(m.contains("the device wgpu:0 cannot compute in bf16 (it supports f32, f16)"), "{m}");
    assert!(m.contains("use `precision = f16`") && m.contains("no bf16 arithmetic"), "{m}");
    assert_eq!(precision::refusal(DeviceKind::Cpu, Precision::F16, &[Precision::F32, Precision::F16]), None);
}

#[test]
fn a_layer_that_makes_f32_tensors_of_its_own_is_refused_before_training() {
    // The checker refuses `precision = f16` with an lstm (fixture
    // invalid_value-precision_layer); a configuration built in code is refused by `fit`.
    let src = "experiment t {\n data = digits(split: [0.7, 0.15, 0.15], seed: 1)\n \
               model { reshape(8, 8) lstm(8) dense(data.classes) }\n \
               train { epochs = 1 }\n objective { maximize accuracy }\n}\n";
    let (sub, data, mut cfg) = super::test_support::setup(src, 1);
    cfg.precision = Precision::F16;
    let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    let Status::Failed { reason } = out.status else { panic!("an lstm trained in f16: {:?}", out.status) };
    assert!(reason.contains("`precision = f16`: `lstm_1` trains in f32 only"), "{reason}");
    assert!(out.epochs.is_empty());
    cfg.precision = Precision::F32;
    assert_eq!(fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue).status, Status::Completed);
}

#[test]
fn the_f16_loss_scale_halves_on_an_overflow_skipping_the_step_and_doubles_after_2000_good_steps() {
    let mut scale = precision::LossScale::new(Precision::F16);
    assert_eq!(scale.get(), F16_LOSS_SCALE);
    assert_eq!(scale.update(false), Ok(false), "an overflowed step is skipped");
    assert_eq!((scale.get(), scale.skipped), (F16_LOSS_SCALE / 2.0, 1));
    for _ in 1..precision::F16_GROWTH_INTERVAL {
        assert_eq!(scale.update(true), Ok(true));
    }
    assert_eq!(scale.get(), F16_LOSS_SCALE / 2.0, "one step short of the interval");
    assert_eq!(scale.update(true), Ok(true));
    assert_eq!(scale.get(), F16_LOSS_SCALE, "doubled after 2,000 finite steps in a row");
    // An overflow restarts the count.
    assert_eq!(scale.update(true), Ok(true));
    assert_eq!(scale.update(false), Ok(false));
    for _ in 0..10 {
        assert_eq!(scale.update(true), Ok(true));
    }
    assert_eq!(scale.get(), F16_LOSS_SCALE / 2.0);
    // Overflowing down to the floor ends the run, naming the way out.
    let mut failed = None;
    for _ in 0..64 {
        if let Err(e) = scale.update(false) {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("the scale has a floor");
    assert!(scale.get() >= precision::F16_MIN_SCALE && scale.get() < 2.0 * precision::F16_MIN_SCALE, "{}", scale.get());
    assert!(e.contains("overflow") && e.contains("`precision = bf16`"), "{e}");
    // bf16 and f32 have no scale.
    assert_eq!(precision::LossScale::new(Precision::Bf16).get(), 1.0);
}

#[test]
fn a_gradient_with_an_infinity_or_a_nan_anywhere_is_not_finite() {
    use burn::module::{Module, ModuleVisitor, Param, ParamId};
    use burn::optim::GradientsParams;
    let (_, model) = digits("flatten dense(8) relu dense(data.classes)", "epochs = 1", "f32");
    // A gradient of each weight's shape, every element `fill` but the last weight's first,
    // which is `odd`.
    struct Grads {
        fill: f32,
        odd: f32,
        ids: Vec<ParamId>,
        out: GradientsParams,
    }
    impl ModuleVisitor for Grads {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let v = param.val();
            let (shape, device) = (v.shape(), v.device());
            let mut data = vec![self.fill; shape.num_elements()];
            self.ids.push(param.id);
            data[0] = self.odd;
            self.out.register::<D>(param.id, Tensor::<D>::from_data(TensorData::new(data, shape), &device));
        }
    }
    let grads = |fill: f32, odd: f32| {
        let mut g = Grads { fill, odd, ids: Vec::new(), out: GradientsParams::new() };
        model.net.visit(&mut g);
        assert!(g.ids.len() >= 4, "{} weights", g.ids.len());
        g.out
    };
    assert!(precision::grads_finite(&model.net, &grads(0.25, -3e38)));
    assert!(!precision::grads_finite(&model.net, &grads(0.25, f32::INFINITY)));
    assert!(!precision::grads_finite(&model.net, &grads(0.25, f32::NEG_INFINITY)));
    assert!(!precision::grads_finite(&model.net, &grads(0.25, f32::NAN)));
    // Finite however large: `g - g` is 0 where a plain sum of the elements would overflow.
    assert!(precision::grads_finite(&model.net, &grads(f32::MAX, f32::MAX)));
}

#[test]
fn f16_training_whose_first_gradients_overflow_skips_those_steps_and_trains() {
    // Regression targets of thousands (standardised by the loader, yet the first gradients
    // times 2^16 exceed f16's 65504): the first step overflows, is skipped, and the run
    // goes on at half the scale; a static scale would have stepped with infinite gradients.
    let dir = std::env::temp_dir().join(format!("bma-train-loss-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("big.csv");
    let mut csv = String::from("a,b,c,y\n");
    for i in 0..300 {
        let (a, b, c) = ((i % 17) as f64 / 17.0, (i % 7) as f64 / 7.0, (i % 5) as f64 / 5.0);
        csv += &format!("{a},{b},{c},{}\n", 3000.0 * a - 2000.0 * b + 5000.0);
    }
    std::fs::write(&path, csv).expect("write");
    let src = format!(
        "experiment t {{\n data = csv(\"{}\", target: \"y\", task: regression, split: [0.7, 0.2, 0.1], seed: 1)\n \
         model {{ dense(16) relu dense(1) }}\n train {{ optimizer = adam(0.01) epochs = 3 batch = 32 precision = f16 }}\n \
         objective {{ minimize loss }}\n}}\n",
        path.display()
    );
    let (sub, data, cfg) = super::test_support::setup(&src, 11);
    let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(out.status, Status::Completed);
    let at = |e: usize, k: &str| out.epochs[e][k];
    assert!(at(0, "skipped_steps") >= 1.0 && at(0, "loss_scale") < F16_LOSS_SCALE, "{:?}", out.epochs[0]);
    assert_eq!(at(2, "skipped_steps"), at(0, "skipped_steps"), "no overflow once the scale came down");
    assert!(at(2, "train_loss") < 0.5 * at(0, "train_loss"), "{:?}", out.epochs);
    assert!(out.model.expect("a model").tensors().iter().all(|(_, _, v)| v.iter().all(|x| x.is_finite())));
    let _ = std::fs::remove_dir_all(&dir);
}
