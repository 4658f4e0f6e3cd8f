"""The public API: construction, fit results, inference, and bad input that raises
clearly and leaves the network unchanged."""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnn as fnn
from fastnn import costs


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.random((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    return X, y


@pytest.fixture
def net():
    return fnn.Network([5, 8, 3], seed=1)


# --- construction ---------------------------------------------------------------------
def test_parameter_views_share_one_buffer(net):
    assert [w.shape for w in net.weights] == [(5, 8), (8, 3)]
    assert [b.shape for b in net.biases] == [(8,), (3,)]
    assert net.params.size == 5 * 8 + 8 + 8 * 3 + 3
    net.weights[1][2, 1] = 42.0
    net.biases[0][3] = -7.0
    assert 42.0 in net.params and -7.0 in net.params
    net.params[:] = 0.5
    assert (net.weights[0] == 0.5).all() and (net.biases[1] == 0.5).all()


def test_natural_cost_pairs():
    assert fnn.Network([2, 3], output="softmax").cost == "log_likelihood"
    assert fnn.Network([2, 3], output="sigmoid").cost == "cross_entropy"
    assert fnn.Network([2, 3], output="identity").cost == "quadratic"
    assert fnn.Network([2, 3], output="tanh").cost == "quadratic"


def test_impossible_pair_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        fnn.Network([2, 3], output="identity", cost="cross_entropy")
    msg = str(err.value)
    assert "cost" in msg
    for out, c in costs.VALID_PAIRS:
        assert f"{out}/{c}" in msg


@pytest.mark.parametrize("init,std", [("gaussian", 1.0), ("lecun", 1 / np.sqrt(400)),
                                      ("xavier", np.sqrt(2 / 600)), ("he", np.sqrt(2 / 400)),
                                      ("xavier_uniform", np.sqrt(2 / 600)),
                                      ("he_uniform", np.sqrt(2 / 400))])
def test_initializer_scales(init, std):
    net = fnn.Network([400, 200], init=init, dtype="float64", seed=0)
    assert net.weights[0].std() == pytest.approx(std, rel=0.02)
    assert abs(net.weights[0].mean()) < 0.02 * std
    bias_std = 1.0 if init in ("gaussian", "lecun") else 0.0
    assert net.biases[0].std() == pytest.approx(bias_std, abs=0.2)
    if init.endswith("uniform"):
        limit = np.sqrt(3) * std
        assert np.abs(net.weights[0]).max() <= limit


def test_auto_init():
    assert fnn.Network([3, 4, 2], hidden="relu").init_resolved == "he"
    assert fnn.Network([3, 4, 2], hidden="sigmoid").init_resolved == "lecun"


def test_hidden_per_layer_and_dtypes():
    net = fnn.Network([3, 4, 5, 2], hidden=["tanh", "leaky_relu"], dtype="float64")
    assert net.hidden == ["tanh", "leaky_relu"]
    assert net.params.dtype == np.float64
    assert fnn.Network([3, 2], dtype=np.float32).params.dtype == np.float32


# --- fit results ----------------------------------------------------------------------
def test_history_keys_and_lengths(net, data):
    X, y = data
    h = net.fit(X, y, epochs=3, batch_size=8, validation_data=(X[:10], y[:10]),
                optimizer=fnn.SGD(0.5), progress=False)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert all(len(v) == 3 for v in h.history.values())
    assert h.epoch == [1, 2, 3] and net.epochs_trained == 3
    assert h.history["lr"] == [0.5] * 3
    assert h.history["val_loss"][-1] == pytest.approx(net.evaluate(X[:10], y[:10])["loss"])
    assert all(0 <= a <= 1 for a in h.history["accuracy"])


def test_regression_history_has_no_accuracy():
    rng = np.random.default_rng(2)
    X = rng.random((30, 2))
    Y = np.c_[X.sum(1), X[:, 0] - X[:, 1]]
    net = fnn.Network([2, 16, 2], hidden="tanh", output="identity", dtype="float64")
    h = net.fit(X, Y, epochs=200, batch_size=5, optimizer=fnn.SGD(0.05, momentum=0.9),
                validation_data=(X, Y), progress=False)
    assert "accuracy" not in h.history and "val_accuracy" not in h.history
    assert h.history["loss"][-1] < 0.05 * h.history["loss"][0]
    assert net.predict(X).shape == (30, 2)        # values, not labels
    assert np.abs(net.predict(X) - Y).max() < 0.2


def test_learns_xor_and_predicts_labels():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25, float)
    y = np.array([0, 1, 1, 0] * 25)
    net = fnn.Network([2, 8, 2], hidden="tanh", seed=0)
    net.fit(X, y, epochs=300, batch_size=4, optimizer=fnn.SGD(0.3, momentum=0.9),
            progress=False)
    assert (net.predict(X[:4]) == [0, 1, 1, 0]).all()
    assert net.evaluate(X, y)["accuracy"] == 1.0
    proba = net.predict_proba(X[:4])
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    assert np.array_equal(proba, net.forward(X[:4]))


def test_epochs_zero_and_huge_batch(net, data):
    X, y = data
    before = net.params.copy()
    h = net.fit(X, y, epochs=0, progress=False)
    assert h.history == {} and np.array_equal(before, net.params)
    net.fit(X, y, epochs=1, batch_size=10_000, progress=False)   # clipped to full batch
    assert not np.array_equal(before, net.params)


def _compiled_signatures():
    """Every (kernel, signature) compiled so far in this process."""
    import importlib
    import pkgutil

    import fastnn.kernels
    from numba.core.registry import CPUDispatcher
    out = set()
    for info in pkgutil.iter_modules(fastnn.kernels.__path__):
        mod = importlib.import_module(f"fastnn.kernels.{info.name}")
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher):
                out.update((info.name, name, sig) for sig in obj.signatures)
    return out


