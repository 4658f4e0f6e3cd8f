"""Forward and backward of one dense layer, and the output layer's cost and delta.

Layout: ``Z = A_in @ W + b`` with ``A_in`` of shape ``(B, n)``, ``W`` of shape ``(n, m)``
(row-major, so the fan-out axis ``j`` is contiguous) and ``b`` of shape ``(m,)``.

Two paths compute the same math:
- loops (small batches): the inner loop runs along ``j``, contiguous in ``W``, ``Z`` and
  the gradient, so LLVM vectorises it; zero raw inputs are skipped (``skip_zeros``),
  which on MNIST skips ~80% of the first layer's work (most pixels are 0);
- BLAS (``use_blas``): ``np.dot`` on contiguous blocks, with the elementwise work around it.
Which one runs is decided by the caller (see ``train.py``).
"""
import numpy as np
from numba import njit

from ._numeric import block, like, log1pexp
from .activations import IDENTITY, SIGMOID, TANH, SOFTMAX, mul_derivative
from .simd import lanes, vload, vloadrow, vmadd, vmaddrow, vstore, vstorerow

QUADRATIC = 0
CROSS_ENTROPY = 1
LOG_LIKELIHOOD = 2


@njit(cache=True, inline="always")
def sum_rows(gr, D):
    """``gr = sum_b D[b]`` (the bias gradient), summed in batch order."""
    m = gr.size
    for j in range(m):
        gr[j] = D[0, j]
    for b in range(1, D.shape[0]):
        d = D[b]
        for j in range(m):
            gr[j] += d[j]


@njit(cache=True, inline="always")
def axpy(z, a, w):
    """``z += a * w`` along a row."""
    for j in range(z.size):
        z[j] += a * w[j]


@njit(cache=True, inline="always")
def axpy4(z, a0, w0, a1, w1, a2, w2, a3, w3):
    """``z += a0 w0 + a1 w1 + a2 w2 + a3 w3``, rounded as four ``axpy`` in turn."""
    for j in range(z.size):
        z[j] = z[j] + a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j]


@njit(cache=True, inline="always")
def axpy_all(z, c, rows):
    """``z += sum_k c[k] * rows[k]`` over all ``k`` in order, four rows per pass (``axpy4``)."""
    n = c.size
    k = 0
    while k + 4 <= n:
        axpy4(z, c[k], rows[k], c[k + 1], rows[k + 1], c[k + 2], rows[k + 2], c[k + 3],
              rows[k + 3])
        k += 4
    while k < n:
        axpy(z, c[k], rows[k])
        k += 1


@njit(cache=True)
def axpy_nonzero(z, c, rows):
    """``z += sum_k c[k] * rows[k]`` over the non-zero ``c[k]``, in order of ``k``.

    Non-zero terms are applied four at a time (``axpy4``): the same rounding as one at a
    time, with ``z`` loaded and stored once per four rows.
    """
    zero = like(z, 0.0)
    k = 0
    r0 = r1 = r2 = 0
    a0 = a1 = a2 = zero
    for r in range(c.size):
        a = c[r]
        if a != 0:  # exact: a zero coefficient contributes nothing
            if k == 3:
                axpy4(z, a0, rows[r0], a1, rows[r1], a2, rows[r2], a, rows[r])
                k = 0
            elif k == 0:
                r0, a0, k = r, a, 1
            elif k == 1:
                r1, a1, k = r, a, 2
            else:
                r2, a2, k = r, a, 3
    if k >= 1:
        axpy(z, a0, rows[r0])
    if k >= 2:
        axpy(z, a1, rows[r1])
    if k >= 3:
        axpy(z, a2, rows[r2])


@njit(cache=True, inline="always")
def forward(A_in, W, bias, Z, use_blas, skip_zeros):
    """``Z = A_in @ W + bias``, with BLAS if ``use_blas``, else ``forward_loops``."""
    if not use_blas:
        forward_loops(A_in, W, bias, Z, skip_zeros)
        return
    np.dot(A_in, W, Z)
    B = A_in.shape[0]
    m = W.shape[1]
    for b in range(B):
        for j in range(m):
            Z[b, j] += bias[j]


