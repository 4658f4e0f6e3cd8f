"""Saving and loading networks: ``.npz`` arrays plus JSON metadata, never pickle.

The file is a NumPy ``.npz`` archive holding ``params`` (the flat parameter buffer) and
``meta`` (UTF-8 JSON as a uint8 array): format version, layer sizes, activations, cost,
dtype, seed, leaky slope and epochs trained. Loading uses ``allow_pickle=False``, so an
untrusted file cannot run code. Saves go to a temporary file in the same folder that is
renamed over the target only once complete, so a crash never leaves a half-written file.

Format versions
---------------
A reader refuses a file whose ``format_version`` is newer than it knows
(:class:`ModelFileError`, "upgrade fastnn"), and every file is written with the *lowest*
version that can describe it, so older fastnn keeps reading what it can:

- **1**: a plain network (dense layers); also an ensemble of plain networks
  (``"format": "fastnn-ensemble"``).
- **2**: a network with PReLU or batch norm (slopes, scales and shifts in ``params``,
  running statistics in the array ``stats``); also an ensemble of such members.

**Optimizer state** (``net.save(path, optimizer=opt)``, read back with
``fastnn.load(path, optimizer=True)``) is an optional part that does *not* change the
network's version: the meta dict gains the key ``"optimizer"`` --
``{"format_version": 1, "class": "Adam", "params": {constructor arguments}, "step": 40}``
(``"step": null`` for an optimizer that has not trained yet) -- and the archive the
array ``optimizer_state`` (``(rows, n_params)`` in the network's dtype; absent when
``step`` is null). Readers before it ignore unknown meta keys and arrays, so to them the
file is the same network without the optimizer, which is all that part adds; nothing
in it changes what the network computes. The part carries its own ``format_version``:
a later change to an optimizer's state layout raises it, and then this version refuses
the part (only when asked for it) rather than resuming from state it misreads. Only
fastnn's own optimizers are stored, by class name from a fixed table (no import of
names read from a file). Learning-rate schedules, callbacks and early stopping keep
their own state and are not stored.

The tests keep files written by this version (``tests/data/``) and read them, so later
versions stay able to.
"""
import inspect
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastnn-network"
FORMAT_VERSION = 2
#: version of the optional optimizer part (see the module docstring)
OPTIMIZER_FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is truncated, corrupt, of another kind or of a newer format."""


def _meta(net):
    # Version 2 adds PReLU, batch norm and the running statistics; a network without
    # them is still written as version 1, readable by the fastnn versions before.
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION if net._extended else 1,
        "sizes": net.sizes,
        "hidden": net.hidden,
        "output": net.output,
        "cost": net.cost,
        "init": net.init,
        "dtype": net.dtype.name,
        "seed": net.seed,
        "leaky_slope": net.leaky_slope,
        "epochs_trained": net.epochs_trained,
        "labels_fitted": net._labels_fitted,
        "batch_norm": net.batch_norm,
        "batch_norm_momentum": net.batch_norm_momentum,
        "batch_norm_eps": net.batch_norm_eps,
    }


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it
    over ``path``: readers see the old file or the complete new one, never a part.

    Parameters
    ----------
    path : str or os.PathLike
    write : callable
        Receives the open binary file; anything it raises leaves ``path`` untouched
        and removes the temporary file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_model(path, params, meta, **arrays):
    """Write a model file atomically: the array ``params``, any further named
    ``arrays`` and the dict ``meta`` (as UTF-8 JSON in a uint8 array)."""
    raw = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    atomic_write(path, lambda f: np.savez(f, params=params, meta=raw, **arrays))


def check_version(path, meta, what, newest):
    """Refuse a file whose ``format_version`` is missing or newer than ``newest``."""
    version = meta.get("format_version")
    if not isinstance(version, int) or version > newest:
        raise ModelFileError(f"{path}: written in {what} format version {version}, newer "
                             f"than this fastnn reads ({newest}); upgrade fastnn")


def _optimizer_classes():
    """The optimizers a file may name: fastnn's own mini-batch optimizers, by class name."""
    from . import optimizers as _opt
    return {cls.__name__: cls for cls in (_opt.SGD, _opt.Adam, _opt.AdamW, _opt.RMSprop,
                                          _opt.Adagrad)}


