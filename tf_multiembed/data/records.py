"""The schema applied to column blocks: label rule, field transforms, missing values, multi-value slots, bad rows.

`BlockParser` works a block at a time with Arrow kernels: a field's transform (and the time column's and a threshold
label's parse) runs once per distinct raw value of the block (`dictionary_encode`), never per row, as the transform's
Arrow twin (`transforms.py`). `validate` checks a block and skips (counts, names) its bad rows; `count` gives the
token counts of its valid rows (pass 1); `encode` gives their ids (pass 2). The build runs the same parse twice, so
the parser is deterministic: the same input gives the same rows and the same skips.

A row is skipped for the first problem found, in this order: the reader's rejection of the line, the label, then
the fields in schema order, then the time column (a problem of a later check on the same line is not reported).
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tf_multiembed.data import numeric as numeric_lib
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import transforms
from tf_multiembed.data import quality
from tf_multiembed.data.quality import BadInputError, BadInputTracker
from tf_multiembed.data.readers import DelimitedReader, MovieLensReader
from tf_multiembed.data.readers.blocks import ColumnBlock, chunked
from tf_multiembed.data.readers.columnar import ParquetReader, TFRecordReader
from tf_multiembed.data.readers.lines import DEFAULT_BLOCK_BYTES, DEFAULT_CHUNK_BYTES

MISSING = ""  # a missing value, before the field's missing_token applies
_BINARY_LABELS = pa.array(["0", "1"], type=pa.string())
PER_ROW_LIMIT = 1 << 16  # vocabularies up to this size are looked up row by row by Arrow (see IdLookups)


def make_reader(schema: schema_lib.Schema, input_paths, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                block_bytes: int = DEFAULT_BLOCK_BYTES):
    """The reader the schema names, over `input_paths` (files or glob patterns; a folder for MovieLens).

    Every reader has `read_blocks(tracker)` (column blocks, what the build uses) and `read(tracker)` (rows of text
    cells), and `input_files()`.

    Example:
        >>> reader = make_reader(criteo_schema(), "train.txt.gz")  # doctest: +SKIP
    """
    separators = {field.column: field.separator for field in schema.fields
                  if field.is_list}
    if schema.reader == schema_lib.MOVIELENS_READER:
        return MovieLensReader(input_paths, chunk_bytes=chunk_bytes, required_columns=schema.required_columns)
    if schema.reader == schema_lib.PARQUET_READER:
        return ParquetReader(input_paths, schema.required_columns, separators)
    if schema.reader == schema_lib.TFRECORD_READER:
        return TFRecordReader(input_paths, schema.required_columns, separators, label_column=schema.label.column)
    return DelimitedReader(input_paths, delimiter=schema.delimiter, has_header=schema.has_header,
                           column_names=schema.column_names, required_columns=schema.required_columns,
                           quotechar=schema.quotechar, encoding=schema.encoding, chunk_bytes=chunk_bytes,
                           block_bytes=block_bytes)


@dataclasses.dataclass
class ValidRows:
    """The valid rows of one block.

    Attributes:
        path: the file.
        line_numbers: int64 `[rows]`.
        columns: {column: raw text cells} of the rows.
        labels: int32 0/1 `[rows]`.
        times: float64 `[rows]` of the time column (only when the parser reads times), else None.
        numeric: {field position: its `NumericColumn`} for fields with a numeric transform.
        floats: {field position: float64 values `[rows]`, NaN where missing} for numeric fields with a treatment.
    """

    path: str
    line_numbers: np.ndarray
    columns: Dict[str, pa.ChunkedArray]
    labels: np.ndarray
    times: Optional[np.ndarray]
    numeric: Dict[int, "NumericColumn"]
    floats: Dict[int, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return len(self.line_numbers)


@dataclasses.dataclass
class NumericColumn:
    """A numeric field's column of a block, transformed once per distinct value.

    Attributes:
        tokens: the token of each distinct value ("" where missing or unreadable).
        counts: for counting (pass 1): the rows of each distinct value; else None.
        cells: for encoding (pass 2): the column dictionary-encoded (its dictionary is the distinct values); else
            None.
    """

    tokens: pa.Array
    counts: Optional[np.ndarray] = None
    cells: Optional[pa.ChunkedArray] = None


def _dictionary(encoded: pa.ChunkedArray) -> pa.Array:
    """The dictionary shared by the chunks of `dictionary_encode(chunked array)`."""
    return encoded.chunks[0].dictionary if encoded.num_chunks else pa.array([], type=pa.string())


def _indices(encoded: pa.ChunkedArray) -> np.ndarray:
    if not encoded.num_chunks:
        return np.zeros((0,), dtype=np.int32)
    return np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks])


def _numbers(cells: pa.ChunkedArray) -> np.ndarray:
    """float(cell) per row (NaN where Python's float() fails), parsed once per distinct cell."""
    encoded = pc.dictionary_encode(cells)
    numbers, _ = transforms.parse_numbers(_dictionary(encoded))
    return numbers[_indices(encoded)]


@dataclasses.dataclass
class ListValues:
    """The kept values of a list field's cells (`multi_categorical` slots or a bag), all rows at once: value `i` is
    `values[i]` in slot `slots[i]` of row `rows[i]`, and `truncated` marks the rows whose values went past the
    field's `max_values` (dropped, and counted in the report's `values_truncated`)."""

    rows: np.ndarray
    slots: np.ndarray
    values: pa.Array
    truncated: np.ndarray


def split_list_cells(cells: Union[pa.Array, pa.ChunkedArray], field: schema_lib.FieldSpec) -> ListValues:
    """Splits a list field's cells on its separator, by Arrow for the whole block: empty parts are dropped (the
    identity transform's missing), the first `max_values` are kept, and a row left with none gets the field's
    `missing_token` when it has one (else it is empty: OOV slots, or a bag of no value).

    Example:
        >>> field = schema_lib.FieldSpec("tags", kind=schema_lib.BAG, separator="|", max_values=2)
        >>> values = split_list_cells(pa.array(["a|b|c", "", "|d|"]), field)
        >>> values.rows.tolist(), values.slots.tolist(), values.values.to_pylist(), values.truncated.tolist()
        ([0, 0, 2], [0, 1, 0], ['a', 'b', 'd'], [True, False, False])
    """
    array = cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells
    lists = pc.split_pattern(pc.fill_null(array, ""), pattern=field.separator)
    values = pc.list_flatten(lists)
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    present = pc.not_equal(values, "").to_numpy(zero_copy_only=False)
    values, rows = values.filter(pa.array(present)), rows[present]
    # A value's slot is its rank among its row's values (rows come sorted).
    starts = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]])) if len(rows) else np.zeros(0, int)
    slots = np.arange(len(rows)) - np.repeat(starts, np.diff(np.append(starts, len(rows))))
    kept = slots < cast(int, field.max_values)
    truncated = np.zeros(len(array), dtype=bool)
    truncated[rows[~kept]] = True
    values, rows, slots = values.filter(pa.array(kept)), rows[kept], slots[kept]
    if field.missing_token is not None:
        has_values = np.zeros(len(array), dtype=bool)
        has_values[rows] = True
        empty_rows = np.flatnonzero(~has_values)
        if len(empty_rows):
            order = np.argsort(np.concatenate([rows, empty_rows]), kind="stable")
            filler = pa.array([field.missing_token] * len(empty_rows), type=values.type)
            values = pa.concat_arrays([values, filler]).take(pa.array(order))
            rows = np.concatenate([rows, empty_rows])[order]
            slots = np.concatenate([slots, np.zeros(len(empty_rows), dtype=slots.dtype)])[order]
    return ListValues(rows, slots, values, truncated)


