"""README.md's python code blocks run, in order and in one namespace (a later block may use an earlier one's names),
as a reader would paste them, in a temporary working directory."""

import pathlib
import re

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def python_blocks(text: str):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = python_blocks((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 2  # the quick start and the layers example
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)  # noqa: S102
        if number == 1:
            # What the quick start promises: ME with 4 sets of width 10, SE with one of width 40, equal embedding sizes.
            me, se = namespace["model"], namespace["baseline"]
            assert me.get_layer("multi_embedding").embeddings.shape == (3801, 40)
            assert se.get_layer("multi_embedding").embeddings.shape == (3801, 40)
            probabilities = me.predict(namespace["ids"][:3], verbose=0)
            assert probabilities.shape == (3, 1) and np.isfinite(probabilities).all()
    # The layers example builds ME-DCNv2 by hand: ids [B, 8] -> probability [B, 1].
    assert tuple(namespace["model"].outputs[0].shape) == (None, 1)
