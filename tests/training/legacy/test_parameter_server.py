"""ParameterServerStrategy (legacy tf-keras only): 2 parameter servers and 1 worker on localhost, the embedding
table sharded over both servers, trained by the package's loop with exact AUC from coordinator-side predictions."""

import json
import os
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parent / "ps_script.py"


def test_parameter_server_training_with_a_sharded_table(tmp_path):
    environment = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    environment.pop("TF_CONFIG", None)
    process = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], env=environment, capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-5000:]
    report = json.loads((tmp_path / "ps.json").read_text())
    assert report["table_type"] == "ShardedVariable"
    devices = sorted(device for device, _ in report["shards"])
    assert devices == ["/job:ps/replica:0/task:0/device:CPU:0", "/job:ps/replica:0/task:1/device:CPU:0"]
    assert sum(shape[0] for _, shape in report["shards"]) == 12 + 9 + 7 + 5  # every row of the 4 fields, once
    assert [entry["epoch"] for entry in report["epochs"]] == [1, 2, 3]
    assert report["epochs"][-1]["loss"] < report["epochs"][0]["loss"]  # it learns
    assert report["test"]["auc"] > 0.7 and 0 < report["test"]["logloss"] < 0.69
    assert report["checkpoint"] and report["checkpoint"].endswith("ckpt-57")  # 3 epochs x 19 steps
