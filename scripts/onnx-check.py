#!/usr/bin/env python3
"""Checks ONNX files written by `bma export` against bma's own outputs.

Usage: onnx-check.py MODEL.onnx [MORE.onnx ...] [--tolerance 1e-4]

For each MODEL.onnx, reads MODEL.samples.npz (written by `bma export --samples N`:
`input`, the model's inputs, and `output`, bma's outputs for them), validates the file
with `onnx.checker` (full check, shapes inferred), runs it with onnxruntime (CPU) and
compares the outputs: the largest absolute difference must be at most the tolerance.
Prints one line per model; exits 1 if any model fails or cannot be read.
"""
import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort


def check(path, tolerance):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    samples = path[: -len(".onnx")] + ".samples.npz" if path.endswith(".onnx") else path + ".samples.npz"
    data = np.load(samples)
    x, expected = data["input"], data["output"]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(["output"], {"input": x.astype(np.float32)})[0]
    if got.shape != expected.shape:
        return False, f"output shape {got.shape}, bma gave {expected.shape}"
    if not np.all(np.isfinite(got)):
        return False, "onnxruntime gave a non-finite output"
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    ok = diff <= tolerance
    return ok, f"{x.shape[0]} rows, max |onnxruntime - bma| = {diff:.3g} (tolerance {tolerance:g})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    failed = 0
    for path in args.models:
        try:
            ok, message = check(path, args.tolerance)
        except Exception as e:  # any unreadable or invalid file is a failure, reported by name
            ok, message = False, f"{type(e).__name__}: {e}"
        print(f"{'ok  ' if ok else 'FAIL'} {path}: {message}")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
