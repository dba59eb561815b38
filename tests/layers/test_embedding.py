import math

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.layers import MultiEmbedding


def _layer_with_table(vocabulary_sizes, num_sets, dim):
    """A built layer whose table row r, column c holds 1000*r + c, so every output value names its source."""
    layer = MultiEmbedding(vocabulary_sizes, num_sets=num_sets, embedding_dim=dim)
    layer.build((None, len(vocabulary_sizes)))
    rows, cols = sum(vocabulary_sizes), num_sets * dim
    layer.embeddings.assign(1000.0 * np.arange(rows)[:, None] + np.arange(cols)[None, :])
    return layer


def test_output_layout_is_batch_sets_fields_dim_with_field_offsets():
    layer = _layer_with_table([3, 4, 2], num_sets=2, dim=3)
    out = layer(tf.constant([[2, 0, 1], [0, 3, 0]])).numpy()
    assert out.shape == (2, 2, 3, 3)
    # Example 0, field 1, id 0 -> fused row 3 (offset of field 1); set 1 -> columns 3..5.
    np.testing.assert_array_equal(out[0, 1, 1], [3003.0, 3004.0, 3005.0])
    # Example 0, field 2, id 1 -> row 3 + 4 + 1 = 8; set 0 -> columns 0..2.
    np.testing.assert_array_equal(out[0, 0, 2], [8000.0, 8001.0, 8002.0])
    # Example 1, field 1, id 3 -> row 6, set 0.
    np.testing.assert_array_equal(out[1, 0, 1], [6000.0, 6001.0, 6002.0])
    assert layer.field_offsets == [0, 3, 7]


def test_one_set_is_the_single_embedding_lookup():
    sizes = [5, 7]
    layer = MultiEmbedding(sizes, num_sets=1, embedding_dim=4)
    ids = tf.constant([[4, 0], [1, 6]])
    out = layer(ids)
    table = layer.embeddings.numpy()
    expected = np.stack([table[[4, 5 + 0]], table[[1, 5 + 6]]])[:, None]
    np.testing.assert_array_equal(out.numpy(), expected)


def test_sets_are_column_blocks_of_the_fused_table_and_field_table_slices_them():
    layer = _layer_with_table([3, 4], num_sets=3, dim=2)
    np.testing.assert_array_equal(layer.field_table(1, set_index=2).numpy()[0], [3004.0, 3005.0])
    assert layer.field_table(1).shape == (4, 6)
    assert layer.field_table(0, set_index=0).shape == (3, 2)
    with pytest.raises(ValueError, match=r"field_index must be in \[0, 2\), received 2"):
        layer.field_table(2)
    with pytest.raises(ValueError, match=r"set_index must be in \[0, 3\), received 3"):
        layer.field_table(0, set_index=3)


def test_default_initializer_is_reference_xavier_uniform_over_the_whole_table():
    sizes = [2000, 3000]
    layer = MultiEmbedding(sizes, num_sets=2, embedding_dim=10)
    layer.build((None, 2))
    table = layer.embeddings.numpy()
    bound = math.sqrt(6.0 / (5000 + 10))
    assert np.abs(table).max() <= bound
    assert np.abs(table).max() > 0.95 * bound  # uniform over the full range, not a narrower default
    assert abs(table.std() - bound / math.sqrt(3)) < 0.02 * bound


def test_custom_initializer_and_regularizer():
    layer = MultiEmbedding([3, 3], num_sets=2, embedding_dim=2, embeddings_initializer="ones",
                           embeddings_regularizer=tf.keras.regularizers.L2(0.5))
    layer(tf.constant([[0, 0]]))
    np.testing.assert_array_equal(layer.embeddings.numpy(), np.ones((6, 4)))
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * 24.0)


def test_gradient_is_sparse_over_looked_up_rows():
    layer = MultiEmbedding([4, 5], num_sets=2, embedding_dim=3)
    with tf.GradientTape() as tape:
        out = layer(tf.constant([[1, 2]]))
    gradient = tape.gradient(out, layer.trainable_variables)[0]
    assert isinstance(gradient, tf.IndexedSlices)
    np.testing.assert_array_equal(np.sort(gradient.indices.numpy()), [1, 6])


@pytest.mark.parametrize("bad_ids, field, value, size", [
    ([[0, 5]], 1, 5, 5),
    ([[4, 0]], 0, 4, 4),
    ([[-1, 0]], 0, -1, 4),
])
def test_out_of_range_ids_fail_with_the_field_and_the_expected_range(bad_ids, field, value, size):
    layer = MultiEmbedding([4, 5], num_sets=2, embedding_dim=3, field_names=["user", "item"])
    # Eager and graph mode print the assertion's data differently: numbers between quoted message pieces.
    expected = (rf"(?s)out of range in field\D*?{field}\D*?received\D*?{value}\D*?expected 0 <= id <\D*?{size}\D"
                r".*fields: 0=user, 1=item")
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        layer(tf.constant(bad_ids))


