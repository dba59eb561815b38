"""Issue 22, item 1: a run records the content fingerprint of the data it trained on. The input CSV edited in place
with its size and modification time restored is rebuilt by the cache, and the rerun on the same --model_dir is
refused naming the data instead of resuming on the new rows; an untouched rerun is not refused."""

import json
import os
import pathlib
import subprocess
import sys

from tf_multiembed import artifacts
from tf_multiembed.training.run_directory import mismatches

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = {"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"},
          "fields": [{"name": "user", "kind": "categorical"}, {"name": "city", "kind": "categorical"}]}
ENVIRONMENT = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
ENVIRONMENT.pop("TF_CONFIG", None)
COMMAND = ["--dataset=custom", "--schema=schema.json", "--data_path=clicks.csv", "--model=dnn", "--scale=2",
           "--embedding_dim=4", "--batch_size=64", "--epochs=1", "--steps_per_epoch=2", "--verbose=0",
           "--export_dir="]


def _train(workdir):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *COMMAND], cwd=workdir, env=ENVIRONMENT,
                          capture_output=True, text=True, timeout=600)


def _clicks(rows: int = 320) -> str:
    lines = ["clicked,user,city"]
    for row in range(rows):
        lines.append(f"{int(row % 3 == 0)},u{row % 17},{['paris', 'lyon', 'nice'][row % 3]}")
    return "\n".join(lines) + "\n"


def test_a_rerun_on_data_edited_in_place_with_size_and_mtime_kept_is_refused(tmp_path):
    data = tmp_path / "clicks.csv"
    data.write_text(_clicks(), encoding="utf-8")
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    first = _train(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "clicks-me_dnn_2x4"
    recorded = json.loads((run_dir / "run.json").read_text())["data"]["fingerprint"]
    assert recorded.startswith("content-sha256:")

    again = _train(tmp_path)  # untouched data: the same fingerprint in a new process
    assert again.returncode == 0, again.stderr[-3000:]

    before = data.stat()
    text = data.read_text(encoding="utf-8")
    edited = text.replace("\n1,", "\n#,").replace("\n0,", "\n1,").replace("\n#,", "\n0,")  # every label flipped
    assert edited != text and len(edited) == len(text)
    with open(data, "r+", encoding="utf-8") as handle:  # in place: the same inode
        handle.write(edited)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (data.stat().st_size, data.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    checkpoints = sorted(path.name for path in (run_dir / "checkpoints").iterdir())

    changed = _train(tmp_path)
    assert changed.returncode == 1
    assert "was trained with other settings or data than this command" in changed.stderr
    assert f"the data differs (fingerprint: '{recorded[:60]}" in changed.stderr
    assert "--restart" in changed.stderr
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == checkpoints
    assert json.loads((run_dir / "run.json").read_text())["data"]["fingerprint"] == recorded


def test_a_record_from_before_content_fingerprints_matches_its_cache_key_once():
    current = {"fingerprint": "content-sha256:abc", "cache_key": "f" * 64, "field_names": ["a"]}
    legacy = {"fingerprint": "f" * 64, "field_names": ["a"]}
    assert artifacts.same_data_fingerprint(legacy, current)
    assert mismatches({"data": legacy}, {"data": current}, []) == []
    other = {"fingerprint": "e" * 64, "field_names": ["a"]}
    assert mismatches({"data": other}, {"data": current}, []) == [
        f"the data differs (fingerprint: '{'e' * 64}' in the run, 'content-sha256:abc' now)"]
    recorded = {**current, "fingerprint": "content-sha256:old"}  # a record with content fingerprints: no fallback
    assert not artifacts.same_data_fingerprint(recorded, current)
