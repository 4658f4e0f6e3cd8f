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


# --- optimizer state ------------------------------------------------------------------

RESUMABLE = [
    pytest.param(lambda: fnn.SGD(lr=0.1, momentum=0.9), id="sgd-momentum"),
    pytest.param(lambda: fnn.SGD(lr=0.1, momentum=0.8, nesterov=True), id="sgd-nesterov"),
    pytest.param(lambda: fnn.SGD(lr=0.1, momentum=0.5, dampening=0.5), id="sgd-dampening"),
    pytest.param(lambda: fnn.Adam(lr=0.01, betas=(0.8, 0.99), amsgrad=True), id="adam"),
    pytest.param(lambda: fnn.AdamW(lr=0.01, weight_decay=0.1), id="adamw"),
    pytest.param(lambda: fnn.RMSprop(lr=0.005, momentum=0.5, centered=True), id="rmsprop"),
    pytest.param(lambda: fnn.Adagrad(lr=0.05, lr_decay=0.01,
                                     initial_accumulator_value=0.1), id="adagrad"),
]


def _problem(n=48):
    rng = np.random.default_rng(11)
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


@pytest.mark.parametrize("make_opt", RESUMABLE)
@pytest.mark.parametrize("kind", ["plain", "layers"])
def test_saved_optimizer_resumes_bitwise(tmp_path, make_opt, kind):
    """Training 2 epochs, saving with the optimizer, loading and training 3 more gives
    bitwise the weights (and state) of 5 epochs uninterrupted: the step count matters
    to Adam's bias correction, Adagrad's decay and the dropout masks, the velocities and
    moments to everything else."""
    X, y = _problem()
    extra = ({"hidden": "prelu", "batch_norm": True} if kind == "layers" else {})
    kw = dict(batch_size=5, progress=False, dropout=0.2 if kind == "layers" else 0.0)

    def network():
        return fnn.Network([5, 7, 3], dtype="float64", seed=4, **extra)

    whole, opt_whole = network(), make_opt()
    whole.fit(X, y, epochs=5, optimizer=opt_whole, **kw)

    first, opt = network(), make_opt()
    first.fit(X, y, epochs=2, optimizer=opt, **kw)
    first.save(tmp_path / "run.npz", optimizer=opt)
    net, back = fnn.load(tmp_path / "run.npz", optimizer=True)
    assert type(back) is type(opt) and repr(back) == repr(opt)
    assert back.step[0] == opt.step[0] == 2 * 10 and np.array_equal(back.state, opt.state)
    assert net.epochs_trained == 2
    net.fit(X, y, epochs=3, optimizer=back, **kw)
    assert np.array_equal(net.params, whole.params)
    assert np.array_equal(net._stats, whole._stats)
    assert np.array_equal(back.state, opt_whole.state) and back.step[0] == opt_whole.step[0]

    # ... and a fresh optimizer would not have given that (the state is what is tested)
    again = fnn.load(tmp_path / "run.npz")
    again.fit(X, y, epochs=3, optimizer=make_opt(), **kw)
    assert not np.array_equal(again.params, whole.params)


