"""Dropout, PReLU and batch normalisation: the compiled kernels (kernels/layers.py) ==
their NumPy twins in reference.py (float64, 1e-10), gradients == finite differences,
masks independent of threads and batching, and the API around them."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import reference as ref
from fastnn.kernels.layers import dropout_scale
from fastnn.network import BLAS_MIN_BATCH

from conftest import make_problem, rel_err, run_with_threads

N = BLAS_MIN_BATCH + 12      # batch N: one batch on the BLAS path


def ref_state(net):
    """The network's parameters as the reference's (Ws, bs, extras, stats), float64."""
    Ws = [w.astype(float) for w in net.weights]
    bs = [b.astype(float) for b in net.biases]
    cp = lambda arrs: [None if a is None else a.astype(float) for a in arrs]  # noqa: E731
    extras = {"alpha": cp(net.alphas), "gamma": cp(net.gammas), "beta": cp(net.betas)}
    stats = {"mean": cp(net.running_means), "var": cp(net.running_vars)}
    return Ws, bs, extras, stats


def flat(Ws, bs, extras):
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(Ws, bs)]
                          + ref._extra_list(extras))


def flat_stats(stats):
    return np.concatenate([np.concatenate([m, v]) for m, v in zip(stats["mean"], stats["var"])
                           if m is not None] + [np.zeros(0)])


def run_both(hidden, batch_norm, dropout, batch_size, optimizer="sgd", n=N, epochs=2,
             output="softmax", cost=None, **reg):
    X, y = make_problem(output, cost or "log_likelihood", n=n, n_in=5, n_out=3, seed=4)
    net = fnn.Network([5, 7, 6, 3], hidden=hidden, output=output, cost=cost,
                      dtype="float64", seed=3, batch_norm=batch_norm, init="lecun")
    # start PReLU slopes and the batch-norm parameters away from their init, so that
    # every term of their gradients shows
    rng = np.random.default_rng(7)
    for group in (net.alphas, net.gammas, net.betas):
        for a in group:
            if a is not None:
                a += 0.3 * rng.standard_normal(a.shape)
    Ws, bs, extras, stats = ref_state(net)
    orders = [net._perm(e, n) for e in range(epochs)]
    if optimizer == "sgd":
        opt, rule = fnn.SGD(0.02, momentum=0.5), ref.SGDRule(0.02, momentum=0.5)
    else:
        opt, rule = fnn.Adam(0.01, weight_decay=0.01), ref.AdamRule(0.01, weight_decay=0.01)
    p0 = net.params.copy()
    net.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=opt, dropout=dropout,
            progress=False, **reg)
    drop = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * 2
    Ws, bs, extras, stats = ref.train_ext(
        Ws, bs, extras, stats, X, y, net.hidden, net.output, net.cost, orders,
        min(batch_size, n), rule, dropout=drop, seed=net._dropout_seed(), **reg)
    expect = flat(Ws, bs, extras)
    assert expect.shape == net.params.shape
    return (rel_err(net.params, expect), rel_err(net.params, p0),
            rel_err(net._stats, flat_stats(stats)) if net._stats.size else 0.0, net,
            (Ws, bs, extras, stats))


#: (hidden, batch_norm, dropout): each layer kind with and without the others (a plain
#: network without dropout takes the kernels of train.py, tested elsewhere)
LAYER_CASES = [(h, bn, p) for h in ("prelu", "relu", "sigmoid", "gelu")
               for bn in (False, True) for p in (0.0, 0.3) if h == "prelu" or bn or p]


@pytest.mark.parametrize("batch_size", [1, 5, N])
@pytest.mark.parametrize("hidden,batch_norm,dropout", LAYER_CASES)
def test_training_matches_reference(hidden, batch_norm, dropout, batch_size):
    err, moved, stat_err, _, _ = run_both(hidden, batch_norm, dropout, batch_size)
    assert err <= 1e-10
    assert moved > 1e-3
    assert stat_err <= 1e-10


@pytest.mark.parametrize("reg", [{"l2": 0.01, "l1": 0.002}, {"max_norm": 0.5},
                                 {"clip_norm": 0.1}])
def test_regularisers_and_adam_with_layers(reg):
    err, moved, stat_err, _, _ = run_both(["prelu", "tanh"], [True, False], [0.2, 0.0], 4,
                                          optimizer="adam", **reg)
    assert err <= 1e-10 and stat_err <= 1e-10 and moved > 1e-3


@pytest.mark.parametrize("output,cost", [("sigmoid", "cross_entropy"),
                                         ("identity", "quadratic")])
def test_other_outputs_with_layers(output, cost):
    err, moved, stat_err, _, _ = run_both("prelu", True, 0.1, 6, output=output, cost=cost)
    assert err <= 1e-10 and stat_err <= 1e-10 and moved > 1e-3


def test_batches_larger_than_a_chunk_without_batch_norm(monkeypatch):
    """Without batch norm a batch is split into chunks whose gradients add up."""
    import fastnn.network as network
    monkeypatch.setattr(network, "CHUNK", 7)
    err, moved, _, _, _ = run_both("prelu", False, 0.25, 20)
    assert err <= 1e-10 and moved > 1e-3


def test_inference_uses_running_statistics_and_no_dropout():
    *_, net, (Ws, bs, extras, stats) = run_both("prelu", True, 0.5, 8)
    X, y = make_problem("softmax", "log_likelihood", n=30, n_in=5, n_out=3, seed=11)
    expect = ref.predict_proba_ext(Ws, bs, X, net.hidden, net.output, extras, stats)
    assert rel_err(net.predict_proba(X), expect) <= 1e-10
    # evaluate's cost is the inference cost
    T = ref.targets(y, 3)
    z = ref.forward_ext(Ws, bs, X, net.hidden, net.output, extras, stats)[0]["z"][-1]
    loss = ref.sample_costs("log_likelihood", z, expect, T).mean()
    assert abs(net.evaluate(X, y)["loss"] - loss) <= 1e-10 * abs(loss)
    assert net.evaluate(X, y)["accuracy"] == np.mean(expect.argmax(1) == y)


def test_dropout_mask_kernel_is_the_reference_hash():
    rows = np.array([0, 5, 3, 123456789], np.int64)
    for dtype in (np.float64, np.float32):
        M = np.empty((4, 37), dtype)
        dropout_scale(M, rows, 987654321, 42, 1, 0.3)
        expect = ref.dropout_mask(987654321, 42, rows, 1, 37, 0.3)
        assert np.array_equal(M, expect.astype(dtype))


def test_dropout_masks_drop_the_rate_and_vary_with_every_counter():
    rows = np.arange(2000)
    m = ref.dropout_mask(1, 2, rows, 0, 100, 0.4)
    assert abs((m == 0).mean() - 0.4) < 0.01
    assert np.allclose(m[m > 0], 1 / 0.6)
    for other in (ref.dropout_mask(2, 2, rows, 0, 100, 0.4),      # seed
                  ref.dropout_mask(1, 3, rows, 0, 100, 0.4),      # step
                  ref.dropout_mask(1, 2, rows, 1, 100, 0.4),      # layer
                  ref.dropout_mask(1, 2, rows + 1, 0, 100, 0.4)):  # sample
        agree = (other == 0) == (m == 0)
        assert 0.45 < agree.mean() < 0.6     # independent: P(agree) = .4^2 + .6^2 = .52


def test_dropout_does_not_depend_on_the_batch_split(monkeypatch):
    """A sample's mask depends on (seed, step, layer, row, unit): chunking a batch into
    several pieces gives the same weights up to the order of the gradient's sums."""
    import fastnn.network as network
    X, y = make_problem("softmax", "log_likelihood", n=40, n_in=5, n_out=3, seed=2)
    out = []
    for chunk in (512, 3):
        monkeypatch.setattr(network, "CHUNK", chunk)
        net = fnn.Network([5, 8, 3], hidden="relu", dtype="float64", seed=1)
        net.fit(X, y, epochs=2, batch_size=10, optimizer=fnn.SGD(0.1), dropout=0.5,
                progress=False)
        out.append(net.params.copy())
    assert rel_err(out[0], out[1]) <= 1e-12


