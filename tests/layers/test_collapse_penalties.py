"""The paper's appendix variants: space-similarity and singular-value penalties (closed forms on hand-made tables,
the vectorised penalty == a per-pair / per-field loop), the shared-interaction ablation (== the per-set model with
tied weights; one set == SE) and their config / .keras round trips."""

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.layers.collapse_penalties import (
    FoldSets,
    SingularValuePenalty,
    SpaceSimilarityPenalty,
    UnfoldSets,
    singular_value_penalty,
    space_similarity_penalty,
)
from tf_multiembed.models import build_model

# Batch embeddings [B=3, M=3, N=2, K=2]; field 1 is all zero.
FIELD_0 = [
    [[1, 0], [0, 2], [0, 0]],  # set 0: rows b = 0, 1, 2
    [[2, 0], [0, 0], [0, 1]],  # set 1
    [[0, 1], [0, 0], [0, 0]],  # set 2
]


def _hand_batch():
    table = np.zeros((3, 3, 2, 2), dtype=np.float32)
    table[:, :, 0, :] = np.transpose(np.array(FIELD_0, dtype=np.float32), (1, 0, 2))
    return table


def test_space_similarity_closed_form():
    # Field 0: C(1,0) = E1^T E0 = [[2, 0], [0, 0]] -> s = (2, 0); C(2,0) has the single entry E2[0,1] E0[0,0] = 1
    # -> (1, 0); C(2,1) the single entry E2[0,1] E1[0,0] = 2 -> (2, 0). Field 1: zeros. Averaged over the two fields:
    # (1, 0), (0.5, 0), (1, 0); the mean of the squares over 3 pairs x 2 values = 2.25 / 6 = 0.375.
    assert float(space_similarity_penalty(_hand_batch())) == pytest.approx(0.375)
    layer = SpaceSimilarityPenalty(1e-3)
    np.testing.assert_array_equal(layer(_hand_batch()).numpy(), _hand_batch())  # identity
    assert [float(loss) for loss in layer.losses] == pytest.approx([3.75e-4])
    # One set: nothing to compare, the penalty is 0.
    assert float(space_similarity_penalty(_hand_batch()[:, :1])) == 0.0


def test_space_similarity_equals_a_loop_over_pairs_and_fields():
    batch = np.random.default_rng(0).standard_normal((7, 4, 3, 5))
    per_pair = []
    for later in range(4):
        for earlier in range(later):
            per_field = [np.linalg.svd(batch[:, later, i].T @ batch[:, earlier, i], compute_uv=False)
                         for i in range(3)]
            per_pair.append(np.mean(per_field, axis=0))
    expected = np.mean(np.square(per_pair))
    assert float(space_similarity_penalty(tf.constant(batch, tf.float64))) == pytest.approx(expected, rel=1e-9)


def test_singular_value_penalty_closed_form():
    # Set 0, field 0: E = [[1, 0], [0, 2], [0, 0]] -> s = (2, 1), s / mean = (4/3, 2/3), unbiased variance 2/9;
    # set 1, field 0: s = (2, 1) as well; set 2, field 0: s = (1, 0) -> (2, 0), variance 2; field 1 (zeros): 0.
    # Mean over 3 sets x 2 fields: (2/9 + 2/9 + 2) / 6.
    expected = (2 / 9 + 2 / 9 + 2) / 6
    assert float(singular_value_penalty(_hand_batch())) == pytest.approx(expected)
    layer = SingularValuePenalty(1e-4)
    layer(_hand_batch())
    assert [float(loss) for loss in layer.losses] == pytest.approx([1e-4 * expected])
    # Per field, as in the reference: np.var(s / mean(s), ddof=1) averaged over fields.
    batch = np.random.default_rng(1).standard_normal((9, 1, 4, 3))
    values = [np.linalg.svd(batch[:, 0, i], compute_uv=False) for i in range(4)]
    reference = np.mean([np.var(s / s.mean(), ddof=1) for s in values])
    assert float(singular_value_penalty(tf.constant(batch, tf.float64))) == pytest.approx(reference, rel=1e-9)
    # A one-row batch (one singular value) counts 0, not NaN.
    assert float(singular_value_penalty(tf.ones([1, 1, 2, 3]))) == 0.0


