"""Heterogeneous multi-embedding: groups of embedding sets carry different interaction blocks (Pan et al., KDD 2024,
"Ads Recommendation in a Collapsed and Entangled World": an "expert" per set), combined as in the paper's ME.

One fused `MultiEmbedding` table holds every set and is read by one gather; a group is a slice of the set axis
(`SetSlice`), and its block is one set-vectorised layer over the group's sets, exactly the homogeneous models' layer.
Each group has its own per-set projection (`hidden_units[0]`, Linear+BN+ReLU+Dropout: the blocks' output widths
differ), the projected sets are concatenated back on the set axis, averaged, and fed to the shared head, so with
every set of one type the model is the homogeneous ME model of that block, weight for weight. `set_combiner="gate"`
(registered as "heterogeneous_gated") replaces the average by a learned per-example softmax gate over the sets
(`SetGate`, the Tencent paper's MMoE-style mixing of experts), which starts as the average.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from tf_multiembed.layers import (
    SetCIN,
    SetFieldWeightedFM,
    SetFlatten,
    SetInnerProduct,
    SetMLP,
    SetSelfAttention,
)
from tf_multiembed.layers.interactions.cross import GroupSetCross
from tf_multiembed.layers.set_ops import SetSlice
from tf_multiembed.models import common
from tf_multiembed.models.registry import register_model, register_variant


def _cross(embeddings: Any, name: str, options: Dict[str, Any]) -> Any:
    flat = SetFlatten(name=f"{name}_flatten")(embeddings)
    return GroupSetCross(num_layers=options["num_cross_layers"], name=name)(flat)


def _inner_product(embeddings: Any, name: str, options: Dict[str, Any]) -> Any:
    return SetInnerProduct(name=name)(embeddings)


def _fwfm(embeddings: Any, name: str, options: Dict[str, Any]) -> Any:
    return SetFieldWeightedFM(dropout=options["dropout"], batch_norm_momentum=options["batch_norm_momentum"],
                              batch_norm_epsilon=options["batch_norm_epsilon"], name=name)(embeddings)


def _cin(embeddings: Any, name: str, options: Dict[str, Any]) -> Any:
    return SetCIN(layer_sizes=options["cin_layer_sizes"], name=name)(embeddings)


def _self_attention(embeddings: Any, name: str, options: Dict[str, Any]) -> Any:
    return SetSelfAttention(name=name)(embeddings)


def _dnn(embeddings: Any, name: str, options: Dict[str, Any]) -> Any:
    return SetFlatten(name=name)(embeddings)


# Interaction name -> the block applied to a group's `[B, M_g, N, K]` embeddings, giving `[B, M_g, H]`.
INTERACTIONS: Dict[str, Callable[[Any, str, Dict[str, Any]], Any]] = {
    "cross": _cross,
    "inner_product": _inner_product,
    "fwfm": _fwfm,
    "cin": _cin,
    "self_attention": _self_attention,
    "dnn": _dnn,
}


def default_set_interactions(num_sets: int) -> List[str]:
    """The default: the first half of the sets (rounded up) cross, the rest inner product.

    Example:
        >>> default_set_interactions(4)
        ['cross', 'cross', 'inner_product', 'inner_product']
    """
    crossed = (num_sets + 1) // 2
    return ["cross"] * crossed + ["inner_product"] * (num_sets - crossed)


def set_groups(set_interactions: Sequence[str], num_sets: int, spell: str = "`set_interactions`",
               owner: str = "build_model('heterogeneous')") -> List[Tuple[str, int, int]]:
    """`(interaction, start, stop)` per run of equal consecutive names; validates the list (errors name it as
    `spell` after `owner`; train.py's: "--set_interactions", no owner).

    Example:
        >>> set_groups(["cross", "cross", "dnn"], 3)
        [('cross', 0, 2), ('dnn', 2, 3)]
    """
    names = list(set_interactions)
    prefix = f"{owner}: " if owner else ""
    if len(names) != num_sets:
        raise ValueError(f"{prefix}{spell} names one interaction per set; received {len(names)} for {num_sets} "
                         f"sets.")
    for name in names:
        if name not in INTERACTIONS:
            raise ValueError(f"{prefix}unknown interaction {name!r} in {spell}; expected one of "
                             f"{sorted(INTERACTIONS)}.")
    groups: List[Tuple[str, int, int]] = []
    for index, name in enumerate(names):
        if groups and groups[-1][0] == name:
            groups[-1] = (name, groups[-1][1], index + 1)
        else:
            groups.append((name, index, index + 1))
    return groups


def parse_set_interactions(text: str, spell: str = "--set_interactions") -> List[str]:
    """One interaction per set from a comma-separated text where `name:count` stands for `count` sets of `name`.

    The names are checked by `set_groups` (with the number of sets); this checks the form only.

    Example:
        >>> parse_set_interactions("cross:2,inner_product,dnn:1")
        ['cross', 'cross', 'inner_product', 'dnn']
    """
    names: List[str] = []
    for item in text.split(","):
        name, separator, count = (part.strip() for part in item.partition(":"))
        if not name:
            raise ValueError(f"{spell}: empty entry in {text!r}; give comma-separated interaction names, "
                             f"name:count for several sets (e.g. cross:2,inner_product:2).")
        if separator and not (count.isdigit() and int(count) >= 1):
            raise ValueError(f"{spell}: {item.strip()!r} needs a whole number of sets >= 1 after ':' (e.g. "
                             f"{name}:2).")
        names.extend([name] * (int(count) if separator else 1))
    return names


@register_model("heterogeneous", base_embedding_dim=10)
def build_heterogeneous(vocabulary_sizes: Sequence[int], *, num_sets: int, embedding_dim: int,
                        field_names: Optional[Sequence[str]] = None,
                        set_interactions: Optional[Sequence[str]] = None, num_cross_layers: int = 4,
                        cin_layer_sizes: Sequence[int] = (16, 16),
                        hidden_units: Sequence[int] = common.DEFAULT_HIDDEN_UNITS,
                        dropout: float = common.DEFAULT_DROPOUT, batch_norm_momentum: float = 0.9,
                        batch_norm_epsilon: float = 1e-5, embeddings_initializer: Any = None,
                        embeddings_regularizer: Any = None, validate_ids: bool = True,
                        numeric_inputs: Optional[common.NumericInputs] = None,
                        bag_sizes: Optional[Sequence[int]] = None, bag_combiner: str = "mean",
                        set_combiner: str = "mean", name: Optional[str] = None) -> tf.keras.Model:
    """Builds heterogeneous ME: set groups with different interactions -> per-set projection -> mean -> shared head.

    Args:
        set_interactions: one name per set from `INTERACTIONS` ("cross", "inner_product", "fwfm", "cin",
            "self_attention", "dnn"); runs of equal names form a group served by one vectorised block (layer
            "group_<g>_<name>", projection "group_<g>_projection"). Default `default_set_interactions(num_sets)`.
        num_cross_layers, cin_layer_sizes: options of the cross and CIN blocks.
        set_combiner: "mean" (layer "set_mean") or "gate" (layer "set_gate", `SetGate`: learned per-example softmax
            weights over the sets, zero-initialised, so training starts from the mean).
        Other arguments: as for the homogeneous models.

    Example:
        >>> model = build_heterogeneous([10, 20, 30], num_sets=4, embedding_dim=5,
        ...                             set_interactions=["cross", "cross", "cin", "dnn"])
        >>> type(model.get_layer("group_1_cin")).__name__, model.get_layer("group_0_sets").stop
        ('SetCIN', 2)
    """
    groups = set_groups(default_set_interactions(num_sets) if set_interactions is None else set_interactions,
                        num_sets)
    hidden_units = common.check_hidden_units(hidden_units)
    options = {"num_cross_layers": num_cross_layers, "cin_layer_sizes": cin_layer_sizes, "dropout": dropout,
               "batch_norm_momentum": batch_norm_momentum, "batch_norm_epsilon": batch_norm_epsilon}
    inputs, embeddings = common.embedded_inputs(vocabulary_sizes, num_sets, embedding_dim, field_names,
                                                embeddings_initializer, embeddings_regularizer, validate_ids,
                                                numeric_inputs, bag_sizes, bag_combiner)
    projected = []
    for index, (interaction, start, stop) in enumerate(groups):
        group = embeddings if len(groups) == 1 else SetSlice(start, stop, name=f"group_{index}_sets")(embeddings)
        features = INTERACTIONS[interaction](group, f"group_{index}_{interaction}", options)
        projected.append(SetMLP(hidden_units[:1], dropout, batch_norm_momentum=batch_norm_momentum,
                                batch_norm_epsilon=batch_norm_epsilon, name=f"group_{index}_projection")(features))
    combined = projected[0] if len(projected) == 1 else tf.keras.layers.Concatenate(
        axis=1, name="set_concat")(projected)
    logit = common.shared_head(common.combine_sets(combined, set_combiner), hidden_units, dropout,
                               batch_norm_momentum, batch_norm_epsilon)
    return common.probability_model(inputs, logit, name or common.model_name("heterogeneous", num_sets,
                                                                            embedding_dim),
                                    numeric_inputs=numeric_inputs)


# The gated combination under a name of its own, so train.py --model and the scaling study can train it.
build_heterogeneous_gated = register_variant("heterogeneous_gated", build_heterogeneous, set_combiner="gate")
