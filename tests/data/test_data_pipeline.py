"""The streaming build and its tf.data input: golden vocabularies and ids, splits, cache, shards, datasets."""

import json

import numpy as np
import pytest
import tensorflow as tf

from data_test_files import SMALL_CRITEO_LINES, small_criteo_schema, write_lines
from tf_multiembed.data import build as build_lib
from tf_multiembed.data import prepare_dataset
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema
from tf_multiembed.data.vocabulary import read_vocabulary

# SMALL_CRITEO_LINES by hand, min count 2 (I buckets: 5 -> "2", 0 -> "-2", 1000 -> "47", -1 -> "-3", 3 -> "1",
# 2 -> "0", empty -> "NULL"): I1 "2" x3; I2 "1" x3; C1 aa x3, bb x2; C2 x x3, y x2 (the empty C2 is "NULL" x1).
GOLDEN_VOCABULARIES = {"I1": ["2"], "I2": ["1"], "C1": ["aa", "bb"], "C2": ["x", "y"]}
GOLDEN_IDS = [[1, 0, 1, 1], [0, 1, 1, 2], [1, 0, 2, 1], [0, 1, 1, 0], [0, 1, 0, 1], [1, 0, 2, 2]]
GOLDEN_LABELS = [1, 0, 0, 1, 0, 1]


def _all_rows(data):
    """Every split's rows stacked (ids, labels)."""
    parts = [data.numpy_split(name) for name in ("train", "validation", "test")]
    return np.concatenate([ids for ids, _ in parts]), np.concatenate([labels for _, labels in parts])


def _unique_id_file(path, num_rows, extra=None):
    """A CSV whose `row` column is unique per row (so a row's id tells which line it came from)."""
    lines = ["y,row,ts"] + [f"{i % 2},r{i},{(i * 7919) % num_rows}" for i in range(num_rows)] + (extra or [])
    return write_lines(path, lines)


UNIQUE_ROW_SCHEMA = Schema("rows", fields=(FieldSpec("row"),), label=LabelSpec("y"), time_column="ts",
                           vocabulary_order="sorted")


def test_golden_vocabularies_and_ids(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(min_count=2), path, tmp_path / "cache", split_fractions=(1, 0, 0))
    assert data.field_names == ("I1", "I2", "C1", "C2")
    assert data.vocabulary_sizes == (2, 2, 3, 3)
    assert {name: read_vocabulary(path) for name, path in data.vocabulary_files().items()} == GOLDEN_VOCABULARIES
    ids, labels = data.numpy_split("train")
    order = np.random.default_rng(0).permutation(6)
    np.testing.assert_array_equal(ids, np.array(GOLDEN_IDS)[order])
    np.testing.assert_array_equal(labels, np.array(GOLDEN_LABELS, dtype=np.float32)[order])
    assert ids.dtype == np.int64 and labels.dtype == np.float32


def test_min_count_one_orders_by_count_then_token(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(min_count=1), path, tmp_path / "cache")
    vocabularies = {name: read_vocabulary(path) for name, path in data.vocabulary_files().items()}
    assert vocabularies["I1"] == ["2", "-2", "47", "NULL"]
    assert vocabularies["C2"] == ["x", "y", "NULL"]  # the empty cell is its own value, as in the paper
    assert data.vocabulary_sizes == (5, 5, 4, 4)


def test_vocabulary_files_reproduce_string_lookup_ids(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(min_count=1), path, tmp_path / "cache")
    for name, vocabulary_file in data.vocabulary_files().items():
        tokens = read_vocabulary(vocabulary_file)
        lookup = tf.keras.layers.StringLookup(vocabulary=str(vocabulary_file), num_oov_indices=1)
        probe = tokens + ["never-seen", ""]
        assert lookup(tf.constant(probe)).numpy().tolist() == list(range(1, len(tokens) + 1)) + [0, 0]
        assert lookup.vocabulary_size() == data.vocabulary_sizes[data.field_names.index(name)]


def test_random_split_is_the_reference_permutation(tmp_path):
    path = _unique_id_file(tmp_path / "rows.csv", 1000)
    data = prepare_dataset(UNIQUE_ROW_SCHEMA, path, tmp_path / "cache", seed=3)
    assert data.split_rows == {"train": 800, "validation": 100, "test": 100}
    tokens = np.array(read_vocabulary(data.vocabulary_files()["row"]))
    rows_by_split = {name: [int(token[1:]) for token in tokens[data.numpy_split(name)[0][:, 0] - 1]]
                     for name in ("train", "validation", "test")}
    order = np.random.default_rng(3).permutation(1000).tolist()
    assert rows_by_split == {"train": order[:800], "validation": order[800:900], "test": order[900:]}


