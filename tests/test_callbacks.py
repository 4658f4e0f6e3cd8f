"""Callbacks: early stopping (bitwise best weights), user hooks that stop training,
ModelCheckpoint (atomic, best only), ProgressBar, and bad arguments."""
import io
import re

import numpy as np
import pytest

import fastnn as fnn
import fastnn.io
import fastnn.network


@pytest.fixture
def overfit():
    """Random labels: the validation loss turns up after a few epochs."""
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 5)), rng.integers(0, 3, 30)
    Xv, yv = rng.random((30, 5)), rng.integers(0, 3, 30)
    return X, y, Xv, yv


FIT = dict(batch_size=4, progress=False)


class Recorder(fnn.Callback):
    """Keeps every hook call and the weights after each epoch."""

    def __init__(self, stop_at=None):
        self.calls, self.params, self.stop_at = [], {}, stop_at

    def on_train_begin(self, net, epochs):
        self.calls.append(("begin", epochs))

    def on_epoch_end(self, epoch, metrics, net):
        self.calls.append(("epoch", epoch, sorted(metrics)))
        self.params[epoch] = net.params.copy()
        metrics["loss"] = -1.0                      # a copy: the History is not affected
        return epoch == self.stop_at or None

    def on_train_end(self, net, history):
        self.calls.append(("end", len(history.epoch)))


# --- early stopping -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 2])
def test_early_stopping_restores_bitwise_the_weights_of_the_best_epoch(overfit, seed):
    X, y, Xv, yv = overfit
    net = fnn.Network([5, 16, 3], seed=seed, dtype="float64")
    es = fnn.EarlyStopping(patience=3)
    h = net.fit(X, y, epochs=60, optimizer=fnn.SGD(0.5, momentum=0.9),
                validation_data=(Xv, yv), early_stopping=es, **FIT)
    best = es.best_epoch
    assert es.stopped_epoch == best + 3 < 60             # it did stop, 3 epochs after
    assert h.epoch == list(range(1, es.stopped_epoch + 1))  # History ends where it stopped
    assert net.epochs_trained == es.stopped_epoch
    val = h.history["val_loss"]
    assert val[best - 1] == min(val) and es.best == min(val)
    assert all(v >= min(val) for v in val[best:])

    again = fnn.Network([5, 16, 3], seed=seed, dtype="float64")
    again.fit(X, y, epochs=best, optimizer=fnn.SGD(0.5, momentum=0.9), **FIT)
    assert np.array_equal(net.params, again.params)
    assert net.evaluate(Xv, yv)["loss"] == min(val)


def test_early_stopping_restores_the_best_also_when_the_epochs_run_out(overfit):
    X, y, Xv, yv = overfit
    net = fnn.Network([5, 16, 3], seed=0, dtype="float64")
    rec = Recorder()
    es = fnn.EarlyStopping(patience=50)
    h = net.fit(X, y, epochs=8, optimizer=fnn.SGD(0.5, momentum=0.9),
                validation_data=(Xv, yv), early_stopping=es, callbacks=[rec], **FIT)
    assert es.stopped_epoch is None and len(h.epoch) == 8
    assert es.best_epoch < 8                            # best is not the last: a real test
    assert np.array_equal(net.params, rec.params[es.best_epoch])


def test_without_restore_best_the_last_weights_stay(overfit):
    X, y, Xv, yv = overfit
    net = fnn.Network([5, 16, 3], seed=0, dtype="float64")
    rec = Recorder()
    es = fnn.EarlyStopping(patience=2, restore_best=False)
    net.fit(X, y, epochs=60, optimizer=fnn.SGD(0.5, momentum=0.9), validation_data=(Xv, yv),
            early_stopping=es, callbacks=[rec], **FIT)
    assert es.stopped_epoch is not None and es.best_epoch < es.stopped_epoch
    assert np.array_equal(net.params, rec.params[es.stopped_epoch])


def test_min_delta_and_max_mode(overfit):
    X, y, Xv, yv = overfit
    net = fnn.Network([5, 16, 3], seed=0, dtype="float64")
    es = fnn.EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.5)
    assert es.mode == "max"
    h = net.fit(X, y, epochs=20, optimizer=fnn.SGD(0.5, momentum=0.9),
                validation_data=(Xv, yv), early_stopping=es, **FIT)
    # accuracy cannot rise by more than 0.5 after the first epoch: stop after 1 + 2
    assert len(h.epoch) == 3 and es.best_epoch == 1


@pytest.mark.parametrize("with_val,monitor", [(True, "val_loss"), (False, "loss")])
def test_integer_early_stopping_monitors_val_loss_else_loss(overfit, monkeypatch, with_val,
                                                           monitor):
    X, y, Xv, yv = overfit
    made = []

    class Spy(fnn.EarlyStopping):
        def __init__(self, **kw):
            super().__init__(**kw)
            made.append(self)

    monkeypatch.setattr(fastnn.network, "EarlyStopping", Spy)
    net = fnn.Network([5, 16, 3], seed=0, dtype="float64")
    net.fit(X, y, epochs=3, validation_data=(Xv, yv) if with_val else None,
            early_stopping=4, **FIT)
    assert len(made) == 1
    assert made[0].monitor == monitor and made[0].patience == 4


