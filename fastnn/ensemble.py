"""Ensembles: several networks of one shape, trained from different seeds, averaged."""
import copy
import numbers
import sys
import time

import numba
import numpy as np

from . import optimizers as _opt
from ._validation import check_int, check_real, check_X
from .kernels import threads as _threads
from .callbacks import History, format_metrics
from .network import (BLAS_MIN_BATCH, CHUNK, DivergenceError, Network,
                      _check_optional_positive)
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

    def fit(self, X, y, *, parallel="auto", **fit_kwargs):
        """Train every member on ``(X, y)`` with the same arguments.

        Each member shuffles with its own seed and ends with bitwise the weights,
        optimizer state and History (``seconds`` aside) that its own
        :meth:`fastnn.Network.fit` with these arguments would give, on any number of
        threads, whichever path trains it:

        - **parallel**: one compiled call per epoch trains every member's epoch, the
          members spread over Numba's threads (``numba.set_num_threads``; one member
          per thread at a time, so the arithmetic of each is that of a lone fit). It
          covers the common case: a mini-batch optimizer (SGD, Adam, AdamW, RMSprop,
          Adagrad) with ``batch_size`` below 48 (the fused small-batch loops) and only
          the arguments ``epochs``, ``batch_size``, ``optimizer``, ``l2``, ``l1``,
          ``max_norm``, ``shuffle``, ``validation_data`` and ``progress`` (True or
          False: one line per member and epoch). ``seconds`` is then the wall time of
          the epoch's joint call, the same for all members. It calls the sequential
          path's compiled epoch kernel, so it adds only ~3 s of compilation with an
          empty Numba cache (then cached on disk).
        - **sequential**: the members train one after another through
          :meth:`fastnn.Network.fit`; anything else (``schedule``,
          ``early_stopping``, ``callbacks``, ``clip_norm``, ``dropout``, a progress
          display object, full-batch optimizers, batches of 48 or more, members with
          PReLU or batch norm, one thread) takes this path.

        Parameters
        ----------
        X, y : array_like
            As for :meth:`fastnn.Network.fit`.
        parallel : {"auto", True, False}, default "auto"
            ``"auto"``: the parallel path when the arguments are in its scope, Numba
            has more than one thread and there is more than one member; True: the
            parallel path (also on one thread), or ValueError when the arguments are
            outside its scope; False: sequential. The parallel path spends no more
            CPU time than the sequential one (it builds the CSR index of ``X`` once,
            not once per member), so it is at least as fast whenever it has threads;
            how much faster depends on free cores (see the measurement in the code).
        **fit_kwargs
            Passed to each member's :meth:`fastnn.Network.fit` (``epochs``,
            ``batch_size``, ``optimizer``, ``validation_data``, ...). An optimizer
            object is copied for each member (its state belongs to one network), and
            the same object passed again continues each member's state; callbacks,
            progress displays and schedules are shared and see the members' fits in
            turn (sequential path).

        Returns
        -------
        list of History
            One per member, in order.

        Raises
        ------
        ValueError, TypeError
            For bad arguments, as :meth:`fastnn.Network.fit` (no member changes), and
            ValueError for ``parallel=True`` with arguments outside the parallel path
            (and for a bad ``parallel``).
        DivergenceError
            As from the sequential fits: member ``j`` diverged; it keeps the weights of
            its last good epoch, members before it completed their training and the
            members after it are left as they were before this call.
        """
        if isinstance(parallel, (bool, np.bool_)):
            parallel = bool(parallel)
        elif not isinstance(parallel, str):
            raise TypeError(f"parallel must be 'auto', True or False; got {parallel!r}")
        elif parallel != "auto":
            raise ValueError(f"parallel must be 'auto', True or False; got {parallel!r}")
        X = check_X(X, self.sizes[0], self.dtype)
        # "auto" is parallel whenever there are threads and members to spread. Measured
        # on MNIST, 784-100-10 float32, one epoch of 2 or 4 members at batch 10 and 32
        # (SGD with momentum, Adam; scripts/bench_ensemble.py), on this project's 2
        # cores busy with other jobs (load 2-7), three runs: wall time 0.96-1.39x less
        # than sequential, process CPU time equal; the busiest thread's CPU time (the
        # wall time with the cores free) 1.82-2.6x less than the sequential fits'.
        if parallel is True or (parallel == "auto" and len(self) > 1
                                and numba.get_num_threads() > 1):
            check_int("epochs", fit_kwargs.get("epochs", 1), 0)
            # Network.fit checks all arguments before it changes anything, and with
            # epochs=0 it stops there: the same checks and errors as the sequential path
            self.members[0].fit(X, y, **dict(fit_kwargs, epochs=0))
            refusal = _parallel_refusal(fit_kwargs, X.shape[0])
            if refusal is None and _threads.forked():
                refusal = ("this process was forked from one that ran Numba's parallel "
                           "loops, which GNU OpenMP cannot run again here")
            if refusal is None and self.members[0]._extended:
                refusal = ("members with PReLU or batch norm train in the kernels of "
                           "layers.py, one after another")
            if parallel is True and refusal is not None:
                raise ValueError(f"parallel=True cannot train these members together: "
                                 f"{refusal}; use parallel='auto' or False")
            if refusal is None:
                return self._fit_parallel(X, y, **fit_kwargs)
        if "optimizer" in fit_kwargs:
            opts = self._member_optimizers(fit_kwargs.pop("optimizer"))
        else:
            opts = [None] * len(self)
        histories = []
        for net, opt in zip(self.members, opts):
            kw = dict(fit_kwargs) if opt is None else dict(fit_kwargs, optimizer=opt)
            histories.append(net.fit(X, y, **kw))
        return histories

    def _fit_parallel(self, X, y, epochs=1, batch_size=32, optimizer="sgd", l2=0.0,
                      validation_data=None, shuffle=True, progress=True, l1=0.0,
                      max_norm=None, schedule=None, early_stopping=None, callbacks=(),
                      clip_norm=None):
        """``fit`` on the parallel path, on arguments already checked by
        ``Network.fit``: the steps of ``Network.fit``'s epoch loop for every member,
        with the epochs themselves run together by ``train_members_fused``."""
        from .kernels.ensemble import train_members_fused   # compiled on first use

        nets = self.members
        K, n = len(nets), X.shape[0]
        net0 = nets[0]
        labels, Y, use_labels, binary = net0._check_y(y, n)
        batch_size = min(batch_size, n)
        l2, l1 = check_real("l2", l2), check_real("l1", l1)
        max_norm = _check_optional_positive("max_norm", max_norm)
        val = None
        if validation_data is not None:
            Xv = check_X(validation_data[0], self.sizes[0], self.dtype, "validation_data[0]")
            val = (Xv, *net0._check_y(validation_data[1], Xv.shape[0], "validation_data[1]"))
        if isinstance(optimizer, Optimizer):   # (before epochs == 0, as sequentially)
            opts = self._member_optimizers(optimizer)
        else:
            opts = [_opt.get(optimizer) for _ in nets]   # a fresh one each, as Network.fit
        histories = [History() for _ in nets]
        if epochs == 0:
            return histories
        # what each member looked like before this call: a divergence puts the members
        # after the diverging one back, as if their sequential fits had not started
        before = [(net.epochs_trained, net._labels_fitted, net.params.copy(), opt.state,
                   opt.step, opt._owner, opt._snapshot()) for net, opt in zip(nets, opts)]
        for net, opt in zip(nets, opts):
            net._labels_fitted = use_labels or binary
            opt._bind(net)
        hyper = np.stack([opt.hyper() for opt in opts])
        lrs = [opt.lr for opt in opts]
        hyper[:, 0] = lrs
        params = np.stack([net.params for net in nets])
        states = np.stack([opt.state for opt in opts])
        steps = np.stack([opt.step for opt in opts])
        chunk = net0._chunk(batch_size)
        indptr, indices, values = Network._sparse_index(X, batch_size)
        displays = ([[_MemberLine(j, net.epochs_trained + epochs)]
                     for j, net in enumerate(nets)] if progress is True else [[]] * K)
        orders = np.empty((K, n), np.int64)
        loss, correct, done = np.zeros(K), np.zeros(K, np.int64), np.zeros(K, np.int64)
        active = np.ones(K, np.bool_)
        failed = None   # (member, DivergenceError) of the first member that diverged
        for k in range(epochs):
            for j in np.flatnonzero(active):
                orders[j] = (nets[j]._perm(nets[j].epochs_trained, n) if shuffle
                             else np.arange(n, dtype=np.int64))
            good = params.copy(), states.copy(), steps.copy()
            t0 = time.perf_counter()
            train_members_fused(params, net0._layout, net0._codes, net0._slope,
                                net0._cost_code, X, Y, labels, use_labels, orders,
                                batch_size, chunk, l2, l1, max_norm, opts[0].code, hyper,
                                states, steps, indptr, indices, values, active, loss,
                                correct, done)
            seconds = time.perf_counter() - t0
            for j in np.flatnonzero(active):
                net, opt = nets[j], opts[j]
                diverged = done[j] < n or not np.isfinite(params[j]).all()
                if diverged:
                    params[j], states[j], steps[j] = good[0][j], good[1][j], good[2][j]
                net._params[...] = params[j]
                opt.state[...] = states[j]
                opt.step[...] = steps[j]
                if diverged:
                    epoch = net.epochs_trained
                    failed = (j, DivergenceError(
                        f"training diverged in epoch {epoch + 1}: the cost or the weights "
                        f"became NaN or infinite (try a smaller learning rate); the network "
                        f"keeps the weights from the end of epoch {epoch}", epoch + 1,
                        histories[j]))
                    active[j:] = False   # the members after j never started
                    break
                metrics = net._metrics(X, Y, float(loss[j]), int(correct[j]), use_labels,
                                       binary, val)
                metrics["lr"] = lrs[j]
                metrics["seconds"] = seconds
                net._end_epoch(k, metrics, histories[j], None, displays[j])
            if not active.any():
                break
        if failed is not None:
            j, error = failed
            for net, opt, (ep, lab, p, state, step, owner, snap) in zip(
                    nets[j + 1:], opts[j + 1:], before[j + 1:]):
                net.epochs_trained, net._labels_fitted = ep, lab
                net._params[...] = p
                opt.state, opt.step, opt._owner = state, step, owner
                opt._restore(snap)
            raise error
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
        # Imported here, not at the top: scipy.special takes ~0.3 s to import, a good
        # part of `import fastnn` when the kernels come from the cache (measured).
        from scipy.special import xlogy
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


