"""Report metrics to bma from a command trial (protocol 1, docs/command-trials.md).

Optional: the protocol is only JSON lines on stdout. Copy this file next to your trainer.

    from bma_report import bma_report, bma_params
    p = bma_params()                       # the trial's point, from BMA_PARAMS
    for epoch in range(1, 11):
        bma_report(step=epoch, loss=...)   # an intermediate value: the pruner may stop you
    bma_report(accuracy=0.93, loss=0.21)   # the final metrics
"""
import json
import math
import os
import sys

PROTOCOL = 1


def bma_params():
    """The trial's parameters (a dict), or {} when not run by bma."""
    path = os.environ.get("BMA_PARAMS")
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def bma_report(step=None, **metrics):
    """Prints one report line: with `step`, an intermediate value; without, the final metrics."""
    line = {}
    if step is not None:
        if isinstance(step, bool) or int(step) != step or step < 0:
            raise ValueError(f"step must be a whole number from 0, not {step!r}")
        line["step"] = int(step)
    for name, value in metrics.items():
        value = float(value)
        # JSON has no NaN; the protocol reads the string "nan" as one (and fails the trial).
        line[name] = "nan" if math.isnan(value) else value
    sys.stdout.write(json.dumps(line, allow_nan=False) + "\n")
    sys.stdout.flush()
