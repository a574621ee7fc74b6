#!/usr/bin/env python3
"""Time to first diagnostics and per keystroke of `bma lsp`, driven over JSON-RPC as an
editor drives it.

Two files: a generated 50 KB spec (many experiments, blocks and fns, like
benches/check.rs's) and the 2,000-parameter spec of benches/check.rs (`large_space`).
For each: the time from `didOpen` to the first `publishDiagnostics`, then keystrokes, each
a `didChange` with the whole text (as the server syncs) timed to its `publishDiagnostics`:
typing in a comment (the file stays clean) and typing `ensemble(top: 5,,` in a new
`average` section (the file has a syntax error: recovery, the rest analysed); typing a
comment inside the last experiment's model, then changing its number of trials in `search`
(the file stays clean; on the 2,000-parameter spec, timed both to the first diagnostics and
to those of the whole-space check, which the server publishes second when it checks the
space again, and with the first when it keeps the result); typing a layer's name as a new
statement in the last experiment's model, each keystroke a `didChange` followed at once by
a `completion` request there, timed from the change to the completion's answer.

Usage: bench/lsp/latency.py [path/to/bma]   (default target/release/bma, else target/debug/bma)
Prints one line per measure (median, min, max in ms). Not a test: nothing is asserted.
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import queue
import time


def generate_50k():
    parts = ["// Generated for bench/lsp/latency.py.\nuse std::blocks::{dense_act, conv_bn}\n\n"]
    i = 0
    while sum(len(p) for p in parts) < 50_000:
        parts.append(f"""/// A scoring function.
fn score_{i}(x: float, y: float) -> float = (x - {i}) ^ 2 + abs(y) * 0.5

/// A small stage.
block stage_{i}(c: int, k: int = 3) {{
  conv2d(c, kernel: k, padding: same)
  batchnorm
  relu
}}

/// Experiment {i}.
experiment e_{i} {{
  data = digits(split: [0.7, 0.15, 0.15], seed: {i})
  space {{
    kind: in {{mlp, cnn}}
    depth: int in 1..=3
    lr: float in 1e-4..3e-2 log
    when kind == mlp {{ width: int in {{32, 64}} }}
    when kind == cnn {{ filters: int in 8..=16 step 8 }}
  }}
  model {{
    match kind {{
      mlp => {{ flatten repeat depth {{ dense_act(width) }} }}
      cnn => {{ repeat depth {{ stage_{i}(filters) }} global_avgpool }}
    }}
    dense(data.classes)
  }}
  train {{
    optimizer = adam(lr)
    epochs = 5
  }}
  objective {{ maximize accuracy }}
  search {{ strategy = tpe trials = 20 }}
}}

