import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn import costs
from fastnn import reference as ref


def rel_err(a, b):
    """Max-norm relative difference of two arrays (or lists of arrays)."""
    if isinstance(a, (list, tuple)):
        a, b = np.concatenate([x.ravel() for x in a]), np.concatenate([x.ravel() for x in b])
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def run_both(net, X, y, epochs, batch_size, lr, l2, opt_kw, shuffle=True):
    """Train ``net`` with SGD and the NumPy reference (``reference.train_sgd``) from the
    same weights on the same sample orders; the relative difference of the results."""
    W0 = [w.copy() for w in net.weights]
    b0 = [b.copy() for b in net.biases]
    n = len(X)
    orders = [net._perm(e, n) if shuffle else np.arange(n) for e in range(epochs)]
    net.fit(X, y, epochs=epochs, batch_size=batch_size, l2=l2, shuffle=shuffle,
            optimizer=fnn.SGD(lr=lr, **opt_kw), progress=False)
    Ws, bs = ref.train_sgd(W0, b0, X, y, net.hidden, net.output, net.cost, orders,
                           min(batch_size, n), lr, l2=l2, slope=net.leaky_slope, **opt_kw)
    return rel_err(net.weights + net.biases, Ws + bs)


def run_with_threads(script, n, timeout=900, **env_extra):
    """Run ``python -c script`` in a fresh process with ``n`` threads everywhere (Numba,
    OpenMP, OpenBLAS, MKL) and the environment variables ``env_extra``; returns its
    standard output split into words (hashes)."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n),
               OPENBLAS_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n), **env_extra)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def make_problem(output, cost, n=13, n_in=4, n_out=3, seed=0, soft=False):
    """Inputs and targets suited to an output/cost pair: labels for classifiers
    (softmax, sigmoid), float targets in the output's range otherwise."""
    rng = np.random.default_rng(seed)
    X = 0.5 * rng.standard_normal((n, n_in))
    X[rng.random(X.shape) < 0.6] = 0.0          # sparse: small batches use the CSR path
    if output in ("softmax", "sigmoid") and not soft:
        y = rng.integers(0, n_out, n)
    elif output in ("softmax",):
        y = rng.dirichlet(np.ones(n_out), n)     # soft labels: rows sum to 1
    elif output == "sigmoid":
        y = rng.random((n, n_out))
    elif output == "tanh":
        y = rng.uniform(-0.9, 0.9, (n, n_out))
    else:
        y = rng.standard_normal((n, n_out))
    return X, y


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu"]
PAIRS = list(costs.VALID_PAIRS)
