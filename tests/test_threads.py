"""The BLAS path on threads: batches in parts over Numba's threads, OpenBLAS on one
thread around fastnn's calls, the same bits on any thread count, in forked children too."""
import multiprocessing
import textwrap

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastnn as fnn
from fastnn.kernels import threads

from conftest import run_with_threads

# 784 inputs: the shape where OpenBLAS's own threads changed the bits of A @ W (float32:
# it blocks the sum over k = 784 differently on 1 and 2 threads); batches of 1, 2 and 6
# parts (PART_ROWS = 128); one batch larger than Network's CHUNK of 512 rows.
SCRIPT = textwrap.dedent(r"""
    import hashlib, numpy as np, fastnn as fnn
    rng = np.random.default_rng(0)
    X = rng.random((1400, 784))
    X[X < 0.8] = 0
    y = rng.integers(0, 10, 1400)
    out = []
    for dtype in ("float32", "float64"):
        Xd = X.astype(dtype)
        for batch in (100, 256, 700):
            net = fnn.Network([784, 96, 64, 10], hidden="relu", seed=3, dtype=dtype)
            net.fit(Xd, y, epochs=1, batch_size=batch, optimizer=fnn.SGD(0.05, momentum=0.9),
                    progress=False)
            out.append(hashlib.sha256(net.params.tobytes()).hexdigest()[:16])
        loss, grad = net.gradients(Xd, y)
        ev = net.evaluate(Xd, y)
        out.append(hashlib.sha256(grad.tobytes() + np.float64(loss).tobytes()
                                  + np.float64(ev["loss"]).tobytes()).hexdigest()[:16])
        out.append(hashlib.sha256(net.predict_proba(Xd).tobytes()).hexdigest()[:16])
    print(" ".join(out))
""")


def test_blas_path_bitwise_identical_on_one_and_two_threads():
    one, two = run_with_threads(SCRIPT, 1), run_with_threads(SCRIPT, 2)
    assert len(one) == 10
    assert one == two


def problem(n=600, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784)).astype(np.float32)
    X[X < 0.8] = 0
    return X, rng.integers(0, 10, n)


def fit(X, y, batch=300):
    net = fnn.Network([784, 64, 10], hidden="relu", seed=0, dtype="float32")
    net.fit(X, y, epochs=2, batch_size=batch, optimizer=fnn.SGD(0.05, momentum=0.9),
            progress=False)
    return net


def test_numba_thread_count_does_not_change_the_weights():
    """In one process: Numba's thread count (the parts computed at once) and OpenBLAS's
    (held at one inside fastnn's calls) do not change the weights."""
    X, y = problem()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        with threadpool_limits(1):
            ref = fit(X, y).params
        numba.set_num_threads(before)
        with threadpool_limits(2):
            assert np.array_equal(fit(X, y).params, ref)
    finally:
        numba.set_num_threads(before)


def test_openblas_thread_count_restored_after_fastnn_calls():
    if threads.openblas_threads() is None:
        pytest.fail("SciPy's OpenBLAS not found: fastnn cannot hold it to one thread")
    X, y = problem(200)
    with threadpool_limits(2, user_api="blas"):
        net = fit(X, y, batch=100)
        net.predict_proba(X)
        net.gradients(X, y)
        assert threads.openblas_threads() == 2


def _child(X, y, queue):
    queue.put(fit(X, y).params)


def _child_ensemble(queue):
    rng = np.random.default_rng(0)
    X, y = rng.random((200, 20)), rng.integers(0, 3, 200)
    auto = fnn.Ensemble(2, [20, 8, 3], seed=0)
    auto.fit(X, y, epochs=1, batch_size=10, progress=False)        # "auto": in turn
    try:
        fnn.Ensemble(2, [20, 8, 3], seed=0).fit(X, y, epochs=1, batch_size=10,
                                                progress=False, parallel=True)
        refused = ""
    except ValueError as exc:
        refused = str(exc)
    queue.put((auto.members[1].params, refused))


def test_forked_child_ensemble_does_not_run_parallel_loops():
    """A child forked after the parent ran Numba's parallel loops: an ensemble's "auto"
    trains its members in turn (the same weights), ``parallel=True`` refuses clearly."""
    X, y = problem()
    fit(X, y)                        # the parent runs the parallel loops first
    rng = np.random.default_rng(0)
    Xe, ye = rng.random((200, 20)), rng.integers(0, 3, 200)
    here = fnn.Ensemble(2, [20, 8, 3], seed=0)
    here.fit(Xe, ye, epochs=1, batch_size=10, progress=False)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_ensemble, args=(queue,))
    proc.start()
    params, refused = queue.get(timeout=300)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert np.array_equal(params, here.members[1].params)
    assert "forked" in refused


def test_forked_child_trains_the_blas_path_like_its_parent():
    """GNU OpenMP cannot run Numba's parallel loops in a child forked from a process that
    started them: there fastnn computes the parts in turn, with the same bits."""
    X, y = problem()
    here = fit(X, y).params          # the parent runs the parallel loops first
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(X, y, queue))
    proc.start()
    got = queue.get(timeout=300)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert np.array_equal(got, here)


IMPORT_THEN_FORK = textwrap.dedent(r"""
    import multiprocessing, numba.np.ufunc.parallel as par, numpy as np, fastnn as fnn
    assert not par._is_initialized, "importing fastnn started Numba's pool"
    # neither do small batches nor small predictions (no parallel loop can run there)
    rng = np.random.default_rng(1)
    Xs, ys = rng.random((60, 20)), rng.integers(0, 3, 60)
    net = fnn.Network([20, 8, 3], seed=0)
    net.fit(Xs, ys, epochs=1, batch_size=10, progress=False)
    net.predict_proba(Xs[:5])
    net.evaluate(Xs[:5], ys[:5])
    assert not par._is_initialized, "a small-batch fit or prediction started Numba's pool"

    def child(queue):
        # as asv's runner does: a fork of a process that only imported fastnn may still
        # run Numba's parallel loops (an ensemble's members spread over threads)
        rng = np.random.default_rng(0)
        X, y = rng.random((200, 20)), rng.integers(0, 3, 200)
        ens = fnn.Ensemble(2, [20, 8, 3], seed=0)
        ens.fit(X, y, epochs=1, batch_size=10, progress=False, parallel=True)
        queue.put(float(ens.members[0].params.sum()))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    value = queue.get(timeout=300)
    proc.join(timeout=60)
    print(proc.exitcode, value)
""")


def test_import_does_not_start_numbas_pool_so_forks_keep_parallel_loops():
    exitcode, value = run_with_threads(IMPORT_THEN_FORK, 2)
    assert exitcode == "0"
    assert np.isfinite(float(value))
