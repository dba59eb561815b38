"""From raw files to training input: `prepare_dataset` builds (or reuses) encoded shards, `PreparedData` serves them
as `tf.data` pipelines of `(ids int64 [B, N], label float32 [B])` and as whole NumPy splits.

Example:
    >>> data = prepare_dataset("movielens", "../shared/data/ml-100k", cache_dir="/tmp/cache")  # doctest: +SKIP
    >>> data.vocabulary_sizes  # doctest: +SKIP
    (944, 1683, 62, 3, 22, 796, 74, 217)
    >>> model.fit(data.train_dataset(2048, seed=0), validation_data=data.validation_dataset(2048),
    ...           epochs=10)  # doctest: +SKIP
"""

import dataclasses
import functools
import pathlib
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_multiembed.data import build as build_lib
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import splits as splits_lib
from tf_multiembed.data import vocabulary as vocabulary_lib
from tf_multiembed.data.quality import IngestReport

DEFAULT_SHUFFLE_BUFFER = 100_000


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """An encoded, split data set on disk, with its vocabularies and ingest report.

    Attributes:
        directory: the build folder (see `build.py` for its layout).
        schema: the schema it was built with.
        field_names: the N encoded columns, in `ids` order.
        vocabulary_sizes: per encoded column, `len(vocabulary) + 1` (id 0 is OOV): `MultiEmbedding`'s sizes.
        vocab_dir: the folder of `<field>.txt` vocabulary files.
        split_rows: rows per split ("train", "validation", "test").
        report: what was read, skipped and written.
        settings: the split and bad-input settings of the build.
    """

    directory: pathlib.Path
    schema: schema_lib.Schema
    field_names: Tuple[str, ...]
    vocabulary_sizes: Tuple[int, ...]
    vocab_dir: pathlib.Path
    split_rows: Dict[str, int]
    report: IngestReport
    settings: build_lib.BuildSettings
    shards: Dict[str, Tuple[build_lib.ShardInfo, ...]]

    @classmethod
    def load(cls, directory) -> "PreparedData":
        """Opens a finished build folder."""
        directory = pathlib.Path(directory)
        manifest = build_lib.load_manifest(directory)
        shards = {name: tuple(build_lib.ShardInfo(**shard) for shard in split_shards)
                  for name, split_shards in manifest["splits"].items()}
        settings = dict(manifest["settings"])
        settings["split_fractions"] = tuple(settings["split_fractions"])
        return cls(directory=directory, schema=schema_lib.Schema.from_dict(manifest["schema"], source=str(directory)),
                   field_names=tuple(manifest["field_names"]), vocabulary_sizes=tuple(manifest["vocabulary_sizes"]),
                   vocab_dir=directory / build_lib.VOCAB_DIR_NAME,
                   split_rows={name: sum(shard.rows for shard in split) for name, split in shards.items()},
                   report=IngestReport(**manifest["report"]), settings=build_lib.BuildSettings(**settings),
                   shards=shards)

    @property
    def num_fields(self) -> int:
        return len(self.field_names)

    def vocabulary_files(self) -> Dict[str, pathlib.Path]:
        """{encoded column: its vocabulary file}."""
        return {name: vocabulary_lib.vocabulary_path(self.vocab_dir, name) for name in self.field_names}

    def _split_shards(self, split: str) -> Tuple[build_lib.ShardInfo, ...]:
        if split not in self.shards:
            raise ValueError(f"Unknown split {split!r}; expected one of {list(self.shards)}.")
        return self.shards[split]

    def dataset(self, split: str, batch_size: int, shuffle: bool = False, seed: Optional[int] = None,
                shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER, drop_remainder: bool = False,
                repeat: bool = False) -> tf.data.Dataset:
        """Batches `(ids int64 [B, N], label float32 [B])` of one split.

        Without shuffling, rows come in split order (for the random split, the reference's permutation order). With
        shuffling, the shard order and a buffer of `shuffle_buffer_size` rows are reshuffled every epoch; a `seed`
        makes the sequence of epochs reproducible.

        Args:
            split: "train", "validation" or "test".
            batch_size: rows per batch.
            shuffle: shuffle (every epoch anew).
            seed: the shuffle seed; None for a non-reproducible shuffle.
            shuffle_buffer_size: rows held by the shuffle buffer.
            drop_remainder: drop the last partial batch (static batch shapes, e.g. for TPUs).
            repeat: repeat the epochs without end (each one reshuffled); pass `steps_per_epoch=num_batches(...)`
                to `fit`. Keras 3 does not restart a finite dataset when `steps_per_epoch` is given, so
                `steps_per_epoch` without `repeat` trains the later epochs on nothing.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        shards = self._split_shards(split)
        num_fields = self.num_fields
        files = tf.constant([str(self.directory / shard.file) for shard in shards], dtype=tf.string)
        record_bytes = (num_fields + 1) * build_lib.ID_DTYPE.itemsize
        header_sizes = sorted({shard.header_bytes for shard in shards})
        def read(file, header):
            return tf.data.FixedLengthRecordDataset(file, record_bytes, header_bytes=header, buffer_size=1 << 20)

        if len(header_sizes) <= 1:
            # One header size (the usual case): the files-then-reader shape that tf.distribute shards by file.
            dataset = tf.data.Dataset.from_tensor_slices(files)
            read_file = functools.partial(read, header=header_sizes[0] if header_sizes else 0)
        else:
            dataset = tf.data.Dataset.from_tensor_slices(
                (files, tf.constant([shard.header_bytes for shard in shards], dtype=tf.int64)))
            read_file = read
        if shuffle and len(shards) > 1:
            dataset = dataset.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.interleave(read_file, cycle_length=min(max(len(shards), 1), 8) if shuffle else 1,
                                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if shuffle:
            buffer = max(1, min(int(shuffle_buffer_size), self.split_rows[split]))
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if repeat:
            dataset = dataset.repeat()  # after batching: every epoch is exactly num_batches(...) batches

        def decode(records):
            values = tf.io.decode_raw(records, tf.int32, little_endian=True)
            values = tf.reshape(values, [-1, num_fields + 1])
            return tf.cast(values[:, :num_fields], tf.int64), tf.cast(values[:, num_fields], tf.float32)

        return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def num_batches(self, split: str, batch_size: int, drop_remainder: bool = False) -> int:
        """Batches per epoch of a split, for `steps_per_epoch` with `repeat=True` (tf.data cannot count the
        records of the shard files itself)."""
        rows = sum(shard.rows for shard in self._split_shards(split))
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

    def numpy_split(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        """A whole split in memory, for exact evaluation: `(ids int64 [n, N], labels float32 [n])`, in split order.

        It needs about 12 bytes per id in memory; for splits too large for that, iterate `dataset(split, ...)`.
        """
        blocks = [np.load(self.directory / shard.file, mmap_mode="r") for shard in self._split_shards(split)]
        if not blocks:
            return np.zeros((0, self.num_fields), np.int64), np.zeros((0,), np.float32)
        values = np.concatenate(blocks)
        return values[:, :self.num_fields].astype(np.int64), values[:, self.num_fields].astype(np.float32)

    def feature_encoder(self):
        """A `RawFeatureEncoder` over this build's vocabularies (raw features -> the same ids as the shards)."""
        from tf_multiembed.data.encoding import RawFeatureEncoder

        return RawFeatureEncoder(self.schema, self.vocab_dir)


