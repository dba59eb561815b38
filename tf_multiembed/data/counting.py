"""Exact token counts in bounded memory, for vocabularies with a minimum count.

Each block's counts arrive per field as (token, count) entries and are merged field by field by Arrow's hash
aggregation (about 20 bytes per distinct token in Arrow memory, a tenth of a Python `Counter`). A field's merged
counts are written to disk, split into `partitions` by a hash of the token, when they outgrow an eighth of
`memory_bytes` or when all fields' counts together outgrow `memory_bytes` (the largest field goes first); the field
then counts afresh. At the end each partition of a spilled field (about a `partitions`-th of what it spilled) is
merged on its own and only tokens that reach the field's minimum count are kept. Counts are exact either way: a
token lands in the same partition in every spill.

Arrow's aggregation briefly needs about four times the entries it merges, so merging a field at a time, with at most
an eighth of the budget held per field, keeps the peak near twice `memory_bytes`.

Example:
    >>> counter = TokenCounter(num_fields=2, work_dir="/tmp/counts")  # doctest: +SKIP
    >>> counter.add([(0, pa.array(["a", "b"]), np.array([3, 1]))])  # doctest: +SKIP
    >>> counter.result(min_counts=[2, 1])  # doctest: +SKIP
    {0: {'a': 3}, 1: {}}
"""

import logging
import pathlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa

from tf_multiembed import types

DEFAULT_MEMORY_BYTES = 128 << 20
DEFAULT_PARTITIONS = 64
_HASH_SLICE = 1 << 18  # tokens hashed at a time (the byte-wise hash holds 8 bytes per token byte)
_WEIGHTS = np.random.default_rng(20241201).integers(1, 2 ** 63, size=64, dtype=np.uint64) | np.uint64(1)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SCHEMA = pa.schema([("token", pa.string()), ("count", pa.int64())])

logger = logging.getLogger(__name__)


def token_hashes(tokens: pa.Array) -> np.ndarray:
    """A deterministic uint64 hash per string (a weighted sum of its bytes), computed with NumPy on Arrow's buffers;
    equal strings hash equally, which is all partitioning needs."""
    tokens = tokens.combine_chunks() if isinstance(tokens, pa.ChunkedArray) else tokens
    count = len(tokens)
    hashes = np.zeros(count, dtype=np.uint64)
    if count == 0:
        return hashes
    offsets = np.frombuffer(tokens.buffers()[1], dtype=np.int32)[tokens.offset:tokens.offset + count + 1]
    data = tokens.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros((0,), dtype=np.uint8)
    for start in range(0, count, _HASH_SLICE):
        stop = min(count, start + _HASH_SLICE)
        low, high = int(offsets[start]), int(offsets[stop])
        starts = offsets[start:stop] - low
        lengths = np.diff(offsets[start:stop + 1])
        position = np.arange(high - low) - np.repeat(starts, lengths)
        weighted = data[low:high].astype(np.uint64) * _WEIGHTS[position & 63]
        sums = np.zeros(stop - start, dtype=np.uint64)
        nonempty = lengths > 0
        if nonempty.any():
            sums[nonempty] = np.add.reduceat(weighted, starts[nonempty])
        hashes[start:stop] = sums ^ (lengths.astype(np.uint64) * _MIX)
    return hashes


def _empty() -> pa.Table:
    return pa.table({"token": pa.array([], pa.string()), "count": pa.array([], pa.int64())}, schema=_SCHEMA)


def _aggregate(tables: List[pa.Table]) -> pa.Table:
    merged = pa.concat_tables(tables).group_by("token").aggregate([("count", "sum")])
    return pa.table({"token": merged["token"], "count": merged["count_sum"]}, schema=_SCHEMA)


