//! Stored samples: kept in a compact cache file on disk and read back a batch at a time, so
//! a dataset larger than memory trains with bounded memory; or the same bytes held in memory.
//!
//! Takes an `images(...)`, `idx(...)`, `cifar(...)`, `npy(...)`, `npz(...)` or `audio(...)`
//! value with `stream: true` (and optionally `cache: "folder"`, relative to the `.bma` file's
//! folder; default [`CACHE_DIR`] there, never the data's own folder). Gives a [`Raw`] whose `x`
//! is empty and whose `stored` names a [`Cache`]: the samples as [`Elem`]s, row after row,
//! behind a 64-byte header, followed by the labels (f32) and the source's notes. An element is
//! a byte where the source's values are bytes (image pixels, IDX `ubyte`, NumPy `u1`/`b1`) and
//! a little-endian f32 otherwise (NumPy arrays of other types, audio features, computed once
//! when the cache is built). `data::split_with` then gives splits that are index lists into it
//! ([`Rows`]) with the train split's scaling, applied per batch as the in-memory path applies
//! it to every sample: a streamed batch is bit-identical to the in-memory one.
//!
//! [`in_memory`] gives the same [`Cache`] held in memory, without a file: image-like sources
//! loaded without `stream:` keep their bytes (a quarter of the f32 values) and are read,
//! split and scaled by the same code, so their batches are the f32 path's, bit for bit.
//!
//! The file is named after the source (its call without `split`, `seed`, `test`, `valid`,
//! `stream`, `cache`) and its header holds a key: FNV-1a over that call and the size and
//! content hash of every file it reads ([`super::fingerprints`]). A cache whose key differs
//! (the data changed), whose size is not what its header says (cut short), or whose checksum
//! (FNV-1a of everything after the header) fails is rebuilt, with a note saying why; one
//! that matches is reused across trials, runs and processes.
//!
//! Building decodes [`CHUNK_ROWS`] samples at a time (images in parallel, rayon) and appends
//! them, so building holds one chunk, never the dataset. Reading uses positioned reads
//! (`pread`), not a memory map, so the process keeps no page of the file resident beyond
//! the batch being read. Opening a cache reads it through once, a block at a time, to check
//! its checksum.
//!
//! **Invariants:** a cache is written to a temporary name in its folder and renamed into
//! place only once complete, with its checksum, so a killed run leaves no file that is later
//! trusted; the same source and files give a bit-identical cache; nothing in a cache file
//! (cut short, damaged, forged header) can panic: it is rebuilt, or a read error fails the
//! trial with the file named. Memory while training: the labels and index lists (a few
//! bytes per sample) and the batches in flight, not the samples.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{DataError, Extras, Raw};
use crate::ir::{CallValue, DataInfo, Value};

/// The default cache folder, relative to the `.bma` file's folder.
pub const CACHE_DIR: &str = ".bma-cache";
/// How many samples building decodes and appends at a time.
pub const CHUNK_ROWS: usize = 1024;

const MAGIC: &[u8; 8] = b"BMACACH1";
const HEADER: usize = 64;
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;
/// The arguments that do not change a source's samples (left out of its key).
const NOT_SAMPLES: [&str; 6] = ["split", "seed", "test", "valid", "stream", "cache"];

/// How a stored byte reads as a sample value: the in-memory loader's exact conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// `byte / 255` (image pixels in [0, 1]).
    Unit,
    /// The byte as a number (IDX `ubyte`, NumPy `u1` and `b1`).
    Byte,
    /// Four bytes, a little-endian `f32` (NumPy arrays of other types, audio features).
    F32,
}

impl Elem {
    fn code(self) -> u8 {
        match self {
            Elem::Unit => 1,
            Elem::Byte => 2,
            Elem::F32 => 3,
        }
    }

    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            Elem::Unit | Elem::Byte => 1,
            Elem::F32 => 4,
        }
    }

    fn from_code(c: u8) -> Option<Elem> {
        match c {
            1 => Some(Elem::Unit),
            2 => Some(Elem::Byte),
            3 => Some(Elem::F32),
            _ => None,
        }
    }

    /// The value of a one-byte element (`Unit`, `Byte`).
    fn value(self, b: u8) -> f32 {
        match self {
            Elem::Unit => f32::from(b) / 255.0,
            Elem::Byte | Elem::F32 => f32::from(b),
        }
    }

    /// Appends the values of `bytes` (whole elements) to `out`.
    fn extend(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            Elem::F32 => out.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            _ => out.extend(bytes.iter().map(|b| self.value(*b))),
        }
    }
}

