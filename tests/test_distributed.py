"""fastnn.distributed.fit_many on a LocalCluster of two worker processes: every network
bitwise equal to the same network trained here, in spec order; checks before anything
is sent; the data scattered once; failures named by their spec."""
import copy
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask
import numba
import numpy as np
import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin
from threadpoolctl import threadpool_limits

import fastnn as fnn
from fastnn.distributed import fit_many


@pytest.fixture(scope="module")
def cluster():
    # allowed-failures 0: a task whose worker dies fails at once (test_worker_death)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    try:
        yield cluster, client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def client(cluster):
    return cluster[1]


class GraphLog(SchedulerPlugin):
    """Records, for every task submitted, its dependencies as the scheduler sees them."""

    def __init__(self):
        self.tasks = {}

    def update_graph(self, scheduler, *, tasks, **kwargs):
        for key in tasks:
            ts = scheduler.tasks.get(key)
            if ts is not None:
                self.tasks[key] = [(dep.key, dep.run_spec is None, dep.nbytes,
                                    len(dep.who_has or ())) for dep in ts.dependencies]


@pytest.fixture
def graph_log(cluster):
    scheduler = cluster[0].scheduler   # the scheduler runs in this process
    log = GraphLog()
    scheduler.add_plugin(log, name="fastnn-test-graph-log")
    yield log
    scheduler.remove_plugin(name="fastnn-test-graph-log")


def scatters(cluster):
    """How many scatter calls the scheduler has served so far."""
    return sum(1 for _, msg in cluster[0].scheduler.get_events("all")
               if isinstance(msg, dict) and msg.get("action") == "scatter")


