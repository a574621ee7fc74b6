"""Optuna GPSampler CPU per trial at 100 and 200 trials on branin and hartmann6 (RESULTS-gp.md).
Usage: VENV python bench/search/gp_overhead_optuna.py branin,hartmann6 2 [first]   (problems, seeds from first, 0)"""
import sys, math, json, time
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import optuna, torch
optuna.logging.set_verbosity(optuna.logging.WARNING)
torch.set_num_threads(1)
import run
for name in sys.argv[1].split(","):
    _, space, f, opt = [p for p in run.PROBLEMS if p[0] == name][0]
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    for s in range(first, first + int(sys.argv[2])):
        study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=s))
        c0 = time.process_time(); w0 = time.time(); at = {}
        for n in range(1, 201):
            t = study.ask(); study.tell(t, f(run.suggest(t, space)))
            if n in (100, 200): at[n] = (time.process_time() - c0, time.time() - w0)
        print(json.dumps({"problem": name, "seed": s, "cpu100": at[100][0], "cpu200": at[200][0], "wall100": at[100][1], "wall200": at[200][1]}), flush=True)
