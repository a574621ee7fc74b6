//! `attention`, `positional` and `std::blocks::transformer_block` through the checker and
//! the real binary: diagnostics for bad arguments and inputs, a transformer trained by
//! `bma run`, averaged (a weight soup, SWA), saved, and evaluated again by `bma eval`, and
//! the block's inside in `bma graph`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use bma::source::Source;
use common::{bma, results, stderr, temp_dir, write};

/// The errors of `model` on digits seen as 8 rows of 8 pixels: `(code, message, help)`.
fn errors(space: &str, model: &str) -> Vec<(String, String, String)> {
    let src = format!(
        "use std::blocks::transformer_block\nexperiment t {{\n  data = digits()\n  {space}\n  model {{ reshape(8, 8) \
         {model} global_avgpool dense(data.classes) }}\n  objective {{ maximize accuracy }}\n}}\n"
    );
    let compiled = bma::compile(&Source::new("t.bma", &src));
    compiled
        .diagnostics
        .iter()
        .filter(|d| d.severity == bma::diagnostic::Severity::Error)
        .map(|d| (d.code.as_str().to_string(), d.message.clone(), d.help.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn the_checker_accepts_attention_and_the_block_over_the_whole_space() {
    let ok = errors(
        "space { heads: int in {1, 2, 4, 8} kind: in {sinusoidal, learned} }",
        "positional(kind) transformer_block(8, heads, 16, 0.1) attention(heads, causal: true, rotary: heads < 8)",
    );
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn bad_attention_arguments_and_inputs_are_diagnosed() {
    let e = errors("space { heads: int in {2, 3} }", "attention(heads)");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "invalid_value");
    assert!(e[0].1.contains("3 heads") && e[0].1.contains("does not divide 8"), "{e:?}");
    assert!(e[0].2.contains("1, 2, 4, 8"), "{e:?}");
    // 4 heads of 2 are fine for rotary; 8 heads of 1 are not.
    let e = errors("space { heads: int in {4, 8} }", "attention(heads, rotary: true)");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].0 == "invalid_value" && e[0].1.contains("each head has 1"), "{e:?}");
    let e = errors("", "positional(rotary)");
    assert!(e.len() == 1 && e[0].0 == "invalid_value" && e[0].2.contains("attention(heads, rotary: true)"), "{e:?}");
    let e = errors("", "positional(absolute)");
    assert!(e.len() == 1 && e[0].0 == "unknown_value", "{e:?}");
    let e = errors("", "attention(2, causal: 3)");
    assert!(e.len() == 1 && e[0].0 == "type_mismatch", "{e:?}");
    let e = errors("", "attention(0)");
    assert!(e.len() == 1 && e[0].0 == "invalid_value" && e[0].1.contains("positive `heads`"), "{e:?}");
    let e = errors("", "attention()");
    assert!(e.len() == 1 && e[0].0 == "bad_arguments", "{e:?}");
    let e = errors("", "attention(2, window: 3)");
    assert!(e.len() == 1 && e[0].0 == "bad_arguments", "{e:?}");
    // Not a sequence: a flat input.
    let e = errors("", "flatten attention(2) reshape(8, 8)");
    assert!(e.len() == 1 && e[0].0 == "shape_error" && e[0].1.contains("needs a sequence [length, dim]"), "{e:?}");
    let e = errors("", "flatten positional(learned) reshape(8, 8)");
    assert!(e.len() == 1 && e[0].0 == "shape_error", "{e:?}");
    // A block whose heads do not divide the sequence's dim: its attention is diagnosed.
    // (A `dim` other than the input's is accepted: the feed-forward residual then gets
    // a kernel-1 conv1d projection on its shortcut, as `res_block` gets a 1x1 conv.)
    let e = errors("", "transformer_block(8, 3, 32)");
    assert!(e.len() == 1 && e[0].0 == "invalid_value", "{e:?}");
    assert!(errors("", "transformer_block(16, 2, 32)").is_empty());
}

/// A corpus where the class is decided by the words "good"/"bad".
fn corpus(dir: &Path) {
    let mut s = String::from("review,label\n");
    let pos = ["good fun film", "a good story", "great good acting", "fun and great", "good good"];
    let neg = ["bad dull film", "a bad story", "awful bad acting", "dull and awful", "bad bad"];
    for i in 0..30 {
        s.push_str(&format!("\"{} {}\",pos\n\"{} {}\",neg\n", pos[i % 5], i % 7, neg[i % 5], i % 7));
    }
    write(dir, "reviews.csv", &s);
}

fn spec(average: &str, trials: usize) -> String {
    format!(
        "use std::blocks::transformer_block
experiment words {{
  data = text(\"reviews.csv\", text: \"review\", target: \"label\", max_len: 8, seed: 1)
  space {{ lr: float in {{0.003, 0.005, 0.01}} }}
  model {{
    embedding(data.vocab, 16)
    positional(learned)
    transformer_block(16, 2, 32, 0.1)
    attention(4, causal: true, rotary: true)
    global_avgpool
    dense(data.classes)
  }}
  train {{ optimizer = adam(lr) epochs = 6 batch = 8 seed = 4 }}
  objective {{ maximize accuracy }}
  search {{ strategy = grid trials = {trials} }}
  average {{ {average} }}
}}
"
    )
}

fn printed(stdout: &str, metric: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(metric).map(|v| v.trim().parse::<f64>().expect("a number")))
        .unwrap_or_else(|| panic!("no {metric} in {stdout}"))
}

/// Runs the spec, checks it learnt, and that `bma eval` gives the recorded test figures.
fn run_and_eval(average: &str, trials: usize) -> serde_json::Value {
    let dir = temp_dir();
    corpus(dir.path());
    let file = write(dir.path(), "t.bma", &spec(average, trials));
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["counts"]["complete"], trials, "{r}");
    let test = &r["final"]["final_test"];
    assert!(test["accuracy"].as_f64().unwrap() >= 0.8, "{r}");
    let e = bma().arg("eval").arg(&out).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let text = String::from_utf8_lossy(&e.stdout);
    assert!((printed(&text, "accuracy") - test["accuracy"].as_f64().unwrap()).abs() < 5e-5, "{text} vs {r}");
    let loss = test["loss"].as_f64().unwrap();
    assert!((printed(&text, "loss") - loss).abs() < 5e-5 * (1.0 + loss), "{text} vs {r}");
    let e = bma().arg("eval").arg(&out).args(["--model", "best"]).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    r
}

