//! Speech and other sound: `audio(dir, rate:, seconds:, features:, skip_bad:)`.
//!
//! Takes a folder with one subfolder per class (the sorted subfolder names are the classes;
//! files and folders whose name starts with `.` are ignored, and so are files beside the
//! class folders) holding WAV clips; gives [`Raw`] samples, one per clip, as features the
//! existing layers consume:
//!
//! - `waveform`: the samples themselves, `[1, 1, samples]` (a one-row image: `flatten` and
//!   `dense`, or `conv2d` with `padding: same`);
//! - `mel(bins: 40, win_ms: 25, hop_ms: 10)` (the default): the log-mel spectrogram,
//!   `[1, bins, frames]`, an image for `conv2d`;
//! - `mfcc(n: 13, bins: 40, win_ms: 25, hop_ms: 10)`: the first `n` MFCCs, `[1, n, frames]`.
//!
//! Each clip is read with `hound` (8, 16, 24 or 32-bit integer PCM, or 32-bit float; any
//! number of channels, averaged to mono; integers scaled to [-1, 1)), resampled to `rate`
//! with a Hann-windowed sinc (16 zero crossings each side, cut off at the lower Nyquist
//! frequency), then cut to its first `seconds` or padded at its end with zeros.
//! Features ([`super::audio_features`]): frames of `win` samples every `hop` samples with no
//! padding, so `frames = 1 + (samples - win) / hop` ([`frame_count`]); a periodic Hann
//! window; the power spectrum `|FFT|²` over `n_fft` (the power of two at or above `win`);
//! an HTK-mel filterbank from 0 Hz to `rate / 2` with triangles on the continuous mel scale
//! and no area normalisation (librosa's `mel(htk=True, norm=None)`); `ln(mel + 1e-6)`; MFCC
//! is the orthonormal DCT-II of each frame's log-mel, first `n` coefficients.
//!
//! **Invariants:**
//! - the checker's shape is this module's: both parse the arguments with [`audio_spec`] and
//!   take the shape from [`AudioSpec::shape`], which counts frames with [`frame_count`];
//!   both list classes and clips with [`audio_listing`] and read WAV headers with
//!   [`wav_header`] (the checker never decodes samples);
//! - a clip that cannot be used (not a WAV file, a header cut short, a body shorter than its
//!   header says, no samples, a sample that is not finite, a folder in a class folder) is a
//!   [`DataError`] naming the file, or is skipped and counted with `skip_bad: true`; an
//!   empty class folder, or one whose every clip is skipped, is always an error;
//! - decoding reads at most the input samples the first `seconds` need, so a huge clip
//!   costs no more than a short one; nothing here panics, and no feature is NaN or infinite.

use std::cell::Cell;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rayon::prelude::*;

use super::audio_features::{Resampler, features};
use super::{DataError, Raw};
use crate::catalogue::{self, AudioFeature};
use crate::ir::{CallValue, DataInfo, Task, Value};

/// The largest `rate` accepted, in Hz.
pub const AUDIO_MAX_RATE: i64 = 192_000;
/// The longest `seconds` accepted.
pub const AUDIO_MAX_SECONDS: f64 = 60.0;
/// The longest `win_ms` and `hop_ms` accepted.
pub const AUDIO_MAX_WINDOW_MS: f64 = 1000.0;
/// The most mel `bins` accepted.
pub const AUDIO_MAX_BINS: i64 = 512;

/// What the model sees of a clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Features {
    Waveform,
    Mel(Frames),
    /// The first `n` MFCCs of the log-mel `Frames`.
    Mfcc {
        n: usize,
        mel: Frames,
    },
}

/// The log-mel settings: `bins` filters over windows of `win_ms` every `hop_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frames {
    pub bins: usize,
    pub win_ms: f64,
    pub hop_ms: f64,
}

impl Default for Frames {
    fn default() -> Frames {
        Frames { bins: 40, win_ms: 25.0, hop_ms: 10.0 }
    }
}