def test_split_is_deterministic_for_a_seed_and_disjoint(tmp_path):
    path = _unique_id_file(tmp_path / "rows.csv", 300)
    first = prepare_dataset(UNIQUE_ROW_SCHEMA, path, tmp_path / "a", seed=5)
    second = prepare_dataset(UNIQUE_ROW_SCHEMA, path, tmp_path / "b", seed=5)
    other = prepare_dataset(UNIQUE_ROW_SCHEMA, path, tmp_path / "c", seed=6)
    ids = {name: first.numpy_split(name)[0][:, 0] for name in ("train", "validation", "test")}
    for name in ids:
        np.testing.assert_array_equal(ids[name], second.numpy_split(name)[0][:, 0])
    assert not np.array_equal(ids["test"], other.numpy_split("test")[0][:, 0])
    everything = np.concatenate(list(ids.values()))
    assert sorted(everything.tolist()) == list(range(1, 301))  # disjoint, and nothing lost


def test_time_split_orders_rows_by_the_time_column(tmp_path):
    path = _unique_id_file(tmp_path / "rows.csv", 200)
    data = prepare_dataset(UNIQUE_ROW_SCHEMA, path, tmp_path / "cache", split="time")
    tokens = np.array(read_vocabulary(data.vocabulary_files()["row"]))
    times = {name: [(int(token[1:]) * 7919) % 200 for token in tokens[data.numpy_split(name)[0][:, 0] - 1]]
             for name in ("train", "validation", "test")}
    assert times["train"] == sorted(times["train"]) and len(times["train"]) == 160
    assert max(times["train"]) <= min(times["validation"]) and max(times["validation"]) <= min(times["test"])


def test_time_split_without_a_time_column_keeps_file_order(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES * 5)
    data = prepare_dataset(small_criteo_schema(min_count=10), path, tmp_path / "cache", split="time")  # counts x5
    ids, labels = _all_rows(data)
    np.testing.assert_array_equal(ids, np.array(GOLDEN_IDS * 5))


