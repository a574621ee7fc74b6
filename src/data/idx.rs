//! IDX files (the MNIST format): `idx(images:, labels:)`, plain or gzipped.
//!
//! Takes an images file (`n x h x w`, or `n x d...`) and a labels file (`n`, bytes);
//! gives [`Raw`] samples, 2-D images as `[1, h, w]`; `ubyte` images are kept as bytes in
//! memory (`data::cache::in_memory`), the other types as f32. Classes are `max label + 1`, as in
//! the checker. Truncated or mismatched files are errors, never a panic: a body cut short
//! says how many bytes were expected and found, a 0-sized dimension, labels that are all one
//! class and an images file in the labels' place (or the other way round) are refused.
//!
//! A file that starts with gzip's magic bytes (`1f 8b`) is inflated as it is read, whatever
//! its name ([`idx_read`]); never more than its IDX header announces, so a forged stream
//! cannot inflate without bound. The checker reads only the header ([`idx_read`] without
//! `whole`): a few hundred bytes of the stream, and for the size check the file's length
//! (plain) or the gzip trailer's length field (gzip), so it never inflates the body.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::{DataError, Raw};
use crate::ir::{DataInfo, Task};

pub(super) fn load(images: &Path, labels: &Path) -> Result<Raw, DataError> {
    let read = |p: &Path| {
        idx_read(p, true).map(|(_, bytes)| bytes).map_err(|e| match e {
            IdxError::Unreadable(m) => DataError::at(p, None, format!("cannot read: {m}")),
            IdxError::Bad(m) => DataError::at(p, None, m),
        })
    };
    let (ib, lb) = (read(images)?, read(labels)?);
    parse(&ib, images, &lb, labels)
}

/// Why [`idx_read`] gave no header: the file cannot be read at all (missing, a folder, a
/// device), or it is not a usable IDX file (what is wrong, as a sentence).
#[derive(Debug, Clone, PartialEq)]
pub enum IdxError {
    Unreadable(String),
    Bad(String),
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads as many bytes as `buf` holds, fewer only at the end of the stream.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The IDX file at `path`, plain or gzipped: its dimensions, and its bytes (inflated) —
/// the header only, or with `whole` the header and the body. Without `whole` the body's
/// size is still checked (the file's length, or the gzip trailer's ISIZE, the inflated
/// length modulo 2^32), so a file cut short is reported without reading it.
pub fn idx_read(path: &Path, whole: bool) -> Result<(Vec<usize>, Vec<u8>), IdxError> {
    let unreadable = |e: std::io::Error| IdxError::Unreadable(e.to_string());
    // Only regular files: reading a folder fails, and a device (`/dev/zero`) or a FIFO never ends.
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(IdxError::Unreadable("not a regular file".to_string()));
    }
    let mut file = File::open(path).map_err(unreadable)?;
    let mut magic = [0u8; 2];
    let gz = read_full(&mut file, &mut magic).map_err(unreadable)? == 2 && magic == GZIP_MAGIC;
    let trailer = if gz && !whole && meta.len() >= 18 {
        let mut isize = [0u8; 4];
        file.seek(SeekFrom::End(-4)).and_then(|_| file.read_exact(&mut isize)).map_err(unreadable)?;
        Some(u32::from_le_bytes(isize))
    } else {
        None
    };
    file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    let mut reader: Box<dyn Read> =
        if gz { Box::new(flate2::read::GzDecoder::new(BufReader::new(file))) } else { Box::new(BufReader::new(file)) };
    let stream = |e: std::io::Error| {
        if gz { IdxError::Bad(format!("not a valid gzip stream: {e}")) } else { IdxError::Unreadable(e.to_string()) }
    };
    let mut bytes = vec![0u8; 4];
    let got = read_full(&mut reader, &mut bytes).map_err(stream)?;
    bytes.truncate(got);
    if got == 4 {
        let rank = usize::from(bytes[3]);
        let mut dims = vec![0u8; 4 * rank];
        let got = read_full(&mut reader, &mut dims).map_err(stream)?;
        bytes.extend_from_slice(&dims[..got]);
    }
    let (dims, need) = header(&bytes).map_err(IdxError::Bad)?;
    let inflated = if gz { " (inflated from gzip)" } else { "" };
    // Deflate inflates at most 1032 bytes per byte: a header that needs more from this file is
    // forged or the file cut short, and reading on would only fill memory.
    if gz && (need as u64) > meta.len().saturating_mul(1032) {
        return Err(IdxError::Bad(format!(
            "the gzip stream is cut short: its IDX header needs {need} bytes ({}), more than {} gzipped bytes \
             can hold",
            show(&dims),
            meta.len()
        )));
    }
    if whole {
        let rest = (need - bytes.len()) as u64;
        let mut reader = reader.take(rest);
        reader.read_to_end(&mut bytes).map_err(stream)?;
        // One byte more: a gzip stream that ends here is then read to its trailer, whose CRC
        // the decoder checks. Bytes after the body are ignored, plain or gzipped.
        read_full(reader.get_mut(), &mut [0u8; 1]).map_err(stream)?;
        idx_dims(&bytes).map_err(|e| IdxError::Bad(format!("{e}{inflated}")))?;
        return Ok((dims, bytes));
    }
    match trailer {
        Some(isize) if isize != need as u32 => Err(IdxError::Bad(format!(
            "the gzip stream is cut short or damaged: its header needs {need} bytes ({}), its trailer says it \
             inflates to {isize}",
            show(&dims)
        ))),
        Some(_) => Ok((dims, bytes)),
        None if gz => Err(IdxError::Bad("the gzip stream is cut short: it has no trailer".to_string())),
        None if meta.len() < need as u64 => Err(IdxError::Bad(cut_short(&dims, bytes[2], need, meta.len()))),
        None => Ok((dims, bytes)),
    }
}

