"""Numeric helpers shared by the kernels.

``like(x, v)`` casts the Python constant ``v`` to the floating type of ``x`` (a scalar or
an array) at compile time, so that a float32 loop never promotes to float64 because of
a literal such as ``1.0`` (Numba follows NumPy's promotion rules: float32 * float64 ->
float64).
"""
import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.numpy_support import as_dtype


def like(x, v):  # pragma: no cover - replaced by the overload inside njit code
    """Return ``v`` as the floating type of ``x`` (only callable from njit code)."""
    return np.asarray(x).dtype.type(v)


@overload(like, jit_options={"cache": True})
def _like(x, v):
    ty = x.dtype if isinstance(x, types.Array) else x
    cast = as_dtype(ty).type

    def impl(x, v):
        return cast(v)

    return impl


@njit(cache=True, inline="always")
def log1pexp(x):
    """Softplus ``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    return max(x, like(x, 0.0)) + np.log1p(np.exp(-abs(x)))
