"""The on-disk format of a prepared-data folder (format version 2), in one place.

This module is the contract between the builders that write a prepared-data folder (the columnar engine of
`build.py`; the Apache Beam pipeline of the `[beam]` extra) and `PreparedData.load`, which opens any folder written
to it. It needs only NumPy (and `google-crc32c` for the TFRecord checksums), so plain Python and Beam workers can
write the format without TensorFlow.

Layout of a folder:

    manifest.json                              written last: its presence marks a finished folder
    vocab/<column>.txt                         one vocabulary per encoded column that has one
    shards/<split>-SSSSS-of-NNNNN.tfrecord     the encoded rows of each split ("train", "validation", "test")

Vocabularies (unchanged from format 1): UTF-8, one token per line, "\\n" line ends; line k (0-based) is id k + 1;
id 0 is OOV (unseen, rarer than the field's minimum count, or missing without a `missing_token`). These are the
files `tf.keras.layers.StringLookup(vocabulary=path, num_oov_indices=1)` reads (vocabulary.py).

Hash-bucket fields (`FieldSpec.hash_buckets = B`) have no vocabulary file: the id of a token t is
`1 + tf.strings.to_hash_bucket_fast(t, B)` (FarmHash Fingerprint64 of the UTF-8 bytes, modulo B), the same op the
serving graph runs; a missing value is the field's `missing_token` if it has one (hashed like any token), else id 0.
Their vocabulary size is B + 1. `hash_bucket_ids` computes them offline.

Shards are TFRecord files (uncompressed; `tf.data.TFRecordDataset` and any TFRecord reader read them). Each record
holds a block of rows: its payload is a little-endian int32 array `[rows, N + 1]`, row-major, with the N field ids in
`field_names` order followed by the 0/1 label (`serialize_block` / `parse_block`); `rows` is the payload length
divided by `4 * (N + 1)`. Every record holds `rows_per_record` rows except possibly the last record of a shard
(at least one row). A split's rows are its shards in manifest order, each shard's records in file order: that is
the split's order (for the random split, the order of the reference permutation), which unshuffled reading keeps.
Shard names follow `shard_file_name`; readers take the list from the manifest.

Numeric fields with a treatment (docs/inputs.md): a bucketized field is an id column like any other (its `columns`
entry has `"boundaries"` and no vocabulary; size len(boundaries) + 2). Embedded and dense fields are float
columns: when there are any, each row is `[N ids, F float32 bit patterns (as int32), label]`, the manifest lists
them in `float_columns` and `record_format.payload` is `FLOAT_PAYLOAD_LAYOUT`. Folders without them are unchanged.

`manifest.json` is a JSON object (`write_manifest` writes and checks it, `load_manifest` reads and checks it):

    format                 "tf_multiembed.prepared_data"
    format_version         2
    cache_key              hex digest of what the folder was built from (null when the folder is not a cache entry)
    schema                 `Schema.to_dict()` of the schema it was built with
    field_names            the N encoded columns, in id order
    vocabulary_sizes       per encoded column: len(vocabulary) + 1, or hash_buckets + 1
    columns                per encoded column: {"name", "field", "vocabulary": "vocab/<name>.txt" or null,
                           "hash_buckets": B or null}
    min_counts             {field name: the resolved minimum count; null for hash-bucket fields}
    record_format          {"container": "tfrecord", "payload": "int32le[rows, N+1]: ids then label",
                            "rows_per_record": R}
    splits                 {split: {"rows": n, "shards": [{"file": "shards/...", "rows": r, "records": k}, ...]}}
                           for each of "train", "validation", "test" (an empty split has no shards)
    settings               at least "split" ("random" or "time"), "seed" and "split_fractions"; builders add theirs
    inputs                 per input file: {"path", "size", "mtime_ns", ...; "sha256" when the content was hashed}
    data_fingerprint       "sha256:<hex>" over the inputs' content digests (missing inputs left out), or null when
                           they were not hashed
    report                 `IngestReport.to_dict()`: rows read, kept, skipped by reason, written per split, timings
    created_by             {"engine": name, "package_version": version}
    numeric                (only with numeric treatments) {"bucketized": [{"name", "boundaries", "missing_rows"}],
                           "embedded"/"dense": [{"name", "normalization", "mean", "std", "log1p", "missing_rows"}]}
    float_columns          (only with embedded/dense fields) the F float columns after the ids, in record order

Example (a plain-Python writer):
    >>> writer = SplitWriter(folder, "train", num_rows=len(ids), num_fields=ids.shape[1])  # doctest: +SKIP
    >>> writer.write(ids, labels)  # doctest: +SKIP
    >>> shards = {"train": writer.close()}  # doctest: +SKIP
    >>> write_manifest(folder, schema=schema, field_names=..., ...)  # doctest: +SKIP
"""

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import struct
from typing import Any, BinaryIO, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, cast

