//! Models through the store (issue 24): how fast a trial's model folder goes into
//! PostgreSQL and comes back, verified, through bma's own store (`Store::put_artifact`,
//! `Store::artifact`), and what that costs 8 workers uploading at once.
//!
//! `cargo bench --bench artifacts -- --url URL [--sizes 1,10,100] [--reps 3]
//!  [--server-pid PID] [--concurrent 8] [--folder DIR] [--uploads 40]`
//!
//! 1. For each size (MB, 10^6 bytes) a folder with one incompressible file of that size
//!    and a small `model.json`: pack, upload (one transaction: chunks and header), fetch
//!    (read back, every chunk and the whole checked against their SHA-256), unpack.
//!    Median of `--reps` of each, wall time; this process's CPU time and the server's
//!    (user+sys from /proc of `--server-pid` and its children) beside it.
//! 2. With `--folder` (a real trial's model folder, e.g. from the digits example):
//!    `--concurrent` threads, each with its own connection and its own claimed trial, each
//!    uploading that folder `--uploads` times; the per-upload latency (median, p90) is the
//!    time a worker spends per trial before the trial is recorded complete.
//!
//! Prints one line per figure; bench/distributed/artifacts.sh runs it beside a real study.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bma::store::{Postgres, Store, StudySpec, artifacts};
use bma::trial::Direction;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Clock ticks of user+sys CPU of the processes `pids` (this process: "self").
fn cpu_ticks(pids: &[String]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// The test server's processes: its postmaster `root` and every process it started (one
/// backend per connection). Other servers on the machine are not counted.
fn server_pids(root: Option<&str>) -> Vec<String> {
    let Some(root) = root else { return Vec::new() };
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let parent = |p: &str| -> Option<String> {
        let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        Some(s[s.rfind(')')? + 2..].split_whitespace().nth(1)?.to_string())
    };
    let mut pids: Vec<String> = dir
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().to_string();
            name.chars().all(|c| c.is_ascii_digit()).then_some(name)
        })
        .filter(|p| parent(p).as_deref() == Some(root))
        .collect();
    pids.push(root.to_string());
    pids
}

