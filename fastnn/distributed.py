"""Many networks at once on a Dask cluster: a hyper-parameter sweep or an ensemble of seeds.

``fit_many(client, specs, X, y, **fit_kwargs)`` trains one :class:`fastnn.Network` per
spec, one Dask task per network, and returns the fitted networks in spec order, each
bitwise equal to the same network trained locally (with the limit on batches of 48 or
more told in :func:`fit_many`). It needs Dask's distributed scheduler, an optional
extra: ``pip install "fastnn[dask]"``; ``import fastnn`` works without it.

How it runs:

1. **Checks first.** Every spec is built into a network and every argument checked
   (``Network.fit`` with ``epochs=0``, which checks and changes nothing) in this
   process, before anything goes to the cluster: a bad spec is a ``TypeError`` /
   ``ValueError`` naming its index, and nothing has been sent.
2. **Data once.** ``X``, ``y`` (and ``validation_data``) are scattered once, in one
   call, and replicated to the workers (``broadcast=True``): the client sends them one
   time however many networks there are, and no task carries a copy. A worker holds one
   copy of the data while it trains networks on it (as much memory as the data). When
   all specs share a dtype, ``X`` is converted to it once, here, so the workers make no
   copy per task. (Dask's Active Memory Manager drops the replicas no waiting task needs
   as the sweep ends.)
3. **Kernels once per machine.** The workers run fastnn's own compiled kernels, loaded
   from Numba's disk cache (``NUMBA_CACHE_DIR`` is respected; it is read in each worker's
   environment) or compiled there and cached. A kernel is compiled or loaded once per
   worker *process*, never per task. With ``warm_up=True`` (the default), before the
   networks are submitted one worker per machine trains a tiny copy of each kind of
   network (dtype; PReLU / batch norm / dropout kernels) on a few rows, then the other
   workers do: with an empty cache the kernels are compiled once per machine (~25 s)
   instead of once per worker process, and the first network on each worker does not
   pay for it. With a warm cache it costs about the time to load the kernels (~1 s),
   once per worker process. Measured in docs/scaling.md.
4. **One task per network**, under a key of its own (``fastnn-fit-<call>-<index>``),
   so identical specs all train; the largest (parameters times epochs) are submitted
   first and with the highest priority, so the sweep does not end waiting for one. Each
   task trains a copy of the arguments (its own copy of an optimizer object, callbacks
   and schedules) with ``progress=False``; callbacks run on the worker (a
   ``ModelCheckpoint`` writes its files there).
"""
import copy
import sys
import uuid

import numpy as np

try:
    import cloudpickle
    import distributed as _distributed
except ImportError as _exc:   # pragma: no cover - exercised without dask installed
    raise ImportError(
        'fastnn.distributed needs Dask\'s distributed scheduler; install it with '
        'pip install "fastnn[dask]"') from _exc

from . import optimizers as _opt
from ._validation import _as_numeric, check_int
from .callbacks import format_metrics
from .network import DivergenceError, Network, _check_schedule

__all__ = ["fit_many"]

#: rows of ``X`` each warm-up fit trains on
WARM_UP_ROWS = 64


