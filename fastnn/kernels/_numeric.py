"""Numeric helpers shared by the kernels.

``like(x, v)`` casts the Python constant ``v`` to the floating type of ``x`` (a scalar or
an array) at compile time, so that a float32 loop never promotes to float64 because of
a literal such as ``1.0`` (Numba follows NumPy's promotion rules: float32 * float64 ->
float64).
"""
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.arrayobj import populate_array
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


@intrinsic
def _view2d(typingctx, buf, off, rows, cols):
    """``buf[off : off + rows*cols].reshape(rows, cols)`` for a C-contiguous 1-D ``buf``,
    built in place, unchecked (``block`` checks)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"
            and all(isinstance(t, types.Integer) for t in (off, rows, cols))):
        return None
    ret = types.Array(buf.dtype, 2, "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        dst = context.make_array(ret)(context, builder)
        o, r, c = (context.cast(builder, args[k], sig.args[k], types.intp)
                   for k in (1, 2, 3))
        size = context.get_constant(
            types.intp, context.get_abi_sizeof(context.get_data_type(buf.dtype)))
        populate_array(dst, data=builder.gep(src.data, [o]), shape=[r, c],
                       strides=[builder.mul(c, size), size], itemsize=size,
                       meminfo=src.meminfo, parent=None)
        out = dst._getvalue()
        context.nrt.incref(builder, ret, out)   # a new reference, as a view is
        return out

    return ret(buf, off, rows, cols), codegen


@njit(cache=True, inline="always")
def block(buf, off, rows, cols):
    """``buf[off : off + rows*cols]`` (C-contiguous, 1-D) as a ``(rows, cols)`` array, a
    view. ``.reshape`` does the same through a call to Numba's C helper for any
    strides (``numba_attempt_nocopy_reshape``), at every batch for the epochs' views of
    their buffers: config D's one-epoch fit took 0.164-0.173 s with ``.reshape`` and
    0.150-0.163 s with this (AMD Zen 5, 2026-12-05, best of 5, 6 alternated pairs of fresh processes,
    median ratio 0.92, same weights; a script outside the repository). Raises
    IndexError outside ``buf``, where the slice would have been cut short and the
    reshape failed. Not for a ``prange`` body: a loop that can raise is not run in
    parallel (``halves.first_layer_halves`` keeps ``.reshape``)."""
    if off < 0 or rows < 0 or cols < 0 or off + rows * cols > buf.size:
        raise IndexError("block outside its buffer")
    return _view2d(buf, off, rows, cols)


@intrinsic
def flat_view(typingctx, arr):
    """A C-contiguous 2-D ``arr`` as a 1-D view of all its elements (``arr.reshape(-1)``,
    built in place: see ``block``). In the small layers' flat SGD step
    (``updates._flat_sgd``): config A's one-epoch fit 0.058-0.062 -> 0.054-0.061 s (best
    of 5, 6 alternated pairs, median ratio 0.98; same weights); B's unchanged."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C"):
        return None
    ret = types.Array(arr.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        dst = context.make_array(ret)(context, builder)
        r, c = cgutils.unpack_tuple(builder, src.shape, 2)
        populate_array(dst, data=src.data, shape=[builder.mul(r, c)],
                       strides=[src.itemsize], itemsize=src.itemsize,
                       meminfo=src.meminfo, parent=None)
        out = dst._getvalue()
        context.nrt.incref(builder, ret, out)
        return out

    return ret(arr), codegen
