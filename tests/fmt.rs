//! `bma::fmt::format` over every example, stdlib file and parsing fixture, plus the
//! same files with a comment squeezed into every gap between tokens: the output
//! parses to the same tree, keeps every comment in order, and is a fixed point.

mod common;

use std::path::{Path, PathBuf};

use bma::Source;
use bma::fmt::{comments, format, same_tree};
use bma::source::FileId;
use bma::syntax::parse;

/// Every `.bma` file of the project that parses, with its text.
fn corpus() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<_> = ["examples", "stdlib", "tests/fixtures"]
        .iter()
        .flat_map(|dir| common::bma_files(&root.join(dir)))
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .filter(|(_, t)| parse(FileId(0), t).is_ok())
        .collect();
    assert!(files.len() >= 60, "only {} parsing .bma files found", files.len());
    files
}

/// Formats `text` and checks the three invariants; gives the output.
fn check(name: &str, text: &str) -> String {
    let before = parse(FileId(0), text).unwrap_or_else(|d| panic!("{name} does not parse: {d:?}"));
    let out = format(&Source::new(name, text)).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let after = parse(FileId(0), &out).unwrap_or_else(|d| panic!("{name}: output does not parse: {d:?}\n{out}"));
    assert!(same_tree(&before, &after), "{name}: the tree changed\n--- in\n{text}\n--- out\n{out}");
    assert_eq!(comments(text), comments(&out), "{name}: comments lost or reordered\n{out}");
    let again = format(&Source::new(name, out.as_str())).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    assert_eq!(out, again, "{name}: formatting twice differs from once");
    assert!(out.is_empty() || (out.ends_with('\n') && !out.ends_with("\n\n")), "{name}: bad file end");
    assert!(out.lines().all(|l| l == l.trim_end()), "{name}: trailing whitespace\n{out}");
    out
}

#[test]
fn every_project_file_formats_stably_and_keeps_its_tree_and_comments() {
    for (path, text) in corpus() {
        check(&path.display().to_string(), &text);
    }
}

/// Byte offsets of whitespace that directly follows a token (not in a string or comment).
fn gaps(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b' ' | b'\n' | b'\t' if i > 0 && !b[i - 1].is_ascii_whitespace() => out.push(i),
            _ => {}
        }
        i += 1;
    }
    out
}

fn insert_all(text: &str, at: &[usize], comment: impl Fn(usize) -> String) -> String {
    let mut out = text.to_string();
    for (k, &i) in at.iter().enumerate().rev() {
        out.insert_str(i, &comment(k));
    }
    out
}

#[test]
fn a_block_comment_in_every_gap_is_kept() {
    let mut tried = 0;
    for (path, text) in corpus() {
        let variant = insert_all(&text, &gaps(&text), |k| format!("/*c{k}*/"));
        if parse(FileId(0), &variant).is_ok() {
            check(&format!("{} with block comments", path.display()), &variant);
            tried += 1;
        }
    }
    assert!(tried >= 50, "only {tried} files parse with inserted comments");
}

#[test]
fn a_line_comment_at_every_line_end_is_kept() {
    let mut tried = 0;
    for (path, text) in corpus() {
        let ends: Vec<usize> = gaps(&text).into_iter().filter(|&i| text.as_bytes()[i] == b'\n').collect();
        let variant = insert_all(&text, &ends, |k| format!(" // l{k}"));
        if parse(FileId(0), &variant).is_ok() {
            check(&format!("{} with line comments", path.display()), &variant);
            tried += 1;
        }
    }
    assert!(tried >= 50, "only {tried} files parse with inserted comments");
}

