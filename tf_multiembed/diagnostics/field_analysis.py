"""Per-field, per-set information abundance and effective rank of a model's embeddings, with a random baseline.

For every field i and embedding set m the analysis reports IA and the normalised singular spectrum of the field's
rows `E_i^{(m)}` `[D_i, K]`; for multi-embedding (ME) models also the IA of the concatenation `[D_i, M*K]` of the
field's rows across sets, which is the number to compare with a single-embedding (SE) model of the same total width
(IA grows with the width, so compare only at equal width). A random matrix of the same shape gives the baseline of the
paper's Fig. 2. Rows that were never trained (ids absent from the training data, given by `id_counts`) are left out
of the main numbers and reported separately.

The paper does not say how it aggregates the IA of an ME model; both views are here: `concat_abundance` (the field's
ME rows as one matrix) and `set_abundance` (each set on its own). The effective rank (RankMe, see `abundance`) is
reported beside IA in the same two views (`concat_effective_rank`, `set_effective_rank`).

Embedded numeric fields (docs/inputs.md) have no rows of their own in the table: each is one value vector per set
(`NumericEmbedding.kernel` `W[m, f]`, plus a missing vector), so a per-field IA would be at most 2 and mean nothing.
They are analysed together instead, as one small table whose F_e rows are the fields' value vectors
(`NumericEmbeddingDiagnostics`, the pseudo-field "numeric (embedded, F_e rows)"): per set `W[m]` `[F_e, K]` and the
concatenation `[F_e, M*K]`. Its IA and RankMe say whether the numeric fields' vectors span many directions or
collapse onto a few; they are at most F_e, so read them against their random baseline, never against the fields.
"""

import dataclasses
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_multiembed.diagnostics import abundance
from tf_multiembed.metadata import json_value
from tf_multiembed.diagnostics import tables as tables_lib


def numeric_pseudo_field_name(num_fields: int) -> str:
    """The report's name for the embedded numeric fields analysed as one table: "numeric (embedded, F_e rows)"."""
    return f"numeric (embedded, {num_fields} rows)"


