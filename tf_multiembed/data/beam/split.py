"""The Beam pipeline's split: a seeded hash of each row's place in its input file, so no global row order is needed.

The single-machine build splits by `numpy.random.default_rng(seed).permutation(num_rows)` over file order. That
needs every row's global index and an 8-byte-per-row permutation held in one place: a distributed pipeline has
neither. Here each valid row is placed by a 64-bit hash of (seed, the input file's base name, the row's line
number):

    u = top 53 bits of hash / 2**53 in [0, 1)
    split = "train" if u < f_train, "validation" if u < f_train + f_validation, else "test"
    shard = a second mix of the hash, modulo the split's number of shards

So the split of a row does not depend on the runner, the number of workers, the order in which rows are read or on
the other files; it does depend on the file's base name (renaming a file re-draws its rows). Split sizes are
Binomial(n, f) rather than exactly `floor(n * f)` (for 100,000 rows and f = 0.1 the standard deviation is 95 rows).

Example:
    >>> import numpy as np
    >>> split_of_rows(0, (0.8, 0.1, 0.1), "train.txt", np.arange(1, 6)).tolist()  # 0 train, 1 validation, 2 test
    [0, 0, 0, 1, 2]
"""

import math
from typing import Sequence

import numpy as np

from tf_multiembed.data import splits as splits_lib

RULE = "hash(seed, file base name, line number)"


def row_hashes(seed: int, file_name: str, line_numbers) -> np.ndarray:
    """uint64 hashes of the rows at `line_numbers` of the file whose base name is `file_name`."""
    return splits_lib.line_hashes(f"{int(seed)}\0{file_name}", line_numbers)


def split_of_rows(seed: int, fractions: Sequence[float], file_name: str, line_numbers) -> np.ndarray:
    """The index in `splits.SPLIT_NAMES` of each row's split (uint8)."""
    train, validation, _ = splits_lib.check_fractions(fractions)
    unit = (row_hashes(seed, file_name, line_numbers) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return np.where(unit < train, 0, np.where(unit < train + validation, 1, 2)).astype(np.uint8)


def shard_of_rows(seed: int, file_name: str, line_numbers, num_shards: int) -> np.ndarray:
    """The shard index (0..num_shards-1) of each row within its split (int64)."""
    mixed = splits_lib.mix_hashes(row_hashes(seed, file_name, line_numbers))
    return (mixed % np.uint64(max(1, int(num_shards)))).astype(np.int64)


def shards_per_split(num_rows: int, fractions: Sequence[float], rows_per_shard: int) -> dict:
    """{split name: number of shards}: the expected rows of the split over `rows_per_shard`, at least one for a
    split with a positive share, none for a share of 0.

    Example:
        >>> shards_per_split(2_500_000, (0.8, 0.1, 0.1), 1_000_000)
        {'train': 2, 'validation': 1, 'test': 1}
    """
    fractions = splits_lib.check_fractions(fractions)
    return {name: (max(1, math.ceil(num_rows * fraction / rows_per_shard)) if fraction > 0 else 0)
            for name, fraction in zip(splits_lib.SPLIT_NAMES, fractions)}
