"""The Beam pipeline: raw files -> the prepared-data folder that `PreparedData.load` opens (vocabularies, encoded
shards, manifest), on any Beam runner.

Stages (docs/beam.md draws them):

1. read: one element per input file (the MovieLens folder is one element); the single-machine engine's readers
   turn it into Arrow column blocks with line numbers (CSV/TSV plain or gzip, Parquet, TFRecord; header checks,
   undecodable lines set aside), then a reshuffle spreads the blocks over the workers;
2. parse: the engine's `BlockParser` applies the schema to each block: bad lines are counted by reason as Beam
   metrics and in the ingest report, the first ones kept as `file:line: reason`; strict mode raises at the first
   one; each block's token counts go to the analysis, and its numeric values to the engine's pass-1 accumulator
   (`numeric.NumericStatistics`: exact sums and a keyed sample, so merging blocks in any order gives the
   single-machine build's statistics and boundaries bit for bit);
3. analyze: `tft.vocabulary` adds the counts up (`analyze.py`), a combiner merges the numeric accumulators; one step
   checks the bad-input share, then writes the vocabulary files by the single-machine rule and fixes the bucket
   boundaries;
4. encode: the engine's pass 2 (`BlockParser.validate` again, then `encode` with `IdLookups` over the vocabularies
   and boundaries just written, hash buckets included) gives each valid row its ids and float bits;
5. split and write: each row goes to a split and a shard by a seeded hash of its file and line (`split.py`); each
   shard's rows are sorted by (file, line), so a run writes the same files whatever the runner and the workers;
6. the manifest, written last: a folder without one is unfinished.
"""

import collections
import contextlib
import dataclasses
import logging
import os
import pathlib
import shutil
import tempfile
import time
from typing import Iterator, List, Optional, cast

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from tf_multiembed.data import numeric as numeric_lib
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import shards as shards_lib
from tf_multiembed.data import splits as splits_lib
from tf_multiembed.data import vocabulary as vocabulary_lib
from tf_multiembed.data.beam import analyze
from tf_multiembed.data.beam import split as split_lib
from tf_multiembed.data.build import BuildSettings
from tf_multiembed.data.quality import BadInputTracker, IngestReport
from tf_multiembed.data.readers import expand_paths
from tf_multiembed.data.readers.blocks import ColumnBlock
from tf_multiembed.data.records import BlockParser, IdLookups, make_reader
from tf_multiembed.settings import setting, setting_defaults

METRICS_NAMESPACE = "tf_multiembed.ingest"
ENGINE = "beam"
_TMP_DIR_NAME = ".beam-tmp"

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BeamSettings(BuildSettings):
    """The settings of a Beam build: the data build's (`BuildSettings`, declared once there) and how many bad lines
    the report names. The split is always the hash-based random split (`split.py`); the time split needs one machine
    (`prepare_dataset`).
    """

    max_examples: int = setting(int, 5, "How many bad lines the ingest report names (file:line: reason).",
                                lower_bound=0)

    def __post_init__(self):
        super().__post_init__()
        if self.split != splits_lib.RANDOM_SPLIT:
            raise ValueError(f"BeamSettings: the Beam pipeline writes the random split only (a seeded hash of file "
                             f"and line), received split={self.split!r}; use prepare_dataset for a time split.")


# Flags of `python -m tf_multiembed.data.beam`: every setting except the split kind (random is the only one).
FLAG_SETTINGS = tuple(name for name in setting_defaults(BeamSettings) if name != "split")


# ----------------------------------------------------------------------------------------------------------------
# Files on any Beam file system (local, gs://, s3://, hdfs://): the readers and writers work on local paths.

def _is_local(path: str) -> bool:
    return "://" not in str(path)


@contextlib.contextmanager
def _local_copy(path: str) -> Iterator[str]:
    """The path itself when local; else a temporary local copy (the worker's disk holds one input file at a time)."""
    if _is_local(path) or not FileSystems.exists(path):
        yield path  # a missing remote file is then reported missing under its own name
        return
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, os.path.basename(path))
        with FileSystems.open(path) as source, open(local, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 24)
        yield local


