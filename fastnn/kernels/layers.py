"""Kernels for networks with PReLU, batch normalisation or dropout.

These layers need more than ``train.py``'s fused loops keep: batch normalisation couples
the samples of a batch (its statistics, and its backward pass, are over the whole batch),
PReLU and batch norm have parameters of their own, and dropout needs a mask per sample.
So a network that uses any of them trains here, one batch at a time, with the forward
pass stored layer by layer and the summed gradient of the whole batch built before one
optimizer step (``updates.apply_update``) -- the BLAS products for chunks of at least
``blas_min`` rows, the loops below that, as in ``train.train_epoch_blas``.

Beyond ``train.py``'s tables (``params``, ``layout``, ``codes``), these kernels take:

- ``ext[l] = (alpha_off, gamma_off, stat_off)`` for each layer (-1 where absent; the
  output layer has none): the PReLU slopes ``params[alpha_off:alpha_off + m]``, the batch
  norm scale ``params[gamma_off:gamma_off + m]`` and shift ``params[gamma_off + m:...
  + 2m]``, and the running mean ``stats[stat_off:stat_off + m]`` and variance
  ``stats[stat_off + m:stat_off + 2m]`` (``stats`` is a buffer of its own: running
  statistics are not trained by the optimizer);
- ``layout_x``: ``layout`` plus one row ``(e, e, 0, params.size - e)`` for the extra
  parameters, which ``apply_update`` then treats like biases (no L2, no L1);
- ``drop[l]``: the dropout rate of hidden layer ``l`` (0: none), with ``seed`` and the
  optimizer step for the masks (``dropout_scale``).

A hidden layer computes ``z = a_in @ W + b``; with batch norm ``y = gamma * xhat + beta``,
``xhat = (z - mu) * inv``, ``inv = 1 / sqrt(var + eps)`` (the batch's mean and biased
variance in training, the running ones at inference), else ``y = z``; ``a = f(y)`` (PReLU:
``y`` if y > 0 else ``alpha_j y``); then, in training, ``a * mask`` (inverted dropout).
The workspace keeps, per hidden layer, the blocks ``Y``, ``A``, ``XHAT``, ``MASK`` and
``AD`` (the masked activations the next layer reads).
"""
import math

import numpy as np
from numba import njit

from ._numeric import block, like
from .activations import IDENTITY, activate, keeps_z, mul_derivative
from .dense import backprop_delta, forward, gradients, output_delta
from .train import _gather, delta_buffers
from .pointers import alive, borrowed
from .updates import apply_update, max_norm_columns, regularize_gradient

Y_BLOCK, A_BLOCK, XHAT_BLOCK, MASK_BLOCK, AD_BLOCK = 0, 1, 2, 3, 4
_NBLOCKS = 5

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 2.0 ** -53


