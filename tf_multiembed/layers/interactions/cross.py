"""DCNv2's cross network (full-rank or low-rank), per set."""

from typing import Any, Optional, Tuple

import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers import initializers
from tf_multiembed.layers.set_ops import batch_first, set_matmul, sets_first


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetCross(tf.keras.layers.Layer):
    """Stacked DCNv2 cross layers with separate weights per set.

        x_{l+1}[b, m] = x0[b, m] * (x_l[b, m] @ W_l[m] + bias_l[m]) + x_l[b, m]

    Full rank: `W_l` is `[M, D, D]` (Xavier-uniform, bias 0, as in the reference). Low rank r: `W_l = U_l V_l` with
    `U_l` `[M, D, r]` and `V_l` `[M, r, D]`, applied factor by factor. With D = N*K laid out field-major, the K x K
    block `W_l[m, i*K:(i+1)*K, j*K:(j+1)*K]` maps field i's input into field j's output slot.

    Args:
        num_layers: number of stacked cross layers (paper: 4).
        low_rank: None for full rank, or the rank r of the factorisation.
        kernel_initializer: Keras initializer for the kernels; None for Xavier-uniform with fans (D, D) or (D, r).
        bias_initializer: Keras initializer for the biases (default zeros).

    Input shape: `[B, M, D]`. Output shape: `[B, M, D]`.

    Example:
        >>> SetCross(num_layers=2)(tf.ones([2, 3, 8])).shape
        TensorShape([2, 3, 8])
    """

    # Field-pair weights the diagnostics analyse (tf_multiembed.introspection): the cross kernel.
    PAIRWISE_KIND: Optional[str] = "cross"

    def __init__(self, num_layers: int = 4, low_rank: Optional[int] = None,
                 kernel_initializer: Optional[types.InitializerLike] = None,
                 bias_initializer: types.InitializerLike = "zeros", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_layers = validation.check_positive_int(num_layers, "num_layers", "SetCross")
        self.low_rank = None if low_rank is None else validation.check_positive_int(low_rank, "low_rank", "SetCross")
        self._kernel_initializer_arg = kernel_initializer
        self.bias_initializer = tf.keras.initializers.get(bias_initializer)

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 3, "[B, M, D]", "SetCross")
        num_sets, width = int(input_shape[1]), int(input_shape[2])
        self.kernels, self.down_kernels, self.up_kernels, self.biases = [], [], [], []
        for index in range(self.num_layers):
            if self.low_rank is None:
                self.kernels.append(self._kernel(f"kernel_{index}", (num_sets, width, width)))
            else:
                self.down_kernels.append(self._kernel(f"down_kernel_{index}", (num_sets, width, self.low_rank)))
                self.up_kernels.append(self._kernel(f"up_kernel_{index}", (num_sets, self.low_rank, width)))
            self.biases.append(validation.track_as_attribute(self, f"bias_{index}", self.add_weight(
                name=f"bias_{index}", shape=(num_sets, width), initializer=self.bias_initializer
            )))
        super().build(input_shape)

    def _kernel(self, name: str, shape: Tuple[int, int, int]) -> tf.Variable:
        default = initializers.glorot_uniform_for(shape[1], shape[2])
        return validation.track_as_attribute(self, name, self.add_weight(
            name=name, shape=shape, initializer=initializers.resolve(self._kernel_initializer_arg, default)
        ))

    def effective_kernel(self, layer_index: int) -> tf.Tensor:
        """The `[M, D, D]` kernel of cross layer `layer_index` (the product U V for low rank).

        Subclasses may override it (e.g. to rescale field-pair blocks); the full-rank `call` uses it.
        """
        if self.low_rank is None:
            return self.kernels[layer_index]
        return tf.matmul(self.down_kernels[layer_index], self.up_kernels[layer_index])

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x0 = sets_first(inputs)  # [M, B, D]: every layer is then a native batched matmul
        x = x0
        for index in range(self.num_layers):
            if self.low_rank is None:
                projected = set_matmul(x, self.effective_kernel(index))
            else:
                projected = set_matmul(set_matmul(x, self.down_kernels[index]), self.up_kernels[index])
            x = x0 * (projected + self.biases[index][:, None, :]) + x
        return batch_first(x)

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return tuple(input_shape)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({
            "num_layers": self.num_layers,
            "low_rank": self.low_rank,
            "kernel_initializer": initializers.serialize(self._kernel_initializer_arg),
            "bias_initializer": tf.keras.initializers.serialize(self.bias_initializer),
        })
        return config


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class GroupSetCross(SetCross):
    """`SetCross` serving one group of the sets in heterogeneous ME: its kernels cover only the group, so the
    field-pair diagnostics (which read one cross kernel for all sets of the table) leave it out."""

    PAIRWISE_KIND = None
