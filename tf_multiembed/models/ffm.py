"""FFM: the field-aware factorization machine of the paper's Evidence I (paper §2, `torchfm`
`FieldAwareFactorizationMachine`).

The paper uses FFM only for its collapse analysis: its field-pair sub-embeddings E_i^{->j} are separate tables, so
their information abundance can be compared with DCNv2's projected embeddings (Fig. 3). The logit is

    bias + sum_i w_{x_i} + sum_{i<j} <e_i^{->j}, e_j^{->i}>

with the linear term read from a width-1 embedding table and weighted per field by the output layer. With M > 1 the M
FFM terms are averaged; an FFM has no non-linearity between the sets and the output, so its ME variant is as
expressive as SE and exists only so that diagnostics can be run on both (paper: ME needs a non-linear interaction).
"""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed.layers import MultiEmbedding, SetFlatten, SetMean
from tf_multiembed import types, validation
from tf_multiembed.layers.interactions.ffm import SetFieldAwareInteraction
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("ffm", base_embedding_dim=8)
def build_ffm(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
              field_names: Optional[Sequence[str]] = None,
              embeddings_initializer: Optional[types.InitializerLike] = None,
              embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
              numeric_inputs: Optional[common.NumericInputs] = None, bag_sizes: Optional[Sequence[int]] = None,
              bag_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds an FFM with `num_sets` sets of field-aware sub-embeddings of width `embedding_dim` (paper: one set, K=8).

    The embedding layer "multi_embedding" holds `num_sets * N` sets: set `m*N + j` is what every field uses against
    field j (see `SetFieldAwareInteraction`); "field_aware_interaction" forms the pairs; "linear_embedding" holds the
    first-order weights. The model output is the click probability `[B, 1]`.

    Args:
        vocabulary_sizes: rows per field (including OOV id 0); at least two fields.
        num_sets: M.
        embedding_dim: K (paper: 8).
        field_names: optional names for error messages.
        embeddings_initializer, embeddings_regularizer, validate_ids: as in `MultiEmbedding`.
        name: the model's name.

    Example:
        >>> from tf_multiembed.models import build_model
        >>> model = build_model("ffm", vocabulary_sizes=[944, 1683, 62])
        >>> model.get_layer("multi_embedding").num_sets  # one sub-table per target field
        3
    """
    if bag_sizes is not None and any(size > 1 for size in bag_sizes):
        raise ValueError("build_ffm: the FFM of the collapse analysis takes single-valued fields only; use another "
                         "model for variable-length (bag) fields.")
    if numeric_inputs:
        raise ValueError("build_ffm: the FFM of the collapse analysis takes categorical fields only; give numeric "
                         "fields a 'bucketized' treatment, or use another model for embedded/dense numeric fields.")
    vocabulary_sizes = validation.check_positive_int_list(vocabulary_sizes, "vocabulary_sizes", "build_ffm")
    num_fields = len(vocabulary_sizes)
    if num_fields < 2:
        raise ValueError(f"build_ffm: an FFM needs at least 2 fields to form pairs, received {num_fields}.")
    inputs, sub_embeddings = common.embedded_inputs(
        vocabulary_sizes, num_sets * num_fields, embedding_dim, field_names, embeddings_initializer,
        embeddings_regularizer, validate_ids)
    pairs = SetFieldAwareInteraction(pooling="sum", name="field_aware_interaction")(sub_embeddings)
    pair_term = SetMean(name="set_mean")(pairs)  # [B, 1]
    first_order = MultiEmbedding(
        vocabulary_sizes, num_sets=1, embedding_dim=1, field_names=field_names,
        embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=1.0), validate_ids=validate_ids,
        name="linear_embedding")(inputs)  # [B, 1, N, 1]
    linear_term = common.linear_logit(SetMean(name="linear_set_mean")(SetFlatten(name="linear_flatten")(first_order)),
                                      name="linear")
    logit = tf.keras.layers.Add(name="logit")([linear_term, pair_term])
    return common.probability_model(inputs, logit, name or common.model_name("ffm", num_sets, embedding_dim))
