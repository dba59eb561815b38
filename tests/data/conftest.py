"""Fixtures of the data tests."""

import os
import pathlib
import warnings

import pytest

from tf_multiembed.data.quality import SkippedInputWarning


@pytest.fixture
def quiet_warnings():
    """Ignores SkippedInputWarning for tests that look at counts instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedInputWarning)
        yield


@pytest.fixture(scope="module")
def shared_ml100k_dir():
    """The real MovieLens-100K (../shared/data/ml-100k beside the repository, or $TF_MULTIEMBED_SHARED_DATA/ml-100k),
    shared by a module's tests; skips with a clear message where it is absent."""
    override = os.environ.get("TF_MULTIEMBED_SHARED_DATA")
    repository = pathlib.Path(__file__).resolve().parents[2]
    shared = pathlib.Path(override) if override else repository / ".." / "shared" / "data"
    path = shared / "ml-100k"
    if not (path / "ml-100k.inter").exists():
        pytest.skip(f"MovieLens-100K not found at {path} (set TF_MULTIEMBED_SHARED_DATA to the shared data folder)")
    return path
