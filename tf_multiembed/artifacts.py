"""The artifact contract: what a run directory and an export hold, written and read only through this module.

A **run directory** (`train.py --model_dir`, default `runs/<data>-<model name>/`):

    run.json            RUN_FILE: format version, package version, the full resolved configuration, the data
                        (name, fingerprint = `data_fingerprint`: the content of the data it trained on, the
                        cache key, field names, vocabulary sizes, split rows)
                        and the model (name, family, `options`: what the model options were built with, e.g.
                        `set_interactions`, `set_combiner`); `lineage`: the runs the model
                        descends from through warm starts (`--warm_start_from`), oldest first and this run last, each
                        with its data (name, fingerprint, input files, split rows, prepared folder). Written when the
                        run starts; a rerun compares itself with it.
    results.json        RESULTS_FILE: status, per-epoch metrics (AUC, log loss, ECE, calibration ratio), the kept
                        epoch and why (`kept_checkpoint`), test metrics, the calibrator and its before/after metrics
                        (`calibration`, with --calibration), wall time, resumes, runtime, the data record and its
                        ingest report; `warm_start` (what a warm start carried over, its vocabulary growth) and
                        `lineage`; "warnings" (why a split's AUC is undefined).
    best.keras          BEST_MODEL_FILE: the best epoch's model as a `.keras` file (written when training ends).
    ingest_report.json  INGEST_REPORT_FILE: what the data build read, skipped and wrote.
    checkpoints/        latest checkpoints (model, optimizer, progress), by object graph.
    best/               the best epoch's weights, by object graph.
    logs/               TensorBoard scalars.
    .lock               held by the process that trains in this directory.
    .tf-multiembed-run  RUN_MARKER_FILE: says the folder is a run directory (written when a run first opens it).

An **export** (`<export_dir>/<name>/<version>/`, a TF Serving SavedModel) holds besides the SavedModel files
`assets.extra/tf_multiembed.json` (EXPORT_METADATA_FILE): format and package version, the model (name, family, sets,
width, and from train.py its `options`), the encoded field names and vocabulary sizes, the raw inputs of
`serving_default` with their dtypes, the data (name, fingerprint), the kept epoch and why (`kept_checkpoint`), the
calibrator `click_probability` applies (`calibration`, or null), the run's `lineage` (or null), and the name of a
saved function (`diagnostic_weights`) that returns the embedding table and, for DCNv2, the first cross layer's
effective kernel. Readers (diagnostics, the export's own version check) use these files and that function, never TF
variable names or list positions.

Example:
    >>> import pathlib, tempfile
    >>> run_dir = pathlib.Path(tempfile.mkdtemp()) / "synthetic-me_dcnv2_2x10"
    >>> write_json(run_dir / RUN_FILE, {"format_version": FORMAT_VERSION})
    >>> kind, path = locate(run_dir)
    >>> kind, path == run_dir
    ('run', True)
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import tempfile
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from tf_multiembed import introspection, types
from tf_multiembed.data.shards import MANIFEST_NAME
from tf_multiembed.metadata import json_value
from tf_multiembed.metadata import package_version as package_version  # re-exported: run.json's writers use it

if TYPE_CHECKING:  # TensorFlow is imported where it is used: reading a run's files stays light
    import tensorflow as tf

    from tf_multiembed.data.encoding import RawFeatureEncoder
    from tf_multiembed.data.pipeline import PreparedData

FORMAT_VERSION = 1
RUN_FILE = "run.json"
RESULTS_FILE = "results.json"
BEST_MODEL_FILE = "best.keras"
INGEST_REPORT_FILE = "ingest_report.json"
CHECKPOINTS_DIR = "checkpoints"
BEST_CHECKPOINT_DIR = "best"
LOGS_DIR = "logs"
LOCK_FILE = ".lock"
RUN_MARKER_FILE = ".tf-multiembed-run"
EXPORT_METADATA_FILE = os.path.join("assets.extra", "tf_multiembed.json")
DIAGNOSTIC_WEIGHTS_FUNCTION = "diagnostic_weights"
# What the package writes in a run directory: these files, and in these folders only its own checkpoint and event
# files (`training.run_directory.package_files`, what `--restart` deletes; never anything else the user put there).
RUN_ARTIFACTS = (RUN_FILE, RESULTS_FILE, BEST_MODEL_FILE, INGEST_REPORT_FILE, CHECKPOINTS_DIR, BEST_CHECKPOINT_DIR,
                 LOGS_DIR)


EXPORT_NAME_RULE = "a plain directory name (letters, digits, '.', '_', '-', not starting with '.' or '-')"


def is_valid_export_name(name: object) -> bool:
    """Whether `name` can be an export (TF Serving model) name: a plain directory name, see `EXPORT_NAME_RULE`."""
    return isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) is not None


class ArtifactError(ValueError):
    """A path that is not what the contract says it should be (missing file, other format, unfinished run)."""


def write_json(path: types.PathLike, payload: Mapping[str, Any]) -> None:
    """Writes `payload` as indented JSON via a temporary file and a rename, so readers never see half a file.

    Example:
        >>> write_json("/tmp/results.json", {"auc": 0.81})
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".tmp-", suffix=".json", delete=False,
                                     encoding="utf-8") as handle:
        json.dump(json_value(payload), handle, indent=2, allow_nan=False)
        handle.write("\n")
        temporary = handle.name
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(temporary, 0o666 & ~mask)  # a temporary file is private; the result is an ordinary file
    os.replace(temporary, path)


