"""The columnar two-pass build: count tokens, build vocabularies, encode rows straight into split shards, cached.

Both passes read the inputs in blocks of rows (Arrow's multithreaded CSV reader, Parquet record batches, tf.Example
batches; `readers/`), applied to the schema with Arrow kernels (`records.py`), while the next block is read:

1. Pass 1 (count): per block and field, the counts of the distinct values (`value_counts`), merged across blocks by
   Arrow's hash aggregation in bounded memory (`counting.py`: spilled to disk in hash partitions past a budget).
   Bad lines are counted here and the skipped-share check runs before anything is written. Each input's sha256 is
   taken on the way (the data fingerprint, and the check that reuses a build).
   Numeric fields with a treatment get their statistics and quantile sample here instead (`numeric.py`).
2. Vocabularies (`vocab/<field>.txt`), or none for `hash_buckets` fields and numeric treatments.
3. The split order: the reference permutation for the random split (4 bytes per row, file-backed) and its inverse;
   nothing for a time split in file order; a stable argsort of the time column otherwise (16 bytes per row).
4. Pass 2 (encode): each block's ids by dictionary lookup, and its rows written at once towards their split: in file
   order straight into the shards, or, under a permutation, appended to buckets of consecutive split positions that
   the last step orders in memory one bucket at a time and writes as shards (`shards.py`, the format contract).

At most two reads of the input; memory holds a few blocks, the token counts (bounded) and the vocabularies.

Cache: the folder is `<cache_dir>/<schema name>-<key>`, the key a hash of the format, schema, settings and every
input's path, size and modification time. A finished folder is reused when its manifest matches; an input whose
change time or inode differs from the manifest's (an in-place edit with restored size and mtime) is hashed again and
the folder rebuilt unless its content is unchanged; so is a folder whose shards do not match its manifest
(`shards.verify_shards`). Builds run in `.<name>.partial-*` folders holding a lock; the
folders of dead builds are removed by the next build in the same cache directory.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
from typing import BinaryIO, Dict, List, Optional, Sequence, Tuple, cast

import numpy as np
import pyarrow as pa

from tf_multiembed.data import growth as growth_lib
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import shards as shards_lib
from tf_multiembed.data import space
from tf_multiembed.data import splits as splits_lib
from tf_multiembed.data import vocabulary as vocabulary_lib
from tf_multiembed.data.counting import DEFAULT_MEMORY_BYTES, TokenCounter
from tf_multiembed.data.numeric import NumericStatistics
from tf_multiembed.data.numeric import missing_rows as numeric_missing_rows
from tf_multiembed.data.quality import BadInputTracker, IngestReport
from tf_multiembed.data.readers.lines import DEFAULT_BLOCK_BYTES, file_digest
from tf_multiembed.data.records import BlockParser, IdLookups, make_reader
from tf_multiembed.settings import check_settings, setting

ENGINE = "tf_multiembed.columnar"
PROGRESS_SECONDS = 10.0
_MAX_BUCKET_FILES = 1024
_MIN_BUCKET_ROWS = 1 << 16
_PARTIAL_MARK = ".partial-"
_LOCK_NAME = ".lock"

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """Everything besides the schema and the inputs that changes a build's output (part of the cache key).

    The one declaration of the data build's settings: `prepare_dataset`'s keyword arguments and the Beam pipeline's
    settings (`BeamSettings`) and flags take their names, defaults and help from these fields (`settings.py`).
    """

    split: str = setting(str, splits_lib.RANDOM_SPLIT, "'random': the paper's seeded permutation; 'time': ordered "
                         "by the schema's time column, or file order without one.", choices=splits_lib.SPLIT_KINDS)
    seed: int = setting(int, 0, "Seed of the random split (the single-machine build: a seeded permutation; the Beam "
                        "pipeline: a hash of the seed, the file's base name and the line number).", lower_bound=0)
    split_fractions: Tuple[float, float, float] = setting(
        tuple, splits_lib.DEFAULT_FRACTIONS, "Train, validation and test shares (three numbers that sum to 1).",
        item_kind=float)
    strict: bool = setting(bool, False, "Fail at the first bad line or missing/empty input file instead of skipping "
                           "and counting it.")
    max_skipped_fraction: float = setting(float, 0.01, "Largest share of bad lines accepted (more fails the build "
                                          "before anything is written).", lower_bound=0.0, upper_bound=1.0)
    rows_per_shard: int = setting(int, shards_lib.DEFAULT_ROWS_PER_SHARD, "Rows per shard file (the Beam "
                                  "pipeline: about this many); a multi-worker run wants at least one train shard "
                                  "per worker.", lower_bound=1)
    rows_per_record: int = setting(int, shards_lib.DEFAULT_ROWS_PER_RECORD, "Rows per shard record (the unit the "
                                   "input pipeline reads and shuffles).", lower_bound=1)

    def __post_init__(self):
        check_settings(self)
        object.__setattr__(self, "split_fractions", splits_lib.check_fractions(self.split_fractions))

    @classmethod
    def from_dict(cls, data: dict) -> "BuildSettings":
        """Settings of a manifest (keys another builder adds are ignored; absent ones take their defaults)."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if "split_fractions" in values:
            values["split_fractions"] = tuple(values["split_fractions"])
        return cls(**values)