SCRIPT = r"""
import hashlib, numpy as np, fastnn as fnn
rng = np.random.default_rng(0)
X = rng.random((300, 12)).astype(np.float32)
y = rng.integers(0, 4, 300)
out = []
for batch, bn in ((1, False), (16, True), (100, True)):
    net = fnn.Network([12, 32, 16, 4], hidden=["prelu", "relu"], batch_norm=bn, seed=3)
    net.fit(X, y, epochs=2, batch_size=batch, optimizer=fnn.SGD(0.05, momentum=0.9),
            dropout=[0.3, 0.1], progress=False)
    out.append(hashlib.sha256(net.params.tobytes() + net._stats.tobytes()).hexdigest())
print(" ".join(out))
"""


def test_bitwise_identical_on_one_and_two_threads():
    outs = [run_with_threads(SCRIPT, n) for n in (1, 2)]
    assert len(outs[0]) == 3
    assert outs[0] == outs[1]


def test_same_seed_same_masks_other_seed_other_weights():
    X, y = make_problem("softmax", "log_likelihood", n=50, n_in=5, n_out=3, seed=5)

    def train(seed):
        net = fnn.Network([5, 9, 3], dtype="float64", seed=seed)
        net.params[...] = fnn.Network([5, 9, 3], dtype="float64", seed=0).params
        net.fit(X, y, epochs=2, batch_size=5, optimizer=fnn.SGD(0.1), dropout=0.5,
                shuffle=False, progress=False)
        return net.params.copy()

    assert np.array_equal(train(1), train(1))
    assert not np.array_equal(train(1), train(2))   # only the masks differ


