"""Threads around the BLAS path: Numba's pool, OpenBLAS kept to one thread, forks.

A batch of the BLAS path is cut into parts of a fixed number of rows, which Numba's
threads compute at once, each with single-threaded BLAS; their gradients are added in
part order (``train.batch_gradient``). The bits then depend on the part size, a function
of the batch size alone, and not on the number of threads. Three things outside the
kernels make that hold; ``Network`` passes ``workers()`` to the kernels and wraps every
call that may take the BLAS path in ``blas_scope``:

- **OpenBLAS runs on one thread** while fastnn calls it. Its own threads would change
  the sums: with 1 and 2 OpenBLAS threads a 784-input product (``A @ W``, float32)
  differed in the last bits, and float64 products of other shapes too (its thread
  count decides how it blocks the sum over ``k`` and which kernel gets the edges).
  Only the OpenBLAS that Numba's ``np.dot`` calls (SciPy's) is touched, and its thread
  count is restored after each call. Without one to control (MKL, say), bitwise
  equality across thread counts is up to that library.
- **Numba's thread pool is started by ``workers()``**, before the first kernel call
  that may run a parallel loop. A cached kernel that calls a parallel one does not
  start the pool when it is loaded from Numba's cache (numba#8578: the loaded library
  drops the initialiser that the freshly compiled one runs), and its first parallel
  loop would then crash. (Loading a kernel that holds a parallel loop starts the pool
  too, so small predictions use one that holds none: ``train.forward_serial``.) Not at
  import: a process forked from one that started the pool
  cannot run Numba's parallel loops (below), and tools that import and then fork (asv's
  benchmark runner, a ``multiprocessing`` pool) would lose them.
- **A forked child computes the parts in turn** (``workers()`` is 1 there) if its
  parent had started the pool: Numba's GNU OpenMP layer then terminates the child as
  soon as it runs a parallel loop. Spawned processes (Dask's and joblib's workers, by
  default) start afresh and use their threads.

Before the first parallel loop, SciPy's ``?gemm`` is looked up once on this thread:
Numba's BLAS helper takes the GIL to import it on first use, which would deadlock in a
worker thread while the calling thread holds the GIL and waits for the loop.
"""
import ctypes
import os
from contextlib import nullcontext

import numpy as np
import numba
import numba.np.ufunc.parallel
import scipy
import scipy.linalg.cython_blas  # noqa: F401  (what numba_xxgemm imports; loads SciPy's BLAS)
from numba import _helperlib

_state = {"forked": False, "started": False}


def _resolve_gemm():
    """Call Numba's ``numba_xxgemm`` once per kind (a 1x1 product) so that it has
    looked up SciPy's ``sgemm``/``dgemm`` before any worker thread needs them."""
    fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char, ctypes.c_char, ctypes.c_char,
                          ctypes.c_ssize_t, ctypes.c_ssize_t, ctypes.c_ssize_t,
                          ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t,
                          ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_ssize_t)(_helperlib.c_helpers["xxgemm"])
    for kind, dtype in ((b"s", np.float32), (b"d", np.float64)):
        a, b, c = (np.ones(1, dtype) for _ in range(3))
        one, zero = np.ones(1, dtype), np.zeros(1, dtype)
        ptr = [x.ctypes.data for x in (a, b, c, one, zero)]
        if fn(kind, b"n", b"n", 1, 1, 1, ptr[3], ptr[0], 1, ptr[1], 1, ptr[4], ptr[2], 1):
            raise RuntimeError("Numba's BLAS helper failed on a 1x1 product")


def _scipy_openblas():
    """``(get, set)`` of the thread count of the OpenBLAS SciPy links (the one behind
    Numba's ``np.dot``), or ``None`` if there is none to control (Linux reads the
    loaded libraries from ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    scipy_dir = os.path.dirname(scipy.__file__)
    # SciPy's wheels: scipy.libs/ (a sibling of scipy/) or the scipy_openblas32 package;
    # numpy's own OpenBLAS (numpy.libs, scipy_openblas64_) is another library.
    ranked = sorted(paths, key=lambda p: not (p.startswith(scipy_dir)
                                              or "scipy_openblas32" in p))
    for path in ranked:
        if "numpy.libs" in path or "openblas64" in path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            get = getattr(lib, prefix + "_get_num_threads", None)
            put = getattr(lib, prefix + "_set_num_threads", None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                return get, put
    return None


def _after_fork_in_child():
    # the pool was started in this process's ancestry: Numba's OpenMP layer refuses it
    _state["forked"] = _state["forked"] or bool(numba.np.ufunc.parallel._is_initialized)


_OPENBLAS = None   # (get, set) of SciPy's OpenBLAS thread count, found by _start


def _start():
    """Once per process: start Numba's pool, look up ``?gemm``, find SciPy's OpenBLAS."""
    global _OPENBLAS
    if _state["started"]:
        return
    numba.np.ufunc.parallel._launch_threads()
    _resolve_gemm()
    _OPENBLAS = _scipy_openblas()
    _state["started"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def openblas_threads():
    """The thread count of SciPy's OpenBLAS, or ``None`` if it cannot be controlled."""
    _start()
    return None if _OPENBLAS is None else _OPENBLAS[0]()


def forked():
    """Whether this process was forked from one that started Numba's pool: Numba's GNU
    OpenMP layer terminates it at its first parallel loop."""
    return _state["forked"]


def workers():
    """How many parts of a batch the kernels may compute at once: Numba's thread count
    (``numba.get_num_threads()``, which ``numba.set_num_threads`` and
    ``NUMBA_NUM_THREADS`` set), 1 in a forked child of a process that started Numba's
    pool. Starts the pool (and looks up ``?gemm``) on first use: call it before any
    kernel that may run a parallel loop."""
    if _state["forked"]:
        return 1
    _start()
    return numba.get_num_threads()


class _OneThread:
    """Pins SciPy's OpenBLAS to one thread; restores the count on exit."""

    def __enter__(self):
        get, put = _OPENBLAS
        self.before = get()
        if self.before != 1:
            put(1)

    def __exit__(self, *exc):
        if self.before != 1:
            _OPENBLAS[1](self.before)


_NOTHING = nullcontext()


def blas_scope(active=True):
    """A context that keeps SciPy's OpenBLAS on one thread (if ``active`` and there is
    one to control), restoring its thread count after: wrap kernel calls that may
    take the BLAS path."""
    if not active:
        return _NOTHING
    _start()
    return _NOTHING if _OPENBLAS is None else _OneThread()
