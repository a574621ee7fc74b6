#!/usr/bin/env python3
"""The broad search suite: our strategies beside Optuna 5.0 on BBOB and mixed spaces.

Problems (the same on both sides; ours in bench/search/bbob.rs and
bench/search/problems.rs, run by `cargo bench --bench search_suite`):
- the 24 noiseless BBOB functions of COCO in 2, 5, 10 and 20 dimensions on [-5, 5]^d,
  several instances (Optuna's side evaluates them with COCO's own `cocoex`);
- mixed and conditional spaces: int-quad (4 floats, 4 ints), cat-rastrigin
  (3 categoricals of 5, 3 floats), conditional (a `model` choice and its own
  parameters, log-scaled floats among them), and the five of bench/search/RESULTS.md
  (branin, hartmann6, rosenbrock10, ackley10, mixed).

Each study runs 200 trials; the regret (best value so far minus the optimum) is read at
25, 50, 100 and 200 trials. A cell is (problem, budget); its figure is the median
regret over every (instance, seed) of the split. The two splits, fixed:
- tune:   BBOB instances 1 and 2, seeds 0..9; the other problems seeds 0..9;
- report: BBOB instances 3, 4 and 5, seeds 100..109; the other problems seeds
  1000..1009 (the five's earlier tuning used seeds 100..309, so not those).

"Not worse" (ours against optuna-tpe in a cell): our median regret <= 1.05 x
Optuna's, or both below 1e-8. Ratios use max(regret, 1e-8) on both sides. The
aggregate: the fraction of cells not worse, the geometric mean of the median-regret
ratios, and the worst cell.

Against each Optuna sampler that ran (TPE, CMA-ES) the same aggregate, over the cells
where it ran (CMA-ES: float-only spaces).

Optuna's side (TPESampler() and, on spaces with floats only, CmaEsSampler(); seeded
with the seed) is cached per (sampler, problem, instance, seed) in
$SUITE_CACHE/optuna-<version>.jsonl (default target/suite-cache), one JSON line per
study holding the regret at the four budgets; a study in the cache is not run again
(--fresh ignores the cache). Runs `--jobs` studies at once (default 2).

Usage (from the repository root):
    VENV=target/suite-venv python3 bench/search/suite.py [--split report|tune]
        [--dims 2,5,10,20] [--functions 1-24] [--no-extra] [--optuna-only]
        [--strategies tpe,random] [--nseeds 10] [--jobs 2] [--fresh] [--json FILE]
        [--samplers optuna-tpe,optuna-cmaes,optuna-gp] [--trials 200] [--optuna-trials 200]
        [--ours-bin BIN | --ours-json FILE,...]
--optuna-trials runs Optuna's uncached studies that long (regret past it: none); a cached study is
reused if it reaches every budget within it. --ours-json reads ours from `search_suite --json` output.
optuna-gp (GPSampler, GP_TRIALS trials, needs torch in $VENV) runs where at most GP_MAX_PARAMS
floats are searched; with `auto`, `gp` and `tpe` among ours, the output adds auto / min(gp, tpe)
per cell (AUTO_MARGIN), and gp / optuna-gp.
VENV defaults to target/suite-venv, made with the pinned packages below when missing.
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
PINS = ["optuna==5.0.0", "coco-experiment==2.8.2", "cmaes==0.12.0"]
CACHE_DIR = os.path.abspath(os.environ.get("SUITE_CACHE") or os.path.join(ROOT, "target", "suite-cache"))

TRIALS = 200
# Optuna's GPSampler runs this many trials (its cost per trial grows as the cube of the trials).
GP_TRIALS = 100
# Parameters up to which Optuna's GPSampler is run (where `auto` would pick our `gp`).
GP_MAX_PARAMS = 8
CHECKPOINTS = (25, 50, 100, 200)
DIMS = (2, 5, 10, 20)
SPLITS = {
    "tune": {"instances": (1, 2), "seeds": range(0, 10), "other_seeds": range(0, 10)},
    "report": {"instances": (3, 4, 5), "seeds": range(100, 110), "other_seeds": range(1000, 1010)},
}
NOT_WORSE = 1.05
FLOOR = 1e-8
NAMES = [
    "sphere", "ellipsoid", "rastrigin", "bueche-rastrigin", "linear-slope", "attractive-sector",
    "step-ellipsoid", "rosenbrock", "rosenbrock-rotated", "ellipsoid-rotated", "discus", "bent-cigar",
    "sharp-ridge", "different-powers", "rastrigin-rotated", "weierstrass", "schaffers-f7",
    "schaffers-f7-ill", "griewank-rosenbrock", "schwefel", "gallagher-101", "gallagher-21", "katsuura",
    "lunacek",
]


def ensure_venv():
    sys.path.insert(0, HERE)
    import bench_venv

    bench_venv.ensure(VENV, "import optuna, cocoex, cmaes; assert optuna.__version__ == '5.0.0'", PINS, __file__)


# ---- BBOB's optimum value (COCO's 2009 legacy generator; bench/search/bbob.rs has the same) ----

def _unif(n, seed):
    seed = max(abs(seed), 1)

    def step(s):
        t = s // 127773
        s = 16807 * (s - t * 127773) - 2836 * t
        return s + 2147483647 if s < 0 else s

    table = [0] * 32
    for i in range(39, -1, -1):
        seed = step(seed)
        if i < 32:
            table[i] = seed
    cur, out = table[0], []
    for _ in range(n):
        seed = step(seed)
        t = cur // 67108865
        cur = table[t]
        table[t] = seed
        r = cur / 2.147483647e9
        out.append(r if r != 0 else 1e-99)
    return out


def _gauss1(seed):
    u = _unif(2, seed)
    g = math.sqrt(-2 * math.log(u[0])) * math.cos(2 * math.pi * u[1])
    return g if g != 0 else 1e-99


def bbob_fopt(f, instance):
    base = {4: 3, 18: 17}.get(f, f)
    s = base + 10000 * instance
    return min(1000.0, max(-1000.0, math.floor(100 * 100 * _gauss1(s) / _gauss1(s + 1) + 0.5) / 100))


# ---- the other problems (same definitions as bench/search/problems.rs) ----

def other_problems():
    sys.path.insert(0, HERE)
    import run  # the five: same definitions as benches/search_quality.rs

    five = [(name, space, f, opt) for name, space, f, opt in run.PROBLEMS]

    def int_quad(p):
        f = sum((i + 1) * (p[f"x{i}"] - (1.1 + 0.37 * i)) ** 2 for i in range(4))
        f += sum(0.5 * (j + 1) * (p[f"n{j}"] - (3 - 2 * j)) ** 2 for j in range(4))
        return f + (p["x0"] - 1.1) * (p["x1"] - 1.47)

    letters = ["a", "b", "c", "d", "e"]

    def cat_rastrigin(p):
        shift = [0.5, -1.2, 2.1]
        f = 0.0
        for k in range(3):
            f += 0.7 * ((letters.index(p[f"c{k}"]) + 2 * k) % 5)
            z = p[f"x{k}"] - shift[k]
            f += z * z + 2 * (1 - math.cos(2 * math.pi * z))
        return f

    int_quad_space = [(f"x{i}", "float", -5.0, 5.0) for i in range(4)] + [(f"n{j}", "int", -10, 10) for j in range(4)]
    cat_space = [(f"c{k}", "cat", letters, None) for k in range(3)] + [(f"x{i}", "float", -5.0, 5.0) for i in range(3)]
    return [("int-quad", int_quad_space, int_quad, 0.0), ("cat-rastrigin", cat_space, cat_rastrigin, 0.0),
            ("conditional", "conditional", None, 0.0)] + five


def conditional(trial):
    model = trial.suggest_categorical("model", ["linear", "tree", "net"])
    if model == "linear":
        return 0.8 + 0.5 * (math.log10(trial.suggest_float("reg", 1e-4, 1.0, log=True)) + 2) ** 2
    if model == "tree":
        depth = trial.suggest_int("depth", 1, 12)
        leaf = trial.suggest_float("leaf", 0.0, 1.0)
        return 0.4 + 0.1 * (depth - 7) ** 2 + (leaf - 0.3) ** 2
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    width = trial.suggest_int("width", 3, 8)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    return (math.log10(lr) + 3) ** 2 + 0.2 * (width - 6) ** 2 + 4 * (dropout - 0.1) ** 2


# ---- one Optuna study (run in a worker process) ----

def optuna_study(job, trials=None):
    """One study of `trials` trials (default TRIALS; optuna-gp at most GP_TRIALS)."""
    sampler_name, problem, instance, seed = job
    import optuna

    sys.path.insert(0, HERE)
    from run import suggest  # the five's space format: the same suggest as bench/search/run.py

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = trials or TRIALS
    if sampler_name == "optuna-tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif sampler_name == "optuna-gp":
        import torch

        torch.set_num_threads(1)  # as ours runs: one thread per study
        sampler = optuna.samplers.GPSampler(seed=seed)
        trials = min(trials, GP_TRIALS)  # its cost grows as the cube of the trials
    else:
        sampler = optuna.samplers.CmaEsSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    if problem.startswith("bbob-"):
        import cocoex

        f, d = (int(v[1:]) for v in problem.split("-")[1:3])
        suite = cocoex.Suite("bbob", f"instances: {instance}", f"dimensions: {d}")
        coco = suite.get_problem_by_function_dimension_instance(f, d, instance)
        opt = bbob_fopt(f, instance)

        def evaluate(t):
            return float(coco([t.suggest_float(f"x{i}", -5.0, 5.0) for i in range(d)]))
    else:
        name, space, fn, opt = next(p for p in other_problems() if p[0] == problem)
        if space == "conditional":
            evaluate = conditional
        else:
            def evaluate(t):
                return fn(suggest(t, space))
    start = time.process_time()
    best, regret = math.inf, []
    for n in range(1, trials + 1):
        t = study.ask()
        y = evaluate(t)
        study.tell(t, y)
        best = min(best, y)
        if n in CHECKPOINTS:
            regret.append(best - opt)
    regret += [None] * (len(CHECKPOINTS) - len(regret))  # budgets past `trials`: not run
    return {"strategy": sampler_name, "problem": problem, "instance": instance, "seed": seed, "regret": regret,
            "cpu": time.process_time() - start}


def key(r):
    return (r["strategy"], r["problem"], r["instance"], r["seed"])


def covers(r, trials):
    """Whether cached study `r` has the regret at every checkpoint within `trials` (or what its sampler runs)."""
    if r["strategy"] == "optuna-gp":
        trials = min(trials, GP_TRIALS)
    return all(v is not None for c, v in zip(CHECKPOINTS, r["regret"]) if c <= trials)


def run_optuna(jobs, njobs, fresh, trials=TRIALS):
    """Optuna's studies for `jobs`; a cached study that covers `trials` is not run again (a study run
    here runs `trials` trials, so it has no regret past them)."""
    import functools

    import optuna

    os.makedirs(CACHE_DIR, exist_ok=True)
    path = os.path.join(CACHE_DIR, f"optuna-{optuna.__version__}.jsonl")
    done = {}
    if os.path.exists(path) and not fresh:
        with open(path) as fh:
            for line in fh:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed run: that study runs again
                old = done.get(key(r))
                if old is None or sum(v is not None for v in r["regret"]) >= sum(
                        v is not None for v in old["regret"]):
                    done[key(r)] = r
    todo = [j for j in jobs if j not in done or not covers(done[j], trials)]
    print(f"optuna {optuna.__version__}: {len(jobs) - len(todo)} studies cached in {path}, {len(todo)} to run "
          f"({njobs} at once)", file=sys.stderr)
    if todo:
        import multiprocessing

        start = time.time()
        with open(path, "a") as fh, multiprocessing.Pool(njobs) as pool:
            for k, r in enumerate(pool.imap_unordered(functools.partial(optuna_study, trials=trials), todo, chunksize=1)):
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                done[key(r)] = r
                if (k + 1) % 50 == 0:
                    print(f"  {k + 1}/{len(todo)} studies, {time.time() - start:.0f} s", file=sys.stderr)
    return [done[j] for j in jobs]


def run_ours(args, problems, instances, seeds, other_seeds):
    head = [args.ours_bin] if args.ours_bin else ["cargo", "bench", "--bench", "search_suite", "--"]
    cmd = head + ["--json", "--strategies", args.strategies,
           "--trials", str(args.trials), "--instances", ",".join(map(str, instances)),
           "--seeds", f"{seeds.start}..{seeds.stop}", "--other-seeds", f"{other_seeds.start}..{other_seeds.stop}",
           "--problems", ",".join(problems)]
    print("  " + " ".join(cmd), file=sys.stderr)
    res = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def read_ours(paths, problems, split, strategies):
    """Ours from `search_suite --json` output files: the studies of `split` on `problems` by `strategies`."""
    rows = []
    for path in paths:
        with open(path) as fh:
            for line in fh:
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                if r["strategy"] not in strategies or r["problem"] not in problems:
                    continue
                bbob = r["problem"].startswith("bbob-")
                if bbob and (r["instance"] not in split["instances"] or r["seed"] not in split["seeds"]):
                    continue
                if not bbob and r["seed"] not in split["other_seeds"]:
                    continue
                rows.append(r)
    return rows


# ---- the tables ----

def median(v):
    return statistics.median(v)


def ratio(a, b):
    return max(a, FLOOR) / max(b, FLOOR)


def not_worse(a, b):
    return a <= NOT_WORSE * b or (a < FLOOR and b < FLOOR)


def cells(rows):
    """(strategy, problem) -> median regret at each checkpoint, over instances and seeds (None past
    the budget a study ran)."""
    by = {}
    for r in rows:
        regret = list(r["regret"]) + [None] * (len(CHECKPOINTS) - len(r["regret"]))
        by.setdefault((r["strategy"], r["problem"]), []).append(regret)
    return {k: [median([v[i] for v in vs]) if all(v[i] is not None for v in vs) else None
                for i in range(len(CHECKPOINTS))] for k, vs in by.items()}


def fmt(v):
    return f"{v:.3g}"


AUTO_MARGIN = 1.5


def pairs(med, problems):
    """`auto` against the better of `gp` and `tpe` in each cell (issue 21: within AUTO_MARGIN), and
    `gp` against Optuna's GPSampler, where those columns were run."""
    def ratios(name, num, den):
        rows = []
        for p in problems:
            a = med.get((num, p))
            bs = [med.get((d, p)) for d in den]
            if not a or any(b is None for b in bs):
                continue
            for i, c in enumerate(CHECKPOINTS):
                if a[i] is None or any(b[i] is None for b in bs):
                    continue
                rows.append((p, c, ratio(a[i], min(b[i] for b in bs))))
        if not rows:
            return
        print(f"\n## {name}\n")
        for c in CHECKPOINTS:
            rc = [r for r in rows if r[1] == c]
            if not rc:
                continue
            worst = max(rc, key=lambda r: r[2])
            over = [f"{p} {q:.2f}x" for p, _, q in rc if q > AUTO_MARGIN]
            g = math.exp(sum(math.log(q) for _, _, q in rc) / len(rc))
            print(f"- @{c}: {sum(q <= AUTO_MARGIN for _, _, q in rc)}/{len(rc)} cells within {AUTO_MARGIN}x, "
                  f"geometric mean {g:.2f}, worst {worst[0]} {worst[2]:.2f}x" + (f"; over: {', '.join(over)}" if over else ""))

    ratios("auto / min(gp, tpe)", "auto", ("gp", "tpe"))
    ratios("gp / optuna-gp", "gp", ("optuna-gp",))
    ratios("tpe / optuna-tpe", "tpe", ("optuna-tpe",))


