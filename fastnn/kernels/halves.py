"""The first layer of a small-batch epoch cut into two column halves, one per thread.

With a CSR index, small batches spend most of an epoch in the first layer: on MNIST,
784-100-10 at batch 32 with momentum, ~0.13 s of ~0.17 s (forward 0.04, gradient and
step 0.09; the step alone streams ``W`` and its velocity, 627 KB, through the L2 cache
every batch). ``train.train_epoch_fused`` can instead hold the layer as two matrices,
columns ``[0, c)`` and ``[c, m)`` of ``W`` (with their bias, velocity and work
buffers), and run each on its own thread: the batch's update of one half and the next
batch's forward through it, in one parallel region per batch
(``first_layer_halves``). Each thread keeps its half in its own core's L2 and never
writes a cache line the other reads.

Every weight, velocity and output unit goes through exactly the operations of the
whole layer, in the same order (a unit's sums run over the same inputs in the same
order; the two halves only split the units), so the weights are bitwise the same on
any number of threads, and the same as without the cut. The cut ``c`` is a multiple of
16 columns, so the first half is whole SIMD registers in float32 and float64.

The layer's update is deferred into the next batch's region: it only has to precede
that batch's forward through the first layer (the layers above and their deltas never
read the first layer's weights), so the thread that updates a half then runs it
forward, with nothing shared in between.

Measured, whole fits of one epoch of MNIST's 50,000 training images (float32, relu /
softmax, SGD 0.05 momentum 0.9, batch 32 unless said), alternated in one process with
the whole layer (the commit before), new / old time, best / median of 5-7, weights'
sha256 equal in every case: 784-100-10 (config B) 0.80 / 0.79; first layers of 40, 48,
64, 80, 128, 256 units 0.82 / 0.82, 0.76 / 0.72, 0.98 / 0.95, 0.81 / 0.82, 0.88 / 0.87,
0.58 / 0.58; 512 units at batch 16 0.62 / 0.61; 100 units at batch 2, 4, 10 0.81 /
0.83, 0.83 / 0.83, 0.88 / 0.84; 30 units at batch 10 0.95 / 0.95 and at batch 32 0.88
/ 0.87; config A (784-30-10 sigmoid, no momentum, batch 10) 0.92-1.01 / 0.98-1.05 in
four runs: no gain, no loss above this machine's noise. Each half alone takes
~0.65-0.7 of the whole layer's time, not half: both sort all the batch's terms and
walk all of them (the halves only split the units). With one region for the update and
another for the forward (two a batch), the first layer alone took 0.78-1.0 of the
whole layer's time instead of 0.70-0.83 with one. Batch 1 keeps the whole layer
(``split_column``): a region costs ~1-2 us to start and end.
"""
import numpy as np
from numba import njit, prange

from .dense import ROW_REGISTERS, VEC_REGISTERS
from .simd import lanes
from .updates import SGD

#: the cut is a multiple of this many columns: whole registers for float32 and float64
HALF_ALIGN = 16


