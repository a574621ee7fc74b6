#!/usr/bin/env python3
"""DARTS + retraining against TPE over the same architecture space, at equal time.

Two benches, one `bma run` per run:
  digits  (default): bench/gradient/digits-darts.bma, the whole digits dataset;
  fashion: bench/gradient/fashion-darts.bma, a 10,000-image subset of Fashion-MNIST (the
           first 10,000 of a fixed shuffle, Python's random.Random(0), of Debian's
           dataset-fashion-mnist training file, written to target/fashion-darts-data/),
           scored once on the official 10,000-image test set.
Per run:
  darts: `--strategy 'darts(epochs: E, arch_lr: A)'`: the architecture phase then the
         read-off sub-model trained from scratch, the study's one trial;
  tpe:   digits: `--strategy tpe --time T` with T the wall time the DARTS run of the same
         seed took (measured just before, on the same machine), trials as many as fit;
         fashion: `--strategy tpe --trials 2`, the trial count whose CPU time matches DARTS'
         (see TPE_TRIALS: on the loaded machine wall time did not track CPU time).
Both sides train with one thread (`train.threads` defaults to 1) at the same nice level;
the CPU time (user+sys of the bma process) of every run is measured and reported.
The final model is the best trial by valid accuracy; its **test** accuracy is reported
(results.json `final.final_test`).

Protocol (tuning seeds apart from reported seeds):
  1. tuning seeds 101, 102: E x A over GRID (digits: E in {5, 10}, fashion: E in {1, 3}; A in
     {0.003, 0.03}), by the mean valid accuracy of the read-off trial;
  2. reported seeds 1..5: DARTS with the tuned E, A, and TPE with its budget, the two sides
     alternating: DARTS first on seeds 1, 3, 5, TPE first on 2, 4 (digits: there a first,
     unreported DARTS run of the same seed measures the time TPE gets).

Usage: python3 bench/gradient/darts.py [digits|fashion] [BMA] [--tuned E A]
       (BMA: default target/release/bma; --tuned skips the tuning, taking its outcome)
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ARGS = [a for a in sys.argv[1:] if a not in ("digits", "fashion")]
# `--tuned E A`: the tuning's outcome from an earlier run's log (skips the tuning runs).
TUNED = None
if "--tuned" in ARGS:
    i = ARGS.index("--tuned")
    TUNED = (int(ARGS[i + 1]), float(ARGS[i + 2]))
    del ARGS[i:i + 3]
BENCH = "fashion" if "fashion" in sys.argv[1:] else "digits"
BMA = ARGS[0] if ARGS else "target/release/bma"
TUNE_SEEDS = [101, 102]
SEEDS = [1, 2, 3, 4, 5]
if BENCH == "digits":
    SPEC = "bench/gradient/digits-darts.bma"
    GRID = [(5, 0.003), (5, 0.03), (10, 0.003), (10, 0.03)]
    DECISIONS = ("act", "width", "kind")
else:
    SPEC = "bench/gradient/fashion-darts.bma"
    # TPE's budget on Fashion-MNIST is a trial count, not bma's `--time` (wall time): on the
    # shared machine wall/CPU varied from 2.6 to 7 between runs minutes apart (the tuning
    # log), so equal wall time was far from equal CPU time. From the tuning runs' CPU time
    # (E=1: 12.5-17.9 s, E=3: 26.6-31.6 s) one supernet epoch costs about 6.6 CPU s and the
    # rest of a DARTS run (the 3-epoch read-off training, loading, the test pass) about 9 s:
    # DARTS with E=1 costs about two trainings, so TPE gets 2 trials. Both CPU times are
    # measured and reported.
    TPE_TRIALS = 2
    GRID = [(1, 0.003), (1, 0.03), (3, 0.003), (3, 0.03)]
    DECISIONS = ("extra", "head")
# The Fashion-MNIST subset: the first SUBSET images of a fixed shuffle (numpy seed 0) of the
# official training file, written where fashion-darts.bma reads it.
FASHION = "/usr/share/datasets/fashion-mnist"
SUBSET_DIR = "target/fashion-darts-data"
SUBSET = 10_000


def fashion_subset():
    """Writes SUBSET_DIR's two IDX files (once; the same bytes every time)."""
    import gzip
    import random
    imgs, labs = (os.path.join(SUBSET_DIR, f) for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"))
    if os.path.exists(imgs) and os.path.exists(labs):
        return
    with gzip.open(os.path.join(FASHION, "train-images-idx3-ubyte.gz")) as f:
        img = f.read()
    with gzip.open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz")) as f:
        lab = f.read()
    n = int.from_bytes(img[4:8], "big")
    order = list(range(n))
    random.Random(0).shuffle(order)
    keep = order[:SUBSET]
    px = 28 * 28
    os.makedirs(SUBSET_DIR, exist_ok=True)
    with gzip.GzipFile(imgs + ".tmp", "wb", mtime=0) as f:
        f.write(img[:4] + SUBSET.to_bytes(4, "big") + img[8:16])
        f.write(b"".join(img[16 + i * px:16 + (i + 1) * px] for i in keep))
    with gzip.GzipFile(labs + ".tmp", "wb", mtime=0) as f:
        f.write(lab[:4] + SUBSET.to_bytes(4, "big"))
        f.write(bytes(lab[8 + i] for i in keep))
    os.replace(imgs + ".tmp", imgs)
    os.replace(labs + ".tmp", labs)


def run(strategy, seed, time_s=None, trials=None):
    """One study; gives (test accuracy, valid accuracy, trials, wall s, cpu s, params)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        cmd = [BMA, "run", SPEC, "--out", out, "--progress", "none", "--seed", str(seed), "--strategy", strategy]
        if time_s is not None:
            cmd += ["--time", f"{time_s:.1f}s"]
        if trials is not None:
            cmd += ["--trials", str(trials)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
        with open(os.path.join(out, "results.json")) as f:
            r = json.load(f)
        best = r["best"]
        final = r["final"]
        trials = sum(1 for t in r["trials"] if t["state"] == "complete")
        arch = {k: best["params"][k] for k in DECISIONS}
        return final["final_test"]["accuracy"], best["values"]["accuracy"], trials, wall, cpu, arch


def darts(e, a):
    return f"darts(epochs: {e}, arch_lr: {a})"


def main():
    if BENCH == "fashion":
        fashion_subset()
    print(f"# {SPEC} with {BMA}; load: {os.getloadavg()}; {time.strftime('%H:%M:%S', time.gmtime())} UTC", flush=True)
    if TUNED is None:
        print("## tuning (valid accuracy of the read-off trial)", flush=True)
        scores = {}
        for e, a in GRID:
            vals = []
            for s in TUNE_SEEDS:
                test, valid, _, wall, cpu, arch = run(darts(e, a), s)
                vals.append(valid)
                print(f"tune E={e} A={a} seed={s}: valid {valid:.4f} wall {wall:.1f} cpu {cpu:.1f} {arch}", flush=True)
            scores[(e, a)] = statistics.mean(vals)
        e, a = max(GRID, key=lambda k: (scores[k], -k[0]))
        print(f"tuned: E={e} A={a} (mean valid {scores[(e, a)]:.4f})", flush=True)
    else:
        e, a = TUNED
        print(f"tuned (given): E={e} A={a}", flush=True)
    print("## reported seeds", flush=True)
    rows = []
    for i, s in enumerate(SEEDS):
        if BENCH == "fashion":
            # A trial-count budget needs no DARTS time first: the sides simply alternate.
            if i % 2 == 0:
                d = run(darts(e, a), s)
                t = run("tpe", s, trials=TPE_TRIALS)
            else:
                t = run("tpe", s, trials=TPE_TRIALS)
                d = run(darts(e, a), s)
        else:
            # DARTS' time sets TPE's budget, so DARTS runs first on even-indexed seeds; on odd
            # ones a first DARTS run measures the time, TPE runs, and a second DARTS run is
            # reported (the same seed gives the same choice; only its timing may differ).
            d = run(darts(e, a), s)
            t = run("tpe", s, d[3])
            if i % 2 == 1:
                d = run(darts(e, a), s)
        rows.append((s, d, t))
        print(f"seed {s}: darts test {d[0]:.4f} valid {d[1]:.4f} wall {d[3]:.1f} cpu {d[4]:.1f} {d[5]} | "
              f"tpe test {t[0]:.4f} valid {t[1]:.4f} trials {t[2]} wall {t[3]:.1f} cpu {t[4]:.1f} {t[5]}; "
              f"load {os.getloadavg()[0]:.1f} {time.strftime('%H:%M:%S', time.gmtime())} UTC", flush=True)
    print("## summary", flush=True)
    for name, k in [("darts + retrain", 1), ("tpe, same budget", 2)]:
        test = [r[k][0] for r in rows]
        print(f"{name}: test {statistics.mean(test):.4f} (min {min(test):.4f}, max {max(test):.4f}); "
              f"valid {statistics.mean(r[k][1] for r in rows):.4f}; trials {statistics.mean(r[k][2] for r in rows):.1f}; "
              f"wall {statistics.mean(r[k][3] for r in rows):.1f} s; cpu {statistics.mean(r[k][4] for r in rows):.1f} s",
              flush=True)
    print(f"# load after: {os.getloadavg()}; {time.strftime('%H:%M:%S', time.gmtime())} UTC", flush=True)


if __name__ == "__main__":
    main()
