"""Ensembles: one epoch of ``Ensemble.fit`` over 50,000 synthetic MNIST-like samples,
784-100-10 relu/softmax float32, SGD(0.05, momentum=0.9), with the members' epochs in
one compiled call (``parallel=True``, members spread over Numba's threads) or one
member after another (``parallel=False``); and the cold compile of the parallel kernel.

The parallel path spends the same CPU time as the sequential one; its wall-time gain
is bounded by the free cores, so compare the two in the same run.
"""
import fastnn as fnn

from . import common
from .compile_time import EMPTY_CACHE


def _fit(ens, X, y, batch, parallel):
    ens.fit(X, y, epochs=1, batch_size=batch, optimizer=fnn.SGD(0.05, momentum=0.9),
            progress=False, parallel=parallel)


class EnsembleEpoch:
    params = [[2, 4], [10, 32], [True, False]]
    param_names = ["members", "batch", "parallel"]
    number = 1
    repeat = (2, 5, 20.0)
    warmup_time = 0
    timeout = 900

    def setup(self, members, batch, parallel):
        X, y = common.mnist_like(512)
        _fit(fnn.Ensemble(2, [784, 100, 10]), X, y, batch, parallel)   # compile / load
        self.X, self.y = common.mnist_like(common.N_TRAIN)
        self.ens = fnn.Ensemble(members, [784, 100, 10], seed=0)

    def time_epoch(self, members, batch, parallel):
        _fit(self.ens, self.X, self.y, batch, parallel)


# Timed in a fresh interpreter with an empty cache: import, the sequential kernels that
# the parallel one calls, and the parallel kernel, as a first parallel fit compiles them.
FIRST_PARALLEL_FIT = """
import numpy as np
import fastnn as fnn
X = (np.random.default_rng(0).random((64, 784), dtype=np.float32) < 0.2).astype(np.float32)
y = np.arange(64) % 10
ens = fnn.Ensemble(2, [784, 100, 10], seed=0)
ens.fit(X, y, epochs=1, batch_size=32, optimizer=fnn.SGD(lr=0.05, momentum=0.9),
        progress=False, parallel=True)
"""


class EnsembleCompileCold:
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0
    timeout = 900

    def timeraw_import_and_first_parallel_fit(self):
        return FIRST_PARALLEL_FIT, EMPTY_CACHE
