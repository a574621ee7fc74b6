//! NumPy arrays: `npy(x: "x.npy", y: "y.npy", task:)` and `npz("data.npz", x: "x", y: "y", task:)`.
//!
//! Takes two `.npy` files, or a `.npz` archive (a zip, stored or deflated) and the names of
//! its two members (default `x` and `y`; `x.npy` inside the archive). Reads format versions
//! 1, 2 and 3 (the header dict is parsed here), C order only (a Fortran-order array is
//! refused with how to save it instead), little- or big-endian `u1`/`i1`/`u2`/`i2`/`u4`/`i4`/
//! `u8`/`i8`/`f4`/`f8` and `b1`. Gives [`Raw`] samples: x's shape `[n]` is `[1]`, `[n, d]`
//! is `[d]`, `[n, h, w]` is `[1, h, w]`, `[n, c, h, w]` is `[c, h, w]`. y is `[n]` (or
//! `[n, 1]`): for classification (the default) non-negative integers, classes `max + 1` as
//! for IDX; for `task: regression` any finite number.
//!
//! `u1` and `b1` inputs are kept as bytes in memory; with `stream: true` x is kept in a cache
//! file (`data::cache`: bytes for `u1` and `b1`, f32 for the other types), read
//! [`cache::CHUNK_ROWS`] samples at a time. Either way a batch's values are the f32 path's.
//!
//! The checker ([`describe`]) reads x's header only (its size is checked against the file's
//! length, or the member's size in the archive's central directory), and y whole (one value
//! per sample) for its classes.
//!
//! **Invariants:** [`describe`] and [`load`] give the same [`DataInfo`]; a bad header, a
//! file cut short, a dtype not listed, a NaN or infinite input, a label that is not a class,
//! and x and y of different lengths are [`DataError`]s naming the file (and sample), never
//! a panic.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use super::{DataError, Extras, Raw, cache, single_label};
use crate::ir::{CallValue, DataInfo, Task, Value};

use super::ArgError;

/// Where the two arrays are.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrays {
    Files { x: PathBuf, y: PathBuf },
    Npz { path: PathBuf, x: String, y: String },
}

/// The arguments of an `npy(...)` or `npz(...)` call.
#[derive(Debug, Clone, PartialEq)]
pub struct NpySpec {
    pub arrays: Arrays,
    pub task: Task,
}

impl NpySpec {
    /// Reads the arguments of `call` (relative paths from `base`).
    pub fn from_call(call: &CallValue, base: &Path) -> Result<NpySpec, ArgError> {
        let bad = |arg: &'static str, message: String| ArgError { arg, message };
        let string = |arg: &'static str, pos: usize| match call.arg(arg, pos) {
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(arg, format!("`{arg}` must be a string, not a {}", other.type_name()))),
            None => Ok(None),
        };
        let task = match call.arg("task", usize::MAX).map(|v| (v, v.as_sym())) {
            None | Some((_, Some("classification"))) => Task::Classification,
            Some((_, Some("regression"))) => Task::Regression,
            Some((v, _)) => return Err(bad("task", format!("unknown task `{v}` (classification or regression)"))),
        };
        let arrays = if call.name == "npz" {
            let Some(path) = string("path", 0)? else {
                return Err(bad("path", "`npz` needs the archive's path".into()));
            };
            Arrays::Npz {
                path: base.join(path),
                x: string("x", usize::MAX)?.unwrap_or_else(|| "x".into()),
                y: string("y", usize::MAX)?.unwrap_or_else(|| "y".into()),
            }
        } else {
            let x = string("x", 0)?.ok_or_else(|| bad("x", "`npy` needs `x`, the inputs' .npy file".into()))?;
            let y = string("y", 1)?.ok_or_else(|| bad("y", "`npy` needs `y`, the labels' .npy file".into()))?;
            Arrays::Files { x: base.join(x), y: base.join(y) }
        };
        Ok(NpySpec { arrays, task })
    }

    fn name(&self) -> String {
        match &self.arrays {
            Arrays::Files { x, .. } => format!("npy({})", x.display()),
            Arrays::Npz { path, .. } => format!("npz({})", path.display()),
        }
    }
}

/// The element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub dtype: Dtype,
    pub big_endian: bool,
    pub shape: Vec<usize>,
    /// Where the data starts: the header's length in bytes.
    pub offset: usize,
}

