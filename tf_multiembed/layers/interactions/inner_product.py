"""IPNN's inner-product interaction, per set."""

import numpy as np
from typing import Any

import tensorflow as tf

from tf_multiembed import types, validation


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetInnerProduct(tf.keras.layers.Layer):
    """All pairwise inner products `<e_i, e_j>`, i < j, of each set's field embeddings.

    Pairs are ordered row-major: (0,1), (0,2), ..., (0,N-1), (1,2), ... giving P = N(N-1)/2 values per set. The paper's
    single-embedding IPNN also feeds the raw embeddings to its MLP (`include_embeddings=True`: output
    `[flatten(e), products]`); its multi-embedding IPNN feeds only the products. The model builder follows that.

    Args:
        include_embeddings: prepend the flattened embeddings `[N*K]` to the products.

    Input shape: `[B, M, N, K]`. Output shape: `[B, M, P]` or `[B, M, N*K + P]`.

    Example:
        >>> e = tf.constant([[[[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]]]])  # B=1, M=1, N=3, K=2
        >>> SetInnerProduct()(e).numpy()  # <e0,e1>, <e0,e2>, <e1,e2>
        array([[[2., 0., 3.]]], dtype=float32)
    """

    def __init__(self, include_embeddings: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.include_embeddings = bool(include_embeddings)

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 4, "[B, M, N, K]", "SetInnerProduct")
        num_sets, num_fields, dim = (int(d) for d in input_shape[1:])
        if num_fields < 2:
            raise ValueError(f"SetInnerProduct: needs at least 2 fields to form pairs, received N={num_fields}.")
        rows, cols = np.triu_indices(num_fields, k=1)
        self._pair_index = (rows * num_fields + cols).astype(np.int32)
        self._dims = (num_sets, num_fields, dim)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        num_sets, num_fields, dim = self._dims
        gram = tf.matmul(inputs, inputs, transpose_b=True)  # [B, M, N, N]
        products = tf.gather(tf.reshape(gram, [-1, num_sets, num_fields * num_fields]), self._pair_index, axis=2)
        if not self.include_embeddings:
            return products
        return tf.concat([tf.reshape(inputs, [-1, num_sets, num_fields * dim]), products], axis=2)

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        num_fields, dim = input_shape[2], input_shape[3]
        width = num_fields * (num_fields - 1) // 2 + (num_fields * dim if self.include_embeddings else 0)
        return (input_shape[0], input_shape[1], width)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config["include_embeddings"] = self.include_embeddings
        return config