def test_out_of_range_ids_fail_inside_a_compiled_function():
    layer = MultiEmbedding([4, 5], num_sets=1, embedding_dim=3)
    lookup = tf.function(lambda ids: layer(ids))
    lookup(tf.constant([[3, 4]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"out of range in field\D*?1\D*?received\D*?9\D"):
        lookup(tf.constant([[3, 9]]))


def test_id_check_compiles_with_xla():
    layer = MultiEmbedding([4, 5], num_sets=2, embedding_dim=3)
    lookup = tf.function(lambda ids: layer(ids), jit_compile=True)
    np.testing.assert_array_equal(lookup(tf.constant([[3, 4]])).numpy(), layer(tf.constant([[3, 4]])).numpy())


def test_float_ids_and_wrong_field_count_are_rejected():
    layer = MultiEmbedding([4, 5], num_sets=1, embedding_dim=3)
    with pytest.raises(TypeError, match="ids must be an integer tensor"):
        layer(tf.constant([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"expected ids of shape \[batch, 2\].*received shape \(None, 3\)"):
        MultiEmbedding([4, 5]).build((None, 3))


@pytest.mark.parametrize("kwargs, message", [
    (dict(vocabulary_sizes=[4, 5], num_sets=0), r"`num_sets` must be a positive integer, received 0"),
    (dict(vocabulary_sizes=[4, 5], embedding_dim=-3), r"`embedding_dim` must be a positive integer, received -3"),
    (dict(vocabulary_sizes=[]), r"`vocabulary_sizes` must not be empty"),
    (dict(vocabulary_sizes=[4, 0]), r"`vocabulary_sizes\[1\]` must be a positive integer, received 0"),
    (dict(vocabulary_sizes="45"), r"`vocabulary_sizes` must be a list of positive integers"),
    (dict(vocabulary_sizes=[4, 5], field_names=["a"]), r"`field_names` has 1 entries but `vocabulary_sizes` has 2"),
])
def test_invalid_arguments_say_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiEmbedding(**kwargs)


def test_config_round_trip():
    layer = MultiEmbedding([4, 5], num_sets=3, embedding_dim=2, field_names=["a", "b"], validate_ids=False,
                           embeddings_regularizer=tf.keras.regularizers.L2(1e-6), name="emb")
    clone = MultiEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.vocabulary_sizes, clone.num_sets, clone.embedding_dim) == ([4, 5], 3, 2)


def test_mixed_precision_keeps_a_float32_table_and_casts_only_the_looked_up_rows():
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = MultiEmbedding([3, 4], num_sets=2, embedding_dim=2)
        with tf.GradientTape() as tape:
            out = layer(tf.constant([[2, 1]]))
            loss = tf.reduce_sum(tf.cast(out, tf.float32))
        gradient = tape.gradient(loss, layer.trainable_variables)[0]
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.bfloat16 and layer.embeddings.dtype == tf.float32
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy()[0, :, 0], np.array(
        layer.embeddings)[2].reshape(2, 2), rtol=1e-2)
    # The gradient stays a float32 gather gradient of the looked-up rows (sparse updates need it).
    assert isinstance(gradient, tf.IndexedSlices) and gradient.values.dtype == tf.float32
    assert sorted(gradient.indices.numpy().tolist()) == [2, 4]


def test_xla_compiles_the_training_step_once_whatever_the_id_values(tmp_path):
    """The run-time id check must not make XLA treat id values as compile-time constants: that recompiled the whole
    step for every new batch (seconds each). XLA dumps one module set per compilation; 1 batch and 3 batches of other
    ids (same shapes) must give the same number."""
    import os
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parent / "xla_compilations_script.py"
    counts = []
    for batches in (1, 3):
        dump = tmp_path / f"dump{batches}"
        environment = dict(os.environ, XLA_FLAGS=f"--xla_dump_to={dump}", TF_CPP_MIN_LOG_LEVEL="2")
        process = subprocess.run([sys.executable, str(script), str(batches)], env=environment, capture_output=True,
                                 text=True, timeout=300)
        assert process.returncode == 0, process.stderr[-3000:]
        counts.append(len(list(dump.glob("*before_optimizations.txt"))))
    assert counts[0] >= 1 and counts[1] == counts[0], counts
