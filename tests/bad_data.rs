//! Data files bma cannot use, on the real binary: each is refused by `bma check` and by
//! `bma run` before any trial, with a message naming the data problem (never a model of
//! width 0, never a panic), and data text in messages reaches the terminal escaped.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bma, results, stderr, temp_dir, write};

/// An experiment on `data` (a `data = ...` value) with a small model and budget.
fn spec(data: &str) -> String {
    format!(
        "experiment t {{\n  data = {data}\n  model {{ flatten dense(4) relu dense(data.classes) }}\n  \
         objective {{ maximize accuracy }}\n  search {{ trials = 1 }}\n  train {{ epochs = 1 }}\n}}\n"
    )
}

/// An IDX file of unsigned bytes with dimensions `dims` and `body`.
fn idx(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(body);
    bytes
}

/// Writes `files` and a spec on `data` in a fresh folder; runs `bma check`, then `bma run`.
/// Both must fail with exit 1 and a message holding every one of `expect`, and the run must
/// leave no output folder (nothing trained).
fn refused(files: &[(&str, Vec<u8>)], data: &str, expect: &[&str]) {
    let dir = temp_dir();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let file = write(dir.path(), "t.bma", &spec(data));
    let check = bma().arg("check").arg(&file).output().unwrap();
    let out = dir.path().join("out");
    let run = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    for (what, o) in [("check", &check), ("run", &run)] {
        let err = stderr(o);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        for e in expect {
            assert!(err.contains(e), "{what}: `{e}` not in\n{err}");
        }
        assert!(!err.contains("positive `units`") && !err.contains("panicked"), "{what}: {err}");
        assert!(!err.contains('\u{1b}'), "{what}: a raw escape character reached the terminal:\n{err}");
    }
    assert!(!out.exists(), "the run wrote {}", out.display());
}

/// `d.csv` holding `text`.
fn csv(text: &str) -> (&'static str, Vec<u8>) {
    ("d.csv", text.as_bytes().to_vec())
}

const CSV: &str = "csv(\"d.csv\", target: \"y\")";

#[test]
fn a_single_class_target_is_refused_not_trained_to_loss_0() {
    refused(&[csv("a,b,y\n1,2,x\n3,4,x\n5,6,x\n7,8,x\n")], CSV, &["bad_data_file", "one class, `x`"]);
}

#[test]
fn a_csv_header_without_rows_is_named() {
    refused(&[csv("a,b,y\n")], CSV, &["bad_data_file", "the file has a header but no rows"]);
}

#[test]
fn an_unclosed_quote_is_named_with_its_line() {
    let text = "a,b,y\n1,2,x\n3,4,\"z\n5,6,x\n7,8,z\n";
    refused(&[csv(text)], CSV, &["bad_data_file", "line 3: a quote opened on this line is never closed"]);
}

#[test]
fn a_pipe_separated_file_gets_a_hint() {
    // `;` and tabs are detected (`tables.rs`); `|` is not a delimiter bma reads.
    let text = "a|b|y\n1|2|x\n3|4|z\n5|6|x\n7|8|z\n";
    refused(&[csv(text)], CSV, &["unknown_column", "separated by `|`"]);
    // Without a target name the one column is the target: no features, and the same hint.
    refused(&[csv(text)], "csv(\"d.csv\")", &["no feature columns", "separated by `|`"]);
    // A semicolon file read with `delimiter: ","` is one column too.
    let text = "a;b;y\n1;2;x\n3;4;z\n5;6;x\n7;8;z\n";
    refused(&[csv(text)], "csv(\"d.csv\", delimiter: \",\")", &["no feature columns", "separated by `;`"]);
}

#[test]
fn a_row_that_is_not_utf8_is_named_with_its_line() {
    let bytes = b"a,b,y\n1,2,x\n3,4,caf\xe9\n5,6,x\n7,8,z\n".to_vec();
    refused(&[("d.csv", bytes)], CSV, &["bad_data_file", "line 3: field 3 is not UTF-8 text (byte 0xe9)"]);
}

#[test]
fn a_category_column_wider_than_max_categories_is_refused_with_the_way_out() {
    let rows: String = (0..300).map(|i| format!("{i},SKU{i},{}\n", ["x", "z"][i % 2])).collect();
    let text = format!("a,code,y\n{rows}");
    let expect = ["bad_data_file", "the column `code` has 300 categories", "max_categories: 300", "ignore: [\"code\"]"];
    refused(&[csv(&text)], CSV, &expect);
}

#[test]
fn escape_sequences_in_a_csv_header_are_escaped() {
    let text = "a,\u{1b}]0;owned\u{7}\u{1b}[2J,y\n1,2,x\n3,4,z\n5,6,x\n7,8,z\n";
    refused(&[csv(text)], "csv(\"d.csv\", target: \"colour\")", &["\\u{1b}]0;owned\\u{7}\\u{1b}[2J"]);
}

#[test]
fn a_quoted_line_break_is_part_of_its_field_and_trains() {
    let dir = temp_dir();
    let text =
        "a,b,y\n1,2,\"first\nkind\"\n3,4,second\n5,6,\"first\nkind\"\n7,8,second\n9,1,\"first\nkind\"\n2,3,second\n";
    write(dir.path(), "d.csv", text);
    let file = write(dir.path(), "t.bma", &spec(CSV));
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["trials"][0]["state"], "complete", "{r}");
}

fn images() -> Vec<u8> {
    idx(&[4, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2])
}

fn labels() -> Vec<u8> {
    idx(&[4], &[0, 1, 2, 1])
}

const IDX: &str = "idx(\"i.idx\", \"l.idx\")";

#[test]
fn an_idx_file_with_a_0_sized_dimension_is_refused_not_a_panic() {
    refused(
        &[("i.idx", idx(&[4, 2, 0], &[])), ("l.idx", labels())],
        IDX,
        &["bad_data_file", "its dimensions are 4 x 2 x 0"],
    );
}

#[test]
fn an_images_file_given_as_labels_is_refused() {
    refused(&[("i.idx", images()), ("l.idx", images())], IDX, &["l.idx", "holds images (4 x 2 x 3), not labels"]);
    refused(&[("i.idx", labels()), ("l.idx", images())], IDX, &["i.idx", "images and labels are swapped"]);
}

#[test]
fn a_truncated_idx_body_is_cut_short_not_a_bad_header() {
    let mut short = images();
    short.truncate(short.len() - 4);
    refused(&[("i.idx", short), ("l.idx", labels())], IDX, &["the file is cut short: 40 bytes expected", "36 found"]);
}

#[test]
fn idx_labels_of_one_class_are_refused() {
    refused(&[("i.idx", images()), ("l.idx", idx(&[4], &[3, 3, 3, 3]))], IDX, &["every label is 3"]);
}

#[test]
fn the_good_idx_files_train() {
    let dir = temp_dir();
    let pixels: Vec<u8> = (0..12 * 6).map(|i| (i % 11) as u8).collect();
    std::fs::write(dir.path().join("i.idx"), idx(&[12, 2, 3], &pixels)).unwrap();
    std::fs::write(dir.path().join("l.idx"), idx(&[12], &[0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1])).unwrap();
    let file = write(dir.path(), "t.bma", &spec(IDX));
    let out = dir.path().join("out");
    let o = bma().arg("run").arg(&file).arg("--out").arg(&out).args(["--progress", "none"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(results(&out)["trials"][0]["state"], "complete");
}
