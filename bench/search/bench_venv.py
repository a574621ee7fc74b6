"""The virtualenv the search benches' Python drivers run in (run.py, suite.py, moo.py).

`ensure(venv, probe, pins, script)` returns at once when this interpreter is `venv`'s;
otherwise it makes `venv` when missing, installs `pins` there when the Python statement
`probe` fails in it, and re-executes `script` with the same arguments under `venv`'s python.
"""

import os
import subprocess
import sys


def ensure(venv, probe, pins, script):
    venv = os.path.abspath(venv)
    py = os.path.join(venv, "bin", "python")
    if os.path.abspath(sys.prefix) == venv:
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    if subprocess.run([py, "-c", probe], capture_output=True).returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "-q"] + list(pins))
    os.execv(py, [py, os.path.abspath(script)] + sys.argv[1:])
