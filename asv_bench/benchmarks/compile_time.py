"""Start-up cost: ``import fastnn`` plus the first ``fit`` and ``predict_proba`` of a
784-100-10 network, each in a fresh interpreter (``timeraw_``), with

- an empty Numba cache (a new temporary ``NUMBA_CACHE_DIR``): every kernel compiles;
- a warm cache (the ambient one, filled in ``setup`` by one untimed run): the kernels
  are loaded from disk.

The cold case compiles the whole training kernel, ~40 s on a 2-core machine, so it runs
once per commit (one round, one sample).
"""
import os
import subprocess
import sys

# Timed in the child: the import, a small training set, the first fit and prediction.
FIRST_CALL = """
import numpy as np
import fastnn as fnn
X = (np.random.default_rng(0).random((64, 784), dtype=np.float32) < 0.2).astype(np.float32)
y = np.arange(64) % 10
net = fnn.Network([784, 100, 10], hidden="relu", output="softmax", dtype="float32", seed=0)
net.fit(X, y, epochs=1, batch_size=32, optimizer=fnn.SGD(lr=0.05, momentum=0.9),
        progress=False)
net.predict_proba(X)
"""

# Untimed, in the child before the import: a fresh, empty cache removed at exit.
EMPTY_CACHE = """
import atexit, os, shutil, tempfile
_cache = tempfile.mkdtemp(prefix="fastnn-asv-numba-")
os.environ["NUMBA_CACHE_DIR"] = _cache
atexit.register(shutil.rmtree, _cache, True)
"""


class CompileCold:
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0
    timeout = 900

    def timeraw_import_and_first_fit(self):
        return FIRST_CALL, EMPTY_CACHE


class CompileWarm:
    number = 1
    repeat = (3, 5, 30.0)
    rounds = 1
    warmup_time = 0
    timeout = 900

    def setup(self):
        # Fill (or confirm) the ambient Numba cache for the installed fastnn.
        subprocess.run([sys.executable, "-c", FIRST_CALL], check=True, env=dict(os.environ))

    def timeraw_import_and_first_fit(self):
        return FIRST_CALL