/// The checked arguments of an `audio(...)` value.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSpec {
    /// The folder of class folders, joined to the base folder.
    pub dir: PathBuf,
    pub rate: u32,
    pub seconds: f64,
    pub features: Features,
    pub skip_bad: bool,
}

impl AudioSpec {
    /// Samples per clip after resampling, cutting and padding.
    pub fn samples(&self) -> usize {
        (f64::from(self.rate) * self.seconds).round() as usize
    }

    /// `win` and `hop` in samples at `rate`, for the spectral features.
    pub fn window(&self) -> Option<(usize, usize)> {
        let mel = match self.features {
            Features::Waveform => return None,
            Features::Mel(m) | Features::Mfcc { mel: m, .. } => m,
        };
        let at = |ms: f64| (f64::from(self.rate) * ms / 1000.0).round() as usize;
        Some((at(mel.win_ms), at(mel.hop_ms)))
    }

    /// The shape of one sample: `[1, 1, samples]`, `[1, bins, frames]` or `[1, n, frames]`.
    pub fn shape(&self) -> Vec<usize> {
        let samples = self.samples();
        let frames = self.window().map_or(0, |(win, hop)| frame_count(samples, win, hop));
        match self.features {
            Features::Waveform => vec![1, 1, samples],
            Features::Mel(m) => vec![1, m.bins, frames],
            Features::Mfcc { n, .. } => vec![1, n, frames],
        }
    }

    /// The name the data goes by, `audio(DIR)`.
    pub fn name(&self) -> String {
        format!("audio({})", self.dir.display())
    }
}

/// Frames of `win` samples every `hop` samples in `samples`, none padded: 0 when the window
/// is longer than the clip, else `1 + (samples - win) / hop`. The only frame count there is.
pub fn frame_count(samples: usize, win: usize, hop: usize) -> usize {
    if win == 0 || hop == 0 || samples < win { 0 } else { 1 + (samples - win) / hop }
}

/// An argument of `audio(...)` that cannot be used: which argument (for the checker's
/// label) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioArgError {
    pub arg: &'static str,
    pub message: String,
}

fn bad(arg: &'static str, message: impl Into<String>) -> AudioArgError {
    AudioArgError { arg, message: message.into() }
}

/// Parses and checks the arguments of `audio(dir, ...)`; `dir` is joined to `base`.
pub fn audio_spec(call: &CallValue, base: &Path) -> Result<AudioSpec, AudioArgError> {
    const ARGS: [&str; 11] =
        ["dir", "rate", "seconds", "features", "skip_bad", "split", "seed", "test", "valid", "stream", "cache"];
    if let Some(k) = call.args.iter().filter_map(|(k, _)| k.as_deref()).find(|k| !ARGS.contains(k)) {
        return Err(bad("dir", format!("`audio` has no argument `{k}`")));
    }
    let dir = match call.arg("dir", 0) {
        Some(Value::Str(s)) => base.join(s),
        Some(other) => return Err(bad("dir", format!("`dir` must be a string path, not a {}", other.type_name()))),
        None => return Err(bad("dir", "`audio` needs the folder of class folders: `audio(\"data/speech\")`")),
    };
    let rate = match call.arg("rate", usize::MAX) {
        None => 16_000,
        Some(Value::Int(r)) if (1000..=AUDIO_MAX_RATE).contains(r) => *r as u32,
        Some(v) => {
            return Err(bad("rate", format!("`rate` must be an int from 1000 to {AUDIO_MAX_RATE} (Hz), not `{v}`")));
        }
    };
    let seconds = match call.arg("seconds", usize::MAX) {
        None => 1.0,
        Some(v) => match v.as_f64() {
            Some(s) if s > 0.0 && s <= AUDIO_MAX_SECONDS => s,
            _ => {
                return Err(bad(
                    "seconds",
                    format!("`seconds` must be a number above 0 and at most {AUDIO_MAX_SECONDS}, not `{v}`"),
                ));
            }
        },
    };
    let skip_bad = match call.arg("skip_bad", usize::MAX) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(bad("skip_bad", format!("`skip_bad` must be true or false, not `{v}`"))),
    };
    let features = match call.arg("features", usize::MAX) {
        None => Features::Mel(Frames::default()),
        Some(v) => features_of(v)?,
    };
    let spec = AudioSpec { dir, rate, seconds, features, skip_bad };
    if spec.samples() == 0 {
        return Err(bad("seconds", format!("{seconds} s at {rate} Hz is less than one sample")));
    }
    if let Some((win, hop)) = spec.window() {
        if win < 2 || hop == 0 {
            return Err(bad(
                "features",
                format!("the window is {win} samples and the hop {hop} at {rate} Hz: both need at least 2 and 1"),
            ));
        }
        if win > spec.samples() {
            return Err(bad(
                "features",
                format!(
                    "the window ({win} samples) is longer than the clip ({} samples): no frame fits",
                    spec.samples()
                ),
            ));
        }
    }
    Ok(spec)
}

