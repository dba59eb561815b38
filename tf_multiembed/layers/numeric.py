"""Numeric fields inside the model: normalisation, `NumericEmbedding` (embedded treatment), `DenseNumeric` (dense).

Both layers take the raw values `[batch, F]` (float; NaN, or any non-finite value, means missing) and normalise them
with constants from pass 1 of the build, kept in the layer config so that a saved model, a checkpointed model and
the SavedModel all carry them (docs/inputs.md):

    z = (t(v) - mean) / std,  t(v) = v, or log1p(max(v, 0)) for a log1p field;  z = 0 where v is missing.
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers import initializers

_KERAS_3 = not tf.keras.__name__.startswith("tf_keras")


def _statistics(owner: str, num_fields: int, means: Optional[Sequence[float]], stds: Optional[Sequence[float]],
                log1p: Optional[Sequence[bool]]) -> Tuple[List[float], List[float], List[bool]]:
    """Checked per-field constants (defaults: mean 0, std 1, no log1p)."""
    means = [0.0] * num_fields if means is None else list(means)
    stds = [1.0] * num_fields if stds is None else list(stds)
    log1p = [False] * num_fields if log1p is None else list(log1p)
    for name, values in (("means", means), ("stds", stds), ("log1p", log1p)):
        if len(values) != num_fields:
            raise ValueError(f"{owner}: `{name}` has {len(values)} entries for {num_fields} fields; give one per "
                             f"field.")
    for index, (mean, std) in enumerate(zip(means, stds)):
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
            raise ValueError(f"{owner}: `means[{index}]` must be a finite number, received {mean!r}.")
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std <= 0:
            raise ValueError(f"{owner}: `stds[{index}]` must be a finite number > 0, received {std!r}.")
    if not all(isinstance(flag, bool) for flag in log1p):
        raise ValueError(f"{owner}: `log1p` must hold booleans, received {log1p!r}.")
    return [float(m) for m in means], [float(s) for s in stds], log1p


def normalize_numeric(values: tf.Tensor, means: Sequence[float], stds: Sequence[float],
                      log1p: Sequence[bool]) -> Tuple[tf.Tensor, tf.Tensor]:
    """`(z float32 [B, F], missing float32 [B, F] of 0/1)` of raw values `[B, F]`.

    Missing (non-finite) values get z = 0 and missing = 1. The raw value is replaced before any arithmetic, so no
    NaN reaches a gradient.

    Example:
        >>> z, missing = normalize_numeric(tf.constant([[3.0, float("nan")]]), [1.0, 0.0], [2.0, 1.0],
        ...                                [False, False])
        >>> z.numpy().tolist(), missing.numpy().tolist()
        ([[1.0, 0.0]], [[0.0, 1.0]])
    """
    values = tf.cast(values, tf.float32)
    missing = tf.logical_not(tf.math.is_finite(values))
    present = tf.where(missing, tf.zeros_like(values), values)
    transformed = tf.where(tf.constant(list(log1p), tf.bool), tf.math.log1p(tf.maximum(present, 0.0)), present)
    z = (transformed - tf.constant(list(means), tf.float32)) / tf.constant(list(stds), tf.float32)
    return tf.where(missing, tf.zeros_like(z), z), tf.cast(missing, tf.float32)


def _check_values_shape(owner: str, input_shape: types.Shape, num_fields: int) -> None:
    input_shape = tuple(input_shape)
    if len(input_shape) != 2 or input_shape[-1] != num_fields:
        raise ValueError(f"{owner}: expected raw numeric values of shape [batch, {num_fields}] (one value per "
                         f"field), received shape {input_shape}.")


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class NumericEmbedding(tf.keras.layers.Layer):
    """M embedding sets for F numeric fields: each normalised value scales a learned vector per field and set.

        e[b, m, f, :] = z[b, f] * W[m, f, :]            (value present)
        e[b, m, f, :] = W_missing[m, f, :]              (value missing)

    with z the normalised value (module docstring). The weights carry the set axis first, `kernel` `[M, F, K]` and
    `missing_embeddings` `[M, F, K]`, and all sets are computed in one broadcast product. The output has the layout
    of `MultiEmbedding`, so the two concatenate along the field axis and numeric fields join every set's
    interactions. As FuxiCTR and AutoInt embed numeric fields there is no bias: the mean value is the zero vector.
    The default initializer is Xavier-uniform over one set's `2F` rows of width K, U(-b, b), b = sqrt(6/(2F + K)).

    Args:
        num_fields: F, the numeric fields.
        num_sets: M.
        embedding_dim: K.
        means: per field, the mean of t(v) (default 0).
        stds: per field, the standard deviation of t(v) (> 0; default 1).
        log1p: per field, whether t(v) = log1p(max(v, 0)) instead of v.
        field_names: optional names of the fields (error messages, diagnostics).
        embeddings_initializer: a Keras initializer for both weights; None for the default above.
        **kwargs: base `Layer` arguments.

    Input shape: raw values `[batch, F]` (float; NaN = missing).
    Output shape: `[batch, M, F, K]`.

    Example:
        >>> layer = NumericEmbedding(num_fields=2, num_sets=3, embedding_dim=4, means=[0.0, 5.0], stds=[1.0, 2.0])
        >>> layer(tf.constant([[1.0, float("nan")]])).shape
        TensorShape([1, 3, 2, 4])
    """

    def __init__(self, num_fields: int, num_sets: int = 1, embedding_dim: int = 10,
                 means: Optional[Sequence[float]] = None, stds: Optional[Sequence[float]] = None,
                 log1p: Optional[Sequence[bool]] = None, field_names: Optional[Sequence[str]] = None,
                 embeddings_initializer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = "NumericEmbedding"
        self.num_fields = validation.check_positive_int(num_fields, "num_fields", owner)
        self.num_sets = validation.check_positive_int(num_sets, "num_sets", owner)
        self.embedding_dim = validation.check_positive_int(embedding_dim, "embedding_dim", owner)
        self.means, self.stds, self.log1p = _statistics(owner, self.num_fields, means, stds, log1p)
        if field_names is not None:
            field_names = [str(name) for name in field_names]
            if len(field_names) != self.num_fields:
                raise ValueError(f"{owner}: `field_names` has {len(field_names)} entries for {self.num_fields} "
                                 f"fields; give one name per field.")
        self.field_names = field_names
        self._embeddings_initializer_arg = embeddings_initializer

    def build(self, input_shape: Any) -> None:
        _check_values_shape("NumericEmbedding", input_shape, self.num_fields)
        bound = math.sqrt(6.0 / (2 * self.num_fields + self.embedding_dim))
        shape = (self.num_sets, self.num_fields, self.embedding_dim)
        no_autocast = {"autocast": False} if _KERAS_3 else {"experimental_autocast": False}
        for attribute in ("kernel", "missing_embeddings"):
            initializer = initializers.resolve(self._embeddings_initializer_arg,
                                               tf.keras.initializers.RandomUniform(-bound, bound))
            setattr(self, attribute, self.add_weight(name=attribute, shape=shape, initializer=initializer,
                                                     trainable=True, **no_autocast))
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        z, missing = normalize_numeric(inputs, self.means, self.stds, self.log1p)
        kernel = tf.cast(tf.convert_to_tensor(self.kernel), tf.float32)
        missing_rows = tf.cast(tf.convert_to_tensor(self.missing_embeddings), tf.float32)
        # [B, 1, F, 1] * [1, M, F, K]: every set at once.
        embedded = z[:, None, :, None] * kernel[None] + missing[:, None, :, None] * missing_rows[None]
        return tf.cast(embedded, self.compute_dtype)

    def compute_output_shape(self, input_shape: Any) -> Tuple[Any, ...]:
        return (input_shape[0], self.num_sets, self.num_fields, self.embedding_dim)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"num_fields": self.num_fields, "num_sets": self.num_sets,
                       "embedding_dim": self.embedding_dim, "means": list(self.means), "stds": list(self.stds),
                       "log1p": list(self.log1p), "field_names": self.field_names,
                       "embeddings_initializer": initializers.serialize(self._embeddings_initializer_arg)})
        return config


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class DenseNumeric(tf.keras.layers.Layer):
    """The dense treatment's input: normalised values and missing indicators, `[batch, 2F]` = `[z, missing]`.

    It has no weights; the models add a shared linear term of it to the logit (`dense_logit`, docs/inputs.md).

    Args:
        num_fields: F.
        means, stds, log1p, field_names: as in `NumericEmbedding`.
        **kwargs: base `Layer` arguments.

    Example:
        >>> DenseNumeric(1, means=[2.0], stds=[4.0])(tf.constant([[10.0], [float("nan")]])).numpy().tolist()
        [[2.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, num_fields: int, means: Optional[Sequence[float]] = None,
                 stds: Optional[Sequence[float]] = None, log1p: Optional[Sequence[bool]] = None,
                 field_names: Optional[Sequence[str]] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_fields = validation.check_positive_int(num_fields, "num_fields", "DenseNumeric")
        self.means, self.stds, self.log1p = _statistics("DenseNumeric", self.num_fields, means, stds, log1p)
        self.field_names = None if field_names is None else [str(name) for name in field_names]

    def build(self, input_shape: Any) -> None:
        _check_values_shape("DenseNumeric", input_shape, self.num_fields)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        z, missing = normalize_numeric(inputs, self.means, self.stds, self.log1p)
        return tf.cast(tf.concat([z, missing], axis=-1), self.compute_dtype)

    def compute_output_shape(self, input_shape: Any) -> Tuple[Any, ...]:
        return (input_shape[0], 2 * self.num_fields)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"num_fields": self.num_fields, "means": list(self.means), "stds": list(self.stds),
                       "log1p": list(self.log1p), "field_names": self.field_names})
        return config
