//! Fixture writers of the text source's tests, shared by its unit tests
//! (`src/data/text_tests.rs`) and its integration tests (`tests/data_text.rs`): each
//! includes this file with `#[path]`, after bringing `CallValue`, `Symbol` and `Value` into
//! scope (from `crate::ir` or `bma::ir`), so the one file serves both crates.
#![allow(dead_code)] // each includer uses its own subset

use std::path::{Path, PathBuf};

use super::{CallValue, Symbol, Value};

/// Writes `body` to `name` in this process's temporary folder; gives the path.
pub fn tmp(name: &str, body: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bma-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p
}

pub fn sym(s: &str) -> Value {
    Value::Sym(Symbol { sym: s.to_string() })
}

/// `word(ngrams: n)`.
pub fn word_ngrams(n: i64) -> Value {
    Value::Call(CallValue { name: "word".into(), args: vec![(Some("ngrams".into()), Value::Int(n))] })
}

/// `text(path, text: "review", target: "label", extra...)`.
pub fn text_call(path: &Path, extra: Vec<(&str, Value)>) -> CallValue {
    let mut args = vec![
        (None, Value::Str(path.display().to_string())),
        (Some("text".to_string()), Value::Str("review".into())),
        (Some("target".to_string()), Value::Str("label".into())),
    ];
    args.extend(extra.into_iter().map(|(k, v)| (Some(k.to_string()), v)));
    CallValue { name: "text".into(), args }
}

/// A `review,label` CSV of `n` rows: `pos` rows praise, `neg` rows complain, each with its
/// own number so every text differs; row `i` is on line `i + 2`.
pub fn reviews_csv(n: usize) -> String {
    let mut csv = String::from("review,label\n");
    for i in 0..n {
        let (words, label) = if i % 2 == 0 { ("a good fine film", "pos") } else { ("a dull bad film", "neg") };
        csv.push_str(&format!("\"{words} {i}\",{label}\n"));
    }
    csv
}
