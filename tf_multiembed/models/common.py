"""Pieces every model of the zoo shares: the id input, the embedding sets, the per-set projection + mean + head."""

from typing import List, Optional, Sequence, Tuple

import tensorflow as tf

from tf_multiembed import introspection, types, validation
from tf_multiembed.layers import MLP, MultiEmbedding, SetMean, SetMLP

FEATURE_IDS_INPUT = "feature_ids"
PROBABILITY_OUTPUT = "click_probability"

# The paper's defaults for every model (paper.md §1.2-1.3).
DEFAULT_HIDDEN_UNITS = (400, 400)
DEFAULT_DROPOUT = 0.2


def embedded_inputs(vocabulary_sizes: Sequence[int], num_sets: int, embedding_dim: int,
                    field_names: Optional[Sequence[str]] = None,
                    embeddings_initializer: Optional[types.InitializerLike] = None,
                    embeddings_regularizer: Optional[types.RegularizerLike] = None,
                    validate_ids: bool = True) -> Tuple[tf.Tensor, tf.Tensor]:
    """The model input `feature_ids` `[B, N]` and its embeddings `[B, M, N, K]` (layer name "multi_embedding")."""
    vocabulary_sizes = validation.check_positive_int_list(vocabulary_sizes, "vocabulary_sizes", "build_model")
    inputs = tf.keras.Input(shape=(len(vocabulary_sizes),), dtype="int64", name=FEATURE_IDS_INPUT)
    embeddings = MultiEmbedding(
        vocabulary_sizes, num_sets=num_sets, embedding_dim=embedding_dim, field_names=field_names,
        embeddings_initializer=embeddings_initializer, embeddings_regularizer=embeddings_regularizer,
        validate_ids=validate_ids, name="multi_embedding",
    )(inputs)
    return inputs, embeddings


def check_hidden_units(hidden_units: Sequence[int]) -> List[int]:
    """At least one hidden width: the first becomes the per-set projection, the rest the shared head."""
    return validation.check_positive_int_list(hidden_units, "hidden_units", "build_model")


def projection_mean_head(set_features: tf.Tensor, hidden_units: Sequence[int], dropout: float,
                         batch_norm_momentum: float, batch_norm_epsilon: float, prefix: str = "") -> tf.Tensor:
    """The paper's ME pattern after the interaction: per-set projection -> mean over sets -> shared head -> logit.

    `hidden_units[0]` is the set-specific Linear+BN+ReLU+Dropout; `hidden_units[1:]` and the output layer are shared.
    For one set this is exactly the SE model's MLP.
    """
    hidden_units = check_hidden_units(hidden_units)
    projected = SetMLP(hidden_units[:1], dropout, batch_norm_momentum=batch_norm_momentum,
                       batch_norm_epsilon=batch_norm_epsilon, name=f"{prefix}set_projection")(set_features)
    combined = SetMean(name=f"{prefix}set_mean")(projected)
    return MLP(hidden_units[1:], dropout, output_units=1, batch_norm_momentum=batch_norm_momentum,
               batch_norm_epsilon=batch_norm_epsilon, name=f"{prefix}shared_head")(combined)


def linear_logit(features: tf.Tensor, name: str) -> tf.Tensor:
    """A shared Linear(H, 1) with the reference's initialisation."""
    return MLP((), output_units=1, name=name)(features)


def probability_model(inputs: tf.Tensor, logit: tf.Tensor, name: str) -> tf.keras.Model:
    """Wraps a logit into the functional model whose output is the click probability `[B, 1]`; weights its layers
    keep only in Python lists are tracked too (`track_listed_weights`)."""
    probability = tf.keras.layers.Activation("sigmoid", dtype="float32", name=PROBABILITY_OUTPUT)(logit)
    model = tf.keras.Model(inputs=inputs, outputs=probability, name=name)
    track_listed_weights(model)
    return model


def track_listed_weights(model: tf.keras.Model) -> None:
    """Makes every variable of the model's layers an attribute of its layer, so `tf.train.Checkpoint` and SavedModel
    find it: Keras 3 tracks weights and sub-layers kept in Python lists for its own saving only. A variable not
    reachable through attributes becomes `listed__<its Keras path, "/" as "__">` of the top-level layer holding it
    (the name depends on layer and weight names, never on list positions). Does nothing for reachable variables
    (all of them under legacy tf-keras, which tracks lists itself)."""
    for layer in model.layers:
        if not layer.variables:
            continue
        reachable = introspection.object_graph_paths(layer)
        for variable in layer.variables:
            if id(variable) not in reachable and variable.trainable:
                path = getattr(variable, "path", variable.name).split(":")[0]
                validation.track_as_attribute(layer, "listed__" + path.replace("/", "__"), variable)


def model_name(family: str, num_sets: int, embedding_dim: int) -> str:
    """E.g. "se_dcnv2_k40" or "me_dcnv2_4x10"."""
    if num_sets == 1:
        return f"se_{family}_k{embedding_dim}"
    return f"me_{family}_{num_sets}x{embedding_dim}"