def test_penalties_have_finite_gradients_with_repeated_singular_values():
    batch = tf.Variable(tf.tile(tf.eye(4)[:, None, None, :], [1, 2, 3, 1]))  # every spectrum (1, 1, 1, 1)
    with tf.GradientTape() as tape:
        loss = space_similarity_penalty(batch) + singular_value_penalty(batch)
    assert np.all(np.isfinite(tape.gradient(loss, batch).numpy()))


def test_bad_arguments():
    with pytest.raises(ValueError, match="SpaceSimilarityPenalty: `coefficient` must be a float >= 0, received -1"):
        SpaceSimilarityPenalty(-1.0)
    with pytest.raises(ValueError, match="`space_similarity_coefficient` must be a float >= 0, received 'x'"):
        build_model("dcnv2", [4, 5], space_similarity_coefficient="x")
    with pytest.raises(ValueError, match="`shared_interaction` must be True or False, received 1"):
        build_model("dcnv2", [4, 5], shared_interaction=1)


def test_fold_and_unfold_sets():
    x = tf.reshape(tf.range(2 * 3 * 4, dtype=tf.float32), [2, 3, 4])
    folded = FoldSets()(x)
    np.testing.assert_array_equal(folded.numpy()[4, 0], x.numpy()[1, 1])  # row b*M + m is set m of row b
    np.testing.assert_array_equal(UnfoldSets(3)(folded).numpy(), x.numpy())


SIZES = [5, 6, 7]
IDS = np.array([[0, 1, 2], [4, 5, 6], [3, 0, 1], [1, 2, 0]])


def _tie(source, target):
    """Copies `source`'s weights into `target`, repeating a shared [1, ...] weight over target's sets."""
    def paths(model):  # Keras 3 variables have a path; legacy tf-keras ones a name
        return [getattr(weight, "path", weight.name) for weight in model.weights]

    assert paths(source) == paths(target)
    for shared, weight in zip(source.weights, target.weights):
        value, shape = shared.numpy(), tuple(weight.shape)
        if value.shape != shape:  # [1, ...] kernels repeat over sets; flat [units] BatchNorm vectors tile to [M*units]
            repeats = shape[0] // value.shape[0]
            value = np.repeat(value, repeats, axis=0) if value.shape[0] == 1 else np.tile(value, repeats)
        weight.assign(value)


def test_shared_interaction_equals_the_per_set_model_with_tied_weights():
    shared = build_model("dcnv2", SIZES, scale=3, shared_interaction=True)
    per_set = build_model("dcnv2", SIZES, scale=3)
    assert shared.get_layer("set_cross").kernels[0].shape[0] == 1
    assert per_set.get_layer("set_cross").kernels[0].shape[0] == 3
    _tie(shared, per_set)
    np.testing.assert_allclose(shared.predict(IDS, verbose=0), per_set.predict(IDS, verbose=0), rtol=1e-5,
                               atol=1e-6)
    # Fewer parameters: one cross network and projection instead of three.
    assert shared.count_params() < per_set.count_params()


def test_one_set_equals_se_for_every_option():
    for options in ({"shared_interaction": True}, {"singular_value_coefficient": 1e-3},
                    {"space_similarity_coefficient": 1e-3}):
        option_model = build_model("dcnv2", SIZES, scale=1, **options)
        se = build_model("dcnv2", SIZES, scale=1)
        se.set_weights(option_model.get_weights())
        np.testing.assert_allclose(option_model.predict(IDS, verbose=0), se.predict(IDS, verbose=0), rtol=1e-6)
        option_model(IDS, training=True)
        if "space_similarity_coefficient" in options:
            assert [float(loss) for loss in option_model.losses] == [0.0]  # one set: nothing to push apart


def test_options_round_trip_through_keras_files(tmp_path):
    model = build_model("dcnv2", SIZES, scale=2, shared_interaction=True, space_similarity_coefficient=1e-3,
                        singular_value_coefficient=1e-4)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(IDS, np.array([1, 0, 1, 0]), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(IDS, verbose=0), model.predict(IDS, verbose=0), rtol=1e-6)
    assert loaded.get_layer("space_similarity_penalty").coefficient == 1e-3
    assert loaded.get_layer("singular_value_penalty").coefficient == 1e-4
    assert loaded.get_layer("unfold_sets").num_sets == 2
    model(IDS, training=True)
    loaded(IDS, training=True)
    np.testing.assert_allclose([float(v) for v in loaded.losses], [float(v) for v in model.losses], rtol=1e-5)
    assert len(model.losses) == 2 and all(float(v) > 0 for v in model.losses)
