//! `stream: true` for CIFAR batches, NumPy `.npy`/`.npz` arrays and WAV clip folders, and
//! image-like data held in memory as bytes (`data::cache`):
//! - a streamed source gives the in-memory source's batches bit for bit, trains to the same
//!   weights, metrics and predictions, reuses its cache until a data file changes, and
//!   rebuilds a damaged cache with a note;
//! - images, IDX, CIFAR and NumPy `u1` data loaded in memory keep one byte a value and give
//!   the batches, weights and predictions of the same samples held as f32.
//!
//! Every fixture (CIFAR-10 batches, `.npy` files, an `.npz` archive, WAV clips, PNGs, IDX
//! files) is written here.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bma::check::data::describe;
use bma::data::{self, Dataset, Raw, Split};
use bma::diagnostic::Code;
use bma::ir::{self, Value};
use bma::source::{Source, Span};
use bma::train::{self, Control, DeviceKind, TrainConfig};
use common::{call, npy_bytes, s, temp_dir};

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

/// 3 classes of 12 CIFAR-10 records in two training batches (and a test batch); class `c`
/// is brighter in channel `c`.
fn write_cifar(dir: &Path) {
    let d = dir.join("c10");
    std::fs::create_dir_all(&d).expect("dir");
    let record = |i: u64| {
        let label = (i % 3) as u8;
        let mut r = vec![label];
        let mut px = bytes(3072, i + 1);
        for v in &mut px[usize::from(label) * 1024..(usize::from(label) + 1) * 1024] {
            *v = v.saturating_add(90);
        }
        r.extend_from_slice(&px);
        r
    };
    let batch = |ids: std::ops::Range<u64>| ids.flat_map(record).collect::<Vec<u8>>();
    std::fs::write(d.join("data_batch_1.bin"), batch(0..20)).expect("write");
    std::fs::write(d.join("data_batch_2.bin"), batch(20..36)).expect("write");
    std::fs::write(d.join("test_batch.bin"), batch(36..42)).expect("write");
}

/// 45 samples of 5 x 6 as float32 (`xf.npy`) and as bytes (`xb.npy`), 3 classes in `y.npy`
/// (int64); the same float64 inputs in a deflated `a.npz`.
fn write_arrays(dir: &Path) {
    let n = 45;
    let y: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
    let raw = bytes(n * 30, 5);
    let xb: Vec<u8> = raw
        .iter()
        .enumerate()
        .map(|(k, b)| b / 2 + if k % 30 < 10 * (y[k / 30] as usize + 1) { 100 } else { 0 })
        .collect();
    let xf: Vec<f32> = xb.iter().enumerate().map(|(k, b)| f32::from(*b) * 0.37 - (k % 7) as f32).collect();
    let y_bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(
        dir.join("xf.npy"),
        npy_bytes(1, "<f4", false, &[n, 5, 6], &xf.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
    )
    .expect("write");
    std::fs::write(dir.join("xb.npy"), npy_bytes(1, "|u1", false, &[n, 5, 6], &xb)).expect("write");
    std::fs::write(dir.join("y.npy"), npy_bytes(1, "<i8", false, &[n], &y_bytes)).expect("write");
    let x8: Vec<u8> = xf.iter().flat_map(|v| (f64::from(*v) / 3.0).to_le_bytes()).collect();
    let file = std::fs::File::create(dir.join("a.npz")).expect("create");
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in [
        ("inputs.npy", npy_bytes(1, "<f8", false, &[n, 5, 6], &x8)),
        ("y.npy", npy_bytes(1, "<i8", false, &[n], &y_bytes)),
    ] {
        z.start_file(name, opts).expect("member");
        z.write_all(&body).expect("write member");
    }
    z.finish().expect("finish");
}

/// A 16-bit mono clip at 8 kHz: a tone of `freq` Hz with a little noise from `seed`.
fn tone(path: &Path, freq: f64, n: usize, seed: u64) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    let noise = bytes(n, seed);
    for (i, b) in noise.iter().enumerate() {
        let v = 0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin() + 0.002 * f64::from(*b);
        w.write_sample((v * 32767.0) as i16).expect("sample");
    }
    w.finalize().expect("wav");
}

