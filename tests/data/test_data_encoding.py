"""RawFeatureEncoder: the in-graph encoding equals the offline build's, survives SavedModel export, and rejects bad
input by naming the feature."""

import math
import shutil

import numpy as np
import pytest
import tensorflow as tf

from data_test_files import SMALL_CRITEO_LINES, small_criteo_schema, write_grouplens, write_lines
from tf_multiembed.data import (RawFeatureEncoder, prepare_dataset, raw_feature_signature, raw_features_from_cells)
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.quality import BadInputTracker, SkippedInputWarning
from tf_multiembed.data.readers import MovieLensReader
from tf_multiembed.data.readers import movielens as movielens_reader

EXTRA_LINES = ["0\t2.5\t-7\tzz\t", "1\t\t\t\tx", "0\t1e9\t5\taa\tNULL"]  # unseen values, empties, "NULL" itself


def _cells_by_field(schema, lines):
    rows = [line.split("\t") for line in lines]
    return {field.name: [row[schema.column_names.index(field.column)] for row in rows] for field in schema.fields}


@pytest.mark.parametrize("min_count", [1, 2])
def test_encoder_equals_the_offline_encoding(tmp_path, min_count):
    schema = small_criteo_schema(min_count=min_count)
    lines = SMALL_CRITEO_LINES + EXTRA_LINES
    path = write_lines(tmp_path / "small.tsv", lines)
    data = prepare_dataset(schema, path, tmp_path / "cache", split="time", split_fractions=(1, 0, 0))
    offline, _ = data.numpy_split("train")  # file order
    encoder = data.feature_encoder()
    online = encoder(raw_features_from_cells(schema, _cells_by_field(schema, lines)))
    assert online.dtype == tf.int64 and online.shape == (9, 4)
    np.testing.assert_array_equal(online.numpy(), offline)
    assert encoder.vocabulary_sizes == data.vocabulary_sizes


def test_unseen_rare_and_missing_values_get_the_documented_ids(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(min_count=2), path, tmp_path / "cache")
    encoder = RawFeatureEncoder(data.schema, data.vocab_dir)
    ids = encoder({"I1": tf.constant([5.0, 7.0, math.nan, 0.0], tf.float64),   # "2" known; "3" unseen; NULL rare
                   "I2": tf.constant([3, 8, 3, 3], tf.int64),                     # int64 input works; "4" unseen
                   "C1": tf.constant(["aa", "cc", "", "zz"]),                     # cc rare (count 1), zz unseen
                   "C2": tf.constant(["y", "x", "", "NULL"])})
    np.testing.assert_array_equal(ids.numpy(), [[1, 1, 1, 2], [0, 0, 0, 1], [0, 1, 0, 0], [0, 1, 0, 0]])


def test_multi_valued_slots_match_offline(tmp_path):
    folder = write_grouplens(
        tmp_path / "ml", ratings=[(1, 10, 5, 1), (2, 11, 3, 2), (1, 12, 4, 3), (2, 10, 1, 4)],
        users=[(1, 24, "M", "x", "1"), (2, 30, "F", "y", "2")],
        items=[(10, "a", "01-Jan-1995", "0110000000000000000"), (11, "b", "", "0000000000000000000"),
               (12, "c", "01-Jan-1990", "0111100000000000000")])
    schema = schema_lib.movielens_schema(genre_slots=2)
    with pytest.warns(SkippedInputWarning, match=r"more values than slots .*\{'genres': 1\}"):
        data = prepare_dataset(schema, folder, tmp_path / "cache", split="time", split_fractions=(1, 0, 0))
    rows = [row for chunk in MovieLensReader(folder).read(BadInputTracker()) for row in chunk.rows]
    cells = {field.name: [row[movielens_reader.COLUMNS.index(field.column)] for row in rows]
             for field in schema.fields}
    online = data.feature_encoder()(raw_features_from_cells(schema, cells)).numpy()
    np.testing.assert_array_equal(online, data.numpy_split("train")[0])
    assert online[:, -2:].tolist() == [[1, 2], [0, 0], [1, 2], [1, 2]]  # Action(3) Adventure(3) Animation(1) ...


