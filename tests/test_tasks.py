"""Binary classification (one sigmoid output, 0/1 labels) and regression (identity output,
quadratic cost) as first-class tasks: targets, predict, evaluate, History, the reference."""
import re

import numpy as np
import pytest

import fastnn as fnn
from fastnn import reference as ref

from conftest import rel_err


@pytest.fixture
def binary():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, 3))
    y = (X @ [1.5, -1.0, 0.5] + 0.2 > 0).astype(np.int64)
    return X, y


@pytest.mark.parametrize("cost", ["cross_entropy", "quadratic"])
@pytest.mark.parametrize("batch_size", [1, 5, 120])
def test_binary_training_matches_the_reference(binary, cost, batch_size):
    X, y = binary
    net = fnn.Network([3, 5, 1], hidden="tanh", output="sigmoid", cost=cost,
                      dtype="float64", seed=2)
    W0, b0 = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    orders = [net._perm(e, len(X)) for e in range(2)]
    net.fit(X, y, epochs=2, batch_size=batch_size, l2=0.01,
            optimizer=fnn.SGD(0.05, momentum=0.9), progress=False)
    Ws, bs = ref.train_sgd(W0, b0, X, y, net.hidden, "sigmoid", cost, orders, batch_size,
                           0.05, momentum=0.9, l2=0.01)
    assert rel_err(net.weights + net.biases, Ws + bs) <= 1e-10
    # the labels are the targets: the same as float targets of shape (n, 1)
    twin = fnn.Network([3, 5, 1], hidden="tanh", output="sigmoid", cost=cost,
                       dtype="float64", seed=2)
    twin.fit(X, y.reshape(-1, 1).astype(float), epochs=2, batch_size=batch_size, l2=0.01,
             optimizer=fnn.SGD(0.05, momentum=0.9), progress=False)
    assert np.array_equal(net.params, twin.params)


@pytest.mark.parametrize("labels", ["int", "bool", "uint8"])
def test_binary_labels_predict_evaluate_and_history(binary, labels):
    X, y = binary
    y_in = {"int": y, "bool": y.astype(bool), "uint8": y.astype(np.uint8)}[labels]
    net = fnn.Network([3, 6, 1], hidden="tanh", output="sigmoid", seed=0)
    h = net.fit(X[:90], y_in[:90], epochs=30, batch_size=10, optimizer=fnn.SGD(0.5),
                validation_data=(X[90:], y_in[90:]), progress=False)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr",
                              "seconds"}
    pred = net.predict(X)
    assert pred.shape == (120,) and pred.dtype == np.int64 and set(pred) <= {0, 1}
    proba = net.predict_proba(X)
    assert proba.shape == (120, 1)
    assert np.array_equal(pred, (proba[:, 0] > 0.5).astype(int))
    assert h.history["accuracy"][-1] == np.mean(pred[:90] == y[:90]) >= 0.9
    assert h.history["val_accuracy"][-1] == np.mean(pred[90:] == y[90:])
    result = net.evaluate(X[90:], y_in[90:])
    assert result["accuracy"] == h.history["val_accuracy"][-1]
    assert result["loss"] == pytest.approx(h.history["val_loss"][-1])
    loss, grad = net.gradients(X, y_in)
    assert grad.shape == net.params.shape and np.isfinite(loss)


def test_binary_network_survives_save_and_load(binary, tmp_path):
    X, y = binary
    net = fnn.Network([3, 4, 1], output="sigmoid", seed=0)
    net.fit(X, y, epochs=5, progress=False)
    net.save(tmp_path / "b.npz")
    again = fnn.load(tmp_path / "b.npz")
    assert np.array_equal(again.predict(X), net.predict(X)) and again.predict(X).ndim == 1


