"""Shared by every benchmark module: seeded data, the configurations, and the one place
that calls fastnn's kernels.

Rules the benchmark modules follow:

- everything here is deterministic (fixed seeds), so every commit is timed on the same
  numbers;
- expensive things (data, compiled kernels, prepared cases) are memoised per process:
  asv re-runs ``setup`` before every timed call, so a repeated ``setup`` must cost
  next to nothing;
- **kernels are called only from this file** (section "Kernel entry points"), with
  their arguments bound by parameter name, so a reordered or dropped parameter needs
  no change and a new one is one more value in the matching ``*_case`` function; the
  benchmark classes do not change. An entry point (or a parameter value) missing in
  the commit being measured raises ``NotImplementedError`` from ``setup``, which asv
  records as "skipped" (n/a), not as a failure; with ``FASTNN_ASV_STRICT=1`` (CI) it
  is an error instead, so the current tree never silently skips.

Nothing here is collected as a benchmark: no name starts with ``time``, ``track``,
``mem``, ``peakmem`` or ``timeraw``.
"""
import functools
import importlib
import inspect
import os

import numpy as np

import fastnn as fnn

SEED = 0
N_FEATURES = 784
N_CLASSES = 10
#: Rows of the synthetic training set for whole epochs (MNIST's training split).
N_TRAIN = 50_000
#: Share of non-zero pixels in the synthetic images (MNIST: ~19%).
DENSITY = 0.19
#: Rows generated per seeded block: ``mnist_like(n)`` is always a prefix of
#: ``mnist_like(N_TRAIN)``, so a slice and the full set hold the same samples.
_BLOCK = 1000

#: The four configurations of docs/benchmarks.md (scripts/compare_peers.py), float32.
CONFIGS = {
    "A": dict(sizes=(784, 30, 10), hidden="sigmoid", output="sigmoid", cost="quadratic",
              batch=10, lr=3.0, momentum=0.0),
    "B": dict(sizes=(784, 100, 10), hidden="relu", output="softmax",
              cost="log_likelihood", batch=32, lr=0.05, momentum=0.9),
    "C": dict(sizes=(784, 512, 512, 10), hidden="relu", output="softmax",
              cost="log_likelihood", batch=256, lr=0.05, momentum=0.9),
    "D": dict(sizes=(784, 100, 10), hidden="relu", output="softmax",
              cost="log_likelihood", batch=1, lr=0.01, momentum=0.0),
}
#: Config B with the layers that train in kernels/layers.py: name -> (Network keyword
#: arguments, fit keyword arguments).
LAYER_CONFIGS = {
    "B+dropout": ({}, {"dropout": 0.5}),
    "B+prelu": ({"hidden": "prelu"}, {}),
    "B+batch_norm": ({"batch_norm": True}, {}),
}
#: Samples the NumPy reference trains on (a slice of the epoch, ~0.5 s each here).
REF_SAMPLES = {"A": 10_000, "B": 10_000, "C": 4_000, "D": 1_000}
#: Rows of the NumPy reference's prediction benchmark.
REF_PREDICT_ROWS = 10_000
#: Parameter grid of the kernel benchmarks.
BATCHES = [1, 32, 256]
WIDTHS = [30, 100, 512]
DTYPES = ["float32", "float64"]


def _optimizer(cls_name, **kwargs):
    """A factory of ``fastnn.<cls_name>(**kwargs)``; skipped where it does not exist."""
    def make():
        cls = getattr(fnn, cls_name, None)
        if cls is None:
            _missing(f"fastnn.{cls_name} does not exist in this commit")
        return cls(**kwargs)
    return make


#: Update rules benchmarked, by name -> a factory of a fresh optimizer object; the
#: kernels are driven through the optimizer's ``code``, ``hyper()`` and ``n_state``, so
#: a new rule is one more entry here (older commits without it show n/a).
RULES = {
    "sgd": _optimizer("SGD", lr=0.01),
    "momentum": _optimizer("SGD", lr=0.01, momentum=0.9),
    "nesterov": _optimizer("SGD", lr=0.01, momentum=0.9, nesterov=True),
    "adam": _optimizer("Adam", lr=1e-3),
    "adamw": _optimizer("AdamW", lr=1e-3, weight_decay=0.01),
    "rmsprop": _optimizer("RMSprop", lr=1e-3),
    "adagrad": _optimizer("Adagrad", lr=1e-2),
}


