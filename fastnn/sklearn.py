"""scikit-learn compatible estimators: :class:`MLPClassifier` and :class:`MLPRegressor`.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` and ``MLPRegressor``
that train on fastnn's compiled kernels::

    from fastnn.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(100,), solver="sgd", batch_size=32,
                        learning_rate_init=0.05, random_state=0).fit(X, y)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

They take scikit-learn's parameters, with the same names, defaults and meaning, and
follow its conventions (``get_params``/``set_params``/``clone``, fitted attributes ending
in ``_``, ``Pipeline``, ``GridSearchCV``, pickling). What differs from scikit-learn is
listed in each class's Notes and in ``docs/sklearn.md``. scikit-learn is an optional
dependency: ``pip install "fastnn[sklearn]"``.
"""
import math
import numbers
import warnings

import numpy as np

try:
    import scipy.sparse as _sp
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (check_classification_targets, type_of_target,
                                          unique_labels)
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as _exc:   # validate_data: scikit-learn >= 1.6
    raise ImportError(
        f'fastnn.sklearn needs scikit-learn >= 1.6: pip install "fastnn[sklearn]" '
        f"({_exc})") from None

from .network import DivergenceError, Network
from .optimizers import LBFGS, SGD, Adam

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names -> fastnn's hidden activations
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
                "relu": "relu"}
#: fastnn's output activation -> scikit-learn's name for it (``out_activation_``)
_OUT_NAMES = {"softmax": "softmax", "sigmoid": "logistic", "identity": "identity"}
_DTYPES = {"float32": np.float32, "float64": np.float64}
_SOLVERS = ("lbfgs", "sgd", "adam")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
_DIVERGED = ("Solver produced non-finite parameter weights. The input data may contain "
             "large values and need to be preprocessed.")

#: The scikit-learn estimator checks each estimator fails, with the reason; the class
#: docstrings list the same, and tests/test_sklearn.py asserts that they agree and that
#: each of them does fail.
EXPECTED_FAILED_CHECKS = {
    "MLPClassifier": {},
    "MLPRegressor": {},
}


# --- parameter checks -------------------------------------------------------------------
def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _real(est, name, value, low, high=None, low_open=False, high_open=False):
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{type(est).__name__}: {name} must be a real number; got "
                        f"{value!r}")
    value = float(value)
    bad = (not math.isfinite(value) or value < low or (low_open and value == low)
           or (high is not None and (value > high or (high_open and value == high))))
    if bad:
        lo = "(" if low_open else "["
        hi = ("inf)" if high is None else f"{high}" + (")" if high_open else "]"))
        raise ValueError(f"{type(est).__name__}: {name} must be in the range "
                         f"{lo}{low}, {hi}; got {value!r}")
    return value


def _int(est, name, value, low):
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{type(est).__name__}: {name} must be an integer; got {value!r}")
    if value < low:
        raise ValueError(f"{type(est).__name__}: {name} must be >= {low}; got {value!r}")
    return int(value)


def _flag(est, name, value):
    if not _is_bool(value):
        raise TypeError(f"{type(est).__name__}: {name} must be a bool; got {value!r}")
    return bool(value)


def _option(est, name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{type(est).__name__}: {name} must be one of "
                         f"{', '.join(map(repr, options))}; got {value!r}")
    return value


