//! Image folders, CIFAR batches and NumPy arrays (`images`, `cifar`, `npy`, `npz`): for each,
//! the checker's `DataInfo` equals the loader's, known values decode as written, every bad
//! input is a diagnostic naming its file (and line or sample), and `skip_bad` counts what it
//! skipped. Every fixture is written here (images encoded with the `image` crate, CIFAR
//! records and `.npy` files byte by byte); `bma run` trains one epoch on an image folder.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use bma::check::data::describe;
use bma::data::{DataError, Raw, load_raw};
use bma::diagnostic::{Code, Diagnostic};
use bma::ir::{DataInfo, Task, Value};
use bma::source::Span;
use common::{bma, call, npy_bytes, s, stderr, temp_dir, write};

fn ints(v: &[i64]) -> Value {
    Value::List(v.iter().map(|i| Value::Int(*i)).collect())
}

fn check(v: &Value, base: &Path) -> Result<DataInfo, Diagnostic> {
    describe(v, Span::default(), &|_| Span::default(), base)
}

fn load(v: &Value, base: &Path) -> Result<Raw, DataError> {
    load_raw(v, base)
}

/// Checks and loads `v`; asserts the invariant (the checker's DataInfo is the loader's).
fn both(v: &Value, base: &Path) -> Raw {
    let info = check(v, base).unwrap_or_else(|d| panic!("checker refuses {v}: {}", d.message));
    let raw = load(v, base).unwrap_or_else(|e| panic!("loader refuses {v}: {e}"));
    assert_eq!(info, raw.info, "checker and loader disagree on {v}");
    // The values as f32, whether the loader keeps them so or as bytes (image-like sources).
    let x = raw.values().expect("reads");
    assert_eq!(x.len(), raw.len() * raw.info.features());
    Raw { x, stored: None, ..raw }
}

/// Both refuse `v`; both messages contain every one of `needles`. Gives the checker's code.
fn both_refuse(v: &Value, base: &Path, needles: &[&str]) -> Code {
    let d = check(v, base).expect_err("the checker accepts bad data");
    let e = load(v, base).expect_err("the loader accepts bad data").to_string();
    for n in needles {
        assert!(d.message.contains(n), "checker's `{}` lacks `{n}`", d.message);
        assert!(e.contains(n), "loader's `{e}` lacks `{n}`");
    }
    d.code
}

fn png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y))).save(path).expect("encode");
}

/// A folder `cats`/`dogs`/`owls` of PNG, JPEG and BMP images of `w x h`, plus files to ignore.
fn folder(root: &Path, w: u32, h: u32) -> PathBuf {
    let dir = root.join("pets");
    png(&dir.join("cats/a.png"), w, h, |x, y| if (x, y) == (0, 0) { [255, 0, 51] } else { [10, 20, 30] });
    png(&dir.join("cats/b.PNG"), w, h, |x, _| [x as u8 * 20, 0, 0]);
    png(&dir.join("dogs/c.jpg"), w, h, |_, _| [200, 200, 200]);
    png(&dir.join("dogs/d.jpeg"), w, h, |_, _| [100, 100, 100]);
    png(&dir.join("owls/e.bmp"), w, h, |_, y| [0, y as u8 * 10, 0]);
    png(&dir.join("owls/f.bmp"), w, h, |_, _| [0, 0, 255]);
    std::fs::write(dir.join("cats/notes.txt"), "not an image, ignored by its extension").expect("write");
    std::fs::write(dir.join("README"), "a file beside the class folders, ignored").expect("write");
    png(&dir.join(".cache/x.png"), 1, 1, |_, _| [0, 0, 0]);
    dir
}

fn images(dir: &Path, more: Vec<(Option<&str>, Value)>) -> Value {
    let mut args = vec![(None, s(&dir.display().to_string()))];
    args.extend(more);
    call("images", args)
}

