use std::path::Path;

use super::{Column, Options, Problem, Target, analyse, csv_records, detect_delimiter, encode, parse};
use crate::ir::Task;

fn read(text: &str, task: Task) -> Result<super::Raw, String> {
    parse(text, Path::new("f.csv"), &Target::Last, task).map_err(|e| e.to_string())
}

fn opts(f: impl FnOnce(&mut Options)) -> Options {
    let mut o = Options::new(Target::Last, Task::Classification);
    f(&mut o);
    o
}

#[test]
fn a_quoted_field_may_hold_a_line_break_and_lines_are_still_counted() {
    let text = "a,y\n1,\"first\nkind\"\n\n2,\"second, kind\"\n3,\"first\nkind\"\n4,x,5\n";
    let records = csv_records(text).unwrap();
    let spans: Vec<(usize, usize)> = records.iter().map(|r| (r.line, r.last_line)).collect();
    assert_eq!(spans, [(1, 1), (2, 3), (5, 5), (6, 7), (8, 8)]);
    assert_eq!(records[1].fields, ["1", "first\nkind"]);
    assert_eq!(records[2].fields, ["2", "second, kind"]);
    // The bad row is named by its own line, after the quoted line breaks.
    assert_eq!(read(text, Task::Classification).unwrap_err(), "f.csv:8: 3 fields where the header has 2");
    let raw = read(&text[..text.len() - 6], Task::Classification).unwrap();
    assert_eq!((raw.info.classes, raw.y.clone()), (2, vec![0.0, 1.0, 0.0]));
}

