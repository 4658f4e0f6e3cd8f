"""fastnn.sklearn: scikit-learn's estimator checks, its tools (Pipeline, GridSearchCV,
cross_val_score, clone, pickle), partial_fit / warm_start / early stopping, and agreement
with sklearn.neural_network's MLP on the same data."""
import os
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._testing import SkipTest
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnn.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# --- scikit-learn's estimator checks ----------------------------------------------------
CHECKED = [
    MLPClassifier(max_iter=100),   # scikit-learn checks its own MLPs with max_iter=100
    MLPRegressor(max_iter=100),
    MLPClassifier((20, 10), activation="tanh", solver="sgd", learning_rate="adaptive",
                  learning_rate_init=0.01, max_iter=100, dtype="float64"),
    MLPRegressor(hidden_layer_sizes=(20, 10), activation="tanh", solver="sgd",
                 learning_rate="adaptive", learning_rate_init=0.01, max_iter=100,
                 dtype="float64"),
]

#: Checks that skip (part of) themselves here, and the reason they give; any other skip
#: fails the test below.
EXPECTED_SKIPS = {
    # runs in test_array_api_check_with_dispatch, in a process with SCIPY_ARRAY_API=1
    "check_array_api_input": "SCIPY_ARRAY_API is not set",
    # the NotAnArray half of these checks runs (and must pass) before the DataFrame
    # half skips: pandas is not among the test dependencies
    "check_classifier_data_not_an_array": "pandas is not installed",
    "check_regressor_data_not_an_array": "pandas is not installed",
    # as scikit-learn's MLPClassifier, there is no decision_function
    "check_classifiers_multilabel_output_format_decision_function":
        "does not have a decision_function method",
}


def _expected_failed(estimator):
    return dict(EXPECTED_FAILED_CHECKS[type(estimator).__name__])


def _check_name(check):
    return getattr(check, "func", check).__name__


@parametrize_with_checks(CHECKED, expected_failed_checks=_expected_failed,
                         xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    try:
        check(estimator)
    except SkipTest as exc:
        reason = EXPECTED_SKIPS.get(_check_name(check))
        assert reason is not None and reason in str(exc), f"unexpected skip: {exc}"


def test_array_api_check_with_dispatch():
    """scikit-learn's array-API check needs SCIPY_ARRAY_API=1 before scipy is imported."""
    script = (
        "from sklearn.utils.estimator_checks import check_array_api_input\n"
        "from fastnn.sklearn import MLPClassifier, MLPRegressor\n"
        "for est in (MLPClassifier(max_iter=20), MLPRegressor(max_iter=20)):\n"
        "    check_array_api_input(type(est).__name__, est, array_namespace='numpy',\n"
        "                          expect_only_array_outputs=False)\n"
        "print('checked')\n")
    env = dict(os.environ, SCIPY_ARRAY_API="1", PYTHONWARNINGS="ignore")
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["checked"]


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_docstring_lists_the_expected_failed_checks(cls):
    doc = cls.__doc__
    section = doc[doc.index("estimator checks"):doc.index("Examples")]
    listed = set(re.findall(r"- ``(check_\w+)``", section))
    assert listed == set(EXPECTED_FAILED_CHECKS[cls.__name__])
    if not listed:
        assert "none: every check passes" in section


def test_parameters_match_sklearn():
    """Same names and defaults as scikit-learn's MLPs, plus fastnn's ``dtype``."""
    for ours, theirs in ((MLPClassifier(), SkMLPClassifier()),
                         (MLPRegressor(), SkMLPRegressor())):
        mine, sk = ours.get_params(), theirs.get_params()
        assert mine.pop("dtype") == "float32"
        assert mine == sk


# --- data --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def small(digits):
    X, y = digits
    return X[:300], y[:300]


def _params(est):
    return [np.array(a) for a in est.coefs_ + est.intercepts_]


def _max_diff(a, b):
    return max(float(np.abs(np.asarray(p, float) - np.asarray(q, float)).max())
               for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))


