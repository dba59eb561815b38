"""benchmarks/speed/gpu.py in its CPU short mode: every check and table group runs, and the JSON and markdown say so.
(The full run needs a GPU; this keeps the prepared script working until one is lent.)"""

import json
import os
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "speed" / "gpu.py"


def test_short_mode_runs_every_check_and_group(tmp_path):
    process = subprocess.run([sys.executable, str(SCRIPT), "--short", f"--output_dir={tmp_path}"],
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["short"] and report["device"] == "CPU"
    assert set(report["checks"]) == {"mirrored_one_device", "mixed_float16", "xla", "export"}
    for name, result in report["checks"].items():
        assert result["passed"], (name, result)
    assert report["checks"]["mixed_float16"]["optimizer"] == "LossScaleOptimizer"
    assert report["checks"]["export"]["rows"] == 4
    groups = {(row["mixed_precision"], row["jit_compile"]) for row in report["table"]}
    assert groups == {("float32", False), ("mixed_float16", False), ("float32", True)}
    assert all("error" not in row and row["examples_per_s"] > 0 for row in report["table"]), report["table"]
    assert not report["skipped_groups"] and not report["group_errors"]
    table = (tmp_path / "gpu.md").read_text()
    assert "| mirrored_one_device | passed |" in table and "| me_dnn_2x10 | mixed_float16 | off |" in table


def test_full_mode_refuses_to_run_without_a_gpu(tmp_path):
    process = subprocess.run([sys.executable, str(SCRIPT), f"--output_dir={tmp_path}"], capture_output=True,
                             text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert process.returncode != 0 and "sees no GPU" in process.stderr
    assert not (tmp_path / "gpu.json").exists()
