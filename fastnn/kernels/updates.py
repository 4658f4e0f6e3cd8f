"""Optimizer steps on the flat parameter buffer.

``apply_update`` walks the layer table and updates each layer's weights (with the L2
term) and biases (without it). Update rules are integer codes; hyper-parameters come
in a float64 array and are cast to the buffer's dtype; the optimizer's state is a 2-D
array ``state[k, p]`` in the buffer's dtype (SGD uses row 0 for the velocity).
"""
from numba import njit

from ._numeric import like
from .dense import axpy, axpy4, axpy_all

SGD = 0

# _online_note: at batch size 1 with plain SGD and no L2, PyTorch's step on a weight is
# w -= lr * ((a * d) / 1 + 0 * w). Dividing by 1 is exact and adding 0 * w (a zero, w
# being finite) changes nothing but the sign of a zero sum, so the online fast paths
# compute w -= lr * (a * d): the same weights, with a third of the multiplications.


@njit(cache=True, inline="always")
def _sgd_hyper(like_arr, hyper):
    """SGD's ``(lr, momentum, dampening, nesterov)`` from the float64 hyper-parameter
    array, the first three cast to the parameters' dtype."""
    return (like(like_arr, hyper[0]), like(like_arr, hyper[1]), like(like_arr, hyper[2]),
            hyper[3] != 0.0)


@njit(cache=True, inline="always")
def _sgd_layer_setup(W, batch, l2, hyper):
    """What a fused SGD layer update needs, in ``W``'s dtype: ``(inv_b, l2, lr, momentum,
    dampening, nesterov, sparse_ok)``; ``sparse_ok`` means a row with a zero gradient
    stays exactly unchanged (plain SGD, no L2), so it may be skipped."""
    lr, mu, damp, nesterov = _sgd_hyper(W, hyper)
    l2c = like(W, l2)
    return (like(W, 1.0) / like(W, batch), l2c, lr, mu, damp, nesterov,
            mu == 0 and l2c == 0)


@njit(cache=True, inline="always")
def _sgd_region(params, grad, vel, start, stop, inv_b, l2, lr, mu, damp, nesterov, first):
    """PyTorch's ``torch.optim.SGD`` on ``params[start:stop]``.

    g = grad/B + l2*w;  v = g on the first step, else v = mu*v + (1-dampening)*g;
    w -= lr * (g + mu*v if nesterov else v);  without momentum  w -= lr*g.
    """
    one = like(lr, 1.0)
    if mu == 0:
        for p in range(start, stop):
            g = grad[p] * inv_b + l2 * params[p]
            params[p] -= lr * g
        return
    keep = one - damp
    for p in range(start, stop):
        g = grad[p] * inv_b + l2 * params[p]
        if first:
            v = g
        else:
            v = mu * vel[p] + keep * g
        vel[p] = v
        if nesterov:
            params[p] -= lr * (g + mu * v)
        else:
            params[p] -= lr * v


@njit(cache=True)
def _sgd_bias(bias, D, vb, gr, inv_b, lr, mu, damp, nesterov, first):
    """SGD step of a bias vector from the batch's deltas: ``gr = sum_b D[b]`` (no L2)."""
    m = bias.size
    for j in range(m):
        gr[j] = D[0, j]
    for b in range(1, D.shape[0]):
        d = D[b]
        for j in range(m):
            gr[j] += d[j]
    _sgd_region(bias, gr, vb, 0, m, inv_b, like(bias, 0.0), lr, mu, damp, nesterov, first)


@njit(cache=True)
def apply_update(params, grad, layout, batch, l2, opt_code, hyper, state, step):
    """One optimizer step from the summed batch gradient ``grad`` of ``batch`` samples.

    ``layout[l] = (w_off, b_off, fan_in, fan_out)``; L2 applies to weights only.
    ``step`` is the number of steps taken before this one (0 on the first).
    """
    inv_b = like(params, 1.0) / like(params, batch)
    l2c = like(params, l2)
    zero = like(params, 0.0)
    if opt_code == SGD:
        lr, mu, damp, nesterov = _sgd_hyper(params, hyper)
        vel = state[0]
        first = step == 0
        for l in range(layout.shape[0]):
            w_off = layout[l, 0]
            b_off = layout[l, 1]
            n = layout[l, 2]
            m = layout[l, 3]
            # Slices from 0, not params[w_off:...] indexed in place: measured on the
            # 669,706 parameters of a 784-512-512-10 network, 196 momentum steps took
            # 0.27 s indexed from w_off and 0.053 s on slices (LLVM vectorises the
            # zero-based loop only).
            e = w_off + n * m
            _sgd_region(params[w_off:e], grad[w_off:e], vel[w_off:e], 0, n * m, inv_b, l2c,
                        lr, mu, damp, nesterov, first)
            e = b_off + m
            _sgd_region(params[b_off:e], grad[b_off:e], vel[b_off:e], 0, m, inv_b, zero, lr,
                        mu, damp, nesterov, first)


