#!/usr/bin/env python3
"""`bma predict` throughput against PyTorch and onnxruntime running the same network.

Usage: bench.py BMA WORK ROWS ROUNDS THREADS   (run.sh calls it after training the models)

For each model in WORK (mlp, cnn: a run folder with best/ and the export
`best-raw.onnx` + `best-raw.samples.npz`, written by `bma export --fold-scaling`):
  - the inputs: the test split's unscaled rows from the samples, tiled to ROWS rows,
    written as a CSV of numbers for `bma predict`;
  - PyTorch: the same network built here from best/model.safetensors and best/model.json
    (the layouts as docs/predict.md states them), the standardisation of the saved
    preprocessing applied first, eval mode, no autograd, batches of 256 (bma's default);
  - onnxruntime: the exported graph (standardisation folded in), batches of 256;
  - correctness first: PyTorch's and onnxruntime's probabilities must be within 1e-4 of
    bma predict's on every row, else the script stops;
  - then ROUNDS rounds alternating the three (the order turning each round): bma predict as a process (wall and
    user+sys CPU from wait4, the CSV read and written included; also its time on one row,
    the start-up), PyTorch and onnxruntime in this process (wall: perf_counter; CPU:
    process_time), all on THREADS threads (RAYON_NUM_THREADS for bma's pool,
    torch.set_num_threads, intra_op_num_threads).
Prints one table row per model, system and round, then the medians, as Markdown.
"""
import json
import os
import statistics
import struct
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import torch

BATCH = 256


def safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(body[a:b], dtype="<f4").copy().reshape(info["shape"]))
    return out


class Net(torch.nn.Module):
    """The plan's steps in order (a chain), for the layer kinds the two bench models use."""

    def __init__(self, plan, w):
        super().__init__()
        self.steps = []
        for op in plan["ops"]:
            kind, name = op["kind"], op["name"]
            if kind == "input":
                continue
            if isinstance(kind, dict) and "dense" in kind:
                lin = torch.nn.Linear(*w[name + ".weight"].shape)
                lin.weight.data = w[name + ".weight"].t().contiguous()  # bma: [in, out]
                lin.bias.data = w[name + ".bias"]
                self.steps.append(lin)
            elif isinstance(kind, dict) and "conv2d" in kind:
                c = kind["conv2d"]
                weight = w[name + ".weight"]
                conv = torch.nn.Conv2d(
                    weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride=c.get("stride", 1)
                )
                pad = c.get("pad") or c.get("padding")
                conv.weight.data = weight
                conv.bias.data = w[name + ".bias"]
                # bma resolves padding to explicit sides [top, bottom, left, right].
                self.steps.append(torch.nn.ZeroPad2d((pad[2], pad[3], pad[0], pad[1])))
                self.steps.append(conv)
            elif kind == "batch_norm":
                c = w[name + ".weight"].shape[0]
                bn = torch.nn.BatchNorm2d(c) if len(op["shape"]) == 3 else torch.nn.BatchNorm1d(c)
                bn.weight.data, bn.bias.data = w[name + ".weight"], w[name + ".bias"]
                bn.running_mean.data, bn.running_var.data = w[name + ".running_mean"], w[name + ".running_var"]
                self.steps.append(bn)
            elif kind == "relu":
                self.steps.append(torch.nn.ReLU())
            elif kind == "flatten":
                self.steps.append(torch.nn.Flatten())
            elif kind == "global_avg_pool":
                self.steps.append(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()))
            elif isinstance(kind, dict) and "max_pool" in kind:
                p = kind["max_pool"]
                self.steps.append(torch.nn.MaxPool2d(p["kernel"], p.get("stride", p["kernel"])))
            else:
                raise SystemExit(f"bench.py does not build `{kind}`")
        self.seq = torch.nn.Sequential(*self.steps)
        self.shape = plan["ops"][0]["shape"]

    def forward(self, x):
        return torch.softmax(self.seq(x.reshape([-1] + self.shape)), dim=1)


def torch_run(net, x, mean, std):
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), BATCH):
            xb = torch.from_numpy(x[i : i + BATCH])
            outs.append(net((xb - mean) / std).numpy())
    return np.concatenate(outs)


def ort_run(session, x):
    return np.concatenate([session.run(["output"], {"input": x[i : i + BATCH]})[0] for i in range(0, len(x), BATCH)])


