"""Readers of typed, columnar inputs: Parquet files, and TFRecord files of `tf.train.Example` records.

Columns (Parquet) and features (tf.Example) are named by the schema's `column` of each field, its label column and
its time column; others are ignored. Values become text cells by the rules of `typed.py`, so the schema applies to
them exactly as to CSV cells. Rows are numbered from 1 in each file (Parquet rows, TFRecord records): bad input is
reported as `file:number: reason`, like a line of a CSV file.

- Parquet: read in record batches (bounded memory) by Arrow; a file lacking a column the schema uses is an error
  naming the file and the columns; a 0-byte file is an empty file (skipped and listed, as for CSV).
- TFRecord (uncompressed): read in batches of records by `tf.data.TFRecordDataset` and parsed by
  `tf.io.parse_example`; each feature's type (bytes, int64, float) is taken from the first record of the file that
  has it. A record that is not a
  `tf.train.Example`, or whose feature has another type, is found by parsing that batch record by record and skipped
  as "bad_record" (the message names the record); a missing feature is an empty cell. A feature the schema uses
  that no record of a file has is an error naming the feature and the file (as a Parquet file lacking a column),
  raised at the first batch for the label feature (else every record would be skipped as a bad label). A truncated
  or corrupt file is an error naming the last record read before the damage.
"""

import pathlib
import re
from typing import TYPE_CHECKING, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import pyarrow as pa

from tf_multiembed.data.quality import BadInputError, BadInputTracker
from tf_multiembed.data.readers.blocks import ColumnBlock, rows_from_block
from tf_multiembed.data.readers.delimited import RowChunk, expand_paths
from tf_multiembed.data.readers.lines import file_digest
from tf_multiembed.data.readers.typed import column_texts, value_text

if TYPE_CHECKING:  # TensorFlow is imported where a reader needs it
    import tensorflow as tf

DEFAULT_BATCH_ROWS = 65536
DEFAULT_BATCH_RECORDS = 8192


def _finish_block(path: str, texts: Dict[str, pa.Array], bad: List[Tuple[int, str, str]], first_row: int,
                  num_rows: int, input_bytes: int) -> ColumnBlock:
    """A block of `num_rows` rows numbered from `first_row`, without the rows in `bad` (each rejected once, for its
    first problem in column order)."""
    line_numbers = np.arange(first_row, first_row + num_rows, dtype=np.int64)
    rejected: Dict[int, Tuple[str, str]] = {}
    for row, reason, detail in bad:
        rejected.setdefault(row, (reason, detail))
    columns = {name: pa.chunked_array([array]) for name, array in texts.items()}
    if rejected:
        keep = np.ones(num_rows, dtype=bool)
        keep[list(rejected)] = False
        mask = pa.array(keep)
        columns = {name: array.filter(mask) for name, array in columns.items()}
        line_numbers = line_numbers[keep]
    return ColumnBlock(path, columns, line_numbers,
                       sorted((first_row + row, reason, detail) for row, (reason, detail) in rejected.items()),
                       input_bytes)


def _op_message(error: "tf.errors.OpError") -> str:
    """A TensorFlow error's message on one line, without the function-node and op decorations."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", error.message)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text, flags=re.DOTALL)
    text = re.sub(r"' failed with .*$", "", text, flags=re.DOTALL)  # "truncated record at 22638' failed with ..."
    return " ".join(text.split())


class _ColumnarReader:
    """What the Parquet and TFRecord readers share: paths, columns, `read` as rows, file bookkeeping."""

    def __init__(self, paths, required_columns: Sequence[str], separators: Optional[Mapping[str, str]] = None):
        self.paths = expand_paths(paths)
        self.required_columns = tuple(required_columns)
        if not self.required_columns:
            raise ValueError(f"{type(self).__name__}: no columns to read.")
        self.separators = dict(separators or {})

    def input_files(self) -> List[pathlib.Path]:
        """The files this reader reads (for cache keys)."""
        return list(self.paths)

    def read(self, tracker: BadInputTracker) -> Iterator[RowChunk]:
        """The blocks as `RowChunk`s of text cells (for callers that want rows, e.g. serving examples)."""
        for block in self.read_blocks(tracker):
            names, rows = rows_from_block(block)
            yield RowChunk(block.path, names, list(block.line_numbers), rows, block.rejected)

    def read_blocks(self, tracker: BadInputTracker, digests: Optional[dict] = None) -> Iterator[ColumnBlock]:
        """Yields `ColumnBlock`s of every file in turn; counts rows, missing and empty files on `tracker`; with
        `digests`, stores each file's sha256 there."""
        for path in self.paths:
            if not path.is_file():
                tracker.missing_file(str(path))
                continue
            tracker.files_read.append(str(path))
            rows = 0
            for block in self._file_blocks(path):
                rows += block.num_lines
                tracker.count_lines(block.num_lines)
                yield block
            if rows == 0:
                tracker.empty_file(str(path))
            if digests is not None:
                digests[str(path)] = file_digest(path)

    def _texts(self, path, column: str, values) -> Tuple[pa.Array, List[Tuple[int, str, str]]]:
        try:
            return column_texts(values, f"column {column!r}", self.separators.get(column))
        except ValueError as error:  # a column type the rules do not cover
            raise ValueError(f"{path}: {error}") from None

    def _file_blocks(self, path: pathlib.Path) -> Iterator[ColumnBlock]:
        raise NotImplementedError