@njit(cache=True)
def forward_loops(A_in, W, bias, Z, skip_zeros):
    """``Z = A_in @ W + bias`` with loops; zero inputs are skipped if ``skip_zeros``.

    Skipping pays on raw inputs such as MNIST pixels (~80% zeros, in long runs); on a
    hidden layer's relu outputs the zeros are scattered and the mispredicted branch
    costs more than the 4..64 multiply-adds it would skip, so hidden layers run dense.
    """
    B = A_in.shape[0]
    m = W.shape[1]
    # Row views give LLVM unit-stride loops without index wraparound checks. Inputs are
    # applied four at a time: z = (((z + a0 w0) + a1 w1) + a2 w2) + a3 w3 rounds exactly
    # like four separate passes but loads and stores z once and starts the vector loop
    # (with its alias checks) a quarter as often. Measured, 784 -> 100 rows, float32:
    # 12 GMAC/s with axpy/axpy4 inlined, 4.6 with them as separate functions.
    for b in range(B):
        z = Z[b]
        x = A_in[b]
        for j in range(m):
            z[j] = bias[j]
        if skip_zeros:
            axpy_nonzero(z, x, W)
        else:
            axpy_all(z, x, W)


#: The BLAS path leaves out of the first layer's products the input columns that are zero
#: in every row of a chunk when at most this fraction of them is non-zero
#: (``forward_compact``). Measured on MNIST in shuffled parts of 128 rows: 63-72% (mean
#: 67%) of the 784 pixel columns are non-zero somewhere in a part, so a third of the
#: first layer's products goes; one epoch of 784-512-512-10, batch 256, float32, two
#: threads (best of 3, alternated fresh processes): 1.108 s before, 0.943 s after.
#: Above 90% the gathers would cost about what they save.
COMPACT_MAX = 0.9


@njit(cache=True)
def forward_compact(A_in, W, bias, Z, ci, Ac, Wc):
    """``Z = A_in @ W + bias`` with BLAS on the input columns that are non-zero in some
    row of ``A_in`` (raw inputs such as MNIST pixels): a zero column adds exact zeros, so
    leaving it out of the sum over ``k`` saves its share of the product.

    ``ci`` (int64, ``n + 1``) receives the kept columns, ascending, and ``ci[n]`` their
    number, or -1 if more than ``COMPACT_MAX`` of them are non-zero (then the plain
    product runs); ``Ac`` receives the kept columns of ``A_in`` (``B x k``), kept for
    ``gradients_compact``, and ``Wc`` the kept rows of ``W`` (``k x m``), free after.
    """
    B, n = A_in.shape
    m = W.shape[1]
    for i in range(n):
        ci[i] = 0
    for b in range(B):
        a = A_in[b]
        for i in range(n):
            ci[i] |= a[i] != 0
    k = 0
    for i in range(n):   # in place: position k <= i was read before it is written
        if ci[i]:
            ci[k] = i
            k += 1
    if k > COMPACT_MAX * n or k == 0:
        ci[n] = -1
        forward(A_in, W, bias, Z, True, False)
        return
    ci[n] = k
    A = Ac[:B * k].reshape(B, k)
    for b in range(B):
        a = A_in[b]
        r = A[b]
        for t in range(k):
            r[t] = a[ci[t]]
    Wk = Wc[:k * m].reshape(k, m)
    for t in range(k):
        src = W[ci[t]]
        dst = Wk[t]
        for j in range(m):
            dst[j] = src[j]
    np.dot(A, Wk, Z)
    for b in range(B):
        z = Z[b]
        for j in range(m):
            z[j] += bias[j]


