//! `--device` and `--devices` for studies that train their own models, and `--device` of
//! `bma eval` and `bma predict`, in the default (CPU) build; `tests/gpu_wgpu.rs` runs the
//! same on a wgpu adapter.

mod common;

use common::{bma, results, stderr, temp_dir, write};

const SEARCH: &str = r#"experiment d {
  data = digits(split: [0.7, 0.15, 0.15], seed: 1)
  space { width: int in {16, 32} }
  model { flatten dense(width) relu dense(data.classes) }
  train { optimizer = adam(0.005) epochs = 3 batch = 64 }
  objective { maximize accuracy }
  search { strategy = random trials = 4 seed = 5 }
}
"#;

#[test]
fn devices_spread_model_trials_and_each_trial_records_its_device() {
    let dir = temp_dir();
    let spec = write(dir.path(), "d.bma", SEARCH);
    let out = dir.path().join("run");
    // `0,0`: two trials at once on the one CPU device.
    let o = bma()
        .arg("run")
        .arg(&spec)
        .args(["--devices", "0,0", "--parallel", "2", "--progress", "none", "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let trials = r["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 4);
    for t in trials {
        assert_eq!(t["device"], "cpu", "{t}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(html.contains("<th>device</th>"), "the report shows where each trial ran");

    // A run without --devices on the CPU records no device, as before.
    let plain = dir.path().join("plain");
    let o = bma().arg("run").arg(&spec).args(["--progress", "none", "--out"]).arg(&plain).output().expect("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(results(&plain)["trials"].as_array().expect("trials").iter().all(|t| t.get("device").is_none()));

    // The saved models reload on the device asked for and answer as before.
    let eval = |extra: &[&str]| {
        let o = bma().arg("eval").arg(&out).args(["--format", "json"]).args(extra).output().expect("runs");
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v["metrics"].clone()
    };
    assert_eq!(eval(&[]), eval(&["--device", "cpu"]));
}

#[test]
fn an_unknown_device_or_one_this_build_lacks_is_refused_by_name() {
    let dir = temp_dir();
    let spec = write(dir.path(), "d.bma", SEARCH);
    let run = |extra: &[&str]| {
        bma().arg("run").arg(&spec).args(["--progress", "none", "--out"]).arg(dir.path().join("x")).args(extra).output()
    };
    let o = run(&["--device", "tpu"]).expect("runs");
    assert_eq!(o.status.code(), Some(1), "a bad flag is the input's problem");
    assert!(stderr(&o).contains("unknown device `tpu`: one of cpu, wgpu[:N], cuda[:N]"), "{}", stderr(&o));
    let o = run(&["--device", "cpu", "--devices", "0,1"]).expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--devices: `cpu:1`: the CPU backend has one device"), "{}", stderr(&o));
    // A GPU backend the build lacks (the default build has neither), in each command.
    let lacking = |backend: &str| match backend {
        "wgpu" => !cfg!(feature = "wgpu"),
        _ => !cfg!(any(feature = "cuda", feature = "tch")),
    };
    let cases = [("run", "wgpu"), ("eval", "wgpu:1"), ("predict", "cuda"), ("run", "cuda:1")];
    for (cmd, device) in cases.into_iter().filter(|(_, d)| lacking(&d[..4])) {
        let mut c = bma();
        c.arg(cmd).arg(&spec);
        match cmd {
            "predict" => c.arg(&spec),
            "run" => c.arg("--out").arg(dir.path().join("y")),
            _ => &mut c,
        };
        let o = c.args(["--device", device]).output().expect("runs");
        assert_eq!(o.status.code(), Some(1), "{cmd} --device {device}");
        assert!(stderr(&o).contains("this bma was built without the"), "{}", stderr(&o));
        assert!(stderr(&o).contains(&format!("--features {}", &device[..4])), "{}", stderr(&o));
    }
}
