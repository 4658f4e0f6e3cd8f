"""Optimizers: hyper-parameters and state for the compiled update rules.

An optimizer object holds its hyper-parameters and, once it has trained a network, its
state (velocities, step count) for that network's parameter buffer. Passing the same
object to several ``fit`` calls on one network continues from that state, as a PyTorch
optimizer would; using it on another network starts a fresh state.
"""
import numpy as np

from ._validation import check_real
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


#: names accepted by ``fit(optimizer=...)``, each with its default settings
OPTIMIZERS = {"sgd": SGD}


def get(optimizer):
    """An :class:`Optimizer` from a name or an instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is not known; valid: {sorted(OPTIMIZERS)}")
        return OPTIMIZERS[optimizer.lower()]()
    raise TypeError(f"optimizer must be a name {sorted(OPTIMIZERS)} or an Optimizer instance "
                    f"such as fastnn.SGD(lr=0.1); got {optimizer!r}")
