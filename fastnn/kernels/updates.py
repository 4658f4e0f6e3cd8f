"""Optimizer steps on the flat parameter buffer.

``apply_update`` walks the layer table and updates each layer's weights (with the L2
term) and biases (without it). Update rules are integer codes; hyper-parameters come
in a float64 array and are cast to the buffer's dtype; the optimizer's state is a 2-D
array ``state[k, p]`` in the buffer's dtype (SGD uses row 0 for the velocity).
"""
from numba import njit

from ._numeric import like

SGD = 0


@njit(cache=True)
def _sgd_region(params, grad, vel, start, stop, inv_b, l2, lr, mu, damp, nesterov, first):
    """PyTorch's ``torch.optim.SGD`` on ``params[start:stop]``.

    g = grad/B + l2*w;  v = g on the first step, else v = mu*v + (1-dampening)*g;
    w -= lr * (g + mu*v if nesterov else v);  without momentum  w -= lr*g.
    """
    one = like(lr, 1.0)
    if mu == 0:
        for p in range(start, stop):
            g = grad[p] * inv_b + l2 * params[p]
            params[p] -= lr * g
        return
    keep = one - damp
    for p in range(start, stop):
        g = grad[p] * inv_b + l2 * params[p]
        if first:
            v = g
        else:
            v = mu * vel[p] + keep * g
        vel[p] = v
        if nesterov:
            params[p] -= lr * (g + mu * v)
        else:
            params[p] -= lr * v


@njit(cache=True)
def apply_update(params, grad, layout, batch, l2, opt_code, hyper, state, step):
    """One optimizer step from the summed batch gradient ``grad`` of ``batch`` samples.

    ``layout[l] = (w_off, b_off, fan_in, fan_out)``; L2 applies to weights only.
    ``step`` is the number of steps taken before this one (0 on the first).
    """
    inv_b = like(params, 1.0) / like(params, batch)
    l2c = like(params, l2)
    zero = like(params, 0.0)
    if opt_code == SGD:
        lr = like(params, hyper[0])
        mu = like(params, hyper[1])
        damp = like(params, hyper[2])
        nesterov = hyper[3] != 0.0
        vel = state[0]
        first = step == 0
        for l in range(layout.shape[0]):
            w_off = layout[l, 0]
            b_off = layout[l, 1]
            n = layout[l, 2]
            m = layout[l, 3]
            _sgd_region(params, grad, vel, w_off, w_off + n * m, inv_b, l2c, lr, mu, damp,
                        nesterov, first)
            _sgd_region(params, grad, vel, b_off, b_off + m, inv_b, zero, lr, mu, damp,
                        nesterov, first)