#[test]
fn a_messy_file_gets_the_canonical_layout() {
    let messy = "// header\nuse std::blocks::{dense_act,conv_bn}\nuse lib::blocks::{res}\n/// Doubles.\nfn twice(x:float)->float=x*2\nblock b(n:int=3){dense(n)   relu}\nexperiment e{data=digits(seed:1)\nspace{\n  /// The depth.\n  depth:int in 1..=3\n  learning_rate:float in 1e-4..0.1 log // lr\n\n\n\n  kind: in {a,b}\n  when kind==a{w:int in {8,16}}\n  let d=depth*2}\nmodel{repeat i in 0..=depth{dense(8)}\nif depth>1{relu}else{gelu}\nresidual{conv2d(8,kernel:3) batchnorm}\nparallel(concat){{relu}{gelu}}\nlet a=dense(4)\na->dense(data.classes)}\ntrain{epochs=3 batch=64 optimizer=adam(learning_rate)}\nobjective{maximize accuracy on valid require params<=60k}}\n";
    let expected = "// header
use std::blocks::{dense_act, conv_bn}
use lib::blocks::{res}

/// Doubles.
fn twice(x: float) -> float = x * 2

block b(n: int = 3) {
  dense(n)
  relu
}

experiment e {
  data = digits(seed: 1)

  space {
    /// The depth.
    depth:         int   in 1..=3
    learning_rate: float in 1e-4..0.1 log  // lr

    kind: in {a, b}
    when kind == a { w: int in {8, 16} }
    let d = depth * 2
  }

  model {
    repeat i in 0..=depth { dense(8) }
    if depth > 1 { relu } else { gelu }
    residual {
      conv2d(8, kernel: 3)
      batchnorm
    }
    parallel(concat) {
      { relu }
      { gelu }
    }
    let a = dense(4)
    a -> dense(data.classes)
  }

  train {
    epochs    = 3
    batch     = 64
    optimizer = adam(learning_rate)
  }

  objective {
    maximize accuracy on valid
    require params <= 60k
  }
}
";
    assert_eq!(check("messy", messy), expected);
}

#[test]
fn parentheses_are_kept_exactly_where_the_tree_needs_them() {
    let src = "fn f(a: float, b: float, c: float) -> float = ((a + b)) * c - (a - (b - c)) + -(a ^ 2)\nfn g(a: float) -> float = (-a) ^ 2 + 2 ^ 3 ^ a + (2 ^ 3) ^ a\nfn h(a: bool, b: bool) -> bool = not (a and b) or (not a) == b\n";
    let out = check("parens", src);
    assert_eq!(
        out,
        "fn f(a: float, b: float, c: float) -> float = (a + b) * c - (a - (b - c)) + -a ^ 2\n\nfn g(a: float) -> float = (-a) ^ 2 + 2 ^ 3 ^ a + (2 ^ 3) ^ a\n\nfn h(a: bool, b: bool) -> bool = not (a and b) or (not a) == b\n"
    );
}

#[test]
fn a_long_line_breaks_at_its_outermost_call_match_or_operator() {
    let src = "fn f(alpha: float, beta: float) -> float = (alpha - 5.1 / (4 * pi ^ 2) * beta ^ 2 + 5 / pi * alpha - 6) ^ 2 + 10 * (1 - 1 / (8 * pi)) * cos(alpha) - 10\nexperiment e {\n  data = csv(\"data/a_rather_long_file_name.csv\", target: \"progression\", task: regression, split: [0.7, 0.15, 0.15])\n  train { optimizer = match opt { adam => adam(learning_rate), sgd => sgd(learning_rate, momentum: momentum) } }\n}\n";
    let out = check("long", src);
    assert_eq!(
        out,
        "fn f(alpha: float, beta: float) -> float =
  (alpha - 5.1 / (4 * pi ^ 2) * beta ^ 2 + 5 / pi * alpha - 6) ^ 2
  + 10 * (1 - 1 / (8 * pi)) * cos(alpha)
  - 10

experiment e {
  data = csv(
    \"data/a_rather_long_file_name.csv\",
    target: \"progression\",
    task: regression,
    split: [0.7, 0.15, 0.15],
  )

  train {
    optimizer = match opt {
      adam => adam(learning_rate),
      sgd => sgd(learning_rate, momentum: momentum),
    }
  }
}
"
    );
}

