"""Model files kept from fastnn 0.1.0 (``tests/data``) still load and give the same outputs.

The files -- a plain network in float32 and one in float64 (format version 1), one with
PReLU and batch norm (version 2), an ensemble (version 1) and a network saved with its
Adam state (version 1 with the optimizer part, version 1) -- were written once by
``tests/data/make_models.py``; ``tests/data/expected.json`` holds what they were
written from and what they gave. **Later versions of fastnn must keep reading them:**
when this test fails, fix the reader, never the files (a new format version adds new
files beside these, written by the version that introduces it).

Parameters must come back bit for bit; outputs and continued training are compared
with a tolerance, since later kernels may sum in another order.
"""
import hashlib
import json
import os

import numpy as np
import pytest

import fastnn as fnn

DATA = os.path.join(os.path.dirname(__file__), "data")
with open(os.path.join(DATA, "expected.json")) as _f:
    EXPECTED = json.load(_f)
RTOL = {"float32": 2e-5, "float64": 1e-10}


def describe(net):
    return {"sizes": net.sizes, "hidden": net.hidden, "output": net.output,
            "cost": net.cost, "dtype": net.dtype.name, "seed": net.seed,
            "leaky_slope": net.leaky_slope, "epochs_trained": net.epochs_trained,
            "batch_norm": net.batch_norm}


def test_the_kept_files_are_there_and_small():
    names = sorted(EXPECTED["files"])
    assert names == sorted(["plain_float32.npz", "plain_float64.npz",
                            "prelu_batchnorm.npz", "ensemble.npz", "adam_state.npz"])
    versions = {(e["format"], e["format_version"]) for e in EXPECTED["files"].values()}
    assert versions == {("fastnn-network", 1), ("fastnn-network", 2),
                        ("fastnn-ensemble", 1)}
    for name in names:
        assert os.path.getsize(os.path.join(DATA, name)) < 8192


@pytest.mark.parametrize("name", sorted(EXPECTED["files"]))
def test_kept_file_loads_and_predicts(name):
    entry = EXPECTED["files"][name]
    model = fnn.load(os.path.join(DATA, name))
    X_new = np.array(EXPECTED["X_new"])
    if entry["format"] == "fastnn-ensemble":
        assert isinstance(model, fnn.Ensemble)
        assert model.seeds == entry["seeds"]
        assert [describe(m) for m in model.members] == entry["members"]
        params = np.concatenate([m.params for m in model.members])
        dtype = model.members[0].dtype.name
    else:
        assert isinstance(model, fnn.Network)
        assert describe(model) == entry["network"]
        params = model.params
        dtype = model.dtype.name
    assert params.size == entry["n_params"]
    assert hashlib.sha256(params.tobytes()).hexdigest() == entry["params_sha256"]
    np.testing.assert_allclose(model.predict_proba(X_new), entry["predict_proba"],
                               rtol=RTOL[dtype], atol=RTOL[dtype])
    assert model.predict(X_new).tolist() == entry["predict"]
    # with optimizer=True, a file without one gives None
    if "optimizer" not in entry:
        assert fnn.load(os.path.join(DATA, name), optimizer=True)[1] is None


def test_kept_optimizer_state_continues_training():
    entry = EXPECTED["files"]["adam_state.npz"]
    X, y = np.array(EXPECTED["X"]), np.array(EXPECTED["y"])
    net, opt = fnn.load(os.path.join(DATA, "adam_state.npz"), optimizer=True)
    assert repr(opt) == entry["optimizer"]["repr"]
    assert opt.step[0] == entry["optimizer"]["step"]
    net.fit(X, y, optimizer=opt, **EXPECTED["continue_fit"])
    after = np.array(entry["optimizer"]["params_after_continuing"])
    np.testing.assert_allclose(net.params, after, rtol=1e-10, atol=1e-12)
    assert opt.step[0] == entry["optimizer"]["step"] + len(y) // 4
    # the stored state is what made the difference: a fresh Adam goes elsewhere
    fresh = fnn.load(os.path.join(DATA, "adam_state.npz"))
    fresh.fit(X, y, optimizer=fnn.Adam(lr=0.01, betas=(0.8, 0.99), amsgrad=True),
              **EXPECTED["continue_fit"])
    assert np.abs(fresh.params - after).max() > 1e-4
