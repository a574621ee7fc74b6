use std::path::{Path, PathBuf};

use super::*;
use crate::ir::CallValue;
use crate::rng::Rng;
use crate::source::Span;

fn call(name: &str, args: Vec<(Option<&str>, Value)>) -> Value {
    Value::Call(CallValue {
        name: name.into(),
        args: args.into_iter().map(|(k, v)| (k.map(str::to_string), v)).collect(),
    })
}

fn checker_info(v: &Value, base: &Path) -> DataInfo {
    crate::check::data::describe(v, Span::default(), &|_| Span::default(), base).expect("checker accepts the value")
}

fn tmp(name: &str, body: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bma-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p
}

/// Every row of a split, read as training reads it (from `x` or stored bytes).
fn rows_of(s: &Split, features: usize) -> Vec<f32> {
    let mut out = Vec::new();
    s.gather(&(0..s.n).collect::<Vec<_>>(), features, &mut out).expect("reads");
    out
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64
}

#[test]
fn builtin_datasets_have_their_sizes_and_agree_with_the_checker() {
    for (name, n) in [("digits", 1797), ("iris", 150), ("wine", 178), ("breast_cancer", 569)] {
        let v = Value::sym(name);
        let raw = load_raw(&v, Path::new(".")).expect("loads");
        assert_eq!(raw.len(), n, "{name}");
        assert_eq!(raw.info, checker_info(&v, Path::new(".")), "{name}");
        let classes: std::collections::BTreeSet<u32> = raw.y.iter().map(|y| *y as u32).collect();
        assert_eq!(classes.len(), raw.info.classes, "{name}");
    }
    let digits = load_raw(&Value::sym("digits"), Path::new(".")).expect("loads");
    assert_eq!(&digits.x[..8], &[0., 0., 5., 13., 9., 1., 0., 0.]);
    assert_eq!(digits.y[0], 0.0);
}

#[test]
fn split_is_stratified_deterministic_and_standardised_on_train() {
    let v = call(
        "digits",
        vec![
            (Some("split"), Value::List(vec![Value::Float(0.7), Value::Float(0.15), Value::Float(0.15)])),
            (Some("seed"), Value::Int(1)),
        ],
    );
    let d = load(&v, Path::new(".")).expect("loads");
    assert_eq!(d.train.n + d.valid.n + d.test.n, 1797);
    assert!((d.train.n as f64 - 0.7 * 1797.0).abs() < 10.0, "train {}", d.train.n);
    // Every class is split in the same proportions (within rounding).
    for c in 0..10 {
        let count = |s: &Split| s.y.iter().filter(|y| **y as usize == c).count();
        let all = count(&d.train) + count(&d.valid) + count(&d.test);
        assert!((count(&d.train) as f64 - 0.7 * all as f64).abs() <= 1.0, "class {c}");
        assert!((count(&d.valid) as f64 - 0.15 * all as f64).abs() <= 1.0, "class {c}");
    }
    // Pooled image scaling: the train pixels have mean 0 and deviation 1, valid only about.
    assert!(mean(&d.train.x).abs() < 1e-4);
    let var = d.train.x.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / d.train.x.len() as f64;
    assert!((var - 1.0).abs() < 1e-3);
    assert!(mean(&d.valid.x).abs() > 1e-6);
    let again = load(&v, Path::new(".")).expect("loads");
    assert_eq!(d.train, again.train);
    let other = call("digits", vec![(Some("seed"), Value::Int(2))]);
    assert_ne!(d.train, load(&other, Path::new(".")).expect("loads").train);
}

#[test]
fn flat_features_are_standardised_per_feature() {
    let d = load(&Value::sym("wine"), Path::new(".")).expect("loads");
    let f = d.features();
    for j in 0..f {
        let col: Vec<f32> = (0..d.train.n).map(|i| d.train.row(i, f)[j]).collect();
        assert!(mean(&col).abs() < 1e-4, "feature {j}");
    }
    // Proline (last feature) is in the hundreds raw: the fitted mean says so.
    assert!(d.mean[12] > 500.0);
}