class TokenCounter:
    """Counts the tokens of every field exactly, holding about `memory_bytes` of counts in memory (see the module).

    Args:
        num_fields: fields are numbered 0..num_fields - 1.
        work_dir: where spills go (created when the first spill happens).
        memory_bytes: the budget for the counts held in memory (Arrow bytes).
        partitions: hash partitions of a spill.
    """

    def __init__(self, num_fields: int, work_dir: types.PathLike, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 partitions: int = DEFAULT_PARTITIONS) -> None:
        self.num_fields = int(num_fields)
        self.work_dir = pathlib.Path(work_dir)
        self.memory_bytes = int(memory_bytes)
        self.partitions = int(partitions)
        self.spill_files: List[pathlib.Path] = []
        self._spilled: List[List[pathlib.Path]] = [[] for _ in range(self.num_fields)]
        self._merged = [_empty() for _ in range(self.num_fields)]
        self._pending: List[List[pa.Table]] = [[] for _ in range(self.num_fields)]
        self._pending_bytes = [0] * self.num_fields

    def add(self, counted: Sequence[Tuple[int, pa.Array, np.ndarray]]) -> None:
        """Adds one block's counts: (field, tokens, counts) per field; tokens may repeat."""
        for field, tokens, counts in counted:
            if not len(tokens):
                continue
            table = pa.table({"token": tokens, "count": np.asarray(counts, dtype=np.int64)}, schema=_SCHEMA)
            self._pending[field].append(table)
            self._pending_bytes[field] += table.nbytes
            # Merging when the pending entries reach the merged ones keeps the merge work linear in the input.
            if self._pending_bytes[field] >= max(self._merged[field].nbytes, self.memory_bytes // 64):
                self._merge(field)

    def _resident_bytes(self) -> int:
        return sum(table.nbytes for table in self._merged) + sum(self._pending_bytes)

    def _merge(self, field: int) -> None:
        if self._pending[field]:
            self._merged[field] = _aggregate([self._merged[field]] + self._pending[field])
            self._pending[field], self._pending_bytes[field] = [], 0
        if self._merged[field].nbytes > self.memory_bytes // 8:
            self._spill(field)
        while self._resident_bytes() > self.memory_bytes:
            self._spill(int(np.argmax([table.nbytes for table in self._merged])))

    def _spill(self, field: int) -> None:
        """Writes a field's merged counts to one Arrow IPC file with one record batch per hash partition."""
        table = self._merged[field].combine_chunks()
        partition = ((token_hashes(table["token"]) * _MIX) >> np.uint64(48)).astype(np.int64) % self.partitions
        order = np.argsort(partition, kind="stable")
        table = table.take(pa.array(order))
        bounds = np.searchsorted(partition[order], np.arange(self.partitions + 1))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"counts-{field:04d}-{len(self._spilled[field]):04d}.arrow"
        try:
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, _SCHEMA) as writer:
                for part in range(self.partitions):  # one batch per partition, empty ones included
                    start, length = int(bounds[part]), int(bounds[part + 1] - bounds[part])
                    writer.write_batch(pa.RecordBatch.from_arrays(
                        [table.column(name).slice(start, length).combine_chunks() for name in _SCHEMA.names],
                        schema=_SCHEMA))
        except OSError as error:  # name the file (Arrow's errors do not): a full disk is reported with it
            raise OSError(error.errno, error.strerror or str(error), str(path)) from None
        logger.info("token counts of field %d spilled to %s (%d entries, %.0f MB)", field, path, table.num_rows,
                    table.nbytes / 2 ** 20)
        self._spilled[field].append(path)
        self.spill_files.append(path)
        self._merged[field] = _empty()

    def result(self, min_counts: Sequence[Optional[int]]) -> Dict[int, Dict[str, int]]:
        """{field: {token: count}} of the tokens counted at least `min_counts[field]` times; fields whose minimum
        count is None are left out. Spill files are removed."""
        result = {}
        for field, min_count in enumerate(min_counts):
            if min_count is None:
                continue
            if self._pending[field]:
                self._merged[field] = _aggregate([self._merged[field]] + self._pending[field])
                self._pending[field] = []
            if not self._spilled[field]:
                kept = [_kept(self._merged[field], min_count)]
            else:
                self._spill(field)
                readers = [pa.ipc.open_file(pa.memory_map(str(path))) for path in self._spilled[field]]
                kept = [_kept(_aggregate([pa.Table.from_batches([reader.get_batch(part)]) for reader in readers]),
                        min_count) for part in range(self.partitions)]
                del readers
                for path in self._spilled[field]:
                    path.unlink()
            self._merged[field] = _empty()
            result[field] = {token: count for table in kept
                             for token, count in zip(table["token"].to_pylist(), table["count"].to_pylist())}
        return result


def _kept(table: pa.Table, min_count: int) -> pa.Table:
    if table.num_rows == 0:
        return table
    return table.filter(pa.array(table["count"].to_numpy() >= min_count))
