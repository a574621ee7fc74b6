//! The datasets embedded in the binary: scikit-learn's bundled copies of digits, iris,
//! wine and breast cancer, gzip'd under `stdlib/datasets/` (licences in `LICENSES.md` there).
//!
//! Takes a dataset name, gives its [`Raw`] samples. Digits has no header (64 pixels
//! 0..16 then the label); the others open with `n_samples,n_features,class names...`.

use std::io::Read;

use super::{DataError, Raw};
use crate::ir::{DataInfo, Task};

/// The built-in datasets: name, gzip'd CSV, sample shape, classes.
pub const BUILTIN: [(&str, &[u8], &[usize], usize); 4] = [
    ("digits", include_bytes!("../../stdlib/datasets/digits.csv.gz"), &[1, 8, 8], 10),
    ("iris", include_bytes!("../../stdlib/datasets/iris.csv.gz"), &[4], 3),
    ("wine", include_bytes!("../../stdlib/datasets/wine_data.csv.gz"), &[13], 3),
    ("breast_cancer", include_bytes!("../../stdlib/datasets/breast_cancer.csv.gz"), &[30], 2),
];

pub(super) fn load(name: &str) -> Result<Raw, DataError> {
    let Some((_, gz, shape, classes)) = BUILTIN.iter().find(|b| b.0 == name) else {
        return Err(DataError::new(format!("unknown dataset `{name}`")));
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(*gz)
        .read_to_string(&mut text)
        .map_err(|e| DataError::new(format!("the embedded `{name}` data is corrupt: {e}")))?;
    let features: usize = shape.iter().product();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    if name != "digits" {
        lines.next();
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        let fields: Vec<f32> = line.split(',').filter_map(|f| f.trim().parse::<f32>().ok()).collect();
        if fields.len() != features + 1 {
            return Err(DataError::new(format!("the embedded `{name}` data is corrupt at row {}", i + 1)));
        }
        x.extend_from_slice(&fields[..features]);
        y.push(fields[features]);
    }
    let info = DataInfo {
        name: name.to_string(),
        shape: shape.to_vec(),
        classes: *classes,
        task: Task::Classification,
        vocab: None,
    };
    Ok(Raw { info, x, y, extras: Default::default(), stored: None })
}
