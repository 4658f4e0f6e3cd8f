"""Adam, AdamW, RMSprop and Adagrad: the compiled rules == the NumPy twins of
torch.optim's formulas (float64, 1e-10) on every path, and the API around them."""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn import reference as ref
from fastnn.network import BLAS_MIN_BATCH

from conftest import make_problem, rel_err

#: name -> (fastnn optimizer, reference rule), the same hyper-parameters
RULES = {
    "adam": (lambda: fnn.Adam(lr=0.01), lambda: ref.AdamRule(0.01)),
    "adam_wd_amsgrad": (lambda: fnn.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6,
                                         weight_decay=0.05, amsgrad=True),
                        lambda: ref.AdamRule(0.01, (0.8, 0.99), 1e-6, 0.05, amsgrad=True)),
    "adamw": (lambda: fnn.AdamW(lr=0.01, weight_decay=0.1),
              lambda: ref.AdamRule(0.01, weight_decay=0.1, decoupled=True)),
    "adamw_amsgrad": (lambda: fnn.AdamW(lr=0.02, amsgrad=True),
                      lambda: ref.AdamRule(0.02, weight_decay=0.01, amsgrad=True,
                                           decoupled=True)),
    "rmsprop": (lambda: fnn.RMSprop(lr=0.01), lambda: ref.RMSpropRule(0.01)),
    "rmsprop_momentum_wd": (lambda: fnn.RMSprop(lr=0.005, alpha=0.9, momentum=0.9,
                                                weight_decay=0.01),
                            lambda: ref.RMSpropRule(0.005, 0.9, weight_decay=0.01,
                                                    momentum=0.9)),
    "rmsprop_centered": (lambda: fnn.RMSprop(lr=0.005, centered=True),
                         lambda: ref.RMSpropRule(0.005, centered=True)),
    "rmsprop_centered_momentum": (
        lambda: fnn.RMSprop(lr=0.003, eps=1e-6, momentum=0.5, centered=True),
        lambda: ref.RMSpropRule(0.003, eps=1e-6, momentum=0.5, centered=True)),
    "adagrad": (lambda: fnn.Adagrad(lr=0.1), lambda: ref.AdagradRule(0.1)),
    "adagrad_all": (lambda: fnn.Adagrad(lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                        initial_accumulator_value=0.1, eps=1e-8),
                    lambda: ref.AdagradRule(0.1, 0.01, 0.01, 0.1, 1e-8)),
}

N = BLAS_MIN_BATCH + 12     # batch N: one full batch on the BLAS path


def run_both(rule, batch_size, n=N, l2=0.0, epochs=2, hidden="tanh", **reg):
    X, y = make_problem("softmax", "log_likelihood", n=n, n_in=5, n_out=3, seed=4)
    net = fnn.Network([5, 7, 6, 3], hidden=hidden, dtype="float64", seed=3, init="lecun")
    W0 = [w.copy() for w in net.weights]
    b0 = [b.copy() for b in net.biases]
    orders = [net._perm(e, n) for e in range(epochs)]
    make, make_ref = RULES[rule]
    net.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=make(), l2=l2,
            progress=False, **reg)
    Ws, bs = ref.train(W0, b0, X, y, net.hidden, net.output, net.cost, orders,
                       min(batch_size, n), make_ref(), l2=l2, **reg)
    moved = rel_err(net.weights + net.biases, W0 + b0)
    return rel_err(net.weights + net.biases, Ws + bs), moved, net


@pytest.mark.parametrize("batch_size", [1, 3, N])
@pytest.mark.parametrize("rule", list(RULES))
def test_rule_matches_reference(rule, batch_size):
    """Sparse inputs (60% zeros): batches 1 and 3 take the fused CSR path, N the BLAS."""
    err, moved, _ = run_both(rule, batch_size, l2=0.02 if "wd" in rule else 0.0)
    assert err <= 1e-10
    assert moved > 1e-3


