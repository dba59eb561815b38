"""TF Serving warm-up records: `assets.extra/tf_serving_warmup_requests` in a SavedModel version directory.

TF Serving replays these `PredictionLog` records when it loads a version, so the first real request does not pay
for graph initialisation (vocabulary tables, kernels, memory pools).
"""

import os
import pathlib
from typing import TYPE_CHECKING, List, Sequence

import tensorflow as tf

from tf_multiembed import types

if TYPE_CHECKING:
    from tensorflow_serving.apis import predict_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def write_warmup_requests(saved_model_dir: types.PathLike,
                          requests: Sequence["predict_pb2.PredictRequest"]) -> pathlib.Path:
    """Writes `PredictRequest`s as `PredictionLog` TFRecords into `saved_model_dir/assets.extra/`.

    Example:
        >>> write_warmup_requests("export/ctr/1", [builder.predict_request(columns, "ctr")])  # doctest: +SKIP
    """
    from tensorflow_serving.apis import prediction_log_pb2

    if not requests:
        raise ValueError("write_warmup_requests: give at least one PredictRequest.")
    path = pathlib.Path(saved_model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir: types.PathLike) -> List["predict_pb2.PredictRequest"]:
    """The `PredictRequest`s of a version's warm-up file (what TF Serving replays)."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = pathlib.Path(saved_model_dir) / WARMUP_FILE
    requests = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: expected predict_log records, found {log.WhichOneof('log_type')}.")
        requests.append(log.predict_log.request)
    return requests
