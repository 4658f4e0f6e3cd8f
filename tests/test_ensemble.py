"""fastnn.Ensemble: members from different seeds, averaged outputs, save/load, and the
parallel path (members' epochs in one compiled call)."""
import hashlib
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastnn as fnn
from fastnn.io import ModelFileError

from conftest import run_with_threads


@pytest.fixture(scope="module")
def clouds():
    """Three overlapping Gaussian clouds: train and test halves."""
    X, y = fnn.datasets.gaussian_clouds(n_per_class=200, std=1.0, seed=3)
    return X[:300], y[:300], X[300:], y[300:]


def _fit(ens, X, y, epochs=5):
    return ens.fit(X, y, epochs=epochs, batch_size=16, optimizer=fnn.SGD(0.05, momentum=0.9),
                   progress=False)


def test_seeds_members_and_export():
    ens = fnn.Ensemble(3, [2, 8, 3], hidden="tanh", seed=7)
    assert fnn.Ensemble is type(ens) and "Ensemble" in fnn.__all__
    assert ens.seeds == [7, 8, 9] and len(ens) == 3
    assert [m.seed for m in ens.members] == [7, 8, 9]
    assert all(m.hidden == ["tanh"] and m.sizes == [2, 8, 3] for m in ens.members)
    assert fnn.Ensemble(2, [2, 3]).seeds == [0, 1]
    assert fnn.Ensemble(2, [2, 3], seeds=[5, 1]).seeds == [5, 1]
    assert "Ensemble(3" in repr(ens)


def test_averaging_is_exact(clouds):
    X, y, Xt, yt = clouds
    ens = fnn.Ensemble(3, [2, 10, 3], seed=1)
    _fit(ens, X, y, epochs=2)
    P = [m.predict_proba(Xt) for m in ens.members]
    manual = P[0].copy()
    manual += P[1]
    manual += P[2]
    manual /= np.float32(3)
    got = ens.predict_proba(Xt)
    assert got.dtype == np.float32 and np.array_equal(got, manual)
    np.testing.assert_allclose(got, np.mean(P, axis=0), rtol=1e-6)
    assert np.array_equal(ens.predict(Xt), manual.argmax(1))
    assert np.array_equal(ens.forward(Xt), got)


def test_members_differ_and_same_seeds_reproduce(clouds):
    X, y, _, _ = clouds
    a = fnn.Ensemble(3, [2, 10, 3], hidden="silu", seed=4)
    b = fnn.Ensemble(3, [2, 10, 3], hidden="silu", seeds=[4, 5, 6])
    ha, hb = _fit(a, X, y), _fit(b, X, y)
    assert len(ha) == 3 and all(len(h.history["loss"]) == 5 for h in ha)
    assert [h.history["loss"] for h in ha] == [h.history["loss"] for h in hb]
    for ma, mb in zip(a.members, b.members):
        assert np.array_equal(ma.params, mb.params)
    p = [m.params for m in a.members]
    assert not np.array_equal(p[0], p[1]) and not np.array_equal(p[1], p[2])


def test_each_member_gets_its_own_optimizer_state(clouds):
    """A shared optimizer object would restart its state for every member; the ensemble
    copies it, and the same object passed again continues each member's momentum."""
    X, y, _, _ = clouds
    opt = fnn.SGD(0.05, momentum=0.9)
    ens = fnn.Ensemble(2, [2, 6, 3], seed=2)
    ens.fit(X, y, epochs=1, batch_size=16, optimizer=opt, progress=False)
    ens.fit(X, y, epochs=1, batch_size=16, optimizer=opt, progress=False)
    assert opt.state is None                          # the user's object was not used
    for k, seed in enumerate((2, 3)):
        net = fnn.Network([2, 6, 3], seed=seed)
        o = fnn.SGD(0.05, momentum=0.9)
        net.fit(X, y, epochs=1, batch_size=16, optimizer=o, progress=False)
        net.fit(X, y, epochs=1, batch_size=16, optimizer=o, progress=False)
        assert np.array_equal(ens.members[k].params, net.params)