@pytest.mark.parametrize("rule", ["adam_wd_amsgrad", "adamw", "rmsprop_momentum_wd",
                                  "adagrad_all"])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_sparse_input_path_is_bitwise_the_dense_one(monkeypatch, rule, batch_size):
    """The adaptive rules update rows with a zero gradient too, on both small-batch paths
    (here weight decay moves the rows of an input that is always zero)."""
    import fastnn.network as network
    X, y = make_problem("softmax", "log_likelihood", n=40, n_in=9, n_out=3, seed=9)
    X[:, 2] = 0.0                         # an input no sample uses: its row still moves
    params = {}
    for density in (0.0, 1.0):
        monkeypatch.setattr(network, "SPARSE_MAX_DENSITY", density)
        net = fnn.Network([9, 6, 3], dtype="float64", seed=4)
        w2 = net.weights[0][2].copy()
        net.fit(X, y, epochs=2, batch_size=batch_size, optimizer=RULES[rule][0](),
                progress=False)
        assert not np.array_equal(net.weights[0][2], w2)
        params[density] = net.params
    assert np.array_equal(params[0.0], params[1.0])


def test_adam_two_steps_by_hand():
    """A 1-1 identity network with x = 0: only the bias learns, gradient b - 2."""
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    net = fnn.Network([1, 1], output="identity", dtype="float64")
    net.weights[0][:] = 0.0
    net.biases[0][:] = 0.5
    X, Y = np.zeros((1, 1)), np.full((1, 1), 2.0)
    net.fit(X, Y, epochs=2, batch_size=1, optimizer=fnn.Adam(lr), progress=False)
    b = 0.5
    g1 = b - 2.0                                   # -1.5
    m, v = (1 - b1) * g1, (1 - b2) * g1 ** 2
    b -= lr / (1 - b1) * m / (math.sqrt(v) / math.sqrt(1 - b2) + eps)
    assert b == pytest.approx(0.5 + lr, rel=1e-7)  # Adam's first step: ~lr * sign(g)
    g2 = b - 2.0
    m, v = b1 * m + (1 - b1) * g2, b2 * v + (1 - b2) * g2 ** 2
    b -= lr / (1 - b1 ** 2) * m / (math.sqrt(v) / math.sqrt(1 - b2 ** 2) + eps)
    assert net.biases[0][0] == pytest.approx(b, rel=1e-14)
    assert net.weights[0][0, 0] == 0.0


def test_adamw_rmsprop_adagrad_first_step_by_hand():
    """One step of each from b = 0.5 on the bias (gradient g = b - 2 = -1.5)."""
    X, Y = np.zeros((1, 1)), np.full((1, 1), 2.0)

    def one_step(opt):
        net = fnn.Network([1, 1], output="identity", dtype="float64")
        net.weights[0][:] = 0.0
        net.biases[0][:] = 0.5
        net.fit(X, Y, epochs=1, batch_size=1, optimizer=opt, progress=False)
        return net.biases[0][0]

    g = -1.5
    # AdamW: shrink first, then Adam's step (lr * g / (|g| + eps'))
    want = 0.5 * (1 - 0.1 * 0.2) - 0.1 * g / (abs(g) + 1e-8)
    assert one_step(fnn.AdamW(0.1, weight_decay=0.2)) == pytest.approx(want, rel=1e-14)
    # RMSprop: s = (1 - alpha) g^2;  b -= lr g / (sqrt(s) + eps)
    want = 0.5 - 0.01 * g / (math.sqrt(0.01 * g * g) + 1e-8)
    assert one_step(fnn.RMSprop(0.01)) == pytest.approx(want, rel=1e-14)
    # Adagrad with weight decay: g' = g + wd b;  s = init + g'^2;  b -= lr g' / (sqrt(s) + eps)
    gd = g + 0.1 * 0.5
    want = 0.5 - 0.2 * gd / (math.sqrt(0.3 + gd * gd) + 1e-10)
    got = one_step(fnn.Adagrad(0.2, weight_decay=0.1, initial_accumulator_value=0.3))
    assert got == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize("rule", ["adam", "rmsprop_momentum_wd", "adagrad_all"])
