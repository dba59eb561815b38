"""NFwFM's field-weighted bi-interaction pooling, per set."""

from typing import Any, Optional

import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers.dropout import BitsDropout
from tf_multiembed.layers.set_dense import DEFAULT_BN_EPSILON, DEFAULT_BN_MOMENTUM, SetBatchNormalization


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetFieldWeightedFM(tf.keras.layers.Layer):
    """Field-weighted FM pooling followed by BatchNorm and Dropout, with one field-pair matrix R per set.

        out[b, m, k] = sum_{i, j} R[m, i, j] * e[b, m, i, k] * e[b, m, j, k]

    over all ordered pairs including i = j, as in the reference NFwFM (R is not symmetric, initialised N(0, 1)).
    The pooled `[K]` vector then goes through per-set BatchNorm and Dropout (NFM's "Bi-Interaction" normalisation).

    Args:
        dropout: dropout rate after the BatchNorm.
        batch_norm_momentum, batch_norm_epsilon: BatchNorm settings.
        pair_weights_initializer: Keras initializer for R `[M, N, N]`; default N(0, 1).

    Input shape: `[B, M, N, K]`. Output shape: `[B, M, K]`.

    Example:
        >>> SetFieldWeightedFM()(tf.ones([2, 3, 4, 5])).shape
        TensorShape([2, 3, 5])
    """

    def __init__(self, dropout: float = 0.2, batch_norm_momentum: float = DEFAULT_BN_MOMENTUM,
                 batch_norm_epsilon: float = DEFAULT_BN_EPSILON,
                 pair_weights_initializer: types.InitializerLike = "random_normal_unit", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dropout = validation.check_rate(dropout, "dropout", "SetFieldWeightedFM")
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.batch_norm_epsilon = float(batch_norm_epsilon)
        self.pair_weights_initializer = pair_weights_initializer

    def _initializer(self) -> tf.keras.initializers.Initializer:
        if self.pair_weights_initializer == "random_normal_unit":
            return tf.keras.initializers.RandomNormal(mean=0.0, stddev=1.0)
        return tf.keras.initializers.get(self.pair_weights_initializer)

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 4, "[B, M, N, K]", "SetFieldWeightedFM")
        num_sets, num_fields, dim = (int(d) for d in input_shape[1:])
        self.pair_weights = self.add_weight(
            name="pair_weights", shape=(num_sets, num_fields, num_fields), initializer=self._initializer()
        )
        self.batch_norm = SetBatchNormalization(self.batch_norm_momentum, self.batch_norm_epsilon, name="set_bn")
        self.batch_norm.build((input_shape[0], num_sets, dim))
        self.dropout_layer = BitsDropout(self.dropout)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        weighted = tf.matmul(self.pair_weights, inputs)  # sum_j R[m, i, j] e[b, m, j]; R broadcasts over the batch
        pooled = tf.reduce_sum(inputs * weighted, axis=2)
        return self.dropout_layer(self.batch_norm(pooled, training=training), training=training)

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], input_shape[1], input_shape[3])

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({
            "dropout": self.dropout,
            "batch_norm_momentum": self.batch_norm_momentum,
            "batch_norm_epsilon": self.batch_norm_epsilon,
            "pair_weights_initializer": self.pair_weights_initializer
            if isinstance(self.pair_weights_initializer, str)
            else tf.keras.initializers.serialize(tf.keras.initializers.get(self.pair_weights_initializer)),
        })
        return config
