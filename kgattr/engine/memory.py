"""Memory in a fit: freed pages handed back to the operating system between stages, and large read-only row
arrays kept in temporary files, their rows copied out as they are asked for."""
from __future__ import annotations

import ctypes
import functools
import mmap
import tempfile

import numpy as np

# arrays smaller than this stay in memory (a gather from memory costs a third of one from a file: 44,441 products'
# arrays are 60-70 MB each, a million's 0.3-1.5 GB)
DISK_BYTES = 256 << 20
# bytes of a file's pages a gather maps before it hands them back: a batch's rows are never all mapped at once
GATHER_BYTES = 64 << 20
_DROP = getattr(mmap, "MADV_DONTNEED", None)        # Windows has none: the pages then stay mapped until unneeded


@functools.cache
def _trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):           # not glibc: its allocator keeps no such pages, or cannot be asked
        return None


def release() -> None:
    """Return the C allocator's free pages to the operating system (glibc's ``malloc_trim``; elsewhere nothing).

    The many arrays a stage makes and frees stay with glibc's allocator, spread through its heap, and count in the
    process's memory; the next stage's large arrays take fresh pages and cannot reuse them. On Myntra's 44,441
    products 1.0 of 2.2 GB was such pages once the network and the linear scorers were fitted."""
    trim = _trim()
    if trim is not None:
        trim(0)


def _rows(index, n: int) -> np.ndarray:
    """``index`` (a slice or integer rows) as an int64 array of rows."""
    if isinstance(index, slice):
        return np.arange(*index.indices(n), dtype=np.int64)
    return np.asarray(index, dtype=np.int64)


class DiskArray:
    """A read-only array in an unlinked temporary file under ``$TMPDIR``. ``x[rows]`` (integer rows or a slice)
    is a copy in memory, as numpy's fancy indexing gives; the file's pages it read are handed back to the page
    cache as it goes, so the process holds only the rows asked for. A pass over every row in order takes about
    four times a copy in memory (0.9 s for a million text vectors of 384 dimensions)."""

    def __init__(self, array: np.ndarray):
        array = np.ascontiguousarray(array)
        self.shape, self.dtype = array.shape, array.dtype
        self._map = None
        if array.nbytes:
            with tempfile.TemporaryFile(prefix="kgattr-rows-") as f:
                f.write(array.data.cast("B"))
                f.flush()
                self._map = mmap.mmap(f.fileno(), array.nbytes, access=mmap.ACCESS_READ)
            self._view = np.frombuffer(self._map, self.dtype).reshape(self.shape)
        else:
            self._view = np.empty(self.shape, self.dtype)
        self._step = max(1, GATHER_BYTES // max(1, array.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))))

    def __getitem__(self, index) -> np.ndarray:
        rows = _rows(index, self.shape[0])
        out = np.empty(rows.shape + self.shape[1:], self.dtype)
        for s in range(0, len(rows), self._step):
            np.take(self._view, rows[s:s + self._step], axis=0, out=out[s:s + self._step])
            if self._map is not None and _DROP is not None:
                self._map.madvise(_DROP)                    # unmapped here; the page cache keeps the data
        return out


class DiskCSR:
    """A read-only CSR matrix whose data and column indices lie in :class:`DiskArray` files (its row pointers stay
    in memory); ``x[rows]`` is the CSR matrix ``csr[rows]`` gives, the same entries in the same order."""

    def __init__(self, matrix):
        self.shape, self.dtype = matrix.shape, matrix.dtype
        self.indptr = matrix.indptr.astype(np.int64)
        self.data, self.indices = DiskArray(matrix.data), DiskArray(matrix.indices)

    def __getitem__(self, index):
        import scipy.sparse as sp

        rows = _rows(index, self.shape[0])
        starts = self.indptr[rows]
        counts = self.indptr[rows + 1] - starts
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        at = np.repeat(starts - indptr[:-1], counts) + np.arange(indptr[-1])     # (entries,) in the whole matrix
        return sp.csr_matrix((self.data[at], self.indices[at], indptr), shape=(len(rows), self.shape[1]))


def to_disk(x):
    """``x`` (a dense array or a CSR matrix) moved to a temporary file, :class:`DiskArray` or :class:`DiskCSR`,
    when it takes :data:`DISK_BYTES` or more; else ``x`` itself."""
    if hasattr(x, "indptr"):                        # a CSR matrix (scipy.sparse is imported where it is used)
        return DiskCSR(x) if x.data.nbytes + x.indices.nbytes >= DISK_BYTES else x
    return DiskArray(x) if x.nbytes >= DISK_BYTES else x
