"""Access to a model's fused embedding table in the layout of docs/architecture.md, and per-field Gram matrices.

Field i owns rows `offsets[i] : offsets[i] + D_i` of the `[sum(D), M*K]` table and set m owns columns
`m*K : (m+1)*K`. Every diagnostic starts from one float64 Gram matrix per field, `E_i^T E_i` of shape `[M*K, M*K]`:
its eigenvalues give the IA of the field's concatenation across sets, its diagonal `K x K` blocks the per-set IA, and
`W^T G W` the IA of a projected embedding `E_i W` (DCNv2), so the table is read once per field.
"""

import dataclasses
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_multiembed.diagnostics import abundance
from tf_multiembed.introspection import find_embedding_layer, find_numeric_embedding_layer

# Rows per float64 chunk on the TensorFlow route: bounds the temporary copy of a large field.
TF_CHUNK_ROWS = 262144

IdCounts = Union[np.ndarray, Sequence[np.ndarray]]
"""Training counts per id: one array per field (see `count_ids`), or one flat array over all table rows."""


@dataclasses.dataclass(frozen=True)
class EmbeddingTables:
    """A fused embedding table and the layout needed to slice it per field and per set.

    Attributes:
        weights: the `[sum(vocabulary_sizes), num_sets * embedding_dim]` table: a NumPy array, tensor or variable
            (a variable is read at the time of each computation, so one object can follow training).
        vocabulary_sizes: rows per field, including the OOV row 0.
        num_sets: M.
        embedding_dim: K.
        field_names: one name per field (default "field_0", ...).
        numeric_kernel: the value vectors `W` `[num_sets, F_e, embedding_dim]` of the model's embedded numeric
            fields (`NumericEmbedding.kernel`, docs/inputs.md), or None. They are not rows of the table: the
            diagnostics analyse them together as one small table whose rows are the F_e fields (`numeric_rows`).
        numeric_field_names: the F_e names of those fields (default "numeric_0", ...).

    Example:
        >>> tables = EmbeddingTables(np.ones((7, 4)), vocabulary_sizes=[3, 4], num_sets=2, embedding_dim=2)
        >>> tables.field_rows(1).shape
        (4, 4)
    """

    weights: Any
    vocabulary_sizes: Tuple[int, ...]
    num_sets: int
    embedding_dim: int
    field_names: Optional[Tuple[str, ...]] = None
    numeric_kernel: Optional[Any] = None
    numeric_field_names: Optional[Tuple[str, ...]] = None

    def __post_init__(self) -> None:
        sizes = tuple(int(size) for size in self.vocabulary_sizes)
        if not sizes or any(size <= 0 for size in sizes):
            raise ValueError(f"EmbeddingTables: `vocabulary_sizes` must be positive integers, received {sizes}.")
        object.__setattr__(self, "vocabulary_sizes", sizes)
        if self.num_sets <= 0 or self.embedding_dim <= 0:
            raise ValueError(
                f"EmbeddingTables: `num_sets` and `embedding_dim` must be positive, received {self.num_sets} and "
                f"{self.embedding_dim}."
            )
        expected = (sum(sizes), self.num_sets * self.embedding_dim)
        shape = tuple(int(d) for d in self.weights.shape)
        if shape != expected:
            raise ValueError(
                f"EmbeddingTables: the table has shape {shape}, expected {expected} = [sum(vocabulary_sizes), "
                f"num_sets * embedding_dim] for {len(sizes)} fields, {self.num_sets} sets of width "
                f"{self.embedding_dim}."
            )
        names = self.field_names
        names = tuple(f"field_{i}" for i in range(len(sizes))) if names is None else tuple(str(n) for n in names)
        if len(names) != len(sizes):
            raise ValueError(
                f"EmbeddingTables: {len(names)} field names for {len(sizes)} fields; give one name per field."
            )
        object.__setattr__(self, "field_names", names)
        if self.numeric_kernel is None:
            if self.numeric_field_names is not None:
                raise ValueError("EmbeddingTables: `numeric_field_names` without a `numeric_kernel`.")
            return
        numeric_shape = tuple(int(d) for d in self.numeric_kernel.shape)
        if len(numeric_shape) != 3 or numeric_shape[0] != self.num_sets or numeric_shape[2] != self.embedding_dim \
                or numeric_shape[1] < 1:
            raise ValueError(
                f"EmbeddingTables: the numeric kernel has shape {numeric_shape}, expected [num_sets, F_e, "
                f"embedding_dim] = [{self.num_sets}, F_e, {self.embedding_dim}] (NumericEmbedding.kernel).")
        numeric_names = self.numeric_field_names
        numeric_names = (tuple(f"numeric_{i}" for i in range(numeric_shape[1])) if numeric_names is None
                         else tuple(str(n) for n in numeric_names))
        if len(numeric_names) != numeric_shape[1]:
            raise ValueError(f"EmbeddingTables: {len(numeric_names)} numeric field names for {numeric_shape[1]} "
                             "embedded numeric fields; give one name per field.")
        object.__setattr__(self, "numeric_field_names", numeric_names)

    @property
    def num_fields(self) -> int:
        return len(self.vocabulary_sizes)

    @property
    def field_offsets(self) -> List[int]:
        return [0] + np.cumsum(self.vocabulary_sizes)[:-1].astype(int).tolist()

    @classmethod
    def from_layer(cls, layer: tf.keras.layers.Layer, field_names: Optional[Sequence[str]] = None) -> "EmbeddingTables":
        """Wraps a built `MultiEmbedding` layer (its variable is read live)."""
        if not layer.built:
            raise ValueError(f"EmbeddingTables: the layer {layer.name!r} is not built yet; call it on ids first.")
        names = field_names if field_names is not None else getattr(layer, "field_names", None)
        return cls(layer.embeddings, tuple(layer.vocabulary_sizes), int(layer.num_sets), int(layer.embedding_dim),
                   None if names is None else tuple(names))

    @classmethod
    def from_model(cls, model: tf.keras.Model, layer_name: Optional[str] = None,
                   field_names: Optional[Sequence[str]] = None) -> "EmbeddingTables":
        """Wraps the `MultiEmbedding` layer of a Keras model (by name, default "multi_embedding", else by type), and
        its `NumericEmbedding` layer's value vectors when it has embedded numeric fields."""
        tables = cls.from_layer(find_embedding_layer(model, layer_name), field_names)
        numeric = find_numeric_embedding_layer(model)
        if numeric is None or not numeric.built:
            return tables
        names = getattr(numeric, "field_names", None)
        return dataclasses.replace(tables, numeric_kernel=numeric.kernel,
                                   numeric_field_names=None if names is None else tuple(names))

    @property
    def num_numeric_fields(self) -> int:
        """F_e, the embedded numeric fields whose value vectors `numeric_kernel` holds (0 without them)."""
        return 0 if self.numeric_kernel is None else int(self.numeric_kernel.shape[1])

    def numeric_rows(self) -> np.ndarray:
        """The embedded numeric fields' value vectors as one `[F_e, M*K]` table in the layout of `field_rows`: row f
        is field f's vectors of all sets side by side (set m in columns `m*K : (m+1)*K`), float64."""
        if self.numeric_kernel is None:
            raise ValueError("EmbeddingTables: no embedded numeric fields (`numeric_kernel` is None).")
        kernel = np.asarray(tf.convert_to_tensor(self.numeric_kernel), dtype=np.float64)  # [M, F_e, K]
        return np.transpose(kernel, (1, 0, 2)).reshape(kernel.shape[1], self.num_sets * self.embedding_dim)

    def field_rows(self, field_index: int) -> Union[np.ndarray, tf.Tensor]:
        """Field i's `[D_i, M*K]` rows (same type as `weights`: a tensor for variables, an array for arrays)."""
        if not 0 <= field_index < self.num_fields:
            raise ValueError(f"EmbeddingTables: field_index must be in [0, {self.num_fields}), received {field_index}.")
        start = self.field_offsets[field_index]
        stop = start + self.vocabulary_sizes[field_index]
        if isinstance(self.weights, np.ndarray):
            return self.weights[start:stop]
        return tf.convert_to_tensor(self.weights)[start:stop]

    def set_columns(self, set_index: int) -> slice:
        """The column slice of set m."""
        if not 0 <= set_index < self.num_sets:
            raise ValueError(f"EmbeddingTables: set_index must be in [0, {self.num_sets}), received {set_index}.")
        return slice(set_index * self.embedding_dim, (set_index + 1) * self.embedding_dim)


