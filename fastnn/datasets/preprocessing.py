"""Preprocessing: one-hot labels, standardisation, PCA and whitening.

Each transformation is fitted on the training set only and then applied, unchanged, to
any other set (validation, test) — never refitted on them. Two forms:

- functions that fit on the first array and return every array transformed::

      X_train, X_val, X_test = standardize(X_train, X_val, X_test)
      Z_train, Z_test = whiten(X_train, X_test)

- classes that keep the fitted statistics, with ``fit`` / ``transform`` /
  ``fit_transform`` / ``inverse_transform`` as in scikit-learn: `Standardizer` and
  `PCA` (``pca(X)`` returns a fitted `PCA`).

Statistics are computed in float64; results are float32 for float32 input and float64
otherwise. Variances and covariances are normalised by ``n`` (like ``np.std`` and
``np.cov(..., bias=True)``).
"""

from __future__ import annotations

import math
from typing import Any, overload

import numpy as np

__all__ = ["PCA", "Standardizer", "one_hot", "pca", "standardize", "whiten"]


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _check_matrix(X: Any, name: str, n_features: int | None = None) -> np.ndarray:
    """Return `X` as a 2-D finite float array (float32 kept, anything else float64)."""
    try:
        array = np.asarray(X)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 2-D array of numbers") from None
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {array.shape}"
        )
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(
            f"{name} has {array.shape[1]} features, but the transformation was "
            f"fitted on {n_features}"
        )
    out_dtype = np.float32 if array.dtype == np.float32 else np.float64
    array = array.astype(out_dtype, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_fit_matrix(X: Any, name: str) -> np.ndarray:
    array = _check_matrix(X, name)
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must have at least one sample and one feature")
    return array


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.number):
        raise TypeError(f"eps must be a number, got {type(eps).__name__}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be finite and non-negative, got {eps}")
    return float(eps)


def _check_fitted(obj: object, attribute: str) -> None:
    if getattr(obj, attribute, None) is None:
        raise RuntimeError(f"this {type(obj).__name__} is not fitted yet: call fit(X)")


def _one_or_tuple(arrays: list[np.ndarray]) -> np.ndarray | tuple[np.ndarray, ...]:
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


# --------------------------------------------------------------------------------------
# One-hot labels
# --------------------------------------------------------------------------------------


def one_hot(y: Any, n_classes: int | None = None, dtype: Any = "float64") -> np.ndarray:
    """Encode integer class labels as one-hot rows.

    Parameters
    ----------
    y : array_like of int, shape (n,)
        Class labels, non-negative integers.
    n_classes : int, optional
        Number of classes (columns). Default: ``max(y) + 1`` (0 for empty `y`).
    dtype : dtype, default "float64"
        dtype of the result.

    Returns
    -------
    numpy.ndarray of shape (n, n_classes)
        Row ``i`` is 1 in column ``y[i]`` and 0 elsewhere; ``result.argmax(axis=1)``
        gives `y` back.

    Raises
    ------
    TypeError
        If `y` is not an integer array or `n_classes` is not an integer.
    ValueError
        If `y` is not 1-D or holds a negative label, or a label is not below
        `n_classes`.

    Examples
    --------
    >>> one_hot([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]])
    """
    labels = np.asarray(y)
    if labels.dtype.kind not in "iu" and not (labels.size == 0 and labels.dtype.kind == "f"):
        raise TypeError(f"y must hold integer class labels, got dtype {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {labels.shape}")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"y must hold non-negative labels, found {labels.min()}")
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
    elif isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise TypeError(f"n_classes must be an integer, got {type(n_classes).__name__}")
    elif n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    elif labels.size and labels.max() >= n_classes:
        raise ValueError(
            f"y holds label {labels.max()}, which needs n_classes > {labels.max()}, "
            f"but n_classes={n_classes}"
        )
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a numeric dtype, got {dtype!r}") from None
    encoded = np.zeros((labels.size, int(n_classes)), dtype=out_dtype)
    encoded[np.arange(labels.size), labels] = 1
    return encoded


# --------------------------------------------------------------------------------------
# Standardisation
# --------------------------------------------------------------------------------------


