"""The streaming two-pass build: count tokens, build vocabularies, encode rows, write split shards, cached.

Memory does not grow with the number of rows: pass 1 holds one counter per field (it grows with the number of
distinct values), pass 2 holds the vocabularies and one chunk of rows, and rows go to disk as they are encoded. The
split step gathers rows from the encoded file in bounded blocks; the random split's permutation (8 bytes per row) is
built in a file-backed memory map, and the time split's ordering of a time column that is not already sorted is an
in-memory argsort (16 bytes per row), the two places where anything per row exists.

Output folder (`<cache_dir>/<schema name>-<key>/`):

- `manifest.json`: schema, settings, input fingerprints, field names, vocabulary sizes, shards, ingest report;
- `vocab/<field>.txt`: one vocabulary per encoded column (`vocabulary.py`);
- `shards/<split>-NNNNN.npy`: int32 `[rows, N + 1]`, the N field ids then the 0/1 label, rows in split order.

The key hashes the inputs (path, size, modification time) and every setting that changes the output, so a second
run with the same inputs and settings reuses the folder; the manifest is written last and the folder is renamed
into place only when complete, so an interrupted build is never reused.
"""

import collections
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import splits as splits_lib
from tf_multiembed.data import vocabulary as vocabulary_lib
from tf_multiembed.data.quality import BadInputTracker, IngestReport
from tf_multiembed.data.records import MISSING, ParsedRows, RecordParser, make_reader

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
VOCAB_DIR_NAME = "vocab"
SHARD_DIR_NAME = "shards"
ID_DTYPE = np.dtype("<i4")
DEFAULT_ROWS_PER_SHARD = 1_000_000
_BLOCK_ROWS = 1 << 15  # rows per read-and-write block of the split step

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """Everything besides the schema and the inputs that changes a build's output (part of the cache key)."""

    split: str = splits_lib.RANDOM_SPLIT
    seed: int = 0
    split_fractions: Tuple[float, float, float] = splits_lib.DEFAULT_FRACTIONS
    strict: bool = False
    max_skipped_fraction: float = 0.01
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD

    def __post_init__(self):
        if self.split not in splits_lib.SPLIT_KINDS:
            raise ValueError(f"`split` must be one of {list(splits_lib.SPLIT_KINDS)}, got {self.split!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {self.seed!r}.")
        object.__setattr__(self, "split_fractions", splits_lib.check_fractions(self.split_fractions))
        if not 0.0 <= float(self.max_skipped_fraction) <= 1.0:
            raise ValueError(f"`max_skipped_fraction` must lie in [0, 1], got {self.max_skipped_fraction!r}.")
        if isinstance(self.rows_per_shard, bool) or not isinstance(self.rows_per_shard, int) \
                or self.rows_per_shard < 1:
            raise ValueError(f"`rows_per_shard` must be a positive integer, got {self.rows_per_shard!r}.")


# ----------------------------------------------------------------------------------------------------------------
# .npy files written as a stream: header first (the row count is known), then rows appended.

