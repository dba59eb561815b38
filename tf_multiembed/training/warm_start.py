"""Warm start: train on new data from a trained run or export (`train.py --warm_start_from=<run dir or export>`).

What carries over (docs/training.md, "Continual training"):

- **Vocabulary**: the new build grows the source's vocabulary (`tf_multiembed.data.growth`): its tokens keep their
  ids (unless older ones are evicted by `--warm_start_evict_after`), new tokens reaching min_count are appended
  (at most `--warm_start_max_new_tokens` per field; 0 freezes the vocabulary). Hash-bucket fields are unchanged.
- **Embedding table** `[rows, M*K]`: every token present in both vocabularies gets its trained row, moved to its new
  row by vectorised gathers and scatters (`remap_rows`, in slices of 16 MB); each field's OOV row carries over; a
  new token keeps the row the new model's initialiser drew for it (per set, as a fresh model would); an evicted
  token's row is dropped.
- **Every other weight** by its object-graph path (shapes must agree), and Keras' untracked seed states.
- **Adam state** (from a run directory's latest checkpoint): the step count, the moments of every weight, and the
  table's moments remapped like the table (new tokens: zero moments, as in a fresh optimizer). The learning rate is
  this run's. An export holds no optimizer state: from an export, Adam starts afresh.

A run directory warm-starts from its *latest* checkpoint (where training stopped, like a resume); an export from the
weights it serves (the kept epoch). A change of model family, number of sets, width, field list or hash-bucket
count is refused with one line naming it (`WarmStartMismatchError`). The run directory, results and export record the
lineage: every run the model descends from, with the data each one trained on.
"""

import dataclasses
import json
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from tf_multiembed import artifacts, compat, introspection
from tf_multiembed.data import vocabulary as vocabulary_lib
from tf_multiembed.data.growth import AGES_DIR_NAME

_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"
_RUN_PREFIX, _RUN_UNTRACKED = "model/layers/", "model/untracked_state/"
_EXPORT_PREFIX, _EXPORT_UNTRACKED = "model_variables/", "untracked_state/"
REMAP_CHUNK_BYTES = 16 << 20  # rows gathered at a time by `remap_rows`
_OPTIMIZER_LIST, _SLOT_ORDER = "optimizer/variables_list/", "optimizer/slot_order" + _VALUE


class WarmStartMismatchError(ValueError):
    """The source of a warm start is another model (family, sets, width, fields or hash buckets) than this run's."""


class WarmStartSourceError(ValueError):
    """A --warm_start_from path that cannot be warm-started from (not a finished run or export, data gone)."""


@dataclasses.dataclass(frozen=True)
class WarmStartSource:
    """A trained run or export to start from, as `resolve_source` reads it.

    Attributes:
        path: the run directory or export version folder.
        kind: "run" or "export".
        checkpoint: the checkpoint prefix the weights are read from.
        has_optimizer: whether the checkpoint holds Adam state (run directories).
        family, num_sets, embedding_dim: the source model's family and embedding shape.
        field_names, vocabulary_sizes: its encoded columns and their table rows.
        vocab_dir: the folder of its `<column>.txt` vocabularies.
        ages_dir: its tokens' inactivity ages (`growth.py`), or None.
        model_name: its model name.
        lineage: the runs it descends from, itself last (see `lineage_entry`).
    """

    path: pathlib.Path
    kind: str
    checkpoint: str
    has_optimizer: bool
    family: Optional[str]
    num_sets: int
    embedding_dim: int
    field_names: Tuple[str, ...]
    vocabulary_sizes: Tuple[int, ...]
    vocab_dir: pathlib.Path
    ages_dir: Optional[pathlib.Path]
    model_name: str
    lineage: Tuple[Dict[str, Any], ...]

    def vocabulary_columns(self) -> List[str]:
        """The columns with a vocabulary file (the others are hash-bucket columns)."""
        return [name for name in self.field_names if vocabulary_lib.vocabulary_path(self.vocab_dir, name).is_file()]


def lineage_entry(kind: str, path: Any, model_name: str, data: Any, data_name: str) -> Dict[str, Any]:
    """One generation of a lineage: where the model is, and the data it trained on (name, fingerprint, the input
    files, rows per split, the prepared folder)."""
    from tf_multiembed.data import shards as shards_lib

    try:
        manifest_inputs = [entry["path"] for entry in shards_lib.load_manifest(data.directory).get("inputs", [])]
    except (OSError, ValueError):  # a folder written by another tool: no input list
        manifest_inputs = []
    return {"kind": kind, "path": str(path), "model": model_name,
            "data": {"name": data_name, "fingerprint": artifacts.data_fingerprint(data), "inputs": manifest_inputs,
                     "split_rows": {split: int(rows) for split, rows in data.split_rows.items()},
                     "prepared": str(data.directory)}}


