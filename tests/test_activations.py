"""ELU, GELU and SiLU hidden layers: names, formulas, the kept pre-activations.

The equivalence, gradient and precision matrices (``HIDDEN`` in conftest) cover the new
activations one at a time; here they are mixed with in-place layers, so the ``Z`` room
of the workspace is exercised with several layers, chunks and both paths.
"""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn import reference as ref
from fastnn.network import BLAS_MIN_BATCH, CHUNK

from conftest import make_problem, rel_err


@pytest.mark.parametrize("hidden", [["gelu", "relu", "silu"], ["relu", "gelu", "elu"],
                                    ["silu", "silu", "tanh"]])
@pytest.mark.parametrize("batch_size,n", [(1, 23), (5, 23),
                                          (BLAS_MIN_BATCH, 2 * BLAS_MIN_BATCH + 3),
                                          (CHUNK + 100, 2 * CHUNK + 150)])
def test_mixed_hidden_layers_match_reference(hidden, batch_size, n):
    X, y = make_problem("softmax", "log_likelihood", n=n, n_in=5, n_out=3, seed=2)
    net = fnn.Network([5, 7, 6, 4, 3], hidden=hidden, dtype="float64", seed=1)
    W0, b0 = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    orders = [net._perm(e, n) for e in range(2)]
    net.fit(X, y, epochs=2, batch_size=batch_size, l2=0.01, progress=False,
            optimizer=fnn.SGD(0.05, momentum=0.9))
    Ws, bs = ref.train_sgd(W0, b0, X, y, net.hidden, net.output, net.cost, orders,
                           min(batch_size, n), 0.05, momentum=0.9, l2=0.01)
    assert rel_err(net.weights + net.biases, Ws + bs) <= 1e-10
    P = ref.predict_proba(net.weights, net.biases, X, net.hidden, net.output)
    assert rel_err(net.forward(X), P) <= 1e-12


@pytest.mark.parametrize("name", ["elu", "gelu", "silu"])
def test_activation_values_and_derivatives(name):
    """The reference's formulas against textbook values (torch's ELU, GELU, SiLU)."""
    z = np.array([-3.0, -0.5, 0.0, 0.7, 2.5])
    phi = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z])
    expected = {"elu": np.where(z > 0, z, np.exp(z) - 1), "gelu": z * phi,
                "silu": z / (1 + np.exp(-z))}[name]
    np.testing.assert_allclose(ref.activation(name, z), expected, rtol=1e-14, atol=1e-15)
    h = 1e-6
    z = z[z != 0]               # elu's second derivative jumps at 0: off by h/4 there
    numeric = (ref.activation(name, z + h) - ref.activation(name, z - h)) / (2 * h)
    np.testing.assert_allclose(ref.activation_prime(name, z), numeric, rtol=1e-7, atol=1e-9)


def test_names_alias_and_auto_init():
    net = fnn.Network([3, 4, 4, 4, 2], hidden=["elu", "gelu", "swish"])
    assert net.hidden == ["elu", "gelu", "silu"]          # swish is kept as silu
    assert net.init_resolved == "he"
    a = fnn.Network([3, 4, 2], hidden="swish", seed=3)
    b = fnn.Network([3, 4, 2], hidden="silu", seed=3)
    X = np.random.default_rng(0).standard_normal((6, 3))
    assert np.array_equal(a.forward(X), b.forward(X))
    with pytest.raises(ValueError, match="gelu"):          # the message lists valid names
        fnn.Network([3, 4, 2], hidden="gelu_tanh")
    with pytest.raises(ValueError):
        fnn.Network([3, 4, 2], output="gelu")              # hidden only


def test_save_and_load_keep_the_activation(tmp_path):
    net = fnn.Network([3, 5, 5, 2], hidden=["gelu", "elu"], seed=4)
    path = tmp_path / "m.npz"
    net.save(path)
    back = fnn.load(path)
    assert back.hidden == ["gelu", "elu"]
    X = np.random.default_rng(1).standard_normal((4, 3))
    assert np.array_equal(back.forward(X), net.forward(X))


@pytest.mark.parametrize("hidden", ["elu", "gelu", "silu"])
def test_same_seed_gives_bitwise_same_weights(hidden):
    X, y = make_problem("softmax", "log_likelihood", n=40, n_in=4, n_out=3, seed=6)
    params = []
    for _ in range(2):
        net = fnn.Network([4, 8, 3], hidden=hidden, seed=9)
        net.fit(X, y, epochs=2, batch_size=4, optimizer=fnn.SGD(0.1), progress=False)
        params.append(net.params)
    assert np.array_equal(params[0], params[1])


def test_learns_spirals_with_each_new_activation():
    X, y = fnn.datasets.spirals(n_per_class=100, noise=0.05, seed=0)
    for hidden in ("elu", "gelu", "silu"):
        net = fnn.Network([2, 32, 32, 2], hidden=hidden, seed=0)
        net.fit(X, y, epochs=150, batch_size=16, optimizer=fnn.SGD(0.1, momentum=0.9),
                progress=False)
        assert net.evaluate(X, y)["accuracy"] > 0.9, hidden
