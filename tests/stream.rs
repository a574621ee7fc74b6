//! Streamed datasets (`stream: true`, `data::cache`): a streamed split gives the in-memory
//! split's batches bit for bit and trains to the same model; the cache file is reused while
//! the data is unchanged, rebuilt when a file changes or the cache is cut short or damaged
//! (with a note, never a panic), and a build that fails leaves no file that is trusted later.
//! Every fixture (a PNG class-folder tree, gzipped IDX files) is written here.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bma::check::data::describe;
use bma::data::{self, Dataset, Split};
use bma::diagnostic::Code;
use bma::ir::{self, Value};
use bma::source::{Source, Span};
use bma::train::{self, Control, DeviceKind, TrainConfig};
use common::{call, s, temp_dir};

/// `images("imgs", channels: 3, split, seed)`, streamed or not.
fn images(stream: bool) -> Value {
    let mut args = vec![
        (None, s("imgs")),
        (Some("channels"), Value::Int(3)),
        (Some("split"), Value::List(vec![Value::Float(0.6), Value::Float(0.2), Value::Float(0.2)])),
        (Some("seed"), Value::Int(7)),
    ];
    if stream {
        args.push((Some("stream"), Value::Bool(true)));
    }
    call("images", args)
}

/// `idx("x.idx.gz", "y.idx", stream?)` with 20% of it as valid and test each.
fn idx(stream: bool) -> Value {
    let mut args = vec![(None, s("x.idx.gz")), (None, s("y.idx")), (Some("seed"), Value::Int(3))];
    if stream {
        args.push((Some("stream"), Value::Bool(true)));
        args.push((Some("cache"), s("my-cache")));
    }
    call("idx", args)
}

/// Pseudo-random bytes, the same for the same `seed`.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// 3 classes of 12 RGB images, 6 wide and 5 high; class `c` is brighter in channel `c`.
fn write_pngs(dir: &Path) {
    for c in 0..3u8 {
        let folder = dir.join(format!("imgs/class{c}"));
        std::fs::create_dir_all(&folder).expect("dir");
        for i in 0..12u64 {
            write_png(&folder.join(format!("{i}.png")), c, u64::from(c) * 100 + i);
        }
    }
}

fn write_png(path: &Path, class: u8, seed: u64) {
    let noise = bytes(6 * 5 * 3, seed);
    let img = image::RgbImage::from_fn(6, 5, |x, y| {
        let k = ((y * 6 + x) * 3) as usize;
        let mut px = [noise[k] / 2, noise[k + 1] / 2, noise[k + 2] / 2];
        px[usize::from(class)] = px[usize::from(class)].saturating_add(120);
        image::Rgb(px)
    });
    img.save(path).expect("encode");
}

/// 60 IDX images of 4 x 4 bytes (gzipped) and their labels (3 classes, plain).
fn write_idx(dir: &Path) {
    let n = 60u32;
    let mut x = vec![0, 0, 0x08, 3];
    for d in [n, 4, 4] {
        x.extend_from_slice(&d.to_be_bytes());
    }
    let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    for (i, l) in labels.iter().enumerate() {
        let mut img = bytes(16, i as u64 + 1);
        img[usize::from(*l) * 5] = 255;
        x.extend_from_slice(&img);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&x).expect("gzip");
    std::fs::write(dir.join("x.idx.gz"), gz.finish().expect("gzip")).expect("write");
    let mut y = vec![0, 0, 0x08, 1];
    y.extend_from_slice(&n.to_be_bytes());
    y.extend_from_slice(&labels);
    std::fs::write(dir.join("y.idx"), y).expect("write");
}

/// Every row of `split`, through `Split::gather`, as bits.
fn all_rows(split: &Split, features: usize) -> Vec<u32> {
    let rows: Vec<usize> = (0..split.n).collect();
    let mut v = Vec::new();
    split.gather(&rows, features, &mut v).expect("reads");
    v.iter().map(|f| f.to_bits()).collect()
}

