"""From raw files to training input: `prepare_dataset` builds (or reuses) encoded shards, `PreparedData` opens any
prepared-data folder (`shards.py`) and serves it as `tf.data` pipelines of `(ids int64 [B, N], label float32 [B])`
that read blocks of rows, and as whole NumPy splits.

Example:
    >>> data = prepare_dataset("movielens", "../shared/data/ml-100k", cache_dir="/tmp/cache")  # doctest: +SKIP
    >>> data.vocabulary_sizes  # doctest: +SKIP
    (944, 1683, 62, 3, 22, 796, 74, 217)
    >>> model.fit(data.train_dataset(2048, seed=0), validation_data=data.validation_dataset(2048),
    ...           epochs=10)  # doctest: +SKIP
"""

import dataclasses
import logging
import pathlib
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_multiembed import settings as settings_lib
from tf_multiembed import types
from tf_multiembed.data import build as build_lib
from tf_multiembed.data import layout as layout_lib
from tf_multiembed.data import numeric as numeric_lib
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import shards as shards_lib
from tf_multiembed.data import vocabulary as vocabulary_lib
from tf_multiembed.data.counting import DEFAULT_MEMORY_BYTES
from tf_multiembed.data.growth import BaseVocabulary
from tf_multiembed.data.quality import IngestReport

if TYPE_CHECKING:
    from tf_multiembed.data.encoding import RawFeatureEncoder

