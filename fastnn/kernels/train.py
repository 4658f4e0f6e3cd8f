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

import numpy as np
from numba import njit

from ._numeric import like
from .activations import activate
from .dense import backprop_delta, forward, gradients, output_delta
from .updates import apply_update


@njit(cache=True)
def _block(buf, off, rows, cols):
    return buf[off:off + rows * cols].reshape(rows, cols)


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


@njit(cache=True)
def forward_chunk(params, layout, codes, slope, A0, acts, offs, Zout, use_blas):
    """Forward pass of ``A0`` (B rows); returns the output activations (a view into ``acts``).

    Hidden layers are activated in place; the output's pre-activation is kept in ``Zout``
    for a log-safe cost.
    """
    L = layout.shape[0]
    B = A0.shape[0]
    A_prev = A0
    for l in range(L):
        w_off, b_off, n, m = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        W = _block(params, w_off, n, m)
        bias = params[b_off:b_off + m]
        A = _block(acts, offs[l + 1], B, m)
        if l == L - 1:
            Z = _block(Zout, 0, B, m)
            forward(A_prev, W, bias, Z, use_blas)
            activate(Z, A, codes[l], slope)
        else:
            forward(A_prev, W, bias, A, use_blas)
            activate(A, A, codes[l], slope)
        A_prev = A
    return A_prev


@njit(cache=True)
def chunk_gradient(params, layout, codes, slope, cost_code, A0, T, lab, use_labels,
                   acts, offs, Zout, D1, D2, grad, use_blas):
    """Forward + backward of one chunk: ``grad`` = summed gradient; returns (cost sum, correct)."""
    L = layout.shape[0]
    B = A0.shape[0]
    m_out = layout[L - 1, 3]
    Aout = forward_chunk(params, layout, codes, slope, A0, acts, offs, Zout, use_blas)
    D = _block(D1, 0, B, m_out)
    Z = _block(Zout, 0, B, m_out)
    loss, correct = output_delta(Z, Aout, T, lab, use_labels, codes[L - 1], cost_code, D, True)
    in_d1 = True  # the current delta lives in D1; the layer below's goes to the other
    for l in range(L - 1, -1, -1):
        w_off, b_off, n, m = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        A_in = A0 if l == 0 else _block(acts, offs[l], B, n)
        gradients(A_in, D, _block(grad, w_off, n, m), grad[b_off:b_off + m], use_blas)
        if l > 0:
            D_prev = _block(D2 if in_d1 else D1, 0, B, n)
            backprop_delta(D, _block(params, w_off, n, m), A_in, codes[l - 1], slope,
                           D_prev, use_blas)
            D = D_prev
            in_d1 = not in_d1
    return loss, correct


@njit(cache=True)
def batch_gradient(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                   rows, chunk, blas_min, acts, offs, Zout, D1, D2, Tws, labws, grad, gtmp):
    """Summed gradient over ``X[rows]``, gathered chunk by chunk into the workspace."""
    nb = rows.size
    n0 = X.shape[1]
    m_out = Zout.size // chunk
    loss = 0.0
    correct = 0
    for c0 in range(0, nb, chunk):
        c1 = min(nb, c0 + chunk)
        B = c1 - c0
        A0 = _block(acts, 0, B, n0)
        T = _block(Tws, 0, B, m_out) if not use_labels else _block(Tws, 0, 0, m_out)
        for b in range(B):
            r = rows[c0 + b]
            A0[b, :] = X[r, :]
            if use_labels:
                labws[b] = labels[r]
            else:
                T[b, :] = Y[r, :]
        target = grad if c0 == 0 else gtmp
        lo, co = chunk_gradient(params, layout, codes, slope, cost_code, A0, T, labws[:B],
                                use_labels, acts, offs, Zout, D1, D2, target, B >= blas_min)
        if c0 > 0:
            for p in range(grad.size):
                grad[p] += gtmp[p]
        loss += lo
        correct += co
    return loss, correct