""")
        i += 1
    return "".join(parts)


def generate_large(params=2000):
    text = "experiment e {\n  data = iris\n  space {\n"
    text += "".join(f"    p{i}: int in 1..=3\n" for i in range(params))
    text += "  }\n  model {" + "".join(f" dense(p{i})" for i in range(params))
    text += " dense(data.classes) }\n  objective { maximize accuracy }\n}\n"
    return text


class Server:
    def __init__(self, binary):
        self.p = subprocess.Popen([binary, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.q = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()
        self.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
        self.wait(lambda m: m.get("id") == 1)
        self.version = 0

    def read(self):
        out = self.p.stdout
        while True:
            line = out.readline()
            if not line:
                return
            n = int(line.split(b":")[1])
            out.readline()
            self.q.put(json.loads(out.read(n)))

    def send(self, m):
        b = json.dumps(m).encode()
        self.p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(b) + b)
        self.p.stdin.flush()

    def wait(self, pred):
        while True:
            m = self.q.get(timeout=600)
            if pred(m):
                return m

    def timed(self, text, marker=None):
        """Sends `text` (open, then changes); seconds to its diagnostics (to those with a
        message starting with `marker`, when given: the whole-space check's), and how many
        errors. `self.first`: seconds to its first diagnostics."""
        self.version += 1
        uri = "file:///tmp/bench-lsp/spec.bma"
        if self.version == 1:
            m = {"method": "textDocument/didOpen",
                 "params": {"textDocument": {"uri": uri, "languageId": "bma", "version": 1, "text": text}}}
        else:
            m = {"method": "textDocument/didChange",
                 "params": {"textDocument": {"uri": uri, "version": self.version}, "contentChanges": [{"text": text}]}}
        start = time.perf_counter()
        self.send({"jsonrpc": "2.0", **m})
        got = self.wait(lambda m: self.ours(m))
        errors = sum(1 for d in got["params"]["diagnostics"] if d.get("severity") == 1)
        self.first = time.perf_counter() - start
        if marker is not None and not has(got, marker):
            # The server publishes the cheap diagnostics first, then the whole-space check's.
            self.wait(lambda m: self.ours(m) and has(m, marker))
        return time.perf_counter() - start, errors

    def ours(self, m):
        """Whether `m` publishes the diagnostics of the text last sent: a server that names
        the version it published (each text may be published twice, the cheap diagnostics
        first) is held to it; one that does not, to the order of its publishes."""
        if m.get("method") != "textDocument/publishDiagnostics":
            return False
        version = m["params"].get("version")
        return version is None or version == self.version

    def complete_after(self, text, offset):
        """Sends `text` as a change and at once asks for completion at byte `offset` (ASCII
        text: the column is the offset in its line); seconds to the answer, and its items."""
        self.version += 1
        uri = "file:///tmp/bench-lsp/spec.bma"
        line = text.count("\n", 0, offset)
        column = offset - (text.rfind("\n", 0, offset) + 1)
        start = time.perf_counter()
        self.send({"jsonrpc": "2.0", "method": "textDocument/didChange",
                   "params": {"textDocument": {"uri": uri, "version": self.version},
                              "contentChanges": [{"text": text}]}})
        rid = 1000 + self.version
        self.send({"jsonrpc": "2.0", "id": rid, "method": "textDocument/completion",
                   "params": {"textDocument": {"uri": uri}, "position": {"line": line, "character": column}}})
        # The answer, and a publish of this text (before or after it), so that the next
        # measure starts on a quiet server.
        got, took, published = None, None, False
        while got is None or not published:
            m = self.wait(lambda m: m.get("id") == rid or self.ours(m))
            if m.get("id") == rid:
                got, took = m, time.perf_counter() - start
            else:
                published = True
        result = got.get("result") or {}
        items = result.get("items", result) if isinstance(result, dict) else result
        return took, items

    def close(self):
        """Ends the server; its CPU time (user + system), in seconds."""
        self.p.stdin.close()
        _, status, usage = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_utime + usage.ru_stime


def has(message, marker):
    return any(d["message"].startswith(marker) for d in message["params"]["diagnostics"])


def ms(xs):
    xs = [x * 1e3 for x in xs]
    return f"median {statistics.median(xs):.1f} ms (min {min(xs):.1f}, max {max(xs):.1f}, {len(xs)} runs)"


def bench(name, text, keystrokes=20, marker=None):
    s = Server(BINARY)
    full, errors = s.timed(text, marker)
    print(f"{name} ({len(text)} bytes): first diagnostics {s.first * 1e3:.1f} ms, {errors} errors"
          + (f"; with the whole-space check {full * 1e3:.1f} ms" if marker else ""))
    # Typing in a comment at the top: the file stays clean.
    clean = []
    for k in range(keystrokes):
        t, errors = s.timed("// " + "x" * (k + 1) + "\n" + text)
        clean.append(t)
    print(f"{name}: keystroke, clean file: {ms(clean)}, {errors} errors")
    # Typing `ensemble(top: 5,,` in a new section of the last experiment: a syntax error.
    cut = text.rstrip().rfind("}")
    typed = "  average { ensemble(top: 5,,"
    broken = []
    for k in range(1, len(typed) + 1):
        t, errors = s.timed(text[:cut] + typed[:k] + "\n" + text[cut:])
        broken.append(t)
    print(f"{name}: keystroke, typing `{typed.strip()}`: {ms(broken)}, {errors} errors at the end")
    # Typing a comment inside the last experiment's model: the file stays clean; a server
    # that keys the whole-space check on the experiment's text checks the space again, one
    # that keys it on its tokens keeps it (`check::Reuse`).
    model = text.rfind("model {") + len("model {")
    inside, inside_full = [], []
    for k in range(keystrokes):
        t, errors = s.timed(text[:model] + " // " + "x" * (k + 1) + "\n" + text[model:], marker)
        inside.append(s.first)
        inside_full.append(t)
    print(f"{name}: keystroke inside an experiment, clean file: {ms(inside)}, {errors} errors"
          + (f"; with the whole-space check {ms(inside_full)}" if marker else ""))
    # Changing the number of trials (21, 22, ...) in a `search` section added to the last
    # experiment (in its own `trials = N` when it has one): a section its whole-space check
    # does not read (but for `strategy`).
    search, search_full = [], []
    trials = text.rfind("trials = ", text.rfind("experiment "))
    for k in range(keystrokes):
        if trials >= 0:
            end = trials + len("trials = ")
            while text[end].isdigit():
                end += 1
            edited = text[:trials] + f"trials = {21 + k}" + text[end:]
        else:
            edited = text[:cut] + f"  search {{ trials = {21 + k} }}\n" + text[cut:]
        t, errors = s.timed(edited, marker)
        search.append(s.first)
        search_full.append(t)
    print(f"{name}: keystroke in a search section, clean file: {ms(search)}, {errors} errors"
          + (f"; with the whole-space check {ms(search_full)}" if marker else ""))
    # Typing `dense` as a new statement at the start of the last experiment's model, with
    # completion asked after each keystroke.
    completion, offered = [], 0
    for k in range(1, len("dense") + 1):
        edited = text[:model] + "\n    " + "dense"[:k] + "\n" + text[model:]
        t, items = s.complete_after(edited, model + 5 + k)
        completion.append(t)
        offered = len(items or [])
    print(f"{name}: keystroke then completion in the model: {ms(completion)}, {offered} items at the end")
    print(f"{name}: the server's CPU time for all of the above: {s.close():.1f} s")


if __name__ == "__main__":
    default = "target/release/bma" if os.path.exists("target/release/bma") else "target/debug/bma"
    BINARY = sys.argv[1] if len(sys.argv) > 1 else default
    print(f"binary: {BINARY}; load average: {os.getloadavg()[0]:.1f}")
    bench("50 KB spec", generate_50k())
    bench("2,000-parameter spec", generate_large(), keystrokes=5, marker="checked the shapes")
