"""The ``Vec`` accesses at the edge of mapped memory: without AVX-512 a partial
register's load reads its whole register when that stays within a page
(``simd._tail_load``), so a row ending just before an inaccessible page must take the
masked load (else the process dies), and lanes past the row's end read as zero whatever
lies in memory there."""
import ctypes
import mmap

import numpy as np
import pytest
from numba import njit

from fastnn.kernels import train
from fastnn.kernels.simd import lanes, vload, vloadrow, vstore

PAGE = mmap.PAGESIZE


@pytest.fixture
def edge():
    """A page of memory followed by an inaccessible one: the first page as bytes."""
    mm = mmap.mmap(-1, 2 * PAGE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(addr + PAGE, PAGE, 0) == 0, ctypes.get_errno()   # PROT_NONE
    yield np.frombuffer(mm, np.uint8, count=PAGE)


@njit
def _load(a, j, m, out):
    vstore(out, 0, out.size, vload(a, j, m))


@njit
def _loadrow(a, i, j, m, out):
    vstore(out, 0, out.size, vloadrow(a, i, j, m))


@njit
def _lanes(a):
    return lanes(a)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m", [1, 5, 17, 30])
def test_partial_registers_at_a_page_end(edge, dtype, m):
    """Rows of ``m`` elements ending at the last byte before an inaccessible page, and
    the same rows inside a page with NaN after them: each register loads the row's
    lanes and zeros past ``m``."""
    a = edge.view(dtype)
    L = _lanes(a)
    a[:] = np.nan
    row = a[a.size - m:]                       # ends where the page ends
    row[:] = np.arange(1, m + 1)
    inside = a[:m]                             # NaN after it, in the same page
    inside[:] = np.arange(1, m + 1)
    for r in (row, inside):
        for j in range(0, m + L, L):           # every register, and one wholly past
            out = np.full(L, -1.0, dtype)
            _load(r, j, m, out)
            want = np.zeros(L, dtype)
            k = max(0, min(L, m - j))
            want[:k] = r[j:j + k]
            assert np.array_equal(out, want), (j, out)
    grid = a[a.size - 3 * m:].reshape(3, m)    # 2-D: its last row ends the page
    grid[:] = np.arange(1, 3 * m + 1).reshape(3, m)
    for i in range(3):
        for j in range(0, m, L):
            out = np.full(L, -1.0, dtype)
            _loadrow(grid, i, j, m, out)
            k = min(L, m - j)
            assert np.array_equal(out[:k], grid[i, j:j + k])
            assert not out[k:].any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_index_fill_of_a_row_ending_at_a_page_end(edge, dtype):
    """The index's register-wide fill reads each row's last register, partial, at the
    end of mapped memory."""
    a = edge.view(dtype)
    d = 37
    X = a[a.size - 4 * d:].reshape(4, d)
    rng = np.random.default_rng(0)
    X[:] = np.where(rng.random((4, d)) < 0.5, 0.0, rng.standard_normal((4, d)))
    indptr = train.nonzero_rows(X)[0]
    nnz = int(indptr[-1])
    indices = np.empty(nnz + 64, np.uint16)
    values = np.empty(nnz + 64, dtype)
    train._fill_nonzeros_vec(X, indptr, indices, values, False)
    rows, cols = np.nonzero(X)
    assert np.array_equal(indices[:nnz], cols)
    assert np.array_equal(values[:nnz], X[rows, cols])
