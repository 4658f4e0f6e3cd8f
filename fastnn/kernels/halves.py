"""The first layer of a small-batch epoch cut into two column halves, one per thread.

With a CSR index, small batches spend most of an epoch in the first layer: on MNIST,
784-100-10 at batch 32 with momentum, ~0.13 s of ~0.17 s (forward 0.04, gradient and
step 0.09; the step alone streams ``W`` and its velocity, 627 KB, through the L2 cache
every batch). ``train.train_epoch_fused`` can instead hold the layer as two matrices,
columns ``[0, c)`` and ``[c, m)`` of ``W`` (with their bias, velocity and work
buffers), and run each on its own thread: the batch's update of one half and the next
batch's forward through it, in one parallel region per batch
(``first_layer_halves``). Each thread keeps its half in its own core's L2; the two
share only the batch's index (read) and the rows of its output ``Z`` (a cache line a
row where the halves meet). The caller copies the layer into the halves before the
epoch and back after it (``copy_halves``, numpy: a few hundred KB).

Every weight, velocity and output unit goes through exactly the operations of the
whole layer, in the same order (a unit's sums run over the same inputs in the same
order; the two halves only split the units), so the weights are bitwise the same on
any number of threads, and the same as without the cut. The cut ``c`` is a multiple of
16 columns, so the first half is whole SIMD registers in float32 and float64; it is
the larger half (``split_column``).

The layer's update is deferred into the next batch's region: it only has to precede
that batch's forward through the first layer (the layers above and their deltas never
read the first layer's weights), so the thread that updates a half then runs it
forward, with nothing shared in between.

Measured with scripts outside the repository (2026-12-04). Whole fits of one epoch of
MNIST's 50,000 training images (float32, relu / softmax, SGD 0.05 momentum 0.9, batch
32 unless said), alternated in one process with a copy of the commit before (the whole
layer) imported as a second package, new / old time, best / median of 5-7, weights'
sha256 equal in every case: 784-100-10 (config B) 0.80 / 0.79; first layers of 40, 48,
64, 80, 128, 256 units 0.82 / 0.82, 0.76 / 0.72, 0.98 / 0.95, 0.81 / 0.82, 0.88 / 0.87,
0.58 / 0.58; 512 units at batch 16 0.62 / 0.61; 100 units at batch 2, 4, 10 0.81 /
0.83, 0.83 / 0.83, 0.88 / 0.84; 30 units at batch 10 0.95 / 0.95 and at batch 32 0.88
/ 0.87; config A (784-30-10 sigmoid, no momentum, batch 10) 0.92-1.01 / 0.98-1.05 in
four runs: no gain, no loss above this machine's noise. Each half alone takes
~0.65-0.7 of the whole layer's time, not half: both sort all the batch's terms and
walk all of them (the halves only split the units; the first layer alone, B's shapes,
random deltas). With one region for the update and
another for the forward (two a batch), the first layer alone took 0.78-0.98 of the
whole layer's time (median) instead of 0.70-0.82 with one. Batch 1 keeps the whole layer
(``split_column``): a region costs ~1-2 us to start and end.

Layers too narrow for the cut (config A's 30 units) stay whole, on one thread. Their
update's rows in two halves on two threads (a parallel region a batch; the forward on
the calling thread; same bits) was slower: MNIST epochs of config A on a quiet machine
(2026-12-05, a script outside the repository, best / median of 5 each, fresh processes
alternated), 1 thread 0.232-0.237 / 0.237-0.245 s against 2 threads 0.237-0.329 /
0.251-0.330 s; with momentum 0.9 0.348-0.374 / 0.350-0.396 s against 0.445-0.499 /
0.493-0.505 s. (On 2026-12-04, on a busier machine, it had measured 0.93-0.96 of one
thread's time; this project's benchmark table, at 7f1561c, had A at 0.294 s on 1
thread and 0.361 s on 2.)

Compile time (empty cache, config B, per-kernel times of a monkeypatched
``Dispatcher.compile``): ``first_layer_halves`` 1.8-2.6 s, a parallel region being
costly to compile. The copies and buffers are numpy, not kernels: as a phase of the
region they made it 3.7-3.8 s, as kernels of their own 0.4 s each, and both grew the
epoch's compile.
"""
import numpy as np
from numba import njit, prange

from .simd import lanes
from .updates import SGD, sorts_terms

