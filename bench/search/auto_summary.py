#!/usr/bin/env python3
"""Each of gp, auto and tpe against the better of gp and tpe, over every cell (RESULTS-gp.md
section 8): how many cells are within 1.5x of min(gp, tpe), the geometric mean of the ratios
and the worst cell, at 50 and 100 trials. The `gp` row is what `auto` would score without its
hand-over (an `auto` that never hands over runs gp study for study, section 7). Cells, medians
and ratios are auto_table.py's.

    python3 bench/search/auto_summary.py FILE.jsonl [...]   # `search_suite --json` lines with gp, tpe, auto
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auto_table import CHECKPOINTS, MARGIN, cells, load, med, ratio  # noqa: E402


def main():
    by = cells(load(sys.argv[1:]))
    problems = sorted({p for p, s in by if all((p, k) in by for k in ("gp", "tpe", "auto"))})
    for budget in (50, 100):
        at = CHECKPOINTS.index(budget)
        for name in ("gp", "auto", "tpe"):
            qs = [(ratio(med(by[(p, name)], at), min(med(by[(p, "gp")], at), med(by[(p, "tpe")], at))), p)
                  for p in problems]
            within = sum(q <= MARGIN for q, _ in qs)
            geo = math.exp(sum(math.log(q) for q, _ in qs) / len(qs))
            worst = max(qs)
            print(f"@{budget} {name}: within {MARGIN}x of min(gp, tpe) in {within}/{len(qs)} cells, "
                  f"geometric mean {geo:.3f}, worst {worst[1]} {worst[0]:.3g}x")


if __name__ == "__main__":
    main()