/// The two datasets hold the same samples in the same order, bit for bit; `streamed` keeps
/// them in its cache file, not in memory.
fn assert_same(memory: &Dataset, streamed: &Dataset) {
    assert_eq!(memory.info.shape, streamed.info.shape);
    assert_eq!((memory.info.classes, memory.info.task), (streamed.info.classes, streamed.info.task));
    assert_eq!((&memory.mean, &memory.std), (&streamed.mean, &streamed.std));
    assert_eq!(memory.extras.class_names, streamed.extras.class_names);
    let f = memory.features();
    for (a, b) in [(&memory.train, &streamed.train), (&memory.valid, &streamed.valid), (&memory.test, &streamed.test)] {
        assert!(a.n > 0 && a.stored.as_ref().is_none_or(|r| !r.cache.on_disk()));
        assert!(
            b.x.is_empty() && b.stored.as_ref().is_some_and(|r| r.cache.on_disk()),
            "a streamed split keeps no rows in memory"
        );
        assert_eq!((a.n, &a.y), (b.n, &b.y));
        assert_eq!(all_rows(a, f), all_rows(b, f));
        // Batches of rows in a shuffled order, as training asks for them.
        let order: Vec<usize> = (0..a.n).rev().step_by(2).chain((0..a.n).step_by(2)).collect();
        for chunk in order.chunks(5) {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            a.gather(chunk, f, &mut x).expect("reads");
            b.gather(chunk, f, &mut y).expect("reads");
            assert_eq!(
                x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

fn cache_of(d: &Dataset) -> PathBuf {
    d.train.stored.as_ref().expect("streamed").cache.path().to_path_buf()
}

fn notes(d: &Dataset) -> String {
    d.extras.notes.join("\n")
}

#[test]
fn streamed_splits_give_the_in_memory_batches_bit_for_bit() {
    let dir = temp_dir();
    write_pngs(dir.path());
    write_idx(dir.path());
    let memory = data::load(&images(false), dir.path()).expect("loads");
    let streamed = data::load(&images(true), dir.path()).expect("loads");
    assert_same(&memory, &streamed);
    // The default cache folder is beside the spec, not in the data's folder.
    assert_eq!(cache_of(&streamed).parent(), Some(dir.path().join(data::CACHE_DIR).as_path()));
    // One byte per value: 36 images of 3 x 5 x 6 behind the header, then the labels and notes.
    let size = std::fs::metadata(cache_of(&streamed)).expect("cache").len();
    assert!((64 + 36 * 90 + 36 * 4..64 + 36 * 90 + 36 * 4 + 200).contains(&size), "{size}");

    let memory = data::load(&idx(false), dir.path()).expect("loads");
    let streamed = data::load(&idx(true), dir.path()).expect("loads");
    assert_same(&memory, &streamed);
    assert!(cache_of(&streamed).starts_with(dir.path().join("my-cache")));
}

/// The sub-model and train settings of a small CNN on `data`, from a spec in `dir`.
fn setup(dir: &Path, data: &str) -> (ir::SubModel, TrainConfig) {
    let spec = format!(
        "experiment t {{\n data = {data}\n model {{ conv2d(4, kernel: 3, padding: same) batchnorm relu global_avgpool \
         dense(3) }}\n train {{ optimizer = adam(0.01) epochs = 3 batch = 8 }}\n objective {{ maximize accuracy }}\n}}\n"
    );
    let path = dir.join("t.bma");
    std::fs::write(&path, &spec).expect("write");
    let compiled = bma::compile(&Source::from_path(&path, spec.as_str()));
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let exp = &compiled.program.experiments[0];
    let (sub, point) = bma::pins::expand_with_pins(&compiled, exp, &BTreeMap::new()).expect("expands");
    let info = compiled.info(&exp.name).and_then(|i| i.data.clone()).expect("data info");
    let cfg = TrainConfig::from_experiment(&compiled.program, exp, &point, &info, 1).expect("config");
    (sub, cfg)
}

#[test]
fn a_streamed_dataset_trains_to_the_in_memory_model() {
    let dir = temp_dir();
    write_pngs(dir.path());
    let (sub, cfg) = setup(dir.path(), "images(\"imgs\", channels: 3, split: [0.6, 0.2, 0.2], seed: 7, stream: true)");
    let memory = data::load(&images(false), dir.path()).expect("loads");
    let streamed = data::load(&images(true), dir.path()).expect("loads");
    let a = train::fit(DeviceKind::Cpu, &sub, &cfg, &memory, |_, _| Control::Continue);
    let b = train::fit(DeviceKind::Cpu, &sub, &cfg, &streamed, |_, _| Control::Continue);
    assert_eq!(a.status, train::Status::Completed, "{:?}", a.status);
    assert_eq!(a.status, b.status);
    let losses = |o: &train::TrialOutcome| o.epochs.iter().map(|m| (m["train_loss"], m["loss"])).collect::<Vec<_>>();
    assert_eq!(losses(&a).len(), 3);
    assert_eq!(losses(&a), losses(&b));
    assert!(losses(&a)[2].0 < losses(&a)[0].0, "the loss falls: {:?}", losses(&a));
    let timeless = |o: &train::TrialOutcome| {
        o.metrics
            .iter()
            .filter(|(k, _)| !["latency", "throughput", "train_time"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(timeless(&a), timeless(&b));
    let (ma, mb) = (a.model.expect("model"), b.model.expect("model"));
    assert_eq!(ma.tensors(), mb.tensors());
    // Evaluation reads the streamed test split in batches too.
    assert_eq!(
        ma.evaluate(&memory.test, &memory.info).expect("evaluates"),
        mb.evaluate(&streamed.test, &streamed.info).expect("evaluates")
    );
    assert_eq!(ma.predict_split(&memory.test).expect("predicts"), mb.predict_split(&streamed.test).expect("predicts"));
}

#[test]
fn the_cache_is_reused_until_a_data_file_changes() {
    let dir = temp_dir();
    write_pngs(dir.path());
    let first = data::load(&images(true), dir.path()).expect("loads");
    let path = cache_of(&first);
    let inode = std::fs::metadata(&path).expect("cache").ino();
    assert_eq!(notes(&first), "");
    // Loaded again, with other split settings: the same file, not rewritten.
    let again = data::load(&images(true), dir.path()).expect("loads");
    assert_eq!(std::fs::metadata(&path).expect("cache").ino(), inode, "an unchanged source reuses its cache");
    assert_eq!(notes(&again), "");
    assert_same(&data::load(&images(false), dir.path()).expect("loads"), &again);
    // One image rewritten with other pixels: rebuilt, and the new pixels are read.
    write_png(&dir.path().join("imgs/class1/3.png"), 1, 999);
    let changed = data::load(&images(true), dir.path()).expect("loads");
    assert_eq!(cache_of(&changed), path, "the same source keeps one cache file");
    assert_ne!(std::fs::metadata(&path).expect("cache").ino(), inode, "a changed file rebuilds the cache");
    assert!(notes(&changed).contains("the data changed since"), "{}", notes(&changed));
    assert_same(&data::load(&images(false), dir.path()).expect("loads"), &changed);
    assert_ne!(all_rows(&changed.train, changed.features()), all_rows(&first.train, first.features()));
}

#[test]
fn a_cut_short_or_damaged_cache_is_rebuilt_with_a_note() {
    let dir = temp_dir();
    write_idx(dir.path());
    let path = cache_of(&data::load(&idx(true), dir.path()).expect("loads"));
    let memory = data::load(&idx(false), dir.path()).expect("loads");
    let whole = std::fs::read(&path).expect("cache");
    // Cut short, as a copy interrupted or a full disk leaves it.
    std::fs::write(&path, &whole[..whole.len() - 100]).expect("write");
    let cut = data::load(&idx(true), dir.path()).expect("loads");
    assert!(notes(&cut).contains("not usable") && notes(&cut).contains("where its header needs"), "{}", notes(&cut));
    assert_same(&memory, &cut);
    assert_eq!(std::fs::read(&path).expect("cache"), whole, "rebuilt as it was");
    // One byte of a sample flipped: the checksum catches it.
    let mut damaged = whole.clone();
    damaged[64 + 100] ^= 0x40;
    std::fs::write(&path, &damaged).expect("write");
    let fixed = data::load(&idx(true), dir.path()).expect("loads");
    assert!(notes(&fixed).contains("checksum"), "{}", notes(&fixed));
    assert_same(&memory, &fixed);
    // Not a cache at all, and a header cut short.
    for junk in
        [&b"hello, this is not a cache file at all, but it is long enough to hold a header, sure"[..], &whole[..10]]
    {
        std::fs::write(&path, junk).expect("write");
        let again = data::load(&idx(true), dir.path()).expect("loads");
        assert!(notes(&again).contains("not usable"), "{}", notes(&again));
        assert_same(&memory, &again);
    }
}

#[test]
fn a_build_that_fails_leaves_no_cache_that_is_trusted_later() {
    let dir = temp_dir();
    write_pngs(dir.path());
    // A leftover temporary file of a run killed while building is never read.
    let cache_dir = dir.path().join(data::CACHE_DIR);
    std::fs::create_dir_all(&cache_dir).expect("dir");
    let path = cache_of(&data::load(&images(true), dir.path()).expect("loads"));
    let name = path.file_name().expect("name").to_string_lossy().into_owned();
    std::fs::remove_file(&path).expect("remove");
    std::fs::write(cache_dir.join(format!(".{name}.99999-0.tmp")), b"BMACACH1 half written").expect("write");
    let fresh = data::load(&images(true), dir.path()).expect("loads");
    assert_eq!(notes(&fresh), "");
    assert_same(&data::load(&images(false), dir.path()).expect("loads"), &fresh);
    // A build stopped by a corrupt image: an error naming it, and no cache left behind.
    std::fs::remove_file(&path).expect("remove");
    let bad = dir.path().join("imgs/class2/5.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n cut short").expect("write");
    let e = data::load(&images(true), dir.path()).expect_err("a corrupt image is refused");
    assert!(e.to_string().contains("5.png"), "{e}");
    let left: Vec<String> = std::fs::read_dir(&cache_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains("99999"))
        .collect();
    assert!(left.is_empty(), "a failed build leaves {left:?}");
    write_png(&bad, 2, 205);
    assert_same(
        &data::load(&images(false), dir.path()).expect("loads"),
        &data::load(&images(true), dir.path()).expect("loads"),
    );
}

#[test]
fn stream_arguments_are_checked_and_only_byte_idx_files_stream() {
    let dir = temp_dir();
    write_idx(dir.path());
    let check = |v: &Value| describe(v, Span::default(), &|_| Span::default(), dir.path());
    let with = |extra: Vec<(Option<&str>, Value)>| {
        let mut args = vec![(None, s("x.idx.gz")), (None, s("y.idx"))];
        args.extend(extra);
        call("idx", args)
    };
    assert!(check(&idx(true)).is_ok());
    let d = check(&with(vec![(Some("stream"), Value::Int(1))])).expect_err("refused");
    assert_eq!(d.code, Code::InvalidValue);
    assert!(d.message.contains("`stream` is true or false"), "{}", d.message);
    let d = check(&with(vec![(Some("cache"), s("c"))])).expect_err("refused");
    assert_eq!(d.code, Code::InvalidValue);
    assert!(d.message.contains("add `stream: true`"), "{}", d.message);
    assert!(data::load(&with(vec![(Some("stream"), Value::Str("yes".into()))]), dir.path()).is_err());
    // IDX values of another type than bytes are refused by the streamed loader, by name.
    let mut x = vec![0, 0, 0x0D, 2, 0, 0, 0, 3, 0, 0, 0, 2];
    x.extend(std::iter::repeat_n(0u8, 3 * 2 * 4));
    std::fs::write(dir.path().join("f.idx"), x).expect("write");
    let mut y = vec![0, 0, 0x08, 1, 0, 0, 0, 3];
    y.extend_from_slice(&[0, 1, 1]);
    std::fs::write(dir.path().join("fy.idx"), y).expect("write");
    let floats = call("idx", vec![(None, s("f.idx")), (None, s("fy.idx")), (Some("stream"), Value::Bool(true))]);
    let e = data::load_raw(&floats, dir.path()).expect_err("refused");
    assert!(e.to_string().contains("f.idx") && e.to_string().contains("ubyte"), "{e}");
}
