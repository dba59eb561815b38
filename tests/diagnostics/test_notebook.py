"""notebooks/embedding_collapse.ipynb runs from top to bottom and shows its figures."""

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "embedding_collapse.ipynb"


def test_notebook_executes(ml100k_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_MULTIEMBED_SHARED_DATA", str(ml100k_dir.parent))
    monkeypatch.setenv("TF_MULTIEMBED_NOTEBOOK_OUTPUT", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 9  # Fig. 8a, 2, 1b, 8b, 3, 8c, two IA histories, Fig. 4
    assert (tmp_path / "report" / "summary.md").exists()
    text = "".join(output.get("text", "") for output in outputs)
    assert "test AUC  SE 1x40:" in text
