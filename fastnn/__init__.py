"""fastnn: fast multi-layer perceptrons on the CPU, with Numba kernels.

The public API, and nothing else::

    import fastnn as fnn
    net = fnn.Network([784, 100, 10], hidden="relu", output="softmax")
    net.fit(X, y, epochs=10, batch_size=32, optimizer=fnn.SGD(lr=0.1, momentum=0.9))
"""
from . import datasets
from .callbacks import History
from .io import ModelFileError, load
from .network import DivergenceError, Network
from .optimizers import SGD, Optimizer

__all__ = ["Network", "SGD", "Optimizer", "History", "DivergenceError", "load",
           "ModelFileError", "datasets"]
__version__ = "0.1.0"