def _publish(local_path: str, path: str) -> None:
    """Moves a finished local file to its destination (a copy when it is on another device or file system; the
    manifest, written last, is what marks a folder finished)."""
    if _is_local(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.move(local_path, path)
        return
    with open(local_path, "rb") as source, FileSystems.create(path) as target:
        shutil.copyfileobj(source, target, 1 << 24)
    os.remove(local_path)


def _join(folder: str, *parts: str) -> str:
    return FileSystems.join(folder, *parts) if not _is_local(folder) else os.path.join(folder, *parts)


def input_files(schema: schema_lib.Schema, input_paths) -> List[str]:
    """The inputs as one list of files (glob patterns expanded, sorted per pattern); the MovieLens folder as is."""
    paths = [input_paths] if isinstance(input_paths, (str, pathlib.Path)) else list(input_paths)
    if schema.reader == schema_lib.MOVIELENS_READER:
        if len(paths) != 1:
            raise ValueError(f"MovieLens-100K is read from one folder, got {len(paths)} paths: {paths}.")
        return [str(paths[0])]
    files: List[str] = []
    for path in map(str, paths):
        if _is_local(path):
            files.extend(str(file) for file in expand_paths(path))
        else:
            matches = FileSystems.match([path])[0].metadata_list
            files.extend(sorted(match.path for match in matches) or [path])
    return files


# ----------------------------------------------------------------------------------------------------------------
# Read and parse.

@dataclasses.dataclass
class ParsedBlock:
    """A block with valid rows, where it comes from (the input's index and base name), and its valid rows' count."""

    file_index: int
    file_name: str
    block: ColumnBlock
    num_rows: int


def _stats(file_index=None, files_read=(), files_missing=(), files_empty=(), header_lines=0, lines_read=0,
           skipped=None, examples=(), values_truncated=None) -> dict:
    """One partial ingest report (combined by `_ReportFn`)."""
    return {"files": [(file_index, list(files_read), list(files_missing), list(files_empty))]
            if file_index is not None else [],
            "header_lines": header_lines, "lines_read": lines_read, "skipped": collections.Counter(skipped or {}),
            "examples": list(examples), "values_truncated": collections.Counter(values_truncated or {})}


class ReadFile(beam.DoFn):
    """(file index, path) -> (file index, ColumnBlock) blocks, and one file-level partial report (tag "stats").

    Stage 1 of `PrepareData`; public, with `ParseBlock`, so a stage can be run and measured alone
    (benchmarks/data/beam_ingest.py).
    """

    def __init__(self, schema: schema_lib.Schema, strict: bool):
        self._schema, self._strict = schema, strict

    def process(self, element):
        file_index, path = element
        tracker = BadInputTracker(strict=self._strict, max_examples=0)
        with _local_copy(path) as local:
            for block in make_reader(self._schema, local).read_blocks(tracker):
                if block.path == local:
                    block.path = path
                yield file_index, block

        def named(paths):
            return [path if name == local else name for name in paths]

        yield beam.pvalue.TaggedOutput("stats", _stats(file_index, named(tracker.files_read),
                                                       named(tracker.files_missing), named(tracker.files_empty),
                                                       header_lines=tracker.header_lines))


class ParseBlock(beam.DoFn):
    """(file index, ColumnBlock) -> the block again if it has valid rows (a `ParsedBlock`, for the encode step), its
    token counts (tag "counts", a record batch for the analysis), a partial report (tag "stats") and, when the schema
    has numeric treatments, the block's `NumericStatistics` (tag "numeric", merged by `_NumericFn`)."""

    def __init__(self, schema: schema_lib.Schema, strict: bool, max_examples: int, seed: int = 0):
        self._schema, self._strict, self._max_examples, self._seed = schema, strict, max_examples, seed
        self._parser: Optional[BlockParser] = None
        self._lines = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "lines_read")
        self._valid = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "rows_valid")

    def process(self, element):
        file_index, block = element
        # One parser per worker keeps its transform caches across blocks; each block gets its own tracker.
        tracker = BadInputTracker(strict=self._strict, max_examples=self._max_examples)
        if self._parser is None:
            self._parser = BlockParser(self._schema, tracker)
        self._parser.tracker = tracker
        rows = self._parser.validate(block)
        counted = self._parser.count(rows)
        self._lines.inc(block.num_lines)
        self._valid.inc(rows.num_rows)
        for reason, count in tracker.skipped_by_reason.items():
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"skipped_{reason}").inc(count)
        examples = [(file_index, bad_line.line_number, str(bad_line)) for bad_line in tracker.examples]
        yield beam.pvalue.TaggedOutput("stats", _stats(lines_read=block.num_lines, skipped=tracker.skipped_by_reason,
                                                       examples=examples, values_truncated=tracker.values_truncated))
        if self._schema.treated_fields:
            # The engine's pass-1 accumulator, fed exactly as the columnar build feeds it (file base name, lines).
            statistics = numeric_lib.NumericStatistics(self._schema, seed=self._seed)
            file_name = os.path.basename(block.path)
            for position, field in enumerate(self._schema.fields):
                if field.treatment is not None:
                    statistics.add(field, rows.floats[position], file_name, rows.line_numbers)
            yield beam.pvalue.TaggedOutput("numeric", statistics)
        if rows.num_rows:
            if analyze.vocabulary_positions(self._schema):
                yield beam.pvalue.TaggedOutput("counts", analyze.counts_record_batch(self._schema, counted))
            yield ParsedBlock(file_index, os.path.basename(block.path), block, rows.num_rows)