def test_float_targets_for_one_sigmoid_stay_probabilities(binary):
    X, y = binary
    net = fnn.Network([3, 4, 1], output="sigmoid", seed=0)
    h = net.fit(X, y.astype(float), epochs=3, progress=False)    # soft targets, floats
    assert "accuracy" not in h.history
    assert net.predict(X).shape == (120, 1)
    assert "accuracy" not in net.evaluate(X, y.astype(float))


@pytest.mark.parametrize("bad,match,exc", [
    (lambda y: y + 1, "y holds labels in [1, 2]", ValueError),
    (lambda y: -y, "y holds labels in [-1, 0]", ValueError),
    (lambda y: y[:-1], "y has 119 rows", ValueError),
    (lambda y: np.array(["a"] * 120), "y must hold numbers", TypeError),
])
def test_bad_binary_labels(binary, bad, match, exc):
    X, y = binary
    net = fnn.Network([3, 4, 1], output="sigmoid", seed=0)
    before = net.params.copy()
    with pytest.raises(exc, match=re.escape(match)):
        net.fit(X, bad(y), progress=False)
    with pytest.raises(exc, match=re.escape(match)):
        net.evaluate(X, bad(y))
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


def test_validation_data_must_be_of_the_same_kind(binary):
    X, y = binary
    net = fnn.Network([3, 4, 1], output="sigmoid", seed=0)
    with pytest.raises(ValueError, match=re.escape("validation_data[1]")):
        net.fit(X, y, validation_data=(X, y.astype(float)), progress=False)
    with pytest.raises(ValueError, match=re.escape("validation_data[1] holds labels")):
        net.fit(X, y, validation_data=(X, y * 2), progress=False)
    assert net.epochs_trained == 0


# --- regression ---------------------------------------------------------------------------
def test_regression_with_integer_values_equals_float_values():
    rng = np.random.default_rng(1)
    X = rng.random((50, 2))
    counts = np.rint(3 * X[:, 0] + 4 * X[:, 1]).astype(np.int64)   # integer targets
    a = fnn.Network([2, 8, 1], hidden="tanh", output="identity", dtype="float64")
    b = fnn.Network([2, 8, 1], hidden="tanh", output="identity", dtype="float64")
    assert a.cost == "quadratic"
    ha = a.fit(X, counts, epochs=100, batch_size=5, optimizer=fnn.SGD(0.05, momentum=0.9),
               validation_data=(X, counts), progress=False)
    b.fit(X, counts.astype(float), epochs=100, batch_size=5,
          optimizer=fnn.SGD(0.05, momentum=0.9), progress=False)
    assert np.array_equal(a.params, b.params)
    assert set(ha.history) == {"loss", "val_loss", "lr", "seconds"}
    pred = a.predict(X)
    assert pred.shape == (50, 1) and pred.dtype == np.float64      # values, not labels
    assert np.abs(pred[:, 0] - counts).mean() < 0.5
    assert a.evaluate(X, counts)["loss"] == pytest.approx(
        0.5 * np.mean((pred[:, 0] - counts) ** 2), rel=1e-12)
    assert "accuracy" not in a.evaluate(X, counts)


def test_regression_matches_the_reference():
    rng = np.random.default_rng(2)
    X = rng.random((30, 3))
    Y = np.c_[X.sum(1), X[:, 0] * X[:, 1]]
    net = fnn.Network([3, 7, 2], hidden="relu", output="identity", dtype="float64", seed=4)
    W0, b0 = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    orders = [net._perm(e, 30) for e in range(3)]
    net.fit(X, Y, epochs=3, batch_size=4, optimizer=fnn.SGD(0.1), progress=False)
    Ws, bs = ref.train_sgd(W0, b0, X, Y, net.hidden, "identity", "quadratic", orders, 4,
                           0.1)
    assert rel_err(net.weights + net.biases, Ws + bs) <= 1e-10
    np.testing.assert_allclose(net.predict(X), ref.predict_proba(Ws, bs, X, net.hidden,
                                                                 "identity"), rtol=1e-10)
