use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::ir::{CallValue, Symbol};

#[path = "../../tests/shared/text_fixtures.rs"]
mod fixtures;
use fixtures::{sym, text_call, tmp};

fn spec_of(kind: Kind, vocab: usize, max_len: usize) -> Spec {
    Spec {
        path: PathBuf::from("x.csv"),
        text: "t".into(),
        target: "y".into(),
        kind,
        vocab,
        max_len,
        lowercase: true,
        ngrams: 1,
        skip_bad: false,
    }
}

#[test]
fn words_split_on_spaces_and_punctuation_keeping_inner_apostrophes() {
    assert_eq!(words("Don't stop, it's GOOD!  'ok'"), vec!["Don't", "stop", ",", "it's", "GOOD", "!", "'", "ok", "'"]);
    assert_eq!(words("   "), Vec::<&str>::new());
    assert_eq!(words("naïve café 42x"), vec!["naïve", "café", "42x"]);
}

#[test]
fn word_vocabulary_is_the_most_frequent_train_words_then_unknown_and_padding() {
    let spec = spec_of(Kind::Word, 2 + 3, 6);
    // the: 3, cat: 2, a: 2, dog: 1, sat: 1 → top 3 by count, ties alphabetically: the, a, cat.
    let t = Tokenizer::fit(&spec, &["The cat sat", "the cat", "a dog", "a THE"]);
    assert_eq!(t.tokens, vec!["the", "a", "cat"]);
    // the=2, a=3, cat=4; dog and the test-only word "zebra" are unknown (1); padding 0.
    assert_eq!(t.encode_all(&["a cat zebra the dog"]), vec![3.0, 4.0, 1.0, 2.0, 1.0, 0.0]);
    // Cut at max_len: the first 6 tokens are kept.
    assert_eq!(t.encode_all(&["the the the the the the a"]), vec![2.0; 6]);
}

#[test]
fn word_ngrams_follow_the_word_they_end_at() {
    assert_eq!(with_ngrams(&["a", "b", "c"], 1), vec!["a", "b", "c"]);
    assert_eq!(with_ngrams(&["a", "b", "c"], 2), vec!["a", "b", "a b", "c", "b c"]);
    assert_eq!(with_ngrams(&["a", "b", "c"], 3), vec!["a", "b", "a b", "c", "b c", "a b c"]);
    assert_eq!(with_ngrams(&["a"], 3), vec!["a"]);
    assert!(with_ngrams(&[], 2).is_empty());
}

