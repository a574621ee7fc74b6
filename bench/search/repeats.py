#!/usr/bin/env python3
"""How often a strategy asks again for a point it measured before (RESULTS-gp.md section 15).

Reads `search_suite --json --losses --points` lines. Per (problem, strategy) cell: the
median regret at the last budget, the repeated asks per study (a point equal to an earlier
trial's), and the share of studies in which more than K trials asked again for a point
measured worse than the best before them by trial N (what `auto`'s repeat rule counts,
without its "no new best in the last 10" condition). With `--tpe FILE`, each cell's ratio
of `tpe`'s median regret (from FILE's `tpe` lines) to this strategy's is printed beside it,
sorted by it.

    python3 bench/search/repeats.py gp-points.jsonl [--tpe tpe.jsonl] [--more 4] [--by 50]

Problems whose lines carry no point coordinates (`branin`, `mixed`: named parameters the
bench does not print) are left out.
"""
import argparse
import json
import statistics
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("--tpe")
    ap.add_argument("--more", type=int, default=4, help="K: more than K repeats of worse points")
    ap.add_argument("--by", type=int, default=50, help="N: counted over the first N trials")
    args = ap.parse_args()
    regret = defaultdict(list)
    repeated = defaultdict(list)
    fires = defaultdict(list)
    for line in open(args.ours):
        r = json.loads(line)
        points, losses = r["points"], r["losses"]
        if any(not p for p in points):
            continue
        key = (r["problem"], r["strategy"])
        regret[key].append(r["regret"][-1])
        seen = {}
        best = float("inf")
        again = worse = 0
        for i, (p, loss) in enumerate(zip(points, losses)):
            k = json.dumps(p)
            if k in seen:
                again += 1
                if seen[k] > best and i < args.by:
                    worse += 1
            else:
                seen[k] = loss
            best = min(best, loss)
        repeated[key].append(again)
        fires[key].append(worse > args.more)
    tpe = defaultdict(list)
    if args.tpe:
        for line in open(args.tpe):
            r = json.loads(line)
            if r["strategy"] == "tpe":
                tpe[r["problem"]].append(r["regret"][-1])
    rows = []
    for key in regret:
        med = statistics.median(regret[key])
        ratio = max(statistics.median(tpe[key[0]]), 1e-8) / max(med, 1e-8) if tpe.get(key[0]) else float("nan")
        share = sum(fires[key]) / len(fires[key])
        rows.append((ratio, key, med, statistics.mean(repeated[key]), share))
    rows.sort(key=lambda row: (row[0] if row[0] == row[0] else 0.0, row[1]))
    print(f"| problem | strategy | median regret | tpe / it | repeated asks per study | share with > {args.more} worse repeats by {args.by} |")
    print("|---|---|---:|---:|---:|---:|")
    for ratio, (problem, strategy), med, again, share in rows:
        print(f"| {problem} | {strategy} | {med:.3g} | {ratio:.3g} | {again:.1f} | {share:.2f} |")


if __name__ == "__main__":
    main()