def test_second_run_reuses_the_build_and_changed_inputs_rebuild(tmp_path, monkeypatch):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    schema = small_criteo_schema()
    first = prepare_dataset(schema, path, tmp_path / "cache")

    def must_not_build(*args, **kwargs):
        raise AssertionError("the cached build should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(build_lib, "_build_into", must_not_build)
        again = prepare_dataset(schema, path, tmp_path / "cache")
        assert again.directory == first.directory
        with pytest.raises(AssertionError, match="should have been reused"):
            prepare_dataset(schema, path, tmp_path / "cache", seed=1)  # other settings: another build
    write_lines(path, SMALL_CRITEO_LINES + SMALL_CRITEO_LINES[:1])  # the input changed
    changed = prepare_dataset(schema, path, tmp_path / "cache")
    assert changed.directory != first.directory and changed.report.rows_valid == 7
    assert prepare_dataset(schema, path, tmp_path / "cache", rebuild=True).directory == changed.directory


def test_failed_build_leaves_nothing_to_reuse(tmp_path, monkeypatch):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)

    def broken_split(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(build_lib._SplitRouter, "finish", broken_split)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(small_criteo_schema(), path, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_manifest_records_inputs_settings_and_report(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(), path, tmp_path / "cache", rows_per_shard=2)
    manifest = json.loads((data.directory / "manifest.json").read_text())
    assert manifest["inputs"][0]["size"] == path.stat().st_size
    assert manifest["settings"]["rows_per_shard"] == 2
    assert [shard["rows"] for shard in manifest["splits"]["train"]["shards"]] == [2, 2]
    assert data.report.rows_written == {"train": 4, "validation": 0, "test": 2}


def test_datasets_yield_int64_ids_and_float_labels(tmp_path):
    path = _unique_id_file(tmp_path / "rows.csv", 500)
    data = prepare_dataset(UNIQUE_ROW_SCHEMA, path, tmp_path / "cache", rows_per_shard=128)
    ids, labels = next(iter(data.validation_dataset(batch_size=32)))
    assert ids.dtype == tf.int64 and ids.shape == (32, 1) and labels.dtype == tf.float32 and labels.shape == (32,)
    in_order = np.concatenate([batch.numpy() for batch, _ in data.test_dataset(batch_size=7)])
    np.testing.assert_array_equal(in_order, data.numpy_split("test")[0])


def test_labels_stay_with_their_rows(tmp_path):
    path = _unique_id_file(tmp_path / "rows.csv", 300)
    data = prepare_dataset(UNIQUE_ROW_SCHEMA, path, tmp_path / "cache", rows_per_shard=64)
    tokens = np.array(read_vocabulary(data.vocabulary_files()["row"]))
    for ids, labels in data.train_dataset(batch_size=40, seed=1):
        rows = np.array([int(token[1:]) for token in tokens[ids.numpy()[:, 0] - 1]])
        np.testing.assert_array_equal(labels.numpy(), (rows % 2).astype(np.float32))


def test_train_shuffle_is_seeded_and_changes_every_epoch(tmp_path):
    path = _unique_id_file(tmp_path / "rows.csv", 400)
    data = prepare_dataset(UNIQUE_ROW_SCHEMA, path, tmp_path / "cache", rows_per_shard=100)

    def epochs(dataset, count):
        iterator_rows = []
        for _ in range(count):
            iterator_rows.append(np.concatenate([ids.numpy()[:, 0] for ids, _ in dataset]))
        return iterator_rows

    first = epochs(data.train_dataset(batch_size=64, seed=7), 2)
    second = epochs(data.train_dataset(batch_size=64, seed=7), 2)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # reshuffled in the second epoch
    assert sorted(first[0].tolist()) == sorted(data.numpy_split("train")[0][:, 0].tolist())
    unshuffled = np.concatenate([ids.numpy()[:, 0] for ids, _ in data.train_dataset(batch_size=64, shuffle=False)])
    np.testing.assert_array_equal(unshuffled, data.numpy_split("train")[0][:, 0])
    batches = [ids.shape[0] for ids, _ in data.train_dataset(batch_size=64, seed=1, drop_remainder=True)]
    assert batches == [64] * 5 == [64] * data.num_batches("train", 64, drop_remainder=True)
    # Repeated: every num_batches(...) batches are one whole, reshuffled epoch (the last batch partial).
    steps = data.num_batches("train", 64)
    repeated = [ids.numpy()[:, 0] for ids, _ in data.train_dataset(batch_size=64, seed=7, repeat=True).take(2 * steps)]
    epoch_one, epoch_two = np.concatenate(repeated[:steps]), np.concatenate(repeated[steps:])
    assert steps == 5 and len(repeated[steps - 1]) == 320 - 4 * 64
    assert sorted(epoch_one.tolist()) == sorted(epoch_two.tolist()) and not np.array_equal(epoch_one, epoch_two)


def test_dataset_argument_errors(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(), path, tmp_path / "cache")
    with pytest.raises(ValueError, match="Unknown split 'holdout'"):
        data.dataset("holdout", 4)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer, got 0"):
        data.train_dataset(0)
    with pytest.raises(ValueError, match="`split` must be one of"):
        prepare_dataset(small_criteo_schema(), path, tmp_path / "cache", split="stratified")
    with pytest.raises(ValueError, match="`split_fractions` must be three"):
        prepare_dataset(small_criteo_schema(), path, tmp_path / "cache", split_fractions=(0.5, 0.5, 0.5))


def test_multi_valued_field_fills_slots_in_order(tmp_path, quiet_warnings):
    schema = Schema("tags", label=LabelSpec("y"), delimiter=";", vocabulary_order="sorted",
                    fields=(FieldSpec("user"), FieldSpec("tags", kind="multi_categorical", separator="|",
                                                         max_values=2)))
    path = write_lines(tmp_path / "tags.csv", ["y;user;tags", "1;u1;a|b", "0;u2;b", "1;u1;", "0;u2;c|a|b", "1;u3;b||a"])
    data = prepare_dataset(schema, path, tmp_path / "cache", split="time", split_fractions=(1, 0, 0))
    assert data.field_names == ("user", "tags_0", "tags_1")
    assert read_vocabulary(data.vocabulary_files()["tags_1"]) == ["a", "b", "c"]
    ids, _ = data.numpy_split("train")
    np.testing.assert_array_equal(ids, [[1, 1, 2], [2, 2, 0], [1, 0, 0], [2, 3, 1], [3, 2, 1]])
    assert data.report.values_truncated == {"tags": 1}