# ----------------------------------------------------------------------------------------------------------------
# Progress reports.

def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Progress:
    """Logs a pass's lines, rate and ETA every `PROGRESS_SECONDS` (by input bytes when the total is known)."""

    def __init__(self, name: str, total_bytes: int = 0, total_lines: int = 0):
        self.name, self.total_bytes, self.total_lines = name, total_bytes, total_lines
        self.lines = self.bytes = 0
        self.started = self._last = time.perf_counter()

    def update(self, lines: int, input_bytes: int) -> None:
        self.lines += lines
        self.bytes += input_bytes
        now = time.perf_counter()
        if now - self._last < PROGRESS_SECONDS:
            return
        self._last = now
        elapsed = now - self.started
        rate = self.lines / elapsed
        if self.total_lines:
            done = self.lines / self.total_lines
        else:
            done = self.bytes / self.total_bytes if self.total_bytes else 0.0
        eta = f", ETA {_duration(elapsed * (1 - done) / done)}" if 0 < done < 1 else ""
        logger.info("%s: %s lines (%.0f%%), %s lines/s%s", self.name, f"{self.lines:,}", 100 * done,
                    f"{rate:,.0f}", eta)

    def finish(self, rows: int) -> Dict[str, float]:
        seconds = time.perf_counter() - self.started
        logger.info("%s: %s lines in %.1f s (%s lines/s)", self.name, f"{self.lines:,}", seconds,
                    f"{self.lines / max(seconds, 1e-9):,.0f}")
        return {"seconds": round(seconds, 3), "lines": self.lines, "rows": rows,
                "lines_per_s": round(self.lines / max(seconds, 1e-9), 1), "input_bytes": self.bytes}


# ----------------------------------------------------------------------------------------------------------------
# Pass 1 and the vocabularies.

@dataclasses.dataclass
class _CountResult:
    tracker: BadInputTracker
    vocabularies: Dict[str, List[str]]
    digests: Dict[str, str]
    times_path: Optional[pathlib.Path]  # the valid rows' times, when a time split must sort them
    seconds: Dict[str, float]
    numeric: Dict[str, list]  # the manifest's `numeric` section (statistics and boundaries of treated fields)
    ages: Optional[Dict[str, np.ndarray]] = None  # grown from a base vocabulary: the tokens' inactivity ages
    growth: Optional[Dict[str, object]] = None  # ... and what happened to the base and new tokens

    @property
    def boundaries(self) -> Dict[str, list]:
        return {entry["name"]: entry["boundaries"] for entry in self.numeric.get(schema_lib.BUCKETIZED, [])}