EmbeddingSource = Union[tf.keras.Model, tf.keras.layers.Layer, EmbeddingTables]
"""What the analyses read embeddings from: a Keras model with a `MultiEmbedding` layer, the layer, or its tables."""


def count_ids(batches: Union[np.ndarray, tf.Tensor, Iterable[Any]],
              vocabulary_sizes: Sequence[int]) -> List[np.ndarray]:
    """How often each id of each field occurs: the input of the "untrained rows" split of the analysis.

    Args:
        batches: an iterable of id batches `[B, N]` (NumPy or tensors), or of `(ids, label)` tuples such as a
            `tf.data.Dataset` of training examples, or a single `[num_examples, N]` array.
        vocabulary_sizes: rows per field.

    Returns:
        One int64 array of length D_i per field.

    Raises:
        ValueError: if a batch has the wrong number of fields or an id outside `[0, D_i)` (naming the field).

    Example:
        >>> [c.tolist() for c in count_ids(np.array([[0, 2], [1, 2]]), [2, 3])]
        [[1, 1], [0, 0, 2]]
    """
    sizes = [int(size) for size in vocabulary_sizes]
    counts = [np.zeros(size, dtype=np.int64) for size in sizes]
    if isinstance(batches, (np.ndarray, tf.Tensor)):
        batches = [batches]
    for batch_index, batch in enumerate(batches):
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        ids = np.asarray(batch.numpy() if hasattr(batch, "numpy") else batch)
        if ids.ndim != 2 or ids.shape[1] != len(sizes):
            raise ValueError(
                f"count_ids: batch {batch_index} has shape {ids.shape}, expected [batch, {len(sizes)}] (one id per "
                "field)."
            )
        for field, size in enumerate(sizes):
            column = ids[:, field]
            if column.size and (column.min() < 0 or column.max() >= size):
                bad = column[(column < 0) | (column >= size)][0]
                raise ValueError(
                    f"count_ids: batch {batch_index}, field {field}: id {bad} is outside [0, {size}) "
                    "(vocabulary size of that field)."
                )
            counts[field] += np.bincount(column, minlength=size)
    return counts


