"""DCNv2's cross network with orthogonal field-pair blocks: the regularized DCNv2 of the paper's Evidence III."""

from typing import Any, Optional

import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers.interactions.cross import SetCross


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class RegularizedSetCross(SetCross):
    """`SetCross` whose `K x K` field-pair blocks are pushed towards scaled orthogonal maps.

    The paper's Evidence III restricts every block of the cross kernel to lambda_ij * (orthogonal matrix): the
    projection of field i into field j then keeps all of E_i's directions, so interaction cannot collapse it. As in
    the reference code, each layer l has a learnable field-pair scale `pair_scales[l]` (`[M, N, N]`, initialised to
    ones) that multiplies the blocks in the forward pass, and the raw blocks are penalised by

        orthogonality_coefficient * sum_{l, m, i, j} || I - W^{(m)}_{l,ij} W^{(m)}_{l,ij}^T ||_F^2

    added with `add_loss` on every call. Users can reproduce the paper's finding that this raises the information
    abundance but lowers AUC (it overfits). Only the full-rank cross is supported.

    Args:
        num_fields: N; the input width D must be N*K.
        num_layers: number of cross layers (paper: 4).
        orthogonality_coefficient: weight of the penalty (reference: 1e-5).
        kernel_initializer, bias_initializer: as in `SetCross`.

    Input shape: `[B, M, N*K]`. Output shape: `[B, M, N*K]`.

    Example:
        >>> layer = RegularizedSetCross(num_fields=3, num_layers=2)
        >>> layer(tf.ones([2, 4, 3 * 5])).shape, len(layer.losses)
        (TensorShape([2, 4, 15]), 1)
    """

    def __init__(self, num_fields: int, num_layers: int = 4, orthogonality_coefficient: float = 1e-5,
                 kernel_initializer: Optional[types.InitializerLike] = None,
                 bias_initializer: types.InitializerLike = "zeros", low_rank: Optional[int] = None,
                 **kwargs: Any) -> None:
        if low_rank is not None:
            raise ValueError(
                f"RegularizedSetCross: the orthogonality penalty is defined on full-rank K x K blocks; received "
                f"low_rank={low_rank!r}, expected None."
            )
        super().__init__(num_layers=num_layers, low_rank=None, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, **kwargs)
        self.num_fields = validation.check_positive_int(num_fields, "num_fields", "RegularizedSetCross")
        coefficient = orthogonality_coefficient
        if isinstance(coefficient, bool) or not isinstance(coefficient, (int, float)) or coefficient < 0:
            raise ValueError(
                f"RegularizedSetCross: `orthogonality_coefficient` must be a float >= 0, received {coefficient!r}."
            )
        self.orthogonality_coefficient = float(coefficient)

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 3, "[B, M, N*K]", "RegularizedSetCross")
        num_sets, width = int(input_shape[1]), int(input_shape[2])
        if width % self.num_fields:
            raise ValueError(
                f"RegularizedSetCross: the input width {width} is not a multiple of num_fields={self.num_fields}; "
                "expected the flattened [N*K] field embeddings of each set."
            )
        self.embedding_dim = width // self.num_fields
        super().build(input_shape)
        # Also kept as attributes: tf.train.Checkpoint and SavedModel do not see variables held only in a list.
        self.pair_scales = [
            validation.track_as_attribute(self, f"pair_scale_{index}", self.add_weight(
                name=f"pair_scale_{index}", shape=(num_sets, self.num_fields, self.num_fields), initializer="ones"))
            for index in range(self.num_layers)
        ]

    def _expand_scales(self, scales: tf.Tensor) -> tf.Tensor:
        # [M, N, N] -> [M, N*K, N*K]: every K x K block (i, j) multiplied by scales[m, i, j].
        expanded = tf.repeat(scales, self.embedding_dim, axis=1)
        return tf.repeat(expanded, self.embedding_dim, axis=2)

    def effective_kernel(self, layer_index: int) -> tf.Tensor:
        """The kernel the layer applies: each raw block scaled by its learnable field-pair scale."""
        return self.kernels[layer_index] * self._expand_scales(self.pair_scales[layer_index])

    def orthogonality_penalty(self) -> tf.Tensor:
        """sum over layers, sets and field pairs of ||I - W_ij W_ij^T||_F^2 on the raw (unscaled) blocks."""
        num_fields, dim = self.num_fields, self.embedding_dim
        identity = tf.eye(dim, dtype=self.kernels[0].dtype)
        total = tf.constant(0.0, dtype=self.kernels[0].dtype)
        for kernel in self.kernels:
            blocks = tf.reshape(kernel, [-1, num_fields, dim, num_fields, dim])  # [m, i, a, j, b]
            outer = tf.einsum("miajb,micjb->mijac", blocks, blocks)  # W_ij W_ij^T for every pair
            total += tf.reduce_sum(tf.square(identity - outer))
        return total

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        self.add_loss(self.orthogonality_coefficient * self.orthogonality_penalty())
        return super().call(inputs)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.pop("low_rank", None)
        config.update({
            "num_fields": self.num_fields,
            "orthogonality_coefficient": self.orthogonality_coefficient,
        })
        return config
