"""The delimited-text reader (CSV, TSV; plain or gzip): lines -> rows of cells, with the column count checked.

Criteo (headerless TSV) and Avazu (CSV with a header) are configurations of this reader; any other delimited file
is read the same way under a schema file.
"""

import codecs
import csv
import dataclasses
import glob
import hashlib
import pathlib
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

from tf_multiembed.data.quality import BadInputTracker
from tf_multiembed.data.readers.blocks import ColumnBlock, Rejection, block_from_rows, concat_blocks, prefetch
from tf_multiembed.data.readers.lines import (DEFAULT_BLOCK_BYTES, DEFAULT_CHUNK_BYTES, count_lines, decode_lines,
                                              iter_line_blocks, iter_line_chunks)

_ARROW_BLOCK_BYTES = 1 << 21  # Arrow parses a block in pieces of this size, in parallel

PathLike = Union[str, pathlib.Path]


@dataclasses.dataclass
class RowChunk:
    """Rows of one file whose column count is right, and the lines the reader rejected.

    Attributes:
        path: the file.
        column_names: the file's column names (from its header or the schema).
        line_numbers: 1-based line numbers of `rows`.
        rows: lists of cells, each of length `len(column_names)`.
        rejected: rejected lines as (line_number, reason, detail); not yet reported to a tracker.
    """

    path: str
    column_names: Tuple[str, ...]
    line_numbers: Sequence[int]
    rows: List[List[str]]
    rejected: List[Rejection]


def expand_paths(paths: Union[PathLike, Iterable[PathLike]]) -> List[pathlib.Path]:
    """Input paths as a list: one path or many; glob patterns (`*`, `?`, `[`) are expanded in sorted order.

    A pattern that matches nothing is kept as is, so that it is reported as a missing file.
    """
    if isinstance(paths, (str, pathlib.Path)):
        paths = [paths]
    expanded: List[pathlib.Path] = []
    for path in paths:
        text = str(path)
        matches = sorted(glob.glob(text)) if any(c in text for c in "*?[") else []
        if matches:
            expanded.extend(pathlib.Path(match) for match in matches)
        else:
            expanded.append(pathlib.Path(text))
    if not expanded:
        raise ValueError("No input paths were given.")
    return expanded


def check_columns(path, found: Sequence[str], required: Sequence[str], expected: Optional[Sequence[str]]) -> None:
    """Raises ValueError naming the file when a header lacks required columns or differs from the expected one."""
    if expected is not None and tuple(found) != tuple(expected):
        raise ValueError(f"{path}: the header has columns {list(found)} but the schema expects {list(expected)}.")
    missing = [column for column in required if column not in found]
    if missing:
        raise ValueError(f"{path}: the header lacks the columns {missing} that the schema uses; it has {list(found)}.")
    repeated = sorted({column for column in required if list(found).count(column) > 1})
    if repeated:
        raise ValueError(f"{path}: the header repeats the columns {repeated}, so they are ambiguous.")