# --- agreement with scikit-learn's MLP ---------------------------------------------------
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression"])
@pytest.mark.parametrize("extra", [
    dict(solver="sgd", momentum=0.9),
    dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    dict(solver="sgd", momentum=0.0, learning_rate="invscaling"),
    dict(solver="lbfgs", max_iter=15),
])
def test_training_follows_sklearn(digits, kind, extra):
    """Same random_state -> same initial weights; without shuffling, in float64, with
    batches that divide the data, sgd (constant rate, or any rate without momentum) and
    lbfgs take scikit-learn's steps: the weights agree to rounding."""
    X, y = digits[0][:400], digits[1][:400]
    targets = {"multiclass": y, "binary": y % 2,
               "multilabel": np.column_stack([y % 2, y % 3 == 0, y > 6]).astype(int),
               "regression": np.column_stack([X[:, 20:23].sum(1), X[:, 36]])}[kind]
    kw = {**dict(hidden_layer_sizes=(20, 10), activation="tanh", shuffle=False,
                 batch_size=50, alpha=1e-2, learning_rate_init=0.01, max_iter=6,
                 random_state=3), **extra}
    ours_cls, theirs_cls = ((MLPRegressor, SkMLPRegressor) if kind == "regression"
                            else (MLPClassifier, SkMLPClassifier))
    ours = ours_cls(dtype="float64", **kw).fit(X, targets)
    theirs = theirs_cls(**kw).fit(X, targets)
    assert _max_diff(ours, theirs) < 1e-10
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-3)   # L2 term: see Notes
    np.testing.assert_allclose(ours.predict_proba(X) if kind != "regression" else
                               ours.predict(X), theirs.predict_proba(X)
                               if kind != "regression" else theirs.predict(X),
                               rtol=1e-9, atol=1e-12)


def test_adaptive_rate_follows_sklearn(small):
    """'adaptive' divides the rate by 5 after n_iter_no_change epochs without an
    improvement by tol, and stops below 1e-6, at the same epoch as scikit-learn."""
    X, y = small
    kw = dict(hidden_layer_sizes=(10,), solver="sgd", learning_rate="adaptive",
              momentum=0.0, shuffle=False, batch_size=30, tol=0.5, n_iter_no_change=2,
              learning_rate_init=0.01, max_iter=100, random_state=0)
    ours = MLPClassifier(dtype="float64", **kw).fit(X, y)
    theirs = SkMLPClassifier(**kw).fit(X, y)
    assert 10 < ours.n_iter_ == theirs.n_iter_ < 100
    assert _max_diff(ours, theirs) < 1e-10


def test_adam_close_to_sklearn():
    """Adam differs from scikit-learn's only in where epsilon enters (see the Notes):
    on data without near-constant inputs the weights stay close."""
    X, y = make_classification(400, 20, n_informative=10, n_classes=3, random_state=0)
    kw = dict(hidden_layer_sizes=(20,), shuffle=False, batch_size=50,
              learning_rate_init=0.01, max_iter=5, random_state=0)
    ours = MLPClassifier(dtype="float64", **kw).fit(X, y)
    theirs = SkMLPClassifier(**kw).fit(X, y)
    assert _max_diff(ours, theirs) < 1e-3


def test_classifier_accuracy_comparable_to_sklearn(digits):
    """Digits, held-out quarter, both with their defaults (adam, relu (100,)) except
    max_iter: fastnn (float32, its own sample order) within 2 points of accuracy."""
    X, y = digits
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0,
                                          stratify=y)
    ours = MLPClassifier(max_iter=60, random_state=0).fit(Xtr, ytr).score(Xte, yte)
    theirs = SkMLPClassifier(max_iter=60, random_state=0).fit(Xtr, ytr).score(Xte, yte)
    assert theirs > 0.95
    assert abs(ours - theirs) <= 0.02, (ours, theirs)


def test_regressor_r2_comparable_to_sklearn():
    X, y = make_regression(1000, 10, n_informative=6, noise=5.0, random_state=0)
    y = y / y.std()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    kw = dict(hidden_layer_sizes=(50,), max_iter=100, random_state=0)
    ours = MLPRegressor(**kw).fit(Xtr, ytr).score(Xte, yte)
    theirs = SkMLPRegressor(**kw).fit(Xtr, ytr).score(Xte, yte)
    assert theirs > 0.95
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


