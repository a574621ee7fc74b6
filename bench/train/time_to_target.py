#!/usr/bin/env python3
"""Time to 0.97 test accuracy on digits: `bma run examples/digits.bma` vs Optuna + PyTorch
running the same search (bench/train/optuna_digits.py: same space, 60 trials, 2 at once, TPE,
successive halving from 2 epochs with eta 3, 30 epochs, params <= 60k), alternating, REPS
seeds each.

    python3 bench/train/time_to_target.py [REPS]      (default 3)

Makes its own virtualenv (target/bench-venv: torch, optuna) and builds bma in release.
bma runs twice per seed: the example as shipped (`maximize accuracy`, `minimize latency`: a
two-objective search) and the same file with the objective block reduced to what the Optuna
script optimises (`maximize accuracy`, `require params <= 60k`), so that one row compares the
same search problem.
Reported per run:
  * first_097_s: when the first finished trial whose model reaches 0.97 test accuracy
    finished, by the tool's own clock (bma: from the start of its study; Optuna's script:
    after its imports and data loading); first_097_launch_s: the same moment measured from
    the launch of the process (what a user waits: Python, torch and bma start-up included). Optuna's script measures test accuracy inside each trial. bma never looks at
    the test split during a search, so here every finished trial's saved model
    (`<out>/trials/<n>`) is evaluated after the run with `bma eval` and matched with the
    time its "complete" line was printed (`--progress plain`).
  * total_s: the whole run. For bma this includes building the final model (the example's
    softmax ensemble), its test evaluation and writing the reports; Optuna's ends with
    `study.optimize`.
  * delivered test accuracy: bma's final model; Optuna's best trial by valid accuracy.
Also the peak RSS of each process (`/usr/bin/time -f %M`).
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "target/bench-venv"
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
TARGET = 0.97


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def venv_python():
    py = VENV / "bin/python"
    ok = py.exists() and subprocess.run([py, "-c", "import torch, optuna"], capture_output=True).returncode == 0
    if not ok:
        sh([sys.executable, "-m", "venv", VENV])
        pip = [VENV / "bin/pip", "install", "-q"]
        if subprocess.run(pip + ["torch", "--index-url", "https://download.pytorch.org/whl/cpu"]).returncode != 0:
            sh(pip + ["torch"])
        sh(pip + ["optuna"])
    return py


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (stdout lines with arrival times, wall s, peak KiB)."""
    rss_file = tempfile.NamedTemporaryFile(delete=False)
    start = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-o", rss_file.name, "-f", "%M"] + [str(c) for c in cmd],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
    proc.wait()
    wall = time.perf_counter() - start
    rss = int(Path(rss_file.name).read_text().split()[-1])
    os.unlink(rss_file.name)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n" + "\n".join(l for _, l in lines[-20:]))
    return lines, wall, rss


def accuracy_only(tmp):
    """examples/digits.bma with the objective Optuna's script optimises: accuracy alone."""
    text = (ROOT / "examples/digits.bma").read_text()
    start = text.index("  objective {")
    end = text.index("}", start) + 1
    text = text[:start] + "  objective {\n    maximize accuracy\n    require params <= 60k\n  }" + text[end:]
    path = tmp / "digits_accuracy.bma"
    path.write_text(text)
    # Its `use std::blocks` resolves from the standard library, wherever the file is.
    return path


def bma_run(seed, file, tool):
    out = Path(tempfile.mkdtemp(prefix="bma-ttt-"))
    bma = ROOT / "target/release/bma"
    lines, wall, rss = timed([bma, "run", file, "--out", out, "--progress", "plain", "--seed", seed])
    done = []  # (elapsed printed by bma, arrival since launch, trial)
    for arrived, line in lines:
        m = re.match(r"\[\s*([0-9.]+)s\] trial (\d+) complete", line)
        if m:
            done.append((float(m.group(1)), arrived, int(m.group(2))))
    first = first_launch = None
    for elapsed, arrived, trial in sorted(done):
        ev = subprocess.run([bma, "eval", out / "trials" / str(trial), "--split", "test"], capture_output=True,
                            text=True, check=True).stdout
        acc = float(re.search(r"^\s*accuracy\s+([0-9.]+)", ev, re.M).group(1))
        if acc >= TARGET:
            first, first_launch = elapsed, arrived
            break
    results = json.loads((out / "results.json").read_text())
    final = results.get("final") or {}
    delivered = (final.get("final_test") or {}).get("accuracy")
    shutil.rmtree(out)
    return {"tool": tool, "seed": seed, "total_s": wall, "first_097_s": first, "first_097_launch_s": first_launch,
            "finished": len(done), "delivered_test": delivered, "peak_mib": rss / 1024}


def optuna_run(py, seed):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    lines, wall, rss = timed([py, ROOT / "bench/train/optuna_digits.py", 60, 2, "tpe", seed], env=env)
    summary = json.loads([l for _, l in lines if '"summary"' in l][-1])
    first_launch = None
    for arrived, line in lines:
        if line.startswith("{") and '"trial"' in line and json.loads(line)["test"] >= TARGET:
            first_launch = arrived
            break
    return {"tool": "optuna+pytorch", "seed": seed, "total_s": wall, "first_097_s": summary["first_test_0.97_s"],
            "first_097_launch_s": first_launch, "finished": summary["finished"],
            "delivered_test": summary["best_test"], "peak_mib": rss / 1024}


def main():
    sh(["cargo", "build", "--release", "-q"], cwd=ROOT)
    py = venv_python()
    tmp = Path(tempfile.mkdtemp(prefix="bma-ttt-files-"))
    single = accuracy_only(tmp)
    tools = ("bma", "bma (accuracy only)", "optuna+pytorch")
    runs = []
    for rep in range(REPS):
        seed = rep + 1
        order = [lambda: bma_run(seed, ROOT / "examples/digits.bma", tools[0]),
                 lambda: bma_run(seed, single, tools[1]),
                 lambda: optuna_run(py, seed)]
        if rep % 2 == 1:
            order.reverse()  # alternate who runs first on a machine whose load drifts
        for fn in order:
            r = fn()
            runs.append(r)
            print(json.dumps(r), flush=True)
    shutil.rmtree(tmp)
    print()
    print(f"| tool | runs | first finished trial >= {TARGET} test, median s (own clock) | same, from launch "
          "| runs reaching it | whole run (s), median | delivered model's test accuracy, median | peak RSS (MiB), max |")
    print("|---|---|---|---|---|---|---|---|")

    def med(xs):
        return f"{statistics.median(xs):.1f}" if xs else "never"

    for tool in tools:
        rs = [r for r in runs if r["tool"] == tool]
        hits = [r["first_097_s"] for r in rs if r["first_097_s"] is not None]
        launch = [r["first_097_launch_s"] for r in rs if r["first_097_launch_s"] is not None]
        acc = [r["delivered_test"] for r in rs if r["delivered_test"] is not None]
        print(f"| {tool} | {len(rs)} | {med(hits)} | {med(launch)} | {len(hits)}/{len(rs)} | "
              f"{statistics.median(r['total_s'] for r in rs):.1f} | "
              f"{statistics.median(acc):.4f} | {max(r['peak_mib'] for r in rs):.0f} |")


if __name__ == "__main__":
    main()
