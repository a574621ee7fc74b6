#!/usr/bin/env python3
"""Compare GP variants cell by cell: median regret at 100 trials per (problem, strategy),
and each variant's ratio to a base strategy (default `gp`), with Optuna's studies beside
them when a cache file is given.

Reads `search_suite --json` lines (and optionally Optuna cache lines, the same shape,
restricted to the (problem, instance, seed) studies ours ran). A cell's figure is the
median over its studies; ratios use max(regret, 1e-8). Prints a markdown table and, per
variant, the geometric mean of its ratios to the base, how many cells are better / worse
by more than 5%, and the same against every Optuna strategy present.

Usage: python3 bench/search/gp_variants.py OURS.jsonl[,MORE.jsonl] [--optuna CACHE.jsonl]
       [--base gp] [--budget 100] [--matched] [--interval]

`FILE=TAG` appends `-TAG` to the strategies of FILE (`gp-old`), to compare two versions of
the code. Studies run K trials at once (`search_suite --parallel K`, a `parallel` field) count as the
strategy `NAME@pK` (`gp@p4`), so sequential and parallel runs can be compared in one table.

`--interval` adds, for every cell where a strategy is worse than the reference by more than
5%, a bootstrap 90 % interval of the ratio of medians (each side's studies resampled with
replacement, 2000 draws, seeded) and whether it is surely worse (the interval above 1).
"""

import argparse
import json
import math
import random
import statistics
from collections import defaultdict

CHECKPOINTS = [25, 50, 100, 200]


def load(paths):
    rows = []
    for spec in paths:
        # `FILE=TAG` names every strategy of FILE `NAME-TAG`, so runs of two versions of the
        # code compare in one table (`report-lf-merged.jsonl=old,report-lead.jsonl`).
        path, _, tag = spec.partition("=")
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                row = json.loads(line)
                # A study run K at a time (`search_suite --parallel K`) is its own strategy.
                if row.get("parallel", 1) > 1:
                    row["strategy"] += f"@p{row['parallel']}"
                if tag:
                    row["strategy"] += f"-{tag}"
                rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("--optuna")
    ap.add_argument("--base", default="gp")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--interval", action="store_true",
                    help="a bootstrap 90 % interval of each worse cell's ratio")
    ap.add_argument("--matched", action="store_true",
                    help="only the studies (problem, instance, seed) that Optuna's cache holds too")
    a = ap.parse_args()
    k = CHECKPOINTS.index(a.budget)
    ours = load(a.ours.split(","))
    studies = {(r["problem"], r.get("instance"), r["seed"]) for r in ours}
    rows = list(ours)
    if a.optuna:
        theirs = [r for r in load([a.optuna]) if (r["problem"], r.get("instance"), r["seed"]) in studies]
        rows += theirs
        if a.matched:
            have = {(r["problem"], r.get("instance"), r["seed"]) for r in theirs}
            rows = [r for r in rows if (r["problem"], r.get("instance"), r["seed"]) in have]
    cell = defaultdict(list)
    for r in rows:
        v = r["regret"][k]
        if v is not None:
            cell[(r["problem"], r["strategy"])].append(v)
    problems = sorted({p for p, _ in cell}, key=lambda p: (len(p), p))
    strategies = sorted({s for _, s in cell}, key=lambda s: (s != a.base, s.startswith("optuna"), s))
    med = {key: statistics.median(v) for key, v in cell.items()}
    print("| problem @%d | n | " % a.budget + " | ".join(strategies) + " |")
    print("|---|---:|" + "---:|" * len(strategies))
    for p in problems:
        n = len(cell.get((p, a.base), []))
        vals = ["%.3g" % med[(p, s)] if (p, s) in med else "-" for s in strategies]
        print(f"| {p} | {n} | " + " | ".join(vals) + " |")
    print()
    for ref in [a.base] + [s for s in strategies if s.startswith("optuna")]:
        for s in strategies:
            if s == ref:
                continue
            ratios = [max(med[(p, s)], 1e-8) / max(med[(p, ref)], 1e-8)
                      for p in problems if (p, s) in med and (p, ref) in med]
            if not ratios:
                continue
            gm = math.exp(sum(map(math.log, ratios)) / len(ratios))
            better = sum(r < 1 / 1.05 for r in ratios)
            worse = sum(r > 1.05 for r in ratios)
            print(f"{s} / {ref} @{a.budget}: geometric mean {gm:.3f} over {len(ratios)} cells; "
                  f"better {better}, worse {worse}, worst {max(ratios):.2f}x, best {min(ratios):.2f}x")
            if a.interval:
                for p in problems:
                    if (p, s) in med and (p, ref) in med and med[(p, s)] > 1.05 * max(med[(p, ref)], 1e-8):
                        lo, hi = interval(cell[(p, s)], cell[(p, ref)])
                        sure = "surely worse" if lo > 1 else "may be equal or better"
                        print(f"  {p}: {s} / {ref} {max(med[(p, s)], 1e-8) / max(med[(p, ref)], 1e-8):.2f}x, "
                              f"bootstrap 90 % interval {lo:.2f}-{hi:.2f} ({sure})")


def interval(xs, ys, draws=2000, seed=0):
    """A bootstrap 90 % interval of median(xs) / median(ys), floored at 1e-8."""
    rng = random.Random(seed)
    qs = sorted(max(statistics.median(rng.choices(xs, k=len(xs))), 1e-8)
                / max(statistics.median(rng.choices(ys, k=len(ys))), 1e-8) for _ in range(draws))
    return qs[int(0.05 * draws)], qs[int(0.95 * draws) - 1]


if __name__ == "__main__":
    main()