@njit(cache=True)
def gradients_compact(A_in, D, gW, gb, ci, Ac, Wc):
    """``gradients`` (BLAS) after ``forward_compact`` on the same ``A_in``: the rows of
    ``gW`` of the kept columns from ``Ac.T @ D``, the others zero (their inputs are)."""
    B, n = A_in.shape
    k = ci[n]
    if k < 0:
        gradients(A_in, D, gW, gb, True)
        return
    m = D.shape[1]
    sum_rows(gb, D)
    A = Ac[:B * k].reshape(B, k)
    G = Wc[:k * m].reshape(k, m)
    np.dot(A.T, D, G)
    zero = like(gW, 0.0)
    t = 0
    for i in range(n):
        g = gW[i]
        if t < k and ci[t] == i:
            src = G[t]
            for j in range(m):
                g[j] = src[j]
            t += 1
        else:
            for j in range(m):
                g[j] = zero


#: The small-batch loops hold a row of at most ``VEC_REGISTERS`` SIMD registers (32
#: float32, 16 float64 units) in registers whenever they touch it, and a first layer's
#: row of at most ``ROW_REGISTERS`` (128 float32, 64 float64) while summing it over the
#: sample's non-zero inputs (``forward_sparse``) or over the batch's terms
#: (``updates._sorted_gradient``); wider rows run the ``axpy`` loops. Measured on MNIST
#: rows (~150 non-zero pixels), the first layer's forward of batches of 10, alternated in
#: one process, time of registers / loops (a /tmp benchmark of the register code of that
#: time, passes of 1-4 or 8 registers): 30 units 0.52, 64 units 0.68, 512 units 1.33;
#: a whole epoch of 784-100-10 at batch 32 took 0.92-0.93 as long with its 100-unit rows
#: summed in 7 registers as with the loops.
VEC_REGISTERS = 2
ROW_REGISTERS = 8


@njit(cache=True)
def forward_sparse(values, indptr, indices, rows, W, bias, Z):
    """``Z[b] = X[rows[b]] @ W + bias`` reading only the row's non-zero inputs.

    ``indptr``/``indices``/``values`` are the CSR index of the non-zeros of ``X``
    (ascending columns; ``train.nonzero_index``), so no branch per input is needed;
    the terms are added in the same order as ``forward``'s loops, giving bitwise the
    same ``Z``. On MNIST (~19% non-zero pixels) the branchy scan of 784 inputs cost
    more than the arithmetic it skipped.

    Rows of up to ``ROW_REGISTERS`` SIMD registers keep each sum in registers for the
    whole row (``z = bias``, then ``z += x_i W[i]`` for each non-zero ``i`` in order:
    the same operations, so the same bits); the loops would store ``z`` and load it
    back every four inputs, and a row narrower than LLVM's 32-float vector loop runs
    scalar in them.
    """
    B = rows.size
    m = W.shape[1]
    L = lanes(bias)
    if 2 * L < m <= 7 * L:   # a register or more to skip (_sparse_rows8)
        _sparse_rows8(values, indptr, indices, rows, W, bias, Z)
        return
    for b in range(B):
        r = rows[b]
        z = Z[b]
        p = indptr[r]
        end = indptr[r + 1]
        if m <= ROW_REGISTERS * L:
            _sparse_row_vec(z, values, W, bias, indices, p, end)
            continue
        for j in range(m):
            z[j] = bias[j]
        while p + 4 <= end:
            i0, i1, i2, i3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
            axpy4(z, values[p], W[i0], values[p + 1], W[i1], values[p + 2], W[i2],
                  values[p + 3], W[i3])
            p += 4
        while p < end:
            axpy(z, values[p], W[indices[p]])
            p += 1


@njit(cache=True)
def no_forward_sparse(values, indptr, indices, rows, W, bias, Z):
    """``forward_sparse``'s stand-in for data without a CSR index: never called."""


