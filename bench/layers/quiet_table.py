"""The summary table of bench/layers/quiet.sh: reads its runs.jsonl (one JSON line per run with
`bench`, `side`, `round`, `epoch_times`, `epoch_cpu`, `peak_rss_mib`) and prints, per benchmark
and side, the medians over rounds of wall and CPU seconds per epoch (the mean of epochs 2.. when
a run has more than one, else the one epoch), the peak RSS, and the ratios to PyTorch: of the
medians (wall, CPU) and per round (CPU, bma's run against PyTorch's of the same round)."""
import json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]


def per_epoch(r, key):
    v = r[key][1:] if len(r[key]) > 1 else r[key]
    return statistics.mean(v)


table = {}
for r in runs:
    table.setdefault(r["bench"], {}).setdefault(r["side"], {})[r["round"]] = r

print("| benchmark | side | rounds | s/epoch wall | s/epoch CPU | peak RSS MiB | wall / PyTorch | CPU / PyTorch | CPU / PyTorch per round |")
print("|---|---|---|---|---|---|---|---|---|")
for bench, sides in table.items():
    torch = sides.get("pytorch", {})
    tw = statistics.median(per_epoch(r, "epoch_times") for r in torch.values()) if torch else None
    tc = statistics.median(per_epoch(r, "epoch_cpu") for r in torch.values()) if torch else None
    for side, rounds in sides.items():
        w = statistics.median(per_epoch(r, "epoch_times") for r in rounds.values())
        c = statistics.median(per_epoch(r, "epoch_cpu") for r in rounds.values())
        rss = max(r["peak_rss_mib"] for r in rounds.values())
        if side == "pytorch" or tw is None:
            ratios = "| | |"
        else:
            per_round = ", ".join(
                f"{per_epoch(r, 'epoch_cpu') / per_epoch(torch[k], 'epoch_cpu'):.2f}"
                for k, r in sorted(rounds.items()) if k in torch)
            ratios = f"| {w / tw:.2f} | **{c / tc:.2f}** | {per_round}"
        print(f"| {bench} | {side} | {len(rounds)} | {w:.2f} | {c:.2f} | {rss:.0f} {ratios} |")
