"""The checkpoint users ask for (`--monitor`) and calibrated probabilities (`--calibration`): the monitor's scores and
the kept epoch on hand-made histories, ECE and the calibration ratio by hand, Platt scaling against its closed form,
isotonic regression by hand, the serving graph's calibrators equal to NumPy's, and the road: a real `train.py` run with
`--monitor=logloss --calibration=platt` whose export serves the offline calibrated predictions of raw rows."""

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.calibration import (IsotonicCalibrator, PlattCalibrator, calibration_ratio, calibrator_from_dict,
                                       expected_calibration_error, fit_calibrator)
from tf_multiembed.training import EarlyStoppingRule
from tf_multiembed.training.early_stopping import Monitor

# A hand-made validation history: AUC keeps rising while the log loss turns after epoch 2 (the over-confident ME
# models of the issue).
HISTORY = [{"val_auc": 0.70, "val_logloss": 0.50}, {"val_auc": 0.72, "val_logloss": 0.45},
           {"val_auc": 0.73, "val_logloss": 0.47}, {"val_auc": 0.74, "val_logloss": 0.60},
           {"val_auc": 0.735, "val_logloss": 0.70}]


def _kept_epoch(monitor: Monitor, patience: int = 3) -> int:
    rule = EarlyStoppingRule(patience)
    for epoch, logs in enumerate(HISTORY, start=1):
        rule.update(epoch, monitor.score(logs))
        if rule.should_stop:
            break
    return rule.best_epoch_number


def test_monitor_keeps_the_epoch_its_rule_names():
    assert _kept_epoch(Monitor("auc")) == 4  # highest AUC
    assert _kept_epoch(Monitor("logloss")) == 2  # lowest log loss
    # AUC - 0.5 x log loss: 0.45, 0.495, 0.495, 0.44, 0.385 -> epoch 2 (epoch 3 ties, a tie is no improvement).
    assert _kept_epoch(Monitor("auc_logloss", 0.5)) == 2
    assert _kept_epoch(Monitor("auc_logloss", 0.0)) == 4
    # With patience 1 the log-loss rule stops at epoch 3.
    assert _kept_epoch(Monitor("logloss"), patience=1) == 2


def test_monitor_describes_why_and_refuses_bad_settings():
    assert Monitor("logloss").describe(HISTORY[1]) == "lowest validation log loss (0.450000)"
    assert Monitor("auc").describe(HISTORY[0]) == "highest validation AUC (0.700000)"
    assert Monitor("auc_logloss", 0.5).describe(HISTORY[1]) == "highest validation AUC - 0.5 x log loss (0.495000)"
    assert math.isnan(Monitor("logloss").score({"val_auc": 0.7}))
    with pytest.raises(ValueError, match=r"`rule` must be one of \['auc', 'logloss', 'auc_logloss'\], received 'loss'"):
        Monitor("loss")
    with pytest.raises(ValueError, match="`logloss_weight` must be a finite number >= 0, received -1"):
        Monitor("auc_logloss", -1)


def test_run_config_monitor_flags_reach_the_recipe_and_the_paper_preset_keeps_auc():
    from tf_multiembed.training import RunConfig

    recipe = RunConfig(monitor="auc_logloss", monitor_logloss_weight=0.25).recipe()
    assert recipe.monitor_rule() == Monitor("auc_logloss", 0.25)
    assert RunConfig.from_preset("paper").recipe().monitor_rule() == Monitor("auc")
    with pytest.raises(ValueError, match="--monitor must be one of"):
        RunConfig(monitor="accuracy")
    with pytest.raises(ValueError, match="--calibration must be one of"):
        RunConfig(calibration="beta")


def test_expected_calibration_error_and_ratio_by_hand():
    labels = [0, 1, 0, 0, 1, 1, 1]
    predictions = [0.9, 0.1, 0.2, 0.3, 0.6, 0.8, 0.7]
    # Sorted predictions 0.1 0.2 0.3 | 0.6 0.7 | 0.8 0.9 (np.array_split: 3, 2, 2) with labels 1 0 0 | 1 1 | 1 0:
    # |0.2 - 1/3| * 3 + |0.65 - 1| * 2 + |0.85 - 0.5| * 2 = 0.4 + 0.7 + 0.7 = 1.8, over 7 examples.
    assert expected_calibration_error(labels, predictions, num_bins=3) == pytest.approx(1.8 / 7, abs=1e-12)
    assert calibration_ratio(labels, predictions) == pytest.approx((3.6 / 7) / (4 / 7))
    assert math.isnan(calibration_ratio([0, 0], [0.1, 0.2]))
    with pytest.raises(ValueError, match="one value per example, received 2 labels and 3 predictions"):
        expected_calibration_error([0, 1], [0.1, 0.2, 0.3])


