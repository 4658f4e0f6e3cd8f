"""Learning-rate schedules for ``Network.fit(schedule=...)``.

A schedule gives the learning rate of each epoch of one ``fit`` call. ``fit`` accepts two
kinds:

- a plain callable ``schedule(epoch) -> lr`` (``epoch`` counts from 0 in each call). It is
  called for every epoch before training starts, so a bad rate is refused before anything
  changes;
- an object following the *schedule protocol* below, such as the classes of this module.

The schedule protocol
---------------------
``lr(epoch)`` (required)
    The learning rate of ``epoch`` (0-based, counted within the ``fit`` call), called just
    before that epoch runs. Must return a finite number > 0.
``start(base_lr, epochs)`` (optional)
    Called once at the start of every ``fit`` call with the optimizer's ``lr`` and the
    number of epochs of the call; a schedule resets its state here, so each call starts
    afresh and the same call gives the same rates whatever the object did before.
``on_epoch_end(epoch, metrics)`` (optional)
    Called after each epoch with that epoch's metrics (the keys of the History: ``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``). Adaptive schedules
    such as :class:`ReduceOnPlateau` decide the next rate here.
``monitor`` (optional attribute)
    The metric the schedule reads; ``fit`` refuses to start if that metric will not be
    recorded (e.g. ``"val_loss"`` without ``validation_data``).

``fit`` checks the rates of all epochs up front (``start`` then ``lr(k)`` for each ``k``,
then ``start`` again), and checks each rate again before its epoch runs. The rate used in
each epoch is recorded in the History (``lr``).

Every schedule here multiplies a *base rate*: the ``lr`` given to the schedule, or, by
default, the optimizer's ``lr`` — as PyTorch's schedulers scale the optimizer's initial
rate. With ``warmup=w > 0`` the first ``w`` epochs ramp linearly up to the base rate,
epoch ``k < w`` getting ``base * (k + 1) / (w + 1)``, and the schedule proper then runs
with its own epoch count starting at 0 (epoch ``w`` gets the base rate). In PyTorch terms,
``SequentialLR([LinearLR(opt, start_factor=1/(w+1), total_iters=w), main],
milestones=[w])``.

==================  ===============================================  ======================
fastnn              rate of epoch ``e`` (after warm-up)              PyTorch
==================  ===============================================  ======================
StepDecay           ``base * gamma ** (e // step_size)``             ``StepLR``
Exponential         ``base * gamma ** e``                            ``ExponentialLR``
InverseScaling      ``base / (e + 1) ** power_t``                    (scikit-learn's
                                                                     ``invscaling``)
Cosine              ``eta_min + (base - eta_min) *                   ``CosineAnnealingLR``
                    (1 + cos(pi * e / T_max)) / 2``
ReduceOnPlateau     ``base * factor ** (reductions so far)``,        ``ReduceLROnPlateau``
                    at least ``min_lr``                              (``threshold_mode=
                                                                     "abs"``)
==================  ===============================================  ======================
"""
import math
import numbers

from ._validation import check_int, check_real

__all__ = ["Schedule", "StepDecay", "Exponential", "InverseScaling", "Cosine",
           "ReduceOnPlateau", "is_schedule"]


def is_schedule(obj):
    """True if ``obj`` follows the schedule protocol (has a callable ``lr``)."""
    return callable(getattr(obj, "lr", None))


def _check_monitor(monitor):
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"monitor must be a metric name such as 'val_loss'; got {monitor!r}")
    return monitor


