"""What runs between epochs: the History, progress displays and callbacks.

The callback protocol
---------------------
``fit(callbacks=[...])`` takes objects with any of these optional hooks (subclassing
:class:`Callback` is convenient, not required):

``on_train_begin(net, epochs)``
    Once per ``fit`` call, after the arguments were checked and before the first epoch;
    ``epochs`` is the most this call will run. Raising ``ValueError``/``TypeError`` here
    refuses the fit with the network unchanged. Callbacks reset their state here, so
    each ``fit`` call starts afresh.
``on_epoch_begin(epoch, n_samples)``
    Before each epoch; ``epoch`` is the network's epoch number, counted over all its
    fits from 1 (``History.epoch``).
``on_batch(samples_done, loss_sum)`` with the attribute ``updates_per_epoch``
    ``fit`` cuts each epoch into ``updates_per_epoch`` slices of whole batches (the
    largest value among the callbacks; the weights are bitwise the same as with one
    slice) and calls ``on_batch`` between them with the samples done so far and the
    sum of their costs.
``on_epoch_end(epoch, metrics, net)``
    After each epoch with a copy of its metrics (the History's keys: ``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``) and the network,
    which holds that epoch's weights. **Return True to stop training** after this epoch;
    any other return value (``None``) goes on. All callbacks see the epoch before
    training stops.
``on_train_end(net, history)``
    After the last epoch, whether the epochs ran out or a callback stopped training
    (not when ``fit`` raises).
``monitor`` (attribute)
    A metric name the callback needs; ``fit`` refuses to start when it will not be
    recorded (``"val_loss"`` without ``validation_data``). ``None``: no metric needed.

The progress display passed as ``fit(progress=...)`` follows the older, smaller protocol
``updates_per_epoch``, ``on_epoch_begin(epoch, n)``, ``on_batch(samples_done,
loss_sum)``, ``on_epoch_end(epoch, metrics)`` (its return value is ignored).
"""
import math
import os
import string
import sys

import numpy as np

from ._validation import check_int, check_real