def test_exact_metrics_of_every_evaluation_carry_calibration():
    from tf_multiembed.training import exact_metrics

    metrics = exact_metrics(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.2, 0.6, 0.8, 0.4]), prefix="val_")
    assert set(metrics) == {"val_auc", "val_logloss", "val_ece", "val_calibration_ratio"}
    assert metrics["val_calibration_ratio"] == pytest.approx(1.0)
    # Four bins of one: |0.2-0| + |0.4-0| + |0.6-1| + |0.8-1| = 1.2, over 4.
    assert metrics["val_ece"] == pytest.approx(0.3)


def test_platt_scaling_recovers_the_closed_form():
    # Two logit values with observed rates 0.2 and 0.7: the likelihood is maximal where sigmoid(a x + b) equals each
    # rate, so a = (logit 0.7 - logit 0.2) / 2 and b = (logit 0.7 + logit 0.2) / 2.
    logits = np.array([-1.0] * 10 + [1.0] * 10)
    labels = np.array([1] * 2 + [0] * 8 + [1] * 7 + [0] * 3, np.float64)
    calibrator = PlattCalibrator.fit(labels, 1 / (1 + np.exp(-logits)))

    def logit(p):
        return math.log(p / (1 - p))

    assert calibrator.slope == pytest.approx((logit(0.7) - logit(0.2)) / 2, abs=1e-6)
    assert calibrator.intercept == pytest.approx((logit(0.7) + logit(0.2)) / 2, abs=1e-6)
    np.testing.assert_allclose(calibrator.apply([1 / (1 + math.e), 1 / (1 + math.exp(-1))]), [0.2, 0.7], atol=1e-6)


def test_platt_scaling_of_an_overconfident_model_lowers_its_log_loss_and_keeps_its_auc():
    from tf_multiembed.training import exact_auc, log_loss

    rng = np.random.default_rng(0)
    true_logit = rng.normal(size=5000)
    labels = (rng.random(5000) < 1 / (1 + np.exp(-true_logit))).astype(np.float64)
    overconfident = 1 / (1 + np.exp(-(3 * true_logit + 1)))
    calibrator = fit_calibrator("platt", labels, overconfident)
    assert calibrator.slope == pytest.approx(1 / 3, abs=0.05) and calibrator.intercept == pytest.approx(-1 / 3, abs=0.1)
    calibrated = calibrator.apply(overconfident)
    assert float(log_loss(labels, calibrated)) < float(log_loss(labels, overconfident)) - 0.1
    assert float(exact_auc(labels, calibrated)) == pytest.approx(float(exact_auc(labels, overconfident)), abs=1e-12)
    assert expected_calibration_error(labels, calibrated) < 0.03 < expected_calibration_error(labels, overconfident)


