"""The paper's other anti-collapse variants as layers: two spectral penalties on the batch embeddings and the folding
of sets into the batch that makes one interaction serve every set.

Both penalties act on the embeddings of the current batch, `[B, M, N, K]` (B rows, M sets, N fields, width K), as
the reference code does (`awesome.py`: `SpaceSimilarityRegularizedMultiDCNnew2`, `SingularValueRegularizedDCNv2`),
pass them through unchanged and add `coefficient * penalty` with `add_loss` on every call, so `fit` adds it to the
loss (and `evaluate` reports it, as for `RegularizedSetCross`). The penalties are ours, written from their
definitions:

- `SpaceSimilarityPenalty` (ME): for every pair of sets m > m' and field i, the K singular values of the batch
  cross-covariance `C = E_i^{(m)T} E_i^{(m')}` `[K, K]` (E_i^{(m)} = the batch's `[B, K]` embeddings of field i in
  set m), averaged over fields; the penalty is the mean of their squares over pairs and the K entries. It pushes the
  sets' spaces apart (weights 1e-3 to 1e-5 in the reference). Zero for one set.
- `SingularValuePenalty` (SE; ME applies it to every set): for every field i (and set m), the singular values s of
  the batch embedding matrix `E_i^{(m)}` `[B, K]`; the penalty is the unbiased variance of `s / mean(s)` (as
  `torch.var`), averaged over fields and sets. It pulls the spectrum towards flat, i.e. against collapse.

Singular values come from `tf.linalg.svd(compute_uv=False)`, whose gradient is `U diag(g) V^T`: well
defined also when singular values repeat.
"""

from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tf_multiembed import validation


