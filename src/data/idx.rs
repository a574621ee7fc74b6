//! IDX files (the MNIST format): `idx(images:, labels:)`.
//!
//! Takes an images file (`n x h x w`, or `n x d...`) and a labels file (`n`, bytes);
//! gives [`Raw`] samples, 2-D images as `[1, h, w]`. Classes are `max label + 1`, as in
//! the checker. Truncated or mismatched files are errors, never a panic: a body cut short
//! says how many bytes were expected and found, a 0-sized dimension, labels that are all one
//! class and an images file in the labels' place (or the other way round) are refused.

use std::path::Path;

use super::{DataError, Raw};
use crate::ir::{DataInfo, Task};

pub(super) fn load(images: &Path, labels: &Path) -> Result<Raw, DataError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| DataError::at(p, None, format!("cannot read: {e}")));
    let (ib, lb) = (read(images)?, read(labels)?);
    parse(&ib, images, &lb, labels)
}

pub(super) fn parse(ib: &[u8], images: &Path, lb: &[u8], labels: &Path) -> Result<Raw, DataError> {
    let dims = idx_dims(ib).map_err(|e| DataError::at(images, None, e))?;
    let ldims = idx_dims(lb).map_err(|e| DataError::at(labels, None, e))?;
    idx_roles(&dims, &ldims)
        .map_err(|(is_labels, e)| DataError::at(if is_labels { labels } else { images }, None, e))?;
    let n = dims[0];
    if ldims[0] != n {
        return Err(DataError::at(labels, None, format!("{} labels for {n} images", ldims[0])));
    }
    let per: usize = dims[1..].iter().product();
    let values = decode(ib, dims.len(), n * per).ok_or_else(|| DataError::at(images, None, "unsupported IDX type"))?;
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
    Ok(Raw { info, x: values, y: ys })
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
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file: it does not start with an IDX header (0, 0, type, rank)".to_string());
    }
    let elem = match bytes[2] {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        other => return Err(format!("not an IDX file: unknown element type 0x{other:02x}")),
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
    if bytes.len() < need {
        return Err(format!(
            "the file is cut short: {need} bytes expected ({} values of {elem} byte{} after a {header}-byte \
             header), {} found",
            show(&dims),
            if elem == 1 { "" } else { "s" },
            bytes.len()
        ));
    }
    Ok(dims)
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
