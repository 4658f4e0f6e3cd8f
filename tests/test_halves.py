"""The first layer in two column halves on two threads (``fastnn/kernels/halves.py``):
chosen where it was measured to pay, bitwise the whole layer's weights, the same stop
and weights when a run diverges mid-epoch, and serial (same bits) in a forked child."""
import textwrap

import numpy as np
import pytest

import fastnn as fnn
import fastnn.network as network
from fastnn.kernels import halves, train
from fastnn.kernels.updates import SGD

from conftest import make_problem, run_both, run_with_threads


def test_where_the_layer_is_cut():
    """Two threads, a CSR index, SGD without L1, no max_norm, batches of 2 or more and
    more than 32 units: a cut at half the width rounded up to a multiple of 16 (the
    first half, on the calling thread, the larger)."""
    cut = {m: halves.split_column(m, 32, SGD, 0.0, 0.0, True, 2)
           for m in (16, 30, 32, 33, 40, 48, 64, 65, 100, 130, 512)}
    assert cut == {16: 0, 30: 0, 32: 0, 33: 32, 40: 32, 48: 32, 64: 32, 65: 48, 100: 64,
                   130: 80, 512: 256}
    ok = dict(m=100, batch_size=32, opt_code=SGD, l1=0.0, max_norm=0.0, sparse=True,
              nwork=2)
    assert halves.split_column(**ok) == 64
    for change in (dict(nwork=1), dict(batch_size=1), dict(opt_code=SGD + 1),
                   dict(l1=1e-4), dict(max_norm=3.0), dict(sparse=False)):
        assert halves.split_column(**dict(ok, **change)) == 0, change


class Spy:
    """Wraps ``train.split_column`` to record the cuts the fit took, and
    ``threads.workers`` to report ``n`` threads."""

    def __init__(self, monkeypatch, n):
        self.cuts = []
        real = train.split_column

        def split(*args):
            c = real(*args)
            self.cuts.append(c)
            return c
        monkeypatch.setattr(train, "split_column", split)
        monkeypatch.setattr(network._threads, "workers", lambda: n)


def sgd_case(n, opt):
    """``n`` samples of 20 inputs (input 4 unused by all), and the SGD keywords and L2
    of the variant ``opt`` (plain, momentum, nesterov, l2)."""
    X, y = make_problem("softmax", "log_likelihood", n=n, n_in=20, n_out=3, seed=5)
    X[:, 4] = 0.0
    sgd = dict(momentum=0.9 if opt in ("momentum", "nesterov") else 0.0,
               nesterov=opt == "nesterov")
    return X, y, sgd, 0.02 if opt == "l2" else 0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [33, 40, 48, 64, 100, 130])
@pytest.mark.parametrize("opt", ["plain", "momentum", "nesterov", "l2"])
@pytest.mark.parametrize("batch_size", [2, 7])
def test_halves_give_the_whole_layers_bits(monkeypatch, dtype, width, opt, batch_size):
    """Widths either side of a register (and of the term lists' bounds) in each half,
    every SGD variant, a last batch shorter than the others (30 = 4 * 7 + 2): the
    halves' weights are bitwise the whole layer's and, in float64, the NumPy
    reference's to 1e-10."""
    X, y, sgd, l2 = sgd_case(30, opt)
    params, cuts = [], []
    for threads in (1, 2):
        with monkeypatch.context() as m:
            spy = Spy(m, threads)
            net = fnn.Network([20, width, 3], dtype=dtype, seed=4)
            net.fit(X, y, epochs=2, batch_size=batch_size, optimizer=fnn.SGD(0.05, **sgd),
                    l2=l2, progress=False)
            if dtype == "float64" and threads == 2:
                net_ref = fnn.Network([20, width, 3], dtype=dtype, seed=4)
                assert run_both(net_ref, X, y, 2, batch_size, 0.05, l2, sgd) <= 1e-10
        params.append(net.params)
        cuts.append(set(spy.cuts))
    assert cuts[0] == {0} and cuts[1] == {halves.split_column(width, 2, SGD, 0, 0, True, 2)}
    assert np.array_equal(params[0], params[1])


def test_a_diverging_epoch_stops_at_the_same_batch_with_the_same_weights(monkeypatch):
    """A run that overflows mid-epoch stops before the bad batch's update, halves or
    not, with the updates of the batches before it applied (copied back from the
    halves): the kernel's ``done`` and weights match the whole layer's."""
    X, y = make_problem("softmax", "log_likelihood", n=60, n_in=20, n_out=3, seed=6)
    X = X.astype(np.float32)
    seen = []
    real = train.train_epoch

    def epoch(*args, **kw):
        out = real(*args, **kw)
        seen.append((out[2], args[0].copy()))   # done, the weights as the kernel left them
        return out
    monkeypatch.setattr(network._kt, "train_epoch", epoch)
    for threads in (1, 2):
        with monkeypatch.context() as m:
            Spy(m, threads)
            net = fnn.Network([20, 50, 3], dtype="float32", seed=4)
            with pytest.raises(fnn.DivergenceError):
                net.fit(X, y, epochs=1, batch_size=4, optimizer=fnn.SGD(1e25, momentum=0.9),
                        progress=False)
    (done1, p1), (done2, p2) = seen
    assert 0 < done1 < 60 and done1 == done2
    assert np.isfinite(p1).all() and np.array_equal(p1, p2)


FORK = textwrap.dedent(r"""
    import hashlib, multiprocessing, numba.np.ufunc.parallel as par, numpy as np
    import fastnn as fnn
    from fastnn.kernels import train
    cuts = []
    real = train.split_column
    train.split_column = lambda *a: cuts.append(real(*a)) or cuts[-1]
    rng = np.random.default_rng(0)
    X = rng.random((300, 64)).astype(np.float32)
    X[X < 0.7] = 0
    y = rng.integers(0, 4, 300)

    def fit():
        net = fnn.Network([64, 40, 4], seed=1, dtype="float32")
        net.fit(X, y, epochs=2, batch_size=8, optimizer=fnn.SGD(0.1, momentum=0.9),
                progress=False)
        return hashlib.sha256(net.params.tobytes()).hexdigest()[:16]

    def child(queue):
        queue.put((fit(), cuts))

    here = fit()
    assert par._is_initialized and set(cuts) == {32}, cuts   # the halves ran here
    cuts.clear()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    there, child_cuts = queue.get(timeout=300)
    proc.join(timeout=60)
    print(proc.exitcode, here, there, set(child_cuts) == {0})
""")


def test_forked_child_keeps_the_layer_whole_with_the_same_bits():
    """The halves start Numba's pool; a child forked after that cannot run its parallel
    loops (``threads.workers()`` is 1 there), so it trains the layer whole, with the
    parent's bits."""
    exitcode, here, there, whole = run_with_threads(FORK, 2)
    assert exitcode == "0" and whole == "True"
    assert here == there