def problem(n=120, n_in=4, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    X[rng.random(X.shape) < 0.3] = 0.0
    return X, rng.integers(0, n_out, n)


def train_here(spec, X, y, **fit_kwargs):
    net = fnn.Network(**spec)
    history = net.fit(X, y, progress=False, **copy.deepcopy(fit_kwargs))
    return net, history


def assert_same(net, ref):
    assert (net.sizes, net.hidden, net.output, net.dtype, net.seed, net.epochs_trained) == (
        ref.sizes, ref.hidden, ref.output, ref.dtype, ref.seed, ref.epochs_trained)
    assert np.array_equal(net.params, ref.params)
    assert np.array_equal(net._stats, ref._stats)


def assert_same_history(h, ref):
    assert h.epoch == ref.epoch and set(h.history) == set(ref.history)
    for key in ref.history:
        if key != "seconds":
            assert h.history[key] == ref.history[key], key


GRID = [
    {"sizes": [4, 16, 3], "hidden": "relu", "seed": 0},
    {"sizes": [4, 24, 12, 3], "hidden": ["tanh", "gelu"], "seed": 1},
    {"sizes": [4, 8, 3], "hidden": "sigmoid", "output": "sigmoid", "dtype": "float64",
     "seed": 2},
    {"sizes": [4, 12, 3], "hidden": "prelu", "batch_norm": True, "seed": 3},
    {"sizes": [4, 10, 3], "hidden": "leaky_relu", "init": "xavier", "seed": 4},
    {"sizes": [4, 16, 3], "hidden": "relu", "seed": 0},      # the same as specs[0]
]


@pytest.mark.parametrize("fit_kwargs", [
    dict(epochs=3, batch_size=10, optimizer=fnn.SGD(lr=0.1, momentum=0.9, nesterov=True)),
    dict(epochs=2, batch_size=1, optimizer=fnn.Adam(lr=0.01), l2=1e-3),
    dict(epochs=2, batch_size=32, optimizer=fnn.RMSprop(lr=0.01, centered=True),
         dropout=0.1, schedule=lambda e: 0.01 / (1 + e)),
], ids=["sgd-nesterov-b10", "adam-b1-l2", "rmsprop-b32-dropout-schedule"])
def test_grid_equals_local_training(client, fit_kwargs):
    """Sizes, activations, dtypes, PReLU + batch norm, seeds and identical specs, under
    three optimizers and batch sizes below 48: every network and history is bitwise the
    one trained here, in spec order."""
    X, y = problem()
    Xv, yv = problem(n=30, seed=1)
    # an optimizer object that has trained before: its state must not leak into the fits
    used = fit_kwargs["optimizer"]
    fnn.Network([4, 3]).fit(X, y, optimizer=used, progress=False)
    nets, hists = fit_many(client, GRID, X, y, return_history=True, progress=False,
                           validation_data=(Xv, yv), **fit_kwargs)
    assert len(nets) == len(hists) == len(GRID)
    for spec, net, hist in zip(GRID, nets, hists):
        ref, ref_hist = train_here(spec, X, y, validation_data=(Xv, yv), **fit_kwargs)
        assert_same(net, ref)
        assert_same_history(hist, ref_hist)
        assert "val_loss" in hist.history
    assert nets[0] is not nets[5] and np.array_equal(nets[0].params, nets[5].params)


def test_per_spec_fit_arguments(client):
    """A spec's "fit" dict overrides fit_kwargs for that network: a sweep of learning
    rates, batch sizes and optimizers in one call."""
    X, y = problem()
    base = {"sizes": [4, 12, 3], "hidden": "tanh", "seed": 3}
    specs = [dict(base, fit={"optimizer": fnn.SGD(lr=lr, momentum=0.9)})
             for lr in (0.01, 0.1)]
    specs += [dict(base, fit={"batch_size": 1, "epochs": 1}),
              dict(base, fit={"optimizer": "adam", "l2": 1e-3}), base]
    common = dict(epochs=2, batch_size=8, optimizer=fnn.SGD(lr=0.05))
    nets = fit_many(client, specs, X, y, progress=False, **common)
    for spec, net in zip(specs, nets):
        spec = dict(spec)
        own = spec.pop("fit", {})
        assert_same(net, train_here(spec, X, y, **dict(common, **own))[0])
    assert not np.array_equal(nets[0].params, nets[1].params)


BLAS_SPEC = {"sizes": [200, 128, 10], "hidden": "relu", "seed": 1}


def blas_problem():
    # large enough that OpenBLAS would split its products over threads (measured: with
    # [64, 64, 10] it runs one thread whatever it is allowed)
    rng = np.random.default_rng(5)
    return rng.random((384, 200)), rng.integers(0, 10, 384)


# batches of 192 rows: the BLAS path, each batch in two parts of 96 rows that a worker
# computes on its two Numba threads at once
BLAS_FIT = dict(epochs=1, batch_size=192, optimizer=fnn.SGD(lr=0.05, momentum=0.9))


@pytest.fixture(scope="module")
def blas_network(cluster):
    X, y = blas_problem()
    return fit_many(cluster[1], [BLAS_SPEC], X, y, progress=False, **BLAS_FIT)[0]


@pytest.mark.parametrize("openblas_threads", [1, 2])
def test_blas_path_equals_local_training_whatever_the_threads(blas_network,
                                                              openblas_threads):
    """Batches of 48 or more go through BLAS, in parts spread over Numba's threads, each
    part's products on one OpenBLAS thread whatever OpenBLAS is allowed: the worker's
    network (Dask's nanny starts workers with OPENBLAS_NUM_THREADS=1) is bitwise the
    local one, trained here with 1 or 2 OpenBLAS threads and one Numba thread."""
    X, y = blas_problem()
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(openblas_threads):
            ref, _ = train_here(BLAS_SPEC, X, y, **BLAS_FIT)
    finally:
        numba.set_num_threads(before)
    assert_same(blas_network, ref)


def test_data_scattered_once_one_task_per_network(cluster, graph_log):
    """One scatter call; every fit task depends on the same scattered X and y (data, not
    tasks, held by both workers), none carries the data itself; one task per network,
    identical specs included."""
    client = cluster[1]
    X, y = problem(n=400)
    X = X.astype(np.float32)
    specs = [{"sizes": [4, 8, 3], "seed": 0}, {"sizes": [4, 8, 3], "seed": 0},
             {"sizes": [4, 6, 3], "hidden": "tanh", "seed": 1}]
    before = scatters(cluster)
    # Dask's Active Memory Manager, every 2 s, drops the replicas beyond one per waiting
    # task: between two fits' submissions it left the next task 1 holder (seen in CI),
    # and after the fits 1 (seen here). Stopped for this fit, it leaves every task the
    # holders the broadcast made (Scheduler.scatter returns after replicating).
    amm = cluster[0].scheduler.extensions["amm"]
    running = amm.running
    amm.stop()
    try:
        nets = fit_many(client, specs, X, y, epochs=1, batch_size=16, progress=False)
    finally:
        if running:
            amm.start()
    assert scatters(cluster) == before + 1
    fits = {k: deps for k, deps in graph_log.tasks.items() if k.startswith("fastnn-fit-")}
    assert len(fits) == len(specs)
    data = {tuple(sorted(deps)) for deps in fits.values()}
    assert len(data) == 1                                   # all the same two keys ...
    (deps,) = data
    assert len(deps) == 2 and all(scattered for _, scattered, _, _ in deps)   # ... scattered
    assert sorted(nbytes for _, _, nbytes, _ in deps)[-1] >= X.nbytes        # X itself
    assert all(holders == 2 for _, _, _, holders in deps)                  # on both workers
    # the warm-up tasks carry a few rows only
    warm = [k for k in graph_log.tasks if k.startswith("fastnn-warm-up-")]
    assert len(warm) == 2
    for spec, net in zip(specs, nets):
        assert_same(net, train_here(spec, X, y, epochs=1, batch_size=16)[0])


class _Locked:
    """A callback that cannot be pickled (it holds a lock)."""

    def __init__(self):
        import threading
        self.lock = threading.Lock()

    def on_epoch_end(self, epoch, metrics, net):
        return False


def test_bad_specs_and_arguments_are_refused_before_anything_is_sent(cluster, graph_log):
    client = cluster[1]
    X, y = problem()
    good = {"sizes": [4, 8, 3], "seed": 0}
    keys_before, scatters_before = set(cluster[0].scheduler.tasks), scatters(cluster)
    cases = [
        ([good, good, {"sizes": [4, 8, 3], "hidden": "nope"}], {}, ValueError,
         r"specs\[2\] .*'nope'"),
        ([good, [4, 8, 3]], {}, TypeError, r"specs\[1\] must be a dict"),
        ([good, {"sizes": [5, 8, 3]}], {}, ValueError, r"specs\[1\] .*5"),
        ([good, {"sizes": [4, 8, 2], "seed": 1}], {}, ValueError, r"specs\[1\] .*labels"),
        ([good, {"size": [4, 8, 3]}], {}, TypeError, r"specs\[1\] .*size"),
        ([good], {"optimizer": "nope"}, ValueError, r"specs\[0\] .*nope"),
        ([good], {"batch_size": 0}, ValueError, "batch_size"),
        ([good], {"epochs": 3, "schedule": lambda e: 0.1 if e < 2 else -1.0}, ValueError,
         "epoch 2"),
        ([good], {"callbacks": [_Locked()]}, TypeError, "pickle"),
        (good, {}, TypeError, "list of dicts"),
        ([good, dict(good, fit={"optimizer": "nope"})], {}, ValueError,
         r"specs\[1\] .*nope"),
        ([dict(good, fit=[1])], {}, TypeError, r"specs\[0\] .*'fit' must be a dict"),
        ([dict(good, fit={"validation_data": (X, y)})], {}, TypeError,
         r"specs\[0\] .*validation_data"),
    ]
    for specs, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            fit_many(client, specs, X, y, progress=False, **kwargs)
    with pytest.raises(ValueError, match="errors"):
        fit_many(client, [good], X, y, errors="ignore")
    assert graph_log.tasks == {}
    assert scatters(cluster) == scatters_before
    assert set(cluster[0].scheduler.tasks) <= keys_before   # (earlier ones may go)
    assert fit_many(client, [], X, y) == []


DIVERGING = [{"sizes": [4, 8, 3], "seed": 0},
             {"sizes": [4, 64, 64, 3], "hidden": "relu", "init": "gaussian", "seed": 0},
             {"sizes": [4, 6, 3], "hidden": "tanh", "seed": 2}]
DIVERGING_FIT = dict(epochs=3, batch_size=8, optimizer=fnn.SGD(lr=0.5, momentum=0.9))


def test_a_diverging_spec_is_named(client):
    X, y = problem()
    X *= 10.0
    with pytest.raises(fnn.DivergenceError,
                       match=r"^specs\[1\] .*diverged in epoch 1") as info:
        fit_many(client, DIVERGING, X, y, progress=False, **DIVERGING_FIT)
    assert info.value.epoch == 1 and info.value.history.epoch == []   # pickled whole
    nets, hists = fit_many(client, DIVERGING, X, y, errors="return", return_history=True,
                           progress=False, **DIVERGING_FIT)
    assert isinstance(nets[1], fnn.DivergenceError) and hists[1] is None
    assert str(nets[1]).startswith("specs[1] ")
    for i in (0, 2):
        assert_same(nets[i], train_here(DIVERGING[i], X, y, **DIVERGING_FIT)[0])


def test_ensemble_of_seeds(client, capsys):
    """Specs that differ in the seed alone: the members of fastnn.Ensemble, bitwise;
    an Ensemble of them predicts as the one trained here. progress=True prints a line
    per network."""
    X, y = problem()
    seeds = [5, 6, 7]
    kwargs = dict(epochs=2, batch_size=16, optimizer=fnn.Adam(lr=0.01))
    nets = fit_many(client, [{"sizes": [4, 16, 3], "hidden": "silu", "seed": s}
                             for s in seeds], X, y, **kwargs)
    err = capsys.readouterr().err
    assert sorted(line.split()[1] for line in err.splitlines()) == ["1/3", "2/3", "3/3"]
    here = fnn.Ensemble(3, [4, 16, 3], hidden="silu", seeds=seeds)
    here.fit(X, y, progress=False, **kwargs)
    for net, member in zip(nets, here.members):
        assert_same(net, member)
    there = fnn.Ensemble(3, [4, 16, 3], hidden="silu", seeds=seeds)
    there.members = nets
    assert np.array_equal(there.predict_proba(X), here.predict_proba(X))


def test_sweep_script(cluster):
    """scripts/sweep.py as a user runs it, against a running scheduler (MNIST from
    $FASTNN_DATA, the cache or a download, as for scripts/train_mnist.py's tests)."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "sweep.py"
    out = subprocess.run([sys.executable, str(script), "--scheduler",
                          cluster[0].scheduler_address, "--seeds", "2", "--epochs", "1",
                          "--limit", "2000"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("2 networks, 2000 training images, 1 epochs, on 2 workers")
    assert re.fullmatch(r"784-100-10 seed 1  val 0\.\d{4}  test 0\.\d{4}  trained in .*",
                        lines[2])
    acc = float(re.search(r"ensemble of 2: test accuracy (\d\.\d+)", lines[-1]).group(1))
    assert acc > 0.8


def test_client_must_be_a_client():
    X, y = problem()
    with pytest.raises(TypeError, match="Client"):
        fit_many("tcp://127.0.0.1:8786", [{"sizes": [4, 3]}], X, y)


def test_grid_search_on_dask(cluster, graph_log):
    """scikit-learn's GridSearchCV over fastnn.sklearn.MLPClassifier through joblib's
    Dask backend: its fits run on the workers (tasks reach the scheduler) and give the
    same scores, best parameters and best network as the search run here."""
    import warnings

    import joblib
    from sklearn.model_selection import GridSearchCV

    from fastnn.sklearn import MLPClassifier

    X, y = problem(n=150)
    grid = {"hidden_layer_sizes": [(8,), (16, 8)], "learning_rate_init": [1e-3, 3e-2],
            "activation": ["relu", "tanh"]}

    def search():
        return GridSearchCV(MLPClassifier(max_iter=8, batch_size=16, random_state=0),
                            grid, cv=3)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # max_iter reached: ConvergenceWarning
        here = search().fit(X, y)
        there = search()
        with joblib.parallel_backend("dask"):
            there.fit(X, y)
    # every candidate and fold ran there; joblib batches calls into tasks named
    # batch_of__fit_and_score_<n>_calls-<token>, more per task the faster they return
    calls = [re.search(r"_(\d+)_calls", str(key)) for key in graph_log.tasks]
    assert sum(int(c.group(1)) for c in calls if c) >= 8 * 3
    assert there.best_params_ == here.best_params_
    for key in [f"split{k}_test_score" for k in range(3)] + ["mean_test_score",
                                                              "rank_test_score"]:
        assert np.array_equal(there.cv_results_[key], here.cv_results_[key]), key
    for a, b in zip(there.best_estimator_.coefs_ + there.best_estimator_.intercepts_,
                    here.best_estimator_.coefs_ + here.best_estimator_.intercepts_):
        assert np.array_equal(a, b)


def _killer():
    """A callback (a class defined here, so cloudpickle sends it by value) that ends
    the worker process it runs in."""
    class KillWorker:
        def on_epoch_end(self, epoch, metrics, net):
            import os
            os._exit(1)
    return KillWorker()


def test_worker_death_is_named(cluster):
    """(Last of the tests on the cluster: it kills a worker.) With allowed-failures 0,
    the death of the worker training a network fails that network, named."""
    client = cluster[1]
    X, y = problem()
    before = set(client.scheduler_info()["workers"])
    with pytest.raises(RuntimeError, match=r"^specs\[0\] .*KilledWorker"):
        fit_many(client, [{"sizes": [4, 5, 3]}], X, y, callbacks=[_killer()],
                 warm_up=False, progress=False)
    deadline = time.monotonic() + 120
    while True:   # the nanny starts a new worker process (at a new address)
        workers = set(client.scheduler_info()["workers"])
        if len(workers) == 2 and workers != before:
            break
        assert time.monotonic() < deadline, "the killed worker did not come back"
        time.sleep(0.2)


def test_import_without_dask():
    """``import fastnn`` needs no dask; ``import fastnn.distributed`` says how to get it."""
    script = textwrap.dedent("""
        import sys
        class NoDask:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("dask", "distributed"):
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, NoDask())
        import fastnn
        assert "dask" not in sys.modules and "distributed" not in sys.modules
        try:
            import fastnn.distributed
        except ImportError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert 'pip install "fastnn[dask]"' in out.stdout
