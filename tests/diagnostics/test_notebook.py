"""notebooks/embedding_collapse.ipynb runs from top to bottom and shows its figures; from a fresh clone (no
MovieLens-100K) it says so and uses the synthetic data."""

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


def _run_first_code_cells(notebook, count: int) -> str:
    """Executes the notebook's first `count` code cells in a kernel; returns their printed text."""
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    code = [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"][:count]
    with client.setup_kernel():
        for index, cell in code:
            client.execute_cell(cell, index)
    outputs = [output for _, cell in code for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    return "".join(output.get("text", "") for output in outputs)


def test_notebook_from_a_fresh_clone_falls_back_to_synthetic_data_with_a_note(tmp_path, monkeypatch):
    # A fresh clone: no ml-100k where the notebook looks ($TF_MULTIEMBED_SHARED_DATA, when set, is the only place).
    empty = tmp_path / "shared-data"
    empty.mkdir()
    monkeypatch.setenv("TF_MULTIEMBED_SHARED_DATA", str(empty))
    monkeypatch.setenv("TF_MULTIEMBED_NOTEBOOK_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    text = _run_first_code_cells(nbformat.read(NOTEBOOK, as_version=4), 2)  # set-up and data: the cells that failed
    assert f"Note: MovieLens-100K was not found (no ml-100k folder in {empty}), so this run uses the package's " \
           "synthetic click data" in text
    assert "data: synthetic" in text
    assert (tmp_path / "output" / "synthetic").is_dir()
