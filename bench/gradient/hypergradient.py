#!/usr/bin/env python3
"""Hypergradient descent from a poor start against the tuned fixed learning rate, on digits.

Runs `bma run bench/gradient/digits-hyper.bma --set lr=.. --set beta=..` (one trial: a
15-epoch MLP with sgd momentum 0.9, the kept epoch the best on valid) and reads the test
accuracy of that trial from results.json. Standard library only.

Protocol (tuning seeds apart from reported seeds):
  1. tuning seeds 101, 102: the fixed lr from a grid, by mean valid accuracy;
  2. the same seeds: beta from a grid, by mean valid accuracy over both poor starts
     (the tuned lr / 100 and the tuned lr * 100);
  3. reported seeds 1..5: the tuned fixed lr, the two poor starts fixed, the two poor
     starts with the chosen beta, and the tuned lr with it. The order of the
     configurations alternates from seed to seed.

Fashion-MNIST (`fashion` as the first argument; bench/gradient/fashion-hyper.bma, 3 epochs of an
MLP, about 40 s a run in a debug build on the loaded machine), a reduced protocol: the fixed lr
from a 3-value grid on tuning seed 101 alone, beta the one digits chose (not tuned again), reported
seeds 1..3, and no 100x-too-large start (digits showed it does not recover).

Usage: python3 bench/gradient/hypergradient.py [fashion] [BMA]   (BMA: default target/debug/bma)
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ARGS = sys.argv[1:]
FASHION = bool(ARGS) and ARGS[0] == "fashion"
if FASHION:
    ARGS = ARGS[1:]
BMA = ARGS[0] if ARGS else "target/debug/bma"
SPEC = "bench/gradient/fashion-hyper.bma" if FASHION else "bench/gradient/digits-hyper.bma"
# Per optimizer: the fixed-lr grid and the beta grid (the paper: about 1e-3 for sgd, 1e-7 for adam).
GRIDS = {
    "sgd": ([0.001, 0.003, 0.01, 0.03, 0.1, 0.3], [1e-4, 1e-3, 1e-2]),
    "adam": ([1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], [1e-7, 1e-6, 1e-5, 1e-4]),
}
TUNE_SEEDS = [101, 102]
SEEDS = [1, 2, 3, 4, 5]
if FASHION:
    # beta: what digits chose (bench/gradient/RESULTS.md), not tuned on Fashion-MNIST.
    GRIDS = {"sgd": ([0.01, 0.03, 0.1], [1e-2]), "adam": ([3e-4, 1e-3, 3e-3], [1e-4])}
    TUNE_SEEDS = [101]
    SEEDS = [1, 2, 3]


def run(opt, lr, beta, seed):
    """(valid accuracy, test accuracy, final adapted lr or None, wall s, cpu s) of one trial."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        before = os.times()
        t0 = time.monotonic()
        p = subprocess.run(
            [BMA, "run", SPEC, "--out", out, "--seed", str(seed), "--set", f"opt={opt}", "--set", f"lr={lr!r}",
             "--set", f"beta={beta!r}", "-q"],
            capture_output=True, text=True)
        wall = time.monotonic() - t0
        after = os.times()
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        if p.returncode != 0:
            raise SystemExit(f"bma failed for {opt} lr={lr} beta={beta} seed={seed}:\n{p.stderr}")
        r = json.load(open(os.path.join(out, "results.json")))
        best = r["best"]
        if best is None or best.get("state") != "complete":
            return (float("nan"), float("nan"), None, wall, cpu)
        m = best["metrics"]
        f = lambda v: float(v)
        return (f(m["accuracy"]), f(best["test"]["accuracy"]), f(m["hyper_lr"]) if "hyper_lr" in m else None, wall, cpu)


def mean(xs):
    xs = [x for x in xs if x == x]
    return statistics.mean(xs) if xs else float("nan")


def bench(opt):
    lr_grid, beta_grid = GRIDS[opt]
    # 1. the fixed lr
    tune = {lr: mean([run(opt, lr, 0.0, s)[0] for s in TUNE_SEEDS]) for lr in lr_grid}
    print(f"{opt} tuning, fixed lr (mean valid accuracy):", tune, flush=True)
    lr_star = max(lr_grid, key=lambda lr: tune[lr])
    small, large = lr_star / 100, lr_star * 100
    # 2. beta
    if len(beta_grid) == 1:
        beta = beta_grid[0]
    else:
        tune_b = {b: mean([run(opt, lr, b, s)[0] for s in TUNE_SEEDS for lr in (small, large)]) for b in beta_grid}
        print(f"{opt} tuning, beta from both poor starts (mean valid accuracy):", tune_b, flush=True)
        beta = max(beta_grid, key=lambda b: tune_b[b])
    print(f"{opt}: tuned lr {lr_star}, poor starts {small:g} and {large:g}, beta {beta:g}", flush=True)
    # 3. reported seeds
    configs = [
        (f"{opt}: fixed lr {lr_star:g} (tuned)", lr_star, 0.0),
        (f"{opt}: fixed lr {small:g} (100x small)", small, 0.0),
        (f"{opt}: fixed lr {large:g} (100x large)", large, 0.0),
        (f"{opt}: hypergradient from {small:g}, beta {beta:g}", small, beta),
        (f"{opt}: hypergradient from {large:g}, beta {beta:g}", large, beta),
        (f"{opt}: hypergradient from {lr_star:g} (tuned), beta {beta:g}", lr_star, beta),
    ]
    if FASHION:
        configs = [c for c in configs if "100x large" not in c[0] and f"from {large:g}," not in c[0]]
    res = {name: [] for name, _, _ in configs}
    for i, s in enumerate(SEEDS):
        order = configs if i % 2 == 0 else list(reversed(configs))
        for name, lr, b in order:
            res[name].append(run(opt, lr, b, s))
    return configs, res


def main():
    print(f"# load before: {os.getloadavg()}", flush=True)
    tables = [bench(opt) for opt in GRIDS]
    print(f"# load after: {os.getloadavg()}")
    print()
    print(f"| configuration | test accuracy, mean (min–max) of the completed seeds | failed of {len(SEEDS)} | valid accuracy, mean | final adapted lr, mean | wall s / run | CPU s / run |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for configs, res in tables:
        for name, _, _ in configs:
            rs = res[name]
            tests = [r[1] for r in rs if r[1] == r[1]]
            failed = len(rs) - len(tests)
            lrs = [r[2] for r in rs if r[2] is not None]
            span = f"{mean(tests):.4f} ({min(tests):.4f}–{max(tests):.4f})" if tests else "–"
            print(f"| {name} | {span} | {failed} | {mean([r[0] for r in rs]):.4f} | "
                  f"{(f'{mean(lrs):.4g}' if lrs else '–')} | {mean([r[3] for r in rs]):.2f} | {mean([r[4] for r in rs]):.2f} |")
    print()
    print("per seed (test accuracy; nan: the trial failed):")
    for configs, res in tables:
        for name, _, _ in configs:
            print(f"  {name}: " + ", ".join(f"{r[1]:.4f}" for r in res[name]))


if __name__ == "__main__":
    main()