/// Where a streamed source keeps its cache (`stream: true`), from the call's arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    pub dir: PathBuf,
}

/// The stream settings of a data call: `None` without `stream: true`; an argument that is
/// not usable is `(name, why)` (the checker reports it at the argument).
pub fn stream_spec(call: &CallValue, base: &Path) -> Result<Option<StreamSpec>, (&'static str, String)> {
    let stream = match call.arg("stream", usize::MAX) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(("stream", format!("`stream` is true or false, not `{v}`"))),
    };
    let dir = match call.arg("cache", usize::MAX) {
        None => base.join(CACHE_DIR),
        Some(Value::Str(s)) if !s.is_empty() => base.join(s),
        Some(v) => return Err(("cache", format!("`cache` is a folder path (a non-empty string), not `{v}`"))),
    };
    if !stream && call.arg("cache", usize::MAX).is_some() {
        return Err(("cache", "`cache` names where `stream: true` keeps its cache file; add `stream: true`".into()));
    }
    Ok(stream.then_some(StreamSpec { dir }))
}

/// Stored samples: a complete, verified cache file open for positioned reads (`stream:
/// true`), or the same bytes held in memory (image-like sources loaded without `stream:`,
/// 1 byte a pixel instead of an f32's 4; see [`in_memory`]).
pub struct Cache {
    store: Store,
    path: PathBuf,
    elem: Elem,
    features: usize,
    n: usize,
    key: u64,
}

/// Where a [`Cache`]'s rows are.
enum Store {
    File(File),
    Memory(Vec<u8>),
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.store {
            Store::File(_) => {
                write!(f, "Cache({}, {} x {}, key {:016x})", self.path.display(), self.n, self.features, self.key)
            }
            Store::Memory(_) => write!(f, "Cache(in memory, {} x {} {:?})", self.n, self.features, self.elem),
        }
    }
}

impl PartialEq for Cache {
    fn eq(&self, other: &Cache) -> bool {
        match (&self.store, &other.store) {
            (Store::File(_), Store::File(_)) => self.path == other.path && self.key == other.key,
            (Store::Memory(a), Store::Memory(b)) => (self.elem, self.features, a) == (other.elem, other.features, b),
            _ => false,
        }
    }
}

impl Cache {
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn features(&self) -> usize {
        self.features
    }

    /// The cache file's path (empty for samples held in memory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the rows are read from a cache file (`stream: true`) rather than memory.
    pub fn on_disk(&self) -> bool {
        matches!(self.store, Store::File(_))
    }

    /// How a stored element reads as a value.
    pub fn elem(&self) -> Elem {
        self.elem
    }

    /// The bytes the rows take, in memory or on disk.
    pub fn bytes(&self) -> usize {
        self.n * self.row_bytes()
    }

    fn row_bytes(&self) -> usize {
        self.features * self.elem.size()
    }

    /// Row `i`'s bytes: a slice of the memory, or read into `buf`.
    fn row<'a>(&'a self, i: usize, buf: &'a mut Vec<u8>) -> Result<&'a [u8], DataError> {
        let rb = self.row_bytes();
        if i >= self.n {
            return Err(DataError::at(&self.path, None, format!("row {i} of stored samples of {} rows", self.n)));
        }
        match &self.store {
            Store::Memory(m) => {
                m.get(i * rb..(i + 1) * rb).ok_or_else(|| DataError::new(format!("row {i} is missing")))
            }
            Store::File(file) => {
                buf.resize(rb, 0);
                let at = HEADER as u64 + (i as u64) * rb as u64;
                read_at(file, buf, at)
                    .map_err(|e| DataError::at(&self.path, None, format!("cannot read the dataset cache: {e}")))?;
                Ok(buf.as_slice())
            }
        }
    }

    /// Appends the values of stored rows `rows` (unscaled, as the in-memory loader gives
    /// them) to `out`; `buf` is scratch space.
    pub fn read_rows(&self, rows: &[usize], buf: &mut Vec<u8>, out: &mut Vec<f32>) -> Result<(), DataError> {
        out.reserve(rows.len() * self.features);
        for &i in rows {
            let bytes = self.row(i, buf)?;
            self.elem.extend(bytes, out);
        }
        Ok(())
    }
}

/// A split's rows in a [`Cache`], and the train split's scaling applied as they are read.
#[derive(Debug, Clone)]
pub struct Rows {
    pub cache: Arc<Cache>,
    /// Row `i` of the split is row `index[i]` of the cache.
    pub index: Arc<[usize]>,
    pub mean: Arc<[f32]>,
    pub std: Arc<[f32]>,
}