#[test]
fn doubled_quotes_and_crlf_line_ends_are_read_as_rfc_4180_says() {
    let records = csv_records("name,y\r\n\"say \"\"hi\"\"\",1\r\n  b , 2 \r\n").unwrap();
    assert_eq!(records[1].fields, ["say \"hi\"", "1"]);
    // Fields are trimmed; the line end is not part of the last field.
    assert_eq!(records[2].fields, ["b", "2"]);
    assert_eq!(records.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn a_quote_never_closed_is_named_with_its_line() {
    let text = "a,y\n1,x\n2,\"y\n3,x\n";
    assert_eq!(csv_records(text).unwrap_err().line, 3);
    assert_eq!(read(text, Task::Classification).unwrap_err(), "f.csv:3: a quote opened on this line is never closed");
    // Closed further down, it swallows lines: the row's field count says so.
    let closed = "a,b,y\n1,\"2,x\n3\",4,x\n";
    assert_eq!(
        read(closed, Task::Classification).unwrap_err(),
        "f.csv:2: 4 fields where the header has 3 (a quoted field runs on to line 3: is a quote missing?)"
    );
    // A quote inside an unquoted field is a character, not an opening, as the `csv` crate
    // reads it (after a space too).
    assert!(csv_records("a,y\n5\" pipe,x\n6,z\n").is_ok());
    assert_eq!(csv_records("a,y\n1, \"x\n").unwrap()[1].fields, ["1", "\"x"]);
}

#[test]
fn a_header_without_rows_and_a_single_class_are_errors() {
    assert_eq!(read("a,y\n", Task::Classification).unwrap_err(), "f.csv: the file has a header but no rows");
    let one = read("a,y\n1,x\n2,x\n3,x\n", Task::Classification).unwrap_err();
    assert!(one.starts_with("f.csv: the target `y` has one class, `x`, in every row"), "{one}");
    // The same column is a fine regression target when it is numeric.
    assert!(read("a,y\n1,2\n2,2\n3,2\n", Task::Regression).is_ok());
}

#[test]
fn semicolons_and_tabs_are_detected_and_an_explicit_delimiter_wins() {
    // A European file: `;` between fields, `,` as the decimal mark (a category here).
    let semi = "a;b;y\n1;2,5;x\n3;4,5;z\n";
    assert_eq!(detect_delimiter(semi.as_bytes()), b';');
    let raw = read(semi, Task::Classification).unwrap();
    assert_eq!((raw.info.shape.clone(), raw.y.clone()), (vec![3], vec![0.0, 1.0]));
    let tabs = "a\tb\ty\n1\t2\tx\n3\t4\tz\n";
    assert_eq!(detect_delimiter(tabs.as_bytes()), b'\t');
    assert_eq!(read(tabs, Task::Classification).unwrap().x, [1.0, 2.0, 3.0, 4.0]);
    // Commas win ties, and a quoted `;` does not count.
    assert_eq!(detect_delimiter(b"a,b;c,y\n\"1;2\",3,x\n"), b',');
    // `delimiter: ","` reads a semicolon file as one column: no features, with a hint.
    let e = analyse(b"a;b;y\n1;2;x\n3;4;z\n", &opts(|o| o.delimiter = Some(b','))).unwrap_err();
    assert_eq!(e.problem, Problem::NoFeatures);
    assert!(e.help.as_deref().is_some_and(|h| h.contains("separated by `;`")), "{e:?}");
}

#[test]
fn a_file_separated_by_pipes_gets_a_hint() {
    let e = read("a|b|y\n1|2|x\n3|4|z\n", Task::Classification).unwrap_err();
    assert!(e.contains("no feature columns") && e.contains("separated by `|`"), "{e}");
    let e = parse("a|b|y\n1|2|x\n", Path::new("f.csv"), &Target::Name("y".into()), Task::Classification)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no column `y`") && e.contains("separated by `|`"), "{e}");
}

#[test]
fn a_byte_order_mark_is_dropped_and_a_row_that_is_not_utf8_is_named() {
    let raw = analyse(b"\xef\xbb\xbfy,a\n1,2\n0,3\n", &opts(|o| o.target = Target::Name("y".into()))).unwrap();
    assert_eq!(raw.columns, ["y", "a"]);
    let e = parse_bytes(b"a,y\n1,x\n2,caf\xe9\n3,z\n").unwrap_err();
    assert_eq!(e, "f.csv:3: field 2 is not UTF-8 text (byte 0xe9); save the file as UTF-8");
}

fn parse_bytes(bytes: &[u8]) -> Result<super::Raw, String> {
    let o = Options::new(Target::Last, Task::Classification);
    analyse(bytes, &o).map(|t| encode(&t, Path::new("f.csv"))).map_err(|e| e.at(Path::new("f.csv")).to_string())
}

#[test]
fn data_text_in_an_error_is_escaped() {
    let e = read("a,y\n1,\u{1b}[2J\n", Task::Regression).unwrap_err();
    assert!(!e.contains('\u{1b}') && e.contains("`\\u{1b}[2J`, not a number"), "{e}");
}

/// A CSV of `n` rows: a number, a category of 3 values, `extra`'s column, a class.
fn table_with(n: usize, extra: impl Fn(usize) -> String) -> String {
    let mut s = String::from("x,kind,extra,y\n");
    for i in 0..n {
        s += &format!("{i},{},\"{}\",{}\n", ["a", "b", "c"][i % 3], extra(i), i % 2);
    }
    s
}

#[test]
fn a_free_text_column_is_refused_with_a_pointer_to_text_and_ignore() {
    let reviews = table_with(60, |i| format!("review number {i} says the product is fine"));
    let e = parse_bytes(reviews.as_bytes()).unwrap_err();
    assert!(e.starts_with("f.csv: the column `extra` is free text (60 distinct values in 60 rows)"), "{e}");
    assert!(e.contains("`text(...)`") && e.contains("`ignore: [\"extra\"]`"), "{e}");
    // Ignored, the rest loads: x and the 3 kinds.
    let t = analyse(reviews.as_bytes(), &opts(|o| o.ignore = vec!["extra".into()])).unwrap();
    assert_eq!((t.features(), t.encodings[2].clone()), (4, Column::Dropped));
    // Categories with spaces that repeat are categories: 20 cities over 60 rows.
    let cities = table_with(60, |i| format!("New City {}", i % 20));
    assert_eq!(analyse(cities.as_bytes(), &opts(|_| {})).unwrap().features(), 1 + 3 + 20);
    // Short unique codes are not text either (they meet the category cap instead).
    let codes = table_with(60, |i| format!("SKU{i}"));
    assert_eq!(analyse(codes.as_bytes(), &opts(|_| {})).unwrap().features(), 1 + 3 + 60);
}

#[test]
fn one_hot_width_is_capped_with_the_argument_that_raises_it() {
    let codes = table_with(300, |i| format!("SKU{i}"));
    let e = parse_bytes(codes.as_bytes()).unwrap_err();
    assert!(e.starts_with("f.csv: the column `extra` has 300 categories, more than the 256"), "{e}");
    assert!(e.contains("`max_categories: 300`") && e.contains("`ignore: [\"extra\"]`"), "{e}");
    let t = analyse(codes.as_bytes(), &opts(|o| o.max_categories = 300)).unwrap();
    assert_eq!(t.features(), 1 + 3 + 300);
    let e = analyse(codes.as_bytes(), &opts(|o| o.ignore = vec!["nope".into()])).unwrap_err();
    assert_eq!((e.problem, e.message.as_str()), (Problem::NoColumn, "no column `nope` to ignore"));
}

#[test]
fn a_numeric_target_with_many_values_read_as_classes_gets_a_note() {
    // 100 rows, 50 prices: more than 20 distinct and more than 5% of the rows.
    let prices: String = (0..100).map(|i| format!("{i},{}\n", 1000 + 10 * (i % 50))).collect();
    let t = analyse(format!("a,price\n{prices}").as_bytes(), &opts(|_| {})).unwrap();
    assert_eq!(t.notes.len(), 1);
    assert!(t.notes[0].contains("50 distinct values in 100 rows") && t.notes[0].contains("task: regression"));
    // Ten digit labels, or 30 classes over 1,000 rows (3%), or names: no note.
    let digits: String = (0..100).map(|i| format!("{i},{}\n", i % 10)).collect();
    assert!(analyse(format!("a,d\n{digits}").as_bytes(), &opts(|_| {})).unwrap().notes.is_empty());
    let many: String = (0..1000).map(|i| format!("{i},{}\n", i % 30)).collect();
    assert!(analyse(format!("a,d\n{many}").as_bytes(), &opts(|_| {})).unwrap().notes.is_empty());
    let named: String = (0..100).map(|i| format!("{i},n{}\n", i % 50)).collect();
    assert!(analyse(format!("a,d\n{named}").as_bytes(), &opts(|_| {})).unwrap().notes.is_empty());
}

#[test]
fn an_unclosed_quote_after_blank_lines_and_crlf_is_named_with_its_own_line() {
    let text = "a,y\r\n1,x\r\n\r\n\r\n2,\"y\r\n3,x\r\n";
    assert_eq!(csv_records(text).unwrap_err().line, 5);
}
