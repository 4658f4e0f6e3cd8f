"""``fastnn.kernels._numeric.block`` and ``flat_view``: 2-D views of a flat buffer and back,
without Numba's reshape helper."""
import numpy as np
import pytest
from numba import njit

from fastnn.kernels._numeric import block, flat_view


@njit(cache=True)
def _block_of(buf, off, rows, cols):
    v = block(buf, off, rows, cols)
    v[rows - 1, cols - 1] = -1.0          # a write lands in buf
    return v.shape[0], v.shape[1], v.strides[0], v.strides[1], v.sum()


@njit(cache=True)
def _block_reshaped(buf, off, rows, cols):
    return block(buf, off, rows, cols).copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_is_the_reshaped_slice(dtype):
    buf = np.arange(20, dtype=dtype)
    np.testing.assert_array_equal(_block_reshaped(buf, 3, 4, 2),
                                  buf[3:11].reshape(4, 2))
    size = np.dtype(dtype).itemsize
    n0, n1, s0, s1, total = _block_of(buf, 5, 3, 4)
    assert (n0, n1, s0, s1) == (3, 4, 4 * size, size)
    assert buf[5 + 11] == -1.0 and total == buf[5:17].sum()


@pytest.mark.parametrize("off, rows, cols", [(17, 2, 2), (-1, 1, 1), (0, -1, 2),
                                             (0, 7, 3)])
def test_a_block_outside_its_buffer_raises(off, rows, cols):
    with pytest.raises(IndexError):
        _block_reshaped(np.zeros(20), off, rows, cols)
    assert _block_reshaped(np.zeros(20), 0, 4, 5).shape == (4, 5)   # the whole buffer


@njit(cache=True)
def _flat_of(a):
    f = flat_view(a)
    f[f.size - 1] = -1.0                  # a write lands in a
    return f.size, f.strides[0], f.copy()


def test_flat_is_the_whole_array_in_order():
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    size, stride, copy = _flat_of(a)
    assert size == 12 and stride == 4 and a[2, 3] == -1.0
    np.testing.assert_array_equal(copy, a.reshape(-1))
