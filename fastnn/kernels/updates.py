"""Optimizer steps on the flat parameter buffer.

``apply_update`` walks the layer table and updates each layer's weights (with the L2
term) and biases (without it). Update rules are integer codes; hyper-parameters come
in a float64 array and are cast to the buffer's dtype; the optimizer's state is a 2-D
array ``state[k, p]`` in the buffer's dtype (SGD uses row 0 for the velocity; Adam rows
0-2 for exp_avg, exp_avg_sq, max_exp_avg_sq (used with amsgrad); RMSprop 0-2 for square_avg,
grad_avg and the momentum buffer; Adagrad row 0 for the sum of squares).

The adaptive rules (Adam/AdamW, RMSprop, Adagrad) follow ``torch.optim``'s formulas. Their
step-dependent scalars (bias corrections, Adagrad's decayed rate, AdamW's decay factor)
are computed once per step in float64 by ``step_scalars``, as PyTorch computes them in
Python floats, and the element loops only see them cast to the buffer's dtype.
"""
import numba
import numpy as np
from numba import njit, types
from numba.extending import overload

from ._numeric import block, flat_view, like
from .dense import ROW_REGISTERS, VEC_REGISTERS, axpy_all, row_sum8, sum_rows
from .pointers import Kernel
from .simd import (lanes, vadd, vload, vloadpad, vloadrow, vmadd, vmul, vsplat, vstore,
                   vstorepad, vstorerow, vsub)

SGD = 0
ADAM = 1       # AdamW is ADAM with the decoupled flag
RMSPROP = 2
ADAGRAD = 3

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


def _summed(grad, part, p):  # pragma: no cover - replaced by the overload in njit code
    """``grad[p]``, or ``grad[p] + part[p]`` when ``part`` is an array (not None)."""


@overload(_summed, inline="always", jit_options={"cache": True})
def _summed_impl(grad, part, p):
    # chosen by part's type, so a caller passing None compiles no second array's loads
    if isinstance(part, types.NoneType):
        return lambda grad, part, p: grad[p]
    return lambda grad, part, p: grad[p] + part[p]


@njit(cache=True, inline="always")
def _sgd_region(params, grad, vel, start, stop, inv_b, l2, lr, mu, damp, nesterov, first,
                part):
    """PyTorch's ``torch.optim.SGD`` on ``params[start:stop]``.

    g = grad/B + l2*w;  v = g on the first step, else v = mu*v + (1-dampening)*g;
    w -= lr * (g + mu*v if nesterov else v);  without momentum  w -= lr*g.

    ``part`` is None, or a second gradient array whose values are added to ``grad``'s
    first (``grad[p] + part[p]``, rounded as storing that sum in ``grad`` would round
    it): the last part of a batch's gradient, summed in the step (``apply_update``).
    """
    one = like(lr, 1.0)
    if mu == 0:
        for p in range(start, stop):
            g = _summed(grad, part, p) * inv_b + l2 * params[p]
            params[p] -= lr * g
        return
    keep = one - damp
    for p in range(start, stop):
        g = _summed(grad, part, p) * inv_b + l2 * params[p]
        if first:
            v = g
        else:
            v = mu * vel[p] + keep * g
        vel[p] = v
        if nesterov:
            params[p] -= lr * (g + mu * v)
        else:
            params[p] -= lr * v




@njit(cache=True, inline="always")
def _sgd_lanes(w, v, gsum, inv_b, l2, lr, mu, keep, nesterov, first):
    """``_sgd_region`` on SIMD registers: new ``(w, v)`` from the weights ``w``, the
    velocity ``v`` (unused without momentum or on the first step) and the summed
    gradient ``gsum``. The same operations in the same order, so the same bits.

    It takes and returns values; the callers load and store with row-indexed
    intrinsics (``simd.vloadrow``). A first version took row views (``W[i]``) inside the
    row loop: Numba reference-counted them at every register (``NRT_incref`` and
    ``NRT_decref`` calls in the loop's assembly), and the fused update of 784 -> 100
    rows took twice as long as with the scalar loops."""
    g = vadd(vmul(gsum, inv_b), vmul(w, l2))
    if mu == 0:
        return vsub(w, vmul(g, lr)), v
    if not first:
        g2 = vadd(vmul(v, mu), vmul(g, keep))
    else:
        g2 = g
    if nesterov:
        return vsub(w, vmul(vadd(g, vmul(g2, mu)), lr)), g2
    return vsub(w, vmul(g2, lr)), g2


@njit(cache=True)
def _vec_row_sgd(W, VW, i, g0, g1, inv_b, l2, lr, mu, keep, nesterov, first):
    """SGD on row ``i`` of ``W`` (velocity ``VW[i]``), of at most two registers, from
    its summed gradient in the registers ``g0``, ``g1`` (``_sgd_lanes`` on each), with
    row-indexed loads and stores: no row view to reference-count (see ``_sgd_lanes``)."""
    m = W.shape[1]
    L = lanes(VW[0])
    for j, gs in ((0, g0), (L, g1)):
        if j < m:
            _vec_lanes_sgd(W, VW, i, j, gs, inv_b, l2, lr, mu, keep, nesterov, first)


@njit(cache=True, inline="always")
def _vec_lanes_sgd(W, VW, i, j, gs, inv_b, l2, lr, mu, keep, nesterov, first):
    """``_sgd_lanes`` on the register at ``W[i, j]`` (and ``VW[i, j]``), stored back."""
    m = W.shape[1]
    wv, v = _sgd_lanes(vloadrow(W, i, j, m), vloadrow(VW, i, j, m) if mu != 0 else gs, gs,
                       inv_b, l2, lr, mu, keep, nesterov, first)
    vstorerow(W, i, j, m, wv)
    if mu != 0:
        vstorerow(VW, i, j, m, v)