pub(super) fn parse(ib: &[u8], images: &Path, lb: &[u8], labels: &Path) -> Result<Raw, DataError> {
    let dims = idx_dims(ib).map_err(|e| DataError::at(images, None, e))?;
    let (info, ys) = head(&dims, images, lb, labels)?;
    let per = info.features();
    if ib.get(2) == Some(&0x08) {
        // Bytes stay bytes in memory (a quarter of their f32 values).
        let body = ib
            .get(4 + 4 * dims.len()..)
            .and_then(|b| b.get(..dims[0] * per))
            .ok_or_else(|| DataError::at(images, None, "the images are cut short"))?;
        return super::cache::in_memory(super::cache::Elem::Byte, info, |w| {
            w.rows(body)?;
            Ok((ys, Default::default()))
        });
    }
    let values =
        decode(ib, dims.len(), dims[0] * per).ok_or_else(|| DataError::at(images, None, "unsupported IDX type"))?;
    Ok(Raw { info, x: values, y: ys, extras: Default::default(), stored: None })
}

/// [`load`] into a dataset cache (`stream: true`, see `data::cache`): the images' body is
/// inflated and copied [`cache::CHUNK_ROWS`] images at a time, never held whole. `ubyte`
/// images only (the other IDX types are not bytes).
pub(super) fn load_streamed(
    call: &crate::ir::CallValue,
    base: &Path,
    images: &Path,
    labels: &Path,
    stream: &super::cache::StreamSpec,
) -> Result<Raw, DataError> {
    use super::cache;
    let at = |p: &Path, e: IdxError| match e {
        IdxError::Unreadable(m) => DataError::at(p, None, format!("cannot read: {m}")),
        IdxError::Bad(m) => DataError::at(p, None, m),
    };
    let (dims, header) = idx_read(images, false).map_err(|e| at(images, e))?;
    if header.get(2) != Some(&0x08) {
        return Err(DataError::at(images, None, "`stream: true` reads IDX images of bytes (type 0x08, `ubyte`) only"));
    }
    let (_, lb) = idx_read(labels, true).map_err(|e| at(labels, e))?;
    let (info, ys) = head(&dims, images, &lb, labels)?;
    let per = info.features();
    cache::open_or_build(call, base, stream, cache::Elem::Byte, info.clone(), |w| {
        let io = |e: std::io::Error| DataError::at(images, None, format!("cannot read: {e}"));
        let file = File::open(images).map_err(io)?;
        let mut reader: Box<dyn Read> = {
            let mut probe = BufReader::new(file);
            let mut magic = [0u8; 2];
            let gz = read_full(&mut probe, &mut magic).map_err(io)? == 2 && magic == GZIP_MAGIC;
            probe.seek(SeekFrom::Start(0)).map_err(io)?;
            if gz { Box::new(flate2::read::GzDecoder::new(probe)) } else { Box::new(probe) }
        };
        let mut skip = vec![0u8; 4 + 4 * dims.len()];
        reader.read_exact(&mut skip).map_err(io)?;
        let mut chunk = vec![0u8; cache::CHUNK_ROWS * per];
        let mut left = dims[0];
        while left > 0 {
            let k = left.min(cache::CHUNK_ROWS);
            reader.read_exact(&mut chunk[..k * per]).map_err(|e| {
                DataError::at(images, None, format!("the images are cut short ({e}) with {left} still to read"))
            })?;
            w.rows(&chunk[..k * per])?;
            left -= k;
        }
        // One byte more: a gzip stream is then read to its trailer, whose CRC the decoder checks.
        read_full(&mut reader, &mut [0u8; 1])
            .map_err(|e| DataError::at(images, None, format!("not a valid gzip stream: {e}")))?;
        Ok((ys, Default::default()))
    })
}

