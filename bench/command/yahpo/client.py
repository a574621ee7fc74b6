"""A bma command trial (protocol 1) for LCBench: stdlib only, so it starts fast (`python3 -S`).

Takes: the configuration as `--name value` pairs in argv (bma's {placeholders}), or, when argv
has none, from BMA_PARAMS; the task from YAHPO_TASK and the server's socket from YAHPO_SOCKET
(both set by lcbench.sh, inherited through bma).
Gives: one `{"step": e, "val_accuracy": v}` line per epoch 1..52 (so a pruner can act) and the
final `{"val_accuracy": v52}`. Any error: a message on stderr and exit 1 (bma fails the trial).
"""
import json
import os
import socket
import sys


def main():
    args = sys.argv[1:]
    if args:
        if len(args) % 2 or not all(a.startswith("--") for a in args[::2]):
            sys.exit(f"client.py: expected --name value pairs, got {args}")
        cfg = {k[2:]: float(v) for k, v in zip(args[::2], args[1::2])}
    else:
        path = os.environ.get("BMA_PARAMS")
        if not path:
            sys.exit("client.py: no --name value arguments and no BMA_PARAMS")
        with open(path) as f:
            cfg = json.load(f)
    task, sock_path = os.environ.get("YAHPO_TASK"), os.environ.get("YAHPO_SOCKET")
    if not task or not sock_path:
        sys.exit("client.py: YAHPO_TASK and YAHPO_SOCKET must be set (lcbench.sh sets them)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock_path)
        s.sendall((json.dumps({"task": task, "config": cfg}) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("client.py: the surrogate server closed the connection")
            buf += chunk
    reply = json.loads(buf)
    if "error" in reply:
        sys.exit(f"client.py: surrogate: {reply['error']}")
    curve = reply["curve"]
    out = sys.stdout
    for e, v in enumerate(curve, start=1):
        out.write(json.dumps({"step": e, "val_accuracy": v}) + "\n")
    out.write(json.dumps({"val_accuracy": curve[-1]}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
