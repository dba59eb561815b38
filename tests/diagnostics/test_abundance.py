"""Information abundance and spectra: hand-computed values, Gram route == SVD route, bad input."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.diagnostics import abundance


@pytest.mark.parametrize("method", ["gram", "svd"])
def test_known_singular_values(method):
    assert abundance.information_abundance(np.eye(7), method) == pytest.approx(7.0)
    rank_one = np.outer(np.arange(1.0, 51.0), [2.0, -1.0, 0.5, 3.0])
    assert abundance.information_abundance(rank_one, method) == pytest.approx(1.0)
    assert abundance.information_abundance(np.diag([3.0, 2.0, 1.0]), method) == pytest.approx(2.0)
    # Rotations on both sides do not change singular values: Q diag(4, 2, 1) R has IA = 7/4.
    rng = np.random.default_rng(0)
    left, _ = np.linalg.qr(rng.standard_normal((40, 3)))
    right, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    matrix = left @ np.diag([4.0, 2.0, 1.0]) @ right
    assert abundance.information_abundance(matrix, method) == pytest.approx(1.75)
    np.testing.assert_allclose(abundance.normalized_spectrum(matrix, method), [1.0, 0.5, 0.25], atol=1e-10)


def test_scale_invariant_and_bounded():
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((30, 8))
    value = abundance.information_abundance(matrix)
    assert abundance.information_abundance(1e-4 * matrix) == pytest.approx(value)
    assert 1.0 <= value <= 8.0
    assert 1.0 <= abundance.information_abundance(rng.standard_normal((3, 8))) <= 3.0


@pytest.mark.parametrize("shape,decay", [((20000, 50), 0.0), ((5000, 100), 3.0), ((4000, 10), 6.0), ((7, 30), 0.0)])
def test_gram_route_matches_svd_route(shape, decay):
    rng = np.random.default_rng(2)
    matrix = rng.standard_normal(shape).astype(np.float32)
    # Decaying column scales give spectra spanning up to six decades (collapsed embeddings).
    matrix *= np.logspace(0, -decay, shape[1]).astype(np.float32)
    svd = abundance.singular_values(matrix, "svd")
    gram = abundance.singular_values(matrix, "gram")
    assert gram.shape == svd.shape == (min(shape),)
    ia_svd = abundance.information_abundance(matrix, "svd")
    ia_gram = abundance.information_abundance(matrix, "gram")
    assert abs(ia_gram - ia_svd) <= 1e-6 * ia_svd
    # Singular values above 1e-3 of the largest agree to 1e-6 relative (the Gram route squares the condition number).
    large = svd > 1e-3 * svd[0]
    np.testing.assert_allclose(gram[large], svd[large], rtol=1e-6)


def test_gram_chunks_and_tensorflow_inputs_agree():
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((1000, 6)).astype(np.float32)
    full = abundance.gram_matrix(matrix)
    np.testing.assert_allclose(abundance.gram_matrix(matrix, chunk_rows=7), full, rtol=1e-12)
    np.testing.assert_allclose(full, matrix.astype(np.float64).T @ matrix.astype(np.float64), rtol=1e-12)
    expected = abundance.information_abundance(matrix, "svd")
    assert abundance.information_abundance(tf.constant(matrix)) == pytest.approx(expected, rel=1e-9)
    assert abundance.information_abundance(tf.Variable(matrix)) == pytest.approx(expected, rel=1e-9)
    assert abundance.information_abundance(tf.keras.Variable(matrix)) == pytest.approx(expected, rel=1e-9)
    wide = matrix[:4].T  # [6, 4]: the Gram of the smaller side is 4 x 4
    assert abundance.gram_matrix(wide).shape == (4, 4)


def test_random_baseline():
    tall = abundance.random_abundance(20000, 10, seed=0)
    assert 9.0 < tall < 10.0  # nearly isotropic
    assert abundance.random_abundance(20000, 10, seed=0) == tall  # seeded
    assert abundance.random_abundance(4, 10) <= 4.0
    with pytest.raises(ValueError, match="num_rows"):
        abundance.random_abundance(0, 10)


@pytest.mark.parametrize(
    "matrix,match",
    [
        (np.ones(5), "2-D"),
        (np.ones((2, 3, 4)), "2-D"),
        (np.zeros((0, 4)), "empty"),
        (np.zeros((5, 3)), "all zeros"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
    ],
)
def test_bad_matrices_raise(matrix, match):
    with pytest.raises(ValueError, match=match):
        abundance.information_abundance(matrix)


def test_bad_matrix_errors_svd_route_and_method():
    with pytest.raises(ValueError, match="NaN"):
        abundance.information_abundance(np.array([[np.inf, 1.0]]), "svd")
    with pytest.raises(ValueError, match="method"):
        abundance.information_abundance(np.eye(3), "qr")
    with pytest.raises(ValueError, match="square"):
        abundance.singular_values_from_gram(np.ones((2, 3)))


def _entropy_rank(weights):
    return math.exp(-sum(w * math.log(w) for w in weights))


@pytest.mark.parametrize("method", ["gram", "svd"])
def test_effective_rank_of_known_spectra(method):
    # diag(3, 2, 1): p = (1/2, 1/3, 1/6), RankMe = exp(ln 2 / 2 + ln 3 / 3 + ln 6 / 6) = 2^(2/3) * 3^(1/2).
    assert abundance.effective_rank(np.diag([3.0, 2.0, 1.0]), method) == pytest.approx(2 ** (2 / 3) * 3 ** 0.5)
    assert abundance.effective_rank(np.diag([3.0, 2.0, 1.0]), method) == pytest.approx(
        _entropy_rank([1 / 2, 1 / 3, 1 / 6]))
    # Q diag(4, 2, 1) R: p = (4/7, 2/7, 1/7); zeros in the spectrum do not count (0 log 0 = 0).
    rng = np.random.default_rng(0)
    left, _ = np.linalg.qr(rng.standard_normal((40, 4)))
    right, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    matrix = left @ np.diag([4.0, 2.0, 1.0, 0.0]) @ right
    assert abundance.effective_rank(matrix, method) == pytest.approx(_entropy_rank([4 / 7, 2 / 7, 1 / 7]))
    assert abundance.effective_rank(1e-3 * matrix, method) == pytest.approx(_entropy_rank([4 / 7, 2 / 7, 1 / 7]))
    # The two metrics can order matrices differently: a long flat tail (1, 0.01 x 50) has IA 1.5 but RankMe
    # exp(H(1/1.5, 0.01/1.5 x 50)) ~ 6.96, while (1, 1) has IA 2 and RankMe 2.
    tail = np.array([1.0] + [0.01] * 50)
    assert abundance.information_abundance(np.diag(tail), method) == pytest.approx(1.5)
    assert abundance.effective_rank(np.diag(tail), method) == pytest.approx(
        _entropy_rank([1 / 1.5] + [0.01 / 1.5] * 50))
    assert abundance.effective_rank(np.diag(tail), method) > 6.9


@pytest.mark.parametrize("rank, shape", [(1, (30, 5)), (2, (30, 5)), (5, (30, 5)), (3, (4, 12)), (7, (200, 16))])
def test_effective_rank_of_equal_singular_values_is_the_rank(rank, shape):
    # Property: a rank-r matrix whose nonzero singular values are all equal (any scale, any bases) has RankMe = r
    # (and IA = r).
    rng = np.random.default_rng(rank)
    for _ in range(5):
        left, _ = np.linalg.qr(rng.standard_normal((shape[0], rank)))
        right, _ = np.linalg.qr(rng.standard_normal((shape[1], rank)))
        matrix = rng.uniform(0.1, 100.0) * left @ right.T
        for method in ("gram", "svd"):
            assert abundance.effective_rank(matrix, method) == pytest.approx(rank, rel=1e-9)
            assert abundance.information_abundance(matrix, method) == pytest.approx(rank, rel=1e-9)


def test_effective_rank_bad_input_and_random_baseline():
    with pytest.raises(ValueError, match="all zeros .*RankMe is undefined"):
        abundance.effective_rank(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="all zeros"):
        abundance.effective_rank_from_singular_values(np.array([]))
    with pytest.raises(ValueError, match="random_effective_rank: `num_rows` must be a positive integer"):
        abundance.random_effective_rank(0, 10)
    tall = abundance.random_effective_rank(20000, 10, seed=0)
    assert 9.5 < tall <= 10.0
    assert tall == abundance.effective_rank(abundance.random_matrix(20000, 10, 0))