/// The info and labels of IDX images of dimensions `dims` with the labels file's bytes `lb`.
fn head(dims: &[usize], images: &Path, lb: &[u8], labels: &Path) -> Result<(DataInfo, Vec<f32>), DataError> {
    let ldims = idx_dims(lb).map_err(|e| DataError::at(labels, None, e))?;
    idx_roles(dims, &ldims)
        .map_err(|(is_labels, e)| DataError::at(if is_labels { labels } else { images }, None, e))?;
    let n = dims[0];
    if ldims[0] != n {
        return Err(DataError::at(labels, None, format!("{} labels for {n} images", ldims[0])));
    }
    let ys = decode(lb, ldims.len(), n).ok_or_else(|| DataError::at(labels, None, "unsupported IDX type"))?;
    if ys.iter().any(|y| *y < 0.0 || y.fract() != 0.0) {
        return Err(DataError::at(labels, None, "labels must be non-negative integers"));
    }
    if let Some(first) = ys.first()
        && ys.iter().all(|y| y == first)
    {
        return Err(DataError::at(labels, None, single_label(*first as i64)));
    }
    let classes = ys.iter().fold(0usize, |m, y| m.max(*y as usize + 1));
    let shape = match &dims[1..] {
        [h, w] => vec![1, *h, *w],
        rest => rest.to_vec(),
    };
    let info = DataInfo {
        name: format!("idx({})", images.display()),
        shape,
        classes,
        task: Task::Classification,
        vocab: None,
    };
    Ok((info, ys))
}

/// Why labels that are all one value cannot be learnt.
pub fn single_label(label: i64) -> String {
    format!("every label is {label}: a classifier needs at least 2 classes")
}

fn show(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join(" x ")
}

/// Checks that `images` (the images file's dimensions) and `labels` (the labels file's) play
/// their parts: images are `n x ...` with at least 2 dimensions, labels are `n`. `Err` says
/// which file is wrong (`true`: the labels file) and what it holds instead.
pub fn idx_roles(images: &[usize], labels: &[usize]) -> Result<(), (bool, String)> {
    match (images.len(), labels.len()) {
        (1, l) if l > 1 => Err((
            false,
            format!(
                "images and labels are swapped: this file holds labels ({}) and the labels file holds images ({})",
                show(images),
                show(labels)
            ),
        )),
        (_, l) if l > 1 => Err((
            true,
            format!(
                "this file holds images ({}), not labels: a labels file has one dimension, one label per sample",
                show(labels)
            ),
        )),
        (1, _) => Err((
            false,
            format!(
                "this file holds labels ({}), not images: an images file has at least 2 dimensions \
                 (samples x pixels)",
                show(images)
            ),
        )),
        _ => Ok(()),
    }
}