#[test]
fn csv_with_header_categories_and_missing_values() {
    let p = tmp("h.csv", b"size,colour,label\n1.0,red,a\n,blue,b\n3.0,red,a\n5.0,,b\n\n7.0,green,a\n2.0,blue,b\n");
    let v = call(
        "csv",
        vec![
            (None, Value::Str(p.file_name().expect("a file name").to_string_lossy().into())),
            (Some("target"), Value::Str("label".into())),
        ],
    );
    let base = p.parent().expect("a folder");
    let raw = load_raw(&v, base).expect("loads");
    assert_eq!(raw.info, checker_info(&v, base));
    assert_eq!(raw.info.shape, vec![4]); // size + 3 colours
    assert_eq!(raw.info.classes, 2);
    // Colours sorted: blue, green, red.
    assert_eq!(&raw.x[..4], &[1.0, 0.0, 0.0, 1.0]);
    assert!(raw.x[4].is_nan());
    assert_eq!(&raw.x[5..8], &[1.0, 0.0, 0.0]);
    assert_eq!(&raw.x[12..16], &[5.0, 0.0, 0.0, 0.0]);
    assert_eq!(raw.y, vec![0., 1., 0., 1., 0., 1.]);
    // The missing size becomes the train mean: 0 after standardising.
    let d = split(raw, [0.5, 0.25, 0.25], 3).expect("splits");
    let all: Vec<f32> = [&d.train, &d.valid, &d.test].iter().flat_map(|s| s.x.iter().copied()).collect();
    assert!(all.iter().all(|x| x.is_finite()));
}

#[test]
fn csv_without_header_uses_the_last_column_and_regression_targets() {
    let p = tmp("r.csv", b"1,2,0.5\n2,3,1.5\n3,4,2.5\n4,5,3.5\n");
    let v = call("csv", vec![(None, Value::Str(p.display().to_string())), (Some("task"), Value::sym("regression"))]);
    let raw = load_raw(&v, Path::new("/")).expect("loads");
    assert_eq!(raw.info, checker_info(&v, Path::new("/")));
    assert_eq!(raw.info.task, Task::Regression);
    assert_eq!(raw.y, vec![0.5, 1.5, 2.5, 3.5]);
    assert_eq!(raw.x, vec![1., 2., 2., 3., 3., 4., 4., 5.]);
}

#[test]
fn bad_csv_rows_are_errors_with_file_and_line() {
    let p = tmp("bad.csv", b"a,b,y\n1,2,x\n\n3,4\n");
    let err =
        csv::load(&p, &csv::Options::new(csv::Target::Last, Task::Classification)).expect_err("wrong field count");
    assert_eq!(err.line, Some(4));
    assert!(err.to_string().contains("bad.csv:4: 2 fields where the header has 3"), "{err}");
    let p = tmp("miss.csv", b"a,b,y\n1,2,x\n3,4,NA\n");
    let err = csv::load(&p, &csv::Options::new(csv::Target::Name("y".into()), Task::Classification))
        .expect_err("missing target");
    assert_eq!((err.line, err.message.as_str()), (Some(3), "the target `y` is missing"));
    let p = tmp("reg.csv", b"a,y\n1,2\n3,four\n");
    let err = csv::load(&p, &csv::Options::new(csv::Target::Last, Task::Regression)).expect_err("text target");
    assert_eq!(err.line, Some(3));
    let err = csv::load(Path::new("/nonexistent/x.csv"), &csv::Options::new(csv::Target::Last, Task::Classification))
        .expect_err("no file");
    assert!(err.message.starts_with("cannot read"));
    assert!(csv::parse("", Path::new("e.csv"), &csv::Target::Last, Task::Classification).is_err());
    assert!(csv::parse("a,b\n", Path::new("e.csv"), &csv::Target::Last, Task::Classification).is_err());
}

