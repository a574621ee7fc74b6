#!/usr/bin/env python3
"""Search quality and overhead: Optuna's samplers beside ours, in one run.

Makes its own virtualenv (bench/search/.venv, with optuna), runs Optuna's TPE
(twice: its defaults, which in 5.0 are multivariate for one objective, and multivariate=True, group=True)
and random samplers on Branin, Hartmann6, Rosenbrock-10, Ackley-10 and a mixed
space, 100 trials x 10 seeds each, runs ours through `cargo bench --bench
search_quality -- --json`, and prints median simple regret at 25/50/100 trials
with the ratio ours/Optuna; then ask+tell overhead at 1,000 and 5,000 completed
trials in a 10-d space, in memory, for both, and ours with the SQLite store on
(`cargo bench --bench store`).

Then (or alone, with --moo) multi-objective: bench/search/moo.py (ZDT1, ZDT2, ZDT3 with
30 variables and DTLZ2 with 3 objectives, hypervolume at 100, 200 and 500 trials x 10
seeds, Optuna's NSGAIISampler and TPESampler beside ours from `cargo bench --bench
search_moo -- --json`: nsga2, tpe, random).

Or (--gp) Gaussian-process BO: Optuna's GPSampler beside our `gp`, `auto`, `tpe` and
random on Branin and Hartmann6 (100 trials x 10 seeds), with the time per trial.

Usage: python3 bench/search/run.py [--quick] [--fresh] [--moo] [--gp [--gp-seeds N]]   (from the repository root;
VENV=/path uses that virtualenv, which needs optuna, and for --gp torch and scipy)
--fresh reruns Optuna's studies instead of reading their cached results.
The functions and domains here are the same as in benches/search_quality.rs.
"""

import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.environ.get("VENV") or os.path.join(HERE, ".venv")
PY = os.path.join(VENV, "bin", "python")

TRIALS = 100
SEEDS = 10
CHECKPOINTS = (25, 50, 100)


def ensure_venv():
    sys.path.insert(0, HERE)
    import bench_venv

    bench_venv.ensure(VENV, "import optuna", ["optuna"], __file__)


# ---- the functions (same definitions as benches/search_quality.rs) ----

def branin(p):
    x, y = p["x"], p["y"]
    pi = math.pi
    return (y - 5.1 / (4 * pi * pi) * x * x + 5 / pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * pi)) * math.cos(x) + 10


A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
     [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(p):
    x = [p[f"x{i}"] for i in range(6)]
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))


def rosenbrock10(p):
    x = [p[f"x{i}"] for i in range(10)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(9))


def ackley10(p):
    x = [p[f"x{i}"] for i in range(10)]
    d = len(x)
    s1 = sum(v * v for v in x) / d
    s2 = sum(math.cos(2 * math.pi * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def mixed(p):
    """3 floats, 1 int, 1 categorical; minimum 0 at a=1, b=-2, c=0.5, n=7, kind=beta."""
    a, b, c, n = p["a"], p["b"], p["c"], p["n"]
    offset = {"alpha": 2.0, "beta": 0.0, "gamma": 1.0}[p["kind"]]
    return (a - 1) ** 2 + (b + 2) ** 2 + 4 * (c - 0.5) ** 2 + 0.3 * (n - 7) ** 2 + offset + 0.5 * (a - 1) * (b + 2)


def floats(d, lo, hi):
    return [(f"x{i}", "float", lo, hi) for i in range(d)]


PROBLEMS = [
    ("branin", [("x", "float", -5.0, 10.0), ("y", "float", 0.0, 15.0)], branin, 0.397887357729738),
    ("hartmann6", floats(6, 0.0, 1.0), hartmann6, -3.322368011391339),
    ("rosenbrock10", floats(10, -5.0, 10.0), rosenbrock10, 0.0),
    ("ackley10", floats(10, -32.768, 32.768), ackley10, 0.0),
    ("mixed", [("a", "float", -5.0, 5.0), ("b", "float", -5.0, 5.0), ("c", "float", 0.0, 1.0), ("n", "int", 0, 10),
               ("kind", "cat", ["alpha", "beta", "gamma"], None)], mixed, 0.0),
]


def suggest(trial, space):
    p = {}
    for name, kind, lo, hi in space:
        if kind == "float":
            p[name] = trial.suggest_float(name, lo, hi)
        elif kind == "int":
            p[name] = trial.suggest_int(name, lo, hi)
        else:
            p[name] = trial.suggest_categorical(name, lo)
    return p


def optuna_samplers(optuna):
    return [
        ("optuna-random", lambda s: optuna.samplers.RandomSampler(seed=s)),
        ("optuna-tpe", lambda s: optuna.samplers.TPESampler(seed=s)),
        ("optuna-tpe-mv", lambda s: optuna.samplers.TPESampler(seed=s, multivariate=True, group=True)),
    ]


def median(v):
    return statistics.median(v)


def run_optuna(optuna, seeds):
    out = []
    for name, space, f, opt in PROBLEMS:
        for sname, make in optuna_samplers(optuna):
            start = time.time()
            curves = []
            for s in range(seeds):
                study = optuna.create_study(sampler=make(s))
                best, curve = math.inf, []
                for _ in range(TRIALS):
                    t = study.ask()
                    y = f(suggest(t, space))
                    study.tell(t, y)
                    best = min(best, y)
                    curve.append(best)
                curves.append(curve)
            secs = time.time() - start
            regret = [median([c[k - 1] - opt for c in curves]) for k in CHECKPOINTS]
            print(f"  {name:<13} {sname:<14} {regret[2]:.4g} ({secs:.1f} s)", file=sys.stderr)
            out.append({"problem": name, "strategy": sname, "regret": regret, "seconds": secs})
    return out


def optuna_overhead(optuna, filled, reps):
    import random

    dists = {f"x{i}": optuna.distributions.FloatDistribution(-5.0, 5.0) for i in range(10)}
    rnd = random.Random(7)
    trials = []
    for _ in range(filled):
        params = {k: rnd.uniform(-5.0, 5.0) for k in dists}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists,
                                                value=sum(v * v for v in params.values())))
    out = {}
    for sname, kwargs in [("optuna-tpe", {}), ("optuna-tpe-mv", {"multivariate": True, "group": True})]:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, **kwargs))
        study.add_trials(trials)
        t = study.ask(dists)  # the first ask fills caches
        study.tell(t, 0.0)
        start = time.time()
        for _ in range(reps):
            t = study.ask(dists)
            study.tell(t, sum(v * v for v in t.params.values()))
        out[sname] = (time.time() - start) * 1e3 / reps
    return out