#[test]
fn an_image_folder_checks_and_loads_alike_with_known_pixels() {
    let t = temp_dir();
    let dir = folder(t.path(), 6, 4);
    let raw = both(&images(&dir, vec![]), t.path());
    assert_eq!(raw.info.shape, vec![3, 4, 6]);
    assert_eq!(raw.info.classes, 3);
    assert_eq!(raw.info.task, Task::Classification);
    assert_eq!(raw.len(), 6, "the .txt, README and hidden folder are ignored");
    assert_eq!(raw.extras.class_names, vec!["cats", "dogs", "owls"]);
    assert_eq!(raw.y, vec![0., 0., 1., 1., 2., 2.]);
    // cats/a.png (lossless): pixel (0, 0) is (255, 0, 51), layout [c, h, w].
    let hw = 4 * 6;
    assert_eq!((raw.x[0], raw.x[hw], raw.x[2 * hw]), (1.0, 0.0, 0.2));
    assert_eq!(raw.x[1], 10.0 / 255.0);
    // owls/e.bmp (lossless): green is 10 * row.
    let e = 4 * 3 * hw;
    assert_eq!(raw.x[e + hw + 3 * 6], 30.0 / 255.0);
    // The JPEG is close to its grey 200 (lossy).
    assert!((raw.x[2 * 3 * hw] - 200.0 / 255.0).abs() < 0.02, "{}", raw.x[2 * 3 * hw]);

    // One channel: the luma of (10, 20, 30), and the shape follows.
    let grey = both(&images(&dir, vec![(Some("channels"), Value::Int(1))]), t.path());
    assert_eq!(grey.info.shape, vec![1, 4, 6]);
    let luma = grey.x[1] * 255.0;
    assert!((luma - 18.0).abs() <= 1.0, "{luma}");
    // Relative to the base folder, as the .bma file's folder.
    let rel = both(&call("images", vec![(None, s("pets")), (Some("size"), ints(&[4, 4]))]), t.path());
    assert_eq!(rel.info.shape, vec![3, 4, 4]);
    // Through the whole pipeline: split and standardised.
    let d = bma::data::load(&images(&dir, vec![]), t.path()).expect("splits");
    assert_eq!(d.train.n + d.valid.n + d.test.n, 6);
    assert_eq!(d.extras.class_names.len(), 3);
}