#[test]
fn values_that_are_not_finite_f32s_are_errors_with_file_and_line() {
    let rows = "1,2,a\n3,4,b\n5,6,a\n";
    // `inf` and `1e400` parse (as f64 infinity); `1e39` is finite in f64 but not in f32.
    for (bad, column) in [("inf", "`p`"), ("-infinity", "`p`"), ("1e400", "`q`"), ("1e39", "`q`")] {
        let text =
            if column == "`p`" { format!("p,q,y\n{rows}{bad},7,b\n") } else { format!("p,q,y\n{rows}8,{bad},b\n") };
        let err = csv::parse(&text, Path::new("f.csv"), &csv::Target::Last, Task::Classification)
            .expect_err("a non-finite feature");
        assert_eq!(err.line, Some(5), "{bad}");
        assert!(err.message.starts_with(&format!("{column} is `{bad}`, not a finite")), "{err}");
    }
    let err = csv::parse("p,y\n1,2\n3,1e39\n", Path::new("f.csv"), &csv::Target::Last, Task::Regression)
        .expect_err("a non-finite regression target");
    assert_eq!((err.line, err.message.starts_with("the target `y` is `1e39`, not a finite")), (Some(3), true), "{err}");
    // Missing values stay missing (imputed later), and large finite values load.
    let raw = csv::parse("p,y\n3e38,1\nNaN,2\n-1e-40,1\n", Path::new("f.csv"), &csv::Target::Last, Task::Regression)
        .expect("finite and missing values load");
    assert_eq!(raw.x[0], 3e38);
    assert!(raw.x[1].is_nan());
}

#[test]
fn a_utf8_byte_order_mark_is_not_part_of_the_first_column_name() {
    let p = tmp("bom.csv", b"\xef\xbb\xbfy,a,b\n1,2,x\n0,3,y\n1,4,x\n0,5,z\n");
    let v = call("csv", vec![(None, Value::Str(p.display().to_string())), (Some("target"), Value::Str("y".into()))]);
    let raw = load_raw(&v, Path::new("/")).expect("the target `y` is found");
    assert_eq!(raw.info, checker_info(&v, Path::new("/")));
    assert_eq!(raw.y, vec![1., 0., 1., 0.]);
    assert_eq!(raw.info.shape, vec![4]); // a + 3 categories of b
}

fn idx_bytes(kind: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, kind, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(body);
    b
}

