"""The LCBench surrogate of YAHPO Gym (lcbench scenario), loaded once, shared by both sides.

Takes: the yahpo_data folder (YAHPO_DATA) and a configuration of LCBench's 7 hyperparameters.
Gives: `curve(task, cfg)`, val_accuracy (percent) at epochs 1..52, from one batched call of
yahpo-gym's ONNX surrogate (noisy=False: deterministic), and `serve(socket_path)`, a Unix
socket server of the same function for the command-trial client (client.py).
Invariant: Optuna's side (bench.py) and bma's side (client.py -> serve) call the very same
`curve`, so the two sides see identical numbers for identical configurations.
"""
import contextlib
import json
import os
import socketserver
import sys
import threading

EPOCHS = 52
PARAMS = ["batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout"]
INTS = {"batch_size", "num_layers", "max_units"}

_bench = {}
_lock = threading.Lock()


def _set(task):
    if task not in _bench:
        from yahpo_gym import benchmark_set, local_config

        local_config.init_config()
        local_config.set_data_path(os.environ.get("YAHPO_DATA", "target/yahpo_data"))
        # yahpo-gym prints its citation request on stdout; keep stdout for results.
        with contextlib.redirect_stdout(sys.stderr):
            _bench[task] = benchmark_set.BenchmarkSet("lcbench", instance=str(task))
    return _bench[task]


def curve(task, cfg):
    """val_accuracy at epochs 1..52 for one configuration (a dict of the 7 parameters)."""
    missing = [p for p in PARAMS if p not in cfg]
    if missing:
        raise ValueError(f"configuration lacks {missing}")
    point = {p: (int(cfg[p]) if p in INTS else float(cfg[p])) for p in PARAMS}
    point["OpenML_task_id"] = str(task)
    rows = [dict(point, epoch=e) for e in range(1, EPOCHS + 1)]
    with _lock:
        out = _set(task).objective_function(rows)
    return [float(r["val_accuracy"]) for r in out]


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            try:
                req = json.loads(line)
                reply = {"curve": curve(req["task"], req["config"])}
            except Exception as e:  # the client reports it and fails the trial
                reply = {"error": f"{type(e).__name__}: {e}"}
            self.wfile.write((json.dumps(reply) + "\n").encode())
            self.wfile.flush()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(path, tasks):
    for t in tasks:  # load before announcing readiness
        _set(t)
    if os.path.exists(path):
        os.unlink(path)
    with _Server(path, _Handler) as srv:
        print("ready", flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: surrogate.py SOCKET TASK [TASK...]")
    serve(sys.argv[1], sys.argv[2:])
