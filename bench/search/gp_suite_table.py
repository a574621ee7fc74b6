#!/usr/bin/env python3
"""Per-cell table of the GP columns from suite.py's `--json` output (RESULTS-gp.md, issue 21).

For each problem (a cell: problem at BUDGET trials, the median regret over its instances and
seeds), the medians of gp, auto, tpe, optuna-gp and optuna-tpe, gp / optuna-gp and
auto / min(gp, tpe) (ratios of max(regret, 1e-8), as suite.py computes them), then the
aggregates: geometric mean of each ratio, cells within 1.5x (auto) and cells where gp is not
worse than optuna-gp (<= 1.05x, suite.py's rule).

Usage: python3 bench/search/gp_suite_table.py suite-d2.json [suite-d5.json ...] [--budget 100]
"""
import json
import math
import statistics
import sys

FLOOR = 1e-8
CHECKPOINTS = (25, 50, 100, 200)
AUTO_MARGIN = 1.5
NOT_WORSE = 1.05


def main():
    args = sys.argv[1:]
    budget = 100
    if "--budget" in args:
        i = args.index("--budget")
        budget = int(args[i + 1])
        del args[i:i + 2]
    at = CHECKPOINTS.index(budget)
    by = {}
    for path in args:
        with open(path) as fh:
            for r in json.load(fh)["rows"]:
                v = r["regret"][at] if len(r["regret"]) > at else None
                if v is not None:
                    by.setdefault((r["problem"], r["strategy"]), []).append(v)
    problems = sorted({p for p, _ in by}, key=lambda p: (len(p), p))
    cols = ("gp", "auto", "tpe", "optuna-gp", "optuna-tpe")
    r = lambda a, b: max(a, FLOOR) / max(b, FLOOR)
    print(f"| problem @{budget} | studies | " + " | ".join(cols) + " | gp / optuna-gp | auto / min(gp, tpe) |")
    print("|---|---:|" + "---:|" * (len(cols) + 2))
    gq, aq = [], []
    for p in problems:
        med = {s: statistics.median(by[(p, s)]) for s in cols if (p, s) in by}
        n = len(by.get((p, "gp"), []))
        line = [p, str(n)] + [f"{med[s]:.3g}" if s in med else "" for s in cols]
        if "gp" in med and "optuna-gp" in med:
            gq.append((r(med["gp"], med["optuna-gp"]), p))
            line.append(f"{gq[-1][0]:.2f}")
        else:
            line.append("")
        if all(s in med for s in ("auto", "gp", "tpe")):
            aq.append((r(med["auto"], min(med["gp"], med["tpe"])), p))
            line.append(f"{aq[-1][0]:.2f}" + ("" if aq[-1][0] <= AUTO_MARGIN else " **over**"))
        else:
            line.append("")
        print("| " + " | ".join(line) + " |")
    gmean = lambda qs: math.exp(sum(math.log(q) for q, _ in qs) / len(qs))
    if gq:
        print(f"\ngp / optuna-gp @{budget}: geometric mean {gmean(gq):.2f}; gp not worse (<= {NOT_WORSE}x) in "
              f"{sum(q <= NOT_WORSE for q, _ in gq)}/{len(gq)} cells; worst {max(gq)[1]} {max(gq)[0]:.2f}x, "
              f"best {min(gq)[1]} {min(gq)[0]:.2f}x")
    if aq:
        over = [f"{p} {q:.2f}x" for q, p in aq if q > AUTO_MARGIN]
        print(f"auto / min(gp, tpe) @{budget}: geometric mean {gmean(aq):.2f}; within {AUTO_MARGIN}x in "
              f"{sum(q <= AUTO_MARGIN for q, _ in aq)}/{len(aq)} cells" + (f"; over: {', '.join(over)}" if over else ""))


if __name__ == "__main__":
    main()
