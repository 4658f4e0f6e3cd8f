"""Weight and bias initialisers.

=================  ============================================  ============
name               weights ``W`` of shape (fan_in, fan_out)      biases
=================  ============================================  ============
gaussian           N(0, 1)            (Nielsen, chapter 1)       N(0, 1)
lecun              N(0, 1/fan_in)     (Nielsen's network2)       N(0, 1)
xavier             N(0, 2/(fan_in+fan_out))  (Glorot & Bengio)   0
xavier_uniform     U(+-sqrt(6/(fan_in+fan_out)))                 0
he                 N(0, 2/fan_in)     (He et al. 2015)           0
he_uniform         U(+-sqrt(6/fan_in))                           0
=================  ============================================  ============

``auto`` is ``he`` for the relu family (relu, leaky_relu, elu, gelu, silu) and ``lecun``
otherwise. Values are drawn in float64 from ``numpy.random.default_rng(seed)`` (each
layer's weights, then its biases) and then cast, so a float32 and a float64 network with
the same seed start from the same numbers up to rounding.
"""
import numpy as np

INITIALIZERS = ("gaussian", "lecun", "xavier", "xavier_uniform", "he", "he_uniform")


def initialize(sizes, init, rng):
    """Yield ``(W, b)`` in float64 for each layer of a network with layer ``sizes``."""
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        shape = (fan_in, fan_out)
        if init == "gaussian":
            W, b = rng.standard_normal(shape), rng.standard_normal(fan_out)
        elif init == "lecun":
            W = rng.standard_normal(shape) / np.sqrt(fan_in)
            b = rng.standard_normal(fan_out)
        elif init == "xavier":
            W, b = rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out)), None
        elif init == "xavier_uniform":
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            W, b = rng.uniform(-limit, limit, shape), None
        elif init == "he":
            W, b = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in), None
        elif init == "he_uniform":
            limit = np.sqrt(6.0 / fan_in)
            W, b = rng.uniform(-limit, limit, shape), None
        else:  # pragma: no cover - names are checked by the caller
            raise ValueError(init)
        yield W, (np.zeros(fan_out) if b is None else b)
