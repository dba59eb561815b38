"""Interaction-projected IA (DCNv2 cross blocks, FFM sub-embeddings) and set-wise weight norms."""

import math

import numpy as np
import pytest

import tf_multiembed.models.dcnv2_regularized  # noqa: F401  (registers "dcnv2_regularized")
import tf_multiembed.models.ffm  # noqa: F401  (registers "ffm")
from tf_multiembed.diagnostics import abundance
from tf_multiembed.diagnostics.pairwise import (
    cross_kernel_blocks,
    cross_projection_diagnostics,
    pairwise_diagnostics,
)
from tf_multiembed.diagnostics.tables import EmbeddingTables
from tf_multiembed.models import build_model


def test_hand_computed_cross_blocks():
    # Field 0 rows: diag(3, 1) and a zero row; field 1 rows: the identity. One set, K = 2.
    weights = np.array([[3, 0], [0, 1], [0, 0], [1, 0], [0, 1]], dtype=np.float64)
    tables = EmbeddingTables(weights, (3, 2), num_sets=1, embedding_dim=2)
    kernel = np.zeros((1, 4, 4))
    kernel[0, 0:2, 0:2] = np.eye(2)                   # field 0 -> field 0: identity
    kernel[0, 0:2, 2:4] = [[1, 0], [0, 0]]           # field 0 -> field 1: keeps only the first direction
    kernel[0, 2:4, 0:2] = [[0, 2], [2, 0]]           # field 1 -> field 0: a scaled rotation
    result = cross_projection_diagnostics(tables, kernel)   # field 1 -> field 1 stays zero
    projected = result.projected_abundance[0]
    assert projected[0, 0] == pytest.approx(4 / 3)   # IA(diag(3, 1))
    assert projected[0, 1] == pytest.approx(1.0)     # [[3, 0], [0, 0]]
    assert projected[1, 0] == pytest.approx(2.0)     # singular values 2, 2
    assert math.isnan(projected[1, 1])               # a zero projection has no IA
    np.testing.assert_allclose(result.weight_norms[0], [[math.sqrt(2), 1], [math.sqrt(8), 0]])
    np.testing.assert_allclose(result.field_abundance[0], [4 / 3, 2.0])


def test_cross_kernel_block_layout():
    kernel = np.arange(2 * 6 * 6, dtype=np.float64).reshape(2, 6, 6)  # M=2, N=3, K=2
    blocks = cross_kernel_blocks(kernel, 3, 2)
    np.testing.assert_array_equal(blocks[1, 2, 0], kernel[1, 4:6, 0:2])
    with pytest.raises(ValueError, match=r"expected a kernel of shape \[M, 6, 6\]"):
        cross_kernel_blocks(kernel[:, :5, :5], 3, 2)


def test_dcnv2_model_matches_direct_projection():
    model = build_model("dcnv2", [40, 9, 25], scale=2, num_cross_layers=2, hidden_units=(8,))
    embedding = model.get_layer("multi_embedding")
    kernel = model.get_layer("set_cross").kernels[0].numpy()
    result = pairwise_diagnostics(model)
    assert result.source == "dcnv2_cross_layer_0"
    assert result.projected_abundance.shape == (2, 3, 3) and result.weight_norms.shape == (2, 3, 3)
    for m in range(2):
        for i in range(3):
            e_i = embedding.field_table(i, m).numpy()
            for j in range(3):
                block = kernel[m, 10 * i:10 * (i + 1), 10 * j:10 * (j + 1)]
                assert result.projected_abundance[m, i, j] == pytest.approx(
                    abundance.information_abundance(e_i @ block, "svd"), rel=1e-6)
                assert result.weight_norms[m, i, j] == pytest.approx(np.linalg.norm(block), rel=1e-6)
    second = pairwise_diagnostics(model, layer_index=1)
    assert second.source == "dcnv2_cross_layer_1"
    with pytest.raises(ValueError, match=r"layer_index must be in \[0, 2\)"):
        pairwise_diagnostics(model, layer_index=2)


def test_regularized_dcnv2_uses_the_scaled_kernel():
    model = build_model("dcnv2_regularized", [12, 8], scale=1, num_cross_layers=1, hidden_units=(8,))
    cross = model.get_layer("set_cross")
    before = pairwise_diagnostics(model).weight_norms
    scales = np.ones((1, 2, 2), dtype=np.float32)
    scales[0, 0, 1] = 3.0
    cross.pair_scales[0].assign(scales)
    after = pairwise_diagnostics(model).weight_norms
    np.testing.assert_allclose(after[0, 0, 1], 3.0 * before[0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(after[0, 1, 0], before[0, 1, 0], rtol=1e-6)


def test_ffm_sub_embeddings():
    model = build_model("ffm", [20, 6, 11], scale=2)  # M = 2 FFM sets, N = 3: 6 sub-tables per field
    embedding = model.get_layer("multi_embedding")
    assert embedding.num_sets == 6
    result = pairwise_diagnostics(model)
    assert result.source == "ffm_sub_embeddings" and result.weight_norms is None
    assert result.projected_abundance.shape == (2, 3, 3)
    for m in range(2):
        for i in range(3):
            assert math.isnan(result.projected_abundance[m, i, i])  # a field never meets itself
            for j in range(3):
                if i != j:
                    assert result.projected_abundance[m, i, j] == pytest.approx(
                        abundance.information_abundance(embedding.field_table(i, m * 3 + j).numpy(), "svd"),
                        rel=1e-6)
            used = np.concatenate([embedding.field_table(i, m * 3 + j).numpy() for j in range(3) if j != i], axis=1)
            assert result.field_abundance[m, i] == pytest.approx(abundance.information_abundance(used, "svd"),
                                                                 rel=1e-6)


def test_models_without_field_pair_weights_return_none():
    assert pairwise_diagnostics(build_model("dnn", [5, 6], hidden_units=(8,))) is None
