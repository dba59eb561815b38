"""TFDS builders: offline builds from manual_dir, raw features typed like the serving signature, and the same split
as `prepare_dataset`."""

import math
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tf_multiembed.data.tfds  # noqa: F401  (registers the builders)
from data_test_files import write_grouplens, write_lines
from tf_multiembed.data import prepare_dataset
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.quality import SkippedInputWarning
from tf_multiembed.data.readers import avazu as avazu_reader


def _load(name, manual_dir, data_dir, split=None):
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    return tfds.load(name, split=split, data_dir=str(data_dir), with_info=True,
                     download_and_prepare_kwargs={"download_config": config})


def _criteo_line(i):
    ints = ["" if (i + j) % 5 == 0 else str((i * j) % 50 - 2) for j in range(13)]
    cats = ["" if (i + j) % 7 == 0 else f"{(i * 31 + j) % 4:08x}" for j in range(26)]
    return "\t".join([str(i % 2)] + ints + cats)


def _rows(dataset, schema, encoder):
    """(encoded ids, label) rows of a raw TFDS split, sorted (TFDS shuffles example order)."""
    rows = []
    for batch in dataset.batch(64):
        ids = encoder(batch["features"]).numpy()
        rows.extend(tuple(row) + (int(label),) for row, label in zip(ids.tolist(), batch["label"].numpy()))
    return sorted(rows)


def _prepared_rows(data, split):
    ids, labels = data.numpy_split(split)
    return sorted(tuple(row) + (int(label),) for row, label in zip(ids.tolist(), labels))


def test_criteo_builder_reads_gzip_from_manual_dir(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    lines = [_criteo_line(i) for i in range(200)] + ["1\tbroken"]  # 1 bad line of 201: within the 1% allowed
    write_lines(manual / "train.txt.gz", lines, compress=True)
    with pytest.warns(SkippedInputWarning, match=r"train.txt.gz:201: wrong number of columns"):
        splits, info = _load("criteo_ctr", manual, tmp_path / "tfds")
    assert {name: info.splits[name].num_examples for name in ("train", "validation", "test")} == {
        "train": 160, "validation": 20, "test": 20}
    example = next(iter(splits["train"].take(1)))
    assert example["features"]["I1"].dtype == tf.float64 and example["features"]["C1"].dtype == tf.string
    assert example["label"].dtype == tf.int64
    assert info.supervised_keys == ("features", "label")
    values = [float(ex["features"]["I1"]) for ex in splits["train"]]
    assert any(math.isnan(value) for value in values)  # empty integer cells are NaN, as serving takes them
    # The same rows as prepare_dataset's random split, encoded by its vocabularies.
    with pytest.warns(SkippedInputWarning):
        data = prepare_dataset(schema_lib.criteo_schema(min_count=1), manual / "train.txt.gz", tmp_path / "cache")
    encoder = data.feature_encoder()
    for split in ("train", "test"):
        assert _rows(splits[split], data.schema, encoder) == _prepared_rows(data, split)


def test_avazu_builder_drops_id_and_keeps_hour(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    header = ",".join(avazu_reader.COLUMNS)
    lines = [header] + [",".join([f"{i}", str(i % 2), f"141021{i % 24:02d}"] + [f"v{(i + j) % 3}" for j in range(21)])
                        for i in range(20)]
    write_lines(manual / "train.csv", lines)
    splits, info = _load("avazu_ctr", manual, tmp_path / "tfds")
    features = info.features["features"]
    assert "id" not in features.keys() and "hour" in features.keys() and len(features.keys()) == 22
    assert info.splits["train"].num_examples == 16
    example = next(iter(splits["test"].take(1)))
    assert example["features"]["hour"].numpy().decode().startswith("141021")


def test_movielens_builder_accepts_the_grouplens_layout(tmp_path):
    manual = tmp_path / "manual"
    write_grouplens(manual / "ml-100k", ratings=[(1 + i % 3, 10 + i % 2, 1 + i % 5, i) for i in range(20)],
                    users=[(1, 24, "M", "x", "1"), (2, 30, "F", "y", "2"), (3, 40, "M", "z", "3")],
                    items=[(10, "a", "01-Jan-1995", "0110000000000000000"), (11, "b", "", "0" * 19)])
    splits, info = _load("movielens100k_ctr", manual, tmp_path / "tfds")
    assert info.splits["train"].num_examples == 16
    data = prepare_dataset("movielens", manual / "ml-100k", tmp_path / "cache")
    encoder = data.feature_encoder()
    for split in ("train", "validation", "test"):
        assert _rows(splits[split], data.schema, encoder) == _prepared_rows(data, split)


def test_missing_manual_files_are_named(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "README").write_text("the data file is elsewhere")
    with pytest.raises(FileNotFoundError, match=r"manual: none of \['train.txt', 'train.txt.gz'\] found"):
        _load("criteo_ctr", tmp_path / "manual", tmp_path / "tfds")


def test_real_movielens_subset_matches_prepare_dataset(shared_ml100k_dir, tmp_path):
    """The real RecBole files (all users and items, the first 3,000 ratings) through TFDS and through the build."""
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("ml-100k.user", "ml-100k.item"):
        shutil.copy(shared_ml100k_dir / name, manual / name)
    ratings = (shared_ml100k_dir / "ml-100k.inter").read_text().splitlines()[:3001]
    write_lines(manual / "ml-100k.inter", ratings)
    splits, info = _load("movielens100k_ctr", manual, tmp_path / "tfds")
    assert [info.splits[name].num_examples for name in ("train", "validation", "test")] == [2400, 300, 300]
    data = prepare_dataset("movielens", manual, tmp_path / "cache")
    assert _rows(splits["test"], data.schema, data.feature_encoder()) == _prepared_rows(data, "test")
    labels = np.array([int(ex["label"]) for ex in splits["validation"]])
    assert set(labels.tolist()) == {0, 1}
