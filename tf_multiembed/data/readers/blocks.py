"""Column blocks: many rows of one file as Arrow text columns, the unit the build engine parses, counts and encodes.

Every reader yields `ColumnBlock`s from `read_blocks(tracker)`: the cells of the rows whose shape is right, as Arrow
`string` columns (one per column the schema uses), their line (or record, or row) numbers, and the lines the reader
rejected. Readers that produce Python rows (`RowChunk`) convert them with `block_from_rows`; the columnar readers
convert their blocks to rows with `rows_from_block` for callers that want rows (`read(tracker)`).
"""

import dataclasses
import queue
import threading
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

import numpy as np
import pyarrow as pa

# (line_number, reason, detail): a line a reader rejects before any schema is applied.
Rejection = Tuple[int, str, str]


@dataclasses.dataclass
class ColumnBlock:
    """Rows of one file, column-wise.

    Attributes:
        path: the file.
        columns: {column name: Arrow string array (or chunked array) of the rows' cells}; "" is an empty cell.
        line_numbers: int64 `[rows]`, 1-based line (record, row) numbers of the rows, increasing.
        rejected: lines the reader rejected, sorted, not yet reported to a tracker.
        input_bytes: bytes of the input file this block accounts for (for progress reports; 0 when unknown).
    """

    path: str
    columns: Dict[str, pa.ChunkedArray]
    line_numbers: np.ndarray
    rejected: List[Rejection]
    input_bytes: int = 0

    @property
    def num_rows(self) -> int:
        return len(self.line_numbers)

    @property
    def num_lines(self) -> int:
        """Data lines this block accounts for: its rows and its rejected lines."""
        return len(self.line_numbers) + len(self.rejected)


def block_from_rows(path: str, column_names: Sequence[str], wanted: Sequence[str], rows: Sequence[Sequence[str]],
                    line_numbers: Sequence[int], rejected: List[Rejection], input_bytes: int = 0) -> ColumnBlock:
    """A `ColumnBlock` of the `wanted` columns of Python rows (lists of cells in `column_names` order)."""
    columns = {}
    for name in wanted:
        index = column_names.index(name)
        columns[name] = pa.chunked_array([pa.array([row[index] for row in rows], type=pa.string())])
    return ColumnBlock(path, columns, np.asarray(line_numbers, dtype=np.int64), sorted(rejected), input_bytes)


def rows_from_block(block: ColumnBlock) -> Tuple[Tuple[str, ...], List[List[str]]]:
    """(column names, rows of cells) of a block (the inverse of `block_from_rows`)."""
    names = tuple(block.columns)
    columns = [block.columns[name].to_pylist() for name in names]
    return names, [list(row) for row in zip(*columns)] if columns else []


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Iterates `items` in a background thread, `depth` items ahead (the reader parses the next block while the
    caller counts or encodes this one; Arrow's readers and kernels release the GIL). Exceptions are re-raised here;
    closing the iterator stops the thread.

    Example:
        >>> list(prefetch(range(3)))
        [0, 1, 2]
    """
    handoff: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put((None, item)):
                    return
            put((None, done))
        except BaseException as error:  # handed to the consumer, which re-raises it
            put((error, None))

    thread = threading.Thread(target=produce, name="tf_multiembed-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            error, item = handoff.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def chunked(array) -> pa.ChunkedArray:
    """`array` as a ChunkedArray (Arrow kernels and filters treat both alike; blocks hold the chunked kind)."""
    return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])


def concat_blocks(blocks: List[ColumnBlock]) -> ColumnBlock:
    """One block of several blocks of the same file (in order)."""
    if len(blocks) == 1:
        return blocks[0]
    columns = {name: pa.chunked_array([chunk for block in blocks for chunk in block.columns[name].chunks],
                                      type=pa.string()) for name in blocks[0].columns}
    return ColumnBlock(blocks[0].path, columns, np.concatenate([block.line_numbers for block in blocks]),
                       sorted(rejection for block in blocks for rejection in block.rejected),
                       sum(block.input_bytes for block in blocks))

