//! Augmentation of train batches: `train { augment = [crop(padding: 4), flip, ...] }`.
//!
//! Takes the evaluated `augment` list (catalogue `AUGMENTS`), a batch of rows (row-major
//! `f32`, each one sample of the data's `shape`) and a generator; changes each row in place,
//! the operations in the order written, each drawing its own random amount per sample.
//! Images are `[c, h, w]`; audio features `[1, bins, frames]` (time is the last axis).
//!
//! **Invariants:** only train batches are augmented (`fit` calls [`apply`] on the batch it
//! assembled, never on a split, so valid, test and every evaluation see the data as
//! loaded); the draws come from the trial's own augmentation generator (seeded by the
//! trial's seed), so a trial's augmented batches are the same on every run; positions that
//! an operation moves in from outside the sample are 0, which is the train mean after
//! standardisation; nothing here panics on any shape (an operation that needs `[c, h, w]` on
//! other data is refused by [`Op::parse`] before training, and by the checker).

use serde::{Deserialize, Serialize};

use crate::catalogue::{self, Augment};
use crate::ir::Value;
use crate::rng::Rng;

/// One augmentation with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Pad by `padding` zeros on every side, then crop the original size at a random
    /// place: a whole-pixel shift of up to `padding` each way.
    Crop { padding: usize },
    /// Mirror left-right, with probability 1/2.
    Flip,
    /// Rotate about the centre by an angle uniform in `±degrees` (bilinear).
    Rotate { degrees: f64 },
    /// Shift by an offset uniform in `±pixels` each way, sub-pixel (bilinear).
    Translate { pixels: f64 },
    /// Shift along the last axis (time) by a whole number of frames in `±frames`.
    TimeShift { frames: usize },
    /// Add Gaussian noise of deviation `std` to every value.
    Noise { std: f64 },
}

impl Op {
    /// Reads one entry of an `augment` list for data of `shape`; `Err` says what is wrong.
    pub fn parse(v: &Value, shape: &[usize]) -> Result<Op, String> {
        let (name, call) = match v {
            Value::Sym(s) => (s.sym.as_str(), None),
            Value::Call(c) => (c.name.as_str(), Some(c)),
            other => return Err(format!("`{other}` is not an augmentation")),
        };
        let Some(kind) = catalogue::kind(catalogue::AUGMENTS, name) else {
            return Err(format!("unknown augmentation `{name}`"));
        };
        let number = |key: &str, default: f64, max: f64| -> Result<f64, String> {
            match call.and_then(|c| c.arg(key, 0)) {
                None => Ok(default),
                Some(v) => match v.as_f64() {
                    Some(x) if (0.0..=max).contains(&x) => Ok(x),
                    _ => Err(format!("`{key}` of `{name}` must be a number from 0 to {max}, not `{v}`")),
                },
            }
        };
        let whole = |key: &str, default: i64, max: i64| -> Result<usize, String> {
            match call.and_then(|c| c.arg(key, 0)) {
                None => Ok(default as usize),
                Some(Value::Int(i)) if (0..=max).contains(i) => Ok(*i as usize),
                Some(v) => Err(format!("`{key}` of `{name}` must be an int from 0 to {max}, not `{v}`")),
            }
        };
        if let Some(why) = catalogue::augment_unfit(kind, shape) {
            return Err(why);
        }
        Ok(match kind {
            Augment::Crop => Op::Crop { padding: whole("padding", 4, MAX_PIXELS)? },
            Augment::Flip => Op::Flip,
            Augment::Rotate => Op::Rotate { degrees: number("degrees", 10.0, 180.0)? },
            Augment::Translate => Op::Translate { pixels: number("pixels", 2.0, MAX_PIXELS as f64)? },
            Augment::TimeShift => Op::TimeShift { frames: whole("frames", 8, MAX_PIXELS)? },
            Augment::Noise => Op::Noise { std: number("std", 0.05, 100.0)? },
        })
    }
}

/// The largest shift in pixels or frames an argument may ask for.
pub const MAX_PIXELS: i64 = 4096;

/// Reads an evaluated `augment` value (a list of entries, or one entry).
pub fn parse_list(v: &Value, shape: &[usize]) -> Result<Vec<Op>, String> {
    match v {
        Value::List(items) => items.iter().map(|i| Op::parse(i, shape)).collect(),
        one => Ok(vec![Op::parse(one, shape)?]),
    }
}

