"""The Optuna side, the random reference sample and the regret table of lcbench.sh.

Takes: a results folder OUT (lcbench.sh's), holding bma's run folders OUT/bma/<method>/<task>/<seed>/.
Gives (subcommands):
  optuna OUT TASK SEED TRIALS  -> OUT/optuna/{tpe,random}/<task>/<seed>.json (val_accuracy per trial,
                                  Optuna's TPESampler / RandomSampler with their defaults and seed=SEED,
                                  the surrogate called in-process: surrogate.curve, the same as bma's)
  sample OUT TASK N            -> OUT/sample/<task>.json (the best of N uniform points; log scales as
                                  the space says; numpy seed 0)
  table OUT TRIALS B1,B2,B3    -> OUT/table.md: regret = y* - best so far, y* = the best val_accuracy found
                                  by any method, any seed, or the sample; median [q1, q3] over seeds.
Invariant: a bma run's recorded best is evaluated again in-process and must agree with the value bma
recorded (the server and the in-process surrogate are one function); `table` stops otherwise.
"""
import glob
import json
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import surrogate  # noqa: E402

LOG = {"batch_size", "learning_rate", "max_units"}
RANGES = {
    "batch_size": (16, 512), "learning_rate": (1e-4, 1e-1), "momentum": (0.1, 0.99),
    "weight_decay": (1e-5, 1e-1), "num_layers": (1, 5), "max_units": (64, 1024), "max_dropout": (0.0, 1.0),
}


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def optuna_runs(out, task, seed, trials):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(t):
        cfg = {}
        for p, (lo, hi) in RANGES.items():
            if p in surrogate.INTS:
                cfg[p] = t.suggest_int(p, lo, hi, log=p in LOG)
            else:
                cfg[p] = t.suggest_float(p, lo, hi, log=p in LOG)
        return surrogate.curve(task, cfg)[-1]

    for name, sampler in [("tpe", optuna.samplers.TPESampler(seed=seed)),
                          ("random", optuna.samplers.RandomSampler(seed=seed))]:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=trials)
        values = [t.value for t in sorted(study.trials, key=lambda t: t.number)]
        _write(f"{out}/optuna/{name}/{task}/{seed}.json", {"optuna": optuna.__version__, "values": values})


def sample(out, task, n):
    import numpy as np

    rng = np.random.default_rng(0)
    cols = {}
    for p, (lo, hi) in RANGES.items():
        if p in LOG:
            x = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
        else:
            x = rng.uniform(lo, hi + (1 if p in surrogate.INTS else 0), n)
        cols[p] = np.clip(np.floor(x) if p == "num_layers" else x, lo, hi)
    rows = []
    for i in range(n):
        r = {p: (int(round(cols[p][i])) if p in surrogate.INTS else float(cols[p][i])) for p in RANGES}
        r.update(OpenML_task_id=str(task), epoch=surrogate.EPOCHS)
        rows.append(r)
    vals = [float(r["val_accuracy"]) for r in surrogate._set(task).objective_function(rows)]
    best = max(range(n), key=lambda i: vals[i])
    _write(f"{out}/sample/{task}.json", {"n": n, "best": vals[best], "best_config": rows[best]})


def _bma_values(run_dir, task):
    with open(f"{run_dir}/results.json") as f:
        res = json.load(f)
    if res["state"] != "finished":
        return None  # an interrupted run (lcbench.sh reruns it): not counted
    trials = sorted(res["trials"], key=lambda t: t["number"])
    bad = [t["number"] for t in trials if t["state"] != "complete"]
    if bad:
        sys.exit(f"{run_dir}: trials {bad} did not complete")
    best = res["best"]
    again = surrogate.curve(task, best["params"])[-1]
    if abs(again - best["metrics"]["val_accuracy"]) > 1e-3:
        sys.exit(f"{run_dir}: bma recorded {best['metrics']['val_accuracy']} for its best, in-process gives {again}")
    return [t["metrics"]["val_accuracy"] for t in trials]


def _q(xs):
    qs = statistics.quantiles(xs, n=4, method="inclusive")
    return qs[0], statistics.median(xs), qs[2]


def table(out, trials, budgets):
    runs = {}  # (method, task) -> {seed: values}
    unfinished = []
    for d in sorted(glob.glob(f"{out}/bma/*/*/*/results.json")):
        method, task, seed = d.split("/")[-4:-1]
        values = _bma_values(os.path.dirname(d), task)
        if values is None:
            unfinished.append(f"bma {method} task {task} seed {seed}")
            continue
        runs.setdefault((f"bma {method}", task), {})[int(seed)] = values
    for f in sorted(glob.glob(f"{out}/optuna/*/*/*.json")):
        method, task, seed = f.split("/")[-3], f.split("/")[-2], os.path.basename(f)[:-5]
        with open(f) as fh:
            runs.setdefault((f"optuna {method}", task), {})[int(seed)] = json.load(fh)["values"]
    tasks = sorted({t for _, t in runs}, key=int)
    methods = ["bma tpe", "bma subspace", "bma random", "optuna tpe", "optuna random"]
    lines = [f"| task | method | seeds | y* | " + " | ".join(f"regret @{b}: median [q1, q3]" for b in budgets) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in budgets) + " |"]
    med = {}
    for task in tasks:
        with open(f"{out}/sample/{task}.json") as fh:
            ystar = json.load(fh)["best"]
        ystar = max([ystar] + [max(v) for (m, t), s in runs.items() if t == task for v in s.values()])
        for m in methods:
            seeds = runs.get((m, task), {})
            if not seeds:
                continue
            short = [s for s, v in seeds.items() if len(v) < trials]
            if short:
                sys.exit(f"{m} task {task}: seeds {short} have fewer than {trials} trials")
            cells = []
            for b in budgets:
                reg = [ystar - max(v[:b]) for v in seeds.values()]
                q1, q2, q3 = _q(reg)
                med[(m, task, b)] = q2
                cells.append(f"{q2:.3f} [{q1:.3f}, {q3:.3f}]")
            lines.append(f"| {task} | {m} | {len(seeds)} | {ystar:.3f} | " + " | ".join(cells) + " |")
    lines.append("")
    if unfinished:
        lines.append(f"- not counted (interrupted, not finished): {', '.join(unfinished)}")
    for a, b in [("bma tpe", "optuna tpe"), ("bma subspace", "optuna tpe"), ("bma random", "optuna random")]:
        keys = [(t, bu) for t in tasks for bu in budgets if (a, t, bu) in med and (b, t, bu) in med]
        if not keys:
            continue
        wins = sum(med[(a, t, bu)] <= med[(b, t, bu)] for t, bu in keys)
        eps = 1e-6  # a median regret of exactly 0 would make the ratio undefined
        logs = [math.log(max(med[(a, t, bu)], eps) / max(med[(b, t, bu)], eps)) for t, bu in keys]
        lines.append(f"- {a} vs {b}: median regret not worse in {wins}/{len(keys)} task x budget cells; "
                     f"geometric mean of the ratio of median regrets ({a} / {b}): {math.exp(sum(logs) / len(logs)):.3f}")
    text = "\n".join(lines) + "\n"
    with open(f"{out}/table.md", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == "optuna":
        optuna_runs(out, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "sample":
        sample(out, sys.argv[3], int(sys.argv[4]))
    elif cmd == "table":
        table(out, int(sys.argv[3]), [int(b) for b in sys.argv[4].split(",")])
    else:
        sys.exit(f"unknown subcommand {cmd}")
