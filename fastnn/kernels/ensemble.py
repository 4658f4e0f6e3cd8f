"""Several networks of one shape trained in one compiled call, one thread per member.

``train_members_fused`` runs ``train.train_epoch_fused`` (the small-batch epoch) for
every member inside a ``prange`` over the members: member ``k`` owns row ``k`` of the
stacked parameters, optimizer state, step counters, hyper-parameters and sample orders,
and shares the read-only ``X``, targets and CSR index with the others. Each member's
arithmetic is that of ``train_epoch_fused`` alone, in the same order, so its weights
are bitwise those of a sequential ``Network.fit`` on any number of threads: the threads
split the members, never a sum.

It lives in its own module, imported only when the parallel path is used, so a fit
that never takes it never compiles it (a cold compile re-optimises the whole inlined
epoch kernel: see ``fastnn/ensemble.py`` for the measured cost).
"""
import numpy as np
from numba import njit, prange

from .train import train_epoch_fused


@njit(parallel=True, cache=True)
def train_members_fused(params, layout, codes, slope, cost_code, X, Y, labels, use_labels,
                        orders, batch_size, chunk, l2, l1, max_norm, opt_code, hyper,
                        states, steps, indptr, indices, active, loss, correct, done):
    """One epoch of ``train_epoch_fused`` for each active member, members in parallel.

    ``params (K, P)``, ``hyper (K, h)``, ``states (K, n_state, P)``, ``steps (K, 1)``
    and ``orders (K, n)`` hold member ``k``'s arguments in row ``k``; ``active[k]``
    False skips the member. ``loss``, ``correct`` and ``done`` (length ``K``) receive
    each member's ``(cost_sum, n_correct, n_done)``; ``done[k] < n`` means member ``k``
    diverged (see ``train_epoch``). Inactive members' entries are left as they were.
    """
    K = params.shape[0]
    for k in prange(K):
        if active[k]:
            lo, co, dn = train_epoch_fused(
                params[k], layout, codes, slope, cost_code, X, Y, labels, use_labels,
                orders[k], batch_size, chunk, l2, l1, max_norm, opt_code, hyper[k],
                states[k], steps[k], indptr, indices)
            loss[k] = lo
            correct[k] = co
            done[k] = dn