@njit(cache=True, inline="always")
def mix64(x):
    """SplitMix64's finaliser (uint64, wrapping): a bijection that scrambles every bit."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit(cache=True)
def dropout_scale(M, rows, seed, step, layer, rate):
    """Inverted-dropout multipliers for the samples ``rows`` (rows of X): ``M[b, j]`` is
    0 if unit ``j`` of sample ``rows[b]`` is dropped, else ``1 / (1 - rate)``.

    Counter-based (as ``reference.dropout_mask``): unit ``j`` is kept when the top 53
    bits of ``mix(k + (j + 1) * GOLDEN)``, as a fraction of 2**53, are >= ``rate``, with
    ``k = mix(mix(mix(mix(seed ^ GOLDEN) ^ step) ^ layer) ^ row)``. A mask depends only
    on (seed, step, layer, row, unit): not on the batch, the chunking or threads.
    """
    B, m = M.shape
    scale = like(M, 1.0 / (1.0 - rate))
    zero = like(M, 0.0)
    base = mix64(mix64(mix64(np.uint64(seed) ^ _GOLDEN) ^ np.uint64(step)) ^ np.uint64(layer))
    for b in range(B):
        k = mix64(base ^ np.uint64(rows[b]))
        mb = M[b]
        for j in range(m):
            h = mix64(k + np.uint64(j + 1) * _GOLDEN)
            u = np.float64(h >> _S11) * _TWO_M53
            mb[j] = scale if u >= rate else zero


@njit(cache=True, inline="always")
def _hb(hs, k, H, chunk, hoff, l, B, m):
    """Block ``k`` (Y_BLOCK ...) of hidden layer ``l``: ``(B, m)`` rows of the workspace."""
    start = (k * H + hoff[l]) * chunk
    return hs[start:start + B * m].reshape(B, m)


@njit(cache=True)
def ext_workspace(params, layout, chunk):
    """``(hoff, H, hs, bninv, acts0, Zout, Aout, D1, D2, Tws, labws, wt)`` for chunks of
    up to ``chunk`` rows: ``hoff[l]`` is hidden layer ``l``'s column in blocks of ``H``
    (the summed hidden widths) units."""
    L = layout.shape[0]
    hoff = np.zeros(L, np.int64)
    H = 0
    for l in range(L - 1):
        hoff[l] = H
        H += layout[l, 3]
    hs = np.empty(_NBLOCKS * chunk * H, params.dtype)
    bninv = np.empty(max(H, 1), params.dtype)
    acts0 = np.empty(chunk * layout[0, 2], params.dtype)
    Aout = np.empty(chunk * layout[L - 1, 3], params.dtype)
    Zout, D1, D2, Tws, labws, wt = delta_buffers(params, layout, chunk)
    return hoff, H, hs, bninv, acts0, Zout, Aout, D1, D2, Tws, labws, wt


@njit(cache=True)
def forward_ext(params, layout, codes, slope, ext, stats, drop, seed, step, rows, A0, train,
                update_stats, bn_momentum, eps, hoff, H, chunk, hs, bninv, Zout, Aout,
                use_blas):
    """Forward pass of the ``B`` rows ``A0`` (samples ``rows`` of X, for the dropout
    masks); returns the output activations (``Zout`` keeps the output's ``z``).

    ``train``: batch statistics for batch norm (the chunk must hold the whole batch),
    their ``inv`` kept in ``bninv`` for the backward pass, and the dropout masks of
    ``step`` (layers with ``drop[l] > 0``); otherwise the running statistics and no
    dropout. ``update_stats`` (with ``train``, and more than one row) moves the running
    statistics by ``bn_momentum`` towards the batch's mean and unbiased variance.
    """
    L = layout.shape[0]
    B = A0.shape[0]
    A_prev = A0
    zero = like(params, 0.0)
    one = like(params, 1.0)
    epsc = like(params, eps)
    mom = like(params, bn_momentum)
    for l in range(L):
        w_off, b_off, n, m = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        W = block(params, w_off, n, m)
        bias = params[b_off:b_off + m]
        if l == L - 1:
            Z = block(Zout, 0, B, m)
            A = block(Aout, 0, B, m)
            forward(A_prev, W, bias, Z, use_blas, l == 0)
            activate(Z, A, codes[l], slope)
            return A
        Y = _hb(hs, Y_BLOCK, H, chunk, hoff, l, B, m)
        A = _hb(hs, A_BLOCK, H, chunk, hoff, l, B, m)
        forward(A_prev, W, bias, Y, use_blas, l == 0)   # the loops skip zero raw inputs
        g_off = ext[l, 1]
        if g_off >= 0:   # batch norm: Y holds z; xhat, then y = gamma xhat + beta
            Xh = _hb(hs, XHAT_BLOCK, H, chunk, hoff, l, B, m)
            inv = bninv[hoff[l]:hoff[l] + m]
            s_off = ext[l, 2]
            rmean = stats[s_off:s_off + m]
            rvar = stats[s_off + m:s_off + 2 * m]
            gamma = params[g_off:g_off + m]
            beta = params[g_off + m:g_off + 2 * m]
            for j in range(m):
                if train:
                    mu = zero
                    for b in range(B):
                        mu += Y[b, j]
                    mu = mu / like(params, B)
                    var = zero
                    for b in range(B):
                        d = Y[b, j] - mu
                        var += d * d
                    var = var / like(params, B)
                    if update_stats and B > 1:
                        rmean[j] = (one - mom) * rmean[j] + mom * mu
                        rvar[j] = ((one - mom) * rvar[j]
                                   + mom * (var * like(params, B) / like(params, B - 1)))
                else:
                    mu = rmean[j]
                    var = rvar[j]
                iv = one / np.sqrt(var + epsc)
                inv[j] = iv
                for b in range(B):
                    xh = (Y[b, j] - mu) * iv
                    Xh[b, j] = xh
                    Y[b, j] = gamma[j] * xh + beta[j]
        a_off = ext[l, 0]
        if a_off >= 0:   # PReLU
            alpha = params[a_off:a_off + m]
            for b in range(B):
                for j in range(m):
                    y = Y[b, j]
                    A[b, j] = y if y > zero else alpha[j] * y
        else:
            activate(Y, A, codes[l], slope)
        A_prev = A
        if train and drop[l] > 0:
            Mk = _hb(hs, MASK_BLOCK, H, chunk, hoff, l, B, m)
            Ad = _hb(hs, AD_BLOCK, H, chunk, hoff, l, B, m)
            dropout_scale(Mk, rows, seed, step, l, drop[l])
            for b in range(B):
                for j in range(m):
                    Ad[b, j] = A[b, j] * Mk[b, j]
            A_prev = Ad
    return A_prev   # not reached: the output layer returns


@njit(cache=True)
def backward_ext(params, layout, codes, slope, ext, drop, train, A0, D, grad, hoff, H, chunk,
                 hs, bninv, D1, D2, wt, use_blas):
    """Summed gradient of the chunk into ``grad`` (every entry written: weights, biases
    and the extra parameters), from the output delta ``D`` (a view of ``D1``), after
    ``forward_ext`` on the same rows; ``train`` as there (whether masks were applied).

    Through hidden layer ``k`` from ``g = D @ W.T`` (the layer above's delta): ``g *=
    mask``; ``dy = g * f'(y)`` (PReLU: ``g`` or ``alpha g``, and ``dalpha = sum_b g
    min(y, 0)``); batch norm: ``dgamma = sum_b dy xhat``, ``dbeta = sum_b dy`` and
    ``dz = inv gamma (dy - dbeta / B - xhat dgamma / B)`` (the mean over the batch of
    ``dxhat = gamma dy`` and of ``dxhat * xhat``, written with the sums just taken).
    """
    L = layout.shape[0]
    B = A0.shape[0]
    zero = like(params, 0.0)
    in_d1 = True
    for l in range(L - 1, -1, -1):
        w_off, b_off, n, m = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
        W = block(params, w_off, n, m)
        if l == 0:
            A_in = A0
        elif train and drop[l - 1] > 0:
            A_in = _hb(hs, AD_BLOCK, H, chunk, hoff, l - 1, B, n)
        else:
            A_in = _hb(hs, A_BLOCK, H, chunk, hoff, l - 1, B, n)
        gradients(A_in, D, block(grad, w_off, n, m), grad[b_off:b_off + m], use_blas)
        if l == 0:
            break
        k = l - 1
        Dp = block(D2 if in_d1 else D1, 0, B, n)
        backprop_delta(D, W, Dp, IDENTITY, slope, Dp, use_blas, wt)   # Dp = D @ W.T
        if train and drop[k] > 0:
            Mk = _hb(hs, MASK_BLOCK, H, chunk, hoff, k, B, n)
            for b in range(B):
                for i in range(n):
                    Dp[b, i] *= Mk[b, i]
        Yk = _hb(hs, Y_BLOCK, H, chunk, hoff, k, B, n)
        a_off = ext[k, 0]
        if a_off >= 0:   # PReLU
            alpha = params[a_off:a_off + n]
            ga = grad[a_off:a_off + n]
            for i in range(n):
                ga[i] = zero
            for b in range(B):
                for i in range(n):
                    y = Yk[b, i]
                    g = Dp[b, i]
                    if y > zero:
                        Dp[b, i] = g
                    else:
                        ga[i] += g * y
                        Dp[b, i] = alpha[i] * g
        elif keeps_z(codes[k]):
            mul_derivative(Dp, Yk, codes[k], slope)
        else:
            mul_derivative(Dp, _hb(hs, A_BLOCK, H, chunk, hoff, k, B, n), codes[k], slope)
        g_off = ext[k, 1]
        if g_off >= 0:   # batch norm
            Xh = _hb(hs, XHAT_BLOCK, H, chunk, hoff, k, B, n)
            inv = bninv[hoff[k]:hoff[k] + n]
            gamma = params[g_off:g_off + n]
            gg = grad[g_off:g_off + n]
            gbeta = grad[g_off + n:g_off + 2 * n]
            rb = like(params, 1.0) / like(params, B)
            for i in range(n):
                sg = zero
                sb = zero
                for b in range(B):
                    sg += Dp[b, i] * Xh[b, i]
                    sb += Dp[b, i]
                gg[i] = sg
                gbeta[i] = sb
                c = inv[i] * gamma[i]
                mb = sb * rb
                mg = sg * rb
                for b in range(B):
                    Dp[b, i] = c * (Dp[b, i] - mb - Xh[b, i] * mg)
        D = Dp
        in_d1 = not in_d1


@njit(cache=True)
def train_epoch_ext(params, layout, layout_x, codes, slope, cost_code, ext, stats, drop, seed,
                    bn_momentum, eps, X, Y, labels, use_labels, order, batch_size, chunk,
                    blas_min, l2, l1, max_norm, clip_norm, opt_code, hyper, state, step):
    """``train.train_epoch`` for networks with PReLU, batch norm or dropout (module
    docstring); same arguments and return value, plus ``layout_x``, ``ext``, ``stats``,
    ``drop``, ``seed``, ``bn_momentum`` and ``eps``. With batch norm, ``chunk`` must be
    at least ``batch_size``: the batch's statistics are taken over one chunk.

    Per batch: forward (dropout masks of the step about to be taken; running
    statistics updated), summed gradient chunk by chunk, gradient clipping and L1 (if
    any), one optimizer step over all parameters, the max-norm constraint (if any).
    Its arrays are ``pointers.borrowed``, as ``train.train_epoch_fused``'s.
    """
    (params, layout, layout_x, codes, ext, stats, drop, X, Y, labels, order, hyper, state,
     step) = borrowed((params, layout, layout_x, codes, ext, stats, drop, X, Y, labels,
                       order, hyper, state, step))   # the caller holds them
    made = ext_workspace(params, layout, chunk)   # alive(made) after the loop
    hoff, H, hs, bninv, acts0, Zout, Aout, D1, D2, Tws, labws, wt = borrowed(made)
    made2 = (np.empty(params.size, params.dtype),
             np.empty(params.size if batch_size > chunk else 0, params.dtype))
    grad, gtmp = borrowed(made2)
    L = layout.shape[0]
    m_out = layout[L - 1, 3]
    n = order.size
    loss = 0.0
    correct = 0
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        rows = order[s:e]
        nb = e - s
        lo = 0.0
        for c0 in range(0, nb, chunk):
            c1 = min(nb, c0 + chunk)
            B = c1 - c0
            crow = rows[c0:c1]
            A0, T, lab = _gather(X, Y, labels, use_labels, crow, acts0, Tws, labws, True)
            use_blas = B >= blas_min
            Ao = forward_ext(params, layout, codes, slope, ext, stats, drop, seed, step[0],
                             crow, A0, True, True, bn_momentum, eps, hoff, H, chunk, hs,
                             bninv, Zout, Aout, use_blas)
            D = block(D1, 0, B, m_out)
            cl, co = output_delta(block(Zout, 0, B, m_out), Ao, T, lab, use_labels,
                                  codes[L - 1], cost_code, D)
            target = grad if c0 == 0 else gtmp
            backward_ext(params, layout, codes, slope, ext, drop, True, A0, D, target, hoff,
                         H, chunk, hs, bninv, D1, D2, wt, use_blas)
            if c0 > 0:
                for p in range(grad.size):
                    grad[p] += gtmp[p]
            lo += cl
            correct += co
        if not math.isfinite(lo):
            return loss, correct, s
        if clip_norm > 0 or l1 > 0:
            regularize_gradient(params, grad, layout_x, nb, l1, clip_norm)
        apply_update(params, grad, layout_x, nb, l2, opt_code, hyper, state, step[0], None)
        if max_norm > 0:
            for l in range(L):
                max_norm_columns(block(params, layout[l, 0], layout[l, 2], layout[l, 3]),
                                 max_norm, grad)
        step[0] += 1
        loss += lo
    alive(made)
    alive(made2)
    return loss, correct, n


@njit(cache=True)
def loss_and_gradient_ext(params, layout, codes, slope, cost_code, ext, stats, eps, X, Y,
                          labels, use_labels, chunk, blas_min, grad):
    """Summed cost and summed gradient over all of ``X`` in training mode (batch norm on
    the statistics of all of ``X``: ``chunk`` must then be ``X.shape[0]``), without
    dropout and without touching the running statistics."""
    hoff, H, hs, bninv, acts0, Zout, Aout, D1, D2, Tws, labws, wt = ext_workspace(
        params, layout, chunk)
    gtmp = np.empty_like(params)
    drop = np.zeros(layout.shape[0], np.float64)
    L = layout.shape[0]
    m_out = layout[L - 1, 3]
    n = X.shape[0]
    rows = np.arange(n)
    loss = 0.0
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        B = c1 - c0
        A0, T, lab = _gather(X, Y, labels, use_labels, rows[c0:c1], acts0, Tws, labws, True)
        use_blas = B >= blas_min
        Ao = forward_ext(params, layout, codes, slope, ext, stats, drop, 0, 0, rows[c0:c1],
                         A0, True, False, 0.0, eps, hoff, H, chunk, hs, bninv, Zout, Aout,
                         use_blas)
        D = block(D1, 0, B, m_out)
        cl, _ = output_delta(block(Zout, 0, B, m_out), Ao, T, lab, use_labels,
                             codes[L - 1], cost_code, D)
        target = grad if c0 == 0 else gtmp
        backward_ext(params, layout, codes, slope, ext, drop, True, A0, D, target, hoff, H,
                     chunk, hs, bninv, D1, D2, wt, use_blas)
        if c0 > 0:
            for p in range(grad.size):
                grad[p] += gtmp[p]
        loss += cl
    return loss


@njit(cache=True)
def predict_ext(params, layout, codes, slope, ext, stats, eps, X, out, chunk, blas_min,
                cost_code, Y, labels, use_labels, want_cost):
    """Inference (running statistics, no dropout), chunk by chunk: ``out = network(X)``
    if ``out`` has rows; with ``want_cost``, also the summed cost and the number of
    correct argmax predictions against ``Y``/``labels`` (as ``train.evaluate``).
    Returns ``(cost_sum, n_correct)``."""
    hoff, H, hs, bninv, acts0, Zout, Aout, D1, D2, Tws, labws, wt = ext_workspace(
        params, layout, chunk)
    drop = np.zeros(layout.shape[0], np.float64)
    L = layout.shape[0]
    m_out = layout[L - 1, 3]
    n = X.shape[0]
    loss = 0.0
    correct = 0
    rows = np.empty(0, np.int64)   # no dropout at inference: no sample rows needed
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        B = c1 - c0
        Ao = forward_ext(params, layout, codes, slope, ext, stats, drop, 0, 0, rows,
                         X[c0:c1], False, False, 0.0, eps, hoff, H, chunk, hs, bninv, Zout,
                         Aout, B >= blas_min)
        if out.shape[0] > 0:
            for b in range(B):   # loops, not a slice assignment: see train._gather
                o = out[c0 + b]
                a = Ao[b]
                for j in range(m_out):
                    o[j] = a[j]
        if want_cost:
            T = Y[c0:c1] if not use_labels else Y
            lab = labels[c0:c1] if use_labels else labels
            Z = block(Zout, 0, B, m_out)
            lo, co = output_delta(Z, Ao, T, lab, use_labels, codes[L - 1], cost_code, Z[:0])
            loss += lo
            correct += co
    return loss, correct
