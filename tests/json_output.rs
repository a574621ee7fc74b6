//! `--format json` of `space`, `graph`, `ls`, `eval` and `run`, on the real binary: each
//! document parses, carries `schema_version`, and its fields hold what the text shows
//! (docs/json.md); `results.json` carries the same `schema_version`.

mod common;

use std::path::Path;

use common::{bma, results, temp_dir, write};
use serde_json::Value;

fn json_of(args: &[&str], cwd: &Path) -> Value {
    let out = bma().args(args).current_dir(cwd).env_remove("BMA_STORE").output().expect("the bma binary runs");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON document ({e}):\n{stdout}"))
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn space_json_lists_parameters_with_domains_and_conditions() {
    let doc = json_of(&["space", "examples/digits.bma", "--format", "json"], Path::new(ROOT));
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["experiment"], "digits");
    assert_eq!(doc["data"]["input"], serde_json::json!([1, 8, 8]));
    assert_eq!(doc["data"]["outputs"], 10);
    let params = doc["parameters"].as_array().expect("parameters");
    let kind = params.iter().find(|p| p["name"] == "kind").expect("the kind parameter");
    assert_eq!(kind["kind"], "free");
    assert_eq!(kind["domain"]["type"], "choice");
    let lr = params.iter().find(|p| p["name"] == "lr").expect("the lr parameter");
    assert_eq!(lr["domain"]["type"], "float");
    assert_eq!(lr["domain"]["log"], true);
    assert!(lr["domain"]["low"].as_f64().expect("a number") > 0.0);
    // A parameter under a `when` names its condition.
    assert!(params.iter().any(|p| p["when"].as_array().is_some_and(|w| !w.is_empty())), "{params:?}");
    let (lo, hi) = (doc["params"]["min"].as_u64().expect("min"), doc["params"]["max"].as_u64().expect("max"));
    assert!(0 < lo && lo <= hi, "params {lo}..{hi}");
}

#[test]
fn graph_json_sums_to_its_totals() {
    let doc = json_of(&["graph", "examples/digits.bma", "--set", "kind=cnn", "--format", "json"], Path::new(ROOT));
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["point"]["kind"], "cnn");
    assert_eq!(doc["output"], serde_json::json!([10]));
    let layers = doc["layers"].as_array().expect("layers");
    assert!(layers.len() > 3, "{layers:?}");
    let sum: u64 = layers.iter().map(|l| l["params"].as_u64().expect("params")).sum();
    assert_eq!(Some(sum), doc["params"].as_u64(), "the layers' params do not add up to the total");
    let flops: u64 = layers.iter().map(|l| l["flops"].as_u64().expect("flops")).sum();
    assert_eq!(Some(flops), doc["flops"].as_u64());
}

const TINY: &str = "
experiment tiny {
  data = synthetic.moons(n: 200, noise: 0.2, seed: 1)
  space { width: int in {4, 8} }
  model { dense(width) relu dense(data.classes) }
  train { optimizer = adam(0.05) epochs = 3 batch = 32 loss = cross_entropy }
  objective { maximize accuracy }
  search { strategy = grid trials = 2 seed = 5 }
}
";

#[test]
fn run_ls_and_eval_json_agree_with_results_json() {
    let dir = temp_dir();
    write(dir.path(), "tiny.bma", TINY);
    let run = json_of(&["run", "tiny.bma", "--out", "runs/tiny", "--format", "json", "-q"], dir.path());
    assert_eq!(run["schema_version"], 1);
    assert_eq!(run["state"], "finished");
    assert_eq!(run["counts"]["total"], 2);
    assert_eq!(run["counts"]["complete"], 2);
    let out = dir.path().join("runs/tiny");
    let results = results(&out);
    assert_eq!(results["schema_version"], 1);
    let best = results["ranked"][0].as_u64().expect("a ranked trial");
    assert_eq!(run["best"]["trial"].as_u64(), Some(best));
    let accuracy = run["best"]["values"]["accuracy"].as_f64().expect("the best accuracy");
    assert_eq!(results["best"]["values"]["accuracy"].as_f64(), Some(accuracy));
    assert!(run["final"]["members"].as_u64().is_some_and(|m| m >= 1), "{run}");
    assert!(Path::new(run["results"].as_str().expect("a path")).ends_with("runs/tiny/results.json"));

    let ls = json_of(&["ls", "runs", "--format", "json"], dir.path());
    assert_eq!(ls["schema_version"], 1);
    let studies = ls["studies"].as_array().expect("studies");
    assert_eq!(studies.len(), 1);
    assert_eq!(studies[0]["name"], "tiny");
    assert_eq!(studies[0]["state"], "finished");
    assert_eq!(studies[0]["trials"], 2);
    assert_eq!(studies[0]["best"]["trial"].as_u64(), Some(best));
    assert_eq!(studies[0]["best"]["values"]["accuracy"].as_f64(), Some(accuracy));

    let eval = json_of(&["eval", "runs/tiny", "--model", "best", "--split", "valid", "--format", "json"], dir.path());
    assert_eq!(eval["schema_version"], 1);
    assert_eq!(eval["split"], "valid");
    let acc = eval["metrics"]["accuracy"].as_f64().expect("accuracy");
    assert!((0.0..=1.0).contains(&acc), "accuracy {acc}");
    // The objective is measured on the validation split: the best model's valid accuracy.
    assert!((acc - accuracy).abs() < 1e-6, "eval {acc} vs the run's {accuracy}");
}

#[test]
fn ls_json_of_an_empty_folder_is_an_empty_list() {
    let dir = temp_dir();
    let doc = json_of(&["ls", ".", "--format", "json"], dir.path());
    assert_eq!(doc, serde_json::json!({ "schema_version": 1, "studies": [] }));
}