#: the arguments of ``fit`` the parallel path takes, and those it takes only when off
_PARALLEL_ARGS = {"epochs", "batch_size", "optimizer", "l2", "l1", "max_norm", "shuffle",
                  "validation_data", "progress"}
_OFF = {"schedule": None, "early_stopping": None, "callbacks": (), "clip_norm": None}


def _parallel_refusal(kw, n):
    """Why the parallel path cannot run ``fit(**kw)`` on ``n`` samples (arguments
    already checked by ``Network.fit``), or None if it can."""
    for key, value in kw.items():
        if key in _OFF:
            off = _OFF[key]
            if not (value is off or (key == "callbacks" and len(value) == 0)):
                return f"{key} is only supported by the sequential path"
        elif key not in _PARALLEL_ARGS:
            return f"{key} is only supported by the sequential path"
    opt = _opt.get(kw.get("optimizer", "sgd"))
    if not isinstance(opt, Optimizer):
        return f"the full-batch optimizer {opt!r} trains sequentially"
    batch = min(kw.get("batch_size", 32), n)
    if batch >= BLAS_MIN_BATCH or batch > CHUNK:
        return (f"batch_size {batch} takes the BLAS path, which trains sequentially "
                f"(the parallel path takes batches below {BLAS_MIN_BATCH})")
    progress = kw.get("progress", True)
    if not (progress is True or progress is False or progress is None):
        return "a progress display object is only supported by the sequential path"
    return None


class _MemberLine:
    """``progress=True`` on the parallel path: one line per member and epoch."""

    def __init__(self, member, epochs):
        self.member = member
        self.epochs = epochs

    def on_epoch_end(self, epoch, metrics, net):
        width = len(str(self.epochs))
        print(f"member {self.member}  epoch {epoch:>{width}}/{self.epochs}  "
              f"{format_metrics(metrics)}", file=sys.stderr, flush=True)


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
