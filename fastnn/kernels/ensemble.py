"""Several networks of one shape trained in one compiled call, one thread per member.

``train_members_fused`` runs ``train.train_epoch_fused`` (the small-batch epoch) for
every member inside a ``prange`` over the members: member ``k`` owns row ``k`` of the
stacked parameters, optimizer state, step counters, hyper-parameters and sample orders,
and shares the read-only ``X``, targets and CSR index with the others. The threads
split the members, never a sum, so each member's weights are bitwise those of a
sequential ``Network.fit`` on any number of threads.

The parallel loop calls the epoch kernel through a function pointer (a Numba
first-class function, ``types.FunctionType``): it runs the very machine code that
``Network.fit`` runs, and its compilation does not re-optimise that kernel. Measured
with an empty cache on this project's 2 busy cores (784-100-10, float32): calling
``train_epoch_fused`` directly inside the ``prange`` inlined it and cost 41-48 s of
compile time on top of the sequential fit's; through the pointer the loop compiles in
3 s. The loop is compiled (or loaded from Numba's cache) per argument types on first
use, so a fit that never takes the parallel path never compiles it. The kernels the
epoch itself calls through pointers (``train.fused_kernels``) are passed along.
"""
import numba
from numba import njit, prange, types

from .halves import half_buffers
from .pointers import first_class_functions
from .train import fused_kernels, train_epoch_fused


def _train_members(epoch, gather, fwd_sparse, fwd_loops, act, out_delta, bprop, upd_sparse,
                   upd_layer, max_norm_cols, adaptive, halves, params, layout, codes, slope,
                   cost_code, X, Y, labels, use_labels, orders, batch_size, chunk, l2, l1,
                   max_norm, opt_code, hyper, states, steps, indptr, indices, values, H,
                   active, loss, correct, done):
    """The parallel loop; ``epoch`` is ``train_epoch_fused`` as a function pointer,
    followed by the pointers it takes (``train.fused_kernels``)."""
    K = params.shape[0]
    for k in prange(K):
        if active[k]:
            lo, co, dn = epoch(params[k], layout, codes, slope, cost_code, X, Y, labels,
                               use_labels, orders[k], batch_size, chunk, l2, l1, max_norm,
                               opt_code, hyper[k], states[k], steps[k], indptr, indices,
                               values, 0, H, gather, fwd_sparse, fwd_loops, act, out_delta,
                               bprop, upd_sparse, upd_layer, max_norm_cols, adaptive, halves)
            loss[k] = lo
            correct[k] = co
            done[k] = dn


#: the compiled loop for each tuple of argument types
_LOOPS = {}


def train_members_fused(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                        orders, batch_size, chunk, l2, l1, max_norm, opt_code, hyper,
                        states, steps, indptr, indices, values, active, loss, correct,
                        done):
    """One epoch of ``train_epoch_fused`` for each active member, members in parallel.

    ``params (K, P)``, ``hyper (K, h)``, ``states (K, n_state, P)``, ``steps (K, 1)``
    and ``orders (K, n)`` (all C-contiguous) hold member ``k``'s arguments of
    ``train_epoch_fused`` in row ``k``; the other arguments are shared. ``active[k]``
    False skips the member. ``loss``, ``correct`` and ``done`` (length ``K``) receive
    each member's ``(cost_sum, n_correct, n_done)``; ``done[k] < n`` means member ``k``
    diverged (see ``train.train_epoch``). Inactive members' entries are left as they
    were.
    """
    H = half_buffers(params[0], states[0], layout, 0, batch_size)   # empty: no halves
    args = (params, layout, codes, slope, cost_code, X, Y, labels, use_labels, orders,
            batch_size, chunk, l2, l1, max_norm, opt_code, hyper, states, steps, indptr,
            indices, values, H, active, loss, correct, done)
    # the epoch kernel's arguments for one member's row, as Network.fit passes them, and
    # the kernels it calls (which depend on the rule, not only on the types)
    row = (params[0], layout, codes, slope, cost_code, X, Y, labels, use_labels, orders[0],
           batch_size, chunk, l2, l1, max_norm, opt_code, hyper[0], states[0], steps[0],
           indptr, indices, values, 0, H)   # 0: the first layer whole (a thread a member)
    kernels = fused_kernels(*row)
    key = tuple(numba.typeof(a) for a in args)
    loop = _LOOPS.get(key)
    if loop is None:
        row_types = tuple(numba.typeof(a) for a in row + kernels)
        with first_class_functions():
            train_epoch_fused.compile(row_types)        # or load it from the cache
            sig = next(s for s in train_epoch_fused.nopython_signatures
                       if s.args == row_types)
            pointers = row_types[-len(kernels):]
            loop = njit(types.void(types.FunctionType(sig), *pointers, *key),
                        parallel=True, cache=True)(_train_members)
        _LOOPS[key] = loop
    loop(train_epoch_fused, *(k.dispatcher for k in kernels), *args)
