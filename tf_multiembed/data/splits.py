"""Train / validation / test splits: the paper's seeded random 8:1:1 split, and a time-ordered one.

The random split is the reference's exactly: `numpy.random.default_rng(seed).permutation(num_rows)`, the first 80%
of the permuted rows for training, the next 10% for validation and the last 10% for testing, each in permutation
order. The time split orders rows by a time column (ties keep file order), or keeps file order when the schema has
none (Criteo's Kaggle file is already in time order), and cuts the same fractions.
"""

import hashlib
import math
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from tf_multiembed import types
from tf_multiembed.data import space

SPLIT_NAMES = ("train", "validation", "test")
RANDOM_SPLIT = "random"
TIME_SPLIT = "time"
SPLIT_KINDS = (RANDOM_SPLIT, TIME_SPLIT)
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def check_fractions(fractions: Sequence[float]) -> Tuple[float, float, float]:
    """Validates three non-negative fractions that sum to 1, with a positive training share."""
    fractions = tuple(float(fraction) for fraction in fractions)
    if (len(fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in fractions) or fractions[0] <= 0
            or abs(sum(fractions) - 1.0) > 1e-6):
        raise ValueError(f"`split_fractions` must be three non-negative numbers (train, validation, test) that sum "
                         f"to 1 with train > 0, got {fractions}.")
    return fractions


def split_sizes(num_rows: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> Tuple[int, int, int]:
    """Rows per split: floor(n * train), floor(n * validation), and the rest for test.

    Example:
        >>> split_sizes(100000)
        (80000, 10000, 10000)
    """
    train, validation, _ = check_fractions(fractions)
    # The epsilon keeps products such as 100000 * 0.8 = 80000.00000000001 or 0.7999... on the intended integer.
    num_train = min(num_rows, int(math.floor(num_rows * train + 1e-9)))
    num_validation = min(num_rows - num_train, int(math.floor(num_rows * validation + 1e-9)))
    return num_train, num_validation, num_rows - num_train - num_validation


def position_dtype(num_rows: int) -> np.dtype:
    """The smallest integer type that numbers `num_rows` rows (int32 below 2**31 rows)."""
    return np.dtype(np.int32) if num_rows < 2 ** 31 else np.dtype(np.int64)


def _file_backed(path: str, dtype: np.dtype, num_rows: int) -> np.memmap:
    """A new .npy file of `num_rows` values mapped into memory, its blocks allocated first: a write through a map
    past a full disk kills the process (SIGBUS), a failed allocation raises OSError(ENOSPC) and removes the file."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(num_rows,))
    try:
        space.reserve(path)
    except OSError as error:
        del array  # unmap before removing the file
        os.remove(path)
        raise OSError(error.errno, error.strerror, str(path)) from None
    return array


def random_order(num_rows: int, seed: int, path: Optional[str] = None) -> np.ndarray:
    """`numpy.random.default_rng(seed).permutation(num_rows)`, optionally built inside a file-backed memory map.

    With `path`, the permutation lives in the page cache (evictable, written back to `path`; its blocks allocated
    first, so a full disk raises OSError(ENOSPC) instead of killing the process) instead of the heap, in
    `position_dtype` (4 bytes per row below 2**31 rows); the values are the same (`Generator.shuffle` of `arange`
    is what `permutation` does, and its swaps do not depend on the dtype).

    Example:
        >>> random_order(5, seed=0).tolist() == np.random.default_rng(0).permutation(5).tolist()
        True
    """
    if path is None:
        return np.random.default_rng(seed).permutation(num_rows)
    dtype = position_dtype(num_rows)
    order = _file_backed(path, dtype, num_rows)
    block = 1 << 20
    for start in range(0, num_rows, block):
        stop = min(num_rows, start + block)
        order[start:stop] = np.arange(start, stop, dtype=dtype)
    # A plain-ndarray view of the map takes numpy's fast in-place shuffle (a memmap subclass would not).
    np.random.default_rng(seed).shuffle(order.view(np.ndarray))
    order.flush()
    return order  # dropping the last reference unmaps it


def inverse_order(order_path: str, path: str, block: int = 1 << 20) -> None:
    """Writes the inverse of the permutation stored in `order_path` (.npy) to `path` (.npy): for each row in file
    order, its position in the ordered rows. Both live in file-backed maps (page cache), not the heap."""
    order = np.load(order_path, mmap_mode="r")
    inverse = _file_backed(path, order.dtype, len(order))
    for start in range(0, len(order), block):
        stop = min(len(order), start + block)
        inverse[np.asarray(order[start:stop])] = np.arange(start, stop, dtype=order.dtype)
    inverse.flush()
    del inverse, order


class NpyReader:
    """Reads ranges of a 1-D .npy file with positional reads: no memory map, so nothing read stays resident."""

    def __init__(self, path: types.PathLike) -> None:
        self.path = path
        self._handle = open(path, "rb")
        version = np.lib.format.read_magic(self._handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        self.shape, _, self.dtype = read_header(self._handle)
        self._offset = self._handle.tell()

    def read(self, start: int, stop: int) -> np.ndarray:
        size = (stop - start) * self.dtype.itemsize
        data = os.pread(self._handle.fileno(), size, self._offset + start * self.dtype.itemsize)
        if len(data) != size:
            raise ValueError(f"{self.path}: truncated ({len(data)} of {size} bytes at row {start}).")
        return np.frombuffer(data, dtype=self.dtype)

    def close(self) -> None:
        self._handle.close()


def time_order(times: np.ndarray) -> Optional[np.ndarray]:
    """Row order by time, ties in file order; None when the rows are already in time order."""
    times = np.asarray(times)
    if times.size < 2 or bool(np.all(times[1:] >= times[:-1])):
        return None
    return np.argsort(times, kind="stable")


def split_membership(num_rows: int, seed: int = 0,
                     fractions: Sequence[float] = DEFAULT_FRACTIONS) -> np.ndarray:
    """For each row in file order, the index in `SPLIT_NAMES` of its split under the random split (uint8 [n])."""
    sizes = split_sizes(num_rows, fractions)
    membership = np.empty(num_rows, dtype=np.uint8)
    order = random_order(num_rows, seed)
    membership[order[:sizes[0]]] = 0
    membership[order[sizes[0]:sizes[0] + sizes[1]]] = 1
    membership[order[sizes[0] + sizes[1]:]] = 2
    return membership


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic): a bijection with good avalanche."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def line_hashes(key: str, line_numbers: Union[Sequence[int], np.ndarray]) -> np.ndarray:
    """uint64 hashes of (key, line number) per line: a row's seeded, order-free random number (the Beam split's
    `hash(seed, file base name, line number)`, the numeric quantile sample's keys).

    Example:
        >>> line_hashes("0\\0day_0.gz", [1, 2]).dtype
        dtype('uint64')
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    base = np.uint64(int.from_bytes(digest, "little"))
    lines = np.asarray(line_numbers, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _mix(base + lines * _GOLDEN)


def mix_hashes(values: np.ndarray) -> np.ndarray:
    """A second, independent uint64 hash of hashes (`_mix(values ^ golden)`)."""
    return _mix(np.asarray(values, dtype=np.uint64) ^ _GOLDEN)
