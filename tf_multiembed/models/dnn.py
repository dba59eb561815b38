"""DNN: concatenated embeddings -> MLP (paper §2, `DNNModel` / `MultiDNNModel`)."""

from tf_multiembed.layers import SetFlatten
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("dnn", base_embedding_dim=10)
def build_dnn(vocabulary_sizes, *, num_sets, embedding_dim, field_names=None,
              hidden_units=common.DEFAULT_HIDDEN_UNITS, dropout=common.DEFAULT_DROPOUT, batch_norm_momentum=0.9,
              batch_norm_epsilon=1e-5, embeddings_initializer=None, embeddings_regularizer=None, validate_ids=True,
              numeric_inputs=None, bag_sizes=None,
              bag_combiner="mean",
              name=None):
    """Builds (ME-)DNN: per set flatten -> Linear+BN+ReLU+Dropout; mean over sets; shared MLP -> logit.

    Example:
        >>> model = build_dnn([10, 20, 30], num_sets=2, embedding_dim=10)
    """
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    features = SetFlatten(name="set_flatten")(embeddings)
    logit = common.projection_mean_head(features, hidden_units, dropout, batch_norm_momentum, batch_norm_epsilon)
    return common.probability_model(inputs, logit, name or common.model_name("dnn", num_sets, embedding_dim),
                                    numeric_inputs=numeric_inputs)
