//! `hypergradient: β` end to end: `bma run` keeps each trial's adapted learning rate per epoch
//! and at the end in `results.json`, the store keeps them (`bma report` redraws the report's
//! learning-rate section from the store alone), and a negative β is refused before anything runs.

mod common;

use common::{bma, results, stderr, temp_dir, write};

const SPEC: &str = "
experiment adapted {
  data = iris(seed: 1)
  space { beta: float in 1e-4..1e-2 log }
  model { dense(8) relu dense(data.classes) }
  train { optimizer = sgd(0.001, momentum: 0.5, hypergradient: beta) epochs = 4 batch = 16 }
  objective { maximize accuracy }
  search { strategy = random trials = 2 seed = 3 }
}
";

#[test]
fn the_adapted_rate_is_stored_per_epoch_and_drawn() {
    let tmp = temp_dir();
    let file = write(tmp.path(), "h.bma", SPEC);
    let out = tmp.path().join("out");
    let run = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let r = results(&out);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    let num = |v: &serde_json::Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
    for t in trials {
        assert_eq!(t["state"], "complete", "{t}");
        let m = &t["metrics"];
        let rates: Vec<f64> =
            (1..=4).map(|e| num(&m[format!("hyper_lr@{e}")]).unwrap_or_else(|| panic!("epoch {e}: {m}"))).collect();
        assert_eq!(num(&m["hyper_lr"]), Some(rates[3]), "{m}");
        // From 0.001 with momentum on iris the loss falls along the steps: the rate climbs.
        assert!(rates[3] > 0.001, "{rates:?}");
        assert!(rates.iter().all(|r| r.is_finite()));
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Learning rates (hypergradient)</h2>"));
    assert_eq!(html.matches("<path class=\"curve rate\"").count(), 2);
    // The store holds them: the report is redrawn from it alone.
    std::fs::remove_file(out.join("report.html")).unwrap();
    let rep = bma().arg("report").arg(&out).output().unwrap();
    assert!(rep.status.success(), "{}", stderr(&rep));
    let again = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(again.matches("<path class=\"curve rate\"").count(), 2);
}

#[test]
fn a_negative_beta_is_refused_before_training() {
    let tmp = temp_dir();
    let file = write(tmp.path(), "h.bma", &SPEC.replace("1e-4..1e-2 log", "-1e-4..1e-2"));
    let out = tmp.path().join("out");
    let run = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("`hypergradient` must be at least 0"), "{}", stderr(&run));
    assert!(!out.join("results.json").exists());
}
