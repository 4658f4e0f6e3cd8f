"""What runs between epochs: the History of metrics and the per-epoch progress line."""
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

    def on_epoch_end(self, epoch, metrics):
        print(f"epoch {epoch:>{self.width}}/{self.epochs}  {format_metrics(metrics)}",
              file=self.stream, flush=True)