def _settings(est):
    """The estimator's parameters checked (as scikit-learn checks them at ``fit``) and
    resolved: a dict of plain Python values."""
    sizes = est.hidden_layer_sizes
    if isinstance(sizes, numbers.Integral) and not _is_bool(sizes):
        sizes = [sizes]
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"{type(est).__name__}: hidden_layer_sizes must be an int or a "
                        f"sequence of ints; got {est.hidden_layer_sizes!r}")
    sizes = [_int(est, "hidden_layer_sizes", s, 1) for s in sizes]
    batch_size = est.batch_size
    if not (isinstance(batch_size, str) and batch_size == "auto"):
        batch_size = _int(est, "batch_size", batch_size, 1)
    n_iter_no_change = est.n_iter_no_change
    if not (isinstance(n_iter_no_change, numbers.Real) and n_iter_no_change == np.inf):
        n_iter_no_change = _int(est, "n_iter_no_change", n_iter_no_change, 1)
    verbose = est.verbose
    if not _is_bool(verbose):
        verbose = _int(est, "verbose", verbose, 0)
    dtype = est.dtype
    if isinstance(dtype, (type, np.dtype)):
        dtype = np.dtype(dtype).name
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ValueError(f"{type(est).__name__}: dtype must be 'float32' or 'float64'; "
                         f"got {est.dtype!r}")
    s = dict(
        hidden=sizes,
        activation=_ACTIVATIONS[_option(est, "activation", est.activation,
                                        tuple(_ACTIVATIONS))],
        solver=_option(est, "solver", est.solver, _SOLVERS),
        alpha=_real(est, "alpha", est.alpha, 0.0),
        batch_size=batch_size,
        learning_rate=_option(est, "learning_rate", est.learning_rate, _LEARNING_RATES),
        learning_rate_init=_real(est, "learning_rate_init", est.learning_rate_init, 0.0,
                                 low_open=True),
        power_t=_real(est, "power_t", est.power_t, 0.0),
        max_iter=_int(est, "max_iter", est.max_iter, 1),
        shuffle=_flag(est, "shuffle", est.shuffle),
        tol=_real(est, "tol", est.tol, 0.0),
        verbose=verbose,
        warm_start=_flag(est, "warm_start", est.warm_start),
        momentum=_real(est, "momentum", est.momentum, 0.0, 1.0),
        nesterovs_momentum=_flag(est, "nesterovs_momentum", est.nesterovs_momentum),
        early_stopping=_flag(est, "early_stopping", est.early_stopping),
        validation_fraction=_real(est, "validation_fraction", est.validation_fraction,
                                  0.0, 1.0, high_open=True),
        beta_1=_real(est, "beta_1", est.beta_1, 0.0, 1.0, high_open=True),
        beta_2=_real(est, "beta_2", est.beta_2, 0.0, 1.0, high_open=True),
        epsilon=_real(est, "epsilon", est.epsilon, 0.0, low_open=True),
        n_iter_no_change=n_iter_no_change,
        max_fun=_int(est, "max_fun", est.max_fun, 1),
        dtype=np.dtype(_DTYPES[dtype]),
    )
    if s["early_stopping"] and s["validation_fraction"] == 0.0:
        raise ValueError(f"{type(est).__name__}: early_stopping=True needs "
                         f"validation_fraction > 0")
    return s


# --- the shared machinery ---------------------------------------------------------------
class _Rate:
    """fastnn's schedule protocol over the estimator's learning-rate state: the rate of
    the next epoch as scikit-learn's ``SGDOptimizer`` would use it."""

    def __init__(self, est, s):
        self.est, self.s = est, s

    def lr(self, epoch):
        s = self.s
        if s["solver"] == "sgd" and s["learning_rate"] == "invscaling":
            # scikit-learn: learning_rate_init / (t + 1) ** power_t after every epoch,
            # t = samples seen so far (learning_rate_init itself for the first epoch)
            return s["learning_rate_init"] / (self.est.t_ + 1) ** s["power_t"]
        if s["solver"] == "sgd" and s["learning_rate"] == "adaptive":
            return self.est._lr
        return s["learning_rate_init"]