def npy_header_bytes(dtype: np.dtype, shape: Tuple[int, ...]) -> bytes:
    """The .npy header of a C-ordered array (so its data can be appended as raw bytes)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


class NpyStreamWriter:
    """Writes a `[num_rows, ...]` .npy file block by block; checks that exactly `num_rows` rows arrive."""

    def __init__(self, path, dtype, shape: Tuple[int, ...]):
        self.path = pathlib.Path(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        self.rows_written = 0
        header = npy_header_bytes(self.dtype, self.shape)
        self.header_bytes = len(header)
        self._handle = open(self.path, "wb")
        self._handle.write(header)

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or self.rows_written + len(block) > self.shape[0]:
            raise ValueError(f"{self.path}: block of shape {block.shape} does not fit the declared shape "
                             f"{self.shape} after {self.rows_written} rows.")
        self._handle.write(block.tobytes())
        self.rows_written += len(block)

    def close(self, check: bool = True) -> None:
        """Closes the file; with `check`, fails unless exactly the declared rows were written."""
        self._handle.close()
        if check and self.rows_written != self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows_written} rows written, {self.shape[0]} declared.")


class NpyRowReader:
    """Reads rows of a C-ordered .npy file with positional reads (no memory map).

    A memory map would keep every page it touches in the resident set, and random reads through one can map far
    more than the rows read (the kernel maps whole neighbourhoods of a faulting page); explicit reads keep the memory
    of the split step at one block whatever the file size.
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self._handle = open(self.path, "rb")
        version = np.lib.format.read_magic(self._handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        self.shape, fortran_order, self.dtype = read_header(self._handle)
        if fortran_order:
            raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported.")
        self.offset = self._handle.tell()
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def _read(self, size: int, offset: int) -> bytes:
        if hasattr(os, "pread"):
            data = os.pread(self._handle.fileno(), size, offset)
        else:  # platforms without pread
            self._handle.seek(offset)
            data = self._handle.read(size)
        if len(data) != size:
            raise ValueError(f"{self.path}: truncated ({len(data)} of {size} bytes at offset {offset}).")
        return data

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Rows `start:stop`."""
        data = self._read((stop - start) * self.row_bytes, self.offset + start * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape((stop - start,) + tuple(self.shape[1:]))

    def read_rows(self, indices: np.ndarray) -> np.ndarray:
        """Rows at `indices`, in that order (read in file order, one read per row)."""
        indices = np.asarray(indices, dtype=np.int64)
        by_position = np.argsort(indices, kind="stable")
        offsets = (self.offset + indices[by_position] * self.row_bytes).tolist()
        data = b"".join([self._read(self.row_bytes, offset) for offset in offsets])
        rows = np.empty((len(indices),) + tuple(self.shape[1:]), dtype=self.dtype)
        rows[by_position] = np.frombuffer(data, dtype=self.dtype).reshape(rows.shape)
        return rows

    def close(self) -> None:
        self._handle.close()


# ----------------------------------------------------------------------------------------------------------------
# Pass 1: counting.

def count_tokens(schema: schema_lib.Schema, reader, tracker: BadInputTracker,
                 parse_time: bool = False) -> List[collections.Counter]:
    """Pass 1: occurrences of every token, per schema field (multi-valued slots share one counter).

    Example:
        >>> counts = count_tokens(schema, make_reader(schema, "train.txt"), BadInputTracker())  # doctest: +SKIP
    """
    parser = RecordParser(schema, tracker, parse_time=parse_time)
    counters = [collections.Counter() for _ in schema.fields]
    for chunk in reader.read(tracker):
        parsed = parser.parse(chunk)
        for field, counter, tokens in zip(schema.fields, counters, parsed.tokens):
            counter.update(itertools.chain.from_iterable(tokens)
                           if field.kind == schema_lib.MULTI_CATEGORICAL else tokens)
    for field, counter in zip(schema.fields, counters):
        missing = counter.pop(MISSING, 0)
        if missing and field.missing_token is not None:
            counter[field.missing_token] += missing
    return counters


# ----------------------------------------------------------------------------------------------------------------
# Pass 2: encoding.

class RowEncoder:
    """Encodes parsed rows into int32 `[rows, N + 1]` blocks (field ids in schema order, then the label).

    Example:
        >>> encoder = RowEncoder(schema, {"user": ["u1", "u2"]})  # doctest: +SKIP
        >>> encoder.encode(parsed_rows)  # doctest: +SKIP
    """

    def __init__(self, schema: schema_lib.Schema, vocabularies: Dict[str, Sequence[str]]):
        self.schema = schema
        self._ids = []
        for field in schema.fields:
            ids = vocabulary_lib.token_ids(vocabularies[field.name])
            if field.missing_token is not None and field.missing_token in ids:
                ids[MISSING] = ids[field.missing_token]
            self._ids.append(ids)

    def encode(self, parsed: ParsedRows) -> np.ndarray:
        num_rows = parsed.num_rows
        block = np.empty((num_rows, self.schema.num_fields + 1), dtype=ID_DTYPE)
        column = 0
        for field, ids, tokens in zip(self.schema.fields, self._ids, parsed.tokens):
            if field.kind == schema_lib.MULTI_CATEGORICAL:
                for slot in range(field.max_values):
                    block[:, column] = np.fromiter(
                        (ids.get(values[slot], 0) if len(values) > slot else 0 for values in tokens),
                        dtype=ID_DTYPE, count=num_rows)
                    column += 1
            else:
                block[:, column] = np.fromiter(map(ids.get, tokens, itertools.repeat(0, num_rows)),
                                               dtype=ID_DTYPE, count=num_rows)
                column += 1
        block[:, column] = np.asarray(parsed.labels, dtype=ID_DTYPE)
        return block


def encode_rows(schema: schema_lib.Schema, reader, vocabularies: Dict[str, Sequence[str]], num_rows: int,
                encoded_path, times_path=None, strict: bool = False) -> BadInputTracker:
    """Pass 2: encodes every valid row, in file order, into `encoded_path` (.npy int32 `[num_rows, N + 1]`), and
    the time column into `times_path` (.npy float64) when given. Returns the pass's tracker.

    Raises:
        RuntimeError: when the inputs do not give the `num_rows` valid rows pass 1 counted (a file changed).
    """
    tracker = BadInputTracker(strict=strict, max_examples=0)
    parser = RecordParser(schema, tracker, parse_time=times_path is not None)
    encoder = RowEncoder(schema, vocabularies)
    encoded = NpyStreamWriter(encoded_path, ID_DTYPE, (num_rows, schema.num_fields + 1))
    times = NpyStreamWriter(times_path, np.float64, (num_rows,)) if times_path is not None else None
    try:
        for chunk in reader.read(tracker):
            parsed = parser.parse(chunk)
            if encoded.rows_written + parsed.num_rows > num_rows:
                raise RuntimeError(f"The inputs gave more valid rows in the encoding pass than the {num_rows} counted "
                                   f"before; were the input files changed during the build?")
            encoded.write(encoder.encode(parsed))
            if times is not None:
                times.write(np.asarray(parsed.times, dtype=np.float64))
    finally:
        encoded.close(check=False)
        if times is not None:
            times.close(check=False)
    if encoded.rows_written != num_rows:
        raise RuntimeError(f"The encoding pass found {encoded.rows_written} valid rows but the counting pass found "
                           f"{num_rows}; were the input files changed during the build?")
    return tracker


# ----------------------------------------------------------------------------------------------------------------
# Split step.

@dataclasses.dataclass
class ShardInfo:
    """One shard file: its name relative to the build folder, its rows and its .npy header size."""

    file: str
    rows: int
    header_bytes: int


def _write_shards(source: NpyRowReader, order: Optional[NpyRowReader], start: int, stop: int,
                  shard_dir: pathlib.Path, split_name: str, rows_per_shard: int) -> List[ShardInfo]:
    """Writes rows `order[start:stop]` (or `start:stop` in file order) of `source` into shards of a split, one
    bounded block at a time."""
    shards = []
    for shard_index, shard_start in enumerate(range(start, stop, rows_per_shard)):
        shard_stop = min(stop, shard_start + rows_per_shard)
        name = f"{split_name}-{shard_index:05d}.npy"
        writer = NpyStreamWriter(shard_dir / name, ID_DTYPE, (shard_stop - shard_start, source.shape[1]))
        for block_start in range(shard_start, shard_stop, _BLOCK_ROWS):
            block_stop = min(shard_stop, block_start + _BLOCK_ROWS)
            if order is None:
                writer.write(source.read_range(block_start, block_stop))
            else:
                writer.write(source.read_rows(order.read_range(block_start, block_stop)))
        writer.close()
        shards.append(ShardInfo(f"{SHARD_DIR_NAME}/{name}", shard_stop - shard_start, writer.header_bytes))
    return shards


def write_split_shards(encoded_path, output_dir, settings: BuildSettings, times_path=None,
                       work_dir=None) -> Dict[str, List[ShardInfo]]:
    """The split step: orders the encoded rows (random permutation or time) and writes each split's shards.

    Returns {split name: shards}. `work_dir` holds the temporary permutation file (default: `output_dir`).
    """
    output_dir = pathlib.Path(output_dir)
    shard_dir = output_dir / SHARD_DIR_NAME
    shard_dir.mkdir(parents=True, exist_ok=True)
    encoded = NpyRowReader(encoded_path)
    num_rows = encoded.shape[0]
    sizes = splits_lib.split_sizes(num_rows, settings.split_fractions)
    order_path = pathlib.Path(work_dir or output_dir) / "order.npy"
    order = None
    try:
        if settings.split == splits_lib.RANDOM_SPLIT:
            splits_lib.random_order(num_rows, settings.seed, path=str(order_path))  # unmapped when it returns
            order = NpyRowReader(order_path)
        elif times_path is not None:
            time_order = splits_lib.time_order(np.load(times_path))
            if time_order is not None:
                np.save(order_path, time_order)
                del time_order
                order = NpyRowReader(order_path)
        shards, start = {}, 0
        for split_name, size in zip(splits_lib.SPLIT_NAMES, sizes):
            shards[split_name] = _write_shards(encoded, order, start, start + size, shard_dir, split_name,
                                               settings.rows_per_shard)
            start += size
    finally:
        if order is not None:
            order.close()
        encoded.close()
        if order_path.exists():
            order_path.unlink()
    return shards


# ----------------------------------------------------------------------------------------------------------------
# Orchestration and cache.

def input_fingerprints(files: Sequence[pathlib.Path]) -> List[dict]:
    """(resolved path, size, modification time) per input file; missing files are marked as such."""
    fingerprints = []
    for file in files:
        path = pathlib.Path(file).resolve()
        if path.is_file():
            stat = path.stat()
            fingerprints.append({"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        else:
            fingerprints.append({"path": str(path), "missing": True})
    return fingerprints


def cache_key(schema: schema_lib.Schema, fingerprints: Sequence[dict], settings: BuildSettings) -> str:
    """A hex digest of the format version, schema, input fingerprints and settings."""
    payload = json.dumps({"format_version": FORMAT_VERSION, "schema": schema.to_dict(), "inputs": list(fingerprints),
                          "settings": dataclasses.asdict(settings)}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _build_into(folder: pathlib.Path, schema: schema_lib.Schema, reader, settings: BuildSettings) -> dict:
    parse_time = settings.split == splits_lib.TIME_SPLIT and schema.time_column is not None
    started = time.perf_counter()
    tracker = BadInputTracker(strict=settings.strict)
    counts = count_tokens(schema, reader, tracker, parse_time=parse_time)
    tracker.warn_if_skipped()
    tracker.check(settings.max_skipped_fraction)
    num_rows = tracker.rows_valid
    logger.info("pass 1 (count): %d rows in %.1f s", num_rows, time.perf_counter() - started)

    vocabularies = vocabulary_lib.build_schema_vocabularies(schema, counts)
    del counts
    empty = [field.name for field in schema.fields if not vocabularies[field.name]]
    if empty:
        logger.warning("fields %s have no value seen min_count times: every id of theirs is 0 (OOV)", empty)
    vocabulary_sizes = vocabulary_lib.write_schema_vocabularies(schema, vocabularies, folder / VOCAB_DIR_NAME)

    started = time.perf_counter()
    encoded_path, times_path = folder / "encoded.npy", (folder / "times.npy" if parse_time else None)
    second = encode_rows(schema, reader, vocabularies, num_rows, encoded_path, times_path)
    if (second.lines_read, second.rows_skipped) != (tracker.lines_read, tracker.rows_skipped):
        raise RuntimeError(f"The two passes read different inputs ({tracker.lines_read} vs {second.lines_read} lines); "
                           f"were the input files changed during the build?")
    del vocabularies
    logger.info("pass 2 (encode): %d rows in %.1f s", num_rows, time.perf_counter() - started)

    started = time.perf_counter()
    shards = write_split_shards(encoded_path, folder, settings, times_path=times_path)
    encoded_path.unlink()
    if times_path is not None:
        times_path.unlink()
    logger.info("split (%s): %s in %.1f s", settings.split, {k: sum(s.rows for s in v) for k, v in shards.items()},
                time.perf_counter() - started)
    report = IngestReport.from_tracker(tracker, {name: sum(shard.rows for shard in split_shards)
                                                 for name, split_shards in shards.items()})
    report.check_totals()
    return {"field_names": list(schema.field_names), "vocabulary_sizes": vocabulary_sizes,
            "splits": {name: [dataclasses.asdict(shard) for shard in split_shards]
                       for name, split_shards in shards.items()},
            "report": report.to_dict()}


def build(schema: schema_lib.Schema, input_paths, cache_dir, settings: BuildSettings = BuildSettings(),
          rebuild: bool = False) -> pathlib.Path:
    """Builds (or reuses) the prepared data of `input_paths` under `cache_dir`; returns its folder.

    Example:
        >>> folder = build(criteo_schema(), "train.txt.gz", "/tmp/cache")  # doctest: +SKIP
    """
    reader = make_reader(schema, input_paths)
    fingerprints = input_fingerprints(reader.input_files())
    key = cache_key(schema, fingerprints, settings)
    cache_dir = pathlib.Path(cache_dir)
    folder = cache_dir / f"{schema.name}-{key[:16]}"
    if (folder / MANIFEST_NAME).is_file() and not rebuild:
        logger.info("reusing prepared data at %s", folder)
        return folder
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=cache_dir))
    try:
        manifest = {"format_version": FORMAT_VERSION, "cache_key": key, "schema": schema.to_dict(),
                    "settings": dataclasses.asdict(settings), "inputs": fingerprints}
        manifest.update(_build_into(partial, schema, reader, settings))
        with open(partial / MANIFEST_NAME, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1)
        if rebuild and folder.exists():
            shutil.rmtree(folder)
        if not folder.exists():  # else another process finished the same build first: keep theirs
            os.replace(partial, folder)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return folder


def load_manifest(folder) -> dict:
    """The manifest of a finished build folder."""
    path = pathlib.Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a finished prepared-data folder (no {MANIFEST_NAME}).")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {manifest.get('format_version')} is not the supported "
                         f"{FORMAT_VERSION}; rebuild with rebuild=True.")
    return manifest
