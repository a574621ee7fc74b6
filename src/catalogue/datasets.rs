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
    Images,
    Cifar,
    Npy,
    Npz,
    Audio,
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
/// `stream: true` keeps the samples in a cache file on disk (in `cache:`, default `.bma-cache`).
const STREAM: Arg = opt("stream", ArgType::Bool);
const CACHE: Arg = opt("cache", ArgType::Str);
const SYNTHETIC: &[Arg] = &[opt("n", ArgType::Int), opt("noise", ArgType::Number), SEED, SPLIT];

/// The arguments every dataset takes besides its own: a split's own source, another data
/// value (`idx(..., test: idx("t10k-images...", "t10k-labels..."))`). With one of them
/// `split:` carves the two parts left; with both the dataset is all train.
pub const FIXED_SPLITS: &[Arg] = &[opt("test", ArgType::Any), opt("valid", ArgType::Any)];

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
            opt("delimiter", ArgType::Str),
            opt("ignore", ArgType::Any),
            opt("max_categories", ArgType::Int),
            opt("skip_bad", ArgType::Bool),
        ],
        "a CSV file: the `target` column (default the last) against the others; `delimiter` `,` `;` or tab \
         (detected), `ignore` columns, `max_categories` per text column (256), `skip_bad` rows left out and counted",
    ),
    e(
        Dataset::Idx,
        "idx",
        &[req("images", ArgType::Str), req("labels", ArgType::Str), SPLIT, SEED, STREAM, CACHE],
        "IDX image and label files (the MNIST format): [1, h, w], classes in the labels; `stream: true` trains \
         from a byte cache on disk",
    ),
    e(
        Dataset::Audio,
        "audio",
        &[
            req("dir", ArgType::Str),
            opt("rate", ArgType::Int),
            opt("seconds", ArgType::Number),
            opt("features", ArgType::OneOf(super::Concept::AudioFeature)),
            opt("skip_bad", ArgType::Bool),
            SPLIT,
            SEED,
            STREAM,
            CACHE,
        ],
        "WAV clips, one folder per class: waveform [1, 1, samples], log-mel [1, bins, frames] or MFCC [1, n, frames]; \
         `stream: true` trains from the features cached on disk (f32)",
    ),
    e(
        Dataset::Images,
        "images",
        &[
            req("dir", ArgType::Str),
            opt("size", ArgType::Numbers),
            opt("channels", ArgType::Int),
            opt("skip_bad", ArgType::Bool),
            SPLIT,
            SEED,
            STREAM,
            CACHE,
        ],
        "PNG/JPEG/BMP images, one subfolder per class (or a CSV list of `path,label`): [channels, h, w]; \
         `stream: true` trains from a byte cache on disk",
    ),
    e(
        Dataset::Cifar,
        "cifar",
        &[
            req("dir", ArgType::Str),
            opt("part", ArgType::Syms(&["train", "test"])),
            opt("label", ArgType::Syms(&["fine", "coarse"])),
            SPLIT,
            SEED,
            STREAM,
            CACHE,
        ],
        "CIFAR-10 or CIFAR-100 binary batches: [3, 32, 32], 10, 100 (fine) or 20 (coarse) classes; `stream: true` \
         trains from a byte cache on disk",
    ),
    e(
        Dataset::Npy,
        "npy",
        &[
            req("x", ArgType::Str),
            req("y", ArgType::Str),
            opt("task", ArgType::Syms(&["classification", "regression"])),
            SPLIT,
            SEED,
            STREAM,
            CACHE,
        ],
        "NumPy .npy inputs and labels: [d], [1, h, w] or [c, h, w] from x's shape; `stream: true` trains from a \
         cache on disk",
    ),
    e(
        Dataset::Npz,
        "npz",
        &[
            req("path", ArgType::Str),
            opt("x", ArgType::Str),
            opt("y", ArgType::Str),
            opt("task", ArgType::Syms(&["classification", "regression"])),
            SPLIT,
            SEED,
            STREAM,
            CACHE,
        ],
        "a NumPy .npz archive: arrays `x` and `y` (default names \"x\" and \"y\"); `stream: true` trains from a \
         cache on disk",
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
            opt("skip_bad", ArgType::Bool),
            SPLIT,
            SEED,
        ],
        "labelled texts from CSV or JSON lines: [max_len] token ids (`tokenizer: char | word | word(ngrams: N) | bpe(vocab: N)`), \
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

/// What `audio(features: ...)` computes from a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFeature {
    Waveform,
    Mel,
    Mfcc,
}

const fn f(kind: AudioFeature, name: &'static str, args: &'static [Arg], doc: &'static str) -> Entry<AudioFeature> {
    Entry { kind, sig: Sig { name, args, doc, form: Form::Call } }
}

/// The features of `audio(...)`: `data::audio_spec` reads each kind (an exhaustive `match`).
pub const AUDIO_FEATURES: &[Entry<AudioFeature>] = &[
    f(AudioFeature::Waveform, "waveform", &[], "the resampled samples: [1, 1, rate * seconds]"),
    f(
        AudioFeature::Mel,
        "mel",
        &[opt("bins", ArgType::Int), opt("win_ms", ArgType::Number), opt("hop_ms", ArgType::Number)],
        "log-mel spectrogram (HTK mel, Hann window): [1, bins, frames], frames = 1 + (samples - win) / hop",
    ),
    f(
        AudioFeature::Mfcc,
        "mfcc",
        &[
            opt("n", ArgType::Int),
            opt("bins", ArgType::Int),
            opt("win_ms", ArgType::Number),
            opt("hop_ms", ArgType::Number),
        ],
        "the first n MFCCs (orthonormal DCT-II of the log-mel): [1, n, frames]",
    ),
];