class _EpochEnd:
    """fastnn callback: scikit-learn's bookkeeping after each epoch -- ``loss_curve_``,
    ``t_``, the no-improvement count, the validation score and best weights of early
    stopping, the adaptive rate -- and its stopping rule (returns True to stop)."""

    def __init__(self, est, s, n_train, n_batches, val):
        self.est, self.s = est, s
        self.n_train, self.n_batches, self.val = n_train, n_batches, val
        self.stopped = False

    def on_epoch_end(self, epoch, metrics, net):
        est, s = self.est, self.s
        est.n_iter_ += 1
        # fastnn's loss is the mean data cost of the samples as they were seen; sklearn
        # adds 0.5 * alpha * ||W||^2 / batch to every batch's loss (taken here with the
        # weights at the end of the epoch) and averages squared error over the outputs
        sq = sum(float(np.dot(w.ravel().astype(np.float64), w.ravel())) for w in
                 net.weights)
        est.loss_ = (metrics["loss"] / est._loss_scale()
                     + 0.5 * s["alpha"] * sq * self.n_batches / self.n_train)
        est.t_ += self.n_train
        est.loss_curve_.append(est.loss_)
        if s["verbose"]:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
        tol = s["tol"]
        if self.val is not None:
            score = est._score_outputs(net.forward(self.val[0]), self.val[1])
            est.validation_scores_.append(score)
            if s["verbose"]:
                print("Validation score: %f" % score)
            if score < est.best_validation_score_ + tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_params = net.params.copy()
        else:
            if est.loss_curve_[-1] > est.best_loss_ - tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if est.loss_curve_[-1] < est.best_loss_:
                est.best_loss_ = est.loss_curve_[-1]
        if est._no_improvement_count > s["n_iter_no_change"]:
            what = "Validation score" if self.val is not None else "Training loss"
            msg = (f"{what} did not improve more than tol={tol:f} for "
                   f"{s['n_iter_no_change']} consecutive epochs.")
            if s["solver"] == "sgd" and s["learning_rate"] == "adaptive":
                if est._lr <= 1e-6:
                    if s["verbose"]:
                        print(msg + " Learning rate too small. Stopping.")
                    self.stopped = True
                else:
                    est._lr /= 5.0
                    est._no_improvement_count = 0
                    if s["verbose"]:
                        print(msg + " Setting learning rate to %f" % est._lr)
            else:
                if s["verbose"]:
                    print(msg + " Stopping.")
                self.stopped = True
        return self.stopped


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: fitting, the parameter views."""

    # --- fitted parameters: views into the network's flat buffer --------------------
    def _fitted_net(self, name):
        net = self.__dict__.get("_net")
        if net is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute "
                                 f"{name!r} (it is set by fit)")
        return net

    @property
    def coefs_(self):
        """list of ndarray: ``coefs_[i]`` of shape ``(fan_in, fan_out)``, the weights of
        layer ``i`` -- writable views into the network's parameters, so editing one in
        place changes the predictions. Assigning a list copies its arrays in."""
        return self._fitted_net("coefs_").weights

    @coefs_.setter
    def coefs_(self, value):
        self._assign("coefs_", value, self._fitted_net("coefs_").weights)

    @property
    def intercepts_(self):
        """list of ndarray: ``intercepts_[i]`` of shape ``(fan_out,)``, the biases of
        layer ``i`` (writable views, as :attr:`coefs_`)."""
        return self._fitted_net("intercepts_").biases

    @intercepts_.setter
    def intercepts_(self, value):
        self._assign("intercepts_", value, self._fitted_net("intercepts_").biases)

    @staticmethod
    def _assign(name, value, views):
        value = list(value)
        if len(value) != len(views) or any(np.shape(v) != w.shape
                                           for v, w in zip(value, views)):
            raise ValueError(f"{name} must be {len(views)} arrays of shapes "
                             f"{[w.shape for w in views]}")
        for v, w in zip(value, views):
            w[...] = v

    @property
    def network_(self):
        """:class:`fastnn.Network`: the fitted network (shares its parameters with
        :attr:`coefs_` and :attr:`intercepts_`)."""
        return self._fitted_net("network_")

    def __sklearn_is_fitted__(self):
        return "_net" in self.__dict__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True    # accepted, and densified (see the Notes)
        return tags

    # --- input ----------------------------------------------------------------------
    def _check_X(self, X, dtype, reset=False, **fit_kw):
        """``validate_data`` converting X to ``dtype`` (with ``fit_kw``, of X and y:
        ``fit_kw["y"]`` may be None, which scikit-learn refuses clearly); sparse input
        densified; read-only input copied (so the kernels compiled for writable arrays
        serve it rather than a second set compiled for read-only ones)."""
        # other sparse formats go to CSR, where scikit-learn can check for NaN
        kw = dict(accept_sparse=("csr", "csc", "coo"), dtype=dtype, order="C", reset=reset)
        if fit_kw:
            X, y = validate_data(self, X, multi_output=True, **kw, **fit_kw)
        else:
            X = validate_data(self, X, **kw)
        if _sp.issparse(X):
            X = np.ascontiguousarray(X.toarray())
        if not X.flags.writeable:
            X = X.copy()
        return (X, y) if fit_kw else X

    def _forward(self, X):
        """The network's outputs for ``X`` (checked), as float64."""
        check_is_fitted(self)
        X = self._check_X(X, self._net.dtype)
        return self._net.forward(X).astype(np.float64)

    # --- fitting --------------------------------------------------------------------
    def _fit(self, X, y, incremental):
        s = _settings(self)
        first = not self.__sklearn_is_fitted__() or not (s["warm_start"] or incremental)
        X, Y, y_score = self._validate_input(X, y, s, incremental, reset=first)
        n_outputs = Y.shape[1] if Y.ndim == 2 else len(self.classes_)
        rs = check_random_state(self.random_state)
        if first:
            self._initialize(X.shape[1], n_outputs, s, rs)
        else:
            self._check_continuation(n_outputs, s, incremental)
        if s["solver"] == "lbfgs":
            self._fit_lbfgs(X, Y, s)
        else:
            self._fit_stochastic(X, Y, y_score, s, rs, incremental)
        return self

    def _initialize(self, n_features, n_outputs, s, rs):
        """A new network, started as scikit-learn starts (Glorot-uniform weights and
        biases, bound sqrt(6 / (fan_in + fan_out)), 2 instead of 6 for logistic, drawn
        from ``random_state`` in scikit-learn's order)."""
        sizes = [n_features, *s["hidden"], n_outputs]
        factor = 2.0 if s["activation"] == "sigmoid" else 6.0
        init = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            init.append((rs.uniform(-bound, bound, (fan_in, fan_out)),
                         rs.uniform(-bound, bound, fan_out)))
        seed = int(rs.randint(np.iinfo(np.int32).max))   # the epochs' sample orders
        output = self._output_activation()
        net = Network(sizes, hidden=s["activation"], output=output, init="xavier",
                      dtype=s["dtype"].name, seed=seed)
        for (W, b), w, c in zip(init, net.weights, net.biases):
            w[...] = W
            c[...] = b
        self._net = net
        self._arch = (tuple(s["hidden"]), s["activation"], s["dtype"].name)
        self._optimizer = None
        self._lr = s["learning_rate_init"]
        self._best_params = net.params.copy()
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(sizes)
        self.out_activation_ = _OUT_NAMES[output]
        for name in ("loss_curve_", "best_loss_", "validation_scores_",
                     "best_validation_score_"):
            self.__dict__.pop(name, None)

    def _check_continuation(self, n_outputs, s, incremental):
        arch = (tuple(s["hidden"]), s["activation"], s["dtype"].name)
        if arch != self._arch or n_outputs != self.n_outputs_:
            how = "partial_fit" if incremental else "warm_start=True"
            raise ValueError(
                f"{how} continues the fitted network (hidden layers {self._arch[0]}, "
                f"{self._arch[1]} activation, {self._arch[2]}, {self.n_outputs_} "
                f"outputs), but the parameters and data now ask for hidden layers "
                f"{arch[0]}, {arch[1]} activation, {arch[2]}, {n_outputs} outputs; "
                f"fit afresh with warm_start=False")

    def _optimizer_for(self, s, fresh):
        """The mini-batch optimizer: a new one, or the last one (its velocities or
        moments and step count kept) with the current hyper-parameters."""
        opt = self._optimizer
        kind = SGD if s["solver"] == "sgd" else Adam
        if fresh or not isinstance(opt, kind):
            opt = None
            self._lr = s["learning_rate_init"]
        if s["solver"] == "sgd":
            nesterov = s["nesterovs_momentum"] and s["momentum"] > 0
            if opt is None:
                opt = SGD(lr=s["learning_rate_init"], momentum=s["momentum"],
                          nesterov=nesterov)
            opt.momentum, opt.nesterov = s["momentum"], nesterov
        else:
            if opt is None:
                opt = Adam(lr=s["learning_rate_init"], betas=(s["beta_1"], s["beta_2"]),
                           eps=s["epsilon"])
            opt.betas, opt.eps = (s["beta_1"], s["beta_2"]), s["epsilon"]
        opt.lr = s["learning_rate_init"]
        self._optimizer = opt
        return opt

    def _fit_stochastic(self, X, Y, y_score, s, rs, incremental):
        if s["early_stopping"] and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        net = self._net
        opt = self._optimizer_for(s, fresh=not (incremental or s["warm_start"]))
        if "loss_curve_" not in self.__dict__:
            self.loss_curve_ = []
            self._no_improvement_count = 0
        if s["early_stopping"]:
            if self.__dict__.get("validation_scores_") is None:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        elif self.__dict__.get("best_loss_") is None:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        val = None
        if s["early_stopping"]:
            # scikit-learn stratifies the split for single-output classification only
            strat = y_score if self._stratify() else None
            train, test = train_test_split(np.arange(X.shape[0]), random_state=rs,
                                           test_size=s["validation_fraction"],
                                           stratify=strat)
            if test.size < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            val = (X[test], y_score[test])
            X, Y = X[train], Y[train]
        n = X.shape[0]
        if s["batch_size"] == "auto":
            batch_size = min(200, n)
        else:
            if s["batch_size"] > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = min(s["batch_size"], n)
        n_batches = -(-n // batch_size)
        self.n_iter_ = 0
        end = _EpochEnd(self, s, n, n_batches, val)
        try:
            net.fit(X, Y, epochs=1 if incremental else s["max_iter"],
                    batch_size=batch_size, optimizer=opt, l2=s["alpha"] / batch_size,
                    shuffle=s["shuffle"], progress=False, schedule=_Rate(self, s),
                    callbacks=[end])
        except DivergenceError as exc:
            raise ValueError(_DIVERGED) from exc
        if not incremental and not end.stopped and self.n_iter_ == s["max_iter"]:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                          "optimization hasn't converged yet." % s["max_iter"],
                          ConvergenceWarning)
        if s["early_stopping"]:
            net.params[...] = self._best_params

    def _fit_lbfgs(self, X, Y, s):
        """scipy's L-BFGS-B on the whole data set, as scikit-learn runs it (gtol=tol,
        maxfun=max_fun, maxiter=max_iter), with fastnn's compiled loss and gradient."""
        net = self._net
        l2 = s["alpha"] / X.shape[0]

        def fun(x):
            net.params[...] = x
            loss, grad = net.gradients(X, Y, l2=l2)
            return loss, grad.astype(np.float64)

        res = LBFGS(gtol=s["tol"], maxfun=s["max_fun"]).minimize(
            fun, net.params.astype(np.float64), s["max_iter"])
        net.params[...] = res.x
        if not np.isfinite(net.params).all():
            raise ValueError(_DIVERGED)
        sq = sum(float(np.dot(w.ravel().astype(np.float64), w.ravel()))
                 for w in net.weights)
        reg = 0.5 * l2 * sq
        self.loss_ = (float(res.fun) - reg) / self._loss_scale() + reg
        self.n_iter_ = min(int(res.nit), s["max_iter"])
        if res.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status="
                f"{res.status}): {res.message}. Increase the number of iterations to "
                f"improve the convergence (max_iter={s['max_iter']}), or scale the data.",
                ConvergenceWarning)

    def _loss_scale(self):
        return 1.0

    def _stratify(self):
        return False

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic "
                                 f"optimizers. {self.solver} is not stochastic.")
        return True