# --- data ------------------------------------------------------------------------------
def _block(i, dtype):
    """Block ``i`` of the synthetic images: ~DENSITY of the pixels in (0, 1], the rest 0."""
    rng = np.random.default_rng([SEED, 1, i])
    u = rng.random((_BLOCK, N_FEATURES), dtype=np.float32)
    keep = u < DENSITY
    u *= np.float32(-1.0 / DENSITY)
    u += np.float32(1.0)           # kept pixels: 1 - u/DENSITY in (0, 1]
    u[~keep] = 0
    return u.astype(dtype, copy=False)


@functools.lru_cache(maxsize=None)
def mnist_like(n, dtype="float32"):
    """``(X, y)``: ``n`` MNIST-shaped samples, C-contiguous ``X`` of ``dtype`` in [0, 1]
    with ~19% non-zero pixels, integer labels ``y`` in [0, 10).

    Built block by block into one preallocated array, so the peak memory of building
    it is the array itself plus one small block (this matters to ``peakmem_``).
    Memoised: treat the arrays as read-only.
    """
    X = np.empty((n, N_FEATURES), dtype)
    for i, s in enumerate(range(0, n, _BLOCK)):
        e = min(n, s + _BLOCK)
        X[s:e] = _block(i, dtype)[:e - s]
    y = np.random.default_rng([SEED, 2]).integers(0, N_CLASSES, N_TRAIN)[:n]
    return X, y


def gaussian(shape, dtype, scale=1.0, salt=0):
    """Seeded normal values of ``shape`` and ``dtype`` (C-contiguous)."""
    rng = np.random.default_rng([SEED, 3, salt, *shape])
    return np.ascontiguousarray((scale * rng.standard_normal(shape)).astype(dtype))


# --- networks ---------------------------------------------------------------------------
def _split(config):
    """``(base config, Network kwargs, fit kwargs)`` of ``config`` (CONFIGS or
    LAYER_CONFIGS)."""
    if config in LAYER_CONFIGS:
        net_kw, fit_kw = LAYER_CONFIGS[config]
        return CONFIGS[config.split("+")[0]], net_kw, fit_kw
    return CONFIGS[config], {}, {}


def network(config, dtype="float32"):
    """A freshly initialised Network of configuration ``config`` (seeded)."""
    c, net_kw, _ = _split(config)
    kw = dict(hidden=c["hidden"], output=c["output"], cost=c["cost"], dtype=dtype,
              seed=SEED)
    kw.update(net_kw)
    return fnn.Network(list(c["sizes"]), **kw)


def optimizer(config):
    c = _split(config)[0]
    return fnn.SGD(lr=c["lr"], momentum=c["momentum"])


def fit_epoch(net, config, X, y):
    """One epoch of ``config`` over ``(X, y)`` through the public API."""
    c, _, fit_kw = _split(config)
    net.fit(X, y, epochs=1, batch_size=c["batch"], optimizer=optimizer(config),
            progress=False, **fit_kw)


@functools.lru_cache(maxsize=None)
def warm_fit(config, dtype="float32"):
    """Compile (or load from Numba's cache) everything ``fit`` runs for ``config``."""
    X, y = mnist_like(512)
    fit_epoch(network(config, dtype), config, X.astype(dtype), y)


@functools.lru_cache(maxsize=None)
def predict_case(config, rows, dtype="float32"):
    """``Network.predict_proba`` on ``rows`` MNIST-like rows (warmed)."""
    net = network(config, dtype)
    X = np.ascontiguousarray(mnist_like(rows)[0].astype(dtype))
    run = functools.partial(net.predict_proba, X)
    run()
    return run


# --- the NumPy reference (fastnn.reference) ------------------------------------------------
@functools.lru_cache(maxsize=None)
def reference_epoch_case(config):
    """One epoch of ``config`` by ``fastnn.reference.train_sgd`` (float64) over the first
    ``REF_SAMPLES[config]`` samples, from the same initial weights as fastnn's network."""
    from fastnn import reference as ref
    c = CONFIGS[config]
    n = REF_SAMPLES[config]
    X, y = mnist_like(n)
    X = X.astype(np.float64)   # converted here, not inside the timed call
    net = network(config, "float64")
    order = [np.random.default_rng([SEED, 4]).permutation(n)]
    return functools.partial(ref.train_sgd, net.weights, net.biases, X, y, net.hidden,
                             net.output, net.cost, order, c["batch"], c["lr"],
                             momentum=c["momentum"])


