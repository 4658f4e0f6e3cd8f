"""save / load: round trip, atomic writes, and clear errors for bad files."""
import json
import os

import numpy as np
import pytest

import fastnn as fnn


@pytest.fixture
def trained():
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 4)), rng.integers(0, 3, 30)
    net = fnn.Network([4, 6, 5, 3], hidden=["tanh", "leaky_relu"], output="softmax",
                      dtype="float64", seed=9, leaky_slope=0.2)
    net.fit(X, y, epochs=2, batch_size=4, optimizer=fnn.SGD(0.3), progress=False)
    return net, X


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(1)
    X, y = rng.random((20, 3)), rng.integers(0, 2, 20)
    net = fnn.Network([3, 5, 2], hidden="sigmoid", output="sigmoid", dtype=dtype)
    net.fit(X, y, epochs=1, batch_size=5, progress=False)
    path = tmp_path / "model.npz"
    net.save(path)
    back = fnn.load(path)
    assert np.array_equal(back.params, net.params) and back.params.dtype == net.params.dtype
    assert (back.sizes, back.hidden, back.output, back.cost) == (
        net.sizes, net.hidden, net.output, net.cost)
    assert back.epochs_trained == 1
    assert np.array_equal(back.predict(X), net.predict(X))
    assert os.listdir(tmp_path) == ["model.npz"]        # no temporary left behind


def test_overwrite_failure_keeps_old_file(trained, tmp_path, monkeypatch):
    net, X = trained
    path = tmp_path / "m.npz"
    net.save(path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_truncated_and_corrupt_files(trained, tmp_path):
    net, _ = trained
    path = tmp_path / "m.npz"
    net.save(path)
    data = path.read_bytes()
    for name, content in [("half.npz", data[: len(data) // 2]), ("empty.npz", b""),
                          ("junk.npz", b"not a zip file at all" * 10)]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(fnn.ModelFileError, match=name):
            fnn.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        fnn.load(tmp_path / "missing.npz")


def test_newer_format_and_foreign_npz(tmp_path):
    meta = {"format": "fastnn-network", "format_version": 99}
    np.savez(tmp_path / "new.npz", params=np.zeros(3),
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(fnn.ModelFileError, match="newer"):
        fnn.load(tmp_path / "new.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(fnn.ModelFileError, match="not a fastnn model"):
        fnn.load(tmp_path / "other.npz")


def test_pickled_object_is_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", params=np.array([object()], dtype=object),
             meta=np.array([{"x": 1}], dtype=object))
    with pytest.raises(fnn.ModelFileError):
        fnn.load(tmp_path / "evil.npz")


@pytest.mark.parametrize("batch_norm", [False, True])
def test_pickle_and_deepcopy_keep_one_buffer(batch_norm):
    """pickle / deepcopy (joblib, Dask, scikit-learn's clone of a fitted estimator) give
    an independent network whose weight views still share its flat buffer."""
    import copy
    import pickle

    rng = np.random.default_rng(3)
    X, y = rng.random((40, 4)), rng.integers(0, 3, 40)
    net = fnn.Network([4, 6, 3], hidden="prelu" if batch_norm else "tanh",
                      batch_norm=batch_norm, dtype="float64", seed=5)
    net.fit(X, y, epochs=2, batch_size=8, optimizer=fnn.SGD(0.1), progress=False)
    for back in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert back.params is not net.params
        assert np.array_equal(back.params, net.params)
        assert np.array_equal(back._stats, net._stats)
        assert back.epochs_trained == 2 and back.batch_norm == net.batch_norm
        assert np.array_equal(back.predict_proba(X), net.predict_proba(X))
        back.weights[0][0, 0] += 1.0             # a view into back's buffer ...
        assert back.params[0] == net.params[0] + 1.0   # ... and not into net's
    # training a copy goes on exactly as training the original does
    again = pickle.loads(pickle.dumps(net))
    for n in (again, net):
        n.fit(X, y, epochs=1, batch_size=8, optimizer=fnn.SGD(0.1), progress=False)
    assert np.array_equal(again.params, net.params)
    assert np.array_equal(again._stats, net._stats)