def test_explicit_val_monitor_without_validation_data_is_refused(overfit):
    X, y, _, _ = overfit
    net = fnn.Network([5, 16, 3], seed=0)
    before = net.params.copy()
    opt = fnn.SGD(0.1, momentum=0.9)
    with pytest.raises(ValueError, match=re.escape("early_stopping monitors 'val_loss'")):
        net.fit(X, y, epochs=3, optimizer=opt, early_stopping=fnn.EarlyStopping(), **FIT)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0
    assert opt.state is None


# --- user callbacks -------------------------------------------------------------------------
def test_a_callback_returning_true_stops_training_and_all_see_the_epoch(overfit):
    X, y, Xv, yv = overfit
    net = fnn.Network([5, 16, 3], seed=0, dtype="float64")
    stopper, other = Recorder(stop_at=3), Recorder()
    h = net.fit(X, y, epochs=10, validation_data=(Xv, yv), callbacks=[stopper, other],
                **FIT)
    assert h.epoch == [1, 2, 3] and net.epochs_trained == 3
    keys = sorted(["loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"])
    for rec in (stopper, other):
        assert rec.calls == [("begin", 10), ("epoch", 1, keys), ("epoch", 2, keys),
                             ("epoch", 3, keys), ("end", 3)]
    assert all(v > 0 for v in h.history["loss"])          # callbacks got copies
    # the epoch numbers are the network's: they go on in the next fit
    more = Recorder()
    net.fit(X, y, epochs=2, callbacks=[more], **FIT)
    assert [c[1] for c in more.calls if c[0] == "epoch"] == [4, 5]


def test_stopping_via_a_plain_object_and_other_return_values_go_on(overfit):
    X, y, _, _ = overfit

    class Plain:                                          # no base class needed
        def __init__(self, result):
            self.result, self.seen = result, 0

        def on_epoch_end(self, epoch, metrics, net):
            self.seen += 1
            return self.result

    net = fnn.Network([5, 16, 3], seed=0)
    for result in (None, False, 1, "stop"):
        h = net.fit(X, y, epochs=3, callbacks=[Plain(result)], **FIT)
        assert len(h.epoch) == 3
    assert len(net.fit(X, y, epochs=3, callbacks=[Plain(np.True_)], **FIT).epoch) == 1


def test_a_callback_refusing_in_on_train_begin_changes_nothing(overfit):
    X, y, _, _ = overfit

    class Refuse(fnn.Callback):
        def on_train_begin(self, net, epochs):
            raise ValueError("callbacks: not today")

    net = fnn.Network([5, 16, 3], seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match="not today"):
        net.fit(X, y, epochs=3, callbacks=[Recorder(), Refuse()], **FIT)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


@pytest.mark.parametrize("kwargs,name,exc", [
    (dict(callbacks=fnn.Callback()), "callbacks", TypeError),        # not in a list
    (dict(callbacks="checkpoint"), "callbacks", TypeError),
    (dict(callbacks=[3]), "callbacks[0]", TypeError),
    (dict(callbacks=[fnn.Callback(), object()]), "callbacks[1]", TypeError),
    (dict(early_stopping=0), "early_stopping", ValueError),
    (dict(early_stopping=True), "early_stopping", TypeError),
    (dict(early_stopping=2.5), "early_stopping", TypeError),
    (dict(early_stopping="val_loss"), "early_stopping", TypeError),
    (dict(callbacks=[fnn.ModelCheckpoint("m.npz", save_best_only=True)]),
     "callbacks[0] monitors 'val_loss'", ValueError),
    (dict(callbacks=[fnn.Callback(), fnn.EarlyStopping(monitor="accuracy")]),
     "callbacks[1] monitors 'accuracy'", ValueError),                 # y are float targets
])
def test_bad_callback_arguments(kwargs, name, exc):
    rng = np.random.default_rng(0)
    X = rng.random((20, 5))
    y = rng.integers(0, 3, 20) if "accuracy" not in name else rng.random((20, 3))
    net = fnn.Network([5, 6, 3], seed=0)
    before = net.params.copy()
    with pytest.raises(exc, match=re.escape(name)):
        net.fit(X, y, epochs=2, **FIT, **kwargs)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


