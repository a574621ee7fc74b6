//! Ensembles over searched data settings, end to end through `bma run` on a text corpus
//! this test writes: a grid over `vocab` (two tokenizers) and the learning rate, averaged
//! by a soup and an `ensemble(top: 3)`. The final model holds members of both settings,
//! each saved with its own data value and tokenizer; its test metrics are those a hand
//! blend of the members' own predictions (each on its own setting's rows) with the recorded
//! weights gives; `bma eval` and `bma predict` on the final folder reproduce them; the soup
//! leaves the other setting out and says why; `bma export` refuses one graph for members
//! that read their inputs differently. Settings that draw other rows (a searched split
//! `seed`) are never blended: the final model is not built, and the run says why.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use bma::data::Part;
use bma::ir::{CallValue, Symbol, Value}; // named by the fixtures file
use common::{bma, stderr, temp_dir, write};

#[path = "shared/text_fixtures.rs"]
mod fixtures;

const STUDY: &str = "experiment reviews {
  data = text(\"train.csv\", text: \"review\", target: \"label\", tokenizer: word, vocab: vocab, max_len: 8,
              test: text(\"test.csv\", text: \"review\", target: \"label\"), split: [0.75, 0.25], seed: 3)
  space { vocab: int in {8, 40}  lr: in {0.05, 0.02} }
  model { embedding(data.vocab, 8) global_avgpool dense(data.classes) }
  train { optimizer = adam(lr)  epochs = 3  batch = 8 }
  objective { maximize accuracy }
  search { strategy = grid  trials = 4  seed = 1 }
  average { soup(uniform, top: 4)  ensemble(top: 3, weights: softmax(loss, temperature: 0.5)) }
}
";

/// The corpus: 60 training reviews and 20 test reviews of their own (`review,label`).
fn corpus(dir: &Path) {
    let all = fixtures::reviews_csv(80);
    let mut lines = all.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    write(dir, "train.csv", &format!("{header}\n{}\n", rows[..60].join("\n")));
    write(dir, "test.csv", &format!("{header}\n{}\n", rows[60..].join("\n")));
}

/// A saved model's outputs on `split` as probabilities (softmax of logits).
fn probabilities(model: &bma::train::Model, split: &bma::data::Split) -> Vec<Vec<f64>> {
    let k = model.plan.out_features();
    let out = model.predict_split(split).unwrap();
    out.chunks(k)
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
            match model.head() {
                bma::train::Head::Logits => {
                    let m = row.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b));
                    let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.iter().map(|v| v / s).collect()
                }
                _ => row,
            }
        })
        .collect()
}