#[test]
fn a_transformer_trains_soups_saves_and_evaluates_again() {
    let r = run_and_eval("soup(uniform, top: 3)", 3);
    // One member: the soup of the three trials (one architecture, one initialisation).
    let members = r["final"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{}", r["final"]);
    assert_eq!(members[0]["trials"].as_array().map(Vec::len), Some(3), "{}", r["final"]);
    assert_eq!(r["final"]["excluded"].as_array().map(Vec::len), Some(0), "{}", r["final"]);
}

#[test]
fn a_transformer_trains_with_swa_saves_and_evaluates_again() {
    let r = run_and_eval("swa(last: 3)", 1);
    assert!(!r["final"]["swa"].is_null(), "{}", r["final"]);
}

#[test]
fn graph_shows_the_inside_of_a_transformer_block() {
    let dir = temp_dir();
    corpus(dir.path());
    let file = write(dir.path(), "t.bma", &spec("swa(last: 2)", 1));
    let o = bma().arg("graph").arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let dot = String::from_utf8_lossy(&o.stdout);
    for needle in ["layernorm", "attention(2, causal: false, rotary: false)", "gelu", "dense(32)", "dense(16)", "add"] {
        assert!(dot.contains(needle), "{needle} not in {dot}");
    }
    assert!(dot.contains("attention(4, causal: true, rotary: true)"), "{dot}");
}