def check_id_counts(id_counts: IdCounts, vocabulary_sizes: Sequence[int]) -> List[np.ndarray]:
    """Normalises id counts to one array per field: accepts such a list or one flat array over all table rows."""
    sizes = [int(size) for size in vocabulary_sizes]
    if isinstance(id_counts, np.ndarray) and id_counts.ndim == 1 and id_counts.dtype != object:
        if id_counts.shape[0] != sum(sizes):
            raise ValueError(
                f"id_counts: a flat array must have sum(vocabulary_sizes) = {sum(sizes)} entries (one per table row), "
                f"received {id_counts.shape[0]}."
            )
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        return [id_counts[offsets[i] : offsets[i + 1]] for i in range(len(sizes))]
    id_counts = list(id_counts)
    if len(id_counts) != len(sizes):
        raise ValueError(f"id_counts: expected one array per field ({len(sizes)}), received {len(id_counts)}.")
    checked = []
    for field, (counts, size) in enumerate(zip(id_counts, sizes)):
        counts = np.asarray(counts)
        if counts.shape != (size,):
            raise ValueError(
                f"id_counts: field {field} has {counts.shape} counts, expected ({size},) (one per id of the field)."
            )
        checked.append(counts)
    return checked


def column_gram(rows: Union[np.ndarray, tf.Tensor], row_indices: Optional[np.ndarray] = None) -> np.ndarray:
    """`E^T E` in float64 for a `[D, C]` matrix (optionally only the rows `row_indices`), always `[C, C]`.

    Unlike `abundance.gram_matrix` this never switches to `E E^T` for wide matrices: the column Gram's diagonal blocks
    are the per-set Gram matrices. Its nonzero eigenvalues are still the squared singular values of E.
    """
    if isinstance(rows, np.ndarray):
        if row_indices is not None:
            rows = rows[row_indices]
        gram = np.zeros((rows.shape[1], rows.shape[1]), dtype=np.float64)
        for start in range(0, rows.shape[0], abundance.DEFAULT_CHUNK_ROWS):
            chunk = rows[start : start + abundance.DEFAULT_CHUNK_ROWS].astype(np.float64)
            gram += chunk.T @ chunk
    else:
        rows = tf.convert_to_tensor(rows)
        if row_indices is not None:
            rows = tf.gather(rows, row_indices)
        columns = int(rows.shape[1])
        total = tf.zeros((columns, columns), dtype=tf.float64)
        for start in range(0, int(rows.shape[0]), TF_CHUNK_ROWS):
            chunk = tf.cast(rows[start : start + TF_CHUNK_ROWS], tf.float64)
            total += tf.matmul(chunk, chunk, transpose_a=True)
        gram = total.numpy()
    if not np.all(np.isfinite(gram)):
        raise ValueError("The embedding rows contain NaN or infinite values; IA is undefined for them.")
    return gram