class BlockParser:
    """Applies a schema to column blocks (see the module doc).

    Args:
        schema: the schema.
        tracker: counts skipped rows (strict mode raises at the first one).
        parse_time: also read the schema's time column (rows whose time is not a number are then skipped).
        for_encoding: prepare the valid rows for `encode` (pass 2) rather than `count` (pass 1).

    Example:
        >>> parser = BlockParser(schema, BadInputTracker())  # doctest: +SKIP
        >>> rows = parser.validate(block)  # doctest: +SKIP
        >>> parser.count(rows)  # doctest: +SKIP
    """

    def __init__(self, schema: schema_lib.Schema, tracker: BadInputTracker, parse_time: bool = False,
                 for_encoding: bool = False):
        if parse_time and schema.time_column is None:
            raise ValueError(f"schema {schema.name!r} has no time_column to read.")
        self.schema = schema
        self.tracker = tracker
        self.parse_time = bool(parse_time)
        self.for_encoding = bool(for_encoding)
        self._transforms = [transforms.get_transform(field.transform) for field in schema.fields]
        self._treated = [field.treatment is not None for field in schema.fields]
        self._numeric = [transform.name != "identity" and not field.is_list
                         and field.treatment is None for field, transform in zip(schema.fields, self._transforms)]

    # -- validation ---------------------------------------------------------------------------------------------

    def _labels(self, cells: pa.ChunkedArray, bad: List[tuple]) -> np.ndarray:
        label = self.schema.label
        if label.rule == schema_lib.THRESHOLD_LABEL:
            values = _numbers(cells)
            unreadable = np.isnan(values)
            labels = (values >= label.threshold).astype(np.int32)
            detail = f"{label.column} {{!r}} is not a number"
        else:
            if label.rule == schema_lib.BINARY_LABEL:
                positive, known = pc.equal(cells, "1"), pc.is_in(cells, value_set=_BINARY_LABELS)
                detail = "label {!r}, expected 0 or 1"
            else:  # values: class names, compared without surrounding spaces
                names = pc.utf8_trim_whitespace(cells)
                positive = pc.is_in(names, value_set=pa.array(label.positive, type=pa.string()))
                known = pc.or_(positive, pc.is_in(names, value_set=pa.array(label.negative, type=pa.string())))
                # Both set under the values rule (LabelSpec checks them).
                detail = (f"{label.column} {{!r}}, neither positive {list(cast(Tuple[str, ...], label.positive))} "
                          f"nor negative {list(cast(Tuple[str, ...], label.negative))}")
            labels = positive.to_numpy(zero_copy_only=False).astype(np.int32)
            unreadable = ~known.to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(unreadable)
        for row in rows:
            bad.append((row, "bad_label", detail.format(cells[int(row)].as_py())))
        if len(rows):
            seen = pc.unique(cells.take(pa.array(rows[:1000]))).to_pylist()[:5]
            self.tracker.hint("bad_label", quality.label_hint(label.column, label.rule, seen))
        return labels

    def _check_label_present(self, block: ColumnBlock, cells: pa.ChunkedArray) -> None:
        """One error, not a skip per row, when a file's first block has no label at all (a label column or feature
        the file lacks, read as empty cells)."""
        first_data_line = block.num_rows and int(block.line_numbers[0]) <= 2 and not block.rejected
        if first_data_line and block.num_rows > 1 and not pc.any(pc.not_equal(pc.utf8_trim_whitespace(cells),
                                                                              "")).as_py():
            raise BadInputError(
                f"{block.path}: the label column {self.schema.label.column!r} is empty in all of the first "
                f"{block.num_rows} rows: the file has no labels there. Name the file's label column in the schema's "
                f"`label` (docs/data.md).")

    def _times(self, cells: pa.ChunkedArray, bad: List[tuple]) -> np.ndarray:
        times = _numbers(cells)
        for row in np.flatnonzero(np.isnan(times)):
            bad.append((row, "bad_time", f"{self.schema.time_column} {cells[int(row)].as_py()!r} is not a number"))
        return times

    def validate(self, block: ColumnBlock) -> ValidRows:
        """Checks a block's rows, skips (reports) the bad ones with the reader's rejections in line order, and
        returns the valid rows."""
        bad: List[tuple] = []  # (row, reason, detail), in the order of the checks
        columns = {name: chunked(cells) for name, cells in block.columns.items()}
        self._check_label_present(block, columns[self.schema.label.column])
        labels = self._labels(columns[self.schema.label.column], bad)
        numeric, floats = {}, {}
        for position, field in enumerate(self.schema.fields):
            if self._numeric[position]:
                numeric[position] = self._numeric_column(position, columns[field.column], bad)
            elif self._treated[position]:
                floats[position] = self._float_column(field, columns[field.column], bad)
        times = self._times(columns[cast(str, self.schema.time_column)], bad) if self.parse_time else None
        self._report(block, bad)
        line_numbers = block.line_numbers
        if bad:
            keep = np.ones(block.num_rows, dtype=bool)
            keep[[row for row, _, _ in bad]] = False
            mask = pa.array(keep)
            columns = {name: cells.filter(mask) for name, cells in columns.items()}
            for position, column in numeric.items():
                if self.for_encoding:  # the dictionary keeps the skipped rows' values: harmless, they map to ""
                    column.cells = cast(pa.ChunkedArray, column.cells).filter(mask)
                else:  # recount without the skipped rows
                    numeric[position] = self._numeric_column(
                        position, columns[self.schema.fields[position].column], [])
            labels, line_numbers = labels[keep], line_numbers[keep]
            times = times[keep] if times is not None else None
            floats = {position: values[keep] for position, values in floats.items()}
        return ValidRows(block.path, line_numbers, columns, labels, times, numeric, floats)

    def _float_column(self, field: schema_lib.FieldSpec, cells: pa.ChunkedArray, bad: List[tuple]) -> np.ndarray:
        """A treated field's values (parsed per row: a float column is mostly distinct values): empty text is
        missing (NaN); text that is not a number, NaN and infinities are bad rows ("non_numeric", "non_finite")."""
        array = cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells
        empty = transforms.blank_cells(array)
        numbers, readable = transforms.parse_numbers(array, blank=empty)
        problems = (~readable & ~empty) | (readable & ~np.isfinite(numbers))
        values = np.where(empty, np.nan, numbers)
        if problems.any():
            for row in np.flatnonzero(problems):
                text = array[int(row)].as_py()
                if readable[row]:
                    bad.append((row, "non_finite", f"{field.name}: {text!r} is not a finite number"))
                else:
                    bad.append((row, "non_numeric", f"{field.name}: {text!r} is not a number"))
            values = np.where(problems, np.nan, values)
        return values

    def _numeric_column(self, position: int, cells: pa.ChunkedArray, bad: List[tuple]) -> NumericColumn:
        """The field's transform run once per distinct value; rows with an unreadable value appended to `bad`."""
        if self.for_encoding:
            encoded = pc.dictionary_encode(cells)
            distinct, column = _dictionary(encoded), NumericColumn(None, cells=encoded)
        else:
            value_counts = pc.value_counts(cells)
            distinct = value_counts.field("values")
            column = NumericColumn(None, counts=value_counts.field("counts").to_numpy(zero_copy_only=False))
        column.tokens, unreadable = self._transforms[position].arrow(distinct)
        if unreadable.any():
            values = distinct.filter(pa.array(unreadable))
            transform, name = self._transforms[position], self.schema.fields[position].name
            for row in np.flatnonzero(pc.is_in(cells, value_set=values).to_numpy(zero_copy_only=False)):
                try:
                    transform.python(cells[int(row)].as_py())
                except ValueError as error:
                    bad.append((row, "non_numeric", f"{name}: {error}"))
        return column

    def _report(self, block: ColumnBlock, bad: List[tuple]) -> None:
        """Reports the reader's and the parser's rejections merged in line order (strict mode stops at the first)."""
        if not bad and not block.rejected:
            return
        by_line: Dict[int, Tuple[str, str]] = {}
        for line_number, reason, detail in block.rejected:
            by_line.setdefault(line_number, (reason, detail))
        for row, reason, detail in bad:
            by_line.setdefault(int(block.line_numbers[row]), (reason, detail))
        for line_number in sorted(by_line):
            reason, detail = by_line[line_number]
            self.tracker.skip(block.path, line_number, reason, detail)

    # -- pass 1: counting ---------------------------------------------------------------------------------------

    def _with_missing(self, field: schema_lib.FieldSpec, tokens: pa.Array, counts: np.ndarray):
        """Counts of `tokens` with MISSING ("") replaced by the field's missing token, or dropped without one."""
        missing = pc.equal(tokens, MISSING)
        if not pc.any(missing).as_py():
            return tokens, counts
        if field.missing_token is not None:
            return pc.if_else(missing, field.missing_token, tokens), counts
        keep = pc.invert(missing)
        return tokens.filter(keep), counts[keep.to_numpy(zero_copy_only=False)]

    def count(self, rows: ValidRows) -> List[Tuple[int, pa.Array, np.ndarray]]:
        """(field position, tokens, counts) of the valid rows, per field with a vocabulary; a token may appear more
        than once (the counter adds them up). Counts values beyond a multi-valued field's slots on the tracker."""
        counted = []
        for position, field in enumerate(self.schema.fields):
            if field.hash_buckets is not None or self._treated[position]:
                continue
            if self._numeric[position]:
                tokens, counts = rows.numeric[position].tokens, rows.numeric[position].counts
            elif field.is_list:
                tokens, counts = self._count_multi(field, rows.columns[field.column])
            else:
                value_counts = pc.value_counts(rows.columns[field.column])
                tokens = value_counts.field("values")
                counts = value_counts.field("counts").to_numpy(zero_copy_only=False)
            tokens, counts = self._with_missing(field, tokens, np.asarray(counts, dtype=np.int64))
            counted.append((position, tokens, counts))
        return counted

    def _count_multi(self, field: schema_lib.FieldSpec, cells: pa.ChunkedArray):
        listed = split_list_cells(cells, field)
        if listed.truncated.any():
            self.tracker.values_truncated[field.name] += int(listed.truncated.sum())
        value_counts = pc.value_counts(listed.values)
        return value_counts.field("values"), value_counts.field("counts").to_numpy(zero_copy_only=False)

    # -- pass 2: encoding ---------------------------------------------------------------------------------------

    def encode(self, rows: ValidRows, lookups: "IdLookups") -> np.ndarray:
        """int32 `[rows, N + F + 1]`: the ids of every encoded column in `schema.field_names` order, the float32
        bits of the F float columns (`schema.float_column_names`), then the label."""
        block = np.empty((rows.num_rows, self.schema.num_record_columns + 1), dtype=np.int32)
        column = 0
        for position, field in enumerate(self.schema.fields):
            if self._treated[position]:
                if not field.is_float:
                    block[:, column] = numeric_lib.bucket_ids(rows.floats[position], lookups.boundaries[field.name])
                    column += 1
                continue
            if self._numeric[position]:
                numeric = rows.numeric[position]
                block[:, column] = lookups.ids_of_tokens(position, numeric.tokens)[_indices(numeric.cells)]
                column += 1
                continue
            cells = rows.columns[field.column]
            if not field.is_list and lookups.per_row(position):
                block[:, column] = lookups.ids_of_tokens(position, cells)
                column += 1
                continue
            if field.is_list:
                listed = split_list_cells(cells, field)
                max_values = cast(int, field.max_values)
                slot_ids = np.full((rows.num_rows, max_values), -1 if field.kind == schema_lib.BAG else 0, np.int32)
                slot_ids[listed.rows, listed.slots] = lookups.ids_of_list_values(position, listed.values)
                block[:, column:column + max_values] = slot_ids
                column += max_values
                continue
            encoded = pc.dictionary_encode(cells)
            dictionary, indices = _dictionary(encoded), _indices(encoded)
            block[:, column] = lookups.ids_of_tokens(position, dictionary)[indices]
            column += 1
        for field in self.schema.embedded_fields + self.schema.dense_fields:
            block[:, column] = numeric_lib.float_bits(rows.floats[self.schema.fields.index(field)])
            column += 1
        block[:, column] = rows.labels
        return block