import numpy as np

from tf_multiembed import types
from tf_multiembed.metadata import package_version

FORMAT_NAME = "tf_multiembed.prepared_data"
FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
VOCAB_DIR_NAME = "vocab"
SHARD_DIR_NAME = "shards"
SHARD_SUFFIX = ".tfrecord"
SPLIT_NAMES = ("train", "validation", "test")
ID_DTYPE = np.dtype("<i4")
PAYLOAD_LAYOUT = "int32le[rows, N+1]: ids then label"
FLOAT_PAYLOAD_LAYOUT = "int32le[rows, N+F+1]: ids, float32 bits of the F float columns, then label"
DEFAULT_ROWS_PER_RECORD = 1024
DEFAULT_ROWS_PER_SHARD = 1_000_000

_LENGTH = struct.Struct("<Q")
_CHECKSUM = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


# ----------------------------------------------------------------------------------------------------------------
# Records: blocks of rows.

def serialize_block(ids: np.ndarray, labels: np.ndarray) -> bytes:
    """The record payload of a block of rows: little-endian int32 `[rows, N + 1]`, ids then the 0/1 label.

    Args:
        ids: integer ids `[rows, N]` (0 <= id < 2**31).
        labels: 0/1 labels `[rows]`.

    Example:
        >>> payload = serialize_block(np.array([[1, 2]]), np.array([1]))
        >>> np.frombuffer(payload, "<i4").tolist()
        [1, 2, 1]
    """
    ids = np.asarray(ids)
    labels = np.asarray(labels)
    if ids.ndim != 2 or labels.shape != (ids.shape[0],) or ids.shape[0] == 0:
        raise ValueError(f"serialize_block: expected ids [rows, N] and labels [rows] with rows >= 1, got "
                         f"{ids.shape} and {labels.shape}.")
    block = np.empty((ids.shape[0], ids.shape[1] + 1), dtype=ID_DTYPE)
    block[:, :-1] = ids
    block[:, -1] = labels
    return block.tobytes()


def parse_block(payload: bytes, num_fields: int) -> Tuple[np.ndarray, np.ndarray]:
    """`(ids int32 [rows, N], labels int32 [rows])` of a record payload (views of it, read-only)."""
    row_bytes = ID_DTYPE.itemsize * (num_fields + 1)
    if not payload or len(payload) % row_bytes:
        raise ValueError(f"A record of {len(payload)} bytes is not a whole number of rows of {num_fields} ids and a "
                         f"label ({row_bytes} bytes each).")
    block = np.frombuffer(payload, dtype=ID_DTYPE).reshape(-1, num_fields + 1)
    return block[:, :num_fields], block[:, num_fields]


# ----------------------------------------------------------------------------------------------------------------
# TFRecord framing: uint64 length, masked CRC-32C of the length, data, masked CRC-32C of the data (little-endian).

def _masked_crc(data: bytes) -> int:
    import google_crc32c  # a C implementation; the pure-Python fallback would be far too slow for shards

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(payload: bytes) -> bytes:
    """One TFRecord record (header, payload, checksum) as bytes."""
    length = _LENGTH.pack(len(payload))
    return b"".join((length, _CHECKSUM.pack(_masked_crc(length)), payload, _CHECKSUM.pack(_masked_crc(payload))))