#[test]
fn an_ensemble_mixes_members_of_two_data_settings_and_eval_predict_export_agree() {
    let dir = temp_dir();
    corpus(dir.path());
    let file = write(dir.path(), "reviews.bma", STUDY);
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let fin = out.join("final");
    let text = std::fs::read_to_string(fin.join("final.json")).unwrap();
    let saved: bma::final_model::SavedFinal = bma::final_model::from_json_exact(&text).unwrap();
    let summary = &saved.summary;

    // Members of both settings, each with its own data value and tokenizer.
    assert_eq!(saved.members.len(), 3, "{summary:#?}");
    let configs: Vec<bma::train::SavedConfig> =
        saved.members.iter().map(|(sub, _)| bma::train::load_config(&fin.join(sub)).unwrap()).collect();
    let vocabs: BTreeSet<String> = configs.iter().map(|c| c.point["vocab"].to_string()).collect();
    assert_eq!(vocabs, BTreeSet::from(["40".to_string(), "8".to_string()]), "{summary:#?}");
    for c in &configs {
        let vocab = c.point["vocab"].to_string();
        assert!(c.data.to_string().contains(&format!("vocab: {vocab}")), "{}", c.data);
        assert_eq!(c.tokenizer.as_ref().unwrap().vocab.to_string(), vocab);
    }
    assert_eq!(configs.iter().map(|c| c.data.to_string()).collect::<BTreeSet<_>>().len(), 2);

    // The soup holds the best's setting only; the other setting's trials are out, with why.
    let soup = &summary.members[0];
    assert_eq!(soup.trials.len(), 2, "{summary:#?}");
    let best_vocab = configs[0].point["vocab"].to_string();
    let other_vocab = if best_vocab == "8" { "40" } else { "8" };
    let out_of_soup: Vec<&bma::final_model::ExcludedTrial> =
        summary.excluded.iter().filter(|e| e.reason.contains("a soup averages the weights of one setting")).collect();
    assert_eq!(out_of_soup.len(), 2, "{summary:#?}");
    for e in &out_of_soup {
        assert!(
            e.reason.starts_with(&format!(
                "trained on other data settings than the best trial (vocab = {other_vocab}, not {best_vocab})"
            )),
            "{}",
            e.reason
        );
        assert!(!soup.trials.contains(&e.trial));
    }
    // ... and are members of the ensemble on their own rows.
    let members: BTreeSet<u64> = summary.members.iter().flat_map(|m| m.trials.iter().copied()).collect();
    assert!(out_of_soup.iter().all(|e| members.contains(&e.trial)), "{summary:#?}");

    // A hand blend of the members' own test predictions with the recorded weights.
    let mut blend: Vec<Vec<f64>> = Vec::new();
    let mut targets: Option<Vec<f32>> = None;
    for (sub, weight) in &saved.members {
        let (model, config) = bma::train::load(&fin.join(sub)).unwrap();
        let data = bma::data::load_with(&config.data, &config.base, config.tokenizer.as_ref()).unwrap();
        let y = targets.get_or_insert_with(|| data.test.y.clone());
        assert_eq!(*y, data.test.y, "every setting holds the same test rows");
        let p = probabilities(&model, &data.test);
        blend.resize(p.len(), vec![0.0; p[0].len()]);
        for (b, row) in blend.iter_mut().zip(&p) {
            for (x, v) in b.iter_mut().zip(row) {
                *x += weight * v;
            }
        }
    }
    let y = targets.unwrap();
    assert_eq!(y.len(), 20);
    let blend32: Vec<Vec<f32>> = blend.iter().map(|r| r.iter().map(|v| *v as f32).collect()).collect();
    let hits = blend32
        .iter()
        .zip(&y)
        .filter(|(r, t)| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b }) == **t as usize)
        .count();
    let loss = blend32.iter().zip(&y).map(|(r, t)| -f64::from(r[*t as usize]).max(1e-7).ln()).sum::<f64>() / 20.0;
    let test = &summary.final_test;
    assert_eq!(test["accuracy"], hits as f64 / 20.0, "{test:?}");
    assert!((test["loss"] - loss).abs() < 1e-6, "{} against {loss}", test["loss"]);
    let total: f64 = saved.members.iter().map(|(_, w)| w).sum();
    assert!((total - 1.0).abs() < 1e-9);

    // `bma eval` reloads each member's own data: the same metrics.
    let again = bma::final_model::evaluate(&fin, Part::Test).unwrap();
    assert_eq!(again["accuracy"], test["accuracy"]);
    assert!((again["loss"] - test["loss"]).abs() < 1e-12, "{again:?} {test:?}");
    let e = bma().arg("eval").arg(&fin).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let printed = String::from_utf8_lossy(&e.stdout).to_string();
    for key in ["accuracy", "loss"] {
        let line = format!("  {key:<12} {}", bma::study::outputs::fmt_num(test[key]));
        assert!(printed.lines().any(|l| l == line), "{line:?} in {printed}");
    }

    // `bma predict` reads test.csv once per member's tokenizer: the same probabilities.
    let classes = configs[0].preprocess.as_ref().unwrap().classes.clone();
    let p = bma()
        .arg("predict")
        .arg(&fin)
        .arg(dir.path().join("test.csv"))
        .args(["--format", "json", "--proba"])
        .output()
        .unwrap();
    assert!(p.status.success(), "{}", stderr(&p));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&p.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 20);
    for (i, (row, want)) in rows.iter().zip(&blend).enumerate() {
        for (c, name) in classes.iter().enumerate() {
            let got = row["proba"][name].as_f64().unwrap();
            assert!((got - want[c]).abs() < 1e-5, "row {i} class {name}: {got} against {}", want[c]);
        }
    }

    // One ONNX graph cannot take one input for two tokenizers: refused, naming both.
    let x = bma().arg("export").arg(&fin).output().unwrap();
    assert_eq!(x.status.code(), Some(1), "{}", stderr(&x));
    let why = stderr(&x);
    assert!(why.contains("different data settings") && why.contains("one ONNX graph takes one input"), "{why}");
    assert!(why.contains("`vocab: 8`") && why.contains("`vocab: 40`"), "{why}");
    assert!(!fin.join("model.onnx").exists());
    let member = bma().arg("export").arg(fin.join("member_0")).output().unwrap();
    assert!(member.status.success(), "one member exports: {}", stderr(&member));
}

#[test]
fn settings_that_draw_other_rows_are_left_out_of_the_ensemble() {
    // A searched split seed: each setting holds other valid and test rows.
    let dir = temp_dir();
    corpus(dir.path());
    let file = write(
        dir.path(),
        "seeds.bma",
        &STUDY
            .replace("vocab: vocab, max_len: 8,", "vocab: 20, max_len: 8,")
            .replace(
                "test: text(\"test.csv\", text: \"review\", target: \"label\"), split: [0.75, 0.25], seed: 3",
                "split: [0.5, 0.25, 0.25], seed: s",
            )
            .replace("space { vocab: int in {8, 40}  lr: in {0.05, 0.02} }", "space { s: int in {1, 2} }")
            .replace("adam(lr)", "adam(0.05)")
            .replace("trials = 4", "trials = 2")
            .replace(
                "soup(uniform, top: 4)  ensemble(top: 3, weights: softmax(loss, temperature: 0.5))",
                "ensemble(top: 2)",
            ),
    );
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "the trials stand: {}", stderr(&o));
    let text = std::fs::read_to_string(out.join("final").join("final.json")).unwrap();
    let saved: bma::final_model::SavedFinal = bma::final_model::from_json_exact(&text).unwrap();
    let summary = &saved.summary;
    assert_eq!(summary.members.len(), 1, "only the best's setting is blended: {summary:#?}");
    assert_eq!(summary.excluded.len(), 1, "{summary:#?}");
    assert_ne!(summary.excluded[0].trial, summary.members[0].trials[0]);
    let reason = &summary.excluded[0].reason;
    assert!(reason.starts_with("its data setting holds other valid rows (row "), "{reason}");
    assert!(reason.contains("text(...) with `seed: "), "{reason}");
    assert!(reason.ends_with("predictions of other rows cannot be blended"), "{reason}");
    assert_eq!(saved_trials(&out), 2);
}

fn saved_trials(out: &Path) -> usize {
    std::fs::read_dir(out.join("trials"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("model.json").is_file())
        .count()
}