impl PartialEq for Rows {
    fn eq(&self, other: &Rows) -> bool {
        self.cache == other.cache && self.index == other.index && self.mean == other.mean && self.std == other.std
    }
}

impl Rows {
    /// Appends split rows `rows`, scaled, to `out` (the in-memory split's exact values).
    pub fn gather(&self, rows: &[usize], out: &mut Vec<f32>) -> Result<(), DataError> {
        let f = self.cache.features;
        let elem = self.cache.elem;
        // One mean and deviation for every feature (images): a byte's scaled value is looked
        // up, computed once per byte value by the same rule, so the same bits.
        let uniform = elem.size() == 1
            && f > 0
            && self.mean.iter().all(|m| m.to_bits() == self.mean[0].to_bits())
            && self.std.iter().all(|s| s.to_bits() == self.std[0].to_bits());
        let table: Vec<f32> = if uniform {
            (0..=255u8).map(|b| scale(elem.value(b), self.mean[0], self.std[0])).collect()
        } else {
            Vec::new()
        };
        let (mut buf, mut raw) = (Vec::new(), Vec::with_capacity(f));
        out.reserve(rows.len() * f);
        for &i in rows {
            let Some(&at) = self.index.get(i) else {
                return Err(DataError::new(format!("row {i} of a split of {} rows", self.index.len())));
            };
            let bytes = self.cache.row(at, &mut buf)?;
            if uniform {
                out.extend(bytes.iter().map(|b| table[usize::from(*b)]));
            } else {
                raw.clear();
                elem.extend(bytes, &mut raw);
                out.extend(raw.iter().enumerate().map(|(j, v)| scale(*v, self.mean[j], self.std[j])));
            }
        }
        Ok(())
    }

    /// The same cache and scaling, rows `rows` of this split.
    pub fn subset(&self, rows: &[usize]) -> Rows {
        Rows { index: rows.iter().filter_map(|i| self.index.get(*i).copied()).collect(), ..self.clone() }
    }
}

/// A sample value standardised: the one rule of the in-memory and streamed paths.
pub(super) fn scale(v: f32, mean: f32, std: f32) -> f32 {
    if v.is_nan() { 0.0 } else { (v - mean) / std }
}

/// Appends whole rows to a cache being built (see [`open_or_build`], [`in_memory`]).
pub(super) struct Writer {
    path: PathBuf,
    out: Sink,
    elem: Elem,
    features: usize,
    n: usize,
    hash: u64,
}

/// Where a [`Writer`]'s rows go.
enum Sink {
    File(BufWriter<File>),
    Memory(Vec<u8>),
}

impl Writer {
    /// Appends rows given as stored bytes (`features` elements per row).
    pub(super) fn rows(&mut self, bytes: &[u8]) -> Result<(), DataError> {
        let rb = (self.features * self.elem.size()).max(1);
        if !bytes.len().is_multiple_of(rb) {
            return Err(DataError::at(&self.path, None, "a chunk of samples that is not whole rows"));
        }
        self.n += bytes.len() / rb;
        match &mut self.out {
            Sink::Memory(m) => {
                m.extend_from_slice(bytes);
                Ok(())
            }
            Sink::File(out) => {
                self.hash = fnv(self.hash, bytes);
                out.write_all(bytes)
                    .map_err(|e| DataError::at(&self.path, None, format!("cannot write the dataset cache: {e}")))
            }
        }
    }

