"""A cold fit's kernels compiled in two processes at once.

With an empty cache most of a first fit is Numba compiling, on one core. The small-batch
epoch takes its kernels as function pointers (``pointers.Kernel``), each compiled on its
own, so any process that writes to the same Numba cache can compile them.
``compile_plan`` therefore gives about half of the kernels that are neither compiled in
this process nor cached to a second Python process (``_HELPER``),
compiles the rest here meanwhile, waits for it, and then loads its share from the cache.
The machine code is the same whichever process compiles it, so are the weights.

The second process is started only when it pays: two or more cores, caching on, and
at least ``MIN_ASIDE`` seconds of estimated compile for it (``COSTS``); it costs ~1.5 s
of the other core to start (Python, NumPy, Numba, fastnn). If it fails, this process
compiles its share itself. ``FASTNN_COMPILE_ASIDE=0`` turns it off.
"""
import importlib
import os
import pickle
import subprocess
import sys

import numba
from numba.core.caching import NullCache

from .pointers import Kernel, first_class_functions

#: Seconds to compile each kernel with an empty cache (2 cores, AMD Zen 1: config B,
#: 784-100-10 float32 batch 32 with momentum, a patched ``Dispatcher.compile``); the
#: stand-ins (``no_*``) compile in well under a second. Only their ratios matter: they
#: balance the two processes.
COSTS = {"fused_sparse_update": 8.0, "fused_sparse_sgd": 7.0, "split_rows_sgd": 7.0,
         "fused_layer_update": 6.7, "first_layer_halves": 5.3, "forward_sparse": 4.1,
         "backprop_delta_loops": 2.7, "output_delta": 2.0, "forward_loops": 2.0,
         "activate": 1.8, "_adaptive_region": 1.7, "max_norm_columns": 0.6}
#: Estimated seconds of compile below which the second process is not started
MIN_ASIDE = 4.0
#: Seconds to wait for the second process before compiling its share here
TIMEOUT = 900


class Ref:
    """In a plan's argument types: the function type of the plan's kernel ``name``."""

    def __init__(self, name):
        self.name = name


def _resolve(argtypes, made):
    return tuple(numba.typeof(made[a.name]) if isinstance(a, Ref) else a for a in argtypes)


def _cost(kernel):
    return COSTS.get(kernel.py_func.__name__, 0.2)


def _cached(kernel, argtypes):
    """Whether ``kernel`` is compiled for ``argtypes`` here or in Numba's cache (read
    from the cache's index, without loading the code)."""
    if argtypes in kernel.overloads:
        return True
    cache = kernel._cache
    if isinstance(cache, NullCache):
        return False
    key = cache._index_key(argtypes, kernel.targetctx.codegen())
    return key in cache._cache_file._load_index()


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


def split(plan):
    """The names of ``plan``'s kernels to compile in the second process: whole groups
    (a kernel with those whose function types it takes, ``Ref``) not yet compiled or
    cached, largest first, while the second process's share stays within half of the
    total. Empty if that share is under ``MIN_ASIDE`` seconds."""
    parent = {name: name for name in plan}

    def find(name):
        while parent[name] != name:
            name = parent[name]
        return name

    for name, (_, argtypes) in plan.items():
        for a in argtypes:
            if isinstance(a, Ref):
                parent[find(a.name)] = find(name)
    groups = {}
    for name in plan:
        groups.setdefault(find(name), []).append(name)
    todo = []
    for members in groups.values():
        # the argument types of a kernel that takes others' are known once they are
        # compiled: a group is to do if any of its other kernels is
        if any(not _cached(*plan[m]) for m in members
               if not any(isinstance(a, Ref) for a in plan[m][1])):
            todo.append((sum(_cost(plan[m][0]) for m in members), members))
    total = sum(c for c, _ in todo)
    aside, share = [], 0.0
    for c, members in sorted(todo, key=lambda t: -t[0]):
        if share + c <= total / 2:
            aside += members
            share += c
    return aside if share >= MIN_ASIDE else []


#: The second process's program (not ``-m``: its ``Ref`` must be this module's)
_HELPER = "from fastnn.kernels.aside import _main; _main()"


class _Helper:
    """The second process, compiling ``jobs`` (``(name, kernel, argtypes)``, in order)."""

    def __init__(self, jobs):
        spec = [(name, k.py_func.__module__, k.py_func.__name__, argtypes)
                for name, k, argtypes in jobs]
        import fastnn
        root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, "-c", _HELPER],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        try:
            self.proc.stdin.write(pickle.dumps(spec))
            self.proc.stdin.close()
        except OSError:   # it died at once: compile here
            pass

    def wait(self):
        try:
            return self.proc.wait(TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False


def compile_plan(plan):
    """``{name: Kernel}`` for ``plan``, ``{name: (kernel, argtypes)}`` in the order to
    compile (``Ref`` only to earlier names), part of it in a second process if that
    pays (``split``)."""
    aside = split(plan) if enabled() else []
    helper = None
    if aside:
        try:
            helper = _Helper([(name, *plan[name]) for name in plan if name in aside])
        except OSError:   # no Python to start (an embedded interpreter, say)
            aside = []
    made = {}
    for name, (kernel, argtypes) in plan.items():
        if name not in aside:
            made[name] = Kernel(kernel, _resolve(argtypes, made))
    if helper is not None:
        helper.wait()
    for name, (kernel, argtypes) in plan.items():   # loaded from the cache if it did
        if name in aside:
            made[name] = Kernel(kernel, _resolve(argtypes, made))
    return made


def _main():
    """The second process: compile the kernels of the plan read from standard input."""
    spec = pickle.loads(sys.stdin.buffer.read())
    made = {}
    with first_class_functions():
        for name, module, func, argtypes in spec:
            kernel = getattr(importlib.import_module(module), func)
            made[name] = Kernel(kernel, _resolve(argtypes, made))

