"""The diagnostics command on a damaged `.keras` file: one line saying the file is not a readable .keras archive
(Keras itself says "File not found" for a truncated file that exists), exit status 2, no traceback."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tf_multiembed.artifacts import ArtifactError
from tf_multiembed.diagnostics import loading
from tf_multiembed.models import build_model

ENVIRONMENT = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("damaged") / "me.keras"
    build_model("dnn", [20, 5], scale=2, embedding_dim=4, hidden_units=(4,), field_names=["user", "city"]).save(path)
    return path


def test_the_command_on_a_truncated_keras_file_prints_one_line(saved, tmp_path):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])  # a copy cut short
    completed = subprocess.run([sys.executable, "-m", "tf_multiembed.diagnostics", str(truncated), "--output-dir",
                                str(tmp_path / "report")], env=ENVIRONMENT, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr and "File not found" not in completed.stderr
    assert completed.stderr.strip().splitlines()[-1] == (
        f"error: {truncated} is not a readable .keras archive (truncated or corrupt: no zip directory); save the "
        "model again (or copy the whole file).")
    assert not (tmp_path / "report").exists()


def test_a_keras_file_damaged_inside_names_the_bad_entry(saved, tmp_path):
    damaged = bytearray(saved.read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 64] = bytes(byte ^ 0x5A for byte in damaged[middle:middle + 64])
    path = tmp_path / "damaged.keras"
    path.write_bytes(bytes(damaged))
    with pytest.raises(ArtifactError, match=r"damaged.keras is not a readable .keras archive \(truncated or corrupt: "
                                            r"Bad CRC-32 for file 'model.weights.h5'\)"):
        loading.load_for_diagnostics(path)


def test_a_run_directory_with_a_truncated_best_model_says_how_to_rewrite_it(saved, tmp_path):
    run_dir = tmp_path / "runs" / "clicks-me_dnn_2x4"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"format_version": 1, "config": {}, "data": {}, "model": {}}))
    (run_dir / "best.keras").write_bytes(saved.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match=r"best.keras is not a readable .keras archive \(truncated or corrupt: no "
                                            r"zip directory\); rerun the train.py command of .*clicks-me_dnn_2x4 \(a "
                                            r"finished run rewrites best.keras from its best checkpoint\)"):
        loading.load_for_diagnostics(run_dir)