class History:
    """Per-epoch metrics of a ``fit`` call.

    Attributes
    ----------
    history : dict of str -> list
        ``loss`` (mean training cost of the samples as they were seen during the epoch,
        before each batch's update; data term only), ``accuracy`` (classifiers; with
        binary 0/1 labels, that of the weights at the end of the epoch), ``val_loss``
        and ``val_accuracy`` (with validation data), ``lr`` and ``seconds``. With a
        full-batch optimizer (:class:`fastnn.LBFGS`, :class:`fastnn.CG`) an entry is
        one iteration, ``loss`` and ``accuracy`` are those of the iterate, and there is
        no ``lr``.
    epoch : list of int
        The network's epoch number (counted over all its fits, from 1) of each entry.
        When a callback such as :class:`EarlyStopping` stopped training, the last entry
        is the epoch where it stopped.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []

    def append(self, epoch, metrics):
        self.epoch.append(epoch)
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def format_metrics(metrics):
    """``loss 0.1234  accuracy 0.9650 ...`` in a fixed order, seconds last."""
    parts = []
    for key, value in metrics.items():
        if key == "seconds":
            continue
        parts.append(f"{key} {value:.4g}" if key == "lr" else f"{key} {value:.4f}")
    parts.append(f"{metrics['seconds']:.2f}s")
    return "  ".join(parts)


class ProgressLine:
    """Prints one line per epoch to ``stream`` (standard error by default)."""

    def __init__(self, epochs, stream=None):
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self.width = len(str(epochs))

    updates_per_epoch = 1

    def on_epoch_begin(self, epoch, n_samples):
        pass

    def on_batch(self, samples_done, loss_sum):
        pass

    def on_epoch_end(self, epoch, metrics):
        print(f"epoch {epoch:>{self.width}}/{self.epochs}  {format_metrics(metrics)}",
              file=self.stream, flush=True)


class TqdmProgress:
    """A progress bar within each epoch (samples/s, running loss), drawn by tqdm.

    ``fit`` runs the compiled epoch in ``updates_per_epoch`` slices and calls
    :meth:`on_batch` between them; the finished epoch is written as one line.
    """

    updates_per_epoch = 20

    def __init__(self, epochs, stream=None):
        from tqdm.auto import tqdm  # optional dependency: pip install "fastnn[progress]"
        self._tqdm = tqdm
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self.width = len(str(epochs))
        self.bar = None

    def on_epoch_begin(self, epoch, n_samples):
        self.bar = self._tqdm(total=n_samples, unit="sample", unit_scale=True, leave=False,
                              desc=f"epoch {epoch:>{self.width}}/{self.epochs}",
                              file=self.stream, dynamic_ncols=True)

    def on_batch(self, samples_done, loss_sum):
        self.bar.update(samples_done - self.bar.n)
        self.bar.set_postfix(loss=f"{loss_sum / max(samples_done, 1):.4f}", refresh=False)

    def on_epoch_end(self, epoch, metrics):
        self.bar.close()
        self._tqdm.write(f"epoch {epoch:>{self.width}}/{self.epochs}  {format_metrics(metrics)}",
                         file=self.stream)


def default_progress(epochs, stream=None):
    """The progress display ``fit(progress=True)`` uses.

    A tqdm bar within each epoch when ``stream`` (standard error by default) is a terminal
    and tqdm is installed, else one line per epoch.
    """
    stream = stream if stream is not None else sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        try:
            return TqdmProgress(epochs, stream)
        except ImportError:
            pass
    return ProgressLine(epochs, stream)


# --- callbacks ----------------------------------------------------------------------
class Callback:
    """Base class of the callbacks: every hook of the protocol, doing nothing.

    Subclass it and override the hooks you need (see :mod:`fastnn.callbacks`); return
    True from :meth:`on_epoch_end` to stop training.

    Examples
    --------
    >>> class StopBelow(Callback):
    ...     def __init__(self, loss):
    ...         self.loss = loss
    ...     def on_epoch_end(self, epoch, metrics, net):
    ...         return metrics["loss"] < self.loss
    """

    #: metric this callback needs (None: none)
    monitor = None
    updates_per_epoch = 1

    def on_train_begin(self, net, epochs):
        """Once per ``fit``, before the first epoch; ``epochs``: the most it will run."""

    def on_epoch_begin(self, epoch, n_samples):
        """Before epoch ``epoch`` (the network's number, from 1) over ``n_samples``."""

    def on_batch(self, samples_done, loss_sum):
        """Between the ``updates_per_epoch`` slices of an epoch."""

    def on_epoch_end(self, epoch, metrics, net):
        """After epoch ``epoch`` with a copy of its metrics; return True to stop."""
        return None

    def on_train_end(self, net, history):
        """After the last epoch (also after a stop; not when ``fit`` raises)."""


class _Monitor:
    """Tracks the best value of one metric (lower or higher is better)."""

    def __init__(self, monitor, mode, min_delta):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be a metric name such as 'val_loss'; got "
                            f"{monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
        self.monitor = monitor
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.min_delta = check_real("min_delta", min_delta, 0.0)
        self.reset()

    def reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, metrics, who):
        if self.monitor not in metrics:
            raise KeyError(f"{who} monitors {self.monitor!r}, which is not among the "
                           f"metrics {sorted(metrics)}")
        return float(metrics[self.monitor])

    def improves(self, value):
        """Record ``value``; True if it beats the best by more than ``min_delta``."""
        if self.mode == "min":
            better = value < self.best - self.min_delta
        else:
            better = value > self.best + self.min_delta
        if better:
            self.best = value
        return better


