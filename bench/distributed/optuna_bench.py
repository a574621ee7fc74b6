"""Optuna's side of the distributed bench: N trivial trials by W processes sharing
one study in PostgreSQL through Optuna's RDBStorage (SQLAlchemy + psycopg2).

    python optuna_bench.py postgres://bma@127.0.0.1:5432/bma [--workers 8] [--trials 800]

Every process imports Optuna and loads the study before a shared barrier; the
clock runs from the barrier to the last process's end, so Python's start-up is
not counted against Optuna. Prints `optuna: N trials, W processes, T s, R trials/s`.
"""
import argparse
import multiprocessing as mp
import time

import optuna


def objective(trial):
    x = trial.suggest_float("x", -5.0, 10.0)
    y = trial.suggest_float("y", 0.0, 15.0)
    return x * x + y * y


def worker(url, name, n, barrier):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
    barrier.wait()
    study.optimize(objective, n_trials=n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--trials", type=int, default=800)
    a = ap.parse_args()
    url = a.url.replace("postgres://", "postgresql+psycopg2://", 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"optuna-bench-{time.time_ns()}"
    optuna.create_study(study_name=name, storage=url, direction="minimize")
    per = a.trials // a.workers
    barrier = mp.Barrier(a.workers + 1)
    procs = [mp.Process(target=worker, args=(url, name, per, barrier)) for _ in range(a.workers)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
        assert p.exitcode == 0, "an Optuna worker failed"
    secs = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=url)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    assert done == per * a.workers, (done, per * a.workers)
    print(f"optuna {optuna.__version__}: {done} trials, {a.workers} processes, {secs:.2f} s, {done / secs:.0f} trials/s")


if __name__ == "__main__":
    main()
