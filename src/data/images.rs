//! Image folders: `images(dir, size: [h, w], channels: 1 | 3, skip_bad: false)`.
//!
//! Takes a folder with one subfolder per class (class names: the subfolders' names,
//! sorted; files whose extension is not `png`, `jpg`, `jpeg` or `bmp` and hidden entries are
//! ignored, as are files directly in the folder), or a CSV list (`images("list.csv", ...)`:
//! a header with `path` and `label` columns, paths relative to the CSV file, classes the
//! distinct labels sorted, numerically when every label is an integer). Gives [`Raw`]
//! samples of shape `[channels, h, w]` (default 3 channels), pixel values in [0, 1]:
//! each image is converted to grey (`channels: 1`, alpha dropped) or RGB (`channels: 3`),
//! then, with `size:`, centre-cropped to the aspect ratio of `size` and resized to it
//! (bilinear); without `size:`, every image must have the first image's size.
//! Decoding runs in parallel (rayon).
//!
//! The checker ([`describe`]) reads the listing only, plus the image headers when `size:`
//! is missing (never a pixel); its answer is cached by the modification times of the folder
//! and its class folders (or of the CSV list), so a keystroke in the language server does not
//! re-list a big folder. A file rewritten in place with another size is therefore seen at
//! load time, where every decoded size is checked again.
//!
//! **Invariants:** [`describe`] and [`load`] build the same [`DataInfo`] from the same
//! listing; bad input (no class folders, one class, an empty class folder, a CSV row that
//! is not UTF-8 or lacks a field, a missing, corrupt or truncated image, mixed sizes
//! without `size:`) is a [`DataError`] naming the file (and CSV line), never a panic;
//! with `skip_bad: true` bad rows and images are skipped instead, and the count is a note
//! in [`Raw::extras`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use image::imageops::FilterType;
use image::{ImageBuffer, ImageReader, Pixel};
use rayon::prelude::*;

use super::{DataError, Extras, Raw, cache, csv_records};
use crate::ir::{CallValue, DataInfo, Task, Value};

/// The file extensions read as images (compared without case).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp"];
/// The largest `size:` side accepted.
pub const MAX_SIDE: usize = 4096;

/// The arguments of an `images(...)` call.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    pub path: PathBuf,
    /// `[h, w]` to crop and resize to; `None`: every image keeps (and must share) its size.
    pub size: Option<[usize; 2]>,
    pub channels: usize,
    pub skip_bad: bool,
}

/// An argument of `images(...)` that cannot be used: its name and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgError {
    pub arg: &'static str,
    pub message: String,
}

impl ImageSpec {
    /// Reads the arguments of `call` (relative paths from `base`).
    pub fn from_call(call: &CallValue, base: &Path) -> Result<ImageSpec, ArgError> {
        let bad = |arg: &'static str, message: String| ArgError { arg, message };
        let path = match call.arg("dir", 0) {
            Some(Value::Str(s)) => base.join(s),
            Some(other) => return Err(bad("dir", format!("`dir` must be a string path, not a {}", other.type_name()))),
            None => return Err(bad("dir", "`images` needs a folder (or a CSV list) as `dir`".into())),
        };
        let size = match call.arg("size", usize::MAX) {
            None => None,
            Some(Value::List(items)) => match items.as_slice() {
                [Value::Int(h), Value::Int(w)]
                    if (1..=MAX_SIDE as i64).contains(h) && (1..=MAX_SIDE as i64).contains(w) =>
                {
                    Some([*h as usize, *w as usize])
                }
                _ => {
                    return Err(bad("size", format!("`size` is `[h, w]`: two ints from 1 to {MAX_SIDE}")));
                }
            },
            Some(_) => return Err(bad("size", "`size` is a list `[h, w]` of two ints".into())),
        };
        let channels = match call.arg("channels", usize::MAX) {
            None => 3,
            Some(Value::Int(c)) if *c == 1 || *c == 3 => *c as usize,
            Some(v) => {
                return Err(bad("channels", format!("`channels` is 1 (grey) or 3 (RGB), not `{v}`")));
            }
        };
        let skip_bad = match call.arg("skip_bad", usize::MAX) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(bad("skip_bad", format!("`skip_bad` is true or false, not `{v}`"))),
        };
        Ok(ImageSpec { path, size, channels, skip_bad })
    }
}

