use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use super::*;
use crate::data::audio_features::{Resampler, dct, hz_to_mel, log_mel, mel_filterbank, mel_to_hz};
use crate::ir::{CallValue, Value};

fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "value {i}: {g} vs {w} (all: {got:?})");
    }
}

fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f32> {
    (0..n).map(|i| (amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32).collect()
}

/// The frequency of the largest bin of the DFT of `x` (direct sum over `bins` frequencies up to
/// Nyquist), and that bin's amplitude.
fn peak(x: &[f32], rate: u32) -> (f64, f64) {
    let n = x.len();
    let mut best = (0.0, 0.0);
    for k in 1..n / 2 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, v) in x.iter().enumerate() {
            let a = 2.0 * PI * k as f64 * i as f64 / n as f64;
            re += f64::from(*v) * a.cos();
            im -= f64::from(*v) * a.sin();
        }
        let amp = 2.0 * (re * re + im * im).sqrt() / n as f64;
        if amp > best.1 {
            best = (k as f64 * f64::from(rate) / n as f64, amp);
        }
    }
    best
}

#[test]
fn a_sine_resampled_from_8_to_16_khz_keeps_its_frequency_and_amplitude() {
    // 1 kHz at 8 kHz, 2,000 samples: 2,000 periods... resampled to 16 kHz, 4,000 samples.
    let x = sine(1000.0, 8000, 2000, 0.8);
    let r = Resampler::new(8000, 16_000);
    let y = r.run(&x, 4000);
    assert_eq!(y.len(), 4000);
    // Away from the edges (where the input stops), the analysis sees only the tone.
    let (f, amp) = peak(&y[800..3200], 16_000);
    assert!((f - 1000.0).abs() < 1e-9, "peak at {f} Hz");
    assert!((amp - 0.8).abs() < 0.01, "amplitude {amp}");
    // Every second output sample is an input sample (the sinc is 1 at 0 and 0 at the others).
    for j in (400..3600).step_by(2) {
        assert!((y[j] - x[j / 2]).abs() < 1e-3, "sample {j}: {} vs {}", y[j], x[j / 2]);
    }
}

#[test]
fn downsampling_keeps_a_tone_below_the_new_nyquist_and_removes_one_above_it() {
    let keep = Resampler::new(22_050, 16_000).run(&sine(3000.0, 22_050, 22_050, 0.5), 16_000);
    let (f, amp) = peak(&keep[2000..6000], 16_000);
    assert!((f - 3000.0).abs() < 1e-9 && (amp - 0.5).abs() < 0.01, "{f} Hz, amplitude {amp}");
    // 10 kHz is above 8 kHz: without a low-pass it would alias to 6 kHz at full amplitude.
    let gone = Resampler::new(22_050, 16_000).run(&sine(10_000.0, 22_050, 22_050, 0.5), 16_000);
    let rms = (gone[2000..14_000].iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / 12_000.0).sqrt();
    assert!(rms < 0.005, "an aliased tone survives: rms {rms}");
}

#[test]
fn the_resampler_needs_only_the_input_it_says() {
    let r = Resampler::new(22_050, 16_000);
    let x = sine(440.0, 22_050, 30_000, 0.5);
    let needed = r.input_needed(16_000);
    assert!(needed < 30_000 && needed > 22_050, "{needed}");
    assert_eq!(r.run(&x[..needed], 16_000), r.run(&x, 16_000));
    assert_eq!(Resampler::new(16_000, 16_000).input_needed(100), 100);
}

// Reference numbers from scripts/audio-reference.py (Python standard library, written from
// the published definitions, not from this code).

#[test]
fn the_mel_scale_and_filterbank_match_the_reference() {
    close(&[hz_to_mel(1000.0), mel_to_hz(1000.0)], &[999.985537, 1000.02182], 1e-5);
    let bank = mel_filterbank(8000, 16, 3);
    let want = [
        [0.0, 0.893459222, 0.16569184, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.106540778, 0.83430816, 0.650823721, 0.198715262, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.349176279, 0.801284738, 0.842585406, 0.561723604, 0.280861802, 0.0],
    ];
    for (m, row) in want.iter().enumerate() {
        close(&bank[m * 9..(m + 1) * 9], row, 1e-8);
    }
}

