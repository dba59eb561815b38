"""The embedded numeric fields in the collapse report: their value vectors analysed together as one table whose rows
are the fields (`NumericEmbeddingDiagnostics`, the pseudo-field "numeric (embedded, F_e rows)"), by hand through a
real model, its `.keras` file and the report. The check on a real `train.py` run's run directory and export is in
tests/training/test_every_input_kind_run.py."""

import json
import math

import numpy as np
import pytest

from tf_multiembed.diagnostics import EmbeddingDiagnostics, analyze_embeddings, load_for_diagnostics, write_report
from tf_multiembed.diagnostics.field_analysis import NumericEmbeddingDiagnostics
from tf_multiembed.diagnostics.tables import EmbeddingTables
from tf_multiembed.models import NumericFeature, NumericInputs, build_model

NUMERIC = NumericInputs(embedded=(NumericFeature("price", 1.0, 2.0), NumericFeature("dwell", 30.0, 10.0),
                                  NumericFeature("rank", 0.5, 0.3)))
# W[m, f, :] for M = 2 sets, F_e = 3 fields, K = 2.
# Set 0: rows (3, 0), (0, 1), (0, 0): singular values 3, 1.  Set 1: rows (0, 0), (0, 0), (2, 0): singular value 2.
# Concatenation [F_e, M*K]: rows (3, 0, 0, 0), (0, 1, 0, 0), (0, 0, 2, 0), orthogonal: singular values 3, 2, 1.
KERNEL = np.array([[[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]],
                   [[0.0, 0.0], [0.0, 0.0], [2.0, 0.0]]], dtype=np.float32)


def _rankme(singular_values):
    p = np.asarray(singular_values, dtype=np.float64) / np.sum(singular_values)
    return math.exp(-float(np.sum(p * np.log(p))))


def _model():
    model = build_model("dcnv2", [4, 5], embedding_dim=2, num_sets=2, field_names=["user", "item"],
                        numeric_inputs=NUMERIC, num_cross_layers=1, hidden_units=(4,))
    model.get_layer("numeric_embedding").kernel.assign(KERNEL)
    return model


def test_the_numeric_table_of_a_real_model_by_hand(tmp_path):
    model = _model()
    diagnostics = analyze_embeddings(model)
    numeric = diagnostics.numeric
    assert isinstance(numeric, NumericEmbeddingDiagnostics)
    assert numeric.name == "numeric (embedded, 3 rows)" and numeric.field_names == ["price", "dwell", "rank"]
    assert numeric.ceiling == 3 and (numeric.num_sets, numeric.embedding_dim) == (2, 2)
    np.testing.assert_allclose(numeric.set_abundance, [(3 + 1) / 3, 2 / 2], rtol=1e-12)
    assert numeric.concat_abundance == pytest.approx((3 + 2 + 1) / 3, rel=1e-12)
    np.testing.assert_allclose(numeric.set_effective_rank, [_rankme([3, 1]), 1.0], rtol=1e-12)
    assert numeric.concat_effective_rank == pytest.approx(_rankme([3, 2, 1]), rel=1e-12)
    # The random baseline has the table's shape: [3, 4] (concatenation) and [3, 2] (a set), at most 3 and 2.
    assert 1 < numeric.random_concat_abundance <= 3 and 1 < numeric.random_set_abundance <= 2
    # Not a field: the per-field arrays and the summary hold the two categorical fields only.
    assert diagnostics.field_names == ["user", "item"] and diagnostics.concat_abundance.shape == (2,)
    assert any(note.startswith("numeric (embedded, 3 rows) is not a field") and "at most 3" in note
               for note in diagnostics.notes)

    # The .keras file carries the kernel: the same numbers after a round trip; and through JSON.
    model.save(tmp_path / "model.keras")
    restored = analyze_embeddings(load_for_diagnostics(tmp_path / "model.keras")).numeric
    assert restored.field_names == numeric.field_names
    assert restored.concat_abundance == pytest.approx(numeric.concat_abundance, rel=1e-12)
    again = EmbeddingDiagnostics.from_dict(json.loads(json.dumps(diagnostics.to_dict()))).numeric
    assert again.field_names == numeric.field_names and again.concat_abundance == numeric.concat_abundance
    np.testing.assert_array_equal(again.set_effective_rank, numeric.set_effective_rank)
    assert again.random_concat_effective_rank == numeric.random_concat_effective_rank


def test_the_report_shows_the_pseudo_field_with_its_ceiling(tmp_path):
    write_report({"ME 2x2": _model()}, tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| *numeric (embedded, 3 rows)*"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:4] == ["3", "3", "2.00"] and cells[6] == f"{_rankme([3, 2, 1]):.2f}"
    assert cells[8:10] == [f"{(4 / 3 + 1) / 2:.2f}", "1.00"]  # set IA mean and min
    assert "- note: numeric (embedded, 3 rows) is not a field" in summary
    assert "IA 2.00 and RankMe 2.75 of at most 3" in summary  # the plain-language reading
    stored = json.loads((tmp_path / "diagnostics.json").read_text())["ME 2x2"]
    assert stored["embedding"]["numeric"]["ceiling"] == 3
    assert stored["reading"]["numeric"]["field"] == "numeric (embedded, 3 rows)"
    assert [field["field"] for field in stored["reading"]["fields"]] == ["user", "item"]


def test_models_without_embedded_numeric_fields_have_no_numeric_table_and_bad_kernels_are_named():
    assert analyze_embeddings(build_model("dnn", [4, 5], scale=2)).numeric is None
    dense_only = build_model("dnn", [4, 5], scale=2,
                             numeric_inputs=NumericInputs(dense=(NumericFeature("d", 0.0, 1.0),)))
    assert analyze_embeddings(dense_only).numeric is None
    with pytest.raises(ValueError, match=r"the numeric kernel has shape \(2, 3, 4\), expected \[num_sets, F_e, "
                                         r"embedding_dim\] = \[2, F_e, 2\]"):
        EmbeddingTables(np.ones((9, 4)), [4, 5], 2, 2, numeric_kernel=np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="2 numeric field names for 3 embedded numeric fields"):
        EmbeddingTables(np.ones((9, 4)), [4, 5], 2, 2, numeric_kernel=KERNEL, numeric_field_names=("a", "b"))