def _count_pass(schema, reader, settings: BuildSettings, work: pathlib.Path, total_bytes: int,
                count_memory_bytes: int, base_vocabulary: Optional[growth_lib.BaseVocabulary] = None
                ) -> _CountResult:
    parse_time = settings.split == splits_lib.TIME_SPLIT and schema.time_column is not None
    tracker = BadInputTracker(strict=settings.strict)
    parser = BlockParser(schema, tracker, parse_time=parse_time)
    counter = TokenCounter(len(schema.fields), work / "counts", memory_bytes=count_memory_bytes)
    statistics = NumericStatistics(schema, seed=settings.seed)
    treated = [(position, field) for position, field in enumerate(schema.fields) if field.treatment is not None]
    progress = _Progress("pass 1 (count)", total_bytes=total_bytes)
    digests: Dict[str, str] = {}
    times_path = work / "times.bin" if parse_time else None
    last_time, in_order = -np.inf, True
    with open(times_path, "wb") if times_path else contextlib.nullcontext() as times_file:
        for block in reader.read_blocks(tracker, digests):
            rows = parser.validate(block)
            counter.add(parser.count(rows))
            for position, field in treated:
                statistics.add(field, rows.floats[position], os.path.basename(rows.path), rows.line_numbers)
            if times_file is not None and rows.num_rows:
                times = cast(np.ndarray, rows.times)  # read: parse_time
                in_order = in_order and times[0] >= last_time and bool(np.all(times[1:] >= times[:-1]))
                last_time = times[-1]
                times.astype(np.float64).tofile(times_file)
            progress.update(block.num_lines, block.input_bytes)
    pass_seconds = progress.finish(tracker.rows_valid)
    pa.default_memory_pool().release_unused()  # the blocks' memory back to the OS before the next step
    tracker.warn_if_skipped()
    tracker.check(settings.max_skipped_fraction)
    if times_path is not None and in_order:
        times_path.unlink()  # rows already in time order: the split keeps file order
        times_path = None
    min_counts = schema.resolved_min_counts()
    counts = counter.result([min_counts[field.name] for field in schema.fields])
    if counter.spill_files:
        logger.info("pass 1 spilled token counts %d time(s) (budget %d MB)", len(counter.spill_files),
                    count_memory_bytes >> 20)
    field_counts = {field.name: counts[position] for position, field in enumerate(schema.fields)
                    if field.hash_buckets is None and field.treatment is None}
    if base_vocabulary is not None:
        vocabularies, ages, growth = growth_lib.grow_schema_vocabularies(schema, field_counts, base_vocabulary)
        return _CountResult(tracker, vocabularies, digests, times_path, pass_seconds, statistics.result(), ages,
                            growth)
    vocabularies = vocabulary_lib.build_schema_vocabularies(schema, field_counts)
    return _CountResult(tracker, vocabularies, digests, times_path, pass_seconds, statistics.result())


# ----------------------------------------------------------------------------------------------------------------
# The split order and pass 2.

def _inverse_order_path(settings: BuildSettings, num_rows: int, times_path: Optional[pathlib.Path],
                        work: pathlib.Path) -> Optional[pathlib.Path]:
    """The file of each valid row's position in split order (rows in file order), or None for file order."""
    order_path, inverse_path = work / "order.npy", work / "inverse.npy"
    if settings.split == splits_lib.RANDOM_SPLIT:
        splits_lib.random_order(num_rows, settings.seed, path=str(order_path))  # unmapped when it returns
    elif times_path is not None:
        times = np.fromfile(times_path, dtype=np.float64)
        order = splits_lib.time_order(times)
        del times
        times_path.unlink()
        if order is None:
            return None
        np.save(order_path, order.astype(splits_lib.position_dtype(num_rows)))
        del order
    else:
        return None
    splits_lib.inverse_order(str(order_path), str(inverse_path))
    order_path.unlink()
    return inverse_path


