"""Pieces every model of the zoo shares: the id input, the embedding sets, the per-set projection + mean + head."""

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union, cast

import tensorflow as tf

from tf_multiembed import introspection, types, validation
from tf_multiembed.layers import MLP, DenseNumeric, MultiEmbedding, NumericEmbedding, SetGate, SetMean, SetMLP
from tf_multiembed.layers.collapse_penalties import SingularValuePenalty, SpaceSimilarityPenalty, UnfoldSets

FEATURE_IDS_INPUT = "feature_ids"
NUMERIC_VALUES_INPUT = "numeric_values"
DENSE_VALUES_INPUT = "dense_values"
PROBABILITY_OUTPUT = "click_probability"

# The paper's defaults for every model (paper.md §1.2-1.3).
DEFAULT_HIDDEN_UNITS = (400, 400)
DEFAULT_DROPOUT = 0.2
# How the projected sets are combined before the shared head: "mean" (the paper's) or "gate" (`SetGate`, learned
# per-example softmax weights over the sets, starting as the mean).
SET_COMBINERS = ("mean", "gate")


@dataclasses.dataclass(frozen=True)
class NumericFeature:
    """One float numeric field as the model sees it: its name and normalisation constants (docs/inputs.md).

    Args:
        name: the field's name.
        mean: mean of t(v) over the training input (pass 1 of the build).
        std: standard deviation of t(v) (> 0).
        log1p: t(v) = log1p(max(v, 0)) instead of v.
    """

    name: str
    mean: float = 0.0
    std: float = 1.0
    log1p: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"NumericFeature: `name` must be a non-empty string, got {self.name!r}.")
        if isinstance(self.mean, bool) or not isinstance(self.mean, (int, float)) or not math.isfinite(self.mean):
            raise ValueError(f"NumericFeature {self.name!r}: `mean` must be a finite number, got {self.mean!r}.")
        if (isinstance(self.std, bool) or not isinstance(self.std, (int, float)) or not math.isfinite(self.std)
                or self.std <= 0):
            raise ValueError(f"NumericFeature {self.name!r}: `std` must be a finite number > 0, got {self.std!r}.")


@dataclasses.dataclass(frozen=True)
class NumericInputs:
    """The float inputs of a model besides `feature_ids`: embedded fields (`numeric_values [B, F_e]`, embedded per
    set and concatenated after the categorical fields) and dense fields (`dense_values [B, F_d]`, a shared linear
    term of the logit). Empty (the default) means today's single-input model.

    Example:
        >>> NumericInputs(embedded=(NumericFeature("age", mean=34.0, std=12.0),)).num_embedded
        1
    """

    embedded: Tuple[NumericFeature, ...] = ()
    dense: Tuple[NumericFeature, ...] = ()

    def __post_init__(self) -> None:
        for key in ("embedded", "dense"):
            features = tuple(getattr(self, key))
            if not all(isinstance(feature, NumericFeature) for feature in features):
                raise ValueError(f"NumericInputs: `{key}` must hold NumericFeature entries, got {features!r}.")
            object.__setattr__(self, key, features)
        names = [feature.name for feature in self.embedded + self.dense]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"NumericInputs: numeric field names must be unique; repeated: {repeated}.")

    @property
    def num_embedded(self) -> int:
        return len(self.embedded)

    @property
    def num_dense(self) -> int:
        return len(self.dense)

    def __bool__(self) -> bool:
        return bool(self.embedded or self.dense)

    def to_dict(self) -> Dict[str, Any]:
        return {key: [dataclasses.asdict(feature) for feature in getattr(self, key)] for key in ("embedded", "dense")}

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> "NumericInputs":
        """From `to_dict()`'s form (or a prepared-data manifest's `model_inputs`); None gives no numeric inputs."""
        if not data:
            return cls()
        return cls(**{key: tuple(NumericFeature(**entry) for entry in data.get(key, ())) for key in ("embedded",
                                                                                                   "dense")})


def _statistics(features: Sequence[NumericFeature]) -> Dict[str, Any]:
    return {"means": [f.mean for f in features], "stds": [f.std for f in features],
            "log1p": [bool(f.log1p) for f in features], "field_names": [f.name for f in features]}


