"""FinalMLP: two MLP streams + bilinear fusion (paper §2, `FinalMLP` / `MultiFinalMLP`)."""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.layers import BilinearFusion, SetFlatten, SetMean, SetTwoStreamMLP
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("finalmlp", base_embedding_dim=10)
def build_finalmlp(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
                   field_names: Optional[Sequence[str]] = None,
                   hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS,
                   second_stream_units: Optional[Sequence[int]] = None, dropout: float = common.DEFAULT_DROPOUT,
                   batch_norm_momentum: float = 0.9, batch_norm_epsilon: float = 1e-5,
                   embeddings_initializer: Optional[types.InitializerLike] = None,
                   embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
                   numeric_inputs: Optional[common.NumericInputs] = None, bag_sizes: Optional[Sequence[int]] = None,
                   bag_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds (ME-)FinalMLP: each set has its own two full streams; each stream is averaged over sets; one shared
    bilinear fusion makes the logit. Feature-selection gates are identities, as in the reference.

    `hidden_units` are the first stream's widths (and the second's unless `second_stream_units` is given), so the
    argument means "the MLP" for every model of the zoo.

    Example:
        >>> model = build_finalmlp([10, 20, 30], num_sets=2, embedding_dim=10)
    """
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    features = SetFlatten(name="set_flatten")(embeddings)
    hidden_units = common.check_hidden_units(hidden_units)
    second_stream_units = hidden_units if second_stream_units is None else second_stream_units
    streams = SetTwoStreamMLP(hidden_units, second_stream_units, dropout=dropout,
                              batch_norm_momentum=batch_norm_momentum, batch_norm_epsilon=batch_norm_epsilon,
                              name="set_two_stream_mlp")(features)
    combined = SetMean(name="set_mean")(streams)
    logit = BilinearFusion(first_width=hidden_units[-1], name="bilinear_fusion")(combined)
    return common.probability_model(inputs, logit, name or common.model_name("finalmlp", num_sets, embedding_dim),
                                    numeric_inputs=numeric_inputs)
