"""NFwFM: field-weighted FM pooling -> BN -> Dropout -> MLP (paper §2, `NFwFMModel` / `MultiNFwFMModel`)."""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.layers import SetFieldWeightedFM
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("nfwfm", base_embedding_dim=50)
def build_nfwfm(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
                field_names: Optional[Sequence[str]] = None, hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS,
                dropout: float = common.DEFAULT_DROPOUT, batch_norm_momentum: float = 0.9,
                batch_norm_epsilon: float = 1e-5, embeddings_initializer: Optional[types.InitializerLike] = None,
                embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
                numeric_inputs: Optional[common.NumericInputs] = None, bag_sizes: Optional[Sequence[int]] = None,
                bag_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds (ME-)NFwFM (base width 50 in the paper, "considering the pooling").

    Example:
        >>> model = build_nfwfm([10, 20, 30], num_sets=2, embedding_dim=50)
    """
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    pooled = SetFieldWeightedFM(dropout=dropout, batch_norm_momentum=batch_norm_momentum,
                                batch_norm_epsilon=batch_norm_epsilon, name="set_fwfm")(embeddings)
    logit = common.projection_mean_head(pooled, hidden_units, dropout, batch_norm_momentum, batch_norm_epsilon)
    return common.probability_model(inputs, logit, name or common.model_name("nfwfm", num_sets, embedding_dim),
                                    numeric_inputs=numeric_inputs)