# --- scikit-learn's tools ----------------------------------------------------------------
def test_pipeline_gridsearch_cross_val_score(small):
    X, y = small
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier((20,), batch_size=32, learning_rate_init=0.01,
                                       max_iter=30, random_state=0))
    assert pipe.fit(X, y).score(X, y) > 0.95
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(2,), (30,)],
                               "mlpclassifier__alpha": [1e-4, 1e-1]}, cv=3).fit(X, y)
    assert grid.best_params_["mlpclassifier__hidden_layer_sizes"] == (30,)
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert grid.score(X, y) > 0.95


def test_string_and_non_contiguous_labels(small):
    X, y = small
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    for labels in (names[y], np.array([-3, 7, 100])[y % 3], np.where(y > 4, "hi", "lo")):
        clf = MLPClassifier((30,), max_iter=80, random_state=0).fit(X, labels)
        assert list(clf.classes_) == sorted(set(labels))
        pred = clf.predict(X)
        assert pred.dtype == clf.classes_.dtype and set(pred) <= set(labels)
        assert accuracy_score(labels, pred) > 0.9
        proba = clf.predict_proba(X)
        assert proba.shape == (len(X), len(clf.classes_)) and proba.dtype == np.float64
        np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], pred)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1   # binary


def test_multilabel(small):
    X, y = small
    Y = np.column_stack([y % 2, y % 3 == 0, y > 6]).astype(int)
    clf = MLPClassifier((30,), max_iter=100, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    assert (pred == Y).mean() > 0.9
    assert clf.predict_proba(X).shape == Y.shape


def test_pickle_and_clone(small):
    X, y = small
    clf = MLPClassifier((20,), max_iter=20, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert copy.get_params() == clf.get_params() and copy.loss_curve_ == clf.loss_curve_
    copy.coefs_[-1][...] = 0.0          # still views into the copy's own network
    assert not np.array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert clf.coefs_[-1].any()
    # partial_fit continues the unpickled optimizer state exactly as the original's
    a = pickle.loads(pickle.dumps(clf)).partial_fit(X, y)
    b = clf.partial_fit(X, y)
    assert _max_diff(a, b) == 0.0
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params()
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    assert not hasattr(fresh, "coefs_")


def test_coefs_are_the_trained_parameters(small):
    X, y = small
    clf = MLPClassifier((20,), max_iter=20, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(64, 20), (20, 10)]
    assert [c.shape for c in clf.intercepts_] == [(20,), (10,)]
    assert clf.coefs_[0].dtype == np.float32 and clf.n_layers_ == 3
    # the forward pass by hand, from coefs_ and intercepts_
    h = np.maximum(X @ clf.coefs_[0] + clf.intercepts_[0], 0) @ clf.coefs_[1]
    z = h + clf.intercepts_[1]
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(X), p / p.sum(1, keepdims=True),
                               rtol=1e-4, atol=1e-6)
    # editing in place, or assigning, changes the predictions as in scikit-learn
    clf.coefs_[1][...] = 0.0
    clf.intercepts_ = [clf.intercepts_[0], np.arange(10.0)]
    assert (clf.predict(X) == 9).all()
    with pytest.raises(ValueError, match="shapes"):
        clf.coefs_ = [np.zeros((3, 3))]


def test_reproducible_and_random_state(small):
    X, y = small
    kw = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.05,
              max_iter=5)
    a = MLPClassifier(random_state=7, **kw).fit(X, y)
    b = MLPClassifier(random_state=7, **kw).fit(X, y)
    assert all(np.array_equal(p, q) for p, q in zip(_params(a), _params(b)))
    c = MLPClassifier(random_state=8, **kw).fit(X, y)
    assert _max_diff(a, c) > 0
    # None: a seed from numpy's global random state, as scikit-learn
    np.random.seed(0)
    d = MLPClassifier(**kw).fit(X, y)
    np.random.seed(0)
    e = MLPClassifier(**kw).fit(X, y)
    f = MLPClassifier(**kw).fit(X, y)
    assert _max_diff(d, e) == 0.0 and _max_diff(d, f) > 0
    # a RandomState instance is drawn from (and advanced)
    rs = np.random.RandomState(7)
    g = MLPClassifier(random_state=rs, **kw).fit(X, y)
    assert _max_diff(a, g) == 0.0