# --- the estimators ---------------------------------------------------------------------
_SHARED_PARAMS_DOC = """hidden_layer_sizes : int or sequence of int, default (100,)
        Units of each hidden layer (``()`` for none).
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        Hidden activation; "logistic" is fastnn's "sigmoid".
    solver : {"lbfgs", "sgd", "adam"}, default "adam"
        "sgd" is :class:`fastnn.SGD` with (Nesterov) momentum, "adam" is
        :class:`fastnn.Adam`, "lbfgs" is scipy's L-BFGS-B on the whole data set
        (through :class:`fastnn.LBFGS`), all computing loss and gradient with fastnn's
        compiled kernels.
    alpha : float, default 0.0001
        L2 penalty, as scikit-learn: each mini-batch of ``b`` samples adds
        ``alpha / (2 b) * sum(W**2)`` (weights, not biases) to its mean loss, so fastnn
        trains with ``l2 = alpha / batch_size`` (``alpha / n_samples`` for lbfgs). The
        last, smaller batch of an epoch uses the same ``l2`` where scikit-learn divides
        by its own size.
    batch_size : int or "auto", default "auto"
        Mini-batch size; "auto" is ``min(200, n_samples)``; clipped to ``n_samples``
        with a warning. Not used by lbfgs.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        Learning-rate schedule of "sgd" (ignored by the other solvers): constant
        ``learning_rate_init``; "invscaling" ``learning_rate_init / (t_ + 1) **
        power_t`` from the second epoch on (``t_`` samples seen so far); "adaptive"
        divides the rate by 5 whenever ``n_iter_no_change`` epochs fail to improve by
        ``tol``, and stops once it is below 1e-6.
    learning_rate_init : float, default 0.001
        Step size of "sgd" and "adam".
    power_t : float, default 0.5
        Exponent of "invscaling".
    max_iter : int, default 200
        Epochs at most for "sgd"/"adam" (a ``ConvergenceWarning`` when they run out
        before the stopping rule fires), iterations for "lbfgs".
    shuffle : bool, default True
        Visit the samples in a new order each epoch (drawn from the network's seed,
        which comes from ``random_state``).
    random_state : int, RandomState instance or None, default None
        Draws the initial weights (the same numbers, in the same order, as
        scikit-learn's MLP with this ``random_state``), then the seed of the epochs'
        sample orders, then the early-stopping split. ``None``: drawn from numpy's
        global random state. An int gives bitwise the same ``coefs_`` on every run.
    tol : float, default 1e-4
        Improvement of the training loss (or validation score, with early stopping)
        an epoch must bring to count; for lbfgs, scipy's ``gtol``.
    verbose : bool or int, default False
        Print the loss after each epoch (and the validation score, and why training
        stopped), as scikit-learn does.
    warm_start : bool, default False
        Continue from the previous ``fit``: the weights, and also the optimizer's state
        (momentum velocities or Adam's moments and step count), the adaptive learning
        rate, ``t_`` and the no-improvement count, so that ``fit`` with
        ``max_iter=a`` then ``max_iter=b`` trains the same as ``max_iter=a+b`` when
        neither stops early. (scikit-learn starts a new optimizer at each ``fit``.)
    momentum : float, default 0.9
        Momentum of "sgd", in [0, 1].
    nesterovs_momentum : bool, default True
        Nesterov's momentum for "sgd" (when ``momentum > 0``).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified for single-
        output classification, as scikit-learn), stop when the validation score
        (accuracy or R^2) has not improved by ``tol`` for ``n_iter_no_change`` epochs,
        and end with the weights of the best validation score. "sgd" and "adam" only;
        not with ``partial_fit``.
    validation_fraction : float, default 0.1
        Fraction held out by ``early_stopping``, in (0, 1).
    beta_1, beta_2 : float, default 0.9, 0.999
        Adam's decay rates, each in [0, 1).
    epsilon : float, default 1e-8
        Adam's epsilon (see the Notes for where it is added).
    n_iter_no_change : int or inf, default 10
        Epochs without improvement by ``tol`` before stopping (or, with "adaptive",
        dividing the rate by 5).
    max_fun : int, default 15000
        Loss evaluations at most for "lbfgs".
    dtype : {"float32", "float64"}, default "float32"
        fastnn's own: the floating type of the weights and of all computation. X is
        converted to it once per call; float32 is fastnn's fast default, float64 is
        what scikit-learn computes in for float64 X. Outputs (``predict_proba``,
        regression ``predict``) are returned as float64 either way."""

