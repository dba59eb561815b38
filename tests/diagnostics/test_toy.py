"""The paper's toy experiment (Fig. 4): an embedding that interacts with a low-rank field collapses."""

import numpy as np
import pytest

from tf_multiembed.diagnostics.toy import run_toy_collapse_experiment


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_low_rank_partner_field_lowers_information_abundance(seed):
    # The paper's setting: D1 = D2 = 100, D3 in {3, 100}, full-batch SGD with lr 1 for 5,000 iterations.
    result = run_toy_collapse_experiment(third_field_sizes=(3, 100), num_iterations=5000, record_every=250,
                                         seed=seed)
    low, high = result.abundance[3], result.abundance[100]
    assert low[0] == high[0]  # the same initial E1 in both runs
    # Paper: IA(E1) ends lower, and stays lower over the second half of training, with the D3 = 3 field.
    assert low[-1] < high[-1] - 0.5
    half = result.iterations >= 2500
    assert np.all(low[half] < high[half])
    assert low[-1] < low[0]  # E1 collapses relative to its random initialisation
    for losses in result.losses.values():
        assert losses[-1] < losses[0]  # training does fit the labels


def test_result_shapes_and_recording():
    result = run_toy_collapse_experiment(third_field_sizes=(3,), num_rows=20, embedding_dim=4, num_iterations=25,
                                         record_every=10)
    assert result.iterations.tolist() == [0, 10, 20, 25]
    assert result.abundance[3].shape == (4,) and result.losses[3].shape == (4,)
    assert np.all((result.abundance[3] >= 1) & (result.abundance[3] <= 4))
    assert result.to_dict()["abundance"]["3"] == result.abundance[3].tolist()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_rows": 0}, "num_rows"),
        ({"embedding_dim": 2.5}, "embedding_dim"),
        ({"third_field_sizes": ()}, "at least one"),
        ({"third_field_sizes": (3, -1)}, "third_field_sizes"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"record_every": 0}, "record_every"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_toy_collapse_experiment(**kwargs)