@pytest.mark.parametrize("make,name,exc", [
    (lambda: fnn.EarlyStopping(patience=0), "patience", ValueError),
    (lambda: fnn.EarlyStopping(min_delta=-1), "min_delta", ValueError),
    (lambda: fnn.EarlyStopping(monitor=None), "monitor", TypeError),
    (lambda: fnn.EarlyStopping(mode="best"), "mode", ValueError),
    (lambda: fnn.EarlyStopping(restore_best="yes"), "restore_best", TypeError),
    (lambda: fnn.ModelCheckpoint(3), "path", TypeError),
    (lambda: fnn.ModelCheckpoint("m-{step}.npz"), "step", ValueError),
    (lambda: fnn.ModelCheckpoint("m-{epoch.npz"), "path", ValueError),
    (lambda: fnn.ModelCheckpoint("m.npz", save_best_only=1), "save_best_only", TypeError),
    (lambda: fnn.ProgressBar(bar="maybe"), "bar", ValueError),
])
def test_bad_callback_constructor_arguments(make, name, exc):
    with pytest.raises(exc, match=name):
        make()


# --- ModelCheckpoint --------------------------------------------------------------------------
def test_checkpoint_best_only_holds_the_best_epoch(overfit, tmp_path, monkeypatch):
    X, y, Xv, yv = overfit
    written = []
    real = fastnn.io.atomic_write

    def spy(path, write):
        written.append(str(path))
        return real(path, write)

    monkeypatch.setattr(fastnn.io, "atomic_write", spy)
    path = tmp_path / "best.npz"
    ckpt = fnn.ModelCheckpoint(path, save_best_only=True)
    rec = Recorder()
    net = fnn.Network([5, 16, 3], seed=0, dtype="float64")
    h = net.fit(X, y, epochs=12, optimizer=fnn.SGD(0.5, momentum=0.9),
                validation_data=(Xv, yv), callbacks=[rec, ckpt], **FIT)
    val = h.history["val_loss"]
    best = int(np.argmin(val)) + 1
    improvements = sum(v < min(val[:i], default=np.inf) for i, v in enumerate(val))
    assert ckpt.best_epoch == best < 12
    assert ckpt.saved == [str(path)] * improvements and 1 < improvements < 12
    assert written == ckpt.saved                         # every save went through io's
    saved = fnn.load(path)                               # atomic write
    assert np.array_equal(saved.params, rec.params[best])
    assert saved.epochs_trained == best
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]   # no temporary files


def test_checkpoint_every_epoch_with_formatted_names(overfit, tmp_path):
    X, y, Xv, yv = overfit
    ckpt = fnn.ModelCheckpoint(tmp_path / "m-{epoch:02d}-{val_loss:.3f}.npz")
    assert ckpt.monitor is None                          # not needed without best-only
    rec = Recorder()
    net = fnn.Network([5, 16, 3], seed=0)
    h = net.fit(X, y, epochs=3, validation_data=(Xv, yv), callbacks=[rec, ckpt], **FIT)
    names = [f"m-{e:02d}-{v:.3f}.npz" for e, v in zip(h.epoch, h.history["val_loss"])]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    for e, name in zip(h.epoch, names):
        assert np.array_equal(fnn.load(tmp_path / name).params, rec.params[e])


def test_checkpoint_into_a_missing_folder_is_refused_before_training(overfit, tmp_path):
    X, y, _, _ = overfit
    net = fnn.Network([5, 16, 3], seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match="does not exist"):
        net.fit(X, y, epochs=2, callbacks=[fnn.ModelCheckpoint(tmp_path / "no" / "m.npz")],
                **FIT)
    assert np.array_equal(net.params, before) and net.epochs_trained == 0


# --- ProgressBar -----------------------------------------------------------------------------
def test_progress_bar_lines_and_no_second_display(overfit, capsys):
    X, y, _, _ = overfit
    buf = io.StringIO()
    net = fnn.Network([5, 16, 3], seed=0)
    net.fit(X, y, epochs=2, batch_size=4, callbacks=[fnn.ProgressBar(stream=buf)])
    lines = buf.getvalue().strip().splitlines()
    assert len(lines) == 2 and re.match(r"epoch 1/2 .*loss \d\.\d{4}.*s$", lines[0])
    assert capsys.readouterr().err == ""                 # progress=True added no other
    buf = io.StringIO()
    net.fit(X, y, epochs=1, batch_size=4, progress=fnn.ProgressBar(stream=buf, bar=False))
    assert buf.getvalue().startswith("epoch 3/3 ")      # epochs counted over the network


def test_tqdm_progress_bar_slices_epochs_without_changing_the_weights(overfit):
    X, y, _, _ = overfit
    buf = io.StringIO()
    a, b = fnn.Network([5, 16, 3], seed=0), fnn.Network([5, 16, 3], seed=0)
    bar = fnn.ProgressBar(stream=buf, bar=True)
    a.fit(X, y, epochs=2, batch_size=2, optimizer=fnn.SGD(0.2, momentum=0.9), progress=bar)
    assert bar.updates_per_epoch == 20
    b.fit(X, y, epochs=2, batch_size=2, optimizer=fnn.SGD(0.2, momentum=0.9), progress=False)
    assert np.array_equal(a.params, b.params)
    assert "epoch 2/2" in buf.getvalue()