/// One image of a listing: its file, class index, and the CSV line that names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub path: PathBuf,
    pub class: usize,
    pub line: Option<usize>,
}

/// What the listing (and, without `size:`, the headers) of an image source says.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub samples: Vec<Sample>,
    pub classes: Vec<String>,
    /// Without `size:`: the shared `(h, w)` and the file that set it.
    pub dims: Option<((usize, usize), PathBuf)>,
    /// Samples left out by `skip_bad` before decoding (bad rows, unreadable headers), with why.
    pub skipped: Vec<DataError>,
}

/// The shape, classes and class names an image source gives, from its listing only.
pub fn describe(spec: &ImageSpec) -> Result<(DataInfo, Vec<String>), DataError> {
    let listing = listing(spec)?;
    Ok((info(spec, &listing)?, listing.classes.clone()))
}

fn info(spec: &ImageSpec, listing: &Listing) -> Result<DataInfo, DataError> {
    let (h, w) = match (spec.size, &listing.dims) {
        (Some([h, w]), _) => (h, w),
        (None, Some((d, _))) => *d,
        (None, None) => return Err(DataError::at(&spec.path, None, "no image to read a size from")),
    };
    Ok(DataInfo {
        name: format!("images({})", spec.path.display()),
        shape: vec![spec.channels, h, w],
        classes: listing.classes.len(),
        task: Task::Classification,
        vocab: None,
    })
}

type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;
type CacheKey = (PathBuf, bool, bool);
type Cache = Mutex<HashMap<CacheKey, (Stamp, Arc<Listing>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// What the cached listing of `path` depends on: the modification times (and sizes) of the
/// folder and its subfolders, or of the CSV list. Lists the top folder only.
fn stamp(path: &Path) -> Stamp {
    let of = |p: &Path| {
        let m = std::fs::metadata(p).ok();
        (p.to_path_buf(), m.as_ref().and_then(|m| m.modified().ok()), m.map_or(0, |m| m.len()))
    };
    let mut s = vec![of(path)];
    if path.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        let mut subs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        subs.sort();
        s.extend(subs.iter().map(|p| of(p)));
    }
    s
}

