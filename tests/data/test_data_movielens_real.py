"""The real MovieLens-100K of ../shared/data: the reference protocol's vocabularies and split, serving parity, and
one epoch of a zoo model on the prepared input. Skipped with a message where the shared data is absent."""

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.data import prepare_dataset, raw_features_from_cells
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.vocabulary import read_vocabulary

REFERENCE_VOCABULARY_SIZES = (944, 1683, 62, 3, 22, 796, 74, 217)


@pytest.fixture(scope="module")
def prepared(shared_ml100k_dir, tmp_path_factory):
    return shared_ml100k_dir, prepare_dataset("movielens", shared_ml100k_dir, tmp_path_factory.mktemp("ml-cache"))


def _reference_rows(folder):
    """The joined rows (8 feature values, label) in file order, read without the package's readers."""
    def table(name):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()[1:]
        return {fields[0]: fields[1:] for fields in (line.split("\t") for line in lines)}

    users, items = table("ml-100k.user"), table("ml-100k.item")
    rows = []
    for line in (folder / "ml-100k.inter").read_text().splitlines()[1:]:
        user, item, rating, _ = line.split("\t")
        age, gender, occupation, zip_code = users[user]
        _, year, genres = items[item]
        rows.append(([user, item, age, gender, occupation, zip_code, year, genres], float(rating) >= 4))
    return rows


def test_reference_vocabulary_sizes_and_split_sizes(prepared):
    _, data = prepared
    assert data.vocabulary_sizes == REFERENCE_VOCABULARY_SIZES
    assert data.split_rows == {"train": 80000, "validation": 10000, "test": 10000}
    assert data.report.rows_skipped == 0 and data.report.lines_read == 100000
    assert len(data.report.files_read) == 3


def test_test_split_is_the_reference_rows_in_reference_order(prepared):
    folder, data = prepared
    rows = _reference_rows(folder)
    vocabularies = [dict((token, index) for index, token in enumerate(read_vocabulary(path), start=1))
                    for path in data.vocabulary_files().values()]
    order = np.random.default_rng(0).permutation(len(rows))
    expected_ids = [[vocabulary[value] for vocabulary, value in zip(vocabularies, rows[row][0])]
                    for row in order[90000:]]
    expected_labels = [float(rows[row][1]) for row in order[90000:]]
    ids, labels = data.numpy_split("test")
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(labels, expected_labels)
    assert 0.5 < labels.mean() < 0.6  # about 55% of ratings are >= 4
    # Serving: the raw values of the same rows encode to the same ids inside the graph.
    cells = {name: [rows[row][0][position] for row in order[90000:]]
             for position, name in enumerate(data.field_names)}
    online = data.feature_encoder()(raw_features_from_cells(data.schema, cells))
    np.testing.assert_array_equal(online.numpy(), ids)


def test_sorted_vocabulary_order_option(shared_ml100k_dir, tmp_path):
    schema = schema_lib.movielens_schema(vocabulary_order="sorted")
    data = prepare_dataset(schema, shared_ml100k_dir, tmp_path)
    tokens = read_vocabulary(data.vocabulary_files()["occupation"])
    assert tokens == sorted(tokens) and len(tokens) == 21
    assert data.vocabulary_sizes == REFERENCE_VOCABULARY_SIZES


def test_one_epoch_of_a_zoo_model_on_the_prepared_input(prepared):
    from tf_multiembed.models import build_model

    _, data = prepared
    tf.keras.utils.set_random_seed(0)
    model = build_model("dnn", data.vocabulary_sizes, scale=2, multi_embedding=True, hidden_units=(64,),
                        field_names=data.field_names)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=[tf.keras.metrics.AUC(name="auc")])
    history = model.fit(data.train_dataset(2048, seed=0, repeat=True), validation_data=data.validation_dataset(4096),
                        steps_per_epoch=data.num_batches("train", 2048),
                        validation_steps=data.num_batches("validation", 4096), shuffle=False, epochs=1, verbose=0)
    assert data.num_batches("train", 2048) == 40 and data.num_batches("train", 2048, drop_remainder=True) == 39
    assert np.isfinite(history.history["loss"][0])
    assert history.history["val_auc"][0] > 0.7  # the reference reaches about 0.77 after early stopping