/// `clips/low` (300 Hz) and `clips/high` (2 kHz), 8 clips of each.
fn write_clips(dir: &Path) {
    for (class, freq) in [("low", 300.0), ("high", 2000.0)] {
        let d = dir.join("clips").join(class);
        std::fs::create_dir_all(&d).expect("dir");
        for i in 0..8u64 {
            tone(&d.join(format!("{i}.wav")), freq * (1.0 + 0.02 * i as f64), 1800 + 50 * i as usize, i + 1);
        }
    }
}

/// A data value with `stream: true` added when `stream`.
fn with_stream(v: &Value, stream: bool) -> Value {
    let Value::Call(c) = v else { panic!("a call") };
    let mut c = c.clone();
    if stream {
        c.args.push((Some("stream".into()), Value::Bool(true)));
    }
    Value::Call(c)
}

/// The streamed sources: `(name, data value without stream, bytes a stored value)`.
fn sources() -> Vec<(&'static str, Value, u64)> {
    let split = || (Some("split"), Value::List(vec![Value::Float(0.6), Value::Float(0.2), Value::Float(0.2)]));
    let seed = (Some("seed"), Value::Int(4));
    vec![
        ("cifar", call("cifar", vec![(None, s("c10")), split(), seed.clone()]), 1),
        ("npy f4", call("npy", vec![(Some("x"), s("xf.npy")), (Some("y"), s("y.npy")), split(), seed.clone()]), 4),
        ("npy u1", call("npy", vec![(Some("x"), s("xb.npy")), (Some("y"), s("y.npy")), split(), seed.clone()]), 1),
        ("npz f8", call("npz", vec![(None, s("a.npz")), (Some("x"), s("inputs")), split(), seed.clone()]), 4),
        (
            "audio",
            call(
                "audio",
                vec![
                    (None, s("clips")),
                    (Some("rate"), Value::Int(8000)),
                    (Some("seconds"), Value::Float(0.2)),
                    (Some("features"), call("mel", vec![(Some("bins"), Value::Int(12))])),
                    split(),
                    seed,
                ],
            ),
            4,
        ),
    ]
}

fn write_all(dir: &Path) {
    write_cifar(dir);
    write_arrays(dir);
    write_clips(dir);
}

/// Every row of `split`, through `Split::gather`, as bits.
fn all_rows(split: &Split, features: usize) -> Vec<u32> {
    let rows: Vec<usize> = (0..split.n).collect();
    let mut v = Vec::new();
    split.gather(&rows, features, &mut v).expect("reads");
    v.iter().map(|f| f.to_bits()).collect()
}

/// The two datasets hold the same samples in the same order and give the same batches, bit
/// for bit.
fn assert_same(what: &str, a: &Dataset, b: &Dataset) {
    assert_eq!(a.info, b.info, "{what}");
    assert_eq!((&a.mean, &a.std), (&b.mean, &b.std), "{what}");
    assert_eq!(a.extras.class_names, b.extras.class_names, "{what}");
    let f = a.features();
    for (x, y) in [(&a.train, &b.train), (&a.valid, &b.valid), (&a.test, &b.test)] {
        assert!(x.n > 0, "{what}");
        assert_eq!((x.n, &x.y), (y.n, &y.y), "{what}");
        assert_eq!(all_rows(x, f), all_rows(y, f), "{what}");
        let order: Vec<usize> = (0..x.n).rev().step_by(2).chain((0..x.n).step_by(2)).collect();
        for chunk in order.chunks(4) {
            let (mut u, mut v) = (Vec::new(), Vec::new());
            x.gather(chunk, f, &mut u).expect("reads");
            y.gather(chunk, f, &mut v).expect("reads");
            let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&u), bits(&v), "{what}");
        }
    }
}

/// Every row of the three splits, as bits.
fn every_row(d: &Dataset) -> Vec<u32> {
    [&d.train, &d.valid, &d.test].iter().flat_map(|s| all_rows(s, d.features())).collect()
}

fn on_disk(d: &Dataset) -> bool {
    [&d.train, &d.valid, &d.test].iter().all(|s| s.x.is_empty() && s.stored.as_ref().is_some_and(|r| r.cache.on_disk()))
}

fn cache_of(d: &Dataset) -> PathBuf {
    d.train.stored.as_ref().expect("streamed").cache.path().to_path_buf()
}

fn notes(d: &Dataset) -> String {
    d.extras.notes.join("\n")
}