def split_column(m, batch_size, opt_code, l1, max_norm, sparse, nwork):
    """Where ``train.train_epoch_fused`` cuts the first layer's ``m`` columns into two
    halves (``first_layer_halves``), or 0 to keep it whole: with two threads or more
    (``nwork``, ``threads.workers()``) when ``halves_pay`` says so. The cut is the
    multiple of ``HALF_ALIGN`` nearest to ``m / 2``."""
    if nwork < 2 or not halves_pay(m, batch_size, opt_code, l1, max_norm, sparse):
        return 0
    return max(HALF_ALIGN, (m // 2 + HALF_ALIGN // 2) // HALF_ALIGN * HALF_ALIGN)


def halves_pay(m, batch_size, opt_code, l1, max_norm, sparse):
    """Whether a first layer of ``m`` units is cut into halves, given two threads: with
    a CSR index (``sparse``), SGD (with or without momentum) without L1, no
    ``max_norm``, batches of at least 2 (one sample a batch would pay for a parallel
    region per sample) and more than ``HALF_ALIGN`` units. The halves were measured
    under these conditions only (module docstring)."""
    return (sparse and opt_code == SGD and l1 == 0 and max_norm <= 0 and batch_size >= 2
            and m > HALF_ALIGN)


@njit(cache=True)
def half_buffers(params, state, n, m, c, batch):
    """The halves' arrays for a first layer ``n x m`` cut at column ``c`` (none if
    ``c`` is 0), row ``h`` for half ``h``: parameters ``P`` (the half's ``W``, ``n x
    m_h``, then its bias), optimizer state ``S`` (``state``'s rows, laid out as ``P``),
    deltas ``Dh`` and outputs ``Zh`` (``batch x m_h``), and the update's work buffers
    ``G`` (zeros), ``touched`` (zeros), ``cnt``, ``tb``, ``ta``, ``g`` (as
    ``train_epoch_fused`` gives them to the whole layer)."""
    H = 2 if c > 0 else 0
    mh = max(c, m - c)
    L = lanes(params)
    pad = (mh + L - 1) // L * L
    size = n * mh + mh
    dt = params.dtype
    return (np.empty((H, size), dt), np.empty((H, state.shape[0], size), state.dtype),
            np.empty((H, batch * mh), dt), np.empty((H, batch * mh), dt),
            np.zeros((H, n, pad), dt), np.zeros((H, n), np.uint8),
            np.empty((H, n + 2), np.int64), np.empty((H, batch * n), np.int64),
            np.empty((H, batch * n), dt), np.empty((H, pad), dt))


@njit(cache=True, inline="always")
def _half(h, c, m):
    """Half ``h``'s first column and width."""
    return (0, c) if h == 0 else (c, m - c)


@njit(cache=True)
def halves_in(params, state, w_off, b_off, n, m, c, P, S):
    """Copy the first layer's weights, bias and their state into the halves."""
    for h in range(2):
        c0, mh = _half(h, c, m)
        for i in range(n):
            for j in range(mh):
                P[h, i * mh + j] = params[w_off + i * m + c0 + j]
                for r in range(state.shape[0]):
                    S[h, r, i * mh + j] = state[r, w_off + i * m + c0 + j]
        for j in range(mh):
            P[h, n * mh + j] = params[b_off + c0 + j]
            for r in range(state.shape[0]):
                S[h, r, n * mh + j] = state[r, b_off + c0 + j]


@njit(cache=True)
def halves_out(params, state, w_off, b_off, n, m, c, P, S):
    """Copy the halves back into the first layer's weights, bias and state."""
    for h in range(2):
        c0, mh = _half(h, c, m)
        for i in range(n):
            for j in range(mh):
                params[w_off + i * m + c0 + j] = P[h, i * mh + j]
                for r in range(state.shape[0]):
                    state[r, w_off + i * m + c0 + j] = S[h, r, i * mh + j]
        for j in range(mh):
            params[b_off + c0 + j] = P[h, n * mh + j]
            for r in range(state.shape[0]):
                state[r, b_off + c0 + j] = S[h, r, n * mh + j]


@njit(cache=True)
def halves_delta(D, c, Dh):
    """Copy the first layer's delta ``D`` (``B x m``) into the halves' ``Dh``."""
    B, m = D.shape
    for h in range(2):
        c0, mh = _half(h, c, m)
        for b in range(B):
            for j in range(mh):
                Dh[h, b * mh + j] = D[b, c0 + j]


@njit(cache=True, parallel=True)
def first_layer_halves(P, S, Dh, Zh, G, touched, cnt, tb, ta, g, c, values, indptr,
                       indices, urows, frows, Z, w_off, l2, l1, opt_code, hyper, t, sc,
                       adaptive, upd, fwd):
    """One parallel region, a thread per half: the first layer's update from the batch
    ``urows`` (if any; its deltas in ``Dh``, its step ``t`` and ``sc``), then the
    forward of the batch ``frows`` (if any) into ``Z``'s columns. ``upd`` and ``fwd``
    are the whole layer's kernels (``train.fused_kernels``), called on each half;
    ``w_off`` is a zero of the layout's integer type (the halves' offsets)."""
    n = G.shape[1]
    m = Z.shape[1]
    L = lanes(P[0])
    for h in prange(2):
        c0, mh = _half(h, c, m)
        W = P[h][:n * mh].reshape(n, mh)
        bias = P[h][n * mh:n * mh + mh]
        Bu = urows.size
        if Bu > 0:
            # the term lists for the widths _sorted_gradient is for, as for the whole
            sort = VEC_REGISTERS * L < mh <= ROW_REGISTERS * L
            k = n + 2 if sort else 0
            kt = Bu * n if sort else 0
            upd(W, bias, values, indptr, indices, urows, Dh[h][:Bu * mh].reshape(Bu, mh),
                S[h], w_off, w_off + n * mh, g[h], G[h], touched[h], cnt[h][:k],
                tb[h][:kt], ta[h][:kt], Bu, l2, l1, opt_code, hyper, t, sc, adaptive)
        Bf = frows.size
        if Bf > 0:
            zh = Zh[h][:Bf * mh].reshape(Bf, mh)
            fwd(values, indptr, indices, frows, W, bias, zh)
            for b in range(Bf):
                for j in range(mh):
                    Z[b, c0 + j] = zh[b, j]


@njit(cache=True)
def no_first_layer_halves(P, S, Dh, Zh, G, touched, cnt, tb, ta, g, c, values, indptr,
                          indices, urows, frows, Z, w_off, l2, l1, opt_code, hyper, t, sc,
                          adaptive, upd, fwd):
    """``first_layer_halves``' stand-in for fits that keep the layer whole: never
    called."""
