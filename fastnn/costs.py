"""Cost names, their kernel codes, and the rules for pairing them with output activations.

All costs are the mean over samples of a per-sample cost:

=================  ====================================  =========================
name               per-sample cost                       outputs it pairs with
=================  ====================================  =========================
quadratic          0.5 * ||a - y||^2                     identity, sigmoid, tanh, softmax
cross_entropy      -sum[y ln a + (1 - y) ln(1 - a)]      sigmoid
log_likelihood     -ln a_y   (-sum y ln a for targets)   softmax
=================  ====================================  =========================
"""
from .kernels import dense as _k

#: cost name -> kernel code
COSTS = {
    "quadratic": _k.QUADRATIC,
    "cross_entropy": _k.CROSS_ENTROPY,
    "log_likelihood": _k.LOG_LIKELIHOOD,
}
#: output activation -> the costs it may be used with
VALID = {
    "identity": ("quadratic",),
    "sigmoid": ("cross_entropy", "quadratic"),
    "tanh": ("quadratic",),
    "softmax": ("log_likelihood", "quadratic"),
}
#: output activation -> its natural cost, chosen by ``cost=None``
NATURAL = {out: costs[0] for out, costs in VALID.items()}

VALID_PAIRS = tuple((out, c) for out, costs in VALID.items() for c in costs)


def resolve(output, cost):
    """The cost to use with ``output``: ``cost`` itself if the pair is valid.

    Raises
    ------
    ValueError
        If the pair is not valid; the message lists the valid pairs.
    """
    if cost is None:
        return NATURAL[output]
    if not isinstance(cost, str):
        raise TypeError(f"cost must be a string or None, one of {sorted(COSTS)}; got {cost!r}")
    if cost not in COSTS:
        raise ValueError(f"cost={cost!r} is not known; valid: {sorted(COSTS)}")
    if cost not in VALID[output]:
        pairs = ", ".join(f"{o}/{c}" for o, c in VALID_PAIRS)
        raise ValueError(
            f"cost={cost!r} cannot be used with output={output!r}; valid output/cost "
            f"pairs: {pairs}")
    return cost