def fit_many(client, specs, X, y, *, return_history=False, errors="raise", warm_up=True,
             progress=True, **fit_kwargs):
    """Train one network per spec on a Dask cluster; the networks in spec order.

    Parameters
    ----------
    client : distributed.Client
        A synchronous client of the cluster (``Client("tcp://scheduler:8786")`` or
        ``Client(LocalCluster(...))``). The workers need fastnn installed (the same
        version) and its dependencies.
    specs : sequence of dict
        Each a dict of :class:`fastnn.Network` arguments, e.g.
        ``{"sizes": [784, 100, 10], "hidden": "relu", "seed": 3}``, and optionally the
        key ``"fit"``: a dict of :meth:`fastnn.Network.fit` arguments for this network
        alone, over ``fit_kwargs`` -- a sweep of learning rates, batch sizes or
        optimizers, e.g. ``{"sizes": [784, 100, 10], "fit": {"optimizer":
        fnn.SGD(lr=0.1)}}`` (``validation_data`` is the same for all). Identical specs
        are all trained (one task each).
    X, y : array_like
        Training data, as for :meth:`fastnn.Network.fit`; scattered to the cluster once.
    return_history : bool, default False
        Also return each fit's :class:`fastnn.History` (``seconds`` measured on the
        worker).
    errors : {"raise", "return"}, default "raise"
        What a failing network does. ``"raise"``: the first failure to arrive cancels
        the networks not yet trained and is raised, its message starting with
        ``specs[i] {...}:`` (its type kept where its message can be extended, e.g.
        :class:`fastnn.DivergenceError` with its ``epoch`` and ``history``; otherwise a
        ``RuntimeError`` from it). ``"return"``: every network is trained and a failed
        one's place in the result holds its exception (so named) instead, its history
        None.
    warm_up : bool, default True
        Load or compile the kernels on every worker before submitting the networks,
        one worker per machine first (see the module docstring). False skips it: each
        worker then loads the kernels during its first network.
    progress : bool, default True
        Print a line on standard error as each network finishes: its index and the
        last epoch's metrics. (The fits themselves run with ``progress=False``.)
    **fit_kwargs
        Passed to every :meth:`fastnn.Network.fit` (``epochs``, ``batch_size``,
        ``optimizer``, ``validation_data``, ...; not ``progress``). Each task trains
        with its own copy, so the result for spec ``s`` is the network of
        ``Network(**s).fit(X, y, **copy.deepcopy(fit_kwargs))`` run locally (with
        ``s["fit"]`` merged into ``fit_kwargs``); an optimizer object passed here keeps
        no state afterwards. They must pickle (Dask's cloudpickle takes lambdas and
        functions defined in ``__main__``; functions of other modules must be
        importable on the workers).

    Returns
    -------
    list of Network
        The fitted networks, ``result[i]`` trained from ``specs[i]``;
        ``(networks, histories)`` with ``return_history=True``.

    Raises
    ------
    TypeError, ValueError
        For a bad spec (``specs[i] ...``) or argument, before anything is sent.
    DivergenceError
        ``specs[i] ...: training diverged in epoch ...`` (``errors="raise"``).
    RuntimeError
        From a failure whose message cannot carry the spec's index, e.g.
        ``distributed.scheduler.KilledWorker`` when the network's worker died more often
        than ``distributed.scheduler.allowed-failures`` allows (3 by default). A worker
        that dies mid-task is otherwise harmless: Dask reruns the task on another worker,
        and training is deterministic, so the network is the same -- as long as a copy
        of the scattered data survives on another worker (scattered data cannot be
        recomputed; if the last copy is lost, the networks still to train fail, named).

    Notes
    -----
    **Bitwise equal to local training.** fastnn gives bitwise the same weights for the
    same seed, data and arguments on any number of Numba or OpenBLAS threads, and so on
    any worker: mini-batches of 48 or more (the BLAS path) are cut into parts of a size
    set by the batch size alone, computed on one OpenBLAS thread each and added in
    order (``fastnn.kernels.threads``).

    **Threads.** A worker trains one network per thread (``--nthreads``), and each fit
    uses Numba's threads (``NUMBA_NUM_THREADS``, all cores by default). For many small
    networks, one worker process per core with ``--nthreads 1`` and
    ``NUMBA_NUM_THREADS=1`` keeps the cores busy without oversubscribing them.

    Examples
    --------
    >>> from dask.distributed import Client, LocalCluster
    >>> import fastnn as fnn
    >>> from fastnn.distributed import fit_many
    >>> X, y = fnn.datasets.gaussian_clouds(n_per_class=100)
    >>> specs = [{"sizes": [2, h, 3], "hidden": act, "seed": 0}
    ...          for h in (8, 32) for act in ("relu", "tanh")]
    >>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, \\
    ...         Client(cluster) as client:
    ...     nets = fit_many(client, specs, X, y, epochs=5, batch_size=16,
    ...                     optimizer=fnn.SGD(lr=0.1, momentum=0.9), progress=False)
    >>> [net.sizes for net in nets]
    [[2, 8, 3], [2, 8, 3], [2, 32, 3], [2, 32, 3]]
    >>> best = max(nets, key=lambda net: net.evaluate(X, y)["accuracy"])
    """
    if not isinstance(client, _distributed.Client):
        raise TypeError(f"client must be a dask.distributed.Client; got {client!r}")
    if client.asynchronous:
        raise TypeError("fit_many needs a synchronous Client (asynchronous=False)")
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return'; got {errors!r}")
    for name, value in (("return_history", return_history), ("warm_up", warm_up),
                        ("progress", progress)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False; got {value!r}")
    specs, nets, net_args, fits, X, validation_data = _check(specs, X, y, fit_kwargs)
    if not specs:
        return ([], []) if return_history else []
    y = np.asarray(y)

    if warm_up:
        _warm_up(client, nets, net_args, fits, X, y, validation_data)
    # scattered right before the tasks that need it are submitted: the Active Memory
    # Manager drops replicas that no task waits for
    data = [X, y] if validation_data is None else [X, y, *validation_data]
    futures = client.scatter(data, broadcast=True, hash=False)
    tasks = []
    try:
        token = uuid.uuid4().hex
        val = futures[2:] if validation_data is not None else [None, None]
        work = [net.n_params * kwargs.get("epochs", 1) for net, kwargs in zip(nets, fits)]
        # largest first, in submission order too: idle workers take the first to arrive
        order = sorted(range(len(specs)), key=lambda i: -work[i])
        tasks = [client.submit(_fit_task, net_args[i], futures[0], futures[1], *val,
                               fits[i], key=f"fastnn-fit-{token}-{i}", priority=work[i])
                 for i in order]
        index = dict(zip((task.key for task in tasks), order))
        results = [None] * len(tasks)
        for done, task in enumerate(_distributed.as_completed(tasks), 1):
            i = index[task.key]
            try:
                results[i] = task.result()
            except Exception as exc:   # noqa: BLE001 - every failure is named and passed on
                named = _name_spec(exc, i, specs[i])
                if errors == "raise":
                    client.cancel(tasks)
                    if named is exc:
                        raise
                    raise named from exc
                if named is not exc:
                    named.__cause__ = exc
                results[i] = (named, None)
            if progress:
                _report(done, len(tasks), i, results[i])
    finally:
        client.cancel(futures)
    networks = [r[0] for r in results]
    if return_history:
        return networks, [r[1] for r in results]
    return networks


def _check(specs, X, y, fit_kwargs):
    """Check the specs and arguments here, before anything is sent: ``(specs, networks,
    X to send, validation_data to send, the fit arguments of each task)``."""
    if isinstance(specs, dict) or not isinstance(specs, (list, tuple)):
        raise TypeError(f"specs must be a list of dicts of fastnn.Network arguments; got "
                        f"{type(specs).__name__}")
    if "validation_data" in fit_kwargs and fit_kwargs["validation_data"] is None:
        fit_kwargs = {k: v for k, v in fit_kwargs.items() if k != "validation_data"}
    specs = list(specs)
    nets, fits = [], []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise TypeError(f"specs[{i}] must be a dict of fastnn.Network arguments; got "
                            f"{spec!r}")
        own = spec.get("fit", {})
        if not isinstance(own, dict):
            raise TypeError(f"specs[{i}] {spec!r}: 'fit' must be a dict of fit arguments")
        if "validation_data" in own or "progress" in own:
            raise TypeError(f"specs[{i}] {spec!r}: validation_data and progress are "
                            f"fit_many's arguments, the same for all specs")
        try:
            nets.append(Network(**{k: v for k, v in spec.items() if k != "fit"}))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"specs[{i}] {spec!r}: {exc}") from None
        fits.append(dict(fit_kwargs, **own))
    X = _as_numeric("X", X)
    dtypes = {net.dtype for net in nets}
    if len(dtypes) == 1 and X.ndim == 2:
        # as Network.fit converts it: the workers then use it without a copy
        X = np.ascontiguousarray(X, dtype=dtypes.pop())
    converted = {}   # dtype -> X as that dtype, for the checks
    checked = set()
    for i, (spec, net, kwargs) in enumerate(zip(specs, nets, fits)):
        # the seed changes no check: one check per spec that differs in anything else
        key = repr(sorted((k, repr(v)) for k, v in spec.items() if k != "seed"))
        if key in checked:
            continue
        checked.add(key)
        if net.dtype not in converted and X.ndim == 2:
            converted[net.dtype] = np.ascontiguousarray(X, dtype=net.dtype)
        try:
            # epochs=0: every check of fit, and nothing changes ...
            net.fit(converted.get(net.dtype, X), y, **dict(kwargs, epochs=0, progress=False))
            # ... but the schedule's rates, which it checks for the epochs it runs
            epochs = check_int("epochs", kwargs.get("epochs", 1), 0)
            if kwargs.get("schedule") is not None and epochs:
                _check_schedule(copy.deepcopy(kwargs["schedule"]),
                                copy.deepcopy(_opt.get(kwargs.get("optimizer", "sgd"))),
                                epochs)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"specs[{i}] {spec!r}: {exc}") from None
    validation_data = fit_kwargs.get("validation_data")
    if validation_data is not None:
        validation_data = [np.asarray(a) for a in validation_data]
    for i, kwargs in enumerate(fits):
        kwargs.pop("validation_data", None)
        opt = kwargs.get("optimizer")
        if isinstance(opt, (_opt.Optimizer, _opt.FullBatchOptimizer)):
            # a new network starts a fresh state anyway: send the settings, not the state
            opt = copy.copy(opt)
            opt.reset()
            kwargs["optimizer"] = opt
        try:
            cloudpickle.dumps(kwargs)   # what Dask falls back to (it logs its failures)
        except Exception as exc:   # noqa: BLE001 - any pickling failure
            raise TypeError(f"specs[{i}] {specs[i]!r}: the fit arguments cannot be sent to "
                            f"the workers (they must pickle): {type(exc).__name__}: "
                            f"{exc}") from None
    net_args = [{k: v for k, v in spec.items() if k != "fit"} for spec in specs]
    return specs, nets, net_args, fits, X, validation_data


