"""Strategies: one device vs MirroredStrategy (2 logical CPUs) vs MultiWorkerMirroredStrategy (2 processes on
localhost), the Keras 3 compat shims, and the strategy factory's errors.

Tolerance: replicas normalise with their half of each batch's batch-norm statistics (single device: the whole
batch), so trajectories differ slightly; multi-replica runs must match the single-device run within 0.02 in
validation/test AUC and test log loss. Multi-worker workers must end bit-identical.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from tf_multiembed import compat
from tf_multiembed.training import distribute

SCRIPT = pathlib.Path(__file__).resolve().parent / "distributed_script.py"
TOLERANCE = 0.02


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("localhost", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def _environment(**extra):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    environment.pop("TF_CONFIG", None)
    environment.update(extra)
    return environment


@pytest.fixture(scope="module")
def distributed_runs(tmp_path_factory):
    """Runs the local (single + mirrored) script and two multi-worker processes at the same time."""
    output = tmp_path_factory.mktemp("distributed")
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = [subprocess.Popen([sys.executable, str(SCRIPT), "local", str(output)], env=_environment(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)]
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, str(SCRIPT), "worker", str(output), str(output / "multi_worker_run")],
            env=_environment(TF_CONFIG=config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    logs = []
    for process in processes:
        try:
            stdout, _ = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        logs.append(stdout.decode(errors="replace")[-3000:])
        assert process.returncode == 0, "\n".join(logs)
    return output


def _close(a, b):
    return abs(a - b) <= TOLERANCE


def test_mirrored_over_two_cpu_devices_matches_one_device(distributed_runs):
    report = json.loads((distributed_runs / "local.json").read_text())
    single, mirrored = report["single"], report["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert _close(single["val_auc"][-1], mirrored["val_auc"][-1])
    assert _close(single["test"]["auc"], mirrored["test"]["auc"])
    assert _close(single["test"]["logloss"], mirrored["test"]["logloss"])
    assert single["test"]["auc"] > 0.75  # the tiny task is learnable: the comparison is not between two coin flips


def test_keras3_batch_norm_statistics_are_synchronised_across_replicas(distributed_runs):
    report = json.loads((distributed_runs / "local.json").read_text())
    assert report["moving_statistics"] > 0 and report["replica_copies_equal"]


@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize("gradient", ["full", "gather"])
def test_two_replicas_take_the_single_device_step_in_both_update_modes(distributed_runs, mode, gradient):
    # L2 is added once after the replica sum; in sparse mode a row looked up by both replicas is updated once.
    report = json.loads((distributed_runs / "local.json").read_text())
    single, mirrored = report[f"l2_single_{mode}_{gradient}"], report[f"l2_mirrored_{mode}_{gradient}"]
    np.testing.assert_allclose(mirrored, single, rtol=1e-6)
    if gradient == "gather":
        initial = np.array([[1.0, -2.0], [0.5, 3.0], [2.0, 1.0], [-1.0, 0.5]])
        untouched = np.isclose(np.array(single)[[0, 2]], initial[[0, 2]]).all()
        assert untouched == (mode == "sparse")  # dense mode decays and moves rows 0 and 2 as well


def test_string_inputs_under_mirrored_strategy_are_refused_with_the_upstream_issue(distributed_runs):
    message = json.loads((distributed_runs / "local.json").read_text())["string_input_error"]
    assert "tensorflow/issues/80951" in message and "'city'" in message


def test_multi_worker_replicas_end_identical_and_match_one_device(distributed_runs):
    chief = json.loads((distributed_runs / "worker_0.json").read_text())
    other = json.loads((distributed_runs / "worker_1.json").read_text())
    assert chief["is_chief"] and not other["is_chief"] and chief["replicas"] == 2
    assert chief["val_auc"] == other["val_auc"] and chief["test"] == other["test"]
    weights = [np.load(distributed_runs / f"worker_{index}.npz") for index in range(2)]
    assert len(weights[0].files) > 10
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    single = json.loads((distributed_runs / "local.json").read_text())["single"]
    assert _close(single["test"]["auc"], chief["test"]["auc"])
    assert _close(single["test"]["logloss"], chief["test"]["logloss"])
    # Only the chief writes the run directory; the other worker's scratch copies are gone.
    run = distributed_runs / "multi_worker_run"
    assert (run / "results.json").is_file() and not (run / ".scratch").exists()


def test_multi_worker_fix_is_guarded_by_runtime_and_strategy():
    assert not compat.is_legacy_keras()
    assert not compat.needs_multi_worker_fixes(distribute.create_strategy("default").strategy)
    assert compat.replica_statistics_sync(distribute.create_strategy("default").strategy) is None


def test_strategy_factory_errors(monkeypatch):
    with pytest.raises(ValueError, match="Unknown strategy 'gpu'"):
        distribute.create_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribute.create_strategy("multi_worker")
    with pytest.raises(RuntimeError, match="TF_USE_LEGACY_KERAS=1"):
        distribute.create_strategy("parameter_server")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.create_strategy("multi_worker")


def test_multi_worker_roles_from_tf_config():
    cluster = {"worker": ["a:1", "b:2"]}
    assert distribute._multi_worker_role({"cluster": cluster, "task": {"type": "worker", "index": 0}}) == \
        (True, "worker_0")
    assert distribute._multi_worker_role({"cluster": cluster, "task": {"type": "worker", "index": 1}}) == \
        (False, "worker_1")
    with_chief = {"chief": ["c:0"], **cluster}
    assert distribute._multi_worker_role({"cluster": with_chief, "task": {"type": "worker", "index": 0}})[0] is False
    assert distribute._multi_worker_role({"cluster": with_chief, "task": {"type": "chief", "index": 0}})[0] is True