def _optimizer_meta(net, optimizer):
    """``(meta, state)``: the file's description of ``optimizer`` (trained on ``net``, or
    not yet used) and its state array (None when it has none yet)."""
    from .optimizers import FullBatchOptimizer
    classes = _optimizer_classes()
    if isinstance(optimizer, FullBatchOptimizer):
        raise TypeError(f"{optimizer!r} has no state to save: a full-batch optimizer starts "
                        f"afresh on every fit")
    if classes.get(type(optimizer).__name__) is not type(optimizer):
        raise TypeError(f"optimizer must be one of fastnn's optimizers "
                        f"({', '.join(classes)}) to be saved; got {optimizer!r}")
    names = [p for p in inspect.signature(type(optimizer).__init__).parameters
             if p != "self"]
    params = {}
    for name in names:
        value = getattr(optimizer, name)
        params[name] = list(value) if isinstance(value, tuple) else value
    meta = {"format_version": OPTIMIZER_FORMAT_VERSION, "class": type(optimizer).__name__,
            "params": params, "step": None}
    if optimizer.state is None:
        return meta, None
    if optimizer._owner is not net:
        raise ValueError(f"the state of {optimizer!r} belongs to another network: pass the "
                         f"optimizer that trains this one (or a new one)")
    meta["step"] = int(optimizer.step[0])
    return meta, optimizer.state


def save(net, path, optimizer=None):
    """Write ``net`` to ``path`` (conventionally ``*.npz``) atomically.

    Parameters
    ----------
    net : Network
    path : str or os.PathLike
        Written exactly as given (no suffix is added).
    optimizer : Optimizer, optional
        Also store this optimizer -- its class, hyper-parameters, state (velocities,
        moments) and step count -- so that ``load(path, optimizer=True)`` can resume
        training bitwise where it stopped. It must be one of fastnn's mini-batch
        optimizers (SGD, Adam, AdamW, RMSprop, Adagrad), either unused or the one whose
        state belongs to ``net`` (the object passed to ``net.fit``). See the module
        docstring for how this part is stored and which versions read it.

    Raises
    ------
    TypeError, ValueError
        For an optimizer that cannot be stored; nothing is written.
    """
    arrays = {"stats": net._stats} if net._stats.size else {}
    meta = _meta(net)
    if optimizer is not None:
        meta["optimizer"], state = _optimizer_meta(net, optimizer)
        if state is not None:
            arrays["optimizer_state"] = state
    write_model(path, net.params, meta, **arrays)


def load(path, optimizer=False):
    """Read a network written by :func:`save` (or ``Network.save``), or an ensemble
    written by ``Ensemble.save`` (then an :class:`fastnn.Ensemble` is returned).

    Parameters
    ----------
    path : str or os.PathLike
    optimizer : bool, default False
        Also read the optimizer stored with ``net.save(path, optimizer=opt)`` and
        return ``(net, opt)``: ``opt`` is a new optimizer of the stored class and
        hyper-parameters, holding the stored state and bound to ``net``, so that
        ``net.fit(X, y, optimizer=opt, ...)`` continues exactly where the saved training
        stopped; ``opt`` is None when the file holds no optimizer (also for an
        ensemble). Without it the optimizer part of a file is ignored.

    Returns
    -------
    Network or Ensemble, or (Network or Ensemble, Optimizer or None)

    Raises
    ------
    ModelFileError
        If the file is not a fastnn model, is truncated or corrupt, or was written by a
        newer format version; with ``optimizer=True`` also if its optimizer part is
        missing pieces, corrupt or of a newer format. ``FileNotFoundError`` if it does
        not exist.

    Examples
    --------
    >>> import fastnn as fnn
    >>> X, y = fnn.datasets.gaussian_clouds(n_per_class=20)
    >>> net, opt = fnn.Network([2, 8, 3]), fnn.Adam(lr=0.01)
    >>> _ = net.fit(X, y, epochs=2, optimizer=opt, progress=False)
    >>> net.save("run.npz", optimizer=opt)
    >>> net, opt = fnn.load("run.npz", optimizer=True)   # later, maybe elsewhere
    >>> _ = net.fit(X, y, epochs=2, optimizer=opt, progress=False)   # goes on
    """
    if not isinstance(optimizer, (bool, np.bool_)):
        raise TypeError(f"optimizer must be True or False; got {optimizer!r}")
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files or "params" not in data.files:
                raise ModelFileError(f"{path}: not a fastnn model file (arrays "
                                     f"{sorted(data.files)})")
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            params = data["params"]
            stats = data["stats"] if "stats" in data.files else None
            opt_state = (data["optimizer_state"]
                         if optimizer and "optimizer_state" in data.files else None)
    except FileNotFoundError:
        raise
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, UnicodeDecodeError,
            KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable fastnn model file (truncated or "
                             f"corrupt): {exc}") from None
    if isinstance(meta, dict) and meta.get("format") == "fastnn-ensemble":
        from .ensemble import _from_file
        ens = _from_file(path, meta, params, stats)
        return (ens, None) if optimizer else ens
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastnn model file")
    net = _network_from_meta(path, meta, params, stats)
    if not optimizer:
        return net
    if "optimizer" not in meta:
        return net, None
    return net, _optimizer_from_meta(path, meta["optimizer"], opt_state, net)


