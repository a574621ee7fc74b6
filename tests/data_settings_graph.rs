//! `bma graph --set` and `bma space` when the data reads a searched parameter
//! (`text(..., max_len: len)` with `len` in the space), through the real binary on files
//! this test writes: the graph of a pinned setting carries that setting's shapes and
//! parameter count, not the first setting's; `bma space` lists the data settings with
//! their input shapes; a setting beyond the ones the checker described is refused by name.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{bma, stderr, temp_dir, write};

/// 40 short reviews (8 distinct words), labelled by their first word.
fn reviews(dir: &Path) {
    let filler = ["the", "movie", "was", "a", "plot", "and"];
    let mut text = String::from("text,label\n");
    for i in 0..40 {
        let (word, label) = if i % 2 == 1 { ("good", "pos") } else { ("bad", "neg") };
        let mut words = vec![word];
        words.extend(filler.iter().take((i * 5) % 7));
        text.push_str(&format!("{},{label}\n", words.join(" ")));
    }
    write(dir, "reviews.csv", &text);
}

/// A study whose data reads `len` (domain `lens`); the conv1d's output and the flatten's
/// width follow the sequence length.
fn study(dir: &Path, lens: &str) -> std::path::PathBuf {
    reviews(dir);
    let text = format!(
        "experiment reviews {{
  data = text(\"reviews.csv\", text: \"text\", target: \"label\", tokenizer: word, vocab: 40, max_len: len,
              split: [0.5, 0.25, 0.25], seed: 3)
  space {{ len: int in {lens}  width: int in {{2, 4}} }}
  model {{ embedding(data.vocab, width) conv1d(3, kernel: 3, padding: valid) flatten dense(data.classes) }}
  train {{ optimizer = adam(0.05)  epochs = 1  batch = 8 }}
  objective {{ maximize accuracy }}
}}
"
    );
    write(dir, "reviews.bma", &text)
}

fn graph(file: &Path, set: &[&str]) -> std::process::Output {
    let mut cmd = bma();
    cmd.arg("graph").arg(file);
    for s in set {
        cmd.args(["--set", s]);
    }
    cmd.output().unwrap()
}

/// The `params N` of a DOT graph's label.
fn params(dot: &str) -> u64 {
    let tail = dot.split("label=\"params ").nth(1).unwrap();
    tail.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn graph_with_a_pinned_data_setting_shows_that_settings_shapes() {
    let dir = temp_dir();
    let file = study(dir.path(), "{8, 16}");
    let check = bma().arg("check").arg(&file).output().unwrap();
    assert!(check.status.success(), "{}", stderr(&check));

    let short = graph(&file, &["len=8"]);
    assert!(short.status.success(), "{}", stderr(&short));
    let short = String::from_utf8(short.stdout).unwrap();
    let long = graph(&file, &["len=16"]);
    assert!(long.status.success(), "{}", stderr(&long));
    let long = String::from_utf8(long.stdout).unwrap();
    // The unpinned graph is the first setting's.
    let first = String::from_utf8(graph(&file, &[]).stdout).unwrap();
    assert_eq!(first, short);

    // len = 8: the conv1d gives [6, 3], flattened to 18; len = 16: [14, 3] and 42.
    assert!(short.contains("\\n[6, 3]\"") && short.contains("\\n[18]\""), "{short}");
    assert!(long.contains("\\n[14, 3]\"") && long.contains("\\n[42]\""), "{long}");
    assert!(!long.contains("[6, 3]") && !long.contains("[18]"), "the first setting's shapes: {long}");
    assert!(long.contains("len=16"), "the title names the setting: {long}");
    // The dense layer's weights follow the flatten: 24 more inputs, 2 classes.
    assert_eq!(params(&long) - params(&short), 24 * 2, "{short}\n{long}");
    // Another parameter pinned beside it keeps the setting.
    let both = String::from_utf8(graph(&file, &["len=16", "width=4"]).stdout).unwrap();
    assert!(both.contains("\\n[14, 3]\"") && both.contains("\\n[16, 4]\""), "{both}");
}

#[test]
fn space_lists_the_data_settings_with_their_input_shapes() {
    let dir = temp_dir();
    let file = study(dir.path(), "{8, 16}");
    let o = bma().arg("space").arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("settings  2 data settings"), "{text}");
    let line = |setting: &str| text.lines().find(|l| l.trim_start().starts_with(setting)).map(str::to_string);
    let eight = line("len = 8 ").unwrap_or_else(|| panic!("no line for len = 8: {text}"));
    let sixteen = line("len = 16").unwrap_or_else(|| panic!("no line for len = 16: {text}"));
    assert!(eight.contains("input [8]"), "{eight}");
    assert!(sixteen.contains("input [16]"), "{sixteen}");
    assert!(eight.contains("vocab ") && sixteen.contains("vocab "), "{text}");
}

#[test]
fn a_data_setting_the_checker_did_not_describe_is_refused_by_name() {
    let dir = temp_dir();
    // 37 settings; the checker describes 16 (the corners 4 and 40, then 5, 6, ...).
    let file = study(dir.path(), "4..=40");
    let space = bma().arg("space").arg(&file).output().unwrap();
    let text = String::from_utf8(space.stdout).unwrap();
    assert!(text.contains("37 data settings, 16 described"), "{text}");

    let described = graph(&file, &["len=40"]);
    assert!(described.status.success(), "{}", stderr(&described));
    assert!(String::from_utf8(described.stdout).unwrap().contains("\\n[38, 3]\""));

    let o = graph(&file, &["len=30"]);
    assert!(!o.status.success(), "len = 30 was not described; its shapes are unknown");
    let err = stderr(&o);
    assert!(err.contains("len = 30") && err.contains("not among the 16"), "{err}");
    assert!(o.stdout.is_empty(), "no graph with another setting's shapes");
}