@dataclasses.dataclass
class NumericEmbeddingDiagnostics:
    """IA and RankMe of the embedded numeric fields' value vectors, analysed together as one `[F_e, M*K]` table.

    Attributes:
        field_names: the F_e embedded numeric fields (the table's rows, in the model's order).
        num_sets: M.
        embedding_dim: K.
        set_abundance: `[M]` IA of `W[m]` `[F_e, K]`.
        concat_abundance: IA of the concatenation `[F_e, M*K]` (equals `set_abundance[0]` for SE).
        random_set_abundance: IA of a random `[F_e, K]` matrix.
        random_concat_abundance: IA of a random `[F_e, M*K]` matrix.
        set_effective_rank: `[M]` RankMe of `W[m]`.
        concat_effective_rank: RankMe of the concatenation.
        random_set_effective_rank: RankMe of the random `[F_e, K]` matrix.
        random_concat_effective_rank: RankMe of the random `[F_e, M*K]` matrix.
    """

    field_names: List[str]
    num_sets: int
    embedding_dim: int
    set_abundance: np.ndarray
    concat_abundance: float
    random_set_abundance: float
    random_concat_abundance: float
    set_effective_rank: np.ndarray
    concat_effective_rank: float
    random_set_effective_rank: float
    random_concat_effective_rank: float

    @property
    def num_fields(self) -> int:
        """F_e."""
        return len(self.field_names)

    @property
    def name(self) -> str:
        """The pseudo-field's name in reports: "numeric (embedded, F_e rows)"."""
        return numeric_pseudo_field_name(self.num_fields)

    @property
    def ceiling(self) -> int:
        """The largest IA or RankMe the concatenation can have: min(F_e, M*K) (F_e for the usual K >= F_e)."""
        return min(self.num_fields, self.num_sets * self.embedding_dim)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (NaN becomes None); `from_dict` reverses it."""
        result = {field.name: json_value(getattr(self, field.name)) for field in dataclasses.fields(self)}
        result.update({"name": self.name, "ceiling": self.ceiling})
        return result

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "NumericEmbeddingDiagnostics":
        """Rebuilds diagnostics written by `to_dict`."""
        values: Dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value = data[field.name]
            if field.name == "field_names":
                values[field.name] = [str(name) for name in value]
            elif field.name in ("num_sets", "embedding_dim"):
                values[field.name] = int(value)
            elif field.name in ("set_abundance", "set_effective_rank"):
                values[field.name] = _from_jsonable(value)
            else:
                values[field.name] = math.nan if value is None else float(value)
        return cls(**values)


def numeric_embedding_diagnostics(tables: tables_lib.EmbeddingTables,
                                  random_seed: int = 0) -> Optional[NumericEmbeddingDiagnostics]:
    """IA and RankMe of the embedded numeric fields' value vectors as one table (see the module docstring); None when
    `tables` has no embedded numeric fields.

    Example:
        >>> kernel = np.array([[[1.0, 0.0], [0.0, 2.0]]])  # M = 1 set, F_e = 2 fields, K = 2
        >>> tables = tables_lib.EmbeddingTables(np.ones((3, 2)), [3], 1, 2, numeric_kernel=kernel)
        >>> float(numeric_embedding_diagnostics(tables).concat_abundance)  # singular values 2 and 1: (2 + 1) / 2
        1.5
    """
    if tables.numeric_kernel is None:
        return None
    rows = tables.numeric_rows()
    num_fields = rows.shape[0]
    gram = tables_lib.FieldGram(tables_lib.column_gram(rows), num_fields, 0)
    set_ia, concat_ia, set_spectra, concat_spectra = analyze_grams([gram], tables.num_sets, tables.embedding_dim)
    random_set, random_concat, random_set_rank, random_concat_rank = random_baseline_metrics(
        num_fields, tables.num_sets, tables.embedding_dim, random_seed)
    return NumericEmbeddingDiagnostics(
        field_names=list(tables.numeric_field_names or ()), num_sets=tables.num_sets,
        embedding_dim=tables.embedding_dim, set_abundance=set_ia[0], concat_abundance=float(concat_ia[0]),
        random_set_abundance=random_set, random_concat_abundance=random_concat,
        set_effective_rank=np.array([effective_rank_or_nan(spectrum) for spectrum in set_spectra[0]]),
        concat_effective_rank=effective_rank_or_nan(concat_spectra[0]),
        random_set_effective_rank=random_set_rank, random_concat_effective_rank=random_concat_rank)


@dataclasses.dataclass
class EmbeddingDiagnostics:
    """Per-field collapse diagnostics of one embedding table (N fields, M sets of width K).

    IA values are NaN where undefined (a field without trained rows, or all-zero rows); `notes` says which.

    Attributes:
        field_names: N names.
        vocabulary_sizes: N row counts D_i.
        num_sets: M.
        embedding_dim: K.
        analysed_rows: `[N]` rows per field in the analysis (trained rows when `id_counts` were given).
        excluded_rows: `[N]` rows left out as untrained.
        set_abundance: `[N, M]` IA of each field's rows in each set, `[D_i, K]`.
        concat_abundance: `[N]` IA of each field's rows across all sets, `[D_i, M*K]` (equals `set_abundance[:, 0]`
            for SE).
        random_set_abundance: `[N]` IA of a random `[D_i, K]` matrix (same number of analysed rows).
        random_concat_abundance: `[N]` IA of a random `[D_i, M*K]` matrix.
        set_spectra: `[N, M, K]` singular values / largest, per field and set, descending, zero-padded when D_i < K.
        concat_spectra: `[N, M*K]` the same for the concatenation.
        all_rows_concat_abundance: `[N]` IA of the concatenation over every row (trained or not), or None when no
            rows were excluded.
        notes: human-readable remarks (undefined values, exclusions).
        set_effective_rank: `[N, M]` RankMe of each field's rows in each set (computed from `set_spectra` when not
            given: RankMe does not depend on the scale of the spectrum).
        concat_effective_rank: `[N]` RankMe of the concatenation (from `concat_spectra` when not given).
        random_set_effective_rank: `[N]` RankMe of the random `[D_i, K]` matrix, or None (reports written before
            RankMe existed).
        random_concat_effective_rank: `[N]` RankMe of the random `[D_i, M*K]` matrix, or None.
        numeric: the embedded numeric fields analysed as one table (`NumericEmbeddingDiagnostics`), or None for a
            model without them. Not one of the N fields: the per-field arrays and `summary()` leave it out.
    """

    field_names: List[str]
    vocabulary_sizes: List[int]
    num_sets: int
    embedding_dim: int
    analysed_rows: np.ndarray
    excluded_rows: np.ndarray
    set_abundance: np.ndarray
    concat_abundance: np.ndarray
    random_set_abundance: np.ndarray
    random_concat_abundance: np.ndarray
    set_spectra: np.ndarray
    concat_spectra: np.ndarray
    all_rows_concat_abundance: Optional[np.ndarray] = None
    notes: List[str] = dataclasses.field(default_factory=list)
    set_effective_rank: Optional[np.ndarray] = None
    concat_effective_rank: Optional[np.ndarray] = None
    random_set_effective_rank: Optional[np.ndarray] = None
    random_concat_effective_rank: Optional[np.ndarray] = None
    numeric: Optional[NumericEmbeddingDiagnostics] = None

    def __post_init__(self) -> None:
        if self.set_effective_rank is None:
            self.set_effective_rank = np.array(
                [[effective_rank_or_nan(spectrum) for spectrum in row] for row in np.asarray(self.set_spectra)],
                dtype=np.float64).reshape(np.asarray(self.set_spectra).shape[:2])
        if self.concat_effective_rank is None:
            self.concat_effective_rank = np.array(
                [effective_rank_or_nan(spectrum) for spectrum in np.asarray(self.concat_spectra)], dtype=np.float64)

    @property
    def num_fields(self) -> int:
        return len(self.field_names)

    @property
    def total_width(self) -> int:
        return self.num_sets * self.embedding_dim

    def summary(self) -> Dict[str, float]:
        """Mean and minimum over fields of the main numbers (NaN fields are skipped).

        Example:
            >>> diagnostics.summary()["mean_concat_abundance"]  # doctest: +SKIP
            7.3
        """
        def stat(values: Any, reduce: Callable[[np.ndarray], Any]) -> float:
            values = np.asarray(values, dtype=np.float64)
            values = values[np.isfinite(values)]
            return float(reduce(values)) if values.size else math.nan

        summary = {
            "mean_concat_abundance": stat(self.concat_abundance, np.mean),
            "min_concat_abundance": stat(self.concat_abundance, np.min),
            "mean_set_abundance": stat(self.set_abundance, np.mean),
            "min_set_abundance": stat(self.set_abundance, np.min),
            "mean_random_concat_abundance": stat(self.random_concat_abundance, np.mean),
            "mean_abundance_ratio_to_random": stat(self.concat_abundance / self.random_concat_abundance, np.mean),
            "mean_concat_effective_rank": stat(self.concat_effective_rank, np.mean),
            "min_concat_effective_rank": stat(self.concat_effective_rank, np.min),
            "mean_set_effective_rank": stat(self.set_effective_rank, np.mean),
            "min_set_effective_rank": stat(self.set_effective_rank, np.min),
        }
        if self.random_concat_effective_rank is not None:
            summary["mean_random_concat_effective_rank"] = stat(self.random_concat_effective_rank, np.mean)
            summary["mean_effective_rank_ratio_to_random"] = stat(
                np.asarray(self.concat_effective_rank) / self.random_concat_effective_rank, np.mean)
        return summary

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (NaN becomes None); `from_dict` reverses it."""
        result = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            result[field.name] = value.to_dict() if isinstance(value, NumericEmbeddingDiagnostics) else \
                json_value(value)
        result["summary"] = json_value(self.summary())
        return result

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "EmbeddingDiagnostics":
        """Rebuilds diagnostics written by `to_dict` (e.g. read back from a report's JSON)."""
        values: Dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value: Any = data.get(field.name)
            if field.name in ("field_names", "vocabulary_sizes", "notes"):
                values[field.name] = list(value or [])
            elif field.name in ("num_sets", "embedding_dim"):
                values[field.name] = int(value)
            elif value is None:
                values[field.name] = None
            elif field.name == "numeric":
                values[field.name] = NumericEmbeddingDiagnostics.from_dict(value)
            else:
                values[field.name] = _from_jsonable(value)
        return cls(**values)


