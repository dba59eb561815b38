import re

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.layers import MultiEmbedding


def _layer(combiner="mean", num_sets=2):
    # Field 0: single-valued, 3 rows. Field 1: a bag of up to 3 values from 4 rows.
    layer = MultiEmbedding([3, 4], num_sets=num_sets, embedding_dim=2, bag_sizes=[1, 3], bag_combiner=combiner)
    layer.build((None, 4))
    table = np.arange(7 * num_sets * 2, dtype=np.float32).reshape(7, num_sets * 2)
    layer.embeddings.assign(table)
    return layer, table


def test_mean_and_sum_pooling_of_a_bag_by_hand_per_set():
    layer, table = _layer("mean")
    ids = tf.constant([[2, 1, 3, -1], [0, -1, -1, -1], [1, 0, 0, 2]])
    out = layer(ids).numpy()  # [B, M, N, K]
    bag_rows = table[3:]  # field 1's rows start at offset 3
    for m in range(2):
        cols = slice(2 * m, 2 * m + 2)
        np.testing.assert_allclose(out[0, m, 0], table[2, cols])
        np.testing.assert_allclose(out[0, m, 1], (bag_rows[1, cols] + bag_rows[3, cols]) / 2)
        np.testing.assert_allclose(out[1, m, 1], [0.0, 0.0])  # an empty bag is the zero vector
        np.testing.assert_allclose(out[2, m, 1], (2 * bag_rows[0, cols] + bag_rows[2, cols]) / 3)
    summed, _ = _layer("sum")
    np.testing.assert_allclose(summed(ids).numpy()[0, :, 1], out[0, :, 1] * 2)


def test_weighted_bag():
    layer, table = _layer("mean", num_sets=1)
    ids = tf.constant([[0, 1, 2, -1]])
    weights = tf.constant([[9.0, 1.0, 3.0, 5.0]])  # the single field's and the padding's weights are ignored
    out = layer(ids, bag_weights=weights).numpy()
    np.testing.assert_allclose(out[0, 0, 1], (1 * table[4] + 3 * table[5]) / 4)
    np.testing.assert_allclose(out[0, 0, 0], table[0])


def test_all_sets_at_once_equal_one_set_layers_and_one_set_is_se():
    many = MultiEmbedding([5, 6], num_sets=3, embedding_dim=4, bag_sizes=[2, 3])
    ids = tf.constant([[1, -1, 0, 5, -1], [4, 2, -1, -1, -1]])
    together = many(ids).numpy()
    table = many.embeddings.numpy()
    for m in range(3):
        single = MultiEmbedding([5, 6], num_sets=1, embedding_dim=4, bag_sizes=[2, 3])
        single.build((None, 5))
        single.embeddings.assign(table[:, 4 * m:4 * m + 4])
        np.testing.assert_allclose(together[:, m:m + 1], single(ids).numpy(), rtol=1e-6)


def test_bags_of_one_value_equal_the_plain_layer_and_all_ones_is_the_paper_layout():
    plain = MultiEmbedding([5, 6], num_sets=2, embedding_dim=3)
    ids = tf.constant([[1, 2], [4, 0]])
    reference = plain(ids).numpy()
    ones = MultiEmbedding([5, 6], num_sets=2, embedding_dim=3, bag_sizes=[1, 1])
    assert ones.bag_sizes is None and "bag_sizes" not in ones.get_config()
    bagged = MultiEmbedding([5, 6], num_sets=2, embedding_dim=3, bag_sizes=[1, 2])
    bagged.build((None, 3))
    bagged.embeddings.assign(plain.embeddings.numpy())
    np.testing.assert_allclose(bagged(tf.constant([[1, 2, -1], [4, 0, -1]])).numpy(), reference, rtol=1e-6)


def test_the_gradient_is_one_sparse_update_of_the_looked_up_rows():
    layer = MultiEmbedding([3, 4], num_sets=2, embedding_dim=2, bag_sizes=[1, 3])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tf.constant([[2, 1, 3, -1]])))
    gradient = tape.gradient(loss, layer.embeddings)
    assert isinstance(gradient, tf.IndexedSlices)
    dense = tf.convert_to_tensor(gradient).numpy()
    np.testing.assert_allclose(dense[[2, 4, 6]], [[1] * 4, [0.5] * 4, [0.5] * 4])
    assert np.count_nonzero(dense) == 12


@pytest.mark.parametrize("ids, field, value", [
    ([[3, -1, -1, -1]], 0, 3),
    ([[0, 4, -1, -1]], 1, 4),
    ([[-1, 1, -1, -1]], 0, -1),  # -1 pads bags only
    ([[0, -2, -1, -1]], 1, -2),
])
def test_bad_ids_name_the_field(ids, field, value):
    layer, _ = _layer()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=re.escape(f"id out of range in field\"\n{field}\nb'received'\n{value}\n")):
        layer(tf.constant(ids))


def test_invalid_bag_arguments_and_config_round_trip():
    with pytest.raises(ValueError, match="`bag_sizes` has 1 entries but `vocabulary_sizes` has 2"):
        MultiEmbedding([3, 4], bag_sizes=[2])
    with pytest.raises(ValueError, match="`bag_combiner` must be 'mean' or 'sum', received 'max'"):
        MultiEmbedding([3, 4], bag_sizes=[1, 2], bag_combiner="max")
    with pytest.raises(ValueError, match=r"expected ids of shape \[batch, 4\] \(sum\(bag_sizes\) id columns\)"):
        MultiEmbedding([3, 4], bag_sizes=[1, 3])(tf.zeros([2, 2], tf.int64))
    layer = MultiEmbedding([3, 4], num_sets=2, bag_sizes=[1, 3], bag_combiner="sum")
    clone = MultiEmbedding.from_config(layer.get_config())
    assert clone.bag_sizes == [1, 3] and clone.bag_combiner == "sum" and clone.num_columns == 4


@pytest.mark.parametrize("combiner", ["mean", "sum"])
def test_bags_between_single_fields_pool_like_a_per_field_numpy_reference(combiner):
    # Runs of single fields before, between and after two bags: every field lands in its place.
    vocabulary, bags = [3, 5, 2, 4, 6, 3], [1, 3, 1, 1, 2, 1]
    layer = MultiEmbedding(vocabulary, num_sets=2, embedding_dim=3, bag_sizes=bags, bag_combiner=combiner)
    layer.build((None, sum(bags)))
    table = np.random.default_rng(0).normal(size=(sum(vocabulary), 6)).astype(np.float32)
    layer.embeddings.assign(table)
    ids = np.array([[2, 4, 0, -1, 1, 3, 5, 2, 0], [0, -1, -1, -1, 0, 0, -1, -1, 2]])
    weights = np.array([[7.0, 2.0, 1.0, 4.0, 7.0, 7.0, 0.5, 1.5, 7.0]] * 2, np.float32)
    out = layer(tf.constant(ids), bag_weights=tf.constant(weights)).numpy()
    offsets, column = np.cumsum([0] + vocabulary[:-1]), 0
    for field, size in enumerate(bags):
        for row in range(2):
            values = [(ids[row, c], weights[row, c] if size > 1 else 1.0) for c in range(column, column + size)
                      if ids[row, c] >= 0]
            expected = sum((w * table[offsets[field] + i] for i, w in values), np.zeros(6, np.float32))
            if combiner == "mean" and values:
                expected = expected / sum(w for _, w in values)
            np.testing.assert_allclose(out[row, :, field].reshape(6), expected, rtol=1e-6, atol=1e-6)
        column += size
