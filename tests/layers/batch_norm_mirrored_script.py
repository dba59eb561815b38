"""Run by test_batch_norm.py in its own process (logical devices must be set before TensorFlow starts): trains the
same SetMLP model for three steps under MirroredStrategy over 2 logical CPUs, once with the fused batch norm and once
with Keras' BatchNormalization, and prints `max_difference <replicas> <largest weight difference> <moving change>`."""

import numpy as np
import tensorflow as tf

import tf_multiembed.layers.set_dense as set_dense
from tf_multiembed.layers import MLP, SetMLP
from tf_multiembed.layers.batch_norm import fused_batch_norm

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

rng = np.random.default_rng(0)
x = rng.normal(1.0, 2.0, (64, 3, 5)).astype("float32")
y = (rng.random(64) < 0.5).astype("float32")


def train(batch_norm_function):
    set_dense.fused_batch_norm = batch_norm_function
    tf.keras.utils.set_random_seed(0)
    with strategy.scope():
        inputs = tf.keras.Input((3, 5))
        hidden = SetMLP(units=(4,), dropout=0.0)(inputs)
        outputs = MLP(units=(4,), dropout=0.0, output_units=1)(tf.keras.layers.Flatten()(hidden))
        model = tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid")(outputs))
        model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    initial = [np.array(weight) for weight in model.weights]
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, steps_per_epoch=3, verbose=0)
    # By position: both models are built by the same code (tf-keras adds unique suffixes to the names).
    weights = [np.array(weight) for weight in model.weights]
    moved = max(float(np.abs(np.array(weight) - start).max())
                for weight, start in zip(model.weights, initial) if "moving" in weight.name)
    return weights, moved


fused, moved = train(fused_batch_norm)
keras_weights, _ = train(lambda layer, inputs, training=None: layer(inputs, training=training))
assert [w.shape for w in fused] == [w.shape for w in keras_weights]
difference = max(float(np.abs(a - b).max()) for a, b in zip(fused, keras_weights))
print(f"max_difference {strategy.num_replicas_in_sync} {difference:.3g} {moved:.3g}")