@njit(cache=True)
def fused_layer_update(W, bias, A_in, D, VW, vb, g, batch, l2, opt_code, hyper, first):
    """Gradient and update of one dense layer in a single pass, row by row.

    For each input unit ``i`` the gradient row ``g = sum_b A_in[b, i] * D[b, :]`` is
    built in a small buffer (summed in the same order as ``dense.gradients``) and the
    update rule is applied to ``W[i]`` at once, so no full gradient buffer is written,
    zeroed or read back: the result is bitwise that of ``gradients`` + ``apply_update``.
    A row whose inputs are all zero in this batch has a zero gradient; with plain SGD
    and no L2 it would not change at all, so it is skipped — on MNIST at batch size 1
    that skips ~80% of the first layer's rows (the zero pixels).

    Must run after the layer below's delta has been computed from the old ``W``.
    """
    B, n = A_in.shape
    m = D.shape[1]
    zero = like(W, 0.0)
    gr = g[:m]
    if opt_code == SGD:
        inv_b, l2c, lr, mu, damp, nesterov, sparse_ok = _sgd_layer_setup(W, batch, l2, hyper)
        if B == 1 and sparse_ok:
            # Online plain SGD: row i changes by lr * ((a_i * d) * inv_b + l2*w) — the
            # same operations as below with gr = a_i * d, so the same bits — and only
            # where a_i != 0, without the gradient buffer. Measured on a 100 -> 10 relu
            # layer at batch 1 (an MNIST epoch): 0.071 s before, see docs/benchmarks.md.
            d = D[0]
            a_in = A_in[0]
            for i in range(n):
                a = a_in[i]
                if a == 0:
                    continue
                w = W[i]
                for j in range(m):
                    w[j] -= lr * (a * d[j])   # see _online_note
            _sgd_bias(bias, D, vb, gr, inv_b, lr, mu, damp, nesterov, first)
            return
        for i in range(n):
            nonzero = False
            for b in range(B):
                if A_in[b, i] != 0:
                    nonzero = True
                    break
            if not nonzero and sparse_ok:
                continue  # zero gradient, plain SGD, no decay: w is unchanged exactly
            gr[:] = zero
            if nonzero:
                # All samples, zeros included: a zero a_bi adds an exact 0 to gr, so this
                # rounds like summing the non-zero terms only (the sparse path), and a
                # second, branchy specialisation of the sum cost ~1.4 s of compile time.
                axpy_all(gr, A_in[:, i], D)
            _sgd_region(W[i], gr, VW[i], 0, m, inv_b, l2c, lr, mu, damp, nesterov, first)
        _sgd_bias(bias, D, vb, gr, inv_b, lr, mu, damp, nesterov, first)


@njit(cache=True)
def fused_sparse_update(W, bias, X, indptr, indices, rows, D, VW, vb, g, cnt, pos, tb, ta,
                        batch, l2, opt_code, hyper, first):
    """``fused_layer_update`` for the first layer, reading the batch's inputs from the
    CSR index of ``X`` instead of a dense block.

    A counting sort by input unit lists, for each row ``i`` of ``W``, the samples of the
    batch (in batch order) whose input ``i`` is non-zero, so each gradient row is summed
    in the same order as the dense path and rows no sample touches cost nothing.
    """
    B = rows.size
    n = W.shape[0]
    m = D.shape[1]
    if opt_code != SGD:
        return
    inv_b, l2c, lr, mu, damp, nesterov, sparse_ok = _sgd_layer_setup(W, batch, l2, hyper)
    if B == 1 and sparse_ok:
        # Online plain SGD: the gradient row of input i is x_i * D[0] and only the
        # sample's non-zero inputs have one, so walk them directly, without the sort.
        # Same arithmetic as _sgd_region with grad = x_i * d (0 + x_i*d_j is exact), so
        # the same bits. Measured, the first-layer update of an MNIST epoch at batch 1
        # (784 -> 100, float32) on its own: 0.76 s with the sort, 0.17 s without.
        r = rows[0]
        d = D[0]
        x = X[r]
        for p in range(indptr[r], indptr[r + 1]):
            i = indices[p]
            a = x[i]
            w = W[i]
            for j in range(m):
                w[j] -= lr * (a * d[j])   # see _online_note
        for j in range(m):
            bias[j] -= lr * d[j]
        return
    cnt[:] = 0
    for b in range(B):
        r = rows[b]
        for p in range(indptr[r], indptr[r + 1]):
            cnt[indices[p] + 1] += 1
    for i in range(n):
        cnt[i + 1] += cnt[i]
    for i in range(n):
        pos[i] = cnt[i]
    for b in range(B):
        r = rows[b]
        for p in range(indptr[r], indptr[r + 1]):
            i = indices[p]
            q = pos[i]
            tb[q] = b
            ta[q] = X[r, i]
            pos[i] = q + 1
    zero = like(W, 0.0)
    gr = g[:m]
    for i in range(n):
        q = cnt[i]
        end = cnt[i + 1]
        if q == end and sparse_ok:
            continue  # zero gradient, plain SGD, no decay: w is unchanged exactly
        gr[:] = zero
        while q + 4 <= end:
            axpy4(gr, ta[q], D[tb[q]], ta[q + 1], D[tb[q + 1]], ta[q + 2], D[tb[q + 2]],
                  ta[q + 3], D[tb[q + 3]])
            q += 4
        while q < end:
            axpy(gr, ta[q], D[tb[q]])
            q += 1
        _sgd_region(W[i], gr, VW[i], 0, m, inv_b, l2c, lr, mu, damp, nesterov, first)
    _sgd_bias(bias, D, vb, gr, inv_b, lr, mu, damp, nesterov, first)
