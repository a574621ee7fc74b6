#!/usr/bin/env python3
"""Reference numbers for the GP tests (src/search/gp/model.rs, src/search/gp/acq.rs).

Computed independently of bma: numpy (float64) for the kernel matrix, the posterior and
the log marginal likelihood from the textbook formulas (Rasmussen and Williams 2006,
eq. 2.25-2.26 and 5.8, the Matérn-5/2 kernel eq. 4.17 (and Matérn-3/2's correlation) with one length scale per
dimension, categorical dimensions by Hamming distance as in Optuna's GPSampler),
mpmath at 50 digits for log EI's h(z) = phi(z) + z Phi(z) and log Phi(z), scipy for the
expected improvement in closed form. Prints Rust constants to paste into the tests.

Usage: VENV=/work/venv-torch $VENV/bin/python bench/search/gp_reference.py
(needs numpy, scipy and mpmath).
"""
import numpy as np
import mpmath as mp
from scipy.stats import norm

mp.mp.dps = 50

X = np.array([[0.1, 0.9, 0.0], [0.4, 0.2, 1.0], [0.75, 0.5, 2.0], [0.3, 0.35, 1.0]])
Y = np.array([0.5, -1.2, 0.3, 0.9])
CAT = np.array([False, False, True])
RHO = np.array([2.0, 0.5, 1.5])
SCALE, NOISE = 1.3, 0.01


def kern(a, b):
    sd = np.where(CAT, (a != b).astype(float), (a - b) ** 2)
    d2 = sd @ RHO
    r = np.sqrt(5 * d2)
    return SCALE * (1 + r + r * r / 3) * np.exp(-r)


K = np.array([[kern(a, b) for b in X] for a in X])
C = K + NOISE * np.eye(len(X))
print("kernel matrix:")
for row in K:
    print("    [" + ", ".join(repr(float(v)) for v in row) + "],")
sign, logdet = np.linalg.slogdet(C)
alpha = np.linalg.solve(C, Y)
lml = -0.5 * Y @ alpha - 0.5 * logdet - 0.5 * len(X) * np.log(2 * np.pi)
print("log marginal likelihood:", repr(float(lml)))
for x in ([0.2, 0.6, 1.0], [0.4, 0.2, 1.0], [0.9, 0.9, 3.0]):
    x = np.array(x)
    k = np.array([kern(x, b) for b in X])
    mean = k @ alpha
    var = SCALE - k @ np.linalg.solve(C, k)
    print(f"posterior at {list(x)}: ({float(mean)!r}, {float(var)!r})")


def h(z):
    z = mp.mpf(z)
    return mp.npdf(z) + z * mp.ncdf(z)


print("REFERENCE_LOG_H:")
for z in [3.0, 0.5, 0.0, -0.5, -1.0, -3.0, -10.0, -30.0, -40.0, -100.0, -1e3, -1e5]:
    print(f"    ({z!r}, {float(mp.log(h(z)))!r}),")
print("REFERENCE_LOG_NCDF:")
for z in [1.0, -1.0, -4.9, -5.0, -10.0, -40.0, -1e3]:
    print(f"    ({z!r}, {float(mp.log(mp.ncdf(z)))!r}),")
print("MATERN32 (d2, (1 + r) exp(-r), r = sqrt(3 d2)):")
for d2 in [0.0, 0.04, 0.5, 2.0]:
    r = np.sqrt(3 * d2)
    print(f"    ({d2!r}, {float((1 + r) * np.exp(-r))!r}),")
print("REFERENCE_EI:")
for m, v, b in [(0.0, 1.0, 0.0), (0.3, 0.2, -0.5), (-1.0, 0.04, 0.2), (2.0, 0.5, 0.1)]:
    s = np.sqrt(v)
    z = (b - m) / s
    ei = s * (z * norm.cdf(z) + norm.pdf(z))
    print(f"    ({m!r}, {v!r}, {b!r}, {float(ei)!r}),")