#[test]
fn the_dct_is_the_orthonormal_dct_ii_of_the_reference() {
    close(&dct(&[1.0, 2.0, 3.0, 4.0], 4), &[5.0, -2.2304425, 0.0, -0.158512668], 1e-7);
    close(
        &dct(&[0.5, -1.0, 2.0, 0.0, 3.0], 5),
        &[2.01246118, -1.87550042, 0.721363901, -0.327869131, 2.46061661],
        1e-7,
    );
    // The first n coefficients only, and an orthonormal transform keeps the energy.
    close(&dct(&[0.5, -1.0, 2.0, 0.0, 3.0], 2), &[2.01246118, -1.87550042], 1e-7);
    let x = [0.3, -2.0, 1.5, 4.0, 0.0, -1.0];
    let e: f64 = dct(&x, 6).iter().map(|c| c * c).sum();
    assert!((e - x.iter().map(|v| v * v).sum::<f64>()).abs() < 1e-9);
}

#[test]
fn the_log_mel_of_a_frame_matches_the_reference() {
    let x = sine(1000.0, 16_000, 200, 0.5);
    let lm = log_mel(&x, 16_000, 200, 100, 8);
    // One frame: 200 samples, window 200.
    close(
        &lm,
        &[-7.85633622, 0.434848147, 6.92500004, 5.1988302, -8.53829496, -12.3981954, -13.674, -13.8023167],
        1e-4,
    );
}

#[test]
fn frames_are_counted_without_padding_at_the_boundaries() {
    assert_eq!(frame_count(399, 400, 160), 0);
    assert_eq!(frame_count(400, 400, 160), 1);
    assert_eq!(frame_count(559, 400, 160), 1);
    assert_eq!(frame_count(560, 400, 160), 2);
    assert_eq!(frame_count(16_000, 400, 160), 98);
    assert_eq!(frame_count(16_000, 0, 160), 0);
    assert_eq!(frame_count(16_000, 400, 0), 0);
}

fn call(args: Vec<(Option<&str>, Value)>) -> CallValue {
    CallValue { name: "audio".into(), args: args.into_iter().map(|(k, v)| (k.map(str::to_string), v)).collect() }
}

fn mel(args: Vec<(&str, Value)>) -> Value {
    Value::Call(CallValue { name: "mel".into(), args: args.into_iter().map(|(k, v)| (Some(k.into()), v)).collect() })
}

#[test]
fn the_shape_follows_from_the_arguments() {
    let base = Path::new("/b");
    let dir = (None, Value::Str("d".into()));
    let spec = audio_spec(&call(vec![dir.clone()]), base).unwrap();
    assert_eq!(spec.dir, PathBuf::from("/b/d"));
    assert_eq!((spec.rate, spec.seconds, spec.skip_bad), (16_000, 1.0, false));
    assert_eq!(spec.shape(), vec![1, 40, 98]);
    let with = |k: &'static str, v: Value| audio_spec(&call(vec![dir.clone(), (Some(k), v)]), base);
    assert_eq!(with("features", Value::sym("waveform")).unwrap().shape(), vec![1, 1, 16_000]);
    assert_eq!(with("features", Value::sym("mfcc")).unwrap().shape(), vec![1, 13, 98]);
    let m = mel(vec![("bins", Value::Int(64)), ("win_ms", Value::Float(32.0)), ("hop_ms", Value::Int(16))]);
    // 512-sample windows every 256 samples: 1 + (16000 - 512) / 256 = 61.
    assert_eq!(with("features", m).unwrap().shape(), vec![1, 64, 61]);
    // 8 kHz, 0.5 s: 4,000 samples, windows of 200 every 80: 1 + 3800 / 80 = 48.
    let s = audio_spec(
        &call(vec![dir.clone(), (Some("rate"), Value::Int(8000)), (Some("seconds"), Value::Float(0.5))]),
        base,
    )
    .unwrap();
    assert_eq!(s.shape(), vec![1, 40, 48]);
}