def test_repeated_fits_continue_the_state(rule):
    """fit(2) == fit(1) + fit(1) with the same optimizer object (moments, step count)."""
    X, y = make_problem("softmax", "log_likelihood", n=30)
    a = fnn.Network([4, 5, 3], dtype="float64", seed=7)
    b = fnn.Network([4, 5, 3], dtype="float64", seed=7)
    opt_a, opt_b = RULES[rule][0](), RULES[rule][0]()
    a.fit(X, y, epochs=2, batch_size=4, optimizer=opt_a, progress=False)
    b.fit(X, y, epochs=1, batch_size=4, optimizer=opt_b, progress=False)
    b.fit(X, y, epochs=1, batch_size=4, optimizer=opt_b, progress=False)
    assert np.array_equal(a.params, b.params)
    assert opt_b.step[0] == 2 * 8


def test_schedule_sets_the_rate_of_adam():
    """A constant schedule equal to lr gives the same weights as no schedule."""
    X, y = make_problem("softmax", "log_likelihood", n=30)
    nets = []
    for schedule in (None, lambda e: 0.01):
        net = fnn.Network([4, 5, 3], dtype="float64", seed=7)
        net.fit(X, y, epochs=2, batch_size=4, optimizer=fnn.AdamW(0.01), schedule=schedule,
                progress=False)
        nets.append(net.params)
    assert np.array_equal(*nets)


@pytest.mark.parametrize("name,cls", [("adam", fnn.Adam), ("adamw", fnn.AdamW),
                                      ("rmsprop", fnn.RMSprop), ("adagrad", fnn.Adagrad),
                                      ("ADAM", fnn.Adam)])
def test_names_give_pytorch_defaults(name, cls):
    X, y = make_problem("softmax", "log_likelihood", n=20)
    net = fnn.Network([4, 5, 3], dtype="float64", seed=1)
    net.fit(X, y, epochs=1, batch_size=4, optimizer=name, progress=False)
    other = fnn.Network([4, 5, 3], dtype="float64", seed=1)
    other.fit(X, y, epochs=1, batch_size=4, optimizer=cls(), progress=False)
    assert np.array_equal(net.params, other.params)


def test_defaults_and_repr():
    assert (fnn.Adam().lr, fnn.Adam().betas, fnn.Adam().eps) == (1e-3, (0.9, 0.999), 1e-8)
    assert fnn.Adam().weight_decay == 0.0 and fnn.AdamW().weight_decay == 0.01
    r = fnn.RMSprop()
    assert (r.lr, r.alpha, r.eps, r.momentum, r.centered) == (0.01, 0.99, 1e-8, 0.0, False)
    a = fnn.Adagrad()
    assert (a.lr, a.lr_decay, a.initial_accumulator_value, a.eps) == (0.01, 0.0, 0.0, 1e-10)
    for opt in (fnn.Adam(), fnn.AdamW(), fnn.RMSprop(), fnn.Adagrad()):
        assert type(opt).__name__ in repr(opt)


@pytest.mark.parametrize("make,exc", [
    (lambda: fnn.Adam(lr=0), ValueError),
    (lambda: fnn.Adam(lr="0.1"), TypeError),
    (lambda: fnn.Adam(betas=(0.9, 1.0)), ValueError),
    (lambda: fnn.Adam(betas=(-0.1, 0.9)), ValueError),
    (lambda: fnn.Adam(betas=0.9), TypeError),
    (lambda: fnn.Adam(eps=-1e-8), ValueError),
    (lambda: fnn.Adam(weight_decay=-0.1), ValueError),
    (lambda: fnn.Adam(amsgrad=1), TypeError),
    (lambda: fnn.AdamW(weight_decay=float("nan")), ValueError),
    (lambda: fnn.RMSprop(alpha=1.5), ValueError),
    (lambda: fnn.RMSprop(momentum=-0.5), ValueError),
    (lambda: fnn.RMSprop(centered="yes"), TypeError),
    (lambda: fnn.Adagrad(lr_decay=-1), ValueError),
    (lambda: fnn.Adagrad(initial_accumulator_value=-1), ValueError),
    (lambda: fnn.Adagrad(eps=None), TypeError),
])
def test_bad_hyper_parameters_are_refused(make, exc):
    with pytest.raises(exc):
        make()


@pytest.mark.parametrize("rule", ["adam_wd_amsgrad", "rmsprop_centered_momentum",
                                  "adagrad_all"])
