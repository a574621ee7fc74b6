#!/usr/bin/env python3
"""Reference numbers for src/data/audio_tests.rs, computed independently of the Rust code
with Python's standard library only, from the published definitions:

- the HTK mel scale, 2595 * log10(1 + f / 700), and librosa's filters.mel(htk=True,
  norm=None): bins + 2 points evenly spaced in mel from 0 to sr / 2, each filter
  max(0, min(rising, falling)) evaluated at the FFT bin frequencies k * sr / n_fft;
- scipy's dct(type=2, norm="ortho");
- the log-mel of one frame of a 1 kHz sine: periodic Hann window, |DFT|^2 by the direct
  sum (no FFT), ln(mel + 1e-6).

Run: python3 scripts/audio-reference.py
"""
import math


def hz_to_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def filterbank(sr, n_fft, bins):
    top = hz_to_mel(sr / 2.0)
    pts = [mel_to_hz(top * i / (bins + 1)) for i in range(bins + 2)]
    freqs = [k * sr / n_fft for k in range(n_fft // 2 + 1)]
    out = []
    for m in range(bins):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        out.append([max(0.0, min((f - lo) / (c - lo), (hi - f) / (hi - c))) for f in freqs])
    return out


def dct_ortho(x):
    n = len(x)
    out = []
    for k in range(n):
        s = math.sqrt(1.0 / n) if k == 0 else math.sqrt(2.0 / n)
        out.append(s * sum(v * math.cos(math.pi * k * (2 * i + 1) / (2 * n)) for i, v in enumerate(x)))
    return out


def log_mel_frame(x, sr, bins):
    win = len(x)
    n_fft = 1
    while n_fft < win:
        n_fft *= 2
    w = [0.5 - 0.5 * math.cos(2 * math.pi * i / win) for i in range(win)]
    xs = [x[i] * w[i] for i in range(win)] + [0.0] * (n_fft - win)
    power = []
    for k in range(n_fft // 2 + 1):
        re = sum(v * math.cos(2 * math.pi * k * i / n_fft) for i, v in enumerate(xs))
        im = -sum(v * math.sin(2 * math.pi * k * i / n_fft) for i, v in enumerate(xs))
        power.append(re * re + im * im)
    fb = filterbank(sr, n_fft, bins)
    return [math.log(sum(a * b for a, b in zip(row, power)) + 1e-6) for row in fb]


def show(name, values):
    print(f"{name}: [{', '.join(f'{v:.9}' for v in values)}]")


show("hz_to_mel(1000), mel_to_hz(1000)", [hz_to_mel(1000.0), mel_to_hz(1000.0)])
for m, row in enumerate(filterbank(8000, 16, 3)):
    show(f"filterbank(8000, 16, 3)[{m}]", row)
show("dct_ortho([1, 2, 3, 4])", dct_ortho([1.0, 2.0, 3.0, 4.0]))
show("dct_ortho([0.5, -1, 2, 0, 3])", dct_ortho([0.5, -1.0, 2.0, 0.0, 3.0]))
sine = [0.5 * math.sin(2 * math.pi * 1000 * i / 16000) for i in range(200)]
show("log_mel_frame(0.5 sin 1 kHz, 16 kHz, win 200, 8 bins)", log_mel_frame(sine, 16000, 8))