def _from_jsonable(value: Any) -> np.ndarray:
    def convert(v: Any) -> Any:
        if isinstance(v, list):
            return [convert(x) for x in v]
        return math.nan if v is None else v

    array = np.asarray(convert(value))
    return array.astype(np.float64) if array.dtype.kind == "f" else array


def _padded(values: np.ndarray, length: int) -> np.ndarray:
    result = np.zeros(length, dtype=np.float64)
    if values.size and values[0] > 0:
        result[: values.size] = values / values[0]
    return result


def _abundance_or_nan(values: np.ndarray) -> float:
    if values.size == 0 or values[0] <= 0:
        return math.nan
    return abundance.abundance_from_singular_values(values)


def effective_rank_or_nan(values: np.ndarray) -> float:
    """RankMe of a (possibly zero-padded, possibly max-normalised) spectrum; NaN if it is empty or all zeros."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)) or float(np.max(values)) <= 0:
        return math.nan
    return abundance.effective_rank_from_singular_values(values)


def effective_rank_from_gram(gram: np.ndarray, num_rows: int) -> float:
    """RankMe of a `[num_rows, C]` matrix given its column Gram `[C, C]`; NaN if the matrix is empty or all zeros."""
    return effective_rank_or_nan(tables_lib.singular_values_from_column_gram(gram, num_rows))


def abundance_from_gram(gram: np.ndarray, num_rows: int) -> float:
    """IA of a `[num_rows, C]` matrix given its column Gram `[C, C]`; NaN if the matrix is empty or all zeros."""
    return _abundance_or_nan(tables_lib.singular_values_from_column_gram(gram, num_rows))


def set_block(gram: np.ndarray, set_index: int, embedding_dim: int) -> np.ndarray:
    """The `K x K` diagonal block of set m in a field's column Gram `[M*K, M*K]`."""
    cols = slice(set_index * embedding_dim, (set_index + 1) * embedding_dim)
    return gram[cols, cols]


