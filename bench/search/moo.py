#!/usr/bin/env python3
"""Multi-objective search quality: our NSGA-II and TPE beside Optuna's on ZDT1-3 and DTLZ2.

Problems (the same definitions as bench/search/moo.rs, checked there against pymoo 0.6.2):
- zdt1, zdt2, zdt3: 30 variables in [0, 1], two objectives, minimised;
- dtlz2: 12 variables in [0, 1], three objectives (k = 10), minimised.

Each study runs 500 trials; the hypervolume of every completed trial is read at 100, 200 and
500 trials, at two reference points per problem (all objectives minimised, raw values, no
normalisation: each problem's Pareto front already lies in [0, 1]^m, ZDT3's f2 down to -0.77):
- tight: (1.1, 1.1) for ZDT, (1.1, 1.1, 1.1) for DTLZ2 (the usual references around the front);
- wide:  (1.1, 11) for ZDT (holds every value: f1 <= 1, f2 <= 11) and (3.5, 3.5, 3.5) for
  DTLZ2 (f_i <= 1 + g <= 3.5), which tells strategies apart before they reach the tight box.
Hypervolumes are exact on both sides (Optuna's `optuna._hypervolume.compute_hypervolume`, WFG;
ours `bma::trial::rank::hypervolume`, a sweep / slicing; a test pins them to each other).

`--optuna-trials optuna-tpe=200` cuts an Optuna sampler's studies to 200 trials (its
checkpoints beyond are left empty; a cached longer study still serves the shorter cut).

Noise: beside each ratio of medians (ours / Optuna's, over the seeds both sides ran to that
checkpoint; n shown when fewer than all), its 90% seed-bootstrap interval
(each side's studies resampled with replacement, BOOT resamples, a fixed bootstrap seed);
"at or above within noise" means the interval reaches 1 or lies above it.

Seeds: 0..9 report (the only ones in RESULTS); 100..109 are for tuning (`--seeds 100`).
Optuna's studies (NSGAIISampler(seed=s), TPESampler(seed=s), their defaults) are cached one
JSON line per (sampler, problem, seed) in $SUITE_CACHE/optuna-moo-<version>.jsonl (default
target/suite-cache); a cached study is not run again (--fresh ignores the cache).

Usage (from the repository root):
    VENV=target/suite-venv python3 bench/search/moo.py [--seeds 0] [--nseeds 10]
        [--problems zdt1,zdt2,zdt3,dtlz2] [--samplers optuna-nsga2,optuna-tpe] [--jobs 2]
        [--optuna-trials optuna-tpe=200] [--optuna-only] [--cached-only] [--ours-bin PATH]
        [--ours-json FILE,...] [--fresh]
VENV defaults to target/suite-venv, made with optuna 5.x when missing.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.abspath(os.environ.get("VENV") or os.path.join(ROOT, "target", "suite-venv"))
PY = os.path.join(VENV, "bin", "python")
CACHE_DIR = os.path.abspath(os.environ.get("SUITE_CACHE") or os.path.join(ROOT, "target", "suite-cache"))

TRIALS = 500
BOOT = 4000
CHECKPOINTS = (100, 200, 500)
PROBLEMS = ("zdt1", "zdt2", "zdt3", "dtlz2")
SAMPLERS = ("optuna-nsga2", "optuna-tpe")
# The pairs compared: ours -> Optuna's.
PAIRS = (("nsga2", "optuna-nsga2"), ("tpe", "optuna-tpe"))


def ensure_venv():
    sys.path.insert(0, HERE)
    import bench_venv

    bench_venv.ensure(VENV, "import optuna; assert optuna.__version__.startswith('5.')", ["optuna==5.0.0"], __file__)


# ---- the problems (bench/search/moo.rs has the same) ----

def zdt_g(x):
    return 1 + 9 * sum(x[1:]) / (len(x) - 1)


def zdt1(x):
    f1, g = x[0], zdt_g(x)
    return [f1, g * (1 - math.sqrt(f1 / g))]


def zdt2(x):
    f1, g = x[0], zdt_g(x)
    return [f1, g * (1 - (f1 / g) ** 2)]


def zdt3(x):
    f1, g = x[0], zdt_g(x)
    return [f1, g * (1 - math.sqrt(f1 / g) - f1 / g * math.sin(10 * math.pi * f1))]


def dtlz2(x):
    g = sum((v - 0.5) ** 2 for v in x[2:])
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return [(1 + g) * math.cos(a) * math.cos(b), (1 + g) * math.cos(a) * math.sin(b), (1 + g) * math.sin(a)]


DEFS = {
    "zdt1": (30, zdt1, ((1.1, 1.1), (1.1, 11.0))),
    "zdt2": (30, zdt2, ((1.1, 1.1), (1.1, 11.0))),
    "zdt3": (30, zdt3, ((1.1, 1.1), (1.1, 11.0))),
    "dtlz2": (12, dtlz2, ((1.1, 1.1, 1.1), (3.5, 3.5, 3.5))),
}


def hypervolume(points, ref):
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    inside = [p for p in points if all(v < r for v, r in zip(p, ref))]
    if not inside:
        return 0.0
    return float(compute_hypervolume(np.array(inside), np.array(ref, dtype=float)))


# ---- one Optuna study (a worker process) ----

def optuna_study(job):
    sampler_name, problem, seed, trials = job
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    d, fn, refs = DEFS[problem]
    if sampler_name == "optuna-nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(directions=["minimize"] * len(refs[0]), sampler=sampler)
    start = time.process_time()
    points, hv = [], []
    for n in range(1, trials + 1):
        t = study.ask()
        v = fn([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(d)])
        study.tell(t, v)
        points.append(v)
        if n in CHECKPOINTS:
            hv.append([hypervolume(points, r) for r in refs])
    return {"strategy": sampler_name, "problem": problem, "seed": seed, "trials": trials, "hv": hv,
            "cpu": time.process_time() - start}


def key(r):
    return (r["strategy"], r["problem"], r["seed"])


def trials_of(r):
    return r.get("trials", TRIALS)


def run_optuna(jobs, njobs, fresh, cached_only=False):
    import optuna

    os.makedirs(CACHE_DIR, exist_ok=True)
    path = os.path.join(CACHE_DIR, f"optuna-moo-{optuna.__version__}.jsonl")
    done = {}
    if os.path.exists(path) and not fresh:
        with open(path) as fh:
            for line in fh:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed run: that study runs again
                if key(r) not in done or trials_of(r) > trials_of(done[key(r)]):
                    done[key(r)] = r
    # A cached study of at least as many trials answers a job (its first checkpoints).
    todo = [j for j in jobs if j[:3] not in done or trials_of(done[j[:3]]) < j[3]]
    print(f"optuna {optuna.__version__}: {len(jobs) - len(todo)} studies cached in {path}, {len(todo)} to run "
          f"({njobs} at once)", file=sys.stderr)
    if cached_only:
        return [done[j[:3]] for j in jobs if j not in todo], optuna.__version__
    if todo:
        import multiprocessing

        start = time.time()
        with open(path, "a") as fh, multiprocessing.Pool(njobs) as pool:
            for k, r in enumerate(pool.imap_unordered(optuna_study, todo, chunksize=1)):
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                done[key(r)] = r
                print(f"  {k + 1}/{len(todo)} {r['strategy']} {r['problem']} seed {r['seed']}: "
                      f"{r['cpu']:.1f} s CPU, {time.time() - start:.0f} s so far", file=sys.stderr)
    return [done[j[:3]] for j in jobs], optuna.__version__


def run_ours(args, seeds):
    head = [args.ours_bin] if args.ours_bin else ["cargo", "bench", "--bench", "search_moo", "--"]
    cmd = head + ["--json", "--seeds", str(seeds.start), "--nseeds", str(len(seeds)),
                  "--problems", args.problems, "--strategies", args.strategies]
    print("  " + " ".join(cmd), file=sys.stderr)
    res = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


# ---- the table ----

def bootstrap(a, b, boot=BOOT):
    """The 90% interval of median(a) / median(b), each side resampled on its own."""
    import random

    rng = random.Random(12345)
    rs = []
    for _ in range(boot):
        x = statistics.median(rng.choice(a) for _ in a)
        y = statistics.median(rng.choice(b) for _ in b)
        rs.append(x / y if y > 0 else math.inf)
    rs.sort()
    return rs[int(0.05 * boot)], rs[int(0.95 * boot) - 1]


def report(rows, problems, strategies, version, seeds):
    by = {}
    for r in rows:
        by.setdefault((r["strategy"], r["problem"]), []).append(r)
    print(f"\n## Median hypervolume ({TRIALS} trials, read at {', '.join(map(str, CHECKPOINTS))}; "
          f"seeds {seeds.start}..{seeds.stop - 1}; optuna {version})\n")
    print("| problem | reference | strategy | " + " | ".join(f"@{c}" for c in CHECKPOINTS)
          + " | CPU s per study (trials) |")
    print("|---|---|---|" + "---:|" * (len(CHECKPOINTS) + 1))
    med, raw = {}, {}
    for p in problems:
        refs = DEFS[p][2]
        for ri, ref in enumerate(refs):
            for s in strategies:
                rs = by.get((s, p))
                if not rs:
                    continue
                # A checkpoint's median over the studies that reached it (n shown when not all).
                m, cells = [], []
                for ci in range(len(CHECKPOINTS)):
                    vs = [r["hv"][ci][ri] for r in rs if len(r["hv"]) > ci]
                    raw[(s, p, ri, ci)] = {r["seed"]: r["hv"][ci][ri] for r in rs if len(r["hv"]) > ci}
                    m.append(statistics.median(vs) if vs else None)
                    cells.append("" if not vs else f"{m[-1]:.4f}" + ("" if len(vs) == len(rs) else f" (n={len(vs)})"))
                med[(s, p, ri)] = m
                # CPU per study, over the longest studies (their trial count in brackets).
                longest = max(len(r["hv"]) for r in rs)
                full = [r["cpu"] for r in rs if len(r["hv"]) == longest]
                cpu = f"{statistics.median(full):.2f} ({CHECKPOINTS[longest - 1]})"
                ref_s = "(" + ", ".join(f"{v:g}" for v in ref) + ")"
                print(f"| {p} | {ref_s} | {s} | " + " | ".join(cells) + f" | {cpu} |")
    print("\n## Ours / Optuna's, median hypervolume ratio (>= 1: at or above Optuna) [90% seed-bootstrap "
          "interval]\n")
    print("| problem | reference | pair | " + " | ".join(f"@{c}" for c in CHECKPOINTS) + " |")
    print("|---|---|---|" + "---:|" * len(CHECKPOINTS))
    for p in problems:
        for ri, ref in enumerate(DEFS[p][2]):
            for ours, theirs in PAIRS:
                if not med.get((ours, p, ri)) or not med.get((theirs, p, ri)):
                    continue
                cells = []
                for ci in range(len(CHECKPOINTS)):
                    # Over the seeds both sides reached (n shown when not all of them).
                    ra, rb = raw.get((ours, p, ri, ci), {}), raw.get((theirs, p, ri, ci), {})
                    common = sorted(set(ra) & set(rb))
                    if not common:
                        cells.append("")
                        continue
                    xs, ys = [ra[k] for k in common], [rb[k] for k in common]
                    x, y = statistics.median(xs), statistics.median(ys)
                    n = "" if len(common) == len(seeds) else f" (n={len(common)})"
                    if y == 0:
                        cells.append(("-" if x == 0 else "inf") + n)
                    else:
                        lo, hi = bootstrap(xs, ys)
                        cells.append(f"{x / y:.3f} [{lo:.3f}, {hi:.3f}]{n}")
                ref_s = "(" + ", ".join(f"{v:g}" for v in ref) + ")"
                print(f"| {p} | {ref_s} | {ours} / {theirs} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=0, help="the first seed (0: report, 100: tuning)")
    ap.add_argument("--nseeds", type=int, default=10)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--samplers", default=",".join(SAMPLERS), help="Optuna's, comma-separated")
    ap.add_argument("--strategies", default="nsga2,tpe,random", help="ours, comma-separated")
    ap.add_argument("--optuna-trials", default="", help="per Optuna sampler, e.g. optuna-tpe=200 (default 500)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--optuna-only", action="store_true", help="fill the cache, no table")
    ap.add_argument("--ours-bin", help="run this search_moo binary instead of `cargo bench --bench search_moo`")
    ap.add_argument("--ours-json", help="read our studies from these JSON-lines files (comma-separated) instead")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--cached-only", action="store_true", help="Optuna's side: only the cached studies, run none")
    args = ap.parse_args()
    ensure_venv()
    problems = args.problems.split(",")
    seeds = range(args.seeds, args.seeds + args.nseeds)
    cut = dict(kv.split("=") for kv in args.optuna_trials.split(",") if kv)
    jobs = [(s, p, seed, int(cut.get(s, TRIALS))) for s in args.samplers.split(",") for p in problems for seed in seeds]
    theirs, version = run_optuna(jobs, args.jobs, args.fresh, args.cached_only)
    if args.optuna_only:
        return
    if args.ours_json:
        ours = [json.loads(line) for f in args.ours_json.split(",") for line in open(f) if line.startswith("{")]
        ours = [r for r in ours if r["problem"] in problems and r["seed"] in seeds]
    else:
        ours = run_ours(args, seeds)
    strategies = args.strategies.split(",") + args.samplers.split(",")
    print(f"ours: {len(ours)} studies; Optuna's: {len(theirs)}", file=sys.stderr)
    report(ours + theirs, problems, strategies, version, seeds)


if __name__ == "__main__":
    main()
