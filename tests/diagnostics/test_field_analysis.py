"""Per-field / per-set IA of embedding tables and zoo models: hand-computed values, exclusions, serialisation."""

import json
import math

import numpy as np
import pytest

from tf_multiembed.diagnostics import abundance
from tf_multiembed.diagnostics.field_analysis import EmbeddingDiagnostics, analyze_embeddings
from tf_multiembed.diagnostics.tables import EmbeddingTables
from tf_multiembed.models import build_model

# Two fields (3 and 4 rows), M = 2 sets of width K = 2; columns [set 0 | set 1].
FIELD_0 = [[3, 0, 1, 1],
           [0, 2, 2, 2],
           [0, 0, 0, 0]]
FIELD_1 = [[1, 0, 0, 0],
           [0, 1, 0, 0],
           [10, 0, 0, 0],
           [0, 0, 0, 0]]


def _hand_tables():
    weights = np.array(FIELD_0 + FIELD_1, dtype=np.float32)
    return EmbeddingTables(weights, (3, 4), num_sets=2, embedding_dim=2, field_names=("user", "item"))


def _ia_of_2x2_gram(a, b, c):
    """IA of a matrix whose column Gram is [[a, b], [b, c]] (closed-form eigenvalues)."""
    mean, radius = (a + c) / 2, math.sqrt(((a - c) / 2) ** 2 + b * b)
    return 1 + math.sqrt(mean - radius) / math.sqrt(mean + radius)


def test_hand_computed_table():
    result = analyze_embeddings(_hand_tables())
    # Field 0: set 0 = diag(3, 2) -> 5/3; set 1 = rank one -> 1. The concatenation has two nonzero rows r1, r2 with
    # |r1|^2 = 11, |r2|^2 = 12, r1.r2 = 4, so its row Gram is [[11, 4], [4, 12]].
    assert result.set_abundance[0, 0] == pytest.approx(5 / 3)
    assert result.set_abundance[0, 1] == pytest.approx(1.0)
    assert result.concat_abundance[0] == pytest.approx(_ia_of_2x2_gram(11, 4, 12))
    # Field 1, all rows: set 0 has column Gram diag(101, 1); set 1 is all zero (undefined, noted).
    assert result.set_abundance[1, 0] == pytest.approx(1 + 1 / math.sqrt(101))
    assert math.isnan(result.set_abundance[1, 1])
    assert result.concat_abundance[1] == pytest.approx(1 + 1 / math.sqrt(101))
    assert any("item" in note and "set 1" in note for note in result.notes)
    np.testing.assert_allclose(result.set_spectra[0, 0], [1.0, 2 / 3])
    np.testing.assert_allclose(result.set_spectra[0, 1], [1.0, 0.0], atol=1e-7)
    assert result.concat_spectra.shape == (2, 4)
    assert result.concat_spectra[0, 2:].tolist() == [0.0, 0.0]  # only 2 nonzero singular values
    assert result.analysed_rows.tolist() == [3, 4] and result.excluded_rows.tolist() == [0, 0]
    assert result.all_rows_concat_abundance is None
    # RankMe beside IA: set 0 of field 0 has spectrum (3, 2) -> p = (0.6, 0.4); set 1 is rank one -> 1; field 1's
    # concatenation has spectrum (sqrt(101), 1); its all-zero set 1 is undefined (NaN) like its IA.
    assert result.set_effective_rank[0, 0] == pytest.approx(math.exp(-0.6 * math.log(0.6) - 0.4 * math.log(0.4)))
    assert result.set_effective_rank[0, 1] == pytest.approx(1.0)
    weights = np.array([math.sqrt(101), 1.0]) / (math.sqrt(101) + 1)
    assert result.concat_effective_rank[1] == pytest.approx(math.exp(-np.sum(weights * np.log(weights))))
    assert math.isnan(result.set_effective_rank[1, 1])
    assert result.random_concat_effective_rank[1] == pytest.approx(
        abundance.effective_rank(abundance.random_matrix(4, 4, 0)))
    assert result.random_set_effective_rank[0] == pytest.approx(
        abundance.effective_rank(abundance.random_matrix(3, 4, 0)[:, :2]))
    assert result.summary()["min_set_effective_rank"] == pytest.approx(1.0)