@njit(cache=True)
def _sparse_rows8(values, indptr, indices, rows, W, bias, Z):
    """``forward_sparse`` for rows of three to seven registers (``2*L < m <= 7*L``):
    each sample's row summed in eight registers, those wholly past ``m`` skipped by a
    branch each (LLVM takes the branches out of the loop) instead of computed on
    masked-off lanes. Its own function: written into ``forward_sparse``'s loop, LLVM
    left the branches in it (100 units 0.039 s instead of 0.035 s).

    Measured, the first layer's forward of a shuffled MNIST epoch (float32, no
    prefetch, best of 9 alternated in one process), new / all eight registers
    computed, at batch 32: 40 units 0.64, 64 units 0.77-0.85, 70 units 0.81-0.89, 100
    units 0.96-1.02; at batch 1: 40 units 0.72, 64 units 0.84-0.90, 100 units
    0.99-1.03. Whole fits of 784-64-10 at batch 32 with momentum: 0.935 / 0.960 (best /
    median of 9); 784-100-10 (configs B and D) unchanged within noise.
    """
    m = W.shape[1]
    L = lanes(bias)
    for b in range(rows.size):
        r = rows[b]
        init = (vload(bias, 0, m), vload(bias, L, m), vload(bias, 2 * L, m),
                vload(bias, 3 * L, m), vload(bias, 4 * L, m), vload(bias, 5 * L, m),
                vload(bias, 6 * L, m), vload(bias, 7 * L, m))
        a0, a1, a2, a3, a4, a5, a6, a7 = row_sum8(init, values, indices, W, indptr[r],
                                                  indptr[r + 1], m, L)
        vstorerow(Z, b, 0, m, a0)
        vstorerow(Z, b, L, m, a1)
        vstorerow(Z, b, 2 * L, m, a2)
        vstorerow(Z, b, 3 * L, m, a3)
        vstorerow(Z, b, 4 * L, m, a4)
        vstorerow(Z, b, 5 * L, m, a5)
        vstorerow(Z, b, 6 * L, m, a6)
        vstorerow(Z, b, 7 * L, m, a7)


@njit(cache=True, inline="always")
def row_sum8(init, coef, rowidx, arr, q0, q1, m, L):
    """``init[k] + sum_q coef[q] * arr[rowidx[q], k*L : (k+1)*L]`` over ``q0 <= q < q1``
    in order, for the eight registers ``k`` of ``init`` (lanes masked at ``m``): a row
    sum held in registers (``_sparse_rows8``, ``updates._row_sum``), each term loaded
    straight from its row of ``arr`` (``simd.vloadrow``: no view), each multiply and add
    rounded as in the scalar code. For rows of more than two registers; the registers
    wholly past ``m`` are skipped by a branch each (see ``_sparse_rows8``)."""
    a0, a1, a2, a3, a4, a5, a6, a7 = init
    for q in range(np.uint64(q0), np.uint64(q1)):  # unsigned: no wraparound code
        i = np.uint64(rowidx[q])
        a = coef[q]
        a0 = vmadd(a0, a, vloadrow(arr, i, 0, m))
        a1 = vmadd(a1, a, vloadrow(arr, i, L, m))
        a2 = vmadd(a2, a, vloadrow(arr, i, 2 * L, m))
        if m > 3 * L:
            a3 = vmadd(a3, a, vloadrow(arr, i, 3 * L, m))
        if m > 4 * L:
            a4 = vmadd(a4, a, vloadrow(arr, i, 4 * L, m))
        if m > 5 * L:
            a5 = vmadd(a5, a, vloadrow(arr, i, 5 * L, m))
        if m > 6 * L:
            a6 = vmadd(a6, a, vloadrow(arr, i, 6 * L, m))
        if m > 7 * L:
            a7 = vmadd(a7, a, vloadrow(arr, i, 7 * L, m))
    return a0, a1, a2, a3, a4, a5, a6, a7


