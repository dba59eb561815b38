"""Initializers that reproduce the reference implementation's defaults (PyTorch layers).

PyTorch's `Linear` and `Conv1d(kernel_size=1)` draw weights and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the
paper's embeddings are Xavier-uniform over the whole concatenated table of one set. Keras' defaults (Glorot weights,
zero biases, one bound per table) differ, and the embedding bound in particular changes training noticeably, so the
layers default to these and accept any Keras initializer instead.
"""

import math
from typing import Optional

import tensorflow as tf

from tf_multiembed import types


def fan_in_uniform(fan_in: int) -> tf.keras.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for `Linear` weights and biases.

    Example:
        >>> init = fan_in_uniform(400)  # bound 0.05
    """
    bound = 1.0 / math.sqrt(fan_in)
    return tf.keras.initializers.RandomUniform(-bound, bound)


def glorot_uniform_for(fan_in: int, fan_out: int) -> tf.keras.initializers.Initializer:
    """U(-sqrt(6/(fan_in+fan_out)), +...): Xavier-uniform with explicit fans.

    Keras' `GlorotUniform` infers fans from the shape, which is wrong for weights with a leading set axis
    `[M, fan_in, fan_out]` (it would multiply both fans by M), so set-specific weights pass their fans explicitly.

    Example:
        >>> init = glorot_uniform_for(390, 390)  # a DCNv2 cross kernel of 39 fields x width 10
    """
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.keras.initializers.RandomUniform(-bound, bound)


def resolve(
    initializer: Optional[types.InitializerLike], default: tf.keras.initializers.Initializer
) -> tf.keras.initializers.Initializer:
    """A fresh Keras initializer for `initializer`, or `default` when it is None.

    A copy is made for every weight because legacy tf-keras returns the same values each time one unseeded
    initializer instance is called, which would make e.g. all stacked cross kernels equal.
    """
    if initializer is None:
        return default
    instance = tf.keras.initializers.get(initializer)
    return instance.__class__.from_config(instance.get_config())


def serialize(initializer: Optional[types.InitializerLike]) -> Optional[types.Config]:
    """Config value for an initializer argument (None stays None, so the reference default is rebuilt)."""
    if initializer is None:
        return None
    return tf.keras.initializers.serialize(tf.keras.initializers.get(initializer))
