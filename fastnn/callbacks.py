"""What runs between epochs (or slices of one): the History and the progress display.

A progress display has ``updates_per_epoch`` (how many slices ``fit`` cuts each epoch
into; 1 = one compiled call per epoch) and the hooks ``on_epoch_begin(epoch, n)``,
``on_batch(samples_done, loss_sum)`` and ``on_epoch_end(epoch, metrics)``.
"""
import sys


class History:
    """Per-epoch metrics of a ``fit`` call.

    Attributes
    ----------
    history : dict of str -> list
        ``loss`` (mean training cost of the samples as they were seen during the epoch,
        before each batch's update; data term only), ``accuracy`` (classifiers),
        ``val_loss`` and ``val_accuracy`` (with validation data), ``lr`` and ``seconds``.
    epoch : list of int
        The network's epoch number (counted over all its fits, from 1) of each entry.
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