@njit(cache=True, inline="always")
def _row_stride(m, L):
    """The least ``k`` such that rows ``i`` and ``i + k`` of a C-contiguous matrix of
    ``m`` columns share no byte of the registers (``L`` lanes each) that load and store
    them: a row whose width is not a multiple of ``L`` ends in a masked register that
    reaches into the next row(s).

    A loop that steps rows in place visits rows ``0, k, 2k, ..``, then ``1, k + 1, ..``
    and so on, so that no row's load follows the masked store that overlaps it: such a
    load waits until that store reaches the cache (a masked store forwards nothing to a
    later load). Measured (AMD EPYC Zen 5, 2026-12-05, a script outside the
    repository): one-epoch fits of config A (784 -> 30 rows, k = 2) 0.0618-0.0625 ->
    0.0564 s, best of 6 alternated fresh processes in each of two runs, median ratios
    0.91, same weights. The same order in the sorted terms' step (config B's 100 units on
    one thread) and in the dense rows' (A on inputs with no zeros) changed nothing
    (median ratios 1.00): their row sums take longer than the wait."""
    span = -(-m // L) * L
    return -(-span // m)


@njit(cache=True)
def _vec_rows_sgd(W, VW, G, touched, inv_b, l2, lr, mu, keep, nesterov, first, sparse_ok):
    """SGD on the rows of ``W`` from their summed gradients in ``G`` (rows padded to
    whole registers), which it leaves all zeros, as it leaves ``touched``. With
    ``sparse_ok`` (plain SGD, no L2: an untouched row does not change) only the
    touched rows are visited, in the order of ``_row_stride``."""
    n, m = W.shape
    L = lanes(VW[0])
    zeros = vsplat(VW[0], 0.0)
    k = _row_stride(m, L)
    for start in range(k):   # rows start, start + k, ...: see _row_stride
        for i in range(start, n, k):
            hit = touched[i] != 0
            if not hit and sparse_ok:
                continue
            for j in range(0, m, L):
                _vec_lanes_sgd(W, VW, i, j, vloadpad(G, i, j), inv_b, l2, lr, mu, keep,
                               nesterov, first)
                if hit:
                    vstorepad(G, i, j, zeros)
            touched[i] = 0


@njit(cache=True, inline="always")
def step_scalars(opt_code, hyper, step):
    """The step-dependent scalars of the adaptive rules, in float64 (as PyTorch computes
    them in Python floats), for the step after ``step`` steps:

    - Adam/AdamW: ``(lr / (1 - beta1**t), sqrt(1 - beta2**t), 1 - lr * weight_decay)``;
    - Adagrad: ``(lr / (1 + (t - 1) * lr_decay), 0, 0)``;
    - otherwise zeros.
    """
    t = float(step + 1)
    lr = hyper[0]
    if opt_code == ADAM:
        bc1 = 1.0 - hyper[1] ** t
        bc2 = 1.0 - hyper[2] ** t
        return lr / bc1, bc2 ** 0.5, 1.0 - lr * hyper[4]
    if opt_code == ADAGRAD:
        return lr / (1.0 + (t - 1.0) * hyper[1]), 0.0, 0.0
    return 0.0, 0.0, 0.0


@njit(cache=True, error_model="numpy")
def _adaptive_region(opt_code, w, gr, state, o, inv_b, l2, hyper, sc):
    """One step of Adam/AdamW, RMSprop or Adagrad on ``w`` (a zero-based slice of the
    parameters at offset ``o`` of the buffer) from the summed gradient ``gr``.

    ``g = gr/B + l2*w`` is the gradient of fastnn's cost; ``weight_decay`` is then added
    as PyTorch does (``g += wd*w``; AdamW instead multiplies ``w`` by ``1 - lr*wd``).
    ``state`` is the optimizer's whole ``(n_state, n_params)`` array, ``sc`` the tuple of
    ``step_scalars``; the rest is ``torch.optim``'s single-tensor code, element by element
    (``lerp`` as ``m + (1 - beta)*(g - m)``, ``addcdiv``/``addcmul`` in PyTorch's order;
    RMSprop without momentum rounds ``w - lr*(g/d)`` where PyTorch has ``w - (lr*g)/d``).

    One branch-free loop per rule: the options only set factors outside it (amsgrad's
    running maximum is multiplied by 0 when off, RMSprop's grad_avg by 0 when not
    centered and its momentum buffer by 0 without momentum; every row is kept, so the
    rows never alias). Measured, the branchy loops (LLVM unswitches each option into a
    copy of the loop) cost ~2 s of compile time in each caller. ``error_model="numpy"``:
    Python's zero-division check in each division kept the loops from vectorising
    (Adam, 784-100-10 float32 at batch 1: 0.76 ms a step with it, 0.22 ms without).
    """
    m = w.size
    K = state.shape[0]
    s0 = state[0][o:o + m]
    s1 = state[min(1, K - 1)][o:o + m]
    s2 = state[min(2, K - 1)][o:o + m]
    one = like(inv_b, 1.0)
    zero = like(inv_b, 0.0)
    if opt_code == ADAM:
        decoupled = hyper[6] != 0.0
        wd = zero if decoupled else like(inv_b, hyper[4])
        decay = like(inv_b, sc[2]) if decoupled else one
        ams = one if hyper[5] != 0.0 else zero  # amsgrad: max(0, v) = v when off
        eps = like(inv_b, hyper[3])
        b2 = like(inv_b, hyper[2])
        c1 = like(inv_b, hyper[7])
        c2 = like(inv_b, hyper[8])
        neg_step = -like(inv_b, sc[0])
        bc2s = like(inv_b, sc[1])
        for j in range(m):
            x = w[j]
            g = gr[j] * inv_b + l2 * x + wd * x
            x = x * decay
            mj = s0[j]
            mj = mj + c1 * (g - mj)
            s0[j] = mj
            v = s1[j] * b2 + c2 * g * g
            s1[j] = v
            v = max(ams * s2[j], v)
            s2[j] = v
            w[j] = x + neg_step * mj / (np.sqrt(v) / bc2s + eps)
    elif opt_code == RMSPROP:
        # rows: 0 square_avg, 1 grad_avg, 2 momentum buffer (all three always kept)
        neg_lr = -like(inv_b, hyper[0])
        alpha = like(inv_b, hyper[1])
        eps = like(inv_b, hyper[2])
        wd = like(inv_b, hyper[3])
        mom = like(inv_b, hyper[4])
        cen = one if hyper[5] != 0.0 else zero
        c = like(inv_b, hyper[6])
        for j in range(m):
            x = w[j]
            g = gr[j] * inv_b + l2 * x + wd * x
            sq = s0[j] * alpha + c * g * g
            s0[j] = sq
            a = s1[j]
            a = cen * (a + c * (g - a))          # stays 0 when not centered
            s1[j] = a
            avg = np.sqrt(sq + (-one) * a * a) + eps
            b = s2[j] * mom + g / avg            # = g / avg without momentum
            s2[j] = b
            w[j] = x + neg_lr * b
    elif opt_code == ADAGRAD:
        wd = like(inv_b, hyper[2])
        eps = like(inv_b, hyper[3])
        neg_clr = -like(inv_b, sc[0])
        for j in range(m):
            x = w[j]
            g = gr[j] * inv_b + l2 * x + wd * x
            sq = s0[j] + g * g
            s0[j] = sq
            w[j] = x + neg_clr * g / (np.sqrt(sq) + eps)


@njit(cache=True)
def _no_adaptive_step(opt_code, w, gr, state, o, inv_b, l2, hyper, sc):
    """``adaptive_step`` for SGD: never called."""


@njit(cache=True)
def no_max_norm(W, max_norm, buf):
    """``max_norm_columns``' stand-in for fits without ``max_norm``: never called."""


@njit(cache=True)
def no_sparse_update(W, bias, values, indptr, indices, rows, D, state, w_off, b_off, g, G,
                     touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper, step, sc,
                     adaptive):
    """``fused_sparse_update``'s stand-in for data without a CSR index: never called."""


def adaptive_step(opt_code, dtype, state, hyper):
    """The adaptive rules' step for the fused updates (``fused_layer_update``,
    ``fused_sparse_update``), as a function pointer (``pointers.Kernel``): the compiled
    ``_adaptive_region`` for Adam/AdamW, RMSprop and Adagrad; for SGD, whose steps the
    fused updates take themselves, a stand-in they never call, so an SGD fit never
    compiles the adaptive rules' loops. ``dtype`` is the parameters' dtype.

    Measured with a script that times a fresh ``python`` process from ``import fastnn``
    to the end of a first epoch, empty ``NUMBA_CACHE_DIR`` (784-100-10, float32, batch
    32, SGD with momentum, 5,000 MNIST samples, alternated):
    12.6-13.2 s with the empty kernel, 13.2-14.7 s compiling ``_adaptive_region``
    (3 runs each).
    """
    dt = numba.from_dtype(np.dtype(dtype))
    row = types.Array(dt, 1, "C")
    argtypes = (numba.typeof(opt_code), row, row, numba.typeof(state), types.int64, dt, dt,
                numba.typeof(hyper), types.UniTuple(types.float64, 3))
    kernel = _no_adaptive_step if opt_code == SGD else _adaptive_region
    return Kernel(kernel, argtypes)


@njit(cache=True, inline="always")
def _add_l1(gr, w, l1b):
    """``gr += l1b * sign(w)`` (sign(0) = 0): the L1 term on a summed gradient row."""
    zero = like(l1b, 0.0)
    for j in range(gr.size):
        x = w[j]
        gr[j] += l1b if x > zero else (-l1b if x < zero else zero)


@njit(cache=True, inline="always")
def _fused_setup(W, state, w_off, batch, l2, l1, opt_code, hyper, step):
    """What both fused layer updates need, in ``W``'s dtype: ``(inv_b, l2, l1b, lr,
    momentum, dampening, nesterov, sgd, sparse_ok, first, vel, VW)``.

    ``l1b`` is the L1 term of a summed gradient (``l1 * batch``); ``sparse_ok`` means a
    row with a zero gradient stays exactly unchanged (plain SGD, no L2 or L1), so it may
    be skipped; ``vel`` is the velocity row of ``state`` and ``VW`` its block of ``W``.
    """
    n, m = W.shape
    lr, mu, damp, nesterov = _sgd_hyper(W, hyper)
    l2c = like(W, l2)
    l1b = like(W, l1) * like(W, batch)
    sgd = opt_code == SGD
    sparse_ok = sgd and mu == 0 and l2c == 0 and l1b == 0
    vel = state[0]
    return (like(W, 1.0) / like(W, batch), l2c, l1b, lr, mu, damp, nesterov, sgd, sparse_ok,
            step == 0, vel, block(vel, w_off, n, m))


@njit(cache=True, inline="always")
def _row_step(W, i, gr, VW, state, w_off, inv_b, l2c, l1b, lr, mu, damp, nesterov, first,
              sgd, opt_code, hyper, sc, adaptive):
    """The update rule on row ``i`` of ``W`` from its summed gradient row ``gr`` (plus
    the L1 term); ``adaptive`` takes the adaptive rules' step (``adaptive_step``)."""
    m = W.shape[1]
    if l1b != 0:
        _add_l1(gr, W[i], l1b)
    if sgd:
        _sgd_region(W[i], gr, VW[i], 0, m, inv_b, l2c, lr, mu, damp, nesterov, first,
                    None)
    else:
        adaptive(opt_code, W[i], gr, state, w_off + i * m, inv_b, l2c, hyper, sc)


@njit(cache=True, inline="always")
def _bias_step(bias, D, gr, vel, state, b_off, inv_b, lr, mu, damp, nesterov, first, sgd,
               opt_code, hyper, sc, adaptive):
    """The update rule on a bias vector from the batch's deltas: ``gr = sum_b D[b]``, no
    L2 or L1."""
    m = bias.size
    zero = like(bias, 0.0)
    sum_rows(gr, D)
    if sgd:
        _sgd_region(bias, gr, vel[b_off:b_off + m], 0, m, inv_b, zero, lr, mu, damp,
                    nesterov, first, None)
    else:
        adaptive(opt_code, bias, gr, state, b_off, inv_b, zero, hyper, sc)


def _part_slice(part, a, e):  # pragma: no cover - replaced by the overload in njit code
    """``part[a:e]``, or None when ``part`` is None."""


@overload(_part_slice, inline="always", jit_options={"cache": True})
def _part_slice_impl(part, a, e):
    if isinstance(part, types.NoneType):
        return lambda part, a, e: None
    return lambda part, a, e: part[a:e]


@njit(cache=True)
def apply_update(params, grad, layout, batch, l2, opt_code, hyper, state, step, part):
    """One optimizer step from the summed batch gradient ``grad`` of ``batch`` samples,
    or, if ``part`` is an array like ``grad`` (not None), from ``grad + part``.

    ``layout[l] = (w_off, b_off, fan_in, fan_out)``; L2 applies to weights only.
    ``step`` is the number of steps taken before this one (0 on the first). The adaptive
    rules' per-step scalars are computed here in float64 (``step_scalars``, once per
    step); the element loops see them cast to the buffer's dtype.

    ``part`` is the last part of a large batch's gradient (``train.batch_gradient``):
    SGD adds it element by element in its step, the same sum ``grad += part`` would
    store, so the same bits, without that pass over the buffer (writing ``grad``, then
    reading it back). Measured, 196 steps of SGD with momentum on the 669,706
    parameters of 784-512-512-10, float32 (config C's epoch; a script outside the
    repository, best of 3, 2026-12-05): 0.216 s as the sum then the step, 0.142 s
    with the sum in the step's loop. The adaptive rules add it first.
    """
    inv_b = like(params, 1.0) / like(params, batch)
    l2c = like(params, l2)
    zero = like(params, 0.0)
    if part is not None and opt_code != SGD:
        for q in range(grad.size):
            grad[q] += part[q]
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
                        lr, mu, damp, nesterov, first, _part_slice(part, w_off, e))
            e = b_off + m
            _sgd_region(params[b_off:e], grad[b_off:e], vel[b_off:e], 0, m, inv_b, zero, lr,
                        mu, damp, nesterov, first, _part_slice(part, b_off, e))
        return
    sc = step_scalars(opt_code, hyper, step)
    for r in range(2 * layout.shape[0]):   # weights then biases of each layer: one call
        l = r // 2                         # site, as each costs compile time
        if r % 2 == 0:
            a, e, l2r = layout[l, 0], layout[l, 1], l2c
        else:
            a, e, l2r = layout[l, 1], layout[l, 1] + layout[l, 3], zero
        _adaptive_region(opt_code, params[a:e], grad[a:e], state, a, inv_b, l2r, hyper, sc)


@njit(cache=True)
def fused_layer_update(W, bias, A_in, D, state, w_off, b_off, g, batch, l2, l1, opt_code,
                       hyper, step, sc, adaptive):
    """Gradient and update of one dense layer in a single pass, row by row.

    For each input unit ``i`` the gradient row ``g = sum_b A_in[b, i] * D[b, :]`` is
    built in a small buffer (summed in the same order as ``dense.gradients``) and the
    update rule is applied to ``W[i]`` at once, so no full gradient buffer is written,
    zeroed or read back: the result is bitwise that of ``gradients`` + ``apply_update``.
    A row whose inputs are all zero in this batch has a zero gradient; with plain SGD
    and no L2 or L1 it would not change at all, so it is skipped — on MNIST at batch
    size 1 that skips ~80% of the first layer's rows (the zero pixels). The adaptive
    rules update every row (a zero gradient still moves their state and the weights).
    A small layer under SGD without L1 (batches of 2 or more) steps in one flat pass
    instead (``_flat_sgd``) when ``g`` has room for its whole gradient
    (``n * m + 2 * lanes``; else ``g`` needs ``m`` values).

    ``W`` and ``bias`` start at offsets ``w_off`` and ``b_off`` of the parameter buffer
    (and of each row of ``state``); ``step`` is the number of steps taken before this
    one and ``sc`` its ``step_scalars``; ``adaptive`` is ``adaptive_step(...)``.

    Must run after the layer below's delta has been computed from the old ``W``.
    """
    _fused_layer_update(W, bias, A_in, D, state, w_off, b_off, g, batch, l2, l1, opt_code,
                        hyper, step, sc, adaptive, ALL_PATHS)


#: Which paths ``_fused_layer_update`` compiles: all, or only the online and flat
#: steps (``fused_layer_update_flat``)
ALL_PATHS, FLAT_PATH = 0, 1


@njit(cache=True)
def fused_layer_update_flat(W, bias, A_in, D, state, w_off, b_off, g, batch, l2, l1,
                            opt_code, hyper, step, sc, adaptive):
    """``fused_layer_update`` for layers that always step in one flat pass
    (``_flat_sgd``) or online: SGD without L1, at most ``VEC_REGISTERS`` registers of
    units and ``FLAT_MAX`` weights (``flat_layers``), and a ``g`` of at least
    ``FLAT_MAX + 2 * lanes`` values. Compiles without the row-by-row paths."""
    _fused_layer_update(W, bias, A_in, D, state, w_off, b_off, g, batch, l2, l1, opt_code,
                        hyper, step, sc, adaptive, FLAT_PATH)


def flat_layers(layout, first, opt_code, l1, lanes_):
    """Whether every layer from ``first`` on of ``layout`` steps flat under
    ``fused_layer_update`` (``fused_layer_update_flat`` then serves them all): SGD
    without L1, at most ``VEC_REGISTERS * lanes_`` units and ``FLAT_MAX`` weights each.
    Measured, each kernel's compile alone in a fresh process with an empty cache
    (float32 argument types, 2026-12-05): ``fused_layer_update`` 7.7 s,
    ``fused_layer_update_flat`` 5.4 s."""
    return opt_code == SGD and l1 == 0 and all(
        layout[l, 3] <= VEC_REGISTERS * lanes_ and layout[l, 2] * layout[l, 3] <= FLAT_MAX
        for l in range(first, layout.shape[0]))


@njit(cache=True, inline="always")
def _fused_layer_update(W, bias, A_in, D, state, w_off, b_off, g, batch, l2, l1, opt_code,
                        hyper, step, sc, adaptive, paths):
    B, n = A_in.shape
    m = D.shape[1]
    zero = like(W, 0.0)
    gr = g[:m]
    (inv_b, l2c, l1b, lr, mu, damp, nesterov, sgd, sparse_ok, first, vel,
     VW) = _fused_setup(W, state, w_off, batch, l2, l1, opt_code, hyper, step)
    online = B == 1 and sparse_ok
    L = lanes(gr)
    if online:
        # Online plain SGD: row i changes by lr * (a_i * d) (see _online_note), without
        # the gradient buffer. Measured (cycle counts of an instrumented MNIST epoch,
        # config D of scripts/compare_peers.py), the update of this 100 -> 10 relu
        # layer: 0.071 s an epoch through the buffer, 0.042 s here.
        d = D[0]
        a_in = A_in[0]
        # Wide rows skip the zero inputs. Narrow rows step every row, a zero a_i's too (it
        # subtracts lr * (0 * d_j), a zero: w is unchanged, except that a -0 weight may
        # turn +0), so that no branch depends on which inputs are zero: relu's zeros
        # (about half of a hidden layer's) follow no pattern a predictor learns.
        # Measured (AMD Zen 5, 2026-12-05, a script outside the repository): this
        # update of config D's 100 -> 10 layer alone, 50,000 samples of random relu
        # inputs, 26.9 ms skipping the zero rows, 8.4 ms so.
        skip_zeros = m > VEC_REGISTERS * L
        for i in range(n):
            a = a_in[i]
            if skip_zeros and a == 0:
                continue
            w = W[i]
            for j in range(m):
                w[j] -= lr * (a * d[j])   # see _online_note
    vec = sgd and l1b == 0 and m <= VEC_REGISTERS * L
    keep = like(W, 1.0) - damp
    if paths == FLAT_PATH:   # the caller knows: flat unless online
        flat = not online
    else:
        flat = vec and not online and n * m <= FLAT_MAX and g.size >= n * m + 2 * L
    if flat:
        _flat_sgd(W, VW, A_in, D, g, inv_b, l2c, lr, mu, damp, nesterov, first)
    # online or flat: no row left (one _bias_step below for all paths: each inlined copy
    # of it, SGD's loops and all, cost compile time); FLAT_PATH: no row paths compiled
    if paths != FLAT_PATH:
        Df = flat_view(D)
        for i in range(0 if online or flat else n):
            nonzero = _input_used(A_in, i)
            if not nonzero and sparse_ok:
                continue  # zero gradient, plain SGD, no decay: w is unchanged exactly
            if vec:  # in registers, as in fused_sparse_update
                g0, g1 = _row_sums2(A_in, Df, i, m, nonzero)
                _vec_row_sgd(W, VW, i, g0, g1, inv_b, l2c, lr, mu, keep, nesterov, first)
                continue
            gr[:] = zero
            if nonzero:
                # All samples, zeros included: a zero a_bi adds an exact 0 to gr, so this
                # rounds like summing the non-zero terms only (the sparse path), and a
                # second, branchy specialisation of the sum cost ~1.4 s of compile time.
                axpy_all(gr, A_in[:, i], D)
            _row_step(W, i, gr, VW, state, w_off, inv_b, l2c, l1b, lr, mu, damp, nesterov,
                      first, sgd, opt_code, hyper, sc, adaptive)
    _bias_step(bias, D, gr, vel, state, b_off, inv_b, lr, mu, damp, nesterov, first, sgd,
               opt_code, hyper, sc, adaptive)


@njit(cache=True, inline="always")
def _input_used(A_in, i):
    """Whether input ``i`` is non-zero in any sample of the batch ``A_in``."""
    for b in range(A_in.shape[0]):
        if A_in[b, i] != 0:
            return True
    return False


@njit(cache=True, inline="always")
def _row_sums2(A_in, Df, i, m, used):
    """Input ``i``'s gradient row ``sum_b A_in[b, i] * D[b]`` in two registers
    (columns ``0..L-1`` and ``L..2L-1``; zeros if not ``used``), for rows of ``m <= 2L``
    units, ``Df`` being ``D`` flat (``D.reshape(B * m)``): each register is loaded
    whole, reading on into the next row of ``D`` (``vload`` bounded by ``Df.size``), so
    the lanes past ``m`` hold sums the callers never store; the second register is
    skipped when ``m <= L``. Terms in batch order, each multiply and add rounded as in
    the scalar code (``fused_layer_update``'s row loop, ``_flat_sgd``)."""
    L = lanes(Df)
    g0 = vsplat(Df, 0.0)
    g1 = g0
    if used:
        for b in range(A_in.shape[0]):
            a = A_in[b, i]
            g0 = vmadd(g0, a, vload(Df, b * m, Df.size))
            if m > L:
                g1 = vmadd(g1, a, vload(Df, b * m + L, Df.size))
    return g0, g1


#: ``fused_layer_update`` steps a layer of at most this many weights (and rows of at most
#: ``VEC_REGISTERS`` registers) under SGD in one flat pass: see ``_flat_sgd``. The flat
#: gradient of 4096 float32 weights is 16 KB. Not a measured crossover: the layers
#: measured (10 or 30 units wide, 1,000 and 300 weights) are far below it and wider
#: ones were not tried; it bounds the epoch's extra buffer.
FLAT_MAX = 4096


@njit(cache=True)
def _flat_sgd(W, VW, A_in, D, g, inv_b, l2, lr, mu, damp, nesterov, first):
    """SGD (without L1) on a small layer ``W`` (``n x m``, rows of at most two
    registers) from the batch's ``A_in`` and ``D``: every row's summed gradient, in
    registers as in ``fused_layer_update``'s row loop (same terms, same order), is
    stored into ``g`` (``n * m + 2 * lanes`` long) as the flat ``n x m`` gradient, then
    ``_sgd_region`` steps ``W`` and its velocity ``VW`` as one flat run: the same
    operations on the same values as the row loop, so the same bits. Under plain SGD
    the row loop skips a row whose inputs are all zero in the batch; here its gradient
    is an exact +0 and its step ``w - lr * (+0 / B + 0 * w)`` leaves every finite ``w``
    as it was, sign of zero included (an infinite weight would turn NaN instead of
    staying infinite: the epoch has diverged either way).

    Every load and store here is a whole register: a row's loads of ``D`` read on into
    the next row, and its stores write past its own ``m`` columns into the next row's
    place in ``g``, which that row's stores then overwrite (rows go in order; the
    lanes past ``m`` are never used). The row loop instead stores the rows of ``W`` and
    the velocity partially, masked, twice a row: on AMD Zen 1 (AVX2) the update of
    config B's 100 -> 10 layer took 16-20% of an epoch's time that way and 4% so (cycle
    counts of an instrumented MNIST epoch, 97-169 thousand a batch against 21
    thousand); whole fits of B alternated in one process, same weights, 0.84-0.88 /
    0.75-0.92 of the time (best / median of 9, two runs); of A (784-30-10 sigmoid,
    plain SGD, batch 10; its 30 -> 10 layer took 10% of a batch) 0.94 / 0.93."""
    B, n = A_in.shape
    m = W.shape[1]
    L = lanes(g)
    Df = flat_view(D)
    for i in range(n):
        g0, g1 = _row_sums2(A_in, Df, i, m, _input_used(A_in, i))
        vstore(g, i * m, g.size, g0)
        if m > L:
            vstore(g, i * m + L, g.size, g1)
    nm = n * m
    _sgd_region(flat_view(W), g, flat_view(VW), 0, nm, inv_b, l2, lr, mu, damp, nesterov,
                first, None)


# The first layer's gradient rows of more than VEC_REGISTERS and at most ROW_REGISTERS
# registers (33-128 units in float32) are summed in registers after sorting the batch's
# terms by input (_sorted_gradient), not by adding each term into G, which at such widths
# no longer fits the L1 cache. Measured on MNIST, 784 -> 100, float32, batch 32,
# momentum, the first layer's update on its own (1,562 batches): 0.16 s adding into G
# (0.12 s of it the terms), 0.09 s sorted. Narrower rows add into G: a whole epoch of
# 784-30-10 at batch 10 took 1.34-1.38 times as long with them sorted.


@njit(cache=True, inline="always")
def sorts_terms(m, L):
    """Whether a first layer of ``m`` units (``L`` lanes a register) sums its gradient
    rows over sorted terms (``_sorted_gradient``; the note above), so that its update
    needs the term lists ``cnt``, ``tb``, ``ta``."""
    return VEC_REGISTERS * L < m <= ROW_REGISTERS * L


@njit(cache=True, inline="always")
def _sort_terms(values, indptr, indices, rows, cnt, tb, ta):
    """The batch's terms sorted by input (a counting sort): for each input ``i``, the
    samples ``tb[cnt[i]:cnt[i + 1]]`` (in batch order) whose input ``i`` is non-zero,
    with their values ``ta[...]``."""
    n = cnt.size - 2
    B = rows.size
    cnt[:] = 0
    for b in range(B):  # unsigned indices below: no wraparound code
        r = rows[b]
        for p in range(np.uint64(indptr[r]), np.uint64(indptr[r + 1])):
            cnt[np.uint64(indices[p]) + 2] += 1
    for i in range(n):
        cnt[i + 2] += cnt[i + 1]
    for b in range(B):  # cnt[i + 1]: the next free place of input i's list
        r = rows[b]
        for p in range(np.uint64(indptr[r]), np.uint64(indptr[r + 1])):
            i = np.uint64(indices[p])
            q = np.uint64(cnt[i + 1])
            tb[q] = b
            ta[q] = values[p]
            cnt[i + 1] = q + 1


@njit(cache=True, inline="always")
def _row_sum(D, cnt, tb, ta, i, m):
    """Input ``i``'s gradient row, ``sum_q ta[q] D[tb[q]]`` over its sorted terms in
    order (``_sort_terms``), in eight registers (lanes past ``m`` stay 0; registers
    wholly past it are skipped by a branch, as in ``dense._sparse_rows8``). Measured,
    ``_sorted_sgd`` over a shuffled MNIST epoch at batch 32 with momentum (float32,
    best of 9 alternated, against all eight registers computed): 40 units 0.70, 64
    units 0.78, 100 units 0.955, 128 units 1.01 of the time."""
    z = vsplat(ta, 0.0)
    return row_sum8((z, z, z, z, z, z, z, z), ta, tb, D, cnt[i], cnt[i + 1], m, lanes(ta))


@njit(cache=True)
def _sorted_gradient(values, indptr, indices, rows, D, G, touched, cnt, tb, ta):
    """The first layer's summed gradient into ``G`` (as ``fused_sparse_update`` sums it,
    same order, same bits) for rows of up to ``dense.ROW_REGISTERS`` registers: a counting
    sort lists, for each input ``i``, the samples (in batch order) whose input ``i`` is
    non-zero, with their values; each row is summed over its list in registers and
    stored once, and ``touched`` marks the rows with a term."""
    n = G.shape[0]
    m = D.shape[1]
    L = lanes(ta)
    _sort_terms(values, indptr, indices, rows, cnt, tb, ta)
    for i in range(n):  # input i's list is cnt[i] .. cnt[i + 1]
        if cnt[i] == cnt[i + 1]:
            continue
        acc = _row_sum(D, cnt, tb, ta, i, m)
        for k in range(8):
            if k * L < m:
                vstorepad(G, i, k * L, acc[k])
        touched[i] = 1


@njit(cache=True)
def _sorted_sgd(W, VW, values, indptr, indices, rows, D, cnt, tb, ta, inv_b, l2, lr, mu,
                keep, nesterov, first, sparse_ok):
    """``_sorted_gradient`` followed by ``_vec_rows_sgd`` without the gradient buffer:
    each row's SGD step (``_sgd_lanes``) takes its sum straight from the registers it
    was summed in, a row without terms a zero sum (skipped with ``sparse_ok``). The same
    operations on the same values as storing the sums and loading them back, so the
    same bits.

    Measured, an MNIST epoch of 784-100-10 at batch 32 with momentum, float32: the
    first layer's update took 0.104 s through ``G`` and 0.088 s so (cycle counts of an
    instrumented epoch); whole fits alternated in one process, best / median of 9,
    0.936 / 0.956 of the time, same weights."""
    n, m = W.shape
    L = lanes(ta)
    _sort_terms(values, indptr, indices, rows, cnt, tb, ta)
    z = vsplat(ta, 0.0)
    for i in range(n):  # input i's list is cnt[i] .. cnt[i + 1]
        if cnt[i] == cnt[i + 1]:
            if sparse_ok:
                continue
            acc = (z, z, z, z, z, z, z, z)
        else:
            acc = _row_sum(D, cnt, tb, ta, i, m)
        for k in range(8):
            if k * L < m:
                _vec_lanes_sgd(W, VW, i, k * L, acc[k], inv_b, l2, lr, mu, keep, nesterov,
                               first)


@njit(cache=True)
def _summed_gradient(values, indptr, indices, rows, D, G, touched):
    """The first layer's summed gradient into ``G`` (rows padded to whole registers):
    ``G[i] += x_bi D[b]`` for each sample ``b`` in batch order and each of its non-zero
    inputs ``i``; ``touched`` marks the rows with a term. Row-indexed loads and stores,
    not ``G[i]`` views (see ``_sgd_lanes``); the padding lanes add ``x * 0`` (``D``'s lanes
    past ``m`` load as 0), so they stay 0."""
    m = D.shape[1]
    L = lanes(D[0])
    for b in range(rows.size):
        r = rows[b]
        d = D[b]
        if m <= VEC_REGISTERS * L:  # the sample's delta held in registers
            d0 = vload(d, 0, m)
            d1 = vload(d, L, m)
            for p in range(np.uint64(indptr[r]), np.uint64(indptr[r + 1])):
                i = np.uint64(indices[p])  # unsigned: no wraparound code
                a = values[p]
                vstorepad(G, i, 0, vmadd(vloadpad(G, i, 0), a, d0))
                if m > L:
                    vstorepad(G, i, L, vmadd(vloadpad(G, i, L), a, d1))
                touched[i] = 1
        else:
            for p in range(np.uint64(indptr[r]), np.uint64(indptr[r + 1])):
                i = np.uint64(indices[p])
                a = values[p]
                for j in range(0, m, L):
                    vstorepad(G, i, j, vmadd(vloadpad(G, i, j), a, vload(d, j, m)))
                touched[i] = 1


@njit(cache=True)
def fused_sparse_update(W, bias, values, indptr, indices, rows, D, state, w_off, b_off, g, G,
                        touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper, step, sc,
                        adaptive):
    """``fused_layer_update`` for the first layer, reading the batch's inputs from the
    CSR index of ``X`` (``indptr``, ``indices``, ``values``: ``train.nonzero_index``)
    instead of a dense block.

    The gradient is summed in ``G`` (``n x m``, all zeros on entry and again on return):
    for each sample ``b`` in batch order and each of its non-zero inputs ``i``,
    ``G[i] += x_bi D[b]``, so every row adds its terms in batch order, as the dense path
    does, and ``touched[i]`` (zeros on entry and on return) marks the rows that got a
    term; with non-empty ``cnt``, ``tb``, ``ta`` the rows are summed instead in
    registers over the terms sorted by input (``_sorted_gradient``, for the widths
    ``dense.ROW_REGISTERS`` names; with SGD each row's step takes its sum from those
    registers, ``_sorted_sgd``). With plain SGD and no L2 or L1 only the touched rows
    change; other rules update every row. The other arguments are
    ``fused_layer_update``'s.

    Measured (cycle counts of an instrumented MNIST epoch of 784-30-10 at batch 10,
    float32): the first layer's update took 0.150 s as a counting sort of the batch's
    terms by input followed by one gradient row at a time, 0.075 s so.
    """
    n = W.shape[0]
    m = D.shape[1]
    (inv_b, l2c, l1b, lr, mu, damp, nesterov, sgd, sparse_ok, first, vel,
     VW) = _fused_setup(W, state, w_off, batch, l2, l1, opt_code, hyper, step)
    if sgd and l1b == 0:
        if _sparse_sgd_rows(W, bias, values, indptr, indices, rows, D, G, touched, cnt, tb,
                            ta, inv_b, l2c, lr, mu, damp, nesterov, first, sparse_ok, VW,
                            BOTH_PATHS):
            return
    else:
        if cnt.size > 0:  # the widths _sorted_gradient is for
            _sorted_gradient(values, indptr, indices, rows, D, G, touched, cnt, tb, ta)
        else:
            _summed_gradient(values, indptr, indices, rows, D, G, touched)
        zero = like(W, 0.0)
        for i in range(n):
            gi = G[i, :m]
            _row_step(W, i, gi, VW, state, w_off, inv_b, l2c, l1b, lr, mu, damp, nesterov,
                      first, sgd, opt_code, hyper, sc, adaptive)
            if touched[i] != 0 or l1b != 0:  # leave G all zeros (L1 adds into the row)
                gi[:] = zero
                touched[i] = 0
    _bias_step(bias, D, g[:m], vel, state, b_off, inv_b, lr, mu, damp, nesterov, first,
               sgd, opt_code, hyper, sc, adaptive)


#: Which of ``_sparse_sgd_rows``' two paths a kernel compiles: both (chosen per call by
#: the term lists' size), only the sorted terms' (``_sorted_sgd``), only the summed
#: rows' (``_summed_gradient``). Each variant is a module-level kernel of its own, the
#: same wrapper with another constant, not one made by a factory: the second compile
#: process (``aside``) and its ``COSTS`` find a kernel by its function's module and name.
BOTH_PATHS, SORTED_PATH, SUMMED_PATH = 0, 1, 2


@njit(cache=True, inline="always")
def _fused_sparse_sgd(W, bias, values, indptr, indices, rows, D, state, w_off, b_off, g, G,
                      touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper, step, sc,
                      adaptive, paths):
    m = D.shape[1]
    (inv_b, l2c, l1b, lr, mu, damp, nesterov, sgd, sparse_ok, first, vel,
     VW) = _fused_setup(W, state, w_off, batch, l2, l1, opt_code, hyper, step)
    if _sparse_sgd_rows(W, bias, values, indptr, indices, rows, D, G, touched, cnt, tb, ta,
                        inv_b, l2c, lr, mu, damp, nesterov, first, sparse_ok, VW, paths):
        return
    _bias_step(bias, D, g[:m], vel, state, b_off, inv_b, lr, mu, damp, nesterov, first,
               sgd, opt_code, hyper, sc, adaptive)


@njit(cache=True)
def fused_sparse_sgd(W, bias, values, indptr, indices, rows, D, state, w_off, b_off, g, G,
                     touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper, step, sc,
                     adaptive):
    """``fused_sparse_update`` for SGD without L1 (``train.fused_kernels`` gives it to
    such fits): the same code less the other rules' branch, which every SGD fit
    compiled for nothing (``_sorted_gradient``, the rows' general step). Same
    arguments, same bits. Measured, a fresh process from ``import fastnn`` to the end of
    a first epoch with an empty cache (784-100-10, float32, batch 32, momentum, 5,000
    MNIST samples; 4 runs of each, alternated): 15.1-16.4 s with ``fused_sparse_update``
    for every rule, 14.0-15.2 s so; this kernel's own compile 1.25 s, against 1.87 s
    for ``fused_sparse_update`` and 0.66 s for ``_sorted_gradient``.

    It holds both ways to sum the rows (``sorts_terms``); a fit whose first layer (or
    both of its halves) takes one only gets ``fused_sparse_sgd_sorted`` or
    ``fused_sparse_sgd_summed`` (``sparse_sgd_paths``), which compile that one."""
    _fused_sparse_sgd(W, bias, values, indptr, indices, rows, D, state, w_off, b_off, g, G,
                      touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper, step, sc,
                      adaptive, BOTH_PATHS)


@njit(cache=True)
def fused_sparse_sgd_sorted(W, bias, values, indptr, indices, rows, D, state, w_off, b_off,
                            g, G, touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper,
                            step, sc, adaptive):
    """``fused_sparse_sgd`` for first layers whose rows are all summed over sorted terms
    (non-empty ``cnt``)."""
    _fused_sparse_sgd(W, bias, values, indptr, indices, rows, D, state, w_off, b_off, g, G,
                      touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper, step, sc,
                      adaptive, SORTED_PATH)


@njit(cache=True)
def fused_sparse_sgd_summed(W, bias, values, indptr, indices, rows, D, state, w_off, b_off,
                            g, G, touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper,
                            step, sc, adaptive):
    """``fused_sparse_sgd`` for first layers whose rows are all summed term by term into
    ``G`` (empty ``cnt``)."""
    _fused_sparse_sgd(W, bias, values, indptr, indices, rows, D, state, w_off, b_off, g, G,
                      touched, cnt, tb, ta, batch, l2, l1, opt_code, hyper, step, sc,
                      adaptive, SUMMED_PATH)


def sparse_sgd_paths(widths, lanes_):
    """The kernel for the first layer's update under SGD without L1, given the widths
    (as stored) of the parts it runs on (the whole layer, or its two halves) and the
    lanes of a register: ``fused_sparse_sgd_sorted`` or ``fused_sparse_sgd_summed`` if
    every part takes the same way to sum its rows (``sorts_terms``), else
    ``fused_sparse_sgd``. Measured, each kernel's compile alone in a fresh process with
    an empty cache (float32 argument types; 2026-12-05): ``fused_sparse_sgd`` 5.5 s,
    ``fused_sparse_sgd_sorted`` 4.6 s, ``fused_sparse_sgd_summed`` 3.7 s."""
    ways = {sorts_terms.py_func(w, lanes_) for w in widths}
    if ways == {True}:
        return fused_sparse_sgd_sorted
    if ways == {False}:
        return fused_sparse_sgd_summed
    return fused_sparse_sgd


@njit(cache=True, inline="always")
def _online_sgd(W, bias, values, indptr, indices, r, d, lr):
    """Online plain SGD on the first layer and its bias from sample ``r`` (its delta
    ``d``): the gradient row of input i is x_i * d and only the sample's non-zero inputs
    have one, so walk them directly, without G. Same arithmetic as _sgd_region with grad
    = x_i * d (0 + x_i*d_j is exact), so the same bits. Measured, the first-layer update
    of an MNIST epoch at batch 1 (784 -> 100, float32) on its own: 0.76 s through a
    gradient buffer, 0.17 s so."""
    m = d.size
    for p in range(indptr[r], indptr[r + 1]):
        a = values[p]
        w = W[indices[p]]
        for j in range(m):
            w[j] -= lr * (a * d[j])   # see _online_note
    for j in range(m):
        bias[j] -= lr * d[j]


@njit(cache=True, inline="always")
def _sparse_sgd_rows(W, bias, values, indptr, indices, rows, D, G, touched, cnt, tb, ta,
                     inv_b, l2c, lr, mu, damp, nesterov, first, sparse_ok, VW, paths):
    """The first layer's rows under SGD without L1 (``fused_sparse_update``,
    ``fused_sparse_sgd``); returns True if it took the online step, which updates the
    bias too. ``paths`` (a constant at each call: ``BOTH_PATHS``, ``SORTED_PATH``,
    ``SUMMED_PATH``) leaves the other way to sum the rows out of the compiled code."""
    if rows.size == 1 and sparse_ok:
        _online_sgd(W, bias, values, indptr, indices, rows[0], D[0], lr)
        return True
    keep = like(W, 1.0) - damp
    # the widths _sorted_gradient is for have non-empty term lists (cnt). One constant
    # comparison per branch: Numba drops a branch only on such a test.
    if paths == SORTED_PATH:
        sort = True
    elif paths == SUMMED_PATH:
        sort = False
    else:
        sort = cnt.size > 0
    if paths != SUMMED_PATH and sort:
        _sorted_sgd(W, VW, values, indptr, indices, rows, D, cnt, tb, ta, inv_b, l2c, lr,
                    mu, keep, nesterov, first, sparse_ok)
    elif paths != SORTED_PATH:
        _summed_gradient(values, indptr, indices, rows, D, G, touched)
        _vec_rows_sgd(W, VW, G, touched, inv_b, l2c, lr, mu, keep, nesterov, first,
                      sparse_ok)
    return False


@njit(cache=True)
def regularize_gradient(params, grad, layout, batch, l1, clip_norm):
    """Before a step from the summed gradient ``grad`` of ``batch`` samples:

    - ``clip_norm > 0``: scale ``grad`` so that the mean gradient's global 2-norm is at
      most ``clip_norm``, as ``torch.nn.utils.clip_grad_norm_`` (multiplied by
      ``min(1, clip_norm / (norm + 1e-6))``);
    - then ``l1 > 0``: add ``batch * l1 * sign(w)`` on the weights (not biases), the
      gradient of the L1 penalty ``l1 * sum|w|`` (sign(0) = 0).
    """
    if clip_norm > 0:
        s = like(grad, 0.0)
        for p in range(grad.size):
            s += grad[p] * grad[p]
        total = np.sqrt(s) / like(grad, batch)
        coef = like(grad, clip_norm) / (total + like(grad, 1e-6))
        if coef < like(grad, 1.0):
            for p in range(grad.size):
                grad[p] *= coef
    if l1 > 0:
        l1b = like(params, l1) * like(params, batch)
        for l in range(layout.shape[0]):
            w_off = layout[l, 0]
            e = w_off + layout[l, 2] * layout[l, 3]
            _add_l1(grad[w_off:e], params[w_off:e], l1b)


@njit(cache=True)
def max_norm_columns(W, max_norm, buf):
    """Rescale each column of ``W`` (a unit's incoming weights) whose 2-norm exceeds
    ``max_norm`` to norm ``max_norm``; ``buf`` holds at least ``W.shape[1]`` values."""
    n, m = W.shape
    c = like(W, max_norm)
    one = like(W, 1.0)
    sq = buf[:m]
    sq[:] = like(W, 0.0)
    for i in range(n):
        w = W[i]
        for j in range(m):
            sq[j] += w[j] * w[j]
    over = False
    for j in range(m):
        norm = np.sqrt(sq[j])
        if norm > c:
            sq[j] = c / norm
            over = True
        else:
            sq[j] = one
    if over:
        for i in range(n):
            w = W[i]
            for j in range(m):
                w[j] *= sq[j]