/// `waveform`, `mel`, `mel(bins:, win_ms:, hop_ms:)`, `mfcc`, `mfcc(n:, bins:, win_ms:, hop_ms:)`.
fn features_of(v: &Value) -> Result<Features, AudioArgError> {
    let (name, args): (&str, &[(Option<String>, Value)]) = match v {
        Value::Sym(s) => (s.sym.as_str(), &[]),
        Value::Call(c) => (c.name.as_str(), &c.args),
        other => {
            return Err(bad(
                "features",
                format!("`features` is waveform, mel(...) or mfcc(...), not a {}", other.type_name()),
            ));
        }
    };
    let Some(entry) = catalogue::find(catalogue::AUDIO_FEATURES, name) else {
        return Err(bad("features", format!("unknown features `{name}`: waveform, mel(...) or mfcc(...)")));
    };
    let allowed: Vec<&str> = entry.sig.args.iter().map(|a| a.name).collect();
    for (k, _) in args {
        match k {
            Some(k) if allowed.contains(&k.as_str()) => {}
            Some(k) => return Err(bad("features", format!("`{name}` has no argument `{k}`"))),
            None => return Err(bad("features", format!("the arguments of `{name}` are named: `{name}(bins: 40)`"))),
        }
    }
    let get = |k: &str| args.iter().find(|(n, _)| n.as_deref() == Some(k)).map(|(_, v)| v);
    let ms = |k: &'static str, default: f64| match get(k) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(x) if x > 0.0 && x <= AUDIO_MAX_WINDOW_MS => Ok(x),
            _ => Err(bad(
                "features",
                format!("`{k}` must be a number of milliseconds above 0 and at most {AUDIO_MAX_WINDOW_MS}, not `{v}`"),
            )),
        },
    };
    let bins = match get("bins") {
        None => 40,
        Some(Value::Int(b)) if (1..=AUDIO_MAX_BINS).contains(b) => *b as usize,
        Some(v) => return Err(bad("features", format!("`bins` must be an int from 1 to {AUDIO_MAX_BINS}, not `{v}`"))),
    };
    let frames = Frames { bins, win_ms: ms("win_ms", 25.0)?, hop_ms: ms("hop_ms", 10.0)? };
    Ok(match entry.kind {
        AudioFeature::Waveform => Features::Waveform,
        AudioFeature::Mel => Features::Mel(frames),
        AudioFeature::Mfcc => {
            let n = match get("n") {
                None => 13.min(bins),
                Some(Value::Int(n)) if *n >= 1 && (*n as usize) <= bins => *n as usize,
                Some(v) => {
                    return Err(bad("features", format!("`n` must be an int from 1 to `bins` ({bins}), not `{v}`")));
                }
            };
            Features::Mfcc { n, mel: frames }
        }
    })
}