class _ReportFn(beam.CombineFn):
    """Merges partial reports: counts add up, the first bad lines are the smallest (file, line) ones."""

    def __init__(self, max_examples: int):
        self._max_examples = max_examples

    def create_accumulator(self):
        return _stats()

    def add_input(self, accumulator, stats):
        return self.merge_accumulators([accumulator, stats])

    def merge_accumulators(self, accumulators):
        merged = _stats()
        for stats in accumulators:
            merged["files"].extend(stats["files"])
            merged["header_lines"] += stats["header_lines"]
            merged["lines_read"] += stats["lines_read"]
            merged["skipped"].update(stats["skipped"])
            merged["values_truncated"].update(stats["values_truncated"])
            merged["examples"].extend(stats["examples"])
        merged["examples"] = sorted(merged["examples"])[:self._max_examples]
        return merged

    def extract_output(self, accumulator):
        files = sorted(accumulator["files"], key=lambda entry: entry[0])
        skipped = dict(accumulator["skipped"])
        return IngestReport(
            files_read=[path for entry in files for path in entry[1]],
            files_missing=[path for entry in files for path in entry[2]],
            files_empty=[path for entry in files for path in entry[3]],
            header_lines=accumulator["header_lines"], lines_read=accumulator["lines_read"],
            rows_valid=accumulator["lines_read"] - sum(skipped.values()), rows_skipped=sum(skipped.values()),
            skipped_by_reason=skipped, first_bad_lines=[example[2] for example in accumulator["examples"]],
            values_truncated=dict(accumulator["values_truncated"]), rows_written={})


class _NumericFn(beam.CombineFn):
    """Merges the blocks' `NumericStatistics` (exact sums and keyed samples: any merge order gives the same result)
    into the manifest's `numeric` section, as the columnar build's pass 1 computes it."""

    def __init__(self, schema: schema_lib.Schema, seed: int):
        self._schema, self._seed = schema, seed

    def create_accumulator(self):
        return numeric_lib.NumericStatistics(self._schema, seed=self._seed)

    def add_input(self, accumulator, statistics):
        return accumulator.merge(statistics)

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator.result()


