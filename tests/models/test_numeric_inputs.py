import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.models import (
    DENSE_VALUES_INPUT,
    FEATURE_IDS_INPUT,
    NUMERIC_VALUES_INPUT,
    NumericFeature,
    NumericInputs,
    build_model,
)

ZOO = ("dnn", "ipnn", "nfwfm", "xdeepfm", "dcnv2", "finalmlp", "autoint", "dcnv2_regularized")
NUMERIC = NumericInputs(embedded=(NumericFeature("age", 30.0, 10.0), NumericFeature("price", 1.0, 2.0, log1p=True)),
                        dense=(NumericFeature("score", 0.5, 0.25),))
BATCH = {FEATURE_IDS_INPUT: np.array([[1, 2, 3], [0, 0, 0]]),
         NUMERIC_VALUES_INPUT: np.array([[20.0, np.nan], [41.0, 5.0]], np.float32),
         DENSE_VALUES_INPUT: np.array([[np.nan], [0.75]], np.float32)}


@pytest.mark.parametrize("name", ZOO)
def test_every_model_takes_numeric_fields_in_every_sets_interaction(name):
    model = build_model(name, [5, 6, 7], scale=2, numeric_inputs=NUMERIC, hidden_units=(8, 4))
    assert sorted(tensor.name.split(":")[0] for tensor in model.inputs) == sorted(
        [FEATURE_IDS_INPUT, NUMERIC_VALUES_INPUT, DENSE_VALUES_INPUT])
    # The interaction blocks see [B, M, N + F_e, K]: 3 categorical + 2 embedded numeric fields, 2 sets.
    width = model.get_layer("multi_embedding").embedding_dim
    assert tuple(model.get_layer("field_concat").output.shape) == (None, 2, 5, width)
    assert model.get_layer("numeric_embedding").num_sets == 2
    probabilities = model(BATCH).numpy()
    assert probabilities.shape == (2, 1) and np.all(np.isfinite(probabilities))


@pytest.mark.parametrize("name", ("dnn", "dcnv2"))
def test_without_numeric_fields_the_model_is_todays(name):
    plain = build_model(name, [5, 6, 7], scale=2)
    empty = build_model(name, [5, 6, 7], scale=2, numeric_inputs=NumericInputs())
    for model in (plain, empty):
        assert len(model.inputs) == 1 and model.inputs[0].name.startswith(FEATURE_IDS_INPUT)
    assert [tuple(w.shape) for w in plain.weights] == [tuple(w.shape) for w in empty.weights]
    assert [layer.name for layer in plain.layers] == [layer.name for layer in empty.layers]


def test_dense_fields_add_a_shared_linear_term_to_the_logit():
    model = build_model("dnn", [5, 6], scale=2, hidden_units=(4,), dropout=0.0,
                        numeric_inputs=NumericInputs(dense=(NumericFeature("d", mean=1.0, std=2.0),)))
    model.get_layer("dense_logit").set_weights([np.array([[0.5], [3.0]], np.float32)] + [
        np.zeros(w.shape, np.float32) for w in model.get_layer("dense_logit").get_weights()[1:]])
    ids = np.array([[1, 2]] * 3)
    dense = np.array([[1.0], [5.0], [np.nan]], np.float32)  # z = 0, 2, missing (z 0, indicator 1)
    probabilities = model({FEATURE_IDS_INPUT: ids, DENSE_VALUES_INPUT: dense}, training=False).numpy()[:, 0]
    logits = np.log(probabilities / (1 - probabilities))
    np.testing.assert_allclose(logits[1] - logits[0], 0.5 * 2.0, atol=1e-5)
    np.testing.assert_allclose(logits[2] - logits[0], 3.0, atol=1e-5)


def test_one_set_me_equals_se_with_numeric_fields():
    se = build_model("dcnv2", [5, 6, 7], scale=1, multi_embedding=False, numeric_inputs=NUMERIC, hidden_units=(8,))
    me = build_model("dcnv2", [5, 6, 7], scale=1, multi_embedding=True, numeric_inputs=NUMERIC, hidden_units=(8,))
    me.set_weights(se.get_weights())
    np.testing.assert_allclose(me(BATCH, training=False).numpy(), se(BATCH, training=False).numpy(), rtol=1e-6)