@functools.lru_cache(maxsize=None)
def fastnn_slice_case(config):
    """fastnn's epoch of ``config`` on the same slice as ``reference_epoch_case`` (warmed)."""
    X, y = mnist_like(REF_SAMPLES[config])
    net = network(config)
    run = functools.partial(fit_epoch, net, config, X, y)
    run()
    return run


@functools.lru_cache(maxsize=None)
def reference_predict_case(config):
    """``fastnn.reference.predict_proba`` (float64) on ``REF_PREDICT_ROWS`` rows."""
    from fastnn import reference as ref
    X = mnist_like(REF_PREDICT_ROWS)[0].astype(np.float64)
    net = network(config, "float64")
    return functools.partial(ref.predict_proba, net.weights, net.biases, X, net.hidden,
                             net.output)


def layout(sizes, dtype="float32"):
    """``(layout, n_params)`` of a network of layer ``sizes``, as ``Network`` builds its
    flat parameter buffer (``layout[l] = (w_off, b_off, fan_in, fan_out)``)."""
    net = fnn.Network(list(sizes), dtype=dtype, seed=SEED)
    return net._layout, net.params.size


# --- kernel entry points ------------------------------------------------------------------
# The only code that knows the kernels. Each ``*_case`` builds the arrays of one case,
# binds them to the kernel's parameters *by name* (``bind``), warms the kernel (compile
# or cache load) and returns a zero-argument callable that makes the measured call(s).
# A kernel that gains, loses or reorders a parameter whose value a case already supplies
# needs no change here; a parameter no case supplies makes ``bind`` fail with its name.
STRICT = os.environ.get("FASTNN_ASV_STRICT", "") not in ("", "0")


class MissingEntryPoint(NotImplementedError):
    """asv records a NotImplementedError raised in setup as "skipped" (n/a): older
    commits may lack an entry point. With FASTNN_ASV_STRICT=1 (CI) it is an error."""


def _missing(message):
    if STRICT:
        raise RuntimeError(message + " (fix asv_bench/benchmarks/common.py)")
    raise MissingEntryPoint(message)


def kernel(module, name):
    """``fastnn.kernels.<module>.<name>``, or skipped if this commit does not have it."""
    try:
        mod = importlib.import_module(f"fastnn.kernels.{module}")
    except ImportError as exc:
        _missing(f"fastnn.kernels.{module} cannot be imported: {exc}")
    fn = getattr(mod, name, None)
    if fn is None:
        _missing(f"fastnn.kernels.{module}.{name} does not exist in this commit")
    return fn


class Lazy:
    """A value for ``bind`` computed only if the kernel has that parameter (e.g. one
    that needs an entry point older commits lack)."""

    def __init__(self, make):
        self.make = make


def bind(fn, **values):
    """``fn`` with its positional arguments taken from ``values`` by parameter name."""
    names = list(inspect.signature(getattr(fn, "py_func", fn)).parameters)
    unknown = [p for p in names if p not in values]
    if unknown:
        _missing(f"{fn.__module__}.{fn.__name__}{tuple(names)}: no value for {unknown}")
    args = [values[p].make() if isinstance(values[p], Lazy) else values[p] for p in names]
    return functools.partial(fn, *args)


def blas_min_batch():
    """The batch size from which ``Network`` takes the BLAS path."""
    from fastnn import network as _net
    return getattr(_net, "BLAS_MIN_BATCH", 48)


def _hidden_activations(batch, width, dtype, salt):
    """A relu layer's output: about half of it exactly zero."""
    return np.maximum(gaussian((batch, width), dtype, salt=salt), 0).astype(dtype)


@functools.lru_cache(maxsize=None)
def forward_case(batch, width, dtype):
    """``dense.forward`` of the first layer (784 -> width) on ``batch`` raw MNIST-like
    rows, zero inputs skipped, on the path ``Network`` picks for that batch size
    (``dense.forward_compact`` on the BLAS path)."""
    A_in = np.ascontiguousarray(mnist_like(batch)[0].astype(dtype))
    blas = batch >= blas_min_batch()
    # from 48 rows Network leaves the all-zero pixel columns out (dense.forward_compact),
    # in commits that have it
    dense = importlib.import_module("fastnn.kernels.dense")
    name = "forward_compact" if blas and hasattr(dense, "forward_compact") else "forward"
    run = bind(kernel("dense", name),
               A_in=A_in,
               W=gaussian((N_FEATURES, width), dtype, 0.05, salt=1),
               bias=gaussian((width,), dtype, 0.05, salt=2),
               Z=np.empty((batch, width), dtype),
               use_blas=blas,
               skip_zeros=True,
               ci=np.empty(N_FEATURES + 1, np.int64),
               Ac=np.empty(batch * N_FEATURES, dtype),
               Wc=np.empty(N_FEATURES * width, dtype))
    run()
    return run


