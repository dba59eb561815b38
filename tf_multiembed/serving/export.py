"""Export a trained model as a TF Serving SavedModel whose `serving_default` signature takes raw features.

The signature wraps the data's `RawFeatureEncoder` (vocabulary lookups and numeric bucketing, the TensorFlow twins
of the offline build) around the trained id model, so the server needs no preprocessing and cannot drift from
training: raw rows give exactly the predictions the training model gives on the same rows encoded by the pipeline.
Vocabulary files are copied into the SavedModel's `assets/`.

Layout: `<export_dir>/<model_name>/<version>/` with `saved_model.pb`, `variables/`, `assets/` and
`assets.extra/tf_serving_warmup_requests`. The version is written under a temporary name and renamed when
complete, so a TF Serving instance polling `<export_dir>/<model_name>` never loads half a version.

Signature `serving_default` (method `tensorflow/serving/predict`):
- inputs: one tensor per raw feature, shape `[batch]`: `tf.string` for categorical features, `tf.float64` for
  numeric ones ("" / NaN = missing);
- output: `click_probability`, float32 `[batch]`.
"""

import os
import pathlib
import shutil
from typing import Mapping, Optional, Sequence

import tensorflow as tf

from tf_multiembed.data import raw_feature_signature
from tf_multiembed.compat import as_tf_variable
from tf_multiembed.serving import warmup as warmup_lib
from tf_multiembed.serving.requests import SERVING_SIGNATURE, RequestBuilder

OUTPUT_NAME = "click_probability"


def serving_module(model: tf.keras.Model, encoder) -> tf.Module:
    """A `tf.Module` whose `serve(features)` maps raw features to `{"click_probability": [B]}`.

    Args:
        model: the trained model: int64 ids `[B, N]` -> probability `[B, 1]`.
        encoder: the `tf_multiembed.data.RawFeatureEncoder` of the data the model was trained on.

    Example:
        >>> module = serving_module(model, data.feature_encoder())  # doctest: +SKIP
        >>> module.serve({"C1": tf.constant(["68fd1e64"]), ...})  # doctest: +SKIP
    """
    if len(model.inputs) != 1:
        raise ValueError(f"serving_module: the model must take one input (the ids [B, N]), it takes "
                         f"{len(model.inputs)}.")
    num_fields = model.inputs[0].shape[-1]
    if num_fields is not None and num_fields != len(encoder.field_names):
        raise ValueError(f"serving_module: the model takes {num_fields} id columns but the encoder makes "
                         f"{len(encoder.field_names)} ({list(encoder.field_names)}); export with the encoder of the "
                         "data the model was trained on.")
    module = tf.Module(name="raw_feature_ctr_model")
    module.encoder = encoder
    # The variables are tracked explicitly: Keras 3 layers that keep sub-layers in Python lists are invisible to
    # TensorFlow's object-graph tracking, and every captured variable must be tracked to be saved. They are tracked
    # as the `tf.Variable`s the function captures, not Keras 3's wrappers: otherwise the TF1 loader that TF Serving
    # and `saved_model_cli run` use restores copies while the graph reads the originals ("Could not find variable").
    module.model_variables = [as_tf_variable(variable) for variable in model.variables]

    @tf.function(input_signature=[raw_feature_signature(encoder.schema)])
    def serve(features):
        ids = encoder.serve(features)
        probability = model(ids, training=False)
        return {OUTPUT_NAME: tf.reshape(tf.cast(probability, tf.float32), [-1])}

    module.serve = serve
    return module


def next_version(model_root) -> int:
    """One more than the largest numeric version directory under `model_root` (1 for none)."""
    root = pathlib.Path(model_root)
    versions = [int(path.name) for path in root.iterdir() if path.is_dir() and path.name.isdigit()] \
        if root.is_dir() else []
    return max(versions, default=0) + 1


def export_for_serving(model: tf.keras.Model, encoder, export_dir, model_name: Optional[str] = None,
                       version: Optional[int] = None, warmup_columns: Optional[Mapping[str, Sequence]] = None,
                       warmup_batch_sizes: Sequence[int] = (1, 16)) -> pathlib.Path:
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

    Example:
        >>> path = export_for_serving(model, data.feature_encoder(), "export", "ctr", warmup_columns=columns)  # doctest: +SKIP
        >>> path
        PosixPath('export/ctr/1')
    """
    model_name = model_name or model.name
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise ValueError(f"export_for_serving: `model_name` must be a plain directory name, received {model_name!r}.")
    model_root = pathlib.Path(export_dir) / model_name
    version = next_version(model_root) if version is None else int(version)
    if version <= 0:
        raise ValueError(f"export_for_serving: `version` must be a positive integer, received {version}.")
    final = model_root / str(version)
    if final.exists():
        raise FileExistsError(f"export_for_serving: {final} exists; TF Serving versions are immutable, choose a new "
                              "version (or leave `version` unset for the next one).")
    model_root.mkdir(parents=True, exist_ok=True)
    staging = model_root / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    module = serving_module(model, encoder)
    signature = module.serve.get_concrete_function()
    tf.saved_model.save(module, str(staging), signatures={SERVING_SIGNATURE: signature})
    if warmup_columns is not None:
        builder = RequestBuilder(raw_feature_signature(encoder.schema))
        checked = builder.columns(warmup_columns)
        available = len(next(iter(checked.values())))
        requests = []
        for size in warmup_batch_sizes:
            rows = [index % available for index in range(size)]
            batch = {name: [values[row] for row in rows] for name, values in checked.items()}
            requests.append(builder.predict_request(batch, model_name, version))
        warmup_lib.write_warmup_requests(staging, requests)
    os.replace(staging, final)
    return final

