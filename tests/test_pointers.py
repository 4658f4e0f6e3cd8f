"""``pointers.borrowed`` and ``pointers.alive``: arrays without reference counts, as the
small-batch epoch holds its buffers (``train.train_epoch_fused``)."""
import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError
from numba.core.runtime import _nrt_python, rtsys

from fastnn.kernels.pointers import alive, borrowed


@njit(cache=True)
def _through_borrowed(a, b):
    a2, (b2, a3) = borrowed((a, (b, a)))
    a2[0, 1] = 5.0          # writes the caller's array
    b2[:] += 1
    return a2.shape[0], a2.shape[1], a2.strides[0], a3[1, 2], b2.sum()


def test_a_borrowed_array_is_the_same_data_shape_and_strides():
    a = np.arange(12.0).reshape(3, 4)[:, :3]   # a view with strides of its own
    b = np.zeros(4, np.int32)
    n0, n1, s0, a12, bsum = _through_borrowed(a, b)
    assert (n0, n1, s0) == (3, 3, 32)
    assert a[0, 1] == 5.0 and a12 == a[1, 2] == 6.0
    assert bsum == 4 and (b == 1).all()


@pytest.fixture
def nrt_stats():
    """Numba's allocation counters, on for the test (off by default)."""
    was = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    yield rtsys.get_allocation_stats
    if not was:
        _nrt_python.memsys_disable_stats()


@njit(cache=True)
def _made_and_borrowed(n):
    made = (np.arange(n) * 1.0, np.ones(n))
    x, y = borrowed(made)
    s = 0.0
    for _ in range(3):          # views of the borrowed arrays, in a loop
        s += (x[1:] * y[1:]).sum()
    alive(made)
    return s


def test_arrays_made_and_borrowed_are_freed_once(nrt_stats):
    _made_and_borrowed(10)                      # compiled
    before = nrt_stats()
    assert _made_and_borrowed(1000) == 3 * 999 * 1000 / 2
    after = nrt_stats()
    allocs = after.alloc - before.alloc
    assert allocs > 0 and after.free - before.free == allocs
    assert after.mi_alloc - before.mi_alloc == after.mi_free - before.mi_free


def test_numbers_pass_through_and_other_objects_are_refused():
    @njit
    def f(x):
        a, k, (b, flag) = borrowed(x)
        return a.sum(), k, b.sum(), flag

    assert f((np.arange(3.0), 7, (np.ones(2, np.int32), True))) == (3.0, 7, 2, True)
    with pytest.raises(TypingError):   # a string is reference-counted too
        f((np.zeros(2), 7, ("s", True)))
