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
            self._init_state(self.state)
            self.step = np.zeros(1, np.int64)
            self._owner = net

    def _init_state(self, state):
        """Set the initial state (zeros unless a subclass says otherwise)."""

    def _snapshot(self):
        return (None if self.state is None else self.state.copy(),
                None if self.step is None else self.step.copy())

    def _restore(self, snap):
        state, step = snap
        if state is not None:
            self.state[...] = state
            self.step[...] = step


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool; got {value!r}")
    return bool(value)


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
        self.nesterov = _check_bool("nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")

    def hyper(self):
        return np.array([self.lr, self.momentum, self.dampening, float(self.nesterov)])

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"dampening={self.dampening})")


_WEIGHT_DECAY_DOC = """weight_decay : float, default {default}
        {what}, >= 0. As in PyTorch it applies to every parameter, biases included;
        ``fit``'s ``l2`` (weights only) is the one to use for Nielsen-style L2
        regularisation. With both, ``l2 * w`` is part of the gradient ``g`` that
        weight decay then acts on."""


def _check_betas(betas):
    if (isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__")
            or len(betas) != 2):
        raise TypeError(f"betas must be a pair (beta1, beta2); got {betas!r}")
    b1 = check_real("betas[0]", betas[0], 0.0)
    b2 = check_real("betas[1]", betas[1], 0.0)
    for name, b in (("betas[0]", b1), ("betas[1]", b2)):
        if b >= 1.0:
            raise ValueError(f"{name} must be in [0, 1); got {b!r}")
    return b1, b2


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with the AMSGrad variant; ``torch.optim.Adam`` exactly.

    With ``g`` the mean gradient of the mini-batch (plus ``l2 * w`` for weights) and
    ``t`` the step number from 1::

        g <- g + weight_decay * w
        m <- beta1 * m + (1 - beta1) * g            (PyTorch's lerp)
        v <- beta2 * v + (1 - beta2) * g**2
        vmax <- max(vmax, v)                        (amsgrad only; used in place of v)
        w <- w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    ``m``, ``v`` (and ``vmax``) start at zero. Every parameter is updated at every step,
    even where the batch's gradient is zero.

    Parameters
    ----------
    {adam}
    """

    code = _k.ADAM
    _decoupled = False

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__()
        self.lr = check_real("lr", lr, 0.0, low_open=True)
        self.betas = _check_betas(betas)
        self.eps = check_real("eps", eps, 0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        self.amsgrad = _check_bool("amsgrad", amsgrad)
        self.n_state = 3   # exp_avg, exp_avg_sq, max_exp_avg_sq (see kernels.updates)

    def hyper(self):
        b1, b2 = self.betas
        return np.array([self.lr, b1, b2, self.eps, self.weight_decay, float(self.amsgrad),
                         float(self._decoupled), 1.0 - b1, 1.0 - b2])

    def __repr__(self):
        return (f"{type(self).__name__}(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
                f"weight_decay={self.weight_decay}, amsgrad={self.amsgrad})")


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019); ``torch.optim.AdamW``.

    As :class:`Adam`, except that weight decay does not enter the gradient: each step
    first shrinks the parameters, ``w <- w * (1 - lr * weight_decay)`` (with the
    current learning rate), then takes the Adam step on the gradient ``g`` alone.

    Parameters
    ----------
    {adam}
    """

    _decoupled = True

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 amsgrad=False):
        super().__init__(lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e); ``torch.optim.RMSprop`` exactly.

    With ``g`` the mean gradient of the mini-batch (plus ``l2 * w`` for weights)::

        g <- g + weight_decay * w
        s <- alpha * s + (1 - alpha) * g**2
        centered:  a <- alpha * a + (1 - alpha) * g;  d = sqrt(s - a**2) + eps
        otherwise: d = sqrt(s) + eps
        momentum > 0:  b <- momentum * b + g / d;  w <- w - lr * b
        otherwise:     w <- w - lr * g / d

    ``s``, ``a`` and ``b`` start at zero. Every parameter is updated at every step.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, > 0.
    alpha : float, default 0.99
        Smoothing constant, in [0, 1].
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    {wd}
    momentum : float, default 0.0
        Momentum factor, >= 0.
    centered : bool, default False
        Normalise by an estimate of the gradient's variance instead of its second moment.
    """

    code = _k.RMSPROP

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__()
        self.lr = check_real("lr", lr, 0.0, low_open=True)
        self.alpha = check_real("alpha", alpha, 0.0, 1.0)
        self.eps = check_real("eps", eps, 0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        self.momentum = check_real("momentum", momentum, 0.0)
        self.centered = _check_bool("centered", centered)
        self.n_state = 3   # square_avg, grad_avg, momentum buffer (see kernels.updates)

    def hyper(self):
        return np.array([self.lr, self.alpha, self.eps, self.weight_decay, self.momentum,
                         float(self.centered), 1.0 - self.alpha])

    def __repr__(self):
        return (f"RMSprop(lr={self.lr}, alpha={self.alpha}, eps={self.eps}, "
                f"weight_decay={self.weight_decay}, momentum={self.momentum}, "
                f"centered={self.centered})")


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011); ``torch.optim.Adagrad`` exactly.

    With ``g`` the mean gradient of the mini-batch (plus ``l2 * w`` for weights) and
    ``t`` the step number from 1::

        g <- g + weight_decay * w
        s <- s + g**2                      (s starts at initial_accumulator_value)
        w <- w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Every parameter is updated at every step.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, > 0.
    lr_decay : float, default 0.0
        Learning-rate decay per step, >= 0.
    {wd}
    initial_accumulator_value : float, default 0.0
        Starting value of the sum of squares, >= 0.
    eps : float, default 1e-10
        Added to the denominator, >= 0.
    """

    code = _k.ADAGRAD
    n_state = 1

    def __init__(self, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        super().__init__()
        self.lr = check_real("lr", lr, 0.0, low_open=True)
        self.lr_decay = check_real("lr_decay", lr_decay, 0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        self.initial_accumulator_value = check_real(
            "initial_accumulator_value", initial_accumulator_value, 0.0)
        self.eps = check_real("eps", eps, 0.0)

    def hyper(self):
        return np.array([self.lr, self.lr_decay, self.weight_decay, self.eps,
                         self.initial_accumulator_value])

    def _init_state(self, state):
        state[0] = self.initial_accumulator_value

    def __repr__(self):
        return (f"Adagrad(lr={self.lr}, lr_decay={self.lr_decay}, "
                f"weight_decay={self.weight_decay}, "
                f"initial_accumulator_value={self.initial_accumulator_value}, eps={self.eps})")


#: the parameters Adam and AdamW share (``{adam}`` in their docstrings)
_ADAM_PARAMS_DOC = """lr : float, default 0.001
        Learning rate, > 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    {wd}
    amsgrad : bool, default False
        Use the maximum of the past second moments (Reddi et al., 2018)."""
for _cls in (Adam, AdamW):
    _cls.__doc__ = _cls.__doc__.replace("{adam}", _ADAM_PARAMS_DOC)
for _cls, _default, _what in ((Adam, "0.0", "L2 penalty added to the gradient"),
                              (AdamW, "0.01", "Decoupled weight decay"),
                              (RMSprop, "0.0", "L2 penalty added to the gradient"),
                              (Adagrad, "0.0", "L2 penalty added to the gradient")):
    _cls.__doc__ = _cls.__doc__.replace(
        "{wd}", _WEIGHT_DECAY_DOC.format(default=_default, what=_what))


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
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
              "adagrad": Adagrad, "lbfgs": LBFGS, "cg": CG}


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
