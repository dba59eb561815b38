"""CoupledL2Adam: equals Adam on g + l2*w, dense vs looked-up rows, distribution scaling, argument checks."""

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.training.optimizers import CoupledL2Adam


def _run(optimizer, variable, gradients):
    for gradient in gradients:
        optimizer.apply_gradients([(gradient, variable)])
    return variable.numpy()


def _adam_reference(weights, gradients, l2, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """PyTorch's Adam(weight_decay=l2) by hand (float64)."""
    weights = np.array(weights, dtype=np.float64)
    m = np.zeros_like(weights)
    v = np.zeros_like(weights)
    for step, gradient in enumerate(gradients, start=1):
        g = np.asarray(gradient, dtype=np.float64) + l2 * weights
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat, v_hat = m / (1 - beta_1 ** step), v / (1 - beta_2 ** step)
        weights = weights - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
    return weights


def test_matches_pytorch_adam_with_weight_decay_by_hand():
    initial = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
    gradients = [np.array([[0.1, -0.2], [0.0, 0.3]], np.float32), np.array([[-0.1, 0.05], [0.2, 0.0]], np.float32),
                 np.zeros((2, 2), np.float32)]
    variable = tf.Variable(initial)
    result = _run(CoupledL2Adam(learning_rate=0.1, l2=0.5), variable, [tf.constant(g) for g in gradients])
    # float32 arithmetic, and Keras adds epsilon to sqrt(v) before bias correction (docs/training.md).
    np.testing.assert_allclose(result, _adam_reference(initial, gradients, l2=0.5, learning_rate=0.1), atol=1e-5)
    # The decay is coupled: with zero gradients the weights still move, unlike plain Adam.
    still = tf.Variable(initial)
    moved = _run(CoupledL2Adam(learning_rate=0.1, l2=0.5), still, [tf.zeros((2, 2))] * 2)
    assert np.all(np.abs(moved) < np.abs(initial))


def test_zero_l2_is_plain_adam_with_pytorch_epsilon():
    initial = np.array([1.0, 2.0], np.float32)
    gradients = [tf.constant([0.3, -0.1]), tf.constant([0.2, 0.4])]
    coupled = _run(CoupledL2Adam(learning_rate=0.01, l2=0.0), tf.Variable(initial), gradients)
    plain = _run(tf.keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-8), tf.Variable(initial), gradients)
    np.testing.assert_allclose(coupled, plain, rtol=1e-6)


def _sparse_gradient():
    # Rows 1 and 3 looked up; row 3 twice (its slices must be summed before the L2 term is added once).
    return tf.IndexedSlices(values=tf.constant([[0.1, 0.1], [0.2, -0.2], [0.3, 0.1]]),
                            indices=tf.constant([1, 3, 3]), dense_shape=tf.constant([4, 2]))


def test_all_rows_decay_by_default_like_dense_embedding_gradients():
    initial = np.arange(8, dtype=np.float32).reshape(4, 2) + 1.0
    variable = tf.Variable(initial)
    result = _run(CoupledL2Adam(learning_rate=0.1, l2=0.5), variable, [_sparse_gradient()])
    dense = np.zeros((4, 2), np.float32)
    dense[1] = [0.1, 0.1]
    dense[3] = [0.5, -0.1]
    np.testing.assert_allclose(result, _adam_reference(initial, [dense], l2=0.5, learning_rate=0.1), atol=1e-5)
    assert np.all(result[[0, 2]] != initial[[0, 2]])  # rows not looked up decayed too


def test_looked_up_rows_mode_leaves_other_rows_alone():
    initial = np.arange(8, dtype=np.float32).reshape(4, 2) + 1.0
    variable = tf.Variable(initial)
    result = _run(CoupledL2Adam(learning_rate=0.1, l2=0.5, l2_rows="looked_up"), variable, [_sparse_gradient()])
    np.testing.assert_array_equal(result[[0, 2]], initial[[0, 2]])
    dense = np.zeros((4, 2), np.float32)
    dense[1] = [0.1, 0.1]
    dense[3] = [0.5, -0.1]
    expected = _adam_reference(initial, [dense], l2=0.5, learning_rate=0.1)
    np.testing.assert_allclose(result[[1, 3]], expected[[1, 3]], atol=1e-5)


def test_config_round_trip_and_argument_errors():
    optimizer = CoupledL2Adam(learning_rate=0.01, l2=3e-6, l2_rows="looked_up", epsilon=1e-8)
    clone = CoupledL2Adam.from_config(optimizer.get_config())
    assert (clone.l2, clone.l2_rows, float(clone.epsilon)) == (3e-6, "looked_up", 1e-8)
    with pytest.raises(ValueError, match="decoupled"):
        CoupledL2Adam(weight_decay=1e-4)
    with pytest.raises(ValueError, match="`l2` must be a number >= 0"):
        CoupledL2Adam(l2=-1.0)
    with pytest.raises(ValueError, match="`l2_rows` must be"):
        CoupledL2Adam(l2_rows="some")


def test_model_fit_applies_the_l2_term_to_every_variable():
    # With a zero loss gradient, fit's step is plain Adam on the gradient l2 * w, for every variable.
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, bias_initializer="ones")])
    before = [w.copy() for w in model.get_weights()]
    model.compile(CoupledL2Adam(learning_rate=0.01, l2=1e-3), loss=lambda y, p: 0.0 * tf.reduce_sum(p))
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), batch_size=4, epochs=1, verbose=0)
    for old, new in zip(before, model.get_weights()):
        expected = _run(tf.keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-8), tf.Variable(old),
                        [tf.constant(1e-3 * old)])
        np.testing.assert_allclose(new, expected, rtol=1e-6)
        assert np.all(np.abs(new) < np.abs(old))
