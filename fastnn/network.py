"""The Network: layer spec, flat parameter buffer, and fit / predict / evaluate / gradients."""
import numbers
import time

import numpy as np

from . import activations as _act
from . import costs as _costs
from . import optimizers as _opt
from . import schedules as _sched
from ._validation import check_int, check_real, check_targets, check_X
from .callbacks import HOOKS, EarlyStopping, History, ProgressBar, _DisplayCallback
from .initializers import INITIALIZERS, initialize
from .kernels import halves as _kh
from .kernels import layers as _kl
from .kernels import threads as _threads
from .kernels import train as _kt

#: Rows per workspace chunk: a mini-batch larger than this is processed in chunks whose
#: summed gradients are added up, so memory stays bounded even for full-batch training.
CHUNK = 512
#: Smallest chunk that takes the BLAS path (blocked gemm) instead of the hand-written loops.
#: Measured on MNIST, 784-100-10 relu/softmax, float32, one epoch of 50,000 samples on
#: this project's 2-core machine: batch 32 loops 0.70 s vs BLAS 1.19 s; batch 64 loops
#: 0.55 s vs BLAS 0.49 s; batch 256 loops 0.60 s vs BLAS 0.37 s. Crossover: 32..64.
BLAS_MIN_BATCH = 48

#: Rows per part of a BLAS-path batch: the parts of a batch run on Numba's threads at
#: once, each with single-threaded BLAS, and their gradients are added in part order, so
#: the weights depend on this (with the batch size) but not on the thread count.
#: Measured on MNIST, 784-512-512-10 relu/softmax, batch 256, float32, 2 threads, one
#: epoch of 50,000 samples: parts of 64 rows 1.21-1.29 s, 128 rows 1.12-1.23 s, 256 (one
#: part: one thread) 1.90-1.99 s; one np.dot per product on 2 OpenBLAS threads 1.31 s.
PART_ROWS = 128

#: Largest fraction of non-zero inputs for which small batches use the CSR index of X.
SPARSE_MAX_DENSITY = 0.5

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _workers(chunk):
    """Parts a kernel may compute at once: Numba's threads for the BLAS path
    (``threads.workers``, which starts the pool), 1 below it (no parallel loop runs, and
    the pool stays unstarted, so a fork of this process keeps Numba's parallel loops;
    ``fit`` asks for the threads all the same when small batches would run the first
    layer in two halves, ``kernels.halves``)."""
    return _threads.workers() if chunk >= BLAS_MIN_BATCH else 1


class DivergenceError(FloatingPointError):
    """Training produced a non-finite cost or non-finite weights.

    The network keeps the weights of the last good epoch. ``epoch`` is the epoch (counted
    over the network's life, from 1) that diverged; ``history`` holds the epochs before it.
    """

    def __init__(self, message, epoch, history):
        super().__init__(message)
        self.epoch = epoch
        self.history = history

    def __reduce__(self):
        # the default (the class called with self.args) lacks epoch and history, so the
        # error would not survive the trip back from a Dask or joblib worker
        return (type(self), (self.args[0] if self.args else "", self.epoch, self.history),
                self.__dict__)