class DelimitedReader:
    """Reads delimited files into rows of cells.

    Args:
        paths: one path, a list of paths, or glob patterns; files may be gzip-compressed.
        delimiter: the one-character column separator.
        has_header: each file starts with a header line naming its columns.
        column_names: the columns of headerless files; with a header, if given, each header must equal it.
        required_columns: columns each header must contain (checked when the header is read).
        quotechar: parse quoted cells (a cell may contain the delimiter); None splits plainly, which is faster.
        encoding: text encoding; lines that fail to decode are rejected as bad input.
        chunk_bytes: about how many bytes `read` reads at a time.
        block_bytes: about how many bytes `read_blocks` parses at a time.

    Example:
        >>> reader = DelimitedReader("train.txt", delimiter="\\t", has_header=False,
        ...                          column_names=["label", "I1", "C1"])  # doctest: +SKIP
        >>> for chunk in reader.read(BadInputTracker()):  # doctest: +SKIP
        ...     print(chunk.rows[0])
    """

    def __init__(self, paths, delimiter: str = ",", has_header: bool = True,
                 column_names: Optional[Sequence[str]] = None, required_columns: Sequence[str] = (),
                 quotechar: Optional[str] = None, encoding: str = "utf-8", chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 block_bytes: int = DEFAULT_BLOCK_BYTES):
        if not has_header and column_names is None:
            raise ValueError("DelimitedReader: a headerless file needs `column_names`.")
        self.paths = expand_paths(paths)
        self.delimiter = delimiter
        self.has_header = bool(has_header)
        self.column_names = tuple(column_names) if column_names is not None else None
        self.required_columns = tuple(required_columns)
        self.quotechar = quotechar
        self.encoding = encoding
        self.chunk_bytes = int(chunk_bytes)
        self.block_bytes = int(block_bytes)

    def input_files(self) -> List[pathlib.Path]:
        """The files this reader reads (for cache keys)."""
        return list(self.paths)

    def _split(self, texts: List[str], line_numbers: Sequence[int]):
        if self.quotechar is None:
            return [text.split(self.delimiter) for text in texts], line_numbers, []
        rows, kept, rejected = [], [], []
        for text, line_number in zip(texts, line_numbers):
            try:
                rows.append(next(csv.reader([text], delimiter=self.delimiter, quotechar=self.quotechar,
                                            strict=True), []))
                kept.append(line_number)
            except csv.Error as error:
                rejected.append((line_number, "bad_quoting", str(error)))
        return rows, kept, rejected

    def _header(self, path, text: str) -> Tuple[str, ...]:
        cells, _, rejected = self._split([text], [1])
        if rejected:
            raise ValueError(f"{path}:1: cannot parse the header line: {rejected[0][2]}.")
        names = [cell.strip() for cell in cells[0]]
        if names:
            names[0] = names[0].lstrip("\ufeff")  # a byte-order mark written by spreadsheet tools
        check_columns(path, names, self.required_columns, self.column_names)
        return tuple(names)

    def _rows(self, texts: List[str], line_numbers: Sequence[int], columns: Sequence[str]):
        """(rows, their line numbers, rejections) of decoded lines: cells split, the column count checked."""
        rows, line_numbers, rejected = self._split(texts, line_numbers)
        if rows and (len(rows[0]) != len(columns) or len(set(map(len, rows))) != 1):
            kept_rows, kept_lines = [], []
            for row, line_number in zip(rows, line_numbers):
                if len(row) == len(columns):
                    kept_rows.append(row)
                    kept_lines.append(line_number)
                else:
                    detail = "blank line" if row in ([""], []) else f"{len(row)} columns, expected {len(columns)}"
                    rejected.append((line_number, "wrong_column_count", detail))
            rows, line_numbers = kept_rows, kept_lines
        return rows, line_numbers, rejected

    def read(self, tracker: BadInputTracker) -> Iterator[RowChunk]:
        """Yields row chunks of every file in turn; counts lines, missing and empty files on `tracker`."""
        for path in self.paths:
            if not path.is_file():
                tracker.missing_file(str(path))
                continue
            tracker.files_read.append(str(path))
            columns = None if self.has_header else self.column_names
            data_lines = 0
            for chunk in iter_line_chunks(path, self.encoding, self.chunk_bytes):
                line_numbers, texts, rejected = chunk.line_numbers, chunk.texts, list(chunk.rejected)
                if columns is None:
                    if rejected and rejected[0][0] == 1:
                        raise ValueError(f"{path}:1: the header line is not valid {self.encoding} text.")
                    columns = self._header(path, texts[0])
                    tracker.header_lines += 1
                    line_numbers, texts = line_numbers[1:], texts[1:]
                rows, line_numbers, split_rejected = self._rows(texts, line_numbers, columns)
                rejected.extend(split_rejected)
                count = len(rows) + len(rejected)
                tracker.count_lines(count)
                data_lines += count
                if count:
                    yield RowChunk(str(path), columns, line_numbers, rows, sorted(rejected))
            if data_lines == 0:
                tracker.empty_file(str(path))

    # ------------------------------------------------------------------------------------------------------------
    # The columnar path: blocks of lines parsed by Arrow's multithreaded CSV reader, and by the row path above only
    # where a piece of a block holds a line Arrow would read differently (bad lines, quotes, stray carriage returns).

    def read_blocks(self, tracker: BadInputTracker, digests: Optional[dict] = None) -> Iterator[ColumnBlock]:
        """Yields `ColumnBlock`s of the required columns of every file in turn, with exactly the rows, line numbers
        and rejections of `read`; counts lines, missing and empty files on `tracker`. With `digests` (a dict), the
        sha256 of every file read is stored there by path, taken while reading."""
        for event, value in prefetch(self._block_events(digests is not None, self.block_bytes)):
            if event == "block":
                tracker.count_lines(value.num_lines)
                yield value
            elif event == "open":
                tracker.files_read.append(value)
            elif event == "header":
                tracker.header_lines += 1
            elif event == "missing":
                tracker.missing_file(value)
            elif event == "done":
                path, data_lines, digest = value
                if digests is not None:
                    digests[path] = digest
                if data_lines == 0:
                    tracker.empty_file(path)

    def _block_events(self, hashing: bool, block_bytes: int):
        """(event, value) pairs, produced ahead in a thread: ("missing"|"open", path), ("header", None),
        ("block", ColumnBlock), ("done", (path, data lines, sha256 or None))."""
        for path in self.paths:
            if not path.is_file():
                yield "missing", str(path)
                continue
            yield "open", str(path)
            digest = hashlib.sha256() if hashing else None
            columns = None if self.has_header else self.column_names
            data_lines = 0
            for first_line, data, num_lines, input_bytes in iter_line_blocks(path, block_bytes, digest):
                if columns is None:
                    end = data.find(b"\n") + 1 or len(data)
                    header = decode_lines(data[:end], 1, self.encoding)
                    if header.rejected:
                        raise ValueError(f"{path}:1: the header line is not valid {self.encoding} text.")
                    columns = self._header(path, header.texts[0])
                    yield "header", None
                    data, first_line, num_lines = data[end:], 2, num_lines - 1
                    if not data:
                        continue
                block = self._parse_block(str(path), columns, first_line, data, num_lines, input_bytes)
                data_lines += block.num_lines
                yield "block", block
            yield "done", (str(path), data_lines, digest.hexdigest() if digest is not None else None)

    def _parse_block(self, path: str, columns: Sequence[str], first_line: int, data: bytes, num_lines: int,
                     input_bytes: int) -> ColumnBlock:
        block = self._arrow_block(path, columns, first_line, data, num_lines)
        if block is None:
            # Split the block into pieces of whole lines: the clean ones still go through Arrow, only the pieces
            # holding a line it would misread take the row path.
            pieces, start = [], 0
            step = max(len(data) // 16, 1 << 16)
            while start < len(data):
                stop = data.find(b"\n", min(start + step, len(data) - 1)) + 1 or len(data)
                piece_first = first_line + data.count(b"\n", 0, start)
                piece = data[start:stop]
                pieces.append(self._arrow_block(path, columns, piece_first, piece, count_lines(piece))
                              or self._row_block(path, columns, piece_first, piece))
                start = stop
            block = concat_blocks(pieces)
        block.input_bytes = input_bytes
        return block

    def _arrow_compatible(self, data: bytes) -> Optional[bytes]:
        """The block as UTF-8 bytes for Arrow, or None when Arrow could read some line differently from `read`."""
        if self._delimiter_byte is None or data.startswith(b"\xef\xbb\xbf"):
            return None  # Arrow skips a leading byte-order mark, the row path keeps it in the first cell
        if b"\r" in data and (data.count(b"\r") != data.count(b"\r\n") or data.startswith(b"\r\n")
                               or b"\n\r\n" in data):
            return None  # Arrow ends lines at a lone "\r" too; a blank line ended by "\r\n"
        if self.quotechar is not None and self.quotechar.encode(self.encoding) in data:
            return None  # Python's csv module and Arrow disagree on malformed quoting
        if self._utf8:
            return data
        try:
            return data.decode(self.encoding).encode("utf-8")
        except UnicodeError:
            return None

    def _arrow_block(self, path: str, columns: Sequence[str], first_line: int, data: bytes,
                     num_lines: int) -> Optional[ColumnBlock]:
        """The block read by Arrow, or None when it must take the row path."""
        utf8 = self._arrow_compatible(data)
        if utf8 is None:
            return None
        ascii_only = utf8.isascii()  # then no UTF-8 check is needed: read bytes and view them as text
        names = [f"c{index}" for index in range(len(columns))]
        wanted = [column for column in self.required_columns if column in columns]
        include = {column: names[columns.index(column)] for column in wanted}
        cell_type = pa.binary() if ascii_only else pa.string()
        # Selecting columns costs Arrow more than converting them all: only worth it when some are left out.
        selected = list(include.values()) if len(include) < len(names) else None
        try:
            table = pa_csv.read_csv(
                pa.BufferReader(utf8),
                read_options=pa_csv.ReadOptions(column_names=names, use_threads=True, block_size=_ARROW_BLOCK_BYTES),
                parse_options=pa_csv.ParseOptions(delimiter=self.delimiter, quote_char=False, escape_char=False,
                                                  newlines_in_values=False, ignore_empty_lines=False),
                convert_options=pa_csv.ConvertOptions(include_columns=selected,
                                                      column_types={name: cell_type for name in include.values()},
                                                      strings_can_be_null=False, quoted_strings_can_be_null=False))
        except (pa.ArrowInvalid, UnicodeError):
            return None  # a line with the wrong number of columns, or invalid UTF-8: the row path names it
        if table.num_rows != num_lines:
            return None
        block_columns = {}
        for column, name in include.items():
            cells = table.column(name)
            if ascii_only:
                cells = pa.chunked_array([chunk.view(pa.string()) for chunk in cells.chunks], type=pa.string())
            block_columns[column] = cells
        # Arrow reads a blank line as a row of empty cells; the row reader rejects it. A blank line has an empty first
        # cell, so the block is searched for one only when its first column has an empty cell.
        first = block_columns[wanted[0]]
        if pc.any(pc.equal(first, "")).as_py() and (data.startswith(b"\n") or b"\n\n" in data):
            return None
        return ColumnBlock(path, block_columns, np.arange(first_line, first_line + num_lines, dtype=np.int64), [])

    def _row_block(self, path: str, columns: Sequence[str], first_line: int, data: bytes) -> ColumnBlock:
        """The block read by the row path (exact bad-line accounting)."""
        lines = decode_lines(data, first_line, self.encoding)
        rows, line_numbers, rejected = self._rows(lines.texts, lines.line_numbers, columns)
        wanted = [column for column in self.required_columns if column in columns]
        return block_from_rows(path, columns, wanted, rows, line_numbers, list(lines.rejected) + rejected)

    @property
    def _delimiter_byte(self) -> Optional[str]:
        """The delimiter if Arrow can split on it (one byte in the file's encoding and in UTF-8), else None."""
        try:
            ok = len(self.delimiter.encode(self.encoding)) == 1 and self.delimiter.isascii()
        except UnicodeError:
            ok = False
        return self.delimiter if ok else None

    @property
    def _utf8(self) -> bool:
        return codecs.lookup(self.encoding).name == "utf-8"