@njit(cache=True)
def _workspace(params, layout, chunk):
    """Buffers for chunks of up to ``chunk`` rows, allocated once per kernel call."""
    L = layout.shape[0]
    offs = _act_offsets(layout, chunk)
    width = max(_max_width(layout), layout[0, 2])
    m_out = layout[L - 1, 3]
    acts = np.empty(offs[L + 1], params.dtype)
    Zout = np.empty(chunk * m_out, params.dtype)
    D1 = np.empty(chunk * width, params.dtype)
    D2 = np.empty(chunk * width, params.dtype)
    Tws = np.empty(chunk * m_out, params.dtype)
    labws = np.empty(chunk, np.int64)
    return offs, acts, Zout, D1, D2, Tws, labws


@njit(cache=True)
def train_epoch(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, order,
                batch_size, chunk, blas_min, l2, opt_code, hyper, state, step):
    """Train on the samples ``X[order]`` in mini-batches of ``batch_size``, in order.

    The last batch may be smaller; its gradient is averaged over its own size. ``step``
    (an int64 array of one element) counts optimizer steps and is advanced here.
    Stops early, without applying the update, at the first batch whose cost is not
    finite. Returns ``(cost_sum, n_correct, n_done)`` over the samples of the batches
    that were applied (``n_done < order.size`` means the run diverged).
    """
    offs, acts, Zout, D1, D2, Tws, labws = _workspace(params, layout, chunk)
    grad = np.empty_like(params)
    gtmp = np.empty_like(params) if batch_size > chunk else np.empty(0, params.dtype)
    n = order.size
    loss = 0.0
    correct = 0
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        lo, co = batch_gradient(params, layout, codes, slope, cost_code, X, Y, labels,
                                use_labels, order[s:e], chunk, blas_min, acts, offs, Zout,
                                D1, D2, Tws, labws, grad, gtmp)
        if not math.isfinite(lo):
            return loss, correct, s
        apply_update(params, grad, layout, e - s, l2, opt_code, hyper, state, step[0])
        step[0] += 1
        loss += lo
        correct += co
    return loss, correct, n


@njit(cache=True)
def loss_and_gradient(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                      chunk, blas_min, grad):
    """Summed cost and summed gradient over all of ``X`` (no regularisation, not averaged)."""
    offs, acts, Zout, D1, D2, Tws, labws = _workspace(params, layout, chunk)
    gtmp = np.empty_like(params)
    rows = np.arange(X.shape[0])
    loss, _ = batch_gradient(params, layout, codes, slope, cost_code, X, Y, labels,
                             use_labels, rows, chunk, blas_min, acts, offs, Zout, D1, D2,
                             Tws, labws, grad, gtmp)
    return loss


@njit(cache=True)
def evaluate(params, layout, codes, slope, cost_code, X, Y, labels, use_labels, chunk,
             blas_min):
    """Summed cost and number of correct argmax predictions (labels only) over ``X``."""
    offs, acts, Zout, D1, D2, Tws, labws = _workspace(params, layout, chunk)
    L = layout.shape[0]
    m_out = layout[L - 1, 3]
    n = X.shape[0]
    loss = 0.0
    correct = 0
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        B = c1 - c0
        Aout = forward_chunk(params, layout, codes, slope, X[c0:c1], acts, offs, Zout,
                             B >= blas_min)
        T = Y[c0:c1] if not use_labels else Y
        lab = labels[c0:c1] if use_labels else labels
        Z = _block(Zout, 0, B, m_out)
        lo, co = output_delta(Z, Aout, T, lab, use_labels, codes[L - 1], cost_code, Z, False)
        loss += lo
        correct += co
    return loss, correct


@njit(cache=True)
def predict(params, layout, codes, slope, X, out, chunk, blas_min):
    """``out = network(X)``: the output activations, computed chunk by chunk."""
    offs, acts, Zout, D1, D2, Tws, labws = _workspace(params, layout, chunk)
    n = X.shape[0]
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        Aout = forward_chunk(params, layout, codes, slope, X[c0:c1], acts, offs, Zout,
                             c1 - c0 >= blas_min)
        out[c0:c1, :] = Aout
