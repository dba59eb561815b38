"""DCNv2: stacked cross network -> MLP (paper §2, `CrossNetworkV2Model` / `MultiDCNnew2`)."""

from tf_multiembed.layers import SetCross, SetFlatten
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("dcnv2", base_embedding_dim=10)
def build_dcnv2(vocabulary_sizes, *, num_sets, embedding_dim, field_names=None, num_cross_layers=4, low_rank=None,
                hidden_units=common.DEFAULT_HIDDEN_UNITS, dropout=common.DEFAULT_DROPOUT, batch_norm_momentum=0.9,
                batch_norm_epsilon=1e-5, embeddings_initializer=None, embeddings_regularizer=None, validate_ids=True,
                numeric_inputs=None, bag_sizes=None,
                bag_combiner="mean",
                name=None):
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
