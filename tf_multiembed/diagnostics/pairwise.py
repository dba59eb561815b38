"""Interaction-projected information abundance (the paper's Fig. 3 and Fig. 8c).

The paper's Evidence I/II look at the embedding of field i *as seen by* field j:

- DCNv2: the projection through the first cross layer, `E_i^{->j} = E_i W_{i->j}^T`, which in this package's layout is
  `E_i @ W[m, i*K:(i+1)*K, j*K:(j+1)*K]` for set m (docs/architecture.md). Its IA comes from the field's Gram matrix:
  the squared singular values of `E_i B` are the eigenvalues of `B^T (E_i^T E_i) B`, so no `D_i x K` product is formed.
  The same blocks give the set-wise weight-norm matrix `||W^{(m)}_{i->j}||_F` of Fig. 8c.
- FFM: the field-pair sub-embeddings `E_i^{->j}` are tables of their own (field i's rows in the set of target field j).
"""

import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_multiembed import introspection
from tf_multiembed.diagnostics import field_analysis
from tf_multiembed.diagnostics import tables as tables_lib
from tf_multiembed.metadata import json_value



@dataclasses.dataclass
class PairwiseDiagnostics:
    """Field-pair diagnostics per embedding set.

    Attributes:
        field_names: N names.
        source: "dcnv2_cross_layer_<l>" or "ffm_sub_embeddings".
        projected_abundance: `[M, N, N]`; entry `[m, i, j]` is IA(E_i^{->j}) in set m. NaN where undefined (an FFM
            field's own slot i = j, which no pair uses).
        field_abundance: `[M, N]` IA(E_i) of the embedding the projection starts from (the heatmaps sort by it).
        weight_norms: `[M, N, N]` `||W^{(m)}_{i->j}||_F` (DCNv2), or None.
    """

    field_names: List[str]
    source: str
    projected_abundance: np.ndarray
    field_abundance: np.ndarray
    weight_norms: Optional[np.ndarray] = None

    @property
    def num_sets(self) -> int:
        return int(self.projected_abundance.shape[0])

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return {
            "field_names": list(self.field_names),
            "source": self.source,
            "projected_abundance": json_value(self.projected_abundance),
            "field_abundance": json_value(self.field_abundance),
            "weight_norms": None if self.weight_norms is None else json_value(self.weight_norms),
        }


def cross_kernel_blocks(kernel: Union[np.ndarray, tf.Tensor], num_fields: int, embedding_dim: int) -> np.ndarray:
    """Splits a `[M, N*K, N*K]` cross kernel into `[M, N, N, K, K]` blocks: `[m, i, j]` maps field i into field j."""
    kernel = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel, dtype=np.float64)
    width = num_fields * embedding_dim
    if kernel.ndim != 3 or kernel.shape[1:] != (width, width):
        raise ValueError(
            f"cross_kernel_blocks: expected a kernel of shape [M, {width}, {width}] for {num_fields} fields of width "
            f"{embedding_dim}, received {kernel.shape}."
        )
    blocks = kernel.reshape(kernel.shape[0], num_fields, embedding_dim, num_fields, embedding_dim)
    return blocks.transpose(0, 1, 3, 2, 4)


def cross_projection_diagnostics(embedding_tables: tables_lib.EmbeddingTables, kernel: Union[np.ndarray, tf.Tensor],
                                 *, id_counts: Optional[tables_lib.IdCounts] = None, min_count: int = 1,
                                 source: str = "dcnv2_cross_layer_0") -> PairwiseDiagnostics:
    """IA(E_i W_{i->j}^T) for every field pair and set, and the block norms, from a `[M, N*K, N*K]` cross kernel.

    Args:
        embedding_tables: the embedding table (M sets of width K).
        kernel: the effective kernel of one cross layer, `[M, N*K, N*K]` (a wider kernel, of a model with embedded
            numeric fields after the N categorical ones, is cut to the categorical fields' blocks).
        id_counts, min_count: exclude untrained rows as in `analyze_embeddings`.
        source: a label stored with the result.

    Example:
        >>> tables = tables_lib.EmbeddingTables(np.vstack([np.eye(2), np.eye(2)]), [2, 2], num_sets=1, embedding_dim=2)
        >>> result = cross_projection_diagnostics(tables, np.eye(4)[None])
        >>> result.weight_norms[0]  # identity: field i maps only into itself
        array([[1.41421356, 0.        ],
               [0.        , 1.41421356]])
    """
    tables = embedding_tables
    num_sets, num_fields, dim = tables.num_sets, tables.num_fields, tables.embedding_dim
    kernel = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel, dtype=np.float64)
    width = num_fields * dim
    if kernel.ndim == 3 and kernel.shape[1] == kernel.shape[2] > width and (kernel.shape[1] - width) % dim == 0:
        # Embedded numeric fields follow the categorical ones (docs/inputs.md); their tables have two rows (value
        # and missing vectors), so the pairs analysed are those of the embedding table's fields.
        kernel = kernel[:, :width, :width]
    blocks = cross_kernel_blocks(kernel, num_fields, dim)
    if blocks.shape[0] != num_sets:
        raise ValueError(
            f"cross_projection_diagnostics: the kernel has {blocks.shape[0]} sets, the embedding table {num_sets}."
        )
    grams = tables_lib.field_grams(tables, id_counts=id_counts, min_count=min_count)
    projected = np.full((num_sets, num_fields, num_fields), math.nan)
    field_ia = np.full((num_sets, num_fields), math.nan)
    for field, item in enumerate(grams):
        for set_index in range(num_sets):
            gram = field_analysis.set_block(item.gram, set_index, dim)
            field_ia[set_index, field] = field_analysis.abundance_from_gram(gram, item.analysed_rows)
            for target in range(num_fields):
                block = blocks[set_index, field, target]
                projected[set_index, field, target] = field_analysis.abundance_from_gram(
                    block.T @ gram @ block, item.analysed_rows)
    norms = np.sqrt(np.sum(blocks**2, axis=(3, 4)))
    return PairwiseDiagnostics(list(tables.field_names or ()), source, projected, field_ia, norms)


