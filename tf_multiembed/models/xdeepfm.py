"""xDeepFM without the linear term: CIN logit + DNN logit (paper §2, `XDeepFM` / `MultiXDeepFM`)."""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.layers import SetCIN, SetFlatten, SetMean
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("xdeepfm", base_embedding_dim=10)
def build_xdeepfm(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
                  field_names: Optional[Sequence[str]] = None, cin_layer_sizes: Sequence[int] = (16, 16),
                  hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS, dropout: float = common.DEFAULT_DROPOUT,
                  batch_norm_momentum: float = 0.9, batch_norm_epsilon: float = 1e-5,
                  embeddings_initializer: Optional[types.InitializerLike] = None,
                  embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
                  numeric_inputs: Optional[common.NumericInputs] = None, bag_sizes: Optional[Sequence[int]] = None,
                  bag_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds (ME-)xDeepFM.

    CIN branch: per-set CIN (sum-pooled layers) -> mean over sets -> shared Linear(sum(cin_layer_sizes), 1).
    DNN branch: as ME-DNN. The two logits are added (no first-order term, as in the reference).

    Example:
        >>> model = build_xdeepfm([10, 20, 30], num_sets=2, embedding_dim=10)
    """
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    cin = SetCIN(layer_sizes=cin_layer_sizes, name="set_cin")(embeddings)
    cin_logit = common.linear_logit(SetMean(name="cin_set_mean")(cin), name="cin_post")
    features = SetFlatten(name="set_flatten")(embeddings)
    dnn_logit = common.projection_mean_head(features, hidden_units, dropout, batch_norm_momentum,
                                            batch_norm_epsilon, prefix="dnn_")
    logit = tf.keras.layers.Add(name="logit")([cin_logit, dnn_logit])
    return common.probability_model(inputs, logit, name or common.model_name("xdeepfm", num_sets, embedding_dim),
                                    numeric_inputs=numeric_inputs)