def test_ensemble_beats_its_average_member():
    X, y = fnn.datasets.spirals(n_per_class=200, noise=0.1, seed=3)
    X, y, Xt, yt = X[:200], y[:200], X[200:], y[200:]
    ens = fnn.Ensemble(7, [2, 24, 2], hidden="gelu", seed=1)
    ens.fit(X, y, epochs=30, batch_size=8, optimizer=fnn.SGD(0.1, momentum=0.9),
            progress=False)
    members = [m.evaluate(Xt, yt)["accuracy"] for m in ens.members]
    ev = ens.evaluate(Xt, yt)
    assert ev["accuracy"] >= np.mean(members)
    assert ev["accuracy"] == np.mean(ens.predict(Xt) == yt)
    # log_likelihood of the averaged probabilities; convex, so at most the members' mean
    P = ens.predict_proba(Xt).astype(float)
    assert ev["loss"] == pytest.approx(-np.log(P[np.arange(len(yt)), yt]).mean(), rel=1e-12)
    assert ev["loss"] <= np.mean([m.evaluate(Xt, yt)["loss"] for m in ens.members]) + 1e-6


def test_binary_and_regression_members():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    yb = (X[:, 0] > 0).astype(int)
    ens = fnn.Ensemble(2, [3, 5, 1], output="sigmoid", dtype="float64", seed=1)
    ens.fit(X, yb, epochs=20, batch_size=8, optimizer=fnn.SGD(0.5), progress=False)
    P = ens.predict_proba(X)
    assert np.array_equal(ens.predict(X), (P[:, 0] > 0.5).astype(np.int64))
    ev = ens.evaluate(X, yb)
    assert ev["accuracy"] == np.mean(ens.predict(X) == yb) and ev["loss"] > 0
    yr = X @ np.array([[1.0], [-0.5], [0.2]])
    reg = fnn.Ensemble(2, [3, 5, 1], output="identity", dtype="float64", seed=1)
    reg.fit(X, yr, epochs=3, batch_size=8, optimizer=fnn.SGD(0.05), progress=False)
    out = reg.predict(X)
    assert out.shape == (60, 1) and np.array_equal(out, reg.predict_proba(X))
    assert reg.evaluate(X, yr)["loss"] == pytest.approx(0.5 * ((out - yr) ** 2).sum(1).mean())
    assert "accuracy" not in reg.evaluate(X, yr)


def test_save_and_load(tmp_path, clouds):
    X, y, Xt, _ = clouds
    ens = fnn.Ensemble(3, [2, 7, 3], hidden=["elu"], seed=5)
    _fit(ens, X, y, epochs=1)
    path = tmp_path / "ens.npz"
    ens.save(path)
    back = fnn.load(path)
    assert isinstance(back, fnn.Ensemble) and back.seeds == ens.seeds
    assert all(m.hidden == ["elu"] and m.epochs_trained == 1 for m in back.members)
    assert np.array_equal(back.predict_proba(Xt), ens.predict_proba(Xt))
    assert np.array_equal(back.predict(Xt), ens.predict(Xt))
    # a truncated parameter vector is refused
    data = dict(np.load(path))
    np.savez(tmp_path / "bad.npz", params=data["params"][:-1], meta=data["meta"])
    with pytest.raises(ModelFileError):
        fnn.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("args,kwargs,exc", [
    ((0, [2, 3]), {}, ValueError),
    ((2.5, [2, 3]), {}, TypeError),
    ((2, [2, 3]), {"seeds": [1]}, ValueError),
    ((2, [2, 3]), {"seeds": [1, 1]}, ValueError),
    ((2, [2, 3]), {"seeds": [1, -1]}, ValueError),
    ((2, [2, 3]), {"seeds": 3}, TypeError),
    ((2, [2, 3]), {"seeds": [1, 2], "seed": 0}, TypeError),
    ((2, [2, 4, 3]), {"hidden": "nope"}, ValueError),
    ((2, [2]), {}, ValueError),
])
def test_bad_arguments(args, kwargs, exc):
    with pytest.raises(exc):
        fnn.Ensemble(*args, **kwargs)


def test_bad_fit_and_predict_input(clouds):
    ens = fnn.Ensemble(2, [2, 4, 3])
    with pytest.raises(ValueError):
        ens.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        ens.fit(np.zeros((3, 2)), [0, 1, 7], progress=False)


# --- the parallel path: members' epochs in one compiled call ----------------------------
@pytest.fixture(scope="module")
def sparse_data():
    """Inputs that are 60% zeros (the CSR path of the small batches), 4 classes."""
    rng = np.random.default_rng(0)
    X = rng.random((400, 30)).astype(np.float32)
    X[X < 0.6] = 0
    y = rng.integers(0, 4, 400)
    return X, y, X[:80] * np.float32(0.9), y[:80]


def _without_seconds(hist):
    return {k: v for k, v in hist.history.items() if k != "seconds"}, hist.epoch