def report(rows, problems, ours_names, out_json):
    med = cells(rows)
    print(f"\n## Median regret ({TRIALS} trials; ours / optuna-tpe in brackets; * = worse than optuna-tpe)\n")
    strategies = list(ours_names) + [s for s in ("optuna-tpe", "optuna-cmaes", "optuna-gp")
                                     if any(k[0] == s for k in med)]
    print("| problem | " + " | ".join(f"{s} @{c}" for s in strategies for c in CHECKPOINTS) + " |")
    print("|---|" + "---:|" * (len(strategies) * len(CHECKPOINTS)))
    for p in problems:
        line = [p]
        ref = med.get(("optuna-tpe", p))
        for s in strategies:
            m = med.get((s, p))
            for i in range(len(CHECKPOINTS)):
                if m is None or m[i] is None:
                    line.append("")
                    continue
                cell = fmt(m[i])
                if s in ours_names and ref and ref[i] is not None:
                    cell += f" ({ratio(m[i], ref[i]):.2f})" + ("" if not_worse(m[i], ref[i]) else "*")
                line.append(cell)
        print("| " + " | ".join(line) + " |")
    for peer in ("optuna-tpe", "optuna-cmaes"):
        if any(k[0] == peer for k in med):
            aggregate(med, problems, ours_names, peer)
    pairs(med, problems)
    if out_json:
        with open(out_json, "w") as fh:
            json.dump({"rows": rows}, fh)


