"""float32 stays float32 and agrees with float64 on the same short run."""
import numpy as np
import pytest

import fastnn as fnn

from conftest import HIDDEN, PAIRS, make_problem, rel_err
from fastnn.kernels.updates import adaptive_step


@pytest.mark.parametrize("output,cost", PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("batch_size", [1, 64])   # loops and BLAS paths
def test_float32_agrees_with_float64(hidden, output, cost, batch_size):
    X, y = make_problem(output, cost, n=130, n_in=6, n_out=3, seed=8)
    nets = {}
    for dt in ("float32", "float64"):
        net = fnn.Network([6, 10, 3], hidden=hidden, output=output, cost=cost, dtype=dt,
                          seed=5, init="lecun")
        h = net.fit(X, y, epochs=2, batch_size=batch_size, l2=1e-3, progress=False,
                    optimizer=fnn.SGD(0.02, momentum=0.5))
        nets[dt] = (net, h)
    n32, h32 = nets["float32"]
    n64, h64 = nets["float64"]
    assert n32.params.dtype == np.float32 and n64.params.dtype == np.float64
    assert all(w.dtype == np.float32 for w in n32.weights + n32.biases)
    assert rel_err(n32.params, n64.params) < 1e-4
    assert h32.history["loss"][-1] == pytest.approx(h64.history["loss"][-1], rel=1e-4)
    out = n32.forward(X)
    assert out.dtype == np.float32
    assert rel_err(out, n64.forward(X)) < 1e-4
    loss, grad = n32.gradients(X, y)
    assert grad.dtype == np.float32


def _f32_cases():
    f = np.float32
    A, W, b, Z = (np.ones((2, 3), f), np.ones((3, 4), f), np.ones(4, f), np.ones((2, 4), f))
    s = f(0.1)
    p = np.ones(5, f)
    v, ptr, ind = np.ones(3, f), np.array([0, 2, 3]), np.array([0, 2, 1], np.uint16)  # CSR
    hyper = np.array([0.1, 0.9, 0.0, 0.0])
    adam = fnn.Adam(0.1, weight_decay=0.1, amsgrad=True).hyper()
    state = np.zeros((3, 16), f)
    sc = (0.1, 0.5, 0.99)              # updates.step_scalars: float64, cast in the loops
    sgd_step = adaptive_step(0, f, state, hyper)   # the fused updates' pointer argument
    return {
        ("dense", "forward"): (A, W, b, Z, False, True),
        ("dense", "forward_loops"): (A, W, b, Z, True),
        ("dense", "gradients"): (A, Z, W.copy(), b.copy(), False),
        ("dense", "backprop_delta"): (Z, W, A, 1, s, A.copy(), False, np.ones(12, f)),
        ("dense", "backprop_delta_loops"): (Z, W, A, 1, s, A.copy(), np.ones(12, f)),
        ("activations", "activate"): (Z, Z.copy(), 1, s),
        ("activations", "mul_derivative"): (Z, Z.copy(), 1, s),
        ("updates", "_sgd_region"): (p, p.copy(), p.copy(), 0, 5, s, s, s, s, s, True, False,
                                     p.copy()),
        ("dense", "forward_sparse"): (v, ptr, ind, np.array([1, 0]), W, b, Z),
        ("updates", "fused_layer_update"): (W, b, A, Z[:, :4], state, 0, 12, b.copy(), 2, 0.1,
                                            0.01, 0, hyper, 1, sc, sgd_step),
        ("updates", "fused_sparse_update"): (
            W, b, v, ptr, ind, np.array([1, 0]), Z[:, :4], state, 0, 12, b.copy(),
            np.zeros((3, 16), f), np.zeros(3, np.uint8), np.zeros(5, np.int64),
            np.zeros(6, np.int64), np.zeros(6, f), 2, 0.1, 0.01, 0, hyper, 1, sc, sgd_step),
        ("updates", "_summed_gradient"): (v, ptr, ind, np.array([1, 0]), Z[:, :4],
                                          np.zeros((3, 16), f), np.zeros(3, np.uint8)),
        ("updates", "_sorted_gradient"): (v, ptr, ind, np.array([1, 0]), Z[:, :4],
                                          np.zeros((3, 16), f),
                                          np.zeros(3, np.uint8), np.zeros(5, np.int64),
                                          np.zeros(6, np.int64), np.zeros(6, f)),
        ("updates", "_sorted_sgd"): (W, W.copy(), v, ptr, ind, np.array([1, 0]), Z[:, :4],
                                     np.zeros(5, np.int64), np.zeros(6, np.int64),
                                     np.zeros(6, f), s, s, s, s, s, True, False, False),
        ("updates", "_vec_rows_sgd"): (W, W.copy(), np.zeros((3, 16), f),
                                       np.ones(3, np.uint8), s, s, s, s, s, True, False,
                                       False),
        ("updates", "_adaptive_region"): (1, p, p.copy(), state, 0, s, s, adam, sc),
        ("updates", "regularize_gradient"): (np.ones(16, f), np.ones(16, f),
                                             np.array([[0, 12, 3, 4]], np.int64), 2, 0.01,
                                             0.5),
        ("updates", "max_norm_columns"): (W.copy(), 0.5, b.copy()),
    }


@pytest.mark.parametrize("module,name", list(_f32_cases()))
def test_float32_loops_have_no_float64_arithmetic(module, name):
    """No literal promotes a float32 loop to float64: the LLVM IR of each elementwise
    kernel compiled for float32 arguments holds no double-precision arithmetic."""
    import importlib

    import numba
    kernel = getattr(importlib.import_module(f"fastnn.kernels.{module}"), name)
    fresh = numba.njit(kernel.py_func)           # uncached, so its IR can be read
    fresh(*_f32_cases()[module, name])
    (ir,) = fresh.inspect_llvm().values()
    for op in ("fadd double", "fmul double", "fsub double", "fdiv double", "fpext float"):
        assert op not in ir, op


def test_float32_gelu_calls_single_precision_erf():
    """math.erf on float32 lowers to libm's erff, not to erf on a widened double."""
    import numba

    from fastnn.kernels import activations as ka
    f = np.float32
    Z = np.ones((2, 3), f)
    for kernel, args in ((ka.activate, (Z, Z.copy(), ka.GELU, f(0.01))),
                         (ka.mul_derivative, (Z.copy(), Z, ka.GELU, f(0.01)))):
        fresh = numba.njit(kernel.py_func)
        fresh(*args)
        (ir,) = fresh.inspect_llvm().values()
        assert "@erff" in ir and "@erf(" not in ir and "fpext float" not in ir