class IdLookups:
    """Token -> id maps of every field: vocabulary files (id = 1 + line, 0 for anything else) or hash buckets.

    Small vocabularies are looked up by Arrow (`index_in`, which builds its hash table of the vocabulary at every
    call: cheap below `PER_ROW_LIMIT` tokens, so rows are looked up directly); larger ones through a Python dict
    built once, applied to the distinct values of a block only.

    Args:
        schema: the schema.
        vocabularies: {field name: tokens in id order} for every field with a vocabulary.
        boundaries: {field name: bucket boundaries} of the bucketized numeric fields (pass 1's, or the schema's).

    Example:
        >>> lookups = IdLookups(schema, {"user": ["u1", "u2"]})  # doctest: +SKIP
    """

    def __init__(self, schema: schema_lib.Schema, vocabularies: Mapping[str, Sequence[str]],
                 boundaries: Optional[Mapping[str, Sequence[float]]] = None):
        self.schema = schema
        self.boundaries = dict(boundaries or {})
        self._vocabularies = {}  # position -> Arrow array of the tokens (for index_in)
        self._ids: Dict[int, Dict[str, int]] = {}  # position -> {token: id}, built when needed
        self._token_lists = {}
        self._missing_ids = []
        for position, field in enumerate(schema.fields):
            if field.treatment is not None:
                missing = 0
            elif field.hash_buckets is not None:
                missing = (0 if field.missing_token is None
                           else int(_hash_ids([field.missing_token], field.hash_buckets)[0]))
            else:
                tokens = list(vocabularies[field.name])
                self._token_lists[position] = tokens
                self._vocabularies[position] = pa.array(tokens, type=pa.string())
                missing = (tokens.index(field.missing_token) + 1
                           if field.missing_token is not None and field.missing_token in tokens else 0)
            self._missing_ids.append(missing)

    def per_row(self, position: int) -> bool:
        """Whether rows of this field are best looked up directly (a small vocabulary), not their distinct values."""
        return position in self._vocabularies and len(self._vocabularies[position]) <= PER_ROW_LIMIT

    def _token_ids(self, position: int) -> Dict[str, int]:
        if position not in self._ids:
            self._ids[position] = {token: index for index, token in enumerate(self._token_lists[position], start=1)}
        return self._ids[position]

    def ids_of_tokens(self, position: int, tokens: pa.Array) -> np.ndarray:
        """int32 ids of an array of (transformed) tokens of a single-valued field; "" (MISSING) is missing."""
        field = self.schema.fields[position]
        missing = self._missing_ids[position]
        if field.hash_buckets is not None:
            return _hash_ids_with_missing(tokens.to_pylist(), field.hash_buckets, missing)
        if len(self._vocabularies[position]) > PER_ROW_LIMIT:
            known = self._token_ids(position)
            return np.fromiter((missing if token == MISSING else known.get(token, 0) for token in tokens.to_pylist()),
                               dtype=np.int32, count=len(tokens))
        found = pc.index_in(tokens, value_set=self._vocabularies[position])
        ids = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32) + 1
        if missing:
            ids[pc.equal(tokens, MISSING).to_numpy(zero_copy_only=False)] = missing
        return ids

    def ids_of_list_values(self, position: int, values: pa.Array) -> np.ndarray:
        """int32 ids of a list field's values (`split_list_cells`: no missing among them), looked up once per
        distinct value."""
        field = self.schema.fields[position]
        encoded = pc.dictionary_encode(values)
        distinct = encoded.dictionary.to_pylist()
        ids: np.ndarray
        if field.hash_buckets is not None:
            ids = _hash_ids(distinct, field.hash_buckets)
        else:
            known = self._token_ids(position)
            ids = np.fromiter((known.get(token, 0) for token in distinct), dtype=np.int32, count=len(distinct))
        return ids[encoded.indices.to_numpy(zero_copy_only=False)]


def _hash_ids(tokens: Sequence[str], hash_buckets: int) -> np.ndarray:
    from tf_multiembed.data.shards import hash_bucket_ids

    return hash_bucket_ids(tokens, hash_buckets).astype(np.int32)


def _hash_ids_with_missing(tokens: Sequence[str], hash_buckets: int, missing_id: int) -> np.ndarray:
    ids = np.full(len(tokens), missing_id, dtype=np.int32)
    present = [index for index, token in enumerate(tokens) if token != MISSING]
    if present:
        ids[present] = _hash_ids([tokens[index] for index in present], hash_buckets)
    return ids
