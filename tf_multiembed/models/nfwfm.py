"""NFwFM: field-weighted FM pooling -> BN -> Dropout -> MLP (paper §2, `NFwFMModel` / `MultiNFwFMModel`)."""

from tf_multiembed.layers import SetFieldWeightedFM
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("nfwfm", base_embedding_dim=50)
def build_nfwfm(vocabulary_sizes, *, num_sets, embedding_dim, field_names=None,
                hidden_units=common.DEFAULT_HIDDEN_UNITS, dropout=common.DEFAULT_DROPOUT, batch_norm_momentum=0.9,
                batch_norm_epsilon=1e-5, embeddings_initializer=None, embeddings_regularizer=None, validate_ids=True,
                numeric_inputs=None, bag_sizes=None,
                bag_combiner="mean",
                name=None):
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
