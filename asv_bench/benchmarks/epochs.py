"""Whole epochs through the public API: ``Network.fit(epochs=1)`` over 50,000 synthetic
MNIST-like samples (784 float32 pixels, ~81% of them zero, so the sparse input path of
small batches runs), for the configurations A-D of ``common.CONFIGS``:

    A  784-30-10       sigmoid/sigmoid quadratic  batch 10   lr 3.0   momentum 0
    B  784-100-10      relu/softmax               batch 32   lr 0.05  momentum 0.9
    C  784-512-512-10  relu/softmax               batch 256  lr 0.05  momentum 0.9
    D  784-100-10      relu/softmax               batch 1    lr 0.01  momentum 0

Each timed call trains a freshly initialised network (setup builds it) for one epoch;
the kernels are compiled (or loaded from Numba's cache) in setup by a fit on 512 rows.
``LayersEpoch`` does the same for config B with dropout 0.5, with PReLU and with batch
norm (``common.LAYER_CONFIGS``), which train in ``kernels/layers.py``.
"""
from . import common


class LayersEpoch:
    """One epoch of a configuration of ``common.LAYER_CONFIGS`` (``Epoch`` adds the
    configurations A-D and the memory benchmark)."""
    params = [list(common.LAYER_CONFIGS)]
    param_names = ["config"]
    number = 1
    repeat = (2, 5, 10.0)
    warmup_time = 0
    timeout = 600

    def setup(self, config):
        common.warm_fit(config)
        self.X, self.y = common.mnist_like(common.N_TRAIN)
        self.net = common.network(config)

    def time_epoch(self, config):
        common.fit_epoch(self.net, config, self.X, self.y)


class Epoch(LayersEpoch):
    params = [list(common.CONFIGS)]

    def peakmem_fit(self, config):
        """Peak resident memory of the process through one epoch's ``fit``: the Python
        and Numba runtime, the 157 MB of float32 data (built without temporaries), and
        whatever ``fit`` allocates (sparse index, workspaces, copies)."""
        common.fit_epoch(self.net, config, self.X, self.y)