def test_float64_dtype(small):
    X, y = small
    clf = MLPClassifier((10,), max_iter=5, dtype="float64", random_state=0).fit(X, y)
    assert clf.coefs_[0].dtype == np.float64 and clf.network_.dtype == np.float64
    reg = MLPRegressor(hidden_layer_sizes=(10,), max_iter=5, random_state=0)
    reg.fit(X, y.astype(float))
    assert reg.coefs_[0].dtype == np.float32 and reg.predict(X).dtype == np.float64


# --- partial_fit, warm_start, early stopping, stopping rules ----------------------------
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_calls_equal_fit_epochs(small, solver):
    """Each partial_fit call is one epoch that continues the optimizer's state and the
    sample order of the epochs before, so k calls on the data are fit's k epochs."""
    X, y = small
    kw = dict(hidden_layer_sizes=(20,), solver=solver, learning_rate_init=0.01,
              batch_size=32, random_state=0, n_iter_no_change=1000)
    fitted = MLPClassifier(max_iter=4, **kw).fit(X, y)
    part = MLPClassifier(**kw)
    for _ in range(4):
        part.partial_fit(X, y, classes=np.arange(10))
        assert part.n_iter_ == 1
    assert _max_diff(part, fitted) == 0.0
    assert part.t_ == fitted.t_ == 4 * len(X)
    assert part.loss_curve_ == fitted.loss_curve_


def test_partial_fit_chunks_equal_one_epoch(small):
    """Without shuffling, partial_fit over consecutive chunks (multiples of the batch
    size) takes the same mini-batch steps as one epoch of fit."""
    X, y = small
    kw = dict(hidden_layer_sizes=(20,), solver="sgd", batch_size=20, shuffle=False,
              random_state=0)
    fitted = MLPClassifier(max_iter=1, **kw).fit(X, y)
    part = MLPClassifier(**kw)
    for s in range(0, len(X), 60):
        part.partial_fit(X[s:s + 60], y[s:s + 60], classes=np.arange(10))
    assert _max_diff(part, fitted) == 0.0


def test_partial_fit_errors(small):
    X, y = small
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    clf = MLPClassifier((5,)).partial_fit(X, y, classes=np.arange(12))
    assert list(clf.classes_) == list(range(12))
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, y + 20)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="X has 10 features"):
        clf.partial_fit(X[:, :10], y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_warm_start_continues(small, solver):
    """warm_start keeps the weights and the optimizer's state: 3 epochs then 4 train
    the same as 7 (neither run stopping early)."""
    X, y = small
    kw = dict(hidden_layer_sizes=(20,), solver=solver, learning_rate_init=0.01,
              random_state=0, n_iter_no_change=1000)
    seven = MLPClassifier(max_iter=7, **kw).fit(X, y)
    warm = MLPClassifier(max_iter=3, warm_start=True, **kw).fit(X, y)
    first = _params(warm)
    warm.set_params(max_iter=4).fit(X, y)
    assert warm.n_iter_ == 4 and len(warm.loss_curve_) == 7
    assert _max_diff(warm, seven) == 0.0
    # without warm_start, fit starts again from the initial weights
    cold = MLPClassifier(max_iter=3, **kw).fit(X, y)
    cold.fit(X, y)
    assert all(np.array_equal(p, q) for p, q in zip(_params(cold), first))
    with pytest.raises(ValueError, match="same classes"):
        warm.fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match="fit afresh"):
        warm.set_params(hidden_layer_sizes=(7,)).fit(X, y)


def test_early_stopping_restores_best_validation_weights(digits):
    X, y = digits
    clf = MLPClassifier((32,), solver="sgd", learning_rate_init=0.5, momentum=0.9,
                        early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=3, max_iter=100, random_state=0).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ < 100 and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(scores) > scores[-1]
    # the split, redrawn as documented: initial weights, the seed, then the split
    rs = np.random.RandomState(0)
    for fan_in, fan_out in ((64, 32), (32, 10)):
        rs.uniform(size=(fan_in, fan_out))
        rs.uniform(size=fan_out)
    rs.randint(np.iinfo(np.int32).max)
    _, val = train_test_split(np.arange(len(y)), random_state=rs, test_size=0.2)
    assert accuracy_score(y[val], clf.predict(X[val])) == clf.best_validation_score_


