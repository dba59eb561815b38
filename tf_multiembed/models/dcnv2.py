"""DCNv2: stacked cross network -> MLP (paper §2, `CrossNetworkV2Model` / `MultiDCNnew2`)."""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.layers import SetCross, SetFlatten
from tf_multiembed.layers.collapse_penalties import FoldSets
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model, register_variant


@register_model("dcnv2", base_embedding_dim=10)
def build_dcnv2(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
                field_names: Optional[Sequence[str]] = None, num_cross_layers: int = 4, low_rank: Optional[int] = None,
                hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS, dropout: float = common.DEFAULT_DROPOUT,
                batch_norm_momentum: float = 0.9, batch_norm_epsilon: float = 1e-5,
                embeddings_initializer: Optional[types.InitializerLike] = None,
                embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
                numeric_inputs: Optional[common.NumericInputs] = None, bag_sizes: Optional[Sequence[int]] = None,
                bag_combiner: str = "mean", space_similarity_coefficient: float = 0.0,
                singular_value_coefficient: float = 0.0, shared_interaction: bool = False,
                set_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds (ME-)DCNv2: per set flatten -> `num_cross_layers` cross layers (layer "set_cross") -> projection;
    mean over sets; shared MLP -> logit.

    The paper's appendix variants are options (docs/architecture.md "Anti-collapse options"):

    Args:
        space_similarity_coefficient: > 0 adds `SpaceSimilarityPenalty` on the batch embeddings (ME; reference
            weights 1e-3..1e-5; zero for one set).
        singular_value_coefficient: > 0 adds `SingularValuePenalty` (the reference's SE regulariser; for ME it
            applies to every set).
        shared_interaction: one cross network and projection for every set (the `MultiESingleIDCNv2` ablation):
            the sets are folded into the batch (`FoldSets`), so the BatchNorm of the projection sees B*M rows per
            step where the reference normalises each set's B rows apart; at inference the two are the same.
        set_combiner: "mean" (the paper's) or "gate": a learned per-example softmax over the sets (`SetGate`,
            layer "set_gate"), which starts as the mean.

    Example:
        >>> model = build_dcnv2([10, 20, 30], num_sets=4, embedding_dim=10, low_rank=8)
    """
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    embeddings = common.collapse_penalties(embeddings, space_similarity_coefficient, singular_value_coefficient)
    features = SetFlatten(name="set_flatten")(embeddings)
    if not isinstance(shared_interaction, bool):
        raise ValueError(f"build_model: `shared_interaction` must be True or False, received {shared_interaction!r}.")
    if shared_interaction:
        features = FoldSets(name="fold_sets")(features)
    crossed = SetCross(num_layers=num_cross_layers, low_rank=low_rank, name="set_cross")(features)
    logit = common.projection_mean_head(crossed, hidden_units, dropout, batch_norm_momentum, batch_norm_epsilon,
                                        folded_sets=num_sets if shared_interaction else None,
                                        set_combiner=set_combiner)
    return common.probability_model(inputs, logit, name or common.model_name("dcnv2", num_sets, embedding_dim),
                                    numeric_inputs=numeric_inputs)


# The appendix variants under names of their own, so train.py --model and the scaling study can train them; each is
# `build_dcnv2` with one option set (the reference's middle weight 1e-4 for the penalties), not a copy of the model.
build_dcnv2_space_similarity = register_variant("dcnv2_space_similarity", build_dcnv2,
                                                space_similarity_coefficient=1e-4)
build_dcnv2_singular_value = register_variant("dcnv2_singular_value", build_dcnv2, singular_value_coefficient=1e-4)
build_dcnv2_shared_interaction = register_variant("dcnv2_shared_interaction", build_dcnv2, shared_interaction=True)