impl Header {
    /// The bytes of data the shape needs (`None` on overflow).
    pub fn data_len(&self) -> Option<usize> {
        self.shape.iter().try_fold(self.dtype.size(), |a, d| a.checked_mul(*d))
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";
/// Labels are class indices below this.
const MAX_CLASSES: usize = 1_000_000;

/// The length of the header that starts with these (at least 12) bytes; `Err` when they
/// are not the start of a `.npy` file.
fn header_len(start: &[u8]) -> Result<usize, String> {
    if start.len() < 10 || &start[..6] != MAGIC {
        return Err("not a .npy file: it does not start with \\x93NUMPY".into());
    }
    match start[6] {
        1 => Ok(10 + usize::from(u16::from_le_bytes([start[8], start[9]]))),
        2 | 3 if start.len() >= 12 => {
            Ok(12usize.saturating_add(u32::from_le_bytes([start[8], start[9], start[10], start[11]]) as usize))
        }
        2 | 3 => Err("the .npy header is cut short".into()),
        v => Err(format!("unknown .npy format version {v}.{}", start[7])),
    }
}

/// Parses a whole `.npy` header (magic, version, length, dict). The dict is the Python
/// literal NumPy writes: `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
pub fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let offset = header_len(bytes)?;
    let start = if bytes.get(6) == Some(&1) { 10 } else { 12 };
    let dict = bytes.get(start..offset).ok_or_else(|| "the .npy header is cut short".to_string())?;
    let dict = std::str::from_utf8(dict).map_err(|_| "the .npy header is not text".to_string())?;
    let value = |key: &str| -> Result<&str, String> {
        let at = dict
            .find(&format!("'{key}'"))
            .or_else(|| dict.find(&format!("\"{key}\"")))
            .ok_or_else(|| format!("the .npy header has no `{key}`"))?;
        let rest = &dict[at + key.len() + 2..];
        let colon = rest.find(':').ok_or_else(|| format!("the .npy header's `{key}` has no value"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = value("descr")?;
    let Some(q) = descr.chars().next().filter(|c| *c == '\'' || *c == '"') else {
        return Err("structured (record) arrays are not supported: save a plain numeric array".into());
    };
    let descr = descr[1..]
        .find(q)
        .map(|e| &descr[1..e + 1])
        .ok_or_else(|| "the .npy header's dtype is not closed".to_string())?;
    let (order, code) = descr.char_indices().nth(1).map_or((descr, ""), |(i, _)| descr.split_at(i));
    let big_endian = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return Err(format!("unknown dtype `{descr}`")),
    };
    let dtype = match code {
        "b1" | "?" => Dtype::Bool,
        "u1" => Dtype::U8,
        "i1" => Dtype::I8,
        "u2" => Dtype::U16,
        "i2" => Dtype::I16,
        "u4" => Dtype::U32,
        "i4" => Dtype::I32,
        "u8" => Dtype::U64,
        "i8" => Dtype::I64,
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        _ => {
            return Err(format!(
                "dtype `{descr}` is not supported (integers, bool, float32 and float64 are): convert with \
                 `.astype(np.float32)`"
            ));
        }
    };
    if value("fortran_order")?.starts_with("True") {
        return Err("the array is in Fortran order: save `np.ascontiguousarray(a)` instead".into());
    }
    let shape = value("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.find(')').map(|e| &s[..e]))
        .ok_or_else(|| "the .npy header's shape is not a tuple".to_string())?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L').parse::<usize>().map_err(|_| format!("the .npy shape has a bad dimension `{d}`"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header { dtype, big_endian, shape, offset })
}

/// Reads just the header of the `.npy` stream `r`.
fn read_header(r: &mut impl Read) -> Result<Header, String> {
    let mut start = [0u8; 12];
    r.read_exact(&mut start).map_err(|_| "not a .npy file: shorter than a .npy header".to_string())?;
    let len = header_len(&start)?;
    if len > 1 << 20 {
        return Err(format!("the .npy header claims {len} bytes"));
    }
    let mut all = start.to_vec();
    all.resize(len.max(12), 0);
    r.read_exact(&mut all[12..]).map_err(|_| "the .npy header is cut short".to_string())?;
    parse_header(&all)
}

/// The values of `body` (the bytes after the header), as f64, one by one.
fn values<'b>(h: &Header, body: &'b [u8]) -> Box<dyn Iterator<Item = f64> + 'b> {
    let be = h.big_endian;
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            Box::new(body.chunks_exact($n).map(move |b| {
                let a: [u8; $n] = b.try_into().unwrap_or([0; $n]);
                (if be { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }) as f64
            }))
        };
    }
    match h.dtype {
        Dtype::Bool | Dtype::U8 => Box::new(body.iter().map(|b| f64::from(*b))),
        Dtype::I8 => Box::new(body.iter().map(|b| f64::from(*b as i8))),
        Dtype::U16 => conv!(u16, 2),
        Dtype::I16 => conv!(i16, 2),
        Dtype::U32 => conv!(u32, 4),
        Dtype::I32 => conv!(i32, 4),
        Dtype::U64 => conv!(u64, 8),
        Dtype::I64 => conv!(i64, 8),
        Dtype::F32 => conv!(f32, 4),
        Dtype::F64 => conv!(f64, 8),
    }
}