@pytest.mark.parametrize("batch", [8, 60])    # the fused small-batch and the BLAS epochs
def test_read_only_targets_reuse_the_writable_kernels(batch):
    """Read-only regression targets (a memory map, say) train with the kernels compiled
    for writable ones: ``fit`` copies them (Numba would type them apart and compile the
    epoch again), with the same weights."""
    rng = np.random.default_rng(0)
    X = rng.random((60, 5), dtype=np.float32)
    Y = rng.random((60, 2), dtype=np.float32)
    kw = dict(output="identity", cost="quadratic", seed=0)
    a = fnn.Network([5, 8, 2], **kw)
    a.fit(X, Y, epochs=2, batch_size=batch, progress=False)
    before = _compiled_signatures()
    ro = Y.copy()
    ro.flags.writeable = False
    b = fnn.Network([5, 8, 2], **kw)
    b.fit(X, ro, epochs=2, batch_size=batch, progress=False)
    assert _compiled_signatures() == before
    assert np.array_equal(a.params, b.params)


def test_fit_does_not_modify_inputs(net, data):
    X, y = data
    X0, y0 = X.copy(), y.copy()
    net.fit(X, y, epochs=2, progress=False)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_progress_lines(net, data, capsys):
    X, y = data
    net.fit(X, y, epochs=2, progress=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert re.match(r"epoch 1/2 .*loss \d\.\d{4}.*accuracy .*s$", err[0])
    net.fit(X, y, epochs=2, progress=False)
    assert capsys.readouterr().err == ""


def test_divergence_keeps_last_good_weights():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3)) * 10
    Y = rng.standard_normal((50, 1)) * 100
    net = fnn.Network([3, 20, 1], hidden="identity", output="identity", dtype="float64")
    net.fit(X, Y, epochs=1, batch_size=5, optimizer=fnn.SGD(1e-6), progress=False)
    good = net.params.copy()
    with pytest.raises(fnn.DivergenceError) as err:
        net.fit(X, Y, epochs=5, batch_size=5, optimizer=fnn.SGD(10.0), progress=False)
    assert err.value.epoch == 2
    assert "epoch 2" in str(err.value)
    assert np.array_equal(net.params, good)
    assert net.epochs_trained == 1