def _bucket_rows(num_rows: int) -> int:
    """Consecutive split positions per bucket file of `_SplitRouter` (at most `_MAX_BUCKET_FILES` buckets)."""
    return max(_MIN_BUCKET_ROWS, -(-num_rows // _MAX_BUCKET_FILES))


def _bytes_still_needed(settings: BuildSettings, num_rows: int, num_fields: int, permuted: bool) -> int:
    """About the most disk space the rest of a build takes at once, once pass 1 has counted the rows.

    Without a permutation: the shards. With one: the split order and its inverse (`position_dtype` each), then,
    the order gone, the inverse, the rows in bucket files (`num_fields + 2` int32 each) and the first bucket's
    shards before its bucket file is removed (the peak: shard rows are smaller than bucket rows). Plus a block per
    file for the file system's rounding.
    """
    shard_files = sum(shards_lib.num_shards(rows, settings.rows_per_shard)
                      for rows in splits_lib.split_sizes(num_rows, settings.split_fractions))
    records = -(-num_rows // settings.rows_per_record) + shard_files  # each shard may end with a short record
    shards = shards_lib.shard_bytes(num_rows, records, num_fields)
    rounding = 4096 * (shard_files + 2)
    if not permuted:
        return shards + rounding
    position_bytes = splits_lib.position_dtype(num_rows).itemsize * num_rows + 128
    bucket_rows = min(_bucket_rows(num_rows), num_rows)
    buckets = 4 * (num_fields + 2) * num_rows
    first_shards = shards_lib.shard_bytes(bucket_rows, -(-bucket_rows // settings.rows_per_record) + shard_files,
                                          num_fields)
    rounding += 4096 * -(-num_rows // max(bucket_rows, 1))
    return max(2 * position_bytes, position_bytes + buckets + first_shards) + rounding


class _SplitRouter:
    """Takes encoded rows in file order and writes every split's shards in split order.

    Without a permutation (`inverse_path` None), rows are in split order already and go straight to the shards.
    With one, each row goes to the bucket of `bucket_rows` consecutive split positions it belongs to (an append to
    that bucket's file); `finish` then orders each bucket in memory and writes the shards bucket by bucket.
    """

    def __init__(self, folder: pathlib.Path, work: pathlib.Path, num_rows: int, num_fields: int,
                 settings: BuildSettings, inverse_path: Optional[pathlib.Path]):
        self.num_rows, self.num_fields = num_rows, num_fields
        sizes = splits_lib.split_sizes(num_rows, settings.split_fractions)
        self._starts = np.cumsum((0,) + sizes)
        self._writers = [shards_lib.SplitWriter(folder, name, size, num_fields, settings.rows_per_shard,
                                                settings.rows_per_record)
                         for name, size in zip(splits_lib.SPLIT_NAMES, sizes)]
        self.rows_routed = 0
        self._inverse = None
        if inverse_path is not None:
            self._inverse = splits_lib.NpyReader(inverse_path)
            self.bucket_rows = _bucket_rows(num_rows)
            self._bucket_dir = work / "buckets"
            self._bucket_dir.mkdir()
            self._buckets: Dict[int, BinaryIO] = {}

    def _write_ranked(self, rows: np.ndarray, first: int) -> None:
        """Writes rows that hold split positions first, first + 1, ... (cut at the split boundaries)."""
        for index, writer in enumerate(self._writers):
            start = max(first, self._starts[index])
            stop = min(first + len(rows), self._starts[index + 1])
            if start < stop:
                writer.write_rows(rows[start - first:stop - first])

    def add(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        if self.rows_routed + len(rows) > self.num_rows:
            raise RuntimeError(f"The inputs gave more valid rows in the encoding pass than the {self.num_rows} "
                               f"counted before; were the input files changed during the build?")
        if self._inverse is None:
            self._write_ranked(rows, self.rows_routed)
        else:
            positions = self._inverse.read(self.rows_routed, self.rows_routed + len(rows)).astype(np.int64)
            buckets = (positions // self.bucket_rows).astype(np.uint16)  # < _MAX_BUCKET_FILES: a radix sort
            order = np.argsort(buckets, kind="stable")
            sorted_buckets = buckets[order]
            records = np.empty((len(rows), self.num_fields + 2), dtype=np.int32)
            records[:, 0] = positions[order] - sorted_buckets.astype(np.int64) * self.bucket_rows
            records[:, 1:] = rows[order]
            cuts = np.flatnonzero(np.diff(sorted_buckets)) + 1
            for start, stop in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(rows)]])):
                bucket = int(sorted_buckets[start])
                path = self._bucket_dir / f"{bucket:05d}.bin"
                try:
                    if bucket not in self._buckets:
                        self._buckets[bucket] = open(path, "wb")
                    # ndarray has the buffer protocol (NumPy's stubs declare it for Python >= 3.12 only).
                    self._buckets[bucket].write(memoryview(records[start:stop]))  # type: ignore[arg-type]
                except OSError as error:  # name the file (a full disk's write errors do not)
                    raise OSError(error.errno, error.strerror, str(path)) from None
        self.rows_routed += len(rows)

    def abort(self) -> None:
        """Closes every open file after a failure (a file system with open files cannot be unmounted)."""
        if self._inverse is not None:
            self._inverse.close()
            for handle in self._buckets.values():
                with contextlib.suppress(OSError):  # the buffered tail may not fit either
                    handle.close()
        for writer in self._writers:
            writer.abort()

    def finish(self) -> Dict[str, List[shards_lib.ShardInfo]]:
        if self.rows_routed != self.num_rows:
            raise RuntimeError(f"The encoding pass found {self.rows_routed} valid rows but the counting pass found "
                               f"{self.num_rows}; were the input files changed during the build?")
        if self._inverse is not None:
            self._inverse.close()
            for handle in self._buckets.values():
                handle.close()
            for bucket in range(-(-self.num_rows // self.bucket_rows)):
                path = self._bucket_dir / f"{bucket:05d}.bin"
                records = np.fromfile(path, dtype=np.int32).reshape(-1, self.num_fields + 2)
                size = min(self.bucket_rows, self.num_rows - bucket * self.bucket_rows)
                rows = np.empty((size, self.num_fields + 1), dtype=np.int32)
                filled = np.zeros(size, dtype=bool)
                rows[records[:, 0]] = records[:, 1:]
                filled[records[:, 0]] = True
                if len(records) != size or not filled.all():
                    raise RuntimeError(f"Split bucket {bucket} holds {len(records)} rows for {size} positions; the "
                                       f"build is inconsistent (a bug or a changed input).")
                self._write_ranked(rows, bucket * self.bucket_rows)
                path.unlink()
        return {name: writer.close() for name, writer in zip(splits_lib.SPLIT_NAMES, self._writers)}


def _encode_pass(schema, reader, settings: BuildSettings, counted: _CountResult, router: _SplitRouter
                 ) -> Dict[str, float]:
    parse_time = settings.split == splits_lib.TIME_SPLIT and schema.time_column is not None
    tracker = BadInputTracker(strict=settings.strict, max_examples=0)
    parser = BlockParser(schema, tracker, parse_time=parse_time, for_encoding=True)
    lookups = IdLookups(schema, counted.vocabularies, counted.boundaries)
    progress = _Progress("pass 2 (encode)", total_lines=counted.tracker.lines_read)
    for block in reader.read_blocks(tracker):
        router.add(parser.encode(parser.validate(block), lookups))
        progress.update(block.num_lines, block.input_bytes)
    pa.default_memory_pool().release_unused()
    first = counted.tracker
    if (tracker.lines_read, tracker.rows_skipped) != (first.lines_read, first.rows_skipped):
        raise RuntimeError(f"The two passes read different inputs ({first.lines_read} vs {tracker.lines_read} lines, "
                           f"{first.rows_skipped} vs {tracker.rows_skipped} skipped); were the input files changed "
                           f"during the build?")
    return progress.finish(tracker.rows_valid)


# ----------------------------------------------------------------------------------------------------------------
# Cache keys, reuse, partial folders.

def input_fingerprints(files: Sequence[pathlib.Path]) -> List[dict]:
    """Per input file: resolved path, size, modification and change times (ns), inode; missing files marked."""
    fingerprints = []
    for file in files:
        path = pathlib.Path(file).resolve()
        if path.is_file():
            stat = path.stat()
            fingerprints.append({"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                 "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino})
        else:
            fingerprints.append({"path": str(path), "missing": True})
    return fingerprints


def cache_key(schema: schema_lib.Schema, fingerprints: Sequence[dict], settings: BuildSettings,
              base_vocabulary: Optional[growth_lib.BaseVocabulary] = None) -> str:
    """A hex digest of the format version, schema, settings and inputs (path, size, modification time), and of the
    base vocabulary when the build grows one (without one, the key is what it always was)."""
    inputs = [{key: entry[key] for key in ("path", "size", "mtime_ns", "missing") if key in entry}
              for entry in fingerprints]
    content = {"format_version": shards_lib.FORMAT_VERSION, "schema": schema.to_dict(), "inputs": inputs,
               "settings": dataclasses.asdict(settings)}
    if base_vocabulary is not None:
        content["base_vocabulary"] = base_vocabulary.cache_key_part(schema)
    payload = json.dumps(content, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _unchanged(manifest: dict, fingerprints: Sequence[dict]) -> bool:
    """Whether a finished build's inputs are those at hand. Same size and mtime (the key) but another change time
    or inode means the file was rewritten, perhaps in place with its times restored: its content is hashed again."""
    recorded = {entry["path"]: entry for entry in manifest.get("inputs", [])}
    for entry in fingerprints:
        old = recorded.get(entry["path"])
        if old is None:
            return False
        if entry.get("missing") or (old.get("ctime_ns"), old.get("inode")) == (entry["ctime_ns"], entry["inode"]):
            continue
        if old.get("sha256") is None or file_digest(entry["path"]) != old["sha256"]:
            logger.warning("input %s changed since the cached build (same size and modification time, other "
                           "content): rebuilding", entry["path"])
            return False
    return True


def _reusable(folder: pathlib.Path, fingerprints: Sequence[dict]) -> bool:
    """Whether a finished build can be reused: its manifest reads, its inputs are unchanged and its shards match the
    manifest (`shards.verify_shards`, "auto"); a damaged one is rebuilt, never trusted."""
    try:
        manifest = shards_lib.load_manifest(folder)
        if not _unchanged(manifest, fingerprints):
            return False
        shards_lib.verify_shards(folder, manifest, "auto")
    except ValueError as error:  # another format version, a damaged manifest, a truncated or damaged shard
        logger.warning("not reusing %s: %s", folder, error)
        return False
    return True


def _lock(folder: pathlib.Path):
    """Holds an exclusive lock on `folder/.lock` for this process's lifetime (the OS drops it when it dies)."""
    handle = open(folder / _LOCK_NAME, "w")
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # no fcntl (Windows): dead builds are not detected
        pass
    return handle


def remove_dead_partials(cache_dir: pathlib.Path, grace_seconds: float = 60.0) -> List[pathlib.Path]:
    """Removes the `.partial-*` folders of builds whose process is gone (their lock is free), and unlocked ones
    older than `grace_seconds` (a build that died before taking its lock); returns the removed folders."""
    try:
        import fcntl
    except ImportError:
        return []
    removed = []
    for folder in cache_dir.glob(f".*{_PARTIAL_MARK}*"):
        if not folder.is_dir():
            continue
        lock = folder / _LOCK_NAME
        if lock.exists():
            with open(lock, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live build
        elif time.time() - folder.stat().st_mtime < grace_seconds:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        logger.info("removed %d folder(s) of dead builds in %s", len(removed), cache_dir)
    return removed


# ----------------------------------------------------------------------------------------------------------------
# Orchestration.

def _build_into(folder: pathlib.Path, schema: schema_lib.Schema, reader, settings: BuildSettings,
                fingerprints: List[dict], key: Optional[str], count_memory_bytes: int,
                base_vocabulary: Optional[growth_lib.BaseVocabulary] = None) -> None:
    work = folder / "work"
    work.mkdir()
    defaulted = schema.fields_with_default_min_count()
    if defaulted:
        logger.info("fields %s set no min_count and the schema none: they use min_count %d", list(defaulted),
                    schema_lib.DEFAULT_MIN_COUNT)
    total_bytes = sum(entry.get("size", 0) for entry in fingerprints)
    counted = _count_pass(schema, reader, settings, work, total_bytes, count_memory_bytes, base_vocabulary)
    num_rows = counted.tracker.rows_valid
    empty = [name for name, tokens in counted.vocabularies.items() if not tokens]
    if empty:
        logger.warning("fields %s have no value seen min_count times: every id of theirs is 0 (OOV)", empty)
    vocabulary_sizes = vocabulary_lib.write_schema_vocabularies(schema, counted.vocabularies,
                                                                folder / shards_lib.VOCAB_DIR_NAME, counted.boundaries)
    if counted.ages is not None:
        growth_lib.write_ages(schema, counted.ages, folder)
    permuted = settings.split == splits_lib.RANDOM_SPLIT or counted.times_path is not None
    space.check_free_space(folder.parent, _bytes_still_needed(settings, num_rows, schema.num_record_columns, permuted),
                           f"preparing {num_rows:,} rows (the split order, the encoded rows and their shards)")
    started = time.perf_counter()
    inverse_path = _inverse_order_path(settings, num_rows, counted.times_path, work)
    order_seconds = time.perf_counter() - started
    router = _SplitRouter(folder, work, num_rows, schema.num_record_columns, settings, inverse_path)
    try:
        encode_seconds = _encode_pass(schema, reader, settings, counted, router)
        started = time.perf_counter()
        split_shards = router.finish()
    except BaseException:
        router.abort()
        raise
    shard_seconds = time.perf_counter() - started
    shutil.rmtree(work)
    report = IngestReport.from_tracker(counted.tracker, {name: sum(shard.rows for shard in split)
                                                         for name, split in split_shards.items()})
    report.numeric_missing = numeric_missing_rows(counted.numeric)
    report.passes = {"count": counted.seconds, "order": {"seconds": round(order_seconds, 3)},
                     "encode": encode_seconds, "shards": {"seconds": round(shard_seconds, 3)}}
    report.check_totals()
    logger.info("split (%s): %s", settings.split, report.rows_written)
    digests = {str(pathlib.Path(path).resolve()): digest for path, digest in counted.digests.items()}
    inputs = [entry if entry.get("missing") else {**entry, "sha256": digests.get(entry["path"])}
              for entry in fingerprints]
    min_counts = schema.resolved_min_counts()
    shards_lib.write_manifest(
        folder, schema=schema, field_names=schema.field_names, vocabulary_sizes=vocabulary_sizes,
        hash_buckets={name: field.hash_buckets for field in schema.fields if field.hash_buckets is not None
                      for name in field.output_names},
        min_counts=min_counts, splits=split_shards, rows_per_record=settings.rows_per_record,
        settings=dataclasses.asdict(settings), report=report.to_dict(), inputs=inputs, cache_key=key, engine=ENGINE,
        extra={"vocabulary_growth": counted.growth} if counted.growth is not None else None,
        numeric=counted.numeric if schema.treated_fields else None)


def build(schema: schema_lib.Schema, input_paths, cache_dir, settings: BuildSettings = BuildSettings(),
          rebuild: bool = False, count_memory_bytes: int = DEFAULT_MEMORY_BYTES,
          block_bytes: int = DEFAULT_BLOCK_BYTES,
          base_vocabulary: Optional[growth_lib.BaseVocabulary] = None) -> pathlib.Path:
    """Builds (or reuses) the prepared data of `input_paths` under `cache_dir`; returns its folder.

    Args:
        schema: the schema.
        input_paths: files, glob patterns, or the MovieLens folder.
        cache_dir: where builds are kept.
        settings: split, seed and the other settings that change the output.
        rebuild: build even when a finished build of the same inputs and settings exists.
        count_memory_bytes: the budget of the token counts in memory before they spill to disk.
        block_bytes: about how many bytes of delimited text are parsed at a time.
        base_vocabulary: grow the vocabularies from this one (a warm start; `growth.py`); None builds them from
            the inputs alone.

    Example:
        >>> folder = build(criteo_schema(), "train.txt.gz", "/tmp/cache")  # doctest: +SKIP
    """
    reader = make_reader(schema, input_paths, block_bytes=block_bytes)
    fingerprints = input_fingerprints(reader.input_files())
    key = cache_key(schema, fingerprints, settings, base_vocabulary)
    cache_dir = pathlib.Path(cache_dir)
    folder = cache_dir / f"{schema.name}-{key[:16]}"
    if cache_dir.is_dir():
        remove_dead_partials(cache_dir)
    if (folder / shards_lib.MANIFEST_NAME).is_file() and not rebuild:
        reusable = _reusable(folder, fingerprints)
        if reusable:
            logger.info("reusing prepared data at %s", folder)
            return folder
        rebuild = True
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}{_PARTIAL_MARK}", dir=cache_dir))
    lock = _lock(partial)
    try:
        try:
            _build_into(partial, schema, reader, settings, fingerprints, key, count_memory_bytes, base_vocabulary)
        except OSError as error:
            if not space.is_disk_full(error) or isinstance(error, space.DiskSpaceError):
                raise
            lock.close()
            shutil.rmtree(partial, ignore_errors=True)  # before the message counts the space free
            raise space.disk_full_error(cache_dir, error) from None
        (partial / _LOCK_NAME).unlink()
        if rebuild and folder.exists():
            shutil.rmtree(folder)
        if not folder.exists():  # else another process finished the same build first: keep theirs
            os.replace(partial, folder)
    finally:
        lock.close()
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return folder


def load_manifest(folder) -> dict:
    """The checked manifest of a finished prepared-data folder (`shards.load_manifest`)."""
    return shards_lib.load_manifest(folder)