def read_tfrecord(path) -> Iterator[bytes]:
    """The payloads of a TFRecord file, with checksums verified; errors name the file and the record.

    Example:
        >>> for payload in read_tfrecord("shards/train-00000-of-00001.tfrecord"):  # doctest: +SKIP
        ...     ids, labels = parse_block(payload, num_fields=39)
    """
    with open(path, "rb") as handle:
        record = 0
        while True:
            header = handle.read(12)
            if not header:
                return
            record += 1
            if len(header) < 12:
                raise ValueError(f"{path}: record {record} is truncated (a header of {len(header)} of 12 bytes).")
            length_bytes, length_crc = header[:8], _CHECKSUM.unpack(header[8:])[0]
            if _masked_crc(length_bytes) != length_crc:
                raise ValueError(f"{path}: record {record}: the length checksum does not match (corrupt file).")
            length = _LENGTH.unpack(length_bytes)[0]
            payload = handle.read(length)
            footer = handle.read(4)
            if len(payload) < length or len(footer) < 4:
                raise ValueError(f"{path}: record {record} is truncated ({len(payload)} of {length} bytes).")
            if _masked_crc(payload) != _CHECKSUM.unpack(footer)[0]:
                raise ValueError(f"{path}: record {record}: the data checksum does not match (corrupt file).")
            yield payload


def shard_file_name(split: str, index: int, num_shards: int) -> str:
    """The name of shard `index` (0-based) of `num_shards`, relative to the folder.

    Example:
        >>> shard_file_name("train", 0, 4)
        'shards/train-00000-of-00004.tfrecord'
    """
    if split not in SPLIT_NAMES or not 0 <= index < num_shards:
        raise ValueError(f"shard_file_name: bad split {split!r} or index {index} of {num_shards}.")
    return f"{SHARD_DIR_NAME}/{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One shard file: its path relative to the folder, its rows and its records."""

    file: str
    rows: int
    records: int


def num_shards(num_rows: int, rows_per_shard: int) -> int:
    """Shards of a split of `num_rows` rows (0 for an empty split)."""
    return math.ceil(num_rows / rows_per_shard)