class Standardizer:
    """Centre each feature and scale it to unit standard deviation.

    Parameters
    ----------
    eps : float, default 1e-8
        Features whose standard deviation is at most `eps` are only centred (scale 1),
        so a constant feature becomes 0 rather than NaN or a huge number.

    Attributes
    ----------
    mean_ : numpy.ndarray of shape (n_features,)
        The training mean of each feature (float64).
    scale_ : numpy.ndarray of shape (n_features,)
        What each centred feature is divided by: its training standard deviation, or
        1 where that is at most `eps`.

    Examples
    --------
    >>> s = Standardizer().fit([[0.0, 1.0], [2.0, 1.0]])
    >>> s.transform([[1.0, 3.0]])
    array([[0., 2.]])
    """

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = _check_eps(eps)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, X: Any) -> Standardizer:
        """Compute the mean and standard deviation of each feature of `X`.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training data: finite numbers, at least one sample.

        Returns
        -------
        Standardizer
            self, fitted.

        Raises
        ------
        TypeError, ValueError
            If `X` is not a finite 2-D numeric array with at least one sample.
        """
        data = _check_fit_matrix(X, "X").astype(np.float64, copy=False)
        std = data.std(axis=0)
        self.mean_ = data.mean(axis=0)
        self.scale_ = np.where(std > self.eps, std, 1.0)
        return self

    def _transform(self, X: Any, name: str) -> np.ndarray:
        _check_fitted(self, "mean_")
        data = _check_matrix(X, name, n_features=len(self.mean_))
        return ((data - self.mean_) / self.scale_).astype(data.dtype, copy=False)

    def transform(self, X: Any) -> np.ndarray:
        """Standardise `X` with the fitted statistics.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data with as many features as the training data.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_features)
            ``(X - mean_) / scale_``, float32 for float32 input, else float64.

        Raises
        ------
        RuntimeError
            If not fitted.
        TypeError, ValueError
            If `X` is not a finite 2-D numeric array with the fitted number of
            features.
        """
        return self._transform(X, "X")

    def fit_transform(self, X: Any) -> np.ndarray:
        """Fit on `X` and return it standardised.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training data.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_features)
            The standardised `X`.
        """
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Undo `transform`.

        Parameters
        ----------
        Z : array_like of shape (n_samples, n_features)
            Standardised data.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_features)
            ``Z * scale_ + mean_``.
        """
        _check_fitted(self, "mean_")
        data = _check_matrix(Z, "Z", n_features=len(self.mean_))
        return (data * self.scale_ + self.mean_).astype(data.dtype, copy=False)


@overload
def standardize(X_train: Any, *, eps: float = ...) -> np.ndarray: ...
@overload
def standardize(
    X_train: Any, *others: Any, eps: float = ...
) -> tuple[np.ndarray, ...]: ...


def standardize(
    X_train: Any, *others: Any, eps: float = 1e-8
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Standardise features with the mean and standard deviation of the training set.

    Parameters
    ----------
    X_train : array_like of shape (n_samples, n_features)
        The data the statistics are computed on.
    *others : array_like of shape (m, n_features)
        More data (validation, test) transformed with the training statistics.
    eps : float, default 1e-8
        Features whose training standard deviation is at most `eps` are only
        centred (see `Standardizer`).

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        The standardised `X_train` alone if no `others` are given, else a tuple of
        all the arrays in the order given. The training result has mean 0 and
        standard deviation 1 in every non-constant feature.

    Raises
    ------
    TypeError, ValueError
        If an array is not a finite 2-D numeric array (the message names it, e.g.
        ``others[1]``), or the arrays have different numbers of features.

    See Also
    --------
    Standardizer : the same, keeping the fitted statistics.

    Examples
    --------
    >>> X_train, X_test = standardize([[0.0], [2.0]], [[4.0]])
    >>> X_train.ravel().tolist(), X_test.ravel().tolist()
    ([-1.0, 1.0], [3.0])
    """
    scaler = Standardizer(eps=eps)
    train = _check_fit_matrix(X_train, "X_train")
    scaler.fit(train)
    results = [scaler._transform(train, "X_train")]
    results += [scaler._transform(X, f"others[{i}]") for i, X in enumerate(others)]
    return _one_or_tuple(results)


# --------------------------------------------------------------------------------------
# PCA and whitening
# --------------------------------------------------------------------------------------


