"""Input checks done in Python before any kernel runs (kernels never validate)."""
import numbers

import numpy as np


def _as_numeric(name, a):
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to a numeric array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers; got an array of dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got dtype {arr.dtype}")
    return arr


def check_X(X, n_features, dtype, name="X", finite=None):
    """``X`` as a C-contiguous ``(n, n_features)`` array of ``dtype`` (copied only if needed).

    ``finite(arr) -> bool`` may replace the check for NaN and infinity (``Network.fit``
    passes one that also counts the non-zeros in the same pass over ``X``)."""
    arr = _as_numeric(name, X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no samples (shape {arr.shape})")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features per sample but the network's "
                         f"input layer has {n_features}")
    out = np.ascontiguousarray(arr, dtype=dtype)
    if not (np.isfinite(out).all() if finite is None else finite(out)):
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(f"{name} contains NaN or infinity (first at row {bad[0]}, "
                         f"column {bad[1]}); also check values that overflow {dtype}")
    return out


def check_targets(y, n_samples, n_outputs, dtype, name="y"):
    """Targets as ``(labels, Y, use_labels)``: int64 labels ``(n,)`` or float ``(n, outputs)``.

    Integer arrays (or floats holding whole numbers) of shape ``(n,)`` are class labels
    in ``[0, n_outputs)``; float arrays of shape ``(n, n_outputs)`` (or ``(n,)`` for a
    single output) are regression targets.
    """
    arr = _as_numeric(name, y)
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be labels of shape (n,) or targets of shape "
                         f"(n, {n_outputs}); got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n_samples} samples")
    if arr.ndim == 1 and (n_outputs > 1 or np.issubdtype(arr.dtype, np.integer)
                          or arr.dtype == np.bool_):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            if not np.isfinite(arr).all():
                raise ValueError(f"{name} contains NaN or infinity")
            if not (arr == np.round(arr)).all():
                raise ValueError(f"{name} of shape (n,) must hold integer class labels; for "
                                 f"regression targets pass shape (n, {n_outputs})")
        labels = arr.astype(np.int64)
        if n_outputs == 1:
            raise ValueError(f"{name} holds class labels but the network has a single output; "
                             f"pass float targets of shape (n, 1) instead")
        lo, hi = labels.min(), labels.max()
        if lo < 0 or hi >= n_outputs:
            raise ValueError(f"{name} holds labels in [{lo}, {hi}] but must lie in "
                             f"[0, {n_outputs - 1}] for a network with {n_outputs} outputs")
        return np.ascontiguousarray(labels), np.empty((0, n_outputs), dtype), True
    Y = arr.reshape(n_samples, -1) if arr.ndim == 1 else arr
    if Y.shape[1] != n_outputs:
        raise ValueError(f"{name} has {Y.shape[1]} targets per sample but the network has "
                         f"{n_outputs} outputs")
    Y = np.ascontiguousarray(Y, dtype=dtype)
    if not Y.flags.writeable:
        # Numba types a read-only array apart from a writable one, so read-only targets
        # (a memory map, scikit-learn's readonly_memmap check) would compile the epoch
        # kernels a second time: 34 s of compiling for float64 on 2 cores (Zen 1),
        # measured with a patched Dispatcher.compile. Y is small beside X; copy it.
        Y = Y.copy()
    if not np.isfinite(Y).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return np.empty(0, np.int64), Y, False


def check_int(name, value, low):
    """``value`` as an int >= ``low`` (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}")
    return int(value)


def check_real(name, value, low=0.0, high=None, low_open=False):
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if value < low or (low_open and value == low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}; got {value!r}")
    return value
