"""The fused training loop and the whole-network kernels built from ``dense``.

Every function takes arrays and scalars only, so each compiles once per dtype:

- ``params`` the flat parameter buffer; ``layout[l] = (w_off, b_off, fan_in, fan_out)``
  (weights row-major ``(fan_in, fan_out)``, then biases, for each layer in turn);
- ``codes[l]`` the activation code of layer ``l`` (the last one is the output's);
- targets are ``Y`` (float, ``(n, outputs)``) or, with ``use_labels``, integer ``labels``;
  the unused one is an empty placeholder.

A batch is processed in chunks of at most ``chunk`` rows (the workspace size), whose
summed gradients are added up, so a large batch (up to the full data set) never needs
a workspace of its size. A chunk of at least ``blas_min`` rows takes the BLAS path.
"""
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite.binding import llvm_version_info
from numba import njit, prange, types

from . import simd
from ._numeric import block, flat_view, like
from .activations import activate, keeps_z
from .dense import (backprop_delta, backprop_delta_loops, forward, forward_compact,
                    forward_loops, forward_sparse, gradients, gradients_compact,
                    no_forward_sparse, output_delta)
from .halves import (copy_halves, first_layer_halves, half_buffers, no_first_layer_halves,
                     padded_width, split_column)
from .aside import COSTS, Ref, compile_plan
from .pointers import Kernel, alive, borrowed, first_class_functions
from .simd import Vec, lanes, prefetch, store_nonzeros
from .updates import (FLAT_MAX, SGD, adaptive_step, apply_update, flat_layers,
                      fused_layer_update, fused_layer_update_flat, fused_sparse_update,
                      max_norm_columns, no_max_norm, no_sparse_update, regularize_gradient,
                      sorts_terms, sparse_sgd_paths, step_scalars)


@njit(cache=True)
def _act_offsets(layout, chunk):
    """Offsets of each layer's activation block (layer 0 = gathered input) in one buffer."""
    L = layout.shape[0]
    offs = np.empty(L + 2, np.int64)
    offs[0] = 0
    offs[1] = chunk * layout[0, 2]
    for l in range(L):
        offs[l + 2] = offs[l + 1] + chunk * layout[l, 3]
    return offs


@njit(cache=True)
def _max_width(layout):
    w = 1
    for l in range(layout.shape[0]):
        w = max(w, layout[l, 3])
    return w


@njit(cache=True, inline="always")
def _layer_out(layout, codes, l, B, acts, offs, Zout):
    """Where layer ``l`` writes: ``(Z, A)``; hidden layers are activated in place
    (``Z`` is ``A``), the output keeps its pre-activation in ``Zout`` for a log-safe cost.

    A hidden layer whose derivative needs ``z`` (``keeps_z``: GELU, SiLU) keeps ``Z`` in
    the room after the activations that ``_workspace`` adds only when such a layer
    exists; ``Z`` is also what its ``mul_derivative`` reads (``_layer_out(...)[0]``)."""
    m = layout[l, 3]
    L = layout.shape[0]
    A = block(acts, offs[l + 1], B, m)
    if l == L - 1:
        return block(Zout, 0, B, m), A
    if keeps_z(codes[l]):
        return block(acts, offs[L + 1] + offs[l + 1] - offs[1], B, m), A
    return A, A


@njit(cache=True, inline="always")
def forward_chunk(params, layout, codes, slope, A0, acts, offs, Zout, use_blas, ci, Ac,
                  Wc):
    """Forward pass of ``A0`` (B rows) through the layers of ``layout``; returns the
    output activations (a view of ``acts``).

    With BLAS, raw inputs (the full table, ``offs[0] == 0``) and room in ``ci``/``Ac``/
    ``Wc`` (``workspaces``), the first layer leaves out the input columns that are zero
    in every row (``dense.forward_compact``; ``chunk_gradient`` then uses its record).

    To start above the first layer, pass the tables sliced from that layer on
    (``layout[k:]``, ``codes[k:]``, ``offs[k:]``) and its input as ``A0``.
    """
    L = layout.shape[0]
    B = A0.shape[0]
    A_prev = A0
    for l in range(L):
        w_off, b_off, n, m = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        Z, A = _layer_out(layout, codes, l, B, acts, offs, Zout)
        W = block(params, w_off, n, m)
        if l == 0 and use_blas and offs[0] == 0 and Wc.size > 0:
            forward_compact(A_prev, W, params[b_off:b_off + m], Z, ci, Ac, Wc)
        else:
            forward(A_prev, W, params[b_off:b_off + m], Z, use_blas,
                    l == 0 and offs[0] == 0)   # raw inputs only: offs[0] is 0 in the full table
        activate(Z, A, codes[l], slope)
        A_prev = A
    return A_prev


@njit(cache=True)
def chunk_gradient(params, layout, codes, slope, cost_code, A0, T, lab, use_labels,
                   acts, offs, Zout, D1, D2, wt, grad, use_blas, ci, Ac, Wc):
    """Forward + backward of one chunk: ``grad`` = summed gradient; returns (cost sum, correct)."""
    L = layout.shape[0]
    B = A0.shape[0]
    m_out = layout[L - 1, 3]
    Aout = forward_chunk(params, layout, codes, slope, A0, acts, offs, Zout, use_blas, ci,
                         Ac, Wc)
    compact = use_blas and Wc.size > 0   # forward_compact ran on layer 0
    D = block(D1, 0, B, m_out)
    Z = block(Zout, 0, B, m_out)
    loss, correct = output_delta(Z, Aout, T, lab, use_labels, codes[L - 1], cost_code, D)
    in_d1 = True  # the current delta lives in D1; the layer below's goes to the other
    for l in range(L - 1, -1, -1):
        w_off, b_off, n, m = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        A_in = A0 if l == 0 else block(acts, offs[l], B, n)
        if l == 0 and compact:
            gradients_compact(A_in, D, block(grad, w_off, n, m), grad[b_off:b_off + m],
                              ci, Ac, Wc)
        else:
            gradients(A_in, D, block(grad, w_off, n, m), grad[b_off:b_off + m], use_blas)
        if l > 0:
            D_prev = block(D2 if in_d1 else D1, 0, B, n)
            # the derivative reads A_in, or the kept Z for keeps_z codes (_layer_out)
            Z_in = _layer_out(layout, codes, l - 1, B, acts, offs, Zout)[0]
            backprop_delta(D, block(params, w_off, n, m), Z_in, codes[l - 1], slope,
                           D_prev, use_blas, wt)
            D = D_prev
            in_d1 = not in_d1
    return loss, correct


@njit(cache=True)
def _gather(X, Y, labels, use_labels, rows, acts, Tws, labws, inputs):
    """Copy the samples ``rows`` into the workspace: inputs (if ``inputs``; the sparse
    path reads them from the CSR index instead), and targets or labels.

    Element loops, not ``A0[b, :] = X[r, :]``: a slice assignment compiles Numba's
    shape-mismatch error message, string formatting and all (~8 s with an empty cache).
    """
    B = rows.size
    n0 = X.shape[1]
    m_out = Y.shape[1]
    A0 = block(acts, 0, B, n0)
    T = block(Tws, 0, B if not use_labels else 0, m_out)
    for b in range(B):
        r = rows[b]
        if inputs:
            a = A0[b]
            x = X[r]
            for i in range(n0):
                a[i] = x[i]
        if use_labels:
            labws[b] = labels[r]
        else:
            t = T[b]
            yr = Y[r]
            for j in range(m_out):
                t[j] = yr[j]
    return A0, T, labws[:B]


