"""`InformationAbundanceCallback`: per-field IA and effective rank (RankMe) recorded during training, to TensorBoard,
CSV and JSON.

Each record reads the embedding variable where it lives and reduces every field to its `[M*K, M*K]` float64 Gram
matrix on that device (one pass over the rows, no copy of the table to the host), then takes eigenvalues of the small
matrices on the host. For a Criteo-sized table (1.1M rows, M*K = 100) that is about a second on two CPU cores (see
docs/diagnostics.md), cheap enough to leave on once per epoch.
"""

import csv
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.diagnostics import field_analysis
from tf_multiembed.diagnostics import tables as tables_lib
from tf_multiembed.metadata import json_value

SUMMARY_PREFIX = "information_abundance"
RANK_SUMMARY_PREFIX = "effective_rank"
CSV_COLUMNS = ("step", "epoch", "field", "set", "abundance", "effective_rank")


def _scalar_metadata() -> bytes:
    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"  # shown by TensorBoard's scalar dashboard
    return metadata.SerializeToString()


_SCALAR_METADATA = _scalar_metadata()


def abundance_record(tables: tables_lib.EmbeddingTables, step: int, epoch: int) -> Dict[str, Any]:
    """One history record: per-field IA and RankMe of the concatenation and of each set, with mean and min over fields.

    Example:
        >>> from tf_multiembed.models import build_model
        >>> model = build_model("dnn", [5, 6, 7], scale=2)
        >>> record = abundance_record(tables_lib.EmbeddingTables.from_model(model), step=0, epoch=0)
        >>> sorted(record)[:3]
        ['concat_abundance', 'concat_effective_rank', 'epoch']
    """
    grams = tables_lib.field_grams(tables)
    set_ia, concat_ia, set_spectra, concat_spectra = field_analysis.analyze_grams(
        grams, tables.num_sets, tables.embedding_dim)
    set_rank = np.array([[field_analysis.effective_rank_or_nan(s) for s in row] for row in set_spectra],
                        dtype=np.float64).reshape(set_ia.shape)
    concat_rank = np.array([field_analysis.effective_rank_or_nan(s) for s in concat_spectra], dtype=np.float64)

    def stat(values: np.ndarray, reduce: Callable[[np.ndarray], Any]) -> float:
        finite = np.asarray(values)[np.isfinite(values)]
        return float(reduce(finite)) if finite.size else math.nan

    names = tables.field_names or ()
    return {
        "step": int(step),
        "epoch": int(epoch),
        "concat_abundance": {name: float(value) for name, value in zip(names, concat_ia)},
        "set_abundance": {name: [float(v) for v in row] for name, row in zip(names, set_ia)},
        "mean_concat_abundance": stat(concat_ia, np.mean),
        "min_concat_abundance": stat(concat_ia, np.min),
        "mean_set_abundance": stat(set_ia, np.mean),
        "min_set_abundance": stat(set_ia, np.min),
        "concat_effective_rank": {name: float(value) for name, value in zip(names, concat_rank)},
        "set_effective_rank": {name: [float(v) for v in row] for name, row in zip(names, set_rank)},
        "mean_concat_effective_rank": stat(concat_rank, np.mean),
        "min_concat_effective_rank": stat(concat_rank, np.min),
        "mean_set_effective_rank": stat(set_rank, np.mean),
        "min_set_effective_rank": stat(set_rank, np.min),
    }


