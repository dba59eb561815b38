"""Export a trained model as a TF Serving SavedModel whose `serving_default` signature takes raw features.

The signature wraps the data's `RawFeatureEncoder` (vocabulary lookups and numeric bucketing, the TensorFlow twins
of the offline build) around the trained id model, so the server needs no preprocessing and cannot drift from
training: raw rows give exactly the predictions the training model gives on the same rows encoded by the pipeline.
Vocabulary files are copied into the SavedModel's `assets/`.

Layout: `<export_dir>/<model_name>/<version>/` with `saved_model.pb`, `variables/`, `assets/`,
`assets.extra/tf_serving_warmup_requests` and `assets.extra/tf_multiembed.json` (the metadata of
`tf_multiembed.artifacts`). The version number is claimed first, atomically: a `.claim-<version>` file created
exclusively (`O_EXCL`) beside the versions, so two processes exporting to one name at once get two versions. The
version is then written under a temporary name (`.staging-<version>-<host>-<pid>`) and renamed when complete, so a
TF Serving instance polling `<export_dir>/<model_name>` never loads half a version; the claim goes after the rename.
The claims and staging folders of processes that died are removed by the next export to that name.

One name, one signature: TF Serving serves the newest version of a name to the same clients, so a version whose
inputs (names or dtypes) differ from the existing versions' is refused with `ExportMismatchError` naming the
difference (`check_export_target`, which `train.py` runs before training).

Signature `serving_default` (method `tensorflow/serving/predict`):
- inputs: one tensor per raw feature, shape `[batch]`: `tf.string` for categorical features, `tf.float64` for
  numeric ones ("" / NaN = missing); every feature must have the same batch size, which may be 0;
- output: `click_probability`, float32 `[batch]`; for a model exported with a calibrator (`train.py
  --calibration=platt|isotonic`) it is the calibrated probability, and `uncalibrated_click_probability` holds the
  model's own.
"""

import errno
import os
import pathlib
import re
import shutil
import socket
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, cast

import tensorflow as tf

from tf_multiembed import artifacts, types
from tf_multiembed.compat import as_tf_variable
from tf_multiembed.data import raw_feature_signature
from tf_multiembed.serving import warmup as warmup_lib
from tf_multiembed.serving.requests import (SERVING_SIGNATURE, RequestBuilder, check_version,
                                            input_specs_of_signature)

if TYPE_CHECKING:
    from tf_multiembed.calibration import Calibrator
    from tf_multiembed.data.encoding import RawFeatureEncoder

OUTPUT_NAME = "click_probability"
UNCALIBRATED_OUTPUT_NAME = "uncalibrated_click_probability"
_STAGING = re.compile(r"^\.staging-(?P<version>\d+)-(?:(?P<host>.+)-)?(?P<pid>\d+)$")
_CLAIM = re.compile(r"^\.claim-(?P<version>\d+)$")


class ExportMismatchError(ValueError):
    """A new version whose serving inputs differ from the existing versions of the same export name."""


