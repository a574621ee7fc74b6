//! bma's side of the image-loading benchmark (`bench/images/run.sh` runs it beside PyTorch's
//! `ImageFolder` + `DataLoader`): images per second decoded from a PNG folder and delivered
//! as shuffled batches.
//!
//! `cargo bench --bench images -- DIR H W CHANNELS BATCH EPOCHS` prints one JSON line per
//! epoch. Epoch 1 counts everything from nothing: listing, parallel decoding (rayon, as
//! many threads as `RAYON_NUM_THREADS` or the cores), the split and standardisation
//! (`bma::data::load`, as `bma run` does once per study), then one pass of shuffled batches
//! gathered into contiguous `f32` buffers (what training copies into a tensor per batch).
//! Later epochs only gather batches: bma keeps the decoded images in memory.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::time::Instant;

use bma::ir::{CallValue, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [dir, h, w, c, batch, epochs] = args.as_slice() else {
        eprintln!("usage: cargo bench --bench images -- DIR H W CHANNELS BATCH EPOCHS");
        std::process::exit(2);
    };
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("not a number: {s}"));
    let (batch, epochs) = (num(batch) as usize, num(epochs) as usize);
    let value = Value::Call(CallValue {
        name: "images".into(),
        args: vec![
            (None, Value::Str(dir.clone())),
            (Some("size".into()), Value::List(vec![Value::Int(num(h)), Value::Int(num(w))])),
            (Some("channels".into()), Value::Int(num(c))),
            // Every image in train: the whole folder is delivered each epoch, as by DataLoader.
            (Some("split".into()), Value::List(vec![Value::Float(0.998), Value::Float(0.001), Value::Float(0.001)])),
        ],
    });
    let threads = rayon::current_num_threads();
    let start = Instant::now();
    let data = bma::data::load(&value, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let decoded = start.elapsed().as_secs_f64();
    let f = data.features();
    let n = data.train.n;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = bma::rng::Rng::new(1);
    let mut checksum = 0f64;
    for epoch in 1..=epochs {
        let t = if epoch == 1 { start } else { Instant::now() };
        rng.shuffle(&mut order);
        for rows in order.chunks(batch) {
            let mut buf = Vec::with_capacity(rows.len() * f);
            for &r in rows {
                buf.extend_from_slice(data.train.row(r, f));
            }
            checksum += f64::from(buf[0]);
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{{\"tool\": \"bma\", \"threads\": {threads}, \"epoch\": {epoch}, \"images\": {n}, \"seconds\": {secs:.3}, \
             \"images_per_s\": {:.0}, \"decode_seconds\": {decoded:.3}, \"checksum\": {checksum:.3}}}",
            n as f64 / secs
        );
    }
}