@functools.lru_cache(maxsize=None)
def backward_case(batch, width, dtype):
    """Backward through one hidden layer (width -> width, relu below): the weight and
    bias gradients (``dense.gradients``) and the delta of the layer below
    (``dense.backprop_delta``), on the path ``Network`` picks for that batch size."""
    A_in = _hidden_activations(batch, width, dtype, salt=3)
    values = dict(
        A_in=A_in, A_prev=A_in,
        D=gaussian((batch, width), dtype, 0.1, salt=4),
        W=gaussian((width, width), dtype, 0.05, salt=5),
        gW=np.empty((width, width), dtype),
        gb=np.empty(width, dtype),
        D_prev=np.empty((batch, width), dtype),
        wt=np.empty(width * width, dtype),
        code=kernel("activations", "RELU"),
        slope=np.dtype(dtype).type(0.01),
        use_blas=batch >= blas_min_batch(),
    )
    gradients = bind(kernel("dense", "gradients"), **values)
    backprop_delta = bind(kernel("dense", "backprop_delta"), **values)

    def run():
        gradients()
        backprop_delta()

    run()
    return run


def _rule(rule, n_params, dtype):
    """``(code, hyper, state)`` of update rule ``rule`` for ``n_params`` parameters."""
    opt = RULES[rule]()
    state = np.zeros((max(opt.n_state, 1), n_params), dtype)
    return opt.code, opt.hyper(), state


#: Optimizer steps taken before the measured one: not the first, so rules with state
#: (momentum, Adam's moments, ...) read it as in the middle of training.
_STEP = 1


@functools.lru_cache(maxsize=None)
def apply_update_case(rule, width, dtype):
    """``updates.apply_update``: one step of ``rule`` on the whole flat buffer of a
    784-width-10 network from a summed gradient (the large-batch path; the batch size
    only scales the gradient, so it is not a parameter here)."""
    table, n = layout((N_FEATURES, width, N_CLASSES))
    code, hyper, state = _rule(rule, n, dtype)
    run = bind(kernel("updates", "apply_update"),
               params=gaussian((n,), dtype, 0.05, salt=6),
               grad=gaussian((n,), dtype, 0.01, salt=7),
               layout=table, batch=32, l2=0.0, opt_code=code, hyper=hyper, state=state,
               step=_STEP, part=None)
    run()
    return run


@functools.lru_cache(maxsize=None)
def fused_update_case(rule, batch, width, dtype):
    """``updates.fused_layer_update``: gradient and step of ``rule`` for the first layer
    (784 -> width) in one pass, from ``batch`` raw MNIST-like rows and their deltas (the
    small-batch path; rows of zero inputs are skipped where the rule allows)."""
    W = gaussian((N_FEATURES, width), dtype, 0.05, salt=9)
    code, hyper, state = _rule(rule, W.size + width, dtype)   # W, then the bias
    run = bind(kernel("updates", "fused_layer_update"),
               W=W,
               bias=gaussian((width,), dtype, 0.05, salt=10),
               A_in=np.ascontiguousarray(mnist_like(batch)[0].astype(dtype)),
               D=gaussian((batch, width), dtype, 0.1, salt=8),
               g=np.empty(width, dtype),
               batch=batch, l2=0.0, l1=0.0, opt_code=code, hyper=hyper,
               # the whole state and the layer's offsets in it (since 6d3753d) ...
               state=state, w_off=0, b_off=W.size, step=_STEP,
               sc=Lazy(lambda: kernel("updates", "step_scalars")(code, hyper, _STEP)),
               # ... or the layer's velocity rows and a first-step flag (before)
               VW=state[0, :W.size].reshape(W.shape), vb=state[0, W.size:],
               first=_STEP == 0,
               skip_zeros=True,   # raw inputs (kernels before f5ee03b take this flag)
               adaptive=_adaptive(code, dtype, state, hyper))
    run()
    return run