@pytest.mark.parametrize("batch_size", [1, 64])
def test_float32_agrees_with_float64(rule, batch_size):
    X, y = make_problem("softmax", "log_likelihood", n=130, n_in=6, n_out=3, seed=8)
    params = {}
    for dt in ("float32", "float64"):
        net = fnn.Network([6, 10, 3], hidden="relu", dtype=dt, seed=5, init="lecun")
        net.fit(X, y, epochs=2, batch_size=batch_size, l2=1e-3, progress=False,
                optimizer=RULES[rule][0]())
        params[dt] = net.params
    assert params["float32"].dtype == np.float32
    assert rel_err(params["float32"], params["float64"]) < 1e-4


def test_train_script_builds_the_adaptive_optimizers():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "scripts" / "train_mnist.py"
    spec = importlib.util.spec_from_file_location("train_mnist_opt", path)
    tm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tm)
    config = tm.resolve_config(["--optimizer", "adam"])
    opt = tm.OPTIMIZERS["adam"][0](fnn, config)
    assert isinstance(opt, fnn.Adam) and opt.lr == 1e-3 and opt.weight_decay == 0.0
    config = tm.resolve_config(["--optimizer", "adamw", "--lr", "0.01"])
    opt = tm.OPTIMIZERS["adamw"][0](fnn, config)
    assert isinstance(opt, fnn.AdamW) and opt.lr == 0.01 and opt.weight_decay == 0.01
    config = tm.resolve_config(["--optimizer", "rmsprop", "--momentum", "0.5",
                                "--weight-decay", "1e-4"])
    opt = tm.OPTIMIZERS["rmsprop"][0](fnn, config)
    assert (opt.lr, opt.momentum, opt.weight_decay) == (1e-2, 0.5, 1e-4)
    assert isinstance(tm.OPTIMIZERS["adagrad"][0](
        fnn, tm.resolve_config(["--optimizer", "adagrad"])), fnn.Adagrad)
    for argv in (["--optimizer", "adam", "--momentum", "0.9"],
                 ["--optimizer", "adagrad", "--nesterov"],
                 ["--weight-decay", "0.1"],
                 ["--optimizer", "lbfgs", "--weight-decay", "0.1"]):
        with pytest.raises(tm.UsageError):
            tm.resolve_config(argv)


@pytest.mark.parametrize("make", [lambda: fnn.SGD(0.1), lambda: fnn.SGD(0.1, momentum=0.9),
                                  lambda: fnn.SGD(0.1, momentum=0.8, dampening=0.3,
                                                  nesterov=False),
                                  lambda: fnn.SGD(0.1, momentum=0.9, nesterov=True),
                                  lambda: fnn.Adam(0.01), lambda: fnn.RMSprop(0.01)])
@pytest.mark.parametrize("step", [0, 3])
def test_step_from_grad_plus_part_is_the_step_from_their_sum(make, step):
    """``apply_update``'s ``part`` (a large batch's last part, added in the step) moves
    the weights and the state exactly as adding it into ``grad`` first does."""
    from fastnn.kernels.updates import apply_update
    rng = np.random.default_rng(step)
    layout = np.array([[0, 12, 4, 3], [15, 21, 3, 2]], np.int64)
    f = np.float32
    params, grad, part = (rng.standard_normal(23).astype(f) for _ in range(3))
    part[:4] = -grad[:4]                      # sums of exact zeros, signs and all
    state0 = np.abs(rng.standard_normal((3, 23))).astype(f)
    out = []
    for fused in (True, False):
        opt = make()
        p, g = params.copy(), grad.copy()
        state = state0[:max(opt.n_state, 1)].copy()
        if fused:
            apply_update(p, g, layout, 7, 0.01, opt.code, opt.hyper(), state, step, part)
        else:
            g += part
            apply_update(p, g, layout, 7, 0.01, opt.code, opt.hyper(), state, step, None)
        out.append((p, state))
    assert out[0][0].tobytes() == out[1][0].tobytes()
    assert out[0][1].tobytes() == out[1][1].tobytes()
    assert not np.array_equal(out[0][0], params)
