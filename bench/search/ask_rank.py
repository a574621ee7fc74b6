#!/usr/bin/env python3
"""How good a strategy's asks are, read from the losses of its studies (RESULTS-gp.md
section 11): for each trial after the `--startup` random ones, the share of the earlier
trials with a lower loss (0: a new best; 0.5: as random search does on average), averaged
over the last `--window` trials before each check; per cell, the median over its studies,
beside the cell's median regret at 100 trials for this strategy and for `--versus`.

Needs `search_suite --json --losses` lines for the strategy and regret lines for the other.

    python3 bench/search/ask_rank.py GP.jsonl TPE.jsonl [--strategy gp] [--versus tpe]
        [--checks 30,40,50] [--window 20] [--startup 10]

`--credit NAME` instead prints, per cell and check, the median share of the probe asks and
of gp's asks that improved the best (the `credit` field that only the experiment binary of
commit 6b5e82d logs for `auto` studies).
"""
import argparse
import collections
import json
import statistics


def load(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.startswith("{")]


def ask_rank(losses, check, window, startup):
    ranks = [sum(1 for y in losses[:i] if y < losses[i]) / i for i in range(max(startup, check - window), check)]
    return sum(ranks) / len(ranks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("other", nargs="?")
    ap.add_argument("--strategy", default="gp")
    ap.add_argument("--versus", default="tpe")
    ap.add_argument("--checks", default="30,40,50")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--startup", type=int, default=10)
    ap.add_argument("--credit")
    a = ap.parse_args()
    checks = [int(c) for c in a.checks.split(",")]
    if a.credit:
        by = collections.defaultdict(list)
        for r in load(a.ours):
            if r["strategy"] == a.credit:
                by[r["problem"]].append(r)
        print("problem | " + " | ".join(f"probe/gp wins @{k}" for k in checks))
        for p in sorted(by):
            cells = []
            for k in checks:
                cs = [c["credit"] for r in by[p] for c in r["auto"]["checks"] if c["trials"] == k]
                if not cs:
                    cells.append("-")
                    continue
                probe = statistics.median(c[1] / max(c[0], 1) for c in cs)
                gp = statistics.median(c[3] / max(c[2], 1) for c in cs)
                cells.append(f"{probe:.2f}/{gp:.2f}")
            print(f"{p} | " + " | ".join(cells))
        return
    ours = collections.defaultdict(list)
    for r in load(a.ours):
        if r["strategy"] == a.strategy:
            ours[r["problem"]].append(r)
    other = collections.defaultdict(list)
    for r in load(a.other) if a.other else []:
        if r["strategy"] == a.versus:
            other[r["problem"]].append(max(r["regret"][2], 1e-8))
    rows = []
    for p, rs in ours.items():
        mine = statistics.median(max(r["regret"][2], 1e-8) for r in rs)
        theirs = statistics.median(other[p]) if other[p] else float("nan")
        ranks = [statistics.median(ask_rank(r["losses"], k, a.window, a.startup) for r in rs) for k in checks]
        rows.append((mine / theirs, p, mine, theirs, ranks))
    rows.sort()
    print(f"problem | {a.strategy}/{a.versus} @100 | " + " | ".join(f"ask rank @{k}" for k in checks))
    for ratio, p, mine, theirs, ranks in rows:
        print(f"{p} | {ratio:.3g} | " + " | ".join(f"{x:.2f}" for x in ranks))


if __name__ == "__main__":
    main()
