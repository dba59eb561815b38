"""The public API's annotations reach user code: mypy, run with the project's configuration on a user's script,
accepts the documented calls and flags a wrong argument type at the line that has it."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

USER_CODE = '''\
from tf_multiembed.data import criteo_schema
from tf_multiembed.layers import MultiEmbedding, SetCross
from tf_multiembed.models import build_model
from tf_multiembed.serving import RequestBuilder

good_layer = MultiEmbedding([10, 20], num_sets=2, embedding_dim=4, field_names=["a", "b"])
good_model = build_model("dcnv2", [10, 20], scale=2, multi_embedding=True)
good_builder = RequestBuilder.from_schema(criteo_schema())
bad_layer = MultiEmbedding([10, 20], num_sets="2")
bad_cross = SetCross(low_rank=2.5)
bad_model = build_model("dcnv2", [10, 20], scale="4")
'''


def test_mypy_flags_wrong_argument_types_in_user_code(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "user_code.py").write_text(USER_CODE, encoding="utf-8")
    # MYPYPATH: this checkout's package, not an installed copy.
    environment = dict(os.environ, MYPYPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO_ROOT / "pyproject.toml"), "--cache-dir",
         str(tmp_path / "cache"), "--no-error-summary", "user_code.py"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        'user_code.py:9: error: Argument "num_sets" to "MultiEmbedding" has incompatible type "str"; '
        'expected "int"  [arg-type]',
        'user_code.py:10: error: Argument "low_rank" to "SetCross" has incompatible type "float"; '
        'expected "int | None"  [arg-type]',
        'user_code.py:11: error: Argument "scale" to "build_model" has incompatible type "str"; '
        'expected "int"  [arg-type]',
    ]