_SHARED_NOTES_DOC = """What differs from scikit-learn's MLP:

    - The computation runs in ``dtype`` (float32 by default) rather than in X's dtype;
      ``coefs_`` and ``intercepts_`` have that dtype.
    - The same ``random_state`` gives the same initial weights as scikit-learn, but the
      epochs visit the samples in a different order (fastnn draws it from a seed), and
      the last, smaller batch of an epoch is regularised with ``alpha / batch_size``
      rather than ``alpha / its size``. With ``shuffle=False``, a ``batch_size`` that
      divides the number of samples, "sgd" with a constant rate, and
      ``dtype="float64"``, training follows scikit-learn's to rounding.
    - "sgd" follows PyTorch's momentum rule, ``v <- momentum * v + g``,
      ``w <- w - lr * v``: with a constant rate this is scikit-learn's rule exactly;
      under "invscaling" or "adaptive" the velocity is scaled by the current rate,
      where scikit-learn keeps each past step at the rate it was taken with.
    - "adam" adds ``epsilon`` to the bias-corrected ``sqrt(v)`` (PyTorch's form);
      scikit-learn adds it before the correction (its ``epsilon`` acts as this one
      divided by ``sqrt(1 - beta_2**t)``). The steps differ where ``sqrt(v)`` is
      comparable to ``epsilon``, i.e. for weights whose gradient is almost always zero
      (inputs that are almost always 0); elsewhere they agree closely.
    - ``loss_`` and ``loss_curve_`` add the L2 term with the weights at the end of each
      epoch (scikit-learn: with the weights before each batch).
    - ``warm_start`` continues the optimizer's state (see ``warm_start``).
    - Sparse X is accepted and converted to a dense array (fastnn's kernels are
      dense), which takes ``n_samples * n_features`` floats of memory; read-only X
      (e.g. joblib's memory maps) is copied, so no extra kernels are compiled for it.
    - No ``sample_weight``: fastnn's kernels weigh every sample alike.
    - A training run that produces NaN or infinite weights raises ``ValueError`` (as
      scikit-learn) as soon as the epoch ends; the network keeps the last finite
      weights.

    Besides scikit-learn's attributes, ``network_`` is the fitted
    :class:`fastnn.Network` (it can be saved with ``network_.save(path)``)."""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by fastnn: scikit-learn's
    ``sklearn.neural_network.MLPClassifier``, on compiled kernels.

    Binary problems get one logistic output, multiclass problems a softmax output,
    multilabel indicator targets one logistic output per label; the loss is the
    log-loss in each case. Labels may be of any kind scikit-learn accepts (strings,
    non-contiguous integers, ...).

    Parameters
    ----------
    {params}

    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        The class labels (for multilabel targets, ``arange(n_labels)``).
    coefs_ : list of ndarray
        ``coefs_[i]``, shape ``(fan_in, fan_out)``: the weights of layer ``i``, views
        into the network's parameters (editing them in place changes predictions).
    intercepts_ : list of ndarray
        ``intercepts_[i]``, shape ``(fan_out,)``: the biases, views as ``coefs_``.
    loss_ : float
        The loss (log-loss plus the L2 term) of the last epoch or, for lbfgs, at the
        solution.
    best_loss_ : float or None
        The lowest ``loss_`` reached (None with early stopping; sgd/adam only).
    loss_curve_ : list of float
        ``loss_`` after each epoch (sgd/adam only).
    validation_scores_ : list of float or None
        With early stopping, the validation accuracy after each epoch.
    best_validation_score_ : float or None
        With early stopping, the best validation accuracy.
    t_ : int
        Training samples seen by the solver over all fits.
    n_iter_ : int
        Epochs (sgd/adam) or iterations (lbfgs) of the last ``fit``; 1 after
        ``partial_fit``.
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Output units.
    out_activation_ : str
        "logistic" or "softmax".
    n_features_in_ : int
        Features seen at ``fit``.
    feature_names_in_ : ndarray of str
        Column names, when X was a DataFrame with string column names.
    network_ : fastnn.Network
        The fitted network.

    Notes
    -----
    {notes}

    scikit-learn estimator checks (``sklearn.utils.estimator_checks``) that this
    estimator does not pass, and why: {skipped}

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastnn.sklearn import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.95
    True
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _stratify(self):
        return self.n_outputs_ == 1

    def _validate_input(self, X, y, s, incremental, reset):
        X, y = self._check_X(X, s["dtype"], reset=reset, y=y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if "classes_" not in self.__dict__ or not (s["warm_start"] or incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if s["warm_start"] and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        f"warm_start can only be used where `y` has the same classes as "
                        f"in the previous call to fit. Previously got {self.classes_}, "
                        f"`y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. "
                                 f"`self.classes_` has {self.classes_}. 'y' has "
                                 f"{classes}.")
        lb = self._label_binarizer
        if lb.y_type_ != "multilabel-indicator" and len(lb.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes; got 1 "
                             f"class: {lb.classes_}")
        Yb = lb.transform(y)
        if _sp.issparse(Yb):
            Yb = Yb.toarray()
        if lb.y_type_ == "multiclass":
            Y = np.ascontiguousarray(Yb.argmax(axis=1), dtype=np.int64)   # class indices
        else:   # binary: one logistic output; multilabel: one per label
            Y = np.ascontiguousarray(Yb, dtype=s["dtype"])
        return X, Y, y

    def _decode(self, out):
        """Labels from the network's outputs (as scikit-learn's MLPClassifier)."""
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def _score_outputs(self, out, y):
        if not np.isfinite(out).all():
            return np.nan
        return accuracy_score(y, self._decode(out))

    def fit(self, X, y):
        """Fit the network to ``X`` and the labels ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training inputs (sparse input is densified).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multilabel indicator matrix.

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), default None
            All the classes of all calls; required on the first call (not for
            multilabel targets), optional afterwards.

        Returns
        -------
        self : MLPClassifier
        """
        if not self.__sklearn_is_fitted__() or "classes_" not in self.__dict__:
            y_arr = y if _sp.issparse(y) else np.asarray(y)
            if type_of_target(y_arr).startswith("multilabel"):
                self._label_binarizer = LabelBinarizer().fit(y_arr)
            elif classes is None:
                raise ValueError("classes must be passed on the first call to "
                                 "partial_fit.")
            else:
                self._label_binarizer = LabelBinarizer().fit(np.asarray(classes))
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes),
                                                        self.classes_):
            raise ValueError(f"`classes={classes!r}` is not the same as on the first call "
                             f"to partial_fit, where it was {self.classes_!r}")
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        return self._decode(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
            For multilabel targets, each label's probability.
        """
        out = self._forward(X)
        if self.n_outputs_ == 1:
            p = out[:, 0]
            return np.column_stack([1.0 - p, p])
        return out

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by fastnn: scikit-learn's
    ``sklearn.neural_network.MLPRegressor``, on compiled kernels.

    An identity output per target and the squared error, ``0.5 * mean((y - p)**2)``.

    Parameters
    ----------
    loss : {{"squared_error"}}, default "squared_error"
        The only loss; scikit-learn's "poisson" (an exponential output) is not
        available in fastnn and is refused.
    {params}

    Attributes
    ----------
    coefs_ : list of ndarray
        ``coefs_[i]``, shape ``(fan_in, fan_out)``: the weights of layer ``i``, views
        into the network's parameters (editing them in place changes predictions).
    intercepts_ : list of ndarray
        ``intercepts_[i]``, shape ``(fan_out,)``: the biases, views as ``coefs_``.
    loss_ : float
        The loss (half the squared error averaged over samples and outputs, plus the
        L2 term) of the last epoch or, for lbfgs, at the solution.
    best_loss_ : float or None
        The lowest ``loss_`` reached (None with early stopping; sgd/adam only).
    loss_curve_ : list of float
        ``loss_`` after each epoch (sgd/adam only).
    validation_scores_ : list of float or None
        With early stopping, the validation R^2 after each epoch.
    best_validation_score_ : float or None
        With early stopping, the best validation R^2.
    t_ : int
        Training samples seen by the solver over all fits.
    n_iter_ : int
        Epochs (sgd/adam) or iterations (lbfgs) of the last ``fit``; 1 after
        ``partial_fit``.
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Output units (targets).
    out_activation_ : str
        "identity".
    n_features_in_ : int
        Features seen at ``fit``.
    feature_names_in_ : ndarray of str
        Column names, when X was a DataFrame with string column names.
    network_ : fastnn.Network
        The fitted network.

    Notes
    -----
    {notes}

    With several targets, the gradient is that of the squared error summed over the
    targets (as scikit-learn's), while ``loss_`` averages it over them (as
    scikit-learn's); lbfgs minimises the summed form.

    scikit-learn estimator checks (``sklearn.utils.estimator_checks``) that this
    estimator does not pass, and why: {skipped}

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", random_state=0)
    >>> reg = reg.fit(X, X[:, 0] ** 2)
    >>> reg.score(X, X[:, 0] ** 2) > 0.99
    True
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu",
                 *, solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype="float32"):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _output_activation(self):
        return "identity"

    def _loss_scale(self):
        return float(self.n_outputs_)

    def _validate_input(self, X, y, s, incremental, reset):
        if self.loss != "squared_error":
            if self.loss == "poisson":
                raise ValueError("MLPRegressor: loss='poisson' is not supported by fastnn "
                                 "(it needs an exponential output); use "
                                 "loss='squared_error' or scikit-learn's MLPRegressor")
            raise ValueError(f"MLPRegressor: loss must be 'squared_error'; got "
                             f"{self.loss!r}")
        X, y = self._check_X(X, s["dtype"], reset=reset, y=y, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=s["dtype"])
        return X, Y, y

    def _score_outputs(self, out, y):
        if not np.isfinite(out).all():
            return np.nan
        return r2_score(y, out[:, 0] if out.shape[1] == 1 else out)

    def fit(self, X, y):
        """Fit the network to ``X`` and the targets ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training inputs (sparse input is densified).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets), float64
        """
        out = self._forward(X)
        return out[:, 0].copy() if out.shape[1] == 1 else out


def _skipped_doc(name):
    checks = EXPECTED_FAILED_CHECKS[name]
    if not checks:
        return ("none: every check passes (``tests/test_sklearn.py`` runs them with "
                "``xfail_strict=True``).")
    return "\n\n" + "\n".join(f"    - ``{check}``: {why}" for check, why in
                              checks.items())


for _cls in (MLPClassifier, MLPRegressor):
    _cls.__doc__ = _cls.__doc__.format(params=_SHARED_PARAMS_DOC, notes=_SHARED_NOTES_DOC,
                                       skipped=_skipped_doc(_cls.__name__))