# ---- multi-objective: bench/search/moo.py (ZDT1-3, DTLZ2), in the same virtualenv ----

def moo(optuna):
    cmd = [sys.executable, os.path.join(HERE, "moo.py")] + (["--fresh"] if "--fresh" in sys.argv else [])
    print("  " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=ROOT, check=True, env=dict(os.environ, VENV=os.path.abspath(VENV)))


GP_PROBLEMS = ("branin", "hartmann6")


def run_optuna_gp(optuna, seeds):
    """Optuna's GPSampler (defaults) and TPESampler on GP_PROBLEMS, with time per trial; torch
    on one thread, as ours runs."""
    import torch

    torch.set_num_threads(1)
    out = []
    for name, space, f, opt in PROBLEMS:
        if name not in GP_PROBLEMS:
            continue
        for sname, make in [("optuna-gp", lambda s: optuna.samplers.GPSampler(seed=s)),
                            ("optuna-tpe", lambda s: optuna.samplers.TPESampler(seed=s))]:
            start, cpu0 = time.time(), time.process_time()
            curves = []
            for s in range(seeds):
                study = optuna.create_study(sampler=make(s))
                best, curve = math.inf, []
                for _ in range(TRIALS):
                    t = study.ask()
                    y = f(suggest(t, space))
                    study.tell(t, y)
                    best = min(best, y)
                    curve.append(best)
                curves.append(curve)
            secs, cpu = time.time() - start, time.process_time() - cpu0
            regret = [median([c[k - 1] - opt for c in curves]) for k in CHECKPOINTS]
            print(f"  {name:<13} {sname:<14} {regret[2]:.4g} ({secs:.1f} s)", file=sys.stderr)
            out.append({"problem": name, "strategy": sname, "regret": regret, "seconds": secs, "cpu": cpu,
                        "seeds": seeds, "per_seed": [c[TRIALS - 1] - opt for c in curves]})
    return out


def gp_seeds():
    """`--gp-seeds N`: seeds 0..N-1 (default SEEDS; 3 with --quick)."""
    if "--gp-seeds" in sys.argv:
        return int(sys.argv[sys.argv.index("--gp-seeds") + 1])
    return 3 if "--quick" in sys.argv else SEEDS


