//! `lstm`, `gru` and `std::blocks::lstm_stack` seen from outside: shapes, exact parameter
//! and FLOP counts from expansion, the checker's diagnostics for bad arguments and inputs
//! (over the whole space), and `bma run` training a recurrent text model, averaging it (soup
//! and SWA) and `bma eval` reloading the saved final model.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use bma::source::Source;
use common::{bma, results, stderr, temp_dir, write};

fn compile(model: &str, space: &str) -> bma::Compiled {
    let src = format!(
        "use std::blocks::lstm_stack\nexperiment r {{\n  data = digits()\n  space {{ {space} }}\n  model {{ {model} }}\n  \
         objective {{ maximize accuracy }}\n}}\n"
    );
    bma::compile(&Source::new("r.bma", src))
}

/// A layer's name, shape, params and flops.
type Row = (String, Vec<usize>, u64, u64);

/// The layers of the model's only point.
fn layers(model: &str) -> (bma::ir::SubModel, Vec<Row>) {
    let c = compile(model, "");
    assert!(!c.has_errors(), "{model}: {:#?}", c.diagnostics);
    let exp = &c.program.experiments[0];
    let (sub, _) = bma::pins::expand_with_pins(&c, exp, &BTreeMap::new()).unwrap();
    let l = sub.layers().map(|l| (l.name.clone(), l.shape.clone(), l.params, l.flops)).collect();
    (sub, l)
}

/// Parameters and FLOPs of one recurrent layer: G gate blocks, `biases` bias vectors and
/// `pointwise` element-wise FLOPs per unit and step.
fn counts(lstm: bool, d: u64, u: u64, t: u64, dirs: u64) -> (u64, u64) {
    let (g, biases, pointwise) = if lstm { (4, 1, 17) } else { (3, 2, 16) };
    (dirs * (g * u * (d + u) + biases * g * u), dirs * t * (2 * g * u * (d + u) + pointwise * u))
}

#[test]
fn shapes_parameters_and_flops_are_exact() {
    // digits is [1, 8, 8]: reshape(8, 8) makes a sequence of 8 steps of 8 values.
    let (sub, l) = layers("reshape(8, 8) lstm(5) dense(data.classes)");
    assert_eq!(l[2], ("lstm_1".into(), vec![5], 280, 4840), "{l:?}");
    assert_eq!(counts(true, 8, 5, 8, 1), (280, 4840));
    assert_eq!(sub.params, 280 + 5 * 10 + 10);
    let (_, l) = layers("reshape(8, 8) gru(5, bidirectional: true, return: sequence) flatten dense(data.classes)");
    assert_eq!(l[2], ("gru_1".into(), vec![8, 10], 450, 7520), "{l:?}");
    assert_eq!(counts(false, 8, 5, 8, 2), (450, 7520));
    let (_, l) = layers("reshape(8, 8) lstm(3, return: sequence) gru(4, true) dense(data.classes)");
    assert_eq!((l[2].1.clone(), l[3].1.clone()), (vec![8, 3], vec![8]));
    let (p, f) = counts(false, 3, 4, 8, 2);
    assert_eq!((l[3].2, l[3].3), (p, f));
    // lstm_stack: every layer but the last gives the sequence; the width doubles each time.
    let (sub, l) = layers("reshape(8, 8) lstm_stack(6, layers: 3, bidirectional: true) dense(data.classes)");
    let rec: Vec<_> = l.iter().filter(|x| x.0.starts_with("lstm")).collect();
    assert_eq!(rec.iter().map(|x| x.1.clone()).collect::<Vec<_>>(), vec![vec![8, 12], vec![8, 12], vec![12]]);
    let want = counts(true, 8, 6, 8, 2).0 + 2 * counts(true, 12, 6, 8, 2).0;
    assert_eq!(rec.iter().map(|x| x.2).sum::<u64>(), want);
    assert_eq!(sub.params, want + 12 * 10 + 10);
    let (_, l) = layers("reshape(8, 8) lstm_stack(4, layers: 1, return: sequence) flatten dense(data.classes)");
    assert_eq!(l.iter().filter(|x| x.0.starts_with("lstm")).map(|x| x.1.clone()).collect::<Vec<_>>(), vec![vec![8, 4]]);
}

/// The one error of `model` (and `space`), as (code, message, help).
fn error(model: &str, space: &str) -> (String, String, String) {
    let c = compile(model, space);
    let errs: Vec<_> = c.diagnostics.iter().filter(|d| d.severity == bma::diagnostic::Severity::Error).collect();
    assert_eq!(errs.len(), 1, "{model}: {errs:#?}");
    let d = errs[0];
    (d.code.as_str().to_string(), format!("{} / {}", d.message, d.primary.text), d.help.clone().unwrap_or_default())
}

