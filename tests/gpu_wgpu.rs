//! The wgpu backend on a real wgpu adapter: CI runs these on Mesa's lavapipe (a Vulkan
//! driver on the CPU, `.ci/wgpu.sh`); a GPU machine runs them on its card.
//!
//! Built only with `--features wgpu` (`cargo test --features wgpu --test gpu_wgpu`). A
//! machine without a wgpu adapter fails the first test, loudly: these tests never skip.
//! What they show: the device opens and names itself, and the memory guard uses its memory
//! where it reports it (else host RAM, said so); every layer kind's
//! forward pass gives the CPU's outputs within rounding; a digits training gives the CPU's
//! accuracy within noise, from the same seed, in f32 and in f16 (`precision = f16`; bf16 is
//! refused, naming what the adapter has); `bma run --device wgpu` records the device of
//! every trial, and `bma eval`/`bma predict --device wgpu` reload its models there and answer
//! as the CPU does.
#![cfg(feature = "wgpu")]

mod common;

use std::path::Path;
use std::process::Command;

use bma::source::Source;
use bma::train::{Control, DeviceKind, Model, Status, Trials, device};

const GPU: DeviceKind = DeviceKind::Wgpu(0);

fn bma() -> Command {
    common::bma()
}

/// Four experiments on the digits that hold every layer kind that runs on images,
/// sequences and flat vectors (`embedding` needs token ids: the text tests' own).
const LAYERS: &str = r#"
experiment flat { data = digits(split: [0.7, 0.15, 0.15], seed: 1)
  model { flatten dense(32) leaky_relu(0.1) residual { dense(32) relu dense(32) } dropout(0.1) batchnorm
          dense(16) layernorm rmsnorm relu dense(data.classes) }
  train { epochs = 1 batch = 64 } objective { maximize accuracy } }
experiment image { data = digits(split: [0.7, 0.15, 0.15], seed: 1)
  model { conv2d(8, kernel: 3) batchnorm relu maxpool(2) conv2d(8, kernel: 3, padding: same, groups: 2)
          groupnorm(2) relu avgpool(2) conv_transpose2d(4, kernel: 2, stride: 2) upsample(2) global_maxpool
          dense(data.classes) }
  train { epochs = 1 batch = 64 } objective { maximize accuracy } }
experiment sequence { data = digits(split: [0.7, 0.15, 0.15], seed: 1)
  model { reshape(8, 8) transpose conv1d(8, kernel: 3, dilation: 2) relu maxpool1d(2) avgpool1d(2, stride: 1)
          lstm(8, bidirectional: true, return: sequence) gru(8) dense(data.classes) }
  train { epochs = 1 batch = 64 } objective { maximize accuracy } }
experiment attend { data = digits(split: [0.7, 0.15, 0.15], seed: 1)
  model { reshape(8, 8) positional(kind: learned) attention(heads: 2, causal: true) layernorm global_avgpool
          dense(data.classes) }
  train { epochs = 1 batch = 64 } objective { maximize accuracy } }
"#;

fn compiled(text: &str) -> bma::Compiled {
    let c = bma::compile(&Source::new("layers.bma", text));
    assert!(!c.has_errors(), "{:#?}", c.diagnostics);
    c
}

