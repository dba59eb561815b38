"""The learned per-set gate (`SetGate`, `set_combiner="gate"`, "heterogeneous_gated"): hand-computed weights, the
vectorised gate equals a loop over sets, at initialisation it is the mean (whole models, same weights), with one set
it is the identity whatever its weights (ME with one set == SE), it gets a gradient from the first step, and it
survives a .keras round trip with trained values."""

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.layers import SetGate, SetMean
from tf_multiembed.models import build_model
from tf_multiembed.models.registry import model_options

SIZES = [5, 6, 7]
IDS = np.array([[0, 1, 2], [4, 5, 6], [3, 0, 1], [1, 2, 0], [2, 3, 4]])


def _copy_by_layer_name(source: tf.keras.Model, target: tf.keras.Model) -> None:
    """Every layer of `source` with weights gives them to `target`'s layer of the same name."""
    copied = 0
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
            copied += 1
    assert copied > 3


def _randomise(layer: SetGate, seed: int) -> None:
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=weight.shape).astype("float32") for weight in layer.get_weights()])


def test_hand_computed_gate():
    x = tf.constant([[[1.0, 2.0], [3.0, 6.0]]])  # [B=1, M=2, H=2]
    gate = SetGate()
    gate.build(x.shape)
    gate.set_weights([np.array([[1.0, 0.0], [0.0, 0.0]], "float32"), np.array([0.0, np.log(3.0)], "float32")])
    # logits (1*1 + 0, 0 + ln 3) -> weights (e, 3) / (e + 3)
    weight = np.e / (np.e + 3.0)
    np.testing.assert_allclose(gate.gate_weights(x).numpy(), [[weight, 1.0 - weight]], rtol=1e-6)
    np.testing.assert_allclose(gate(x).numpy(), [[weight * 1 + (1 - weight) * 3, weight * 2 + (1 - weight) * 6]],
                               rtol=1e-6)
    assert [tuple(w.shape) for w in gate.weights] == [(2, 2), (2,)]


def test_vectorised_gate_equals_a_loop_over_sets():
    x = tf.random.stateless_normal([6, 4, 3], seed=[1, 2])
    gate = SetGate()
    gate.build(x.shape)
    _randomise(gate, 0)
    kernel, bias = gate.get_weights()
    logits = np.stack([x.numpy()[:, m] @ kernel[m] + bias[m] for m in range(4)], axis=1)
    weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = sum(weights[:, m:m + 1] * x.numpy()[:, m] for m in range(4))
    np.testing.assert_allclose(gate(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_untrained_gate_is_the_mean_and_one_set_passes_through():
    x = tf.random.stateless_normal([5, 3, 4], seed=[3, 4])
    np.testing.assert_allclose(SetGate()(x).numpy(), SetMean()(x).numpy(), rtol=1e-6, atol=1e-7)
    one = x[:, :1]
    gate = SetGate()
    gate.build(one.shape)
    _randomise(gate, 1)
    np.testing.assert_array_equal(gate(one).numpy(), one[:, 0].numpy())  # softmax of one logit is exactly 1


@pytest.mark.parametrize("gated, plain, options", [
    ("heterogeneous_gated", "heterogeneous", {"set_interactions": ["cross", "cross", "inner_product", "cin"],
                                              "num_cross_layers": 2}),
    ("dcnv2", "dcnv2", {"set_combiner": "gate", "num_cross_layers": 2}),
])
def test_at_initialisation_the_gated_model_is_the_mean_model(gated, plain, options):
    plain_options = {key: value for key, value in options.items() if key != "set_combiner"}
    gated_model = build_model(gated, SIZES, scale=4, embedding_dim=4, hidden_units=(16, 8), **options)
    mean_model = build_model(plain, SIZES, scale=4, embedding_dim=4, hidden_units=(16, 8), **plain_options)
    assert "set_mean" in [layer.name for layer in mean_model.layers]
    assert "set_mean" not in [layer.name for layer in gated_model.layers]
    _copy_by_layer_name(mean_model, gated_model)
    np.testing.assert_allclose(gated_model.predict(IDS, verbose=0), mean_model.predict(IDS, verbose=0), rtol=1e-5,
                               atol=1e-7)
    # The gate is not stuck at the mean: its kernel gets a gradient at the first step.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(np.array([[1.0], [0.0], [1.0], [0.0], [1.0]]),
                                                                  gated_model(IDS, training=True)))
    kernel_gradient = tape.gradient(loss, gated_model.get_layer("set_gate").kernel)
    assert float(tf.reduce_max(tf.abs(kernel_gradient))) > 0


def test_one_set_with_a_trained_gate_equals_se_without_it():
    se_gated = build_model("heterogeneous_gated", SIZES, scale=3, multi_embedding=False, embedding_dim=4,
                           hidden_units=(16, 8))
    se_plain = build_model("heterogeneous", SIZES, scale=3, multi_embedding=False, embedding_dim=4,
                           hidden_units=(16, 8))
    _copy_by_layer_name(se_plain, se_gated)
    _randomise(se_gated.get_layer("set_gate"), 2)
    np.testing.assert_array_equal(se_gated.predict(IDS, verbose=0), se_plain.predict(IDS, verbose=0))


def test_trained_gate_survives_a_keras_round_trip(tmp_path):
    model = build_model("heterogeneous_gated", SIZES, scale=3, embedding_dim=4, hidden_units=(8,),
                        set_interactions=["cross", "inner_product", "inner_product"])
    _randomise(model.get_layer("set_gate"), 3)
    model.save(tmp_path / "model.keras")
    loaded = tf.keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.get_layer("set_gate")) is SetGate
    np.testing.assert_allclose(loaded.get_layer("set_gate").get_weights()[1],
                               model.get_layer("set_gate").get_weights()[1])
    np.testing.assert_allclose(loaded.predict(IDS, verbose=0), model.predict(IDS, verbose=0), rtol=1e-6)


def test_registered_variant_and_bad_combiner():
    assert model_options("heterogeneous_gated")["set_combiner"] == "gate"
    assert model_options("heterogeneous")["set_combiner"] == "mean"
    model = build_model("heterogeneous_gated", SIZES, scale=2, embedding_dim=4, hidden_units=(8,))
    assert model.name == "me_heterogeneous_gated_2x4"
    # An explicit option still wins over the variant's default.
    plain = build_model("heterogeneous_gated", SIZES, scale=2, embedding_dim=4, hidden_units=(8,),
                        set_combiner="mean")
    assert "set_mean" in [layer.name for layer in plain.layers]
    with pytest.raises(ValueError, match=r"`set_combiner` must be one of \['mean', 'gate'\], received 'max'"):
        build_model("heterogeneous", SIZES, scale=2, set_combiner="max")