class PCA:
    """Principal component analysis, optionally whitening.

    Centres the data on its training mean and projects it on the principal
    directions, the right singular vectors of the centred training data, in order
    of decreasing variance. With ``whiten=True`` each projection is also divided by
    the square root of its training variance, so the training data come out with the
    identity covariance (PCA whitening).

    Parameters
    ----------
    n_components : int, optional
        How many directions to keep, 1..min(n_samples, n_features). Default: all
        ``min(n_samples, n_features)``; with `whiten`, all those whose variance
        exceeds ``eps`` times the largest (the numerical rank).
    whiten : bool, default False
        Scale the projections to unit variance.
    eps : float, default 1e-8
        Relative variance below which a direction counts as empty; whitening such a
        direction is refused (it would only amplify rounding noise).

    Attributes
    ----------
    mean_ : numpy.ndarray of shape (n_features,)
        The training mean.
    components_ : numpy.ndarray of shape (n_components, n_features)
        The principal directions, orthonormal rows. The sign of each is fixed so
        that its largest-magnitude entry is positive.
    explained_variance_ : numpy.ndarray of shape (n_components,)
        The training variance along each direction (normalised by n), decreasing.
    explained_variance_ratio_ : numpy.ndarray of shape (n_components,)
        Each direction's share of the total training variance.
    singular_values_ : numpy.ndarray of shape (n_components,)
        The singular values of the centred training data.
    n_components_ : int
        The number of directions kept.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> p = PCA().fit(X)
    >>> np.allclose(p.inverse_transform(p.transform(X)), X)
    True
    """

    def __init__(
        self, n_components: int | None = None, *, whiten: bool = False, eps: float = 1e-8
    ) -> None:
        if n_components is not None:
            if isinstance(n_components, bool) or not isinstance(
                n_components, int | np.integer
            ):
                raise TypeError(
                    "n_components must be an integer or None, got "
                    f"{type(n_components).__name__}"
                )
            if n_components < 1:
                raise ValueError(f"n_components must be at least 1, got {n_components}")
        self.n_components = n_components
        self.whiten = bool(whiten)
        self.eps = _check_eps(eps)
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None
        self.explained_variance_: np.ndarray | None = None
        self.explained_variance_ratio_: np.ndarray | None = None
        self.singular_values_: np.ndarray | None = None
        self.n_components_: int | None = None

    def fit(self, X: Any) -> PCA:
        """Find the principal directions of `X`.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training data: finite numbers, at least one sample.

        Returns
        -------
        PCA
            self, fitted.

        Raises
        ------
        TypeError, ValueError
            If `X` is not a finite 2-D numeric array; if `n_components` exceeds
            ``min(n_samples, n_features)``; with `whiten`, if it exceeds the
            numerical rank of the centred `X` (or `X` has no variance at all).
        """
        data = _check_fit_matrix(X, "X").astype(np.float64, copy=False)
        n_samples, n_features = data.shape
        mean = data.mean(axis=0)
        _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
        # Fix each direction's sign: its largest-magnitude entry is positive.
        pivots = np.abs(vt).argmax(axis=1)
        vt *= np.sign(vt[np.arange(len(vt)), pivots])[:, None]
        variance = singular**2 / n_samples
        largest = variance[0] if variance.size else 0.0
        rank = int(np.count_nonzero(variance > self.eps * largest)) if largest > 0 else 0

        k = self.n_components
        limit = min(n_samples, n_features)
        if k is not None and k > limit:
            raise ValueError(
                f"n_components={k} exceeds min(n_samples, n_features)={limit}"
            )
        if self.whiten:
            if rank == 0:
                raise ValueError("X has no variance: there is nothing to whiten")
            if k is not None and k > rank:
                raise ValueError(
                    f"n_components={k} exceeds the numerical rank {rank} of the "
                    "centred X: the extra directions have no variance to whiten"
                )
            k = rank if k is None else k
        elif k is None:
            k = limit

        total = variance.sum()
        self.mean_ = mean
        self.components_ = np.ascontiguousarray(vt[:k])
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = (
            variance[:k] / total if total > 0 else np.zeros(k)
        )
        self.singular_values_ = singular[:k]
        self.n_components_ = int(k)
        return self

    def _transform(self, X: Any, name: str) -> np.ndarray:
        _check_fitted(self, "components_")
        data = _check_matrix(X, name, n_features=len(self.mean_))
        projected = (data - self.mean_) @ self.components_.T
        if self.whiten:
            projected /= np.sqrt(self.explained_variance_)
        return projected.astype(data.dtype, copy=False)

    def transform(self, X: Any) -> np.ndarray:
        """Project `X` on the principal directions (whitened if `whiten`).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Data with as many features as the training data.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_components_)
            ``(X - mean_) @ components_.T``, divided by
            ``sqrt(explained_variance_)`` if `whiten`.

        Raises
        ------
        RuntimeError
            If not fitted.
        TypeError, ValueError
            If `X` is not a finite 2-D numeric array with the fitted number of
            features.
        """
        return self._transform(X, "X")

    def fit_transform(self, X: Any) -> np.ndarray:
        """Fit on `X` and return its projection.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training data.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_components_)
            The projected (and, if `whiten`, whitened) `X`.
        """
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Map projections back to the input space.

        Exact (up to rounding) for training data when every direction with variance
        was kept.

        Parameters
        ----------
        Z : array_like of shape (n_samples, n_components_)
            Projections, as returned by `transform`.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_features)
            ``Z @ components_ + mean_`` (after undoing the whitening).
        """
        _check_fitted(self, "components_")
        data = _check_matrix(Z, "Z", n_features=self.n_components_)
        if self.whiten:
            data = data * np.sqrt(self.explained_variance_)
        return (data @ self.components_ + self.mean_).astype(data.dtype, copy=False)


def pca(X: Any, n_components: int | None = None) -> PCA:
    """Fit a principal component analysis to `X`.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        Training data: finite numbers.
    n_components : int, optional
        How many principal directions to keep; default ``min(n_samples,
        n_features)``.

    Returns
    -------
    PCA
        The fitted transformation: ``.transform(X)`` projects, ``.inverse_transform``
        maps back, ``.components_`` and ``.explained_variance_`` describe it.

    Raises
    ------
    TypeError, ValueError
        If `X` is not a finite 2-D numeric array, or `n_components` is not an
        integer in 1..min(n_samples, n_features).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> p = pca(X, n_components=2)
    >>> p.transform(X).shape
    (50, 2)
    """
    return PCA(n_components).fit(X)


@overload
def whiten(
    X_train: Any, *, n_components: int | None = ..., eps: float = ...
) -> np.ndarray: ...
@overload
def whiten(
    X_train: Any, *others: Any, n_components: int | None = ..., eps: float = ...
) -> tuple[np.ndarray, ...]: ...


def whiten(
    X_train: Any, *others: Any, n_components: int | None = None, eps: float = 1e-8
) -> np.ndarray | tuple[np.ndarray, ...]:
    """PCA-whiten data: centre, decorrelate and scale to the identity covariance.

    Fitted on `X_train` only: the whitened training data have mean 0 and covariance
    exactly the identity (up to rounding); the `others` get the same transformation.

    Parameters
    ----------
    X_train : array_like of shape (n_samples, n_features)
        The data the transformation is fitted on.
    *others : array_like of shape (m, n_features)
        More data (validation, test) transformed the same way.
    n_components : int, optional
        How many directions to keep. Default: every direction whose training
        variance exceeds `eps` times the largest (the numerical rank), so for
        rank-deficient data (a constant pixel, duplicated features) the result has
        fewer columns than the input.
    eps : float, default 1e-8
        Relative variance below which a direction counts as empty.

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        The whitened `X_train` alone if no `others` are given, else a tuple of all
        the arrays in the order given, each of shape (m, n_components).

    Raises
    ------
    TypeError, ValueError
        If an array is not a finite 2-D numeric array (the message names it), the
        arrays have different numbers of features, or `n_components` exceeds the
        numerical rank.

    See Also
    --------
    PCA : the same with ``whiten=True``, keeping the fitted transformation.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(200, 3)) @ [[2, 1, 0], [0, 1, 0], [0, 0, 3]]
    >>> Z = whiten(X)
    >>> np.allclose(np.cov(Z, rowvar=False, bias=True), np.eye(3))
    True
    """
    transform = PCA(n_components, whiten=True, eps=eps)
    train = _check_fit_matrix(X_train, "X_train")
    transform.fit(train)
    results = [transform._transform(train, "X_train")]
    results += [transform._transform(X, f"others[{i}]") for i, X in enumerate(others)]
    return _one_or_tuple(results)