# --- gradients ---------------------------------------------------------------------------
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("hidden", [["prelu", "prelu"], ["tanh", "prelu"], ["gelu", "relu"]])
def test_gradients_match_finite_differences(hidden, batch_norm):
    X, y = make_problem("softmax", "log_likelihood", n=12, n_in=4, n_out=3, seed=3)
    X += 0.1    # no exact zeros in relu/prelu kinks
    net = fnn.Network([4, 6, 5, 3], hidden=hidden, batch_norm=batch_norm, dtype="float64",
                      seed=2)
    rng = np.random.default_rng(0)
    for group in (net.alphas, net.gammas, net.betas):
        for a in group:
            if a is not None:
                a += 0.3 * rng.standard_normal(a.shape)
    loss, grad = net.gradients(X, y, l2=0.01)
    p = net.params
    num = np.empty_like(grad)
    h = 1e-6
    for i in range(p.size):
        old = p[i]
        p[i] = old + h
        up = net.gradients(X, y, l2=0.01)[0]
        p[i] = old - h
        down = net.gradients(X, y, l2=0.01)[0]
        p[i] = old
        num[i] = (up - down) / (2 * h)
    assert np.abs(num - grad).max() <= 1e-6 * max(1.0, np.abs(grad).max())
    extra = ~net._weight_mask & (np.arange(p.size) >= net._layout_x[-1, 0])
    if extra.any():
        assert np.abs(grad[extra]).max() > 1e-4      # the extra parameters do learn


def test_gradients_match_reference_in_training_mode():
    X, y = make_problem("softmax", "log_likelihood", n=20, n_in=5, n_out=3, seed=8)
    net = fnn.Network([5, 7, 6, 3], hidden=["prelu", "sigmoid"], batch_norm=True,
                      dtype="float64", seed=1)
    Ws, bs, extras, _ = ref_state(net)
    loss, dWs, dbs, dex, _ = ref.loss_and_gradients_ext(Ws, bs, X, y, net.hidden,
                                                        net.output, net.cost, extras)
    got_loss, grad = net.gradients(X, y)
    assert abs(got_loss - loss) <= 1e-12 * abs(loss)
    assert rel_err(grad, flat(dWs, dbs, dex)) <= 1e-10
    before = net._stats.copy()
    net.gradients(X, y)
    assert np.array_equal(net._stats, before)      # running statistics untouched


def test_l1_in_gradients():
    X, y = make_problem("softmax", "log_likelihood", n=20, n_in=5, n_out=3, seed=8)
    net = fnn.Network([5, 7, 3], dtype="float64", seed=1)
    loss0, g0 = net.gradients(X, y)
    loss, g = net.gradients(X, y, l1=0.1)
    w = net.params[net._weight_mask]
    assert loss == pytest.approx(loss0 + 0.1 * np.abs(w).sum(), rel=1e-12)
    assert np.allclose(g[net._weight_mask], g0[net._weight_mask] + 0.1 * np.sign(w))
    assert np.array_equal(g[~net._weight_mask], g0[~net._weight_mask])
    with pytest.raises(ValueError, match="l1"):
        net.gradients(X, y, l1=-1.0)