#[test]
fn literals_keep_their_spelling() {
    let src =
        "experiment e {\n  search { time = 1.5min  trials = 1_000 limit = 60k lr = 3E-2 name = \"a\\\"b\\n\" }\n}\n";
    let out = check("literals", src);
    assert!(out.contains("time   = 1.5min\n"), "{out}");
    assert!(out.contains("trials = 1_000\n"), "{out}");
    assert!(out.contains("limit  = 60k\n"), "{out}");
    assert!(out.contains("lr     = 3E-2\n"), "{out}");
    assert!(out.contains(r#"name   = "a\"b\n""#), "{out}");
}

#[test]
fn comments_inside_a_one_line_construct_move_to_its_end() {
    let src =
        "experiment e {\n  data = digits(/* which */ seed: 1, // the seed\n    split: [0.7, 0.3]) /* after */\n}\n";
    let out = check("inside", src);
    assert_eq!(
        out,
        "experiment e {\n  data = digits(seed: 1, split: [0.7, 0.3])  /* which */ // the seed\n  /* after */\n}\n"
    );
}

#[test]
fn doc_comments_stay_attached_to_their_items() {
    let src =
        "/// First.\n/// Second line.\nexperiment e {\n  space {\n    /// A rate.\n    lr: float in 0.1..1.0\n  }\n}\n";
    let out = check("docs", src);
    assert_eq!(out, src);
    let Ok(tree) = parse(FileId(0), &out) else { panic!("does not parse") };
    let bma::ast::Item::Experiment(e) = &tree.items[0] else { panic!("not an experiment") };
    assert_eq!(e.doc.as_deref(), Some("First.\nSecond line."));
}

#[test]
fn an_unparsable_file_gives_the_syntax_diagnostic() {
    let Err(d) = format(&Source::new("bad", "experiment e { space { x: int in 1.. } }")) else {
        panic!("formatted a file that does not parse");
    };
    assert_eq!(d.code, bma::diagnostic::Code::SyntaxError);
}

#[test]
fn an_empty_file_stays_empty() {
    assert_eq!(format(&Source::new("empty", "")).ok().as_deref(), Some(""));
    assert_eq!(format(&Source::new("comment", "// only\n\n\n")).ok().as_deref(), Some("// only\n"));
}

/// A messy file and the layout `bma fmt` gives it.
fn messy_and_formatted() -> (&'static str, String) {
    let messy = "experiment t {\n space { x: float in 0.0..1.0 } // why\n objective { minimize x }\n}\n";
    let formatted = format(&Source::new("t", messy)).expect("formats");
    assert_ne!(messy, formatted);
    (messy, formatted)
}

/// `bma fmt FILE` in `dir`; asserts it succeeded.
fn fmt_in(dir: &Path, file: &str) {
    let out = common::bma().arg("fmt").arg(file).current_dir(dir).output().expect("bma runs");
    assert!(out.status.success(), "bma fmt {file}: {}", common::stderr(&out));
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the folder")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
#[test]
fn fmt_writes_through_a_symlink_to_its_target_and_keeps_the_link() {
    let (messy, formatted) = messy_and_formatted();
    let tmp = common::temp_dir();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("real")).expect("mkdir");
    common::write(&dir.join("real"), "t.bma", messy);
    // A chain: link.bma -> via.bma -> real/t.bma (relative links).
    std::os::unix::fs::symlink("real/t.bma", dir.join("via.bma")).expect("symlink");
    std::os::unix::fs::symlink("via.bma", dir.join("link.bma")).expect("symlink");
    fmt_in(dir, "link.bma");
    for link in ["link.bma", "via.bma"] {
        let meta = std::fs::symlink_metadata(dir.join(link)).expect("stat");
        assert!(meta.file_type().is_symlink(), "{link} was replaced by a regular file");
    }
    assert_eq!(std::fs::read_link(dir.join("link.bma")).expect("readlink"), Path::new("via.bma"));
    assert_eq!(std::fs::read_to_string(dir.join("real/t.bma")).expect("read"), formatted);
    // No temporary file left in either folder.
    assert_eq!(names(dir), ["link.bma", "real", "via.bma"]);
    assert_eq!(names(&dir.join("real")), ["t.bma"]);
}

#[cfg(unix)]
#[test]
fn fmt_keeps_hard_links_together() {
    use std::os::unix::fs::MetadataExt;
    let (messy, formatted) = messy_and_formatted();
    let tmp = common::temp_dir();
    let dir = tmp.path();
    common::write(dir, "a.bma", messy);
    std::fs::hard_link(dir.join("a.bma"), dir.join("b.bma")).expect("hard link");
    fmt_in(dir, "a.bma");
    let (a, b) =
        (std::fs::metadata(dir.join("a.bma")).expect("stat"), std::fs::metadata(dir.join("b.bma")).expect("stat"));
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "the hard links were split");
    assert_eq!(std::fs::read_to_string(dir.join("b.bma")).expect("read"), formatted);
    assert_eq!(names(dir), ["a.bma", "b.bma"]);
}
