"""Records golden/engine_goldens.json: the prepared outputs of every case of engine_cases.py, and sha256 digests of
the vocabularies and encoded ids of the real MovieLens-100K (which may not be copied into the repository).

Run from the repository root (the real data is read from ../shared/data/ml-100k or $TF_MULTIEMBED_SHARED_DATA):

    PYTHONPATH=$PWD:tests/data python tests/data/golden/record_goldens.py

The committed goldens were recorded with the pure-Python engine of commit 3a0e9a1; the columnar engine that replaced
it must reproduce them exactly (tests/data/test_data_engine_goldens.py). Rerun this only for an intended change of
the outputs, and say so in the commit.
"""

import json
import os
import pathlib
import tempfile
import warnings

from engine_cases import CASES, REAL_MOVIELENS_CASES, canonical_outputs
from tf_multiembed.data import prepare_dataset

GOLDENS = pathlib.Path(__file__).resolve().parent / "engine_goldens.json"


def real_movielens_dir() -> pathlib.Path:
    override = os.environ.get("TF_MULTIEMBED_SHARED_DATA")
    repository = pathlib.Path(__file__).resolve().parents[3]
    return (pathlib.Path(override) if override else repository / ".." / "shared" / "data") / "ml-100k"


def main():
    goldens = {"cases": {}, "real_movielens": {}}
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, case in CASES.items():
            folder = pathlib.Path(scratch) / name
            folder.mkdir()
            schema, paths, kwargs = case(folder)
            data = prepare_dataset(schema, paths, folder / "cache", **kwargs)
            goldens["cases"][name] = canonical_outputs(data, folder)
        for name, (schema, kwargs) in REAL_MOVIELENS_CASES.items():
            data = prepare_dataset(schema, real_movielens_dir(), pathlib.Path(scratch) / name, **kwargs)
            outputs = canonical_outputs(data, real_movielens_dir(), full_vocabularies=False)
            goldens["real_movielens"][name] = outputs
    GOLDENS.write_text(json.dumps(goldens, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDENS}")


if __name__ == "__main__":
    main()