class Network:
    """A fully-connected feed-forward network (multi-layer perceptron).

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes: input, hidden..., output (at least two entries, each >= 1).
    hidden : str or sequence of str, default "relu"
        Hidden activation, one name for all hidden layers or one per hidden layer:
        identity, sigmoid, tanh, relu, leaky_relu, elu (alpha 1), gelu (exact erf form,
        as ``torch.nn.GELU()``) or silu (``z * sigmoid(z)``; "swish" is an alias, kept
        as "silu"). gelu and silu layers keep their pre-activations for the backward
        pass (one more buffer of the layer's size in the workspace).
    output : str, default "softmax"
        Output activation: identity, sigmoid, tanh or softmax.
    cost : str or None, default None
        quadratic, cross_entropy or log_likelihood; None picks the natural pair of the
        output (softmax -> log_likelihood, sigmoid -> cross_entropy, identity/tanh ->
        quadratic). See :mod:`fastnn.costs` for the valid pairs.
    init : str, default "auto"
        gaussian, lecun, xavier, xavier_uniform, he, he_uniform, or auto (he for the relu
        family -- relu, leaky_relu, elu, gelu, silu -- lecun otherwise). See
        :mod:`fastnn.initializers`.
    dtype : {"float32", "float64"}, default "float32"
        Floating type of the parameters and of all computation.
    seed : int, default 0
        Seeds the initial weights and the per-epoch shuffling.
    leaky_slope : float, default 0.01
        Slope of leaky_relu for negative inputs (>= 0).
    batch_norm : bool or sequence of bool, default False
        Batch normalisation (Ioffe & Szegedy, 2015) after the dense part of every hidden
        layer, or of those marked True (one flag per hidden layer): ``z`` is normalised
        with the batch's mean and (biased) variance in training and with running
        averages at inference, then scaled and shifted by the learnable ``gammas[l]``
        (init 1) and ``betas[l]`` (init 0), before the activation, as
        ``torch.nn.BatchNorm1d`` between ``Linear`` and the activation. The running
        averages move by ``batch_norm_momentum`` after each batch (towards the batch's
        unbiased variance, as PyTorch; a batch of one sample leaves them unchanged).
        With batch norm a whole mini-batch is processed at once (its statistics couple
        its samples), so memory grows with ``batch_size``.
    batch_norm_momentum : float, default 0.1
        PyTorch's ``momentum``: ``running = (1 - momentum) * running + momentum * batch``.
    batch_norm_eps : float, default 1e-5
        Added to the variance before the square root.

    Notes
    -----
    ``hidden="prelu"`` is PReLU (He et al., 2015): ``z`` for z > 0 and ``alpha_j z``
    otherwise, with a learnable slope per unit (``alphas[l]``, init 0.25 as
    ``torch.nn.PReLU(num_parameters=m)``), trained with the weights. PReLU slopes and the
    batch-norm scales and shifts follow the weights and biases in :attr:`params`; like
    biases they take no ``l2``/``l1`` penalty (an optimizer's ``weight_decay`` applies to
    them, as in PyTorch). Networks with PReLU, batch norm or dropout train in kernels of
    their own (``fastnn/kernels/layers.py``), which build each batch's whole gradient
    before the step rather than fusing the update into the backward pass.

    Attributes
    ----------
    params : ndarray
        The flat parameter buffer; ``weights`` and ``biases`` are views into it.
    weights : list of ndarray
        ``weights[l]`` has shape ``(fan_in, fan_out)``: ``Z = A @ W + b``.
    biases : list of ndarray
        ``biases[l]`` has shape ``(fan_out,)``.
    alphas, gammas, betas : list of (ndarray or None)
        Per hidden layer: the PReLU slopes, and the batch-norm scale and shift (views
        into ``params``), or None where the layer has none.
    running_means, running_vars : list of (ndarray or None)
        Per hidden layer with batch norm, the running statistics used at inference.
    epochs_trained : int
        Epochs completed over all calls to :meth:`fit`.
    """

    def __init__(self, sizes, hidden="relu", output="softmax", cost=None, init="auto",
                 dtype="float32", seed=0, leaky_slope=0.01, batch_norm=False,
                 batch_norm_momentum=0.1, batch_norm_eps=1e-5):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a sequence of layer sizes; got {sizes!r}")
        sizes = [check_int("sizes", s, 1) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output size; got {sizes}")
        n_hidden = len(sizes) - 2
        if isinstance(hidden, str):
            hidden = [hidden] * n_hidden
        else:
            hidden = list(hidden)
            if len(hidden) != n_hidden:
                raise ValueError(f"hidden has {len(hidden)} names but the network has "
                                 f"{n_hidden} hidden layers")
        for h in hidden:
            _act.check_name(h, _act.HIDDEN, "hidden")
        hidden = [_act.ALIASES.get(h, h) for h in hidden]
        _act.check_name(output, _act.OUTPUT, "output")
        cost = _costs.resolve(output, cost)
        if not isinstance(init, str):
            raise TypeError(f"init must be a string; got {init!r}")
        if init != "auto" and init not in INITIALIZERS:
            raise ValueError(f"init={init!r} is not known; valid: {['auto', *INITIALIZERS]}")
        if isinstance(dtype, type) or isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype).name
        if dtype not in _DTYPES:
            raise ValueError(f"dtype={dtype!r} is not supported; valid: {sorted(_DTYPES)}")
        seed = check_int("seed", seed, 0)
        leaky_slope = check_real("leaky_slope", leaky_slope, 0.0)
        batch_norm = _per_hidden("batch_norm", batch_norm, n_hidden, _check_flag)
        batch_norm_momentum = check_real("batch_norm_momentum", batch_norm_momentum, 0.0,
                                         1.0)
        batch_norm_eps = check_real("batch_norm_eps", batch_norm_eps, 0.0, low_open=True)

        self.sizes = sizes
        self.hidden = hidden
        self.output = output
        self.cost = cost
        self.init = init
        self.dtype = np.dtype(_DTYPES[dtype])
        self.seed = seed
        self.leaky_slope = leaky_slope
        self.batch_norm = batch_norm
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_eps = batch_norm_eps
        self.epochs_trained = 0
        self._labels_fitted = None

        L = len(sizes) - 1
        self._layout = np.zeros((L, 4), np.int64)
        off = 0
        for l, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])):
            self._layout[l] = (off, off + n * m, n, m)
            off += n * m + m
        self._codes = np.array([_act.HIDDEN[h] for h in hidden] + [_act.OUTPUT[output]],
                               np.int64)
        self._cost_code = _costs.COSTS[cost]
        self._slope = self.dtype.type(leaky_slope)
        # The extra parameters, after all layers: per hidden layer, PReLU slopes, then
        # batch-norm scale and shift (kernels/layers.py: the ``ext`` table).
        self._ext = np.full((L, 3), -1, np.int64)
        n_layers_params = off
        soff = 0
        for l in range(n_hidden):
            m = sizes[l + 1]
            if hidden[l] == "prelu":
                self._ext[l, 0] = off
                off += m
            if batch_norm[l]:
                self._ext[l, 1] = off
                self._ext[l, 2] = soff
                off += 2 * m
                soff += 2 * m
        self._layout_x = np.vstack([self._layout, [[n_layers_params, n_layers_params, 0,
                                                    off - n_layers_params]]])
        self._extended = bool((self._ext >= 0).any())
        self._params = np.empty(off, self.dtype)
        self._stats = np.empty(soff, self.dtype)
        self._weights = [self._params[w:b].reshape(n, m) for w, b, n, m in self._layout]
        self._biases = [self._params[b:b + m] for w, b, n, m in self._layout]

        def views(buf, col, shift):
            return [None if self._ext[l, col] < 0 else
                    buf[self._ext[l, col] + shift * m:self._ext[l, col] + (shift + 1) * m]
                    for l, m in enumerate(sizes[1:-1])]
        self._alphas = views(self._params, 0, 0)
        self._gammas = views(self._params, 1, 0)
        self._betas = views(self._params, 1, 1)
        self._running_means = views(self._stats, 2, 0)
        self._running_vars = views(self._stats, 2, 1)
        self._weight_mask = np.zeros(off, bool)
        for w, b, n, m in self._layout:
            self._weight_mask[w:b] = True

        if init == "auto":
            relu = any(h in _act.RELU_FAMILY for h in hidden)
            init = "he" if relu else "lecun"
        self.init_resolved = init
        rng = np.random.default_rng(seed)
        for l, (W, b) in enumerate(initialize(sizes, init, rng)):
            self._weights[l][...] = W
            self._biases[l][...] = b
        for l in range(n_hidden):   # PyTorch's initial values
            if self._alphas[l] is not None:
                self._alphas[l][...] = 0.25
            if self._gammas[l] is not None:
                self._gammas[l][...] = 1.0
                self._betas[l][...] = 0.0
                self._running_means[l][...] = 0.0
                self._running_vars[l][...] = 1.0

    # --- parameters -------------------------------------------------------------------
    @property
    def params(self):
        """The flat parameter buffer (writable; ``weights`` and ``biases`` view into it)."""
        return self._params

    @property
    def weights(self):
        """List of weight matrices, ``weights[l]`` of shape ``(fan_in, fan_out)``."""
        return list(self._weights)

    @property
    def biases(self):
        """List of bias vectors, ``biases[l]`` of shape ``(fan_out,)``."""
        return list(self._biases)

    @property
    def alphas(self):
        """Per hidden layer, the PReLU slopes (a view into ``params``) or None."""
        return list(self._alphas)

    @property
    def gammas(self):
        """Per hidden layer, the batch-norm scale (a view into ``params``) or None."""
        return list(self._gammas)

    @property
    def betas(self):
        """Per hidden layer, the batch-norm shift (a view into ``params``) or None."""
        return list(self._betas)

    @property
    def running_means(self):
        """Per hidden layer, the batch-norm running mean (writable) or None."""
        return list(self._running_means)

    @property
    def running_vars(self):
        """Per hidden layer, the batch-norm running variance (writable) or None."""
        return list(self._running_vars)

    @property
    def n_params(self):
        return self._params.size

    def __repr__(self):
        return (f"Network({self.sizes}, hidden={self.hidden}, output={self.output!r}, "
                f"cost={self.cost!r}, dtype={self.dtype.name!r})")

    def _is_classifier(self):
        if self._labels_fitted is not None:
            return self._labels_fitted
        return self.output == "softmax"

    def _check_y(self, y, n, name="y"):
        """Targets as ``(labels, Y, use_labels, binary)``.

        Integer labels ``(n,)`` are class indices for several outputs. With a single
        output they are binary class labels 0/1 for a sigmoid output (``binary``: kept as
        float targets ``Y`` of shape ``(n, 1)``, since the compiled code counts argmax
        hits only) and regression values for any other output.
        """
        if self.sizes[-1] == 1:
            try:
                arr = np.asarray(y)
            except Exception:  # ragged and the like: check_targets explains
                arr = None
            if (arr is not None and arr.ndim == 1
                    and (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_)):
                if self.output != "sigmoid":
                    y = arr.astype(np.float64)          # regression values
                else:
                    if arr.shape[0] != n:
                        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n} "
                                         f"samples")
                    if not np.isin(arr, (0, 1)).all():
                        raise ValueError(
                            f"{name} holds labels in [{arr.min()}, {arr.max()}] but a "
                            f"network with one sigmoid output takes binary labels 0 or 1 "
                            f"(or float targets of shape (n, 1))")
                    Y = np.ascontiguousarray(arr.reshape(n, 1), dtype=self.dtype)
                    return np.empty(0, np.int64), Y, False, True
        return (*check_targets(y, n, self.sizes[-1], self.dtype, name), False)

    def _binary_correct(self, X, Y):
        """Samples whose output is on the side of 0.5 of their 0/1 target."""
        return int(np.count_nonzero((self.forward(X)[:, 0] > 0.5) == (Y[:, 0] > 0.5)))

    def _metrics(self, X, Y, loss, correct, use_labels, binary, val):
        """An epoch's ``loss`` (mean), ``accuracy`` for labels (binary 0/1 labels
        counted by a forward pass: the compiled code counts argmax hits) and, with
        ``val``, ``val_loss``/``val_accuracy``."""
        n = X.shape[0]
        metrics = {"loss": loss / n}
        if binary:
            correct = self._binary_correct(X, Y)
        if use_labels or binary:
            metrics["accuracy"] = correct / n
        if val is not None:
            self._val_metrics(val, metrics)
        return metrics

    def _val_metrics(self, val, metrics):
        """Add ``val_loss`` (and ``val_accuracy``) of ``val = (X, labels, Y, use_labels,
        binary)`` to ``metrics``."""
        Xv, lab, Yv, use_labels, binary = val
        vloss, vcorrect = self._evaluate(Xv, lab, Yv, use_labels)
        metrics["val_loss"] = vloss / Xv.shape[0]
        if binary:
            vcorrect = self._binary_correct(Xv, Yv)
        if use_labels or binary:
            metrics["val_accuracy"] = vcorrect / Xv.shape[0]

    def _perm(self, epoch, n):
        """The sample order of ``epoch`` (0-based): a function of (seed, epoch, n) only."""
        return np.random.default_rng([self.seed, 1, epoch]).permutation(n).astype(np.int64)

    def _chunk(self, rows):
        """Rows per chunk (part) for a batch or an inference of ``rows`` rows: all of them
        below ``BLAS_MIN_BATCH``, else equal parts of about ``PART_ROWS``."""
        if rows < BLAS_MIN_BATCH:
            return max(1, rows)
        parts = -(-rows // PART_ROWS)
        return -(-rows // parts)

    def _dropout_seed(self):
        """The seed of the dropout masks: derived from the network's seed (< 2**32)."""
        return int(np.random.SeedSequence([self.seed, 2]).generate_state(1)[0])

    # --- training ---------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, optimizer="sgd", l2=0.0,
            validation_data=None, shuffle=True, progress=True, schedule=None,
            early_stopping=None, callbacks=(), l1=0.0, max_norm=None, clip_norm=None,
            dropout=0.0):
        """Train with mini-batch gradient descent; each epoch runs in one compiled call.

        With a full-batch optimizer (:class:`fastnn.LBFGS`, :class:`fastnn.CG`) it runs
        ``scipy.optimize.minimize`` on the whole data set instead, one iteration per
        "epoch".

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Inputs. Converted once per call to a C-contiguous array of the network's
            dtype; no copy is made when ``X`` already is one, and none per epoch
            (each mini-batch is gathered into a small preallocated workspace).
        y : array_like
            Integer class labels ``(n_samples,)`` in ``[0, outputs)``, or float targets
            ``(n_samples, outputs)``. A network with one sigmoid output takes binary
            labels: integers or bools 0/1 of shape ``(n_samples,)`` (``predict`` then
            returns 0/1 labels); with one output of another kind (identity, tanh),
            integers ``(n_samples,)`` are regression values like floats.
        epochs : int, default 1
            Passes over the data (0 trains nothing); for a full-batch optimizer, the
            most iterations to run (scipy's ``maxiter``).
        batch_size : int, default 32
            Samples per gradient step, from 1 (online learning) to ``n_samples`` (full
            batch; larger values are clipped to it). The last, smaller batch is used and
            averaged over its own size.
        optimizer : str or optimizer, default "sgd"
            ``"sgd"`` (``SGD(lr=0.01)``), ``"adam"``, ``"adamw"``, ``"rmsprop"``,
            ``"adagrad"`` (PyTorch's defaults), ``"lbfgs"``, ``"cg"`` or an instance such
            as ``fastnn.SGD(lr=3.0)``, ``fastnn.Adam(lr=1e-3)`` or
            ``fastnn.LBFGS(maxcor=20)``. A mini-batch optimizer instance keeps its state
            (velocities, moments, step count) across fits of this network. The
            full-batch optimizers ignore ``batch_size`` and ``shuffle`` and take no
            ``schedule``, ``l1``, ``max_norm`` or ``clip_norm``.
        l2 : float, default 0.0
            Adds ``(l2/2) * sum(w**2)`` over all weights (not biases) to the cost; with
            Nielsen's lambda and n training samples, ``l2 = lambda / n``. (The
            optimizers' ``weight_decay`` is PyTorch's: it acts on biases too.)
        validation_data : tuple (X_val, y_val), optional
            Evaluated after every epoch (``val_loss``, ``val_accuracy``).
        shuffle : bool, default True
            Visit the samples in a new random order each epoch (seeded by the network's
            seed and epoch number); otherwise in the given order.
        progress : bool or progress display, default True
            Show progress on standard error: on a terminal with tqdm installed
            (``pip install "fastnn[progress]"``) a bar within each epoch, otherwise one
            line per epoch. ``False`` prints nothing. An object with the hooks of
            :mod:`fastnn.callbacks` may be passed instead.
        schedule : callable or schedule object, optional
            The learning rate of each epoch of this call, in place of the optimizer's
            ``lr``: a callable ``schedule(epoch) -> learning rate`` (``epoch`` counts
            from 0), e.g. a linear decay ``lambda e: 0.2 * (1 - e / epochs)``, or an
            object of :mod:`fastnn.schedules` (``StepDecay``, ``Exponential``,
            ``InverseScaling``, ``Cosine``, ``ReduceOnPlateau``) or any object with the
            protocol described there (``lr(epoch)``, optional ``start(base_lr,
            epochs)`` and ``on_epoch_end(epoch, metrics)``). The rates of all epochs
            are checked before training starts, so a bad rate is refused before
            anything changes. The rate used goes into the History.
        early_stopping : int or EarlyStopping, optional
            Stop when the monitored metric has not improved for this many epochs and
            put the best epoch's weights back (see :class:`fastnn.EarlyStopping`). An
            int ``patience`` monitors ``val_loss`` with ``validation_data`` and the
            training ``loss`` without it.
        callbacks : sequence of callbacks, default ()
            Objects with any of the hooks ``on_train_begin(net, epochs)``,
            ``on_epoch_begin(epoch, n_samples)``, ``on_epoch_end(epoch, metrics, net)``
            (return True to stop training) and ``on_train_end(net, history)``, such as
            :class:`fastnn.ModelCheckpoint`; see :mod:`fastnn.callbacks`. A
            :class:`fastnn.ProgressBar` among them replaces the one of
            ``progress=True``.
        l1 : float, default 0.0
            Adds ``l1 * sum(|w|)`` over all weights (not biases) to the cost: its
            gradient ``l1 * sign(w)`` (0 at w = 0) joins the mean gradient like the
            ``l2`` term.
        max_norm : float, optional
            Max-norm constraint (Srivastava et al., 2014): after every step, each
            unit's incoming weight vector (a column of ``weights[l]``) whose 2-norm
            exceeds ``max_norm`` is scaled down to norm ``max_norm`` (Keras's
            ``MaxNorm(max_norm, axis=0)``, without its 1e-7 in the denominator).
        clip_norm : float, optional
            Gradient clipping by global norm, as ``torch.nn.utils.clip_grad_norm_``:
            the mean data gradient over all weights and biases is multiplied by
            ``min(1, clip_norm / (norm + 1e-6))`` before ``l2``, ``l1`` and the
            optimizer's weight decay are added (in PyTorch, ``weight_decay`` is
            likewise added after clipping; ``l2``/``l1`` written into the loss would be
            clipped too). Small batches then take the unfused loops, somewhat slower.
        dropout : float or sequence of float, default 0.0
            Inverted dropout (Srivastava et al., 2014) on the hidden layers' outputs:
            one rate for all hidden layers or one per hidden layer, each in [0, 1). In
            training each unit's output is zeroed with that probability and the kept
            ones are scaled by ``1 / (1 - rate)``; at inference nothing is dropped. The
            masks come from a counter-based hash of (the network's seed, the optimizer
            step, the layer, the sample's row in ``X``, the unit), so they are the same
            on every run and any number of threads. Not for full-batch optimizers.

        Returns
        -------
        History
            ``history.history`` holds per-epoch lists ``loss``, ``accuracy``
            (classifiers), ``val_loss``, ``val_accuracy``, ``lr`` and ``seconds``; it
            ends at the epoch where a callback or early stopping stopped training.

        Raises
        ------
        ValueError, TypeError
            For bad arguments, including a metric monitored by the schedule, early
            stopping or a callback that this fit does not record (``val_loss``
            without ``validation_data``); the network is left unchanged. (Only a
            schedule object whose rate turns bad after a metric-driven change raises
            during training, before the epoch that would use the rate.)
        DivergenceError
            If the cost or the weights become non-finite; the network keeps the weights
            of the last complete epoch.
        """
        scan = []

        def finite(arr):   # one pass: the NaN/inf check and the CSR row pointer
            indptr, bad = _kt.count_nonzeros(arr)
            scan.append(indptr)
            return bad == 0

        small = (isinstance(batch_size, numbers.Integral) and batch_size < BLAS_MIN_BATCH
                 and not clip_norm)   # the sparse index will be wanted (_sparse_index)
        X = check_X(X, self.sizes[0], self.dtype, finite=finite if small else None)
        labels, Y, use_labels, binary = self._check_y(y, X.shape[0])
        epochs = check_int("epochs", epochs, 0)
        batch_size = min(check_int("batch_size", batch_size, 1), X.shape[0])
        opt = _opt.get(optimizer)
        full_batch = isinstance(opt, _opt.FullBatchOptimizer)
        l2 = check_real("l2", l2)
        l1 = check_real("l1", l1)
        max_norm = _check_optional_positive("max_norm", max_norm)
        clip_norm = _check_optional_positive("clip_norm", clip_norm)
        drop = _per_hidden("dropout", dropout, len(self.sizes) - 2, _check_rate)
        if full_batch and (l1 or max_norm or clip_norm or any(drop)):
            raise ValueError(f"l1, max_norm, clip_norm and dropout do not apply to the "
                             f"full-batch optimizer {opt!r}; use a mini-batch optimizer "
                             f"such as fastnn.SGD or fastnn.Adam")
        if full_batch and any(self.batch_norm):
            raise ValueError(f"a network with batch_norm trains with mini-batches; the "
                             f"full-batch optimizer {opt!r} does not apply")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a tuple (X_val, y_val)")
            Xv = check_X(validation_data[0], self.sizes[0], self.dtype, "validation_data[0]")
            val = (Xv, *self._check_y(validation_data[1], Xv.shape[0], "validation_data[1]"))
            if val[3:] != (use_labels, binary):
                raise ValueError("validation_data[1] must be of the same kind as y "
                                 "(labels, binary labels or float targets)")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool; got {shuffle!r}")
        rates, sched = _check_schedule(schedule, opt, epochs)
        cbs, cb_names = _check_callbacks(progress, callbacks, early_stopping,
                                         val is not None)
        recorded = {"loss", "seconds"} | (set() if full_batch else {"lr"})
        if use_labels or binary:
            recorded.add("accuracy")
        if val is not None:
            recorded |= {"val_loss", "val_accuracy"} if use_labels or binary else {"val_loss"}
        _check_monitors(recorded, [("schedule", sched), *zip(cb_names, cbs)])

        history = History()
        if epochs == 0:
            return history
        for cb in cbs:   # may still refuse (ValueError/TypeError): nothing has changed yet
            hook = getattr(cb, "on_train_begin", None)
            if hook is not None:
                hook(self, epochs)
        self._labels_fitted = use_labels or binary
        if full_batch:
            return self._fit_full_batch(opt, X, labels, Y, use_labels, binary, val, epochs,
                                        l2, cbs, history)
        opt._bind(self)
        hyper = opt.hyper()
        chunk = self._chunk(batch_size)
        n = X.shape[0]
        drop = np.asarray(drop + [0.0], np.float64)   # one rate per layer, output: 0
        layered = self._extended or drop.any()
        drop_seed = self._dropout_seed()
        if layered and any(self.batch_norm):
            chunk = batch_size   # a batch's statistics are taken over one chunk
        # A progress bar that wants updates within the epoch gets the epoch in slices of
        # whole batches: the same batches and updates in the same order, so the weights
        # are bitwise those of a single call.
        slices = max([1] + [int(getattr(cb, "updates_per_epoch", 1)) for cb in cbs])
        on_begin = [cb.on_epoch_begin for cb in cbs if hasattr(cb, "on_epoch_begin")]
        on_batch = [cb.on_batch for cb in cbs if hasattr(cb, "on_batch")]
        indptr, indices, values = self._sparse_index(X, batch_size,
                                                     fused=not (clip_norm or layered),
                                                     indptr=scan[0] if scan else None)
        step = max(1, -(-n // (slices * batch_size))) * batch_size
        nwork = _workers(chunk)
        if indptr.size and _kh.halves_pay(self.sizes[1], batch_size, opt.code, l1, max_norm,
                                          True):
            # the first layer in two halves on two threads (same bits); starts the pool
            nwork = _threads.workers()
        for k in range(epochs):
            epoch = self.epochs_trained
            lr = rates[k] if sched is None else _rate(sched.lr, k)
            hyper[0] = lr
            order = self._perm(epoch, n) if shuffle else np.arange(n, dtype=np.int64)
            good_params = self._params.copy()
            good_stats = self._stats.copy()
            good_state = opt._snapshot()
            for hook in on_begin:
                hook(epoch + 1, n)
            t0 = time.perf_counter()
            loss, correct, done = 0.0, 0, 0
            for s in range(0, n, step):
                part = order[s:s + step]
                with _threads.blas_scope(chunk >= BLAS_MIN_BATCH):
                    if layered:
                        lo, co, dn = _kl.train_epoch_ext(
                            self._params, self._layout, self._layout_x, self._codes,
                            self._slope, self._cost_code, self._ext, self._stats, drop,
                            drop_seed, self.batch_norm_momentum, self.batch_norm_eps,
                            X, Y, labels, use_labels, part, batch_size, chunk,
                            BLAS_MIN_BATCH, l2, l1, max_norm, clip_norm, opt.code, hyper,
                            opt.state, opt.step)
                    else:
                        lo, co, dn = _kt.train_epoch(
                            self._params, self._layout, self._codes, self._slope,
                            self._cost_code, X, Y, labels, use_labels, part, batch_size,
                            chunk, BLAS_MIN_BATCH, l2, l1, max_norm, clip_norm, opt.code,
                            hyper, opt.state, opt.step, indptr, indices, values, nwork)
                loss, correct, done = loss + lo, correct + co, done + dn
                if dn < part.size:
                    break
                if slices > 1:
                    for hook in on_batch:
                        hook(done, loss)
            seconds = time.perf_counter() - t0
            if done < n or not np.isfinite(self._params).all():
                self._params[...] = good_params
                self._stats[...] = good_stats
                opt._restore(good_state)
                raise DivergenceError(
                    f"training diverged in epoch {epoch + 1}: the cost or the weights became "
                    f"NaN or infinite (try a smaller learning rate); the network keeps the "
                    f"weights from the end of epoch {epoch}", epoch + 1, history)
            metrics = self._metrics(X, Y, loss, correct, use_labels, binary, val)
            metrics["lr"] = lr
            metrics["seconds"] = seconds
            if self._end_epoch(k, metrics, history, sched, cbs):
                break
        return self._end_training(cbs, history)

    def _end_epoch(self, k, metrics, history, sched, cbs):
        """Count and record epoch ``k`` of this fit and run the hooks; True to stop."""
        self.epochs_trained += 1
        history.append(self.epochs_trained, metrics)
        hook = getattr(sched, "on_epoch_end", None)
        if hook is not None:
            hook(k, dict(metrics))
        stop = False
        for cb in cbs:
            hook = getattr(cb, "on_epoch_end", None)
            if hook is not None:
                result = hook(self.epochs_trained, dict(metrics), self)
                stop |= isinstance(result, (bool, np.bool_)) and bool(result)
        return stop

    def _end_training(self, cbs, history):
        for cb in cbs:
            hook = getattr(cb, "on_train_end", None)
            if hook is not None:
                hook(self, history)
        return history

    def _fit_full_batch(self, opt, X, labels, Y, use_labels, binary, val, epochs, l2, cbs,
                        history):
        """``fit`` with a FullBatchOptimizer: scipy iterations on the whole data set."""
        n = X.shape[0]
        on_begin = [cb.on_epoch_begin for cb in cbs if hasattr(cb, "on_epoch_begin")]
        fun = self._objective(X, labels, Y, use_labels, l2)
        run = {"t0": time.perf_counter(), "good": self._params.copy(), "k": 0}

        def callback(xk):
            seconds = time.perf_counter() - run["t0"]
            self._params[...] = xk
            loss, correct = self._evaluate(X, labels, Y, use_labels)
            if not (np.isfinite(loss) and np.isfinite(self._params).all()):
                raise _Diverged
            metrics = self._metrics(X, Y, loss, correct, use_labels, binary, val)
            metrics["seconds"] = seconds
            for hook in on_begin:   # no display within an iteration
                hook(self.epochs_trained + 1, n)
            run["good"] = self._params.copy()
            stop = self._end_epoch(run["k"], metrics, history, None, cbs)
            run["k"] += 1
            run["t0"] = time.perf_counter()
            if stop:
                run["stopped"] = True
                raise StopIteration   # scipy >= 1.11 ends the run and returns its result

        try:
            result = opt.minimize(fun, self._params.astype(np.float64), epochs, callback)
            self._params[...] = run["good"] if run.get("stopped") else result.x
            if not np.isfinite(self._params).all():
                raise _Diverged
        except StopIteration:         # older scipy lets it through
            self._params[...] = run["good"]
        except _Diverged:
            self._params[...] = run["good"]
            raise DivergenceError(
                f"training diverged in iteration {self.epochs_trained + 1}: the cost or the "
                f"weights became NaN or infinite; the network keeps the weights from the end "
                f"of iteration {self.epochs_trained}", self.epochs_trained + 1,
                history) from None
        return self._end_training(cbs, history)

    def _objective(self, X, labels, Y, use_labels, l2):
        """``fun(x) -> (loss, gradient)`` in float64 for scipy: the parameters set to
        ``x`` (in the network's dtype), then one compiled pass over all of ``X``."""
        def fun(x):
            self._params[...] = x
            loss, grad = self._loss_and_gradient(X, labels, Y, use_labels, l2)
            return loss, grad.astype(np.float64)
        return fun

    @staticmethod
    def _sparse_index(X, batch_size, fused=True, indptr=None):
        """The CSR index of X's non-zeros (``(indptr, indices, values)``) when small
        batches would profit from it.

        Small batches (the fused loop path) read only the non-zero inputs through it when
        at most SPARSE_MAX_DENSITY of X is non-zero; it costs 6 bytes per non-zero in
        float32 (45 MB for MNIST's 50,000 training images: ``_kt.nonzero_entries``) and
        one pass over X per ``fit``.
        ``fused=False`` (gradient clipping: the unfused loops) never uses it. ``indptr``:
        the row pointer if already computed (``fit`` gets it with the NaN check).
        """
        empty = np.empty(0, np.int64), np.empty(0, np.uint16), np.empty(0, X.dtype)
        if not fused or batch_size >= BLAS_MIN_BATCH or batch_size > CHUNK:
            return empty
        if indptr is None:
            indptr = _kt.count_nonzeros(X)[0]
        if indptr[-1] > SPARSE_MAX_DENSITY * X.size:
            return empty
        return (indptr, *_kt.nonzero_entries(X, indptr))

    # --- inference --------------------------------------------------------------------
    def forward(self, X):
        """Output activations for ``X``: an array of shape ``(n_samples, outputs)``."""
        X = check_X(X, self.sizes[0], self.dtype)
        out = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        if self._extended:
            self._predict_ext(X, out, np.empty((0, self.sizes[-1]), self.dtype),
                              np.empty(0, np.int64), False, False)
        else:
            chunk = self._chunk(X.shape[0])
            with _threads.blas_scope(chunk >= BLAS_MIN_BATCH):
                _kt.predict(self._params, self._layout, self._codes, self._slope, X, out,
                            chunk, BLAS_MIN_BATCH, _workers(chunk))
        return out

    def _predict_ext(self, X, out, Y, labels, use_labels, want_cost):
        """``layers.predict_ext``: inference with PReLU / batch norm (running stats)."""
        chunk = self._chunk(X.shape[0])
        with _threads.blas_scope(chunk >= BLAS_MIN_BATCH):
            return _kl.predict_ext(self._params, self._layout, self._codes, self._slope,
                                   self._ext, self._stats, self.batch_norm_eps, X, out,
                                   chunk, BLAS_MIN_BATCH, self._cost_code, Y, labels,
                                   use_labels, want_cost)

    def predict_proba(self, X):
        """Same as :meth:`forward`: class probabilities for a softmax output."""
        return self.forward(X)

    def predict(self, X):
        """Class indices (int64) for a classifier, else the output values.

        A network is a classifier if its output is softmax or it was fitted on labels.
        A single-output classifier (a sigmoid fitted on binary labels) predicts 1 where
        its output exceeds 0.5 and 0 elsewhere; a regression network returns its output
        values, shape ``(n_samples, outputs)``.
        """
        return self._decide(self.forward(X))

    def _decide(self, out):
        """:meth:`predict` of the outputs ``out``: labels for a classifier, else ``out``."""
        if not self._is_classifier():
            return out
        if self.sizes[-1] == 1:
            return (out[:, 0] > 0.5).astype(np.int64)
        return out.argmax(axis=1)

    def _evaluate(self, X, labels, Y, use_labels):
        if self._extended:
            return self._predict_ext(X, np.empty((0, self.sizes[-1]), self.dtype), Y,
                                     labels, use_labels, True)
        chunk = self._chunk(X.shape[0])
        with _threads.blas_scope(chunk >= BLAS_MIN_BATCH):
            return _kt.evaluate(self._params, self._layout, self._codes, self._slope,
                                self._cost_code, X, Y, labels, use_labels, chunk,
                                BLAS_MIN_BATCH, _workers(chunk))

    def evaluate(self, X, y):
        """Mean cost (data term, no regularisation) and, for labels, accuracy.

        Returns
        -------
        dict
            ``{"loss": float, "accuracy": float}`` (``accuracy`` only for labels,
            binary 0/1 labels included).
        """
        X = check_X(X, self.sizes[0], self.dtype)
        labels, Y, use_labels, binary = self._check_y(y, X.shape[0])
        loss, correct = self._evaluate(X, labels, Y, use_labels)
        return self._metrics(X, Y, loss, correct, use_labels, binary, None)

    def gradients(self, X, y, l2=0.0, l1=0.0):
        """The cost over ``(X, y)`` and its gradient with respect to ``params``.

        The cost is the mean per-sample cost plus ``(l2/2) * sum(w**2)`` and
        ``l1 * sum(|w|)`` over the weights (the L1 term's gradient is ``l1 * sign(w)``,
        0 at w = 0, as in ``fit``). With batch norm the network is in training mode:
        each batch-norm layer normalises with the statistics of all of ``X`` (processed
        in one piece), and the running statistics are left as they are. No dropout.

        Returns
        -------
        loss : float
        grad : ndarray
            Same shape, dtype and layout as :attr:`params`.
        """
        X = check_X(X, self.sizes[0], self.dtype)
        labels, Y, use_labels, _ = self._check_y(y, X.shape[0])
        l2 = check_real("l2", l2)
        l1 = check_real("l1", l1)
        loss, grad = self._loss_and_gradient(X, labels, Y, use_labels, l2)
        if l1:
            w = self._params[self._weight_mask]
            grad[self._weight_mask] += self.dtype.type(l1) * np.sign(w)
            loss += l1 * float(np.abs(w.astype(np.float64)).sum())
        return loss, grad

    def _loss_and_gradient(self, X, labels, Y, use_labels, l2):
        """``gradients`` on checked inputs: one compiled pass over all of ``X``."""
        grad = np.empty_like(self._params)
        n = X.shape[0]
        chunk = n if self._extended and any(self.batch_norm) else self._chunk(n)
        with _threads.blas_scope(chunk >= BLAS_MIN_BATCH):
            if self._extended:
                loss = _kl.loss_and_gradient_ext(
                    self._params, self._layout, self._codes, self._slope, self._cost_code,
                    self._ext, self._stats, self.batch_norm_eps, X, Y, labels, use_labels,
                    chunk, BLAS_MIN_BATCH, grad)
            else:
                loss = _kt.loss_and_gradient(self._params, self._layout, self._codes,
                                             self._slope, self._cost_code, X, Y, labels,
                                             use_labels, chunk, BLAS_MIN_BATCH, grad,
                                             _workers(chunk))
        grad /= self.dtype.type(n)
        loss /= n
        if l2:
            w = self._params[self._weight_mask]
            grad[self._weight_mask] += self.dtype.type(l2) * w
            loss += 0.5 * l2 * float(np.dot(w.astype(np.float64), w))
        return float(loss), grad

    # --- files --------------------------------------------------------------------------
    def save(self, path, optimizer=None):
        """Save to ``path`` atomically as ``.npz`` + JSON metadata (see :mod:`fastnn.io`).

        ``optimizer``: also store this optimizer's class, hyper-parameters and state, so
        that ``fastnn.load(path, optimizer=True)`` returns ``(net, opt)`` and
        ``net.fit(..., optimizer=opt)`` continues as if never interrupted (see
        :func:`fastnn.io.save`).
        """
        from .io import save
        save(self, path, optimizer=optimizer)

    def __reduce__(self):
        # pickle, copy.deepcopy, joblib and Dask go through the model file's description:
        # the default (pickling __dict__) would turn the weight views into copies that no
        # longer share the flat buffer, and would drag the kernels' workspaces along.
        from .io import _meta
        return (_unpickle, (_meta(self), self._params, self._stats))


def _unpickle(meta, params, stats):
    from .io import _network_from_meta
    return _network_from_meta("<pickle>", meta, params, stats if stats.size else None)


class _Diverged(Exception):
    """A full-batch iterate is not finite."""


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool or one bool per hidden layer; got {value!r}")
    return bool(value)


def _check_rate(name, value):
    """A dropout rate: a float in [0, 1)."""
    value = check_real(name, value, 0.0, 1.0)
    if value >= 1.0:
        raise ValueError(f"{name} must be < 1 (the fraction of units dropped); got {value!r}")
    return value


def _per_hidden(name, value, n_hidden, check):
    """``value`` (one setting for all hidden layers, or a sequence of one per hidden
    layer) as a list of ``n_hidden`` values, each passed through ``check(name, v)``."""
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n_hidden:
            raise ValueError(f"{name} has {len(value)} entries but the network has "
                             f"{n_hidden} hidden layers")
        return [check(f"{name}[{i}]", v) for i, v in enumerate(value)]
    value = check(name, value)
    if value and n_hidden == 0:
        raise ValueError(f"{name}={value!r} needs a hidden layer; the network has none")
    return [value] * n_hidden


def _check_optional_positive(name, value):
    """``None`` -> 0.0 (off), else ``value`` as a finite float > 0."""
    if value is None:
        return 0.0
    return check_real(name, value, 0.0, low_open=True)


def _rate(schedule, k):
    """``schedule(k)`` checked as a learning rate (finite, > 0)."""
    try:
        return check_real("schedule", schedule(k), 0.0, low_open=True)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc} (the rate it gave for epoch {k} of this fit)") from None


def _check_schedule(schedule, opt, epochs):
    """``(rates, schedule_object)``: the rates of a plain callable, all computed now, or
    a schedule object (protocol of :mod:`fastnn.schedules`), checked for every epoch."""
    if schedule is None:
        return [getattr(opt, "lr", None)] * epochs, None
    if isinstance(opt, _opt.FullBatchOptimizer):
        raise ValueError(f"schedule does not apply to the full-batch optimizer {opt!r}, "
                         f"which has no learning rate")
    if _sched.is_schedule(schedule):
        start = getattr(schedule, "start", None)
        if start is not None:
            start(opt.lr, epochs)
        for k in range(epochs):
            _rate(schedule.lr, k)
        if start is not None:
            start(opt.lr, epochs)
        return None, schedule
    if callable(schedule):
        return [_rate(schedule, k) for k in range(epochs)], None
    raise TypeError(f"schedule must be a callable epoch -> learning rate or a schedule "
                    f"such as fastnn.schedules.Cosine(T_max=10); got {schedule!r}")


def _check_callbacks(progress, callbacks, early_stopping, has_val):
    """The callbacks of one fit, in the order their hooks run: progress display, early
    stopping, then the user's."""
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of callback objects; got {callbacks!r}")
    for i, cb in enumerate(callbacks):
        if not any(callable(getattr(cb, h, None)) for h in HOOKS):
            raise TypeError(f"callbacks[{i}] has none of the hooks {', '.join(HOOKS)}; "
                            f"got {cb!r}")
    if early_stopping is None:
        stopper = []
    elif isinstance(early_stopping, EarlyStopping):
        stopper = [early_stopping]
    elif (isinstance(early_stopping, numbers.Integral)
          and not isinstance(early_stopping, (bool, np.bool_))):
        if early_stopping < 1:
            raise ValueError(f"early_stopping must be a patience >= 1; got {early_stopping}")
        stopper = [EarlyStopping(monitor="val_loss" if has_val else "loss",
                                 patience=int(early_stopping))]
    else:
        raise TypeError(f"early_stopping must be a patience (an int >= 1) or a "
                        f"fastnn.EarlyStopping; got {early_stopping!r}")
    if progress is True:
        has_bar = any(isinstance(cb, ProgressBar) for cb in callbacks)
        display = [] if has_bar else [ProgressBar()]
    elif progress is False or progress is None:
        display = []
    elif isinstance(progress, ProgressBar):
        display = [progress]
    elif hasattr(progress, "on_epoch_end"):
        display = [_DisplayCallback(progress)]
    else:
        raise TypeError(f"progress must be a bool or a progress display; got {progress!r}")
    names = (["progress"] * len(display) + ["early_stopping"] * len(stopper)
             + [f"callbacks[{i}]" for i in range(len(callbacks))])
    return display + stopper + list(callbacks), names


def _check_monitors(recorded, named):
    """Refuse a metric monitored by one of the ``(argument name, object)`` pairs
    ``named`` that the fit will not record."""
    for what, obj in named:
        monitor = getattr(obj, "monitor", None)
        if isinstance(monitor, str) and monitor not in recorded:
            hint = ("pass validation_data=(X_val, y_val) or monitor 'loss'"
                    if monitor.startswith("val_") else "monitor one of those")
            raise ValueError(f"{what} monitors {monitor!r}, which this fit does not record "
                             f"(it records {', '.join(sorted(recorded))}); {hint}")
