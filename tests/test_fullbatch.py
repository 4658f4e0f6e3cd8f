"""Full-batch L-BFGS and CG through scipy.optimize.minimize: the objective and gradient
they are fed, equality with scipy run on the NumPy reference, iteration counts, callbacks."""
import numpy as np
import pytest
import scipy.optimize

import fastnn as fnn
import fastnn.network
from fastnn import reference as ref

from conftest import make_problem, rel_err

OPTIMIZERS = {"lbfgs": fnn.LBFGS, "cg": fnn.CG}
SIZES = [4, 6, 3]


def problem(n=40, seed=0):
    X, y = make_problem("softmax", "log_likelihood", n=n, seed=seed)
    return X, y


def network(dtype="float64", sizes=SIZES, **kw):
    kw.setdefault("hidden", "tanh")
    return fnn.Network(sizes, init="lecun", dtype=dtype, seed=5, **kw)


@pytest.fixture
def spy(monkeypatch):
    """Records the objective and options fastnn hands to scipy.optimize.minimize."""
    calls = []
    real = scipy.optimize.minimize

    def minimize(fun, x0, **kw):
        calls.append(dict(fun=fun, x0=x0.copy(), **kw))
        return real(fun, x0, **kw)

    monkeypatch.setattr(scipy.optimize, "minimize", minimize)
    return calls


def reference_run(method, options, params0, X, y, l2, hidden="tanh", output="softmax",
                  cost="log_likelihood", sizes=SIZES):
    """scipy on the plain-NumPy objective; returns the result and the per-iteration
    data loss (no l2), as fastnn's History records it."""
    losses = []

    def fun(x):
        return ref.flat_loss_and_gradient(x, sizes, X, y, [hidden], output, cost, l2)

    def callback(xk):
        losses.append(ref.flat_loss_and_gradient(xk, sizes, X, y, [hidden], output, cost)[0])

    res = scipy.optimize.minimize(fun, np.array(params0, float), jac=True, method=method,
                                  options=options, callback=callback)
    return res, losses


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_matches_scipy_on_the_numpy_reference(name, l2, spy):
    X, y = problem()
    net = network()
    p0 = net.params.copy()
    opt = OPTIMIZERS[name]()
    h = net.fit(X, y, epochs=15, optimizer=opt, l2=l2, progress=False)
    call, = spy
    assert call["method"] == {"lbfgs": "L-BFGS-B", "cg": "CG"}[name]
    assert call["jac"] is True and call["options"]["maxiter"] == 15
    res, losses = reference_run(call["method"], call["options"], p0, X, y, l2)
    assert res.nit == opt.result.nit == len(h.epoch) == 15
    assert rel_err(net.params, res.x) < 1e-7
    assert h.history["loss"] == pytest.approx(losses, rel=1e-9)
    assert opt.result.fun == pytest.approx(res.fun, rel=1e-9)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_the_gradient_it_uses_matches_finite_differences_and_includes_l2(name, l2, spy):
    X, y = problem(n=25)
    net = network()
    net.fit(X, y, epochs=3, optimizer=name, l2=l2, progress=False)
    fun = spy[0]["fun"]
    after = net.params.copy()
    for x in (spy[0]["x0"], after.astype(float)):
        loss, grad = fun(x)
        assert isinstance(loss, float) and grad.dtype == np.float64
        # the objective is the mean cost + (l2/2) sum w^2: the same as net.gradients
        net.params[...] = x
        g_loss, g_grad = net.gradients(X, y, l2=l2)
        assert loss == g_loss and np.array_equal(grad, g_grad)
        h = 1e-6
        numeric = np.empty_like(grad)
        for i in range(x.size):
            up, down = x.copy(), x.copy()
            up[i] += h
            down[i] -= h
            numeric[i] = (fun(up)[0] - fun(down)[0]) / (2 * h)
        assert rel_err(grad, numeric) < 1e-6
        assert np.abs(grad).max() > 1e-3
    net.params[...] = after


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_one_compiled_call_per_evaluation(name, monkeypatch):
    X, y = problem()
    count = [0]
    real = fastnn.network._kt.loss_and_gradient

    def counting(*args):
        count[0] += 1
        return real(*args)

    monkeypatch.setattr(fastnn.network._kt, "loss_and_gradient", counting)
    opt = OPTIMIZERS[name]()
    network().fit(X, y, epochs=10, optimizer=opt, progress=False)
    assert count[0] == opt.result.nfev > 10


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loss_decreases(name, dtype):
    X, y = problem(n=60)
    net = network(dtype)
    start = net.evaluate(X, y)["loss"]
    h = net.fit(X, y, epochs=40, optimizer=name, validation_data=(X[:10], y[:10]),
                progress=False)
    loss = h.history["loss"]
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert loss[0] < start and loss[-1] < 0.7 * start
    if dtype == "float64":       # a line search with sufficient decrease, l2 = 0
        assert all(b <= a for a, b in zip(loss, loss[1:]))
    assert loss[-1] == pytest.approx(net.evaluate(X, y)["loss"], rel=1e-6)
    assert h.history["val_loss"][-1] == pytest.approx(net.evaluate(X[:10], y[:10])["loss"])
    assert net.params.dtype == np.dtype(dtype)


