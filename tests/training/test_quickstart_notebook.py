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
    assert "How to read it: a field's IA is the sum of its embedding table's singular values" in text
    assert (tmp_path / "report" / "summary.md").is_file()
    assert (tmp_path / "export" / "quickstart" / "1" / "saved_model.pb").is_file()


def test_quickstart_asked_for_movielens_without_it_says_so_and_uses_the_synthetic_data(tmp_path, monkeypatch):
    empty = tmp_path / "shared-data"
    empty.mkdir()
    monkeypatch.setenv("TF_MULTIEMBED_SHARED_DATA", str(empty))
    monkeypatch.setenv("TF_MULTIEMBED_QUICKSTART_DATA", "movielens")
    monkeypatch.setenv("TF_MULTIEMBED_NOTEBOOK_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    code = [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"][:2]
    with client.setup_kernel():  # the set-up and data cells only: the rest does not depend on where data came from
        for index, cell in code:
            client.execute_cell(cell, index)
    outputs = [output for _, cell in code for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert f"Note: MovieLens-100K was not found (no ml-100k folder in {empty}): using the synthetic data" in text
    assert "synthetic data: 20000 rows, Bayes AUC" in text
