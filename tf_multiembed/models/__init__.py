"""The model zoo: `build_model(name, vocabulary_sizes, scale=..., multi_embedding=...)` and one builder per family.

Every module of this folder is imported here, so a new model file that calls `register_model` is registered without
editing this file (docs/architecture.md, "Adding an interaction block / a model").
"""

import importlib
import pkgutil

from tf_multiembed.models.autoint import build_autoint
from tf_multiembed.models.builder import build_model, resolve_embedding_shape
from tf_multiembed.models.common import (
    DENSE_VALUES_INPUT,
    FEATURE_IDS_INPUT,
    NUMERIC_VALUES_INPUT,
    PROBABILITY_OUTPUT,
    NumericFeature,
    NumericInputs,
)
from tf_multiembed.models.dcnv2 import build_dcnv2
from tf_multiembed.models.dnn import build_dnn
from tf_multiembed.models.finalmlp import build_finalmlp
from tf_multiembed.models.ipnn import build_ipnn
from tf_multiembed.models.nfwfm import build_nfwfm
from tf_multiembed.models.registry import available_models, get_model_spec, register_model
from tf_multiembed.models.xdeepfm import build_xdeepfm

# Importing the family modules registers them (dcnv2_regularized and ffm: the analysis models of the paper's evidence).
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

PAPER_MODELS = ("dnn", "ipnn", "nfwfm", "xdeepfm", "dcnv2", "finalmlp", "autoint")

__all__ = [
    "DENSE_VALUES_INPUT", "FEATURE_IDS_INPUT", "NUMERIC_VALUES_INPUT", "NumericFeature", "NumericInputs",
    "PAPER_MODELS", "PROBABILITY_OUTPUT", "available_models", "build_autoint", "build_dcnv2", "build_dnn",
    "build_finalmlp", "build_ipnn", "build_model", "build_nfwfm", "build_xdeepfm", "get_model_spec",
    "register_model", "resolve_embedding_shape",
]