def resolve_source(path: Any) -> WarmStartSource:
    """Reads what a warm start needs from a run directory or an export (version folder, or a name's newest version).

    Raises:
        WarmStartSourceError: the path is neither, the run has no checkpoint yet, or its prepared data is gone.
    """
    flag = f"--warm_start_from={path}"
    try:
        kind, located = artifacts.locate(path)
    except artifacts.ArtifactError as error:
        raise WarmStartSourceError(f"{flag}: {error}") from None
    if kind == "keras":
        raise WarmStartSourceError(f"{flag}: a .keras file holds no vocabulary; give the run directory or the export "
                                   "it belongs to.")
    if kind == "export":
        metadata = artifacts.read_export_metadata(located)
        embedding = (metadata.get("model") or {}).get("embedding") or {}
        lineage = metadata.get("lineage") or [{"kind": "export", "path": str(located), "model":
                                               metadata["model"].get("name"), "data": metadata.get("data")}]
        return WarmStartSource(
            path=located, kind="export", checkpoint=str(located / "variables" / "variables"), has_optimizer=False,
            family=metadata["model"].get("family"), num_sets=int(embedding.get("num_sets", 0)),
            embedding_dim=int(embedding.get("embedding_dim", 0)), field_names=tuple(metadata["field_names"]),
            vocabulary_sizes=tuple(int(size) for size in metadata["vocabulary_sizes"]), vocab_dir=located / "assets",
            ages_dir=None, model_name=str(metadata["model"].get("name")), lineage=tuple(lineage))
    from tf_multiembed.data import PreparedData
    from tf_multiembed.training.config import comparable_settings

    record = artifacts.read_run(located)
    checkpoint = tf.train.latest_checkpoint(str(located / artifacts.CHECKPOINTS_DIR))
    if checkpoint is None:
        raise WarmStartSourceError(f"{flag}: the run has no checkpoint yet; train it first (or give its export).")
    lineage = record.get("lineage") or []
    prepared = (lineage[-1].get("data") or {}).get("prepared") if lineage else None
    if not prepared or not (pathlib.Path(prepared) / "manifest.json").is_file():
        raise WarmStartSourceError(
            f"{flag}: the prepared data the run trained on ({prepared or 'not recorded in its run.json'}) is gone, "
            "so its vocabulary cannot be read; warm start from its export instead (--warm_start_from=<export>).")
    data = PreparedData.load(prepared, verify="sizes")
    if not artifacts.same_data_fingerprint(record["data"], {"fingerprint": artifacts.data_fingerprint(data),
                                                            "cache_key": data.cache_key}):
        raise WarmStartSourceError(f"{flag}: the prepared folder {prepared} now holds other data than the run "
                                   "trained on (it was rebuilt); warm start from the run's export instead.")
    config = comparable_settings(record["config"])
    ages_dir = data.directory / AGES_DIR_NAME
    return WarmStartSource(
        path=located, kind="run", checkpoint=checkpoint, has_optimizer=True, family=record["model"].get("family"),
        num_sets=int(config["num_sets"]), embedding_dim=int(config["embedding_dim"]),
        field_names=tuple(record["data"]["field_names"]),
        vocabulary_sizes=tuple(int(size) for size in record["data"]["vocabulary_sizes"]),
        vocab_dir=data.vocab_dir, ages_dir=ages_dir if ages_dir.is_dir() else None,
        model_name=str(record["model"].get("name")), lineage=tuple(lineage))


def check_compatible(source: WarmStartSource, family: str, num_sets: int, embedding_dim: int,
                     field_names: Sequence[str], hash_buckets: Mapping[str, int]) -> None:
    """Refuses (one line naming each difference) a warm start into another model than the source's.

    Example:
        >>> check_compatible(source, "dcnv2", 2, 10, ["C1"], {})  # doctest: +SKIP
        WarmStartMismatchError: --warm_start_from=runs/day1: another model family (dnn in the source, dcnv2 now) ...
    """
    differences = []
    if source.family is not None and source.family != family:
        differences.append(f"another model family ({source.family} in the source, {family} now)")
    if source.num_sets != num_sets:
        differences.append(f"another number of embedding sets ({source.num_sets} in the source, {num_sets} now)")
    if source.embedding_dim != embedding_dim:
        differences.append(f"another embedding width ({source.embedding_dim} in the source, {embedding_dim} now)")
    if tuple(field_names) != source.field_names:
        added = [name for name in field_names if name not in source.field_names]
        removed = [name for name in source.field_names if name not in field_names]
        parts = ([f"new fields {added}"] if added else []) + ([f"fields gone {removed}"] if removed else [])
        differences.append("another field list (" + (", ".join(parts) or "another order") + ")")
    else:
        vocabulary = set(source.vocabulary_columns())
        for name, size in zip(source.field_names, source.vocabulary_sizes):
            if (name in hash_buckets) != (name not in vocabulary):
                differences.append(f"field {name} is a hash-bucket field in one and has a vocabulary in the other")
            elif name in hash_buckets and hash_buckets[name] + 1 != size:
                differences.append(f"field {name} has {hash_buckets[name]} hash buckets now, {size - 1} in the "
                                   "source")
    if differences:
        raise WarmStartMismatchError(
            f"--warm_start_from={source.path}: {'; '.join(differences)}. A warm start carries the weights into the "
            "same model; train this one from scratch (without --warm_start_from) or keep the source's settings.")


