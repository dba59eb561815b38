"""AutoInt+: self-attention logit + DNN logit (paper §2, `AutoInt` / `MultiAutoInt`)."""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.layers import SetFlatten, SetMean, SetSelfAttention
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("autoint", base_embedding_dim=10)
def build_autoint(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
                  field_names: Optional[Sequence[str]] = None, attention_dim: int = 32, num_heads: int = 2,
                  num_attention_layers: int = 3, use_residual: bool = True,
                  hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS, dropout: float = common.DEFAULT_DROPOUT,
                  batch_norm_momentum: float = 0.9, batch_norm_epsilon: float = 1e-5,
                  embeddings_initializer: Optional[types.InitializerLike] = None,
                  embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
                  numeric_inputs: Optional[common.NumericInputs] = None, bag_sizes: Optional[Sequence[int]] = None,
                  bag_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds (ME-)AutoInt+.

    Attention branch: per-set self-attention stack -> flattened -> mean over sets -> shared Linear(N*d, 1).
    DNN branch: as ME-DNN. The logits are added. The paper gives no AutoInt hyper-parameters; these are AutoInt's.

    Example:
        >>> model = build_autoint([10, 20, 30], num_sets=2, embedding_dim=10, num_attention_layers=2)
    """
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    attended = SetSelfAttention(attention_dim=attention_dim, num_heads=num_heads, num_layers=num_attention_layers,
                                use_residual=use_residual, name="set_self_attention")(embeddings)
    attention_logit = common.linear_logit(SetMean(name="attention_set_mean")(attended), name="attention_post")
    features = SetFlatten(name="set_flatten")(embeddings)
    dnn_logit = common.projection_mean_head(features, hidden_units, dropout, batch_norm_momentum,
                                            batch_norm_epsilon, prefix="dnn_")
    logit = tf.keras.layers.Add(name="logit")([attention_logit, dnn_logit])
    return common.probability_model(inputs, logit, name or common.model_name("autoint", num_sets, embedding_dim),
                                    numeric_inputs=numeric_inputs)
