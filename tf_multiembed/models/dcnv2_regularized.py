"""Regularized DCNv2 (paper's Evidence III): DCNv2 whose cross blocks are pushed towards scaled orthogonal maps."""

from typing import Optional, Sequence

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.layers import SetFlatten
from tf_multiembed.layers.interactions.regularized_cross import RegularizedSetCross
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model


@register_model("dcnv2_regularized", base_embedding_dim=10)
def build_regularized_dcnv2(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
                            field_names: Optional[Sequence[str]] = None, num_cross_layers: int = 4,
                            orthogonality_coefficient: float = 1e-5,
                            hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS,
                            dropout: float = common.DEFAULT_DROPOUT, batch_norm_momentum: float = 0.9,
                            batch_norm_epsilon: float = 1e-5,
                            embeddings_initializer: Optional[types.InitializerLike] = None,
                            embeddings_regularizer: Optional[types.RegularizerLike] = None, validate_ids: bool = True,
                            numeric_inputs: Optional[common.NumericInputs] = None,
                            bag_sizes: Optional[Sequence[int]] = None, bag_combiner: str = "mean",
                            name: Optional[str] = None) -> tf.keras.Model:
    """Builds DCNv2 with `RegularizedSetCross` (layer "set_cross") instead of the plain cross network.

    Everything else is the "dcnv2" model. The orthogonality penalty is part of `model.losses`, so `fit` adds it to
    the loss. The paper (Fig. 5) finds this raises the information abundance of the embeddings but lowers test AUC;
    the reference code registers it as SE only (`restricted-weighted-dcn-*`), ME works as well.

    Args:
        orthogonality_coefficient: weight of sum ||I - W_ij W_ij^T||_F^2 (reference: 1e-5).
        Other arguments: as for `build_dcnv2` (full rank only).

    Example:
        >>> from tf_multiembed.models import build_model
        >>> model = build_model("dcnv2_regularized", [944, 1683, 62], scale=4, multi_embedding=False)
        >>> type(model.get_layer("set_cross")).__name__
        'RegularizedSetCross'
    """
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    features = SetFlatten(name="set_flatten")(embeddings)
    crossed = RegularizedSetCross(num_fields=embeddings.shape[2], num_layers=num_cross_layers,
                                  orthogonality_coefficient=orthogonality_coefficient, name="set_cross")(features)
    logit = common.projection_mean_head(crossed, hidden_units, dropout, batch_norm_momentum, batch_norm_epsilon)
    return common.probability_model(
        inputs, logit, name or common.model_name("dcnv2_regularized", num_sets, embedding_dim),
        numeric_inputs=numeric_inputs)
