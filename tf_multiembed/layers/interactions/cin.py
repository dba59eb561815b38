"""xDeepFM's Compressed Interaction Network, per set."""

from typing import Any, Optional, Sequence

import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers import initializers
from tf_multiembed.layers.set_ops import batch_first


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetCIN(tf.keras.layers.Layer):
    """CIN with per-set weights, every layer sum-pooled over the embedding dimension (no split-half).

        z_l[b, m, n*H + h, k] = x0[b, m, n, k] * h_l[b, m, h, k]          (h_0 = x0, H = width of h_l)
        h_{l+1}[b, m, o, k]    = ReLU(sum_c W_l[m, c, o] z_l[b, m, c, k] + bias_l[m, o])
        output[b, m]           = concat_l sum_k h_{l+1}[b, m, :, k]

    `W_l` is a 1x1 convolution over channels, initialised like PyTorch's `Conv1d` (U(+-1/sqrt(N*H))).

    Args:
        layer_sizes: feature maps per CIN layer (paper: (16, 16)).

    Input shape: `[B, M, N, K]`. Output shape: `[B, M, sum(layer_sizes)]`.

    Example:
        >>> SetCIN(layer_sizes=(16, 16))(tf.ones([2, 3, 4, 5])).shape
        TensorShape([2, 3, 32])
    """

    def __init__(self, layer_sizes: Sequence[int] = (16, 16),
                 kernel_initializer: Optional[types.InitializerLike] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layer_sizes = validation.check_positive_int_list(layer_sizes, "layer_sizes", "SetCIN")
        self._kernel_initializer_arg = kernel_initializer

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 4, "[B, M, N, K]", "SetCIN")
        num_sets, num_fields, _ = (int(d) for d in input_shape[1:])
        self.kernels, self.biases = [], []
        previous = num_fields
        for index, size in enumerate(self.layer_sizes):
            channels = num_fields * previous
            self.kernels.append(validation.track_as_attribute(self, f"kernel_{index}", self.add_weight(
                name=f"kernel_{index}", shape=(num_sets, channels, size),
                initializer=initializers.resolve(self._kernel_initializer_arg, initializers.fan_in_uniform(channels)),
            )))
            self.biases.append(validation.track_as_attribute(self, f"bias_{index}", self.add_weight(
                name=f"bias_{index}", shape=(num_sets, size), initializer=initializers.fan_in_uniform(channels)
            )))
            previous = size
        self._dims = (num_sets, num_fields, int(input_shape[3]))
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        num_sets, num_fields, dim = self._dims
        # Work in [M, B, K, channels]: each layer is then one native batched matmul over the sets.
        x0 = tf.transpose(inputs, [1, 0, 3, 2])  # [M, B, K, N]
        hidden, pooled = x0, []
        for kernel, bias in zip(self.kernels, self.biases):
            width = hidden.shape[-1]
            outer = tf.reshape(x0[..., :, None] * hidden[..., None, :], [num_sets, -1, num_fields * width])
            hidden = tf.nn.relu(tf.matmul(outer, kernel) + bias[:, None, :])  # [M, B*K, H_next]
            hidden = tf.reshape(hidden, [num_sets, -1, dim, kernel.shape[-1]])
            pooled.append(tf.reduce_sum(hidden, axis=2))  # [M, B, H_next]
        return batch_first(tf.concat(pooled, axis=2))

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], input_shape[1], sum(self.layer_sizes))

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({
            "layer_sizes": list(self.layer_sizes),
            "kernel_initializer": initializers.serialize(self._kernel_initializer_arg),
        })
        return config
