#!/usr/bin/env python3
"""Each of gp, auto and tpe against the better of gp and tpe, over every cell (RESULTS-gp.md
section 8): how many cells are within 1.5x of min(gp, tpe), the geometric mean of the ratios
and the worst cell, at 50 and 100 trials. The `gp` row is what `auto` would score without its
hand-over (an `auto` that never hands over runs gp study for study, section 7).

    python3 bench/search/auto_summary.py FILE.jsonl     # lines of `search_suite --json` with gp, tpe, auto
"""
import json
import math
import statistics
import sys
from collections import defaultdict

FLOOR = 1e-8
MARGIN = 1.5


def main():
    rows = defaultdict(list)
    with open(sys.argv[1]) as fh:
        for line in fh:
            if line.startswith("{"):
                r = json.loads(line)
                rows[(r["problem"], r["strategy"])].append(r["regret"])
    problems = sorted({p for p, _ in rows})
    for index, budget in [(1, 50), (2, 100)]:
        for name in ("gp", "auto", "tpe"):
            within, logs, worst = 0, [], (0.0, "")
            for p in problems:
                med = {k: max(statistics.median(x[index] for x in rows[(p, k)]), FLOOR) for k in ("gp", "tpe", name)}
                ratio = med[name] / min(med["gp"], med["tpe"])
                within += ratio <= MARGIN
                logs.append(math.log(ratio))
                worst = max(worst, (ratio, p))
            print(f"@{budget} {name}: within {MARGIN}x of min(gp, tpe) in {within}/{len(problems)} cells, "
                  f"geometric mean {math.exp(sum(logs) / len(logs)):.3f}, worst {worst[1]} {worst[0]:.3g}x")


if __name__ == "__main__":
    main()