def test_saved_model_round_trip_without_the_original_vocabularies(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(min_count=1), path, tmp_path / "cache")
    schema = data.schema
    features = raw_features_from_cells(schema, _cells_by_field(schema, SMALL_CRITEO_LINES + EXTRA_LINES))
    encoder = data.feature_encoder()
    expected = encoder(features).numpy()
    export = tmp_path / "encoder"
    tf.saved_model.save(encoder, str(export), signatures={"serving_default": encoder.serve})
    shutil.rmtree(data.vocab_dir)
    loaded = tf.saved_model.load(str(export))
    tensors = {name: tf.constant(values) for name, values in features.items()}
    np.testing.assert_array_equal(loaded.serve(tensors).numpy(), expected)
    outputs = loaded.signatures["serving_default"](**tensors)
    np.testing.assert_array_equal(next(iter(outputs.values())).numpy(), expected)
    assert sorted(p.name for p in (export / "assets").iterdir()) == ["C1.txt", "C2.txt", "I1.txt", "I2.txt"]


def test_raw_feature_signature():
    signature = raw_feature_signature(schema_lib.criteo_schema())
    assert len(signature) == 39
    assert signature["I13"] == tf.TensorSpec([None], tf.float64, name="I13")
    assert signature["C1"] == tf.TensorSpec([None], tf.string, name="C1")
    assert set(raw_feature_signature(schema_lib.movielens_schema(genre_slots=3))) == {
        "user_id", "item_id", "age", "gender", "occupation", "zip_code", "release_year", "genres"}


@pytest.fixture
def small_encoder(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    return prepare_dataset(small_criteo_schema(), path, tmp_path / "cache").feature_encoder()


GOOD = {"I1": [1.0], "I2": [2.0], "C1": ["aa"], "C2": ["x"]}


@pytest.mark.parametrize("features, error, message", [
    ({"I1": [1.0], "C1": ["aa"]}, ValueError, r"missing raw features \['I2', 'C2'\]; expected all of"),
    ({**GOOD, "C1": [3]}, TypeError, r"feature 'C1' is categorical and must be tf.string, got int32"),
    ({**GOOD, "I2": ["7"]}, TypeError, r"feature 'I2' is numeric and must be a float or integer tensor"),
    ({**GOOD, "C2": [["x", "y"]]}, ValueError, r"feature 'C2' must have shape \[batch\]"),
    ([1, 2], TypeError, r"expects a mapping of feature name to values, got list"),
])
def test_bad_raw_features_name_the_feature(small_encoder, features, error, message):
    with pytest.raises(error, match=message):
        small_encoder(features)


def test_column_vectors_and_extra_features_are_accepted(small_encoder):
    ids = small_encoder({"I1": [[5.0]], "I2": [[3.0]], "C1": [["aa"]], "C2": [["x"]], "label": [1]})
    assert ids.numpy().tolist() == [[1, 1, 1, 1]]


def test_field_without_any_frequent_value_encodes_to_zero(tmp_path, caplog):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(min_count=4), path, tmp_path / "cache")  # nothing is seen 4 times
    assert data.vocabulary_sizes == (1, 1, 1, 1)
    assert "have no value seen min_count times" in caplog.text
    ids = data.feature_encoder()(GOOD).numpy()
    assert ids.tolist() == [[0, 0, 0, 0]]
    export = tmp_path / "encoder"
    tf.saved_model.save(data.feature_encoder(), str(export))
    signature = raw_feature_signature(data.schema)
    tensors = {name: tf.constant(values, signature[name].dtype) for name, values in GOOD.items()}
    assert tf.saved_model.load(str(export)).serve(tensors).numpy().tolist() == [[0, 0, 0, 0]]


def test_missing_vocabulary_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"vocabulary files \[.*I1.txt"):
        RawFeatureEncoder(small_criteo_schema(), tmp_path)


def test_raw_cells_must_be_numbers_in_numeric_fields():
    cells = {"I1": ["1", "x"], "I2": ["", ""], "C1": ["a", "b"], "C2": ["", ""]}
    with pytest.raises(ValueError, match=r"Raw feature 'I1', row 1: expected a number or an empty cell, got 'x'"):
        raw_features_from_cells(small_criteo_schema(), cells)
    features = raw_features_from_cells(small_criteo_schema(), {**cells, "I1": ["1", "2"]})
    assert features["I2"].dtype == np.float64 and np.isnan(features["I2"]).all()