#: Batch sizes of the small-batch path that reads the first layer's non-zero inputs
#: through a CSR index (``dense.forward_sparse``, ``updates.fused_sparse_update``).
SPARSE_BATCHES = [1, 10, 32]


def _csr_case(batch, dtype):
    """``batch`` raw MNIST-like rows, their CSR index and the rows of a batch. The index
    holds the non-zero values since 5605f8a, whose kernels read them from it instead of
    from ``X`` (for older commits they are taken from ``X``, unused)."""
    X = np.ascontiguousarray(mnist_like(batch)[0].astype(dtype))
    index = kernel("train", "nonzero_index")(X)
    indptr, indices = index[:2]
    values = index[2] if len(index) > 2 else X[X != 0]   # row-major: the CSR order
    return X, indptr, indices, values, np.arange(batch, dtype=np.int64)


def _lanes(dtype):
    """Lanes of a 512-bit SIMD register (``kernels/simd.py``)."""
    return 64 // np.dtype(dtype).itemsize


@functools.lru_cache(maxsize=None)
def sparse_forward_case(batch, width, dtype):
    """``dense.forward_sparse``: the first layer (784 -> width) of ``batch`` raw
    MNIST-like rows from their non-zero inputs, as small batches train on MNIST."""
    X, indptr, indices, values, rows = _csr_case(batch, dtype)
    run = bind(kernel("dense", "forward_sparse"),
               X=X, values=values, indptr=indptr, indices=indices, rows=rows,
               W=gaussian((N_FEATURES, width), dtype, 0.05, salt=1),
               bias=gaussian((width,), dtype, 0.05, salt=2),
               Z=np.empty((batch, width), dtype))
    run()
    return run


@functools.lru_cache(maxsize=None)
def sparse_update_case(rule, batch, width, dtype):
    """``updates.fused_sparse_update``: gradient and step of ``rule`` for the first layer
    (784 -> width) from ``batch`` raw MNIST-like rows read through their CSR index, with
    the workspaces ``train.train_epoch_fused`` gives it."""
    X, indptr, indices, values, rows = _csr_case(batch, dtype)
    fn = kernel("updates", "fused_sparse_update")
    params = inspect.signature(fn.py_func).parameters
    L = _lanes(dtype)
    # the terms' lists: for 2-8 registers since 8e0fe89, for every width before
    lists = "pos" in params or 2 * L < width <= 8 * L
    W = gaussian((N_FEATURES, width), dtype, 0.05, salt=9)
    code, hyper, state = _rule(rule, W.size + width, dtype)
    run = bind(fn,
               W=W, bias=gaussian((width,), dtype, 0.05, salt=10),
               X=X, values=values, indptr=indptr, indices=indices, rows=rows,
               D=gaussian((batch, width), dtype, 0.1, salt=8),
               state=state, w_off=0, b_off=W.size,
               g=np.empty(width, dtype),
               # the gradient rows, padded to whole registers, and their marks (a3625b9)
               G=np.zeros((N_FEATURES, -(-width // L) * L), dtype),
               touched=np.zeros(N_FEATURES, np.uint8),
               cnt=np.zeros(N_FEATURES + 2 if lists else 0, np.int64),
               pos=np.zeros(N_FEATURES, np.int64),
               tb=np.zeros(batch * N_FEATURES if lists else 0, np.int64),
               ta=np.zeros(batch * N_FEATURES if lists else 0, dtype),
               batch=batch, l2=0.0, l1=0.0, opt_code=code, hyper=hyper, step=_STEP,
               sc=Lazy(lambda: kernel("updates", "step_scalars")(code, hyper, _STEP)),
               adaptive=_adaptive(code, dtype, state, hyper))
    run()
    return run


def _adaptive(code, dtype, state, hyper):
    """The fused updates' adaptive-rule step, a function pointer (their argument since
    3877af8, which added ``updates.adaptive_step``)."""
    return Lazy(lambda: kernel("updates", "adaptive_step")(code, dtype, state, hyper))


def _start_numba():
    """Initialise Numba's compiler (~0.5 s) once, at import: asv's forkserver imports the
    suite once and forks one process per case, which then inherit it."""
    from numba import njit
    njit(lambda x: x + 1)(1)


_start_numba()