@njit(cache=True, inline="always")
def _sparse_row_vec(z, values, W, bias, indices, p0, end):
    """``z = bias + sum_p values[p] W[i_p]`` over ``p0 <= p < end`` (``i_p = indices[p]``),
    summed in one, two or eight registers (``m <= 8 lanes``); see ``forward_sparse``."""
    m = z.size
    L = lanes(z)
    if m > 2 * L:
        acc = (vload(bias, 0, m), vload(bias, L, m), vload(bias, 2 * L, m),
               vload(bias, 3 * L, m), vload(bias, 4 * L, m), vload(bias, 5 * L, m),
               vload(bias, 6 * L, m), vload(bias, 7 * L, m))
        for p in range(np.uint64(p0), np.uint64(end)):  # unsigned: no wraparound code
            i = np.uint64(indices[p])
            acc = vmaddrow(acc, values[p], W, i, m)
        for k in range(8):
            vstore(z, k * L, m, acc[k])
    elif m > L:
        s0 = vload(bias, 0, m)
        s1 = vload(bias, L, m)
        for p in range(np.uint64(p0), np.uint64(end)):  # unsigned: no wraparound code
            a = values[p]
            w = W[np.uint64(indices[p])]
            s0 = vmadd(s0, a, vload(w, 0, m))
            s1 = vmadd(s1, a, vload(w, L, m))
        vstore(z, 0, m, s0)
        vstore(z, L, m, s1)
    else:
        s0 = vload(bias, 0, m)
        for p in range(np.uint64(p0), np.uint64(end)):  # unsigned: no wraparound code
            i = np.uint64(indices[p])
            s0 = vmadd(s0, values[p], vload(W[i], 0, m))
        vstore(z, 0, m, s0)


@njit(cache=True)
def gradients(A_in, D, gW, gb, use_blas):
    """Sum over the batch: ``gW = A_in.T @ D`` and ``gb = D.sum(0)`` (not yet averaged)."""
    B, n = A_in.shape
    m = D.shape[1]
    sum_rows(gb, D)
    if use_blas:
        np.dot(A_in.T, D, gW)
        return
    gW[:, :] = like(gW, 0.0)
    for b in range(B):
        x = A_in[b]
        d = D[b]
        for i in range(n):
            a = x[i]
            if a != 0:
                g = gW[i]
                for j in range(m):
                    g[j] += a * d[j]


@njit(cache=True, inline="always")
def backprop_delta(D, W, A_prev, code, slope, D_prev, use_blas, wt):
    """``D_prev = (D @ W.T) * f'(A_prev)``: the delta of the layer below, with BLAS if
    ``use_blas``, else ``backprop_delta_loops``. ``A_prev`` is only read by
    ``mul_derivative``: for the codes that keep ``z`` (GELU, SiLU) pass the layer's ``Z``."""
    if not use_blas:
        backprop_delta_loops(D, W, A_prev, code, slope, D_prev, wt)
        return
    np.dot(D, W.T, D_prev)
    if code != IDENTITY:
        mul_derivative(D_prev, A_prev, code, slope)


@njit(cache=True)
def backprop_delta_loops(D, W, A_prev, code, slope, D_prev, wt):
    """``backprop_delta`` with loops.

    They copy ``W`` transposed into the workspace ``wt`` and add the columns
    ``d_j * W[:, j]`` in turn (axpy along the contiguous ``i`` axis), instead of one dot
    product per ``(b, i)``: a dot product is a serial chain of adds (no reordering is
    allowed), which made this the slowest step of a 784-100-10 batch. Both add
    ``d_0 w_0 + d_1 w_1 + ...`` in the same order from 0, so the results are the same.
    """
    B, m = D.shape
    n = W.shape[0]
    if B == 1:
        # One sample: a dot product per unit, in the same order (d_0 w_0 + d_1 w_1 ...
        # from 0), so the same bits; the dot products of different units are independent
        # and overlap in the CPU, and copying W transposed would cost as much as the sum.
        d = D[0]
        dp = D_prev[0]
        for i in range(n):
            w = W[i]
            acc = like(slope, 0.0)
            for j in range(m):
                acc += d[j] * w[j]
            dp[i] = acc
        if code != IDENTITY:
            mul_derivative(D_prev, A_prev, code, slope)
        return
    WT = block(wt, 0, m, n)
    for i in range(n):
        w = W[i]
        for j in range(m):
            WT[j, i] = w[j]
    zero = like(slope, 0.0)
    for b in range(B):
        d = D[b]
        dp = D_prev[b]
        dp[:] = zero
        axpy_all(dp, d, WT)
    if code != IDENTITY:
        mul_derivative(D_prev, A_prev, code, slope)


