"""Numba kernels: every ``@njit`` function of fastnn lives in this package.

Kernels take arrays and scalars only (no Python objects), never validate (the API
does, before calling them) and never raise for bad data: a non-finite cost is reported
back through their return values.
"""
