"""Test-suite set-up shared by every area.

The Keras runtime is chosen when TensorFlow is first imported: the default run uses Keras 3; the second run of the
suite (see README, `make test`) sets TF_USE_LEGACY_KERAS=1 and collects only the runtime-agnostic layer tests and the
folders named `legacy/`, which need legacy tf-keras (TFRS, ParameterServerStrategy).
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

LEGACY_RUNTIME = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir() -> pathlib.Path:
    """../shared/data beside the repository, or $TF_MULTIEMBED_SHARED_DATA."""
    override = os.environ.get("TF_MULTIEMBED_SHARED_DATA")
    return pathlib.Path(override) if override else REPO_ROOT.parent / "shared" / "data"


def pytest_ignore_collect(collection_path, config):
    # `legacy/` folders need the legacy runtime; they are collected only in the TF_USE_LEGACY_KERAS=1 run.
    if "legacy" in pathlib.Path(collection_path).parts and not LEGACY_RUNTIME:
        return True
    return None


@pytest.fixture
def ml100k_dir():
    """The real MovieLens-100K of ../shared/data; skips with a clear message where it is absent."""
    path = shared_data_dir() / "ml-100k"
    if not (path / "ml-100k.inter").exists():
        pytest.skip(f"MovieLens-100K not found at {path} (set TF_MULTIEMBED_SHARED_DATA to the shared data folder)")
    return path
