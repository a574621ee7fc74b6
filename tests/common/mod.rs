//! Helpers shared by the integration tests (`mod common;`).
//!
//! For every test that runs the real binary: [`bma`] (the binary this test crate was
//! built with, as a `Command`), [`temp_dir`] (a fresh folder, removed when dropped, so
//! a failing test leaves nothing behind either), [`write`], [`results`], [`stderr`],
//! [`bma_files`], [`tone`] (a WAV clip) and [`npy_bytes`] (a `.npy` file).
//!
//! For the tests that need the test PostgreSQL server (`tests/postgres.rs`,
//! `tests/distributed.rs`): its URL, or a loud skip; unique study names; a plain
//! client; a server restart. `scripts/pg-test-server.sh start` starts a throwaway
//! server and prints `BMA_TEST_POSTGRES` (its URL) and `BMA_PG_DIR` (its folder, for
//! the restart tests).
#![allow(dead_code)] // each test crate uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The one rule for the tests that need the PostgreSQL test server: its URL
/// (`BMA_TEST_POSTGRES`); without it, under `CI` the test fails (CI's `.ci/run` starts the
/// server, so a missing one is a broken run, never a silent pass), elsewhere it is skipped
/// after a loud SKIPPED line naming `what`.
pub fn url(what: &str) -> Option<String> {
    required("BMA_TEST_POSTGRES", what)
}

/// The server's folder (`BMA_PG_DIR`) for a test that restarts it; the rule of [`url`].
pub fn pg_dir(what: &str) -> Option<String> {
    required("BMA_PG_DIR", what)
}

fn required(variable: &str, what: &str) -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(value) = set(variable) {
        return Some(value);
    }
    assert!(
        set("CI").is_none(),
        "CI is set but {variable} is not: {what} cannot run. \
         Start a server with `eval \"$(scripts/pg-test-server.sh start)\"`."
    );
    // Written to the stderr handle, not with eprintln!, so the test harness does not capture it.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED: {variable} is not set; {what} did not run.\n\
         !!! Start a server with `eval \"$(scripts/pg-test-server.sh start)\"` and rerun.\n"
    );
    None
}

/// A study name (and spec comment) no other test or earlier run uses.
pub fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{t}", std::process::id())
}

/// A plain connection to the test server, for checking what the store wrote.
pub fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect to the test server")
}

/// Restarts the test server (the script runs pg_ctl as the server's owner).
pub fn restart_server(dir: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test-server.sh");
    let status =
        std::process::Command::new("bash").arg(script).arg("restart").arg(dir).status().expect("run the script");
    assert!(status.success(), "restarting the server failed");
}

// ---------------------------------------------------------------- the binary and files

/// The `bma` binary of this build, as a `Command` to add arguments to.
pub fn bma() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bma"))
}

/// A fresh temporary folder, removed with everything in it when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// Writes `text` to `dir/name`; gives that path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A run's `results.json` (in its output folder `out`), parsed.
pub fn results(out: &Path) -> serde_json::Value {
    let path = out.join("results.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("results.json parses")
}

/// A finished command's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `.bma` files below `dir` (sub-folders included), sorted; none if it is missing.
pub fn bma_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect_bma_files(dir, &mut out);
    out
}

fn collect_bma_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_bma_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "bma") {
            out.push(path);
        }
    }
}

/// A data value `name(args...)` as the checker and the loader take it (`k: None` for a
/// positional argument).
pub fn call(name: &str, args: Vec<(Option<&str>, bma::ir::Value)>) -> bma::ir::Value {
    bma::ir::Value::Call(bma::ir::CallValue {
        name: name.into(),
        args: args.into_iter().map(|(k, v)| (k.map(str::to_string), v)).collect(),
    })
}

/// A string argument.
pub fn s(v: &str) -> bma::ir::Value {
    bma::ir::Value::Str(v.into())
}

/// A 16-bit mono clip of `n` samples at `rate`: a tone of `freq` Hz with a little
/// deterministic noise (from `seed`) (tests/audio.rs, tests/predict.rs).
pub fn tone(path: &Path, rate: u32, freq: f64, n: usize, seed: u64) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).expect("a WAV file");
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let noise = (s % 1000) as f64 / 1000.0 - 0.5;
        let v = 0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() + 0.05 * noise;
        w.write_sample((v * 32767.0) as i16).expect("a sample");
    }
    w.finalize().expect("the WAV header");
}

/// A `.npy` file as NumPy writes it: version 1 (or 2), the header dict padded with spaces
/// to a multiple of 64 bytes and ended by a newline (tests/data_images.rs, bad_rows.rs,
/// stream_sources.rs).
pub fn npy_bytes(version: u8, descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let order = if fortran { "True" } else { "False" };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {tuple}, }}");
    let prefix = if version == 1 { 10 } else { 12 };
    while (prefix + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}