def read_json(path: types.PathLike, what: str) -> Dict[str, Any]:
    """A JSON object file of the contract; errors name the file and what it should have been."""
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; expected {what}.") from None
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path}: cannot be read as {what}: {error}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object ({what}), found {type(data).__name__}.")
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format version {version}; this tf-multiembed ({package_version()}) reads "
                            f"version {FORMAT_VERSION}.")
    return data


def layers_by_name(model: "tf.keras.Model") -> Dict[str, Any]:
    """`{layer name: layer}` of a model's layers with variables: the root under which checkpoints and exports track
    a model. Keras keeps a functional model's layers in a list (TensorFlow's object graph would name them by their
    position in it); layer names are unique within a model and fixed by the zoo's builders."""
    return {layer.name: layer for layer in model.layers if layer.variables}


def model_variable_paths(model: "tf.keras.Model") -> Dict[int, str]:
    """`{id(variable): "<layer name>/<attribute path>"}` for the model's variables reachable through layer
    attributes (see `layers_by_name`); variables a layer hides from TensorFlow's tracking are absent."""
    import tensorflow as tf

    holder = tf.Module()
    holder.layers = layers_by_name(model)
    paths = introspection.object_graph_paths(holder)
    prefix = "layers/"
    return {id(variable): paths[id(variable)][len(prefix):] for variable in model.variables
            if paths.get(id(variable), "").startswith(prefix)}


# --- what is recorded about data and models ---------------------------------------------------------------------

CONTENT_FINGERPRINT_PREFIX = "content-sha256:"


def data_fingerprint(data: "PreparedData") -> str:
    """The identity of the prepared data a run trains on, from the data as the build read it.

    For a build that hashed its inputs (the columnar engine always does): "content-sha256:" over the inputs' content
    digests (`PreparedData.data_fingerprint`), the schema and the build settings, so an input edited in place, even
    with its size and modification time restored, gives another fingerprint once the cache rebuilds it, and the same
    content under another path or cache folder gives the same one. Else (e.g. a Beam folder, whose inputs are not
    hashed) the build's cache key, or a hash of the folder's manifest (schema, settings, ingest report, shard rows)
    and vocabulary files.
    """
    if data.data_fingerprint:
        payload = json.dumps({"content": data.data_fingerprint, "schema": data.schema.to_dict(),
                              "settings": dataclasses.asdict(data.settings)}, sort_keys=True)
        return CONTENT_FINGERPRINT_PREFIX + hashlib.sha256(payload.encode("utf-8")).hexdigest()
    if data.cache_key:
        return str(data.cache_key)
    folder = pathlib.Path(data.directory)
    digest = hashlib.sha256((folder / MANIFEST_NAME).read_bytes())
    for path in sorted(data.vocabulary_files().values()):
        if path.is_file():
            digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes())
    return f"folder-sha256:{digest.hexdigest()}"