def analyze_grams(grams: Sequence[tables_lib.FieldGram], num_sets: int,
                  embedding_dim: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-set and concatenation IA and spectra from per-field Gram matrices.

    Returns:
        `(set_abundance [N, M], concat_abundance [N], set_spectra [N, M, K], concat_spectra [N, M*K])`.
    """
    num_fields, width = len(grams), num_sets * embedding_dim
    set_ia = np.full((num_fields, num_sets), math.nan)
    concat_ia = np.full(num_fields, math.nan)
    set_spectra = np.zeros((num_fields, num_sets, embedding_dim))
    concat_spectra = np.zeros((num_fields, width))
    for field, item in enumerate(grams):
        values = tables_lib.singular_values_from_column_gram(item.gram, item.analysed_rows)
        concat_ia[field] = _abundance_or_nan(values)
        concat_spectra[field] = _padded(values, width)
        for set_index in range(num_sets):
            block = set_block(item.gram, set_index, embedding_dim)
            values = tables_lib.singular_values_from_column_gram(block, item.analysed_rows)
            set_ia[field, set_index] = _abundance_or_nan(values)
            set_spectra[field, set_index] = _padded(values, embedding_dim)
    return set_ia, concat_ia, set_spectra, concat_spectra


def random_baseline(num_rows: int, num_sets: int, embedding_dim: int, seed: int = 0) -> Tuple[float, float]:
    """IA of a random `[num_rows, M*K]` matrix and of its first `[num_rows, K]` columns (NaN for 0 rows)."""
    return random_baseline_metrics(num_rows, num_sets, embedding_dim, seed)[:2]


def random_baseline_metrics(num_rows: int, num_sets: int, embedding_dim: int,
                            seed: int = 0) -> Tuple[float, float, float, float]:
    """`(set IA, concat IA, set RankMe, concat RankMe)` of a random `[num_rows, M*K]` matrix and of its first
    `[num_rows, K]` columns (all NaN for 0 rows)."""
    if num_rows == 0:
        return math.nan, math.nan, math.nan, math.nan
    matrix = abundance.random_matrix(num_rows, num_sets * embedding_dim, seed)
    gram = tables_lib.column_gram(matrix)
    block = set_block(gram, 0, embedding_dim)
    return (abundance_from_gram(block, num_rows), abundance_from_gram(gram, num_rows),
            effective_rank_from_gram(block, num_rows), effective_rank_from_gram(gram, num_rows))


def analyze_embeddings(source: tables_lib.EmbeddingSource, *, id_counts: Optional[tables_lib.IdCounts] = None,
                       min_count: int = 1, field_names: Optional[Sequence[str]] = None,
                       layer_name: Optional[str] = None, random_seed: int = 0) -> EmbeddingDiagnostics:
    """Per-field and per-set information abundance of a model's embeddings.

    Args:
        source: a Keras model with a `MultiEmbedding` layer, the layer itself, or an `EmbeddingTables`.
        id_counts: optional per-id training counts (`count_ids`): rows seen fewer than `min_count` times are
            excluded from the main numbers and the IA over all rows is reported in `all_rows_concat_abundance`.
        min_count: see `id_counts`.
        field_names: names for the fields (default: the layer's, else "field_<i>").
        layer_name: the embedding layer's name when a model has several.
        random_seed: seed of the random baseline matrices.

    Returns:
        An `EmbeddingDiagnostics`.

    Example:
        >>> from tf_multiembed.models import build_model
        >>> model = build_model("dcnv2", [944, 1683, 62], scale=4)
        >>> diagnostics = analyze_embeddings(model)
        >>> diagnostics.set_abundance.shape, diagnostics.concat_abundance.shape
        ((3, 4), (3,))
    """
    tables = as_tables(source, layer_name=layer_name, field_names=field_names)
    grams = tables_lib.field_grams(tables, id_counts=id_counts, min_count=min_count)
    set_ia, concat_ia, set_spectra, concat_spectra = analyze_grams(grams, tables.num_sets, tables.embedding_dim)
    random_set = np.full(tables.num_fields, math.nan)
    random_concat = np.full(tables.num_fields, math.nan)
    random_set_rank = np.full(tables.num_fields, math.nan)
    random_concat_rank = np.full(tables.num_fields, math.nan)
    cache: Dict[int, Tuple[float, float, float, float]] = {}
    for field, item in enumerate(grams):
        if item.analysed_rows not in cache:
            cache[item.analysed_rows] = random_baseline_metrics(
                item.analysed_rows, tables.num_sets, tables.embedding_dim, random_seed)
        (random_set[field], random_concat[field], random_set_rank[field],
         random_concat_rank[field]) = cache[item.analysed_rows]
    notes = []
    all_rows = None
    excluded = np.array([item.excluded_rows for item in grams], dtype=np.int64)
    if id_counts is not None and excluded.any():
        all_rows = np.array([
            abundance_from_gram(item.all_rows_gram if item.all_rows_gram is not None else item.gram,
                                tables.vocabulary_sizes[field])
            for field, item in enumerate(grams)
        ])
        notes.append(
            f"{int(excluded.sum())} rows in {int((excluded > 0).sum())} fields were never seen in training "
            f"(count < {min_count}) and are excluded; all_rows_concat_abundance includes them."
        )
    for field, item in enumerate(grams):
        name = (tables.field_names or ())[field]
        if item.analysed_rows == 0:
            notes.append(f"Field {field} ({name}): no trained rows, its IA is undefined (NaN).")
        elif not np.isfinite(concat_ia[field]):
            notes.append(f"Field {field} ({name}): all analysed rows are zero, its IA is undefined (NaN).")
        else:
            for set_index in np.flatnonzero(~np.isfinite(set_ia[field])):
                notes.append(f"Field {field} ({name}), set {set_index}: all analysed rows are zero, its IA is "
                             "undefined (NaN).")
    numeric = numeric_embedding_diagnostics(tables, random_seed)
    if numeric is not None:
        notes.append(
            f"{numeric.name} is not a field: the {numeric.num_fields} embedded numeric fields' value vectors "
            f"({', '.join(numeric.field_names)}) analysed as one table with a row per field; its IA and RankMe are "
            f"at most {numeric.ceiling} (its ceiling, F_e), so read them against its random baseline, not against "
            "the fields.")
    return EmbeddingDiagnostics(
        numeric=numeric,
        field_names=list(tables.field_names or ()),
        vocabulary_sizes=list(tables.vocabulary_sizes),
        num_sets=tables.num_sets,
        embedding_dim=tables.embedding_dim,
        analysed_rows=np.array([item.analysed_rows for item in grams], dtype=np.int64),
        excluded_rows=excluded,
        set_abundance=set_ia,
        concat_abundance=concat_ia,
        random_set_abundance=random_set,
        random_concat_abundance=random_concat,
        set_spectra=set_spectra,
        concat_spectra=concat_spectra,
        all_rows_concat_abundance=all_rows,
        notes=notes,
        random_set_effective_rank=random_set_rank,
        random_concat_effective_rank=random_concat_rank,
    )


def as_tables(source: tables_lib.EmbeddingSource, layer_name: Optional[str] = None,
              field_names: Optional[Sequence[str]] = None) -> tables_lib.EmbeddingTables:
    """An `EmbeddingTables` for a model, a `MultiEmbedding` layer or an `EmbeddingTables`."""
    if isinstance(source, tables_lib.EmbeddingTables):
        if field_names is not None:
            return dataclasses.replace(source, field_names=tuple(field_names))
        return source
    if hasattr(source, "field_table") and hasattr(source, "vocabulary_sizes"):
        return tables_lib.EmbeddingTables.from_layer(source, field_names)
    if hasattr(source, "layers"):
        return tables_lib.EmbeddingTables.from_model(source, layer_name, field_names)
    raise TypeError(
        f"Expected a Keras model, a MultiEmbedding layer or an EmbeddingTables, received {type(source).__name__}."
    )
