"""Plain-NumPy reference of everything the kernels compute: the tests' oracle.

Written for reading, not speed, in float64, after Nielsen's ``network2.py``: one forward
loop records the pre-activations ``zs`` and activations, one backward loop walks them
back. It never calls the kernels. Weights have shape ``(fan_in, fan_out)`` and a layer
computes ``z = a @ W + b`` on a batch of row vectors ``a``.
"""
import numpy as np
from scipy.special import erf


# --- activations (derivatives in terms of z) -----------------------------------------
def sigmoid(z):
    e = np.exp(-np.abs(z))                      # never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def activation(name, z, slope=0.01):
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "elu":                           # alpha = 1
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
    if name == "gelu":                          # exact: z Phi(z)
        return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))
    if name in ("silu", "swish"):
        return z * sigmoid(z)
    if name == "softmax":
        return softmax(z)
    raise ValueError(name)


def activation_prime(name, z, slope=0.01):
    """f'(z) for the elementwise activations."""
    if name == "identity":
        return np.ones_like(z)
    if name == "sigmoid":
        s = sigmoid(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(float)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, slope)
    if name == "elu":
        return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0)))
    if name == "gelu":                          # Phi(z) + z phi(z)
        return 0.5 * (1.0 + erf(z / np.sqrt(2.0))) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    if name in ("silu", "swish"):
        s = sigmoid(z)
        return s * (1 + z * (1 - s))
    raise ValueError(name)


# --- costs ----------------------------------------------------------------------------
def one_hot(labels, n):
    T = np.zeros((len(labels), n))
    T[np.arange(len(labels)), labels] = 1.0
    return T


def sample_costs(cost, z, a, T):
    """Per-sample cost (a vector) from the output pre-activation z and activation a."""
    if cost == "quadratic":
        return 0.5 * ((a - T) ** 2).sum(axis=1)
    if cost == "cross_entropy":
        # -[t ln a + (1-t) ln(1-a)] with ln a = -log(1+e^-z), ln(1-a) = -log(1+e^z)
        return (T * np.logaddexp(0, -z) + (1 - T) * np.logaddexp(0, z)).sum(axis=1)
    if cost == "log_likelihood":
        return -(T * log_softmax(z)).sum(axis=1)
    raise ValueError(cost)


def output_delta(cost, output, z, a, T, slope=0.01):
    """dC/dz of the output layer, one row per sample."""
    if cost == "cross_entropy":             # sigmoid output: a(1-a) cancels
        return a - T
    if cost == "log_likelihood":            # softmax output
        return a * T.sum(axis=1, keepdims=True) - T
    g = a - T                               # quadratic: dC/da
    if output == "softmax":                 # J^T g with J = diag(a) - a a^T
        return a * (g - (g * a).sum(axis=1, keepdims=True))
    return g * activation_prime(output, z, slope)


# --- the network ----------------------------------------------------------------------
def forward(Ws, bs, X, hidden, output, slope=0.01):
    """Returns ``(zs, activations)``; ``activations[0]`` is ``X``."""
    acts, zs = [np.asarray(X, float)], []
    names = list(hidden) + [output]
    for W, b, name in zip(Ws, bs, names):
        z = acts[-1] @ W + b
        zs.append(z)
        acts.append(activation(name, z, slope))
    return zs, acts


def targets(y, n_out):
    """One-hot rows for labels ``(n,)``; with a single output, labels (binary 0/1) and
    values ``(n,)`` are the targets themselves, as a column."""
    y = np.asarray(y)
    if y.ndim == 1:
        return one_hot(y, n_out) if n_out > 1 else np.asarray(y, float).reshape(-1, 1)
    return np.asarray(y, float)


def loss_and_gradients(Ws, bs, X, y, hidden, output, cost, l2=0.0, slope=0.01):
    """Mean cost (+ l2/2 sum w^2) and its gradients ``(dWs, dbs)``."""
    T = targets(y, Ws[-1].shape[1])
    n = len(X)
    zs, acts = forward(Ws, bs, X, hidden, output, slope)
    loss = sample_costs(cost, zs[-1], acts[-1], T).mean()
    loss += 0.5 * l2 * sum((W ** 2).sum() for W in Ws)
    delta = output_delta(cost, output, zs[-1], acts[-1], T, slope)
    dWs, dbs = [None] * len(Ws), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        dWs[l] = acts[l].T @ delta / n + l2 * Ws[l]
        dbs[l] = delta.sum(axis=0) / n
        if l > 0:
            delta = (delta @ Ws[l].T) * activation_prime(hidden[l - 1], zs[l - 1], slope)
    return loss, dWs, dbs


