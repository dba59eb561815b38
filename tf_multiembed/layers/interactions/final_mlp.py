"""FinalMLP: two per-set MLP streams and the shared bilinear fusion head."""

from typing import Any, Optional, Sequence

import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers import initializers
from tf_multiembed.layers.set_dense import DEFAULT_BN_EPSILON, DEFAULT_BN_MOMENTUM, SetMLP


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetTwoStreamMLP(tf.keras.layers.Layer):
    """FinalMLP's two independent MLP streams over each set's flattened embeddings, side by side.

    As in the reference, the feature-selection gates are identities: both streams see the same input. The output
    concatenates the streams, `[stream_1, stream_2]`, so that the mean over sets averages each stream separately
    before `BilinearFusion` splits them again.

    Args:
        first_stream_units, second_stream_units: hidden widths of each stream (paper: (400, 400) each).
        dropout, batch_norm_momentum, batch_norm_epsilon: as in `SetMLP`.

    Input shape: `[B, M, H]`. Output shape: `[B, M, first_stream_units[-1] + second_stream_units[-1]]`.

    Example:
        >>> SetTwoStreamMLP((8,), (6,))(tf.ones([2, 3, 5])).shape
        TensorShape([2, 3, 14])
    """

    def __init__(self, first_stream_units: Sequence[int] = (400, 400), second_stream_units: Sequence[int] = (400, 400),
                 dropout: float = 0.2, batch_norm_momentum: float = DEFAULT_BN_MOMENTUM,
                 batch_norm_epsilon: float = DEFAULT_BN_EPSILON, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = "SetTwoStreamMLP"
        self.first_stream_units = validation.check_positive_int_list(first_stream_units, "first_stream_units", owner)
        self.second_stream_units = validation.check_positive_int_list(
            second_stream_units, "second_stream_units", owner
        )
        self.dropout = validation.check_rate(dropout, "dropout", owner)
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.batch_norm_epsilon = float(batch_norm_epsilon)

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 3, "[B, M, H]", "SetTwoStreamMLP")
        self.streams = [
            SetMLP(units, self.dropout, batch_norm_momentum=self.batch_norm_momentum,
                   batch_norm_epsilon=self.batch_norm_epsilon, name=f"stream_{index}")
            for index, units in enumerate((self.first_stream_units, self.second_stream_units), start=1)
        ]
        for index, stream in enumerate(self.streams, start=1):
            validation.track_as_attribute(self, f"stream_{index}", stream)
            stream.build(input_shape)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        return tf.concat([stream(inputs, training=training) for stream in self.streams], axis=2)

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], input_shape[1], self.first_stream_units[-1] + self.second_stream_units[-1])

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({
            "first_stream_units": list(self.first_stream_units),
            "second_stream_units": list(self.second_stream_units),
            "dropout": self.dropout,
            "batch_norm_momentum": self.batch_norm_momentum,
            "batch_norm_epsilon": self.batch_norm_epsilon,
        })
        return config


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class BilinearFusion(tf.keras.layers.Layer):
    """FinalMLP's single-head bilinear fusion of two streams into one logit.

        logit = x . w_x + y . w_y + x^T W_xy y + bias,  with [x, y] = inputs split at `first_width`

    `W_xy` starts at zeros (as in the reference), so training begins from the two linear terms.

    Args:
        first_width: width of the first stream x; the rest of the input is y.

    Input shape: `[B, first_width + width_y]`. Output shape: `[B, 1]`.

    Example:
        >>> fusion = BilinearFusion(first_width=2)
        >>> fusion(tf.ones([4, 5])).shape
        TensorShape([4, 1])
    """

    def __init__(self, first_width: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_width = validation.check_positive_int(first_width, "first_width", "BilinearFusion")

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 2, "[B, H]", "BilinearFusion")
        second_width = int(input_shape[1]) - self.first_width
        if second_width <= 0:
            raise ValueError(
                f"BilinearFusion: input width {input_shape[1]} leaves no second stream after first_width="
                f"{self.first_width}; expected first_width < input width."
            )
        self.first_weights = self.add_weight(
            name="first_weights", shape=(self.first_width, 1),
            initializer=initializers.fan_in_uniform(self.first_width),
        )
        self.second_weights = self.add_weight(
            name="second_weights", shape=(second_width, 1), initializer=initializers.fan_in_uniform(second_width)
        )
        self.pair_weights = self.add_weight(
            name="pair_weights", shape=(self.first_width, second_width), initializer="zeros"
        )
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x, y = inputs[:, : self.first_width], inputs[:, self.first_width :]
        bilinear = tf.reduce_sum(tf.matmul(x, self.pair_weights) * y, axis=1, keepdims=True)
        return tf.matmul(x, self.first_weights) + tf.matmul(y, self.second_weights) + bilinear + self.bias

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], 1)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config["first_width"] = self.first_width
        return config