def test_stopping_rule_and_convergence_warning(small):
    X, y = small
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        clf = MLPClassifier((10,), max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert clf.best_loss_ == min(clf.loss_curve_)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = MLPClassifier((10,), max_iter=200, tol=10.0, n_iter_no_change=2,
                            random_state=0).fit(X, y)
    # the first epoch sets best_loss_; the stop comes when n_iter_no_change + 1 more
    # epochs have failed to improve it by tol (scikit-learn's rule)
    assert clf.n_iter_ == 4
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 2 "):
        clf = MLPClassifier((10,), solver="lbfgs", max_iter=2, random_state=0).fit(X, y)
    assert clf.n_iter_ == 2 and not hasattr(clf, "loss_curve_")


def test_verbose_prints_as_sklearn(small, capsys):
    X, y = small
    MLPClassifier((5,), max_iter=200, tol=10.0, n_iter_no_change=1, verbose=True,
                  random_state=0).fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Iteration 1, loss = \d+\.\d{8}", out[0])
    assert out[-1].startswith("Training loss did not improve more than tol=10.000000 "
                              "for 1 consecutive epochs. Stopping.")


# --- input checks ------------------------------------------------------------------------
def test_bad_input(small):
    X, y = small
    clf = MLPClassifier((5,), max_iter=2)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    Xn = X.copy()
    Xn[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(Xn, y)
    with pytest.raises(ValueError, match="infinity"):
        MLPRegressor().fit(X, np.where(y == 3, np.inf, y))
    with pytest.raises(ValueError, match="1 class"):
        clf.fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X, X[:, 10])
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson").fit(X, y)
    bad = [dict(hidden_layer_sizes=(0,)), dict(activation="gelu"), dict(solver="sgdm"),
           dict(alpha=-1.0), dict(batch_size=0), dict(learning_rate="cosine"),
           dict(momentum=1.5), dict(validation_fraction=1.0), dict(beta_2=1.0),
           dict(epsilon=0.0), dict(n_iter_no_change=0), dict(max_iter=0),
           dict(dtype="float16"), dict(early_stopping=True, validation_fraction=0.0)]
    for params in bad:
        with pytest.raises(ValueError):
            MLPClassifier(**params).fit(X, y)
    for params in (dict(shuffle="yes"), dict(hidden_layer_sizes="10"), dict(tol=None)):
        with pytest.raises(TypeError):
            MLPClassifier(**params).fit(X, y)
    fitted = MLPClassifier((5,), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 10 features"):
        fitted.predict(X[:, :10])
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        MLPRegressor(solver="sgd", learning_rate_init=10.0, max_iter=5,
                     random_state=0).fit(X * 100, y * 1000.0)
    with pytest.warns(DataConversionWarning):
        MLPRegressor(hidden_layer_sizes=(5,), max_iter=2).fit(X, y.reshape(-1, 1) / 9.0)


def test_sparse_input_is_densified(small):
    X, y = small
    kw = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0)
    dense = MLPClassifier(**kw).fit(X, y)
    for fmt in ("csr", "csc", "coo"):
        Xs = sp.csr_matrix(X).asformat(fmt)
        sparse = MLPClassifier(**kw).fit(Xs, y)
        assert _max_diff(sparse, dense) == 0.0
        np.testing.assert_array_equal(sparse.predict_proba(Xs), dense.predict_proba(X))


def test_readonly_and_fortran_input(small):
    X, y = small
    kw = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0)
    ref = MLPClassifier(**kw).fit(X, y)
    ro = X.copy()
    ro.flags.writeable = False
    a = MLPClassifier(**kw).fit(ro, y)
    b = MLPClassifier(**kw).fit(np.asfortranarray(X), y)
    assert _max_diff(a, ref) == 0.0 and _max_diff(b, ref) == 0.0
    np.testing.assert_array_equal(a.predict_proba(ro), ref.predict_proba(X))


def test_import_without_sklearn():
    """``import fastnn`` needs no scikit-learn; ``import fastnn.sklearn`` says what to
    install."""
    script = ("import sys\n"
              "sys.modules['sklearn'] = None\n"
              "import fastnn\n"
              "try:\n"
              "    import fastnn.sklearn\n"
              "except ImportError as exc:\n"
              "    print(exc)\n")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert 'pip install "fastnn[sklearn]"' in res.stdout
