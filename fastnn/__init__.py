"""fastnn: fast multi-layer perceptrons on the CPU, with Numba kernels.

The public API, and nothing else::

    import fastnn as fnn
    net = fnn.Network([784, 100, 10], hidden="relu", output="softmax")
    net.fit(X, y, epochs=10, batch_size=32, optimizer=fnn.SGD(lr=0.1, momentum=0.9),
            schedule=fnn.schedules.Cosine(T_max=10), early_stopping=3,
            validation_data=(X_val, y_val))
"""
from . import datasets, schedules
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, ProgressBar
from .ensemble import Ensemble
from .io import ModelFileError, load
from .network import DivergenceError, Network
from .optimizers import CG, LBFGS, SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

__all__ = ["Network", "Ensemble", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LBFGS", "CG",
           "Optimizer", "History", "Callback",
           "EarlyStopping", "ModelCheckpoint", "ProgressBar", "DivergenceError", "load",
           "ModelFileError", "datasets", "schedules"]
__version__ = "0.1.0"