def row_mapping(source: WarmStartSource, vocab_dir: Any, vocabulary_sizes: Sequence[int]
                ) -> Tuple[np.ndarray, np.ndarray]:
    """(source rows, new rows) of the fused table: every row that carries over, as two int64 arrays.

    Per column: the OOV row 0; for a vocabulary column, every token in both vocabularies (matched with Arrow's
    vectorised `index_in`); for a hash-bucket column, every bucket.
    """
    old_offsets = np.concatenate([[0], np.cumsum(source.vocabulary_sizes)[:-1]]).astype(np.int64)
    new_offsets = np.concatenate([[0], np.cumsum(vocabulary_sizes)[:-1]]).astype(np.int64)
    vocabulary = set(source.vocabulary_columns())
    sources, targets = [], []
    for index, name in enumerate(source.field_names):
        if name not in vocabulary:  # hash buckets: the same rows (their count was checked)
            rows = np.arange(source.vocabulary_sizes[index], dtype=np.int64)
            sources.append(old_offsets[index] + rows)
            targets.append(new_offsets[index] + rows)
            continue
        old = pa.array(source_tokens(source, name), pa.string())
        new = pa.array(vocabulary_lib.read_vocabulary(vocabulary_lib.vocabulary_path(vocab_dir, name)), pa.string())
        position = pc.fill_null(pc.index_in(old, value_set=new), -1).to_numpy().astype(np.int64)
        kept = np.flatnonzero(position >= 0)
        sources.append(np.concatenate([[old_offsets[index]], old_offsets[index] + 1 + kept]))
        targets.append(np.concatenate([[new_offsets[index]], new_offsets[index] + 1 + position[kept]]))
    return np.concatenate(sources).astype(np.int64), np.concatenate(targets).astype(np.int64)


def source_tokens(source: WarmStartSource, column: str) -> List[str]:
    return vocabulary_lib.read_vocabulary(vocabulary_lib.vocabulary_path(source.vocab_dir, column))