def _resolve_mode(mode, monitor):
    """``"min"`` or ``"max"``: ``"auto"`` means max for accuracies, min otherwise."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class Schedule:
    """Base class of the schedules: base rate, linear warm-up, and the ``fit`` protocol.

    Subclasses implement :meth:`rate` (the rate of epoch ``e`` after warm-up, given the
    base rate); :meth:`lr` adds the warm-up.

    Parameters
    ----------
    lr : float, optional
        The base rate (> 0). None (default) takes the optimizer's ``lr`` when ``fit``
        starts.
    warmup : int, default 0
        Epochs of linear warm-up before the schedule proper: epoch ``k < warmup`` gets
        ``base * (k + 1) / (warmup + 1)``.
    """

    def __init__(self, lr=None, warmup=0):
        self.base_lr = None if lr is None else check_real("lr", lr, 0.0, low_open=True)
        self._given_lr = self.base_lr
        self.warmup = check_int("warmup", warmup, 0)

    # --- the protocol -----------------------------------------------------------------
    def start(self, base_lr, epochs):
        """Reset for a new ``fit`` call; ``base_lr`` is the optimizer's rate."""
        self.base_lr = self._given_lr if self._given_lr is not None else float(base_lr)

    def lr(self, epoch):
        """The learning rate of ``epoch`` (0-based within the ``fit`` call)."""
        if self.base_lr is None:
            raise RuntimeError(f"{type(self).__name__} has no base rate: give lr=... or "
                               f"use it through fit, which passes the optimizer's lr")
        epoch = check_int("epoch", epoch, 0)
        if epoch < self.warmup:
            return self.base_lr * (epoch + 1) / (self.warmup + 1)
        return self.rate(epoch - self.warmup, self.base_lr)

    def rate(self, e, base):  # pragma: no cover - abstract
        """The rate of epoch ``e`` counted from the end of the warm-up."""
        raise NotImplementedError

    def _args(self):
        return {}

    def __repr__(self):
        args = dict(self._args())
        if self._given_lr is not None:
            args["lr"] = self._given_lr
        if self.warmup:
            args["warmup"] = self.warmup
        inner = ", ".join(f"{k}={v!r}" for k, v in args.items())
        return f"{type(self).__name__}({inner})"


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs.

    The rate of epoch ``e`` (after warm-up) is ``base * gamma ** (e // step_size)``, as
    ``torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma)``.

    Parameters
    ----------
    step_size : int
        Epochs between two decays (>= 1).
    gamma : float, default 0.1
        Factor applied at each decay (> 0).
    lr : float, optional
        Base rate; default: the optimizer's ``lr``.
    warmup : int, default 0
        Epochs of linear warm-up (see :class:`Schedule`).

    Examples
    --------
    >>> s = StepDecay(step_size=2, gamma=0.5, lr=0.4)
    >>> [s.lr(e) for e in range(5)]
    [0.4, 0.4, 0.2, 0.2, 0.1]
    """

    def __init__(self, step_size, gamma=0.1, lr=None, warmup=0):
        super().__init__(lr, warmup)
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = check_real("gamma", gamma, 0.0, low_open=True)

    def rate(self, e, base):
        return base * self.gamma ** (e // self.step_size)

    def _args(self):
        return {"step_size": self.step_size, "gamma": self.gamma}


class Exponential(Schedule):
    """Multiply the rate by ``gamma`` every epoch.

    The rate of epoch ``e`` (after warm-up) is ``base * gamma ** e``, as
    ``torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)``.

    Parameters
    ----------
    gamma : float
        Factor per epoch (> 0; below 1 to decay).
    lr : float, optional
        Base rate; default: the optimizer's ``lr``.
    warmup : int, default 0
        Epochs of linear warm-up (see :class:`Schedule`).
    """

    def __init__(self, gamma, lr=None, warmup=0):
        super().__init__(lr, warmup)
        self.gamma = check_real("gamma", gamma, 0.0, low_open=True)

    def rate(self, e, base):
        return base * self.gamma ** e

    def _args(self):
        return {"gamma": self.gamma}


class InverseScaling(Schedule):
    """Inverse scaling: the rate of epoch ``e`` (after warm-up) is ``base / (e + 1) ** power_t``.

    scikit-learn's ``learning_rate="invscaling"`` uses the same formula, but with ``t``
    counting the training *samples* seen rather than epochs. PyTorch has no built-in
    equivalent; ``LambdaLR(optimizer, lambda e: 1 / (e + 1) ** power_t)`` is one.

    Parameters
    ----------
    power_t : float, default 0.5
        Exponent (>= 0; 0 keeps the rate constant).
    lr : float, optional
        Base rate; default: the optimizer's ``lr``.
    warmup : int, default 0
        Epochs of linear warm-up (see :class:`Schedule`).
    """

    def __init__(self, power_t=0.5, lr=None, warmup=0):
        super().__init__(lr, warmup)
        self.power_t = check_real("power_t", power_t, 0.0)

    def rate(self, e, base):
        return base / (e + 1) ** self.power_t

    def _args(self):
        return {"power_t": self.power_t}


class Cosine(Schedule):
    """Cosine annealing from the base rate down to ``eta_min`` over ``T_max`` epochs.

    The rate of epoch ``e`` (after warm-up) is
    ``eta_min + (base - eta_min) * (1 + cos(pi * e / T_max)) / 2``: the closed form of
    ``torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max, eta_min)``. As there,
    the cosine goes on past ``T_max`` (the rate rises again), so choose
    ``T_max >= epochs - warmup``; with ``eta_min=0`` the rate of epoch ``T_max`` is 0,
    which ``fit`` refuses before training.

    Parameters
    ----------
    T_max : int
        Epochs from the base rate down to ``eta_min`` (>= 1).
    eta_min : float, default 0.0
        The lowest rate (>= 0).
    lr : float, optional
        Base rate; default: the optimizer's ``lr``.
    warmup : int, default 0
        Epochs of linear warm-up (see :class:`Schedule`).
    """

    def __init__(self, T_max, eta_min=0.0, lr=None, warmup=0):
        super().__init__(lr, warmup)
        self.T_max = check_int("T_max", T_max, 1)
        self.eta_min = check_real("eta_min", eta_min, 0.0)

    def rate(self, e, base):
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2

    def _args(self):
        return {"T_max": self.T_max, "eta_min": self.eta_min}


class ReduceOnPlateau(Schedule):
    """Multiply the rate by ``factor`` when a metric has stopped improving.

    Follows ``torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode, factor,
    patience, threshold=min_delta, threshold_mode="abs", cooldown, min_lr)``, called once
    per epoch with the metric: an epoch *improves* when the metric beats the best so far
    by more than ``min_delta`` (below ``best - min_delta`` in mode ``min``, above
    ``best + min_delta`` in mode ``max``). After more than ``patience`` epochs in a row
    without improvement — the ``patience + 1``-th bad epoch, as in PyTorch — the rate is
    multiplied by ``factor`` (not below ``min_lr``) from the next epoch on, and the count
    starts again after ``cooldown`` epochs in which bad epochs are not counted.

    The state starts afresh in each ``fit`` call; the epochs of warm-up are not watched.

    Parameters
    ----------
    factor : float, default 0.1
        Multiplies the rate at each reduction, in (0, 1).
    patience : int, default 10
        Bad epochs tolerated before a reduction (>= 0).
    min_delta : float, default 1e-4
        Smallest change that counts as an improvement (>= 0, absolute).
    monitor : str, default "val_loss"
        The metric to watch: a key of the History (``fit`` refuses to start if it will
        not be recorded, e.g. ``"val_loss"`` without ``validation_data``).
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; ``"auto"``: higher for metrics whose name
        contains ``"acc"``, lower otherwise.
    cooldown : int, default 0
        Epochs after a reduction in which bad epochs are not counted (>= 0).
    min_lr : float, default 0.0
        The rate never goes below this (>= 0).
    lr : float, optional
        Base rate; default: the optimizer's ``lr``.
    warmup : int, default 0
        Epochs of linear warm-up (see :class:`Schedule`).

    Attributes
    ----------
    reductions : int
        Reductions so far in the current ``fit`` call.
    best : float
        Best value of the metric so far.
    """

    def __init__(self, factor=0.1, patience=10, min_delta=1e-4, monitor="val_loss",
                 mode="auto", cooldown=0, min_lr=0.0, lr=None, warmup=0):
        super().__init__(lr, warmup)
        self.factor = check_real("factor", factor, 0.0, low_open=True)
        if self.factor >= 1.0:
            raise ValueError(f"factor must be < 1; got {factor!r}")
        self.patience = check_int("patience", patience, 0)
        self.min_delta = check_real("min_delta", min_delta, 0.0)
        self.monitor = _check_monitor(monitor)
        self.mode = _resolve_mode(mode, self.monitor)
        self.cooldown = check_int("cooldown", cooldown, 0)
        self.min_lr = check_real("min_lr", min_lr, 0.0)
        self._reset()

    def _reset(self):
        self.reductions = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.bad_epochs = 0
        self._cooldown_left = 0
        self._current = None

    def start(self, base_lr, epochs):
        super().start(base_lr, epochs)
        self._reset()

    def rate(self, e, base):
        return base if self._current is None else self._current

    def on_epoch_end(self, epoch, metrics):
        """Watch ``metrics[monitor]`` after ``epoch`` (0-based within the ``fit`` call)."""
        if epoch < self.warmup:
            return
        if self.monitor not in metrics:
            raise KeyError(f"ReduceOnPlateau monitors {self.monitor!r}, which is not among "
                           f"the metrics {sorted(metrics)}")
        value = metrics[self.monitor]
        if not isinstance(value, numbers.Real):
            raise TypeError(f"metric {self.monitor!r} must be a number; got {value!r}")
        if self.mode == "min":
            better = value < self.best - self.min_delta
        else:
            better = value > self.best + self.min_delta
        if better:
            self.best = float(value)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            current = self.base_lr if self._current is None else self._current
            new = max(current * self.factor, self.min_lr)
            if new < current:
                self._current = new
                self.reductions += 1
            self._cooldown_left = self.cooldown
            self.bad_epochs = 0

    def _args(self):
        return {"factor": self.factor, "patience": self.patience,
                "min_delta": self.min_delta, "monitor": self.monitor, "mode": self.mode,
                "cooldown": self.cooldown, "min_lr": self.min_lr}