    /// Appends rows of values, for an [`Elem::F32`] cache.
    pub(super) fn values(&mut self, values: &[f32]) -> Result<(), DataError> {
        if self.elem != Elem::F32 {
            return Err(DataError::at(&self.path, None, "f32 values for a cache of bytes"));
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.rows(&bytes)
    }
}

/// Samples held in memory as stored bytes (not f32): `build` appends them as it would to a
/// cache file, and the [`Raw`] it gives reads, splits and scales them as a streamed one,
/// with the same values. `info` is the source's.
pub(super) fn in_memory(
    elem: Elem,
    info: DataInfo,
    build: impl FnOnce(&mut Writer) -> Result<Built, DataError>,
) -> Result<Raw, DataError> {
    let features = info.features();
    let mut w = Writer { path: PathBuf::new(), out: Sink::Memory(Vec::new()), elem, features, n: 0, hash: FNV_START };
    let (y, extras) = build(&mut w)?;
    if y.len() != w.n {
        return Err(DataError::new(format!("{} labels for {} stored samples", y.len(), w.n)));
    }
    let Sink::Memory(mut bytes) = w.out else { return Err(DataError::new("samples in memory written elsewhere")) };
    bytes.shrink_to_fit();
    let cache = Cache { store: Store::Memory(bytes), path: PathBuf::new(), elem, features, n: w.n, key: 0 };
    Ok(Raw { info, x: Vec::new(), y, extras, stored: Some(Arc::new(cache)) })
}

/// Labels (one per row appended) and the source's notes: what a builder gives besides the rows.
pub(super) type Built = (Vec<f32>, Extras);

/// A streamed source, loaded: its cache reused if its key matches and it is whole, else built
/// by `build` (which appends rows to the writer it gets). `info` is the source's, known from
/// its headers or listing. Gives a [`Raw`] with `x` empty and `stored` set.
pub(super) fn open_or_build(
    call: &CallValue,
    base: &Path,
    spec: &StreamSpec,
    elem: Elem,
    info: DataInfo,
    build: impl FnOnce(&mut Writer) -> Result<Built, DataError>,
) -> Result<Raw, DataError> {
    let features = info.features();
    let source = bare(call);
    let path = spec.dir.join(format!("{}-{:016x}.bmacache", call.name, fnv(FNV_START, source.to_string().as_bytes())));
    let key = key_of(&source, base, elem, features);
    let mut notes = Vec::new();
    match open(&path, key, elem, features) {
        Ok(Opened::Ready(raw)) => return Ok(Raw { info, ..raw }),
        Ok(Opened::Missing) => {}
        Ok(Opened::Stale) => notes.push(format!("the data changed since {} was written: rebuilt", path.display())),
        Err(why) => notes.push(format!("the dataset cache {} was not usable ({why}): rebuilt", path.display())),
    }
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| DataError::at(&spec.dir, None, format!("cannot create the cache folder: {e}")))?;
    let tmp = temp_name(&path);
    if let Err(e) = write(&tmp, key, elem, features, build) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::at(&path, None, format!("cannot put the dataset cache in place: {e}")));
    }
    // Opened again from its final name: what the reads trust is the file that stays.
    match open(&path, key, elem, features) {
        Ok(Opened::Ready(mut raw)) => {
            raw.extras.notes.splice(0..0, notes);
            Ok(Raw { info, ..raw })
        }
        Ok(_) => Err(DataError::at(&path, None, "the dataset cache just written is missing")),
        Err(why) => Err(DataError::at(&path, None, format!("the dataset cache just written is not usable: {why}"))),
    }
}

/// The call without the arguments that do not change its samples.
fn bare(call: &CallValue) -> Value {
    Value::Call(CallValue {
        name: call.name.clone(),
        args: call
            .args
            .iter()
            .filter(|(k, _)| !k.as_deref().is_some_and(|k| NOT_SAMPLES.contains(&k)))
            .cloned()
            .collect(),
    })
}

/// FNV-1a over the source, the cache layout and the size and content of every file it reads.
fn key_of(source: &Value, base: &Path, elem: Elem, features: usize) -> u64 {
    let mut h = fnv(FNV_START, source.to_string().as_bytes());
    h = fnv(h, &[elem.code()]);
    h = fnv(h, &(features as u64).to_le_bytes());
    for fp in super::fingerprints(source, base) {
        h = fnv(h, fp.path.to_string_lossy().as_bytes());
        h = fnv(h, &fp.size.to_le_bytes());
        h = fnv(h, fp.hash.as_bytes());
    }
    h
}

/// A name beside `path` no other writer uses (process id and a counter).
fn temp_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// The header: magic, element code, 7 bytes free, features, rows, key, checksum, the notes'
/// length, 8 bytes free.
fn header(elem: Elem, features: usize, n: usize, key: u64, hash: u64, meta: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8] = elem.code();
    h[16..24].copy_from_slice(&(features as u64).to_le_bytes());
    h[24..32].copy_from_slice(&(n as u64).to_le_bytes());
    h[32..40].copy_from_slice(&key.to_le_bytes());
    h[40..48].copy_from_slice(&hash.to_le_bytes());
    h[48..56].copy_from_slice(&(meta as u64).to_le_bytes());
    h
}