#[test]
fn word_bigrams_share_the_train_vocabulary_and_unknown_bigrams_are_left_out() {
    let spec = Spec { ngrams: 2, ..spec_of(Kind::Word, 2 + 4, 6) };
    // Counts: not 3, good 2, "not good" 2, then 1 each: bad, film, "good film", "not bad".
    // Top 4, ties alphabetically: not, good, "not good", bad.
    let t = Tokenizer::fit(&spec, &["Not good", "not GOOD film", "not bad"]);
    assert_eq!(t.tokens, vec!["not", "good", "not good", "bad"]);
    assert_eq!(t.ngrams, 2);
    // not=2, good=3, "not good"=4, bad=5.
    assert_eq!(t.encode_all(&["not good"]), vec![2.0, 3.0, 4.0, 0.0, 0.0, 0.0]);
    // "bad not" is not in the vocabulary: left out.
    assert_eq!(t.encode_all(&["bad not good"]), vec![5.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
    // "zebra" is an unknown word (1); "zebra not" and "not bad" (cut from the top 4) are left out.
    assert_eq!(t.encode_all(&["zebra not bad"]), vec![1.0, 2.0, 5.0, 0.0, 0.0, 0.0]);
    // Cut at max_len after the n-grams are interleaved: the leading words keep theirs.
    assert_eq!(t.encode_all(&["not good not good not good"]), vec![2.0, 3.0, 4.0, 2.0, 3.0, 4.0]);
    // Words only (ngrams 1) never drop a token: an unknown word is 1.
    let w = Tokenizer::fit(&spec_of(Kind::Word, 6, 4), &["Not good", "not GOOD film", "not bad"]);
    assert!(w.tokens.iter().all(|t| !t.contains(' ')), "{:?}", w.tokens);
}

#[test]
fn char_tokenizer_counts_characters_and_keeps_one_space_token() {
    let mut spec = spec_of(Kind::Char, 2 + 3, 5);
    spec.lowercase = false;
    let t = Tokenizer::fit(&spec, &["aab", "a\tb"]);
    // a: 3, b: 2, ' ' (the tab): 1.
    assert_eq!(t.tokens, vec!["a", "b", " "]);
    assert_eq!(t.encode_all(&["b a\nA"]), vec![3.0, 4.0, 2.0, 4.0, 1.0]);
}

/// Sennrich et al.'s example, by hand: words low ×5, lower ×2, newest ×6, widest ×3.
#[test]
fn bpe_learns_the_merges_of_the_worked_example_and_segments_with_them() {
    let text = "low ".repeat(5) + &"lower ".repeat(2) + &"newest ".repeat(6) + &"widest ".repeat(3);
    // The base symbols: l o w</w> w e r</w> n s t</w> i d: count them: 11 kinds.
    let base = 11;
    let spec = spec_of(Kind::Bpe, 2 + base + 4, 8);
    let t = Tokenizer::fit(&spec, &[text.as_str()]);
    // Pairs: (e,s) 9, (s,t</w>) 9, (w,e) 8, (l,o) 7, (n,e) 6, (e,w) 6, ... → (e,s) first
    // (a tie broken by the smaller pair), then (es,t</w>) 9; (w,e) falls to 2 (lower), so
    // (l,o) 7; then (n,e), (e,w), (w,est</w>) tie at 6 and ("e","w") is the smallest.
    let merges: Vec<(&str, &str)> = t.merges.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(merges, vec![("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w")]);
    assert_eq!(t.tokens.len(), base + 4);
    assert_eq!(&t.tokens[base..], &["es", "est</w>", "lo", "ew"]);
    let mut cache = HashMap::new();
    // "lowest": l o w e s t</w> → (e,s) → es; (es,t</w>) → est</w>; (l,o) → lo; no (e,w) left.
    assert_eq!(t.pieces("lowest", &mut cache), vec!["lo", "w", "est</w>"]);
    // A character never seen in train is unknown.
    let ids = t.encode_all(&["lowest z"]);
    let id = |s: &str| t.tokens.iter().position(|x| x == s).map(|i| i as f32 + 2.0).expect("in vocab");
    assert_eq!(ids, vec![id("lo"), id("w"), id("est</w>"), 1.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn bpe_stops_when_no_pair_occurs_twice() {
    let spec = spec_of(Kind::Bpe, 1000, 4);
    let t = Tokenizer::fit(&spec, &["ab cd"]);
    assert!(t.merges.is_empty(), "{:?}", t.merges);
    assert_eq!(t.tokens.len(), 4);
}

#[test]
fn the_vocabulary_is_fitted_on_the_train_split_only() {
    // 30 reviews; the word "zebra" appears in exactly one. Whichever split it lands in,
    // it has an id only if that split is train.
    let mut csv = String::from("review,label\n");
    for i in 0..30 {
        let extra = if i == 7 { " zebra" } else { "" };
        csv.push_str(&format!("\"good film {i}{extra}\",{}\n", if i % 2 == 0 { "pos" } else { "neg" }));
    }
    let p = tmp("train_only.csv", csv.as_bytes());
    let call = text_call(&p, vec![("max_len", Value::Int(5))]);
    let data = load(&call, Path::new("/"), None, [None, None], |y, info| {
        super::super::split_indices(y, info, [0.6, 0.2, 0.2], 3)
    })
    .expect("loads");
    let t = data.tokenizer.as_ref().expect("tokenizer");
    let in_train = data.train.x.chunks(5).any(|row| row.len() == 5 && row[3] != 0.0);
    assert_eq!(t.tokens.iter().any(|w| w == "zebra"), in_train, "zebra is in the vocabulary iff a train row has it");
    // Rows holding "zebra" outside train encode it as unknown.
    for part in [&data.valid, &data.test] {
        for row in part.x.chunks(5) {
            if row[3] != 0.0 {
                assert_eq!(row[3], 1.0, "a word only in valid/test is unknown");
            }
        }
    }
    // No standardisation: ids are whole numbers.
    assert!(data.train.x.iter().all(|v| v.fract() == 0.0 && *v >= 0.0));
    assert_eq!(data.info.shape, vec![5]);
    assert_eq!(data.info.vocab, Some(Kind::Word.default_vocab()));
}

#[test]
fn bad_arguments_name_the_argument() {
    let p = Path::new("/x.csv");
    let err = |extra: Vec<(&str, Value)>| spec(&text_call(p, extra), Path::new("/")).expect_err("refused");
    assert_eq!(err(vec![("vocab", Value::Int(2))]).arg, "vocab");
    assert_eq!(err(vec![("max_len", Value::Int(0))]).arg, "max_len");
    assert_eq!(err(vec![("tokenizer", sym("sentencepiece"))]).arg, "tokenizer");
    assert_eq!(err(vec![("lowercase", Value::Int(1))]).arg, "lowercase");
    let bpe = Value::Call(CallValue { name: "bpe".into(), args: vec![(Some("vocab".into()), Value::Int(30))] });
    assert_eq!(err(vec![("tokenizer", bpe), ("vocab", Value::Int(40))]).arg, "vocab");
    let word = |k: &str, v: Value| Value::Call(CallValue { name: "word".into(), args: vec![(Some(k.into()), v)] });
    for n in [0, 4] {
        let e = err(vec![("tokenizer", word("ngrams", Value::Int(n)))]);
        assert_eq!(e.arg, "tokenizer");
        assert!(e.message.contains("from 1 to 3"), "{}", e.message);
    }
    let e = err(vec![("tokenizer", word("n", Value::Int(2)))]);
    assert!(e.message.contains("`word` has no argument `n`"), "{}", e.message);
    let ok = spec(&text_call(p, vec![("tokenizer", word("ngrams", Value::Int(2)))]), Path::new("/")).expect("spec");
    assert_eq!((ok.kind, ok.ngrams, ok.vocab), (Kind::Word, 2, Kind::Word.default_vocab()));
    assert_eq!(spec(&text_call(p, vec![("tokenizer", sym("word"))]), Path::new("/")).expect("spec").ngrams, 1);
}

#[test]
fn a_saved_tokenizer_is_used_as_is() {
    let csv = "review,label\ngood good,pos\nbad,neg\ngood,pos\nbad bad,neg\ngood fun,pos\nbad dull,neg\n";
    let p = tmp("saved.csv", csv.as_bytes());
    let call = text_call(&p, vec![("max_len", Value::Int(3))]);
    let mut saved = Tokenizer::fit(&spec(&call, Path::new("/")).expect("spec"), &["unrelated words only"]);
    saved.tokens = vec!["bad".into()];
    let data = load(&call, Path::new("/"), Some(&saved), [None, None], |y, info| {
        super::super::split_indices(y, info, [0.5, 0.25, 0.25], 0)
    })
    .expect("loads");
    // Only "bad" (id 2) is known: every other token is unknown.
    assert!(data.train.x.iter().chain(&data.test.x).all(|v| [0.0, 1.0, 2.0].contains(v)));
    assert_eq!(data.tokenizer.as_ref(), Some(&saved));
    saved.max_len = 4;
    let e = load(&call, Path::new("/"), Some(&saved), [None, None], |y, info| {
        super::super::split_indices(y, info, [0.5, 0.25, 0.25], 0)
    })
    .expect_err("a tokenizer of another length is refused");
    assert!(e.to_string().contains("max_len"), "{e}");
}

#[test]
fn a_saved_bigram_tokenizer_is_reused_and_one_of_other_ngrams_refused() {
    let csv = "review,label
not good,neg
very good,pos
not bad,pos
very bad,neg
good,pos
bad,neg
";
    let p = tmp("saved-ngrams.csv", csv.as_bytes());
    let word2 = Value::Call(CallValue { name: "word".into(), args: vec![(Some("ngrams".into()), Value::Int(2))] });
    let call = text_call(&p, vec![("max_len", Value::Int(4)), ("tokenizer", word2)]);
    let split = |y: &[f32], info: &DataInfo| super::super::split_indices(y, info, [0.5, 0.25, 0.25], 0);
    // A model's tokenizer fitted elsewhere: every split is encoded with it, not refitted.
    let saved = Tokenizer::fit(&spec(&call, Path::new("/")).expect("spec"), &["very bad", "very bad"]);
    assert_eq!(saved.tokens, vec!["bad", "very", "very bad"]);
    let data = load(&call, Path::new("/"), Some(&saved), [None, None], split).expect("loads");
    assert_eq!(data.tokenizer.as_ref(), Some(&saved));
    let all: Vec<f32> = [&data.train, &data.valid, &data.test].iter().flat_map(|s| s.x.clone()).collect();
    let rows: Vec<&[f32]> = all.chunks(4).collect();
    assert!(rows.contains(&&[3.0, 2.0, 4.0, 0.0][..]), "\"very bad\" is very, bad, very bad: {rows:?}");
    assert!(rows.contains(&&[1.0, 2.0, 0.0, 0.0][..]), "\"not bad\": not unknown, the bigram left out: {rows:?}");
    // Fitted on train: the vocabulary has the train bigrams.
    let fitted = load(&call, Path::new("/"), None, [None, None], split).expect("loads");
    assert!(fitted.tokenizer.as_ref().expect("tokenizer").tokens.iter().any(|t| t.contains(' ')));
    let mut other = saved.clone();
    other.ngrams = 1;
    let e = load(&call, Path::new("/"), Some(&other), [None, None], split)
        .expect_err("a tokenizer of other n-grams is refused");
    assert!(e.to_string().contains("ngrams"), "{e}");
    // A tokenizer saved before n-grams existed reads as words only.
    let mut json = serde_json::to_value(&saved).expect("json");
    json.as_object_mut().expect("object").remove("ngrams");
    let old: Tokenizer = serde_json::from_value(json).expect("reads");
    assert_eq!(old.ngrams, 1);
}

/// `bench/text/split.py` re-implements the split so the TF-IDF baseline is scored on the
/// very samples bma tests on; `python3 bench/text/split.py --selftest` prints these.
#[test]
fn split_indices_match_the_python_replica() {
    let labels = "b a b a a b a b b b a a b a b b a b a a";
    let y: Vec<f32> = labels.split(' ').map(|l| if l == "a" { 0.0 } else { 1.0 }).collect();
    let info = DataInfo { name: "t".into(), shape: vec![1], classes: 2, task: Task::Classification, vocab: None };
    let [tr, va, te] = super::super::split_indices(&y, &info, [0.6, 0.2, 0.2], 3).expect("splits");
    assert_eq!(tr, vec![7, 17, 19, 12, 8, 6, 16, 4, 3, 10, 15, 14]);
    assert_eq!(va, vec![2, 18, 5, 13]);
    assert_eq!(te, vec![0, 1, 11, 9]);
    let mut r = crate::rng::Rng::new(7);
    assert_eq!(r.next_u64(), 1021219803524665661);
    assert_eq!(crate::rng::Rng::new(7).below(1000), 55);
}

#[test]
fn the_checker_reads_a_files_labels_once_until_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels-once.csv");
    std::fs::write(&path, "t,y\nhello there,a\ngood day,b\nhi,a\n").unwrap();
    let spec = |vocab: usize, max_len: usize| Spec { path: path.clone(), ..spec_of(Kind::Word, vocab, max_len) };
    let first = read_labels(&spec(50, 8)).unwrap();
    assert_eq!(
        (first.labels.clone(), first.lines.clone(), first.texts.len()),
        (vec!["a".into(), "b".into(), "a".into()], vec![2, 3, 4], 3)
    );
    assert_eq!(classes(&first), vec!["a", "b"]);
    // Another searched setting of the same file and columns: the same rows, not read again.
    let again = read_labels(&spec(400, 64)).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "read again for another vocab and max_len");
    // Another target column is another read.
    let other = read_labels(&Spec { target: "t".into(), ..spec(50, 8) }).unwrap();
    assert_eq!(classes(&other).len(), 3);
    // The file rewritten (another size): read again, with its new classes.
    std::fs::write(&path, "t,y\nhello there,a\ngood day,b\nhi,c\nmore,c\n").unwrap();
    let changed = read_labels(&spec(50, 8)).unwrap();
    assert_eq!(classes(&changed), vec!["a", "b", "c"]);
    // What the checker predicts equals what the loader's reader gives.
    assert_eq!(info(&spec(50, 8), &changed).unwrap(), describe(&spec(50, 8)).unwrap());
}
