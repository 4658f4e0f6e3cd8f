"""Central finite differences confirm Network.gradients for every activation and cost."""
import numpy as np
import pytest

import fastnn as fnn

from conftest import HIDDEN, PAIRS, make_problem, rel_err


@pytest.mark.parametrize("output,cost", PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_gradients_match_central_differences(hidden, output, cost, l2):
    X, y = make_problem(output, cost, n=9, seed=4)
    net = fnn.Network([4, 5, 4, 3], hidden=hidden, output=output, cost=cost,
                      dtype="float64", seed=11, leaky_slope=0.15)
    loss, grad = net.gradients(X, y, l2=l2)
    h = 1e-6
    numeric = np.empty_like(grad)
    p = net.params
    for i in range(p.size):
        old = p[i]
        p[i] = old + h
        up = net.gradients(X, y, l2=l2)[0]
        p[i] = old - h
        down = net.gradients(X, y, l2=l2)[0]
        p[i] = old
        numeric[i] = (up - down) / (2 * h)
    # relu kinks: no sample sits within h of a kink for this seed, so the check is exact
    assert rel_err(grad, numeric) < 1e-6
    assert np.abs(grad).max() > 1e-3      # a real gradient, not a zero vector
    assert loss == net.gradients(X, y, l2=l2)[0]   # evaluation does not change anything


def test_gradient_loss_is_evaluate_loss_plus_l2():
    X, y = make_problem("softmax", "log_likelihood", n=50)
    net = fnn.Network([4, 6, 3], dtype="float64")
    l2 = 0.2
    loss, _ = net.gradients(X, y, l2=l2)
    penalty = 0.5 * l2 * sum((w ** 2).sum() for w in net.weights)
    assert loss == pytest.approx(net.evaluate(X, y)["loss"] + penalty, rel=1e-14)
