"""The fused batch norm (`layers.batch_norm.fused_batch_norm`) against the Keras `BatchNormalization` it stands in
for: outputs, gradients and moving statistics in training and inference, 16-bit inputs, a frozen layer, and
training under MirroredStrategy (2 logical CPUs). The file runs under Keras 3 and legacy tf-keras (`make test`)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.layers import MLP, SetBatchNormalization, SetMLP
from tf_multiembed.layers.batch_norm import fused_batch_norm

RNG = np.random.default_rng(3)
SCRIPT = pathlib.Path(__file__).resolve().parent / "batch_norm_mirrored_script.py"


def _twin_layers(features, seed=0):
    """Two built BatchNormalization layers with the same random gamma, beta and moving statistics."""
    layers = []
    for _ in range(2):
        layer = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
        layer.build((None, features))
        rng = np.random.default_rng(seed)
        layer.gamma.assign(rng.normal(1.0, 0.3, features))
        layer.beta.assign(rng.normal(0.0, 0.3, features))
        layer.moving_mean.assign(rng.normal(0.0, 1.0, features))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, features))
        layers.append(layer)
    return layers


def _statistics(layer):
    return [np.asarray(layer.moving_mean), np.asarray(layer.moving_variance)]


@pytest.mark.parametrize("training", [True, False])
def test_fused_equals_keras_outputs_gradients_and_moving_statistics(training):
    keras_layer, fused_layer = _twin_layers(6)
    for _ in range(3):  # three updates of the moving statistics
        x = tf.constant(RNG.normal(2.0, 3.0, (32, 6)).astype("float32"))
        upstream = tf.constant(RNG.normal(size=(32, 6)).astype("float32"))
        results = []
        for layer, function in ((keras_layer, lambda bn, v: bn(v, training=training)),
                                (fused_layer, lambda bn, v: fused_batch_norm(bn, v, training=training))):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = function(layer, x)
                loss = tf.reduce_sum(y * upstream)
            gradients = tape.gradient(loss, [x, layer.gamma, layer.beta])
            results.append([y.numpy()] + [g.numpy() for g in gradients])
        for keras_value, fused_value in zip(*results):
            np.testing.assert_allclose(fused_value, keras_value, rtol=1e-4, atol=1e-4)
        for keras_value, fused_value in zip(_statistics(keras_layer), _statistics(fused_layer)):
            np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-6)
    if training:  # the update really happened: momentum 0.9 moved the statistics off their initial values
        initial = _statistics(_twin_layers(6)[0])
        assert np.abs(_statistics(fused_layer)[0] - initial[0]).max() > 0.1


def test_training_normalizes_with_the_biased_batch_variance():
    (layer, _) = _twin_layers(3, seed=1)
    layer.gamma.assign(np.ones(3))
    layer.beta.assign(np.zeros(3))
    layer.moving_mean.assign(np.zeros(3))
    layer.moving_variance.assign(np.ones(3))
    x = np.array([[1.0, 2.0, 0.0], [3.0, 2.0, 4.0]], "float32")  # batch of 2: biased variances 1, 0, 4
    y = fused_batch_norm(layer, tf.constant(x), training=True).numpy()
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(layer.moving_mean), 0.1 * x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.moving_variance), 0.9 + 0.1 * x.var(axis=0), rtol=1e-6)


def test_frozen_layer_uses_moving_statistics_and_keeps_them():
    keras_layer, fused_layer = _twin_layers(4)
    for layer in (keras_layer, fused_layer):
        layer.trainable = False
    x = tf.constant(RNG.normal(size=(16, 4)).astype("float32"))
    before = _statistics(fused_layer)
    np.testing.assert_allclose(fused_batch_norm(fused_layer, x, training=True).numpy(),
                               keras_layer(x, training=True).numpy(), rtol=1e-5, atol=1e-5)
    for old, new in zip(before, _statistics(fused_layer)):
        np.testing.assert_array_equal(old, new)


def test_bfloat16_inputs_are_normalized_in_float32_and_returned_in_the_policy_dtype():
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras_layer, fused_layer = _twin_layers(5)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    x = tf.cast(tf.constant(RNG.normal(size=(64, 5)).astype("float32")), tf.bfloat16)
    fused = fused_batch_norm(fused_layer, x, training=True)
    keras_output = keras_layer(x, training=True)
    assert fused.dtype == keras_output.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(fused, tf.float32).numpy(), tf.cast(keras_output, tf.float32).numpy(),
                               atol=2e-2)
    np.testing.assert_allclose(_statistics(fused_layer)[1], _statistics(keras_layer)[1], rtol=1e-5)


def test_set_batch_norm_and_mlp_go_through_the_fused_path(monkeypatch):
    """The layers call the fused function (a spy counts the calls) and give what the Keras path gives."""
    import tf_multiembed.layers.set_dense as set_dense

    calls = []

    def spy(layer, inputs, training=None):
        calls.append(layer.name)
        return fused_batch_norm(layer, inputs, training=training)

    x3 = tf.constant(RNG.normal(size=(8, 2, 3)).astype("float32"))
    layer = SetBatchNormalization()
    layer.build(x3.shape)
    monkeypatch.setattr(set_dense, "fused_batch_norm", spy)
    fused = layer(x3, training=True).numpy()
    head = MLP(units=(4,), dropout=0.0, output_units=1)
    head(tf.ones([2, 3]), training=True)
    assert len(calls) == 2
    reference = SetBatchNormalization()
    reference.build(x3.shape)
    expected = reference.batch_norm(tf.reshape(x3, [-1, 6]), training=True).numpy().reshape(8, 2, 3)
    np.testing.assert_allclose(fused, expected, rtol=1e-4, atol=1e-4)


def test_mirrored_strategy_training_equals_the_keras_batch_norm(tmp_path):
    """Two replicas: a SetMLP model trained with the fused path ends with the weights and moving statistics of the
    same model trained with Keras' own BatchNormalization (the script prints the largest difference)."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    process = subprocess.run([sys.executable, str(SCRIPT)], env=environment, capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
    lines = [line for line in process.stdout.splitlines() if line.startswith("max_difference")]
    assert lines, process.stdout[-2000:]
    replicas, difference, moved = lines[-1].split()[1:]
    assert int(replicas) == 2
    assert float(difference) < 1e-4
    assert float(moved) > 1e-3  # training changed the moving statistics, so the comparison is not trivial


def test_set_mlp_checkpoint_layout_is_unchanged():
    """Checkpoints written before the fused path (SetMLP -> set_batch_norm_0 -> batch_norm -> gamma ...) still load:
    the variables are the Keras layer's, under the same names."""
    layer = SetMLP(units=(3,), dropout=0.0)
    layer.build((None, 2, 4))
    names = sorted(name for name, _ in tf.train.list_variables(
        tf.train.Checkpoint(layer=layer).write(str(pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / "setmlp_ckpt"))))
    for variable in ("gamma", "beta", "moving_mean", "moving_variance"):
        assert any(f"set_batch_norm_0/batch_norm/{variable}" in name for name in names), names