def serving_module(model: tf.keras.Model, encoder: "RawFeatureEncoder",
                   calibrator: Optional["Calibrator"] = None) -> tf.Module:
    """A `tf.Module` whose `serve(features)` maps raw features to `{"click_probability": [B]}` (calibrated, plus
    `uncalibrated_click_probability`, when a calibrator is given).

    It also carries `diagnostic_weights()` (the tensors the collapse report reads, see `tf_multiembed.artifacts`)
    for models with a `MultiEmbedding` table.

    Args:
        model: the trained model: int64 ids `[B, N]` (or the input dict of docs/inputs.md) -> probability `[B, 1]`.
        encoder: the `tf_multiembed.data.RawFeatureEncoder` of the data the model was trained on.
        calibrator: a `tf_multiembed.calibration` calibrator applied to the model's probabilities, or None.

    Example:
        >>> module = serving_module(model, data.feature_encoder())  # doctest: +SKIP
        >>> module.serve({"C1": tf.constant(["68fd1e64"]), ...})  # doctest: +SKIP
    """
    model_inputs = {tensor.name.split(":")[0]: tensor for tensor in model.inputs}
    expected = tuple(getattr(encoder, "output_names", ("feature_ids",)))
    if len(model.inputs) != 1 or len(expected) != 1:
        if sorted(model_inputs) != sorted(expected):
            raise ValueError(f"serving_module: the model takes the inputs {sorted(model_inputs)} but the encoder "
                             f"makes {sorted(expected)}; export with the encoder of the data the model was trained "
                             "on (numeric treatments: docs/inputs.md).")
    ids_input = model_inputs.get("feature_ids", model.inputs[0])
    num_fields = ids_input.shape[-1]
    if num_fields is not None and num_fields != len(encoder.field_names):
        raise ValueError(f"serving_module: the model takes {num_fields} id columns but the encoder makes "
                         f"{len(encoder.field_names)} ({list(encoder.field_names)}); export with the encoder of the "
                         "data the model was trained on.")
    module = tf.Module(name="raw_feature_ctr_model")
    module.encoder = encoder
    # Every variable the functions capture must be tracked, as the `tf.Variable` itself rather than Keras 3's wrapper
    # (otherwise the TF1 loader that TF Serving and `saved_model_cli run` use restores copies while the graph reads
    # the originals: "Could not find variable"). They are tracked under their object-graph paths in the model; the
    # few the object graph cannot reach (Keras 3 dropout seed states) under "untracked_state".
    paths = artifacts.model_variable_paths(model)
    module.model_variables = {paths[id(variable)].replace("/", "."): as_tf_variable(variable)
                              for variable in model.variables if id(variable) in paths}
    module.untracked_state = [as_tf_variable(variable) for variable in model.variables if id(variable) not in paths]
    signature = raw_feature_signature(encoder.schema)

    @tf.function(input_signature=[signature])
    def serve(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        sizes = [tf.shape(features[name])[0] for name in signature]
        checks = [tf.debugging.assert_equal(size, sizes[0], message=f"serving_default: feature {name} has another "
                                            f"number of rows than {next(iter(signature))}; every feature needs one "
                                            "value per row") for name, size in zip(signature, sizes)]
        with tf.control_dependencies(checks):
            batch = tf.identity(sizes[0])

        def predict() -> tf.Tensor:
            probability = model(encoder.serve(features), training=False)
            return tf.reshape(tf.cast(probability, tf.float32), [-1])

        # An empty request gets an empty answer (the model's id checks reduce over the batch and fail on none).
        probability = tf.cond(batch > 0, predict, lambda: tf.zeros([0], tf.float32))
        if calibrator is None:
            return {OUTPUT_NAME: probability}
        return {OUTPUT_NAME: calibrator.tf_apply(probability), UNCALIBRATED_OUTPUT_NAME: probability}

    module.serve = serve
    try:
        artifacts.diagnostic_weights(model)
    except ValueError:  # no MultiEmbedding layer: nothing for the collapse report
        pass
    else:
        module.diagnostic_weights = tf.function(lambda: artifacts.diagnostic_weights(model), input_signature=[])
    return module


def next_version(model_root: types.PathLike) -> int:
    """One more than the largest numeric version directory under `model_root` (1 for none)."""
    return max(artifacts.export_versions(model_root), default=0) + 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _claim_owner(path: pathlib.Path) -> Optional[Tuple[str, int]]:
    """(host, pid) written in a claim file, or None while it is being written (or unreadable)."""
    try:
        host, pid = path.read_text(encoding="utf-8").split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def _age_seconds(path: pathlib.Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def remove_dead_staging(model_root: types.PathLike) -> List[str]:
    """Deletes the `.staging-*` folders and `.claim-*` files that processes of this host left when they died
    mid-export; returns them."""
    removed: List[str] = []
    root = pathlib.Path(model_root)
    if not root.is_dir():
        return removed
    host = socket.gethostname()
    for path in root.iterdir():
        match = _STAGING.match(path.name)
        if match and match["host"] in (None, host) and not _pid_alive(int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
        elif _CLAIM.match(path.name):
            owner = _claim_owner(path)
            # No owner yet: being written now, or its writer died in that instant (then it is old).
            dead = (owner is None and _age_seconds(path) > 60) or (
                owner is not None and owner[0] == host and not _pid_alive(owner[1]))
            if dead:
                path.unlink(missing_ok=True)
                removed.append(str(path))
    return removed


def _claim_path(model_root: pathlib.Path, version: int) -> pathlib.Path:
    return model_root / f".claim-{version}"


def claim_version(model_root: types.PathLike, version: Optional[int] = None) -> int:
    """Claims a version number under `model_root` for this process, atomically; returns it.

    A version is taken while its folder or its `.claim-<version>` file exists; the claim is created with `O_EXCL`,
    so of two processes only one gets a number. `version=None` claims the next free number (trying the following
    ones when another process is faster); an explicit version that is taken raises `FileExistsError`. Release the
    claim with `release_version` after the version folder is in place (or the export failed).
    """
    root = pathlib.Path(model_root)
    root.mkdir(parents=True, exist_ok=True)
    candidate = next_version(root) if version is None else version
    while True:
        claim = _claim_path(root, candidate)
        try:
            descriptor = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            claimed = True
        else:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(f"{socket.gethostname()} {os.getpid()}\n")
            # Exporters rename the version in place before they drop their claim: one not here now is free.
            claimed = (root / str(candidate)).exists()
            if claimed:
                claim.unlink(missing_ok=True)
        if not claimed:
            return candidate
        if version is not None:
            raise FileExistsError(f"export: {root / str(candidate)} exists or is being exported by another process; "
                                  "TF Serving versions are immutable, choose a new version (or leave it unset for "
                                  "the next one).")
        candidate = max(candidate, next_version(root) - 1) + 1


def release_version(model_root: types.PathLike, version: int) -> None:
    """Drops this process's claim on `version` (see `claim_version`)."""
    _claim_path(pathlib.Path(model_root), version).unlink(missing_ok=True)


def _existing_inputs(version_dir: pathlib.Path) -> Dict[str, str]:
    try:
        return dict(artifacts.read_export_metadata(version_dir)["inputs"])
    except artifacts.ArtifactError:  # exported without metadata (older versions): read the signature itself
        loaded = tf.saved_model.load(str(version_dir))
        if SERVING_SIGNATURE not in loaded.signatures:
            return {}
        return {name: spec.dtype.name for name, spec in
                input_specs_of_signature(loaded.signatures[SERVING_SIGNATURE]).items()}


def check_export_target(export_dir: types.PathLike, model_name: str, input_specs: Mapping[str, tf.TensorSpec],
                        version: Optional[int] = None) -> Tuple[pathlib.Path, int]:
    """Checks that `<export_dir>/<model_name>/` can take a new version with these inputs; returns (its folder, the
    version number). Removes staging folders of dead processes on the way.

    Raises:
        ValueError: a model name that is not a plain folder name, or a version < 1.
        FileExistsError: the version exists (TF Serving versions are immutable).
        ExportMismatchError: the newest existing version takes other inputs (names or dtypes), named in the message.

    Example:
        >>> check_export_target("export", "criteo-me_dcnv2_2x10", raw_feature_signature(schema))  # doctest: +SKIP
        (PosixPath('export/criteo-me_dcnv2_2x10'), 3)
    """
    if not artifacts.is_valid_export_name(model_name):
        raise ValueError(f"export: the model name must be {artifacts.EXPORT_NAME_RULE}, received {model_name!r}.")
    model_root = pathlib.Path(export_dir) / model_name
    remove_dead_staging(model_root)
    existing = artifacts.export_versions(model_root)
    version = next_version(model_root) if version is None else cast(int, check_version(version))
    if version in existing:
        raise FileExistsError(f"export: {model_root / str(version)} exists; TF Serving versions are immutable, "
                              "choose a new version (or leave it unset for the next one).")
    if existing:
        newest = model_root / str(existing[-1])
        before = _existing_inputs(newest)
        now = {name: spec.dtype.name for name, spec in input_specs.items()}
        if before != now:
            parts = []
            if sorted(set(before) - set(now)):
                parts.append(f"inputs only in the served versions: {sorted(set(before) - set(now))}")
            if sorted(set(now) - set(before)):
                parts.append(f"inputs only in this model: {sorted(set(now) - set(before))}")
            changed = {name: f"{before[name]} -> {now[name]}" for name in sorted(set(before) & set(now))
                       if before[name] != now[name]}
            if changed:
                parts.append(f"dtypes changed: {changed}")
            raise ExportMismatchError(
                f"export: {model_root} already serves a model whose serving_default takes other inputs (version "
                f"{existing[-1]}): {'; '.join(parts)}. TF Serving would serve this model as the newest version of "
                "the same name and break its clients. Export under another name (train.py --export_name; the "
                "default <data>-<model name> differs per data set).")
    return model_root, version


def export_for_serving(model: tf.keras.Model, encoder: "RawFeatureEncoder", export_dir: types.PathLike,
                       model_name: Optional[str] = None, version: Optional[int] = None,
                       warmup_columns: Optional[Mapping[str, Sequence[Any]]] = None,
                       warmup_batch_sizes: Sequence[int] = (1, 16), *, data_name: Optional[str] = None,
                       data_fingerprint: Optional[str] = None, model_family: Optional[str] = None,
                       model_options: Optional[Mapping[str, Any]] = None,
                       kept_checkpoint: Optional[Mapping[str, Any]] = None, calibrator: Optional["Calibrator"] = None,
                       lineage: Optional[Sequence[Mapping[str, Any]]] = None) -> pathlib.Path:
    """Writes `<export_dir>/<model_name>/<version>/` for TF Serving and returns its path.

    Args:
        model: the trained id model.
        encoder: the `RawFeatureEncoder` of its data.
        export_dir: the TF Serving model base directory's parent.
        model_name: the TF Serving model name (`model.name` by default).
        version: the version number; default one more than the largest existing one. An existing version is never
            overwritten (TF Serving treats versions as immutable).
        warmup_columns: raw feature columns for the warm-up requests; one request per size in `warmup_batch_sizes`
            is made by cycling through these rows. None writes no warm-up file.
        warmup_batch_sizes: batch sizes of the warm-up requests.
        data_name: the data's name, recorded in the metadata.
        data_fingerprint: the data's fingerprint (`tf_multiembed.artifacts.data_fingerprint(prepared_data)`),
            recorded in the metadata.
        model_family: the registered model name (e.g. "dcnv2"), recorded in the metadata.
        model_options: the options it was built with (`RunConfig.model_options()`, e.g. `set_interactions`),
            recorded in the metadata's `model`.
        kept_checkpoint: which epoch the exported weights are and why (the run's `results["kept_checkpoint"]`),
            recorded in the metadata.
        calibrator: a `tf_multiembed.calibration` calibrator: `click_probability` is then calibrated inside the
            graph and `uncalibrated_click_probability` is added; its parameters go in the metadata.
        lineage: the runs the model descends from (warm starts), each with the data it trained on, recorded in the
            metadata (the run's `results["lineage"]`).

    Raises:
        ExportMismatchError, FileExistsError, ValueError: see `check_export_target`.

    Example:
        >>> columns = raw_columns_from_files(schema, "train.txt", 16)  # doctest: +SKIP
        >>> path = export_for_serving(model, data.feature_encoder(), "export", "ctr", columns)  # doctest: +SKIP
        >>> path  # doctest: +SKIP
        PosixPath('export/ctr/1')
    """
    model_name = model_name or model.name
    input_specs = raw_feature_signature(encoder.schema)
    model_root, _ = check_export_target(export_dir, model_name, input_specs, version)
    version = claim_version(model_root, version)
    staging = model_root / f".staging-{version}-{socket.gethostname()}-{os.getpid()}"
    try:
        _write_version(model, encoder, model_name, version, staging, input_specs, warmup_columns, warmup_batch_sizes,
                       calibrator, data_name=data_name, data_fingerprint=data_fingerprint, model_family=model_family,
                       model_options=model_options, kept_checkpoint=kept_checkpoint, lineage=lineage)
        final = model_root / str(version)
        try:
            os.rename(staging, final)  # the claim keeps this package's exporters away; others may not know it
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise FileExistsError(f"export: {final} was written by another program while this export ran; nothing "
                                  "was replaced. Export again (the next free version is used).") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        release_version(model_root, version)
    return final


def _write_version(model: tf.keras.Model, encoder: "RawFeatureEncoder", model_name: str, version: int,
                   staging: pathlib.Path, input_specs: Mapping[str, tf.TensorSpec],
                   warmup_columns: Optional[Mapping[str, Sequence[Any]]], warmup_batch_sizes: Sequence[int],
                   calibrator: Optional["Calibrator"], **metadata_fields: Any) -> None:
    """The whole version (SavedModel, warm-up requests, metadata) in the staging folder."""
    shutil.rmtree(staging, ignore_errors=True)
    module = serving_module(model, encoder, calibrator)
    signature = module.serve.get_concrete_function()
    tf.saved_model.save(module, str(staging), signatures={SERVING_SIGNATURE: signature})
    if warmup_columns is not None:
        builder = RequestBuilder(input_specs)
        checked = builder.columns(warmup_columns)
        available = len(next(iter(checked.values())))
        requests = []
        for size in warmup_batch_sizes:
            rows = [index % available for index in range(size)]
            batch = {name: [values[row] for row in rows] for name, values in checked.items()}
            requests.append(builder.predict_request(batch, model_name, version))
        warmup_lib.write_warmup_requests(staging, requests)
    metadata = artifacts.export_metadata(model, encoder, input_specs, output_name=OUTPUT_NAME,
                                         signature_name=SERVING_SIGNATURE,
                                         calibration=calibrator.to_dict() if calibrator is not None else None,
                                         **metadata_fields)
    artifacts.write_json(staging / artifacts.EXPORT_METADATA_FILE, metadata)