/// The listing of `spec`'s source, cached by [`stamp`].
pub fn listing(spec: &ImageSpec) -> Result<Arc<Listing>, DataError> {
    let key = (spec.path.clone(), spec.skip_bad, spec.size.is_none());
    let now = stamp(&spec.path);
    if let Ok(c) = cache().lock()
        && let Some((s, l)) = c.get(&key)
        && *s == now
    {
        return Ok(l.clone());
    }
    let fresh = Arc::new(list(spec)?);
    if let Ok(mut c) = cache().lock() {
        if c.len() >= 32 {
            c.clear();
        }
        c.insert(key, (now, fresh.clone()));
    }
    Ok(fresh)
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

fn list(spec: &ImageSpec) -> Result<Listing, DataError> {
    let path = &spec.path;
    let meta = std::fs::metadata(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))?;
    let (samples, classes, mut skipped) = if meta.is_dir() {
        let (s, c) = list_folder(path)?;
        (s, c, Vec::new())
    } else if meta.is_file() {
        list_csv(path, spec.skip_bad)?
    } else {
        return Err(DataError::at(path, None, "neither a folder nor a CSV list"));
    };
    let mut samples = samples;
    let dims = if spec.size.is_none() {
        let heads: Vec<Result<(usize, usize), DataError>> = samples.par_iter().map(|s| header(s, path)).collect();
        let mut kept = Vec::with_capacity(samples.len());
        let mut dims: Option<((usize, usize), PathBuf)> = None;
        for (s, h) in samples.into_iter().zip(heads) {
            let d = match h {
                Ok(d) => d,
                Err(e) if spec.skip_bad => {
                    skipped.push(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match &dims {
                None => dims = Some((d, s.path.clone())),
                Some((first, from)) if *first != d => {
                    let e = differ(&s, path, d, *first, from);
                    if spec.skip_bad {
                        skipped.push(e);
                        continue;
                    }
                    return Err(e);
                }
                Some(_) => {}
            }
            kept.push(s);
        }
        samples = kept;
        dims
    } else {
        None
    };
    if samples.is_empty() {
        return Err(DataError::at(path, None, "no usable image"));
    }
    Ok(Listing { samples, classes, dims, skipped })
}

/// A problem with the image of `s`: at the image file, or at the line of the CSV list `list`
/// that names it (the image's path then begins the message).
fn bad(s: &Sample, list: &Path, message: impl std::fmt::Display) -> DataError {
    match s.line {
        Some(line) => DataError::at(list, Some(line), format!("`{}`: {message}", s.path.display())),
        None => DataError::at(&s.path, None, message.to_string()),
    }
}

fn differ(s: &Sample, list: &Path, d: (usize, usize), first: (usize, usize), from: &Path) -> DataError {
    bad(
        s,
        list,
        format!(
            "this image is {}x{} (h x w) but `{}` is {}x{}: images of mixed sizes need `size: [h, w]`",
            d.0,
            d.1,
            from.display(),
            first.0,
            first.1
        ),
    )
}

/// The `(h, w)` in an image's header, without decoding its pixels.
fn header(s: &Sample, list: &Path) -> Result<(usize, usize), DataError> {
    let reader = ImageReader::open(&s.path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|e| bad(s, list, format!("cannot read: {e}")))?;
    let (w, h) = reader.into_dimensions().map_err(|e| bad(s, list, format!("not a usable image: {e}")))?;
    Ok((h as usize, w as usize))
}

fn list_folder(dir: &Path) -> Result<(Vec<Sample>, Vec<String>), DataError> {
    let entries = |d: &Path| -> Result<Vec<PathBuf>, DataError> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| DataError::at(d, None, format!("cannot list: {e}")))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| !hidden(p))
            .collect();
        v.sort();
        Ok(v)
    };
    let folders: Vec<PathBuf> = entries(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    match folders.len() {
        0 => {
            return Err(DataError::at(
                dir,
                None,
                "no class folders: an image folder holds one subfolder of images per class",
            ));
        }
        1 => {
            return Err(DataError::at(
                dir,
                None,
                format!(
                    "one class folder (`{}`): a classifier needs at least 2 classes",
                    folders[0].file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())
                ),
            ));
        }
        _ => {}
    }
    let mut samples = Vec::new();
    let mut classes = Vec::new();
    for (class, folder) in folders.iter().enumerate() {
        let files: Vec<PathBuf> = entries(folder)?.into_iter().filter(|p| is_image(p) && !p.is_dir()).collect();
        if files.is_empty() {
            return Err(DataError::at(
                folder,
                None,
                format!("the class folder holds no image ({})", IMAGE_EXTENSIONS.join(", ")),
            ));
        }
        classes.push(folder.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned()));
        samples.extend(files.into_iter().map(|path| Sample { path, class, line: None }));
    }
    Ok((samples, classes))
}

type CsvListing = (Vec<Sample>, Vec<String>, Vec<DataError>);