@pytest.mark.parametrize("make_opt,kwargs", [
    (lambda: fnn.SGD(0.05, momentum=0.9), {}),
    (lambda: fnn.SGD(0.05, momentum=0.9), {"val": True, "l2": 1e-3, "max_norm": 1.5}),
    (lambda: fnn.Adam(0.01), {}),
    (lambda: fnn.Adam(0.01), {"val": True, "l1": 1e-4, "shuffle": False}),
    (lambda: "rmsprop", {"val": True}),
])
def test_parallel_members_equal_their_lone_fits(sparse_data, make_opt, kwargs):
    """Weights, History (seconds aside), optimizer state and step of every member are
    bitwise those of the member trained alone by Network.fit, over two fits with the
    same optimizer object (its state continues)."""
    X, y, Xv, yv = sparse_data
    kwargs = dict(kwargs)
    if kwargs.pop("val", False):
        kwargs["validation_data"] = (Xv, yv)
    ens = fnn.Ensemble(3, [30, 16, 4], hidden="tanh", seed=5)
    opt = make_opt()
    hists = [ens.fit(X, y, epochs=2, batch_size=10, optimizer=opt, progress=False,
                     parallel=True, **kwargs) for _ in range(2)]
    for k, seed in enumerate((5, 6, 7)):
        net = fnn.Network([30, 16, 4], hidden="tanh", seed=seed)
        o = make_opt()
        alone = [net.fit(X, y, epochs=2, batch_size=10, optimizer=o, progress=False, **kwargs)
                 for _ in range(2)]
        member = ens.members[k]
        assert np.array_equal(member.params, net.params)
        assert member.epochs_trained == net.epochs_trained == 4
        for h, a in zip(hists, alone):
            assert _without_seconds(h[k]) == _without_seconds(a)
        if not isinstance(o, str):
            mo = ens._opts[1][k]
            assert np.array_equal(mo.state, o.state) and mo.step[0] == o.step[0] > 0
    assert set(hists[0][0].history) >= {"loss", "accuracy", "lr", "seconds"}
    assert ("val_loss" in hists[0][0].history) == ("validation_data" in kwargs)


def test_parallel_and_sequential_fits_mix(sparse_data):
    """A sequential fit continued by a parallel one (same optimizer object) gives what
    two sequential fits give: both paths keep the members' optimizer copies."""
    X, y, _, _ = sparse_data
    a, b = fnn.Ensemble(2, [30, 8, 4], seed=1), fnn.Ensemble(2, [30, 8, 4], seed=1)
    oa, ob = fnn.Adam(0.01), fnn.Adam(0.01)
    for par in (False, True):
        a.fit(X, y, epochs=1, batch_size=16, optimizer=oa, progress=False, parallel=par)
        b.fit(X, y, epochs=1, batch_size=16, optimizer=ob, progress=False, parallel=False)
    for ma, mb in zip(a.members, b.members):
        assert np.array_equal(ma.params, mb.params)


THREADS_SCRIPT = r"""
import hashlib, numpy as np, fastnn as fnn
rng = np.random.default_rng(0)
X = rng.random((500, 20)).astype(np.float32)
X[X < 0.6] = 0
y = rng.integers(0, 5, 500)
out = []
for opt in (fnn.SGD(0.05, momentum=0.9), fnn.Adam(0.005)):
    ens = fnn.Ensemble(3, [20, 32, 5], seed=3)
    ens.fit(X, y, epochs=2, batch_size=8, optimizer=opt, l2=1e-4, progress=False,
            parallel=True)
    out += [hashlib.sha256(m.params.tobytes()).hexdigest() for m in ens.members]
print(" ".join(out))
"""


def test_parallel_path_is_independent_of_the_thread_count():
    hashes = [run_with_threads(THREADS_SCRIPT, n) for n in (1, 2)]
    assert len(hashes[0]) == 6 and hashes[0] == hashes[1]
    assert len(set(hashes[0])) == 6
    # and equal to the member trained alone, sequentially, in this process
    rng = np.random.default_rng(0)
    X = rng.random((500, 20)).astype(np.float32)
    X[X < 0.6] = 0
    y = rng.integers(0, 5, 500)
    net = fnn.Network([20, 32, 5], seed=4)
    net.fit(X, y, epochs=2, batch_size=8, optimizer=fnn.Adam(0.005), l2=1e-4,
            progress=False)
    assert hashlib.sha256(net.params.tobytes()).hexdigest() == hashes[0][4]


