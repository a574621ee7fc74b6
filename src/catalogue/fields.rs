//! The fields of `data` that a model or a setting may read (`dense(data.classes)`), each with
//! the line hover and completion show. Read by the checker (`check::walk`, "did you mean")
//! and by the editor (`ide`).

use super::trial::Doc;

/// `data.NAME`: what the checker knows of the data before loading it.
pub const DATA_FIELDS: &[Doc] = &[
    Doc { name: "classes", doc: "the number of classes (1 for regression): an int" },
    Doc { name: "features", doc: "the number of input values of one sample: an int" },
    Doc { name: "shape", doc: "the shape of one sample, `[c, h, w]`, `[t, d]` or `[n]`: a list" },
    Doc { name: "vocab", doc: "text only: the embedding table's size, padding and unknown included: an int" },
];
