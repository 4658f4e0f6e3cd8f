"""fastnn.Ensemble: members from different seeds, averaged outputs, save/load."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn.io import ModelFileError


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
