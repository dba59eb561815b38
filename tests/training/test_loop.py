"""The training loop: early stopping on the exact validation AUC, best weights, results, resumption."""

import json
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import log_loss, roc_auc_score

import training_fixtures as tiny
from tf_multiembed.training import PaperRecipe, compile_model, evaluate, train
from tf_multiembed.training.checkpointing import RunCheckpoints, TrainingProgress

BATCH = 64


@pytest.fixture(scope="module")
def splits():
    ids, labels = tiny.click_data(1800, seed=0)
    return {"train": (ids[:1200], labels[:1200]), "validation": (ids[1200:1500], labels[1200:1500]),
            "test": (ids[1500:], labels[1500:])}


def _train(splits, model_dir, recipe, *, callbacks=(), every_steps=None, seed=0):
    model = compile_model(tiny.tiny_model(seed), recipe)
    results = train(
        model, train_data=lambda epoch: tiny.batches(*splits["train"], BATCH, shuffle_seed=100 + epoch),
        validation_data=tiny.batches(*splits["validation"], BATCH), test_data=tiny.batches(*splits["test"], BATCH),
        model_dir=str(model_dir), recipe=recipe, checkpoint_every_steps=every_steps, verbose=0,
        config={"purpose": "test"}, extra_callbacks=list(callbacks))
    return model, results


def test_early_stopping_keeps_the_best_epoch_and_tests_it(splits, tmp_path):
    recipe = PaperRecipe(learning_rate=0.05, patience=2, max_epochs=12)  # a high rate overfits quickly
    model, results = _train(splits, tmp_path, recipe)
    history = [entry["val_auc"] for entry in results["epochs"]]
    best = int(np.argmax(history)) + 1
    assert results["best_epoch"] == best
    assert results["stopped_early"] and len(history) == best + recipe.patience < recipe.max_epochs
    # The returned model holds the best epoch's weights: it reproduces the best validation AUC and the test metrics.
    validation = evaluate(model, tiny.batches(*splits["validation"], BATCH))
    assert validation["auc"] == pytest.approx(max(history), abs=1e-12)
    test = evaluate(model, tiny.batches(*splits["test"], BATCH))
    assert results["test"] == pytest.approx(test, abs=1e-12)
    # And those values are sklearn's on the model's predictions.
    predictions = model.predict(tiny.batches(*splits["test"], BATCH), verbose=0)[:, 0]
    assert results["test"]["auc"] == pytest.approx(roc_auc_score(splits["test"][1], predictions), abs=1e-12)
    assert results["test"]["logloss"] == pytest.approx(
        log_loss(splits["test"][1], predictions.astype(np.float64)), rel=1e-6)
    # Results on disk: valid JSON (no NaN), config copied, one entry per epoch; TensorBoard scalars written.
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["config"] == {"purpose": "test"}
    assert [entry["epoch"] for entry in on_disk["epochs"]] == list(range(1, len(history) + 1))
    assert {"loss", "val_auc", "val_logloss", "seconds"} <= set(on_disk["epochs"][0])
    assert on_disk["wall_seconds"] > 0 and on_disk["runtime"]["replicas"] == 1
    for split in ("train", "validation"):
        assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "logs" / split))
    # A finished run started again trains nothing and reports the same test metrics from its best checkpoint.
    _, again = _train(splits, tmp_path, recipe, seed=1)
    assert again["epochs"] == results["epochs"] and again["test"] == pytest.approx(results["test"])


def test_larger_max_epochs_continues_an_unfinished_run(splits, tmp_path):
    _, first = _train(splits, tmp_path, PaperRecipe(learning_rate=0.003, patience=5, max_epochs=2))
    assert first["status"] == "finished" and len(first["epochs"]) == 2 and not first["stopped_early"]
    _, second = _train(splits, tmp_path, PaperRecipe(learning_rate=0.003, patience=5, max_epochs=3), seed=7)
    assert [entry["epoch"] for entry in second["epochs"]] == [1, 2, 3]
    assert second["epochs"][:2] == first["epochs"]
    assert second["resumes"] == [{"epoch": 3, "step": 0}]


class _Crash(Exception):
    pass


class _CrashAfter(tf.keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.steps:
            raise _Crash(f"simulated crash after step {self.steps}")


class _CountSteps(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


def test_a_crash_mid_epoch_resumes_from_the_last_step_checkpoint(splits, tmp_path):
    recipe = PaperRecipe(learning_rate=0.003, patience=5, max_epochs=2)
    steps_per_epoch = -(-1200 // BATCH)  # 19
    with pytest.raises(_Crash):
        _train(splits, tmp_path, recipe, callbacks=[_CrashAfter(7)], every_steps=3)
    progress = TrainingProgress()
    checkpoints = RunCheckpoints(str(tmp_path), compile_model(tiny.tiny_model(), recipe), progress)
    assert checkpoints.restore_latest()
    assert (int(progress.epoch.numpy()), int(progress.step_in_epoch.numpy())) == (0, 6)
    counter = _CountSteps()
    _, results = _train(splits, tmp_path, recipe, callbacks=[counter], every_steps=3)
    assert results["resumes"] == [{"epoch": 1, "step": 6}]
    assert counter.steps == [steps_per_epoch - 6, steps_per_epoch]  # the rest of epoch 1, then epoch 2
    assert [entry["epoch"] for entry in results["epochs"]] == [1, 2]


def test_bad_arguments_are_reported(splits, tmp_path):
    model = compile_model(tiny.tiny_model(), PaperRecipe())
    with pytest.raises(ValueError, match="checkpoint_every_steps"):
        train(model, train_data=lambda epoch: None, validation_data=None, test_data=None, model_dir=str(tmp_path),
              checkpoint_every_steps=0)
    uncompiled = tiny.tiny_model()
    with pytest.raises(ValueError, match="compile the model first"):
        train(uncompiled, train_data=lambda epoch: None, validation_data=tiny.batches(*splits["validation"], 8),
              test_data=None, model_dir=str(tmp_path))


def test_a_single_class_split_says_why_its_auc_is_nan(splits):
    model = compile_model(tiny.tiny_model(0), PaperRecipe())
    ids, labels = splits["test"]
    negatives = tiny.batches(ids[:50], np.zeros_like(labels[:50]), BATCH)
    with pytest.warns(RuntimeWarning) as caught:
        metrics = evaluate(model, negatives)
    assert np.isnan(metrics["auc"]) and np.isfinite(metrics["logloss"])
    assert [str(warning.message) for warning in caught] == [
        "The given split holds only negatives (label 0) in all its 50 rows, with no positive example, so its AUC is "
        "undefined (NaN); log loss is still computed. A split with both classes needs another --split, --split_seed "
        "or more data."]
    # The model.fit road: ExactValidation warns once, not every epoch.
    from tf_multiembed.training.callbacks import ExactValidation

    positives = tiny.batches(ids[:20], np.ones_like(labels[:20]), BATCH)
    callback = ExactValidation(positives)
    callback.set_model(model)
    with pytest.warns(RuntimeWarning) as caught:
        callback.on_epoch_end(0, {})
        callback.on_epoch_end(1, {})
    assert [str(warning.message)[:60] for warning in caught] == [
        "The validation split holds only positives (label 1) in all i"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not np.isnan(evaluate(model, tiny.batches(*splits["test"], BATCH))["auc"])  # both classes: silent