def gp(optuna):
    seeds = gp_seeds()
    cache = os.path.join(VENV, f"optuna-gp-{optuna.__version__}-{seeds}.json")
    if os.path.exists(cache) and "--fresh" not in sys.argv:
        with open(cache) as fh:
            theirs = json.load(fh)
    else:
        theirs = run_optuna_gp(optuna, seeds)
        with open(cache, "w") as fh:
            json.dump(theirs, fh)
    ours = run_ours(["--strategies", "gp,auto,tpe,random", "--nseeds", str(seeds)] + list(GP_PROBLEMS))["quality"]
    rows = {(r["problem"], r["strategy"]): r for r in ours + theirs}
    print(f"\n## GP: median simple regret ({TRIALS} trials x {seeds} seeds 0..{seeds - 1}; optuna {optuna.__version__})\n")
    print("| function | strategy | @25 | @50 | @100 | / optuna-gp @100 | ms per trial (wall) | ms per trial (CPU) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in GP_PROBLEMS:
        ref = rows.get((name, "optuna-gp"))
        for s in ("gp", "auto", "tpe", "random", "optuna-gp", "optuna-tpe"):
            r = rows.get((name, s))
            if not r:
                continue
            reg = " | ".join(f"{v:.3g}" for v in r["regret"])
            ratio = fmt_ratio(r["regret"][2], ref["regret"][2]) if ref else ""
            per = 1e3 / (TRIALS * seeds)
            cpu = f"{r['cpu'] * per:.2f}" if "cpu" in r else ""
            print(f"| {name} | {s} | {reg} | {ratio} | {r['seconds'] * per:.2f} | {cpu} |")
    # Hartmann6 is bimodal (secondary basins at regret 0.119-0.454): how many seeds end above 0.01.
    for name in GP_PROBLEMS:
        for s in ("gp", "auto", "optuna-gp"):
            r = rows.get((name, s))
            if r and r.get("per_seed"):
                stuck = sum(v > 0.01 for v in r["per_seed"])
                print(f"{name} {s}: {stuck}/{len(r['per_seed'])} seeds above 0.01 regret at {TRIALS} trials")


def run_ours(extra=()):
    cmd = ["cargo", "bench", "--bench", "search_quality", "--", "--json", *extra]
    print("  " + " ".join(cmd), file=sys.stderr)
    res = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    line = [l for l in res.stdout.splitlines() if l.startswith("{")][-1]
    return json.loads(line)


def main():
    ensure_venv()
    import optuna
    if "--optuna-only" in sys.argv:
        cache = os.path.join(VENV, f"optuna-{optuna.__version__}-{SEEDS}.json")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with open(cache, "w") as fh:
            json.dump(run_optuna(optuna, SEEDS), fh)
        return

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if "--moo" in sys.argv:
        moo(optuna)
        return
    if "--gp" in sys.argv:
        gp(optuna)
        return
    quick = "--quick" in sys.argv
    print(f"optuna {optuna.__version__}; {TRIALS} trials x {SEEDS} seeds", file=sys.stderr)
    # Optuna's side does not change between runs of ours: kept in the venv unless --fresh.
    cache = os.path.join(VENV, f"optuna-{optuna.__version__}-{SEEDS}.json")
    if os.path.exists(cache) and "--fresh" not in sys.argv and not quick:
        with open(cache) as fh:
            theirs = json.load(fh)
    else:
        theirs = run_optuna(optuna, 3 if quick else SEEDS)
        if not quick:
            with open(cache, "w") as fh:
                json.dump(theirs, fh)
    ours = run_ours()
    rows = {(r["problem"], r["strategy"]): r for r in ours["quality"] + theirs}
    names = ["random", "tpe", "tpe-global", "tpe-optuna", "optuna-random", "optuna-tpe", "optuna-tpe-mv"]

    print(f"\n## Median simple regret ({TRIALS} trials x {SEEDS} seeds; optuna {optuna.__version__})\n")
    print("| function | strategy | @25 | @50 | @100 | ours/optuna-tpe @100 | ours/optuna-tpe-mv @100 | s (10 studies) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, *_ in PROBLEMS:
        for s in names:
            r = rows.get((name, s))
            if not r:
                continue
            ratio = ratio_mv = ""
            if s in ("random", "tpe", "tpe-global", "tpe-optuna"):
                ref = rows.get((name, "optuna-" + s.split("-")[0]))
                ratio = fmt_ratio(r["regret"][2], ref["regret"][2]) if ref else ""
                if s != "random":
                    ref = rows.get((name, "optuna-tpe-mv"))
                    ratio_mv = fmt_ratio(r["regret"][2], ref["regret"][2]) if ref else ""
            reg = " | ".join(f"{v:.4g}" for v in r["regret"])
            print(f"| {name} | {s} | {reg} | {ratio} | {ratio_mv} | {r['seconds']:.2f} |")

    print("\n## Overhead: ask + tell per trial, 10-d space, in memory\n")
    print("| completed trials | ours tpe (ms) | optuna tpe (ms) | optuna tpe multivariate (ms) |")
    print("|---:|---:|---:|---:|")
    for o in ours["overhead"]:
        reps = 20 if o["filled"] <= 1000 else 5
        theirs = optuna_overhead(optuna, o["filled"], reps)
        print(f"| {o['filled']} | {o['ms']:.3f} | {theirs['optuna-tpe']:.1f} | {theirs['optuna-tpe-mv']:.1f} |")

    print("\n## Overhead with the SQLite store (`cargo bench --bench store`, through TrialLoop::run)\n")
    print("Optuna TPE with SQLite, from the issue: 78 ms at 1,000 and 200 ms at 5,000 completed trials.\n")
    res = subprocess.run(["cargo", "bench", "--bench", "store"], cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    for line in res.stdout.splitlines():
        if line.startswith("|"):
            print(line)

    moo(optuna)


def fmt_ratio(a, b):
    if b == 0:
        return "inf" if a > 0 else "1"
    return f"{a / b:.2f}"


if __name__ == "__main__":
    main()