fn list_csv(csv: &Path, skip_bad: bool) -> Result<CsvListing, DataError> {
    let bytes = std::fs::read(csv).map_err(|e| DataError::at(csv, None, format!("cannot read: {e}")))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut skipped = Vec::new();
    // A row that is not UTF-8 is refused (or, with skip_bad, blanked: blank lines are skipped).
    let mut text = String::with_capacity(bytes.len());
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            text.push('\n');
        }
        match std::str::from_utf8(line) {
            Ok(l) => text.push_str(l),
            Err(_) if skip_bad && i > 0 => skipped.push(DataError::at(csv, Some(i + 1), "not UTF-8 text")),
            Err(_) => return Err(DataError::at(csv, Some(i + 1), "this row is not UTF-8 text")),
        }
    }
    let records = csv_records(&text).map_err(|e| DataError::at(csv, Some(e.line), e.message))?;
    let mut records = records.into_iter();
    let Some(head) = records.next() else { return Err(DataError::at(csv, None, "the image list is empty")) };
    let col = |name: &str| head.fields.iter().position(|f| f.eq_ignore_ascii_case(name));
    let (Some(pc), Some(lc)) = (col("path"), col("label")) else {
        return Err(DataError::at(
            csv,
            Some(head.line),
            "an image list needs a header with `path` and `label` columns",
        ));
    };
    let folder = csv.parent().unwrap_or(Path::new("."));
    let mut rows: Vec<(PathBuf, String, usize)> = Vec::new();
    for r in records {
        let (p, l) = (r.fields.get(pc).map(String::as_str), r.fields.get(lc).map(String::as_str));
        let problem = if r.fields.len() != head.fields.len() {
            Some(format!("{} fields where the header has {}", r.fields.len(), head.fields.len()))
        } else if p.is_none_or(str::is_empty) || l.is_none_or(str::is_empty) {
            Some("the path or the label is empty".to_string())
        } else {
            None
        };
        match (problem, p, l) {
            (None, Some(p), Some(l)) => rows.push((folder.join(p), l.to_string(), r.line)),
            (problem, ..) => {
                let e = DataError::at(csv, Some(r.line), problem.unwrap_or_default());
                if !skip_bad {
                    return Err(e);
                }
                skipped.push(e);
            }
        }
    }
    if rows.is_empty() {
        return Err(DataError::at(csv, None, "the image list has a header but no usable rows"));
    }
    let mut names: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    names.sort();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    if names.len() < 2 {
        return Err(DataError::at(
            csv,
            None,
            format!("every label is `{}`: a classifier needs at least 2 classes", names[0]),
        ));
    }
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let samples = rows
        .iter()
        .map(|(path, label, line)| Sample { path: path.clone(), class: index[label.as_str()], line: Some(*line) })
        .collect();
    Ok((samples, names, skipped))
}

/// Decodes one image to `[c, h, w]` bytes (values in [0, 1] once divided by 255).
fn decode_bytes(s: &Sample, spec: &ImageSpec, dims: Option<&((usize, usize), PathBuf)>) -> Result<Vec<u8>, DataError> {
    let img = ImageReader::open(&s.path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|e| bad(s, &spec.path, format!("cannot read: {e}")))?
        .decode()
        .map_err(|e| bad(s, &spec.path, format!("not a usable image: {e}")))?;
    let (h, w) = (img.height() as usize, img.width() as usize);
    if let Some((first, from)) = dims
        && *first != (h, w)
    {
        return Err(differ(s, &spec.path, (h, w), *first, from));
    }
    Ok(match spec.channels {
        1 => plane_bytes(fit(img.to_luma8(), spec.size)),
        _ => plane_bytes(fit(img.to_rgb8(), spec.size)),
    })
}