def same_data_fingerprint(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether two data records (`data_record`) name the same data. A record written before runs recorded content
    fingerprints holds the build's cache key as its fingerprint: it matches the current build's cache key (once; the
    rerun then records the content fingerprint)."""
    if recorded.get("fingerprint") == current.get("fingerprint"):
        return True
    legacy = "cache_key" not in recorded and not str(recorded.get("fingerprint")).startswith(
        (CONTENT_FINGERPRINT_PREFIX, "folder-sha256:", "sha256:"))
    return legacy and current.get("cache_key") is not None and recorded.get("fingerprint") == current["cache_key"]


def data_record(data: "PreparedData", name: str) -> Dict[str, Any]:
    """What a run and an export record about the `PreparedData` they were trained on."""
    return {"name": name, "fingerprint": data_fingerprint(data), "cache_key": data.cache_key,
            "field_names": list(data.field_names), "vocabulary_sizes": [int(size) for size in data.vocabulary_sizes],
            "split_rows": {split: int(rows) for split, rows in data.split_rows.items()}}


def ingest_report(data: "PreparedData") -> Dict[str, Any]:
    """The build's ingest report (`PreparedData.report`) as plain data."""
    return json_value(data.report)


def model_record(model: "tf.keras.Model", family: Optional[str] = None) -> Dict[str, Any]:
    """Name, family, sets, width, vocabulary sizes and parameters of a model of the zoo (or any model with one
    `MultiEmbedding` layer); `embedding` is None for a model without one."""
    record: Dict[str, Any] = {"name": model.name, "family": family, "num_parameters": int(model.count_params())}
    try:
        layer = introspection.find_embedding_layer(model)
    except ValueError:
        record["embedding"] = None
        return record
    record["embedding"] = {"num_sets": int(layer.num_sets), "embedding_dim": int(layer.embedding_dim),
                           "vocabulary_sizes": [int(size) for size in layer.vocabulary_sizes],
                           "pairwise": introspection.pairwise_kind(model)}
    if getattr(layer, "bag_sizes", None) is not None:  # bags: the table's fields are not the encoded columns
        record["embedding"].update({"field_names": list(layer.field_names or []),
                                    "bag_sizes": [int(size) for size in layer.bag_sizes]})
    numeric = introspection.find_numeric_embedding_layer(model)
    if numeric is not None:  # the rows of the numeric table the collapse report reads (`numeric_kernel`)
        record["embedding"]["numeric_field_names"] = list(
            numeric.field_names or [f"numeric_{index}" for index in range(numeric.num_fields)])
    return record


def diagnostic_weights(model: "tf.keras.Model") -> Dict[str, Any]:
    """The tensors the collapse report needs: `embeddings` `[sum(D), M*K]`, for DCNv2 `cross_kernel`, the first
    cross layer's effective kernel `[M, N*K, N*K]`, and with embedded numeric fields `numeric_kernel`, their value
    vectors `[M, F_e, K]`. The export saves this as a function of the model's variables."""
    import tensorflow as tf

    from tf_multiembed.compat import as_tf_variable

    embeddings = introspection.find_embedding_layer(model).embeddings
    weights = {"embeddings": tf.convert_to_tensor(as_tf_variable(embeddings))}
    numeric = introspection.find_numeric_embedding_layer(model)
    if numeric is not None:
        weights["numeric_kernel"] = tf.convert_to_tensor(as_tf_variable(numeric.kernel))
    kind, layer = introspection.find_pairwise_layer(model)
    if kind == introspection.CROSS:
        weights["cross_kernel"] = tf.convert_to_tensor(layer.effective_kernel(0))
    return weights


def export_metadata(model: "tf.keras.Model", encoder: "RawFeatureEncoder", input_specs: Mapping[str, Any], *,
                    output_name: str, signature_name: str, data_name: Optional[str] = None,
                    data_fingerprint: Optional[str] = None, model_family: Optional[str] = None,
                    model_options: Optional[Mapping[str, Any]] = None,
                    kept_checkpoint: Optional[Mapping[str, Any]] = None,
                    calibration: Optional[Mapping[str, Any]] = None,
                    lineage: Optional[Sequence[Mapping[str, Any]]] = None) -> Dict[str, Any]:
    """The metadata file of an export (see the module docstring)."""
    record = model_record(model, model_family)
    if model_options:  # what train.py built it with (RunConfig.model_options: set_interactions, set_combiner, ...)
        record["options"] = dict(model_options)
    separators = {field.name: field.separator for field in getattr(getattr(encoder, "schema", None), "fields", ())
                  if getattr(field, "is_list", False)}
    extra = {"list_separators": separators} if separators else {}  # lists in request rows (RequestBuilder)
    return {**extra,
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "model": record,
        "field_names": list(encoder.field_names),
        "vocabulary_sizes": [int(size) for size in encoder.vocabulary_sizes],
        "signature": signature_name,
        "inputs": {name: spec.dtype.name for name, spec in input_specs.items()},
        "output": output_name,
        "data": {"name": data_name, "fingerprint": data_fingerprint},
        "diagnostic_weights": DIAGNOSTIC_WEIGHTS_FUNCTION if record["embedding"] else None,
        # Which epoch's weights these are and why (train.py's --monitor), and the calibrator `output` applies.
        "kept_checkpoint": dict(kept_checkpoint) if kept_checkpoint else None,
        "calibration": dict(calibration) if calibration else None,
        # The runs the model descends from through warm starts, each with the data it trained on, its own run last.
        "lineage": [dict(entry) for entry in lineage] if lineage else None,
    }


def write_best_model(model: "tf.keras.Model", run_dir: types.PathLike) -> pathlib.Path:
    """Saves `model` (its current weights) as the run's `best.keras`, without optimizer state, atomically."""
    import tensorflow as tf

    run_dir = pathlib.Path(run_dir)
    # A new functional model over the same layers: the file gets the architecture and weights, not the optimizer
    # (twice the table's size in Adam moments) and not the compile settings.
    inference = tf.keras.Model(model.inputs, model.outputs, name=model.name)
    temporary = run_dir / f"{BEST_MODEL_FILE}.tmp-{os.getpid()}.keras"
    inference.save(str(temporary))
    os.replace(temporary, run_dir / BEST_MODEL_FILE)
    return run_dir / BEST_MODEL_FILE


# --- reading ------------------------------------------------------------------------------------------------------

def is_export(path: types.PathLike) -> bool:
    return (pathlib.Path(path) / "saved_model.pb").is_file()


def export_versions(model_root: types.PathLike) -> List[int]:
    """The numeric version folders under an export name's folder, ascending."""
    root = pathlib.Path(model_root)
    if not root.is_dir():
        return []
    return sorted(int(path.name) for path in root.iterdir() if path.is_dir() and path.name.isdigit())


def read_export_metadata(export_path: types.PathLike) -> Dict[str, Any]:
    """The metadata of one export version (raises `ArtifactError` naming what is missing)."""
    export_path = pathlib.Path(export_path)
    if not is_export(export_path):
        raise ArtifactError(f"{export_path}: no saved_model.pb; expected an export version folder "
                            "(<export_dir>/<name>/<version>/).")
    return read_json(export_path / EXPORT_METADATA_FILE,
                     "the tf-multiembed export metadata (exports written by tf_multiembed.serving.export_for_serving "
                     "carry it)")


def read_run(run_dir: types.PathLike) -> Dict[str, Any]:
    """The `run.json` of a run directory."""
    return read_json(pathlib.Path(run_dir) / RUN_FILE, "the run record written by train.py / training.run")


def locate(path: types.PathLike) -> Tuple[str, pathlib.Path]:
    """What `path` is by the contract: ("keras", file), ("run", run directory), ("export", version folder; an export
    name's folder resolves to its newest version).

    Raises:
        ArtifactError: for anything else, saying what was expected.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such file or directory.")
    if path.is_file():
        if path.suffix == ".keras":
            return "keras", path
        raise ArtifactError(f"{path}: expected a .keras file, a run directory or an export.")
    if is_export(path):
        return "export", path
    if (path / RUN_FILE).is_file():
        return "run", path
    versions = export_versions(path)
    if versions and is_export(path / str(versions[-1])):
        return "export", path / str(versions[-1])
    raise ArtifactError(
        f"{path}: neither a run directory (no {RUN_FILE}), an export version (no saved_model.pb) nor an export name "
        "with numbered versions; give a .keras file, a train.py --model_dir or an export folder.")


def best_model_path(run_dir: types.PathLike) -> pathlib.Path:
    """The run's `best.keras`, or an error saying why there is none yet."""
    run_dir = pathlib.Path(run_dir)
    path = run_dir / BEST_MODEL_FILE
    if path.is_file():
        return path
    status = None
    if (run_dir / RESULTS_FILE).is_file():
        status = read_json(run_dir / RESULTS_FILE, "the run's results").get("status")
    raise ArtifactError(f"{run_dir}: no {BEST_MODEL_FILE} (run status: {status or 'not started'}); it is written when "
                        "training finishes. Finish the run (rerun the same train.py command) first.")
