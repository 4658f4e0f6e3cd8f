"""fastnn.schedules: closed-form rates, warm-up, ReduceOnPlateau's rule, and the schedule
protocol inside fit (rates in the History, bad rates refused before training)."""
import math
import re

import numpy as np
import pytest

import fastnn as fnn
from fastnn import schedules as S


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.random((40, 5))
    y = rng.integers(0, 3, 40)
    return X, y


def rates(schedule, n, base=None):
    if base is not None:
        schedule.start(base, n)
    return [schedule.lr(e) for e in range(n)]


# --- closed forms -----------------------------------------------------------------------
# The formulas are those of PyTorch's schedulers (StepLR, ExponentialLR, the closed form
# of CosineAnnealingLR) and scikit-learn's invscaling, written out here independently.
def test_step_decay_formula():
    s = S.StepDecay(step_size=3, gamma=0.5, lr=0.8)
    assert rates(s, 10) == [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1]
    for e in range(25):
        assert S.StepDecay(7, 0.3, lr=2.0).lr(e) == pytest.approx(2.0 * 0.3 ** (e // 7),
                                                                   rel=1e-15)


def test_exponential_formula():
    s = S.Exponential(gamma=0.9, lr=0.5)
    for e, r in enumerate(rates(s, 30)):
        assert r == pytest.approx(0.5 * 0.9 ** e, rel=1e-14)


@pytest.mark.parametrize("power_t", [0.0, 0.25, 0.5, 1.0])
def test_inverse_scaling_formula(power_t):
    s = S.InverseScaling(power_t=power_t, lr=0.3)
    for e, r in enumerate(rates(s, 20)):
        assert r == pytest.approx(0.3 / (e + 1) ** power_t, rel=1e-14)
    assert s.lr(0) == 0.3
    assert S.InverseScaling(lr=1.0).lr(3) == pytest.approx(0.5)       # default power_t 0.5


@pytest.mark.parametrize("T_max,eta_min", [(10, 0.0), (7, 0.01), (1, 0.05)])
def test_cosine_formula(T_max, eta_min):
    s = S.Cosine(T_max=T_max, eta_min=eta_min, lr=0.2)
    got = rates(s, 3 * T_max)
    for e, r in enumerate(got):
        want = eta_min + (0.2 - eta_min) * (1 + math.cos(math.pi * e / T_max)) / 2
        assert r == pytest.approx(want, rel=1e-13, abs=1e-17)
    assert got[0] == pytest.approx(0.2)
    assert got[T_max] == pytest.approx(eta_min, abs=1e-17)          # the bottom at T_max
    assert got[2 * T_max] == pytest.approx(0.2)                      # and up again, as torch


@pytest.mark.parametrize("make", [lambda w: S.StepDecay(2, 0.5, lr=0.6, warmup=w),
                                  lambda w: S.Exponential(0.8, lr=0.6, warmup=w),
                                  lambda w: S.InverseScaling(0.5, lr=0.6, warmup=w),
                                  lambda w: S.Cosine(5, 0.01, lr=0.6, warmup=w)])
@pytest.mark.parametrize("warmup", [1, 3])
def test_warmup_ramps_linearly_then_runs_the_schedule_from_its_start(make, warmup):
    plain, warm = make(0), make(warmup)
    got = rates(warm, warmup + 8)
    assert got[:warmup] == pytest.approx([0.6 * (k + 1) / (warmup + 1)
                                          for k in range(warmup)], rel=1e-15)
    assert got[warmup:] == rates(plain, 8)
    assert got[warmup] == 0.6
    assert all(a < b for a, b in zip(got[:warmup + 1], got[1:warmup + 1]))


def test_base_rate_defaults_to_the_optimizer_rate_and_given_lr_wins():
    s = S.Exponential(0.5)
    with pytest.raises(RuntimeError, match="base rate"):
        s.lr(0)
    assert rates(s, 3, base=0.4) == [0.4, 0.2, 0.1]
    assert rates(S.Exponential(0.5, lr=1.0), 3, base=0.4) == [1.0, 0.5, 0.25]


# --- ReduceOnPlateau ----------------------------------------------------------------------
def plateau_reference(values, base, factor, patience, min_delta, cooldown, min_lr, mode):
    """torch.optim.lr_scheduler.ReduceLROnPlateau (threshold_mode='abs'), written out:
    the rate of each epoch, the metric of epoch k deciding the rate of epoch k+1."""
    best = math.inf if mode == "min" else -math.inf
    bad = cool = 0
    lr = base
    out = []
    for v in values:
        out.append(lr)
        if (v < best - min_delta) if mode == "min" else (v > best + min_delta):
            best, bad = v, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > patience:
            lr = max(lr * factor, min_lr)
            cool, bad = cooldown, 0
    return out


def run_plateau(schedule, values, base, key="val_loss"):
    schedule.start(base, len(values))
    out = []
    for k, v in enumerate(values):
        out.append(schedule.lr(k))
        schedule.on_epoch_end(k, {key: v, "loss": 0.0})
    return out


PLATEAU_VALUES = [1.0, 0.9, 0.9, 0.95, 0.89, 0.91, 0.92, 0.93, 0.94, 0.5, 0.6, 0.7, 0.8,
                  0.9, 1.0, 0.45, 0.46, 0.47, 0.48, 0.49]


@pytest.mark.parametrize("patience", [0, 1, 2])
@pytest.mark.parametrize("cooldown", [0, 2])
@pytest.mark.parametrize("min_delta", [0.0, 0.02])
def test_reduce_on_plateau_follows_torchs_rule(patience, cooldown, min_delta):
    s = S.ReduceOnPlateau(factor=0.5, patience=patience, min_delta=min_delta,
                          cooldown=cooldown, min_lr=0.01)
    got = run_plateau(s, PLATEAU_VALUES, 0.4)
    want = plateau_reference(PLATEAU_VALUES, 0.4, 0.5, patience, min_delta, cooldown, 0.01,
                             "min")
    assert got == want
    assert min(got) < 0.4                                  # it did reduce


def test_reduce_on_plateau_hand_worked():
    # patience 1: the 2nd bad epoch in a row reduces the rate of the epoch after it
    s = S.ReduceOnPlateau(factor=0.1, patience=1, min_delta=0.0)
    got = run_plateau(s, [3.0, 2.0, 2.5, 2.2, 1.0, 1.5, 1.5, 1.5], 1.0)
    assert got == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01])
    assert s.reductions == 2 and s.best == 1.0