def prepare_dataset(schema, input_paths, cache_dir, split: str = splits_lib.RANDOM_SPLIT, seed: int = 0,
                    split_fractions: Sequence[float] = splits_lib.DEFAULT_FRACTIONS, strict: bool = False,
                    max_skipped_fraction: float = 0.01, rows_per_shard: int = build_lib.DEFAULT_ROWS_PER_SHARD,
                    rebuild: bool = False) -> PreparedData:
    """Reads, counts, encodes and splits raw files into cached shards (or reuses a cached build) and opens them.

    Two streaming passes over the inputs (count, then encode) keep memory independent of the number of rows. Bad
    lines are skipped and counted (a `SkippedInputWarning` names the first few by file and line), or raise at the
    first one with `strict=True`; more than `max_skipped_fraction` of bad lines fails the build.

    Args:
        schema: a `Schema`, a built-in name ("criteo", "avazu", "movielens") or a JSON/YAML schema file.
        input_paths: a file, a list of files or glob patterns (plain or gzip); the folder for MovieLens-100K.
        cache_dir: where builds are stored; a build is reused when inputs (path, size, mtime) and settings match.
        split: "random" (the paper's: seeded permutation, 8:1:1) or "time" (ordered by the schema's time column,
            or file order without one).
        seed: the random split's seed (`numpy.random.default_rng(seed).permutation`).
        split_fractions: train, validation and test shares.
        strict: raise at the first bad line or missing/empty file instead of skipping it.
        max_skipped_fraction: the largest share of bad lines accepted.
        rows_per_shard: rows per shard file.
        rebuild: rebuild even when a cached build exists.

    Returns:
        The `PreparedData`.

    Example:
        >>> data = prepare_dataset("criteo", "train.txt.gz", "/tmp/cache")  # doctest: +SKIP
    """
    schema = schema_lib.resolve_schema(schema)
    settings = build_lib.BuildSettings(split=split, seed=seed, split_fractions=tuple(split_fractions),
                                       strict=strict, max_skipped_fraction=max_skipped_fraction,
                                       rows_per_shard=rows_per_shard)
    return PreparedData.load(build_lib.build(schema, input_paths, cache_dir, settings, rebuild=rebuild))