class SplitWriter:
    """Writes one split's rows, given in split order, as shards of `rows_per_shard` rows in records of
    `rows_per_record` rows.

    Args:
        folder: the prepared-data folder (shards go to its `shards/`).
        split: "train", "validation" or "test".
        num_rows: the split's rows (fixes the number of shards and their names); exactly these must be written.
        num_fields: N, the encoded columns.
        rows_per_shard: rows per shard file (the last one may hold fewer).
        rows_per_record: rows per record (the last record of a shard may hold fewer).

    Example:
        >>> writer = SplitWriter("/tmp/prepared", "test", num_rows=3, num_fields=2)  # doctest: +SKIP
        >>> writer.write(np.array([[1, 2], [3, 4], [5, 6]]), np.array([0, 1, 0]))  # doctest: +SKIP
        >>> writer.close()  # doctest: +SKIP
        [ShardInfo(file='shards/test-00000-of-00001.tfrecord', rows=3, records=1)]
    """

    def __init__(self, folder, split: str, num_rows: int, num_fields: int,
                 rows_per_shard: int = DEFAULT_ROWS_PER_SHARD, rows_per_record: int = DEFAULT_ROWS_PER_RECORD):
        for name, value, smallest in (("num_rows", num_rows, 0), ("num_fields", num_fields, 1),
                                      ("rows_per_shard", rows_per_shard, 1), ("rows_per_record", rows_per_record, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < smallest:
                raise ValueError(f"SplitWriter: `{name}` must be an integer >= {smallest}, got {value!r}.")
        self.folder = pathlib.Path(folder)
        self.split = split
        self.num_rows = int(num_rows)
        self.num_fields = int(num_fields)
        self.rows_per_shard = int(rows_per_shard)
        self.rows_per_record = int(rows_per_record)
        self.num_shards = num_shards(self.num_rows, self.rows_per_shard)
        self.rows_written = 0
        self.shards: List[ShardInfo] = []
        self._handle: Optional[BinaryIO] = None
        self._shard_rows = self._shard_records = 0
        self._pending: List[np.ndarray] = []  # rows of the current record, not yet written
        self._pending_rows = 0
        (self.folder / SHARD_DIR_NAME).mkdir(parents=True, exist_ok=True)

    def _open_shard(self) -> None:
        name = shard_file_name(self.split, len(self.shards), self.num_shards)
        self._handle = open(self.folder / name, "wb")
        self._shard_name, self._shard_rows, self._shard_records = name, 0, 0

    def _flush_record(self) -> None:
        block = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_rows = [], 0
        assert self._handle is not None  # a record is flushed into the open shard
        try:
            self._handle.write(frame_record(np.ascontiguousarray(block, dtype=ID_DTYPE).tobytes()))
        except OSError as error:  # name the shard (a full disk's write errors do not)
            raise OSError(error.errno, error.strerror, str(self.folder / self._shard_name)) from None
        self._shard_rows += len(block)
        self._shard_records += 1
        if self._shard_rows == self.rows_per_shard:
            self._close_shard()

    def _close_shard(self) -> None:
        assert self._handle is not None
        try:
            self._handle.close()
        except OSError as error:
            self._handle = None
            raise OSError(error.errno, error.strerror, str(self.folder / self._shard_name)) from None
        self._handle = None
        self.shards.append(ShardInfo(self._shard_name, self._shard_rows, self._shard_records))

    def write_rows(self, rows: np.ndarray) -> None:
        """Appends rows given as int32 `[rows, N + 1]` (ids, then the label)."""
        if rows.ndim != 2 or rows.shape[1] != self.num_fields + 1:
            raise ValueError(f"SplitWriter({self.split}): rows of shape {rows.shape}, expected [rows, "
                             f"{self.num_fields + 1}].")
        if self.rows_written + len(rows) > self.num_rows:
            raise ValueError(f"SplitWriter({self.split}): {self.rows_written + len(rows)} rows written, "
                             f"{self.num_rows} declared.")
        start = 0
        while start < len(rows):
            if self._handle is None:
                self._open_shard()
            room = min(self.rows_per_record - self._pending_rows,
                       self.rows_per_shard - self._shard_rows - self._pending_rows)
            piece = rows[start:start + room]
            self._pending.append(piece)
            self._pending_rows += len(piece)
            start += len(piece)
            if self._pending_rows == self.rows_per_record or \
                    self._shard_rows + self._pending_rows == self.rows_per_shard:
                self._flush_record()
        self.rows_written += len(rows)

    def write(self, ids: np.ndarray, labels: np.ndarray) -> None:
        """Appends rows given as ids `[rows, N]` and labels `[rows]`."""
        ids = np.asarray(ids)
        block = np.empty((len(ids), self.num_fields + 1), dtype=ID_DTYPE)
        block[:, :-1] = ids
        block[:, -1] = labels
        self.write_rows(block)

    def abort(self) -> None:
        """Closes the open shard file after a failure, without writing what is pending (the caller removes the
        folder)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError:  # its buffered tail may not fit on the disk either
                pass

    def close(self) -> List[ShardInfo]:
        """Writes the last record and shard; fails unless exactly `num_rows` rows were written."""
        if self._pending_rows:
            self._flush_record()
        if self._handle is not None:
            self._close_shard()
        if self.rows_written != self.num_rows:
            raise ValueError(f"SplitWriter({self.split}): {self.rows_written} rows written, {self.num_rows} "
                             f"declared.")
        return list(self.shards)


def describe_shard(folder, file: str, num_fields: int) -> ShardInfo:
    """The `ShardInfo` of an existing shard file (read through, checksums verified), for writers that do not count
    rows themselves (e.g. Beam's `WriteToTFRecord`)."""
    rows = records = 0
    for payload in read_tfrecord(pathlib.Path(folder) / file):
        rows += len(parse_block(payload, num_fields)[1])
        records += 1
    return ShardInfo(file, rows, records)


# ----------------------------------------------------------------------------------------------------------------
# Verifying a folder's shards against its manifest.

RECORD_FRAMING_BYTES = 16  # TFRecord: uint64 length, its masked CRC, and the data's masked CRC
FULL_VERIFY_BYTES = 256 << 20  # "auto" reads every record of folders up to this size (about a second)
VERIFY_MODES = ("auto", "sizes", "full")


class ShardError(ValueError):
    """A shard of a prepared-data folder that does not match its manifest (missing, truncated or damaged)."""


def shard_bytes(rows: int, records: int, num_fields: int) -> int:
    """The size of a shard of `rows` rows in `records` records: each record is `RECORD_FRAMING_BYTES` of framing
    and `4 * (N + 1)` bytes per row, whatever the rows per record.

    Example:
        >>> shard_bytes(rows=3, records=1, num_fields=2)
        52
    """
    return int(records) * RECORD_FRAMING_BYTES + int(rows) * ID_DTYPE.itemsize * (int(num_fields) + 1)


def _shard_error(folder: types.PathLike, file: str, problem: str) -> ShardError:
    return ShardError(f"{pathlib.Path(folder) / file}: {problem.rstrip('.')}; the prepared data is damaged. Prepare "
                      f"it again (prepare_dataset with rebuild=True, or the Beam pipeline), or restore the folder from "
                      f"a copy.")


def _read_shard(folder: types.PathLike, shard: Mapping[str, Any], num_fields: int, rows_per_record: int) -> None:
    """Reads every record of one shard: checksums, whole rows, at most `rows_per_record` rows each, and the
    manifest's record and row counts."""
    rows = records = 0
    try:
        for payload in read_tfrecord(pathlib.Path(folder) / shard["file"]):
            records += 1
            block_rows = len(parse_block(payload, num_fields)[1])
            if block_rows > rows_per_record:
                raise ValueError(f"record {records} holds {block_rows} rows, more than rows_per_record "
                                 f"{rows_per_record}")
            rows += block_rows
    except ValueError as error:
        problem = str(error)
        prefix = f"{pathlib.Path(folder) / shard['file']}: "
        raise _shard_error(folder, shard["file"], problem[len(prefix):] if problem.startswith(prefix)
                           else f"record {records + 1}: {problem}") from None
    if (rows, records) != (shard["rows"], shard["records"]):
        raise _shard_error(folder, shard["file"], f"{rows} rows in {records} records, the manifest says "
                                                  f"{shard['rows']} rows in {shard['records']} records")


def verify_shards(folder: types.PathLike, manifest: Mapping[str, Any], mode: str = "auto") -> str:
    """Checks a folder's shards against its (checked) manifest before anything trains on them; returns the check
    done ("sizes" or "full").

    Every shard must exist with the size its rows and records give (`shard_bytes`: one `stat` per shard, so the
    cost does not grow with the data). "full" also reads every record: the TFRecord checksums, whole rows, at most
    `rows_per_record` rows per record, and the manifest's record and row counts of each shard. "auto" is "full"
    when the shards total at most `FULL_VERIFY_BYTES`, else "sizes".

    Raises:
        ShardError: naming the first bad shard, what is wrong and what to do.
    """
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {list(VERIFY_MODES)}, got {mode!r}.")
    folder = pathlib.Path(folder)
    num_fields = record_columns(manifest)
    shards = [shard for split in SPLIT_NAMES for shard in manifest["splits"][split]["shards"]]
    total = 0
    for shard in shards:
        path = folder / shard["file"]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise _shard_error(folder, shard["file"], "missing") from None
        expected = shard_bytes(shard["rows"], shard["records"], num_fields)
        if size != expected:
            raise _shard_error(folder, shard["file"],
                               f"{size} bytes, but the manifest's {shard['rows']} rows in {shard['records']} records "
                               f"take {expected} bytes ({'truncated' if size < expected else 'bytes appended'})")
        total += size
    if mode == "sizes" or (mode == "auto" and total > FULL_VERIFY_BYTES):
        return "sizes"
    rows_per_record = int(manifest["record_format"]["rows_per_record"])
    for shard in shards:
        _read_shard(folder, shard, num_fields, rows_per_record)
    return "full"


def hash_bucket_ids(tokens: Sequence[str], hash_buckets: int) -> np.ndarray:
    """`1 + to_hash_bucket_fast(token, hash_buckets)` per token (int64); the offline twin of the serving graph's
    hashing (the same TensorFlow op, so the two agree by construction). Loads TensorFlow on first use.

    Example:
        >>> hash_bucket_ids(["a", "b"], 1000).tolist()  # doctest: +SKIP
        [940, 624]
    """
    import tensorflow as tf

    if len(tokens) == 0:
        return np.zeros((0,), dtype=np.int64)
    return tf.strings.to_hash_bucket_fast(tf.constant(list(tokens), dtype=tf.string), hash_buckets).numpy() + 1


# ----------------------------------------------------------------------------------------------------------------
# The manifest.

def content_fingerprint(digests: Sequence[Optional[str]]) -> Optional[str]:
    """"sha256:<hex>" over the inputs' content digests in order, or None when any input was not hashed."""
    if not digests or any(digest is None for digest in digests):
        return None
    return "sha256:" + hashlib.sha256("\n".join(cast(Sequence[str], digests)).encode("ascii")).hexdigest()


def _check(condition: bool, folder, message: str) -> None:
    if not condition:
        raise ValueError(f"{folder}: not a valid prepared-data folder (format {FORMAT_VERSION}): {message}")


def check_manifest(manifest: Mapping, folder) -> None:
    """Raises ValueError naming what is wrong when `manifest` does not follow the format (see the module doc)."""
    _check(manifest.get("format") == FORMAT_NAME, folder, f"`format` is {manifest.get('format')!r}, expected "
                                                          f"{FORMAT_NAME!r}.")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{folder}: format version {version} is not the supported {FORMAT_VERSION}; rebuild it "
                         f"(prepare_dataset(..., rebuild=True)).")
    required = ("cache_key", "schema", "field_names", "vocabulary_sizes", "columns", "min_counts", "record_format",
                "splits", "settings", "inputs", "data_fingerprint", "report", "created_by")
    missing = [key for key in required if key not in manifest]
    _check(not missing, folder, f"the manifest lacks {missing}.")
    names, sizes, columns = manifest["field_names"], manifest["vocabulary_sizes"], manifest["columns"]
    _check(len(names) == len(sizes) == len(columns) > 0, folder, "field_names, vocabulary_sizes and columns differ "
                                                                 "in length.")
    _check([column.get("name") for column in columns] == list(names), folder, "columns do not follow field_names.")
    for column, size in zip(columns, sizes):
        if column.get("boundaries") is not None:
            _check(size == len(column["boundaries"]) + 2, folder, f"column {column['name']!r}: vocabulary size "
                                                                  f"{size} != len(boundaries) + 2.")
        elif column.get("hash_buckets") is not None:
            _check(size == column["hash_buckets"] + 1, folder, f"column {column['name']!r}: vocabulary size {size} "
                                                               f"!= hash_buckets + 1.")
        else:
            _check(column.get("vocabulary") == f"{VOCAB_DIR_NAME}/{column['name']}.txt", folder,
                   f"column {column['name']!r} has neither a vocabulary file nor hash_buckets.")
    record_format = manifest["record_format"]
    payload = FLOAT_PAYLOAD_LAYOUT if manifest.get("float_columns") else PAYLOAD_LAYOUT
    _check(record_format.get("container") == "tfrecord" and record_format.get("payload") == payload
           and int(record_format.get("rows_per_record", 0)) >= 1, folder, f"unknown record_format {record_format}.")
    _check(sorted(manifest["splits"]) == sorted(SPLIT_NAMES), folder, f"splits must be {list(SPLIT_NAMES)}.")
    for split, entry in manifest["splits"].items():
        shards = entry.get("shards", [])
        _check(entry.get("rows") == sum(shard["rows"] for shard in shards), folder,
               f"split {split!r}: rows {entry.get('rows')} != the sum over its shards.")
    settings = manifest["settings"]
    _check(all(key in settings for key in ("split", "seed", "split_fractions")), folder,
           "settings need 'split', 'seed' and 'split_fractions'.")


def write_manifest(folder, *, schema, field_names: Sequence[str], vocabulary_sizes: Sequence[int],
                   hash_buckets: Mapping[str, int], min_counts: Mapping[str, Optional[int]],
                   splits: Mapping[str, Sequence[ShardInfo]], rows_per_record: int, settings: Mapping,
                   report: Mapping, inputs: Sequence[Mapping] = (), cache_key: Optional[str] = None,
                   engine: str = "tf_multiembed", check_files: bool = True,
                   extra: Optional[Mapping] = None,
                   numeric: Optional[Mapping[str, Sequence[Mapping]]] = None) -> pathlib.Path:
    """Writes `manifest.json` for a finished folder (last, atomically) and returns its path.

    Args:
        folder: the folder holding `vocab/` and `shards/`.
        schema: the `Schema` the data was built with.
        field_names: the N encoded columns in id order (`schema.field_names`).
        vocabulary_sizes: per encoded column, len(vocabulary) + 1 or hash_buckets + 1.
        hash_buckets: {encoded column: B} for hash-bucket columns (no vocabulary file).
        min_counts: {field name: resolved minimum count, None for hash-bucket fields}.
        splits: {split: its shards in order}; every split name present (empty list for an empty split).
        rows_per_record: rows per record (the last record of a shard may hold fewer).
        settings: at least "split", "seed", "split_fractions".
        report: `IngestReport.to_dict()`.
        inputs: per input file {"path", "size", "mtime_ns", "sha256", ...}.
        cache_key: the build's cache key, or None.
        engine: the writer's name, recorded in `created_by`.
        check_files: check that every vocabulary file has `vocabulary_size - 1` lines and every shard file exists.
        extra: more top-level entries (e.g. `vocabulary_growth` of a build grown from a base vocabulary).
        numeric: the statistics and boundaries of the numeric fields with a treatment (`numeric.py`), or None.
    """
    folder = pathlib.Path(folder)
    columns = []
    for name in field_names:
        field = next((f.name for f in schema.fields if name in f.output_names), None)
        buckets = hash_buckets.get(name)
        boundaries = next((entry["boundaries"] for entry in (numeric or {}).get("bucketized", [])
                           if entry["name"] == name), None)
        columns.append({"name": name, "field": field, "hash_buckets": buckets,
                        "vocabulary": None if buckets is not None or boundaries is not None
                        else f"{VOCAB_DIR_NAME}/{name}.txt"})
        if boundaries is not None:
            columns[-1]["boundaries"] = list(boundaries)
    digests = [entry.get("sha256") for entry in inputs if not entry.get("missing")]  # missing: skipped, no content
    manifest = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "cache_key": cache_key, "schema": schema.to_dict(),
        "field_names": list(field_names), "vocabulary_sizes": [int(size) for size in vocabulary_sizes],
        "columns": columns, "min_counts": dict(min_counts),
        "record_format": {"container": "tfrecord", "payload": PAYLOAD_LAYOUT, "rows_per_record": int(rows_per_record)},
        "splits": {split: {"rows": sum(shard.rows for shard in splits.get(split, ())),
                           "shards": [dataclasses.asdict(shard) for shard in splits.get(split, ())]}
                   for split in SPLIT_NAMES},
        "settings": dict(settings), "inputs": [dict(entry) for entry in inputs],
        "data_fingerprint": content_fingerprint(digests), "report": dict(report),
        "created_by": {"engine": engine, "package_version": package_version()},
        **dict(extra or {}),
    }
    if numeric:  # only with numeric treatments: the paper's manifests are unchanged
        float_columns = [entry["name"] for key in ("embedded", "dense") for entry in numeric.get(key, [])]
        manifest["numeric"] = {key: [dict(entry) for entry in entries] for key, entries in numeric.items()}
        if float_columns:
            manifest["float_columns"] = float_columns
            manifest["record_format"]["payload"] = FLOAT_PAYLOAD_LAYOUT
    check_manifest(manifest, folder)
    if check_files:
        for column, size in zip(columns, manifest["vocabulary_sizes"]):
            if column["vocabulary"] is not None:
                path = folder / column["vocabulary"]
                _check(path.is_file(), folder, f"the vocabulary file {column['vocabulary']} is missing.")
                lines = path.read_bytes().count(b"\n")
                _check(lines == size - 1, folder, f"{column['vocabulary']} has {lines} tokens, the vocabulary size "
                                                  f"{size} says {size - 1}.")
        for entry in manifest["splits"].values():
            for shard in entry["shards"]:
                _check((folder / shard["file"]).is_file(), folder, f"the shard file {shard['file']} is missing.")
    path = folder / MANIFEST_NAME
    temporary = folder / f".{MANIFEST_NAME}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def record_columns(manifest: Mapping) -> int:
    """Columns of a record row before the label: the N ids and the float columns (`float_columns`, if any)."""
    return len(manifest["field_names"]) + len(manifest.get("float_columns", ()))


def load_manifest(folder) -> Dict:
    """The checked manifest of a finished folder.

    Raises:
        FileNotFoundError: the folder has no manifest (not finished, or not a prepared-data folder).
        ValueError: the manifest does not follow this format (the message says what and how to fix it).
    """
    path = pathlib.Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a finished prepared-data folder (no {MANIFEST_NAME}).")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    check_manifest(manifest, folder)
    return manifest
