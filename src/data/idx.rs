//! IDX files (the MNIST format): `idx(images:, labels:)`.
//!
//! Takes an images file (`n x h x w`, or `n x d...`) and a labels file (`n`, bytes);
//! gives [`Raw`] samples, 2-D images as `[1, h, w]`. Classes are `max label + 1`, as in
//! the checker. Truncated or mismatched files are errors, never a panic.

use std::path::Path;

use super::{DataError, Raw};
use crate::ir::{DataInfo, Task};

pub(super) fn load(images: &Path, labels: &Path) -> Result<Raw, DataError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| DataError::at(p, None, format!("cannot read: {e}")));
    let (ib, lb) = (read(images)?, read(labels)?);
    parse(&ib, images, &lb, labels)
}

pub(super) fn parse(ib: &[u8], images: &Path, lb: &[u8], labels: &Path) -> Result<Raw, DataError> {
    let dims = idx_dims(ib).ok_or_else(|| DataError::at(images, None, "not an IDX file (bad or truncated header)"))?;
    let ldims = idx_dims(lb).ok_or_else(|| DataError::at(labels, None, "not an IDX file (bad or truncated header)"))?;
    let n = dims[0];
    if ldims.first() != Some(&n) {
        return Err(DataError::at(labels, None, format!("{:?} labels for {n} images", ldims.first())));
    }
    let per: usize = dims[1..].iter().product();
    let values = decode(ib, dims.len(), n * per).ok_or_else(|| DataError::at(images, None, "unsupported IDX type"))?;
    let ys = decode(lb, ldims.len(), n).ok_or_else(|| DataError::at(labels, None, "unsupported IDX type"))?;
    if ys.iter().any(|y| *y < 0.0 || y.fract() != 0.0) {
        return Err(DataError::at(labels, None, "labels must be non-negative integers"));
    }
    let classes = ys.iter().fold(0usize, |m, y| m.max(*y as usize + 1));
    let shape = match &dims[1..] {
        [h, w] => vec![1, *h, *w],
        rest => rest.to_vec(),
    };
    let info = DataInfo { name: format!("idx({})", images.display()), shape, classes, task: Task::Classification };
    Ok(Raw { info, x: values, y: ys })
}

/// The dimensions in an IDX header, `None` when malformed, truncated or too large (checked
/// arithmetic: a header may claim anything). The one IDX header reader: the checker
/// (`check::data`) calls it too.
pub fn idx_dims(bytes: &[u8]) -> Option<Vec<usize>> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return None;
    }
    let rank = usize::from(bytes[3]);
    let dims: Vec<usize> = (0..rank)
        .map(|i| bytes.get(4 + 4 * i..8 + 4 * i).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize))
        .collect::<Option<_>>()?;
    let elem = match bytes[2] {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        _ => return None,
    };
    let values = dims.iter().try_fold(1usize, |a, d| a.checked_mul(*d))?;
    let need = values.checked_mul(elem)?.checked_add(4 + 4 * rank)?;
    (bytes.len() >= need && !dims.is_empty()).then_some(dims)
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
        assert_eq!(idx_dims(&forged), None);
        // A well-formed 2x3 u8 file.
        let mut ok = vec![0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        ok.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(idx_dims(&ok), Some(vec![2, 3]));
        // Truncated data.
        assert_eq!(idx_dims(&ok[..ok.len() - 1]), None);
    }
}
