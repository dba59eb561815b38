"""The data layer under legacy Keras 2 (tf-keras, TF_USE_LEGACY_KERAS=1): vocabulary files, pipelines and the
raw-feature encoder do not depend on the Keras runtime."""

import numpy as np
import tensorflow as tf

from data_test_files import SMALL_CRITEO_LINES, small_criteo_schema, write_lines
from tf_multiembed.data import prepare_dataset, raw_features_from_cells


def test_runtime_is_legacy_keras():
    assert tf.keras.__name__.startswith("tf_keras") or tf.keras.__version__.startswith("2.")


def test_string_lookup_reads_the_vocabulary_files(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(min_count=1), path, tmp_path / "cache")
    lookup = tf.keras.layers.StringLookup(vocabulary=str(data.vocabulary_files()["C1"]), num_oov_indices=1)
    assert lookup(tf.constant(["aa", "bb", "cc", "zz"])).numpy().tolist() == [1, 2, 3, 0]


def test_pipeline_feeds_a_legacy_keras_model_and_the_encoder_matches(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES * 20)
    data = prepare_dataset(small_criteo_schema(min_count=1), path, tmp_path / "cache", split="time")
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(data.num_fields,), dtype=tf.int64),
        tf.keras.layers.Embedding(sum(data.vocabulary_sizes), 4),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    offsets = tf.constant(np.cumsum([0] + list(data.vocabulary_sizes[:-1])), tf.int64)
    train = data.train_dataset(16, seed=0).map(lambda ids, label: (ids + offsets, label))
    history = model.fit(train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    schema = data.schema
    cells = {field.name: [line.split("\t")[schema.column_names.index(field.column)] for line in SMALL_CRITEO_LINES]
             for field in schema.fields}
    ids = data.feature_encoder()(raw_features_from_cells(schema, cells)).numpy()
    np.testing.assert_array_equal(ids, data.numpy_split("train")[0][:6])  # time split: file order
