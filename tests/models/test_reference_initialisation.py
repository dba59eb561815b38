"""Initial weights of every set follow the reference's PyTorch formulas at every scale (docs/fidelity.md).

Per set m of an ME model (and for the single set of SE), with N fields, width K per set and total vocabulary V:
embeddings U(+-sqrt(6 / (V + K))) (xavier_uniform_ over one set's table), the set's projection Linear(N*K, 400)
weights and biases U(+-1/sqrt(N*K)), DCNv2 cross kernels U(+-sqrt(6 / (2*N*K))) with zero biases; the shared head
Linear(400, 400) U(+-1/sqrt(400)). A width- or set-count-dependent slip (e.g. a fan-in over all sets, M*N*K) changes
the per-set bounds of the projection and cross kernels by sqrt(M); the embedding bound barely depends on K.
"""

import math

import numpy as np
import pytest

from tf_multiembed.models import build_model

# MovieLens-100K's eight fields (docs/scaling.md); V = 3801.
VOCABULARY_SIZES = [944, 1683, 62, 3, 22, 796, 74, 217]


def _assert_uniform(values, bound, what):
    """Every value inside +-bound, the extremes near it, and the std of U(-bound, bound) (bound / sqrt(3))."""
    values = np.asarray(values).ravel()
    assert np.abs(values).max() <= bound * (1 + 1e-6), what
    assert np.abs(values).max() > 0.9 * bound, what
    assert abs(values.std() / (bound / math.sqrt(3)) - 1) < 0.1, what


@pytest.mark.parametrize("family, multi_embedding, scale",
                         [("dnn", True, 10), ("dcnv2", True, 2), ("dcnv2", False, 10)])
def test_every_set_starts_from_the_reference_distributions(family, multi_embedding, scale):
    model = build_model(family, VOCABULARY_SIZES, scale=scale, multi_embedding=multi_embedding)
    num_sets, width = (scale, 10) if multi_embedding else (1, 10 * scale)
    fan_in = len(VOCABULARY_SIZES) * width
    table = model.get_layer("multi_embedding").embeddings.numpy()
    projection = model.get_layer("set_projection").dense_layers[0]
    projection_kernel, projection_bias = projection.kernel.numpy(), projection.bias.numpy()
    assert table.shape == (sum(VOCABULARY_SIZES), num_sets * width) and projection_kernel.shape[0] == num_sets
    cross = model.get_layer("set_cross") if family == "dcnv2" else None
    for m in range(num_sets):
        _assert_uniform(table[:, m * width:(m + 1) * width], math.sqrt(6 / (sum(VOCABULARY_SIZES) + width)),
                        f"embeddings of set {m}")
        _assert_uniform(projection_kernel[m], 1 / math.sqrt(fan_in), f"projection kernel of set {m}")
        _assert_uniform(projection_bias[m], 1 / math.sqrt(fan_in), f"projection bias of set {m}")
        for layer in range(cross.num_layers if cross else 0):
            _assert_uniform(cross.kernels[layer].numpy()[m], math.sqrt(6 / (2 * fan_in)),
                            f"cross kernel {layer} of set {m}")
            assert not np.any(cross.biases[layer].numpy()[m])
    _assert_uniform(model.get_layer("shared_head").dense_layers[0].kernel.numpy(), 1 / math.sqrt(400),
                    "shared head kernel")
    # Sets are independent draws, not copies of one another.
    if num_sets > 1:
        assert abs(np.corrcoef(table[:, :width].ravel(), table[:, width:2 * width].ravel())[0, 1]) < 0.05