def ffm_sub_embedding_diagnostics(embedding_tables: tables_lib.EmbeddingTables, num_fields: Optional[int] = None, *,
                                  id_counts: Optional[tables_lib.IdCounts] = None,
                                  min_count: int = 1) -> PairwiseDiagnostics:
    """IA of an FFM's field-pair sub-embeddings E_i^{->j}.

    The FFM's embedding table has M*N sets; set `m*N + j` holds the rows field i uses against field j (see
    `SetFieldAwareInteraction`). `field_abundance` is the IA of field i's rows across the N - 1 sub-tables of set m
    that pairs use (its own slot j = i is never trained and is left out).

    Args:
        embedding_tables: the FFM's table (`num_sets` = M*N).
        num_fields: N (default: the table's number of fields).
        id_counts, min_count: exclude untrained rows as in `analyze_embeddings`.
    """
    tables = embedding_tables
    num_fields = tables.num_fields if num_fields is None else int(num_fields)
    if tables.num_sets % num_fields:
        raise ValueError(
            f"ffm_sub_embedding_diagnostics: an FFM table has a multiple of N = {num_fields} sets, received "
            f"{tables.num_sets}."
        )
    num_sets, dim = tables.num_sets // num_fields, tables.embedding_dim
    grams = tables_lib.field_grams(tables, id_counts=id_counts, min_count=min_count)
    projected = np.full((num_sets, num_fields, num_fields), math.nan)
    field_ia = np.full((num_sets, num_fields), math.nan)
    for field, item in enumerate(grams):
        for set_index in range(num_sets):
            used = np.concatenate([
                np.arange(dim) + (set_index * num_fields + target) * dim
                for target in range(num_fields) if target != field
            ])
            field_ia[set_index, field] = field_analysis.abundance_from_gram(item.gram[np.ix_(used, used)],
                                                                            item.analysed_rows)
            for target in range(num_fields):
                if target == field:
                    continue  # a field never meets itself: that sub-table is not trained
                gram = field_analysis.set_block(item.gram, set_index * num_fields + target, dim)
                projected[set_index, field, target] = field_analysis.abundance_from_gram(gram, item.analysed_rows)
    return PairwiseDiagnostics(list(tables.field_names or ()), "ffm_sub_embeddings", projected, field_ia, None)


def pairwise_diagnostics(model: tf.keras.Model, *, layer_index: int = 0,
                         id_counts: Optional[tables_lib.IdCounts] = None, min_count: int = 1,
                         field_names: Optional[Sequence[str]] = None) -> Optional[PairwiseDiagnostics]:
    """Field-pair diagnostics of a model of the zoo: DCNv2 (cross layer `layer_index`, default the first, as in the
    paper) or FFM; None for models without field-pair weights.

    Example:
        >>> from tf_multiembed.models import build_model
        >>> model = build_model("dcnv2", [944, 1683, 62], scale=2)
        >>> pairwise_diagnostics(model).projected_abundance.shape
        (2, 3, 3)
    """
    tables = tables_lib.EmbeddingTables.from_model(model, field_names=field_names)
    kind, cross = introspection.find_pairwise_layer(model)
    if kind == introspection.FFM:
        return ffm_sub_embedding_diagnostics(tables, tables.num_fields, id_counts=id_counts, min_count=min_count)
    if kind is None:
        return None
    if not 0 <= layer_index < cross.num_layers:
        raise ValueError(f"pairwise_diagnostics: layer_index must be in [0, {cross.num_layers}), received "
                         f"{layer_index}.")
    kernel = tf.convert_to_tensor(cross.effective_kernel(layer_index))
    return cross_projection_diagnostics(tables, kernel, id_counts=id_counts, min_count=min_count,
                                        source=f"dcnv2_cross_layer_{layer_index}")