def test_a_numeric_model_round_trips_through_a_keras_file(tmp_path):
    model = build_model("autoint", [5, 6, 7], scale=2, numeric_inputs=NUMERIC, hidden_units=(8,))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = tf.keras.models.load_model(path)
    np.testing.assert_allclose(restored(BATCH, training=False).numpy(), model(BATCH, training=False).numpy(),
                               rtol=1e-6)
    assert restored.get_layer("numeric_embedding").means == [30.0, 1.0]


def test_ffm_and_bad_numeric_settings_are_refused():
    with pytest.raises(ValueError, match="build_ffm: the FFM of the collapse analysis takes categorical fields only"):
        build_model("ffm", [5, 6], numeric_inputs=NUMERIC)
    with pytest.raises(ValueError, match="NumericFeature 'age': `std` must be a finite number > 0, got 0"):
        NumericFeature("age", std=0)
    with pytest.raises(ValueError, match=r"numeric field names must be unique; repeated: \['a'\]"):
        NumericInputs(embedded=(NumericFeature("a"),), dense=(NumericFeature("a"),))
    assert NumericInputs.from_dict(NUMERIC.to_dict()) == NUMERIC and not NumericInputs.from_dict(None)


def test_the_collapse_report_reads_a_model_with_embedded_numeric_fields():
    from tf_multiembed.diagnostics.report import diagnose

    model = build_model("dcnv2", [5, 6, 7], scale=2, numeric_inputs=NUMERIC, hidden_units=(8,))
    report = diagnose(model, "numeric")
    # Field pairs of the 3 categorical fields, cut from the [M, 5K, 5K] cross kernel.
    assert report.pairwise.projected_abundance.shape == (2, 3, 3)
    kernel = model.get_layer("set_cross").effective_kernel(0).numpy()
    assert kernel.shape == (2, 50, 50)


@pytest.mark.parametrize("name", ZOO)
def test_every_model_pools_bags_into_one_field(name):
    model = build_model(name, [5, 6, 7], scale=2, bag_sizes=[1, 3, 1], hidden_units=(8,), numeric_inputs=NUMERIC)
    assert model.get_layer("multi_embedding").num_columns == 5
    assert tuple(model.get_layer("field_concat").output.shape)[:3] == (None, 2, 5)  # 3 fields + 2 numeric
    batch = {**BATCH, FEATURE_IDS_INPUT: np.array([[1, 2, 3, -1, 4], [0, -1, -1, -1, 0]])}
    assert np.all(np.isfinite(model(batch).numpy()))


def test_a_bag_model_round_trips_and_the_collapse_report_reads_its_fields(tmp_path):
    from tf_multiembed import artifacts
    from tf_multiembed.diagnostics.report import diagnose

    model = build_model("dcnv2", [5, 6], scale=2, bag_sizes=[1, 4], bag_combiner="sum", hidden_units=(8,),
                        field_names=["user", "tags"])
    ids = np.array([[1, 2, 3, -1, -1], [4, -1, -1, -1, -1]])
    path = str(tmp_path / "bags.keras")
    model.save(path)
    restored = tf.keras.models.load_model(path)
    np.testing.assert_allclose(restored(ids, training=False).numpy(), model(ids, training=False).numpy(), rtol=1e-6)
    assert restored.get_layer("multi_embedding").bag_combiner == "sum"
    assert diagnose(model, "bags").pairwise.projected_abundance.shape == (2, 2, 2)
    record = artifacts.model_record(model)["embedding"]
    assert record["field_names"] == ["user", "tags"] and record["bag_sizes"] == [1, 4]
    with pytest.raises(ValueError, match="build_ffm: the FFM of the collapse analysis takes single-valued fields"):
        build_model("ffm", [5, 6], bag_sizes=[1, 3])
