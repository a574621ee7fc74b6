//! `train { precision = f16 }` end to end on the CPU: a digits search whose trials train in
//! f16 on f32 master weights, soup-averaged; the saved models record their precision, hold
//! f32 weights, evaluate to the run's recorded metrics, and export to ONNX with f32
//! initialisers. A bad value is refused by the checker.

mod common;

use common::{bma, results, stderr, temp_dir, write};
use prost::Message;

const SPEC: &str = "experiment d {
  data = digits(split: [0.7, 0.15, 0.15], seed: 1)
  space { lr: float in {0.01, 0.003} }
  model { flatten dense(32) batchnorm relu dropout(0.1) dense(data.classes) }
  train { optimizer = adam(lr) epochs = 4 batch = 64 seed = 2 precision = f16 }
  objective { maximize accuracy }
  search { strategy = grid trials = 2 }
  average { soup(uniform, top: 2) }
}
";

#[test]
fn an_f16_search_saves_f32_models_that_reload_average_and_export() {
    let dir = temp_dir();
    let spec = write(dir.path(), "d.bma", SPEC);
    let out = dir.path().join("run");
    let o = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "none"]).output().expect("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let trials = r["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 2);
    for t in trials {
        assert_eq!(t["state"], "complete", "{t}");
        assert!(t["values"]["accuracy"].as_f64().expect("accuracy") > 0.85, "{t}");
    }

    // The saved configuration says how it trained; the weights are f32.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best/model.json")).expect("model.json")).expect("json");
    assert_eq!(config["config"]["train"]["precision"], "f16", "{config}");
    let bytes = std::fs::read(out.join("best/model.safetensors")).expect("weights");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    assert!(st.tensors().iter().all(|(_, t)| t.dtype() == safetensors::Dtype::F32));

    // The soup of the two f16-trained models evaluates as the run recorded it.
    let e = bma().arg("eval").arg(&out).args(["--format", "json"]).output().expect("eval");
    assert!(e.status.success(), "{}", stderr(&e));
    let ev: serde_json::Value = serde_json::from_slice(&e.stdout).expect("eval json");
    let (got, want) = (
        ev["metrics"]["accuracy"].as_f64().expect("accuracy"),
        r["final"]["final_test"]["accuracy"].as_f64().expect("the final model's test accuracy"),
    );
    assert!((got - want).abs() <= 1e-6, "eval {got} vs the run's final {want}");
    assert!(got > 0.85, "the soup of f16 models: {got}");

    // ONNX export: the weights are float32 initialisers (data type 1), none float16 (10)
    // or bfloat16 (16); the others are int64 shapes (7).
    let file = dir.path().join("d.onnx");
    let x = bma().arg("export").arg(&out).arg("--out").arg(&file).output().expect("export");
    assert!(x.status.success(), "{}", stderr(&x));
    let model = bma::export::proto::ModelProto::decode(std::fs::read(&file).expect("onnx").as_slice()).expect("onnx");
    let graph = model.graph.expect("a graph");
    assert!(!graph.initializer.is_empty());
    let types: Vec<i32> = graph.initializer.iter().map(|t| t.data_type).collect();
    assert!(types.contains(&1) && types.iter().all(|t| matches!(t, 1 | 7)), "{types:?}");
}

#[test]
fn a_precision_that_is_not_one_is_refused_by_the_checker() {
    let dir = temp_dir();
    let spec = write(dir.path(), "d.bma", &SPEC.replace("precision = f16", "precision = f64"));
    let o = bma().arg("check").arg(&spec).output().expect("check");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("f64") && err.contains("f16") && err.contains("bf16"), "{err}");
}
