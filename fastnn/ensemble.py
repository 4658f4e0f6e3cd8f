"""Ensembles: several networks of one shape, trained from different seeds, averaged."""
import copy
import numbers

import numpy as np
from scipy.special import xlogy

from ._validation import check_int, check_X
from .network import Network
from .optimizers import Optimizer

FORMAT = "fastnn-ensemble"
#: 2: members may have PReLU / batch norm (their sizes and running statistics stored);
#: an ensemble of plain members is still written as version 1
FORMAT_VERSION = 2


class Ensemble:
    """``n_members`` networks of the same shape from different seeds; their output
    probabilities (or values) are averaged.

    Parameters
    ----------
    n_members : int
        Number of networks (>= 1).
    sizes : sequence of int
        Layer sizes, as for :class:`fastnn.Network`.
    seeds : sequence of int, optional
        One seed per member, all different. By default ``seed + k`` for member ``k``,
        where ``seed`` is the ``seed`` keyword (default 0).
    **network_kwargs
        Passed to every member's :class:`fastnn.Network` (``hidden``, ``output``,
        ``cost``, ``init``, ``dtype``, ``leaky_slope``, and ``seed`` as the base seed
        when ``seeds`` is not given).

    Attributes
    ----------
    members : list of Network
        The networks, in order of their seeds.
    seeds : list of int
        The members' seeds.

    Examples
    --------
    >>> import fastnn as fnn
    >>> X, y = fnn.datasets.gaussian_clouds(n_per_class=50)
    >>> ens = fnn.Ensemble(3, [2, 16, 3], hidden="gelu", seed=10)
    >>> ens.seeds
    [10, 11, 12]
    >>> hists = ens.fit(X, y, epochs=5, batch_size=8, optimizer=fnn.SGD(0.1),
    ...                 progress=False)
    >>> ens.predict_proba(X).shape
    (150, 3)
    """

    def __init__(self, n_members, sizes, seeds=None, **network_kwargs):
        n_members = check_int("n_members", n_members, 1)
        if seeds is None:
            base = check_int("seed", network_kwargs.pop("seed", 0), 0)
            seeds = [base + k for k in range(n_members)]
        else:
            if "seed" in network_kwargs:
                raise TypeError("pass either seed (the base seed of member 0) or seeds "
                                "(one per member), not both")
            if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
                raise TypeError(f"seeds must be a sequence of ints; got {seeds!r}")
            seeds = [check_int("seeds", s, 0) for s in seeds]
            if len(seeds) != n_members:
                raise ValueError(f"seeds has {len(seeds)} entries for {n_members} members")
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"seeds must all differ (equal seeds train equal "
                                 f"networks); got {seeds}")
        self.seeds = seeds
        self.members = [Network(sizes, seed=s, **network_kwargs) for s in seeds]
        self._opts = None   # (the user's optimizer, one copy per member)

    def __len__(self):
        return len(self.members)

    def __repr__(self):
        m = self.members[0]
        return (f"Ensemble({len(self)}, {m.sizes}, hidden={m.hidden}, output={m.output!r}, "
                f"cost={m.cost!r}, dtype={m.dtype.name!r}, seeds={self.seeds})")

    @property
    def sizes(self):
        """Layer sizes, shared by all members."""
        return self.members[0].sizes

    @property
    def dtype(self):
        """Floating type of the members' parameters and outputs."""
        return self.members[0].dtype

    def _member_optimizers(self, optimizer):
        """One optimizer per member: an optimizer object holds the state of the one
        network it trains, so each member gets its own copy. Passing the same object
        again continues each member's state, as with ``Network.fit``."""
        if not isinstance(optimizer, Optimizer):
            return [optimizer] * len(self)
        if self._opts is None or self._opts[0] is not optimizer:
            copies = []
            for _ in self.members:
                c = copy.copy(optimizer)
                c.reset()
                copies.append(c)
            self._opts = (optimizer, copies)
        return self._opts[1]

    def fit(self, X, y, **fit_kwargs):
        """Train every member on ``(X, y)`` with the same arguments.

        The members train one after another, each with its own compiled epoch loop:
        the kernels train one flat parameter buffer per call, and training several in
        one call would need a batched kernel (and threads, i.e. ``parallel=True``,
        which the kernels avoid); for members on several machines see the Dask route
        in the design. Each member shuffles with its own seed.

        Parameters
        ----------
        X, y : array_like
            As for :meth:`fastnn.Network.fit`.
        **fit_kwargs
            Passed to each member's :meth:`fastnn.Network.fit` (``epochs``,
            ``batch_size``, ``optimizer``, ``validation_data``, ...). An optimizer
            object is copied for each member (its state belongs to one network);
            callbacks, progress displays and schedules are shared and see the members'
            fits in turn.

        Returns
        -------
        list of History
            One per member, in order.
        """
        if "optimizer" in fit_kwargs:
            opts = self._member_optimizers(fit_kwargs.pop("optimizer"))
        else:
            opts = [None] * len(self)
        X = check_X(X, self.sizes[0], self.dtype)
        histories = []
        for net, opt in zip(self.members, opts):
            kw = dict(fit_kwargs) if opt is None else dict(fit_kwargs, optimizer=opt)
            histories.append(net.fit(X, y, **kw))
        return histories

    def predict_proba(self, X):
        """The members' outputs averaged: ``(P_0 + P_1 + ... ) / n_members``, summed in
        member order in the networks' dtype; shape ``(n_samples, outputs)``."""
        X = check_X(X, self.sizes[0], self.dtype)
        out = self.members[0].forward(X)
        for net in self.members[1:]:
            out += net.forward(X)
        out /= self.dtype.type(len(self))
        return out

    def forward(self, X):
        """Same as :meth:`predict_proba`."""
        return self.predict_proba(X)

    def predict(self, X):
        """Class indices of the averaged probabilities for classifiers (a single sigmoid
        output fitted on 0/1 labels: 1 where the average exceeds 0.5), else the averaged
        output values, as :meth:`fastnn.Network.predict`."""
        return self.members[0]._decide(self.predict_proba(X))

    def evaluate(self, X, y):
        """Mean cost of the averaged output and, for labels, its accuracy.

        The cost is the members' cost applied to the averaged output ``P``:
        log_likelihood ``-sum_j t_j ln P_j``, cross_entropy
        ``-sum_j [t_j ln P_j + (1 - t_j) ln(1 - P_j)]``, quadratic
        ``0.5 ||P - t||^2``, computed in float64 (probabilities clipped at the smallest
        normal number of the dtype, so the cost stays finite).

        Returns
        -------
        dict
            ``{"loss": float, "accuracy": float}`` (``accuracy`` only for labels).
        """
        net = self.members[0]
        X = check_X(X, self.sizes[0], self.dtype)
        labels, Y, use_labels, binary = net._check_y(y, X.shape[0])
        P = self.predict_proba(X).astype(np.float64)
        n, m = P.shape
        if use_labels:
            T = np.zeros((n, m))
            T[np.arange(n), labels] = 1.0
        else:
            T = Y.astype(np.float64)
        tiny = float(np.finfo(self.dtype).tiny)
        if net.cost == "quadratic":
            costs = 0.5 * ((P - T) ** 2).sum(axis=1)
        elif net.cost == "cross_entropy":
            costs = -(xlogy(T, np.maximum(P, tiny))
                      + xlogy(1 - T, np.maximum(1 - P, tiny))).sum(axis=1)
        else:
            costs = -xlogy(T, np.maximum(P, tiny)).sum(axis=1)
        result = {"loss": float(costs.mean())}
        if use_labels:
            result["accuracy"] = float(np.mean(P.argmax(axis=1) == labels))
        elif binary:
            result["accuracy"] = float(np.mean((P[:, 0] > 0.5) == (T[:, 0] > 0.5)))
        return result

    def save(self, path):
        """Save all members to one ``.npz`` file (atomically); read it back with
        :func:`fastnn.load`."""
        from .io import _meta, write_model
        members = [dict(_meta(net), n_params=net.n_params, n_stats=int(net._stats.size))
                   for net in self.members]
        version = FORMAT_VERSION if any(net._extended for net in self.members) else 1
        meta = {"format": FORMAT, "format_version": version, "seeds": self.seeds,
                "members": members}
        stats = np.concatenate([net._stats for net in self.members])
        write_model(path, np.concatenate([net.params for net in self.members]), meta,
                    **({"stats": stats} if stats.size else {}))


