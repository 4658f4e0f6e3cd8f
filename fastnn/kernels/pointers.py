"""Kernels passed to other kernels as function pointers (Numba first-class functions).

Called by name, a kernel's code is linked into its caller's, and Numba optimises and
compiles it again there, and again in the caller's caller: the compile time of a deep
call tree grows with its depth. Passed as an argument (a ``Kernel``), it is compiled
once, on its own, and called through a pointer to its machine code; the caller's
compile covers only its own code. ``train.fused_kernels`` builds the kernels of the
small-batch epoch so.
"""
import contextlib
import warnings

from numba import types
from numba.core.errors import NumbaExperimentalFeatureWarning
from numba.experimental.function_type import _get_wrapper_address


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