def test_divergence_matches_the_sequential_fits():
    """Member 1 diverges in epoch 4, member 2 (which would diverge in epoch 3) never
    started in the sequential order: member 0 finishes, 1 keeps epoch 3, 2 is as before."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = X @ rng.standard_normal((5, 1))
    kw = dict(epochs=6, batch_size=4, progress=False)
    results = []
    for par in (True, False):
        ens = fnn.Ensemble(3, [5, 8, 1], output="identity", seeds=[1, 0, 5])
        ens.fit(X, y, epochs=1, batch_size=4, optimizer=fnn.SGD(0.001), progress=False,
                parallel=False)
        before = [m.params.copy() for m in ens.members]
        opt = fnn.SGD(0.06, momentum=0.9)
        with pytest.raises(fnn.DivergenceError) as info:
            ens.fit(X, y, optimizer=opt, parallel=par, **kw)
        results.append((ens, info.value, before))
    (p, ep, before), (s, es, _) = results
    assert ep.epoch == es.epoch == 4 and str(ep) == str(es)
    assert _without_seconds(ep.history) == _without_seconds(es.history)
    assert [m.epochs_trained for m in p.members] == [7, 3, 1]
    assert [m.epochs_trained for m in s.members] == [7, 3, 1]
    for mp, ms in zip(p.members, s.members):
        assert np.array_equal(mp.params, ms.params) and np.isfinite(mp.params).all()
    assert np.array_equal(p.members[2].params, before[2])
    for op, os_ in zip(p._opts[1][:2], s._opts[1][:2]):
        assert np.array_equal(op.state, os_.state) and op.step[0] == os_.step[0]
    assert p._opts[1][2].state is None and s._opts[1][2].state is None


@pytest.mark.parametrize("kwargs", [
    {"schedule": lambda e: 0.1},
    {"early_stopping": 2},
    {"callbacks": [fnn.Callback()]},
    {"clip_norm": 1.0},
    {"batch_size": 64},
    {"optimizer": "lbfgs"},
    {"progress": fnn.ProgressBar(bar=False)},
])
def test_out_of_scope_arguments(sparse_data, kwargs, monkeypatch):
    """'auto' trains sequentially (bitwise as parallel=False), True refuses, and
    neither changes the members on refusal."""
    X, y, _, _ = sparse_data
    kw = dict(dict(epochs=1, batch_size=10, optimizer=fnn.SGD(0.05), progress=False), **kwargs)
    ens = fnn.Ensemble(2, [30, 6, 4], seed=0)
    before = [m.params.copy() for m in ens.members]
    with pytest.raises(ValueError, match="parallel=True"):
        ens.fit(X, y, parallel=True, **kw)
    assert all(np.array_equal(m.params, b) for m, b in zip(ens.members, before))
    assert all(m.epochs_trained == 0 for m in ens.members)

    def refuse(*args, **kwargs):
        raise AssertionError("the parallel path was taken")
    monkeypatch.setattr(fnn.Ensemble, "_fit_parallel", refuse)
    ref = fnn.Ensemble(2, [30, 6, 4], seed=0)
    ens.fit(X, y, **kw)
    ref.fit(X, y, parallel=False, **kw)
    for m, r in zip(ens.members, ref.members):
        assert np.array_equal(m.params, r.params) and m.epochs_trained > 0


def test_auto_takes_the_parallel_path_only_with_threads_and_members(sparse_data,
                                                                     monkeypatch):
    X, y, _, _ = sparse_data
    calls = []
    real = fnn.Ensemble._fit_parallel

    def spy(self, *args, **kwargs):
        calls.append(len(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(fnn.Ensemble, "_fit_parallel", spy)
    kw = dict(epochs=1, batch_size=10, optimizer=fnn.SGD(0.05), progress=False)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    fnn.Ensemble(2, [30, 6, 4]).fit(X, y, **kw)
    fnn.Ensemble(1, [30, 6, 4]).fit(X, y, **kw)            # one member: sequential
    fnn.Ensemble(1, [30, 6, 4]).fit(X, y, parallel=True, **kw)
    fnn.Ensemble(2, [30, 6, 4]).fit(X, y, parallel=False, **kw)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    fnn.Ensemble(2, [30, 6, 4]).fit(X, y, **kw)            # one thread: sequential
    assert calls == [2, 1]


def test_parallel_bad_arguments_change_nothing(sparse_data):
    X, y, _, _ = sparse_data
    ens = fnn.Ensemble(2, [30, 6, 4], seed=0)
    before = [m.params.copy() for m in ens.members]
    for par, exc in (("yes", ValueError), (1, TypeError), (None, TypeError)):
        with pytest.raises(exc, match="parallel"):
            ens.fit(X, y, parallel=par, progress=False)
    for kw, exc, name in [({"epochs": -1}, ValueError, "epochs"),
                          ({"batch_size": 0}, ValueError, "batch_size"),
                          ({"l2": "x"}, TypeError, "l2"),
                          ({"max_norm": -1.0}, ValueError, "max_norm"),
                          ({"validation_data": (X[:5], y[:4])}, ValueError, "validation_data"),
                          ({"optimizer": "nope"}, ValueError, "optimizer"),
                          ({"nonsense": 1}, TypeError, "nonsense")]:
        with pytest.raises(exc, match=name):
            ens.fit(X, y, progress=False, parallel=True, **kw)
    assert all(np.array_equal(m.params, b) for m, b in zip(ens.members, before))
    assert all(m.epochs_trained == 0 and m._labels_fitted is None for m in ens.members)
    assert ens.fit(X, y, epochs=0, parallel=True, progress=False)[1].epoch == []


def test_parallel_progress_lines(sparse_data, capsys):
    X, y, _, _ = sparse_data
    ens = fnn.Ensemble(2, [30, 6, 4], seed=0)
    ens.fit(X, y, epochs=2, batch_size=10, optimizer=fnn.SGD(0.05), parallel=True)
    err = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[:2] for line in err] == [
        ["member 0", "epoch 1/2"], ["member 1", "epoch 1/2"],
        ["member 0", "epoch 2/2"], ["member 1", "epoch 2/2"]]
    assert all("loss" in line and "accuracy" in line for line in err)


def test_parallel_kernel_is_imported_only_when_used():
    """The parallel loop costs a cold compile of its own (~3 s): a sequential fit must
    not even import its module."""
    script = r"""