def _member_sizes(m):
    """``(n_params, n_stats)`` of a member's description: stored since members may have
    PReLU and batch-norm parameters; older files (plain members) are computed."""
    if "n_params" in m:
        return int(m["n_params"]), int(m.get("n_stats", 0))
    sizes = m["sizes"]
    return sum(int(a) * int(b) + int(b) for a, b in zip(sizes[:-1], sizes[1:])), 0


def _from_file(path, meta, params, stats=None):
    """The Ensemble described by ``meta`` with the members' parameters concatenated in
    ``params`` (called by :func:`fastnn.io.load`)."""
    from .io import ModelFileError, _network_from_meta, check_version

    check_version(path, meta, "ensemble", FORMAT_VERSION)
    metas = meta.get("members")
    seeds = meta.get("seeds")
    if (not isinstance(metas, list) or not metas or not isinstance(seeds, list)
            or len(seeds) != len(metas)
            or not all(isinstance(s, numbers.Integral) for s in seeds)):
        raise ModelFileError(f"{path}: invalid ensemble description")
    if params.ndim != 1:
        raise ModelFileError(f"{path}: parameters of shape {params.shape}, not a vector")
    members, off, soff = [], 0, 0
    for m in metas:
        if not isinstance(m, dict) or not isinstance(m.get("sizes"), list):
            raise ModelFileError(f"{path}: invalid ensemble description")
        try:
            size, nstats = _member_sizes(m)
        except (TypeError, ValueError):
            raise ModelFileError(f"{path}: invalid ensemble description") from None
        mstats = None if stats is None else stats[soff:soff + nstats]
        members.append(_network_from_meta(path, m, params[off:off + size], mstats))
        off += size
        soff += nstats
    if off != params.size:
        raise ModelFileError(f"{path}: {params.size} parameters do not fit the described "
                             f"members ({off})")
    ens = Ensemble.__new__(Ensemble)
    ens.seeds = [int(s) for s in seeds]
    ens.members = members
    ens._opts = None
    return ens