#[test]
fn size_centre_crops_then_resizes() {
    let t = temp_dir();
    let dir = t.path().join("wide");
    // 8 wide, 4 high; the value of a pixel is 30 * its column.
    for class in ["a", "b"] {
        png(&dir.join(format!("{class}/1.png")), 8, 4, |x, _| [x as u8 * 30, 0, 0]);
    }
    // To 4 x 4: the centred 4 x 4 window (columns 2 to 5), no resizing needed.
    let raw = both(&images(&dir, vec![(Some("size"), ints(&[4, 4]))]), t.path());
    assert_eq!(raw.info.shape, vec![3, 4, 4]);
    let row: Vec<f32> = raw.x[..4].iter().map(|v| (v * 255.0).round()).collect();
    assert_eq!(row, vec![60., 90., 120., 150.]);
    // To 2 x 4 (same aspect ratio): resized, values stay between the extremes.
    let small = both(&images(&dir, vec![(Some("size"), ints(&[2, 4]))]), t.path());
    assert_eq!(small.info.shape, vec![3, 2, 4]);
    assert!(small.x[..4].windows(2).all(|w| w[0] < w[1]), "{:?}", &small.x[..4]);
    assert!(small.x.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn mixed_sizes_without_size_name_both_files() {
    let t = temp_dir();
    let dir = folder(t.path(), 6, 4);
    png(&dir.join("owls/g.png"), 5, 5, |_, _| [1, 2, 3]);
    let code = both_refuse(&images(&dir, vec![]), t.path(), &["g.png", "is 5x5", "a.png", "is 4x6", "size: [h, w]"]);
    assert_eq!(code, Code::BadDataFile);
    // With a size they are all cropped and resized.
    let raw = both(&images(&dir, vec![(Some("size"), ints(&[4, 4]))]), t.path());
    assert_eq!(raw.len(), 7);
    // skip_bad leaves the odd one out, and says so.
    let raw = both(&images(&dir, vec![(Some("skip_bad"), Value::Bool(true))]), t.path());
    assert_eq!((raw.len(), raw.extras.skipped), (6, 1));
    assert!(raw.extras.notes[0].contains("skipped 1 bad sample(s) of 7"), "{:?}", raw.extras.notes);
}

#[test]
fn corrupt_and_truncated_images_are_named_and_skip_bad_counts_them() {
    let t = temp_dir();
    let dir = folder(t.path(), 6, 4);
    std::fs::write(dir.join("dogs/broken.png"), b"this is not a PNG").expect("write");
    let good = std::fs::read(dir.join("cats/a.png")).expect("read");
    std::fs::write(dir.join("owls/cut.png"), &good[..good.len() / 2]).expect("write");
    let sized = images(&dir, vec![(Some("size"), ints(&[4, 6]))]);
    // With a size the checker reads the listing only: the pixels are the loader's to refuse.
    let info = check(&sized, t.path()).expect("the listing is fine");
    assert_eq!(info.shape, vec![3, 4, 6]);
    let e = load(&sized, t.path()).expect_err("a broken image").to_string();
    assert!(e.contains("broken.png") && e.contains("not a usable image"), "{e}");
    // Without a size the checker reads the headers, and names the broken file.
    let d = check(&images(&dir, vec![]), t.path()).expect_err("a broken header");
    assert!(d.message.contains("broken.png"), "{}", d.message);
    // skip_bad: both are skipped, the count and the first reason are a note.
    let skip = images(&dir, vec![(Some("size"), ints(&[4, 6])), (Some("skip_bad"), Value::Bool(true))]);
    let raw = both(&skip, t.path());
    assert_eq!((raw.len(), raw.extras.skipped), (6, 2));
    assert!(raw.extras.notes[0].contains("skipped 2 bad sample(s) of 8"), "{:?}", raw.extras.notes);
    assert!(raw.x.iter().all(|v| v.is_finite()));
    // A class whose every image is bad is an error even with skip_bad.
    for f in ["c.jpg", "d.jpeg"] {
        std::fs::write(dir.join("dogs").join(f), b"junk").expect("write");
    }
    let e = load(&skip, t.path()).expect_err("an empty class").to_string();
    assert!(e.contains("class `dogs` has no usable image"), "{e}");
}

#[test]
fn bad_folders_and_arguments_are_diagnostics() {
    let t = temp_dir();
    // Missing folder.
    let d = check(&images(&t.path().join("nowhere"), vec![]), t.path()).expect_err("missing");
    assert_eq!(d.code, Code::MissingDataFile);
    assert!(load(&images(&t.path().join("nowhere"), vec![]), t.path()).is_err());
    // No class folders.
    let flat = t.path().join("flat");
    png(&flat.join("x.png"), 2, 2, |_, _| [0, 0, 0]);
    both_refuse(&images(&flat, vec![]), t.path(), &["flat", "no class folders"]);
    // One class.
    let one = t.path().join("one");
    png(&one.join("only/x.png"), 2, 2, |_, _| [0, 0, 0]);
    both_refuse(&images(&one, vec![]), t.path(), &["one class folder (`only`)"]);
    // An empty class folder (a text file is not an image).
    let dir = folder(t.path(), 3, 3);
    std::fs::create_dir_all(dir.join("zebras")).expect("dir");
    std::fs::write(dir.join("zebras/readme.txt"), "no images yet").expect("write");
    assert_eq!(both_refuse(&images(&dir, vec![]), t.path(), &["zebras", "holds no image"]), Code::BadDataFile);
    std::fs::remove_dir_all(dir.join("zebras")).expect("rm");
    // Arguments: a channel count other than 1 or 3, a bad size, a non-bool skip_bad.
    for (k, v, needle) in [
        ("channels", Value::Int(4), "`channels` is 1 (grey) or 3 (RGB)"),
        ("size", ints(&[0, 4]), "`size` is `[h, w]`"),
        ("size", ints(&[4]), "`size` is `[h, w]`"),
        ("skip_bad", Value::Int(1), "`skip_bad` is true or false"),
    ] {
        let v = images(&dir, vec![(Some(k), v)]);
        let d = check(&v, t.path()).expect_err("bad argument");
        assert_eq!(d.code, Code::InvalidValue, "{}", d.message);
        assert!(d.message.contains(needle), "{}", d.message);
        assert!(load(&v, t.path()).expect_err("bad argument").to_string().contains(needle));
    }
}

#[test]
fn a_csv_list_names_images_and_classes() {
    let t = temp_dir();
    let dir = folder(t.path(), 6, 4);
    let list = "path,label\ncats/a.png,10\ndogs/c.jpg,2\nowls/e.bmp,10\n\"cats/b.PNG\",2\n";
    let csv = write(&dir, "list.csv", list);
    let v = images(&csv, vec![(Some("size"), ints(&[4, 4])), (Some("channels"), Value::Int(1))]);
    let raw = both(&v, t.path());
    assert_eq!(raw.info.shape, vec![1, 4, 4]);
    // Integer labels sort numerically: 2 before 10.
    assert_eq!(raw.extras.class_names, vec!["2", "10"]);
    assert_eq!(raw.y, vec![1., 0., 1., 0.]);
    // A row that is not UTF-8 names the file and line; skip_bad skips it on both sides.
    let mut bytes = list.as_bytes().to_vec();
    bytes.extend_from_slice(b"owls/f.bmp,\xff\xfe\n");
    std::fs::write(&csv, &bytes).expect("write");
    let e = both_refuse(&v, t.path(), &["list.csv", ":6:", "not UTF-8"]);
    assert_eq!(e, Code::BadDataFile);
    let skip = images(&csv, vec![(Some("size"), ints(&[4, 4])), (Some("skip_bad"), Value::Bool(true))]);
    let raw = both(&skip, t.path());
    assert_eq!((raw.len(), raw.extras.skipped), (4, 1));
    // A missing file and a row without its label.
    std::fs::write(&csv, format!("{list}cats/gone.png,2\n")).expect("write");
    let e = load(&v, t.path()).expect_err("missing image").to_string();
    assert!(e.contains("gone.png") && e.contains(":6:"), "{e}");
    std::fs::write(&csv, format!("{list}cats/a.png\n")).expect("write");
    both_refuse(&v, t.path(), &["list.csv", ":6:", "1 fields where the header has 2"]);
    // A list without the header columns.
    std::fs::write(&csv, "file,class\na.png,1\n").expect("write");
    both_refuse(&v, t.path(), &["`path` and `label` columns"]);
}

// ------------------------------------------------------------------------------ CIFAR

fn record(label: &[u8], fill: u8) -> Vec<u8> {
    let mut r = label.to_vec();
    r.extend((0..3072).map(|i| {
        if i == 0 {
            255
        } else if i == 1024 {
            51
        } else {
            fill
        }
    }));
    r
}

#[test]
fn cifar_batches_check_and_load_alike() {
    let t = temp_dir();
    let c10 = t.path().join("c10");
    std::fs::create_dir_all(&c10).expect("dir");
    let batch = |labels: &[u8]| labels.iter().flat_map(|l| record(&[*l], *l)).collect::<Vec<u8>>();
    std::fs::write(c10.join("data_batch_1.bin"), batch(&[0, 1, 9])).expect("write");
    std::fs::write(c10.join("data_batch_2.bin"), batch(&[3, 4])).expect("write");
    std::fs::write(c10.join("test_batch.bin"), batch(&[5, 6])).expect("write");
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(c10.join("batches.meta.txt"), names).expect("write");
    let train = call("cifar", vec![(None, s("c10"))]);
    let raw = both(&train, t.path());
    assert_eq!((raw.info.shape.clone(), raw.info.classes, raw.len()), (vec![3, 32, 32], 10, 5));
    assert_eq!(raw.y, vec![0., 1., 9., 3., 4.]);
    assert_eq!(raw.extras.class_names[9], "truck");
    // Red plane first, then green: pixel 0 is (255, 51, fill).
    assert_eq!((raw.x[0], raw.x[1024], raw.x[2048]), (1.0, 0.2, 0.0));
    assert_eq!(raw.x[3072 * 2 + 5], 9.0 / 255.0);
    let test = call("cifar", vec![(None, s("c10")), (Some("part"), Value::sym("test"))]);
    let raw = both(&test, t.path());
    assert_eq!(raw.y, vec![5., 6.]);
    // A batch cut short: bytes expected and found.
    let mut cut = batch(&[1, 2]);
    cut.truncate(3073 + 100);
    std::fs::write(c10.join("data_batch_2.bin"), cut).expect("write");
    both_refuse(&train, t.path(), &["data_batch_2.bin", "6146 bytes expected", "3173 found"]);
    // A label out of range names the record (the checker reads sizes only).
    std::fs::write(c10.join("data_batch_2.bin"), batch(&[3, 12])).expect("write");
    assert!(check(&train, t.path()).is_ok());
    let e = load(&train, t.path()).expect_err("label 12").to_string();
    assert!(e.contains("data_batch_2.bin") && e.contains("record 1: label 12"), "{e}");
    // `label: coarse` is CIFAR-100's.
    let coarse = call("cifar", vec![(None, s("c10")), (Some("label"), Value::sym("coarse"))]);
    both_refuse(&coarse, t.path(), &["CIFAR-10 has one label"]);
    // Not a CIFAR folder.
    both_refuse(&call("cifar", vec![(None, s("."))]), t.path(), &["no CIFAR batches"]);

    // CIFAR-100: coarse and fine labels, from the folder that holds `cifar-100-binary`.
    let c100 = t.path().join("dl/cifar-100-binary");
    std::fs::create_dir_all(&c100).expect("dir");
    let b100 = |pairs: &[(u8, u8)]| pairs.iter().flat_map(|(c, f)| record(&[*c, *f], 7)).collect::<Vec<u8>>();
    std::fs::write(c100.join("train.bin"), b100(&[(3, 99), (19, 0), (0, 42)])).expect("write");
    std::fs::write(c100.join("test.bin"), b100(&[(1, 1)])).expect("write");
    let fine = both(&call("cifar", vec![(None, s("dl"))]), t.path());
    assert_eq!((fine.info.classes, fine.y.clone()), (100, vec![99., 0., 42.]));
    let coarse = both(&call("cifar", vec![(None, s("dl")), (Some("label"), Value::sym("coarse"))]), t.path());
    assert_eq!((coarse.info.classes, coarse.y.clone()), (20, vec![3., 19., 0.]));
}

// ------------------------------------------------------------------------------ NumPy

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn npy_headers_are_numpys() {
    // `np.save(f, np.arange(3))` writes exactly these 128 bytes before the data (NumPy's
    // format spec: magic, version 1.0, a little-endian u16 header length of 118 = b'v').
    let numpy = npy_bytes(1, "<i8", false, &[3], &i64s(&[0, 1, 2]));
    assert_eq!(&numpy[..10], b"\x93NUMPY\x01\x00v\x00");
    assert_eq!(&numpy[10..60], b"{'descr': '<i8', 'fortran_order': False, 'shape': ");
    assert_eq!(numpy[127], b'\n');
    let h = bma::data::npy_header(&numpy).expect("parses");
    assert_eq!((h.shape.clone(), h.offset, h.big_endian), (vec![3], 128, false));
    // Version 2 (a u32 length), big-endian, and a refusal for Fortran order.
    let v2 = npy_bytes(2, ">f8", false, &[2, 5], &[]);
    let h = bma::data::npy_header(&v2).expect("parses");
    assert_eq!((h.shape.clone(), h.offset % 64, h.big_endian), (vec![2, 5], 0, true));
    let e = bma::data::npy_header(&npy_bytes(1, "<f4", true, &[2, 2], &[])).expect_err("fortran");
    assert!(e.contains("Fortran order"), "{e}");
    let e = bma::data::npy_header(&npy_bytes(1, "<c8", false, &[2], &[])).expect_err("complex");
    assert!(e.contains("`<c8` is not supported"), "{e}");
    assert!(bma::data::npy_header(b"\x93NUMPY\x01\x00\xff\xff{'descr'").is_err());
    assert!(bma::data::npy_header(b"PK\x03\x04").is_err());
}

#[test]
fn npy_files_check_and_load_alike() {
    let t = temp_dir();
    let d = t.path();
    // x: 4 samples of 2 x 3 (float32) -> [1, 2, 3]; y: int64 classes.
    let xs: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
    std::fs::write(d.join("x.npy"), npy_bytes(1, "<f4", false, &[4, 2, 3], &f32s(&xs))).expect("write");
    std::fs::write(d.join("y.npy"), npy_bytes(1, "<i8", false, &[4], &i64s(&[0, 2, 1, 2]))).expect("write");
    let v = call("npy", vec![(Some("x"), s("x.npy")), (Some("y"), s("y.npy"))]);
    let raw = both(&v, d);
    assert_eq!((raw.info.shape.clone(), raw.info.classes), (vec![1, 2, 3], 3));
    assert_eq!(raw.x, xs);
    assert_eq!(raw.y, vec![0., 2., 1., 2.]);
    // Big-endian float64 x of [n, d], uint8 y of [n, 1], version 2 headers.
    let be: Vec<u8> = [1.5f64, -2.0, 3.0, 4.25].iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(d.join("xb.npy"), npy_bytes(2, ">f8", false, &[2, 2], &be)).expect("write");
    std::fs::write(d.join("yb.npy"), npy_bytes(2, "|u1", false, &[2, 1], &[1, 0])).expect("write");
    let raw = both(&call("npy", vec![(None, s("xb.npy")), (None, s("yb.npy"))]), d);
    assert_eq!((raw.info.shape.clone(), raw.x.clone()), (vec![2], vec![1.5, -2.0, 3.0, 4.25]));
    // A float y is a class only if it is a non-negative integer; else `task: regression`.
    std::fs::write(d.join("yf.npy"), npy_bytes(1, "<f4", false, &[4], &f32s(&[0.5, 1.0, 2.0, 3.0]))).expect("write");
    let cls = call("npy", vec![(None, s("x.npy")), (None, s("yf.npy"))]);
    both_refuse(&cls, d, &["yf.npy", "sample 0: label 0.5 is not a class", "task: regression"]);
    let reg = call("npy", vec![(None, s("x.npy")), (None, s("yf.npy")), (Some("task"), Value::sym("regression"))]);
    let raw = both(&reg, d);
    assert_eq!((raw.info.task, raw.info.classes, raw.y[0]), (Task::Regression, 1, 0.5));
    // A file cut short: bytes expected and found, from the size alone.
    let full = npy_bytes(1, "<f4", false, &[4, 2, 3], &f32s(&xs));
    std::fs::write(d.join("xc.npy"), &full[..full.len() - 8]).expect("write");
    let cut = call("npy", vec![(None, s("xc.npy")), (None, s("y.npy"))]);
    both_refuse(&cut, d, &["xc.npy", "cut short: 224 bytes expected, 216 found"]);
    // x and y of different lengths; one class; a NaN input (loader: names the sample).
    std::fs::write(d.join("y3.npy"), npy_bytes(1, "<i4", false, &[3], &[0u8; 12])).expect("write");
    both_refuse(&call("npy", vec![(None, s("x.npy")), (None, s("y3.npy"))]), d, &["y3.npy", "(4,)"]);
    std::fs::write(d.join("y1.npy"), npy_bytes(1, "<i8", false, &[4], &i64s(&[1, 1, 1, 1]))).expect("write");
    both_refuse(&call("npy", vec![(None, s("x.npy")), (None, s("y1.npy"))]), d, &["every label is 1"]);
    let mut nan = xs.clone();
    nan[13] = f32::NAN;
    std::fs::write(d.join("xn.npy"), npy_bytes(1, "<f4", false, &[4, 2, 3], &f32s(&nan))).expect("write");
    let v = call("npy", vec![(None, s("xn.npy")), (None, s("y.npy"))]);
    assert!(check(&v, d).is_ok(), "the checker reads headers only");
    let e = load(&v, d).expect_err("NaN").to_string();
    assert!(e.contains("xn.npy") && e.contains("sample 2") && e.contains("NaN"), "{e}");
    // Missing file.
    let d2 = check(&call("npy", vec![(None, s("none.npy")), (None, s("y.npy"))]), d).expect_err("missing");
    assert_eq!(d2.code, Code::MissingDataFile);
}

fn npz(path: &Path, members: &[(&str, Vec<u8>)], deflate: bool) {
    let file = std::fs::File::create(path).expect("create");
    let mut z = zip::ZipWriter::new(file);
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    for (name, bytes) in members {
        z.start_file(*name, zip::write::FileOptions::default().compression_method(method)).expect("member");
        z.write_all(bytes).expect("write member");
    }
    z.finish().expect("finish");
}

#[test]
fn npz_archives_check_and_load_alike() {
    let t = temp_dir();
    let d = t.path();
    let xs: Vec<f32> = (0..2 * 3 * 2 * 2).map(|i| i as f32).collect();
    let x = npy_bytes(1, "<f4", false, &[2, 3, 2, 2], &f32s(&xs));
    let y = npy_bytes(1, "<i8", false, &[2], &i64s(&[1, 0]));
    for deflate in [false, true] {
        npz(&d.join("a.npz"), &[("x.npy", x.clone()), ("y.npy", y.clone())], deflate);
        let raw = both(&call("npz", vec![(None, s("a.npz"))]), d);
        assert_eq!((raw.info.shape.clone(), raw.info.classes), (vec![3, 2, 2], 2));
        assert_eq!((raw.x.clone(), raw.y.clone()), (xs.clone(), vec![1., 0.]));
    }
    // Other member names; a missing member lists those there are.
    npz(&d.join("b.npz"), &[("inputs.npy", x.clone()), ("targets.npy", y.clone())], true);
    let named = call("npz", vec![(None, s("b.npz")), (Some("x"), s("inputs")), (Some("y"), s("targets"))]);
    assert_eq!(both(&named, d).len(), 2);
    both_refuse(&call("npz", vec![(None, s("b.npz"))]), d, &["b.npz", "no array `x`", "inputs, targets"]);
    // A member cut short (from the central directory's size), and a file that is not a zip.
    npz(&d.join("c.npz"), &[("x.npy", x[..x.len() - 4].to_vec()), ("y.npy", y.clone())], true);
    both_refuse(&call("npz", vec![(None, s("c.npz"))]), d, &["c.npz:x.npy", "cut short"]);
    std::fs::write(d.join("d.npz"), b"not a zip").expect("write");
    both_refuse(&call("npz", vec![(None, s("d.npz"))]), d, &["d.npz", "not a usable .npz"]);
}

// --------------------------------------------------------------------- bma run, end to end

#[test]
fn bma_run_trains_on_an_image_folder_and_reports_skipped_images() {
    let t = temp_dir();
    for (class, value) in [("dark", 30u8), ("light", 220u8)] {
        for i in 0..12u8 {
            png(&t.path().join(format!("imgs/{class}/{i}.png")), 8, 8, |x, y| {
                [value.wrapping_add(((x + y) as u8 + i) % 7), value, value]
            });
        }
    }
    std::fs::write(t.path().join("imgs/light/bad.png"), b"corrupt").expect("write");
    let spec = write(
        t.path(),
        "imgs.bma",
        "experiment imgs {
  data = images(\"imgs\", size: [8, 8], channels: 1, skip_bad: true, split: [0.5, 0.25, 0.25], seed: 1)
  model { conv2d(4, 3) relu flatten dense(data.classes) }
  train { optimizer = adam(0.01)  epochs = 1  batch = 8 }
  objective { maximize accuracy }
  search { strategy = random  trials = 1  seed = 1 }
}
",
    );
    let check = bma().arg("check").arg(&spec).output().expect("bma check");
    assert!(check.status.success(), "{:?} {}{}", check.status, String::from_utf8_lossy(&check.stdout), stderr(&check));
    let out = t.path().join("out");
    let o = bma().arg("run").arg(&spec).arg("--out").arg(&out).args(["--progress", "plain"]).output().expect("runs");
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("skipped 1 bad sample(s) of 25") && err.contains("bad.png"), "{err}");
    let results = common::results(&out);
    let trials = results["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 1, "{results}");
    assert_eq!(trials[0]["state"], "complete", "{results}");
    // The class-folder tree is one fingerprint in the saved model, not one per image.
    let model = find_model_json(&out).expect("a saved model.json");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).expect("reads")).expect("json");
    let files =
        saved["config"]["data_files"].as_array().or_else(|| saved["data_files"].as_array()).expect("data_files");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["files"], 25, "24 images and the corrupt one: {files:?}");
}

fn find_model_json(dir: &Path) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(found) = find_model_json(&p) {
                return Some(found);
            }
        } else if p.file_name().is_some_and(|n| n == "model.json") {
            return Some(p);
        }
    }
    None
}
