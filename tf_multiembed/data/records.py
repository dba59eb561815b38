"""Schema-aware parsing: reader rows -> per-field tokens and 0/1 labels, with bad rows skipped and counted.

The build runs this twice (count, then encode), so the parser is deterministic: the same input gives the same rows
and the same skips. Tokens are what the vocabulary stores; `MISSING` ("") stands for a missing value.
"""

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import transforms
from tf_multiembed.data.quality import BadInputTracker
from tf_multiembed.data.readers import DelimitedReader, MovieLensReader, RowChunk
from tf_multiembed.data.readers.lines import DEFAULT_CHUNK_BYTES

_BINARY_LABELS = {"0": 0, "1": 1}
MISSING = ""  # the token of a missing value in ParsedRows, before the field's missing_token applies
_MAX_CACHED_VALUES = 1 << 20  # transform results kept per field; bounded so memory does not follow the row count


def make_reader(schema: schema_lib.Schema, input_paths, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
    """The reader the schema names, over `input_paths` (files or glob patterns; a folder for MovieLens).

    Example:
        >>> reader = make_reader(criteo_schema(), "train.txt.gz")  # doctest: +SKIP
    """
    if schema.reader == schema_lib.MOVIELENS_READER:
        return MovieLensReader(input_paths, chunk_bytes=chunk_bytes)
    return DelimitedReader(input_paths, delimiter=schema.delimiter, has_header=schema.has_header,
                           column_names=schema.column_names, required_columns=schema.required_columns,
                           quotechar=schema.quotechar, encoding=schema.encoding, chunk_bytes=chunk_bytes)


@dataclasses.dataclass
class ParsedRows:
    """The valid rows of one chunk, column-wise.

    Attributes:
        tokens: per schema field, one entry per row: single-valued fields hold the token, with `MISSING` ("") for
            a missing value (the encoder and the counter read it as the field's `missing_token`, or id 0 without
            one); multi-valued fields hold a tuple of at most `max_values` tokens (the missing token, or nothing,
            for an empty cell).
        labels: 0/1 per row.
        times: per row, the time column as a float (only when the parser reads times), else None.
        cells: the valid rows' raw cells (only when the parser keeps them), else None.
    """

    tokens: List[Sequence]
    labels: List[int]
    times: Optional[List[float]]
    cells: Optional[List[List[str]]] = None

    @property
    def num_rows(self) -> int:
        return len(self.labels)


class _Invalid:
    """A cached transform failure (the reason a value is not readable)."""

    __slots__ = ("detail",)

    def __init__(self, detail: str):
        self.detail = detail


class RecordParser:
    """Applies a schema to reader chunks: label rule, field transforms, missing values, multi-value slots.

    Args:
        schema: the schema.
        tracker: counts skipped rows (strict mode raises at the first one).
        parse_time: also read the schema's time column (rows whose time is not a number are then skipped).
        keep_cells: also return the raw cells of the valid rows.

    Example:
        >>> parser = RecordParser(schema, BadInputTracker())  # doctest: +SKIP
        >>> rows = parser.parse(chunk)  # doctest: +SKIP
    """

    def __init__(self, schema: schema_lib.Schema, tracker: BadInputTracker, parse_time: bool = False,
                 keep_cells: bool = False):
        if parse_time and schema.time_column is None:
            raise ValueError(f"schema {schema.name!r} has no time_column to read.")
        self.schema = schema
        self.tracker = tracker
        self.parse_time = bool(parse_time)
        self.keep_cells = bool(keep_cells)
        self._transforms = [transforms.get_transform(field.transform) for field in schema.fields]
        self._caches: List[Dict[str, object]] = [{} for _ in schema.fields]
        self._invalid_values: List[set] = [set() for _ in schema.fields]
        self._indices: Dict[Tuple[str, ...], Tuple[int, List[int], Optional[int]]] = {}

    def _column_indices(self, chunk: RowChunk) -> Tuple[int, List[int], Optional[int]]:
        names = chunk.column_names
        if names not in self._indices:
            missing = [column for column in self.schema.required_columns if column not in names]
            if missing:
                raise ValueError(f"{chunk.path}: the reader gives the columns {list(names)}, which lack {missing} "
                                 f"named by schema {self.schema.name!r}.")
            time_index = names.index(self.schema.time_column) if self.parse_time else None
            self._indices[names] = (names.index(self.schema.label.column),
                                    [names.index(field.column) for field in self.schema.fields], time_index)
        return self._indices[names]

    def _transformed(self, position: int, values: Sequence[str]) -> Tuple[list, Dict[int, str]]:
        """Transformed tokens of one column (`MISSING` for missing values) and {row: detail} of unreadable values."""
        cache, invalid_values = self._caches[position], self._invalid_values[position]
        transform = self._transforms[position]
        distinct = set(values)
        new = distinct.difference(cache)
        if len(cache) + len(new) > _MAX_CACHED_VALUES:
            cache.clear()
            invalid_values.clear()
            new = distinct
        for value in new:
            try:
                token = transform.python(value)
                cache[value] = MISSING if token is None else token
            except ValueError as error:
                cache[value] = _Invalid(str(error))
                invalid_values.add(value)
        tokens = list(map(cache.__getitem__, values))
        invalid = {}
        if not invalid_values.isdisjoint(distinct):
            invalid = {row: token.detail for row, token in enumerate(tokens) if isinstance(token, _Invalid)}
        return tokens, invalid

    def _labels(self, values: Sequence[str], bad: List[tuple]) -> list:
        label = self.schema.label
        if label.rule == schema_lib.BINARY_LABEL:
            labels = list(map(_BINARY_LABELS.get, values))
            if None in labels:
                bad.extend((row, "bad_label", f"label {value!r}, expected 0 or 1")
                           for row, value in enumerate(values) if value not in _BINARY_LABELS)
            return labels
        labels = []
        for row, value in enumerate(values):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isnan(number):
                bad.append((row, "bad_label", f"{label.column} {value!r} is not a number"))
                labels.append(None)
            else:
                labels.append(1 if number >= label.threshold else 0)
        return labels

    def _multi_values(self, field: schema_lib.FieldSpec, values: Sequence[str]) -> List[tuple]:
        cells = []
        for value in values:
            parts = [part for part in value.split(field.separator) if part]  # identity transform: "" is missing
            if len(parts) > field.max_values:
                self.tracker.values_truncated[field.name] += 1
                parts = parts[:field.max_values]
            if not parts and field.missing_token is not None:
                parts = [field.missing_token]
            cells.append(tuple(parts))
        return cells

    def parse(self, chunk: RowChunk) -> ParsedRows:
        """Parses one chunk; rows with bad values and the reader's rejected lines are reported in line order."""
        label_index, field_indices, time_index = self._column_indices(chunk)
        columns = list(zip(*chunk.rows)) if chunk.rows else [()] * len(chunk.column_names)
        bad: List[tuple] = []  # (row, reason, detail)
        labels = self._labels(columns[label_index], bad)
        tokens = []
        for position, (field, column_index) in enumerate(zip(self.schema.fields, field_indices)):
            values = columns[column_index]
            if field.kind == schema_lib.MULTI_CATEGORICAL:
                tokens.append(self._multi_values(field, values))
                continue
            if self._transforms[position].name == "identity":
                tokens.append(values)  # an empty cell already is MISSING
            else:
                column, invalid = self._transformed(position, values)
                bad.extend((row, "non_numeric", f"{field.name}: {detail}") for row, detail in invalid.items())
                tokens.append(column)
        times = None
        if time_index is not None:
            times = []
            for row, value in enumerate(columns[time_index]):
                try:
                    number = float(value)
                except ValueError:
                    number = math.nan
                if math.isnan(number):
                    bad.append((row, "bad_time", f"{self.schema.time_column} {value!r} is not a number"))
                times.append(number)
        self._report(chunk, bad)
        cells = chunk.rows if self.keep_cells else None
        if bad:
            skip = {row for row, _, _ in bad}
            keep = [row not in skip for row in range(len(chunk.rows))]
            tokens = [[token for token, kept in zip(column, keep) if kept] for column in tokens]
            labels = [label for label, kept in zip(labels, keep) if kept]
            if times is not None:
                times = [time for time, kept in zip(times, keep) if kept]
            if cells is not None:
                cells = [row for row, kept in zip(cells, keep) if kept]
        return ParsedRows(tokens, labels, times, cells)

    def _report(self, chunk: RowChunk, bad: List[tuple]) -> None:
        """Reports the reader's and the parser's rejections merged in line order (strict mode stops at the first)."""
        if not bad and not chunk.rejected:
            return
        by_line = {}
        for line_number, reason, detail in chunk.rejected:
            by_line.setdefault(line_number, (reason, detail))
        for row, reason, detail in bad:
            by_line.setdefault(chunk.line_numbers[row], (reason, detail))
        for line_number in sorted(by_line):
            reason, detail = by_line[line_number]
            self.tracker.skip(chunk.path, line_number, reason, detail)
