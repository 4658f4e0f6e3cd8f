"""Small built-in classification problems in the plane.

Each function returns ``(X, y)``: points ``X`` of shape ``(n, 2)`` (C-contiguous, float64
unless `dtype` says float32) and integer labels ``y`` of shape ``(n,)`` (int64). The
samples are shuffled, and the same arguments always give the same arrays: all the
randomness comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["gaussian_clouds", "spirals", "xor"]


def _check_count(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_scale(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and non-negative, got {value}")
    return float(value)


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved


def _finish(
    X: np.ndarray, y: np.ndarray, rng: np.random.Generator, shuffle: bool, dtype: Any
) -> tuple[np.ndarray, np.ndarray]:
    if shuffle:
        order = rng.permutation(len(y))
        X, y = X[order], y[order]
    return np.ascontiguousarray(X, dtype=dtype), y.astype(np.int64)


def gaussian_clouds(
    n_per_class: int = 100,
    centers: Any = None,
    std: float = 0.5,
    seed: int | None = 0,
    *,
    shuffle: bool = True,
    dtype: Any = "float64",
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian clouds of points, one per class.

    Parameters
    ----------
    n_per_class : int, default 100
        Points in each cloud.
    centers : array_like of shape (n_classes, n_features), optional
        The clouds' centres. Default: three centres on a circle of radius 2 around
        the origin, at 90, 210 and 330 degrees, so the problem is 2-D with labels
        0, 1, 2.
    std : float, default 0.5
        Standard deviation of every coordinate around its centre.
    seed : int or None, default 0
        Seed for ``numpy.random.default_rng``.
    shuffle : bool, default True
        Shuffle the samples; if False they come class by class.
    dtype : {"float64", "float32"}, default "float64"
        dtype of `X`.

    Returns
    -------
    X : numpy.ndarray of shape (n_classes * n_per_class, n_features)
        The points.
    y : numpy.ndarray of shape (n_classes * n_per_class,), int64
        The index of each point's cloud.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or value; the message names it.

    Examples
    --------
    >>> X, y = gaussian_clouds(n_per_class=50)
    >>> X.shape, y.dtype, sorted(set(y.tolist()))
    ((150, 2), dtype('int64'), [0, 1, 2])
    """
    n_per_class = _check_count(n_per_class, "n_per_class")
    std = _check_scale(std, "std")
    dtype = _check_dtype(dtype)
    if centers is None:
        angles = np.deg2rad([90.0, 210.0, 330.0])
        centers = 2.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    else:
        try:
            centers = np.array(centers, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("centers must be a 2-D array of numbers") from None
        if centers.ndim != 2 or centers.shape[0] < 1 or centers.shape[1] < 1:
            raise ValueError(
                f"centers must have shape (n_classes, n_features), got {centers.shape}"
            )
        if not np.all(np.isfinite(centers)):
            raise ValueError("centers must be finite")
    rng = np.random.default_rng(seed)
    n_classes, n_features = centers.shape
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[y] + std * rng.standard_normal((len(y), n_features))
    return _finish(X, y, rng, shuffle, dtype)


def xor(
    n: int = 200,
    noise: float = 0.1,
    seed: int | None = 0,
    *,
    dtype: Any = "float64",
) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: points in the square labelled by their quadrant.

    Points are drawn uniformly from ``[-1, 1]^2`` and labelled 1 where exactly one
    coordinate is negative (the 2nd and 4th quadrants) and 0 elsewhere; then Gaussian
    noise of standard deviation `noise` is added to the points, so with ``noise > 0``
    a few points near the axes land on the wrong side. No straight line separates
    the classes.

    Parameters
    ----------
    n : int, default 200
        Number of points.
    noise : float, default 0.1
        Standard deviation of the noise added to each coordinate after labelling.
    seed : int or None, default 0
        Seed for ``numpy.random.default_rng``.
    dtype : {"float64", "float32"}, default "float64"
        dtype of `X`.

    Returns
    -------
    X : numpy.ndarray of shape (n, 2)
        The points.
    y : numpy.ndarray of shape (n,), int64
        0 or 1.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or value; the message names it.

    Examples
    --------
    >>> X, y = xor(n=4, noise=0.0)
    >>> bool(np.all(y == ((X[:, 0] < 0) != (X[:, 1] < 0))))
    True
    """
    n = _check_count(n, "n")
    noise = _check_scale(noise, "noise")
    dtype = _check_dtype(dtype)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = (X[:, 0] < 0) != (X[:, 1] < 0)
    X += noise * rng.standard_normal((n, 2))
    return _finish(X, y, rng, False, dtype)  # drawn in random order already


def spirals(
    n_per_class: int = 100,
    n_classes: int = 2,
    noise: float = 0.05,
    seed: int | None = 0,
    *,
    turns: float = 1.0,
    shuffle: bool = True,
    dtype: Any = "float64",
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class.

    Arm ``k`` runs from the origin out to radius 1, turning `turns` times around it,
    starting at angle ``2*pi*k/n_classes``; each point gets Gaussian noise of standard
    deviation `noise` on both coordinates.

    Parameters
    ----------
    n_per_class : int, default 100
        Points on each arm.
    n_classes : int, default 2
        Number of arms (classes).
    noise : float, default 0.05
        Standard deviation of the noise added to each coordinate.
    seed : int or None, default 0
        Seed for ``numpy.random.default_rng``.
    turns : float, default 1.0
        How many times each arm winds around the origin.
    shuffle : bool, default True
        Shuffle the samples; if False they come arm by arm, from the centre out.
    dtype : {"float64", "float32"}, default "float64"
        dtype of `X`.

    Returns
    -------
    X : numpy.ndarray of shape (n_classes * n_per_class, 2)
        The points.
    y : numpy.ndarray of shape (n_classes * n_per_class,), int64
        The index of each point's arm.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or value; the message names it.

    Examples
    --------
    >>> X, y = spirals(n_per_class=50, n_classes=3)
    >>> X.shape, np.bincount(y).tolist()
    ((150, 2), [50, 50, 50])
    """
    n_per_class = _check_count(n_per_class, "n_per_class")
    n_classes = _check_count(n_classes, "n_classes")
    noise = _check_scale(noise, "noise")
    turns = _check_scale(turns, "turns")
    dtype = _check_dtype(dtype)
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    radius = np.tile(np.linspace(0.0, 1.0, n_per_class), n_classes)
    angle = 2.0 * np.pi * (y / n_classes + turns * radius)
    X = radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    X += noise * rng.standard_normal(X.shape)
    return _finish(X, y, rng, shuffle, dtype)