def test_optimizer_part_keeps_the_network_readable(tmp_path):
    """The optimizer part changes neither the network's format version nor what a
    plain ``load`` (or an older fastnn, which ignores unknown keys and arrays) reads."""
    X, y = _problem()
    net, opt = fnn.Network([5, 4, 3], seed=1), fnn.Adam(lr=0.01)
    net.fit(X, y, epochs=1, optimizer=opt, progress=False)
    net.save(tmp_path / "with.npz", optimizer=opt)
    net.save(tmp_path / "without.npz")
    with np.load(tmp_path / "with.npz", allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]))
        assert sorted(data.files) == ["meta", "optimizer_state", "params"]
    assert meta["format_version"] == 1
    assert meta["optimizer"] == {"format_version": 1, "class": "Adam", "step": 2,
                                 "params": {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
                                            "weight_decay": 0.0, "amsgrad": False}}
    plain = fnn.load(tmp_path / "with.npz")
    assert isinstance(plain, fnn.Network) and np.array_equal(plain.params, net.params)
    loaded, none = fnn.load(tmp_path / "without.npz", optimizer=True)
    assert none is None and np.array_equal(loaded.params, net.params)
    # an optimizer that has not trained yet is stored without state
    fnn.Network([5, 4, 3]).save(tmp_path / "fresh.npz", optimizer=fnn.SGD(0.3, momentum=0.9))
    _, fresh = fnn.load(tmp_path / "fresh.npz", optimizer=True)
    assert repr(fresh) == repr(fnn.SGD(0.3, momentum=0.9)) and fresh.state is None
    # ensembles store no optimizer
    fnn.Ensemble(2, [5, 3]).save(tmp_path / "ens.npz")
    ens, none = fnn.load(tmp_path / "ens.npz", optimizer=True)
    assert isinstance(ens, fnn.Ensemble) and none is None


def test_optimizers_that_cannot_be_saved(tmp_path):
    X, y = _problem()
    a, b, opt = fnn.Network([5, 3]), fnn.Network([5, 3]), fnn.SGD(0.1, momentum=0.9)
    a.fit(X, y, optimizer=opt, progress=False)
    with pytest.raises(ValueError, match="belongs to another network"):
        b.save(tmp_path / "b.npz", optimizer=opt)
    with pytest.raises(TypeError, match="full-batch"):
        a.save(tmp_path / "a.npz", optimizer=fnn.LBFGS())

    class MySGD(fnn.SGD):
        pass

    with pytest.raises(TypeError, match="fastnn's optimizers"):
        a.save(tmp_path / "a.npz", optimizer=MySGD())
    with pytest.raises(TypeError, match="True or False"):
        fnn.load(tmp_path / "a.npz", optimizer="yes")
    assert os.listdir(tmp_path) == []                # nothing written


def _rewrite(src, dst, meta_change=None, drop=(), **arrays):
    """Copy the model file ``src`` to ``dst`` with its meta dict changed by
    ``meta_change(meta)``, the arrays ``drop`` left out and ``arrays`` replaced."""
    with np.load(src, allow_pickle=False) as data:
        content = {k: data[k] for k in data.files if k not in drop}
    meta = json.loads(bytes(content["meta"]))
    if meta_change is not None:
        meta_change(meta)
    content["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    content.update(arrays)
    np.savez(dst, **content)


def test_corrupt_optimizer_part(tmp_path):
    X, y = _problem()
    net, opt = fnn.Network([5, 4, 3], seed=1), fnn.RMSprop(momentum=0.5)
    net.fit(X, y, epochs=1, optimizer=opt, progress=False)
    good = tmp_path / "good.npz"
    net.save(good, optimizer=opt)

    def set_(key, value):
        return lambda meta: meta["optimizer"].__setitem__(key, value)

    cases = {
        "missing_state": dict(drop=("optimizer_state",)),
        "short_state": dict(optimizer_state=opt.state[:, :-1]),
        "wrong_dtype": dict(optimizer_state=opt.state.astype(np.float64)),
        "bad_step": dict(meta_change=set_("step", -3)),
        "unknown_class": dict(meta_change=set_("class", "os.system")),
        "bad_params": dict(meta_change=set_("params", {"lr": -1.0})),
        "params_not_dict": dict(meta_change=set_("params", [0.1])),
        "not_a_dict": dict(meta_change=lambda m: m.__setitem__("optimizer", [1, 2])),
        "newer": dict(meta_change=set_("format_version", 7)),
    }
    for name, change in cases.items():
        path = tmp_path / f"{name}.npz"
        _rewrite(good, path, **change)
        with pytest.raises(fnn.ModelFileError, match=f"{name}.npz") as info:
            fnn.load(path, optimizer=True)
        if name == "newer":
            assert "newer" in str(info.value)
        # the network itself still loads when the optimizer is not asked for
        assert np.array_equal(fnn.load(path).params, net.params)