#[test]
fn idx_images_and_labels() {
    let images = idx_bytes(0x08, &[3, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
    let labels = idx_bytes(0x08, &[3], &[2, 0, 1]);
    let (ip, lp) = (tmp("img.idx", &images), tmp("lab.idx", &labels));
    let v = call(
        "idx",
        vec![
            (Some("images"), Value::Str(ip.display().to_string())),
            (Some("labels"), Value::Str(lp.display().to_string())),
        ],
    );
    let raw = load_raw(&v, Path::new("/")).expect("loads");
    assert_eq!(raw.info, checker_info(&v, Path::new("/")));
    assert_eq!(raw.info.shape, vec![1, 2, 2]);
    assert_eq!(raw.info.classes, 3);
    assert!(raw.x.is_empty() && raw.stored.as_ref().is_some_and(|c| !c.on_disk()), "bytes kept as bytes");
    assert_eq!(raw.values().expect("reads")[11], 255.0);
    assert_eq!(raw.y, vec![2., 0., 1.]);
    // Truncated body, mismatched counts: errors.
    let short = idx_bytes(0x08, &[3, 2, 2], &[0; 5]);
    assert!(idx::parse(&short, &ip, &labels, &lp).is_err());
    let two = idx_bytes(0x08, &[2], &[0, 1]);
    assert!(idx::parse(&images, &ip, &two, &lp).is_err());
    assert!(idx::parse(b"junk", &ip, &labels, &lp).is_err());
}

#[test]
fn synthetic_generators_are_deterministic_and_shaped() {
    for (kind, classes) in [("spirals", 3), ("moons", 2), ("circles", 2)] {
        let spec = synthetic::Spec { n: 300, noise: 0.05, seed: 7, classes };
        let a = synthetic::generate(kind, &spec).expect("generates");
        assert_eq!(a.x.len(), 600);
        assert_eq!(a.info.classes, classes);
        for c in 0..classes {
            assert_eq!(a.y.iter().filter(|y| **y as usize == c).count(), 300 / classes, "{kind}");
        }
        assert_eq!(a.x, synthetic::generate(kind, &spec).expect("generates").x);
        let other = synthetic::Spec { seed: 8, ..spec };
        assert_ne!(a.x, synthetic::generate(kind, &other).expect("generates").x);
    }
    // Noise-free circles: radius 1 for class 0, 0.5 for class 1.
    let c = synthetic::generate("circles", &synthetic::Spec { n: 10, noise: 0.0, seed: 0, classes: 2 }).expect("ok");
    for i in 0..10 {
        let r = (c.x[2 * i].powi(2) + c.x[2 * i + 1].powi(2)).sqrt();
        assert!((r - if c.y[i] == 0.0 { 1.0 } else { 0.5 }).abs() < 1e-5);
    }
    let s = synthetic::generate("sine", &synthetic::Spec { n: 50, noise: 0.0, seed: 1, classes: 2 }).expect("ok");
    assert_eq!(s.info.task, Task::Regression);
    assert!(s.x.iter().zip(&s.y).all(|(x, y)| (x.sin() - y).abs() < 1e-5));
    let v = call("synthetic.spirals", vec![(Some("n"), Value::Int(90)), (Some("classes"), Value::Int(3))]);
    assert_eq!(load_raw(&v, Path::new(".")).expect("ok").info, checker_info(&v, Path::new(".")));
}

#[test]
fn mutated_csv_and_idx_files_never_panic() {
    let mut rng = Rng::new(9);
    let csv_text = b"a,b,colour,y\n1.5,2,red,x\n,3,blue,y\n4,NA,red,x\n\"q,uoted\",5,green,y\n".to_vec();
    let images = idx_bytes(0x08, &[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
    let labels = idx_bytes(0x08, &[2], &[0, 1]);
    let alphabet = b",\n\"0123456789.-eNA xyz";
    for _ in 0..3000 {
        let mut c = csv_text.clone();
        for _ in 0..1 + rng.index(4) {
            let i = rng.index(c.len() + 1);
            match rng.index(3) {
                0 if i < c.len() => {
                    c.remove(i);
                }
                1 => c.insert(i, alphabet[rng.index(alphabet.len())]),
                _ => c.truncate(i),
            }
        }
        let text = String::from_utf8_lossy(&c);
        for task in [Task::Classification, Task::Regression] {
            if let Ok(raw) = csv::parse(&text, Path::new("m.csv"), &csv::Target::Last, task) {
                assert_eq!(raw.x.len(), raw.len() * raw.info.features());
                // Loaded values are finite, or NaN for a missing feature.
                assert!(raw.x.iter().all(|v| v.is_finite() || v.is_nan()), "{text:?}");
                assert!(raw.y.iter().all(|v| v.is_finite()), "{text:?}");
                let _ = split(raw, DEFAULT_SPLIT, 1);
            }
        }
        let mut ib = images.clone();
        let i = rng.index(ib.len());
        ib[i] = rng.next_u64() as u8;
        ib.truncate(rng.index(ib.len() + 1).max(i));
        let _ = idx::parse(&ib, Path::new("i"), &labels, Path::new("l"));
        let _ = idx::parse(&labels, Path::new("l"), &ib, Path::new("i"));
    }
}

#[test]
fn idx_headers_with_huge_dimensions_are_errors() {
    let huge = idx_bytes(0x08, &[u32::MAX, u32::MAX, u32::MAX], &[0; 16]);
    let labels = idx_bytes(0x08, &[2], &[0, 1]);
    assert!(idx::parse(&huge, Path::new("i"), &labels, Path::new("l")).is_err());
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzips");
    e.finish().expect("gzips")
}

fn idx_value(images: &Path, labels: &Path) -> Value {
    call(
        "idx",
        vec![
            (Some("images"), Value::Str(images.display().to_string())),
            (Some("labels"), Value::Str(labels.display().to_string())),
        ],
    )
}

#[test]
fn gzipped_idx_files_load_as_the_plain_ones_and_the_checker_agrees() {
    let pixels: Vec<u8> = (0..4 * 3 * 2).map(|i| (i * 7 % 256) as u8).collect();
    let images = idx_bytes(0x08, &[4, 3, 2], &pixels);
    let labels = idx_bytes(0x08, &[4], &[1, 0, 2, 1]);
    let plain = idx_value(&tmp("gz-plain-img", &images), &tmp("gz-plain-lab", &labels));
    // Recognised by the magic bytes, not the name: one with `.gz`, one without.
    let gz = idx_value(&tmp("gz-img.gz", &gzip(&images)), &tmp("gz-lab", &gzip(&labels)));
    let (a, b) = (load_raw(&plain, Path::new("/")).expect("plain"), load_raw(&gz, Path::new("/")).expect("gzipped"));
    assert_eq!((a.values().expect("reads"), a.y), (b.values().expect("reads"), b.y.clone()));
    assert_eq!(b.info.shape, vec![1, 3, 2]);
    assert_eq!(b.info.classes, 3);
    assert_eq!(b.info, checker_info(&gz, Path::new("/")));
    assert_eq!(b.values().expect("reads")[5], 35.0);
}

#[test]
fn damaged_gzipped_idx_files_are_errors_naming_the_file() {
    let images = idx_bytes(0x08, &[4, 3, 2], &[9; 24]);
    let labels = tmp("gzd-lab", &idx_bytes(0x08, &[4], &[1, 0, 2, 1]));
    let gz = gzip(&images);
    let describe = |v: &Value| crate::check::data::describe(v, Span::default(), &|_| Span::default(), Path::new("/"));
    // Cut short: the loader and the checker (which reads the trailer, not the body) both refuse.
    let cut = tmp("gzd-cut", &gz[..gz.len() - 6]);
    let v = idx_value(&cut, &labels);
    let err = load_raw(&v, Path::new("/")).expect_err("cut short");
    assert_eq!(err.path.as_deref(), Some(cut.as_path()));
    assert!(err.message.contains("gzip"), "{err}");
    let d = describe(&v).expect_err("cut short");
    assert!(d.message.contains("gzip stream is cut short") && d.message.contains("gzd-cut"), "{}", d.message);
    // A gzipped body shorter than its header says: the inflated size is named.
    let short = tmp("gzd-short", &gzip(&images[..images.len() - 1]));
    let v = idx_value(&short, &labels);
    let err = load_raw(&v, Path::new("/")).expect_err("short");
    assert!(err.message.contains("cut short") && err.message.contains("inflated"), "{err}");
    assert!(describe(&v).expect_err("short").message.contains("inflates to 39"));
    // A damaged CRC: the loader, which inflates the whole stream, finds it; the checker reads
    // only the header and the length in the trailer, so it does not.
    let mut crc = gz.clone();
    let at = crc.len() - 8;
    crc[at] ^= 0xff;
    let v = idx_value(&tmp("gzd-crc", &crc), &labels);
    assert!(load_raw(&v, Path::new("/")).expect_err("bad crc").message.contains("not a valid gzip stream"));
    assert_eq!(describe(&v).map(|i| i.shape), Ok(vec![1, 3, 2]));
    // Not gzip after the magic bytes.
    let v = idx_value(&tmp("gzd-junk", &[0x1f, 0x8b, 1, 2, 3]), &labels);
    assert!(load_raw(&v, Path::new("/")).expect_err("junk").message.contains("not a valid gzip stream"));
    assert!(describe(&v).is_err());
    // A forged header that claims far more than the stream can hold is refused before reading.
    let forged = tmp("gzd-forged", &gzip(&idx_bytes(0x08, &[60_000, 28, 28], &[0; 8])));
    let v = idx_value(&forged, &labels);
    assert!(load_raw(&v, Path::new("/")).expect_err("forged").message.contains("more than"), "forged");
}

fn floats(v: &[f64]) -> Value {
    Value::List(v.iter().map(|x| Value::Float(*x)).collect())
}

fn with(v: &Value, extra: Vec<(&str, Value)>) -> Value {
    let Value::Call(c) = v else { panic!("a call") };
    let mut c = c.clone();
    c.args.extend(extra.into_iter().map(|(k, v)| (Some(k.to_string()), v)));
    Value::Call(c)
}

fn checker(v: &Value) -> Result<DataInfo, String> {
    crate::check::data::describe(v, Span::default(), &|_| Span::default(), Path::new("/")).map_err(|d| d.message)
}

/// Main images: 20 samples of 2x2, labels 0..=3 five times; a test file of 6 samples.
fn fixed_fixture(tag: &str) -> (Value, Value) {
    let main_px: Vec<u8> = (0..20 * 4).map(|i| (i % 50) as u8).collect();
    let main_lab: Vec<u8> = (0..20).map(|i| (i % 4) as u8).collect();
    let test_px: Vec<u8> = (0..6 * 4).map(|i| 200 + i as u8).collect();
    let test_lab = [3, 2, 1, 0, 0, 1];
    let main = idx_value(
        &tmp(&format!("fx-{tag}-i"), &idx_bytes(0x08, &[20, 2, 2], &main_px)),
        &tmp(&format!("fx-{tag}-l"), &idx_bytes(0x08, &[20], &main_lab)),
    );
    let test = idx_value(
        &tmp(&format!("fx-{tag}-ti.gz"), &gzip(&idx_bytes(0x08, &[6, 2, 2], &test_px))),
        &tmp(&format!("fx-{tag}-tl"), &idx_bytes(0x08, &[6], &test_lab)),
    );
    (main, test)
}

#[test]
fn a_fixed_test_source_is_the_test_split_and_the_rest_is_carved_into_train_and_valid() {
    let (main, test) = fixed_fixture("t");
    let v = with(&main, vec![("test", test.clone()), ("split", floats(&[0.75, 0.25])), ("seed", Value::Int(3))]);
    let d = load(&v, Path::new("/")).expect("loads");
    assert_eq!(d.info, checker(&v).expect("checks"));
    assert_eq!((d.train.n, d.valid.n, d.test.n), (16, 4, 6));
    // The test split is the test file, in its order, scaled by the train split's mean and deviation.
    assert_eq!(d.test.y, vec![3., 2., 1., 0., 0., 1.]);
    let expect: Vec<f32> = (0..24).map(|i| (200.0 + i as f32 - d.mean[0]) / d.std[0]).collect();
    let f = d.features();
    assert_eq!(rows_of(&d.test, f), expect);
    // Scaling fitted on train alone: the train split has mean 0, and the test's 200+ values are not in it.
    assert!(mean(&rows_of(&d.train, f)).abs() < 1e-5, "{}", mean(&rows_of(&d.train, f)));
    assert!(d.mean[0] < 50.0);
    // Deterministic for a seed; stratified train/valid (5 of each class: 4 train, 1 valid).
    let again = load(&v, Path::new("/")).expect("loads");
    assert_eq!((rows_of(&again.train, f), again.valid.y), (rows_of(&d.train, f), d.valid.y.clone()));
    for c in 0..4 {
        assert!(d.valid.y.iter().filter(|y| **y as usize == c).count() >= 1, "class {c} in valid");
    }
    // Without `split`, the default two fractions.
    let d = load(&with(&main, vec![("test", test.clone())]), Path::new("/")).expect("loads");
    assert_eq!((d.train.n + d.valid.n, d.test.n), (20, 6));
    // Three fractions with `test:` are refused by the loader and the checker alike, saying why.
    let three = with(&main, vec![("test", test.clone()), ("split", floats(&[0.7, 0.15, 0.15]))]);
    let e = load(&three, Path::new("/")).expect_err("three fractions").message;
    assert!(e.contains("two fractions, train and valid"), "{e}");
    assert!(checker(&three).expect_err("three").contains("two fractions, train and valid"));
}

#[test]
fn with_fixed_test_and_valid_sources_the_main_source_is_all_train() {
    let (main, test) = fixed_fixture("tv");
    let v = with(&main, vec![("test", test.clone()), ("valid", test.clone())]);
    let d = load(&v, Path::new("/")).expect("loads");
    assert_eq!(d.info, checker(&v).expect("checks"));
    assert_eq!((d.train.n, d.valid.n, d.test.n), (20, 6, 6));
    assert_eq!(d.valid, d.test);
    let split = with(&v, vec![("split", floats(&[0.5, 0.5]))]);
    assert!(load(&split, Path::new("/")).expect_err("nothing to split").message.contains("all train"));
    assert!(checker(&split).expect_err("nothing to split").contains("all train"));
    // A fixed valid source alone: `split` carves train and test.
    let v = with(&main, vec![("valid", test), ("split", floats(&[0.8, 0.2]))]);
    let d = load(&v, Path::new("/")).expect("loads");
    assert_eq!((d.train.n, d.valid.n, d.test.n), (16, 6, 4));
}

#[test]
fn a_fixed_source_that_does_not_fit_the_main_one_is_refused_by_checker_and_loader() {
    let (main, _) = fixed_fixture("bad");
    let px = [7u8; 5 * 9];
    let other_shape = idx_value(
        &tmp("fx-bad-si", &idx_bytes(0x08, &[5, 3, 3], &px)),
        &tmp("fx-bad-sl", &idx_bytes(0x08, &[5], &[0, 1, 2, 3, 0])),
    );
    let v = with(&main, vec![("test", other_shape)]);
    let want = "the `test:` source's samples are [1, 3, 3], the training source's [1, 2, 2]";
    assert_eq!(checker(&v).expect_err("shape"), want);
    assert_eq!(load(&v, Path::new("/")).expect_err("shape").message, want);
    // A class the training labels lack (label 6: 7 classes against 4).
    let more = idx_value(
        &tmp("fx-bad-ci", &idx_bytes(0x08, &[2, 2, 2], &[1; 8])),
        &tmp("fx-bad-cl", &idx_bytes(0x08, &[2], &[0, 6])),
    );
    let v = with(&main, vec![("valid", more)]);
    let want = "the `valid:` source has 7 classes, the training source 4: the training source has no class 6";
    assert_eq!(checker(&v).expect_err("classes"), want);
    assert_eq!(load(&v, Path::new("/")).expect_err("classes").message, want);
    // Another task; a nested split.
    let v = with(&main, vec![("test", Value::sym("digits"))]);
    assert!(checker(&v).expect_err("digits").contains("[1, 8, 8]"));
    let sine = call("synthetic.moons", vec![(Some("test"), call("synthetic.sine", vec![]))]);
    assert_eq!(checker(&sine).expect_err("task"), "the `test:` source's samples are [1], the training source's [2]");
    let nested = with(&main, vec![("test", with(&main, vec![("split", floats(&[0.5, 0.5]))]))]);
    assert!(checker(&nested).expect_err("nested split").contains("takes no `split`"));
    assert!(load(&nested, Path::new("/")).expect_err("nested split").message.contains("takes no `split`"));
}

#[test]
fn fixed_splits_work_for_any_source_and_their_files_are_fingerprinted() {
    // Generic: generated sources too (the test source's own `seed` is its generator's).
    let test = call("synthetic.moons", vec![(Some("n"), Value::Int(40)), (Some("seed"), Value::Int(9))]);
    let v = call("synthetic.moons", vec![(Some("n"), Value::Int(100)), (Some("test"), test)]);
    let d = load(&v, Path::new(".")).expect("loads");
    assert_eq!(d.info, checker_info(&v, Path::new(".")));
    assert_eq!((d.train.n + d.valid.n, d.test.n), (100, 40));
    // The nested source's files count in the data's fingerprints.
    let (main, test) = fixed_fixture("fp");
    let v = with(&main, vec![("test", test)]);
    let names: Vec<String> = files::files(&v, Path::new("/"))
        .iter()
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    assert_eq!(names, ["fx-fp-i", "fx-fp-l", "fx-fp-ti.gz", "fx-fp-tl"]);
    assert_eq!(fingerprints(&v, Path::new("/")).len(), 4);
}
