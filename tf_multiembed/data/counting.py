"""Exact token counts in bounded memory, for vocabularies with a minimum count.

Each block's counts arrive as (field, token, count) entries and are merged by Arrow's hash aggregation (about 20 bytes
per distinct token and field, a tenth of a Python `Counter`'s). When the merged entries outgrow `memory_bytes`, they
are written to disk split into `partitions` by a hash of the token, and the counter starts afresh; at the end each
partition (about a `partitions`-th of what was spilled) is merged on its own and only tokens that reach their field's
minimum count are kept. Counts are exact either way: every token lands in one partition in every spill.

Example:
    >>> counter = TokenCounter(num_fields=2, work_dir="/tmp/counts")  # doctest: +SKIP
    >>> counter.add([(0, pa.array(["a", "b"]), np.array([3, 1]))])  # doctest: +SKIP
    >>> counter.result(min_counts=[2, 1])  # doctest: +SKIP
    {0: {'a': 3}, 1: {}}
"""

import logging
import pathlib
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pyarrow as pa

DEFAULT_MEMORY_BYTES = 256 << 20
DEFAULT_PARTITIONS = 64
_HASH_SLICE = 1 << 18  # tokens hashed at a time (the byte-wise hash holds 8 bytes per token byte)
_WEIGHTS = np.random.default_rng(20241201).integers(1, 2 ** 63, size=64, dtype=np.uint64) | np.uint64(1)
_FIELD_MIX = np.uint64(0x9E3779B97F4A7C15)
_SCHEMA = pa.schema([("field", pa.int16()), ("token", pa.string()), ("count", pa.int64())])

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
        hashes[start:stop] = sums ^ (lengths.astype(np.uint64) * _FIELD_MIX)
    return hashes


def _aggregate(tables: List[pa.Table]) -> pa.Table:
    merged = pa.concat_tables(tables).group_by(["field", "token"]).aggregate([("count", "sum")])
    return pa.table({"field": merged["field"], "token": merged["token"], "count": merged["count_sum"]},
                    schema=_SCHEMA)


class TokenCounter:
    """Counts (field, token) occurrences exactly, holding at most about `memory_bytes` of entries in memory.

    Args:
        num_fields: fields are numbered 0..num_fields - 1.
        work_dir: where spills go (created when the first spill happens).
        memory_bytes: the budget for merged entries in memory (Arrow bytes; the aggregation briefly needs about
            twice as much).
        partitions: hash partitions of a spill.
    """

    def __init__(self, num_fields: int, work_dir, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 partitions: int = DEFAULT_PARTITIONS):
        if num_fields >= 2 ** 15:
            raise ValueError(f"TokenCounter: at most {2 ** 15 - 1} fields, got {num_fields}.")
        self.num_fields = int(num_fields)
        self.work_dir = pathlib.Path(work_dir)
        self.memory_bytes = int(memory_bytes)
        self.partitions = int(partitions)
        self.spill_files: List[pathlib.Path] = []
        self._merged = pa.table({"field": [], "token": [], "count": []}, schema=_SCHEMA)
        self._pending: List[pa.Table] = []
        self._pending_bytes = 0

    def add(self, counted: Sequence[Tuple[int, pa.Array, np.ndarray]]) -> None:
        """Adds one block's counts: (field, tokens, counts) per field; tokens may repeat."""
        counted = [(field, tokens, counts) for field, tokens, counts in counted if len(tokens)]
        if not counted:
            return
        fields = np.concatenate([np.full(len(tokens), field, dtype=np.int16) for field, tokens, _ in counted])
        tokens = pa.concat_arrays([tokens.combine_chunks() if isinstance(tokens, pa.ChunkedArray) else tokens
                                   for _, tokens, _ in counted])
        counts = np.concatenate([np.asarray(counts, dtype=np.int64) for _, _, counts in counted])
        table = pa.table({"field": fields, "token": tokens, "count": counts}, schema=_SCHEMA)
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        # Merging when the pending entries reach the merged ones keeps the total merge work linear in the input.
        if self._pending_bytes >= max(self._merged.nbytes, self.memory_bytes // 8):
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            self._merged = _aggregate([self._merged] + self._pending)
            self._pending, self._pending_bytes = [], 0
        if self._merged.nbytes > self.memory_bytes:
            self._spill()

    def _spill(self) -> None:
        """Writes the merged entries to one Arrow IPC file with one record batch per hash partition."""
        table = self._merged.combine_chunks()
        fields = table["field"].to_numpy()
        mixed = token_hashes(table["token"]) ^ (fields.astype(np.uint64) * _FIELD_MIX)
        partition = ((mixed * _FIELD_MIX) >> np.uint64(48)).astype(np.int64) % self.partitions
        order = np.argsort(partition, kind="stable")
        table = table.take(pa.array(order))
        bounds = np.searchsorted(partition[order], np.arange(self.partitions + 1))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"counts-{len(self.spill_files):04d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, _SCHEMA) as writer:
            for part in range(self.partitions):  # one batch per partition, empty ones included
                start, length = int(bounds[part]), int(bounds[part + 1] - bounds[part])
                writer.write_batch(pa.RecordBatch.from_arrays(
                    [table.column(name).slice(start, length).combine_chunks() for name in _SCHEMA.names],
                    schema=_SCHEMA))
        logger.info("token counts spilled to %s (%d entries, %.0f MB in memory)", path, table.num_rows,
                    self._merged.nbytes / 2 ** 20)
        self.spill_files.append(path)
        self._merged = pa.table({"field": [], "token": [], "count": []}, schema=_SCHEMA)

    def result(self, min_counts: Sequence[int]) -> Dict[int, Dict[str, int]]:
        """{field: {token: count}} of the tokens counted at least `min_counts[field]` times (fields without an entry
        in `min_counts`, None, are left out). Spill files are removed."""
        self._merge()
        thresholds = np.array([count if count is not None else np.iinfo(np.int64).max for count in min_counts],
                              dtype=np.int64)
        if not self.spill_files:
            kept = [self._kept(self._merged, thresholds)]
        else:
            self._spill()
            readers = [pa.ipc.open_file(pa.memory_map(str(path))) for path in self.spill_files]
            kept = []
            for part in range(self.partitions):
                batches = [reader.get_batch(part) for reader in readers]
                kept.append(self._kept(_aggregate([pa.Table.from_batches([batch]) for batch in batches]), thresholds))
            del readers
            for path in self.spill_files:
                path.unlink()
        result: Dict[int, Dict[str, int]] = {field: {} for field, count in enumerate(min_counts) if count is not None}
        for table in kept:
            for field, token, count in zip(table["field"].to_pylist(), table["token"].to_pylist(),
                                           table["count"].to_pylist()):
                result[field][token] = count
        return result

    @staticmethod
    def _kept(table: pa.Table, thresholds: np.ndarray) -> pa.Table:
        if table.num_rows == 0:
            return table
        fields = table["field"].to_numpy()
        keep = table["count"].to_numpy() >= thresholds[fields]
        return table.filter(pa.array(keep))
