#!/usr/bin/env python3
"""`auto` against the better of `gp` and `tpe`, per cell (RESULTS-gp.md section 7, issue 21).

Reads the JSON lines of `search_suite --json` (one study per line; several files may be
given). A cell is a problem at a budget; its figure is the median regret over the problem's
instances and seeds. For each cell: the medians of gp, tpe and auto, and
auto / min(gp, tpe) (ratios of max(regret, 1e-8)); then, per budget, the aggregates of the
criterion fixed before tuning: the cells within 1.5x, the geometric mean of the ratios and
the worst cell. Also, per cell, how many of auto's studies handed over to tpe and the median
trial count of the hand-over (the `auto` field of an auto study's line).

    python3 bench/search/auto_table.py tune.jsonl [more.jsonl ...] [--auto auto-x0] [--budgets 25,50,100]

`--oracle OTHER.jsonl` (gp and tpe studies of the same problems on other seeds) adds the
criterion's resolution: an oracle that runs, per cell, whichever of gp and tpe has the lower
median here, measured on OTHER's studies, against the same min(gp, tpe). It always picks
right, so what it misses by 1.5x is the noise of medians of this many studies (and of taking
the min of two of them); `auto`'s count is read against it. Given gp and tpe lines only (no
`auto`), it scores the oracle alone: `auto_table.py OTHER.jsonl --oracle tune.jsonl` reads it
the other way round.

`--signals NAME` instead prints, per cell, the GP fit checks of strategy NAME's studies (an
`auto-x<k>` that never hands over logs every check of a pure gp run): the median noise share
and leave-one-out rank correlation at each check, and whether gp or tpe was better at 100
trials; `--rule noise=0.5,rank=0.2,first=20` adds, per cell, the share of studies such a rule
would hand over (and at which check), from those logged checks. `--checks 30,50,70,90` picks the
check counts shown (20, 30, 50 by default). Besides the noise share, rank, lpd and longest
length, the columns and rule keys include `gain` (the local GP's rank minus the global one near
the best; a rule hands over above it) and `ripple` (the local GP's shortest length over the
radius of its trials; a rule hands over below it, read as the median of the last `over`
checks).
"""
import json
import math
import random
import statistics
import sys

FLOOR = 1e-8
CHECKPOINTS = (25, 50, 100, 200)
MARGIN = 1.5


def load(paths):
    rows = []
    for path in paths:
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def cells(rows):
    by = {}
    for r in rows:
        by.setdefault((r["problem"], r["strategy"]), []).append(r)
    return by


def order(problems):
    def key(p):
        if p.startswith("bbob-f"):
            f, d = p[len("bbob-f"):].split("-d")
            return (0, int(d), int(f), p)
        return (1, 0, 0, p)
    return sorted(problems, key=key)


def med(rs, at):
    return statistics.median(r["regret"][at] for r in rs)


def ratio(a, b):
    return max(a, FLOOR) / max(b, FLOOR)


def interval(studies, at, draws=2000, seed=0):
    """A bootstrap 90 % interval of auto / min(gp, tpe) for one cell: each strategy's
    studies resampled with replacement, `draws` times (seeded, so the figures repeat)."""
    rng = random.Random(seed)
    regrets = [[r["regret"][at] for r in rs] for rs in studies]
    qs = []
    for _ in range(draws):
        g, t, a = (statistics.median(rng.choices(v, k=len(v))) for v in regrets)
        qs.append(ratio(a, min(g, t)))
    qs.sort()
    return qs[int(0.05 * draws)], qs[int(0.95 * draws) - 1]


def oracle(by, other, problems, at):
    """The oracle's cells: per cell, the strategy with the lower median in `by` (its pick),
    and the ratio of its median on `other`'s studies over min(gp, tpe) in `by`."""
    out = []
    for p in problems:
        if not all((p, s) in by and (p, s) in other for s in ("gp", "tpe")):
            continue
        g, t = med(by[(p, "gp")], at), med(by[(p, "tpe")], at)
        pick = "gp" if g <= t else "tpe"
        out.append((ratio(med(other[(p, pick)], at), min(g, t)), p, pick))
    return out