#: the cut is a multiple of this many columns: whole registers for float32 and float64
HALF_ALIGN = 16


def split_column(m, batch_size, opt_code, l1, max_norm, sparse, nwork):
    """Where ``train.train_epoch_fused`` cuts the first layer's ``m`` columns into two
    halves (``first_layer_halves``), or 0 to keep it whole: with two threads or more
    (``nwork``, ``threads.workers()``) when ``halves_pay`` says so.

    The cut is ``m / 2`` rounded *up* to a multiple of ``HALF_ALIGN``, so the first
    half is the larger one (as stored: ``padded_width``). The first half runs on the
    calling thread (``prange`` iteration 0 is Numba's thread 0), which enters the
    region first and has just written (the deltas) or prefetched (the batch's index)
    what both halves read; the other thread joins it and reads them from the other
    core (a likely cause, not measured apart). Measured on AMD Zen 1 (2026-12-04) with
    a script outside the repository, whole fits of an MNIST epoch (relu / softmax,
    float32, momentum 0.9, batch 32 unless said) alternated in one process, cut
    rounded to nearest / up, best / median of 7-9, same weights: 100 units 48 / 64
    0.504 / 0.592 s vs 0.467 / 0.530 s; at batch 10 without momentum 0.664 / 0.694 vs
    0.597 / 0.610; 130 units 64 / 80 0.692 / 0.739 vs 0.643 / 0.687; 40 units 16 / 32
    0.420 / 0.494 vs 0.388 / 0.434; 200 units 96 / 112 0.869 / 0.986 vs 0.887 / 0.991
    (no change). The total of the stored widths is the same either way."""
    if nwork < 2 or not halves_pay(m, batch_size, opt_code, l1, max_norm, sparse):
        return 0
    return padded_width.py_func(-(-m // 2))


def halves_pay(m, batch_size, opt_code, l1, max_norm, sparse):
    """Whether a first layer of ``m`` units is cut into halves, given two threads: with
    a CSR index (``sparse``), SGD (with or without momentum) without L1, no
    ``max_norm``, batches of at least 2 (one sample a batch would pay for a parallel
    region per sample) and more than ``2 * HALF_ALIGN`` units: at 30 units the halves
    gained 5-12% with momentum and nothing without (config A, module docstring). The
    halves were measured under these conditions only."""
    return (sparse and opt_code == SGD and l1 == 0 and max_norm <= 0 and batch_size >= 2
            and m > 2 * HALF_ALIGN)


def half_buffers(params, state, layout, c, batch):
    """The halves' arrays (numpy, allocated per epoch call) for the first layer of
    ``layout`` cut at column ``c`` (none if ``c`` is 0), row ``h`` for half ``h``, each
    half stored ``m_h = padded_width(...)`` columns wide (zeros past its units):
    parameters ``P`` (the half's ``W``, ``n x m_h``, then its bias), optimizer state
    ``S`` (``state``'s rows, laid out as ``P``), deltas ``Dh`` (zeros: the padding
    columns are never written) and outputs ``Zh`` (``batch x m_h``), and the update's
    work buffers ``G`` (zeros), ``touched`` (zeros), ``cnt``, ``tb``, ``ta``, ``g`` (as
    ``train_epoch_fused`` gives them to the whole layer)."""
    n, m = int(layout[0, 2]), int(layout[0, 3])
    H = 2 if c > 0 else 0
    mh = padded_width.py_func(max(c, m - c)) if c > 0 else 0
    size = n * mh + mh
    dt = params.dtype
    return (np.zeros((H, size), dt), np.zeros((H, state.shape[0], size), state.dtype),
            np.zeros((H, batch * mh), dt), np.empty((H, batch * mh), dt),
            np.zeros((H, n, mh), dt), np.zeros((H, n), np.uint8),
            np.empty((H, n + 2), np.int64), np.empty((H, batch * n), np.int64),
            np.empty((H, batch * n), dt), np.empty((H, mh), dt))


@njit(cache=True, inline="always")
def padded_width(w):
    """Columns a half of ``w`` units is stored with: ``w`` rounded up to a multiple of
    ``HALF_ALIGN``, whole registers in float32 and float64. The columns past ``w``
    hold zero weights, bias and state, get zero deltas and stay zero, and their outputs
    are never copied out; so every row load and store of the half is a whole register,
    never a masked one (slow on CPUs without AVX-512: ``simd.AVX512``). Measured on AMD
    Zen 1 (2026-12-04), whole fits of an MNIST epoch (relu / softmax, momentum 0.9,
    batch 32, float32) alternated in one process with the commit before, new / old
    time, best / median of 5-7, same weights (with the cut of that day, ``m / 2``
    rounded to the nearest multiple of 16): 784-100-10 (config B: 48 + 52 units, the
    second half stored 64 wide) 0.86-0.90 / 0.90-0.93; 130 units (64 + 66, stored 80
    wide) 0.88 / 0.93; 40 units (16 + 24, stored 32 wide) 0.80 / 0.87."""
    return -(-w // HALF_ALIGN) * HALF_ALIGN


def copy_halves(params, state, layout, c, H, into):
    """Copy the first layer's weights, bias and their state into the halves ``H``
    (``into``) or back out of them."""
    w_off, b_off, n, m = (int(v) for v in layout[0])
    k = state.shape[0]
    W = params[w_off:w_off + n * m].reshape(n, m)
    SW = state[:, w_off:w_off + n * m].reshape(k, n, m)
    for h, (c0, c1) in enumerate(((0, c), (c, m))):
        w = c1 - c0
        mh = padded_width.py_func(w)     # the columns past w stay zero (half_buffers)
        pairs = ((H[0][h, :n * mh].reshape(n, mh)[:, :w], W[:, c0:c1]),
                 (H[0][h, n * mh:n * mh + w], params[b_off + c0:b_off + c1]),
                 (H[1][h, :, :n * mh].reshape(k, n, mh)[:, :, :w], SW[:, :, c0:c1]),
                 (H[1][h, :, n * mh:n * mh + w], state[:, b_off + c0:b_off + c1]))
        for half, whole in pairs:
            if into:
                half[...] = whole
            else:
                whole[...] = half


@njit(cache=True, parallel=True)
def first_layer_halves(H, c, values, indptr, indices, urows, D, frows, Z, w_off, l2, l1,
                       opt_code, hyper, t, sc, adaptive, upd, fwd):
    """One parallel region, a thread per half of the first layer (``H``:
    ``half_buffers``, cut at column ``c``): the layer's update from the batch ``urows``
    (if any: its deltas ``D``, step ``t`` and ``sc``), then the forward of the batch
    ``frows`` (if any) into ``Z``'s columns. ``upd`` and ``fwd`` are the whole layer's
    kernels (``train.fused_kernels``), called on each half; ``w_off`` is a zero of the
    layout's integer type (the halves' offsets)."""
    P, S, Dh, Zh, G, touched, cnt, tb, ta, g = H
    n = G.shape[1]
    m = Z.shape[1]
    L = lanes(g[0])
    for h in prange(2):
        c0 = 0 if h == 0 else c
        w = c if h == 0 else m - c
        mh = padded_width(w)
        W = P[h][:n * mh].reshape(n, mh)
        bias = P[h][n * mh:n * mh + mh]
        Bu = urows.size
        if Bu > 0:
            dh = Dh[h][:Bu * mh].reshape(Bu, mh)
            for b in range(Bu):
                for j in range(w):   # the columns past w stay as allocated: zeros
                    dh[b, j] = D[b, c0 + j]
            sort = sorts_terms(mh, L)   # the term lists, as for the whole layer
            k = n + 2 if sort else 0
            kt = Bu * n if sort else 0
            upd(W, bias, values, indptr, indices, urows, dh, S[h], w_off, w_off + n * mh,
                g[h], G[h], touched[h], cnt[h][:k], tb[h][:kt], ta[h][:kt], Bu, l2, l1,
                opt_code, hyper, t, sc, adaptive)
        Bf = frows.size
        if Bf > 0:
            zh = Zh[h][:Bf * mh].reshape(Bf, mh)
            fwd(values, indptr, indices, frows, W, bias, zh)
            for b in range(Bf):
                for j in range(w):
                    Z[b, c0 + j] = zh[b, j]


@njit(cache=True)
def no_first_layer_halves(H, c, values, indptr, indices, urows, D, frows, Z, w_off, l2, l1,
                          opt_code, hyper, t, sc, adaptive, upd, fwd):
    """``first_layer_halves``' stand-in for fits that keep the layer whole: never
    called."""
