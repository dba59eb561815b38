"""Checkpoints by object graph: a model whose variables are built in another order restores each weight into its own
place (or refuses), never into a neighbour of the same shape; a weight hidden from the object graph is refused."""

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.training import CheckpointMismatchError, PaperRecipe, RunCheckpoints, TrainingProgress, compile_model


class TwoWeights(tf.keras.layers.Layer):
    """y = x * a + 2 x * b, with `a` and `b` of one shape, created in either order."""

    def __init__(self, b_first=False, **kwargs):
        super().__init__(**kwargs)
        self.b_first = b_first

    def build(self, input_shape):
        for name in ("b", "a") if self.b_first else ("a", "b"):
            setattr(self, name, self.add_weight(name=name, shape=(3,), initializer="random_normal"))

    def call(self, inputs):
        return inputs * self.a + 2.0 * inputs * self.b


def _names(variables):
    return [variable.name.split("/")[-1].split(":")[0] for variable in variables]  # "a" in both Keras runtimes


def _model(b_first: bool) -> tf.keras.Model:
    inputs = tf.keras.Input((3,))
    probability = tf.keras.layers.Activation("sigmoid")(TwoWeights(b_first, name="two")(inputs))
    model = compile_model(tf.keras.Model(inputs, probability), PaperRecipe(learning_rate=0.1))
    model.optimizer.build(model.trainable_variables)
    return model


def test_a_reordered_construction_restores_each_weight_into_its_own_place(tmp_path):
    tf.keras.utils.set_random_seed(0)
    saved = _model(b_first=False)
    saved.fit(np.ones((8, 3), np.float32), np.ones((8, 3), np.float32), batch_size=8, verbose=0)
    layer = saved.get_layer("two")
    a, b = layer.a.numpy(), layer.b.numpy()
    assert not np.allclose(a, b)  # otherwise a swap could not be seen
    assert _names(saved.trainable_variables) == ["a", "b"]
    progress = TrainingProgress()
    checkpoints = RunCheckpoints(str(tmp_path), saved, progress)
    checkpoints.save()
    checkpoints.save_best()

    reordered = _model(b_first=True)
    assert _names(reordered.trainable_variables) == ["b", "a"]  # list positions swapped
    assert RunCheckpoints(str(tmp_path), reordered, TrainingProgress()).restore_best()
    np.testing.assert_array_equal(reordered.get_layer("two").a.numpy(), a)
    np.testing.assert_array_equal(reordered.get_layer("two").b.numpy(), b)
    # The optimizer's moments are kept in list order: a restore that would pair them with the wrong weights is
    # refused, naming the variables.
    with pytest.raises(CheckpointMismatchError, match="another order.*'two/a' then, 'two/b' now"):
        RunCheckpoints(str(tmp_path), _model(b_first=True), TrainingProgress()).restore_latest()
    # The same construction resumes everything, optimizer moments included.
    same = _model(b_first=False)
    assert RunCheckpoints(str(tmp_path), same, TrainingProgress()).restore_latest()
    for restored, original in zip(same.optimizer.variables, saved.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(original))


class HiddenWeight(tf.keras.layers.Layer):
    """Keeps its weight only in a plain dict that TensorFlow's object graph does not see."""

    def build(self, input_shape):
        hidden = self.add_weight(name="hidden", shape=(3,), initializer="ones")
        object.__setattr__(self, "_store", {"w": hidden})

    def call(self, inputs):
        return inputs * self._store["w"]


def test_a_trainable_weight_out_of_the_object_graph_is_refused(tmp_path):
    inputs = tf.keras.Input((3,))
    model = compile_model(tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid")(HiddenWeight()(inputs))))
    with pytest.raises(ValueError, match="not reachable through layer attributes"):
        RunCheckpoints(str(tmp_path), model, TrainingProgress())