#[test]
fn each_bad_argument_is_named() {
    let base = Path::new(".");
    let dir = (None, Value::Str("d".into()));
    let err = |args: Vec<(Option<&str>, Value)>| audio_spec(&call(args), base).unwrap_err();
    assert_eq!(err(vec![]).arg, "dir");
    assert_eq!(err(vec![(None, Value::Int(3))]).arg, "dir");
    for (k, v, says) in [
        ("rate", Value::Int(10), "`rate` must be an int from 1000"),
        ("rate", Value::Float(16000.5), "`rate` must be an int"),
        ("seconds", Value::Float(0.0), "`seconds` must be a number above 0"),
        ("seconds", Value::Int(61), "at most 60"),
        ("skip_bad", Value::Int(1), "`skip_bad` must be true or false"),
        ("features", Value::sym("spectrogram"), "unknown features `spectrogram`"),
        ("features", Value::Int(4), "`features` is waveform"),
        ("features", mel(vec![("bins", Value::Int(0))]), "`bins` must be an int from 1"),
        ("features", mel(vec![("win_ms", Value::Float(-1.0))]), "`win_ms` must be a number"),
        ("features", mel(vec![("hop", Value::Int(10))]), "`mel` has no argument `hop`"),
        ("features", mel(vec![("win_ms", Value::Int(2000))]), "at most 1000"),
    ] {
        let e = err(vec![dir.clone(), (Some(k), v)]);
        assert_eq!(e.arg, k, "{e:?}");
        assert!(e.message.contains(says), "`{}` lacks `{says}`", e.message);
    }
    let mfcc = Value::Call(CallValue { name: "mfcc".into(), args: vec![(Some("n".into()), Value::Int(41))] });
    assert!(
        err(vec![dir.clone(), (Some("features"), mfcc)]).message.contains("`n` must be an int from 1 to `bins` (40)")
    );
    // A window longer than the clip has no frame.
    let long = mel(vec![("win_ms", Value::Int(600))]);
    let e = err(vec![dir.clone(), (Some("seconds"), Value::Float(0.5)), (Some("features"), long)]);
    assert!(e.message.contains("longer than the clip"), "{e:?}");
    assert!(err(vec![dir, (Some("sample_rate"), Value::Int(8000))]).message.contains("no argument `sample_rate`"));
}

/// Writes a WAV file of `channels` interleaved with hound, in `bits`-bit integers or 32-bit
/// float, from samples in [-1, 1].
fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16, float: bool, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        for _ in 0..channels {
            if float {
                w.write_sample(*s).unwrap();
            } else {
                let max = 2f64.powi(i32::from(bits) - 1) - 1.0;
                w.write_sample((f64::from(*s) * max).round() as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn every_sample_format_and_channel_count_decodes_to_the_same_mono_signal() {
    let dir = tempfile::tempdir().unwrap();
    let x = sine(500.0, 16_000, 1600, 0.6);
    let spec = |p: &Path| AudioSpec {
        dir: p.to_path_buf(),
        rate: 16_000,
        seconds: 0.125,
        features: Features::Waveform,
        skip_bad: false,
    };
    for (bits, float, channels, tol) in
        [(8, false, 1, 0.01), (16, false, 1, 1e-4), (24, false, 2, 1e-6), (32, false, 3, 1e-6), (32, true, 2, 1e-7)]
    {
        let p = dir.path().join(format!("c{bits}{float}{channels}.wav"));
        write_wav(&p, 16_000, channels, bits, float, &x);
        let h = wav_header(&p).unwrap();
        assert_eq!((h.rate, h.channels, h.bits, h.float, h.frames), (16_000, channels, bits, float, 1600));
        let y = clip(&p, &spec(dir.path())).unwrap();
        // 0.125 s at 16 kHz is 2,000 samples: the 1,600 of the clip, then zeros.
        assert_eq!(y.len(), 2000);
        for (i, (a, b)) in x.iter().zip(&y).enumerate() {
            assert!((a - b).abs() <= tol, "{bits}-bit ({channels} channels), sample {i}: {a} vs {b}");
        }
        assert!(y[1600..].iter().all(|v| *v == 0.0));
    }
    // Cut: a long clip keeps its first `seconds`.
    let p = dir.path().join("long.wav");
    let long = sine(500.0, 16_000, 8000, 0.6);
    write_wav(&p, 16_000, 1, 16, false, &long);
    let y = clip(&p, &spec(dir.path())).unwrap();
    assert_eq!(y.len(), 2000);
    assert!(y.iter().zip(&long).all(|(a, b)| (a - b).abs() < 1e-4));
}

#[test]
fn a_float_clip_with_a_nan_sample_is_refused_naming_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.wav");
    let mut x = sine(500.0, 16_000, 800, 0.5);
    x[123] = f32::NAN;
    write_wav(&p, 16_000, 1, 32, true, &x);
    let spec =
        AudioSpec { dir: dir.path().into(), rate: 16_000, seconds: 0.1, features: Features::Waveform, skip_bad: false };
    assert!(wav_header(&p).is_ok(), "the header is fine: only decoding finds the NaN");
    let e = clip(&p, &spec).unwrap_err();
    assert!(e.contains("sample 123 is NaN"), "{e}");
}