def _optimizer_from_meta(path, meta, state, net):
    """The optimizer described by the optimizer part ``meta`` of a file, with ``state``,
    bound to ``net``."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: invalid optimizer description")
    check_version(path, meta, "optimizer", OPTIMIZER_FORMAT_VERSION)
    cls = _optimizer_classes().get(meta.get("class"))
    if cls is None:
        raise ModelFileError(f"{path}: unknown optimizer {meta.get('class')!r}; this fastnn "
                             f"reads {', '.join(_optimizer_classes())}")
    params, step = meta.get("params"), meta.get("step")
    try:
        if not isinstance(params, dict):
            raise TypeError("params is not a dict")
        opt = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid {meta['class']} description: {exc}") from None
    if step is None:
        if state is not None:
            raise ModelFileError(f"{path}: optimizer state without a step count")
        return opt
    rows = (max(opt.n_state, 1), net.n_params)
    if (isinstance(step, bool) or not isinstance(step, int) or step < 0 or state is None
            or state.shape != rows or state.dtype != net.dtype):
        raise ModelFileError(
            f"{path}: the {meta['class']} state is missing or does not fit the network "
            f"(step {step!r}, state {None if state is None else (state.shape, state.dtype)}"
            f", expected {rows} {net.dtype})")
    opt.state = np.ascontiguousarray(state)
    opt.step = np.array([step], np.int64)
    opt._owner = net
    return opt


def _network_from_meta(path, meta, params, stats=None):
    """The Network described by the ``meta`` dict of a model file, with ``params``."""
    from .network import Network

    check_version(path, meta, "model", FORMAT_VERSION)
    try:
        net = Network(meta["sizes"], hidden=meta["hidden"], output=meta["output"],
                      cost=meta["cost"], init=meta["init"], dtype=meta["dtype"],
                      seed=meta["seed"], leaky_slope=meta["leaky_slope"],
                      batch_norm=meta.get("batch_norm", False),
                      batch_norm_momentum=meta.get("batch_norm_momentum", 0.1),
                      batch_norm_eps=meta.get("batch_norm_eps", 1e-5))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid model description: {exc}") from None
    if params.shape != net.params.shape or params.dtype != net.params.dtype:
        raise ModelFileError(f"{path}: parameters of shape {params.shape} and dtype "
                             f"{params.dtype} do not fit the described network "
                             f"({net.params.shape}, {net.params.dtype})")
    net.params[...] = params
    if net._stats.size:
        if stats is None or stats.shape != net._stats.shape or stats.dtype != net.dtype:
            raise ModelFileError(f"{path}: the batch-norm running statistics are missing "
                                 f"or do not fit the described network")
        net._stats[...] = stats
    net.epochs_trained = int(meta.get("epochs_trained", 0))
    net._labels_fitted = meta.get("labels_fitted")
    return net
