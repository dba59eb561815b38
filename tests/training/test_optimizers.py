"""CoupledL2Adam: equals Adam on g + l2*w; dense updates move every row, sparse (lazy) updates only looked-up rows and
their slots; deduplication of slices; XLA; argument checks."""

import numpy as np
import pytest
import tensorflow as tf

import training_fixtures as tiny
from tf_multiembed import compat
from tf_multiembed.training.optimizers import CoupledL2Adam, deduplicate_slices, unique_slices


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
    np.testing.assert_allclose(result, _adam_reference(initial, gradients, l2=0.5, learning_rate=0.1), atol=1e-6)
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



@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_epsilon_is_added_to_the_bias_corrected_moment_as_in_pytorch(mode):
    # Gradients of the size of epsilon: the L2 term alone on the paper's small embeddings (1e-6 * 0.04). Adding
    # epsilon to sqrt(v) before the bias correction (Keras' Adam, TensorFlow's fused kernel) makes these steps
    # 3-7x smaller over the first steps than PyTorch's lr * m_hat / (sqrt(v_hat) + epsilon).
    initial = np.array([[0.04, -0.02], [0.01, 0.03]], np.float32)
    variable = tf.Variable(initial)
    gradients = [np.array([[0.0, 1e-8], [-2e-8, 0.0]], np.float32)] * 3
    if mode == "dense":
        fed = [tf.constant(g) for g in gradients]
        expected = _adam_reference(initial, gradients, l2=1e-6)
    else:  # both rows looked up: the lazy step of a looked-up row is the dense step
        fed = [tf.IndexedSlices(tf.constant(g), tf.constant([0, 1]), tf.constant([2, 2])) for g in gradients]
        expected, _, _ = _lazy_adam_reference(initial, [{0: g[0], 1: g[1]} for g in gradients], l2=1e-6,
                                              learning_rate=1e-3)
    result = _run(CoupledL2Adam(learning_rate=1e-3, l2=1e-6, embedding_updates=mode), variable, fed)
    assert np.all(np.abs(expected - initial) > 1e-3)  # each entry moves by more than one lr in 3 steps
    np.testing.assert_allclose(result - initial, expected - initial, rtol=1e-4)

def _sparse_gradient():
    # Rows 1 and 3 looked up; row 3 twice (its slices must be summed before the L2 term is added once).
    return tf.IndexedSlices(values=tf.constant([[0.1, 0.1], [0.2, -0.2], [0.3, 0.1]]),
                            indices=tf.constant([1, 3, 3]), dense_shape=tf.constant([4, 2]))