#[test]
fn cifar_numpy_and_audio_stream_the_in_memory_batches_bit_for_bit() {
    let dir = temp_dir();
    write_all(dir.path());
    for (what, v, elem) in sources() {
        let memory = data::load(&v, dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let streamed = data::load(&with_stream(&v, true), dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!on_disk(&memory), "{what}: loaded in memory without `stream:`");
        assert!(on_disk(&streamed), "{what}: a streamed split keeps no rows in memory");
        assert_same(what, &memory, &streamed);
        // The checker predicts what the streamed loader gives.
        let info = describe(&with_stream(&v, true), Span::default(), &|_| Span::default(), dir.path())
            .unwrap_or_else(|d| panic!("{what}: {}", d.message));
        assert_eq!(info, streamed.info, "{what}");
        // Bytes for bytes, f32 for the other types and audio features, then labels and notes.
        let n = (memory.train.n + memory.valid.n + memory.test.n) as u64;
        let body = 64 + n * streamed.features() as u64 * elem + n * 4;
        let size = std::fs::metadata(cache_of(&streamed)).expect("cache").len();
        assert!((body..body + 400).contains(&size), "{what}: {size} bytes, {body} without the notes");
        assert!(cache_of(&streamed).starts_with(dir.path().join(data::CACHE_DIR)), "{what}");
    }
}

#[test]
fn stream_arguments_are_checked_for_every_streamed_source() {
    let dir = temp_dir();
    write_all(dir.path());
    for (what, v, _) in sources() {
        let Value::Call(c) = &v else { panic!("a call") };
        for (arg, value, says) in
            [("stream", Value::Int(1), "`stream` is true or false"), ("cache", s("elsewhere"), "add `stream: true`")]
        {
            let mut bad = c.clone();
            bad.args.push((Some(arg.into()), value));
            let d =
                describe(&Value::Call(bad), Span::default(), &|_| Span::default(), dir.path()).expect_err("refused");
            assert_eq!(d.code, Code::InvalidValue, "{what}");
            assert!(d.message.contains(says), "{what}: {}", d.message);
        }
    }
}

/// The sub-model and train settings of a small CNN on `data`, from a spec in `dir`.
fn setup(dir: &Path, data: &str) -> (ir::SubModel, TrainConfig) {
    let spec = format!(
        "experiment t {{\n data = {data}\n model {{ conv2d(4, kernel: 3, padding: same) batchnorm relu global_avgpool \
         dense(data.classes) }}\n train {{ optimizer = adam(0.01) epochs = 3 batch = 8 }}\n objective {{ maximize accuracy }}\n}}\n"
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

/// Trains the same sub-model on `a` and on `b` and asserts the same losses, metrics, weights,
/// test metrics and predictions, bit for bit.
fn assert_trains_alike(what: &str, sub: &ir::SubModel, cfg: &TrainConfig, a: &Dataset, b: &Dataset) {
    let x = train::fit(DeviceKind::Cpu, sub, cfg, a, |_, _| Control::Continue);
    let y = train::fit(DeviceKind::Cpu, sub, cfg, b, |_, _| Control::Continue);
    assert_eq!(x.status, train::Status::Completed, "{what}: {:?}", x.status);
    assert_eq!(x.status, y.status, "{what}");
    let losses = |o: &train::TrialOutcome| {
        o.epochs.iter().map(|m| (m["train_loss"].to_bits(), m["loss"].to_bits())).collect::<Vec<_>>()
    };
    assert_eq!(losses(&x).len(), 3, "{what}");
    assert_eq!(losses(&x), losses(&y), "{what}");
    let timeless = |o: &train::TrialOutcome| {
        o.metrics
            .iter()
            .filter(|(k, _)| !["latency", "throughput", "train_time"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(timeless(&x), timeless(&y), "{what}");
    let (mx, my) = (x.model.expect("model"), y.model.expect("model"));
    assert_eq!(mx.tensors(), my.tensors(), "{what}");
    assert_eq!(mx.evaluate(&a.test, &a.info).expect("evaluates"), my.evaluate(&b.test, &b.info).expect("evaluates"));
    assert_eq!(mx.predict_split(&a.test).expect("predicts"), my.predict_split(&b.test).expect("predicts"), "{what}");
}

#[test]
fn streamed_cifar_numpy_and_audio_train_to_the_in_memory_models() {
    let dir = temp_dir();
    write_all(dir.path());
    for (what, v, _) in sources() {
        let (sub, cfg) = setup(dir.path(), &with_stream(&v, true).to_string());
        let memory = data::load(&v, dir.path()).expect("loads");
        let streamed = data::load(&with_stream(&v, true), dir.path()).expect("loads");
        assert_trains_alike(what, &sub, &cfg, &memory, &streamed);
    }
}

/// Rewrites one data file of source `what` with other values (the same shape).
fn change(dir: &Path, what: &str) {
    match what {
        "cifar" => {
            let p = dir.join("c10/data_batch_2.bin");
            let mut b = std::fs::read(&p).expect("read");
            b[500] ^= 0x55;
            std::fs::write(&p, b).expect("write");
        }
        "npy f4" => {
            let p = dir.join("xf.npy");
            let mut b = std::fs::read(&p).expect("read");
            let at = b.len() - 2;
            b[at] ^= 0x01;
            std::fs::write(&p, b).expect("write");
        }
        "npy u1" => {
            let p = dir.join("xb.npy");
            let mut b = std::fs::read(&p).expect("read");
            let at = b.len() - 1;
            b[at] = b[at].wrapping_add(1);
            std::fs::write(&p, b).expect("write");
        }
        "npz f8" => {
            let x: Vec<u8> = (0..45 * 30).flat_map(|k| (f64::from(k % 11) - 0.5).to_le_bytes()).collect();
            let y: Vec<u8> = (0..45i64).flat_map(|i| (i % 3).to_le_bytes()).collect();
            let file = std::fs::File::create(dir.join("a.npz")).expect("create");
            let mut z = zip::ZipWriter::new(file);
            for (name, body) in [
                ("inputs.npy", npy_bytes(1, "<f8", false, &[45, 5, 6], &x)),
                ("y.npy", npy_bytes(1, "<i8", false, &[45], &y)),
            ] {
                z.start_file(name, zip::write::FileOptions::default()).expect("member");
                z.write_all(&body).expect("write member");
            }
            z.finish().expect("finish");
        }
        "audio" => tone(&dir.join("clips/high/3.wav"), 2500.0, 1900, 77),
        other => panic!("no source {other}"),
    }
}

#[test]
fn each_streamed_cache_is_reused_until_its_data_changes_and_rebuilt_when_damaged() {
    let dir = temp_dir();
    write_all(dir.path());
    for (what, v, _) in sources() {
        let streamed = with_stream(&v, true);
        let first = data::load(&streamed, dir.path()).expect("loads");
        let path = cache_of(&first);
        let inode = std::fs::metadata(&path).expect("cache").ino();
        assert_eq!(notes(&first), "", "{what}");
        let again = data::load(&streamed, dir.path()).expect("loads");
        assert_eq!(
            std::fs::metadata(&path).expect("cache").ino(),
            inode,
            "{what}: an unchanged source reuses its cache"
        );
        assert_eq!(notes(&again), "", "{what}");
        // A data file changed: rebuilt, and the new values are read.
        change(dir.path(), what);
        let changed = data::load(&streamed, dir.path()).expect("loads");
        assert_eq!(cache_of(&changed), path, "{what}");
        assert_ne!(std::fs::metadata(&path).expect("cache").ino(), inode, "{what}: a changed file rebuilds the cache");
        assert!(notes(&changed).contains("the data changed since"), "{what}: {}", notes(&changed));
        assert_ne!(every_row(&changed), every_row(&first), "{what}");
        let memory = data::load(&v, dir.path()).expect("loads");
        assert_same(what, &memory, &changed);
        // One byte of a sample flipped: the checksum catches it, and the cache is rebuilt whole.
        let whole = std::fs::read(&path).expect("cache");
        let mut damaged = whole.clone();
        damaged[64 + 9] ^= 0x40;
        std::fs::write(&path, &damaged).expect("write");
        let fixed = data::load(&streamed, dir.path()).expect("loads");
        assert!(notes(&fixed).contains("checksum"), "{what}: {}", notes(&fixed));
        assert_same(what, &memory, &fixed);
        assert_eq!(std::fs::read(&path).expect("cache"), whole, "{what}: rebuilt as it was");
        // Cut short.
        std::fs::write(&path, &whole[..whole.len() - 30]).expect("write");
        let cut = data::load(&streamed, dir.path()).expect("loads");
        assert!(notes(&cut).contains("where its header needs"), "{what}: {}", notes(&cut));
        assert_same(what, &memory, &cut);
    }
}

/// 3 classes of 8 grey 7 x 5 PNGs in `imgs`, and 30 IDX images of 4 x 4 bytes in `x.idx`.
fn write_images_and_idx(dir: &Path) {
    for c in 0..3u8 {
        let folder = dir.join(format!("imgs/c{c}"));
        std::fs::create_dir_all(&folder).expect("dir");
        for i in 0..8u64 {
            let noise = bytes(35, u64::from(c) * 50 + i);
            let img = image::GrayImage::from_fn(7, 5, |x, y| image::Luma([noise[(y * 7 + x) as usize] / 2 + 40 * c]));
            img.save(folder.join(format!("{i}.png"))).expect("encode");
        }
    }
    let n = 30u32;
    let mut x = vec![0, 0, 0x08, 3];
    for d in [n, 4, 4] {
        x.extend_from_slice(&d.to_be_bytes());
    }
    for i in 0..n {
        let mut img = bytes(16, u64::from(i) + 1);
        img[(i % 3) as usize * 5] = 255;
        x.extend_from_slice(&img);
    }
    std::fs::write(dir.join("x.idx"), x).expect("write");
    let mut y = vec![0, 0, 0x08, 1];
    y.extend_from_slice(&n.to_be_bytes());
    y.extend((0..n).map(|i| (i % 3) as u8));
    std::fs::write(dir.join("y.idx"), y).expect("write");
}

/// The same samples as `raw`, held as f32 (the path image-like data took before it was kept
/// as bytes).
fn as_f32(raw: &Raw) -> Raw {
    Raw { x: raw.values().expect("reads"), stored: None, ..raw.clone() }
}

#[test]
fn image_like_data_in_memory_keeps_bytes_and_gives_the_f32_results() {
    let dir = temp_dir();
    write_all(dir.path());
    write_images_and_idx(dir.path());
    let split = || (Some("split"), Value::List(vec![Value::Float(0.6), Value::Float(0.2), Value::Float(0.2)]));
    let cases = [
        ("images", call("images", vec![(None, s("imgs")), (Some("channels"), Value::Int(1)), split()])),
        ("idx", call("idx", vec![(None, s("x.idx")), (None, s("y.idx")), split()])),
        ("cifar", sources().remove(0).1),
        ("npy u1", sources().remove(2).1),
    ];
    for (what, v) in cases {
        let raw = data::load_raw(&v, dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let stored = raw.stored.as_ref().unwrap_or_else(|| panic!("{what}: kept as bytes"));
        assert!(raw.x.is_empty() && !stored.on_disk(), "{what}");
        assert_eq!(stored.bytes(), raw.len() * raw.info.features(), "{what}: one byte a value");
        let values = raw.values().expect("reads");
        assert!(values.iter().all(|v| v.is_finite() && (0.0..=255.0).contains(v)), "{what}");
        let bytes = data::split(raw.clone(), [0.6, 0.2, 0.2], 9).expect("splits");
        let floats = data::split(as_f32(&raw), [0.6, 0.2, 0.2], 9).expect("splits");
        assert!(floats.train.stored.is_none() && floats.train.x.len() == floats.train.n * floats.features());
        assert_same(what, &floats, &bytes);
    }
    // Trained on bytes or on the f32 values: the same model, metrics and predictions.
    let v = call("images", vec![(None, s("imgs")), (Some("channels"), Value::Int(1)), split()]);
    let (sub, cfg) = setup(dir.path(), &v.to_string());
    let raw = data::load_raw(&v, dir.path()).expect("loads");
    let bytes = data::split(raw.clone(), [0.6, 0.2, 0.2], 9).expect("splits");
    let floats = data::split(as_f32(&raw), [0.6, 0.2, 0.2], 9).expect("splits");
    assert_trains_alike("images in memory", &sub, &cfg, &floats, &bytes);
    // NumPy arrays of other types stay f32 in memory.
    let raw = data::load_raw(&sources().remove(1).1, dir.path()).expect("loads");
    assert!(raw.stored.is_none() && raw.x.len() == raw.len() * raw.info.features());
}
