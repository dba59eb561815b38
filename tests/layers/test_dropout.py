"""`BitsDropout` (16-bit random draws): the drop rate and scale, the gradient, seeding, inference, XLA, and the
fallback to Keras' Dropout where it cannot draw its own seeds (legacy tf-keras)."""

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed import compat
from tf_multiembed.layers.dropout import BitsDropout, bits_dropout, bits_threshold

LEGACY_RUNTIME = compat.is_legacy_keras()  # the runtime itself: imports can change the environment variable

SEED = tf.constant([3, 4], tf.int32)


def test_threshold_rounds_the_rate_to_sixteen_bits():
    assert bits_threshold(0.2) == 13107 and bits_threshold(0.0) == 0 and bits_threshold(0.5) == 32768
    with pytest.raises(ValueError, match="16-bit threshold"):
        bits_dropout(tf.ones([4]), 0.9999999, SEED)


def test_drop_fraction_and_scale():
    x = tf.ones([1000, 1000])
    y = bits_dropout(x, 0.2, SEED).numpy()
    kept = y != 0
    keep_probability = 1 - 13107 / 65536
    # 1M Bernoulli draws: the kept share is within 5 standard deviations of the keep probability.
    assert abs(kept.mean() - keep_probability) < 5 * np.sqrt(keep_probability * (1 - keep_probability) / 1e6)
    np.testing.assert_allclose(y[kept], 1 / keep_probability, rtol=1e-6)  # expectation preserved exactly
    # Odd sizes use half of the last 32-bit word; the shape and dtype are kept.
    odd = bits_dropout(tf.ones([3, 5, 7], tf.bfloat16), 0.2, SEED)
    assert odd.shape == (3, 5, 7) and odd.dtype == tf.bfloat16


def test_gradient_is_the_mask_times_the_scale():
    x = tf.random.normal([64, 33])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = bits_dropout(x, 0.3, SEED)
        total = tf.reduce_sum(y)
    gradient = tape.gradient(total, x).numpy()
    kept = y.numpy() != 0
    keep_probability = 1 - bits_threshold(0.3) / 65536
    np.testing.assert_allclose(gradient, kept / keep_probability, rtol=1e-6)


def test_same_seed_same_mask_other_seed_other_mask_and_xla_equals_eager():
    x = tf.ones([256, 128])
    first, second = bits_dropout(x, 0.2, SEED), bits_dropout(x, 0.2, SEED)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    assert (bits_dropout(x, 0.2, tf.constant([3, 5], tf.int32)).numpy() != first.numpy()).any()
    compiled = tf.function(lambda v: bits_dropout(v, 0.2, SEED), jit_compile=True)(x)
    np.testing.assert_array_equal(compiled.numpy(), first.numpy())


def test_layer_inference_is_identity_and_training_draws_new_masks_each_call():
    layer = BitsDropout(0.2, seed=1)
    x = tf.ones([32, 50])
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    first, second = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    scale = 1.25 if LEGACY_RUNTIME else 65536 / 52429  # the legacy runtime falls back to Keras' Dropout
    assert (first != second).any() and set(np.unique(first)) == {0.0, np.float32(scale)}


@pytest.mark.skipif(LEGACY_RUNTIME, reason="Keras 3 seeds; the legacy runtime test below covers tf-keras")
def test_layer_is_reproducible_under_the_global_seed():
    masks = []
    for _ in range(2):
        tf.keras.utils.set_random_seed(7)
        masks.append(BitsDropout(0.2)(tf.ones([16, 40]), training=True).numpy())
    np.testing.assert_array_equal(*masks)


@pytest.mark.skipif(not LEGACY_RUNTIME, reason="only the legacy runtime falls back to Keras' Dropout")
def test_legacy_runtime_falls_back_to_keras_dropout():
    layer = BitsDropout(0.5)
    y = layer(tf.ones([100, 100]), training=True).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}  # Keras' exact rate 0.5, scale 2
