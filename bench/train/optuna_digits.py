"""Peer of `bma run examples/digits.bma` for the time-to-0.97 benchmark: Optuna + PyTorch
over the same search space, settings and budget.

Space (examples/digits.bma): kind {mlp, cnn}; depth 1..3; lr 1e-4..3e-2 log; dropout 0..0.5;
opt {adam, sgd}; mlp: width {32, 64, 128, 256}; cnn: filters 8..32 step 8; sgd: momentum
0.5..0.99. mlp = flatten, depth x (dense(width), relu, dropout); cnn = depth x (conv 3x3 same,
batchnorm, relu), global average pool; then dense(10). 30 epochs, batch 64, cross-entropy.
Constraint params <= 60k (infeasible points are pruned before training). TPE (seed 42),
successive halving (min 2 epochs, eta 3), 60 trials, 2 at once (n_jobs=2, 1 torch thread each).
Objective: valid accuracy (bma also minimises latency; time-to-0.97 only needs accuracy).

Prints one JSON line per finished trial (elapsed s, valid and test accuracy) and a summary
with the elapsed time at which a finished trial first reached 0.97 test accuracy.
python optuna_digits.py [TRIALS] [JOBS] [tpe|random] [SEED]
"""
import gzip, json, random, sys, time, warnings
from pathlib import Path

warnings.filterwarnings("ignore")
import optuna
import torch
from torch import nn

TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
SAMPLER = sys.argv[3] if len(sys.argv) > 3 else "tpe"
SEED = int(sys.argv[4]) if len(sys.argv) > 4 else 42
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)

root = Path(__file__).resolve().parents[2]
rows = [list(map(float, l.split(","))) for l in gzip.open(root / "stdlib/datasets/digits.csv.gz", "rt") if l.strip()]
random.seed(1)
by_class = {}
for r in rows:
    by_class.setdefault(int(r[-1]), []).append(r)
parts = {"train": [], "valid": [], "test": []}
for c, rs in sorted(by_class.items()):
    random.shuffle(rs)
    ntr, nva = round(len(rs) * 0.7), round(len(rs) * 0.15)
    parts["train"] += rs[:ntr]
    parts["valid"] += rs[ntr:ntr + nva]
    parts["test"] += rs[ntr + nva:]
t = {k: (torch.tensor([r[:64] for r in v]), torch.tensor([int(r[64]) for r in v])) for k, v in parts.items()}
mean, std = t["train"][0].mean(), t["train"][0].std()
t = {k: ((x - mean) / std, y) for k, (x, y) in t.items()}


def build(p):
    layers = []
    if p["kind"] == "mlp":
        layers.append(nn.Flatten())
        n = 64
        for _ in range(p["depth"]):
            layers += [nn.Linear(n, p["width"]), nn.ReLU()]
            if p["dropout"] > 0:
                layers.append(nn.Dropout(p["dropout"]))
            n = p["width"]
    else:
        layers.append(nn.Unflatten(1, (1, 8, 8)))
        c = 1
        for _ in range(p["depth"]):
            layers += [nn.Conv2d(c, p["filters"], 3, padding="same"), nn.BatchNorm2d(p["filters"]), nn.ReLU()]
            c = p["filters"]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        n = c
    layers.append(nn.Linear(n, 10))
    return nn.Sequential(*layers)


def accuracy(net, part):
    net.eval()
    with torch.no_grad():
        x, y = t[part]
        a = (net(x).argmax(1) == y).float().mean().item()
    net.train()
    return a


start = time.perf_counter()
finished = []


def objective(trial):
    p = {"kind": trial.suggest_categorical("kind", ["mlp", "cnn"]), "depth": trial.suggest_int("depth", 1, 3),
         "lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True), "dropout": trial.suggest_float("dropout", 0.0, 0.5),
         "opt": trial.suggest_categorical("opt", ["adam", "sgd"])}
    if p["kind"] == "mlp":
        p["width"] = trial.suggest_categorical("width", [32, 64, 128, 256])
    else:
        p["filters"] = trial.suggest_int("filters", 8, 32, step=8)
    if p["opt"] == "sgd":
        p["momentum"] = trial.suggest_float("momentum", 0.5, 0.99)
    torch.manual_seed(SEED * 1000 + trial.number)
    net = build(p)
    if sum(q.numel() for q in net.parameters()) > 60_000:
        raise optuna.TrialPruned()
    opt = (torch.optim.Adam(net.parameters(), lr=p["lr"]) if p["opt"] == "adam"
           else torch.optim.SGD(net.parameters(), lr=p["lr"], momentum=p["momentum"]))
    loss_fn = nn.CrossEntropyLoss()
    x, y = t["train"]
    for epoch in range(30):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
        valid = accuracy(net, "valid")
        trial.report(valid, epoch + 1)
        if trial.should_prune():
            raise optuna.TrialPruned()
    test = accuracy(net, "test")
    rec = {"trial": trial.number, "elapsed": time.perf_counter() - start, "valid": valid, "test": test, **p}
    finished.append(rec)
    print(json.dumps(rec), flush=True)
    return valid


study = optuna.create_study(direction="maximize", sampler=(optuna.samplers.TPESampler(seed=SEED) if SAMPLER == "tpe" else optuna.samplers.RandomSampler(seed=SEED)),
                            pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3))
study.optimize(objective, n_trials=TRIALS, n_jobs=JOBS)
total = time.perf_counter() - start
hit = next((r["elapsed"] for r in sorted(finished, key=lambda r: r["elapsed"]) if r["test"] >= 0.97), None)
best = max(finished, key=lambda r: r["valid"]) if finished else None
print(json.dumps({"summary": f"optuna+pytorch ({SAMPLER})", "optuna": optuna.__version__, "torch": torch.__version__,
                  "trials": TRIALS, "jobs": JOBS, "seed": SEED, "total_s": total, "first_test_0.97_s": hit,
                  "finished": len(finished), "best_valid": best and best["valid"], "best_test": best and best["test"]}))