class EarlyStopping(Callback):
    """Stop training when a metric has stopped improving; keep the best weights.

    An epoch *improves* when the metric beats the best so far by more than
    ``min_delta``. Training stops at the end of the ``patience``-th epoch in a row that
    does not improve (Keras' ``EarlyStopping``; scikit-learn's ``n_iter_no_change``).
    With ``restore_best=True`` the network then holds the weights of the best epoch —
    bitwise those of a network trained for exactly that many epochs — also when the
    epochs ran out before the patience did. The History still ends at the epoch where
    training stopped, ``net.epochs_trained`` counts the epochs that ran, and the
    optimizer's state (momentum velocities) is not rewound.

    ``fit(early_stopping=patience)`` is the short form: it monitors ``"val_loss"`` when
    ``validation_data`` is given and the training ``"loss"`` otherwise. Given explicitly,
    ``monitor`` must be recorded by the fit: ``"val_loss"`` without ``validation_data``
    is refused before training.

    Parameters
    ----------
    monitor : str, default "val_loss"
        The metric to watch (a key of the History).
    patience : int, default 5
        Epochs without improvement before stopping (>= 1).
    min_delta : float, default 0.0
        Smallest change that counts as an improvement (>= 0).
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; ``"auto"``: higher for metrics whose name
        contains ``"acc"``, lower otherwise.
    restore_best : bool, default True
        Put the best epoch's weights back into the network when training ends.

    Attributes
    ----------
    best : float
        Best value of the metric in the last ``fit`` call.
    best_epoch : int or None
        The network's epoch number (from 1, over its life) of that value.
    stopped_epoch : int or None
        The epoch at which training was stopped, None if the epochs ran out.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best=True):
        self._watch = _Monitor(monitor, mode, min_delta)
        self.monitor = self._watch.monitor
        self.mode = self._watch.mode
        self.min_delta = self._watch.min_delta
        self.patience = check_int("patience", patience, 1)
        if not isinstance(restore_best, (bool, np.bool_)):
            raise TypeError(f"restore_best must be a bool; got {restore_best!r}")
        self.restore_best = bool(restore_best)
        self._reset()

    def _reset(self):
        self._watch.reset()
        self.best_epoch = None
        self.stopped_epoch = None
        self.wait = 0
        self._best_params = None
        self._last_epoch = None

    @property
    def best(self):
        return self._watch.best

    def on_train_begin(self, net, epochs):
        self._reset()

    def on_epoch_end(self, epoch, metrics, net):
        self._last_epoch = epoch
        if self._watch.improves(self._watch.value(metrics, "EarlyStopping")):
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best:
                self._best_params = net.params.copy()
            return None
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return None

    def on_train_end(self, net, history):
        if (self.restore_best and self._best_params is not None
                and self.best_epoch != self._last_epoch):
            net.params[...] = self._best_params

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, mode={self.mode!r}, "
                f"restore_best={self.restore_best})")


_CHECKPOINT_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                      "seconds")


class ModelCheckpoint(Callback):
    """Save the network after each epoch, or only when a metric improves.

    Each save goes through :meth:`Network.save`, which writes atomically (a temporary
    file renamed over the target), so ``path`` always holds a complete model.

    Parameters
    ----------
    path : str or os.PathLike
        Where to save. May hold ``str.format`` fields ``{epoch}`` and metric names, e.g.
        ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``, for one file per save.
    monitor : str, default "val_loss"
        The metric that decides "best" with ``save_best_only`` (ignored otherwise).
    save_best_only : bool, default False
        Save only after epochs where ``monitor`` beats its best value so far in this
        ``fit`` call; otherwise after every epoch.
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better (``"auto"``: higher for accuracies).

    Attributes
    ----------
    saved : list of str
        Paths written in the last ``fit`` call, in order.
    best_epoch : int or None
        With ``save_best_only``, the epoch of the last save.
    monitor : str or None
        The metric watched; None when ``save_best_only`` is False.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike; got {path!r}")
        self.path = os.fspath(path)
        if not isinstance(save_best_only, (bool, np.bool_)):
            raise TypeError(f"save_best_only must be a bool; got {save_best_only!r}")
        self.save_best_only = bool(save_best_only)
        self._watch = _Monitor(monitor, mode, 0.0)
        self.monitor = self._watch.monitor if self.save_best_only else None
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.path)
                      if f is not None]
        except ValueError as exc:
            raise ValueError(f"path {self.path!r} is not a valid format string: {exc}") \
                from None
        for field in fields:
            if field.split(".")[0].split("[")[0] not in _CHECKPOINT_FIELDS:
                raise ValueError(f"path {self.path!r} has the field {{{field}}}; valid "
                                 f"fields: {', '.join(_CHECKPOINT_FIELDS)}")
        self._formatted = bool(fields)
        self.saved = []
        self.best_epoch = None

    def on_train_begin(self, net, epochs):
        folder = os.path.dirname(os.path.abspath(self.path))
        if "{" not in folder and not os.path.isdir(folder):
            raise ValueError(f"ModelCheckpoint path {self.path!r}: directory {folder} "
                             f"does not exist")
        self._watch.reset()
        self.saved = []
        self.best_epoch = None

    def on_epoch_end(self, epoch, metrics, net):
        if self.save_best_only:
            if not self._watch.improves(self._watch.value(metrics, "ModelCheckpoint")):
                return None
            self.best_epoch = epoch
        try:
            path = self.path.format(epoch=epoch, **metrics) if self._formatted else self.path
        except KeyError as exc:
            raise ValueError(f"ModelCheckpoint path {self.path!r} names the metric {exc}, "
                             f"which this fit does not record ({sorted(metrics)})") from None
        net.save(path)
        self.saved.append(path)
        return None

    def __repr__(self):
        return (f"ModelCheckpoint({self.path!r}, monitor={self._watch.monitor!r}, "
                f"save_best_only={self.save_best_only})")


