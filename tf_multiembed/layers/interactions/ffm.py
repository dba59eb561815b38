"""The field-aware factorization machine's pairwise interaction (FFM), per set."""

import numpy as np
from typing import Any

import tensorflow as tf

from tf_multiembed import types, validation

POOLINGS = ("none", "sum")


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetFieldAwareInteraction(tf.keras.layers.Layer):
    """FFM's field-aware pairwise products: `<e_i^{->j}, e_j^{->i}>` for every field pair i < j, per set.

    In an FFM every field i keeps one sub-embedding per other field j, `e_i^{->j}`, used only when it meets field j.
    The sub-embeddings come from a `MultiEmbedding` with `M * N` sets: set `m*N + j` holds, for every field i, the
    vector field i uses against field j in FFM set m. So the input `[B, M*N, N, K]` is read as
    `x[b, m, j, i] = e_i^{->j}` and

        out[b, m, p] = sum_k x[b, m, j, i, k] * x[b, m, i, j, k]        for the p-th pair (i, j), i < j,

    with pairs ordered row-major as in `SetInnerProduct`. The sub-embedding E_i^{->j} of the paper's Evidence I is
    therefore `multi_embedding.field_table(i, set_index=m*N + j)`; the slots i = j are never used.

    Args:
        pooling: "none" returns the N(N-1)/2 products per set; "sum" returns their sum `[B, M, 1]` (the FFM term).

    Input shape: `[B, M*N, N, K]`. Output shape: `[B, M, N(N-1)/2]` or `[B, M, 1]`.

    Example:
        >>> x = tf.reshape(tf.range(8, dtype=tf.float32), [1, 2, 2, 2])  # M=1, N=2, K=2
        >>> SetFieldAwareInteraction()(x).numpy()  # <e_0^{->1}, e_1^{->0}> = <x[1, 0], x[0, 1]> = [4, 5].[2, 3]
        array([[[23.]]], dtype=float32)
    """

    # Field-pair weights the diagnostics analyse (tf_multiembed.introspection): the sub-embeddings.
    PAIRWISE_KIND = "ffm"

    def __init__(self, pooling: str = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"SetFieldAwareInteraction: `pooling` must be one of {POOLINGS}, received {pooling!r}.")
        self.pooling = pooling

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 4, "[B, M*N, N, K]", "SetFieldAwareInteraction")
        sets, num_fields, dim = (int(d) for d in input_shape[1:])
        if num_fields < 2:
            raise ValueError(
                f"SetFieldAwareInteraction: needs at least 2 fields to form pairs, received N={num_fields}."
            )
        if sets % num_fields:
            raise ValueError(
                f"SetFieldAwareInteraction: the embedding must have M*N sets (one per target field and FFM set), "
                f"received {sets} sets for N={num_fields} fields; build the MultiEmbedding with "
                f"num_sets = M * {num_fields}."
            )
        rows, cols = np.triu_indices(num_fields, k=1)
        self._pair_index = (rows * num_fields + cols).astype(np.int32)
        self._dims = (sets // num_fields, num_fields, dim)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        num_sets, num_fields, dim = self._dims
        x = tf.reshape(inputs, [-1, num_sets, num_fields, num_fields, dim])  # [b, m, j, i, k] = e_i^{->j}
        swapped = tf.transpose(x, [0, 1, 3, 2, 4])  # [b, m, j, i, k] = e_j^{->i}
        products = tf.reduce_sum(x * swapped, axis=-1)  # symmetric in (i, j)
        products = tf.gather(tf.reshape(products, [-1, num_sets, num_fields * num_fields]), self._pair_index, axis=2)
        if self.pooling == "sum":
            return tf.reduce_sum(products, axis=2, keepdims=True)
        return products

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        num_fields = input_shape[2]
        width = 1 if self.pooling == "sum" else num_fields * (num_fields - 1) // 2
        return (input_shape[0], input_shape[1] // num_fields, width)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config["pooling"] = self.pooling
        return config