def singular_values_from_column_gram(gram: np.ndarray, num_rows: int) -> np.ndarray:
    """The `min(num_rows, C)` singular values of a `[num_rows, C]` matrix from its column Gram `[C, C]`."""
    values = abundance.singular_values_from_gram(gram)
    return values[: min(int(num_rows), values.shape[0])]


@dataclasses.dataclass(frozen=True)
class FieldGram:
    """The column Gram matrices of one field.

    Attributes:
        gram: `E^T E` `[M*K, M*K]` over the analysed (trained) rows.
        analysed_rows: how many rows `gram` covers.
        excluded_rows: rows left out as untrained (seen fewer than `min_count` times in training).
        all_rows_gram: the Gram over every row of the field when rows were excluded, else None.
    """

    gram: np.ndarray
    analysed_rows: int
    excluded_rows: int
    all_rows_gram: Optional[np.ndarray] = None


def field_grams(tables: EmbeddingTables, id_counts: Optional[IdCounts] = None, min_count: int = 1) -> List[FieldGram]:
    """Per field: the column Gram of its analysed rows (and of all rows when some were excluded).

    Args:
        tables: the embedding table.
        id_counts: optional training counts per id (see `count_ids`); rows seen fewer than `min_count` times are
            excluded ("untrained"). None analyses every row.
        min_count: the count from which a row counts as trained.

    Returns:
        One `FieldGram` per field.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"field_grams: `min_count` must be an integer >= 1, received {min_count!r}.")
    counts = None if id_counts is None else check_id_counts(id_counts, tables.vocabulary_sizes)
    results = []
    for field in range(tables.num_fields):
        rows = tables.field_rows(field)
        size = tables.vocabulary_sizes[field]
        if counts is None:
            results.append(FieldGram(column_gram(rows), size, 0))
            continue
        trained = counts[field] >= min_count
        kept, dropped = np.flatnonzero(trained), np.flatnonzero(~trained)
        if dropped.size == 0:
            results.append(FieldGram(column_gram(rows), size, 0))
            continue
        dropped_gram = column_gram(rows, dropped)
        if kept.size == 0:
            kept_gram = np.zeros_like(dropped_gram)
        else:
            kept_gram = column_gram(rows, kept)
        # The excluded rows are usually few: their Gram plus the kept rows' Gram is the whole field's.
        results.append(FieldGram(kept_gram, int(kept.size), int(dropped.size), kept_gram + dropped_gram))
    return results