def _check_report(report: IngestReport, settings: BeamSettings) -> None:
    """The single-machine build's checks (no valid rows; too many bad lines), with its errors and messages."""
    tracker = BadInputTracker(strict=settings.strict, max_examples=0)
    tracker.lines_read = report.lines_read
    tracker.skipped_by_reason.update(report.skipped_by_reason)
    tracker.files_read, tracker.files_missing, tracker.files_empty = (
        list(report.files_read), list(report.files_missing), list(report.files_empty))
    # Already formatted lines stand in for BadLine: the tracker only prints them.
    tracker.examples = [_ReportedLine(text) for text in report.first_bad_lines]  # type: ignore[misc]
    tracker.check(settings.max_skipped_fraction)


@dataclasses.dataclass(frozen=True)
class _ReportedLine:
    """A bad line already formatted as "file:line: reason (detail)"."""

    text: str

    def __str__(self) -> str:
        return self.text


# ----------------------------------------------------------------------------------------------------------------
# Vocabularies, encoding, shards, manifest.

def _write_vocabularies(_, transform_fn_dir: Optional[str], report: IngestReport, numeric: Optional[dict],
                        schema: schema_lib.Schema, settings: BeamSettings, output_dir: str) -> dict:
    """Checks the bad-input share, then writes `<output>/vocab/<column>.txt` from tf.Transform's counts; returns the
    vocabularies and the bucket boundaries (the encoders' side input), the vocabulary sizes and the `numeric` section
    (None without numeric treatments)."""
    _check_report(report, settings)
    counts = (analyze.read_token_counts(_join(transform_fn_dir, "assets", analyze.VOCABULARY_NAME), schema)
              if transform_fn_dir is not None else {})
    vocabularies = vocabulary_lib.build_schema_vocabularies(schema, counts)
    empty = [name for name, tokens in vocabularies.items() if not tokens]
    if empty:
        logger.warning("fields %s have no value seen min_count times: every id of theirs is 0 (OOV)", empty)
    with tempfile.TemporaryDirectory() as local_dir:
        boundaries = {entry["name"]: entry["boundaries"] for entry in (numeric or {}).get(schema_lib.BUCKETIZED, [])}
        sizes = vocabulary_lib.write_schema_vocabularies(schema, vocabularies, local_dir, boundaries)
        for file_name in sorted(os.listdir(local_dir)):
            _publish(os.path.join(local_dir, file_name), _join(output_dir, shards_lib.VOCAB_DIR_NAME, file_name))
    return {"vocabularies": vocabularies, "boundaries": boundaries, "vocabulary_sizes": sizes, "numeric": numeric}


class _EncodeBlock(beam.DoFn):
    """ParsedBlock -> ((split, shard), (file index, line numbers, int32 rows [n, N + F + 1])), encoded by the engine's
    own encoder (`BlockParser.encode`, `IdLookups`: ids, bucket ids, padded bags, float bits), so the records are
    the single-machine build's by construction."""

    def __init__(self, schema: schema_lib.Schema, settings: BeamSettings):
        self._schema, self._settings = schema, settings
        self._parser: Optional[BlockParser] = None
        self._lookups: Optional[IdLookups] = None

    def process(self, block: ParsedBlock, vocabulary: dict, report: IngestReport):
        if self._lookups is None:
            # The engine's pass 2: validate again (the same rows as the parse step; its skips were counted there)
            # and encode.
            self._parser = BlockParser(self._schema, BadInputTracker(max_examples=0), for_encoding=True)
            self._lookups = IdLookups(self._schema, vocabulary["vocabularies"], vocabulary["boundaries"])
        parser = cast(BlockParser, self._parser)  # made with the lookups
        valid = parser.validate(block.block)
        if valid.num_rows != block.num_rows:
            raise RuntimeError(f"{block.block.path}: {valid.num_rows} valid rows when encoding, {block.num_rows} when "
                               f"parsing; the parse is not deterministic.")
        rows = np.ascontiguousarray(parser.encode(valid, self._lookups), dtype=shards_lib.ID_DTYPE)
        line_numbers = valid.line_numbers
        settings = self._settings
        splits = split_lib.split_of_rows(settings.seed, settings.split_fractions, block.file_name, line_numbers)
        num_shards = split_lib.shards_per_split(report.rows_valid, settings.split_fractions, settings.rows_per_shard)
        for split_index, split_name in enumerate(splits_lib.SPLIT_NAMES):
            in_split = splits == split_index
            if not in_split.any():
                continue
            lines = line_numbers[in_split]
            shards = split_lib.shard_of_rows(settings.seed, block.file_name, lines, num_shards[split_name])
            for shard in np.unique(shards):
                chosen = shards == shard
                yield (split_name, int(shard)), (block.file_index, lines[chosen], rows[in_split][chosen])


