"""A cold fit's kernels compiled in two processes at once.

With an empty cache most of a first fit is Numba compiling, on one core. The small-batch
epoch takes its kernels as function pointers (``pointers.Kernel``), each compiled on its
own, and their types are known before they are compiled (the argument types, and the
return types declared in the plan: ``Kernel`` checks them). So any process that writes
to the same Numba cache can compile them, and the epoch itself can be compiled before
they are. ``compile_plan`` therefore gives about half of the work missing from the
cache to a second Python process (``_HELPER``), compiles the rest here meanwhile (and
then the epoch, ``extra``), and loads the second process's share from the cache when a
kernel is first called. The machine code is the same whichever process compiles it,
and so are the weights.

The second process is started only when it pays: two or more cores, caching on, and at
least ``MIN_ASIDE`` seconds of estimated compile for it (``COSTS``); starting it takes
1-1.5 s of the other core (importing NumPy, Numba and fastnn). If it fails, this process
compiles its share itself. ``FASTNN_COMPILE_ASIDE=0`` turns it off.
"""
import importlib
import os
import pickle
import subprocess
import sys

from numba import types

from .pointers import Kernel, first_class_functions

#: Seconds to compile each kernel with an empty cache (2 cores, AMD Zen 1: config B,
#: 784-100-10 float32 batch 32 with momentum, a patched ``Dispatcher.compile``); the
#: stand-ins (``no_*``, not listed) compile in well under a second. Only their ratios
#: matter: they balance the two processes.
COSTS = {"train_epoch_fused": 12.1, "fused_sparse_update": 8.0, "fused_sparse_sgd": 7.0,
         "split_rows_sgd": 7.0, "fused_layer_update": 6.7, "first_layer_halves": 5.3,
         "forward_sparse": 4.1, "backprop_delta_loops": 2.7, "output_delta": 2.0,
         "forward_loops": 2.0, "activate": 1.8, "_adaptive_region": 1.7,
         "max_norm_columns": 0.6}
#: Estimated seconds of compile below which the second process is not started
MIN_ASIDE = 4.0
#: Seconds to wait for the second process before compiling its share here
TIMEOUT = 900
#: The second process's program: reads ``(module, kernel, argtypes)`` from standard input
_HELPER = "from fastnn.kernels.aside import _main; _main()"


class Ref:
    """In a plan's argument types: the function type of the plan's kernel ``name``."""

    def __init__(self, name):
        self.name = name


def resolve(plan):
    """``plan`` (``{name: (kernel, argtypes, restype)}``) with each ``Ref`` replaced by
    the function type it names, from the declared signatures (nothing is compiled)."""
    sigs, out = {}, {}
    for name, (kernel, argtypes, restype) in plan.items():
        argtypes = tuple(types.FunctionType(sigs[a.name]) if isinstance(a, Ref) else a
                         for a in argtypes)
        sigs[name] = restype(*argtypes)
        out[name] = (kernel, argtypes, restype)
    return out


def _cost(kernel):
    return COSTS.get(kernel.py_func.__name__, 0.2)


def _cached(kernel, argtypes):
    """Whether ``kernel`` is compiled for ``argtypes`` here or in Numba's cache (read
    from the cache's index, without loading the code), or has no cache to share. Reads
    Numba's private caching API (``Dispatcher._cache``, as of Numba 0.68): should that
    change, every kernel counts as cached and this process compiles them all."""
    if argtypes in kernel.overloads:
        return True
    try:
        from numba.core.caching import NullCache
        cache = kernel._cache
        if isinstance(cache, NullCache):
            return True
        key = cache._index_key(argtypes, kernel.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:   # noqa: BLE001 - see the docstring
        return True


def enabled():
    """Whether a second process may compile: ``FASTNN_COMPILE_ASIDE`` is not ``0`` and
    this process may run on two or more cores."""
    if os.environ.get("FASTNN_COMPILE_ASIDE", "1") == "0":
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        cores = os.cpu_count() or 1
    return cores >= 2


def split(plan, extra=0.0):
    """The names of the kernels of ``plan`` (resolved) to compile in the second
    process: those not compiled or cached, largest first, while its share stays within
    half of all the work, ``extra`` seconds that this process compiles afterwards
    included. Empty if that share is under ``MIN_ASIDE`` seconds."""
    todo = [(_cost(kernel), name) for name, (kernel, argtypes, _) in plan.items()
            if not _cached(kernel, argtypes)]
    if not todo:
        return []
    half = (sum(c for c, _ in todo) + extra) / 2
    aside, share = [], 0.0
    for c, name in sorted(todo, key=lambda t: -t[0]):
        if share + c <= half:
            aside.append(name)
            share += c
    return aside if share >= MIN_ASIDE else []


class _Helper:
    """The second process, compiling ``jobs`` (``(kernel, argtypes)``)."""

    def __init__(self, jobs):
        spec = [(k.py_func.__module__, k.py_func.__name__, argtypes) for k, argtypes in jobs]
        import fastnn
        root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, "-c", _HELPER],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        self.done = False
        try:
            self.proc.stdin.write(pickle.dumps(spec))
            self.proc.stdin.close()
        except OSError:   # it died at once: its kernels get compiled here
            pass

    def wait(self):
        """Wait for it to finish (or kill it after ``TIMEOUT``). Whether it succeeded
        does not matter: what it did not compile, ``Kernel`` compiles here."""
        if not self.done:
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.done = True


def compile_plan(plan, extra=0.0):
    """``{name: Kernel}`` for ``plan``, ``{name: (kernel, argtypes, restype)}`` in order
    (a ``Ref`` only to an earlier name), part of it compiled in a second process if
    that pays (``split``; ``extra``: seconds this process will compile next, before it
    calls the kernels). Those are ``Kernel``s that load themselves when first needed."""
    plan = resolve(plan)
    aside = split(plan, extra) if enabled() else []
    helper = None
    if aside:
        try:
            helper = _Helper([plan[name][:2] for name in aside])
        except OSError:   # no Python to start (an embedded interpreter, say)
            aside = []
    return {name: Kernel(kernel, argtypes, restype,
                         ready=helper.wait if name in aside else None)
            for name, (kernel, argtypes, restype) in plan.items()}


def _main():
    """The second process: compile the kernels read from standard input."""
    spec = pickle.loads(sys.stdin.buffer.read())
    with first_class_functions():
        for module, func, argtypes in spec:
            getattr(importlib.import_module(module), func).compile(argtypes)