class InformationAbundanceCallback(tf.keras.callbacks.Callback):
    """Records per-field information abundance of the model's embeddings during `fit`.

    A record holds, for every field, the IA and RankMe of its rows concatenated across sets and of each set, plus
    the mean and minimum over fields. Records are kept in `history`, and optionally written as TensorBoard scalars
    (`information_abundance/mean`, `.../min`, `.../field/<name>`, and per set `.../set_<m>/<name>`; the same tags
    under `effective_rank/` for RankMe), appended to a long-format CSV (`step, epoch, field, set, abundance,
    effective_rank`, set "all" for the concatenation) and dumped to a JSON list.
    At each epoch end the latest mean and min are added to the epoch logs as `ia_mean` and `ia_min`, so `History`
    and other callbacks see them.

    Args:
        every_n_steps: record every this many training batches (counted across epochs); None records at the end of
            every epoch.
        log_dir: TensorBoard log directory (a `tf.summary` file writer is created there), or None.
        csv_path: CSV file to append records to, or None.
        json_path: JSON file rewritten with the whole history at every record, or None.
        record_at_start: also record before the first batch (step 0).
        log_sets: also write the per-set values to TensorBoard and CSV.
        layer_name: the embedding layer's name (default "multi_embedding", else the only `MultiEmbedding`).

    Example:
        >>> callback = InformationAbundanceCallback(log_dir="runs/ia", csv_path="runs/ia.csv")
        >>> model.fit(dataset, epochs=3, callbacks=[callback])  # doctest: +SKIP
        >>> callback.history[-1]["mean_concat_abundance"]  # doctest: +SKIP
    """

    def __init__(self, every_n_steps: Optional[int] = None, log_dir: Optional[types.PathLike] = None,
                 csv_path: Optional[types.PathLike] = None, json_path: Optional[types.PathLike] = None,
                 record_at_start: bool = True, log_sets: bool = True, layer_name: Optional[str] = None) -> None:
        super().__init__()
        if every_n_steps is not None and (
                isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps <= 0):
            raise ValueError(
                f"InformationAbundanceCallback: `every_n_steps` must be a positive integer or None (once per epoch), "
                f"received {every_n_steps!r}."
            )
        self.every_n_steps = every_n_steps
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.csv_path = None if csv_path is None else os.fspath(csv_path)
        self.json_path = None if json_path is None else os.fspath(json_path)
        self.record_at_start = bool(record_at_start)
        self.log_sets = bool(log_sets)
        self.layer_name = layer_name
        self.history: List[Dict[str, Any]] = []
        self._step = 0
        self._epoch = 0
        self._tables: Optional[tables_lib.EmbeddingTables] = None
        self._writer: Optional[tf.summary.SummaryWriter] = None

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._tables = tables_lib.EmbeddingTables.from_model(self.model, self.layer_name)
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        if self.record_at_start and not self.history:
            self.record()

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._epoch = int(epoch)

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._step += 1
        if self.every_n_steps is not None and self._step % self.every_n_steps == 0:
            self.record()

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if self.every_n_steps is None:
            self.record()
        if logs is not None and self.history:
            logs["ia_mean"] = self.history[-1]["mean_concat_abundance"]
            logs["ia_min"] = self.history[-1]["min_concat_abundance"]

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if self._writer is not None:
            self._writer.flush()

    def record(self) -> Dict[str, Any]:
        """Computes a record for the model's current weights, stores and writes it, and returns it."""
        if self._tables is None:
            self._tables = tables_lib.EmbeddingTables.from_model(self.model, self.layer_name)
        record = abundance_record(self._tables, self._step, self._epoch)
        self.history.append(record)
        self._write_summaries(record)
        self._append_csv(record)
        if self.json_path is not None:
            _ensure_parent(self.json_path)
            with open(self.json_path, "w", encoding="utf-8") as handle:
                json.dump(json_value(self.history), handle, indent=1)
        return record

    def _write_summaries(self, record: Dict[str, Any]) -> None:
        if self._writer is None:
            return
        step = record["step"]
        values = {f"{SUMMARY_PREFIX}/mean": record["mean_concat_abundance"],
                  f"{SUMMARY_PREFIX}/min": record["min_concat_abundance"]}
        values.update({f"{SUMMARY_PREFIX}/field/{name}": value for name, value in record["concat_abundance"].items()})
        values.update({f"{RANK_SUMMARY_PREFIX}/mean": record["mean_concat_effective_rank"],
                       f"{RANK_SUMMARY_PREFIX}/min": record["min_concat_effective_rank"]})
        values.update({f"{RANK_SUMMARY_PREFIX}/field/{name}": value
                       for name, value in record["concat_effective_rank"].items()})
        if self.log_sets and self._tables is not None and self._tables.num_sets > 1:
            for name, set_values in record["set_abundance"].items():
                values.update({f"{SUMMARY_PREFIX}/set_{m}/{name}": value for m, value in enumerate(set_values)})
            for name, set_values in record["set_effective_rank"].items():
                values.update({f"{RANK_SUMMARY_PREFIX}/set_{m}/{name}": value for m, value in enumerate(set_values)})
        with self._writer.as_default():
            for tag, value in values.items():
                # `tf.summary.write` with the scalar plugin's metadata is what `tf.summary.scalar` writes, without
                # needing the tensorboard package installed.
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)
        self._writer.flush()

    def _append_csv(self, record: Dict[str, Any]) -> None:
        if self.csv_path is None:
            return
        _ensure_parent(self.csv_path)
        new_file = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
        with open(self.csv_path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow(CSV_COLUMNS)
            for name, value in record["concat_abundance"].items():
                rank = record["concat_effective_rank"][name]
                writer.writerow((record["step"], record["epoch"], name, "all", repr(value), repr(rank)))
                if self.log_sets:
                    ranks = record["set_effective_rank"][name]
                    for set_index, set_value in enumerate(record["set_abundance"][name]):
                        writer.writerow((record["step"], record["epoch"], name, set_index, repr(set_value),
                                         repr(ranks[set_index])))


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
