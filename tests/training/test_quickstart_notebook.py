"""notebooks/quickstart.ipynb runs from top to bottom: functional ME model, fit, SE vs ME, export and reload."""

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_MULTIEMBED_NOTEBOOK_OUTPUT", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.delenv("TF_MULTIEMBED_QUICKSTART_DATA", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert "test AUC" in text and "se_dnn_k20" in text and "me_dnn_2x10" in text
    assert "SavedModel on raw rows:" in text and "mean IA" in text
    assert (tmp_path / "report" / "summary.md").is_file()
    assert (tmp_path / "export" / "quickstart" / "1" / "saved_model.pb").is_file()
