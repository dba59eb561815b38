"""FFM: the field-aware interaction layer (hand-computed pairs) and the "ffm" model of the zoo."""

import numpy as np
import pytest
import tensorflow as tf

import tf_multiembed.models.ffm  # noqa: F401  (registers "ffm")
from tf_multiembed.layers.interactions.ffm import SetFieldAwareInteraction
from tf_multiembed.models import build_model


def _sub_embeddings(num_sets, num_fields, dim, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, num_sets * num_fields, num_fields, dim)).astype(np.float32)


def test_pairs_by_hand():
    # M = 1, N = 3, K = 2; x[b, j, i] = e_i^{->j}.
    x = np.zeros((1, 3, 3, 2), dtype=np.float32)
    x[0, 1, 0] = [1, 2]   # e_0^{->1}
    x[0, 0, 1] = [3, 4]   # e_1^{->0}
    x[0, 2, 0] = [1, 0]   # e_0^{->2}
    x[0, 0, 2] = [5, 6]   # e_2^{->0}
    x[0, 2, 1] = [0, 1]   # e_1^{->2}
    x[0, 1, 2] = [7, 8]   # e_2^{->1}
    x[0, 0, 0] = x[0, 1, 1] = x[0, 2, 2] = [100, 100]  # self slots: must not contribute
    pairs = SetFieldAwareInteraction()(x).numpy()
    np.testing.assert_allclose(pairs, [[[1 * 3 + 2 * 4, 5, 8]]])  # pairs (0,1), (0,2), (1,2)
    np.testing.assert_allclose(SetFieldAwareInteraction(pooling="sum")(x).numpy(), [[[24.0]]])


def test_sets_are_independent_ffms():
    x = _sub_embeddings(num_sets=2, num_fields=3, dim=4)
    both = SetFieldAwareInteraction()(x).numpy()
    layer = SetFieldAwareInteraction()
    np.testing.assert_allclose(both[:, 0:1], layer(x[:, 0:3]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(both[:, 1:2], SetFieldAwareInteraction()(x[:, 3:6]).numpy(), rtol=1e-6)
    assert layer.compute_output_shape((None, 3, 3, 4)) == (None, 1, 3)


def test_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="pooling"):
        SetFieldAwareInteraction(pooling="mean")
    with pytest.raises(ValueError, match="received 5 sets for N=3 fields"):
        SetFieldAwareInteraction()(np.zeros((1, 5, 3, 2), np.float32))
    with pytest.raises(ValueError, match="at least 2 fields"):
        SetFieldAwareInteraction()(np.zeros((1, 1, 1, 2), np.float32))
    with pytest.raises(ValueError, match="rank 4"):
        SetFieldAwareInteraction()(np.zeros((1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2 fields"):
        build_model("ffm", [10])


def test_config_round_trip():
    layer = SetFieldAwareInteraction(pooling="sum", name="ffm_pairs")
    clone = SetFieldAwareInteraction.from_config(layer.get_config())
    assert clone.pooling == "sum" and clone.name == "ffm_pairs"


def test_ffm_model_logit_by_hand():
    sizes = [4, 3]
    model = build_model("ffm", sizes)  # one set of width 8
    embedding = model.get_layer("multi_embedding")
    assert embedding.num_sets == 2 and embedding.embedding_dim == 8
    ids = np.array([[1, 2], [3, 0]])
    linear_table = model.get_layer("linear_embedding").embeddings.numpy()[:, 0]
    dense = model.get_layer("linear").output_layer
    w, b = dense.kernel.numpy()[:, 0], dense.bias.numpy()[0]
    expected = []
    for x0, x1 in ids:
        pair = np.dot(embedding.field_table(0, 1).numpy()[x0], embedding.field_table(1, 0).numpy()[x1])
        linear = w[0] * linear_table[x0] + w[1] * linear_table[4 + x1] + b
        expected.append(1 / (1 + np.exp(-(pair + linear))))
    np.testing.assert_allclose(model.predict(ids, verbose=0)[:, 0], expected, rtol=1e-5)


def test_ffm_model_trains_and_round_trips(tmp_path):
    model = build_model("ffm", [6, 5, 4], scale=2)
    rng = np.random.default_rng(0)
    ids = np.stack([rng.integers(0, size, 64) for size in (6, 5, 4)], axis=1)
    labels = (ids[:, 0] > 2).astype(np.float32)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    history = model.fit(ids, labels, epochs=5, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < history[0]
    expected = model.predict(ids, verbose=0)
    model.save(tmp_path / "ffm.keras")
    restored = tf.keras.models.load_model(tmp_path / "ffm.keras")
    np.testing.assert_allclose(restored.predict(ids, verbose=0), expected, rtol=1e-6)
    model.export(str(tmp_path / "saved"), verbose=False)
    serving = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(serving.serve(tf.constant(ids, tf.int64)).numpy(), expected, rtol=1e-6)