def _check_coefficient(value: object, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{owner}: `coefficient` must be a float >= 0, received {value!r}.")
    return float(value)


def _check_embeddings_shape(input_shape: Any, owner: str) -> None:
    validation.check_input_rank(input_shape, 4, "[B, M, N, K]", owner)


def space_similarity_penalty(embeddings: tf.Tensor) -> tf.Tensor:
    """The space-similarity penalty (without its coefficient) of batch embeddings `[B, M, N, K]`; 0 for M = 1.

    Example:
        >>> e0 = tf.constant([[[[3.0, 0.0]]], [[[0.0, 1.0]]]])  # [B=2, M=1, N=1, K=2]
        >>> float(space_similarity_penalty(tf.concat([e0, e0], axis=1)))  # C = diag(9, 1): mean(81, 1)
        41.0
    """
    embeddings = tf.convert_to_tensor(embeddings)
    num_sets = int(embeddings.shape[1])
    if num_sets < 2:
        return tf.zeros([], embeddings.dtype)
    # Every pair of sets at once (no Python loop over sets): [M, M, N, K, K] = per field, E_i^{(m)T} E_i^{(m')} over
    # the batch, then the M(M-1)/2 pairs m > m'.
    products = tf.einsum("bmnk,bpnl->mpnkl", embeddings, embeddings)
    later, earlier = np.tril_indices(num_sets, -1)
    pairs = tf.gather_nd(products, np.stack([later, earlier], axis=1))  # [P, N, K, K]
    singular = tf.linalg.svd(pairs, compute_uv=False)  # [P, N, K]
    return tf.reduce_mean(tf.square(tf.reduce_mean(singular, axis=1)))


def singular_value_penalty(embeddings: tf.Tensor) -> tf.Tensor:
    """The singular-value-variance penalty (without its coefficient) of batch embeddings `[B, M, N, K]`.

    Example:
        >>> e = tf.constant([[[[3.0, 0.0]]], [[[0.0, 1.0]]]])  # one field, s = (3, 1), s / mean = (1.5, 0.5)
        >>> float(singular_value_penalty(e))  # unbiased variance of (1.5, 0.5)
        0.5
    """
    embeddings = tf.convert_to_tensor(embeddings)
    per_matrix = tf.transpose(embeddings, [1, 2, 0, 3])  # [M, N, B, K]
    singular = tf.linalg.svd(per_matrix, compute_uv=False)  # [M, N, min(B, K)]
    # A one-row batch has one singular value: its variance is taken as 0 (torch would give NaN).
    count = tf.cast(tf.maximum(tf.shape(singular)[-1] - 1, 1), singular.dtype)
    # An all-zero field (e.g. padding-only bags) has mean 0: its ratios are taken as 0 instead of NaN.
    ratios = tf.math.divide_no_nan(singular, tf.reduce_mean(singular, axis=-1, keepdims=True))
    mean = tf.reduce_mean(ratios, axis=-1, keepdims=True)
    variance = tf.reduce_sum(tf.square(ratios - mean), axis=-1) / count
    return tf.reduce_mean(variance)


class _EmbeddingPenalty(tf.keras.layers.Layer):
    """Identity on `[B, M, N, K]` embeddings that adds `coefficient * penalty(embeddings)` to the layer's losses."""

    penalty: Callable[[tf.Tensor], tf.Tensor]

    def __init__(self, coefficient: float = 1e-4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coefficient = _check_coefficient(coefficient, type(self).__name__)

    def build(self, input_shape: Any) -> None:
        _check_embeddings_shape(input_shape, type(self).__name__)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        self.add_loss(self.coefficient * type(self).penalty(tf.cast(inputs, tf.float32)))
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "coefficient": self.coefficient}


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SpaceSimilarityPenalty(_EmbeddingPenalty):
    """Identity on `[B, M, N, K]` embeddings that adds `coefficient * space_similarity_penalty(embeddings)`.

    Args:
        coefficient: the weight (reference: 1e-3, 1e-4, 1e-5).

    Example:
        >>> layer = SpaceSimilarityPenalty(1e-4)
        >>> layer(tf.ones([8, 2, 3, 4])).shape, len(layer.losses)
        (TensorShape([8, 2, 3, 4]), 1)
    """

    penalty = staticmethod(space_similarity_penalty)


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SingularValuePenalty(_EmbeddingPenalty):
    """Identity on `[B, M, N, K]` embeddings that adds `coefficient * singular_value_penalty(embeddings)`.

    Args:
        coefficient: the weight (reference: 1e-3 to 1e-5).

    Example:
        >>> layer = SingularValuePenalty(1e-4)
        >>> layer(tf.random.normal([8, 1, 3, 4])).shape, len(layer.losses)
        (TensorShape([8, 1, 3, 4]), 1)
    """

    penalty = staticmethod(singular_value_penalty)


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class FoldSets(tf.keras.layers.Layer):
    """`[B, M, ...]` -> `[B*M, 1, ...]` (row b*M + m is set m of row b): one set-vectorised block then acts on
    every set with the same weights (the paper's `MultiESingleI` ablation). `UnfoldSets` reverses it.

    Example:
        >>> FoldSets()(tf.zeros([2, 3, 5])).shape
        TensorShape([6, 1, 5])
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(inputs)
        return tf.reshape(inputs, tf.concat([[shape[0] * shape[1], 1], shape[2:]], axis=0))

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch = None if input_shape[0] is None else input_shape[0] * input_shape[1]
        return (batch, 1, *input_shape[2:])


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class UnfoldSets(tf.keras.layers.Layer):
    """`[B*M, 1, ...]` -> `[B, M, ...]`, the inverse of `FoldSets`.

    Args:
        num_sets: M.

    Example:
        >>> UnfoldSets(3)(tf.zeros([6, 1, 5])).shape
        TensorShape([2, 3, 5])
    """

    def __init__(self, num_sets: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_sets = validation.check_positive_int(num_sets, "num_sets", "UnfoldSets")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(inputs)
        return tf.reshape(inputs, tf.concat([[-1, self.num_sets], shape[2:]], axis=0))

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch: Optional[int] = None if input_shape[0] is None else input_shape[0] // self.num_sets
        return (batch, self.num_sets, *input_shape[2:])

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "num_sets": self.num_sets}
