"""IPNN: pairwise inner products (+ raw embeddings for SE) -> MLP (paper §2, `ProductNeuralNetworkModel` /
`MultiPNNModel`)."""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.layers import SetInnerProduct
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("ipnn", base_embedding_dim=10)
def build_ipnn(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
               field_names: Optional[Sequence[str]] = None, include_embeddings: Optional[bool] = None,
               hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS, dropout: float = common.DEFAULT_DROPOUT,
               batch_norm_momentum: float = 0.9, batch_norm_epsilon: float = 1e-5,
               embeddings_initializer: Optional[types.InitializerLike] = None,
               embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
               numeric_inputs: Optional[common.NumericInputs] = None, bag_sizes: Optional[Sequence[int]] = None,
               bag_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds (ME-)IPNN.

    `include_embeddings=None` follows the paper: the single-embedding model (one set) feeds
    `[flatten(e), inner products]` to its MLP, the multi-embedding model only the inner products. Pass True or False
    to choose explicitly.

    Example:
        >>> model = build_ipnn([10, 20, 30], num_sets=2, embedding_dim=10)
    """
    if include_embeddings is None:
        include_embeddings = num_sets == 1
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    products = SetInnerProduct(include_embeddings=include_embeddings, name="set_inner_product")(embeddings)
    logit = common.projection_mean_head(products, hidden_units, dropout, batch_norm_momentum, batch_norm_epsilon)
    return common.probability_model(inputs, logit, name or common.model_name("ipnn", num_sets, embedding_dim),
                                    numeric_inputs=numeric_inputs)
