//! The signal processing of `audio(...)`: resampling, and the waveform, log-mel and MFCC
//! features of a clip (see `audio`'s header for the conventions).
//!
//! Takes mono samples; gives samples at another rate ([`Resampler`]), or a feature map
//! row-major `[rows, frames]` ([`features`]). Plain `f64` arithmetic, `rustfft` for the
//! spectra.
//!
//! **Invariants:** the output has exactly `AudioSpec::shape` values; every value is finite
//! for finite input (the log is of `mel + 1e-6`, never of 0); [`mel_filterbank`] and [`dct`]
//! are the reference-tested definitions (`scripts/audio-reference.py` computes the same
//! numbers independently, with Python's standard library).

use std::f64::consts::PI;

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

use super::audio::{AudioSpec, Features, frame_count};

/// Added to each mel energy before the log, so silence gives `ln(1e-6)`, not `-inf`.
pub const LOG_FLOOR: f64 = 1e-6;

/// Zero crossings of the resampling kernel on each side.
const SINC_ZEROS: f64 = 16.0;

/// Band-limited resampling from `from` Hz to `to` Hz: each output sample is the input under
/// a Hann-windowed sinc, cut off at the lower of the two Nyquist frequencies, with 16 zero
/// crossings on each side (of the output's period when downsampling). Samples before the
/// start and after the end count as 0.
#[derive(Debug, Clone, Copy)]
pub struct Resampler {
    from: u32,
    to: u32,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Resampler {
        Resampler { from, to }
    }

    /// The kernel's cut-off in cycles per input sample, and its half-width in input samples.
    fn kernel(&self) -> (f64, f64) {
        let ratio = (f64::from(self.to) / f64::from(self.from)).min(1.0);
        (0.5 * ratio, SINC_ZEROS / ratio)
    }

    /// How many input samples the first `out` output samples depend on.
    pub fn input_needed(&self, out: usize) -> usize {
        if self.from == self.to {
            return out;
        }
        let (_, half) = self.kernel();
        let last = out as f64 * f64::from(self.from) / f64::from(self.to);
        (last + half).ceil() as usize + 1
    }