def aggregate(med, problems, ours_names, peer):
    """The aggregate of ours against one Optuna sampler, over the cells where both ran."""
    summary = {}
    for s in ours_names:
        for i, c in enumerate(CHECKPOINTS):
            rs, ok, worst = [], 0, (0.0, "")
            for p in problems:
                m, ref = med.get((s, p)), med.get((peer, p))
                if not m or not ref or m[i] is None or ref[i] is None:
                    continue
                q = ratio(m[i], ref[i])
                rs.append(q)
                ok += not_worse(m[i], ref[i])
                worst = max(worst, (q, p))
            if rs:
                summary[(s, c)] = (ok, len(rs), math.exp(sum(map(math.log, rs)) / len(rs)), worst)
    print(f"\n## Aggregate against {peer} (cells: one per problem)\n")
    print("| strategy | budget | cells not worse | geometric mean of ratios | worst cell |")
    print("|---|---:|---:|---:|---|")
    for (s, c), (ok, n, g, worst) in summary.items():
        print(f"| {s} | {c} | {ok}/{n} ({100 * ok / n:.0f}%) | {g:.2f} | {worst[1]} {worst[0]:.2f}x |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=SPLITS, default="report")
    ap.add_argument("--dims", default=",".join(map(str, DIMS)))
    ap.add_argument("--functions", default="1-24", help="BBOB functions: ranges and numbers, e.g. 1-5,8,10-12")
    ap.add_argument("--no-extra", action="store_true", help="BBOB only")
    ap.add_argument("--optuna-only", action="store_true", help="fill the cache, no table")
    ap.add_argument("--no-cmaes", action="store_true")
    ap.add_argument("--samplers", default="optuna-tpe,optuna-cmaes",
                    help=f"Optuna's side; optuna-gp (GPSampler, {GP_TRIALS} trials) runs on BBOB in at most "
                         f"{GP_MAX_PARAMS} dimensions, branin and hartmann6")
    ap.add_argument("--trials", type=int, default=TRIALS, help="trials per study of ours")
    ap.add_argument("--optuna-trials", type=int, default=TRIALS,
                    help="trials per Optuna study not in the cache (fewer: cheaper, no regret past them)")
    ap.add_argument("--strategies", default="tpe", help="ours, as `strategy =` values, comma-separated")
    ap.add_argument("--nseeds", type=int, default=10, help="the first N seeds of the split")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--ours-bin", help="run this search_suite binary instead of `cargo bench --bench search_suite`")
    ap.add_argument("--ours-json", help="read ours from these files (`,`-separated; lines of `search_suite --json`) "
                                        "instead of running it; only the split's studies are kept")
    ap.add_argument("--json", help="write every study's regrets here")
    args = ap.parse_args()
    ensure_venv()

    split = dict(SPLITS[args.split])
    for k in ("seeds", "other_seeds"):
        split[k] = range(split[k].start, split[k].start + min(args.nseeds, len(split[k])))
    functions = []
    for part in args.functions.split(","):
        lo, _, hi = part.partition("-")
        functions += [f for f in range(int(lo), int(hi or lo) + 1) if f not in functions]
    dims = [int(d) for d in args.dims.split(",")]
    bbob = [f"bbob-f{f}-d{d}" for d in dims for f in functions]
    others = [] if args.no_extra else [p[0] for p in other_problems()]
    continuous = set(bbob) | {"branin", "hartmann6", "rosenbrock10", "ackley10"}
    samplers = [s for s in args.samplers.split(",") if s and not (args.no_cmaes and s == "optuna-cmaes")]
    small = {p for p in bbob if int(p.rsplit("-d", 1)[1]) <= GP_MAX_PARAMS} | {"branin", "hartmann6"}
    jobs = []
    for s in samplers:
        for p in bbob + others:
            if s == "optuna-cmaes" and p not in continuous:
                continue
            if s == "optuna-gp" and p not in small:
                continue
            if p.startswith("bbob-"):
                jobs += [(s, p, i, seed) for i in split["instances"] for seed in split["seeds"]]
            else:
                jobs += [(s, p, 0, seed) for seed in split["other_seeds"]]
    theirs = run_optuna(jobs, args.jobs, args.fresh, args.optuna_trials)
    if args.optuna_only:
        return
    if args.ours_json:
        ours = read_ours(args.ours_json.split(","), set(bbob + others), split, set(args.strategies.split(",")))
    else:
        ours = run_ours(args, bbob + others, split["instances"], split["seeds"], split["other_seeds"])
    print(f"\nsplit {args.split}: BBOB instances {list(split['instances'])}, seeds {split['seeds'].start}.."
          f"{split['seeds'].stop - 1}; other problems seeds {split['other_seeds'].start}..{split['other_seeds'].stop - 1}")
    report(ours + theirs, bbob + others, sorted({r["strategy"] for r in ours}), args.json)


if __name__ == "__main__":
    main()
