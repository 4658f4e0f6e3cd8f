"""fit(l1=..., max_norm=..., clip_norm=...) == the NumPy reference (float64, 1e-10) on
the fused small-batch paths and the BLAS path, with SGD and an adaptive rule."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import reference as ref
from fastnn.network import BLAS_MIN_BATCH

from conftest import make_problem, rel_err

N = BLAS_MIN_BATCH + 12
OPTS = {
    "sgd": (lambda: fnn.SGD(0.1), lambda: ref.SGDRule(0.1)),
    "momentum": (lambda: fnn.SGD(0.05, momentum=0.9), lambda: ref.SGDRule(0.05, 0.9)),
    "adam": (lambda: fnn.Adam(0.01), lambda: ref.AdamRule(0.01)),
}


def run_both(opt, batch_size, hidden="relu", epochs=2, l2=0.0, **reg):
    X, y = make_problem("softmax", "log_likelihood", n=N, n_in=5, n_out=3, seed=6)
    net = fnn.Network([5, 7, 6, 3], hidden=hidden, dtype="float64", seed=2)
    W0 = [w.copy() for w in net.weights]
    b0 = [b.copy() for b in net.biases]
    orders = [net._perm(e, N) for e in range(epochs)]
    net.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=OPTS[opt][0](), l2=l2,
            progress=False, **reg)
    Ws, bs = ref.train(W0, b0, X, y, net.hidden, net.output, net.cost, orders,
                       min(batch_size, N), OPTS[opt][1](), l2=l2, **reg)
    return rel_err(net.weights + net.biases, Ws + bs), net, (X, y, W0, b0)


@pytest.mark.parametrize("batch_size", [1, 3, N])
@pytest.mark.parametrize("opt", list(OPTS))
def test_l1_matches_reference(opt, batch_size):
    err, net, _ = run_both(opt, batch_size, l1=0.01, l2=0.003)
    assert err <= 1e-10
    # and L1 made a difference
    other = fnn.Network([5, 7, 6, 3], hidden="relu", dtype="float64", seed=2)
    X, y = make_problem("softmax", "log_likelihood", n=N, n_in=5, n_out=3, seed=6)
    other.fit(X, y, epochs=2, batch_size=batch_size, optimizer=OPTS[opt][0](), l2=0.003,
              progress=False)
    assert rel_err(net.params, other.params) > 1e-4


def test_l1_gradient_is_sign_with_zero_at_zero():
    """A zero weight with no data gradient stays exactly zero under plain SGD + L1."""
    X, y = make_problem("softmax", "log_likelihood", n=20, n_in=4, n_out=3, seed=1)
    X[:, 1] = 0.0                                  # no data gradient for input 1's row
    net = fnn.Network([4, 3], dtype="float64", seed=1)
    net.weights[0][1] = [0.0, 0.5, -0.5]
    net.fit(X, y, epochs=1, batch_size=4, optimizer=fnn.SGD(0.1), l1=0.2, shuffle=False,
            progress=False)
    # 5 steps of w -= lr * l1 * sign(w): 0 stays 0, +-0.5 shrink by 5 * 0.02 = 0.1
    np.testing.assert_allclose(net.weights[0][1], [0.0, 0.4, -0.4], rtol=0, atol=1e-15)


@pytest.mark.parametrize("batch_size", [1, 3, N])
@pytest.mark.parametrize("opt", list(OPTS))
def test_max_norm_matches_reference(opt, batch_size):
    err, net, _ = run_both(opt, batch_size, max_norm=0.8)
    assert err <= 1e-10
    for W in net.weights:
        norms = np.sqrt((W ** 2).sum(axis=0))
        assert norms.max() <= 0.8 * (1 + 1e-12)
    # the constraint was active: the initial columns are longer than the bound
    fresh = fnn.Network([5, 7, 6, 3], hidden="relu", dtype="float64", seed=2)
    assert min(np.sqrt((W ** 2).sum(axis=0)).max() for W in fresh.weights) > 0.8


def test_max_norm_leaves_short_columns_alone():
    X, y = make_problem("softmax", "log_likelihood", n=20, n_in=4, n_out=3, seed=1)
    a = fnn.Network([4, 5, 3], dtype="float64", seed=1)
    b = fnn.Network([4, 5, 3], dtype="float64", seed=1)
    a.fit(X, y, epochs=2, batch_size=4, optimizer=fnn.SGD(0.01), progress=False)
    b.fit(X, y, epochs=2, batch_size=4, optimizer=fnn.SGD(0.01), max_norm=1e6,
          progress=False)
    assert np.array_equal(a.params, b.params)


@pytest.mark.parametrize("batch_size", [1, 3, N])
@pytest.mark.parametrize("opt", list(OPTS))
def test_clip_norm_matches_reference(opt, batch_size):
    err, net, (X, y, W0, b0) = run_both(opt, batch_size, clip_norm=0.1, l2=0.01)
    assert err <= 1e-10
    # the clipping was active: the first batch's gradient is longer than 0.1
    order = net._perm(0, N)[:batch_size]
    _, dWs, dbs = ref.loss_and_gradients(W0, b0, X[order], y[order], net.hidden,
                                         net.output, net.cost)
    assert np.sqrt(sum((g ** 2).sum() for g in dWs + dbs)) > 0.1


def test_clip_norm_with_a_large_bound_changes_nothing_but_the_path():
    """Clipping never binds: the unfused loops give the fused path's weights (to
    rounding: the fused rows are summed in the same order, so here bitwise)."""
    X, y = make_problem("softmax", "log_likelihood", n=30, n_in=4, n_out=3, seed=2)
    a = fnn.Network([4, 5, 3], dtype="float64", seed=1)
    b = fnn.Network([4, 5, 3], dtype="float64", seed=1)
    a.fit(X, y, epochs=2, batch_size=5, optimizer=fnn.SGD(0.1, momentum=0.9),
          progress=False)
    b.fit(X, y, epochs=2, batch_size=5, optimizer=fnn.SGD(0.1, momentum=0.9),
          clip_norm=1e9, progress=False)
    assert rel_err(a.params, b.params) <= 1e-12


def test_all_together_with_adamw():
    X, y = make_problem("softmax", "log_likelihood", n=N, n_in=5, n_out=3, seed=6)
    for batch_size in (2, N):
        net = fnn.Network([5, 7, 3], hidden="tanh", dtype="float64", seed=2)
        W0, b0 = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
        orders = [net._perm(e, N) for e in range(2)]
        net.fit(X, y, epochs=2, batch_size=batch_size, optimizer=fnn.AdamW(0.01), l2=0.01,
                l1=0.001, max_norm=0.7, clip_norm=0.5, progress=False)
        Ws, bs = ref.train(W0, b0, X, y, net.hidden, net.output, net.cost, orders,
                           batch_size, ref.AdamRule(0.01, weight_decay=0.01,
                                                    decoupled=True),
                           l2=0.01, l1=0.001, max_norm=0.7, clip_norm=0.5)
        assert rel_err(net.weights + net.biases, Ws + bs) <= 1e-10


@pytest.mark.parametrize("kw,exc", [
    (dict(l1=-0.1), ValueError),
    (dict(l1="0.1"), TypeError),
    (dict(l1=float("inf")), ValueError),
    (dict(max_norm=0.0), ValueError),
    (dict(max_norm=-1.0), ValueError),
    (dict(max_norm="1"), TypeError),
    (dict(clip_norm=0.0), ValueError),
    (dict(clip_norm=float("nan")), ValueError),
    (dict(clip_norm=[1.0]), TypeError),
    (dict(l1=0.1, optimizer="lbfgs"), ValueError),
    (dict(max_norm=1.0, optimizer=fnn.CG()), ValueError),
    (dict(clip_norm=1.0, optimizer="lbfgs"), ValueError),
])
def test_bad_arguments_are_refused_and_leave_the_network_unchanged(kw, exc):
    X, y = make_problem("softmax", "log_likelihood", n=20)
    net = fnn.Network([4, 5, 3], dtype="float64", seed=1)
    before = net.params.copy()
    name = [k for k in kw if k != "optimizer"][0]
    with pytest.raises(exc, match=name):
        net.fit(X, y, epochs=1, progress=False, **kw)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


def test_float32_runs_with_all_regularisers():
    X, y = make_problem("softmax", "log_likelihood", n=130, n_in=6, n_out=3, seed=8)
    params = {}
    for dt in ("float32", "float64"):
        net = fnn.Network([6, 10, 3], dtype=dt, seed=5, init="lecun")
        net.fit(X, y, epochs=2, batch_size=64, optimizer=fnn.SGD(0.05, momentum=0.5),
                l1=1e-3, max_norm=0.9, clip_norm=0.5, progress=False)
        params[dt] = net.params
    assert rel_err(params["float32"], params["float64"]) < 1e-4