/// An array's header and where it was read from (a file, or `archive:member`).
struct Array {
    header: Header,
    at: PathBuf,
    /// The whole `.npy` bytes, when read.
    bytes: Option<Vec<u8>>,
}

fn cut_short(at: &Path, need: usize, found: u64) -> DataError {
    DataError::at(at, None, format!("the array is cut short: {need} bytes expected, {found} found"))
}

fn open_file(path: &Path, whole: bool) -> Result<Array, DataError> {
    let err = |e: String| DataError::at(path, None, e);
    let mut f = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let len = f.metadata().map_err(|e| err(format!("cannot read: {e}")))?.len();
    let header = read_header(&mut f).map_err(err)?;
    let need = header
        .data_len()
        .and_then(|d| d.checked_add(header.offset))
        .ok_or_else(|| err("the shape is too large".into()))?;
    if len < need as u64 {
        return Err(cut_short(path, need, len));
    }
    let bytes = if whole {
        f.rewind().map_err(|e| err(format!("cannot read: {e}")))?;
        let mut b = Vec::with_capacity(need);
        f.take(need as u64).read_to_end(&mut b).map_err(|e| err(format!("cannot read: {e}")))?;
        Some(b)
    } else {
        None
    };
    Ok(Array { header, at: path.to_path_buf(), bytes })
}

fn open_member(path: &Path, name: &str, whole: bool) -> Result<Array, DataError> {
    let err = |e: String| DataError::at(path, None, e);
    let file = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| err(format!("not a usable .npz (zip) archive: {e}")))?;
    let member =
        if zip.file_names().any(|n| n == format!("{name}.npy")) { format!("{name}.npy") } else { name.to_string() };
    let names: Vec<String> = zip.file_names().map(|n| n.trim_end_matches(".npy").to_string()).collect();
    let at = PathBuf::from(format!("{}:{member}", path.display()));
    let mut m = zip.by_name(&member).map_err(|_| {
        let mut names = names.clone();
        names.sort();
        err(format!("the archive has no array `{name}` (it has {})", names.join(", ")))
    })?;
    let size = m.size();
    let header = read_header(&mut m).map_err(|e| DataError::at(&at, None, e))?;
    let need = header
        .data_len()
        .and_then(|d| d.checked_add(header.offset))
        .ok_or_else(|| DataError::at(&at, None, "the shape is too large"))?;
    if size < need as u64 {
        return Err(cut_short(&at, need, size));
    }
    let bytes = if whole {
        let mut b = vec![0u8; header.offset];
        let mut rest = Vec::with_capacity(need - header.offset);
        m.take((need - header.offset) as u64)
            .read_to_end(&mut rest)
            .map_err(|e| DataError::at(&at, None, format!("cannot read the archive member: {e}")))?;
        if rest.len() + header.offset < need {
            return Err(cut_short(&at, need, (rest.len() + header.offset) as u64));
        }
        b.extend_from_slice(&rest);
        Some(b)
    } else {
        None
    };
    Ok(Array { header, at, bytes })
}

fn open(spec: &NpySpec, x_whole: bool) -> Result<(Array, Array), DataError> {
    match &spec.arrays {
        Arrays::Files { x, y } => Ok((open_file(x, x_whole)?, open_file(y, true)?)),
        Arrays::Npz { path, x, y } => Ok((open_member(path, x, x_whole)?, open_member(path, y, true)?)),
    }
}

/// The shape, classes (and task) the arrays give; reads x's header and y.
pub fn describe(spec: &NpySpec) -> Result<DataInfo, DataError> {
    let (x, y) = open(spec, false)?;
    let (info, _) = info_and_labels(spec, &x, &y)?;
    Ok(info)
}