class ProgressBar(Callback):
    """Training progress on standard error (what ``fit(progress=True)`` shows).

    On a terminal with tqdm installed (``pip install "fastnn[progress]"``) a bar within
    each epoch (samples/s, running loss), then one line per finished epoch; elsewhere
    just the line per epoch: ``epoch 3/10  loss 0.1234  accuracy 0.9650 ... 0.81s``.

    Parameters
    ----------
    stream : file-like, optional
        Where to write (default: standard error).
    bar : {"auto", True, False}, default "auto"
        ``"auto"``: a tqdm bar when ``stream`` is a terminal and tqdm is installed;
        True: always a tqdm bar (ImportError if tqdm is missing); False: lines only.
    """

    def __init__(self, stream=None, bar="auto"):
        if bar not in ("auto", True, False):
            raise ValueError(f"bar must be 'auto', True or False; got {bar!r}")
        if bar is True:
            try:
                import tqdm  # noqa: F401
            except ImportError:
                raise ImportError('ProgressBar(bar=True) needs tqdm: pip install '
                                  '"fastnn[progress]"') from None
        self.stream = stream
        self.bar = bar
        self._display = None

    @property
    def updates_per_epoch(self):
        return 1 if self._display is None else self._display.updates_per_epoch

    def on_train_begin(self, net, epochs):
        total = net.epochs_trained + epochs
        stream = self.stream if self.stream is not None else sys.stderr
        if self.bar is True:
            self._display = TqdmProgress(total, stream)
        elif self.bar is False:
            self._display = ProgressLine(total, stream)
        else:
            self._display = default_progress(total, stream)

    def on_epoch_begin(self, epoch, n_samples):
        self._display.on_epoch_begin(epoch, n_samples)

    def on_batch(self, samples_done, loss_sum):
        self._display.on_batch(samples_done, loss_sum)

    def on_epoch_end(self, epoch, metrics, net=None):
        self._display.on_epoch_end(epoch, metrics)
        return None


#: the hooks of the callback protocol; a callback needs at least one
HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch", "on_epoch_end", "on_train_end")


class _DisplayCallback:
    """A progress display of the older protocol (``fit(progress=display)``) as a callback:
    ``on_epoch_end(epoch, metrics)`` without the network, its return value ignored."""

    def __init__(self, display):
        self.display = display

    @property
    def updates_per_epoch(self):
        return getattr(self.display, "updates_per_epoch", 1)

    def on_train_begin(self, net, epochs):
        hook = getattr(self.display, "on_train_begin", None)
        if hook is not None:
            hook(net, epochs)

    def on_epoch_begin(self, epoch, n_samples):
        hook = getattr(self.display, "on_epoch_begin", None)
        if hook is not None:
            hook(epoch, n_samples)

    def on_batch(self, samples_done, loss_sum):
        hook = getattr(self.display, "on_batch", None)
        if hook is not None:
            hook(samples_done, loss_sum)

    def on_epoch_end(self, epoch, metrics, net):
        self.display.on_epoch_end(epoch, metrics)
        return None
