"""The model zoo: `build_model(name, vocabulary_sizes, scale=..., multi_embedding=...)` and one builder per family."""

# Importing the family modules registers them.
from tf_multiembed.models import autoint, dcnv2, dnn, finalmlp, ipnn, nfwfm, xdeepfm  # noqa: F401
from tf_multiembed.models import dcnv2_regularized, ffm  # noqa: F401  (analysis models of the paper's evidence)
from tf_multiembed.models.autoint import build_autoint
from tf_multiembed.models.builder import build_model, resolve_embedding_shape
from tf_multiembed.models.common import FEATURE_IDS_INPUT, PROBABILITY_OUTPUT
from tf_multiembed.models.dcnv2 import build_dcnv2
from tf_multiembed.models.dnn import build_dnn
from tf_multiembed.models.finalmlp import build_finalmlp
from tf_multiembed.models.ipnn import build_ipnn
from tf_multiembed.models.nfwfm import build_nfwfm
from tf_multiembed.models.registry import available_models, get_model_spec, register_model
from tf_multiembed.models.xdeepfm import build_xdeepfm

PAPER_MODELS = ("dnn", "ipnn", "nfwfm", "xdeepfm", "dcnv2", "finalmlp", "autoint")

__all__ = [
    "FEATURE_IDS_INPUT", "PAPER_MODELS", "PROBABILITY_OUTPUT", "available_models", "build_autoint", "build_dcnv2",
    "build_dnn", "build_finalmlp", "build_ipnn", "build_model", "build_nfwfm", "build_xdeepfm", "get_model_spec",
    "register_model", "resolve_embedding_shape",
]