/// The dimensions in an IDX header, checked against the file: `Err` says what is wrong (not
/// an IDX file, a header or body cut short, a dimension of 0, sizes that overflow; checked
/// arithmetic, as a header may claim anything). The one IDX header reader: the checker
/// (`check::data`) calls it too.
pub fn idx_dims(bytes: &[u8]) -> Result<Vec<usize>, String> {
    let (dims, need) = header(bytes)?;
    if bytes.len() < need {
        return Err(cut_short(&dims, bytes[2], need, bytes.len() as u64));
    }
    Ok(dims)
}

/// What a body shorter than its header says is: both sizes, and how they are made up.
fn cut_short(dims: &[usize], code: u8, need: usize, found: u64) -> String {
    let elem = element_size(code).unwrap_or(1);
    format!(
        "the file is cut short: {need} bytes expected ({} values of {elem} byte{} after a {}-byte header), {found} \
         found",
        show(dims),
        if elem == 1 { "" } else { "s" },
        4 + 4 * dims.len(),
    )
}

fn element_size(code: u8) -> Option<usize> {
    match code {
        0x08 | 0x09 => Some(1),
        0x0B => Some(2),
        0x0C | 0x0D => Some(4),
        0x0E => Some(8),
        _ => None,
    }
}

/// The dimensions an IDX header (`bytes` from the file's start, the body optional) states,
/// and the file's whole size in bytes by them: every check of [`idx_dims`] but the body's.
fn header(bytes: &[u8]) -> Result<(Vec<usize>, usize), String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file: it does not start with an IDX header (0, 0, type, rank)".to_string());
    }
    let Some(elem) = element_size(bytes[2]) else {
        return Err(format!("not an IDX file: unknown element type 0x{:02x}", bytes[2]));
    };
    let rank = usize::from(bytes[3]);
    if rank == 0 {
        return Err("the IDX header has no dimensions".to_string());
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(format!(
            "the IDX header is cut short: {rank} dimensions need {header} bytes, the file has {}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    if dims.contains(&0) {
        return Err(format!("the IDX file holds nothing: its dimensions are {}", show(&dims)));
    }
    let need = dims
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .and_then(|v| v.checked_mul(elem))
        .and_then(|v| v.checked_add(header))
        .ok_or_else(|| format!("the IDX header's dimensions ({}) are too large", show(&dims)))?;
    Ok((dims, need))
}

/// The first `count` values after the header, as f32 (big-endian per IDX).
fn decode(bytes: &[u8], rank: usize, count: usize) -> Option<Vec<f32>> {
    let body = bytes.get(4 + 4 * rank..)?;
    let (size, conv): (usize, fn(&[u8]) -> f32) = match bytes[2] {
        0x08 => (1, |b| f32::from(b[0])),
        0x09 => (1, |b| f32::from(b[0] as i8)),
        0x0B => (2, |b| f32::from(i16::from_be_bytes([b[0], b[1]]))),
        0x0C => (4, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f32),
        0x0D => (4, |b| f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        0x0E => (8, |b| f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32),
        _ => return None,
    };
    let body = body.get(..count * size)?;
    Some(body.chunks_exact(size).map(conv).collect())
}

#[cfg(test)]
mod tests {
    use super::idx_dims;

    #[test]
    fn idx_headers_with_huge_dimensions_are_malformed_not_overflows() {
        // Three dimensions of 0xFFFFFFFF bytes: their product overflows usize.
        let mut forged = vec![0, 0, 0x08, 3];
        forged.extend_from_slice(&[0xFF; 12]);
        assert!(idx_dims(&forged).is_err_and(|e| e.contains("too large")), "{:?}", idx_dims(&forged));
        // A well-formed 2x3 u8 file.
        let mut ok = vec![0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        ok.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(idx_dims(&ok), Ok(vec![2, 3]));
        // A truncated body is said to be cut short, with both sizes; a truncated header too.
        assert_eq!(
            idx_dims(&ok[..ok.len() - 1]),
            Err("the file is cut short: 18 bytes expected (2 x 3 values of 1 byte after a 12-byte header), 17 found"
                .to_string())
        );
        assert!(idx_dims(&ok[..10]).is_err_and(|e| e.starts_with("the IDX header is cut short")));
        // A 0-sized dimension holds nothing.
        let empty = [0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 0];
        assert_eq!(idx_dims(&empty), Err("the IDX file holds nothing: its dimensions are 2 x 0".to_string()));
    }
}
