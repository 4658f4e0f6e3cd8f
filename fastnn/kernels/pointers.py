"""Kernels passed to other kernels as function pointers (Numba first-class functions).

Called by name, a kernel's code is linked into its caller's, and Numba optimises and
compiles it again there, and again in the caller's caller: the compile time of a deep
call tree grows with its depth. Passed as an argument (a ``Kernel``), it is compiled
once, on its own, and called through a pointer to its machine code; the caller's
compile covers only its own code. ``train.fused_kernels`` builds the kernels of the
small-batch epoch so.

Called a batch at a time, those kernels also pay for Numba's reference counts, which
``borrowed`` and ``alive`` let the epoch leave out.
"""
import contextlib
import warnings

from numba import types
from numba.core import cgutils
from numba.core.errors import NumbaExperimentalFeatureWarning
from numba.experimental.function_type import _get_wrapper_address
from numba.extending import intrinsic


@contextlib.contextmanager
def first_class_functions():
    """Compile kernels that take others as function pointers (``Kernel``) without
    Numba's warning that first-class functions are an experimental feature: fastnn
    relies on them on purpose (``train.fused_kernels``), and its tests cover them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaExperimentalFeatureWarning)
        yield


class Kernel(types.WrapperAddressProtocol):
    """``kernel`` (a Numba dispatcher) compiled for ``argtypes`` (or loaded from
    Numba's cache), as a first-class function: passed to another kernel as an argument,
    it is called through a pointer to that compiled code. ``signature()`` gives the
    whole signature.

    Its return type is what Numba infers; a ``restype`` given is checked against it.
    With ``ready`` as well (a callable), the kernel is compiled later, when first
    needed (``dispatcher``, its address), after ``ready()`` returns: until then its
    type is known from ``argtypes`` and ``restype`` alone, so kernels that take it can
    be compiled meanwhile (``aside``: another process is compiling it)."""

    def __init__(self, kernel, argtypes, restype=None, ready=None):
        self._kernel = kernel
        self._argtypes = argtypes
        self._restype = restype
        self._ready = ready
        if ready is None:
            self._compile()
        else:
            self._sig = restype(*argtypes)

    def _compile(self):
        self._kernel.compile(self._argtypes)
        sig = self._kernel.overloads[self._argtypes].signature
        if self._restype is not None and sig.return_type != self._restype:
            raise TypeError(f"{self._kernel.py_func.__name__} returns {sig.return_type} "
                            f"for {self._argtypes}, not the declared {self._restype}")
        self._sig = sig
        self._ready = None

    @property
    def dispatcher(self):
        """The kernel itself: what to pass to a kernel compiled for this function type
        (``numba.typeof(self)``), which then calls the compiled code directly, with
        Numba's own calling convention, instead of through the C wrapper that the
        ``Kernel`` object's address leads to."""
        if self._ready is not None:
            self._ready()
            self._compile()
        return self._kernel

    def signature(self):
        return self._sig

    def __wrapper_address__(self):
        # what Numba itself does with a dispatcher passed where a function type is due
        return _get_wrapper_address(self.dispatcher, self._sig)


def _borrowable(ty):
    return isinstance(ty, (types.Array, types.Number, types.Boolean)) or (
        isinstance(ty, types.BaseTuple) and all(_borrowable(t) for t in ty))


def _borrow(context, builder, ty, value):
    if isinstance(ty, types.Array):
        ary = cgutils.create_struct_proxy(ty)(context, builder, value=value)
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()
    if not isinstance(ty, types.BaseTuple):   # a number: no reference to count
        return value
    for k, t in enumerate(ty):
        value = builder.insert_value(
            value, _borrow(context, builder, t, builder.extract_value(value, k)), k)
    return value


@intrinsic
def borrowed(typingctx, arrays):
    """``arrays`` (an array, or a tuple of arrays, numbers and such tuples), the same
    data, shapes and strides, but not reference-counted (only callable from njit code);
    numbers pass through.

    Numba counts the references to every array a compiled function holds: an atomic
    increment of the array's count when it takes one (each array argument on entry,
    each view it makes) and a decrement when it drops it (``NRT_incref`` and
    ``NRT_decref``; a locked instruction each on x86). Its pruning pass removes the
    pairs it can prove redundant, within a simple stretch of code, not across the
    epoch's batch loop and its calls: an epoch that calls ten kernels a batch, each
    taking its arrays and making views of them, paid for every one. An array whose
    count is absent (a null "meminfo") skips them; so do its views. The caller must
    keep the originals alive while the borrowed arrays are in use: an argument's
    caller holds it; an array the function made must be used after the last use of
    its borrowed one (``alive``). A borrowed array must not be returned to Python:
    boxed without an owner, it would outlive its memory. Measured (MNIST epochs,
    float32, 2026-12-05, AMD EPYC Zen 5, a script outside the repository, fresh
    processes alternated, best of 7): with
    ``train.train_epoch_fused``'s arrays borrowed, config D (784-100-10 at batch 1)
    0.211 s -> 0.185-0.191 s; the two counting functions had taken 26% of its profile
    (perf). With ``layers.train_epoch_ext``'s, a dropout fit of 784-100-10 (0.2, SGD
    0.05 momentum 0.9; best of 5, three pairs) at batch 32 0.289-0.305 -> 0.259-0.269 s,
    at batch 1 0.915-0.988 -> 0.839-0.913 s; same weights."""
    if not _borrowable(arrays):
        return None

    def codegen(context, builder, sig, args):
        return _borrow(context, builder, arrays, args[0])

    return arrays(arrays), codegen


@intrinsic
def alive(typingctx, value):
    """Use ``value`` and do nothing (only callable from njit code): Numba drops a
    variable's reference after its last use, so a function that borrows arrays it made
    (``borrowed``) calls this on them after the borrowed ones' last use."""
    def codegen(context, builder, sig, args):
        return context.get_dummy_value()

    return types.none(value), codegen