/// Decodes the image at `path` for a saved model (`data::fitted`): `[channels, h, w]` in
/// [0, 1], as [`decode`] does in training; with `resize`, cropped and resized to `size`,
/// without, an image of another size is an error.
pub(super) fn decode_file(path: &Path, channels: usize, size: [usize; 2], resize: bool) -> Result<Vec<f32>, String> {
    let img = ImageReader::open(path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|e| format!("cannot read: {e}"))?
        .decode()
        .map_err(|e| format!("not a usable image: {e}"))?;
    let (h, w) = (img.height() as usize, img.width() as usize);
    if !resize && [h, w] != size {
        return Err(format!(
            "the image is {h}x{w}, the model takes {}x{} (it trained without `size:`, so images are not resized)",
            size[0], size[1]
        ));
    }
    let bytes = match channels {
        1 => plane_bytes(fit(img.to_luma8(), Some(size))),
        _ => plane_bytes(fit(img.to_rgb8(), Some(size))),
    };
    Ok(bytes.iter().map(|v| f32::from(*v) / 255.0).collect())
}

/// Centre-crops `img` to the aspect ratio of `size`, then resizes it to `size` (bilinear).
fn fit<P: Pixel<Subpixel = u8> + 'static>(
    img: ImageBuffer<P, Vec<u8>>,
    size: Option<[usize; 2]>,
) -> ImageBuffer<P, Vec<u8>> {
    let Some([th, tw]) = size else { return img };
    let (w, h) = (u64::from(img.width()), u64::from(img.height()));
    let (th, tw) = (th as u64, tw as u64);
    if (w, h) == (tw, th) {
        return img;
    }
    // The largest centred window with the aspect ratio tw:th.
    let (cw, ch) = if w * th > h * tw { ((h * tw / th).max(1), h) } else { (w, (w * th / tw).max(1)) };
    let cropped = if (cw, ch) == (w, h) {
        img
    } else {
        image::imageops::crop_imm(&img, ((w - cw) / 2) as u32, ((h - ch) / 2) as u32, cw as u32, ch as u32).to_image()
    };
    if (cw, ch) == (tw, th) {
        return cropped;
    }
    image::imageops::resize(&cropped, tw as u32, th as u32, FilterType::Triangle)
}

/// Interleaved `h x w x c` bytes as `c` planes of `h x w` bytes.
fn plane_bytes<P: Pixel<Subpixel = u8>>(img: ImageBuffer<P, Vec<u8>>) -> Vec<u8> {
    let c = usize::from(P::CHANNEL_COUNT);
    let raw = img.into_raw();
    let hw = raw.len() / c;
    let mut out = vec![0u8; raw.len()];
    for (i, px) in raw.chunks_exact(c).enumerate() {
        for (k, v) in px.iter().enumerate() {
            out[k * hw + i] = *v;
        }
    }
    out
}

/// Loads the images `spec` names: decoded in parallel, [`cache::CHUNK_ROWS`] at a time, and
/// kept as bytes in memory (a quarter of their f32 values; see `data::cache::in_memory`).
pub(super) fn load(spec: &ImageSpec) -> Result<Raw, DataError> {
    let listing = listing(spec)?;
    let info = info(spec, &listing)?;
    cache::in_memory(cache::Elem::Unit, info.clone(), |w| append(spec, &listing, &info, w))
}

/// [`load`] into a dataset cache (`stream: true`, see `data::cache`): building never holds
/// more than one chunk.
pub(super) fn load_streamed(
    call: &CallValue,
    base: &Path,
    spec: &ImageSpec,
    stream: &cache::StreamSpec,
) -> Result<Raw, DataError> {
    let listing = listing(spec)?;
    let info = info(spec, &listing)?;
    cache::open_or_build(call, base, stream, cache::Elem::Unit, info.clone(), |w| append(spec, &listing, &info, w))
}