@njit(cache=True)
def output_delta(Z, A, T, labels, use_labels, out_code, cost_code, D):
    """Per-sample cost summed over the batch, and ``D = dC/dz`` if ``D`` has the batch's rows
    (pass ``D`` with no rows for the cost alone).

    ``T`` holds float targets ``(B, m)``; with ``use_labels`` the target is the one-hot
    row of ``labels[b]`` instead and ``T`` is not read. The cost is computed from the
    pre-activation ``Z`` where a logarithm is involved, so it never takes log(0):

      quadratic       0.5 * sum_j (a_j - t_j)^2
      cross_entropy   sum_j softplus(z_j) - t_j z_j      (= -[t ln a + (1-t) ln(1-a)], sigmoid a)
      log_likelihood  sum_j t_j (lse(z) - z_j)           (= -sum_j t_j ln a_j, softmax a)

    and the deltas, for each allowed output/cost pair:

      quadratic       g = a - t;  D = g * f'(z), or for softmax D_j = a_j (g_j - sum_k g_k a_k)
      cross_entropy   D = a - t                          (the sigmoid's a(1-a) cancels)
      log_likelihood  D_j = a_j sum_k t_k - t_j          (= a - onehot(y) for labels)

    Returns ``(cost_sum, n_correct)``; ``n_correct`` counts argmax(a) == label (labels only).
    """
    B, m = Z.shape
    want_delta = D.shape[0] == B
    zero = like(Z, 0.0)
    one = like(Z, 1.0)
    half = like(Z, 0.5)
    total = 0.0  # float64 accumulator for the reported loss only (not used in updates)
    correct = 0
    for b in range(B):
        lab = labels[b] if use_labels else -1
        if use_labels:
            best = 0
            for j in range(1, m):
                if A[b, j] > A[b, best]:
                    best = j
            if best == lab:
                correct += 1
        if cost_code == QUADRATIC:
            c = zero
            gdota = zero
            for j in range(m):
                t = (one if j == lab else zero) if use_labels else T[b, j]
                g = A[b, j] - t
                c += half * g * g
                if want_delta:
                    D[b, j] = g
                    gdota += g * A[b, j]
            if want_delta:
                if out_code == SIGMOID:
                    for j in range(m):
                        a = A[b, j]
                        D[b, j] *= a * (one - a)
                elif out_code == TANH:
                    for j in range(m):
                        a = A[b, j]
                        D[b, j] *= one - a * a
                elif out_code == SOFTMAX:
                    for j in range(m):
                        D[b, j] = A[b, j] * (D[b, j] - gdota)
            total += c
        elif cost_code == CROSS_ENTROPY:
            c = zero
            for j in range(m):
                t = (one if j == lab else zero) if use_labels else T[b, j]
                c += log1pexp(Z[b, j]) - t * Z[b, j]
                if want_delta:
                    D[b, j] = A[b, j] - t
            total += c
        else:  # LOG_LIKELIHOOD with softmax output
            mx = Z[b, 0]
            for j in range(1, m):
                if Z[b, j] > mx:
                    mx = Z[b, j]
            s = zero
            for j in range(m):
                s += np.exp(Z[b, j] - mx)
            lse = mx + np.log(s)
            if use_labels:
                total += lse - Z[b, lab]
                if want_delta:
                    for j in range(m):
                        D[b, j] = A[b, j]
                    D[b, lab] -= one
            else:
                c = zero
                tsum = zero
                for j in range(m):
                    t = T[b, j]
                    c += t * (lse - Z[b, j])
                    tsum += t
                total += c
                if want_delta:
                    for j in range(m):
                        D[b, j] = A[b, j] * tsum - T[b, j]
    return total, correct
