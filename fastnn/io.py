"""Saving and loading networks: ``.npz`` arrays plus JSON metadata, never pickle.

The file is a NumPy ``.npz`` archive holding ``params`` (the flat parameter buffer) and
``meta`` (UTF-8 JSON as a uint8 array): format version, layer sizes, activations, cost,
dtype, seed, leaky slope and epochs trained. Loading uses ``allow_pickle=False``, so an
untrusted file cannot run code. Saves go to a temporary file in the same folder that is
renamed over the target only once complete, so a crash never leaves a half-written file.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastnn-network"
FORMAT_VERSION = 2


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


def save(net, path):
    """Write ``net`` to ``path`` (conventionally ``*.npz``) atomically.

    Parameters
    ----------
    net : Network
    path : str or os.PathLike
        Written exactly as given (no suffix is added).
    """
    arrays = {"stats": net._stats} if net._stats.size else {}
    write_model(path, net.params, _meta(net), **arrays)


def load(path):
    """Read a network written by :func:`save` (or ``Network.save``), or an ensemble
    written by ``Ensemble.save`` (then an :class:`fastnn.Ensemble` is returned).

    Raises
    ------
    ModelFileError
        If the file is not a fastnn model, is truncated or corrupt, or was written by a
        newer format version. ``FileNotFoundError`` if it does not exist.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files or "params" not in data.files:
                raise ModelFileError(f"{path}: not a fastnn model file (arrays "
                                     f"{sorted(data.files)})")
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            params = data["params"]
            stats = data["stats"] if "stats" in data.files else None
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
        return _from_file(path, meta, params, stats)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastnn model file")
    return _network_from_meta(path, meta, params, stats)


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