    /// The first `out` samples at the new rate (fewer when the input runs out first).
    pub fn run(&self, input: &[f32], out: usize) -> Vec<f32> {
        if self.from == self.to {
            return input.iter().take(out).copied().collect();
        }
        // Output sample j sits at input time j·from/to = (j·m)/l, in lowest terms; the kernel's
        // weights depend only on the phase (j·m) mod l, so they are tabled when l is small.
        let g = gcd(self.from, self.to);
        let (m, l) = (u64::from(self.from / g), u64::from(self.to / g));
        let (fc, half) = self.kernel();
        let weight = |d: f64| {
            if d.abs() >= half { 0.0 } else { 2.0 * fc * sinc(2.0 * fc * d) * 0.5 * (1.0 + (PI * d / half).cos()) }
        };
        let taps = half.ceil() as i64 + 1;
        let span = (2 * taps + 1) as usize;
        let table: Option<Vec<f64>> = (l <= 4096).then(|| {
            (0..l).flat_map(|r| (-taps..=taps).map(move |o| (r as f64 / l as f64) - o as f64)).map(weight).collect()
        });
        let n = ((input.len() as u64 * l).div_ceil(m) as usize).min(out);
        let mut y = Vec::with_capacity(n);
        for j in 0..n as u64 {
            let (base, r) = ((j * m / l) as i64, j * m % l);
            let mut acc = 0f64;
            for (k, o) in (-taps..=taps).enumerate() {
                let i = base + o;
                if i < 0 || i as usize >= input.len() {
                    continue;
                }
                let w = match &table {
                    Some(t) => t[r as usize * span + k],
                    None => weight(r as f64 / l as f64 - o as f64),
                };
                acc += f64::from(input[i as usize]) * w;
            }
            y.push(acc as f32);
        }
        y
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 { 1.0 } else { (PI * x).sin() / (PI * x) }
}

/// The HTK mel of `hz`: `2595 log10(1 + hz / 700)`.
pub fn hz_to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

pub fn mel_to_hz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

/// `bins` triangular filters over the `n_fft / 2 + 1` bins of a power spectrum at `rate`,
/// row-major `[bins, n_fft / 2 + 1]`: centres evenly spaced on the HTK mel scale from 0 Hz to
/// `rate / 2`, each rising from its left neighbour's centre to its own and falling to its
/// right neighbour's, peak 1, weights taken at each bin's frequency (librosa's
/// `filters.mel(htk=True, norm=None)`).
pub fn mel_filterbank(rate: u32, n_fft: usize, bins: usize) -> Vec<f64> {
    let width = n_fft / 2 + 1;
    let top = hz_to_mel(f64::from(rate) / 2.0);
    let edges: Vec<f64> = (0..bins + 2).map(|i| mel_to_hz(top * i as f64 / (bins + 1) as f64)).collect();
    let mut w = vec![0f64; bins * width];
    for m in 0..bins {
        let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
        for k in 0..width {
            let f = k as f64 * f64::from(rate) / n_fft as f64;
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            w[m * width + k] = rising.min(falling).max(0.0);
        }
    }
    w
}

/// The orthonormal DCT-II of `x`, first `n` coefficients: `c_k = s_k Σ x_m cos(π k (2m+1) / 2M)`
/// with `s_0 = √(1/M)` and `s_k = √(2/M)` (scipy's `dct(type=2, norm="ortho")`).
pub fn dct(x: &[f64], n: usize) -> Vec<f64> {
    let m = x.len() as f64;
    (0..n)
        .map(|k| {
            let s = if k == 0 { (1.0 / m).sqrt() } else { (2.0 / m).sqrt() };
            s * x
                .iter()
                .enumerate()
                .map(|(i, v)| v * (PI * k as f64 * (2 * i + 1) as f64 / (2.0 * m)).cos())
                .sum::<f64>()
        })
        .collect()
}

/// The log-mel spectrogram of `x`, row-major `[bins, frames]`: frames of `win` samples every
/// `hop`, a periodic Hann window, zero-padded to `n_fft` (the power of two at or above `win`).
pub fn log_mel(x: &[f32], rate: u32, win: usize, hop: usize, bins: usize) -> Vec<f64> {
    let frames = frame_count(x.len(), win, hop);
    let n_fft = win.next_power_of_two();
    let width = n_fft / 2 + 1;
    let bank = mel_filterbank(rate, n_fft, bins);
    let window: Vec<f64> = (0..win).map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / win as f64).cos()).collect();
    let fft = FftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let mut buf = vec![Complex::new(0.0, 0.0); n_fft];
    let mut power = vec![0f64; width];
    let mut out = vec![0f64; bins * frames];
    for f in 0..frames {
        let start = f * hop;
        for (i, b) in buf.iter_mut().enumerate() {
            let v = if i < win { f64::from(x[start + i]) * window[i] } else { 0.0 };
            *b = Complex::new(v, 0.0);
        }
        fft.process(&mut buf);
        for (p, b) in power.iter_mut().zip(&buf) {
            *p = b.norm_sqr();
        }
        for m in 0..bins {
            let e: f64 = bank[m * width..(m + 1) * width].iter().zip(&power).map(|(w, p)| w * p).sum();
            out[m * frames + f] = (e + LOG_FLOOR).ln();
        }
    }
    out
}

/// The features of a clip of `spec.samples()` samples at `spec.rate`, row-major as
/// `spec.shape()`; `Err` when a value is not finite.
pub fn features(x: &[f32], spec: &AudioSpec) -> Result<Vec<f32>, String> {
    let values: Vec<f32> = match (spec.features, spec.window()) {
        (Features::Waveform, _) | (_, None) => x.to_vec(),
        (Features::Mel(m), Some((win, hop))) => {
            log_mel(x, spec.rate, win, hop, m.bins).into_iter().map(|v| v as f32).collect()
        }
        (Features::Mfcc { n, mel }, Some((win, hop))) => {
            let lm = log_mel(x, spec.rate, win, hop, mel.bins);
            let frames = frame_count(x.len(), win, hop);
            let mut out = vec![0f32; n * frames];
            let mut column = vec![0f64; mel.bins];
            for f in 0..frames {
                for (m, c) in column.iter_mut().enumerate() {
                    *c = lm[m * frames + f];
                }
                for (k, v) in dct(&column, n).into_iter().enumerate() {
                    out[k * frames + f] = v as f32;
                }
            }
            out
        }
    };
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(format!("feature {i} is {}: not a finite number", values[i])),
        None => Ok(values),
    }
}
