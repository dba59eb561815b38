"""`python train.py` killed with SIGKILL mid-epoch and started again with the same command resumes from its last
step checkpoint, finishes, and exports the SavedModel."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import training_fixtures as tiny

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_sigkill_then_same_command_resumes_and_finishes(tmp_path):
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    command = [sys.executable, str(REPO / "train.py"), "--model=dnn", "--embedding=se", "--scale=1",
               "--synthetic_rows=3000", f"--data_dir={tmp_path / 'data'}", "--batch_size=64", "--epochs=3",
               "--patience=3", "--checkpoint_every_steps=5", f"--model_dir={model_dir}",
               f"--export_dir={export_dir}", "--export_name=ctr", "--verbose=0"]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    environment.pop("TF_CONFIG", None)
    first = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    killed_at = tiny.kill_after_checkpoint(first, model_dir, 5)
    assert not (model_dir / "results.json").is_file() or \
        json.loads((model_dir / "results.json").read_text())["status"] == "running"

    second = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "Resuming from" in second.stdout + second.stderr
    results = json.loads((model_dir / "results.json").read_text())
    steps_per_epoch = 38  # 2400 training rows / 64
    assert results["status"] == "finished"
    assert results["resumes"] == [{"epoch": killed_at // steps_per_epoch + 1, "step": killed_at % steps_per_epoch}]
    assert [entry["epoch"] for entry in results["epochs"]] == [1, 2, 3]
    assert results["best_epoch"] in (1, 2, 3) and 0.5 < results["test"]["auc"] <= 1.0
    assert results["config"]["checkpoint_every_steps"] == 5 and results["wall_seconds"] > 0
    assert tiny.latest_checkpoint_step(model_dir) == 3 * steps_per_epoch
    assert (export_dir / "ctr" / "1" / "saved_model.pb").is_file()
    assert (export_dir / "ctr" / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_help_documents_every_setting_of_the_run_configuration():
    from tf_multiembed.training.config import RunConfig, setting_names

    output = subprocess.run([sys.executable, str(REPO / "train.py"), "--help"], capture_output=True, text=True,
                            timeout=120).stdout
    for flag in setting_names():
        assert f"--{flag}:" in output or f"--[no]{flag}:" in output, flag
    assert "(default: '2048')" in output.split("--batch_size:")[1].split("--")[0]  # defaults from RunConfig
    assert RunConfig().batch_size == 2048


def test_bad_configurations_fail_with_a_clear_message(tmp_path):
    from tf_multiembed.training.config import RunConfig

    with pytest.raises(ValueError, match="--data_path is required for dataset 'criteo'"):
        RunConfig(dataset="criteo", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="--schema is required for dataset 'custom' \\(or its synonym 'csv'\\)"):
        RunConfig(dataset="csv", data_path="x.csv", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="--dataset must be one of .*'custom'.*, received 'parquet'"):
        RunConfig(dataset="parquet", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="--export_name must be a plain directory name"):
        RunConfig(export_name="../served")
    with pytest.raises(ValueError, match="--batch_size must be >= 1, received 0"):
        RunConfig(batch_size=0)
    with pytest.raises(ValueError, match="Unknown model name 'dcn'"):
        RunConfig(model="dcn")
    assert RunConfig(dataset="csv", data_path="x.csv", schema="s.json").dataset == "custom"
    for bad in ("--strategy=tpuu", "--export_name=.hidden"):  # refused before any data or training work
        output = subprocess.run([sys.executable, str(REPO / "train.py"), bad], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        assert output.returncode != 0 and bad.split("=")[0] in output.stderr
        assert not (tmp_path / "runs").exists()


def test_flags_and_presets_come_from_the_one_declaration():
    from absl import flags

    from tf_multiembed.training.config import PRESETS, RunConfig, config_from_flags, define_flags

    values = flags.FlagValues()
    define_flags(["batch_size", "embedding_updates", "shuffle", "preset", "threads", "min_count"], flag_values=values)
    values(["benchmark", "--preset=paper", "--batch_size=512"])
    config = config_from_flags(["batch_size", "embedding_updates", "shuffle", "preset", "threads", "min_count"],
                               flag_values=values, model="dnn")
    # The preset sets the paper's protocol; an explicit flag wins over it; unset settings keep RunConfig's defaults.
    assert (config.embedding_updates, config.shuffle, config.batch_size, config.preset) == ("dense", False, 512,
                                                                                            "paper")
    assert config.model == "dnn" and config.threads == 0 and config.min_count is None
    assert RunConfig.from_preset("paper") == RunConfig(**PRESETS["paper"], preset="paper")
    assert values["threads"].default == RunConfig().threads and values["batch_size"].help.startswith("Global batch")


def test_run_in_mixed_bfloat16_with_dense_updates_trains_and_exports_float32(tmp_path):
    import tensorflow as tf

    from tf_multiembed.training.run import RunConfig, run

    config = RunConfig(synthetic_rows=3000, data_dir=str(tmp_path / "data"), model_dir=str(tmp_path / "run"),
                       export_dir=str(tmp_path / "export"), model="dnn", scale=2, epochs=2, batch_size=256,
                       embedding_updates="dense", mixed_precision="mixed_bfloat16", verbose=0)
    try:
        results, export_path = run(config)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert results["status"] == "finished" and 0.5 < results["test"]["auc"] <= 1.0
    assert results["config"]["embedding_updates"] == "dense"
    assert results["config"]["mixed_precision"] == "mixed_bfloat16"
    signature = tf.saved_model.load(str(export_path)).signatures["serving_default"]
    assert all(spec.dtype == tf.float32 for spec in signature.structured_outputs.values())