class ParquetReader(_ColumnarReader):
    """Reads Parquet files (one, a list, or glob patterns) in record batches.

    Args:
        paths: files or glob patterns.
        required_columns: the columns to read (label, fields, time column).
        separators: {column: separator} of multi-valued fields (list columns are joined with it).
        batch_rows: rows per block.

    Example:
        >>> reader = ParquetReader("clicks-*.parquet", ["clicked", "user", "price"])  # doctest: +SKIP
        >>> next(reader.read_blocks(BadInputTracker())).num_rows  # doctest: +SKIP
    """

    def __init__(self, paths, required_columns: Sequence[str], separators: Optional[Mapping[str, str]] = None,
                 batch_rows: int = DEFAULT_BATCH_ROWS):
        super().__init__(paths, required_columns, separators)
        self.batch_rows = int(batch_rows)

    def _file_blocks(self, path: pathlib.Path) -> Iterator[ColumnBlock]:
        from pyarrow import parquet

        if path.stat().st_size == 0:  # an empty file: no rows (read_blocks lists it), as for CSV and TFRecord
            return
        try:
            file = parquet.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise ValueError(f"{path}: not a readable Parquet file: {error}") from None
        names = file.schema_arrow.names
        missing = [column for column in self.required_columns if column not in names]
        if missing:
            raise BadInputError(f"{path}: the Parquet file lacks the columns {missing} that the schema uses; it has "
                             f"{names}.")
        first_row, size, total = 1, path.stat().st_size, max(file.metadata.num_rows, 1)
        for batch in file.iter_batches(batch_size=self.batch_rows, columns=list(self.required_columns)):
            texts, bad = {}, []
            for column in self.required_columns:
                texts[column], column_bad = self._texts(path, column, batch.column(column))
                bad.extend(column_bad)
            yield _finish_block(str(path), texts, bad, first_row, batch.num_rows, size * batch.num_rows // total)
            first_row += batch.num_rows


class TFRecordReader(_ColumnarReader):
    """Reads TFRecord files of `tf.train.Example` records (one, a list, or glob patterns) in batches of records.

    Args:
        paths: files or glob patterns (uncompressed TFRecord).
        required_columns: the features to read (label, fields, time column).
        separators: {feature: separator} of multi-valued fields (a feature's values are joined with it).
        batch_records: records per block.
        label_column: the label feature (one of `required_columns`): a first batch of records without it is an
            error naming it and the file, instead of every record skipped as a bad label.

    Example:
        >>> reader = TFRecordReader("train-*.tfrecord", ["label", "user", "price"])  # doctest: +SKIP
    """

    def __init__(self, paths, required_columns: Sequence[str], separators: Optional[Mapping[str, str]] = None,
                 batch_records: int = DEFAULT_BATCH_RECORDS, label_column: Optional[str] = None):
        super().__init__(paths, required_columns, separators)
        self.batch_records = int(batch_records)
        self.label_column = label_column

    def _file_blocks(self, path: pathlib.Path) -> Iterator[ColumnBlock]:
        import tensorflow as tf

        kinds: Dict[str, str] = {}
        seen: Set[str] = set()  # the feature names of the records parsed by _learn_kinds
        batches = iter(tf.data.TFRecordDataset(str(path), buffer_size=1 << 20).batch(self.batch_records))
        first_row = 1
        while True:
            try:
                records = next(batches).numpy()
            except StopIteration:
                self._check_features(path, seen, first_row - 1)
                return
            except tf.errors.OpError as error:  # a truncated or corrupt file (checksums, lengths)
                good = self._readable_records(path, first_row - 1)
                raise BadInputError(f"{path}: cannot read the file after record {good}: {_op_message(error)} (a "
                                    f"truncated or corrupt file; replace it, or leave it out of the inputs).") from None
            self._learn_kinds(records, kinds, seen)
            if first_row == 1 and seen and self.label_column is not None and self.label_column not in seen:
                raise BadInputError(
                    f"{path}: no record among the first {len(records)} has the label feature {self.label_column!r} "
                    f"(its records have {sorted(seen)}); name the label feature in the schema's label column.")
            try:
                block = self._parsed_block(path, records, kinds, first_row)
            except (tf.errors.InvalidArgumentError, UnicodeDecodeError):  # (the error text may hold the bad bytes)
                block = self._record_by_record(path, records, kinds, first_row)
            block.input_bytes = sum(len(record) + 16 for record in records)  # 16 bytes of TFRecord framing each
            yield block
            first_row += len(records)

    @staticmethod
    def _readable_records(path: pathlib.Path, start: int) -> int:
        """How many records of the file can be read (at least `start`: those before the failed batch)."""
        import tensorflow as tf

        good = start
        try:
            for _ in tf.data.TFRecordDataset(str(path)).skip(start):
                good += 1
        except tf.errors.OpError:
            pass
        return good

    def _check_features(self, path: pathlib.Path, seen: Set[str], num_records: int) -> None:
        """Refuses a file none of whose records has a feature the schema uses (as Parquet refuses a missing column);
        a file without records, or without any readable tf.train.Example, is left to the empty-file and bad-record
        accounting."""
        missing = [column for column in self.required_columns if column not in seen]
        if missing and seen:
            raise BadInputError(f"{path}: none of its {num_records} records has the features {missing} that the "
                                f"schema uses; its records have {sorted(seen)}. Fix the schema's column names, or "
                                f"leave the file out of the inputs.")

    def _learn_kinds(self, records, kinds: Dict[str, str], seen: Optional[Set[str]] = None) -> None:
        """Sets the kind ("bytes_list", "int64_list", "float_list") of each wanted feature not yet known, from the
        first record of `records` that has it; adds the feature names of the records it parses to `seen`."""
        if len(kinds) == len(self.required_columns):
            return
        import tensorflow as tf

        for record in records:
            try:
                features = tf.train.Example.FromString(record).features.feature
            except Exception:  # noqa: BLE001  (protobuf's DecodeError; the block parse reports the record)
                continue
            if seen is not None:
                seen.update(features.keys())
            for column in self.required_columns:
                if column not in kinds and column in features:
                    kind = features[column].WhichOneof("kind")
                    if kind is not None:
                        kinds[column] = kind
            if len(kinds) == len(self.required_columns):
                return

    def _parsed_block(self, path, records, kinds: Dict[str, str], first_row: int) -> ColumnBlock:
        import tensorflow as tf

        dtypes = {"bytes_list": tf.string, "int64_list": tf.int64, "float_list": tf.float32}
        spec = {column: tf.io.RaggedFeature(dtypes[kinds.get(column, "bytes_list")], row_splits_dtype=tf.int64)
                for column in self.required_columns}
        parsed = tf.io.parse_example(tf.constant(records, dtype=tf.string), spec)
        texts, bad = {}, []
        for column in self.required_columns:
            ragged = parsed[column]
            flat = ragged.flat_values.numpy()
            flat = pa.array(list(flat), type=pa.binary()) if flat.dtype == object else pa.array(flat)
            values = pa.ListArray.from_arrays(pa.array(ragged.row_splits.numpy().astype(np.int32)), flat)
            texts[column], column_bad = self._texts(path, column, values)
            bad.extend(column_bad)
        return _finish_block(str(path), texts, bad, first_row, len(records), 0)

    def _record_by_record(self, path, records, kinds: Dict[str, str], first_row: int) -> ColumnBlock:
        """The slow, exact path of a batch holding a record `parse_example` refused."""
        import tensorflow as tf

        cells: Dict[str, List] = {column: [] for column in self.required_columns}
        bad: List[Tuple[int, str, str]] = []
        for row, record in enumerate(records):
            try:
                features = tf.train.Example.FromString(record).features.feature
            except Exception as error:  # noqa: BLE001  (protobuf's DecodeError)
                bad.append((row, "bad_record", f"not a tf.train.Example: {error}"))
                for column in self.required_columns:
                    cells[column].append("")
                continue
            for column in self.required_columns:
                feature = features.get(column)
                kind = feature.WhichOneof("kind") if feature is not None else None
                values = list(getattr(feature, kind).value) if kind is not None else []
                if kind is not None and column in kinds and kind != kinds[column]:
                    bad.append((row, "bad_record", f"feature {column!r} is a {kind}, expected a {kinds[column]} as in "
                                                   f"the file's first records"))
                converted = [value_text(value) for value in values]
                for _text, detail in converted:
                    if detail is not None:
                        bad.append((row, "bad_encoding", f"column {column!r}: {detail}"))
                texts = [text or "" for text, _ in converted]
                separator = self.separators.get(column)
                if separator is not None:
                    cells[column].append(separator.join(texts))
                else:
                    if len(texts) > 1:
                        bad.append((row, "multiple_values", f"column {column!r}: {len(texts)} values in a "
                                                            f"single-valued field"))
                    cells[column].append(texts[0] if texts else "")
        bad.sort(key=lambda entry: entry[0])  # the first problem of a row is the one reported
        arrays = {column: pa.array(values, type=pa.string()) for column, values in cells.items()}
        return _finish_block(str(path), arrays, bad, first_row, len(records), 0)
