"""The build reproduces, exactly, the outputs recorded from the pure-Python engine it replaced (golden/): the same
vocabulary files, the same ids and labels in every split, the same bad-line counts and `file:line: reason` messages,
on every reader (Criteo layout plain/gzip/CRLF, Avazu layout, quoted CSV with a byte-order mark, threshold labels and
time columns, multi-valued fields, MovieLens in the GroupLens and RecBole layouts) and on the real MovieLens-100K
(by sha256 digests, as the data may not be copied into the repository)."""

import json
import pathlib
import warnings

import pytest

from engine_cases import CASES, REAL_MOVIELENS_CASES, canonical_outputs
from tf_multiembed.data import prepare_dataset

GOLDENS = json.loads((pathlib.Path(__file__).parent / "golden" / "engine_goldens.json").read_text(encoding="utf-8"))


def test_every_case_has_a_golden():
    assert sorted(GOLDENS["cases"]) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_equal_the_recorded_goldens(name, tmp_path):
    schema, paths, kwargs = CASES[name](tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = prepare_dataset(schema, paths, tmp_path / "cache", **kwargs)
    outputs, golden = canonical_outputs(data, tmp_path), GOLDENS["cases"][name]
    for key in ("field_names", "vocabulary_sizes", "vocabularies", "report", "splits"):
        assert outputs[key] == golden[key], key


@pytest.mark.parametrize("name", sorted(REAL_MOVIELENS_CASES))
def test_real_movielens_outputs_equal_the_recorded_digests(name, shared_ml100k_dir, tmp_path):
    schema, kwargs = REAL_MOVIELENS_CASES[name]
    data = prepare_dataset(schema, shared_ml100k_dir, tmp_path, **kwargs)
    outputs = canonical_outputs(data, shared_ml100k_dir, full_vocabularies=False)
    golden = GOLDENS["real_movielens"][name]
    for key in ("field_names", "vocabulary_sizes", "vocabularies", "report", "splits"):
        assert outputs[key] == golden[key], key
