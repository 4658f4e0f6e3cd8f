"""Activation names, their kernel codes, and which outputs pair with which cost."""
from .kernels import activations as _k

#: activation name -> kernel code, for hidden layers
HIDDEN = {
    "identity": _k.IDENTITY,
    "sigmoid": _k.SIGMOID,
    "tanh": _k.TANH,
    "relu": _k.RELU,
    "leaky_relu": _k.LEAKY_RELU,
    "elu": _k.ELU,
    "gelu": _k.GELU,
    "silu": _k.SILU,
    "swish": _k.SILU,
    "prelu": _k.PRELU,
}
#: other names accepted for a hidden activation -> the name a Network keeps
ALIASES = {"swish": "silu"}
#: activation name -> kernel code, for the output layer
OUTPUT = {
    "identity": _k.IDENTITY,
    "sigmoid": _k.SIGMOID,
    "tanh": _k.TANH,
    "softmax": _k.SOFTMAX,
}
#: hidden activations whose natural initialisation is He's (``init="auto"``): the relu
#: family (prelu included) and its smooth relatives (elu, gelu, silu), which behave like
#: relu for large |z|
RELU_FAMILY = frozenset({"relu", "leaky_relu", "prelu", "elu", "gelu", "silu", "swish"})


def check_name(name, table, what):
    """Return ``name`` if it is a key of ``table``, else raise naming ``what``."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, one of {sorted(table)}; got {name!r}")
    if name not in table:
        raise ValueError(f"{what}={name!r} is not known; valid: {sorted(table)}")
    return name