/// Trains experiment `i` of `c` (no searched parameters) on `device` with `seed`.
fn train(c: &bma::Compiled, i: usize, device: DeviceKind, seed: u64) -> (Model, Trials<'_>, f64) {
    let exp = &c.program.experiments[i];
    let trials = Trials::new(&c.program, exp, Path::new("."), device).expect("the digits load");
    let out = trials.run(&bma::ir::Point::new(), seed, |_, _| Control::Continue);
    assert_eq!(out.status, Status::Completed, "{} on {device}", exp.name);
    let acc = out.metrics["accuracy"];
    (out.model.expect("a model"), trials, acc)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_wgpu_device_opens_names_itself_and_tells_its_memory() {
    let info = device::info(GPU).unwrap_or_else(|e| panic!("no wgpu adapter: {e}"));
    eprintln!("wgpu:0 is {} with {:?} bytes", info.name, info.memory);
    assert!(!info.name.is_empty());
    // The memory guard uses the adapter's memory where it reports it, else host RAM, said so.
    // cubecl-wgpu reads the Vulkan heaps on its SPIR-V path only (burn's `vulkan` feature):
    // with `wgpu` (WGSL), as on CI's lavapipe, the adapter reports none.
    let room = bma::train::memory::room(GPU).expect("host RAM at least");
    let host = bma::train::memory::available().expect("Linux says its free memory");
    match info.memory {
        Some(memory) => {
            assert!(memory >= 64 << 20, "{memory} bytes");
            assert_eq!(room, bma::train::memory::Room::Device(GPU, memory));
        }
        None => {
            assert!(matches!(room, bma::train::memory::Room::HostFor(GPU, _)), "{room:?}");
            assert!(room.bytes() <= host + (256 << 20), "{room:?} vs {host}");
            assert!(room.whose().contains("wgpu:0 does not report its own memory"));
        }
    }
    // An index past the adapters there are is refused, naming those there are.
    let e = device::info(DeviceKind::Wgpu(99)).expect_err("no 100th adapter");
    assert!(e.contains("`wgpu:99`: this machine has") && e.contains(&info.name), "{e}");
}

#[test]
fn every_layer_kind_gives_the_cpu_outputs_on_wgpu() {
    let c = compiled(LAYERS);
    for (i, exp) in c.program.experiments.iter().enumerate() {
        let (model, trials, _) = train(&c, i, DeviceKind::Cpu, 7);
        let valid = &trials.data.valid;
        let want = model.predict_split(valid).expect("cpu forward");
        let gpu = model.on_device(GPU).expect("moves to wgpu");
        assert_eq!(gpu.device(), GPU);
        let got = gpu.predict_split(valid).expect("wgpu forward");
        let diff = max_diff(&got, &want);
        assert!(diff < 1e-3, "{}: the wgpu outputs differ from the cpu's by {diff}", exp.name);
        // And the metrics computed from them.
        let m_cpu = model.evaluate(valid, &trials.data.info).expect("cpu");
        let m_gpu = gpu.evaluate(valid, &trials.data.info).expect("gpu");
        assert!((m_cpu["accuracy"] - m_gpu["accuracy"]).abs() <= 1.0 / valid.n as f64, "{}", exp.name);
        assert!((m_cpu["loss"] - m_gpu["loss"]).abs() < 1e-3, "{}: {m_cpu:?} vs {m_gpu:?}", exp.name);
    }
}

#[test]
fn digits_train_on_wgpu_to_the_cpu_accuracy() {
    let text = "experiment d { data = digits(split: [0.7, 0.15, 0.15], seed: 1)\n \
                model { flatten dense(64) relu dense(data.classes) }\n \
                train { optimizer = adam(0.003) epochs = 8 batch = 64 }\n objective { maximize accuracy } }\n";
    let c = compiled(text);
    let (_, _, cpu) = train(&c, 0, DeviceKind::Cpu, 11);
    let (model, _, gpu) = train(&c, 0, GPU, 11);
    assert_eq!(model.device(), GPU);
    eprintln!("valid accuracy after 8 epochs: cpu {cpu:.4}, wgpu {gpu:.4}");
    assert!(gpu > 0.9, "wgpu trained to {gpu}");
    // Same seed, same batches, same initial weights: only float rounding differs.
    assert!((gpu - cpu).abs() <= 0.02, "cpu {cpu} vs wgpu {gpu}");
}

#[test]
fn digits_train_on_wgpu_in_f16_to_the_f32_accuracy_and_bf16_is_refused() {
    // lavapipe has `shaderFloat16` (vulkaninfo); wgpu's shaders have no bf16 arithmetic.
    use bma::train::{Precision, precision};
    let has = precision::of_device(GPU).expect("wgpu:0 opens");
    eprintln!("wgpu:0 computes in {has:?}");
    assert_eq!(has, vec![Precision::F32, Precision::F16], "the adapter's float types");
    let e = precision::supported(GPU, Precision::Bf16).expect_err("no bf16 on wgpu");
    assert!(e.contains("the device wgpu:0 cannot compute in bf16 (it supports f32, f16)"), "{e}");
    let text = |p: &str| {
        format!(
            "experiment d {{ data = digits(split: [0.7, 0.15, 0.15], seed: 1)\n \
             model {{ flatten dense(64) relu dense(data.classes) }}\n \
             train {{ optimizer = adam(0.003) epochs = 8 batch = 64 precision = {p} }}\n \
             objective {{ maximize accuracy }} }}\n"
        )
    };
    let (c32, c16) = (compiled(&text("f32")), compiled(&text("f16")));
    let (_, _, cpu) = train(&c32, 0, DeviceKind::Cpu, 11);
    let (model, _, gpu) = train(&c16, 0, GPU, 11);
    assert_eq!(model.device(), GPU);
    eprintln!("valid accuracy after 8 epochs: cpu f32 {cpu:.4}, wgpu f16 {gpu:.4}");
    assert!(gpu > 0.9, "wgpu f16 trained to {gpu}");
    // The tolerance of the CPU's own f16 parity test (src/train/precision_tests.rs).
    assert!((gpu - cpu).abs() <= 0.03, "cpu f32 {cpu} vs wgpu f16 {gpu}");
}

/// A short digits search: two widths of MLP, six epochs each.
const SEARCH: &str = r#"experiment d {
  data = digits(split: [0.7, 0.15, 0.15], seed: 1)
  space { width: int in {32, 64}  lr: float in 2e-3..1e-2 log }
  model { flatten dense(width) relu dense(data.classes) }
  train { optimizer = adam(lr) epochs = 6 batch = 64 }
  objective { maximize accuracy }
  search { strategy = random trials = 4 seed = 5 }
}
"#;

fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().expect("bma runs");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{cmd:?}\nstdout:\n{out}\nstderr:\n{err}");
    out.into_owned()
}

#[test]
fn a_digits_search_runs_on_wgpu_and_its_models_reload_there() {
    let dir = common::temp_dir();
    let spec = common::write(dir.path(), "d.bma", SEARCH);
    let out = dir.path().join("run");
    // `--devices 0,0`: two trials at once on wgpu:0.
    run_ok(bma().arg("run").arg(&spec).args(["--device", "wgpu", "--devices", "0,0", "--parallel", "2"]).args([
        "--progress",
        "none",
        "--out",
        out.to_str().expect("utf-8"),
    ]));
    let results = common::results(&out);
    let trials = results["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 4);
    let mut best = 0.0f64;
    for t in trials {
        assert_eq!(t["device"], "wgpu:0", "every trial records its device: {t}");
        best = best.max(t["values"]["accuracy"].as_f64().expect("accuracy"));
    }
    assert!(best > 0.9, "the best digits trial reached {best} on wgpu");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("wgpu:0"), "the report shows the device");

    // The saved best model, reloaded on each device, gives the same metrics and answers.
    let eval = |dev: &str| -> serde_json::Value {
        let text = run_ok(
            bma()
                .arg("eval")
                .arg(&out)
                .args(["--model", "best", "--split", "valid", "--format", "json", "--device", dev]),
        );
        serde_json::from_str(&text).expect("eval json")
    };
    let (cpu, gpu) = (eval("cpu"), eval("wgpu:0"));
    for k in ["accuracy", "loss"] {
        let (a, b) = (cpu["metrics"][k].as_f64().expect(k), gpu["metrics"][k].as_f64().expect(k));
        assert!((a - b).abs() < 1e-3, "{k}: cpu {a} vs wgpu {b}");
    }
    let csv = common::write(dir.path(), "digits.csv", &digits_rows());
    let predict = |dev: &str| {
        run_ok(bma().arg("predict").arg(&out).arg(&csv).args(["--model", "best", "--proba", "--device", dev]))
    };
    let (p_cpu, p_gpu) = (predict("cpu"), predict("wgpu"));
    let numbers = |s: &str| -> Vec<f32> {
        s.lines().skip(1).flat_map(|l| l.split(',').skip(2).map(|v| v.parse::<f32>().expect("a probability"))).collect()
    };
    let (a, b) = (numbers(&p_cpu), numbers(&p_gpu));
    assert_eq!(a.len(), 3 * 10);
    assert!(max_diff(&a, &b) < 1e-4, "cpu:\n{p_cpu}\nwgpu:\n{p_gpu}");
}

#[test]
fn an_adapter_this_machine_lacks_is_refused_before_any_work() {
    let dir = common::temp_dir();
    let spec = common::write(dir.path(), "d.bma", SEARCH);
    let out = dir.path().join("run");
    for args in [vec!["--device", "wgpu:7"], vec!["--device", "wgpu", "--devices", "0,7"]] {
        let o = bma().arg("run").arg(&spec).args(&args).arg("--out").arg(&out).output().expect("bma runs");
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("`wgpu:7`: this machine has") && err.contains("wgpu:0 "), "{args:?}: {err}");
        assert!(!out.join("study.db").exists(), "{args:?}: a study was opened");
    }
    let csv = common::write(dir.path(), "digits.csv", &digits_rows());
    for cmd in ["predict", "eval"] {
        let mut c = bma();
        c.arg(cmd).arg(dir.path().join("no-model"));
        if cmd == "predict" {
            c.arg(&csv);
        }
        let o = c.args(["--device", "wgpu:7"]).output().expect("bma runs");
        let err = common::stderr(&o);
        // Refused for the device before the (missing) model folder is even looked at.
        assert!(!o.status.success() && err.contains("--device: `wgpu:7`: this machine has"), "{cmd}: {err}");
    }
}

/// Three rows of 64 pixel columns as the digits data names them (`p0`..`p63`).
fn digits_rows() -> String {
    let mut s = (0..64).map(|i| format!("p{i}")).collect::<Vec<_>>().join(",");
    s.push('\n');
    for r in 0..3u32 {
        let row: Vec<String> = (0..64u32).map(|i| ((i * 7 + r * 5) % 17).to_string()).collect();
        s.push_str(&row.join(","));
        s.push('\n');
    }
    s
}
