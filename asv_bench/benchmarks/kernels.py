"""Kernel-level benchmarks: one dense layer forward and backward, and the update rules.

Every case is built, and its kernel compiled or loaded from Numba's cache, in ``setup``
(``common.*_case``, memoised per process); ``time_*`` makes only the measured call.
Grid: batch size {1, 32, 256} x width {30, 100, 512} x dtype {float32, float64}; each
case takes the path (loops or BLAS) that ``Network`` takes for that batch size. The
``Sparse*`` cases time the small-batch kernels that read the first layer's non-zero
inputs through a CSR index, as MNIST trains (batch size {1, 10, 32}).
"""
from . import common


class _KernelCase:
    # One call per sample (asv re-runs setup between calls, which is cheap here), at
    # least 10 samples per round; a first-time compile of a commit fits in the timeout.
    repeat = (10, 50, 2.0)
    timeout = 600


class Forward(_KernelCase):
    """``dense.forward`` of the first layer, 784 -> width, on MNIST-like rows (~81% zero
    pixels, skipped by the loops)."""
    params = [common.BATCHES, common.WIDTHS, common.DTYPES]
    param_names = ["batch", "width", "dtype"]

    def setup(self, batch, width, dtype):
        self.run = common.forward_case(batch, width, dtype)

    def time_forward(self, batch, width, dtype):
        self.run()


class Backward(_KernelCase):
    """Backward through a width -> width hidden layer: weight and bias gradients
    (``dense.gradients``) and the delta of the relu layer below
    (``dense.backprop_delta``)."""
    params = [common.BATCHES, common.WIDTHS, common.DTYPES]
    param_names = ["batch", "width", "dtype"]

    def setup(self, batch, width, dtype):
        self.run = common.backward_case(batch, width, dtype)

    def time_backward(self, batch, width, dtype):
        self.run()


class FusedUpdate(_KernelCase):
    """``updates.fused_layer_update``: gradient and update of the first layer
    (784 -> width) in one pass, as small batches train (each rule of ``common.RULES``)."""
    params = [list(common.RULES), common.BATCHES, common.WIDTHS, common.DTYPES]
    param_names = ["rule", "batch", "width", "dtype"]

    def setup(self, rule, batch, width, dtype):
        self.run = common.fused_update_case(rule, batch, width, dtype)

    def time_fused_update(self, rule, batch, width, dtype):
        self.run()


class ApplyUpdate(_KernelCase):
    """``updates.apply_update``: one step of each rule of ``common.RULES`` on the flat
    buffer of a 784-width-10 network, as large batches train. The batch size only
    scales the gradient, so it is not a parameter."""
    params = [list(common.RULES), common.WIDTHS, common.DTYPES]
    param_names = ["rule", "width", "dtype"]

    def setup(self, rule, width, dtype):
        self.run = common.apply_update_case(rule, width, dtype)

    def time_apply_update(self, rule, width, dtype):
        self.run()


class SparseForward(_KernelCase):
    """``dense.forward_sparse``: the first layer, 784 -> width, of MNIST-like rows from
    their non-zero inputs."""
    params = [common.SPARSE_BATCHES, common.WIDTHS, common.DTYPES]
    param_names = ["batch", "width", "dtype"]

    def setup(self, batch, width, dtype):
        self.run = common.sparse_forward_case(batch, width, dtype)

    def time_sparse_forward(self, batch, width, dtype):
        self.run()


class SparseFusedUpdate(_KernelCase):
    """``updates.fused_sparse_update``: gradient and update of the first layer from the
    non-zero inputs, plain SGD and SGD with momentum."""
    params = [["sgd", "momentum"], common.SPARSE_BATCHES, common.WIDTHS, common.DTYPES]
    param_names = ["rule", "batch", "width", "dtype"]

    def setup(self, rule, batch, width, dtype):
        self.run = common.sparse_update_case(rule, batch, width, dtype)

    def time_sparse_fused_update(self, rule, batch, width, dtype):
        self.run()