fn write(
    tmp: &Path,
    key: u64,
    elem: Elem,
    features: usize,
    build: impl FnOnce(&mut Writer) -> Result<Built, DataError>,
) -> Result<(), DataError> {
    let io = |e: std::io::Error| DataError::at(tmp, None, format!("cannot write the dataset cache: {e}"));
    let mut file = File::create(tmp).map_err(io)?;
    file.write_all(&[0u8; HEADER]).map_err(io)?;
    let mut w = Writer {
        path: tmp.to_path_buf(),
        out: Sink::File(BufWriter::with_capacity(1 << 20, file)),
        elem,
        features,
        n: 0,
        hash: FNV_START,
    };
    let (y, extras) = build(&mut w)?;
    if y.len() != w.n {
        return Err(DataError::new(format!("{} labels for {} stored samples", y.len(), w.n)));
    }
    let mut tail: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
    let meta = serde_json::to_vec(&(&extras.class_names, &extras.notes, extras.skipped))
        .map_err(|e| DataError::new(e.to_string()))?;
    tail.extend_from_slice(&meta);
    w.hash = fnv(w.hash, &tail);
    let Sink::File(mut out) = w.out else { return Err(DataError::new("a cache file written to memory")) };
    out.write_all(&tail).map_err(io)?;
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header(elem, features, w.n, key, w.hash, meta.len())).map_err(io)?;
    file.sync_all().map_err(io)
}

/// What [`open`] found at a cache's path.
enum Opened {
    Missing,
    /// A whole cache of other data (its key differs).
    Stale,
    Ready(Raw),
}

/// The cache at `path` if it exists, is whole and has `key` (its `info` left for the caller
/// to set); `Err(why)` when it is cut short, damaged, or not of `features` values of `elem`
/// a row.
fn open(path: &Path, key: u64, elem_wanted: Elem, features_wanted: usize) -> Result<Opened, String> {
    let Ok(mut file) = File::open(path) else { return Ok(Opened::Missing) };
    let mut h = [0u8; HEADER];
    file.read_exact(&mut h).map_err(|_| "its header is cut short".to_string())?;
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        u64::from_le_bytes(b)
    };
    if &h[..8] != MAGIC {
        return Err("it is not a bma dataset cache".into());
    }
    let elem = Elem::from_code(h[8]).ok_or("its element type is unknown")?;
    let (features, n, stored_key, hash, meta) = (word(16), word(24), word(32), word(40), word(48));
    if stored_key != key {
        return Ok(Opened::Stale);
    }
    if features != features_wanted as u64 {
        return Err(format!("{features} values a row where the source has {features_wanted}"));
    }
    if elem != elem_wanted {
        return Err(format!("its values are {elem:?} where the source's are {elem_wanted:?}"));
    }
    let row_bytes = features.saturating_mul(elem.size() as u64);
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let expect = row_bytes
        .checked_mul(n)
        .and_then(|b| b.checked_add(n.checked_mul(4)?))
        .and_then(|b| b.checked_add(meta))
        .and_then(|b| b.checked_add(HEADER as u64));
    if expect != Some(size) {
        return Err(format!("{size} bytes where its header needs {}", expect.map_or("more".into(), |e| e.to_string())));
    }
    let (features, n, meta) = (features as usize, n as usize, meta as usize);
    // The checksum covers every byte after the header, read in blocks: the body is not kept.
    let mut got = FNV_START;
    let mut block = vec![0u8; 1 << 20];
    let mut left = row_bytes as usize * n;
    while left > 0 {
        let k = left.min(block.len());
        file.read_exact(&mut block[..k]).map_err(|e| e.to_string())?;
        got = fnv(got, &block[..k]);
        left -= k;
    }
    let mut tail = vec![0u8; n * 4 + meta];
    file.read_exact(&mut tail).map_err(|e| e.to_string())?;
    got = fnv(got, &tail);
    if got != hash {
        return Err("its checksum does not match its content".into());
    }
    let y: Vec<f32> = tail[..n * 4].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let (class_names, notes, skipped): (Vec<String>, Vec<String>, usize) =
        serde_json::from_slice(&tail[n * 4..]).map_err(|e| format!("its notes do not read: {e}"))?;
    let cache = Cache { store: Store::File(file), path: path.to_path_buf(), elem, features, n, key };
    let info = DataInfo {
        name: String::new(),
        shape: Vec::new(),
        classes: 0,
        task: crate::ir::Task::Classification,
        vocab: None,
    };
    let extras = Extras { class_names, notes, skipped };
    Ok(Opened::Ready(Raw { info, x: Vec::new(), y, extras, stored: Some(Arc::new(cache)) }))
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match std::os::windows::fs::FileExt::seek_read(file, &mut buf[done..], at)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            k => {
                done += k;
                at += k as u64;
            }
        }
    }
    Ok(())
}
