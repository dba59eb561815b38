"""`build_model`: a registered model at a scale factor, as single-embedding (SE) or multi-embedding (ME)."""

from typing import Any, Optional, Sequence, Tuple

import tensorflow as tf

from tf_multiembed import validation
from tf_multiembed.models.common import NumericInputs
from tf_multiembed.models.registry import get_model_spec


def resolve_embedding_shape(name: str, scale: int = 1, multi_embedding: bool = True,
                            embedding_dim: Optional[int] = None, num_sets: Optional[int] = None) -> Tuple[int, int]:
    """(num_sets, embedding_dim) for a model at a scale factor.

    The paper's rule: with base width K (10; NFwFM 50), SE at scale s has one set of width s*K and ME has s sets of
    width K, so both have the same embedding parameters. `num_sets` sets M explicitly for ME (then `scale` must be 1
    or equal to it); `embedding_dim` overrides the base width K.

    Example:
        >>> resolve_embedding_shape("dcnv2", scale=4, multi_embedding=False)
        (1, 40)
        >>> resolve_embedding_shape("dcnv2", scale=4, multi_embedding=True)
        (4, 10)
    """
    spec = get_model_spec(name)
    scale = validation.check_positive_int(scale, "scale", "build_model")
    base = spec.base_embedding_dim if embedding_dim is None else validation.check_positive_int(
        embedding_dim, "embedding_dim", "build_model")
    if num_sets is not None:
        num_sets = validation.check_positive_int(num_sets, "num_sets", "build_model")
        if not multi_embedding and num_sets != 1:
            raise ValueError(f"build_model: multi_embedding=False means one embedding set, received "
                             f"num_sets={num_sets}.")
        if scale not in (1, num_sets):
            raise ValueError(
                f"build_model: num_sets={num_sets} and scale={scale} disagree; for ME the scale is the number of "
                "sets, so give one of them (or equal values)."
            )
        return num_sets, base
    if multi_embedding:
        return scale, base
    return 1, scale * base


def build_model(name: str, vocabulary_sizes: Sequence[int], *, scale: int = 1, multi_embedding: bool = True,
                embedding_dim: Optional[int] = None, num_sets: Optional[int] = None,
                field_names: Optional[Sequence[str]] = None, numeric_inputs: Optional[NumericInputs] = None,
                bag_sizes: Optional[Sequence[int]] = None, bag_combiner: str = "mean",
                **model_kwargs: Any) -> tf.keras.Model:
    """Builds a functional Keras model of the zoo.

    The model takes one input, `feature_ids` (int64 `[batch, N]`, field-local ids, 0 = OOV), and returns the click
    probability `[batch, 1]`. With `numeric_inputs` it takes a dict instead: `feature_ids` plus `numeric_values`
    (float32 `[batch, F_e]`, the embedded numeric fields, NaN = missing) and/or `dense_values` (float32
    `[batch, F_d]`), as docs/inputs.md describes. Its embedding layer is named "multi_embedding". `model_kwargs`
    go to the family's builder (e.g. `hidden_units`, `dropout`, `num_cross_layers`, `low_rank`); every paper
    default can be overridden.

    Args:
        name: a registered model name: "dnn", "ipnn", "nfwfm", "xdeepfm", "dcnv2", "finalmlp", "autoint", ...
        vocabulary_sizes: embedding rows per field, including the OOV id.
        scale: the paper's scale factor s (SE width s*K; ME s sets of width K).
        multi_embedding: ME (True) or SE (False). At scale 1 both are the same base model.
        embedding_dim: base width K; default the paper's (10; 50 for NFwFM).
        num_sets: explicit number of sets for ME.
        field_names: optional field names (used in error messages).
        numeric_inputs: float numeric fields and their normalisation constants (`NumericInputs`, e.g.
            `NumericInputs.from_dict(prepared.model_inputs)`); None or empty for the paper's id-only model.
        bag_sizes: per field, 1, or L for a variable-length field (a bag) of at most L values padded with -1:
            `feature_ids` then has sum(bag_sizes) columns (`PreparedData.bag_sizes`); `vocabulary_sizes` are per
            field. None: one column per field.
        bag_combiner: how bags are pooled per set, "mean" (default) or "sum".

    Example:
        >>> model = build_model("dcnv2", vocabulary_sizes=[944, 1683, 62], scale=4, multi_embedding=True)
        >>> model.get_layer("multi_embedding").num_sets
        4
    """
    resolved_sets, resolved_dim = resolve_embedding_shape(name, scale, multi_embedding, embedding_dim, num_sets)
    spec = get_model_spec(name)
    return spec.build_fn(vocabulary_sizes, num_sets=resolved_sets, embedding_dim=resolved_dim,
                         field_names=field_names, **({"numeric_inputs": numeric_inputs} if numeric_inputs else {}),
                         **({"bag_sizes": list(bag_sizes), "bag_combiner": bag_combiner} if bag_sizes is not None
                            else {}), **model_kwargs)