#[test]
fn bad_arguments_and_inputs_are_diagnosed() {
    let (code, msg, help) = error("flatten lstm(4) dense(data.classes)", "");
    assert_eq!(code, "shape_error");
    assert!(msg.contains("`lstm` needs a sequence [length, dim]") && msg.contains("[64]"), "{msg}");
    assert!(help.contains("reshape(t, d)") && help.contains("embedding"), "{help}");
    let (code, msg, help) = error("gru(4) dense(data.classes)", "");
    assert_eq!(code, "shape_error");
    assert!(msg.contains("`gru` needs a sequence") && msg.contains("[1, 8, 8]"), "{msg}");
    assert!(help.contains("image"), "{help}");
    let (code, msg, _) = error("reshape(8, 8) lstm(0) dense(data.classes)", "");
    assert_eq!(code, "invalid_value");
    assert!(msg.contains("positive `units`"), "{msg}");
    let (code, msg, help) = error("reshape(8, 8) lstm(4, return: lasst) dense(data.classes)", "");
    assert_eq!(code, "unknown_value");
    assert!(msg.contains("last") && msg.contains("sequence"), "{msg}");
    assert!(help.contains("last"), "{help}");
    let (code, msg, _) = error("reshape(8, 8) gru(4, bidirectional: 2) dense(data.classes)", "");
    // The checker's own type check, from the catalogue's signature.
    assert_eq!(code, "type_mismatch");
    assert!(msg.contains("expected a bool"), "{msg}");
    let (code, msg, help) = error("reshape(8, 8) lstm(4, direction: 2) dense(data.classes)", "");
    assert_eq!(code, "bad_arguments");
    assert!(msg.contains("no argument `direction`"), "{msg}");
    assert!(help.contains("did you mean `bidirectional`"), "{help}");
    // The output width is checked through the layer: `sequence` is no flat output.
    let (code, msg, _) = error("reshape(8, 8) lstm(10, return: sequence)", "");
    assert_eq!(code, "output_width");
    assert!(msg.contains("[8, 10]"), "{msg}");
    // Over the whole space: the point where the sequence is flattened first is named.
    let (code, msg, _) =
        error("match k { a => { reshape(8, 8) } b => { flatten } } lstm(4) dense(data.classes)", "k: in {a, b}");
    assert_eq!(code, "shape_error");
    assert!(msg.contains("needs a sequence"), "{msg}");
    let c = compile("match k { a => { reshape(8, 8) } b => { flatten } } lstm(4) dense(data.classes)", "k: in {a, b}");
    let rendered = format!("{:?}", c.diagnostics);
    assert!(rendered.contains("k = b"), "{rendered}");
}

const CORPUS_GOOD: [&str; 5] =
    ["good fun film", "a good story", "great good acting", "fun and great", "good good good"];
const CORPUS_BAD: [&str; 5] = ["bad dull film", "a bad story", "awful bad acting", "dull and awful", "bad bad"];

#[test]
fn a_recurrent_text_model_runs_averages_saves_and_evaluates() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let mut csv = String::from("review,label\n");
    for i in 0..30 {
        csv.push_str(&format!("\"{} {}\",pos\n", CORPUS_GOOD[i % 5], i % 7));
        csv.push_str(&format!("\"{} {}\",neg\n", CORPUS_BAD[i % 5], i % 7));
    }
    write(dir, "reviews.csv", &csv);
    let spec = "experiment rnn {
  data = text(\"reviews.csv\", text: \"review\", target: \"label\", tokenizer: word, max_len: 8, seed: 2)
  space { cell: in {lstm, gru}  lr: in {0.02, 0.05} }
  model {
    embedding(data.vocab, 8)
    match cell {
      lstm => { lstm(8, bidirectional: true, return: sequence) global_avgpool }
      gru => { gru(8) }
    }
    dense(data.classes)
  }
  train { optimizer = adam(lr)  epochs = 12  batch = 8  seed = 1 }
  objective { maximize accuracy }
  search { strategy = grid  trials = 4  seed = 1 }
  average { soup(uniform, top: 2)  swa(last: 3) }
}
";
    let file = write(dir, "rnn.bma", spec);
    let out = dir.join("out");
    let check = bma().arg("check").arg(&file).output().unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let r = bma().arg("run").arg(&file).arg("--out").arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    let res = results(&out);
    let trials = res["trials"].as_array().unwrap();
    assert!(trials.iter().all(|t| t["state"] == "complete"), "{trials:#?}");
    // Both cells learn the good/bad words.
    let best = res["best"]["test"]["accuracy"].as_f64().unwrap();
    assert!(best >= 0.8, "{res:#}");
    let final_test = res["final"]["final_test"]["accuracy"].as_f64().unwrap();
    assert!(final_test.is_finite(), "{res:#}");
    // The saved final model (the soup) reloads and gives the recorded numbers.
    let e = bma().arg("eval").arg(&out).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let text = String::from_utf8_lossy(&e.stdout).to_string();
    let printed = |metric: &str| -> f64 {
        text.lines().find_map(|l| l.trim().strip_prefix(metric).and_then(|v| v.trim().parse().ok())).unwrap()
    };
    assert!((printed("accuracy") - final_test).abs() < 5e-5, "{text} vs {final_test}");
    let e = bma().arg("eval").arg(&out).args(["--model", "best"]).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let text = String::from_utf8_lossy(&e.stdout).to_string();
    let acc = text.lines().find_map(|l| l.trim().strip_prefix("accuracy").and_then(|v| v.trim().parse::<f64>().ok()));
    assert!((acc.unwrap() - best).abs() < 5e-5, "{text}");
}