DEFAULT_SHUFFLE_BUFFER = 100_000

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """An encoded, split data set on disk (a folder in the format of `shards.py`), with its vocabularies and report.

    Attributes:
        directory: the folder.
        schema: the schema it was built with.
        field_names: the N encoded columns, in `ids` order.
        vocabulary_sizes: per encoded column, `len(vocabulary) + 1` (id 0 is OOV), or `hash_buckets + 1`:
            `MultiEmbedding`'s sizes.
        vocab_dir: the folder of `<field>.txt` vocabulary files.
        split_rows: rows per split ("train", "validation", "test").
        report: what was read, skipped and written, and how long each step took (the manifest's `report`).
        settings: the split and bad-input settings of the build.
        shards: per split, its shard files in split order.
        rows_per_record: rows per shard record (the last record of a shard may hold fewer).
        hash_buckets: {encoded column: buckets} of hash-bucket columns (no vocabulary file).
        min_counts: {field: the minimum count the build applied} (None for hash-bucket fields).
        data_fingerprint: "sha256:..." of the inputs' content, or None when the builder did not hash them.
        cache_key: the build's cache key (None for a folder that is not a cache entry).
        vocabulary_growth: for a build grown from a base vocabulary (a warm start, `growth.py`), what happened to the
            base and new tokens per field; None otherwise.
        float_columns: the float columns after the ids (embedded, then dense numeric fields); empty without them.
        numeric: the manifest's `numeric` section (statistics and boundaries of numeric treatments); empty without.
    """

    directory: pathlib.Path
    schema: schema_lib.Schema
    field_names: Tuple[str, ...]
    vocabulary_sizes: Tuple[int, ...]
    vocab_dir: pathlib.Path
    split_rows: Dict[str, int]
    report: IngestReport
    settings: build_lib.BuildSettings
    shards: Dict[str, Tuple[shards_lib.ShardInfo, ...]]
    rows_per_record: int
    hash_buckets: Dict[str, int]
    min_counts: Dict[str, Optional[int]]
    data_fingerprint: Optional[str]
    cache_key: Optional[str]
    vocabulary_growth: Optional[Dict[str, Any]] = None
    float_columns: Tuple[str, ...] = ()
    numeric: Dict[str, List[Dict[str, Any]]] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, directory: types.PathLike, verify: str = "auto") -> "PreparedData":
        """Opens a finished prepared-data folder (any writer of the `shards.py` format, e.g. the Beam pipeline).

        Its shards are checked against the manifest first (`shards.verify_shards`): `verify="sizes"` checks that
        every shard exists with the size its rows and records give (one `stat` per shard); `"full"` also reads every
        record (checksums, rows per record, record and row counts); `"auto"` (the default) is "full" for folders
        whose shards total at most 256 MB, else "sizes".

        Raises:
            shards.ShardError: a shard is missing, truncated or damaged (the message names it and what to do).
        """
        directory = pathlib.Path(directory)
        manifest = shards_lib.load_manifest(directory)
        shards_lib.verify_shards(directory, manifest, verify)
        splits = {name: tuple(shards_lib.ShardInfo(**shard) for shard in entry["shards"])
                  for name, entry in manifest["splits"].items()}
        return cls(directory=directory, schema=schema_lib.Schema.from_dict(manifest["schema"], source=str(directory)),
                   field_names=tuple(manifest["field_names"]), vocabulary_sizes=tuple(manifest["vocabulary_sizes"]),
                   vocab_dir=directory / shards_lib.VOCAB_DIR_NAME,
                   split_rows={name: entry["rows"] for name, entry in manifest["splits"].items()},
                   report=IngestReport.from_dict(manifest["report"]),
                   settings=build_lib.BuildSettings.from_dict(manifest["settings"]), shards=splits,
                   rows_per_record=int(manifest["record_format"]["rows_per_record"]),
                   hash_buckets={column["name"]: column["hash_buckets"] for column in manifest["columns"]
                                 if column["hash_buckets"] is not None},
                   min_counts=dict(manifest["min_counts"]), data_fingerprint=manifest["data_fingerprint"],
                   cache_key=manifest["cache_key"], vocabulary_growth=manifest.get("vocabulary_growth"),
                   float_columns=tuple(manifest.get("float_columns", ())), numeric=dict(manifest.get("numeric") or {}))

    @property
    def num_fields(self) -> int:
        return len(self.field_names)

    @property
    def bucket_boundaries(self) -> Dict[str, List[float]]:
        """{column: boundaries} of the bucketized numeric fields (no vocabulary file)."""
        return {entry["name"]: list(entry["boundaries"]) for entry in self.numeric.get(schema_lib.BUCKETIZED, [])}

    @property
    def model_inputs(self) -> Dict[str, List[Dict[str, Any]]]:
        """The model's float inputs with their pass-1 statistics, for `NumericInputs.from_dict` (and
        `build_model(..., numeric_inputs=...)`); empty lists without embedded or dense fields."""
        return numeric_lib.model_inputs(self.numeric)

    def model_fields(self) -> Tuple[Tuple[str, ...], Tuple[int, ...], Optional[Tuple[int, ...]]]:
        """`(field names, vocabulary sizes, bag sizes)` as `build_model` takes them: per encoded column, except that
        a bag's columns (its padded values) are one field with its shared vocabulary; bag sizes None without bags.

        Example:
            >>> data.model_fields()  # doctest: +SKIP
            (('user', 'tags'), (41, 4), (1, 5))
        """
        if not self.schema.bag_fields:
            return self.field_names, self.vocabulary_sizes, None
        names, sizes, bags = [], [], []
        column = 0
        for field in self.schema.fields:
            width = len(field.output_names)
            if field.kind == schema_lib.BAG:
                names.append(field.name)
                sizes.append(self.vocabulary_sizes[column])
                bags.append(width)
            else:
                names.extend(self.field_names[column:column + width])
                sizes.extend(self.vocabulary_sizes[column:column + width])
                bags.extend([1] * width)
            column += width
        return tuple(names), tuple(sizes), tuple(bags)

    def vocabulary_files(self) -> Dict[str, pathlib.Path]:
        """{encoded column: its vocabulary file}, for the columns with a vocabulary (not hash buckets, not
        bucketized numeric fields)."""
        return {name: vocabulary_lib.vocabulary_path(self.vocab_dir, name) for name in self.field_names
                if name not in self.hash_buckets and name not in self.bucket_boundaries}

    def _split_shards(self, split: str) -> Tuple[shards_lib.ShardInfo, ...]:
        if split not in self.shards:
            raise ValueError(f"Unknown split {split!r}; expected one of {list(self.shards)}.")
        return self.shards[split]

    def dataset(self, split: str, batch_size: int, shuffle: bool = False, seed: Optional[int] = None,
                shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER, drop_remainder: bool = False,
                repeat: bool = False) -> tf.data.Dataset:
        """Batches `(ids int64 [B, N], label float32 [B])` of one split, read a record (a block of rows) at a time.
        With embedded or dense numeric fields the features are the model's input dict instead (`feature_ids`,
        `numeric_values`, `dense_values`: docs/inputs.md); a bag's columns are part of the ids, padded with -1.

        Without shuffling, rows come in split order (for the random split, the reference's permutation order).
        With shuffling, every epoch anew: the shard order is shuffled, records (blocks of `rows_per_record` rows) are
        shuffled in a buffer of about `shuffle_buffer_size` rows, and consecutive windows of that many rows are
        permuted row by row; a `seed` makes the sequence of epochs reproducible. The source is the list of shard
        files, so tf.distribute's auto-sharding gives each worker its own files (policy FILE or AUTO).

        Finite datasets carry their cardinality (the number of batches), so Keras knows the epoch length.

        Args:
            split: "train", "validation" or "test".
            batch_size: rows per batch.
            shuffle: shuffle (every epoch anew).
            seed: the shuffle seed; None for a non-reproducible shuffle.
            shuffle_buffer_size: about how many rows are shuffled together.
            drop_remainder: drop the last partial batch (static batch shapes, e.g. for TPUs).
            repeat: repeat the epochs without end (each one reshuffled); with `steps_per_epoch=num_batches(...)`
                every epoch is exactly one pass over the split.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        shards = self._split_shards(split)
        num_fields = self.num_fields + len(self.float_columns)  # columns before the label
        files = [str(self.directory / shard.file) for shard in shards]

        def decode(payloads: tf.Tensor) -> tf.Tensor:
            values = tf.io.decode_raw(tf.strings.reduce_join(payloads), tf.int32, little_endian=True)
            return tf.reshape(values, [-1, num_fields + 1])

        def permute(rows: tf.Tensor) -> tf.Tensor:
            # A stateless permutation seeded by `seed` and the window's first rows: reproducible for a seed, new in
            # every window and epoch (the record order differs), and without a second source dataset, which would
            # keep tf.distribute's auto-sharding from finding the files.
            content = tf.strings.to_hash_bucket_fast(tf.strings.reduce_join(tf.strings.as_string(rows[:4])),
                                                     2 ** 31 - 1)
            return tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([tf.constant(seed or 0, tf.int64),
                                                                                 content]))

        if not files:
            dataset = tf.data.Dataset.from_tensor_slices(tf.zeros([0, num_fields + 1], tf.int32)).batch(1)
        else:
            dataset = tf.data.Dataset.from_tensor_slices(files)
            if shuffle and len(files) > 1:
                dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
            read = lambda file: tf.data.TFRecordDataset(file, buffer_size=1 << 20)  # noqa: E731
            if shuffle:
                dataset = dataset.interleave(read, cycle_length=min(len(files), 4), block_length=1,
                                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            else:
                dataset = dataset.interleave(read, cycle_length=1)  # file by file: the split's order
            if shuffle:
                records = max(1, min(int(shuffle_buffer_size) // self.rows_per_record, sum(s.records for s in shards)))
                # Another seed than the file shuffle's: two shuffles drawing the same numbers can cancel out.
                record_seed = None if seed is None else seed + 1
                dataset = dataset.shuffle(records, seed=record_seed, reshuffle_each_iteration=True).batch(records)
                dataset = dataset.map(lambda payloads: permute(decode(payloads)), num_parallel_calls=tf.data.AUTOTUNE)
            else:
                dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.rebatch(batch_size, drop_remainder=drop_remainder)
        dataset = dataset.map(lambda rows: (self._features(rows), tf.cast(rows[:, num_fields], tf.float32)),
                              num_parallel_calls=tf.data.AUTOTUNE)
        if repeat:
            dataset = dataset.repeat()  # after batching: every epoch is exactly num_batches(...) batches
        else:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(
                self.num_batches(split, batch_size, drop_remainder)))
        return dataset.prefetch(tf.data.AUTOTUNE)

    def _features(self, rows: tf.Tensor) -> Union[tf.Tensor, Dict[str, tf.Tensor]]:
        """The model input of a batch of rows: ids `[B, N]`, or with float columns the dict of docs/inputs.md."""
        ids = tf.cast(rows[:, :self.num_fields], tf.int64)
        if not self.float_columns:
            return ids
        features = {"feature_ids": ids}
        start = self.num_fields
        for key, count in (("numeric_values", len(self.numeric.get(schema_lib.EMBEDDED, []))),
                           ("dense_values", len(self.numeric.get(schema_lib.DENSE, [])))):
            if count:
                features[key] = tf.bitcast(rows[:, start:start + count], tf.float32)
                start += count
        return features

    def num_batches(self, split: str, batch_size: int, drop_remainder: bool = False) -> int:
        """Batches per epoch of a split (the cardinality of its finite dataset)."""
        self._split_shards(split)
        rows = self.split_rows[split]
        return rows // batch_size if drop_remainder else -(-rows // batch_size)

    def train_dataset(self, batch_size: int, shuffle: bool = True, seed: Optional[int] = None,
                      shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER, drop_remainder: bool = False,
                      repeat: bool = False) -> tf.data.Dataset:
        """The training split, shuffled by default (see `dataset`)."""
        return self.dataset("train", batch_size, shuffle=shuffle, seed=seed, shuffle_buffer_size=shuffle_buffer_size,
                            drop_remainder=drop_remainder, repeat=repeat)

    def validation_dataset(self, batch_size: int) -> tf.data.Dataset:
        """The validation split in order."""
        return self.dataset("validation", batch_size)

    def test_dataset(self, batch_size: int) -> tf.data.Dataset:
        """The test split in order."""
        return self.dataset("test", batch_size)

    def numpy_split(self, split: str) -> Tuple[Any, np.ndarray]:
        """A whole split in memory, for exact evaluation: `(ids int64 [n, N], labels float32 [n])`, in split order
        (with float columns, the first element is the model's input dict instead).

        It needs about 12 bytes per id in memory; for splits too large for that, iterate `dataset(split, ...)`.
        """
        width = self.num_fields + len(self.float_columns)
        blocks = [shards_lib.parse_block(payload, width)
                  for shard in self._split_shards(split)
                  for payload in shards_lib.read_tfrecord(self.directory / shard.file)]
        if not blocks:
            ids, labels = np.zeros((0, width), np.int32), np.zeros((0,), np.float32)
        else:
            ids = np.concatenate([ids for ids, _ in blocks])
            labels = np.concatenate([labels for _, labels in blocks]).astype(np.float32)
        if not self.float_columns:
            return ids.astype(np.int64), labels
        features = self._features(tf.constant(ids))
        return {key: value.numpy() for key, value in features.items()}, labels

    def feature_encoder(self) -> "RawFeatureEncoder":
        """A `RawFeatureEncoder` over this build's vocabularies (raw features -> the same ids as the shards)."""
        from tf_multiembed.data.encoding import RawFeatureEncoder

        return RawFeatureEncoder(self.schema, self.vocab_dir, numeric=self.numeric)


def prepare_dataset(schema: Union[schema_lib.Schema, types.PathLike],
                    input_paths: Union[str, pathlib.Path, Sequence[Union[str, pathlib.Path]]],
                    cache_dir: types.PathLike, *,
                    rebuild: bool = False, count_memory_mb: int = DEFAULT_MEMORY_BYTES >> 20,
                    base_vocabulary: Optional[BaseVocabulary] = None,
                    **settings: Any) -> PreparedData:
    """Reads, counts, encodes and splits raw files into cached shards (or reuses a cached build) and opens them.

    Two passes over the inputs in blocks of rows (count, then encode straight into the split shards) keep memory
    independent of the number of rows. Bad lines are skipped and counted (a `SkippedInputWarning` names the first
    few by file and line), or raise at the first one with `strict=True`; more than `max_skipped_fraction` of bad
    lines fails the build. Long builds log their progress (rows/s, ETA) at INFO level every 10 s.

    The build settings (the keyword arguments after `count_memory_mb`) are `BuildSettings`' fields, with its
    defaults and help: they are declared once, in `data/build.py`.

    Args:
        schema: a `Schema`, a built-in name ("criteo", "avazu", "movielens") or a JSON/YAML schema file. The
            built-in "criteo" and "avazu" also read their files as comma- or tab-separated, with or without a header
            line naming the columns (e.g. DeepCTR's criteo_sample.txt), from the first line (`data/layout.py`).
        input_paths: a file, a list of files or glob patterns (CSV/TSV plain or gzip, Parquet, TFRecord as the
            schema's reader says); the folder for MovieLens-100K.
        cache_dir: where builds are stored; a build is reused when its inputs (path, size, modification time, and
            content when the file was rewritten in place) and settings match.
        rebuild: rebuild even when a cached build exists.
        count_memory_mb: memory for the token counts of pass 1 before they spill to disk (not part of the cache
            key: it does not change the output).
        base_vocabulary: a `growth.BaseVocabulary` to grow the vocabularies from (a warm start: its tokens keep
            their ids, new ones are appended; see `tf_multiembed.data.growth`); None builds them from the inputs.
        {settings}

    Returns:
        The `PreparedData`.

    Example:
        >>> data = prepare_dataset("criteo", "train.txt.gz", "/tmp/cache")  # doctest: +SKIP
    """
    unknown = sorted(set(settings) - set(settings_lib.setting_defaults(build_lib.BuildSettings)))
    if unknown:
        raise TypeError(f"prepare_dataset() got unexpected keyword arguments {unknown}; the build settings are "
                        f"{list(settings_lib.setting_defaults(build_lib.BuildSettings))}.")
    if "split_fractions" in settings:
        settings["split_fractions"] = tuple(settings["split_fractions"])
    schema, note = layout_lib.match_built_in(schema, input_paths)
    if note:
        logger.info("%s", note)
    folder = build_lib.build(schema, input_paths, cache_dir, build_lib.BuildSettings(**settings), rebuild=rebuild,
                             count_memory_bytes=int(count_memory_mb) << 20, base_vocabulary=base_vocabulary)
    return PreparedData.load(folder, verify="sizes")  # `build` has just written or verified it


settings_lib.with_settings_signature(prepare_dataset, build_lib.BuildSettings)