def embedded_inputs(vocabulary_sizes: Sequence[int], num_sets: int, embedding_dim: int,
                    field_names: Optional[Sequence[str]] = None,
                    embeddings_initializer: Optional[types.InitializerLike] = None,
                    embeddings_regularizer: Optional[types.RegularizerLike] = None,
                    validate_ids: bool = True, numeric_inputs: Optional[NumericInputs] = None,
                    bag_sizes: Optional[Sequence[int]] = None,
                    bag_combiner: str = "mean") -> Tuple[Union[tf.Tensor, Dict[str, tf.Tensor]], tf.Tensor]:
    """The model inputs and the embeddings `[B, M, N_total, K]` every interaction block takes.

    Without numeric inputs: the input `feature_ids` `[B, N]` and its embeddings (layer "multi_embedding"), exactly
    the paper's model. With them: a dict of inputs (`feature_ids`, and `numeric_values` / `dense_values` as
    present); the embedded numeric fields (layer "numeric_embedding") follow the categorical ones along the field
    axis (layer "field_concat"), so N_total = N + F_e. With `bag_sizes` (per field, 1 or a bag's L columns) the ids
    input has sum(bag_sizes) columns and each bag is pooled into its field's embedding (`MultiEmbedding`).
    """
    vocabulary_sizes = validation.check_positive_int_list(vocabulary_sizes, "vocabulary_sizes", "build_model")
    layer = MultiEmbedding(
        vocabulary_sizes, num_sets=num_sets, embedding_dim=embedding_dim, field_names=field_names,
        embeddings_initializer=embeddings_initializer, embeddings_regularizer=embeddings_regularizer,
        validate_ids=validate_ids, name="multi_embedding",
        **cast(Dict[str, Any], {"bag_sizes": bag_sizes, "bag_combiner": bag_combiner} if bag_sizes is not None else {}),
    )
    ids = tf.keras.Input(shape=(layer.num_columns,), dtype="int64", name=FEATURE_IDS_INPUT)
    embeddings = layer(ids)
    if not numeric_inputs:
        return ids, embeddings
    if not isinstance(numeric_inputs, NumericInputs):
        raise TypeError(f"build_model: `numeric_inputs` must be a NumericInputs, got {type(numeric_inputs).__name__}.")
    inputs = {FEATURE_IDS_INPUT: ids}
    if numeric_inputs.embedded:
        values = tf.keras.Input(shape=(numeric_inputs.num_embedded,), dtype="float32", name=NUMERIC_VALUES_INPUT)
        inputs[NUMERIC_VALUES_INPUT] = values
        numeric = NumericEmbedding(numeric_inputs.num_embedded, num_sets=num_sets, embedding_dim=embedding_dim,
                                   embeddings_initializer=embeddings_initializer, name="numeric_embedding",
                                   **_statistics(numeric_inputs.embedded))(values)
        embeddings = tf.keras.layers.Concatenate(axis=2, name="field_concat")([embeddings, numeric])
    if numeric_inputs.dense:
        inputs[DENSE_VALUES_INPUT] = tf.keras.Input(shape=(numeric_inputs.num_dense,), dtype="float32",
                                                    name=DENSE_VALUES_INPUT)
    return inputs, embeddings


def dense_logit(inputs: Union[tf.Tensor, Dict[str, tf.Tensor]],
                numeric_inputs: Optional[NumericInputs]) -> Optional[tf.Tensor]:
    """The dense treatment's shared linear logit term (layer "dense_logit"), or None without dense fields."""
    if not numeric_inputs or not numeric_inputs.dense:
        return None
    normalised = DenseNumeric(numeric_inputs.num_dense, name="dense_numeric",
                              **_statistics(numeric_inputs.dense))(inputs[DENSE_VALUES_INPUT])
    return linear_logit(normalised, name="dense_logit")


def check_hidden_units(hidden_units: Sequence[int]) -> List[int]:
    """At least one hidden width: the first becomes the per-set projection, the rest the shared head."""
    return validation.check_positive_int_list(hidden_units, "hidden_units", "build_model")