/// The class folders of an `audio` folder and what they hold.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioListing {
    /// The class names, sorted: class `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// Every entry of every class folder (but hidden ones), in class then name order, with
    /// its class index. A folder here is a bad clip, reported by [`wav_header`].
    pub clips: Vec<(PathBuf, usize)>,
}

/// Lists the class folders of `dir` and their clips. An unreadable `dir`, fewer than two
/// class folders, or an empty class folder is an error naming the folder.
pub fn audio_listing(dir: &Path) -> Result<AudioListing, DataError> {
    let entries = |folder: &Path| -> Result<Vec<(String, PathBuf, bool)>, DataError> {
        let read = std::fs::read_dir(folder).map_err(|e| DataError::at(folder, None, format!("cannot read: {e}")))?;
        let mut out = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| DataError::at(folder, None, format!("cannot list: {e}")))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            out.push((name, path.clone(), path.is_dir()));
        }
        out.sort();
        Ok(out)
    };
    if !dir.is_dir() {
        let why = if dir.exists() { "is not a folder" } else { "does not exist" };
        return Err(DataError::at(dir, None, why));
    }
    let folders: Vec<(String, PathBuf)> =
        entries(dir)?.into_iter().filter(|(_, _, is_dir)| *is_dir).map(|(n, p, _)| (n, p)).collect();
    if folders.len() < 2 {
        return Err(DataError::at(
            dir,
            None,
            format!(
                "{} class folder{}: an audio folder holds one folder of clips per class, at least 2",
                folders.len(),
                if folders.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    let mut classes = Vec::with_capacity(folders.len());
    let mut clips = Vec::new();
    for (c, (name, path)) in folders.into_iter().enumerate() {
        let inside = entries(&path)?;
        if inside.is_empty() {
            return Err(DataError::at(&path, None, format!("class folder `{name}` holds no clips")));
        }
        clips.extend(inside.into_iter().map(|(_, p, _)| (p, c)));
        classes.push(name);
    }
    Ok(AudioListing { classes, clips })
}

/// What a WAV file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavHeader {
    pub rate: u32,
    pub channels: u16,
    pub bits: u16,
    pub float: bool,
    /// Samples per channel.
    pub frames: u32,
}

/// Reads the header of the WAV file at `path`, and only the header: an `Err` says why the
/// clip cannot be used (not a file, not WAV, a format hound cannot read, a body shorter than
/// the header says, no samples).
pub fn wav_header(path: &Path) -> Result<WavHeader, String> {
    let (header, _) = open(path)?;
    Ok(header)
}

/// Counts the bytes hound reads, so that the start of the samples is known without a
/// RIFF parser of our own.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

type Reader = hound::WavReader<Counting<BufReader<std::fs::File>>>;

fn open(path: &Path) -> Result<(WavHeader, Reader), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_dir() {
        return Err("a folder inside a class folder: clips sit directly in their class folder".to_string());
    }
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let read = Rc::new(Cell::new(0u64));
    let counting = Counting { inner: BufReader::new(file), read: Rc::clone(&read) };
    let reader = hound::WavReader::new(counting).map_err(|e| match e {
        // Reading a regular file fails only where its bytes run out.
        hound::Error::IoError(e) => format!("not a WAV file, or its header is cut short ({e})"),
        hound::Error::FormatError(m @ ("no RIFF tag found" | "no WAVE tag found")) => format!("not a WAV file ({m})"),
        hound::Error::FormatError(m) => format!("not a usable WAV file ({m})"),
        hound::Error::Unsupported => "a WAV encoding other than integer PCM or 32-bit float".to_string(),
        other => format!("not a usable WAV file ({other})"),
    })?;
    let spec = reader.spec();
    let header = WavHeader {
        rate: spec.sample_rate,
        channels: spec.channels,
        bits: spec.bits_per_sample,
        float: spec.sample_format == hound::SampleFormat::Float,
        frames: reader.duration(),
    };
    if header.rate == 0 {
        return Err("the header gives a sample rate of 0 Hz".to_string());
    }
    if header.float && header.bits != 32 || !header.float && !(8..=32).contains(&header.bits) {
        let kind = if header.float { "float" } else { "integer" };
        return Err(format!("{}-bit {kind} samples are not supported", header.bits));
    }
    if header.frames == 0 {
        return Err("no samples: the clip is empty".to_string());
    }
    // The header's length against the bytes after it: a clip cut short is found here without
    // decoding it (a sample narrower than its container, 24 bits in 4 bytes, is counted at its
    // width, so such a clip cut short is found when it is decoded).
    let bytes = u64::from(reader.len()) * u64::from(header.bits.div_ceil(8));
    let held = meta.len().saturating_sub(read.get());
    if bytes > held {
        return Err(format!("cut short: the header announces {bytes} bytes of samples, the file holds {held}"));
    }
    Ok((header, reader))
}

/// The clips an `audio(...)` value reads, for fingerprints; none when its arguments or folder
/// cannot be used (loading reports why).
pub(super) fn clip_files(call: &CallValue, base: &Path) -> Vec<PathBuf> {
    let Ok(spec) = audio_spec(call, base) else { return Vec::new() };
    audio_listing(&spec.dir).map(|l| l.clips.into_iter().map(|(p, _)| p).collect()).unwrap_or_default()
}

/// Loads every clip of an `audio(...)` value: decoded, resampled and turned into features in
/// parallel. Bad clips are the first error (in class then name order), or skipped and
/// counted with `skip_bad`.
pub(super) fn load(spec: &AudioSpec) -> Result<(Raw, Vec<(PathBuf, String)>), DataError> {
    let listing = audio_listing(&spec.dir)?;
    let shape = spec.shape();
    let per: usize = shape.iter().product();
    let results: Vec<Result<Vec<f32>, String>> =
        listing.clips.par_iter().map(|(path, _)| clip(path, spec).and_then(|x| features(&x, spec))).collect();
    let mut x = Vec::with_capacity(results.len() * per);
    let mut y = Vec::with_capacity(results.len());
    let mut skipped = Vec::new();
    let mut kept = vec![0usize; listing.classes.len()];
    for ((path, c), r) in listing.clips.iter().zip(results) {
        match r {
            Ok(f) if f.len() == per => {
                x.extend_from_slice(&f);
                y.push(*c as f32);
                kept[*c] += 1;
            }
            Ok(f) => return Err(DataError::at(path, None, format!("{} feature values, expected {per}", f.len()))),
            Err(e) if spec.skip_bad => skipped.push((path.clone(), e)),
            Err(e) => return Err(DataError::at(path, None, format!("{e} (skip_bad: true skips such clips)"))),
        }
    }
    no_empty_class(spec, &listing, &kept, skipped.len())?;
    let info =
        DataInfo { name: spec.name(), shape, classes: listing.classes.len(), task: Task::Classification, vocab: None };
    let extras = super::Extras { class_names: listing.classes.clone(), ..Default::default() };
    Ok((Raw { info, x, y, extras, stored: None }, skipped))
}

/// [`load`] into a dataset cache (`stream: true`, see `data::cache`): the features of
/// [`super::cache::CHUNK_ROWS`] clips at a time computed in parallel and appended as f32, so
/// building holds one chunk, and training reads them back instead of computing them again.
/// The skipped clips' note is kept in the cache with the class names.
pub(super) fn load_streamed(
    call: &CallValue,
    base: &Path,
    spec: &AudioSpec,
    stream: &super::cache::StreamSpec,
) -> Result<Raw, DataError> {
    use super::cache;
    let listing = audio_listing(&spec.dir)?;
    let shape = spec.shape();
    let per: usize = shape.iter().product();
    let info = DataInfo {
        name: spec.name(),
        shape: shape.clone(),
        classes: listing.classes.len(),
        task: Task::Classification,
        vocab: None,
    };
    cache::open_or_build(call, base, stream, cache::Elem::F32, info, |w| {
        let mut y = Vec::with_capacity(listing.clips.len());
        let mut skipped = Vec::new();
        let mut kept = vec![0usize; listing.classes.len()];
        let mut values = Vec::with_capacity(cache::CHUNK_ROWS * per);
        for chunk in listing.clips.chunks(cache::CHUNK_ROWS) {
            let results: Vec<Result<Vec<f32>, String>> =
                chunk.par_iter().map(|(path, _)| clip(path, spec).and_then(|x| features(&x, spec))).collect();
            values.clear();
            for ((path, c), r) in chunk.iter().zip(results) {
                match r {
                    Ok(f) if f.len() == per => {
                        values.extend_from_slice(&f);
                        y.push(*c as f32);
                        kept[*c] += 1;
                    }
                    Ok(f) => {
                        return Err(DataError::at(path, None, format!("{} feature values, expected {per}", f.len())));
                    }
                    Err(e) if spec.skip_bad => skipped.push((path.clone(), e)),
                    Err(e) => return Err(DataError::at(path, None, format!("{e} (skip_bad: true skips such clips)"))),
                }
            }
            w.values(&values)?;
        }
        no_empty_class(spec, &listing, &kept, skipped.len())?;
        let mut extras = super::Extras { class_names: listing.classes.clone(), ..Default::default() };
        super::note_skipped_clips(&mut extras, &skipped, y.len());
        Ok((y, extras))
    })
}

/// A class whose every clip was skipped is an error naming its folder.
fn no_empty_class(spec: &AudioSpec, listing: &AudioListing, kept: &[usize], skipped: usize) -> Result<(), DataError> {
    if let Some(c) = kept.iter().position(|k| *k == 0) {
        let folder = spec.dir.join(&listing.classes[c]);
        return Err(DataError::at(
            &folder,
            None,
            format!("class `{}` has no usable clip: all {skipped} were skipped", listing.classes[c]),
        ));
    }
    Ok(())
}

/// The features of the clip at `path` as `spec` reads clips in training (`data::fitted`).
pub(super) fn clip_features(path: &Path, spec: &AudioSpec) -> Result<Vec<f32>, String> {
    clip(path, spec).and_then(|x| features(&x, spec))
}

/// The clip at `path` as `spec.samples()` mono samples at `spec.rate`.
fn clip(path: &Path, spec: &AudioSpec) -> Result<Vec<f32>, String> {
    let (h, reader) = open(path)?;
    let resampler = Resampler::new(h.rate, spec.rate);
    let needed = resampler.input_needed(spec.samples()).min(h.frames as usize);
    let channels = usize::from(h.channels);
    let mut mono = Vec::with_capacity(needed);
    let mut acc = 0f64;
    let mut k = 0usize;
    let mut push = |v: f64, mono: &mut Vec<f32>| {
        acc += v;
        k += 1;
        if k == channels {
            mono.push((acc / channels as f64) as f32);
            acc = 0.0;
            k = 0;
        }
    };
    let values = needed * channels;
    let at = |i: usize, e: hound::Error| format!("sample {} cannot be read ({e})", i / channels);
    if h.float {
        for (i, s) in reader.into_samples::<f32>().take(values).enumerate() {
            let v = s.map_err(|e| at(i, e))?;
            if !v.is_finite() {
                return Err(format!("sample {} is {v}: not a finite number", i / channels));
            }
            push(f64::from(v), &mut mono);
        }
    } else {
        let scale = 2f64.powi(i32::from(h.bits) - 1);
        for (i, s) in reader.into_samples::<i32>().take(values).enumerate() {
            push(f64::from(s.map_err(|e| at(i, e))?) / scale, &mut mono);
        }
    }
    if mono.len() < needed {
        return Err(format!("cut short: {} samples where the header announces {}", mono.len(), h.frames));
    }
    let mut out = resampler.run(&mono, spec.samples());
    out.resize(spec.samples(), 0.0);
    Ok(out)
}

#[cfg(test)]
#[path = "audio_tests.rs"]
mod tests;