def test_untrained_rows_are_excluded_and_reported_apart():
    counts = [np.array([1, 1, 0]), np.array([5, 5, 0, 0])]
    result = analyze_embeddings(_hand_tables(), id_counts=counts)
    assert result.analysed_rows.tolist() == [2, 2] and result.excluded_rows.tolist() == [1, 2]
    # Trained rows of field 1 are e1, e2 of set 0: IA 2. The row 10*e1 that was never trained is left out...
    assert result.set_abundance[1, 0] == pytest.approx(2.0)
    assert result.concat_abundance[1] == pytest.approx(2.0)
    # ... and only shows in the all-rows number.
    assert result.all_rows_concat_abundance[1] == pytest.approx(1 + 1 / math.sqrt(101))
    assert result.all_rows_concat_abundance[0] == pytest.approx(result.concat_abundance[0])
    assert any("3 rows in 2 fields were never seen" in note for note in result.notes)
    # The random baseline has the analysed shape: [2, 4] and [2, 2].
    assert result.random_concat_abundance[1] == pytest.approx(
        abundance.information_abundance(abundance.random_matrix(2, 4, 0)))
    assert result.random_set_abundance[1] == pytest.approx(
        abundance.information_abundance(abundance.random_matrix(2, 4, 0)[:, :2]))


def test_field_without_trained_rows_is_nan_with_a_note():
    result = analyze_embeddings(_hand_tables(), id_counts=[np.zeros(3), np.ones(4)])
    assert math.isnan(result.concat_abundance[0]) and math.isnan(result.random_concat_abundance[0])
    assert np.isnan(result.set_abundance[0]).all()
    assert any("Field 0 (user): no trained rows" in note for note in result.notes)
    summary = result.summary()
    assert summary["min_concat_abundance"] == pytest.approx(result.concat_abundance[1])  # NaN skipped


def test_json_round_trip():
    result = analyze_embeddings(_hand_tables(), id_counts=[np.array([1, 1, 0]), np.array([5, 5, 0, 0])])
    data = json.loads(json.dumps(result.to_dict()))  # NaN must have become null to be valid JSON
    assert data["set_abundance"][1][1] is None
    restored = EmbeddingDiagnostics.from_dict(data)
    for name in ("set_abundance", "concat_abundance", "random_concat_abundance", "set_spectra",
                 "all_rows_concat_abundance", "analysed_rows"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(result, name))
    assert restored.field_names == ["user", "item"] and restored.notes == result.notes
    assert data["summary"]["mean_concat_abundance"] == pytest.approx(result.summary()["mean_concat_abundance"])
    for name in ("set_effective_rank", "concat_effective_rank", "random_set_effective_rank",
                 "random_concat_effective_rank"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(result, name))
    # A report written before RankMe existed: the ranks come back from the stored spectra (RankMe ignores scale),
    # the random baseline's ranks stay unknown.
    for name in ("set_effective_rank", "concat_effective_rank", "random_set_effective_rank",
                 "random_concat_effective_rank"):
        del data[name]
    older = EmbeddingDiagnostics.from_dict(data)
    np.testing.assert_allclose(older.set_effective_rank, result.set_effective_rank, rtol=1e-12)
    np.testing.assert_allclose(older.concat_effective_rank, result.concat_effective_rank, rtol=1e-12)
    assert older.random_concat_effective_rank is None and "mean_random_concat_effective_rank" not in older.summary()


@pytest.mark.parametrize("multi_embedding", [True, False])
def test_zoo_model_matches_direct_computation(multi_embedding):
    sizes = [30, 7, 120]
    model = build_model("dcnv2", sizes, scale=3, multi_embedding=multi_embedding, num_cross_layers=1,
                        hidden_units=(8,), field_names=["u", "g", "i"])
    layer = model.get_layer("multi_embedding")
    result = analyze_embeddings(model)
    assert result.field_names == ["u", "g", "i"]
    assert result.set_abundance.shape == (3, layer.num_sets)
    assert result.set_spectra.shape == (3, layer.num_sets, layer.embedding_dim)
    assert result.concat_spectra.shape == (3, 30)
    for field in range(3):
        assert result.concat_abundance[field] == pytest.approx(
            abundance.information_abundance(layer.field_table(field).numpy(), "svd"), rel=1e-6)
        for set_index in range(layer.num_sets):
            assert result.set_abundance[field, set_index] == pytest.approx(
                abundance.information_abundance(layer.field_table(field, set_index).numpy(), "svd"), rel=1e-6)
    if not multi_embedding:
        np.testing.assert_array_equal(result.concat_abundance, result.set_abundance[:, 0])


def test_bad_source():
    with pytest.raises(TypeError, match="Keras model, a MultiEmbedding layer or an EmbeddingTables"):
        analyze_embeddings(np.ones((3, 3)))
