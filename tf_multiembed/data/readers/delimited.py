"""The delimited-text reader (CSV, TSV; plain or gzip): lines -> rows of cells, with the column count checked.

Criteo (headerless TSV) and Avazu (CSV with a header) are configurations of this reader; any other delimited file
is read the same way under a schema file.
"""

import csv
import dataclasses
import glob
import pathlib
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from tf_multiembed.data.quality import BadInputTracker
from tf_multiembed.data.readers.lines import DEFAULT_CHUNK_BYTES, Rejection, iter_line_chunks

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
    expanded = []
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
        chunk_bytes: about how many bytes to read at a time.

    Example:
        >>> reader = DelimitedReader("train.txt", delimiter="\\t", has_header=False,
        ...                          column_names=["label", "I1", "C1"])  # doctest: +SKIP
        >>> for chunk in reader.read(BadInputTracker()):  # doctest: +SKIP
        ...     print(chunk.rows[0])
    """

    def __init__(self, paths, delimiter: str = ",", has_header: bool = True,
                 column_names: Optional[Sequence[str]] = None, required_columns: Sequence[str] = (),
                 quotechar: Optional[str] = None, encoding: str = "utf-8", chunk_bytes: int = DEFAULT_CHUNK_BYTES):
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
                rows, line_numbers, split_rejected = self._split(texts, line_numbers)
                rejected.extend(split_rejected)
                if rows and (len(rows[0]) != len(columns) or len(set(map(len, rows))) != 1):
                    kept_rows, kept_lines = [], []
                    for row, line_number in zip(rows, line_numbers):
                        if len(row) == len(columns):
                            kept_rows.append(row)
                            kept_lines.append(line_number)
                        else:
                            detail = "blank line" if row in ([""], []) else \
                                f"{len(row)} columns, expected {len(columns)}"
                            rejected.append((line_number, "wrong_column_count", detail))
                    rows, line_numbers = kept_rows, kept_lines
                count = len(rows) + len(rejected)
                tracker.count_lines(count)
                data_lines += count
                if count:
                    yield RowChunk(str(path), columns, line_numbers, rows, sorted(rejected))
            if data_lines == 0:
                tracker.empty_file(str(path))
