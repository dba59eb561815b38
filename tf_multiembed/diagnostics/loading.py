"""Loading a trained model for diagnostics: a `.keras` file, a model directory, or a SavedModel.

- `.keras` files are loaded with Keras (the package's layers are registered serializable), so everything the model
  knows (vocabulary sizes, sets, field names, cross layers) comes with it.
- A directory holding `saved_model.pb` is read as a SavedModel: only its variables are used, located by the names
  the zoo gives them ("multi_embedding/embeddings", "set_cross/kernel_0", "set_cross/pair_scale_0"). A SavedModel
  does not record the vocabulary sizes, so they come from the arguments or from a JSON file with a
  "vocabulary_sizes" key (and optionally "field_names", "num_sets") found in the SavedModel directory, its
  `assets.extra/` or `assets/`, or the directory above it.
- Any other directory is searched (one level of sub-directories too) for `.keras` files; see `find_keras_file`.
"""

import dataclasses
import json
import pathlib
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_multiembed.diagnostics import tables as tables_lib

PREFERRED_KERAS_NAMES = ("best.keras", "model.keras", "final.keras")


@dataclasses.dataclass
class SavedModelWeights:
    """What diagnostics need from a SavedModel's variables.

    Attributes:
        tables: the embedding table.
        cross_kernel: the first cross layer's effective kernel `[M, N*K, N*K]` (DCNv2), or None.
        path: where it was read from.
    """

    tables: tables_lib.EmbeddingTables
    cross_kernel: Optional[np.ndarray]
    path: str


def find_keras_file(directory) -> pathlib.Path:
    """The `.keras` file a model directory holds.

    Looks in the directory, then in its sub-directories; with several candidates prefers, in order, the names
    "best.keras", "model.keras", "final.keras", else the most recently modified file.

    Raises:
        FileNotFoundError: naming the directory and what was looked for.
    """
    directory = pathlib.Path(directory)
    candidates = sorted(directory.glob("*.keras")) or sorted(directory.glob("*/*.keras"))
    if not candidates:
        raise FileNotFoundError(
            f"{directory}: no .keras file here or one level below, and no saved_model.pb; give a .keras file, a "
            "SavedModel directory or a model directory that contains a .keras file."
        )
    for name in PREFERRED_KERAS_NAMES:
        for candidate in candidates:
            if candidate.name == name:
                return candidate
    return max(candidates, key=lambda path: path.stat().st_mtime)


def load_for_diagnostics(path, *, vocabulary_sizes: Optional[Sequence[int]] = None, num_sets: Optional[int] = None,
                         field_names: Optional[Sequence[str]] = None):
    """A Keras model (for `.keras` inputs) or `SavedModelWeights` (for SavedModels), ready for `analyze_embeddings`.

    Args:
        path: a `.keras` file, a SavedModel directory, or a directory containing a `.keras` file.
        vocabulary_sizes, num_sets, field_names: the layout of a SavedModel's table when no JSON sidecar gives it.

    Example:
        >>> source = load_for_diagnostics("runs/ml100k/best.keras")  # doctest: +SKIP
    """
    import tf_multiembed.layers  # noqa: F401  (registers the serializable layers)
    from tf_multiembed.layers.interactions import ffm, regularized_cross  # noqa: F401

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory.")
    if path.is_dir() and (path / "saved_model.pb").exists():
        return read_saved_model(path, vocabulary_sizes=vocabulary_sizes, num_sets=num_sets, field_names=field_names)
    if path.is_dir():
        path = find_keras_file(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: expected a .keras file, a SavedModel directory or a model directory.")
    return tf.keras.models.load_model(path, compile=False)


def _find_sidecar(path: pathlib.Path) -> Optional[dict]:
    for folder in (path, path / "assets.extra", path / "assets", path.parent):
        for candidate in sorted(folder.glob("*.json")):
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "vocabulary_sizes" in data:
                return data
    return None


def _variables_by_name(loaded) -> dict:
    return {variable.name.split(":")[0]: variable for variable in loaded.variables}


def _find_variable(variables: dict, suffix: str):
    matches = [name for name in variables if name == suffix or name.endswith("/" + suffix)]
    return variables[matches[0]] if len(matches) == 1 else None


def read_saved_model(path, *, vocabulary_sizes: Optional[Sequence[int]] = None, num_sets: Optional[int] = None,
                     field_names: Optional[Sequence[str]] = None) -> SavedModelWeights:
    """Reads the embedding table (and the first cross kernel, if any) of a SavedModel exported from the zoo.

    Raises:
        ValueError: when the embedding variable or the table layout cannot be determined, saying what to pass.
    """
    path = pathlib.Path(path)
    loaded = tf.saved_model.load(str(path))
    variables = _variables_by_name(loaded)
    table = _find_variable(variables, "multi_embedding/embeddings")
    if table is None:
        raise ValueError(
            f"{path}: no variable named 'multi_embedding/embeddings' (the zoo's embedding table); variables found: "
            f"{sorted(variables)[:20]}."
        )
    sidecar = _find_sidecar(path) or {}
    vocabulary_sizes = vocabulary_sizes or sidecar.get("vocabulary_sizes")
    if not vocabulary_sizes:
        raise ValueError(
            f"{path}: a SavedModel does not record the vocabulary sizes of its {table.shape[0]} embedding rows; pass "
            "--vocabulary-sizes (comma-separated, one per field) or put a JSON file with a 'vocabulary_sizes' key in "
            "the SavedModel directory."
        )
    field_names = field_names or sidecar.get("field_names")
    kernel = _find_variable(variables, "set_cross/kernel_0")
    num_sets = num_sets or sidecar.get("num_sets") or (int(kernel.shape[0]) if kernel is not None else None)
    if not num_sets:
        raise ValueError(
            f"{path}: cannot tell how many embedding sets share the table's {table.shape[1]} columns; pass "
            "--num-sets or add 'num_sets' to the JSON file beside the SavedModel."
        )
    width = int(table.shape[1])
    if width % int(num_sets):
        raise ValueError(f"{path}: the table has {width} columns, not a multiple of num_sets={num_sets}.")
    tables = tables_lib.EmbeddingTables(table.numpy(), tuple(int(v) for v in vocabulary_sizes), int(num_sets),
                                        width // int(num_sets), None if field_names is None else tuple(field_names))
    cross_kernel = None
    if kernel is not None:
        cross_kernel = kernel.numpy()
        scale = _find_variable(variables, "set_cross/pair_scale_0")
        if scale is not None:
            # RegularizedSetCross applies each K x K block times its learnable field-pair scale.
            dim = tables.embedding_dim
            cross_kernel = cross_kernel * np.repeat(np.repeat(scale.numpy(), dim, axis=1), dim, axis=2)
    return SavedModelWeights(tables, cross_kernel, str(path))


def describe(source) -> List[str]:
    """Short description lines of a loaded source for the report header."""
    if isinstance(source, SavedModelWeights):
        tables = source.tables
        return [f"SavedModel {source.path}", f"{tables.num_fields} fields, {tables.num_sets} x {tables.embedding_dim}"]
    layer = tables_lib.find_embedding_layer(source)
    return [f"Keras model '{source.name}'",
            f"{layer.num_fields} fields, {layer.num_sets} x {layer.embedding_dim}"]