def combine_sets(projected: tf.Tensor, set_combiner: str = "mean", prefix: str = "") -> tf.Tensor:
    """`[B, M, H] -> [B, H]`: the mean over sets (layer "set_mean", the paper's) or a learned gate ("set_gate",
    `SetGate`, which starts as the mean), as `set_combiner` says."""
    if set_combiner not in SET_COMBINERS:
        raise ValueError(f"build_model: `set_combiner` must be one of {list(SET_COMBINERS)}, received "
                         f"{set_combiner!r}.")
    if set_combiner == "gate":
        return SetGate(name=f"{prefix}set_gate")(projected)
    return SetMean(name=f"{prefix}set_mean")(projected)


def projection_mean_head(set_features: tf.Tensor, hidden_units: Sequence[int], dropout: float,
                         batch_norm_momentum: float, batch_norm_epsilon: float, prefix: str = "",
                         folded_sets: Optional[int] = None, set_combiner: str = "mean") -> tf.Tensor:
    """The paper's ME pattern after the interaction: per-set projection -> mean over sets -> shared head -> logit.

    `hidden_units[0]` is the set-specific Linear+BN+ReLU+Dropout; `hidden_units[1:]` and the output layer are shared.
    For one set this is exactly the SE model's MLP. With `folded_sets=M` the input is `[B*M, 1, D]` (`FoldSets`):
    one projection serves every set (the shared-interaction ablation) and its output is unfolded before the mean.
    `set_combiner="gate"` replaces the mean by a learned gate (`combine_sets`).
    """
    hidden_units = check_hidden_units(hidden_units)
    projected = SetMLP(hidden_units[:1], dropout, batch_norm_momentum=batch_norm_momentum,
                       batch_norm_epsilon=batch_norm_epsilon, name=f"{prefix}set_projection")(set_features)
    if folded_sets is not None:
        projected = UnfoldSets(folded_sets, name=f"{prefix}unfold_sets")(projected)
    combined = combine_sets(projected, set_combiner, prefix)
    return shared_head(combined, hidden_units, dropout, batch_norm_momentum, batch_norm_epsilon, prefix)


def shared_head(combined: tf.Tensor, hidden_units: Sequence[int], dropout: float, batch_norm_momentum: float,
                batch_norm_epsilon: float, prefix: str = "") -> tf.Tensor:
    """The shared MLP `hidden_units[1:]` -> logit (layer "shared_head") on the combined sets `[B, H]`."""
    return MLP(list(hidden_units)[1:], dropout, output_units=1, batch_norm_momentum=batch_norm_momentum,
               batch_norm_epsilon=batch_norm_epsilon, name=f"{prefix}shared_head")(combined)


def collapse_penalties(embeddings: Any, space_similarity_coefficient: float,
                       singular_value_coefficient: float) -> Any:
    """Adds the paper's embedding penalties (`collapse_penalties` module) after the embeddings when their weight is
    positive; with both at 0 the graph is unchanged."""
    for coefficient, layer_class, name in ((space_similarity_coefficient, SpaceSimilarityPenalty,
                                            "space_similarity_penalty"),
                                           (singular_value_coefficient, SingularValuePenalty,
                                            "singular_value_penalty")):
        if isinstance(coefficient, bool) or not isinstance(coefficient, (int, float)) or coefficient < 0:
            raise ValueError(f"build_model: `{name.replace('_penalty', '_coefficient')}` must be a float >= 0, "
                             f"received {coefficient!r}.")
        if coefficient > 0:
            embeddings = layer_class(float(coefficient), name=name)(embeddings)
    return embeddings


def linear_logit(features: tf.Tensor, name: str) -> tf.Tensor:
    """A shared Linear(H, 1) with the reference's initialisation."""
    return MLP((), output_units=1, name=name)(features)


def probability_model(inputs: Union[tf.Tensor, Dict[str, tf.Tensor]], logit: tf.Tensor, name: str,
                      numeric_inputs: Optional[NumericInputs] = None) -> tf.keras.Model:
    """Wraps a logit into the functional model whose output is the click probability `[B, 1]`; dense numeric
    fields add their shared linear term to the logit first (docs/inputs.md); weights its layers keep only in Python
    lists are tracked too (`track_listed_weights`)."""
    dense = dense_logit(inputs, numeric_inputs)
    if dense is not None:
        logit = tf.keras.layers.Add(name="logit_with_dense")([logit, dense])
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
