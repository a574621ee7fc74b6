//! The datasets a `data = ...` value may name.
//!
//! `data::load_raw` loads each [`Dataset`] kind (an exhaustive `match`).

use super::{Arg, ArgType, Entry, Form, Need, Sig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    Digits,
    Iris,
    Wine,
    BreastCancer,
    Csv,
    Idx,
    Text,
    Spirals,
    Moons,
    Circles,
    Sine,
}

const fn req(name: &'static str, ty: ArgType) -> Arg {
    Arg { name, ty, need: Need::Required }
}

const fn opt(name: &'static str, ty: ArgType) -> Arg {
    Arg { name, ty, need: Need::Optional }
}

const fn e(kind: Dataset, name: &'static str, args: &'static [Arg], doc: &'static str) -> Entry<Dataset> {
    Entry { kind, sig: Sig { name, args, doc, form: Form::Call } }
}

const SPLIT: Arg = opt("split", ArgType::Numbers);
const SEED: Arg = opt("seed", ArgType::Int);
const EMBEDDED: &[Arg] = &[SPLIT, SEED];
const SYNTHETIC: &[Arg] = &[opt("n", ArgType::Int), opt("noise", ArgType::Number), SEED, SPLIT];

/// The datasets, embedded, read from files, or generated.
pub const DATASETS: &[Entry<Dataset>] = &[
    e(Dataset::Digits, "digits", EMBEDDED, "8x8 images of handwritten digits: [1, 8, 8], 10 classes"),
    e(Dataset::Iris, "iris", EMBEDDED, "Fisher's iris flowers: [4], 3 classes"),
    e(Dataset::Wine, "wine", EMBEDDED, "wine cultivars by chemical analysis: [13], 3 classes"),
    e(Dataset::BreastCancer, "breast_cancer", EMBEDDED, "Wisconsin breast cancer diagnosis: [30], 2 classes"),
    e(
        Dataset::Csv,
        "csv",
        &[
            req("path", ArgType::Str),
            opt("target", ArgType::Any),
            opt("task", ArgType::Syms(&["classification", "regression"])),
            SPLIT,
            SEED,
        ],
        "a CSV file with a header: the `target` column (default the last) against the others",
    ),
    e(
        Dataset::Idx,
        "idx",
        &[req("images", ArgType::Str), req("labels", ArgType::Str), SPLIT, SEED],
        "IDX image and label files (the MNIST format): [1, h, w], classes in the labels",
    ),
    e(
        Dataset::Text,
        "text",
        &[
            req("path", ArgType::Str),
            req("text", ArgType::Any),
            req("target", ArgType::Any),
            opt("tokenizer", ArgType::Any),
            opt("vocab", ArgType::Int),
            opt("max_len", ArgType::Int),
            opt("lowercase", ArgType::Bool),
            SPLIT,
            SEED,
        ],
        "labelled texts from CSV or JSON lines: [max_len] token ids (`tokenizer: char | word | bpe(vocab: N)`), \
         `data.vocab` table rows, classes in `target`",
    ),
    e(
        Dataset::Spirals,
        "synthetic.spirals",
        &[opt("n", ArgType::Int), opt("noise", ArgType::Number), SEED, opt("classes", ArgType::Int), SPLIT],
        "interleaved spirals: [2], `classes` classes (default 2)",
    ),
    e(Dataset::Moons, "synthetic.moons", SYNTHETIC, "two interleaved half circles: [2], 2 classes"),
    e(Dataset::Circles, "synthetic.circles", SYNTHETIC, "two concentric circles: [2], 2 classes"),
    e(Dataset::Sine, "synthetic.sine", SYNTHETIC, "a noisy sine: [1], regression"),
];