def _fit_task(spec, X, y, X_val, y_val, fit_kwargs):
    """One network, on a worker: ``(network, history)``."""
    kwargs = copy.deepcopy(fit_kwargs)   # no two tasks share an object, even in threads
    if X_val is not None:
        kwargs["validation_data"] = (X_val, y_val)
    net = Network(**spec)
    history = net.fit(X, y, progress=False, **kwargs)
    return net, history


def _warm_fits(jobs):
    """On a worker: train each ``(spec, X, y, validation_data, fit_kwargs)`` of ``jobs``
    (tiny copies) so that the kernels they need are compiled or loaded in this process."""
    for spec, X, y, val, kwargs in jobs:
        kwargs = copy.deepcopy(kwargs)
        if val is not None:
            kwargs["validation_data"] = val
        try:
            Network(**spec).fit(X, y, progress=False, **kwargs)
        except DivergenceError:   # a few rows may diverge: compiled all the same
            pass


def _warm_up(client, nets, net_args, fits, X, y, validation_data):
    """Run :func:`_warm_fits` for one network of each kind on every worker, one worker
    per machine first, so an empty Numba cache is filled once per machine."""
    n = min(WARM_UP_ROWS, X.shape[0])
    val = None if validation_data is None else tuple(a[:n] for a in validation_data)
    jobs, kinds = [], set()
    for args, net, kwargs in zip(net_args, nets, fits):
        dropout = np.any(np.asarray(kwargs.get("dropout", 0.0)) > 0)
        full_batch = isinstance(_opt.get(kwargs.get("optimizer", "sgd")),
                                _opt.FullBatchOptimizer)
        kind = (net.dtype, net._extended, bool(dropout), full_batch)
        if kind not in kinds:
            kinds.add(kind)
            kwargs = {k: v for k, v in kwargs.items()
                      if k not in ("callbacks", "early_stopping", "schedule")}
            kwargs["epochs"] = 1
            jobs.append((args, np.ascontiguousarray(X[:n], net.dtype), y[:n], val, kwargs))
    workers = client.scheduler_info(n_workers=-1)["workers"]
    first = {}
    for address, info in sorted(workers.items()):
        first.setdefault(info.get("host", address), address)
    token = uuid.uuid4().hex
    for stage in (sorted(first.values()), sorted(set(workers) - set(first.values()))):
        runs = [client.submit(_warm_fits, jobs, key=f"fastnn-warm-up-{token}-{address}",
                              workers=[address], allow_other_workers=False)
                for address in stage]
        client.gather(runs)


def _name_spec(exc, i, spec):
    """``exc`` with its message starting ``specs[i] {spec}:`` -- the same exception when
    its message can be extended that way, else a RuntimeError to raise from it."""
    prefix = f"specs[{i}] {spec!r}"
    if (type(exc).__str__ is BaseException.__str__ and exc.args
            and isinstance(exc.args[0], str)):
        exc.args = (f"{prefix}: {exc.args[0]}", *exc.args[1:])
        return exc
    return RuntimeError(f"{prefix}: {type(exc).__name__}: {exc}")


def _report(done, total, i, result):
    net, history = result
    if history is None:
        what = f"failed: {type(net).__name__}"
    elif history.epoch:
        what = format_metrics({k: v[-1] for k, v in history.history.items()})
    else:
        what = "no epochs"
    print(f"fit_many {done}/{total}  specs[{i}]  {what}", file=sys.stderr, flush=True)
