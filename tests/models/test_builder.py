"""The model zoo: scale rules, closed-form parameter counts of the paper's models, SavedModel round trips, errors.

The checks every registered model gets (registration, serialization, parameter counts) are in test_registry.py."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.models import PAPER_MODELS, available_models, build_model, resolve_embedding_shape

# The Criteo-like cardinalities of ../shared/data/criteo_shape.json (39 fields: 13 bucketed integers, 26 categoricals).
CRITEO_VOCABULARY_SIZES = [
    48, 98, 119, 46, 220, 110, 78, 54, 96, 9, 33, 40, 75, 1445, 556, 190000, 120000, 305, 24, 12517, 633, 4, 93145,
    5683, 185000, 3194, 27, 14992, 175000, 11, 5652, 2173, 5, 180000, 18, 16, 90000, 105, 61000,
]
SMALL_VOCABULARY_SIZES = [3, 5, 7, 4]
HIDDEN = 400


def _mlp_params(fan_in, width, num_sets=1):
    """Linear + BatchNorm (gamma, beta, moving mean and variance) per set."""
    return num_sets * (fan_in * width + width + 4 * width)


def _head_params():
    """Shared head: Linear(400, 400) + BN, then Linear(400, 1)."""
    return _mlp_params(HIDDEN, HIDDEN) + HIDDEN + 1


def expected_parameters(name, vocabulary_sizes, num_sets, dim):
    """Closed-form parameter count of each model (paper.md §2), written independently of the builders."""
    n, v, m = len(vocabulary_sizes), sum(vocabulary_sizes), num_sets
    d = n * dim
    pairs = n * (n - 1) // 2
    embedding = v * m * dim
    dnn_branch = _mlp_params(d, HIDDEN, m) + _head_params()
    if name == "dnn":
        return embedding + dnn_branch
    if name == "dcnv2":
        return embedding + m * 4 * (d * d + d) + dnn_branch
    if name == "ipnn":
        width = pairs + (d if m == 1 else 0)
        return embedding + _mlp_params(width, HIDDEN, m) + _head_params()
    if name == "nfwfm":
        return embedding + m * n * n + 4 * m * dim + _mlp_params(dim, HIDDEN, m) + _head_params()
    if name == "xdeepfm":
        cin = m * (n * n * 16 + 16) + m * (n * 16 * 16 + 16) + 32 + 1
        return embedding + cin + dnn_branch
    if name == "finalmlp":
        stream = _mlp_params(d, HIDDEN, m) + _mlp_params(HIDDEN, HIDDEN, m)
        return embedding + 2 * stream + HIDDEN + HIDDEN + HIDDEN * HIDDEN + 1
    if name == "autoint":
        attention = m * 4 * (dim * 32) + 2 * m * 4 * (32 * 32) + n * 32 + 1
        return embedding + attention + dnn_branch
    raise AssertionError(name)


def test_registry_lists_every_paper_model():
    assert set(PAPER_MODELS) <= set(available_models())


@pytest.mark.parametrize("name, scale, multi, expected", [
    ("dcnv2", 1, False, (1, 10)), ("dcnv2", 1, True, (1, 10)), ("dcnv2", 4, False, (1, 40)),
    ("dcnv2", 4, True, (4, 10)), ("dnn", 10, False, (1, 100)), ("dnn", 10, True, (10, 10)),
    ("nfwfm", 2, False, (1, 100)), ("nfwfm", 10, True, (10, 50)),
])
def test_scale_rule_se_widens_me_adds_sets(name, scale, multi, expected):
    assert resolve_embedding_shape(name, scale=scale, multi_embedding=multi) == expected


def test_explicit_sets_and_width():
    assert resolve_embedding_shape("dnn", num_sets=3, embedding_dim=16) == (3, 16)
    assert resolve_embedding_shape("dnn", scale=3, num_sets=3) == (3, 10)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="dcn"), r"Unknown model name 'dcn'; expected one of \[.*'dcnv2'"),
    (dict(name="dnn", scale=0), r"`scale` must be a positive integer, received 0"),
    (dict(name="dnn", embedding_dim=-1), r"`embedding_dim` must be a positive integer, received -1"),
    (dict(name="dnn", num_sets=0), r"`num_sets` must be a positive integer, received 0"),
    (dict(name="dnn", num_sets=4, scale=2), r"num_sets=4 and scale=2 disagree"),
    (dict(name="dnn", num_sets=2, multi_embedding=False), r"multi_embedding=False means one embedding set"),
])
def test_invalid_builder_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(vocabulary_sizes=SMALL_VOCABULARY_SIZES, **kwargs)


def test_invalid_vocabulary_and_field_names():
    with pytest.raises(ValueError, match=r"`vocabulary_sizes\[2\]` must be a positive integer, received 0"):
        build_model("dnn", [3, 4, 0])
    with pytest.raises(ValueError, match=r"`field_names` has 1 entries but `vocabulary_sizes` has 4"):
        build_model("dnn", SMALL_VOCABULARY_SIZES, field_names=["a"])
    with pytest.raises(ValueError, match=r"`hidden_units` must not be empty"):
        build_model("dnn", SMALL_VOCABULARY_SIZES, hidden_units=())


def test_ids_with_the_wrong_number_of_fields_are_rejected():
    model = build_model("dnn", SMALL_VOCABULARY_SIZES)
    with pytest.raises(ValueError, match=r"expected.*shape"):
        model(np.zeros((2, 3), "int64"))


@pytest.mark.parametrize("name", PAPER_MODELS)
@pytest.mark.parametrize("scale", [1, 2, 4, 10])
def test_parameter_counts_match_closed_form_for_39_fields(name, scale):
    vocabulary_sizes = list(range(2, 41))  # 39 fields, as in Criteo; the interaction sizes depend on N and K only
    for multi in (False, True):
        num_sets, dim = resolve_embedding_shape(name, scale=scale, multi_embedding=multi)
        model = build_model(name, vocabulary_sizes, scale=scale, multi_embedding=multi)
        assert model.count_params() == expected_parameters(name, vocabulary_sizes, num_sets, dim), (name, multi)


def test_dcnv2_parameter_counts_at_criteo_cardinalities_10x():
    n, v = 39, sum(CRITEO_VOCABULARY_SIZES)
    se = build_model("dcnv2", CRITEO_VOCABULARY_SIZES, scale=10, multi_embedding=False)
    assert se.get_layer("multi_embedding").embeddings.shape == (v, 100)
    assert sum(int(np.prod(k.shape)) for k in se.get_layer("set_cross").kernels) == 4 * (n * 10 * 10) ** 2
    assert se.count_params() == expected_parameters("dcnv2", CRITEO_VOCABULARY_SIZES, 1, 100)
    del se
    me = build_model("dcnv2", CRITEO_VOCABULARY_SIZES, scale=10, multi_embedding=True)
    assert me.get_layer("multi_embedding").embeddings.shape == (v, 100)  # equal embedding parameters
    assert sum(int(np.prod(k.shape)) for k in me.get_layer("set_cross").kernels) == 10 * 4 * (n * 10) ** 2
    assert me.count_params() == expected_parameters("dcnv2", CRITEO_VOCABULARY_SIZES, 10, 10)


def _ids(num_rows, vocabulary_sizes, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, size, num_rows) for size in vocabulary_sizes], axis=1).astype("int64")


def _zoo(scale=2):
    for name in PAPER_MODELS:
        for multi in (False, True):
            yield name, multi, build_model(name, SMALL_VOCABULARY_SIZES, scale=scale, multi_embedding=multi,
                                           hidden_units=(16, 8), dropout=0.2)


def test_exported_savedmodels_reload_in_a_fresh_process(tmp_path):
    ids = _ids(16, SMALL_VOCABULARY_SIZES, seed=1)
    np.save(tmp_path / "ids.npy", ids)
    names = []
    for _name, _multi, model in _zoo():
        model.export(str(tmp_path / model.name))  # both runtimes: a SavedModel with `serving_default`
        np.save(tmp_path / f"{model.name}.npy", model.predict(ids, verbose=0))
        names.append(model.name)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        ids = np.load({str(tmp_path / 'ids.npy')!r})
        for name in {names!r}:
            loaded = tf.saved_model.load({str(tmp_path)!r} + "/" + name)
            outputs = loaded.signatures["serving_default"](feature_ids=tf.constant(ids))
            (probability,) = outputs.values()
            expected = np.load({str(tmp_path)!r} + "/" + name + ".npy")
            np.testing.assert_allclose(probability.numpy(), expected, rtol=1e-5, atol=1e-6)
        print("reloaded", len({names!r}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"reloaded {len(names)}" in result.stdout


def test_me_and_se_models_learn_a_planted_interaction():
    rng = np.random.default_rng(0)
    sizes = [20, 20, 5]
    ids = _ids(4096, sizes, seed=3)
    # The click depends on an interaction of fields 0 and 1 only.
    table = rng.normal(size=(20, 20))
    labels = (rng.uniform(size=4096) < 1 / (1 + np.exp(-2 * table[ids[:, 0], ids[:, 1]]))).astype("float32")
    for multi in (False, True):
        tf.keras.utils.set_random_seed(0)
        model = build_model("dcnv2", sizes, scale=2, multi_embedding=multi, hidden_units=(32, 16))
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                      metrics=[tf.keras.metrics.AUC(name="auc")])
        history = model.fit(ids[:3072], labels[:3072], epochs=10, batch_size=256, verbose=0,
                            validation_data=(ids[3072:], labels[3072:]))
        assert history.history["val_auc"][-1] > 0.75, (multi, history.history["val_auc"])


def test_weights_kept_only_in_a_python_list_reach_checkpoints(tmp_path):
    """The trap of a new block: Keras 3 tracks list-held weights for `.keras` files only; the zoo's
    `probability_model` makes them attributes, so a checkpoint (and the package's ModelState) holds them."""
    from tf_multiembed.models import common

    class ListedScale(tf.keras.layers.Layer):
        def build(self, input_shape):
            self.scales = [self.add_weight(name=f"scale_{index}", shape=(int(input_shape[-1]),), initializer="ones")
                           for index in range(3)]

        def call(self, inputs):
            return inputs * self.scales[0] * self.scales[1] * self.scales[2]

    inputs, embeddings = common.embedded_inputs(SMALL_VOCABULARY_SIZES, 2, 3)
    features = ListedScale(name="listed_scale")(tf.keras.layers.Reshape((2, 12))(embeddings))
    logit = common.projection_mean_head(features, (8, 4), 0.0, 0.9, 1e-5)
    model = common.probability_model(inputs, logit, "listed")
    layer = model.get_layer("listed_scale")
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":  # legacy tf-keras tracks lists itself: nothing to add there
        assert layer.listed__listed_scale__scale_1 is layer.scales[1]
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "listed"))
    saved = sum(int(np.prod(shape)) for name, shape in tf.train.list_variables(path)
                if "VARIABLE_VALUE" in name and "seed_generator" not in name)
    assert saved == model.count_params()
    for variable in layer.scales:
        variable.assign(variable * 2.0)
    tf.train.Checkpoint(model=model).read(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(layer.scales[2].numpy(), np.ones(12))  # restored, not left at 2