def _lazy_adam_reference(weights, steps, l2, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """Lazy Adam by hand (float64): each step is {row: summed gradient}; only those rows and their moments change."""
    weights = np.array(weights, dtype=np.float64)
    m, v = np.zeros_like(weights), np.zeros_like(weights)
    for step, rows in enumerate(steps, start=1):
        for row, gradient in rows.items():
            g = np.asarray(gradient, np.float64) + l2 * weights[row]
            m[row] = beta_1 * m[row] + (1 - beta_1) * g
            v[row] = beta_2 * v[row] + (1 - beta_2) * g * g
            m_hat, v_hat = m[row] / (1 - beta_1 ** step), v[row] / (1 - beta_2 ** step)
            weights[row] -= learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
    return weights, m, v


def _slots(optimizer, variable):
    return [np.array(slot) for slot in compat.adam_slots(optimizer, variable)]


def test_dense_mode_moves_every_row_like_dense_embedding_gradients():
    initial = np.arange(8, dtype=np.float32).reshape(4, 2) + 1.0
    variable = tf.Variable(initial)
    result = _run(CoupledL2Adam(learning_rate=0.1, l2=0.5, embedding_updates="dense"), variable, [_sparse_gradient()])
    dense = np.zeros((4, 2), np.float32)
    dense[1] = [0.1, 0.1]
    dense[3] = [0.5, -0.1]
    np.testing.assert_allclose(result, _adam_reference(initial, [dense], l2=0.5, learning_rate=0.1), atol=1e-5)
    assert np.all(result[[0, 2]] != initial[[0, 2]])  # rows not looked up decayed too


def test_sparse_mode_changes_only_looked_up_rows_and_their_slots_by_hand():
    initial = np.arange(8, dtype=np.float32).reshape(4, 2) + 1.0
    variable = tf.Variable(initial)
    optimizer = CoupledL2Adam(learning_rate=0.1, l2=0.5)  # sparse is the default
    second = tf.IndexedSlices(values=tf.constant([[-0.4, 0.2]]), indices=tf.constant([2]),
                              dense_shape=tf.constant([4, 2]))
    _run(optimizer, variable, [_sparse_gradient()])
    after_first = variable.numpy()
    m_first, _ = _slots(optimizer, variable)
    np.testing.assert_array_equal(after_first[[0, 2]], initial[[0, 2]])
    np.testing.assert_array_equal(m_first[[0, 2]], 0.0)
    _run(optimizer, variable, [second])
    # Step 2 looks up row 2 only: rows 1 and 3 keep their weights and moments (no decay, no momentum step).
    np.testing.assert_array_equal(variable.numpy()[[0, 1, 3]], after_first[[0, 1, 3]])
    np.testing.assert_array_equal(_slots(optimizer, variable)[0][[1, 3]], m_first[[1, 3]])
    steps = [{1: [0.1, 0.1], 3: [0.5, -0.1]}, {2: [-0.4, 0.2]}]  # row 3's two slices summed
    weights, m, v = _lazy_adam_reference(initial, steps, l2=0.5, learning_rate=0.1)
    np.testing.assert_allclose(variable.numpy(), weights, atol=1e-5)
    m_slot, v_slot = _slots(optimizer, variable)
    np.testing.assert_allclose(m_slot, m, atol=1e-6)
    np.testing.assert_allclose(v_slot, v, rtol=1e-4)  # float32 (1 - beta_2) is 1.3e-5 off
    np.testing.assert_array_equal(m_slot[0], 0.0)  # never looked up: slots untouched


def test_sparse_mode_gives_dense_variables_the_dense_step():
    # Only IndexedSlices gradients are lazy: a dense gradient gets the same step in both modes.
    initial = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    gradients = [tf.constant([[0.1, 0.0], [0.0, 0.3]])] * 2
    sparse = _run(CoupledL2Adam(learning_rate=0.1, l2=0.5), tf.Variable(initial), gradients)
    dense = _run(CoupledL2Adam(learning_rate=0.1, l2=0.5, embedding_updates="dense"), tf.Variable(initial), gradients)
    np.testing.assert_array_equal(sparse, dense)


def test_deduplicate_slices_sums_repeated_rows_into_static_shapes():
    gradient = tf.IndexedSlices(tf.constant([[1.0], [2.0], [4.0], [8.0], [16.0]]), tf.constant([5, 2, 5, 0, 5]))
    rows, values, valid = deduplicate_slices(gradient)
    assert rows.shape == (5,) and values.shape == (5, 1) and valid.shape == (5, 1)
    np.testing.assert_array_equal(rows.numpy(), [0, 2, 5, 0, 0])
    np.testing.assert_array_equal(values.numpy()[:, 0], [8.0, 2.0, 21.0, 0.0, 0.0])
    np.testing.assert_array_equal(valid.numpy()[:, 0], [1, 1, 1, 0, 0])
    empty = deduplicate_slices(tf.IndexedSlices(tf.zeros([0, 3]), tf.zeros([0], tf.int64)))
    assert [tuple(part.shape) for part in empty] == [(0,), (0, 3), (0, 1)]
    rows, values, valid = unique_slices(gradient)
    np.testing.assert_array_equal(rows.numpy(), [5, 2, 0])
    np.testing.assert_array_equal(values.numpy()[:, 0], [21.0, 2.0, 8.0])
    np.testing.assert_array_equal(valid.numpy()[:, 0], [1, 1, 1])


def test_sparse_update_compiles_with_xla_and_matches_eager():
    initial = np.arange(8, dtype=np.float32).reshape(4, 2) + 1.0
    eager_variable, xla_variable = tf.Variable(initial), tf.Variable(initial)
    # The eager optimizer takes tf.unique's dynamic shapes, the XLA one the static sorted deduplication.
    eager = CoupledL2Adam(learning_rate=0.1, l2=0.5)
    xla = CoupledL2Adam(learning_rate=0.1, l2=0.5, xla_compatible=True)
    xla.build([xla_variable])

    @tf.function(jit_compile=True)
    def xla_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(xla_variable, [1, 3, 3]) * [[0.1, 0.2]])
        xla.apply_gradients([(tape.gradient(loss, xla_variable), xla_variable)])

    for _ in range(2):
        xla_step()
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(eager_variable, [1, 3, 3]) * [[0.1, 0.2]])
        eager.apply_gradients([(tape.gradient(loss, eager_variable), eager_variable)])
    np.testing.assert_allclose(xla_variable.numpy(), eager_variable.numpy(), atol=1e-6)
    np.testing.assert_array_equal(xla_variable.numpy()[[0, 2]], initial[[0, 2]])