/// Wall seconds, own CPU seconds, server CPU seconds of `f`.
fn measure<R>(server: Option<&str>, f: impl FnOnce() -> R) -> (R, f64, f64, f64) {
    let me = vec!["self".to_string()];
    let server = server_pids(server);
    let (c0, s0, t0) = (cpu_ticks(&me), cpu_ticks(&server), Instant::now());
    let r = f();
    let wall = t0.elapsed().as_secs_f64();
    let (c1, s1) = (cpu_ticks(&me), cpu_ticks(&server));
    (r, wall, (c1 - c0) as f64 / 100.0, (s1.saturating_sub(s0)) as f64 / 100.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spec(name: &str) -> StudySpec {
    StudySpec {
        name: name.into(),
        experiment: name.into(),
        spec_text: name.into(),
        spec_hash: bma::store::spec_hash(name),
        objectives: vec![("loss".into(), Direction::Minimize)],
        constraints: vec![],
        seed: 1,
        options: String::new(),
    }
}

/// A model-like folder: `size` incompressible bytes and a small manifest.
fn folder(dir: &Path, size: usize) {
    std::fs::create_dir_all(dir).expect("create");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    std::fs::write(dir.join("model.safetensors"), data).expect("write");
    std::fs::write(dir.join("model.json"), b"{\"format\": 2}").expect("write");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = arg(&args, "--url") else {
        eprintln!("usage: cargo bench --bench artifacts -- --url postgres://... [--sizes 1,10,100] [--reps 3]");
        std::process::exit(2);
    };
    let sizes: Vec<f64> = arg(&args, "--sizes")
        .unwrap_or_else(|| "1,10,100".into())
        .split(',')
        .map(|s| s.trim().parse().expect("a size in MB"))
        .collect();
    let reps: usize = arg(&args, "--reps").map_or(3, |s| s.parse().expect("a count"));
    // The server's postmaster pid (first line of its data folder's postmaster.pid): its CPU
    // time is measured beside bma's; without it the server's column reads 0.
    let server = arg(&args, "--server-pid");
    let server = server.as_deref();
    let tmp = std::env::temp_dir().join(format!("bma-artifacts-bench-{}", std::process::id()));
    let store = Postgres::connect_with(&url, 1, Duration::from_secs(30)).expect("connect");
    let tag = format!("{}", std::process::id());
    for mb in &sizes {
        let size = (mb * 1e6) as usize;
        let dir = tmp.join(format!("m{mb}"));
        folder(&dir, size);
        let study = store.open(&spec(&format!("artbench-{tag}-{mb}"))).expect("open");
        let n = store.claim(study.id, "bench", None).expect("claim").expect("a trial").number;
        let (mut up, mut down, mut pack, mut unpack) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut up_cpu, mut up_srv, mut down_cpu, mut down_srv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let (a, w, _, _) = measure(server, || artifacts::pack(&dir).expect("pack"));
            pack.push(w);
            let (r, w, c, s) = measure(server, || store.put_artifact(study.id, n, "bench", &a));
            r.expect("upload");
            up.push(w);
            up_cpu.push(c);
            up_srv.push(s);
            let (back, w, c, s) = measure(server, || store.artifact(study.id, n).expect("fetch").expect("stored"));
            assert_eq!(back.sha256, a.sha256);
            down.push(w);
            down_cpu.push(c);
            down_srv.push(s);
            let out = tmp.join(format!("u{mb}"));
            let (r, w, _, _) = measure(server, || artifacts::unpack(&back, &out));
            r.expect("unpack");
            unpack.push(w);
        }
        let bytes = size as f64 / 1e6;
        let (u, d) = (median(up.clone()), median(down.clone()));
        println!(
            "{mb:>5} MB  upload {u:.3} s ({:.0} MB/s; cpu bma {:.2} s, server {:.2} s)  fetch+verify {d:.3} s \
             ({:.0} MB/s; cpu bma {:.2} s, server {:.2} s)  pack {:.3} s  unpack {:.3} s  [median of {reps}]",
            bytes / u,
            median(up_cpu),
            median(up_srv),
            bytes / d,
            median(down_cpu),
            median(down_srv),
            median(pack),
            median(unpack),
        );
        store.delete_study(&spec(&format!("artbench-{tag}-{mb}")).name).expect("clean up");
    }
    if let Some(model) = arg(&args, "--folder") {
        concurrent(&url, &PathBuf::from(model), &args, &tag);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// `--concurrent` uploaders of one real model folder, each its own connection and trial.
fn concurrent(url: &str, model: &Path, args: &[String], tag: &str) {
    let threads: usize = arg(args, "--concurrent").map_or(8, |s| s.parse().expect("a count"));
    let uploads: usize = arg(args, "--uploads").map_or(40, |s| s.parse().expect("a count"));
    let a = artifacts::pack(model).expect("pack the model folder");
    let name = format!("artbench-{tag}-concurrent");
    let setup = Postgres::connect_with(url, 1, Duration::from_secs(30)).expect("connect");
    let study = setup.open(&spec(&name)).expect("open");
    let t0 = Instant::now();
    let mut lat: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                s.spawn(move || {
                    let store = Postgres::connect_with(url, 1, Duration::from_secs(30)).expect("connect");
                    let worker = format!("w{i}");
                    let n = store.claim(study.id, &worker, None).expect("claim").expect("a trial").number;
                    (0..uploads)
                        .map(|_| {
                            let t = Instant::now();
                            let d = artifacts::pack(model).expect("pack");
                            store.put_artifact(study.id, n, &worker, &d).expect("upload");
                            t.elapsed().as_secs_f64()
                        })
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("an uploader")).collect()
    });
    let wall = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{threads} uploaders x {uploads} uploads of {} ({} bytes packed, {} chunk(s)): per upload (pack + \
         transaction) median {:.1} ms, p90 {:.1} ms; {:.0} uploads/s in all",
        model.display(),
        a.bytes.len(),
        a.chunks().len(),
        lat[lat.len() / 2] * 1e3,
        lat[lat.len() * 9 / 10] * 1e3,
        lat.len() as f64 / wall
    );
    setup.delete_study(&name).expect("clean up");
}