import sys, numpy as np, fastnn as fnn
X = np.random.default_rng(0).random((100, 3)); y = np.arange(100) % 2
fnn.Ensemble(2, [3, 4, 2]).fit(X, y, batch_size=8, progress=False, parallel=False)
fnn.Ensemble(2, [3, 4, 2]).fit(X, y, batch_size=64, progress=False)
print("fastnn.kernels.ensemble" in sys.modules)
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False"]


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_parallel_binary_and_regression_members_equal_their_lone_fits(output):
    """float64 members with float targets: binary 0/1 labels (accuracy by a forward
    pass) and regression values (no accuracy)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 3))
    y = (X[:, 0] > 0).astype(int) if output == "sigmoid" else X @ np.array([[1.0], [-0.5], [0.2]])
    kw = dict(epochs=3, batch_size=8, optimizer=fnn.SGD(0.05, momentum=0.5), progress=False,
              validation_data=(X[:30], y[:30]))
    ens = fnn.Ensemble(2, [3, 5, 1], output=output, dtype="float64", seed=1)
    hists = ens.fit(X, y, parallel=True, **kw)
    for k in range(2):
        net = fnn.Network([3, 5, 1], output=output, dtype="float64", seed=1 + k)
        alone = net.fit(X, y, **dict(kw, optimizer=fnn.SGD(0.05, momentum=0.5)))
        assert np.array_equal(ens.members[k].params, net.params)
        assert _without_seconds(hists[k]) == _without_seconds(alone)
        assert ("val_accuracy" in alone.history) == (output == "sigmoid")
    assert np.array_equal(ens.predict(X), ens.members[0]._decide(ens.predict_proba(X)))


def test_parallel_keeps_the_sequential_optimizer_bookkeeping(sparse_data):
    """Another optimizer object, even for zero epochs, replaces the members' copies on
    both paths, so the first object passed again starts afresh on both."""
    X, y, _, _ = sparse_data
    out = []
    for par in (True, False):
        ens = fnn.Ensemble(2, [30, 6, 4], seed=2)
        a, b = fnn.SGD(0.05, momentum=0.9), fnn.SGD(0.05, momentum=0.9)
        for opt, epochs in ((a, 1), (b, 0), (a, 1)):
            ens.fit(X, y, epochs=epochs, batch_size=10, optimizer=opt, progress=False,
                    parallel=par)
        out.append([m.params.copy() for m in ens.members] + [ens._opts[1][0].step[0]])
    assert all(np.array_equal(p, s) for p, s in zip(out[0], out[1]))
    assert out[0][-1] == 40    # 400 samples / 10: one epoch's steps, not two