def _all_shard_keys(report: IngestReport, settings: BeamSettings):
    """Every (split, shard) key with no rows, so that every shard file is written even where no row hashes to it."""
    num_shards = split_lib.shards_per_split(report.rows_valid, settings.split_fractions, settings.rows_per_shard)
    return [((name, shard), None) for name, count in num_shards.items() for shard in range(count)]


def _write_shard(element, report: IngestReport, num_columns: int, settings: BeamSettings, output_dir: str):
    """Writes one shard (`shards.py` format), its rows sorted by (file, line); returns (split, ShardInfo)."""
    (split_name, shard), blocks = element
    blocks = [block for block in blocks if block is not None]
    file_indices = np.concatenate([np.full(len(lines), index, np.int64) for index, lines, _ in blocks]
                                  or [np.zeros(0, np.int64)])
    lines = np.concatenate([lines for _, lines, _ in blocks] or [np.zeros(0, np.int64)])
    rows = np.concatenate([rows for _, _, rows in blocks] or [np.zeros((0, num_columns + 1), shards_lib.ID_DTYPE)])
    rows = np.ascontiguousarray(rows[np.lexsort((lines, file_indices))], dtype=shards_lib.ID_DTYPE)
    num_shards = split_lib.shards_per_split(report.rows_valid, settings.split_fractions, settings.rows_per_shard)
    name = shards_lib.shard_file_name(split_name, shard, num_shards[split_name])
    step = settings.rows_per_record
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, "shard")
        with open(local, "wb") as handle:
            for start in range(0, len(rows), step):
                handle.write(shards_lib.frame_record(rows[start:start + step].tobytes()))
        _publish(local, _join(output_dir, *name.split("/")))
    return split_name, shards_lib.ShardInfo(name, int(len(rows)), -(-len(rows) // step))


def _write_manifest(written: List[tuple], report: IngestReport, vocabulary: dict, schema: schema_lib.Schema,
                    settings: BeamSettings, inputs: List[str], output_dir: str, runner: str) -> str:
    """Writes `manifest.json` last (the folder is then finished) and removes the pipeline's scratch files.

    A split without any row lists no shards (the format's rule); its empty shard files are removed.
    """
    splits = {}
    for name in splits_lib.SPLIT_NAMES:
        infos = sorted((info for split_name, info in written if split_name == name), key=lambda info: info.file)
        if infos and not sum(info.rows for info in infos):
            FileSystems.delete([_join(output_dir, *info.file.split("/")) for info in infos])
            infos = []
        splits[name] = infos
    report = dataclasses.replace(report, rows_written={name: sum(info.rows for info in infos)
                                                       for name, infos in splits.items()},
                                 numeric_missing=numeric_lib.missing_rows(vocabulary["numeric"]))
    report.check_totals()
    local = _is_local(output_dir)
    with tempfile.TemporaryDirectory() as scratch:
        path = shards_lib.write_manifest(
            output_dir if local else scratch, schema=schema, field_names=schema.field_names,
            vocabulary_sizes=vocabulary["vocabulary_sizes"],
            hash_buckets={name: field.hash_buckets for field in schema.fields if field.hash_buckets is not None
                          for name in field.output_names},
            min_counts=schema.resolved_min_counts(),
            splits=splits, rows_per_record=settings.rows_per_record,
            # "random": a seeded random split; its rule (a row hash, not the single-machine permutation) is named.
            settings={"split": splits_lib.RANDOM_SPLIT, "split_rule": split_lib.RULE, "seed": settings.seed,
                      "split_fractions": list(settings.split_fractions), "strict": settings.strict,
                      "max_skipped_fraction": settings.max_skipped_fraction,
                      "rows_per_shard": settings.rows_per_shard, "runner": runner},
            report=report.to_dict(), inputs=[{"path": path} for path in inputs], engine=ENGINE, check_files=local,
            numeric=vocabulary["numeric"] if schema.treated_fields else None)
        if not local:
            _publish(str(path), _join(output_dir, shards_lib.MANIFEST_NAME))
    tmp_dir = _join(output_dir, _TMP_DIR_NAME)
    if FileSystems.exists(tmp_dir):
        FileSystems.delete([tmp_dir])
    return _join(output_dir, shards_lib.MANIFEST_NAME)


class PrepareData(beam.PTransform):
    """The whole build as one transform of a pipeline's beginning; its output is the manifest's path (one element).

    Several builds can share one pipeline (each under its own label and output folder).

    Example:
        >>> with beam.Pipeline() as p:  # doctest: +SKIP
        ...     p | "Criteo" >> PrepareData(criteo_schema(), "day_*.gz", "gs://bucket/criteo-prepared")
    """

    def __init__(self, schema: schema_lib.Schema, input_paths, output_dir: str,
                 settings: BeamSettings = BeamSettings()):
        super().__init__()
        self._schema, self._output_dir, self._settings = schema, str(output_dir), settings
        self._inputs = input_files(schema, input_paths)

    def expand(self, pbegin):
        from tf_multiembed.compat import import_tensorflow_transform

        import_tensorflow_transform()  # the first import goes through compat
        import tensorflow_transform.beam as tft_beam

        schema, settings, output_dir, inputs = self._schema, self._settings, self._output_dir, self._inputs
        pipeline = pbegin.pipeline
        runner = type(pipeline.runner).__name__
        read = (pbegin
                | "ListInputs" >> beam.Create(list(enumerate(inputs)))
                | "ReadFiles" >> beam.ParDo(ReadFile(schema, settings.strict)).with_outputs("stats", main="blocks"))
        parsed = (read.blocks
                  | "SpreadBlocks" >> beam.Reshuffle()
                  | "Parse" >> beam.ParDo(ParseBlock(schema, settings.strict, settings.max_examples, settings.seed))
                  .with_outputs("stats", "counts", "numeric", main="blocks"))
        report = ((read.stats, parsed.stats)
                  | "AllStats" >> beam.Flatten()
                  | "Report" >> beam.CombineGlobally(_ReportFn(settings.max_examples)))
        report_side = beam.pvalue.AsSingleton(report)
        if analyze.vocabulary_positions(schema):
            with tft_beam.Context(temp_dir=_join(output_dir, _TMP_DIR_NAME)):
                transform_fn_dir, _ = ((parsed.counts, analyze.tensor_adapter_config(schema))
                                       | "Analyze" >> tft_beam.AnalyzeDataset(analyze.preprocessing_fn(schema)))
            transform_fn_side = beam.pvalue.AsSingleton(transform_fn_dir)
        else:  # every field hashes its tokens: nothing to count
            transform_fn_side = None
        if schema.treated_fields:
            numeric_side = beam.pvalue.AsSingleton(
                parsed.numeric | "NumericStatistics" >> beam.CombineGlobally(_NumericFn(schema, settings.seed)))
        else:
            numeric_side = None
        vocabulary = (pbegin
                      | "One" >> beam.Create([None])
                      | "WriteVocabularies" >> beam.Map(_write_vocabularies, transform_fn_side, report_side,
                                                        numeric_side, schema, settings, output_dir))
        encoded = parsed.blocks | "Encode" >> beam.ParDo(_EncodeBlock(schema, settings),
                                                          beam.pvalue.AsSingleton(vocabulary), report_side)
        empty_shards = report | "ShardKeys" >> beam.FlatMap(_all_shard_keys, settings)
        written = ((encoded, empty_shards)
                   | "WithEmptyShards" >> beam.Flatten()
                   | "GroupShards" >> beam.GroupByKey()
                   | "WriteShards" >> beam.Map(_write_shard, report_side, schema.num_record_columns, settings,
                                                  output_dir))
        return (written
                | "AllShards" >> beam.combiners.ToList()
                | "WriteManifest" >> beam.Map(_write_manifest, report_side, beam.pvalue.AsSingleton(vocabulary),
                                              schema, settings, inputs, output_dir, runner))


_OUTPUT_ENTRIES = (shards_lib.MANIFEST_NAME, f".{shards_lib.MANIFEST_NAME}.tmp", shards_lib.VOCAB_DIR_NAME,
                   shards_lib.SHARD_DIR_NAME, _TMP_DIR_NAME)


def _clear_output(output_dir: str, overwrite: bool) -> None:
    """Empties the output folder of an earlier (finished, or killed) build; refuses a folder holding anything else."""
    if not FileSystems.exists(output_dir):
        return
    if _is_local(output_dir):
        entries = sorted(os.listdir(output_dir))
    else:
        prefix = output_dir.rstrip("/") + "/"
        entries = sorted({match.path[len(prefix):].split("/")[0]
                          for match in FileSystems.match([prefix + "**"])[0].metadata_list})
    foreign = [entry for entry in entries if entry not in _OUTPUT_ENTRIES]
    if foreign:
        raise FileExistsError(f"{output_dir} holds {foreign[:5]}, which a prepared-data folder does not; choose an "
                              f"empty or new output folder.")
    if shards_lib.MANIFEST_NAME in entries and not overwrite:
        raise FileExistsError(f"{output_dir} already holds prepared data ({shards_lib.MANIFEST_NAME}); choose another "
                              f"output folder or pass overwrite=True (--overwrite).")
    if entries:  # the manifest goes first: an interrupted clean-up leaves an unfinished folder, never a wrong one
        ordered = sorted(entries, key=lambda entry: entry != shards_lib.MANIFEST_NAME)
        FileSystems.delete([_join(output_dir, entry) for entry in ordered])


def prepare_with_beam(schema, input_paths, output_dir, settings: BeamSettings = BeamSettings(),
                      pipeline_options=None, overwrite: bool = False) -> str:
    """Runs the Beam build to the end and returns the prepared-data folder (open it with `PreparedData.load`).

    Args:
        schema: a `Schema`, a built-in name ("criteo", "avazu", "movielens") or a JSON/YAML schema file.
        input_paths: files, glob patterns (on any Beam file system), or the MovieLens-100K folder.
        output_dir: the prepared-data folder to write (local, or gs://... and other Beam file systems).
        settings: split, bad-input and shard settings.
        pipeline_options: `apache_beam.options.pipeline_options.PipelineOptions` (runner and its flags); default:
            the local DirectRunner.
        overwrite: replace a finished folder at `output_dir` (else a finished folder is an error).

    Example:
        >>> folder = prepare_with_beam("movielens", "../shared/data/ml-100k", "/tmp/ml-beam")  # doctest: +SKIP
        >>> PreparedData.load(folder).vocabulary_sizes  # doctest: +SKIP
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    schema = schema_lib.resolve_schema(schema)
    output_dir = str(output_dir)
    _clear_output(output_dir, overwrite)
    started = time.perf_counter()
    options = pipeline_options if pipeline_options is not None else PipelineOptions(
        [], runner="DirectRunner", direct_num_workers=1, direct_running_mode="in_memory")
    with beam.Pipeline(options=options) as pipeline:
        _ = pipeline | "Prepare" >> PrepareData(schema, input_paths, output_dir, settings)
    logger.info("Beam build of %s into %s in %.1f s", schema.name, output_dir, time.perf_counter() - started)
    return output_dir