def test_epochs_are_iterations_and_count_over_fits():
    X, y = problem()
    net = network()
    opt = fnn.LBFGS()
    h1 = net.fit(X, y, epochs=4, optimizer=opt, progress=False)
    assert h1.epoch == [1, 2, 3, 4] and net.epochs_trained == 4 and opt.result.nit == 4
    h2 = net.fit(X, y, epochs=3, optimizer=opt, progress=False)
    assert h2.epoch == [5, 6, 7] and net.epochs_trained == 7
    assert h2.history["loss"][-1] < h1.history["loss"][-1]
    assert net.fit(X, y, epochs=0, optimizer=opt, progress=False).epoch == []


def test_convergence_before_the_iteration_limit():
    X = np.array([[0.0], [1.0]])
    Y = np.array([[1.0], [3.0]])
    net = fnn.Network([1, 1], output="identity", dtype="float64")   # linear regression
    opt = fnn.LBFGS(gtol=1e-10)
    h = net.fit(X, Y, epochs=100, optimizer=opt, progress=False)
    assert opt.result.success and len(h.epoch) == opt.result.nit < 100
    np.testing.assert_allclose(net.predict(X), Y, atol=1e-8)


def test_a_stop_from_a_callback_equals_a_shorter_run():
    X, y = problem()

    class StopAt(fnn.Callback):
        def on_epoch_end(self, epoch, metrics, net):
            return epoch == 3

    a, b = network(), network()
    opt = fnn.LBFGS()
    h = a.fit(X, y, epochs=20, optimizer=opt, callbacks=[StopAt()], progress=False)
    b.fit(X, y, epochs=3, optimizer=fnn.LBFGS(), progress=False)
    assert h.epoch == [1, 2, 3] and a.epochs_trained == 3
    assert np.array_equal(a.params, b.params)
    assert opt.result.nit == 3 and "StopIteration" in opt.result.message


def test_early_stopping_restores_the_best_iterate():
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 4)), rng.integers(0, 3, 30)       # random labels: overfits
    Xv, yv = rng.random((30, 4)), rng.integers(0, 3, 30)
    net = network(sizes=[4, 12, 3])
    es = fnn.EarlyStopping(patience=4)
    h = net.fit(X, y, epochs=100, optimizer="lbfgs", validation_data=(Xv, yv),
                early_stopping=es, progress=False)
    assert es.stopped_epoch == len(h.epoch) == es.best_epoch + 4 < 100
    again = network(sizes=[4, 12, 3])
    again.fit(X, y, epochs=es.best_epoch, optimizer="lbfgs", progress=False)
    assert np.array_equal(net.params, again.params)


def test_binary_labels_and_regression_with_lbfgs():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 3))
    labels = (X @ [1.0, -2.0, 0.5] > 0).astype(int)
    net = fnn.Network([3, 4, 1], hidden="tanh", output="sigmoid", dtype="float64")
    h = net.fit(X, labels, epochs=60, optimizer=fnn.LBFGS(), progress=False)
    assert h.history["accuracy"][-1] >= 0.95
    assert np.mean(net.predict(X) == labels) == h.history["accuracy"][-1]
    values = X @ [0.5, 1.0, -1.0] + 0.3
    reg = fnn.Network([3, 1], output="identity", dtype="float64")
    reg.fit(X, values, epochs=50, optimizer=fnn.CG(), progress=False)
    np.testing.assert_allclose(reg.predict(X)[:, 0], values, atol=1e-4)


def test_progress_lines_per_iteration(capsys):
    X, y = problem()
    network().fit(X, y, epochs=3, optimizer=fnn.CG(), progress=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and err[0].startswith("epoch 1/3  loss ") and " lr " not in err[0]


@pytest.mark.parametrize("make,name,exc", [
    (lambda: fnn.LBFGS(maxcor=0), "maxcor", ValueError),
    (lambda: fnn.LBFGS(gtol=-1), "gtol", ValueError),
    (lambda: fnn.LBFGS(ftol=float("nan")), "ftol", ValueError),
    (lambda: fnn.LBFGS(maxls=2.0), "maxls", TypeError),
    (lambda: fnn.LBFGS(maxfun=0), "maxfun", ValueError),
    (lambda: fnn.CG(gtol="small"), "gtol", TypeError),
    (lambda: fnn.CG(norm=0), "norm", ValueError),
    (lambda: fnn.CG(norm="inf"), "norm", TypeError),
])
def test_bad_arguments(make, name, exc):
    with pytest.raises(exc, match=name):
        make()


def test_bad_fit_input_with_lbfgs_changes_nothing():
    X, y = problem()
    net = network()
    before = net.params.copy()
    with pytest.raises(ValueError, match="y"):
        net.fit(X, np.full(len(X), 7), epochs=3, optimizer="lbfgs", progress=False)
    with pytest.raises(ValueError, match="early_stopping"):
        net.fit(X, y, epochs=3, optimizer="lbfgs", early_stopping=fnn.EarlyStopping(),
                progress=False)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0
