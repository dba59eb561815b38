"""`MultiEmbedding`: M independent embedding sets for N categorical fields, read with one gather."""

import math
from typing import Any, List, Optional, Sequence, cast

import numpy as np
import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers import initializers
from tf_multiembed.compat import as_tf_variable

_KERAS_3 = not tf.keras.__name__.startswith("tf_keras")  # add_weight spells its autocast switch differently


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class MultiEmbedding(tf.keras.layers.Layer):
    """M embedding sets of width K for N categorical fields, in one fused table.

    Field i has `vocabulary_sizes[i]` = D_i rows (id 0 is the field's OOV/missing id). All fields and all sets live in
    one variable `embeddings` of shape `[sum(D), M*K]`: field i owns rows `field_offsets[i] : field_offsets[i] + D_i`
    and set m owns columns `m*K : (m+1)*K`. A call adds the field offsets to the field-local ids and reads every field
    and every set with a single gather, so the gradient is one `IndexedSlices` over the looked-up rows.

    `num_sets=1` is the ordinary single embedding (SE). The default initializer is the reference's: each set is
    Xavier-uniform over its whole concatenated table, U(-b, b) with b = sqrt(6 / (sum(D) + K)).

    Args:
        vocabulary_sizes: number of rows per field (including the OOV id 0), one entry per field.
        num_sets: M, the number of independent embedding sets.
        embedding_dim: K, the width of every set.
        embeddings_initializer: a Keras initializer for the fused table; None for the reference default.
        embeddings_regularizer: an optional Keras regularizer on the fused table.
        field_names: optional names of the fields, used in error messages.
        validate_ids: check at run time that every id lies in `[0, D_i)` and fail with a message naming the field.
            A bad id would otherwise read another field's row (on CPU) or a row of zeros (on GPU) silently.
        bag_sizes: optional, per field, its number of id columns: 1 for a single-valued field, L > 1 for a
            variable-length field (a bag, docs/inputs.md) of at most L values from the field's vocabulary, padded
            with -1. A bag's looked-up rows are pooled per set into the field's one embedding. None (the default)
            means one column per field, the paper's layout, computed exactly as without this option.
        bag_combiner: "mean" (the default: the sum of the bag's rows over its number of values; an empty bag is
            the zero vector) or "sum".
        **kwargs: base `Layer` arguments (name, dtype, ...).

    With bags, `call(ids, bag_weights=None)` also takes optional per-value weights float `[batch, sum(bag_sizes)]`
    (a weighted sum, over the sum of the weights for "mean"); single-valued fields ignore theirs. All columns are
    read with the same single gather; single-valued columns pass through and each bag is summed over its slots
    (static slices of the gathered rows: no loop over values or sets at run time).

    Input shape: integer ids `[batch, N]`, field-local (`[batch, sum(bag_sizes)]` with bags).
    Output shape: `[batch, M, N, K]`.

    Example:
        >>> layer = MultiEmbedding(vocabulary_sizes=[4, 3], num_sets=2, embedding_dim=5)
        >>> layer(tf.constant([[0, 2], [3, 1]])).shape
        TensorShape([2, 2, 2, 5])
    """

    def __init__(
        self,
        vocabulary_sizes: Sequence[int],
        num_sets: int = 1,
        embedding_dim: int = 10,
        embeddings_initializer: Optional[types.InitializerLike] = None,
        embeddings_regularizer: Optional[types.RegularizerLike] = None,
        field_names: Optional[Sequence[str]] = None,
        validate_ids: bool = True,
        bag_sizes: Optional[Sequence[int]] = None,
        bag_combiner: str = "mean",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = "MultiEmbedding"
        self.vocabulary_sizes = validation.check_positive_int_list(vocabulary_sizes, "vocabulary_sizes", owner)
        self.num_sets = validation.check_positive_int(num_sets, "num_sets", owner)
        self.embedding_dim = validation.check_positive_int(embedding_dim, "embedding_dim", owner)
        if field_names is not None:
            field_names = [str(name) for name in field_names]
            if len(field_names) != len(self.vocabulary_sizes):
                raise ValueError(
                    f"{owner}: `field_names` has {len(field_names)} entries but `vocabulary_sizes` has "
                    f"{len(self.vocabulary_sizes)}; give one name per field."
                )
        self.field_names = field_names
        self.validate_ids = bool(validate_ids)
        self._embeddings_initializer_arg = embeddings_initializer
        self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)
        self.field_offsets = [0] + np.cumsum(self.vocabulary_sizes)[:-1].astype(int).tolist()
        self.total_rows = int(sum(self.vocabulary_sizes))
        if bag_sizes is not None:
            bag_sizes = validation.check_positive_int_list(bag_sizes, "bag_sizes", owner)
            if len(bag_sizes) != len(self.vocabulary_sizes):
                raise ValueError(f"{owner}: `bag_sizes` has {len(bag_sizes)} entries but `vocabulary_sizes` has "
                                 f"{len(self.vocabulary_sizes)}; give one per field (1 for a single-valued field).")
            if all(size == 1 for size in bag_sizes):
                bag_sizes = None  # no bag: the paper's layout
        if bag_combiner not in ("mean", "sum"):
            raise ValueError(f"{owner}: `bag_combiner` must be 'mean' or 'sum', received {bag_combiner!r}.")
        self.bag_sizes = bag_sizes
        self.bag_combiner = bag_combiner
        # Per id column: its field (a bag has several columns).
        self.column_fields = (list(range(self.num_fields)) if bag_sizes is None else
                              [field for field, size in enumerate(bag_sizes) for _ in range(size)])

    @property
    def num_fields(self) -> int:
        return len(self.vocabulary_sizes)

    @property
    def num_columns(self) -> int:
        """Id columns of the input: N, or sum(bag_sizes) with bags."""
        return len(self.column_fields)

    def build(self, input_shape: types.Shape) -> None:
        input_shape = tuple(input_shape)
        if len(input_shape) != 2 or input_shape[-1] != self.num_columns:
            what = ("one id per field in `vocabulary_sizes`" if self.bag_sizes is None
                    else "sum(bag_sizes) id columns")
            raise ValueError(
                f"MultiEmbedding: expected ids of shape [batch, {self.num_columns}] ({what}), received shape "
                f"{input_shape}."
            )
        bound = math.sqrt(6.0 / (self.total_rows + self.embedding_dim))
        initializer = initializers.resolve(
            self._embeddings_initializer_arg, tf.keras.initializers.RandomUniform(-bound, bound)
        )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.total_rows, self.num_sets * self.embedding_dim),
            initializer=initializer,
            regularizer=self.embeddings_regularizer,
            trainable=True,
            # Under a mixed-precision policy only the looked-up rows are cast (in `call`), never the whole table.
            **({"autocast": False} if _KERAS_3 else {"experimental_autocast": False}),
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, bag_weights: Optional[tf.Tensor] = None) -> tf.Tensor:
        ids = tf.convert_to_tensor(inputs)
        if not ids.dtype.is_integer:
            raise TypeError(
                f"MultiEmbedding: ids must be an integer tensor (int32 or int64, field-local ids), received "
                f"dtype {ids.dtype.name}. Encode categorical values to ids first (see tf_multiembed.data)."
            )
        ids = tf.cast(ids, tf.int64)
        if self.bag_sizes is not None:
            return self._pooled(ids, bag_weights)
        sizes = tf.constant(self.vocabulary_sizes, dtype=tf.int64)
        if self.validate_ids:
            ids = self._checked(ids, sizes)
        rows = ids + tf.constant(self.field_offsets, dtype=tf.int64)
        # Look up in the tf.Variable itself (a ResourceGather of the rows): through the Keras 3 variable the whole
        # table is read first, which copies all of it on every step once sparse updates touched it.
        # embedding_lookup (not tf.gather) also reads tables sharded over parameter servers.
        gathered = tf.nn.embedding_lookup(as_tf_variable(self.embeddings), rows)  # [B, N, M*K]
        gathered = tf.cast(gathered, self.compute_dtype)
        gathered = tf.reshape(gathered, [-1, self.num_fields, self.num_sets, self.embedding_dim])
        return tf.transpose(gathered, [0, 2, 1, 3])  # [B, M, N, K]

    def _pooled(self, ids: tf.Tensor, bag_weights: Optional[tf.Tensor]) -> tf.Tensor:
        """Bags: one gather of every column's row, then per field the (weighted) sum or mean of its columns."""
        fields = self.column_fields
        sizes = tf.constant([self.vocabulary_sizes[field] for field in fields], dtype=tf.int64)
        in_bag = tf.constant([cast(List[int], self.bag_sizes)[field] > 1 for field in fields])  # with bags only
        if self.validate_ids:
            ids = self._checked(ids, sizes, lowest=tf.where(in_bag, tf.constant(-1, tf.int64),
                                                               tf.constant(0, tf.int64)))
        present = tf.logical_or(tf.logical_not(in_bag), ids >= 0)  # -1 pads a bag
        rows = tf.where(present, ids, tf.zeros_like(ids)) + tf.constant(
            [self.field_offsets[field] for field in fields], dtype=tf.int64)
        gathered = tf.nn.embedding_lookup(as_tf_variable(self.embeddings), rows)  # [B, C, M*K]
        weights = tf.cast(present, tf.float32)
        if bag_weights is not None:
            weights *= tf.where(in_bag, tf.cast(bag_weights, tf.float32), tf.ones_like(weights))
        # Runs of single-id columns pass through as one slice each; a bag's rows are weighted and summed over its
        # slots. (A product with a fixed [C, N] 0/1 matrix did the same in one op; these slices cost C adds.)
        gathered = tf.cast(gathered, tf.float32)  # [B, C, M*K]
        pieces, start, run_start = [], 0, 0
        for size in cast(List[int], self.bag_sizes):
            if size > 1:
                if run_start < start:
                    pieces.append(gathered[:, run_start:start])
                slots = weights[:, start:start + size, None]  # [B, L, 1]
                bag = tf.reduce_sum(gathered[:, start:start + size] * slots, axis=1, keepdims=True)  # [B, 1, M*K]
                if self.bag_combiner == "mean":
                    total = tf.reduce_sum(slots, axis=1, keepdims=True)
                    bag /= tf.where(total > 0, total, tf.ones_like(total))  # an empty bag stays zero
                pieces.append(bag)
                run_start = start + size
            start += size
        if run_start < start:
            pieces.append(gathered[:, run_start:start])
        pooled = tf.concat(pieces, axis=1) if len(pieces) > 1 else pieces[0]  # [B, N, M*K]
        pooled = tf.cast(pooled, self.compute_dtype)
        pooled = tf.reshape(pooled, [-1, self.num_fields, self.num_sets, self.embedding_dim])
        return tf.transpose(pooled, [0, 2, 1, 3])  # [B, M, N, K]

    def _checked(self, ids: tf.Tensor, sizes: tf.Tensor, lowest: Optional[tf.Tensor] = None) -> tf.Tensor:
        # Only numbers are computed at run time: string ops cannot be compiled by XLA (jit_compile, TPU), where
        # the assertion is compiled out and ids must be checked in the input pipeline instead.
        bad = tf.logical_or(ids < (0 if lowest is None else lowest), ids >= sizes)
        flat_index = tf.argmax(tf.reshape(tf.cast(bad, tf.int32), [-1]), output_type=tf.int64)
        field = tf.gather(tf.constant(self.column_fields, tf.int64), flat_index % self.num_columns)
        names = ", ".join(f"{i}={name}" for i, name in enumerate(self.field_names or [])) or "unnamed"
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [f"MultiEmbedding '{self.name}': id out of range in field", field, "received",
             tf.gather(tf.reshape(ids, [-1]), flat_index), "expected 0 <= id <",
             tf.gather(tf.constant(self.vocabulary_sizes, tf.int64), field),
             f"(the field's vocabulary size; 0 is the OOV id; fields: {names}). "
             "Re-encode the input or enlarge vocabulary_sizes."],
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def field_table(self, field_index: int, set_index: Optional[int] = None) -> tf.Tensor:
        """Field `field_index`'s rows: `[D_i, K]` of one set, or `[D_i, M*K]` of all sets side by side.

        Example:
            >>> layer = MultiEmbedding([4, 3], num_sets=2, embedding_dim=5)
            >>> _ = layer(tf.constant([[0, 0]]))
            >>> layer.field_table(1, set_index=0).shape
            TensorShape([3, 5])
        """
        if not 0 <= field_index < self.num_fields:
            raise ValueError(
                f"MultiEmbedding: field_index must be in [0, {self.num_fields}), received {field_index}."
            )
        start = self.field_offsets[field_index]
        rows = tf.convert_to_tensor(self.embeddings)[start : start + self.vocabulary_sizes[field_index]]
        if set_index is None:
            return rows
        if not 0 <= set_index < self.num_sets:
            raise ValueError(f"MultiEmbedding: set_index must be in [0, {self.num_sets}), received {set_index}.")
        return rows[:, set_index * self.embedding_dim : (set_index + 1) * self.embedding_dim]

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], self.num_sets, self.num_fields, self.embedding_dim)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update(
            {
                "vocabulary_sizes": list(self.vocabulary_sizes),
                "num_sets": self.num_sets,
                "embedding_dim": self.embedding_dim,
                "embeddings_initializer": initializers.serialize(self._embeddings_initializer_arg),
                "embeddings_regularizer": tf.keras.regularizers.serialize(self.embeddings_regularizer)
                if self.embeddings_regularizer is not None
                else None,
                "field_names": self.field_names,
                "validate_ids": self.validate_ids,
            }
        )
        if self.bag_sizes is not None:  # the paper's configs stay as they were
            config.update({"bag_sizes": list(self.bag_sizes), "bag_combiner": self.bag_combiner})
        return config