def test_float32_agrees_with_float64():
    X, y = make_problem("softmax", "log_likelihood", n=64, n_in=5, n_out=3, seed=4)
    nets = []
    for dtype in ("float64", "float32"):
        net = fnn.Network([5, 16, 8, 3], hidden=["prelu", "relu"], batch_norm=True,
                          dtype=dtype, seed=2)
        net.fit(X, y, epochs=2, batch_size=8, optimizer=fnn.SGD(0.05, momentum=0.9),
                dropout=0.2, progress=False)
        nets.append(net)
    assert rel_err(nets[1].params, nets[0].params) <= 1e-4
    assert rel_err(nets[1]._stats, nets[0]._stats) <= 1e-4


# --- API ---------------------------------------------------------------------------------
def test_parameters_views_and_init():
    net = fnn.Network([4, 6, 5, 2], hidden=["prelu", "relu"], batch_norm=[False, True])
    assert net.alphas[0].shape == (6,) and net.alphas[1] is None
    assert np.all(net.alphas[0] == 0.25)
    assert net.gammas[0] is None and np.all(net.gammas[1] == 1) and np.all(net.betas[1] == 0)
    assert np.all(net.running_means[1] == 0) and np.all(net.running_vars[1] == 1)
    assert net.n_params == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 2 + 2 + 6 + 2 * 5
    net.alphas[0][0] = 0.5                     # a view: writes reach params
    assert net.params[net._ext[0, 0]] == 0.5
    assert net.init_resolved == "he"           # prelu is of the relu family
    plain = fnn.Network([4, 6, 5, 2], hidden=["prelu", "relu"], seed=0)
    assert np.array_equal(net.weights[0], plain.weights[0])   # same init with or without


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"batch_norm": "yes"}, TypeError, "batch_norm"),
    ({"batch_norm": [True]}, ValueError, "batch_norm has 1 entries"),
    ({"batch_norm": [True, 1]}, TypeError, r"batch_norm\[1\]"),
    ({"batch_norm_momentum": 1.5}, ValueError, "batch_norm_momentum"),
    ({"batch_norm_eps": 0.0}, ValueError, "batch_norm_eps"),
    ({"hidden": "prelu2"}, ValueError, "hidden"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fnn.Network([4, 6, 5, 2], **kwargs)


def test_batch_norm_needs_a_hidden_layer():
    with pytest.raises(ValueError, match="needs a hidden layer"):
        fnn.Network([4, 2], batch_norm=True)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"dropout": -0.1}, ValueError, "dropout"),
    ({"dropout": float("nan")}, ValueError, "dropout"),
    ({"dropout": "0.5"}, TypeError, "dropout"),
    ({"dropout": [0.5]}, ValueError, "dropout has 1 entries"),
    ({"dropout": [0.5, 1.0]}, ValueError, r"dropout\[1\]"),
    ({"dropout": 0.5, "optimizer": "lbfgs"}, ValueError, "dropout"),
])
def test_bad_dropout_changes_nothing(kwargs, exc, match):
    X, y = make_problem("softmax", "log_likelihood", n=20, n_in=4, n_out=2)
    net = fnn.Network([4, 6, 5, 2])
    before = net.params.copy()
    with pytest.raises(exc, match=match):
        net.fit(X, y, progress=False, **kwargs)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


def test_dropout_needs_a_hidden_layer():
    X, y = make_problem("softmax", "log_likelihood", n=20, n_in=4, n_out=2)
    with pytest.raises(ValueError, match="needs a hidden layer"):
        fnn.Network([4, 2]).fit(X, y, dropout=0.5, progress=False)
    fnn.Network([4, 2]).fit(X, y, dropout=0.0, progress=False)    # 0 is fine


def test_batch_norm_refuses_full_batch_optimizers():
    X, y = make_problem("softmax", "log_likelihood", n=20, n_in=4, n_out=2)
    net = fnn.Network([4, 6, 2], batch_norm=True)
    with pytest.raises(ValueError, match="batch_norm"):
        net.fit(X, y, optimizer="lbfgs", progress=False)


