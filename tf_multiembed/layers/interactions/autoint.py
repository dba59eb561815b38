"""AutoInt's multi-head self-attention over fields, per set."""

import math

from typing import Any, Optional

import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers import initializers
from tf_multiembed.layers.set_ops import batch_first, sets_first


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetSelfAttention(tf.keras.layers.Layer):
    """Stacked AutoInt interacting layers (Song et al., 2019) with separate weights per set.

    Each layer maps the N field vectors e (width d_in) to width d = `attention_dim`:

        q, k, v   = e W_q[m], e W_k[m], e W_v[m]                   split into `num_heads` heads of width d/heads
        attn      = softmax(q k^T / sqrt(d/heads)) v                 attention across fields, per head
        e_next    = ReLU(concat_heads(attn) + e W_res[m])            residual projection when `use_residual`

    and the output is the flattened last layer, `[B, M, N*d]`. The paper registers no AutoInt hyper-parameters; the
    defaults (d=32, 2 heads, 3 layers) are AutoInt's own.

    Args:
        attention_dim: width d of every layer's output; divisible by `num_heads`.
        num_heads: attention heads per layer.
        num_layers: stacked interacting layers.
        use_residual: add the residual projection before the ReLU.

    Input shape: `[B, M, N, K]`. Output shape: `[B, M, N * attention_dim]`.

    Example:
        >>> SetSelfAttention(attention_dim=8, num_heads=2, num_layers=1)(tf.ones([2, 3, 4, 5])).shape
        TensorShape([2, 3, 32])
    """

    def __init__(self, attention_dim: int = 32, num_heads: int = 2, num_layers: int = 3, use_residual: bool = True,
                 kernel_initializer: Optional[types.InitializerLike] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = "SetSelfAttention"
        self.attention_dim = validation.check_positive_int(attention_dim, "attention_dim", owner)
        self.num_heads = validation.check_positive_int(num_heads, "num_heads", owner)
        self.num_layers = validation.check_positive_int(num_layers, "num_layers", owner)
        if self.attention_dim % self.num_heads:
            raise ValueError(
                f"{owner}: `attention_dim` ({attention_dim}) must be divisible by `num_heads` ({num_heads})."
            )
        self.use_residual = bool(use_residual)
        self._kernel_initializer_arg = kernel_initializer

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 4, "[B, M, N, K]", "SetSelfAttention")
        num_sets, num_fields, dim = (int(d) for d in input_shape[1:])
        self.layer_kernels = []
        fan_in = dim
        roles = ("query", "key", "value") + (("residual",) if self.use_residual else ())
        for index in range(self.num_layers):
            self.layer_kernels.append({
                role: validation.track_as_attribute(self, f"{role}_kernel_{index}", self.add_weight(
                    name=f"{role}_kernel_{index}", shape=(num_sets, fan_in, self.attention_dim),
                    initializer=initializers.resolve(
                        self._kernel_initializer_arg, initializers.glorot_uniform_for(fan_in, self.attention_dim)
                    ),
                ))
                for role in roles
            })
            fan_in = self.attention_dim
        self._dims = (num_sets, num_fields)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        num_sets, num_fields = self._dims
        head_dim = self.attention_dim // self.num_heads
        # Work in [M, B*N, width] so that every projection is one native batched matmul over the sets.
        x = tf.reshape(sets_first(inputs), [num_sets, -1, inputs.shape[-1]])

        def split_heads(t: tf.Tensor) -> tf.Tensor:  # [M, B*N, d] -> [M, B, heads, N, d/heads]
            t = tf.reshape(t, [num_sets, -1, num_fields, self.num_heads, head_dim])
            return tf.transpose(t, [0, 1, 3, 2, 4])

        for kernels in self.layer_kernels:
            q, k, v = (split_heads(tf.matmul(x, kernels[role])) for role in ("query", "key", "value"))
            scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(head_dim)
            attended = tf.transpose(tf.matmul(tf.nn.softmax(scores, axis=-1), v), [0, 1, 3, 2, 4])
            attended = tf.reshape(attended, [num_sets, -1, self.attention_dim])
            if self.use_residual:
                attended = attended + tf.matmul(x, kernels["residual"])
            x = tf.nn.relu(attended)
        return batch_first(tf.reshape(x, [num_sets, -1, num_fields * self.attention_dim]))

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], input_shape[1], input_shape[2] * self.attention_dim)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({
            "attention_dim": self.attention_dim,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "use_residual": self.use_residual,
            "kernel_initializer": initializers.serialize(self._kernel_initializer_arg),
        })
        return config
