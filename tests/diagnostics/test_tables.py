"""Embedding-table slicing, id counting and per-field Gram matrices."""

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.diagnostics import tables as tables_lib
from tf_multiembed.layers import MultiEmbedding


def _layer(sizes=(4, 3, 5), num_sets=2, dim=3):
    layer = MultiEmbedding(list(sizes), num_sets=num_sets, embedding_dim=dim, field_names=["a", "b", "c"])
    layer(tf.zeros([1, len(sizes)], tf.int64))
    return layer


def test_field_rows_follow_the_layer_layout():
    layer = _layer()
    tables = tables_lib.EmbeddingTables.from_layer(layer)
    assert tables.field_names == ("a", "b", "c")
    assert tables.field_offsets == [0, 4, 7]
    for field in range(3):
        np.testing.assert_array_equal(tables.field_rows(field).numpy(), layer.field_table(field).numpy())
        for set_index in range(2):
            np.testing.assert_array_equal(
                tables.field_rows(field).numpy()[:, tables.set_columns(set_index)],
                layer.field_table(field, set_index).numpy())


def test_tables_read_the_variable_live():
    layer = _layer()
    tables = tables_lib.EmbeddingTables.from_layer(layer)
    layer.embeddings.assign(tf.ones_like(layer.embeddings) * 2.0)
    np.testing.assert_array_equal(tables.field_rows(1).numpy(), np.full((3, 6), 2.0))


def test_tables_validate_layout():
    with pytest.raises(ValueError, match=r"expected \(7, 4\)"):
        tables_lib.EmbeddingTables(np.ones((6, 4)), (3, 4), num_sets=2, embedding_dim=2)
    with pytest.raises(ValueError, match="one name per field"):
        tables_lib.EmbeddingTables(np.ones((7, 4)), (3, 4), 2, 2, field_names=("x",))
    with pytest.raises(ValueError, match="field_index"):
        tables_lib.EmbeddingTables(np.ones((7, 4)), (3, 4), 2, 2).field_rows(2)
    with pytest.raises(ValueError, match="not built"):
        tables_lib.EmbeddingTables.from_layer(MultiEmbedding([3], 1, 2))


def test_count_ids_by_hand_and_from_a_dataset():
    ids = np.array([[0, 2], [1, 2], [1, 0]])
    counts = tables_lib.count_ids(ids, [2, 3])
    assert [c.tolist() for c in counts] == [[1, 2], [1, 0, 2]]
    dataset = tf.data.Dataset.from_tensor_slices((ids, np.zeros(3))).batch(2)
    assert [c.tolist() for c in tables_lib.count_ids(dataset, [2, 3])] == [[1, 2], [1, 0, 2]]
    with pytest.raises(ValueError, match=r"field 1: id 3 is outside \[0, 3\)"):
        tables_lib.count_ids(np.array([[0, 3]]), [2, 3])
    with pytest.raises(ValueError, match=r"expected \[batch, 2\]"):
        tables_lib.count_ids(np.array([[0, 1, 1]]), [2, 3])


def test_check_id_counts_accepts_flat_or_per_field():
    per_field = tables_lib.check_id_counts(np.array([1, 0, 3, 0, 2]), [2, 3])
    assert [c.tolist() for c in per_field] == [[1, 0], [3, 0, 2]]
    with pytest.raises(ValueError, match="sum\\(vocabulary_sizes\\) = 5"):
        tables_lib.check_id_counts(np.array([1, 0, 3]), [2, 3])
    with pytest.raises(ValueError, match=r"field 1 has \(2,\) counts, expected \(3,\)"):
        tables_lib.check_id_counts([np.ones(2), np.ones(2)], [2, 3])


@pytest.mark.parametrize("as_tensor", [False, True])
def test_field_grams_exclude_untrained_rows(as_tensor):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((9, 4)).astype(np.float32)
    tables = tables_lib.EmbeddingTables(tf.Variable(weights) if as_tensor else weights, (4, 5), 2, 2)
    counts = [np.array([3, 0, 1, 1]), np.array([0, 0, 0, 0, 0])]
    grams = tables_lib.field_grams(tables, id_counts=counts)
    kept = weights[[0, 2, 3]].astype(np.float64)
    np.testing.assert_allclose(grams[0].gram, kept.T @ kept, rtol=1e-6)
    assert (grams[0].analysed_rows, grams[0].excluded_rows) == (3, 1)
    everything = weights[:4].astype(np.float64)
    np.testing.assert_allclose(grams[0].all_rows_gram, everything.T @ everything, rtol=1e-6)
    assert (grams[1].analysed_rows, grams[1].excluded_rows) == (0, 5)
    np.testing.assert_array_equal(grams[1].gram, np.zeros((4, 4)))
    # Only rows seen at least twice count as trained with min_count=2.
    assert tables_lib.field_grams(tables, id_counts=counts, min_count=2)[0].analysed_rows == 1
    with pytest.raises(ValueError, match="min_count"):
        tables_lib.field_grams(tables, id_counts=counts, min_count=0)