def test_isotonic_regression_by_hand():
    # Pool adjacent violators: 0.1:0 | 0.2:1 and 0.3:0 pool to 0.5 | 0.4 (twice):1 | 0.5:0 pools with it to 2/3,
    # 0.6:0 to 0.5, which is not above the block before: all of 0.2..0.6 pool to 3/6. Blocks keep their ends.
    labels = [0, 1, 0, 1, 1, 0, 0]
    predictions = [0.1, 0.2, 0.3, 0.4, 0.4, 0.5, 0.6]
    calibrator = IsotonicCalibrator.fit(labels, predictions)
    assert calibrator.inputs == (0.1, 0.2, 0.6) and calibrator.outputs == (0.0, 0.5, 0.5)
    np.testing.assert_allclose(calibrator.apply([0.0, 0.15, 0.4, 0.9]), [0.0, 0.25, 0.5, 0.5])
    # Isotonic least squares keeps the mean: the calibrated training predictions sum to the clicks.
    assert calibrator.apply(predictions).sum() == pytest.approx(sum(labels))
    with pytest.raises(ValueError, match="both clicks and non-clicks, received 3 examples of one class"):
        IsotonicCalibrator.fit([1, 1, 1], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("calibrator", [PlattCalibrator(0.6, -0.3),
                                        IsotonicCalibrator((0.1, 0.2, 0.6), (0.0, 0.5, 0.9)),
                                        IsotonicCalibrator((0.4,), (0.3,))], ids=["platt", "isotonic", "one_point"])
def test_the_serving_graph_applies_the_calibrator_as_numpy_does(calibrator):
    probabilities = np.array([0.0, 1e-9, 0.05, 0.1, 0.15, 0.2, 0.33, 0.6, 0.7, 1.0], np.float32)
    served = tf.function(calibrator.tf_apply)(tf.constant(probabilities)).numpy()
    assert served.dtype == np.float32
    np.testing.assert_allclose(served, calibrator.apply(probabilities), rtol=1e-6, atol=1e-7)
    assert calibrator_from_dict(json.loads(json.dumps(calibrator.to_dict()))) == calibrator


# --- the road: train.py -> results and export -> raw rows through serving_default -------------------------------

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_run_contract import ENVIRONMENT, SCHEMA, write_clicks  # noqa: E402


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("calibrated")
    write_clicks(workdir / "clicks.csv", rows=960)
    (workdir / "schema.json").write_text(json.dumps(SCHEMA))
    command = [sys.executable, str(REPO / "train.py"), "--dataset=custom", "--schema=schema.json",
               "--data_path=clicks.csv", "--split=time", "--model=dnn", "--scale=2", "--embedding_dim=4",
               "--batch_size=64", "--epochs=4", "--patience=4", "--learning_rate=0.01", "--monitor=logloss",
               "--calibration=platt", "--verbose=1"]
    completed = subprocess.run(command, cwd=workdir, env=ENVIRONMENT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return workdir, completed.stdout


def test_monitor_logloss_run_keeps_the_lowest_log_loss_epoch_and_says_why(calibrated_run):
    workdir, stdout = calibrated_run
    results = json.loads((workdir / "runs" / "clicks-me_dnn_2x4" / "results.json").read_text())
    losses = {entry["epoch"]: entry["val_logloss"] for entry in results["epochs"]}
    kept = min(losses, key=losses.get)
    assert results["best_epoch"] == kept == results["kept_checkpoint"]["epoch"]
    assert results["kept_checkpoint"]["reason"] == f"lowest validation log loss ({losses[kept]:.6f})"
    assert all({"val_ece", "val_calibration_ratio"} <= set(entry) for entry in results["epochs"])
    assert {"ece", "calibration_ratio"} <= set(results["test"])
    assert f"Kept epoch {kept}, lowest validation log loss ({losses[kept]:.6f}): validation AUC" in stdout
    assert "Test after platt calibration (fitted on validation)" in stdout


def test_calibration_record_and_export_serve_the_offline_calibrated_predictions(calibrated_run):
    from tf_multiembed.data import Schema, prepare_dataset
    from tf_multiembed.serving import RequestBuilder, decode_rest_request
    from tf_multiembed.serving.examples import raw_features_from_files

    import tf_multiembed.models  # noqa: F401  (registers the layers best.keras is made of)

    workdir, _ = calibrated_run
    run_dir, export = workdir / "runs" / "clicks-me_dnn_2x4", workdir / "export" / "clicks-me_dnn_2x4" / "1"
    results = json.loads((run_dir / "results.json").read_text())
    record = results["calibration"]
    assert record["kind"] == "platt" and record["fitted_on"] == "validation"
    assert record["parameters"]["slope"] > 0  # monotone: the AUC cannot move
    assert record["test"]["after"]["auc"] == pytest.approx(record["test"]["before"]["auc"], abs=1e-12)
    assert record["test"]["before"] == pytest.approx(results["test"])
    # Fitted on validation by maximum likelihood: the validation log loss cannot get worse.
    assert record["validation"]["after"]["logloss"] <= record["validation"]["before"]["logloss"] + 1e-12
    calibrator = calibrator_from_dict(record["parameters"])

    metadata = json.loads((export / "assets.extra" / "tf_multiembed.json").read_text())
    assert metadata["calibration"] == record["parameters"]
    assert metadata["kept_checkpoint"] == results["kept_checkpoint"]

    schema = Schema.from_file(workdir / "schema.json")
    data = prepare_dataset(schema, workdir / "clicks.csv", workdir / "runs" / "data", split="time")
    ids = data.numpy_split("train")[0][:32]  # the time split: the file's first rows, in order
    best = tf.keras.models.load_model(run_dir / "best.keras")
    offline = best.predict(ids, verbose=0)[:, 0]
    builder = RequestBuilder.from_schema(schema)
    features = raw_features_from_files(schema, workdir / "clicks.csv", 32)
    loaded = tf.saved_model.load(str(export))
    served = loaded.signatures["serving_default"](
        **decode_rest_request(json.dumps(builder.rest_columns(features)), builder.input_specs))
    np.testing.assert_allclose(served["uncalibrated_click_probability"].numpy(), offline, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(served["click_probability"].numpy(), calibrator.apply(offline), rtol=1e-5, atol=1e-6)