def table(rows, auto, budgets, other=None):
    by = cells(rows)
    # Without `auto` lines (an oracle read the other way round: gp and tpe alone), every
    # cell with gp.
    problems = order({p for p, s in by if s == auto} or {p for p, s in by if s == "gp"})
    for budget in budgets:
        at = CHECKPOINTS.index(budget)
        print(f"\n| problem @{budget} | studies | gp | tpe | {auto} | {auto} / min(gp, tpe) | handed over | median trial |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        qs = []
        for p in problems:
            if not all((p, s) in by for s in ("gp", "tpe", auto)):
                continue
            g, t, a = (med(by[(p, s)], at) for s in ("gp", "tpe", auto))
            q = ratio(a, min(g, t))
            qs.append((q, p))
            switched = [r["auto"]["switch"] for r in by[(p, auto)] if r.get("auto", {}).get("switch")]
            n = len(by[(p, auto)])
            when = f"{statistics.median(switched):.0f}" if switched else ""
            flag = "" if q <= MARGIN else " **over**"
            print(f"| {p} | {n} | {g:.3g} | {t:.3g} | {a:.3g} | {q:.2f}{flag} | {len(switched)}/{n} | {when} |")
        summary(qs, auto, budget)
        if other:
            ob = cells(other)
            oq = oracle(by, ob, problems, at)
            summary([(q, p) for q, p, _ in oq], "oracle (other seeds)", budget)
            sure = [p for q, p, pick in oq
                    if q > MARGIN and interval([by[(p, "gp")], by[(p, "tpe")], ob[(p, pick)]], at)[0] > MARGIN]
            print(f"  oracle surely over (bootstrap 90 % interval above {MARGIN}): {', '.join(sure) or 'none'}")
        # How sure each cell over the margin is: a bimodal cell (a peak found or not) can
        # flip its median with a few studies.
        for q, p in sorted(qs, reverse=True):
            if q > MARGIN:
                lo, hi = interval([by[(p, s)] for s in ("gp", "tpe", auto)], at)
                sure = "over the margin" if lo > MARGIN else "may be within the margin"
                print(f"  {p}: bootstrap 90 % interval of the ratio {lo:.2f}-{hi:.2f} ({sure})")


def summary(qs, auto, budget):
    if not qs:
        return
    gm = math.exp(sum(math.log(q) for q, _ in qs) / len(qs))
    within = sum(q <= MARGIN for q, _ in qs)
    worst = max(qs)
    over = ", ".join(f"{p} {q:.2f}x" for q, p in sorted(qs, reverse=True) if q > MARGIN)
    print(f"\n{auto} / min(gp, tpe) @{budget}: within {MARGIN}x in {within}/{len(qs)} cells "
          f"({100 * within / len(qs):.0f} %); geometric mean {gm:.3f}; worst {worst[1]} {worst[0]:.2f}x"
          + (f"; over: {over}" if over else ""))


def parse_rule(text):
    rule = {"noise": 9.0, "rank": -9.0, "lpd": -1e9, "len": -1.0, "gain": 9.0, "ripple": -1.0, "over": 1,
            "first": 20, "last": 1e9}
    for kv in text.split(","):
        k, v = kv.split("=")
        rule[k] = float(v)
    return rule


def ripple(c):
    """The local GP's shortest length against the radius of its trials (RESULTS-gp.md 14.4)."""
    return c["local_length"] / max(c["near_radius"], 1e-9)


def switch_at(checks, rule):
    for i, c in enumerate(checks):
        if c["trials"] < rule["first"] or c["trials"] > rule["last"]:
            continue
        # `ripple` reads the median over the last `over` checks (this one included).
        window = checks[max(0, i + 1 - int(rule["over"])):i + 1]
        ripples = [ripple(w) for w in window if "local_length" in w]
        if (c["noise_share"] > rule["noise"] or c["loo_rank"] < rule["rank"]
                or c["loo_density"] < rule["lpd"] or c["max_length"] < rule["len"]
                or c.get("local_rank", 0) - c.get("near_rank", 0) > rule["gain"]
                or (len(ripples) == len(window) and statistics.median(ripples) < rule["ripple"])):
            return c["trials"]
    return None


def derived(c):
    """A logged check with the local gain and the ripple ratio added, where it logs them."""
    c = dict(c)
    if "local_rank" in c:
        c["gain"] = c["local_rank"] - c["near_rank"]
    if "local_length" in c:
        c["ripple"] = ripple(c)
    return c


def signals(rows, name, rule, at_checks=(20, 30, 50)):
    by = cells(rows)
    problems = order({p for p, s in by if s == name})
    at = CHECKPOINTS.index(100)
    for p in problems:
        # A variant that never hands over runs gp's studies exactly (same strategy, same rng).
        by.setdefault((p, "gp"), by[(p, name)])
    ks = sorted({c["trials"] for r in rows if r["strategy"] == name for c in r["auto"]["checks"]})
    ks = [k for k in ks if k in at_checks]
    keys = (("noise_share", "noise"), ("loo_rank", "rank"), ("loo_density", "lpd"), ("max_length", "len"),
            ("gain", "gain"), ("ripple", "ripple"))
    head = " | ".join(f"{short}@{k}" for k in ks for _, short in keys)
    print(f"| problem | gp@100 | tpe@100 | better | {head} |" + (" rule hands over | at |" if rule else ""))
    print("|---|---:|---:|---|" + "---:|" * (len(keys) * len(ks)) + ("---:|---:|" if rule else ""))
    for p in problems:
        g = med(by[(p, "gp")], at) if (p, "gp") in by else float("nan")
        t = med(by[(p, "tpe")], at) if (p, "tpe") in by else float("nan")
        better = "tpe" if ratio(g, t) > MARGIN else ("gp" if ratio(t, g) > MARGIN else "~")
        line = [p, f"{g:.3g}", f"{t:.3g}", better]
        for k in ks:
            vals = [derived(c) for r in by[(p, name)] for c in r["auto"]["checks"] if c["trials"] == k]
            for key, _ in keys:
                got = [c[key] for c in vals if key in c]
                line.append(f"{statistics.median(got):.2f}" if got else "")
        if rule:
            sw = [switch_at(r["auto"]["checks"], rule) for r in by[(p, name)]]
            hit = [s for s in sw if s is not None]
            line.append(f"{len(hit)}/{len(sw)}")
            line.append(f"{statistics.median(hit):.0f}" if hit else "")
        print("| " + " | ".join(line) + " |")


def estimate(rows, name, rules, budget=100):
    """For each rule: auto's cells estimated from the logged checks (a study the rule hands
    over counts with tpe's study of the same instance and seed, one it keeps with gp's): a
    proxy to shortlist rules, which are then run (`auto-x<k>`)."""
    at = CHECKPOINTS.index(budget)
    by = cells(rows)
    tpe = {(r["problem"], r["instance"], r["seed"]): r["regret"][at] for r in rows if r["strategy"] == "tpe"}
    for text in rules:
        rule = parse_rule(text)
        qs = []
        for p in order({p for p, s in by if s == name}):
            studies = by[(p, name)]
            gp = [r["regret"][at] for r in studies]
            tp = [tpe[(p, r["instance"], r["seed"])] for r in studies]
            est = [t if switch_at(r["auto"]["checks"], rule) else g for r, g, t in zip(studies, gp, tp)]
            qs.append((ratio(statistics.median(est), min(statistics.median(gp), statistics.median(tp))), p))
        print(f"rule {text} (estimate):", end=" ")
        summary(qs, "auto", budget)


def main():
    args = sys.argv[1:]

    def opt(name, default=None):
        if name in args:
            i = args.index(name)
            v = args[i + 1]
            del args[i:i + 2]
            return v
        return default

    auto = opt("--auto", "auto")
    budgets = [int(b) for b in opt("--budgets", "25,50,100").split(",")]
    sig = opt("--signals")
    rule = opt("--rule")
    at_checks = [int(k) for k in opt("--checks", "20,30,50").split(",")]
    est = opt("--estimate")
    other = opt("--oracle")
    rows = load(args)
    if est:
        estimate(rows, sig or "auto-x0", est.split(";"))
    elif sig:
        signals(rows, sig, parse_rule(rule) if rule else None, at_checks)
    else:
        table(rows, auto, budgets, load([other]) if other else None)


if __name__ == "__main__":
    main()
