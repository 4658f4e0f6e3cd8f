"""fastnn's compiled training == the plain-NumPy reference, to 1e-10 in float64."""
import itertools

import numpy as np
import pytest

import fastnn as fnn
from fastnn import reference as ref
from fastnn.network import BLAS_MIN_BATCH, CHUNK

from conftest import HIDDEN, PAIRS, make_problem, rel_err, run_both

OPTIMIZERS = {
    "plain": dict(momentum=0.0),
    "momentum": dict(momentum=0.9),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "dampening": dict(momentum=0.8, dampening=0.3),
}


@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("batch_size", [1, 3, 13])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("output,cost", PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_training_matches_reference(hidden, output, cost, opt, batch_size, l2):
    X, y = make_problem(output, cost, n=13)
    net = fnn.Network([4, 6, 5, 3], hidden=hidden, output=output, cost=cost, init="lecun",
                      dtype="float64", seed=3, leaky_slope=0.1)
    err = run_both(net, X, y, epochs=2, batch_size=batch_size, lr=0.03, l2=l2,
                   opt_kw=OPTIMIZERS[opt])
    assert err <= 1e-10
    # and training really moved the weights
    fresh = fnn.Network([4, 6, 5, 3], hidden=hidden, output=output, cost=cost, init="lecun",
                        dtype="float64", seed=3, leaky_slope=0.1)
    assert rel_err(net.params, fresh.params) > 1e-4


@pytest.mark.parametrize("output,cost", [("softmax", "log_likelihood"), ("softmax", "quadratic"),
                                         ("sigmoid", "cross_entropy")])
def test_soft_targets_match_reference(output, cost):
    """Float targets (soft labels, probabilities) for the classifier costs."""
    X, y = make_problem(output, cost, n=20, soft=True)
    net = fnn.Network([4, 7, 3], hidden="tanh", output=output, cost=cost, dtype="float64")
    assert run_both(net, X, y, 3, 4, 0.2, 0.01, OPTIMIZERS["momentum"]) <= 1e-10


@pytest.mark.parametrize("batch_size,n", [
    (BLAS_MIN_BATCH, 3 * BLAS_MIN_BATCH + 5),        # BLAS path, smaller last batch
    (CHUNK + 100, 2 * CHUNK + 150),                  # batches bigger than the workspace
    (10_000, CHUNK + 7),                             # full batch over two chunks
])
def test_blas_and_chunked_paths_match_reference(batch_size, n):
    X, y = make_problem("softmax", "log_likelihood", n=n, n_in=9, n_out=4, seed=5)
    net = fnn.Network([9, 16, 4], hidden="relu", dtype="float64", seed=2)
    assert run_both(net, X, y, 2, batch_size, 0.3, 0.001, OPTIMIZERS["nesterov"]) <= 1e-10


def bordered_problem(n, seed=5):
    """Raw inputs with always-zero columns (as MNIST's border pixels) and sparse others,
    and some rows with every input zero: the BLAS path leaves the zero columns of a
    chunk out of the first layer's products (``dense.forward_compact``)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 30))
    X[rng.random(X.shape) < 0.5] = 0.0
    X[:, [0, 1, 2, 13, 27, 28, 29]] = 0.0
    X[X.shape[0] // 2:, 20:] = 0.0        # the second half: more columns zero
    X[::17] = 0.0
    return X, rng.integers(0, 4, n)


@pytest.mark.parametrize("batch_size", [BLAS_MIN_BATCH, 200, 10_000])
def test_blas_path_without_zero_input_columns_matches_reference(batch_size):
    X, y = bordered_problem(700)
    from fastnn.kernels.dense import COMPACT_MAX
    part = X[:128]                        # compaction does happen here
    assert np.count_nonzero(part.any(axis=0)) <= COMPACT_MAX * X.shape[1]
    net = fnn.Network([30, 16, 8, 4], hidden="relu", dtype="float64", seed=2)
    assert run_both(net, X, y, 2, batch_size, 0.1, 0.001, OPTIMIZERS["nesterov"]) <= 1e-10
    P = ref.predict_proba(net.weights, net.biases, X, net.hidden, net.output,
                          net.leaky_slope)
    assert rel_err(net.forward(X), P) <= 1e-12
    loss, dWs, dbs = ref.loss_and_gradients(net.weights, net.biases, X, y, net.hidden,
                                            net.output, net.cost, slope=net.leaky_slope)
    got_loss, grad = net.gradients(X, y)
    assert abs(got_loss - loss) <= 1e-12 * abs(loss)
    g = np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(dWs, dbs)])
    assert rel_err(grad, g) <= 1e-10
    zero_rows = net.weights[0].shape[1] * np.array([0, 1, 2, 13, 27, 28, 29])
    assert not grad[zero_rows].any()      # gradient rows of always-zero inputs: exactly 0


def test_unshuffled_order_and_repeated_fits_match_one_long_fit():
    """fit(2) == fit(1) + fit(1) with the same optimizer object (state carries over)."""
    X, y = make_problem("softmax", "log_likelihood", n=30)
    a = fnn.Network([4, 5, 3], dtype="float64", seed=7)
    b = fnn.Network([4, 5, 3], dtype="float64", seed=7)
    opt_a, opt_b = fnn.SGD(0.1, momentum=0.9), fnn.SGD(0.1, momentum=0.9)
    a.fit(X, y, epochs=2, batch_size=4, optimizer=opt_a, progress=False)
    b.fit(X, y, epochs=1, batch_size=4, optimizer=opt_b, progress=False)
    b.fit(X, y, epochs=1, batch_size=4, optimizer=opt_b, progress=False)
    assert np.array_equal(a.params, b.params)
    c = fnn.Network([4, 5, 3], hidden="sigmoid", dtype="float64", seed=7)
    assert run_both(c, X, y, 2, 4, 0.5, 0.0, OPTIMIZERS["plain"], shuffle=False) <= 1e-10


def test_forward_evaluate_and_gradients_match_reference():
    for (output, cost), hidden in itertools.product(PAIRS, HIDDEN):
        X, y = make_problem(output, cost, n=600)   # > CHUNK: two chunks
        net = fnn.Network([4, 8, 3], hidden=hidden, output=output, cost=cost,
                          dtype="float64", seed=1, leaky_slope=0.2)
        Ws, bs = net.weights, net.biases
        P = ref.predict_proba(Ws, bs, X, net.hidden, output, net.leaky_slope)
        assert rel_err(net.forward(X), P) <= 1e-12
        loss, dWs, dbs = ref.loss_and_gradients(Ws, bs, X, y, net.hidden, output, cost,
                                                l2=0.03, slope=net.leaky_slope)
        got_loss, grad = net.gradients(X, y, l2=0.03)
        assert abs(got_loss - loss) <= 1e-12 * abs(loss)
        g = np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(dWs, dbs)])
        assert rel_err(grad, g) <= 1e-10
        ev = net.evaluate(X, y)
        ref_loss = ref.sample_costs(cost, *[v[-1] for v in ref.forward(
            Ws, bs, X, net.hidden, output, net.leaky_slope)], ref.targets(y, 3)).mean()
        assert abs(ev["loss"] - ref_loss) <= 1e-12 * abs(ref_loss)
        if np.asarray(y).ndim == 1:
            assert ev["accuracy"] == np.mean(P.argmax(1) == y)


def test_hand_worked_sgd_step():
    """One SGD step of a 2-1 identity/quadratic network, worked by hand.

    w = (0.5, -0.3), b = 0.1, x = (1, 2), y = 1:
    z = 0.5 - 0.6 + 0.1 = 0 = a;  dC/dz = a - y = -1;  dC/dw = x * -1 = (-1, -2);  dC/db = -1
    lr 0.1:  w = (0.6, -0.1),  b = 0.2
    """
    net = fnn.Network([2, 1], output="identity", dtype="float64")
    net.weights[0][:] = [[0.5], [-0.3]]
    net.biases[0][:] = [0.1]
    net.fit([[1.0, 2.0]], [[1.0]], epochs=1, batch_size=1, optimizer=fnn.SGD(0.1),
            progress=False)
    np.testing.assert_allclose(net.weights[0].ravel(), [0.6, -0.1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(net.biases[0], [0.2], rtol=0, atol=1e-15)


def test_momentum_closed_form():
    """Three SGD steps with momentum and dampening, in closed form.

    A 1-1 identity network with x = 0 has no weight gradient and bias gradient b - y:
    v1 = g1, v_k = mu v_{k-1} + (1 - d) g_k, b -= lr v_k, written out below."""
    mu, d, lr = 0.9, 0.25, 0.1
    net = fnn.Network([1, 1], output="identity", dtype="float64")
    net.weights[0][:] = 0.0
    net.biases[0][:] = 0.0
    X, Y = np.zeros((1, 1)), np.full((1, 1), 2.0)
    net.fit(X, Y, epochs=3, batch_size=1, optimizer=fnn.SGD(lr, momentum=mu, dampening=d),
            progress=False)
    b, v = 0.0, None
    for _ in range(3):
        g = b - 2.0                     # d/db of 0.5 (b - 2)^2
        v = g if v is None else mu * v + (1 - d) * g
        b -= lr * v
    assert net.biases[0][0] == pytest.approx(b, rel=1e-15)
    assert net.weights[0][0, 0] == 0.0  # x = 0: no weight gradient


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("batch_size", [1, 5, 47])
def test_sparse_input_path_is_bitwise_the_dense_one(monkeypatch, hidden, opt, batch_size):
    """Small batches read the non-zero inputs through a CSR index when X is sparse
    enough; the result must be bitwise that of the dense loops."""
    import fastnn.network as network
    X, y = make_problem("softmax", "log_likelihood", n=100, n_in=12, n_out=4, seed=9)
    X[:, 3] = 0.0                                     # a column no sample uses
    params = {}
    for density in (0.0, 1.0):                        # 0: never sparse, 1: always
        monkeypatch.setattr(network, "SPARSE_MAX_DENSITY", density)
        net = fnn.Network([12, 10, 4], hidden=hidden, dtype="float64", seed=4)
        net.fit(X, y, epochs=2, batch_size=batch_size, l2=0.01 if opt == "plain" else 0.0,
                optimizer=fnn.SGD(0.05, **OPTIMIZERS[opt]), progress=False)
        params[density] = net.params
    assert np.array_equal(params[0.0], params[1.0])
    assert network.Network._sparse_index(X, batch_size)[0].size == 101


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_single_layer_network_on_sparse_inputs(batch_size, momentum):
    """No hidden layer: the sparse first layer is also the output layer."""
    X, y = make_problem("softmax", "log_likelihood", n=21, n_in=6, n_out=3, seed=3)
    net = fnn.Network([6, 3], dtype="float64", seed=1)
    err = run_both(net, X, y, 2, batch_size, 0.1, 0.0, dict(momentum=momentum))
    assert err <= 1e-10


def test_nonzero_index_matches_numpy():
    from fastnn.kernels.train import nonzero_index
    rng = np.random.default_rng(0)
    X = rng.random((50, 30)).astype(np.float32)
    X[X < 0.7] = 0
    X[7] = 0.0                      # an empty row
    X[:, -1] = 1.0                  # the last column always set (the fill's edge)
    indptr, indices, values = nonzero_index(X)
    rows, cols = np.nonzero(X)
    assert np.array_equal(indptr, np.r_[0, np.cumsum((X != 0).sum(1))])
    assert np.array_equal(indices, cols) and indices.dtype == np.uint16
    assert np.array_equal(values, X[rows, cols]) and values.dtype == np.float32
    wide = np.zeros((2, 70_000))          # more columns than uint16 can number
    wide[0, [3, 65_536, 69_999]] = [1.0, 2.0, 3.0]
    indptr, indices, values = nonzero_index(wide)
    assert indptr.tolist() == [0, 3, 3] and indices.dtype == np.int32
    assert indices.tolist() == [3, 65_536, 69_999] and values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("threads", [2, 3])
def test_nonzero_index_on_threads_matches_numpy(monkeypatch, threads):
    """The index's two passes cut into blocks of rows done on threads at once
    (``count_nonzeros``, ``nonzero_entries``): numpy's non-zeros and NaN count, the
    blocks' edges included (each block but the last fills its last row exactly, as the
    next block's first row is written beside it)."""
    from fastnn.kernels import train
    monkeypatch.setattr(train, "THREADED_MIN", 1)
    monkeypatch.setattr(train, "_index_threads", lambda: threads)
    rng = np.random.default_rng(threads)
    X = rng.standard_normal((31, 37)).astype(np.float32)
    X[rng.random(X.shape) < 0.7] = 0.0
    X[10] = 0.0                    # an empty row, the last of the first of 3 blocks
    X[[14, 15, 20, 21]] = rng.standard_normal(37)   # full rows at the blocks' edges
    assert [b for _, b in train._row_blocks(X)] == [31 * (i + 1) // threads
                                                    for i in range(threads)]
    indptr, indices, values = train.nonzero_index(X)
    rows, cols = np.nonzero(X)
    assert np.array_equal(indptr, np.r_[0, np.cumsum((X != 0).sum(1))])
    assert np.array_equal(indices, cols) and np.array_equal(values, X[rows, cols])
    X[[0, 30], [5, 36]] = np.nan, np.inf
    assert train.count_nonzeros(X)[1] == 2


@pytest.mark.parametrize("exact_last", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("d", [1, 7, 8, 16, 17, 40, 784])
@pytest.mark.parametrize("fill", ["_fill_nonzeros", "_fill_nonzeros_vec"])
def test_nonzero_fills_match_numpy(fill, d, dtype, exact_last):
    """Both fills of the index (the scalar loop and the register-wide one that
    ``nonzero_entries`` takes with AVX2, or AVX-512 and LLVM >= 19: the packing this
    machine's CPU has) give numpy's non-zeros, with -0.0 as zero and NaN as non-zero,
    for rows shorter than, equal to and longer than a register; with ``exact_last``
    nothing is written past the last entry (a block's fill beside the next block's,
    on another thread: ``nonzero_entries``)."""
    from fastnn.kernels import train
    rng = np.random.default_rng(d)
    X = rng.standard_normal((23, d)).astype(dtype)
    X[rng.random(X.shape) < 0.6] = 0.0
    X[3] = 0.0                                   # an empty row
    X[5] = rng.standard_normal(d)                # a full one
    X[6, 0], X[-1, -1] = -0.0, np.nan
    indptr = train.nonzero_rows(X)[0]
    nnz = int(indptr[-1])
    indices = np.full(nnz + max(d, 16), 7, np.uint16)
    values = np.full(nnz + max(d, 16), 7, dtype)
    getattr(train, fill)(X, indptr, indices, values, exact_last)
    rows, cols = np.nonzero(X)
    assert np.array_equal(indptr, np.r_[0, np.cumsum((X != 0).sum(1))])
    assert np.array_equal(indices[:nnz], cols)
    assert np.array_equal(values[:nnz], X[rows, cols], equal_nan=True)
    if exact_last:
        assert (indices[nnz:] == 7).all() and (values[nnz:] == 7).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [5, 8, 16, 17, 33, 40, 49, 64, 80, 90, 100, 130])
@pytest.mark.parametrize("opt", ["plain", "momentum", "nesterov", "l2", "l1"])
@pytest.mark.parametrize("batch_size", [1, 3, 10])
def test_rows_of_every_register_width(monkeypatch, dtype, width, opt, batch_size):
    """The small-batch loops keep rows of up to two SIMD registers (16 float32 or 8
    float64 lanes each; ``kernels/simd.py``) in registers, sort the first layer's terms
    for rows of up to eight, take wider rows in register-sized pieces, and mask the lanes
    past a row's end. Widths on either side of each of these boundaries, in the first
    layer (sparse and dense paths) and the layer above, give bitwise the same weights on
    both paths and, in float64, the reference's."""
    import fastnn.network as network
    X, y = make_problem("softmax", "log_likelihood", n=30, n_in=20, n_out=width, seed=2)
    X[:, 7] = 0.0                                     # an input no sample uses
    kw = dict(l2=0.02 if opt == "l2" else 0.0, l1=1e-3 if opt == "l1" else 0.0)
    sgd = dict(momentum=0.9 if opt in ("momentum", "nesterov") else 0.0,
               nesterov=opt == "nesterov")
    nets = {}
    for density in (0.0, 1.0):                        # 0: never sparse, 1: always
        monkeypatch.setattr(network, "SPARSE_MAX_DENSITY", density)
        net = fnn.Network([20, width, width], dtype=dtype, seed=4)
        start = (net.weights[0].copy(), net.biases[0].copy())
        net.fit(X, y, epochs=2, batch_size=batch_size, optimizer=fnn.SGD(0.05, **sgd),
                progress=False, **kw)
        assert not np.array_equal(net.weights[0], start[0])
        assert not np.array_equal(net.biases[0], start[1])
        nets[density] = net
    assert np.array_equal(nets[0.0].params, nets[1.0].params)
    if dtype == "float64" and opt != "l1":            # the reference has no L1 term
        net = fnn.Network([20, width, width], dtype=dtype, seed=4)
        err = run_both(net, X, y, 2, batch_size, 0.05, kw["l2"], sgd)
        assert err <= 1e-10


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m", [1, 5, 8, 9, 10, 16, 17, 24, 31, 32, 33])
@pytest.mark.parametrize("rule", ["plain", "momentum", "nesterov", "dampening", "l2"])
def test_small_layer_flat_step_is_bitwise_the_row_loop(dtype, m, rule):
    """``fused_layer_update`` steps a small layer under SGD in one flat pass
    (``updates._flat_sgd``) when its buffer ``g`` has room for the whole gradient, else
    row by row: the same weights, bias and velocity to the bit, on a first step and
    later ones, with a unit that is zero for the whole batch (its row skipped by the
    row loop under plain SGD, stepped by a zero gradient in the flat pass). The
    flat pass leaves the gradient in ``g`` (NaN before), which shows which path ran:
    rows of up to two registers (64-byte registers: 16 float32 or 8 float64 lanes)."""
    from fastnn.kernels.updates import SGD, adaptive_step, fused_layer_update
    n, B = 100, 7
    lr, l2, mu, damp, nest = 0.05, 0.0, 0.9, 0.0, 0.0
    if rule == "nesterov":
        nest = 1.0
    elif rule == "dampening":
        mu, damp = 0.8, 0.3
    elif rule == "l2":
        mu, l2 = 0.0, 0.02
    elif rule == "plain":
        mu = 0.0
    hyper = np.array([lr, mu, damp, nest])
    runs = []
    for room in (True, False):
        params = np.random.default_rng(1).standard_normal(n * m + m).astype(dtype)
        params[3 * m] = -0.0                        # zeros of both signs in unit 3's row
        params[3 * m + m // 2] = 0.0
        state = np.zeros((1, params.size), dtype)
        W, bias = params[:n * m].reshape(n, m), params[n * m:]
        adaptive = adaptive_step(SGD, dtype, state, hyper)
        data = np.random.default_rng(2)
        for step in range(3):
            A = np.maximum(data.standard_normal((B, n)), 0).astype(dtype)
            A[:, 3] = 0.0                           # a unit no sample of the batch uses
            D = data.standard_normal((B, m)).astype(dtype)
            g = np.full(n * m + 2 * 16 + 1 if room else m, np.nan, dtype)
            fused_layer_update(W, bias, A, D, state, 0, n * m, g, B, l2, 0.0, SGD, hyper,
                               step, (0.0, 0.0, 0.0), adaptive)
        runs.append((params, state, g))
    (p_flat, s_flat, g_flat), (p_rows, s_rows, _) = runs
    assert p_flat.tobytes() == p_rows.tobytes() and s_flat.tobytes() == s_rows.tobytes()
    flat = m <= 2 * 64 // np.dtype(dtype).itemsize
    assert np.isfinite(g_flat[m:n * m]).all() == flat
    if flat:   # the last step's gradient, rows 1 .. n-1 (row 0's place is the bias's)
        want = (A.astype(np.float64).T @ D.astype(np.float64)).ravel()[m:]
        assert np.allclose(g_flat[m:n * m], want, rtol=1e-4, atol=1e-5)