def remap_rows(old: Any, target: Any, source_rows: np.ndarray, target_rows: np.ndarray,
               chunk_bytes: int = REMAP_CHUNK_BYTES) -> None:
    """`target[target_rows] = old[source_rows]`, in place on the variable `target` (the rows not named keep their
    values): a vectorised gather and a `scatter_update`, over slices of about `chunk_bytes` of rows so the extra
    memory stays bounded (the source, plus twice a slice).

    Args:
        old: the source array (a `tf.Tensor`, e.g. `checkpoint_tensor`, or NumPy).
        target: the variable to update.
        source_rows, target_rows: int64 arrays of equal length.
        chunk_bytes: about how many bytes of rows are gathered at a time.

    Example:
        >>> table = tf.Variable(tf.zeros([4, 2]))
        >>> remap_rows(np.array([[1.0, 1.0], [2.0, 2.0]]), table, np.array([1]), np.array([3]))
        >>> table.numpy()[3].tolist()
        [2.0, 2.0]
    """
    variable = compat.as_tf_variable(target)
    old = tf.convert_to_tensor(old, dtype=variable.dtype)
    width = int(np.prod(variable.shape[1:]))
    step = max(1, chunk_bytes // max(1, variable.dtype.size * width))
    for start in range(0, len(source_rows), step):
        rows = tf.gather(old, source_rows[start:start + step])
        variable.scatter_update(tf.IndexedSlices(rows, tf.convert_to_tensor(target_rows[start:start + step],
                                                                             tf.int64)))


def checkpoint_tensor(checkpoint: str, key: str, dtype: tf.DType) -> tf.Tensor:
    """A checkpoint's tensor read straight into a `tf.Tensor` (`RestoreV2`; `CheckpointReader.get_tensor` holds it
    twice on the way to NumPy)."""
    return tf.raw_ops.RestoreV2(prefix=checkpoint, tensor_names=[key], shape_and_slices=[""], dtypes=[dtype])[0]


def _check_shape(name: str, saved: Sequence[int], current: Sequence[int], source: WarmStartSource) -> None:
    if tuple(saved) != tuple(current):
        raise WarmStartMismatchError(
            f"--warm_start_from={source.path}: weight {name} has shape {list(saved)} in the source and "
            f"{list(current)} now (another model configuration); train this one from scratch.")


def warm_start_model(model: tf.keras.Model, source: WarmStartSource, vocab_dir: Any,
                     vocabulary_sizes: Sequence[int]) -> Dict[str, Any]:
    """Loads the source's weights (and Adam state, from a run) into a freshly built, compiled `model` whose data has
    the vocabularies in `vocab_dir`; returns what was carried over (for the results). Call it inside the
    strategy's scope, before training."""
    reader = tf.train.load_checkpoint(source.checkpoint)
    shapes = reader.get_variable_to_shape_map()
    table = introspection.find_embedding_layer(model).embeddings
    paths = artifacts.model_variable_paths(model)
    source_rows, target_rows = row_mapping(source, vocab_dir, vocabulary_sizes)
    prefix, untracked_prefix = ((_RUN_PREFIX, _RUN_UNTRACKED) if source.kind == "run"
                                else (_EXPORT_PREFIX, _EXPORT_UNTRACKED))

    def key(path: str) -> str:
        # An export tracks each weight under its path with "." for "/" (a dict key), which checkpoints escape as "..".
        return prefix + (path if source.kind == "run" else path.replace("/", ".").replace(".", "..")) + _VALUE

    for variable in model.variables:
        path = paths.get(id(variable))
        if path is None:
            continue
        name = key(path)
        if name not in shapes:
            raise WarmStartMismatchError(f"--warm_start_from={source.path}: the source has no weight {path} "
                                         "(another model configuration); train this one from scratch.")
        if variable is table:
            remap_rows(checkpoint_tensor(source.checkpoint, name, variable.dtype), variable, source_rows,
                       target_rows)
            continue
        _check_shape(path, shapes[name], variable.shape, source)
        variable.assign(reader.get_tensor(name))
    untracked = [variable for variable in model.variables if id(variable) not in paths]
    for index, variable in enumerate(untracked):  # Keras' seed states, in model order (as checkpoints keep them)
        name = f"{untracked_prefix}{index}{_VALUE}"
        if name in shapes and tuple(shapes[name]) == tuple(variable.shape):
            variable.assign(reader.get_tensor(name))
    optimizer_state = source.has_optimizer and model.optimizer is not None
    if optimizer_state:
        _warm_start_optimizer(model, reader, shapes, table, paths, source, source_rows, target_rows)
    return {"from": str(source.path), "kind": source.kind, "checkpoint": source.checkpoint,
            "optimizer_state": bool(optimizer_state), "source_model": source.model_name,
            "table_rows": {"carried_over": int(len(source_rows)),
                           "fresh": int(table.shape[0]) - int(len(source_rows)),
                           "source": int(sum(source.vocabulary_sizes))}}


def _warm_start_optimizer(model: tf.keras.Model, reader: Any, shapes: Mapping[str, Any], table: Any,
                          paths: Mapping[int, str], source: WarmStartSource, source_rows: np.ndarray,
                          target_rows: np.ndarray) -> None:
    """Adam's step count and moments from the source run's latest checkpoint (the table's remapped)."""
    optimizer = model.optimizer
    reader_prefix = source.checkpoint
    optimizer.build(model.trainable_variables)  # Keras builds slots lazily; idempotent once built
    saved = reader.get_tensor(_SLOT_ORDER)
    saved_order = json.loads(saved.decode("utf-8") if isinstance(saved, bytes) else str(saved))
    current_order = [paths.get(id(variable)) for variable in model.trainable_variables]
    if saved_order != current_order:
        raise WarmStartMismatchError(f"--warm_start_from={source.path}: the source's optimizer holds moments for "
                                     f"other weights ({len(saved_order)} vs {len(current_order)} trainable weights); "
                                     "train this one from scratch.")
    table_slots = {id(slot) for slot in compat.adam_slots(optimizer, table)}
    iterations = compat.as_tf_variable(optimizer.iterations)
    variables = optimizer.variables() if callable(optimizer.variables) else optimizer.variables
    for index, variable in enumerate(variables):
        plain = compat.as_tf_variable(variable)
        name = f"{_OPTIMIZER_LIST}{index}{_VALUE}"
        if plain is iterations:
            variable.assign(tf.cast(reader.get_tensor(name), variable.dtype))
        elif not variable.shape.rank:
            continue  # the learning rate and other hyperparameters: this run's
        elif id(plain) in table_slots:
            remap_rows(checkpoint_tensor(reader_prefix, name, variable.dtype), variable, source_rows, target_rows)
        else:
            _check_shape(f"optimizer slot {index}", shapes[name], variable.shape, source)
            variable.assign(reader.get_tensor(name))