/// Augments each of the `rows` samples of `shape` in `x` (row-major) by `ops`, in order.
pub fn apply(ops: &[Op], x: &mut [f32], shape: &[usize], rng: &mut Rng) {
    let features: usize = shape.iter().product();
    if ops.is_empty() || features == 0 {
        return;
    }
    let mut scratch = vec![0f32; features];
    for row in x.chunks_exact_mut(features) {
        for op in ops {
            match *op {
                Op::Crop { padding } => {
                    let p = padding as i64;
                    let dy = rng.below(2 * p as u64 + 1) as i64 - p;
                    let dx = rng.below(2 * p as u64 + 1) as i64 - p;
                    shift(row, &mut scratch, shape, dy, dx);
                }
                Op::Flip => {
                    if rng.below(2) == 1 {
                        flip(row, shape);
                    }
                }
                Op::Rotate { degrees } => {
                    let angle = rng.uniform(-degrees, degrees).to_radians();
                    affine(row, &mut scratch, shape, angle, 0.0, 0.0);
                }
                Op::Translate { pixels } => {
                    let dy = rng.uniform(-pixels, pixels);
                    let dx = rng.uniform(-pixels, pixels);
                    affine(row, &mut scratch, shape, 0.0, dy, dx);
                }
                Op::TimeShift { frames } => {
                    let f = frames as i64;
                    let s = rng.below(2 * f as u64 + 1) as i64 - f;
                    let w = shape.last().copied().unwrap_or(1);
                    shift(row, &mut scratch, &[features / w.max(1), 1, w], 0, s);
                }
                Op::Noise { std } => {
                    for v in row.iter_mut() {
                        *v += (std * rng.normal()) as f32;
                    }
                }
            }
        }
    }
}

/// `[c, h, w]` of a shape (`[n, w]` read as `[n, 1, w]`).
fn chw(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [c, h, w] => (*c, *h, *w),
        [h, w] => (*h, 1, *w),
        [w] => (1, 1, *w),
        _ => (1, 1, shape.iter().product()),
    }
}

/// Moves every channel's content by `dy` rows down and `dx` columns right, 0 where the
/// content came from outside.
pub(crate) fn shift(row: &mut [f32], scratch: &mut [f32], shape: &[usize], dy: i64, dx: i64) {
    let (c, h, w) = chw(shape);
    let out = &mut scratch[..row.len()];
    out.fill(0.0);
    for ch in 0..c {
        for y in 0..h as i64 {
            let sy = y - dy;
            if sy < 0 || sy >= h as i64 {
                continue;
            }
            for x in 0..w as i64 {
                let sx = x - dx;
                if sx >= 0 && sx < w as i64 {
                    out[(ch * h + y as usize) * w + x as usize] = row[(ch * h + sy as usize) * w + sx as usize];
                }
            }
        }
    }
    row.copy_from_slice(out);
}

/// Mirrors every row of every channel.
pub(crate) fn flip(row: &mut [f32], shape: &[usize]) {
    let (_, _, w) = chw(shape);
    for line in row.chunks_exact_mut(w.max(1)) {
        line.reverse();
    }
}

/// Rotates by `angle` (radians; positive turns the image clockwise as displayed, rows down) about the
/// centre, then shifts by `(dy, dx)` pixels; bilinear, 0 outside.
pub(crate) fn affine(row: &mut [f32], scratch: &mut [f32], shape: &[usize], angle: f64, dy: f64, dx: f64) {
    let (c, h, w) = chw(shape);
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    let out = &mut scratch[..row.len()];
    let at = |ch: usize, y: i64, x: i64| -> f64 {
        if y < 0 || x < 0 || y >= h as i64 || x >= w as i64 {
            0.0
        } else {
            f64::from(row[(ch * h + y as usize) * w + x as usize])
        }
    };
    for y in 0..h {
        for x in 0..w {
            // The source of output (y, x): the inverse rotation of the un-shifted point.
            let (oy, ox) = (y as f64 - dy - cy, x as f64 - dx - cx);
            let sy = cos * oy - sin * ox + cy;
            let sx = sin * oy + cos * ox + cx;
            // Exact integer sources (a quarter turn, a whole shift) stay exact.
            let (sy, sx) = (snap(sy), snap(sx));
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let (y0, x0) = (y0 as i64, x0 as i64);
            for ch in 0..c {
                let v = at(ch, y0, x0) * (1.0 - fy) * (1.0 - fx)
                    + at(ch, y0, x0 + 1) * (1.0 - fy) * fx
                    + at(ch, y0 + 1, x0) * fy * (1.0 - fx)
                    + at(ch, y0 + 1, x0 + 1) * fy * fx;
                out[(ch * h + y) * w + x] = v as f32;
            }
        }
    }
    row.copy_from_slice(out);
}

