"""The "inertia" momentum of the seed code, dw(t+1) = (1 - a)*eta*g + a*dw(t), is
SGD(momentum=a, dampening=a) — with PyTorch's undamped first step (see SGD's docstring)."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import reference as ref

from conftest import make_problem, rel_err


def inertia_loop(net, X, y, eta, a, batch_size, epochs, l2, dw0):
    """The inertia rule, hand-written: ``dw0(g)`` gives dw(0) from the first gradient."""
    Ws = [w.astype(float) for w in net.weights]
    bs = [b.astype(float) for b in net.biases]
    w = ref.flatten(Ws, bs)
    dw = None
    for _ in range(epochs):
        for s in range(0, len(X), batch_size):
            rows = slice(s, s + batch_size)
            _, g = ref.flat_loss_and_gradient(w, net.sizes, X[rows], y[rows], net.hidden,
                                              net.output, net.cost, l2)
            if dw is None:
                dw = dw0(g)
            dw = (1 - a) * eta * g + a * dw
            w = w - dw
    return w


@pytest.mark.parametrize("a", [0.5, 0.9])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_sgd_with_dampening_equal_to_momentum_is_the_inertia_rule(a, batch_size):
    X, y = make_problem("softmax", "log_likelihood", n=12)
    net = fnn.Network([4, 5, 3], hidden="tanh", dtype="float64", seed=1)
    eta, l2 = 0.2, 0.01
    # SGD's first step is undamped: the inertia rule started from dw(0) = eta * g(1)
    want = inertia_loop(net, X, y, eta, a, batch_size, 3, l2, dw0=lambda g: eta * g)
    start = net.params.copy()
    net.fit(X, y, epochs=3, batch_size=batch_size, l2=l2, shuffle=False,
            optimizer=fnn.SGD(lr=eta, momentum=a, dampening=a), progress=False)
    assert rel_err(net.params, want) < 1e-12
    # ... and the inertia rule from dw(0) = 0 is a different run
    zero = inertia_loop(fnn.Network([4, 5, 3], hidden="tanh", dtype="float64", seed=1),
                        X, y, eta, a, batch_size, 3, l2, dw0=np.zeros_like)
    assert rel_err(zero, want) > 1e-4
    assert rel_err(net.params, start) > 1e-3


def test_first_step_is_one_over_one_minus_a_times_the_inertia_step():
    X, y = make_problem("softmax", "log_likelihood", n=12)
    a, eta = 0.75, 0.3
    net = fnn.Network([4, 5, 3], hidden="tanh", dtype="float64", seed=1)
    start = net.params.copy()
    inertia = inertia_loop(net, X, y, eta, a, 12, 1, 0.0, dw0=np.zeros_like)
    net.fit(X, y, epochs=1, batch_size=12, shuffle=False,
            optimizer=fnn.SGD(lr=eta, momentum=a, dampening=a), progress=False)
    np.testing.assert_allclose(start - net.params, (start - inertia) / (1 - a), rtol=1e-12)
