"""Kernels compiled without the paths a fit never takes: the small-batch epoch's
first-layer SGD update for the way its parts sum their rows, and the other layers'
update with only its flat steps where every layer takes them (``train.fused_kernels``
picks them before compiling). A wrong pick would index buffers the kernel does not
have, so the picks are checked here against the conditions the kernels test at run
time; the fits that run each variant (``test_halves``' widths, the equivalence tests)
check their weights."""
import numpy as np

from fastnn.kernels import updates as u

L32, L64 = 16, 8   # lanes of float32 and float64 in a 64-byte register (simd.lanes)


def test_the_first_layers_update_compiles_only_the_ways_its_parts_sum_rows():
    """Under SGD without L1 the first layer's update is the variant of
    ``fused_sparse_sgd`` for the ways its parts (the whole layer, or each half as
    stored) sum their rows (``sorts_terms``): one way, that way's kernel; two, the
    kernel with both."""
    assert u.sparse_sgd_paths((100,), L32) is u.fused_sparse_sgd_sorted   # config B
    assert u.sparse_sgd_paths((30,), L32) is u.fused_sparse_sgd_summed    # config A
    assert u.sparse_sgd_paths((64, 48), L32) is u.fused_sparse_sgd_sorted  # B's halves
    assert u.sparse_sgd_paths((32, 16), L32) is u.fused_sparse_sgd_summed
    assert u.sparse_sgd_paths((32, 16), L64) is u.fused_sparse_sgd       # 16 < 32: sorted
    assert u.sparse_sgd_paths((80, 64), L64) is u.fused_sparse_sgd       # 80 > 64: summed
    # whole layers at the edges of the sorted widths: over two registers, up to eight
    for m, want in ((32, u.fused_sparse_sgd_summed), (33, u.fused_sparse_sgd_sorted),
                    (128, u.fused_sparse_sgd_sorted), (129, u.fused_sparse_sgd_summed)):
        assert u.sparse_sgd_paths((m,), L32) is want, m
    assert u.sparse_sgd_paths((16,), L64) is u.fused_sparse_sgd_summed
    assert u.sparse_sgd_paths((17,), L64) is u.fused_sparse_sgd_sorted


def _layout(sizes):
    return np.array([(0, 0, a, b) for a, b in zip(sizes[:-1], sizes[1:])], np.int64)


def test_flat_only_where_every_layer_steps_flat():
    """``flat_layers``: SGD without L1 and, from the given layer on, at most two
    registers of units and ``FLAT_MAX`` weights a layer, as ``fused_layer_update``
    decides per call."""
    B = _layout([784, 100, 10])
    assert u.flat_layers(B, 1, u.SGD, 0.0, L32)            # config B's second layer
    assert not u.flat_layers(B, 0, u.SGD, 0.0, L32)        # its first, dense: too big
    assert not u.flat_layers(B, 1, u.SGD, 1e-4, L32)       # L1
    assert not u.flat_layers(B, 1, u.SGD + 1, 0.0, L32)    # another rule
    assert u.flat_layers(_layout([20, 30, 3]), 0, u.SGD, 0.0, L32)
    assert not u.flat_layers(_layout([20, 30, 3]), 0, u.SGD, 0.0, L64)   # 30 > 16
    assert not u.flat_layers(_layout([784, 100, 64, 10]), 1, u.SGD, 0.0, L32)
    # at the edges: two registers of units (32), FLAT_MAX = 4096 weights
    for n, m, flat in ((1, 32, True), (1, 33, False), (128, 32, True), (129, 32, False),
                       (4096, 1, True), (4097, 1, False), (2048, 2, True)):
        assert u.flat_layers(_layout([5, n, m]), 1, u.SGD, 0.0, L32) == flat, (n, m)