fn snap(v: f64) -> f64 {
    if (v - v.round()).abs() < 1e-9 { v.round() } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::CallValue;

    /// One 1x3x3 image: 1..=9 row by row.
    fn image() -> Vec<f32> {
        (1..=9).map(|v| v as f32).collect()
    }

    const SHAPE: [usize; 3] = [1, 3, 3];

    #[test]
    fn a_shift_moves_the_content_and_fills_zeros() {
        let mut x = image();
        shift(&mut x, &mut [0.0; 9], &SHAPE, 1, -1);
        assert_eq!(x, [0., 0., 0., 2., 3., 0., 5., 6., 0.]);
        // A time shift: the last axis of [1, 2, 4] moved 2 frames right.
        let mut a: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        shift(&mut a, &mut [0.0; 8], &[2, 1, 4], 0, 2);
        assert_eq!(a, [0., 0., 1., 2., 0., 0., 5., 6.]);
    }

    #[test]
    fn a_flip_mirrors_each_row_of_each_channel() {
        let mut x: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        flip(&mut x, &[2, 2, 3]);
        assert_eq!(x, [3., 2., 1., 6., 5., 4., 9., 8., 7., 12., 11., 10.]);
    }

    #[test]
    fn a_quarter_turn_and_a_whole_translation_are_exact_and_a_half_pixel_averages() {
        let mut x = image();
        affine(&mut x, &mut [0.0; 9], &SHAPE, std::f64::consts::FRAC_PI_2, 0.0, 0.0);
        assert_eq!(x, [7., 4., 1., 8., 5., 2., 9., 6., 3.]);
        let mut x = image();
        affine(&mut x, &mut [0.0; 9], &SHAPE, 0.0, 0.0, 1.0);
        assert_eq!(x, [0., 1., 2., 0., 4., 5., 0., 7., 8.]);
        let mut x = image();
        affine(&mut x, &mut [0.0; 9], &SHAPE, 0.0, 0.0, 0.5);
        assert_eq!(x, [0.5, 1.5, 2.5, 2.0, 4.5, 5.5, 3.5, 7.5, 8.5]);
    }

    #[test]
    fn augmentation_is_deterministic_for_a_seed_and_changes_with_it() {
        let ops = [
            Op::Crop { padding: 1 },
            Op::Flip,
            Op::Rotate { degrees: 10.0 },
            Op::Translate { pixels: 1.0 },
            Op::TimeShift { frames: 1 },
            Op::Noise { std: 0.1 },
        ];
        let batch: Vec<f32> = (0..4).flat_map(|_| image()).collect();
        let run = |seed: u64| {
            let mut x = batch.clone();
            apply(&ops, &mut x, &SHAPE, &mut Rng::new(seed));
            x
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        assert_ne!(run(3), batch);
        // Noise alone: mean about 0, deviation about `std`.
        let mut x = vec![0f32; 20_000];
        apply(&[Op::Noise { std: 0.5 }], &mut x, &[20_000], &mut Rng::new(1));
        let mean = x.iter().map(|v| f64::from(*v)).sum::<f64>() / 20_000.0;
        let sd = (x.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum::<f64>() / 20_000.0).sqrt();
        assert!(mean.abs() < 0.02 && (sd - 0.5).abs() < 0.02, "mean {mean}, sd {sd}");
        // Crop by 0 and rotate by 0 change nothing.
        let mut x = image();
        apply(&[Op::Crop { padding: 0 }, Op::Rotate { degrees: 0.0 }], &mut x, &SHAPE, &mut Rng::new(1));
        assert_eq!(x, image());
    }

    #[test]
    fn entries_read_with_defaults_and_image_operations_need_images() {
        let call = |name: &str, args: Vec<(&str, Value)>| {
            Value::Call(CallValue {
                name: name.into(),
                args: args.into_iter().map(|(k, v)| (Some(k.to_string()), v)).collect(),
            })
        };
        let list = Value::List(vec![call("crop", vec![("padding", Value::Int(2))]), Value::sym("flip")]);
        assert_eq!(parse_list(&list, &SHAPE), Ok(vec![Op::Crop { padding: 2 }, Op::Flip]));
        assert_eq!(Op::parse(&Value::sym("rotate"), &SHAPE), Ok(Op::Rotate { degrees: 10.0 }));
        assert_eq!(Op::parse(&Value::sym("time_shift"), &[1, 40, 100]), Ok(Op::TimeShift { frames: 8 }));
        let flat = Op::parse(&Value::sym("flip"), &[4]).expect_err("flat data");
        assert_eq!(flat, "an image augmentation needs images of shape [c, h, w]; these samples are [4]");
        assert!(Op::parse(&Value::sym("time_shift"), &[4]).is_err());
        assert_eq!(Op::parse(&Value::sym("noise"), &[4]), Ok(Op::Noise { std: 0.05 }));
        assert!(Op::parse(&call("crop", vec![("padding", Value::Int(-1))]), &SHAPE).is_err());
        assert!(Op::parse(&Value::sym("blur"), &SHAPE).is_err_and(|e| e.contains("unknown augmentation")));
    }
}