def test_reduce_on_plateau_max_mode_min_lr_and_warmup():
    s = S.ReduceOnPlateau(factor=0.5, patience=0, monitor="val_accuracy", min_lr=0.3,
                          warmup=2)
    assert s.mode == "max"
    got = run_plateau(s, [0.1, 0.1, 0.5, 0.6, 0.6, 0.6, 0.6], 1.0, key="val_accuracy")
    # warm-up epochs 0, 1 are not watched; 0.5 and 0.6 improve; then 1.0 -> 0.5 -> 0.3
    assert got == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 1.0, 0.5, 0.3])
    s.start(1.0, 3)                                      # a new fit starts afresh
    assert s.lr(2) == 1.0 and s.reductions == 0


# --- bad arguments ------------------------------------------------------------------------
@pytest.mark.parametrize("make,name,exc", [
    (lambda: S.StepDecay(0), "step_size", ValueError),
    (lambda: S.StepDecay(2.5), "step_size", TypeError),
    (lambda: S.StepDecay(2, gamma=0), "gamma", ValueError),
    (lambda: S.Exponential(-0.5), "gamma", ValueError),
    (lambda: S.Exponential(float("nan")), "gamma", ValueError),
    (lambda: S.InverseScaling(power_t=-1), "power_t", ValueError),
    (lambda: S.Cosine(0), "T_max", ValueError),
    (lambda: S.Cosine(10, eta_min=-0.1), "eta_min", ValueError),
    (lambda: S.ReduceOnPlateau(factor=1.0), "factor", ValueError),
    (lambda: S.ReduceOnPlateau(factor=0), "factor", ValueError),
    (lambda: S.ReduceOnPlateau(patience=-1), "patience", ValueError),
    (lambda: S.ReduceOnPlateau(min_delta=-1), "min_delta", ValueError),
    (lambda: S.ReduceOnPlateau(monitor=3), "monitor", TypeError),
    (lambda: S.ReduceOnPlateau(mode="up"), "mode", ValueError),
    (lambda: S.Exponential(0.9, lr=0), "lr", ValueError),
    (lambda: S.Exponential(0.9, warmup=-2), "warmup", ValueError),
    (lambda: S.Cosine(5, warmup=1.5), "warmup", TypeError),
])
def test_bad_schedule_arguments(make, name, exc):
    with pytest.raises(exc, match=name):
        make()


# --- inside fit ---------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", [S.StepDecay(2, 0.5, warmup=1), S.Exponential(0.7),
                                      S.InverseScaling(0.5), S.Cosine(5, 0.01, warmup=2)])
