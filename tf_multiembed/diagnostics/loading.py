"""Loading a trained model for diagnostics, by the artifact contract (`tf_multiembed.artifacts`):

- a `.keras` file is loaded with Keras (the package's layers are registered serializable), so everything the model
  knows (vocabulary sizes, sets, field names, cross layers) comes with it;
- a run directory (what `train.py --model_dir` holds) is read through its `best.keras`;
- an export (a version folder `<export_dir>/<name>/<version>/`, or the `<name>/` folder for its newest version) is
  read through its metadata file (layout, field names, which pairwise analysis applies) and the saved
  `diagnostic_weights` function (the embedding table and, for DCNv2, the first cross layer's effective kernel).

No TF variable names and no list positions are involved.
"""

import dataclasses
import pathlib
import zipfile
import zlib
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_multiembed import artifacts, introspection, types
from tf_multiembed.diagnostics import tables as tables_lib


@dataclasses.dataclass
class SavedModelWeights:
    """What diagnostics need from an export.

    Attributes:
        tables: the embedding table with its layout.
        cross_kernel: the first cross layer's effective kernel `[M, N*K, N*K]` (DCNv2), or None.
        pairwise: "cross", "ffm" or None: the field-pair analysis that applies to the model.
        path: the export version folder.
        metadata: the export's metadata file.
    """

    tables: tables_lib.EmbeddingTables
    cross_kernel: Optional[np.ndarray]
    pairwise: Optional[str]
    path: str
    metadata: Dict[str, Any]


def load_for_diagnostics(path: types.PathLike, *,
                         field_names: Optional[Sequence[str]] = None) -> Union[tf.keras.Model, SavedModelWeights]:
    """A Keras model (for `.keras` files and run directories) or `SavedModelWeights` (for exports), ready for
    `analyze_embeddings` / `write_report`.

    Raises:
        tf_multiembed.artifacts.ArtifactError: when `path` is none of these, saying what was expected.

    Example:
        >>> source = load_for_diagnostics("runs/synthetic-me_dcnv2_2x10")  # doctest: +SKIP
    """
    import tf_multiembed.layers  # noqa: F401  (registers the serializable layers)
    from tf_multiembed.layers.interactions import ffm, regularized_cross  # noqa: F401
    from tf_multiembed.layers import collapse_penalties  # noqa: F401

    kind, resolved = artifacts.locate(path)
    if kind == "export":
        return read_export(resolved, field_names=field_names)
    remedy = "save the model again (or copy the whole file)"
    if kind == "run":
        remedy = (f"rerun the train.py command of {resolved} (a finished run rewrites {artifacts.BEST_MODEL_FILE} "
                  "from its best checkpoint)")
        resolved = artifacts.best_model_path(resolved)
    return load_keras_file(resolved, remedy)


def load_keras_file(path: types.PathLike,
                    remedy: str = "save the model again (or copy the whole file)") -> tf.keras.Model:
    """`tf.keras.models.load_model(path, compile=False)`, with a file that is not a whole `.keras` archive reported
    as such (Keras says "File not found" for a truncated file that exists).

    Raises:
        tf_multiembed.artifacts.ArtifactError: the file is not a readable zip archive (truncated or corrupt).
    """
    not_readable = (f"{path} is not a readable .keras archive (truncated or corrupt: {{reason}}); {remedy}.")
    if not zipfile.is_zipfile(path):  # a truncated archive has lost its zip directory, which is at the end
        raise artifacts.ArtifactError(not_readable.format(reason="no zip directory"))
    try:
        return tf.keras.models.load_model(path, compile=False)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:  # damaged inside: a bad entry or checksum
        raise artifacts.ArtifactError(not_readable.format(reason=str(error) or type(error).__name__)) from None


def read_export(path: types.PathLike, *, field_names: Optional[Sequence[str]] = None) -> SavedModelWeights:
    """The embedding table (with the embedded numeric fields' value vectors, and the first cross kernel, if any) of an
    export written by `export_for_serving`."""
    path = pathlib.Path(path)
    metadata = artifacts.read_export_metadata(path)
    embedding = metadata["model"].get("embedding")
    function_name = metadata.get("diagnostic_weights")
    if not embedding or not function_name:
        raise artifacts.ArtifactError(f"{path}: the exported model {metadata['model'].get('name')!r} has no "
                                      "MultiEmbedding table, so there is nothing to diagnose.")
    loaded = tf.saved_model.load(str(path))
    function = getattr(loaded, function_name, None)
    if function is None:
        raise artifacts.ArtifactError(f"{path}: the metadata names the function {function_name!r}, which the "
                                      "SavedModel does not have; the export is incomplete or was changed.")
    weights = {key: value.numpy() for key, value in function().items()}
    numeric_names = embedding.get("numeric_field_names")
    tables = tables_lib.EmbeddingTables(
        weights["embeddings"], tuple(embedding["vocabulary_sizes"]), int(embedding["num_sets"]),
        int(embedding["embedding_dim"]),
        tuple(field_names or embedding.get("field_names") or metadata["field_names"]),
        numeric_kernel=weights.get("numeric_kernel"),  # exports from before it existed: no numeric table
        numeric_field_names=tuple(numeric_names) if numeric_names and "numeric_kernel" in weights else None)
    return SavedModelWeights(tables, weights.get("cross_kernel"), embedding.get("pairwise"), str(path), metadata)


def default_label(path: types.PathLike) -> str:
    """A short label for a model path: the file stem, the run directory's name, or "<export name> v<version>"."""
    kind, resolved = artifacts.locate(path)
    if kind == "keras":
        return resolved.stem
    if kind == "export":
        return f"{resolved.parent.name} v{resolved.name}"
    return resolved.name


def describe(source: Union[tf.keras.Model, SavedModelWeights]) -> List[str]:
    """Short description lines of a loaded source for the report header."""
    if isinstance(source, SavedModelWeights):
        tables, data = source.tables, source.metadata.get("data") or {}
        lines = [f"Export {source.path} of model '{source.metadata['model'].get('name')}'",
                 f"{tables.num_fields} fields, {tables.num_sets} x {tables.embedding_dim}"]
        if data.get("name") or data.get("fingerprint"):
            lines.append(f"trained on {data.get('name')} (data fingerprint "
                         f"{str(data.get('fingerprint')).rsplit(':', 1)[-1][:12]})")  # the digest, not its kind
        return lines
    layer = introspection.find_embedding_layer(source)
    return [f"Keras model '{source.name}'", f"{layer.num_fields} fields, {layer.num_sets} x {layer.embedding_dim}"]