def test_config_round_trip_and_argument_errors():
    optimizer = CoupledL2Adam(learning_rate=0.01, l2=3e-6, embedding_updates="dense", epsilon=1e-8)
    clone = CoupledL2Adam.from_config(optimizer.get_config())
    assert (clone.l2, clone.embedding_updates, float(clone.epsilon), clone.xla_compatible) == (3e-6, "dense", 1e-8,
                                                                                             False)
    assert CoupledL2Adam().embedding_updates == "sparse"
    with pytest.raises(ValueError, match="decoupled"):
        CoupledL2Adam(weight_decay=1e-4)
    with pytest.raises(ValueError, match="`l2` must be a number >= 0"):
        CoupledL2Adam(l2=-1.0)
    with pytest.raises(ValueError, match="`embedding_updates` must be one of"):
        CoupledL2Adam(embedding_updates="lazy")
    with pytest.raises(ValueError, match="amsgrad"):
        CoupledL2Adam(amsgrad=True)


def test_model_fit_applies_the_l2_term_to_every_variable():
    # With a zero loss gradient, fit's step is plain Adam on the gradient l2 * w, for every variable.
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, bias_initializer="ones")])
    before = [w.copy() for w in model.get_weights()]
    model.compile(CoupledL2Adam(learning_rate=0.01, l2=1e-3), loss=lambda y, p: 0.0 * tf.reduce_sum(p))
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), batch_size=4, epochs=1, verbose=0)
    for old, new in zip(before, model.get_weights()):
        expected = _adam_reference(old, [np.zeros_like(old)], l2=1e-3, learning_rate=0.01)
        np.testing.assert_allclose(new, expected, rtol=1e-5, atol=1e-7)
        assert np.all(np.abs(new) < np.abs(old))


@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_model_fit_step_updates_looked_up_rows_or_every_row(mode):
    looked_up, changed, moved_moment = tiny.rows_changed_by_one_fit_step(mode)
    all_rows = set(range(sum(tiny.VOCABULARY_SIZES)))
    assert len(looked_up) < len(all_rows)
    expected = looked_up if mode == "sparse" else all_rows  # dense: L2 moves every row
    assert changed == expected and moved_moment == expected


def test_adam_slots_finds_each_variables_moments_and_refuses_other_optimizers():
    first, second = tf.Variable([1.0, 2.0]), tf.Variable([3.0, 4.0])
    optimizer = CoupledL2Adam(learning_rate=0.1, l2=0.0)
    optimizer.apply_gradients([(tf.constant([1.0, 0.0]), first), (tf.constant([0.0, 2.0]), second)])
    (m_first, _), (m_second, _) = compat.adam_slots(optimizer, first), compat.adam_slots(optimizer, second)
    np.testing.assert_allclose(m_first.numpy(), [0.1, 0.0], rtol=1e-6)  # (1 - beta_1) * gradient, each its own
    np.testing.assert_allclose(m_second.numpy(), [0.0, 0.2], rtol=1e-6)
    sgd = tf.keras.optimizers.SGD()
    sgd.build([first])
    with pytest.raises(RuntimeError, match="stores the slots of SGD differently"):
        compat.adam_slots(sgd, first)