def sgd_step(params, grads, velocities, lr, momentum=0.0, dampening=0.0, nesterov=False):
    """``torch.optim.SGD.step`` on lists of arrays (velocities: list of None or arrays)."""
    for i, (p, g) in enumerate(zip(params, grads)):
        if momentum != 0:
            if velocities[i] is None:
                velocities[i] = g.copy()
            else:
                velocities[i] = momentum * velocities[i] + (1 - dampening) * g
            g = g + momentum * velocities[i] if nesterov else velocities[i]
        p -= lr * g


class SGDRule:
    """:func:`sgd_step` with its velocities: ``rule(params, grads)`` takes one step."""

    def __init__(self, lr, momentum=0.0, dampening=0.0, nesterov=False):
        self.lr, self.momentum, self.dampening, self.nesterov = lr, momentum, dampening, nesterov
        self.vel = None

    def __call__(self, params, grads):
        if self.vel is None:
            self.vel = [None] * len(params)
        sgd_step(params, grads, self.vel, self.lr, self.momentum, self.dampening,
                 self.nesterov)


class AdamRule:
    """``torch.optim.Adam`` (``decoupled``: ``AdamW``) on lists of arrays."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, decoupled=False):
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.wd, self.amsgrad, self.decoupled = weight_decay, amsgrad, decoupled
        self.t = 0
        self.m = self.v = self.vmax = None

    def __call__(self, params, grads):
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
            self.vmax = [np.zeros_like(p) for p in params]
        self.t += 1
        bc1 = 1 - self.b1 ** self.t
        bc2 = 1 - self.b2 ** self.t
        for p, g, m, v, vmax in zip(params, grads, self.m, self.v, self.vmax):
            if self.decoupled:
                p *= 1 - self.lr * self.wd
            else:
                g = g + self.wd * p
            m[...] = self.b1 * m + (1 - self.b1) * g
            v[...] = self.b2 * v + (1 - self.b2) * g * g
            if self.amsgrad:
                vmax[...] = np.maximum(vmax, v)
                denom = np.sqrt(vmax) / np.sqrt(bc2) + self.eps
            else:
                denom = np.sqrt(v) / np.sqrt(bc2) + self.eps
            p -= self.lr / bc1 * m / denom


class RMSpropRule:
    """``torch.optim.RMSprop`` on lists of arrays."""

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        self.lr, self.alpha, self.eps, self.wd = lr, alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered
        self.sq = self.avg = self.buf = None

    def __call__(self, params, grads):
        if self.sq is None:
            self.sq, self.avg, self.buf = ([np.zeros_like(p) for p in params]
                                           for _ in range(3))
        for p, g, sq, a, buf in zip(params, grads, self.sq, self.avg, self.buf):
            g = g + self.wd * p
            sq[...] = self.alpha * sq + (1 - self.alpha) * g * g
            if self.centered:
                a[...] = self.alpha * a + (1 - self.alpha) * g
                d = np.sqrt(sq - a * a) + self.eps
            else:
                d = np.sqrt(sq) + self.eps
            if self.momentum > 0:
                buf[...] = self.momentum * buf + g / d
                p -= self.lr * buf
            else:
                p -= self.lr * g / d


class AdagradRule:
    """``torch.optim.Adagrad`` on lists of arrays."""

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        self.lr, self.lr_decay, self.wd, self.eps = lr, lr_decay, weight_decay, eps
        self.init = initial_accumulator_value
        self.t = 0
        self.sums = None

    def __call__(self, params, grads):
        if self.sums is None:
            self.sums = [np.full_like(p, self.init) for p in params]
        self.t += 1
        clr = self.lr / (1 + (self.t - 1) * self.lr_decay)
        for p, g, s in zip(params, grads, self.sums):
            g = g + self.wd * p
            s += g * g
            p -= clr * g / (np.sqrt(s) + self.eps)


def clip_grad_norm(grads, max_norm):
    """``torch.nn.utils.clip_grad_norm_``: scale the arrays ``grads`` in place so that
    their global 2-norm is at most ``max_norm`` (with PyTorch's 1e-6)."""
    total = np.sqrt(sum((g ** 2).sum() for g in grads))
    coef = min(1.0, max_norm / (total + 1e-6))
    for g in grads:
        g *= coef


def apply_max_norm(Ws, max_norm):
    """Rescale each column of each ``W`` whose 2-norm exceeds ``max_norm`` to that norm."""
    for W in Ws:
        norms = np.sqrt((W ** 2).sum(axis=0))
        W *= np.where(norms > max_norm, max_norm / np.where(norms > 0, norms, 1.0), 1.0)


def train(Ws, bs, X, y, hidden, output, cost, orders, batch_size, rule, l2=0.0, l1=0.0,
          max_norm=None, clip_norm=None, slope=0.01):
    """Mini-batch training with the update ``rule(params, grads)`` (one of the ``*Rule``
    classes); ``orders`` holds each epoch's sample order. Returns new (Ws, bs).

    Per batch: the mean data gradient, clipped to global norm ``clip_norm``; plus
    ``l2 * W + l1 * sign(W)`` on the weights; the rule's step; then the max-norm
    constraint on each unit's incoming weights. The last batch of an epoch may be
    smaller and is averaged over its own size.
    """
    Ws = [np.array(W, float) for W in Ws]
    bs = [np.array(b, float) for b in bs]
    X = np.asarray(X, float)
    y = np.asarray(y)
    for order in orders:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            _, dWs, dbs = loss_and_gradients(Ws, bs, X[idx], y[idx], hidden, output, cost,
                                             0.0, slope)
            if clip_norm is not None:
                clip_grad_norm(dWs + dbs, clip_norm)
            # L2 and L1 on the weights only (fastnn's cost); weight decay is the rule's
            dWs = [dW + l2 * W + l1 * np.sign(W) for dW, W in zip(dWs, Ws)]
            rule(Ws + bs, dWs + dbs)
            if max_norm is not None:
                apply_max_norm(Ws, max_norm)
    return Ws, bs


def train_sgd(Ws, bs, X, y, hidden, output, cost, orders, batch_size, lr, momentum=0.0,
              dampening=0.0, nesterov=False, l2=0.0, slope=0.01):
    """Mini-batch SGD (:func:`train` with :class:`SGDRule`). Returns new (Ws, bs)."""
    return train(Ws, bs, X, y, hidden, output, cost, orders, batch_size,
                 SGDRule(lr, momentum, dampening, nesterov), l2=l2, slope=slope)


def predict_proba(Ws, bs, X, hidden, output, slope=0.01):
    return forward(Ws, bs, X, hidden, output, slope)[1][-1]


# --- the flat parameter vector (full-batch optimizers) -----------------------------------
def flatten(Ws, bs):
    """One vector in fastnn's layout: for each layer, ``W`` (row-major) then ``b``."""
    return np.concatenate([np.concatenate([np.ravel(W), np.ravel(b)])
                           for W, b in zip(Ws, bs)])


def unflatten(params, sizes):
    """``(Ws, bs)`` (copies, float64) from a vector in fastnn's layout."""
    params = np.asarray(params, float)
    Ws, bs, off = [], [], 0
    for n, m in zip(sizes[:-1], sizes[1:]):
        Ws.append(params[off:off + n * m].reshape(n, m).copy())
        off += n * m
        bs.append(params[off:off + m].copy())
        off += m
    return Ws, bs


def flat_loss_and_gradient(params, sizes, X, y, hidden, output, cost, l2=0.0, slope=0.01):
    """:func:`loss_and_gradients` on a flat vector: ``(loss, flat gradient)``, the
    objective that full-batch L-BFGS and CG minimise."""
    Ws, bs = unflatten(params, sizes)
    loss, dWs, dbs = loss_and_gradients(Ws, bs, X, y, hidden, output, cost, l2, slope)
    return loss, flatten(dWs, dbs)


# --- dropout, PReLU and batch normalisation ----------------------------------------------
# A network with these keeps, after all the layers' (W, b), per hidden layer: the PReLU
# slopes (if prelu), then the batch-norm scale and shift (if batch norm). Here they are
# dicts of lists over the hidden layers, ``None`` where a layer has no such parameter:
# ``extras = {"alpha": [...], "gamma": [...], "beta": [...]}``; running statistics are
# ``stats = {"mean": [...], "var": [...]}``.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x):
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    x = np.asarray(x, np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def dropout_mask(seed, step, rows, layer, units, rate):
    """Inverted-dropout multipliers ``(len(rows), units)``: 0 for a dropped unit, else
    ``1 / (1 - rate)``.

    Unit ``j`` of sample ``r`` (a row of X) in hidden layer ``layer`` at optimizer step
    ``step`` is kept when ``u >= rate``, with ``u`` in [0, 1) the top 53 bits of a
    counter-based hash of (seed, step, layer, r, j), so a mask depends on nothing else
    (not on the batch's other samples, nor on threads)::

        k = mix(mix(mix(mix(seed ^ GOLDEN) ^ step) ^ layer) ^ r)
        u = (mix(k + (j + 1) * GOLDEN) >> 11) * 2**-53
    """
    with np.errstate(over="ignore"):
        k = mix64(mix64(mix64(np.uint64(seed) ^ _GOLDEN) ^ np.uint64(step)) ^ np.uint64(layer))
        k = mix64(k ^ np.asarray(rows, np.uint64))[:, None]
        j = np.arange(1, units + 1, dtype=np.uint64)[None, :]
        h = mix64(k + j * _GOLDEN)
    u = (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return np.where(u >= rate, 1.0 / (1.0 - rate), 0.0)


def prelu(z, alpha):
    """PReLU (He et al. 2015): ``z`` for z > 0, ``alpha_j z`` otherwise, per unit ``j``."""
    return np.where(z > 0, z, alpha * z)


def forward_ext(Ws, bs, X, hidden, output, extras, stats=None, masks=None, slope=0.01,
                eps=1e-5):
    """Forward pass with PReLU, batch norm and dropout.

    A hidden layer computes ``z = a @ W + b``; with batch norm
    ``y = gamma * (z - mu) / sqrt(var + eps) + beta`` -- ``mu``, ``var`` (biased) of the
    batch in training (``stats`` None), the running ones at inference -- else ``y = z``;
    then ``a = f(y)`` (PReLU: ``prelu(y, alpha)``), then ``a * mask`` if ``masks[l]``.
    Returns a dict of per-layer lists (``z``, ``xhat``, ``inv``, ``y``, ``a``, batch
    ``mu``/``var``) and ``acts`` (inputs to each layer, then the output ``a``).
    """
    cache = {k: [] for k in ("z", "xhat", "inv", "y", "a", "mu", "var")}
    acts = [np.asarray(X, float)]
    L = len(Ws)
    for l in range(L):
        z = acts[-1] @ Ws[l] + bs[l]
        cache["z"].append(z)
        if l == L - 1:
            acts.append(activation(output, z, slope))
            break
        y, xhat, inv, mu, var = z, None, None, None, None
        if extras["gamma"][l] is not None:
            if stats is None:
                mu, var = z.mean(axis=0), z.var(axis=0)
                inv = 1.0 / np.sqrt(var + eps)
            else:
                inv = 1.0 / np.sqrt(stats["var"][l] + eps)
                mu = stats["mean"][l]
            xhat = (z - mu) * inv
            y = extras["gamma"][l] * xhat + extras["beta"][l]
        a = (prelu(y, extras["alpha"][l]) if extras["alpha"][l] is not None
             else activation(hidden[l], y, slope))
        for k, v in zip(("xhat", "inv", "y", "a", "mu", "var"), (xhat, inv, y, a, mu, var)):
            cache[k].append(v)
        acts.append(a * masks[l] if masks is not None and masks[l] is not None else a)
    return cache, acts


def loss_and_gradients_ext(Ws, bs, X, y, hidden, output, cost, extras, masks=None,
                           slope=0.01, eps=1e-5):
    """Mean cost and gradients ``(dWs, dbs, dextras)`` in training mode (batch
    statistics, the given dropout ``masks``); also returns the forward ``cache``.

    Backward through a hidden layer, from ``g = dC/da`` (after the dropout mask):
    ``g *= mask``; ``dy = g * f'(y)`` (PReLU: ``g`` where y > 0, else ``alpha g``, and
    ``dalpha = sum_b g * min(y, 0)``); with batch norm ``dgamma = sum_b dy * xhat``,
    ``dbeta = sum_b dy``, ``dxh = dy * gamma`` and
    ``dz = inv * (dxh - mean_b(dxh) - xhat * mean_b(dxh * xhat))``; then
    ``dW = a_in.T @ dz``, ``db = sum_b dz`` and ``g_below = dz @ W.T``.
    """
    T = targets(y, Ws[-1].shape[1])
    n = len(X)
    cache, acts = forward_ext(Ws, bs, X, hidden, output, extras, None, masks, slope, eps)
    loss = sample_costs(cost, cache["z"][-1], acts[-1], T).mean()
    delta = output_delta(cost, output, cache["z"][-1], acts[-1], T, slope) / n
    L = len(Ws)
    dWs, dbs = [None] * L, [None] * L
    dex = {k: [None] * (L - 1) for k in ("alpha", "gamma", "beta")}
    for l in range(L - 1, -1, -1):
        dWs[l] = acts[l].T @ delta
        dbs[l] = delta.sum(axis=0)
        if l == 0:
            break
        k = l - 1
        g = delta @ Ws[l].T
        if masks is not None and masks[k] is not None:
            g = g * masks[k]
        yk = cache["y"][k]
        if extras["alpha"][k] is not None:
            dex["alpha"][k] = (g * np.minimum(yk, 0.0)).sum(axis=0)
            dy = np.where(yk > 0, g, extras["alpha"][k] * g)
        else:
            dy = g * activation_prime(hidden[k], yk, slope)
        if extras["gamma"][k] is not None:
            xh = cache["xhat"][k]
            dex["gamma"][k] = (dy * xh).sum(axis=0)
            dex["beta"][k] = dy.sum(axis=0)
            dxh = dy * extras["gamma"][k]
            dy = cache["inv"][k] * (dxh - dxh.mean(axis=0) - xh * (dxh * xh).mean(axis=0))
        delta = dy
    return loss, dWs, dbs, dex, cache


def _extra_list(extras):
    """The extra parameter arrays in fastnn's flat order (per hidden layer: alpha,
    gamma, beta, those that exist)."""
    out = []
    for l in range(len(extras["alpha"])):
        for k in ("alpha", "gamma", "beta"):
            if extras[k][l] is not None:
                out.append(extras[k][l])
    return out


def train_ext(Ws, bs, extras, stats, X, y, hidden, output, cost, orders, batch_size, rule,
              dropout=None, seed=0, step0=0, l2=0.0, l1=0.0, max_norm=None, clip_norm=None,
              slope=0.01, momentum=0.1, eps=1e-5):
    """:func:`train` for networks with PReLU, batch norm and dropout (rates per hidden
    layer in ``dropout``; masks from :func:`dropout_mask` with the optimizer's step
    count, starting at ``step0``). After each batch's forward pass, batch-norm running
    statistics move by ``momentum`` towards the batch's mean and unbiased variance (as
    PyTorch; a batch of one sample leaves them as they are).
    Returns new ``(Ws, bs, extras, stats)``."""
    Ws = [np.array(W, float) for W in Ws]
    bs = [np.array(b, float) for b in bs]
    extras = {k: [None if a is None else np.array(a, float) for a in v]
              for k, v in extras.items()}
    stats = {k: [None if a is None else np.array(a, float) for a in v]
             for k, v in stats.items()}
    X = np.asarray(X, float)
    y = np.asarray(y)
    step = step0
    for order in orders:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            masks = None
            if dropout is not None:
                masks = [dropout_mask(seed, step, idx, l, W.shape[1], p) if p > 0 else None
                         for l, (W, p) in enumerate(zip(Ws[:-1], dropout))]
            _, dWs, dbs, dex, cache = loss_and_gradients_ext(
                Ws, bs, X[idx], y[idx], hidden, output, cost, extras, masks, slope, eps)
            B = len(idx)
            for l in range(len(Ws) - 1):
                if extras["gamma"][l] is not None and B > 1:
                    stats["mean"][l] = (1 - momentum) * stats["mean"][l] + momentum * cache["mu"][l]
                    stats["var"][l] = ((1 - momentum) * stats["var"][l]
                                       + momentum * cache["var"][l] * B / (B - 1))
            ex_p, ex_g = _extra_list(extras), _extra_list(dex)
            if clip_norm is not None:
                clip_grad_norm(dWs + dbs + ex_g, clip_norm)
            dWs = [dW + l2 * W + l1 * np.sign(W) for dW, W in zip(dWs, Ws)]
            rule(Ws + bs + ex_p, dWs + dbs + ex_g)
            if max_norm is not None:
                apply_max_norm(Ws, max_norm)
            step += 1
    return Ws, bs, extras, stats


def predict_proba_ext(Ws, bs, X, hidden, output, extras, stats, slope=0.01, eps=1e-5):
    """Inference: running statistics for batch norm, no dropout."""
    return forward_ext(Ws, bs, X, hidden, output, extras, stats, None, slope, eps)[1][-1]
