import math

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.layers import DenseNumeric, NumericEmbedding
from tf_multiembed.layers.numeric import normalize_numeric

NAN = float("nan")


def _set_weights(layer, kernel, missing):
    layer.kernel.assign(np.asarray(kernel, np.float32))
    layer.missing_embeddings.assign(np.asarray(missing, np.float32))


def test_normalisation_by_hand_standard_log1p_and_missing():
    values = tf.constant([[3.0, math.e - 1.0, NAN], [-1.0, -5.0, float("inf")]])
    z, missing = normalize_numeric(values, means=[1.0, 0.5, 7.0], stds=[2.0, 0.25, 3.0], log1p=[False, True, False])
    # (3 - 1) / 2 = 1; (log1p(e - 1) - 0.5) / 0.25 = 2; missing -> 0; (-1 - 1) / 2 = -1; log1p(max(-5, 0)) = 0 ->
    # (0 - 0.5) / 0.25 = -2; inf is missing.
    np.testing.assert_allclose(z.numpy(), [[1.0, 2.0, 0.0], [-1.0, -2.0, 0.0]], atol=1e-6)
    np.testing.assert_array_equal(missing.numpy(), [[0, 0, 1], [0, 0, 1]])


def test_embedded_value_scales_the_field_vector_of_every_set_and_missing_reads_its_row():
    layer = NumericEmbedding(num_fields=2, num_sets=2, embedding_dim=3, means=[10.0, 0.0], stds=[5.0, 1.0])
    layer.build((None, 2))
    kernel = [[[1, 2, 3], [4, 5, 6]], [[-1, 0, 1], [2, 2, 2]]]  # [M=2, F=2, K=3]
    missing = [[[9, 9, 9], [8, 8, 8]], [[7, 7, 7], [6, 6, 6]]]
    _set_weights(layer, kernel, missing)
    out = layer(tf.constant([[20.0, NAN]])).numpy()  # z = [2, missing]
    assert out.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(out[0, 0], [[2, 4, 6], [8, 8, 8]])
    np.testing.assert_allclose(out[0, 1], [[-2, 0, 2], [6, 6, 6]])


def test_all_sets_at_once_equal_a_loop_of_one_set_layers():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 3)).astype(np.float32)
    values[1, 2] = np.nan
    stats = dict(means=[0.1, -0.2, 0.3], stds=[1.5, 0.5, 2.0], log1p=[False, False, True])
    many = NumericEmbedding(3, num_sets=4, embedding_dim=2, **stats)
    together = many(values).numpy()
    for m in range(4):
        single = NumericEmbedding(3, num_sets=1, embedding_dim=2, **stats)  # one set is SE
        single.build((None, 3))
        _set_weights(single, many.kernel.numpy()[m:m + 1], many.missing_embeddings.numpy()[m:m + 1])
        np.testing.assert_allclose(together[:, m:m + 1], single(values).numpy(), rtol=1e-6)


def test_no_nan_reaches_the_gradient_of_a_missing_value():
    layer = NumericEmbedding(1, num_sets=2, embedding_dim=2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tf.constant([[NAN], [2.0]])))
    gradients = tape.gradient(loss, layer.trainable_variables)
    for gradient in gradients:
        assert np.all(np.isfinite(gradient.numpy()))
    kernel_grad = dict(zip([v.name for v in layer.trainable_variables], gradients))
    assert len(kernel_grad) == 2


def test_default_initializer_bound_and_weight_shapes():
    layer = NumericEmbedding(num_fields=3, num_sets=4, embedding_dim=5)
    layer.build((None, 3))
    assert tuple(layer.kernel.shape) == (4, 3, 5) and tuple(layer.missing_embeddings.shape) == (4, 3, 5)
    bound = math.sqrt(6.0 / (2 * 3 + 5))
    assert np.abs(layer.kernel.numpy()).max() <= bound


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_fields=0), "num_fields"),
    (dict(num_fields=2, means=[0.0]), "`means` has 1 entries for 2 fields"),
    (dict(num_fields=1, stds=[0.0]), r"`stds\[0\]` must be a finite number > 0, received 0.0"),
    (dict(num_fields=1, means=[NAN]), r"`means\[0\]` must be a finite number"),
    (dict(num_fields=1, log1p=["yes"]), "`log1p` must hold booleans"),
    (dict(num_fields=2, field_names=["a"]), "`field_names` has 1 entries for 2 fields"),
])
def test_invalid_arguments_say_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NumericEmbedding(**kwargs)


def test_wrong_number_of_values_is_refused():
    with pytest.raises(ValueError, match=r"expected raw numeric values of shape \[batch, 2\]"):
        NumericEmbedding(2)(tf.zeros([3, 4]))


def test_dense_numeric_by_hand():
    layer = DenseNumeric(2, means=[1.0, 0.0], stds=[2.0, 1.0], log1p=[False, True])
    out = layer(tf.constant([[5.0, math.e ** 2 - 1.0], [NAN, 0.0]])).numpy()
    np.testing.assert_allclose(out, [[2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], atol=1e-5)


def test_configs_round_trip_and_a_keras_file_keeps_the_statistics(tmp_path):
    layer = NumericEmbedding(2, num_sets=3, embedding_dim=4, means=[1.0, 2.0], stds=[3.0, 4.0], log1p=[True, False],
                             field_names=["a", "b"])
    clone = NumericEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    dense = DenseNumeric(1, means=[5.0], stds=[2.0], field_names=["c"])
    assert DenseNumeric.from_config(dense.get_config()).get_config() == dense.get_config()

    inputs = tf.keras.Input((2,))
    model = tf.keras.Model(inputs, layer(inputs))
    values = np.array([[1.0, NAN], [3.0, 4.0]], np.float32)
    path = str(tmp_path / "numeric.keras")
    model.save(path)
    restored = tf.keras.models.load_model(path)
    np.testing.assert_allclose(restored(values).numpy(), model(values).numpy())
    assert restored.layers[-1].means == [1.0, 2.0] and restored.layers[-1].log1p == [True, False]