# --- bad input ------------------------------------------------------------------------
BAD_FIT = [
    ("X", dict(X=np.ones((40, 4))), ValueError),                 # wrong feature count
    ("X", dict(X=np.ones(40)), ValueError),                      # 1-D
    ("X", dict(X=np.ones((40, 5, 1))), ValueError),              # 3-D
    ("X", dict(X=np.full((40, 5), np.nan)), ValueError),
    ("X", dict(X=np.full((40, 5), np.inf)), ValueError),
    ("X", dict(X=np.array([["a"] * 5] * 40)), TypeError),
    ("X", dict(X=np.empty((0, 5)), y=np.empty(0, int)), ValueError),
    ("X", dict(X=[[1, 2], [3]]), TypeError),                     # ragged
    ("y", dict(y=np.zeros(39, int)), ValueError),                # wrong length
    ("y", dict(y=np.full(40, -1)), ValueError),
    ("y", dict(y=np.full(40, 3)), ValueError),                   # == outputs
    ("y", dict(y=np.full(40, 0.5)), ValueError),                 # not integral
    ("y", dict(y=np.full((40, 3), np.nan)), ValueError),
    ("y", dict(y=np.ones((40, 2))), ValueError),                 # wrong target width
    ("y", dict(y=np.array(["cat"] * 40)), TypeError),
    ("epochs", dict(epochs=-1), ValueError),
    ("epochs", dict(epochs=2.5), TypeError),
    ("batch_size", dict(batch_size=0), ValueError),
    ("batch_size", dict(batch_size=-3), ValueError),
    ("batch_size", dict(batch_size=None), TypeError),
    ("optimizer", dict(optimizer="adamm"), ValueError),
    ("optimizer", dict(optimizer=3), TypeError),
    ("l2", dict(l2=-0.1), ValueError),
    ("l2", dict(l2=np.nan), ValueError),
    ("validation_data", dict(validation_data=np.ones((3, 5))), TypeError),
    ("validation_data[0]", dict(validation_data=(np.ones((3, 4)), [0, 1, 2])), ValueError),
    ("validation_data[1]", dict(validation_data=(np.ones((3, 5)), [0, 1, 7])), ValueError),
    ("shuffle", dict(shuffle="yes"), TypeError),
]


@pytest.mark.parametrize("name,kwargs,exc", BAD_FIT, ids=[f"{b[0]}-{i}" for i, b in
                                                          enumerate(BAD_FIT)])
def test_bad_fit_input_raises_and_changes_nothing(net, data, name, kwargs, exc):
    X, y = data
    args = dict(X=X, y=y, epochs=1, batch_size=4, progress=False)
    args.update(kwargs)
    before = net.params.copy()
    with pytest.raises(exc, match=re.escape(name)):
        net.fit(**args)
    assert np.array_equal(net.params, before)
    assert net.epochs_trained == 0


@pytest.mark.parametrize("method", ["forward", "predict", "predict_proba"])
def test_bad_inference_input(net, method):
    with pytest.raises(ValueError, match="X"):
        getattr(net, method)(np.ones((2, 6)))
    with pytest.raises(ValueError, match="X"):
        getattr(net, method)(np.array([[np.nan] * 5]))


def test_bad_evaluate_and_gradients_input(net):
    with pytest.raises(ValueError, match="y"):
        net.evaluate(np.ones((2, 5)), [0, 5])
    with pytest.raises(ValueError, match="l2"):
        net.gradients(np.ones((2, 5)), [0, 1], l2=-1)


BAD_NET = [
    ("sizes", dict(sizes=[5]), ValueError),
    ("sizes", dict(sizes=[5, 0, 3]), ValueError),
    ("sizes", dict(sizes=[5, 2.5, 3]), TypeError),
    ("sizes", dict(sizes="53"), TypeError),
    ("hidden", dict(hidden="relux"), ValueError),
    ("hidden", dict(hidden=["relu", "relu"]), ValueError),
    ("hidden", dict(hidden="softmax"), ValueError),
    ("output", dict(output="relu"), ValueError),
    ("cost", dict(cost="hinge"), ValueError),
    ("cost", dict(output="softmax", cost="cross_entropy"), ValueError),
    ("init", dict(init="zeros"), ValueError),
    ("dtype", dict(dtype="float16"), ValueError),
    ("seed", dict(seed=-1), ValueError),
    ("leaky_slope", dict(leaky_slope=-0.1), ValueError),
]


@pytest.mark.parametrize("name,kwargs,exc", BAD_NET, ids=[f"{b[0]}-{i}" for i, b in
                                                          enumerate(BAD_NET)])
def test_bad_network_arguments(name, kwargs, exc):
    args = dict(sizes=[5, 8, 3])
    args.update(kwargs)
    with pytest.raises(exc, match=re.escape(name)):
        fnn.Network(**args)


@pytest.mark.parametrize("kwargs,name", [(dict(lr=0), "lr"), (dict(lr=-1), "lr"),
                                         (dict(momentum=-0.5), "momentum"),
                                         (dict(dampening=2), "dampening"),
                                         (dict(nesterov=True), "nesterov"),
                                         (dict(lr="fast"), "lr")])
def test_bad_sgd_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        fnn.SGD(**kwargs)


# --- property tests -------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 7), min_size=2, max_size=4),
       n=st.integers(1, 20), batch=st.integers(1, 25),
       dtype=st.sampled_from(["float32", "float64"]),
       output=st.sampled_from(["softmax", "sigmoid", "identity", "tanh"]))
