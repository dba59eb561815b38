"""Data: schemas, readers (Criteo, Avazu, MovieLens-100K, CSV/TSV), vocabularies, streaming build, tf.data input,
raw-feature encoding for serving, a synthetic Criteo-shaped generator and TFDS builders (`tf_multiembed.data.tfds`).

The build modules (schema, readers, records, vocabulary, splits, build, synthetic) do not import TensorFlow, so a
build process stays small; the TensorFlow-facing names below are loaded on first use.

Example:
    >>> from tf_multiembed import data
    >>> prepared = data.prepare_dataset("movielens", "../shared/data/ml-100k", "/tmp/cache")  # doctest: +SKIP
    >>> prepared.train_dataset(batch_size=2048, seed=0)  # doctest: +SKIP
"""

import importlib
from typing import TYPE_CHECKING, Any

from tf_multiembed.data.quality import (BadInputError, IngestReport, SkippedInputWarning,
                                        TooManyBadRowsError)
from tf_multiembed.data.schema import (FieldSpec, LabelSpec, Schema, avazu_schema, criteo_schema, movielens_schema,
                                       resolve_schema)
from tf_multiembed.data.shards import ShardError
from tf_multiembed.data.space import DiskSpaceError

if TYPE_CHECKING:  # what the checker sees of the names loaded on first use below
    from tf_multiembed.data.encoding import RawFeatureEncoder, raw_feature_signature, raw_features_from_cells
    from tf_multiembed.data.pipeline import PreparedData, prepare_dataset

_TENSORFLOW_NAMES = {
    "PreparedData": "tf_multiembed.data.pipeline",
    "prepare_dataset": "tf_multiembed.data.pipeline",
    "RawFeatureEncoder": "tf_multiembed.data.encoding",
    "raw_feature_signature": "tf_multiembed.data.encoding",
    "raw_features_from_cells": "tf_multiembed.data.encoding",
}

__all__ = [
    "BadInputError", "DiskSpaceError", "FieldSpec", "IngestReport", "LabelSpec", "PreparedData", "RawFeatureEncoder",
    "Schema", "ShardError", "SkippedInputWarning", "TooManyBadRowsError", "avazu_schema", "criteo_schema",
    "movielens_schema", "prepare_dataset", "raw_feature_signature", "raw_features_from_cells", "resolve_schema",
]


def __getattr__(name: str) -> Any:
    if name in _TENSORFLOW_NAMES:
        return getattr(importlib.import_module(_TENSORFLOW_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
