#!/usr/bin/env python3
"""Where each strategy's asks fall on the attractive sector (BBOB f6; RESULTS-gp.md section
11.1): per cell and strategy, over trials 31-100 (after the GP's first few fits), the median
share of asks with every rotated coordinate on its gentle side (`gentle`), the median
distance to the optimum `|z|` of those gentle asks (`|z| asks`), and the median `|z|` of the
best trial at 100 trials (`|z| best`). Reads `search_suite --json --points --losses` lines (their
`sector` and `losses` fields).

    python3 bench/search/sector.py F6.jsonl   # search_suite --json --points --losses ... --problems bbob-f6-d2,bbob-f6-d5
"""
import collections
import json
import statistics
import sys


def main():
    by = collections.defaultdict(list)
    for path in sys.argv[1:]:
        with open(path) as fh:
            for line in fh:
                r = json.loads(line)
                if "sector" in r:
                    by[(r["problem"], r["strategy"])].append(r)
    print("| cell | strategy | studies | gentle asks, trials 31-100 | |z| of those asks | |z| of the best at 100 | median regret @100 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (p, s), rs in sorted(by.items()):
        share, dist, best = [], [], []
        for r in rs:
            late = r["sector"][30:100]
            gentle = [z for steep, z in late if steep == 0]
            share.append(len(gentle) / len(late))
            if gentle:
                dist.append(statistics.median(gentle))
            losses = r["losses"][:100]
            best.append(r["sector"][min(range(len(losses)), key=losses.__getitem__)][1])
        regret = statistics.median(r["regret"][2] for r in rs)
        print(f"| {p} | {s} | {len(rs)} | {statistics.median(share):.2f} | {statistics.median(dist):.2f} "
              f"| {statistics.median(best):.3f} | {regret:.3g} |")


if __name__ == "__main__":
    main()