def test_shapes_and_dtypes_for_any_architecture(sizes, n, batch, dtype, output):
    rng = np.random.default_rng(n)
    net = fnn.Network(sizes, hidden="tanh", output=output, dtype=dtype)
    X = rng.random((n, sizes[0]))
    Y = rng.random((n, sizes[-1]))
    h = net.fit(X, Y, epochs=1, batch_size=batch, optimizer=fnn.SGD(0.01), progress=False)
    assert len(h.history["loss"]) == 1 and np.isfinite(h.history["loss"][0])
    out = net.forward(X)
    assert out.shape == (n, sizes[-1]) and out.dtype == np.dtype(dtype)
    loss, grad = net.gradients(X, Y)
    assert grad.shape == net.params.shape and grad.dtype == np.dtype(dtype)
    assert np.isfinite(loss)


@settings(max_examples=30, deadline=None)
@given(bad=st.sampled_from([np.nan, np.inf, -np.inf]), row=st.integers(0, 39),
       col=st.integers(0, 4))
def test_any_nonfinite_input_is_refused(bad, row, col):
    rng = np.random.default_rng(0)
    X = rng.random((40, 5))
    X[row, col] = bad
    net = fnn.Network([5, 4, 3])
    before = net.params.copy()
    with pytest.raises(ValueError, match=f"row {row}, column {col}"):
        net.fit(X, rng.integers(0, 3, 40), progress=False)
    assert np.array_equal(before, net.params)


class RecordingProgress:
    updates_per_epoch = 7

    def __init__(self):
        self.calls = []

    def on_epoch_begin(self, epoch, n):
        self.calls.append(("begin", epoch, n))

    def on_batch(self, done, loss_sum):
        self.calls.append(("batch", done))

    def on_epoch_end(self, epoch, metrics):
        self.calls.append(("end", epoch))


def test_sliced_epochs_for_progress_give_bitwise_same_weights(data):
    X, y = data
    plain, sliced = fnn.Network([5, 8, 3], seed=2), fnn.Network([5, 8, 3], seed=2)
    h1 = plain.fit(X, y, epochs=2, batch_size=3, optimizer=fnn.SGD(0.2, momentum=0.9),
                   progress=False)
    rec = RecordingProgress()
    h2 = sliced.fit(X, y, epochs=2, batch_size=3, optimizer=fnn.SGD(0.2, momentum=0.9),
                    progress=rec)
    assert np.array_equal(plain.params, sliced.params)
    assert h1.history["accuracy"] == h2.history["accuracy"]
    assert h1.history["loss"] == pytest.approx(h2.history["loss"], rel=1e-6)
    batches = [c[1] for c in rec.calls if c[0] == "batch"]
    assert 2 < len(batches) <= 2 * 7 and batches[-1] == 40
    assert all(d % 3 == 0 for d in batches[:-1] if d != 40)
    assert rec.calls[0] == ("begin", 1, 40) and rec.calls[-1] == ("end", 2)


def test_bad_progress_argument(net, data):
    with pytest.raises(TypeError, match="progress"):
        net.fit(*data, progress="loud")
    assert net.epochs_trained == 0


def test_schedule_equals_one_fit_per_epoch_with_that_rate(data):
    X, y = data
    rates = [0.3, 0.2, 0.1]
    a, b = fnn.Network([5, 8, 3], seed=3), fnn.Network([5, 8, 3], seed=3)
    opt_a, opt_b = fnn.SGD(1.0, momentum=0.9), fnn.SGD(1.0, momentum=0.9)
    h = a.fit(X, y, epochs=3, batch_size=4, optimizer=opt_a, progress=False,
              schedule=lambda e: rates[e])
    for r in rates:
        opt_b.lr = r
        b.fit(X, y, epochs=1, batch_size=4, optimizer=opt_b, progress=False)
    assert np.array_equal(a.params, b.params)
    assert h.history["lr"] == rates
    assert opt_a.lr == 1.0                 # the optimizer's own rate is not changed


@pytest.mark.parametrize("schedule,exc", [(0.1, TypeError), (lambda e: -1.0, ValueError),
                                          (lambda e: float("nan"), ValueError),
                                          (lambda e: 0.1 if e < 2 else 0.0, ValueError),
                                          (lambda e: "fast", TypeError)])
def test_bad_schedule(net, data, schedule, exc):
    before = net.params.copy()
    opt = fnn.SGD(0.1, momentum=0.9)
    with pytest.raises(exc, match="schedule"):
        net.fit(*data, epochs=3, optimizer=opt, progress=False, schedule=schedule)
    assert np.array_equal(net.params, before)          # not even the good epochs ran
    assert net.epochs_trained == 0 and opt.state is None