def test_fit_uses_the_schedule_exactly_like_the_same_rates_as_a_callable(data, schedule):
    X, y = data
    a, b = fnn.Network([5, 8, 3], seed=3), fnn.Network([5, 8, 3], seed=3)
    ha = a.fit(X, y, epochs=6, batch_size=4, optimizer=fnn.SGD(0.3, momentum=0.9),
               schedule=schedule, progress=False)
    want = rates(schedule, 6, base=0.3)
    assert ha.history["lr"] == want
    hb = b.fit(X, y, epochs=6, batch_size=4, optimizer=fnn.SGD(0.3, momentum=0.9),
               schedule=lambda e: want[e], progress=False)
    assert np.array_equal(a.params, b.params)
    assert hb.history["lr"] == want


def test_same_schedule_object_gives_the_same_rates_in_each_fit(data):
    X, y = data
    net = fnn.Network([5, 8, 3], seed=3)
    s = S.ReduceOnPlateau(factor=0.5, patience=0, min_delta=10.0, monitor="loss")
    h1 = net.fit(X, y, epochs=4, optimizer=fnn.SGD(0.2), schedule=s, progress=False)
    h2 = net.fit(X, y, epochs=4, optimizer=fnn.SGD(0.2), schedule=s, progress=False)
    # min_delta 10: only the first epoch improves; each later one halves the next rate
    assert h1.history["lr"] == h2.history["lr"] == pytest.approx([0.2, 0.2, 0.1, 0.05])


def test_reduce_on_plateau_in_fit_follows_its_rule_on_the_recorded_metric(data):
    X, y = data
    net = fnn.Network([5, 8, 3], seed=4)
    s = S.ReduceOnPlateau(factor=0.5, patience=1, min_delta=0.002)
    h = net.fit(X, y, epochs=25, batch_size=8, optimizer=fnn.SGD(0.5, momentum=0.9),
                schedule=s, validation_data=(X[:15], y[:15]), progress=False)
    want = plateau_reference(h.history["val_loss"], 0.5, 0.5, 1, 0.002, 0, 0.0, "min")
    assert h.history["lr"] == want
    assert s.reductions >= 1 and min(want) < 0.5


def test_monitor_that_fit_does_not_record_is_refused(data):
    X, y = data
    net = fnn.Network([5, 8, 3], seed=4)
    before = net.params.copy()
    with pytest.raises(ValueError, match=re.escape("schedule monitors 'val_loss'")) as err:
        net.fit(X, y, epochs=3, schedule=S.ReduceOnPlateau(), progress=False)
    assert "validation_data" in str(err.value)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


def test_zero_rate_refused_before_training(data):
    X, y = data
    net = fnn.Network([5, 8, 3], seed=4)
    before = net.params.copy()
    # the cosine reaches eta_min = 0 at epoch T_max = 3, inside these 5 epochs
    with pytest.raises(ValueError, match="schedule.*epoch 3"):
        net.fit(X, y, epochs=5, schedule=S.Cosine(3), progress=False)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


def test_schedule_objects_with_only_lr_work_and_bad_objects_are_refused(data):
    X, y = data

    class Halving:
        def lr(self, epoch):
            return 0.4 / 2 ** epoch

    net = fnn.Network([5, 8, 3], seed=4)
    h = net.fit(X, y, epochs=3, schedule=Halving(), progress=False)
    assert h.history["lr"] == [0.4, 0.2, 0.1]

    class Broken:
        def lr(self, epoch):
            return "fast"

    with pytest.raises(TypeError, match="schedule"):
        net.fit(X, y, epochs=2, schedule=Broken(), progress=False)
    with pytest.raises(TypeError, match="schedule"):
        net.fit(X, y, epochs=2, schedule=[0.1, 0.2], progress=False)
    assert net.epochs_trained == 3


def test_schedule_with_a_full_batch_optimizer_is_refused(data):
    X, y = data
    net = fnn.Network([5, 8, 3], seed=4)
    with pytest.raises(ValueError, match="schedule"):
        net.fit(X, y, epochs=2, optimizer=fnn.LBFGS(), schedule=S.Exponential(0.9),
                progress=False)
    assert net.epochs_trained == 0


def test_repr():
    assert repr(S.StepDecay(3, 0.5, warmup=2)) == "StepDecay(step_size=3, gamma=0.5, warmup=2)"
    assert "monitor='val_loss'" in repr(S.ReduceOnPlateau())
