//! The text source seen from outside `data`: the checker (`check::data::describe`) and the
//! loader (`data::load`) agree on what a `text(...)` value is, and refuse the same bad files
//! and arguments, each naming the file (and line). Fixtures are written by the tests.

use std::path::{Path, PathBuf};

use bma::check::data::describe;
use bma::data::load;
use bma::data::text_source::spec;
use bma::ir::{CallValue, Symbol, Value};
use bma::source::Span;

fn tmp(name: &str, body: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bma-text-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p
}

fn sym(s: &str) -> Value {
    Value::Sym(Symbol { sym: s.to_string() })
}

fn word_ngrams(n: i64) -> Value {
    Value::Call(CallValue { name: "word".into(), args: vec![(Some("ngrams".into()), Value::Int(n))] })
}

fn text_call(path: &Path, extra: Vec<(&str, Value)>) -> CallValue {
    let mut args = vec![
        (None, Value::Str(path.display().to_string())),
        (Some("text".to_string()), Value::Str("review".into())),
        (Some("target".to_string()), Value::Str("label".into())),
    ];
    args.extend(extra.into_iter().map(|(k, v)| (Some(k.to_string()), v)));
    CallValue { name: "text".into(), args }
}

#[test]
fn loader_and_checker_agree_on_csv_and_jsonl() {
    let csv = "id,review,label\n1,\"A fine, fine film\",pos\n2,dull,neg\n3,awful plot,neg\n4,great!,pos\n";
    let p = tmp("agree.csv", csv.as_bytes());
    let jl = "{\"review\": \"A fine film\", \"label\": 1}\n\n{\"review\": \"dull\", \"label\": 0}\n\
              {\"review\": \"awful\", \"label\": 0, \"x\": null}\n";
    let q = tmp("agree.jsonl", jl.as_bytes());
    for (path, extra) in [
        (&p, vec![("tokenizer", sym("char")), ("max_len", Value::Int(16))]),
        (
            &q,
            vec![(
                "tokenizer",
                Value::Call(CallValue { name: "bpe".into(), args: vec![(Some("vocab".into()), Value::Int(50))] }),
            )],
        ),
        (&p, vec![("vocab", Value::Int(100)), ("lowercase", Value::Bool(false))]),
        (&q, vec![("tokenizer", word_ngrams(2)), ("vocab", Value::Int(12)), ("max_len", Value::Int(5))]),
        (&p, vec![("tokenizer", word_ngrams(3))]),
    ] {
        let call = text_call(path, extra);
        let value = Value::Call(call.clone());
        let loaded = load(&value, Path::new("/")).expect("loads");
        let checked = describe(&value, Span::default(), &|_| Span::default(), Path::new("/")).expect("checks");
        assert_eq!(loaded.info, checked, "{}", path.display());
        assert_eq!(loaded.train.x.len(), loaded.train.n * loaded.info.features());
        let max = loaded.train.x.iter().chain(&loaded.test.x).fold(0f32, |a, b| a.max(*b));
        assert!((max as usize) < checked.vocab.expect("vocab"), "every id fits the table");
    }
    let bpe = text_call(&q, vec![("tokenizer", sym("bpe")), ("vocab", Value::Int(40))]);
    assert_eq!(spec(&bpe, Path::new("/")).expect("spec").vocab, 40);
}

fn load_err(body: &[u8], name: &str, extra: Vec<(&str, Value)>) -> String {
    let p = tmp(name, body);
    let value = Value::Call(text_call(&p, extra));
    let loader = load(&value, Path::new("/")).expect_err("the loader refuses").to_string();
    let checker =
        describe(&value, Span::default(), &|_| Span::default(), Path::new("/")).expect_err("the checker refuses");
    assert!(checker.message.contains(name), "the checker names the file: {}", checker.message);
    assert!(loader.contains(name), "{loader}");
    loader
}

#[test]
fn bad_files_are_errors_naming_file_and_line() {
    let e = load_err(b"body,label\nnice,pos\nbad,neg\nok,pos\n", "nocol.csv", vec![]);
    assert!(e.contains("no column `review`"), "{e}");
    let e = load_err(b"review,label\nnice,pos\n\xff\xfe bad,neg\nok,pos\n", "latin.csv", vec![]);
    assert!(e.contains(":3:") && e.contains("not UTF-8"), "{e}");
    let e = load_err(b"review,label\nnice,pos\n\"  \",neg\nok,pos\n", "empty.csv", vec![]);
    assert!(e.contains(":3:") && e.contains("empty"), "{e}");
    let e = load_err(b"review,label\nnice,pos\nbad,\nok,neg\n", "nolabel.csv", vec![]);
    assert!(e.contains(":3:") && e.contains("target `label` is missing"), "{e}");
    let e = load_err(b"{\"review\": \"a\", \"label\": 1}\nnot json\n", "bad.jsonl", vec![]);
    assert!(e.contains(":2:") && e.contains("not JSON"), "{e}");
    let e = load_err(b"{\"review\": \"a\", \"label\": 1}\n[1, 2]\n", "array.jsonl", vec![]);
    assert!(e.contains(":2:") && e.contains("not a JSON object"), "{e}");
    let e = load_err(b"{\"review\": \"a\", \"label\": 1}\n{\"label\": 0}\n", "nofield.jsonl", vec![]);
    assert!(e.contains(":2:") && e.contains("no field `review`"), "{e}");
    let e = load_err(b"review,label\na,pos\nb,pos\nc,pos\n", "oneclass.csv", vec![]);
    assert!(e.contains("one class"), "{e}");
    // Two samples cannot be split (the loader says so; the checker, as for CSV, does not count).
    let p = tmp("toofew.csv", b"review,label\na,pos\nb,neg\n");
    let e = load(&Value::Call(text_call(&p, vec![])), Path::new("/")).expect_err("refused");
    assert!(e.to_string().contains("toofew.csv") && e.to_string().contains("at least 3"), "{e}");
}

#[test]
fn a_split_of_its_own_is_refused_by_checker_and_loader_alike() {
    let p = tmp("own-split.csv", b"review,label\nnice film,pos\nbad film,neg\nok film,pos\ndull film,neg\n");
    let own = Value::Call(text_call(&p, vec![]));
    let value = Value::Call(text_call(&p, vec![("test", own)]));
    let loader = load(&value, Path::new("/")).expect_err("the loader refuses").to_string();
    let checker =
        describe(&value, Span::default(), &|_| Span::default(), Path::new("/")).expect_err("the checker refuses");
    for said in [&loader, &checker.message] {
        assert!(said.contains("does not take a split's own source") && said.ends_with(": test"), "{said}");
    }
}

#[test]
fn ngrams_out_of_range_are_refused_by_checker_and_loader_alike() {
    let p = tmp("ngrams.csv", b"review,label\nnice film,pos\nbad film,neg\nok film,pos\ndull film,neg\n");
    for n in [0, 4] {
        let value = Value::Call(text_call(&p, vec![("tokenizer", word_ngrams(n))]));
        let loader = load(&value, Path::new("/")).expect_err("the loader refuses").to_string();
        let checker =
            describe(&value, Span::default(), &|_| Span::default(), Path::new("/")).expect_err("the checker refuses");
        for said in [&loader, &checker.message] {
            assert!(said.contains("`ngrams` of `word(ngrams: N)` must be an int from 1 to 3"), "{said}");
        }
    }
}