@njit(cache=True, inline="always")
def _prefetch_rows(X, rows, indptr, indices, values):
    """Start loading the samples ``X[rows]``, or with a CSR index their part of it
    (``indices`` and ``values``), into the caches, a batch ahead of their use.

    The rows of a shuffled epoch are scattered over ``X`` (157 MB for MNIST in
    float32), so without this every sample's first reads wait on memory. Measured, the
    first layer's forward of an MNIST epoch in batches of 10 (784 -> 30, float32): 0.048
    s in shuffled order, 0.027 s in file order.
    """
    if indptr.size > 0:  # the index is all the first layer reads
        for b in range(rows.size):
            r = rows[b]
            for p in range(indptr[r], indptr[r + 1], 64 // values.itemsize):
                prefetch(values, p)
            for p in range(indptr[r], indptr[r + 1], 64 // indices.itemsize):
                prefetch(indices, p)
        return
    line = 64 // X.itemsize
    for b in range(rows.size):
        x = X[rows[b]]
        for k in range(0, x.size, line):
            prefetch(x, k)


@njit(cache=True)
def _part(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, rows, chunk,
          blas_min, p, acts, offs, Zout, D1, D2, wt, Tws, labws, target, ci, Ac, Wc):
    """Part ``p`` of ``rows`` (its ``chunk`` rows) gathered into one workspace: its summed
    gradient into ``target``; returns (cost sum, correct)."""
    c0 = p * chunk
    c1 = min(rows.size, c0 + chunk)
    A0, T, lab = _gather(X, Y, labels, use_labels, rows[c0:c1], acts, Tws, labws, True)
    return chunk_gradient(params, layout, codes, slope, cost_code, A0, T, lab, use_labels,
                          acts, offs, Zout, D1, D2, wt, target, c1 - c0 >= blas_min, ci,
                          Ac, Wc)


@njit(cache=True, parallel=True)
def _parts(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, rows, chunk,
           blas_min, p0, k, acts, offs, Zout, D1, D2, wt, Tws, labws, grad, gparts, losses,
           corrects, ci, Ac, Wc, part):
    """Parts ``p0 .. p0+k-1`` of ``rows``, part ``p0+g`` in workspace ``g`` (row ``g`` of
    the stacked buffers), spread over Numba's threads; part 0 sums into ``grad``, the
    others into ``gparts[g]``.

    ``part`` is ``_part`` as a function pointer (``blas_kernels``): called by name, its
    code (the whole forward and backward pass) is optimised and compiled again into the
    parallel loop's body. Measured from ``import`` to the end of a first epoch with an
    empty cache (a script outside the repository: 50-64-10, float32, batch 512, two
    parts on two threads; one run each, 2 cores Zen 1, times from a patched
    ``Dispatcher.compile``): 54.0 s with ``_part`` by name, of which this kernel took
    14.5 s; 42.4 s through the pointer, this kernel 3.2 s. A batch of one part (batch
    128) no longer compiles this kernel at all (``no_parts``): 51.2 s before, 38.9 s."""
    for g in prange(k):
        target = grad if p0 + g == 0 else gparts[g]
        lo, co = part(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                      rows, chunk, blas_min, p0 + g, acts[g], offs, Zout[g], D1[g], D2[g],
                      wt[g], Tws[g], labws[g], target, ci[g], Ac[g], Wc[g])
        losses[g] = lo
        corrects[g] = co


@njit(cache=True)
def no_parts(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, rows,
             chunk, blas_min, p0, k, acts, offs, Zout, D1, D2, wt, Tws, labws, grad, gparts,
             losses, corrects, ci, Ac, Wc, part):
    """``_parts``' stand-in where one workspace computes the parts in turn (one thread,
    or a batch of one part): never called, so no parallel loop is compiled."""


@njit(cache=True, inline="always")
def batch_gradient(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                   rows, chunk, blas_min, acts, offs, Zout, D1, D2, wt, Tws, labws, grad,
                   gparts, losses, corrects, ci, Ac, Wc, part, parts, defer):
    """Summed gradient over ``X[rows]``, in parts of ``chunk`` rows.

    The parts are cut from ``rows`` by ``chunk`` alone and their gradients added in part
    order, ``((g0 + g1) + g2) + ...``, so the sum has the same bits however many parts
    run at once: as many as there are workspaces (rows of ``acts``; ``workspaces``),
    one per Numba thread, so a batch of several parts keeps every core busy while each
    part's BLAS runs on one thread (``threads``). With one workspace the parts run in
    turn on this thread, with no parallel loop.

    ``part`` and ``parts`` are ``_part`` and ``_parts`` (or ``no_parts``) as function
    pointers (``blas_kernels``). Returns ``(cost sum, correct, last)``: with ``defer``,
    the last part's gradient is left unadded in ``gparts[last]`` for the step to add
    (``updates.apply_update``'s ``part``); ``last`` is -1 if every part is in ``grad``.
    """
    nb = rows.size
    nparts = (nb + chunk - 1) // chunk
    G = acts.shape[0]
    loss = 0.0
    correct = 0
    last = -1
    for p0 in range(0, nparts, G):
        k = min(G, nparts - p0)
        if k == 1:
            lo, co = part(params, layout, codes, slope, cost_code, X, Y, labels,
                          use_labels, rows, chunk, blas_min, p0, acts[0], offs, Zout[0],
                          D1[0], D2[0], wt[0], Tws[0], labws[0],
                          grad if p0 == 0 else gparts[0], ci[0], Ac[0], Wc[0])
            losses[0] = lo
            corrects[0] = co
        else:
            parts(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, rows,
                  chunk, blas_min, p0, k, acts, offs, Zout, D1, D2, wt, Tws, labws, grad,
                  gparts, losses, corrects, ci, Ac, Wc, part)
        for g in range(k):
            if p0 + g > 0:
                if defer and p0 + g == nparts - 1:
                    last = g
                else:
                    gp = gparts[g]
                    for q in range(grad.size):
                        grad[q] += gp[q]
            loss += losses[g]
            correct += corrects[g]
    return loss, correct, last


@njit(cache=True)
def workspaces(params, layout, codes, chunk, G, grads, blas_min):
    """``G`` workspaces for parts of up to ``chunk`` rows, stacked: row ``g`` of each
    buffer is workspace ``g`` (see ``_workspace``), plus ``G`` gradient buffers (if
    ``grads``, else empty rows), the per-part cost and correct counts and, if
    ``chunk >= blas_min``, the first layer's compaction buffers
    (``dense.forward_compact``; empty rows otherwise). Returns
    ``(offs, acts, Zout, D1, D2, wt, Tws, labws, gparts, losses, corrects, ci, Ac, Wc)``."""
    offs, n_acts = _act_sizes(layout, codes, chunk)
    n_out, n_delta, n_wt = _delta_sizes(layout, chunk)
    dt = params.dtype
    acts = np.empty((G, n_acts), dt)
    Zout = np.empty((G, n_out), dt)
    D1 = np.empty((G, n_delta), dt)
    D2 = np.empty((G, n_delta), dt)
    wt = np.empty((G, n_wt), dt)
    Tws = np.empty((G, n_out), dt)
    labws = np.empty((G, chunk), np.int64)
    gparts = np.empty((G, params.size if grads else 0), dt)
    losses = np.zeros(G)
    corrects = np.zeros(G, np.int64)
    n0 = layout[0, 2]
    big = chunk >= blas_min
    ci = np.empty((G, n0 + 1 if big else 0), np.int64)
    Ac = np.empty((G, chunk * n0 if big else 0), dt)
    Wc = np.empty((G, n0 * layout[0, 3] if big else 0), dt)
    return offs, acts, Zout, D1, D2, wt, Tws, labws, gparts, losses, corrects, ci, Ac, Wc


@njit(cache=True)
def _workspace(params, layout, codes, chunk):
    """Buffers for chunks of up to ``chunk`` rows, allocated once per kernel call.

    ``acts`` holds each layer's activations at ``offs``; if a hidden layer keeps ``z``
    (``keeps_z``), room for the hidden layers' ``Z`` follows (see ``_layer_out``)."""
    offs, n_acts = _act_sizes(layout, codes, chunk)
    acts = np.empty(n_acts, params.dtype)
    Zout, D1, D2, Tws, labws, wt = delta_buffers(params, layout, chunk)
    return offs, acts, Zout, D1, D2, Tws, labws, wt


@njit(cache=True)
def _act_sizes(layout, codes, chunk):
    """``(offs, size)`` of a workspace's activation buffer (``_workspace``)."""
    L = layout.shape[0]
    offs = _act_offsets(layout, chunk)
    zroom = 0
    for l in range(L - 1):
        if keeps_z(codes[l]):
            zroom = offs[L] - offs[1]
    return offs, offs[L + 1] + zroom


@njit(cache=True)
def _delta_sizes(layout, chunk):
    """Sizes of ``delta_buffers``' output block (and targets), each delta block, and
    the transposed-``W`` room."""
    L = layout.shape[0]
    width = max(_max_width(layout), layout[0, 2])
    wsize = 0
    for l in range(1, L):
        wsize = max(wsize, layout[l, 2] * layout[l, 3])
    return chunk * layout[L - 1, 3], chunk * width, wsize


@njit(cache=True)
def delta_buffers(params, layout, chunk):
    """The buffers every forward/backward workspace needs, for chunks of up to ``chunk``
    rows: ``(Zout, D1, D2, Tws, labws, wt)`` -- the output's pre-activation, two delta
    blocks (the widest layer, input included), float targets, labels, and room for the
    largest ``W`` above the first layer transposed (the loops' ``backprop_delta``)."""
    n_out, n_delta, n_wt = _delta_sizes(layout, chunk)
    Zout = np.empty(n_out, params.dtype)
    D1 = np.empty(n_delta, params.dtype)
    D2 = np.empty(n_delta, params.dtype)
    Tws = np.empty(n_out, params.dtype)
    labws = np.empty(chunk, np.int64)
    wt = np.empty(n_wt, params.dtype)
    return Zout, D1, D2, Tws, labws, wt


def train_epoch(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, order,
                batch_size, chunk, blas_min, l2, l1, max_norm, clip_norm, opt_code, hyper,
                state, step, indptr, indices, values, nwork=1):
    """Train on the samples ``X[order]`` in mini-batches of ``batch_size``, in order.

    ``indptr``/``indices``/``values`` are the CSR index of ``X``'s non-zeros (see
    ``nonzero_index``) or empty; small batches then read only non-zero inputs, from it.

    ``l2`` and ``l1`` add ``l2*w`` and ``l1*sign(w)`` to the mean gradient of the weights;
    ``max_norm > 0`` rescales each unit's incoming weights to at most that norm after
    every step; ``clip_norm > 0`` clips the mean data gradient to that global norm
    before the regularisers (it needs the whole gradient, so it always takes
    ``train_epoch_blas``, whose loops serve small chunks); 0 turns either off.

    ``nwork`` is the number of parts of a large batch (of ``chunk`` rows each) computed
    at once, one per thread (``batch_gradient``); with 2 or more, small batches may run
    the first layer's two halves on two threads (``halves.split_column``). Neither
    changes the result.

    The last batch may be smaller; its gradient is averaged over its own size. ``step``
    (an int64 array of one element) counts optimizer steps and is advanced here.
    Stops early, without applying the update, at the first batch whose cost is not
    finite. Returns ``(cost_sum, n_correct, n_done)`` over the samples of the batches
    that were applied (``n_done < order.size`` means the run diverged).

    A plain Python dispatcher to one of two compiled epochs, so a fit compiles only the
    path it uses: small batches (``batch_size < blas_min``, at most one chunk) fuse the
    update into the backward pass (``train_epoch_fused``); larger ones sum the gradient
    with BLAS and then update (``train_epoch_blas``). Measured with an empty cache, the
    first epoch of a 784-100-10 batch-32 fit compiled in 44 s with both paths in one
    kernel, of which the unused BLAS path took ~7 s.
    """
    if batch_size <= chunk and batch_size < blas_min and clip_norm == 0:
        split = split_column(layout[0, 3], batch_size, opt_code, l1, max_norm,
                             indptr.size > 0, nwork)
        H = half_buffers(params, state, layout, split, batch_size)
        args = (params, layout, codes, slope, cost_code, X, Y, labels, use_labels, order,
                batch_size, chunk, l2, l1, max_norm, opt_code, hyper, state, step, indptr,
                indices, values, split, H)
        kernels = fused_kernels(*args)
        epoch = _fused_epoch(args, kernels)
        if split:
            copy_halves(params, state, layout, split, H, True)
        out = epoch(*args, *(k.dispatcher for k in kernels))
        if split:
            copy_halves(params, state, layout, split, H, False)
        return out
    G = max(1, min(nwork, (batch_size + chunk - 1) // chunk))   # workspaces, one per part
    part, parts = blas_kernels(params, layout, codes, slope, cost_code, X, Y, labels,
                               use_labels, order, G > 1)
    return train_epoch_blas(params, layout, codes, slope, cost_code, X, Y, labels,
                            use_labels, order, batch_size, chunk, blas_min, l2, l1, max_norm,
                            clip_norm, opt_code, hyper, state, step, G, part, parts)


@njit(cache=True)
def train_epoch_fused(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                      order, batch_size, chunk, l2, l1, max_norm, opt_code, hyper, state,
                      step, indptr, indices, values, split, H, gather, fwd_sparse, fwd_loops,
                      act, out_delta, bprop, upd_sparse, upd_layer, max_norm_cols, adaptive,
                      halves):
    """``train_epoch`` for small batches (at most one chunk, the loops, no BLAS).

    Each batch is gathered, run forward, and then each layer's gradient is applied as
    soon as the delta below it is known (``updates.fused_layer_update``), so no gradient
    buffer is written or read back.

    With a non-empty ``indptr`` the first layer reads only the non-zero inputs of each
    sample ``X[rows[b]]``, from the CSR index (``indptr``, ``indices``, ``values``),
    instead of a gathered copy. Both paths add the same terms in the same order, so they
    give bitwise the same weights. A batch whose cost is not finite stops the epoch
    before its update.

    The batch loop and the batch's work are one compiled function on purpose: Numba
    re-optimises every callee's code in each caller, so each level of calls costs
    compile time (one level less saved ~7 s of a ~40 s cold compile). For the same
    reason the big kernels it runs come as its last arguments, function pointers
    (``fused_kernels``): called by name, their code would be optimised and compiled again
    here. (Separate arguments, not a tuple: Numba warns that first-class functions are
    experimental at every call with a tuple of them.)

    ``split > 0`` (``halves.split_column``; needs a CSR index) cuts the first layer
    into two column halves at column ``split``, held in ``H`` (``halves.half_buffers``,
    which the caller fills before and copies back after: ``halves.copy_halves``) and
    run by two threads (``halves``, ``halves.first_layer_halves``): same bits, the
    layer's update deferred into the next batch's forward.

    Its arrays, and so every view it makes and passes, are ``pointers.borrowed``: not
    reference-counted at each batch and each call.
    """
    (params, layout, codes, X, Y, labels, order, hyper, state, step, indptr, indices,
     values, H) = borrowed((params, layout, codes, X, Y, labels, order, hyper, state, step,
                            indptr, indices, values, H))   # the caller holds them
    made = _workspace(params, layout, codes, chunk)   # alive(made) after the loop
    offs, acts, Zout, D1, D2, Tws, labws, wt = borrowed(made)
    nsamp = order.size
    loss = 0.0
    correct = 0
    L = layout.shape[0]
    m_out = layout[L - 1, 3]
    sparse = indptr.size > 0
    whole = sparse and split == 0   # the sparse first layer whole (else H holds halves)
    n0 = layout[0, 2]
    vl = lanes(params)  # G's rows padded to whole registers
    sort = whole and sorts_terms(layout[0, 3], vl)
    # a gradient row, or a small layer's flat gradient (updates.FLAT_MAX, _flat_sgd);
    # the first layer's G, touched, cnt, tb, ta (updates.fused_sparse_update)
    made2 = (np.empty(_max_width(layout) + FLAT_MAX + 2 * lanes(params), params.dtype),
             np.zeros((n0 if whole else 0, (layout[0, 3] + vl - 1) // vl * vl),
                      params.dtype),
             np.zeros(n0 if whole else 0, np.uint8),
             np.empty(n0 + 2 if sort else 0, np.int64),  # updates._sorted_gradient's lists
             np.empty(batch_size * n0 if sort else 0, np.int64),
             np.empty(batch_size * n0 if sort else 0, params.dtype))
    grow, G, touched, cnt, tb, ta = borrowed(made2)   # alive(made2) after the loop
    no_rows = order[:0]
    urows = no_rows   # the batch whose first-layer update is pending (halves), its delta
    uD = block(D1, 0, 0, layout[0, 3])
    ut = step[0]
    usc = step_scalars(opt_code, hyper, ut)
    zero = layout[0, 0] - layout[0, 0]   # the halves' offsets, in the layout's type
    for s in range(0, nsamp, batch_size):
        e = min(nsamp, s + batch_size)
        rows = order[s:e]
        B = e - s
        _prefetch_rows(X, order[e:min(nsamp, e + batch_size)], indptr, indices, values)
        t = step[0]
        sc = step_scalars(opt_code, hyper, t)
        A0, T, lab = gather(X, Y, labels, use_labels, rows, acts, Tws, labws, not sparse)
        # forward (the loops of forward_chunk, written out: one call level less)
        A_prev = A0
        for l in range(L):
            w_off, b_off, n, m = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
            Z, A = _layer_out(layout, codes, l, B, acts, offs, Zout)
            W = block(params, w_off, n, m)
            if l == 0 and split > 0:  # the pending update, then this forward, by halves
                halves(H, split, values, indptr, indices, urows, uD, rows, Z, zero, l2, l1,
                       opt_code, hyper, ut, usc, adaptive, upd_sparse, fwd_sparse)
                urows = no_rows
            elif l == 0 and sparse:  # the first layer from the CSR index
                fwd_sparse(values, indptr, indices, rows, W, params[b_off:b_off + m], Z)
            else:
                fwd_loops(A_prev, W, params[b_off:b_off + m], Z, l == 0)
            act(Z, A, codes[l], slope)
            A_prev = A
        Aout = A_prev
        D = block(D1, 0, B, m_out)
        lo, co = out_delta(block(Zout, 0, B, m_out), Aout, T, lab, use_labels,
                           codes[L - 1], cost_code, D)
        if not math.isfinite(lo):
            return loss, correct, s
        # backward, each layer updated as soon as the delta below it is known
        in_d1 = True  # the current delta lives in D1; the layer below's goes to the other
        for l in range(L - 1, -1, -1):
            w_off, b_off, n, m = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
            W = block(params, w_off, n, m)
            A_in = A0 if l == 0 else block(acts, offs[l], B, n)
            D_prev = D
            if l > 0:  # the delta below needs the old W: compute it before updating W
                D_prev = block(D2 if in_d1 else D1, 0, B, n)
                Z_in = _layer_out(layout, codes, l - 1, B, acts, offs, Zout)[0]
                bprop(D, W, Z_in, codes[l - 1], slope, D_prev, wt)
                in_d1 = not in_d1
            if l == 0 and split > 0:  # deferred to the next forward (or the end)
                uD = D   # not overwritten before the next batch's forward
                urows = rows
                ut = t
                usc = sc
            elif l == 0 and sparse:
                upd_sparse(W, params[b_off:b_off + m], values, indptr, indices, rows, D,
                           state, w_off, b_off, grow, G, touched, cnt, tb, ta, B, l2, l1,
                           opt_code, hyper, t, sc, adaptive)
            else:
                upd_layer(W, params[b_off:b_off + m], A_in, D, state, w_off, b_off, grow,
                          B, l2, l1, opt_code, hyper, t, sc, adaptive)
            if max_norm > 0:
                max_norm_cols(W, max_norm, grow)
            D = D_prev
        step[0] += 1
        loss += lo
        correct += co
    if urows.size > 0:   # the last batch's first-layer update (halves)
        halves(H, split, values, indptr, indices, urows, uD, no_rows, uD, zero, l2, l1,
               opt_code, hyper, ut, usc, adaptive, upd_sparse, fwd_sparse)
    alive(made)
    alive(made2)
    return loss, correct, nsamp


def _buffer_types(t_params):
    """Numba types of the C-contiguous 1-D and 2-D views of the workspaces (in the
    parameters' dtype) and of their int64 index arrays: ``(v1, v2, i1, i2)``."""
    dt = t_params.dtype
    return (types.Array(dt, 1, "C"), types.Array(dt, 2, "C"),
            types.Array(types.int64, 1, "C"), types.Array(types.int64, 2, "C"))


#: ``_fused_epoch``'s dispatchers, by argument types
_FUSED_EPOCHS = {}


def _fused_epoch(args, kernels):
    """``train_epoch_fused`` compiled for ``args`` followed by ``kernels``' function
    types (or loaded from Numba's cache), as a dispatcher with that one signature.

    Called with the kernels' dispatchers (``Kernel.dispatcher``), which it converts to
    its function types, it calls their compiled code directly; a lazily compiling
    dispatcher would instead compile a new version for the dispatchers' own types,
    which links their code in. (Measured against the epoch with every kernel called by
    name, epochs alternated in one process, MNIST at batch 1, 784-100-10, best / median
    of 5-7: through the C wrappers 1.075 / 1.004, direct 1.007 / 1.038 and 1.025 /
    1.016; no difference above this machine's noise either way.)
    """
    argtypes = tuple(numba.typeof(a) for a in args + kernels)
    epoch = _FUSED_EPOCHS.get(argtypes)
    if epoch is None:
        with first_class_functions():
            epoch = njit(argtypes, cache=True)(train_epoch_fused.py_func)
        _FUSED_EPOCHS[argtypes] = epoch
    return epoch


#: ``fused_kernels``' tuples, by the argument types, whether the rule is SGD (and
#: without L1), whether there is a CSR index and whether ``max_norm`` is on
_FUSED_KERNELS = {}


def fused_kernels(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, order,
                  batch_size, chunk, l2, l1, max_norm, opt_code, hyper, state, step, indptr,
                  indices, values, split, H):
    """The kernels ``train_epoch_fused`` calls, as function pointers (``pointers.Kernel``)
    in the order of its last arguments, for a call with these (its other) arguments.
    ``batch_size`` and ``chunk`` do not change them.

    Each is compiled for the types it is called with there: the views of the buffers
    (``block``) are C-contiguous 1-D and 2-D arrays of the parameters' dtype, a batch's
    rows ``order[s:e]`` a C-contiguous array of ``order``'s dtype, offsets and sizes
    ``layout``'s integers. The kernels this fit will not call (the sparse first layer
    without a CSR index, the max-norm step without ``max_norm``, the adaptive rules'
    step for SGD: ``updates.adaptive_step``) are empty stand-ins with their parameters,
    so they are not compiled; SGD without L1 gets the sparse first layer's update
    without the other rules' branch (``updates.fused_sparse_sgd``), and without the
    other way to sum its rows where the layer (or each of its halves) takes one
    (``updates.sparse_sgd_paths``).

    Measured with a script that times a fresh ``python`` process from ``import fastnn``
    to the end of a first epoch, empty ``NUMBA_CACHE_DIR`` (784-100-10, float32, batch
    32, SGD with momentum, 5,000 MNIST samples; runs of the variants alternated): every
    kernel called by name 17.3-21.8 s (4 runs); these kernels through pointers 13.1-16.0
    s (5 runs); and with ``updates.adaptive_step``'s empty kernel for SGD 12.6-15.1 s
    (7 runs). The epoch's time and its weights (sha256) were unchanged.
    """
    ty = numba.typeof
    args = (params, layout, codes, slope, cost_code, X, Y, labels, use_labels, order, l2,
            l1, max_norm, opt_code, hyper, state, step, indptr, indices, values)  # not sizes
    sparse = indptr.size > 0
    halved = sparse and split > 0
    vl = Vec(numba.from_dtype(params.dtype)).lanes   # simd.lanes(params), in Python
    # the first layer's update: for SGD without L1, the variant of updates.fused_sparse_sgd
    # for the way (or ways) its parts sum their rows, as the epoch and the halves choose
    m0 = int(layout[0, 3])
    widths = ((padded_width.py_func(split), padded_width.py_func(m0 - split)) if halved
              else (m0,))
    upd = ((sparse_sgd_paths(widths, vl) if opt_code == SGD and l1 == 0
            else fused_sparse_update) if sparse else no_sparse_update)
    # the other layers' (and a dense first layer's): flat steps only, where all take them
    flat = flat_layers(layout, 1 if sparse else 0, opt_code, l1, vl)
    key = tuple(ty(a) for a in args) + (opt_code == SGD, upd, flat, sparse, max_norm > 0,
                                        halved)
    kernels = _FUSED_KERNELS.get(key)
    if kernels is not None:
        return kernels
    (t_params, t_layout, t_codes, t_slope, t_cost, t_X, t_Y, t_labels, t_use, t_order,
     t_l2, t_l1, t_max_norm, t_opt, t_hyper, t_state, t_step, t_indptr, t_indices,
     t_values) = key[:len(args)]
    v1, v2, i64, _ = _buffer_types(t_params)   # views of the buffers (block)
    rows = types.Array(t_order.dtype, 1, "C")  # order[s:e]
    off = t_layout.dtype                       # layout[l, k]
    code = t_codes.dtype
    B = types.intp                             # e - s
    sc = types.UniTuple(types.float64, 3)      # step_scalars
    yes = types.boolean
    adaptive = adaptive_step(opt_code, params.dtype, state, hyper)
    t_adaptive = ty(adaptive)
    # with their return types, compiled in two processes at once when the cache lacks
    # enough of them (aside: this one compiles the epoch meanwhile)
    none = types.none
    plan = {
        # (the batch's inputs, its targets and its labels: views of acts, Tws, labws)
        "gather": (_gather, (t_X, t_Y, t_labels, t_use, rows, v1, v1, i64, yes),
                   types.Tuple((v2, v2, i64))),
        "fwd_sparse": (forward_sparse if sparse else no_forward_sparse,
                       (t_values, t_indptr, t_indices, rows, v2, v1, v2), none),
        "upd_sparse": (upd,
                       (v2, v1, t_values, t_indptr, t_indices, rows, v2, t_state, off, off,
                        v1, v2, types.Array(types.uint8, 1, "C"), i64, i64, v1, B, t_l2,
                        t_l1, t_opt, t_hyper, t_step.dtype, sc, t_adaptive), none),
        "halves": (first_layer_halves if halved else no_first_layer_halves,
                   (ty(H), ty(split), t_values, t_indptr, t_indices, rows, v2, rows, v2,
                    off, t_l2, t_l1, t_opt, t_hyper, t_step.dtype, sc, t_adaptive,
                    Ref("upd_sparse"), Ref("fwd_sparse")), none),
        "fwd_loops": (forward_loops, (v2, v2, v1, v2, yes), none),
        "act": (activate, (v2, v2, code, t_slope), none),
        "out_delta": (output_delta, (v2, v2, v2, i64, t_use, code, t_cost, v2),
                      types.Tuple((types.float64, types.int64))),   # (cost sum, correct)
        "bprop": (backprop_delta_loops, (v2, v2, v2, code, t_slope, v2, v1), none),
        "upd_layer": (fused_layer_update_flat if flat else fused_layer_update,
                      (v2, v1, v2, v2, t_state, off, off, v1, B, t_l2, t_l1, t_opt, t_hyper,
                       t_step.dtype, sc, t_adaptive), none),
        "max_norm_cols": (max_norm_columns if max_norm > 0 else no_max_norm,
                          (v2, t_max_norm, v1), none),
    }
    k = compile_plan(plan, extra=COSTS["train_epoch_fused"])
    kernels = (k["gather"], k["fwd_sparse"], k["fwd_loops"], k["act"], k["out_delta"],
               k["bprop"], k["upd_sparse"], k["upd_layer"], k["max_norm_cols"], adaptive,
               k["halves"])
    _FUSED_KERNELS[key] = kernels
    return kernels


@njit(cache=True)
def train_epoch_blas(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                     order, batch_size, chunk, blas_min, l2, l1, max_norm, clip_norm,
                     opt_code, hyper, state, step, G, part, parts):
    """``train_epoch`` for larger batches: the summed gradient of each batch, chunk by
    chunk (BLAS for chunks of at least ``blas_min`` rows), then one optimizer step
    (after gradient clipping and the L1 term, if any; followed by the max-norm
    constraint, if any). ``G`` workspaces compute that many parts at once; ``parts``
    is ``no_parts`` exactly when ``G`` is 1 (``train_epoch`` decides both)."""
    (offs, acts, Zout, D1, D2, wt, Tws, labws, gparts, losses, corrects, ci, Ac,
     Wc) = workspaces(params, layout, codes, chunk, G, True, blas_min)
    grad = np.empty(params.size, params.dtype)
    # SGD adds a batch's last part in its step; clipping and L1 need the whole sum first
    defer = opt_code == SGD and clip_norm <= 0 and l1 <= 0
    n = order.size
    loss = 0.0
    correct = 0
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        lo, co, last = batch_gradient(params, layout, codes, slope, cost_code, X, Y,
                                      labels, use_labels, order[s:e], chunk, blas_min, acts,
                                      offs, Zout, D1, D2, wt, Tws, labws, grad, gparts,
                                      losses, corrects, ci, Ac, Wc, part, parts, defer)
        if not math.isfinite(lo):
            return loss, correct, s
        if clip_norm > 0 or l1 > 0:
            regularize_gradient(params, grad, layout, e - s, l1, clip_norm)
        if last >= 0:   # the step adds the last part (see apply_update)
            apply_update(params, grad, layout, e - s, l2, opt_code, hyper, state, step[0],
                         gparts[last])
        else:
            apply_update(params, grad, layout, e - s, l2, opt_code, hyper, state, step[0],
                         None)
        if max_norm > 0:
            for l in range(layout.shape[0]):
                max_norm_columns(block(params, layout[l, 0], layout[l, 2], layout[l, 3]),
                                 max_norm, grad)   # grad is free until the next batch
        step[0] += 1
        loss += lo
        correct += co
    return loss, correct, n


def loss_and_gradient(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                      chunk, blas_min, grad, nwork=1):
    """Summed cost and summed gradient over all of ``X`` (no regularisation, not averaged),
    in parts of ``chunk`` rows, ``nwork`` at once (``batch_gradient``)."""
    n = X.shape[0]
    G = max(1, min(nwork, (n + chunk - 1) // chunk))
    part, parts = blas_kernels(params, layout, codes, slope, cost_code, X, Y, labels,
                               use_labels, np.empty(0, np.int64), G > 1)
    return _loss_and_gradient(params, layout, codes, slope, cost_code, X, Y, labels,
                              use_labels, chunk, blas_min, grad, G, part, parts)


@njit(cache=True)
def _loss_and_gradient(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                       chunk, blas_min, grad, G, part, parts):
    """``loss_and_gradient`` with ``G`` workspaces and its kernels."""
    (offs, acts, Zout, D1, D2, wt, Tws, labws, gparts, losses, corrects, ci, Ac,
     Wc) = workspaces(params, layout, codes, chunk, G, True, blas_min)
    rows = np.arange(X.shape[0])
    loss, _, _ = batch_gradient(params, layout, codes, slope, cost_code, X, Y, labels,
                                use_labels, rows, chunk, blas_min, acts, offs, Zout, D1,
                                D2, wt, Tws, labws, grad, gparts, losses, corrects, ci, Ac,
                                Wc, part, parts, False)
    return loss


#: ``blas_kernels``' pairs, by argument types and whether the parts run in parallel
_BLAS_KERNELS = {}


def blas_kernels(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, order,
                 parallel):
    """``(part, parts)``: ``_part`` and, if ``parallel`` (two or more workspaces),
    ``_parts`` (else its stand-in ``no_parts``) as function pointers
    (``pointers.Kernel``) for ``batch_gradient`` with these arguments (``order``'s
    dtype gives the rows'). Through pointers, each is compiled once on its own instead
    of again inside each caller (``_parts``)."""
    ty = numba.typeof
    args = (params, layout, codes, slope, cost_code, X, Y, labels, use_labels, order)
    key = tuple(ty(a) for a in args) + (bool(parallel),)
    kernels = _BLAS_KERNELS.get(key)
    if kernels is not None:
        return kernels
    t_params, t_layout, t_codes, t_slope, t_cost, t_X, t_Y, t_labels, t_use, t_order = (
        key[:len(args)])
    v1, v2, i1, i2 = _buffer_types(t_params)   # a workspace's rows; the stacked ones
    rows = types.Array(t_order.dtype, 1, "C")  # order[s:e]
    n = types.int64
    head = (t_params, t_layout, t_codes, t_slope, t_cost, t_X, t_Y, t_labels, t_use, rows,
            n, n)
    part = Kernel(_part, head + (n, v1, i1, v1, v1, v1, v1, v1, i1, v1, i1, v1, v1))
    parts = Kernel(_parts if parallel else no_parts,
                   head + (n, n, v2, i1, v2, v2, v2, v2, v2, i2, v1, v2,
                           types.Array(types.float64, 1, "C"), i1, i2, v2, v2, ty(part)))
    _BLAS_KERNELS[key] = (part, parts)
    return part, parts


@njit(cache=True)
def _forward_part(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, chunk,
                  blas_min, p, acts, offs, Zout, out, want_cost, ci, Ac, Wc):
    """Forward pass of part ``p`` of ``X`` (its ``chunk`` rows) in one workspace: the
    outputs into ``out``'s rows (unless ``out`` has no rows) and, if ``want_cost``,
    returns (cost sum, correct) against ``Y``/``labels``."""
    n = X.shape[0]
    L = layout.shape[0]
    m_out = layout[L - 1, 3]
    c0 = p * chunk
    c1 = min(n, c0 + chunk)
    B = c1 - c0
    Aout = forward_chunk(params, layout, codes, slope, X[c0:c1], acts, offs, Zout,
                         B >= blas_min, ci, Ac, Wc)
    if out.shape[0] > 0:
        for b in range(B):   # loops: see _gather
            o = out[c0 + b]
            a = Aout[b]
            for j in range(o.size):
                o[j] = a[j]
    if not want_cost:
        return 0.0, 0
    T = Y[c0:c1] if not use_labels else Y
    lab = labels[c0:c1] if use_labels else labels
    Z = block(Zout, 0, B, m_out)
    return output_delta(Z, Aout, T, lab, use_labels, codes[L - 1], cost_code,
                        Z[:0])  # no rows: cost only


@njit(cache=True, parallel=True)
def _forward_parts(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                   chunk, blas_min, p0, k, acts, offs, Zout, out, want_cost, losses,
                   corrects, ci, Ac, Wc, fpart):
    """Parts ``p0 .. p0+k-1`` of ``X`` (``_forward_part``, as the function pointer
    ``fpart``: see ``_parts``), part ``p0+g`` in workspace ``g``, spread over Numba's
    threads. A first ``predict_proba`` of 5,000 rows with an empty cache (50-64-10,
    float32, a script outside the repository, one run each, 2 cores Zen 1): 23.4 s with
    ``_forward_part`` by name (this kernel 7.1 s), 16.3 s through the pointer (1.8 s)."""
    for g in prange(k):
        lo, co = fpart(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                       chunk, blas_min, p0 + g, acts[g], offs, Zout[g], out, want_cost,
                       ci[g], Ac[g], Wc[g])
        losses[g] = lo
        corrects[g] = co


@njit(cache=True)
def forward_serial(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                   chunk, blas_min, out, want_cost):
    """The forward pass of all of ``X`` in parts of ``chunk`` rows, in turn on this
    thread: outputs into ``out`` (if it has rows), returns (cost sum, correct) if
    ``want_cost``. No parallel loop is compiled in: loading a kernel that holds one
    starts Numba's thread pool, which a later fork of this process could not use."""
    n = X.shape[0]
    (offs, acts, Zout, D1, D2, wt, Tws, labws, gparts, losses, corrects, ci, Ac,
     Wc) = workspaces(params, layout, codes, chunk, 1, False, blas_min)
    loss = 0.0
    correct = 0
    for p in range((n + chunk - 1) // chunk):
        lo, co = _forward_part(params, layout, codes, slope, cost_code, X, Y, labels,
                               use_labels, chunk, blas_min, p, acts[0], offs, Zout[0], out,
                               want_cost, ci[0], Ac[0], Wc[0])
        loss += lo
        correct += co
    return loss, correct


@njit(cache=True)
def forward_all(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, chunk,
                blas_min, out, want_cost, nwork, fpart):
    """``forward_serial`` with up to ``nwork`` parts at once (one per thread; rows are
    independent, so the outputs do not depend on it, and the costs are added in part
    order); ``fpart`` is ``_forward_part`` as a function pointer (``_forward``)."""
    n = X.shape[0]
    nparts = (n + chunk - 1) // chunk
    G = max(1, min(nwork, nparts))
    (offs, acts, Zout, D1, D2, wt, Tws, labws, gparts, losses, corrects, ci, Ac,
     Wc) = workspaces(params, layout, codes, chunk, G, False, blas_min)
    loss = 0.0
    correct = 0
    for p0 in range(0, nparts, G):
        k = min(G, nparts - p0)
        _forward_parts(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                       chunk, blas_min, p0, k, acts, offs, Zout, out, want_cost, losses,
                       corrects, ci, Ac, Wc, fpart)
        for g in range(k):
            loss += losses[g]
            correct += corrects[g]
    return loss, correct


#: ``_forward``'s ``_forward_part`` pointers, by argument types
_FORWARD_PARTS = {}


def _forward(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, chunk,
             blas_min, out, want_cost, nwork):
    """``forward_all`` with several workers and more than one part, else
    ``forward_serial``."""
    if nwork > 1 and X.shape[0] > chunk:
        args = (params, layout, codes, slope, cost_code, X, Y, labels, use_labels, out,
                want_cost)
        key = tuple(numba.typeof(a) for a in args)
        fpart = _FORWARD_PARTS.get(key)
        if fpart is None:
            (t_params, t_layout, t_codes, t_slope, t_cost, t_X, t_Y, t_labels, t_use, t_out,
             t_want) = key
            v1, _, i1, _ = _buffer_types(t_params)   # a workspace's rows (workspaces)
            n = types.int64
            fpart = Kernel(_forward_part, (t_params, t_layout, t_codes, t_slope, t_cost, t_X,
                                           t_Y, t_labels, t_use, n, n, n, v1, i1, v1, t_out,
                                           t_want, i1, v1, v1))
            _FORWARD_PARTS[key] = fpart
        return forward_all(params, layout, codes, slope, cost_code, X, Y, labels,
                           use_labels, chunk, blas_min, out, want_cost, nwork, fpart)
    return forward_serial(params, layout, codes, slope, cost_code, X, Y, labels,
                          use_labels, chunk, blas_min, out, want_cost)


def evaluate(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, chunk,
             blas_min, nwork=1):
    """Summed cost and number of correct argmax predictions (labels only) over ``X``."""
    none = np.empty((0, layout[-1, 3]), params.dtype)
    return _forward(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                    chunk, blas_min, none, True, nwork)


def predict(params, layout, codes, slope, X, out, chunk, blas_min, nwork=1):
    """``out = network(X)``: the output activations, computed part by part."""
    _forward(params, layout, codes, slope, 0, X, out[:0], np.empty(0, np.int64), False,
             chunk, blas_min, out, False, nwork)


#: How far ahead of the entry they read the index's passes (``nonzero_rows``,
#: ``_fill_nonzeros_vec``) ask for ``X``'s cache lines, in bytes. Both read ``X`` once, in
#: order, faster than the CPU's own prefetch brings it. Measured on MNIST's 50,000
#: float32 training images (157 MB, out of the caches), one thread, best / median of 9
#: (AMD EPYC Zen 5, 2026-12-05, a script outside the repository, several runs): the fill
#: 17.6-18.1 / 17.7-18.4 ms without, 4.6-4.9 / 4.7-4.9 ms with 12 KB ahead (5.5 / 5.8 in
#: a busy run; 6 to 24 KB: 4.7-5.0 best); the count 5.6-5.9 ms without, 3.6-4.0 ms with
#: 12 or 24 KB (4.3 ms with 6 KB).
#: The fill asks for a line at each register it packs; the count for a row's lines
#: before its vectorised loop (a line at a time, its loop took 38 ms).
PREFETCH_BYTES = 12288


@njit(cache=True, inline="always")
def _prefetch_within(flat, k):
    """Prefetch ``flat[k]``'s cache line if ``k`` is within ``flat``."""
    if k < flat.size:
        prefetch(flat, k)


@njit(cache=True, nogil=True)
def nonzero_rows(X):
    """Row pointer of the CSR index of ``X``'s non-zeros: ``indptr[r + 1] - indptr[r]``
    is the number of non-zeros of row ``r`` (int64, ``n + 1`` entries); and the number
    of NaN or infinite entries.

    Both counts in one vectorised pass (``x - x`` is 0 for finite ``x``, NaN otherwise),
    so ``fit`` needs no separate ``np.isfinite`` pass over ``X``. Measured on MNIST's
    50,000 float32 training images (same-run minima): ``np.isfinite(X).all()`` 23.5 ms
    (and a 39 MB mask), this pass 13.4 ms without the second count and 16.1 ms with it.
    """
    n, d = X.shape
    indptr = np.empty(n + 1, np.int64)
    indptr[0] = 0
    zero = like(X, 0.0)
    bad = 0
    flat = flat_view(X)
    line = 64 // X.itemsize
    ahead = PREFETCH_BYTES // X.itemsize
    for r in range(n):
        c = 0
        nf = 0
        x = X[r]
        for j in range(0, d, line):   # PREFETCH_BYTES
            _prefetch_within(flat, r * d + j + ahead)
        for i in range(d):
            v = x[i]
            c += v != zero
            nf += (v - v) != zero
        indptr[r + 1] = indptr[r] + c
        bad += nf
    return indptr, bad


def preload(dtype):
    """Load ``nonzero_rows`` for C-contiguous 2-D arrays of ``dtype`` from Numba's cache
    (or compile it): the first kernel ``fit`` calls on such data. Numba's first load or
    compile in a process also sets up its compiler target: in a warm start of config B
    (a script outside the repository timing a monkeypatched ``Dispatcher.compile``),
    ``fit``'s first call of ``nonzero_rows`` took 0.43 s, 0.42 s of it that set-up, and
    each other kernel's load 7-47 ms. The data set loaders call this while their files
    are decompressed on another thread.
    Does nothing under ``NUMBA_DISABLE_JIT``."""
    compile_ = getattr(nonzero_rows, "compile", None)
    if compile_ is not None:
        compile_((types.Array(numba.from_dtype(np.dtype(dtype)), 2, "C"),))


#: Whether ``simd.store_nonzeros`` can pack a register: with AVX-512, Numba's LLVM
#: needs ``llvm.experimental.vector.compress`` (LLVM 19); with AVX2 alone it packs by
#: table lookups (``simd._pack_avx2``).
VECTOR_COMPRESS = simd.AVX2 and (not simd.AVX512 or llvm_version_info >= (19,))


#: Fewest entries of ``X`` for which ``count_nonzeros`` and ``nonzero_entries`` cut its
#: rows into blocks, one per thread (``numba.get_num_threads()``), done at once: a pool of
#: one thread takes ~0.2 ms to start, run and join here (186 us best, 217 us median of
#: 200), MNIST's index ~50 ms on one thread (AMD Zen 1). With ``PREFETCH_BYTES`` both
#: passes are bound by the memory's bandwidth and the second thread gains less: MNIST's
#: index 8.7-10.0 ms on one thread, 7.6-8.3 ms on two (Zen 5, best of 9, two runs).
THREADED_MIN = 1 << 20


def _index_threads():
    """Threads for the index's passes: Numba's (``NUMBA_NUM_THREADS``, default the
    cores)."""
    return numba.get_num_threads()


def _row_blocks(X):
    """Contiguous row ranges ``(a, b)`` of ``X`` covering it, one per thread, or one."""
    n = X.shape[0]
    k = max(1, min(_index_threads(), n)) if X.size >= THREADED_MIN else 1
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


def _on_threads(fn, blocks):
    """``[fn(a, b) for (a, b) in blocks]``, the first block on this thread and the others
    on a pool's threads, at once (the kernels release the GIL: ``nogil``); a block's
    exception is raised here."""
    if len(blocks) == 1:
        return [fn(*blocks[0])]
    with ThreadPoolExecutor(len(blocks) - 1) as pool:
        rest = [pool.submit(fn, *b) for b in blocks[1:]]
        first = fn(*blocks[0])
        return [first] + [f.result() for f in rest]


def count_nonzeros(X):
    """``nonzero_rows(X)``: ``(indptr, number of NaN or infinite entries)``, each block of
    rows (``_row_blocks``) counted on its own thread, the blocks' row pointers then
    joined. Measured on MNIST's 50,000 float32 training images, 2 cores (AMD Zen 1,
    before ``PREFETCH_BYTES``; a script outside the repository, best of 8, two runs;
    2026-12-05): ``nonzero_rows`` alone 21.8-22.5
    ms, this 11.9-13.0 ms; ``nonzero_entries`` on one thread 27.0-27.6 ms, on two
    14.9-16.3 ms. Small-batch fits pay both once per ``fit``: a one-epoch fit of config
    A (784-30-10, batch 10) took 0.86-0.93 of its time (fresh processes alternated with
    the commit before, best of 5 each, 6 pairs)."""
    blocks = _row_blocks(X)
    if len(blocks) == 1:
        return nonzero_rows(X)
    parts = _on_threads(lambda a, b: nonzero_rows(X[a:b]), blocks)
    indptr = np.empty(X.shape[0] + 1, np.int64)
    indptr[0] = 0
    for (a, b), (ip, _) in zip(blocks, parts):
        indptr[a + 1:b + 1] = ip[1:] + indptr[a]
    return indptr, sum(bad for _, bad in parts)


def nonzero_entries(X, indptr):
    """Column indices and values of the CSR index of ``X`` whose row pointer is
    ``indptr`` (``nonzero_rows``): row ``r``'s non-zero columns are
    ``indices[indptr[r]:indptr[r + 1]]``, ascending, and ``values`` the entries there.

    The indices are uint16 when ``X`` has at most 65,536 columns, int32 otherwise; the
    values have ``X``'s dtype. The first layer reads each sample's inputs from
    ``values``, contiguous, instead of picking them out of its row of ``X``: a sample's
    part of the index is then ~20 cache lines on MNIST (float32 values, uint16 indices)
    instead of the row's 49 plus 10 of int32 indices, which the epoch has to bring in
    from memory for every sample. Measured, the first layer's forward with the next
    batch's prefetch, a shuffled MNIST epoch, 784 -> 100, float32 (best of 5, one run):
    batch 32 0.057 s from ``X`` and int32 indices, 0.045 s so; batch 1 0.058 / 0.043 s.
    It costs 6 bytes per non-zero in float32 (45 MB for MNIST's 50,000 training images)
    instead of 4.
    """
    n, d = X.shape
    nnz = int(indptr[n])
    room = nnz + max(d, 16)   # the fills write past the last entry (see them)
    indices = np.empty(room, np.uint16 if d <= 65536 else np.int32)
    values = np.empty(room, X.dtype)
    fill = _fill_nonzeros_vec if VECTOR_COMPRESS else _fill_nonzeros
    # blocks of rows on threads at once (_row_blocks); each block but the last fills its
    # last rows exactly (_first_exact_row): nothing past its end, where the next block's
    # first row is being written
    _on_threads(lambda a, b: fill(X[a:b], indptr[a:b + 1], indices, values, b < n),
                _row_blocks(X))
    return indices[:nnz], values[:nnz]


@njit(cache=True, inline="always")
def _first_exact_row(indptr, n, exact_last, past):
    """``n``, or with ``exact_last`` the first of the block's last rows whose fill,
    writing up to ``past`` entries past a row's end, could write past the block's last
    entry: those rows are filled one entry at a time (``_fill_rows_exactly``), after the
    others, so that nothing is written beyond the block (where the next block's rows are
    being filled on another thread: ``nonzero_entries``)."""
    r = n
    if exact_last:
        while r > 0 and indptr[r] + past > indptr[n]:   # indptr[r]: row r - 1's end
            r -= 1
    return r


@njit(cache=True, inline="always")
def _fill_rows_exactly(X, r0, indptr, indices, values):
    """Rows ``r0 ..`` of the CSR index entry by entry, nothing written past them."""
    for r in range(r0, X.shape[0]):
        x = X[r]
        q = indptr[r]
        for i in range(x.size):
            if x[i] != 0:
                indices[q] = i
                values[q] = x[i]
                q += 1


@njit(cache=True, nogil=True)
def _fill_nonzeros(X, indptr, indices, values, exact_last):
    """``nonzero_entries``' fill, branch-free (every column is written, the cursor
    advances only past non-zeros; it writes one entry past a row's end, and so past
    the last row's unless ``exact_last``: ``_first_exact_row``): a branch per MNIST
    pixel is mispredicted too often."""
    n, d = X.shape
    r0 = _first_exact_row(indptr, n, exact_last, 1)
    for r in range(r0):
        x = X[r]
        q = indptr[r]
        for i in range(d):
            v = x[i]
            indices[q] = i
            values[q] = v
            q += v != 0
    _fill_rows_exactly(X, r0, indptr, indices, values)


@njit(cache=True, nogil=True)
def _fill_nonzeros_vec(X, indptr, indices, values, exact_last):
    """``_fill_nonzeros`` a register at a time (``simd.store_nonzeros``; it writes up to
    a register's lanes past a row's end). Measured on MNIST's 50,000 float32 training
    images, best of 5 in one run: 0.029 s with ``_fill_nonzeros``, 0.010 s so."""
    n, d = X.shape
    L = lanes(values)
    r0 = _first_exact_row(indptr, n, exact_last, L)
    flat = flat_view(X)
    ahead = PREFETCH_BYTES // X.itemsize
    for r in range(r0):
        x = X[r]
        q = indptr[r]
        for j in range(0, d, L):
            _prefetch_within(flat, r * d + j + ahead)   # PREFETCH_BYTES
            q = store_nonzeros(x, j, indices, values, q)
    _fill_rows_exactly(X, r0, indptr, indices, values)


def nonzero_index(X):
    """CSR index of the non-zero entries of ``X``: ``(indptr, indices, values)``, the row
    pointer (int64, ``count_nonzeros``), the columns and the values
    (``nonzero_entries``)."""
    indptr = count_nonzeros(X)[0]
    return (indptr, *nonzero_entries(X, indptr))
