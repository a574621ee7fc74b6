//! The text source seen from outside `data`: the checker (`check::data::describe`) and the
//! loader (`data::load`) agree on what a `text(...)` value is, and refuse the same bad files
//! and arguments, each naming the file (and line). Fixtures are written by the tests.

use std::path::Path;

use bma::check::data::describe;
use bma::data::load;
use bma::data::text_source::spec;
use bma::ir::{CallValue, Symbol, Value};
use bma::source::Span;

#[path = "shared/text_fixtures.rs"]
mod fixtures;
use fixtures::{sym, text_call, tmp, word_ngrams};

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

fn check(value: &Value) -> Result<bma::ir::DataInfo, bma::diagnostic::Diagnostic> {
    describe(value, Span::default(), &|_| Span::default(), Path::new("/"))
}

#[test]
fn a_fixed_test_text_is_tokenized_with_the_vocabulary_fitted_on_train_alone() {
    let train = tmp("fixed-train.csv", fixtures::reviews_csv(40).as_bytes());
    // The test file's own words: `zebra` is nowhere in train, `good` is.
    let test = tmp("fixed-test.csv", b"review,label\ngood zebra,pos\nbad zebra,neg\nzebra,neg\n");
    let own = Value::Call(text_call(&test, vec![]));
    let extra = |more: Vec<(&str, Value)>| {
        let mut v = vec![("max_len", Value::Int(6)), ("test", own.clone()), ("seed", Value::Int(2))];
        v.extend(more);
        Value::Call(text_call(&train, v))
    };
    for more in
        [vec![], vec![("tokenizer", sym("bpe")), ("vocab", Value::Int(60))], vec![("split", floats(&[0.8, 0.2]))]]
    {
        let value = extra(more);
        let data = load(&value, Path::new("/")).expect("loads");
        assert_eq!(check(&value).expect("checks"), data.info);
        // The test split is the test file, whole and in order; train and valid are all of the train file.
        assert_eq!(data.test.n, 3);
        assert_eq!(data.test.y, vec![1.0, 0.0, 0.0], "classes `neg`, `pos` are the training source's");
        assert_eq!(data.train.n + data.valid.n, 40);
        let tokenizer = data.tokenizer.as_ref().expect("tokenizer");
        assert!(!tokenizer.tokens.iter().any(|t| t.contains("zebra")), "fitted on train alone");
    }
    // Word tokens: `zebra` is unknown (1) in the test rows, `good` is known.
    let data = load(&extra(vec![]), Path::new("/")).expect("loads");
    let good = 2 + data.tokenizer.as_ref().expect("tokenizer").tokens.iter().position(|t| t == "good").expect("good");
    assert_eq!(&data.test.x[..3], &[good as f32, 1.0, 0.0]);
    assert_eq!(&data.test.x[12..14], &[1.0, 0.0]);
    // `valid:` works the same way, and with both the train file is all train.
    let both = Value::Call(text_call(&train, vec![("test", own.clone()), ("valid", own.clone())]));
    let data = load(&both, Path::new("/")).expect("loads");
    assert_eq!((data.train.n, data.valid.n, data.test.n), (40, 3, 3));
    assert_eq!(check(&both).expect("checks"), data.info);
}

#[test]
fn a_fixed_test_text_must_agree_with_the_training_source() {
    let train = tmp("agree-train.csv", fixtures::reviews_csv(20).as_bytes());
    let with_test = |own: Value, more: Vec<(&str, Value)>| {
        let mut v = vec![("test", own)];
        v.extend(more);
        Value::Call(text_call(&train, v))
    };
    let refused = |value: &Value, needles: &[&str]| {
        let loader = load(value, Path::new("/")).expect_err("the loader refuses").to_string();
        let checker = check(value).expect_err("the checker refuses").message;
        for n in needles {
            assert!(loader.contains(n), "loader: `{n}` not in {loader}");
            assert!(checker.contains(n), "checker: `{n}` not in {checker}");
        }
    };
    // A label the training classes lack, named with the file and line.
    let odd = tmp("agree-odd.csv", b"review,label\ngood,pos\nmeh,mixed\nbad,neg\n");
    refused(
        &with_test(Value::Call(text_call(&odd, vec![])), vec![]),
        &["agree-odd.csv:3:", "label `mixed` is not a class of the training source"],
    );
    // A tokenizer setting that differs from the training source's, named.
    let good = tmp("agree-good.csv", b"review,label\ngood,pos\nbad,neg\n");
    for (k, v, mine, theirs) in [
        ("max_len", Value::Int(9), "9", "128"),
        ("tokenizer", sym("char"), "char", "word"),
        ("vocab", Value::Int(50), "50", "20000"),
        ("lowercase", Value::Bool(false), "false", "true"),
    ] {
        let own = Value::Call(text_call(&good, vec![(k, v)]));
        refused(
            &with_test(own, vec![]),
            &[&format!("the `test:` source's `{k}` is {mine}, the training source's {theirs}")],
        );
    }
    // The same settings repeated are fine; so are other columns' names.
    let own = Value::Call(text_call(&good, vec![("max_len", Value::Int(16))]));
    let value = with_test(own, vec![("max_len", Value::Int(16))]);
    assert_eq!(load(&value, Path::new("/")).expect("loads").info, check(&value).expect("checks"));
    // A source of another kind, and one with a split of its own.
    refused(&with_test(Value::sym("iris"), vec![]), &["is a `text(...)` too"]);
    let split = Value::Call(text_call(&good, vec![("split", floats(&[0.5, 0.25, 0.25]))]));
    refused(&with_test(split, vec![]), &["the `test:` source takes no `split`"]);
    // Three fractions with a fixed test split.
    let own = Value::Call(text_call(&good, vec![]));
    refused(&with_test(own, vec![("split", floats(&[0.7, 0.15, 0.15]))]), &["`split` needs two fractions"]);
}

fn floats(v: &[f64]) -> Value {
    Value::List(v.iter().map(|x| Value::Float(*x)).collect())
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