fn info_and_labels(spec: &NpySpec, x: &Array, y: &Array) -> Result<(DataInfo, Vec<f32>), DataError> {
    let xs = &x.header.shape;
    let shape = match xs.as_slice() {
        [_] => vec![1],
        [_, d] => vec![*d],
        [_, h, w] => vec![1, *h, *w],
        [_, c, h, w] => vec![*c, *h, *w],
        _ => {
            return Err(DataError::at(
                &x.at,
                None,
                format!("x has {} dimensions: 1 to 4 are read (samples first)", xs.len()),
            ));
        }
    };
    if xs.contains(&0) {
        return Err(DataError::at(&x.at, None, format!("x holds nothing: its shape is {xs:?}")));
    }
    let n = xs[0];
    let ys = &y.header.shape;
    let ok = matches!(ys.as_slice(), [m] | [m, 1] if *m == n);
    if !ok {
        return Err(DataError::at(
            &y.at,
            None,
            format!("y has shape {ys:?}: one label per sample of x ({n} samples) is needed, shape ({n},)"),
        ));
    }
    let body = y.bytes.as_deref().and_then(|b| b.get(y.header.offset..)).unwrap_or_default();
    let mut out = Vec::with_capacity(n);
    for (i, v) in values(&y.header, body).enumerate() {
        let v = &v;
        let bad = match spec.task {
            Task::Classification if *v >= MAX_CLASSES as f64 => {
                Some(format!("sample {i}: label {v} is too large (classes are counted up to {MAX_CLASSES})"))
            }
            Task::Classification if !(v.is_finite() && *v >= 0.0 && v.fract() == 0.0) => Some(format!(
                "sample {i}: label {v} is not a class (a non-negative integer){}",
                if y.header.dtype.is_float() { "; for numeric targets give `task: regression`" } else { "" }
            )),
            Task::Regression if !v.is_finite() || v.abs() > f64::from(f32::MAX) => {
                Some(format!("sample {i}: target {v} is not a finite 32-bit number"))
            }
            _ => None,
        };
        if let Some(b) = bad {
            return Err(DataError::at(&y.at, None, b));
        }
        out.push(*v as f32);
    }
    let classes = match spec.task {
        Task::Classification => {
            if let Some(first) = out.first()
                && out.iter().all(|v| v == first)
            {
                return Err(DataError::at(&y.at, None, single_label(*first as i64)));
            }
            out.iter().fold(0usize, |m, v| m.max(*v as usize + 1))
        }
        Task::Regression => 1,
    };
    Ok((DataInfo { name: spec.name(), shape, classes, task: spec.task, vocab: None }, out))
}

/// Loads the arrays `spec` names: `u1` and `b1` inputs kept as bytes in memory (a quarter of
/// their f32 values; `data::cache::in_memory`), the other types as f32.
pub(super) fn load(spec: &NpySpec) -> Result<Raw, DataError> {
    let (x, y) = open(spec, false)?;
    if elem(x.header.dtype) == cache::Elem::Byte {
        let (info, labels) = info_and_labels(spec, &x, &y)?;
        return cache::in_memory(cache::Elem::Byte, info.clone(), |w| append(spec, &info, labels, w));
    }
    let (x, y) = open(spec, true)?;
    let (info, labels) = info_and_labels(spec, &x, &y)?;
    let body = x.bytes.as_deref().and_then(|b| b.get(x.header.offset..)).unwrap_or_default();
    let per = info.features();
    let mut xs = Vec::with_capacity(labels.len() * per);
    convert(&x.header, body, &x.at, 0, per, &mut xs)?;
    Ok(Raw { info, x: xs, y: labels, extras: Extras::default(), stored: None })
}

/// [`load`] into a dataset cache (`stream: true`, see `data::cache`): x read and appended
/// [`cache::CHUNK_ROWS`] samples at a time (bytes as bytes, other types as f32), never held
/// whole.
pub(super) fn load_streamed(
    call: &CallValue,
    base: &Path,
    spec: &NpySpec,
    stream: &cache::StreamSpec,
) -> Result<Raw, DataError> {
    let (x, y) = open(spec, false)?;
    let (info, labels) = info_and_labels(spec, &x, &y)?;
    cache::open_or_build(call, base, stream, elem(x.header.dtype), info.clone(), |w| append(spec, &info, labels, w))
}

/// How a cache stores values of `dtype`: bytes for `u1` and `b1`, f32 for the others.
fn elem(dtype: Dtype) -> cache::Elem {
    match dtype {
        Dtype::U8 | Dtype::Bool => cache::Elem::Byte,
        _ => cache::Elem::F32,
    }
}

/// Appends the values of `body` (whole samples of `per` values, the first one sample `first`)
/// to `out` as f32; a value that is not a finite 32-bit number is an error naming it.
fn convert(h: &Header, body: &[u8], at: &Path, first: usize, per: usize, out: &mut Vec<f32>) -> Result<(), DataError> {
    for (k, v) in values(h, body).enumerate() {
        if !v.is_finite() || v.abs() > f64::from(f32::MAX) {
            return Err(DataError::at(
                at,
                None,
                format!("sample {}: value {v} (element {}) is not a finite 32-bit number", first + k / per, k % per),
            ));
        }
        out.push(v as f32);
    }
    Ok(())
}

