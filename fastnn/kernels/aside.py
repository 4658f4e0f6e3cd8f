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
least ``MIN_ASIDE`` seconds of estimated compile for it (``COSTS``); it takes about a
second to start (``STARTUP``), which the split counts in. If it fails, this process
compiles its share itself. ``FASTNN_COMPILE_ASIDE=0`` turns it off.
"""
import importlib
import os
import pickle
import subprocess
import sys

from numba import types

from .pointers import Kernel, first_class_functions

#: Seconds to compile each kernel with an empty cache, on one core (2 cores, AMD Zen 1,
#: 2026-12-05: fits of 784-100-10 float32 at batch 32, SGD with momentum, Adam with
#: max-norm, and 784-30-10 at batch 10, plain SGD, 3,000 sparse rows, a script timing a
#: patched ``Dispatcher.compile`` with ``FASTNN_COMPILE_ASIDE=0``). The variants
#: ``fused_sparse_sgd_sorted`` / ``_summed`` and ``fused_layer_update_flat`` are their full
#: kernel's figure scaled by the two kernels' compile times alone in a fresh process (see
#: ``updates.sparse_sgd_paths`` and ``updates.flat_layers``). Kernels not listed (the
#: stand-ins ``no_*``) count 0.2 s. Only their ratios to each other and to ``STARTUP``
#: matter: they balance the two processes.
COSTS = {"train_epoch_fused": 7.4, "fused_sparse_update": 7.4, "fused_sparse_sgd": 5.5,
         "fused_sparse_sgd_sorted": 4.6, "fused_sparse_sgd_summed": 3.7,
         "fused_layer_update": 4.5, "fused_layer_update_flat": 3.1,
         "first_layer_halves": 3.7, "forward_sparse": 2.2, "backprop_delta_loops": 2.0,
         "forward_loops": 1.5, "output_delta": 1.3, "activate": 1.1, "_gather": 0.75,
         "max_norm_columns": 0.4, "no_first_layer_halves": 0.3}
#: Seconds from starting the second process to its first compile: Python, importing
#: NumPy, Numba and fastnn, and Numba's compiler set-up (1.1-1.2 s, the same machine)
STARTUP = 1.0
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
    process, in plan order: of those not compiled or cached, the share that makes the
    two processes finish first, this one compiling the rest and then ``extra`` seconds
    more, the second one starting ``STARTUP`` seconds late (``COSTS``; of equally good
    shares, the smallest). Empty if that share is under ``MIN_ASIDE`` seconds.

    Every subset is tried: a plan has about ten kernels (a thousand subsets, a few
    milliseconds, once per kind of fit and only with kernels to compile). Taking the
    largest kernels while they fit in half of the work, instead, left this process
    waiting 3.4-3.5 s for the second one in a cold fit of config B."""
    todo = [(name, _cost(kernel)) for name, (kernel, argtypes, _) in plan.items()
            if not _cached(kernel, argtypes)]
    total = sum(c for _, c in todo) + extra
    best, best_end, best_share = 0, total, 0.0    # nothing aside
    for mask in range(1, 1 << len(todo)):
        share = sum(c for i, (_, c) in enumerate(todo) if mask >> i & 1)
        end = max(total - share, STARTUP + share)
        if end < best_end - 1e-9 or (end < best_end + 1e-9 and share < best_share):
            best, best_end, best_share = mask, end, share
    if best_share < MIN_ASIDE:
        return []
    return [name for i, (name, _) in enumerate(todo) if best >> i & 1]


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