/// Decodes the listed images [`cache::CHUNK_ROWS`] at a time in parallel and appends them as
/// bytes to `w`: what both [`load`] and [`load_streamed`] store.
fn append(
    spec: &ImageSpec,
    listing: &Listing,
    info: &DataInfo,
    w: &mut cache::Writer,
) -> Result<cache::Built, DataError> {
    let per = info.features();
    let mut skipped = listing.skipped.clone();
    let mut y = Vec::with_capacity(listing.samples.len());
    let mut counts = vec![0usize; listing.classes.len()];
    for chunk in listing.samples.chunks(cache::CHUNK_ROWS) {
        let decoded: Vec<Result<Vec<u8>, DataError>> =
            chunk.par_iter().map(|s| decode_bytes(s, spec, listing.dims.as_ref())).collect();
        let mut bytes = Vec::with_capacity(chunk.len() * per);
        for (s, d) in chunk.iter().zip(decoded) {
            match d {
                Ok(v) => {
                    bytes.extend_from_slice(&v);
                    y.push(s.class as f32);
                    counts[s.class] += 1;
                }
                Err(e) if spec.skip_bad => skipped.push(e),
                Err(e) => return Err(e),
            }
        }
        w.rows(&bytes)?;
    }
    Ok((y, extras(spec, listing, info, &counts, &skipped)?))
}

/// The class names and the `skip_bad` note of a load that kept `counts` images per class.
fn extras(
    spec: &ImageSpec,
    listing: &Listing,
    info: &DataInfo,
    counts: &[usize],
    skipped: &[DataError],
) -> Result<Extras, DataError> {
    if let Some(c) = counts.iter().position(|n| *n == 0) {
        return Err(DataError::at(
            &spec.path,
            None,
            format!("class `{}` has no usable image left after skipping bad ones", listing.classes[c]),
        ));
    }
    let mut notes = Vec::new();
    if !skipped.is_empty() {
        notes.push(format!(
            "{}: skipped {} bad sample(s) of {} (skip_bad: true); the first: {}",
            info.name,
            skipped.len(),
            counts.iter().sum::<usize>() + skipped.len(),
            skipped[0]
        ));
    }
    Ok(Extras { class_names: listing.classes.clone(), notes, skipped: skipped.len() })
}

/// The files an image source reads: the CSV list (if any) and every listed image; nothing
/// when the listing fails (loading reports it).
pub(super) fn files(spec: &ImageSpec) -> Vec<PathBuf> {
    let Ok(l) = listing(spec) else { return Vec::new() };
    let list = spec.path.is_file().then(|| spec.path.clone());
    list.into_iter().chain(l.samples.iter().map(|s| s.path.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &Path) -> ImageSpec {
        ImageSpec { path: path.to_path_buf(), size: None, channels: 3, skip_bad: false }
    }

    fn png(path: &Path, side: u32) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        image::GrayImage::from_pixel(side, side, image::Luma([7])).save(path).expect("encode");
    }

    #[test]
    fn the_listing_is_cached_until_the_folder_or_a_class_folder_changes() {
        let dir = std::env::temp_dir().join(format!("bma-images-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        png(&dir.join("a/1.png"), 3);
        png(&dir.join("b/1.png"), 3);
        let first = listing(&spec(&dir)).expect("lists");
        assert_eq!((first.samples.len(), first.dims.as_ref().map(|d| d.0)), (2, Some((3, 3))));
        let again = listing(&spec(&dir)).expect("lists");
        assert!(Arc::ptr_eq(&first, &again), "an unchanged folder is not listed again");
        // A new image changes its class folder's modification time: listed again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        png(&dir.join("b/2.png"), 3);
        let after = listing(&spec(&dir)).expect("lists");
        assert!(!Arc::ptr_eq(&first, &after));
        assert_eq!(after.samples.len(), 3);
        // A new class folder changes the top folder's.
        std::thread::sleep(std::time::Duration::from_millis(20));
        png(&dir.join("c/1.png"), 3);
        assert_eq!(listing(&spec(&dir)).expect("lists").classes, vec!["a", "b", "c"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn planes_put_channels_first() {
        let img = image::RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8, 10 + x as u8, 20 + x as u8]));
        assert_eq!(plane_bytes(img), vec![0, 1, 10, 11, 20, 21]);
    }
}