/// Reads x's body [`cache::CHUNK_ROWS`] samples at a time and appends it to `w` (a cache of
/// [`elem`] of its dtype): what both [`load`] and [`load_streamed`] store.
fn append(spec: &NpySpec, info: &DataInfo, labels: Vec<f32>, w: &mut cache::Writer) -> Result<cache::Built, DataError> {
    let per = info.features();
    let n = labels.len();
    let mut copy = |h: &Header, at: &Path, r: &mut dyn Read| -> Result<(), DataError> {
        let size = h.dtype.size();
        let mut chunk = vec![0u8; cache::CHUNK_ROWS * per * size];
        let mut vals = Vec::new();
        let mut done = 0;
        while done < n {
            let k = (n - done).min(cache::CHUNK_ROWS);
            let bytes = &mut chunk[..k * per * size];
            r.read_exact(bytes).map_err(|e| DataError::at(at, None, format!("cannot read: {e}")))?;
            if elem(h.dtype) == cache::Elem::Byte {
                w.rows(bytes)?;
            } else {
                vals.clear();
                convert(h, bytes, at, done, per, &mut vals)?;
                w.values(&vals)?;
            }
            done += k;
        }
        Ok(())
    };
    match &spec.arrays {
        Arrays::Files { x, .. } => {
            let err = |e: String| DataError::at(x, None, e);
            let mut f = std::fs::File::open(x).map_err(|e| err(format!("cannot read: {e}")))?;
            let header = read_header(&mut f).map_err(err)?;
            let mut r = std::io::BufReader::new(f);
            copy(&header, x, &mut r)?;
        }
        Arrays::Npz { path, x, .. } => {
            let err = |e: String| DataError::at(path, None, e);
            let file = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
            let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
                .map_err(|e| err(format!("not a usable .npz (zip) archive: {e}")))?;
            let member =
                if zip.file_names().any(|m| m == format!("{x}.npy")) { format!("{x}.npy") } else { x.to_string() };
            let at = PathBuf::from(format!("{}:{member}", path.display()));
            let mut m = zip.by_name(&member).map_err(|e| DataError::at(&at, None, format!("cannot read: {e}")))?;
            let header = read_header(&mut m).map_err(|e| DataError::at(&at, None, e))?;
            copy(&header, &at, &mut m)?;
        }
    }
    Ok((labels, Extras::default()))
}

/// The files the arrays are read from.
pub(super) fn files(spec: &NpySpec) -> Vec<PathBuf> {
    match &spec.arrays {
        Arrays::Files { x, y } => vec![x.clone(), y.clone()],
        Arrays::Npz { path, .. } => vec![path.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (11 + dict.len()) % 64 != 0 {
            dict.push(' ');
        }
        dict.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn mutated_npy_files_never_panic() {
        let dir = std::env::temp_dir().join(format!("bma-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let x = npy("<f4", "(3, 2)", &[0u8; 24]);
        let y = npy("<i8", "(3,)", &[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
        std::fs::write(&yp, &y).expect("write");
        let spec = NpySpec { arrays: Arrays::Files { x: xp.clone(), y: yp.clone() }, task: Task::Classification };
        std::fs::write(&xp, &x).expect("write");
        assert_eq!(load(&spec).expect("loads").info.shape, vec![2]);
        let mut rng = crate::rng::Rng::new(7);
        let mut cases: Vec<Vec<u8>> = (0..x.len()).map(|n| x[..n].to_vec()).collect();
        for _ in 0..400 {
            let mut m = x.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(m.len() as u64) as usize;
                m[at] = match rng.below(4) {
                    0 => 0xFF,
                    1 => b'(',
                    2 => 0xC3,
                    _ => rng.below(256) as u8,
                };
            }
            cases.push(m);
        }
        cases.push(npy("\u{e9}<f4", "(3, 2)", &[0u8; 24]));
        cases.push(npy("<f4", "(99999999999, 99999999999, 99999999999)", &[]));
        cases.push(npy("<f4", "(3, 2", &[0u8; 24]));
        for m in cases {
            let _ = parse_header(&m);
            std::fs::write(&xp, &m).expect("write");
            let _ = describe(&spec);
            let _ = load(&spec);
        }
        // A huge label is refused, not an overflow.
        std::fs::write(&xp, &x).expect("write");
        std::fs::write(
            &yp,
            npy("<f8", "(3,)", &[1e300f64, 0.0, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
        )
        .expect("write");
        let e = describe(&spec).expect_err("huge label").to_string();
        assert!(e.contains("too large"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