def test_prelu_trains_with_lbfgs():
    X, _ = make_problem("softmax", "log_likelihood", n=60, n_in=4, n_out=2, seed=1)
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    net = fnn.Network([4, 8, 2], hidden="prelu", dtype="float64", seed=0)
    start = net.evaluate(X, y)["loss"]
    hist = net.fit(X, y, epochs=30, optimizer="lbfgs", progress=False)
    assert hist.history["loss"][-1] < 0.5 * start
    assert not np.all(net.alphas[0] == 0.25)


def test_divergence_restores_running_statistics():
    X, y = make_problem("softmax", "log_likelihood", n=40, n_in=4, n_out=2, seed=1)
    net = fnn.Network([4, 8, 2], batch_norm=True, seed=0)
    net.fit(X, y, epochs=1, batch_size=8, optimizer=fnn.SGD(0.01), progress=False)
    params, stats = net.params.copy(), net._stats.copy()
    with pytest.raises(fnn.DivergenceError) as info:
        net.fit(X, y, epochs=1, batch_size=8, optimizer=fnn.SGD(1e30), progress=False)
    assert info.value.epoch == 2
    assert np.array_equal(net.params, params) and np.array_equal(net._stats, stats)


def test_save_and_load_keep_layers_and_running_statistics(tmp_path):
    X, y = make_problem("softmax", "log_likelihood", n=40, n_in=4, n_out=3, seed=1)
    net = fnn.Network([4, 8, 6, 3], hidden=["prelu", "elu"], batch_norm=[True, False],
                      batch_norm_momentum=0.2, batch_norm_eps=1e-3, seed=5)
    net.fit(X, y, epochs=2, batch_size=8, optimizer="adam", dropout=0.2, progress=False)
    net.save(tmp_path / "m.npz")
    back = fnn.load(tmp_path / "m.npz")
    assert back.batch_norm == [True, False] and back.hidden == ["prelu", "elu"]
    assert back.batch_norm_momentum == 0.2 and back.batch_norm_eps == 1e-3
    assert np.array_equal(back.params, net.params)
    assert np.array_equal(back._stats, net._stats)
    assert np.array_equal(back.predict_proba(X), net.predict_proba(X))


def test_plain_network_files_stay_at_format_version_1(tmp_path):
    import json
    fnn.Network([3, 4, 2]).save(tmp_path / "p.npz")
    fnn.Network([3, 4, 2], batch_norm=True).save(tmp_path / "b.npz")
    versions = []
    for name in ("p.npz", "b.npz"):
        with np.load(tmp_path / name) as data:
            versions.append(json.loads(bytes(data["meta"]))["format_version"])
    assert versions == [1, 2]


def test_ensemble_of_batch_norm_members_saves_and_loads(tmp_path):
    X, y = make_problem("softmax", "log_likelihood", n=40, n_in=4, n_out=3, seed=1)
    ens = fnn.Ensemble(2, [4, 8, 3], hidden="prelu", batch_norm=True, seed=3)
    ens.fit(X, y, epochs=2, batch_size=8, optimizer="adam", dropout=0.2, progress=False)
    ens.save(tmp_path / "e.npz")
    back = fnn.load(tmp_path / "e.npz")
    for a, b in zip(back.members, ens.members):
        assert np.array_equal(a.params, b.params) and np.array_equal(a._stats, b._stats)
    assert np.array_equal(back.predict_proba(X), ens.predict_proba(X))


def test_ensemble_with_layers_or_dropout_trains_sequentially():
    X, y = make_problem("softmax", "log_likelihood", n=40, n_in=4, n_out=3, seed=1)
    for kwargs, fit_kw, needle in ((dict(hidden="prelu"), {}, "PReLU"),
                                   ({}, dict(dropout=0.2), "dropout")):
        ens = fnn.Ensemble(2, [4, 8, 3], seed=3, **kwargs)
        with pytest.raises(ValueError, match=needle):
            ens.fit(X, y, epochs=1, batch_size=8, parallel=True, progress=False, **fit_kw)
        ens.fit(X, y, epochs=1, batch_size=8, progress=False, **fit_kw)     # auto
        alone = fnn.Network([4, 8, 3], seed=4, **kwargs)
        alone.fit(X, y, epochs=1, batch_size=8, progress=False, **fit_kw)
        assert np.array_equal(ens.members[1].params, alone.params)
