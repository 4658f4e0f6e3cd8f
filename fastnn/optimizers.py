"""Optimizers: hyper-parameters and state for the compiled update rules.

An optimizer object holds its hyper-parameters and, once it has trained a network, its
state (velocities, step count) for that network's parameter buffer. Passing the same
object to several ``fit`` calls on one network continues from that state, as a PyTorch
optimizer would; using it on another network starts a fresh state.
"""
import numbers

import numpy as np

from ._validation import check_int, check_real
from .kernels import updates as _k


class Optimizer:
    """Base class: the contract between an update rule and ``Network.fit``.

    Subclasses set ``code`` (the kernel's update rule), ``n_state`` (rows of per-parameter
    state) and implement ``hyper()`` (a float64 array of hyper-parameters).
    """

    code = -1
    n_state = 0

    def __init__(self):
        self.state = None      # (n_state, n_params) array in the network's dtype
        self.step = None       # int64 array of one element: steps taken so far
        self._owner = None

    def hyper(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self):
        """Forget the state (velocities, step count)."""
        self.state = self.step = self._owner = None

    def _bind(self, net):
        """Make sure the state belongs to ``net``'s parameter buffer."""
        p = net.params
        if (self._owner is not net or self.state is None or self.state.shape[1] != p.size
                or self.state.dtype != p.dtype):
            self.state = np.zeros((max(self.n_state, 1), p.size), p.dtype)
            self.step = np.zeros(1, np.int64)
            self._owner = net

    def _snapshot(self):
        return (None if self.state is None else self.state.copy(),
                None if self.step is None else self.step.copy())

    def _restore(self, snap):
        state, step = snap
        if state is not None:
            self.state[...] = state
            self.step[...] = step


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and dampening.

    Follows ``torch.optim.SGD`` exactly. With ``g`` the mean gradient of the mini-batch
    (plus ``l2 * w`` for weights)::

        v <- g                          on the first step
        v <- momentum * v + (1 - dampening) * g      afterwards
        w <- w - lr * v                 (nesterov: w <- w - lr * (g + momentum * v))

    and without momentum simply ``w <- w - lr * g``.

    **The "inertia" momentum** of the classic backpropagation literature (and of this
    project's seed code), ``dw(t+1) = (1 - a) * eta * g(t) + a * dw(t)``,
    ``w <- w - dw(t+1)``, is ``SGD(lr=eta, momentum=a, dampening=a)`` with
    ``dw = lr * v``: from the second step on,
    ``lr * v(t+1) = a * lr * v(t) + (1 - a) * lr * g(t)``, the same recursion. The first
    step differs: like PyTorch, SGD starts the velocity undamped, ``v = g``, so its first
    step is ``dw(1) = eta * g(1)``, where the inertia rule started from ``dw(0) = 0``
    takes ``(1 - a) * eta * g(1)``, a step ``1 - a`` times as long. Exactly: SGD with
    ``momentum = dampening = a`` *is* the inertia rule started from ``dw(0) = eta * g(1)``
    (for the same gradients the two ``dw`` differ by ``a**t * eta * g(1)`` at step ``t``,
    a difference that dies out geometrically). The identity needs a constant rate: under
    a schedule SGD scales the whole velocity by the current rate, whereas the inertia
    rule keeps each past step at the rate it was taken with.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate (Nielsen's eta), > 0.
    momentum : float, default 0.0
        Momentum factor, >= 0.
    nesterov : bool, default False
        Use Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    dampening : float, default 0.0
        Dampening of the gradient added to the velocity, in [0, 1].
    """

    code = _k.SGD
    n_state = 1

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, dampening=0.0):
        super().__init__()
        self.lr = check_real("lr", lr, 0.0, low_open=True)
        self.momentum = check_real("momentum", momentum, 0.0)
        self.dampening = check_real("dampening", dampening, 0.0, 1.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool; got {nesterov!r}")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        self.nesterov = bool(nesterov)

    def hyper(self):
        return np.array([self.lr, self.momentum, self.dampening, float(self.nesterov)])

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"dampening={self.dampening})")


class FullBatchOptimizer:
    """Base class of the full-batch optimizers, which run ``scipy.optimize.minimize``.

    ``Network.fit`` hands :meth:`minimize` the objective of the whole training set — the
    mean cost plus ``(l2/2) * sum(w**2)`` and its gradient, from one compiled
    ``loss_and_gradient`` call per evaluation — and stops after ``epochs`` iterations
    (``maxiter``). One iteration is one History entry. Each ``fit`` call starts the
    method afresh (no curvature memory is carried over); ``batch_size``, ``shuffle`` and
    schedules do not apply. scipy works in float64; with a float32 network the objective
    is computed in float32, so the line search may stop sooner (scipy reports it in
    :attr:`result`).

    Subclasses set ``method`` (a ``scipy.optimize.minimize`` method) and implement
    :meth:`options`.

    Attributes
    ----------
    result : scipy.optimize.OptimizeResult or None
        scipy's result of the last ``fit`` call (``message``, ``nit``, ``nfev``, ...).
    """

    method = None

    def __init__(self):
        self.result = None

    def options(self, maxiter):  # pragma: no cover - abstract
        """The ``options`` dict for ``scipy.optimize.minimize``."""
        raise NotImplementedError

    def reset(self):
        """Forget the result of the last fit."""
        self.result = None

    def minimize(self, fun, x0, maxiter, callback=None):
        """``scipy.optimize.minimize(fun, x0, jac=True, method=self.method, ...)``.

        Parameters
        ----------
        fun : callable
            ``fun(x) -> (loss, gradient)`` for a float64 vector ``x``.
        x0 : ndarray
            Starting point (float64).
        maxiter : int
            Iterations at most.
        callback : callable, optional
            ``callback(xk)`` after each iteration.

        Returns
        -------
        scipy.optimize.OptimizeResult
        """
        from scipy.optimize import minimize

        self.result = None
        self.result = minimize(fun, x0, jac=True, method=self.method,
                               options=self.options(maxiter), callback=callback)
        return self.result


class LBFGS(FullBatchOptimizer):
    """Full-batch L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B")``.

    ``net.fit(X, y, optimizer=fnn.LBFGS(), epochs=k)`` runs at most ``k`` iterations on
    the whole of ``(X, y)`` (see :class:`FullBatchOptimizer`); scikit-learn's
    ``MLPClassifier(solver="lbfgs", max_iter=k)`` does the same. PyTorch's
    ``torch.optim.LBFGS(history_size=maxcor, line_search_fn="strong_wolfe")`` is the
    closest equivalent there (its stopping tests differ).

    Parameters
    ----------
    maxcor : int, default 10
        Correction pairs kept (the memory ``m``), >= 1.
    gtol : float, default 1e-5
        Stop when the largest gradient component is at most ``gtol`` (>= 0).
    ftol : float, default 2.220446049250313e-09
        Stop when the relative decrease of the objective is at most ``ftol`` (>= 0).
    maxls : int, default 20
        Line-search steps per iteration at most (>= 1).
    maxfun : int, default 15000
        Objective evaluations at most (>= 1).
    """

    method = "L-BFGS-B"

    def __init__(self, maxcor=10, gtol=1e-5, ftol=2.220446049250313e-09, maxls=20,
                 maxfun=15000):
        super().__init__()
        self.maxcor = check_int("maxcor", maxcor, 1)
        self.gtol = check_real("gtol", gtol, 0.0)
        self.ftol = check_real("ftol", ftol, 0.0)
        self.maxls = check_int("maxls", maxls, 1)
        self.maxfun = check_int("maxfun", maxfun, 1)

    def options(self, maxiter):
        return {"maxiter": maxiter, "maxcor": self.maxcor, "gtol": self.gtol,
                "ftol": self.ftol, "maxls": self.maxls, "maxfun": self.maxfun}

    def __repr__(self):
        return (f"LBFGS(maxcor={self.maxcor}, gtol={self.gtol}, ftol={self.ftol}, "
                f"maxls={self.maxls}, maxfun={self.maxfun})")


class CG(FullBatchOptimizer):
    """Full-batch nonlinear conjugate gradients through ``scipy.optimize.minimize(method="CG")``.

    Polak-Ribiere conjugate gradients with a Wolfe line search (scipy's ``CG``), on the
    whole of ``(X, y)``; ``net.fit(X, y, optimizer=fnn.CG(), epochs=k)`` runs at most
    ``k`` iterations (see :class:`FullBatchOptimizer`). PyTorch has no built-in
    equivalent.

    Parameters
    ----------
    gtol : float, default 1e-5
        Stop when the gradient's norm is at most ``gtol`` (>= 0).
    norm : float, default inf
        Order of that norm (``inf``: the largest component), > 0.
    """

    method = "CG"

    def __init__(self, gtol=1e-5, norm=np.inf):
        super().__init__()
        self.gtol = check_real("gtol", gtol, 0.0)
        if isinstance(norm, (bool, np.bool_)) or not isinstance(norm, numbers.Real):
            raise TypeError(f"norm must be a real number; got {norm!r}")
        if not norm > 0:
            raise ValueError(f"norm must be > 0 (inf for the largest component); got {norm!r}")
        self.norm = float(norm)

    def options(self, maxiter):
        return {"maxiter": maxiter, "gtol": self.gtol, "norm": self.norm}

    def __repr__(self):
        return f"CG(gtol={self.gtol}, norm={self.norm})"


#: names accepted by ``fit(optimizer=...)``, each with its default settings; a new
#: optimizer class needs one entry here
OPTIMIZERS = {"sgd": SGD, "lbfgs": LBFGS, "cg": CG}


def get(optimizer):
    """An :class:`Optimizer` or :class:`FullBatchOptimizer` from a name or an instance."""
    if isinstance(optimizer, (Optimizer, FullBatchOptimizer)):
        return optimizer
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is not known; valid: {sorted(OPTIMIZERS)}")
        return OPTIMIZERS[optimizer.lower()]()
    raise TypeError(f"optimizer must be a name {sorted(OPTIMIZERS)} or an optimizer instance "
                    f"such as fastnn.SGD(lr=0.1); got {optimizer!r}")
