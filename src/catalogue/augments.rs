//! The augmentations a `train { augment = [...] }` list may name.
//!
//! `train::augment` builds each [`Augment`] kind (an exhaustive `match`) and applies it to
//! train batches only; the checker refuses an image operation on data that is not `[c, h, w]`.

use super::{Arg, ArgType, Entry, Form, Need, Sig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Augment {
    Crop,
    Flip,
    Rotate,
    Translate,
    TimeShift,
    Noise,
}

const fn e(kind: Augment, name: &'static str, args: &'static [Arg], doc: &'static str) -> Entry<Augment> {
    Entry { kind, sig: Sig { name, args, doc, form: Form::Call } }
}

const fn def(name: &'static str, ty: ArgType, default: &'static str) -> Arg {
    Arg { name, ty, need: Need::Default(default) }
}

/// `train { augment = [...] }`: applied in order to each train sample, every epoch anew.
pub const AUGMENTS: &[Entry<Augment>] = &[
    e(
        Augment::Crop,
        "crop",
        &[def("padding", ArgType::Int, "4")],
        "images: pad by `padding` zeros, crop back at a random place (a shift of up to `padding` pixels)",
    ),
    e(Augment::Flip, "flip", &[], "images: mirror left-right with probability 1/2"),
    e(
        Augment::Rotate,
        "rotate",
        &[def("degrees", ArgType::Number, "10")],
        "images: rotate by a random angle within ±`degrees` (bilinear)",
    ),
    e(
        Augment::Translate,
        "translate",
        &[def("pixels", ArgType::Number, "2")],
        "images: shift by a random sub-pixel offset within ±`pixels` each way (bilinear)",
    ),
    e(
        Augment::TimeShift,
        "time_shift",
        &[def("frames", ArgType::Int, "8")],
        "audio: shift along time (the last axis) by up to ±`frames` frames",
    ),
    e(
        Augment::Noise,
        "noise",
        &[def("std", ArgType::Number, "0.05")],
        "any data: add Gaussian noise of deviation `std`",
    ),
];

/// Why augmentation `kind` does not apply to samples of `shape`, if it does not: the image
/// operations need `[c, h, w]`, a time shift an axis of time (2 or more dimensions). The
/// checker's and the runtime's one rule. (`[]`, a shape not known, fits everything.)
pub fn augment_unfit(kind: Augment, shape: &[usize]) -> Option<String> {
    if shape.is_empty() {
        return None;
    }
    let show = || format!("[{}]", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", "));
    match kind {
        Augment::Crop | Augment::Flip | Augment::Rotate | Augment::Translate if shape.len() != 3 => {
            Some(format!("an image augmentation needs images of shape [c, h, w]; these samples are {}", show()))
        }
        Augment::TimeShift if shape.len() < 2 => {
            Some(format!("`time_shift` needs samples with an axis of time ([1, bins, frames]); these are {}", show()))
        }
        _ => None,
    }
}
