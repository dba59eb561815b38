"""The metrics, the optimizer and the loop under legacy tf-keras (`TF_USE_LEGACY_KERAS=1`)."""

import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import log_loss, roc_auc_score

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import training_fixtures as tiny  # noqa: E402
from tf_multiembed import compat  # noqa: E402
from tf_multiembed.training import (CoupledL2Adam, ExactAUC, LogLoss, PaperRecipe, compile_model,  # noqa: E402
                                    train)


def test_runtime_is_legacy():
    assert compat.is_legacy_keras() and compat.keras_version().startswith("2.")
    assert not compat.apply_keras_multi_worker_fixes()  # nothing to patch in tf-keras


def test_metrics_in_compile_equal_sklearn():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(1000, 4)).astype(np.float32)
    labels = (features[:, 0] + rng.normal(size=1000) > 0).astype(np.float32)
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, activation="sigmoid", input_shape=(4,))])
    model.compile(CoupledL2Adam(), "binary_crossentropy", metrics=[ExactAUC(), LogLoss()])
    history = model.fit(features, labels, batch_size=128, epochs=1, validation_data=(features, labels), verbose=0)
    assert {"auc", "logloss", "val_auc", "val_logloss"} <= set(history.history)
    evaluated = model.evaluate(features, labels, batch_size=128, return_dict=True, verbose=0)
    predictions = model.predict(features, batch_size=128, verbose=0)[:, 0]
    assert evaluated["auc"] == pytest.approx(roc_auc_score(labels, predictions), abs=1e-6)
    assert evaluated["logloss"] == pytest.approx(log_loss(labels, predictions.astype(np.float64)), rel=1e-5)


def test_coupled_l2_step_matches_plain_adam_on_the_l2_gradient():
    variable = tf.Variable([[1.0, -2.0], [0.5, 3.0]])
    CoupledL2Adam(learning_rate=0.1, l2=0.5).apply_gradients([(tf.zeros((2, 2)), variable)])
    reference = tf.Variable([[1.0, -2.0], [0.5, 3.0]])
    tf.keras.optimizers.Adam(learning_rate=0.1, epsilon=1e-8).apply_gradients(
        [(0.5 * tf.constant([[1.0, -2.0], [0.5, 3.0]]), reference)])
    # Fused kernel vs Keras' op sequence: float32 rounding.
    np.testing.assert_allclose(variable.numpy(), reference.numpy(), rtol=1e-5)


def test_loop_trains_and_resumes(tmp_path):
    ids, labels = tiny.click_data(900, seed=0)

    def run(max_epochs):
        recipe = PaperRecipe(learning_rate=0.01, patience=5, max_epochs=max_epochs)
        model = compile_model(tiny.tiny_model(0), recipe)
        return train(model, train_data=lambda epoch: tiny.batches(ids[:600], labels[:600], 64, shuffle_seed=epoch),
                     validation_data=tiny.batches(ids[600:750], labels[600:750], 64),
                     test_data=tiny.batches(ids[750:], labels[750:], 64), model_dir=str(tmp_path), recipe=recipe,
                     verbose=0)

    first = run(1)
    second = run(2)
    assert [entry["epoch"] for entry in second["epochs"]] == [1, 2] and second["epochs"][0] == first["epochs"][0]
    assert second["resumes"] == [{"epoch": 2, "step": 0}] and second["runtime"]["legacy_keras"]
    assert 0.5 < second["test"]["auc"] <= 1.0


def test_checkpoints_restore_by_object_graph_under_tf_keras(tmp_path):
    import test_checkpoint_object_graph as object_graph

    object_graph.test_a_reordered_construction_restores_each_weight_into_its_own_place(tmp_path)


@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_embedding_update_modes_under_tf_keras(mode):
    looked_up, changed, moved_moment = tiny.rows_changed_by_one_fit_step(mode)
    expected = looked_up if mode == "sparse" else set(range(sum(tiny.VOCABULARY_SIZES)))
    assert len(looked_up) < sum(tiny.VOCABULARY_SIZES) and changed == expected and moved_moment == expected
