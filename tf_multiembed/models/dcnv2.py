"""DCNv2: stacked cross network -> MLP (paper §2, `CrossNetworkV2Model` / `MultiDCNnew2`)."""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.layers import SetCross, SetFlatten
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("dcnv2", base_embedding_dim=10)
def build_dcnv2(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
                field_names: Optional[Sequence[str]] = None, num_cross_layers: int = 4, low_rank: Optional[int] = None,
                hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS, dropout: float = common.DEFAULT_DROPOUT,
                batch_norm_momentum: float = 0.9, batch_norm_epsilon: float = 1e-5,
                embeddings_initializer: Optional[types.InitializerLike] = None,
                embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
                numeric_inputs: Optional[common.NumericInputs] = None, bag_sizes: Optional[Sequence[int]] = None,
                bag_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds (ME-)DCNv2: per set flatten -> `num_cross_layers` cross layers (layer "set_cross") -> projection;
    mean over sets; shared MLP -> logit.

    Example:
        >>> model = build_dcnv2([10, 20, 30], num_sets=4, embedding_dim=10, low_rank=8)
    """
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    features = SetFlatten(name="set_flatten")(embeddings)
    crossed = SetCross(num_layers=num_cross_layers, low_rank=low_rank, name="set_cross")(features)
    logit = common.projection_mean_head(crossed, hidden_units, dropout, batch_norm_momentum, batch_norm_epsilon)
    return common.probability_model(inputs, logit, name or common.model_name("dcnv2", num_sets, embedding_dim),
                                    numeric_inputs=numeric_inputs)
