"""train.py's model options (issue 23): --set_interactions and --set_combiner of heterogeneous ME, the penalty
weights of DCNv2 and its variants. A real run builds the model asked for and records the options in run.json,
results.json and the export metadata; a rerun with another value is refused, one spelling the same model is not;
options a model does not take and bad values are one-line errors naming the flag."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed import artifacts
from tf_multiembed.training.config import RunConfig, comparable_settings, config_from_flags, define_flags
from tf_multiembed.training.run_directory import mismatches

REPO = pathlib.Path(__file__).resolve().parents[2]
ENVIRONMENT = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
for _variable in ("TF_CONFIG", "TF_MULTIEMBED_TRACEBACK"):
    ENVIRONMENT.pop(_variable, None)
NOISE = ("WARNING: All log messages before absl", "I0000", "W0000", "E0000", "To enable the following")


def train(workdir: pathlib.Path, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "train.py"), "--synthetic_rows=1500", "--data_dir=data", "--batch_size=256",
               "--epochs=1", "--verbose=0", *flags]
    return subprocess.run(command, cwd=workdir, env=ENVIRONMENT, capture_output=True, text=True, timeout=600)


def error_lines(completed: subprocess.CompletedProcess) -> list:
    return [line for line in completed.stderr.splitlines() if line.strip() and not line.startswith(NOISE)]


def test_a_heterogeneous_run_builds_records_and_exports_the_sets_asked_for(tmp_path):
    flags = ("--model=heterogeneous", "--scale=3", "--embedding_dim=4", "--model_dir=run")
    completed = train(tmp_path, *flags, "--set_interactions=cross,inner_product:2", "--set_combiner=gate",
                      "--export_dir=export", "--export_name=ctr")
    assert completed.returncode == 0, completed.stderr[-3000:]
    model = tf.keras.models.load_model(tmp_path / "run" / artifacts.BEST_MODEL_FILE)
    assert model.name == "me_heterogeneous_3x4"
    assert [(model.get_layer(f"group_{g}_sets").start, model.get_layer(f"group_{g}_sets").stop) for g in (0, 1)] \
        == [(0, 1), (1, 3)]
    assert type(model.get_layer("group_0_cross")).__name__ == "GroupSetCross"
    assert type(model.get_layer("group_1_inner_product")).__name__ == "SetInnerProduct"
    assert "set_mean" not in [layer.name for layer in model.layers]
    assert np.any(model.get_layer("set_gate").get_weights()[0] != 0)  # the gate left its zero start: it trained
    options = {"set_interactions": ["cross", "inner_product", "inner_product"], "set_combiner": "gate"}
    run = json.loads((tmp_path / "run" / artifacts.RUN_FILE).read_text())
    results = json.loads((tmp_path / "run" / artifacts.RESULTS_FILE).read_text())
    for record in (run["config"], results["config"]):
        assert record["set_interactions"] == "cross,inner_product:2" and record["set_combiner"] == "gate"
        assert record["space_similarity_coefficient"] is None  # not an option of this model: not set
    assert run["model"]["options"] == options
    assert artifacts.read_export_metadata(tmp_path / "export" / "ctr" / "1")["model"]["options"] == options

    # Another interaction per set is another model: refused, naming the flag.
    changed = train(tmp_path, *flags, "--set_interactions=inner_product:2,cross", "--set_combiner=gate",
                    "--export_dir=")
    assert changed.returncode == 1
    assert ("  - --set_interactions: ['cross', 'inner_product', 'inner_product'] in the run, ['inner_product', "
            "'inner_product', 'cross'] now") in changed.stderr
    assert "--set_combiner" not in changed.stderr
    # (The same model spelled otherwise is not a change: test_reruns_compare_the_options_the_model_is_built_with.)


def test_an_option_the_model_does_not_take_is_one_line_from_train_py(tmp_path):
    completed = train(tmp_path, "--model=dnn", "--set_combiner=gate")
    assert completed.returncode == 1
    lines = error_lines(completed)
    assert lines[0] == ("train.py: --set_combiner is an option of the models ['dcnv2', 'dcnv2_shared_interaction', "
                        "'dcnv2_singular_value', 'dcnv2_space_similarity', 'heterogeneous', 'heterogeneous_gated']; "
                        "--model=dnn does not take it (leave the flag out).")
    assert not (tmp_path / "data").exists()  # refused before any data was prepared


@pytest.mark.parametrize("settings, message", [
    (dict(model="heterogeneous", scale=4, set_interactions="cross:2,fm:2"),
     "unknown interaction 'fm' in --set_interactions; expected one of ['cin', 'cross', 'dnn', 'fwfm', "
     "'inner_product', 'self_attention']."),
    (dict(model="heterogeneous", scale=4, set_interactions="cross:3"),
     "--set_interactions names 3 sets ('cross:3'), the model has 4 (--scale=4); give one interaction per set."),
    (dict(model="heterogeneous", num_sets=2, set_interactions="cross"),
     "--set_interactions names 1 sets ('cross'), the model has 2 (--num_sets=2); give one interaction per set."),
    (dict(model="heterogeneous", embedding="se", scale=4, set_interactions="cross,dnn"),
     "--set_interactions names 2 sets ('cross,dnn'), the model has 1 (--embedding=se); give one interaction per "
     "set."),
    (dict(model="heterogeneous", set_interactions="cross:0,dnn:2"),
     "--set_interactions: 'cross:0' needs a whole number of sets >= 1 after ':' (e.g. cross:2)."),
    (dict(model="heterogeneous", set_interactions="cross,,dnn"),
     "--set_interactions: empty entry in 'cross,,dnn'; give comma-separated interaction names, name:count for "
     "several sets (e.g. cross:2,inner_product:2)."),
    (dict(model="dcnv2", set_interactions="cross:2"),
     "--set_interactions is an option of the models ['heterogeneous', 'heterogeneous_gated']; --model=dcnv2 does "
     "not take it (leave the flag out)."),
    (dict(model="heterogeneous_gated", space_similarity_coefficient=1e-3),
     "--space_similarity_coefficient is an option of the models ['dcnv2', 'dcnv2_shared_interaction', "
     "'dcnv2_singular_value', 'dcnv2_space_similarity']; --model=heterogeneous_gated does not take it (leave the "
     "flag out)."),
    (dict(model="dcnv2", singular_value_coefficient=-1e-4), "--singular_value_coefficient must be >= 0.0, received "
     "-0.0001."),
    (dict(model="dcnv2", set_combiner="max"), "--set_combiner must be one of ['', 'mean', 'gate'], received 'max'."),
])
def test_bad_model_options_name_the_flag(settings, message):
    with pytest.raises(ValueError) as error:
        RunConfig(**settings)
    assert str(error.value) == message


def _config(*argv: str) -> RunConfig:
    from absl import flags

    flag_values = flags.FlagValues()
    define_flags(flag_values=flag_values)
    flag_values(["train.py", *argv])
    return config_from_flags(flag_values=flag_values)


def test_penalty_weights_reach_the_model_and_override_a_variants_default():
    from tf_multiembed.training import distribute
    from tf_multiembed.training.run import build_and_compile

    info = distribute.create_strategy("default")

    def penalties(*argv: str) -> dict:
        config = _config(*argv, "--embedding_dim=4")
        model = build_and_compile(config, [5, 6, 7], ["a", "b", "c"], info)
        return {layer.name: layer.coefficient for layer in model.layers if layer.name.endswith("_penalty")}

    assert penalties("--model=dcnv2") == {}
    assert penalties("--model=dcnv2", "--space_similarity_coefficient=0.001", "--singular_value_coefficient=1e-5") \
        == {"space_similarity_penalty": 1e-3, "singular_value_penalty": 1e-5}
    assert penalties("--model=dcnv2_space_similarity") == {"space_similarity_penalty": 1e-4}
    assert penalties("--model=dcnv2_space_similarity", "--space_similarity_coefficient=0") == {}
    assert _config("--model=dcnv2_singular_value", "--singular_value_coefficient=0.01").model_options() == {
        "space_similarity_coefficient": 0.0, "singular_value_coefficient": 0.01, "set_combiner": "mean"}


def test_reruns_compare_the_options_the_model_is_built_with():
    def differences(recorded: dict, current: dict) -> list:
        def record(settings: dict) -> dict:
            return {"config": RunConfig(**settings).result_settings()}

        return mismatches(record(recorded), record(current), list(RunConfig().result_settings()),
                          resolve=comparable_settings)

    hetero = dict(model="heterogeneous_gated", scale=4)
    assert differences(hetero, {**hetero, "set_interactions": "cross:2,inner_product:2", "set_combiner": "gate"}) == []
    assert differences(hetero, {**hetero, "set_combiner": "mean"}) == ["--set_combiner: 'gate' in the run, 'mean' now"]
    variant = dict(model="dcnv2_space_similarity")
    assert differences(variant, {**variant, "space_similarity_coefficient": 1e-4}) == []
    assert differences(variant, {**variant, "space_similarity_coefficient": 1e-3}) == [
        "--space_similarity_coefficient: 0.0001 in the run, 0.001 now"]
    # A run recorded before these settings existed compares as their defaults.
    assert mismatches({"config": {key: value for key, value in RunConfig(**hetero).result_settings().items()
                                  if key not in ("set_interactions", "set_combiner")}},
                      {"config": RunConfig(**hetero, set_combiner="gate").result_settings()},
                      list(RunConfig().result_settings()),
                      defaults={"set_interactions": "", "set_combiner": ""}, resolve=comparable_settings) == []