def bma_run(bma, model, rows_csv, out_csv, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [bma, "predict", model, rows_csv, "--proba", "--out", out_csv], env=env, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bma predict failed: {err}")
    return wall, usage.ru_utime + usage.ru_stime


def timed(f):
    w0, c0 = time.perf_counter(), time.process_time()
    r = f()
    return r, time.perf_counter() - w0, time.process_time() - c0


def main():
    bma, work, rows, rounds, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    table = []
    for name in ["mlp", "cnn"]:
        best = os.path.join(work, name, "best")
        samples = np.load(os.path.join(work, name, "best-raw.samples.npz"))
        base = samples["input"].astype(np.float32)
        x = np.ascontiguousarray(np.tile(base, (rows // len(base) + 1, 1))[:rows])
        rows_csv = os.path.join(work, name, "rows.csv")
        np.savetxt(rows_csv, x, delimiter=",", fmt="%.9g")
        one_csv = os.path.join(work, name, "one.csv")
        np.savetxt(one_csv, x[:1], delimiter=",", fmt="%.9g")
        out_csv = os.path.join(work, name, "predicted.csv")
        manifest = json.load(open(os.path.join(best, "model.json")))
        pre = manifest["config"]["preprocess"]
        f = x.shape[1]
        mean = torch.tensor(np.broadcast_to(np.array(pre["mean"], np.float32), (f,)).copy())
        std = torch.tensor(np.broadcast_to(np.array(pre["std"], np.float32), (f,)).copy())
        net = Net(manifest["plan"], safetensors(os.path.join(best, "model.safetensors"))).eval()
        session = ort.InferenceSession(os.path.join(work, name, "best-raw.onnx"), opts, providers=["CPUExecutionProvider"])

        # Correctness: the three agree on every row.
        bma_run(bma, best, rows_csv, out_csv, threads)
        got = np.loadtxt(out_csv, delimiter=",", skiprows=1, usecols=range(2, 12), dtype=np.float64)
        for system, probs in [("pytorch", torch_run(net, x, mean, std)), ("onnxruntime", ort_run(session, x))]:
            diff = float(np.max(np.abs(probs - got)))
            print(f"{name}: max |{system} - bma predict| = {diff:.3g} over {rows} rows", flush=True)
            if diff > 1e-4:
                raise SystemExit(f"{name}: {system} disagrees with bma predict ({diff})")

        def run_bma(r):
            wall, cpu = bma_run(bma, best, rows_csv, out_csv, threads)
            w1, c1 = bma_run(bma, best, one_csv, out_csv + ".one", threads)
            table.append((name, "bma predict (process, CSV in and out)", r, wall, cpu, w1, c1))

        def run_torch(r):
            _, wall, cpu = timed(lambda: torch_run(net, x, mean, std))
            table.append((name, "PyTorch (in process)", r, wall, cpu, None, None))

        def run_ort(r):
            _, wall, cpu = timed(lambda: ort_run(session, x))
            table.append((name, "onnxruntime (in process)", r, wall, cpu, None, None))

        # The order turns each round, so no system always runs first (or after another).
        systems = [run_bma, run_torch, run_ort]
        for r in range(rounds):
            for run in systems[r % 3 :] + systems[: r % 3]:
                run(r)
            print(f"{name}: round {r + 1} of {rounds} done", flush=True)

    print()
    print(f"| model | system | round | wall s | CPU s | rows/s (wall) | rows/s (CPU) | 1 row: wall / CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, system, r, wall, cpu, w1, c1 in table:
        one = f"{w1:.3f} / {c1:.3f}" if w1 is not None else ""
        print(f"| {name} | {system} | {r + 1} | {wall:.3f} | {cpu:.3f} | {rows / wall:,.0f} | {rows / cpu:,.0f} | {one} |")
    print()
    print(f"Medians over {rounds} rounds, {rows} rows, {threads} thread(s), batches of {BATCH}:")
    print()
    print("| model | system | rows/s (wall) | rows/s (CPU) | start-up (1 row, wall) |")
    print("| --- | --- | --- | --- | --- |")
    for name in ["mlp", "cnn"]:
        for system in sorted({t[1] for t in table}):
            picked = [t for t in table if t[0] == name and t[1] == system]
            wall = statistics.median(t[3] for t in picked)
            cpu = statistics.median(t[4] for t in picked)
            one = statistics.median(t[5] for t in picked) if picked[0][5] is not None else None
            ones = f"{one:.3f} s" if one is not None else ""
            print(f"| {name} | {system} | {rows / wall:,.0f} | {rows / cpu:,.0f} | {ones} |")


if __name__ == "__main__":
    main()