#[test]
fn trained_weights_are_the_counted_parameters_under_their_names_and_average() {
    for (model, names) in [
        ("reshape(8, 8) lstm(6) dense(data.classes)", vec!["lstm_1.weight_ih", "lstm_1.weight_hh", "lstm_1.bias"]),
        (
            "reshape(8, 8) gru(5, bidirectional: true, return: sequence) global_avgpool dense(data.classes)",
            vec![
                "gru_1.weight_ih",
                "gru_1.weight_hh",
                "gru_1.bias_ih",
                "gru_1.bias_hh",
                "gru_1.weight_ih_reverse",
                "gru_1.weight_hh_reverse",
                "gru_1.bias_ih_reverse",
                "gru_1.bias_hh_reverse",
            ],
        ),
    ] {
        let c = compile(model, "");
        assert!(!c.has_errors(), "{:#?}", c.diagnostics);
        let exp = &c.program.experiments[0];
        let (sub, point) = bma::pins::expand_with_pins(&c, exp, &BTreeMap::new()).unwrap();
        let env = bma::ir::PointEnv { point: &point, fns: &c.program.fns, data: None };
        let value = bma::ir::eval(&exp.data.as_ref().unwrap().value, &env).unwrap();
        let data = bma::data::load(&value, std::path::Path::new("/")).unwrap();
        let mut cfg = bma::train::TrainConfig::from_experiment(&c.program, exp, &point, &data.info, 1).unwrap();
        cfg.epochs = 2;
        let fit = |seed: u64, cfg: &mut bma::train::TrainConfig| {
            cfg.seed = seed;
            let out =
                bma::train::fit(bma::train::DeviceKind::Cpu, &sub, cfg, &data, |_, _| bma::train::Control::Continue);
            out.model.unwrap()
        };
        let a = fit(1, &mut cfg);
        assert_eq!(a.param_count() as u64, sub.params, "{model}");
        let tensors = a.tensors();
        for n in &names {
            assert!(
                tensors.iter().any(|t| t.0 == *n),
                "{model}: no {n} in {:?}",
                tensors.iter().map(|t| &t.0).collect::<Vec<_>>()
            );
        }
        let rec: usize = tensors.iter().filter(|t| names.contains(&t.0.as_str())).map(|t| t.2.len()).sum();
        let counted: u64 =
            sub.layers().filter(|l| l.name.starts_with("lstm") || l.name.starts_with("gru")).map(|l| l.params).sum();
        assert_eq!(rec as u64, counted, "{model}");
        // A soup of two trainings: the mean of the tensors loads and evaluates.
        let b = fit(2, &mut cfg);
        let mean: bma::train::Tensors = tensors
            .iter()
            .zip(b.tensors())
            .map(|((n, s, x), (_, _, y))| {
                (n.clone(), s.clone(), x.iter().zip(&y).map(|(p, q)| 0.5 * (p + q)).collect())
            })
            .collect();
        let soup = a.with_tensors(&mean).unwrap();
        assert_eq!(soup.tensors(), mean);
        let m = soup.evaluate(&data.test, &data.info).unwrap();
        assert!(m["accuracy"].is_finite() && m["loss"].is_finite(), "{m:?}");
        // A tensor of the wrong shape is refused with its name, not loaded.
        let mut bad = mean.clone();
        let i = bad.iter().position(|t| t.0 == names[1]).unwrap();
        bad[i].1 = vec![1, bad[i].2.len()];
        let e = a.with_tensors(&bad).unwrap_err();
        assert!(e.contains(names[1]), "{e}");
    }
}
