"""The road a user walks, with real `train.py` runs on a tiny CSV data set (`--dataset=custom`): the run directory and
the export follow the artifact contract and the diagnostics command reads both; reruns with another learning rate or
other data, a second process on the same run directory and an export of other data under the same name are refused
with the difference named; a diverging run stops without an export; what killed runs leave is gone after the next.
The runs share one data cache and one first run (module fixtures) to keep the suite short."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = {"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"},
          "fields": [{"name": "user", "kind": "categorical"}, {"name": "city", "kind": "categorical"},
                     {"name": "age", "kind": "numeric"}]}
NAME = "clicks-me_dnn_2x4"  # the default run and export name: <data (the schema's name)>-<model name>
ENVIRONMENT = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
ENVIRONMENT.pop("TF_CONFIG", None)


def write_clicks(path: pathlib.Path, seed: int = 0, rows: int = 640) -> pathlib.Path:
    rng = np.random.default_rng(seed)
    lines = ["clicked,user,city,age"]
    for _ in range(rows):
        user, city, age = int(rng.integers(0, 60)), ["paris", "lyon", "nice", ""][int(rng.integers(0, 4))], \
            int(rng.integers(1, 90))
        clicked = int(rng.random() < (0.7 if city == "paris" or user % 3 == 0 else 0.2))
        lines.append(f"{clicked},u{user},{city},{age}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train(workdir: pathlib.Path, *flags, data_path="clicks.csv", wait=True):
    command = [sys.executable, str(REPO / "train.py"), "--dataset=custom", "--schema=schema.json",
               f"--data_path={data_path}", "--model=dnn", "--scale=2", "--embedding_dim=4", "--batch_size=64",
               "--epochs=2", "--verbose=0", *flags]
    if not wait:
        return subprocess.Popen(command, cwd=workdir, env=ENVIRONMENT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=workdir, env=ENVIRONMENT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("road")
    write_clicks(workdir / "clicks.csv")
    (workdir / "schema.json").write_text(json.dumps(SCHEMA))
    completed = train(workdir)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return workdir


def test_run_directory_and_export_follow_the_contract(first_run):
    from tf_multiembed import artifacts

    run_dir, export = first_run / "runs" / NAME, first_run / "export" / NAME / "1"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["config"]["learning_rate"] == 0.001 and record["config"]["dataset"] == "custom"
    assert record["model"] == {"name": "me_dnn_2x4", "family": "dnn"}
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "finished" and 0.5 < results["test"]["auc"] <= 1
    report = json.loads((run_dir / "ingest_report.json").read_text())
    assert report == results["data"]["ingest_report"] and report["rows_valid"] == 640
    assert sum(report["rows_written"].values()) == 640
    assert (run_dir / "best.keras").is_file()
    metadata = json.loads((export / "assets.extra" / "tf_multiembed.json").read_text())
    assert metadata["inputs"] == {"user": "string", "city": "string", "age": "float64"}
    assert metadata["data"]["fingerprint"] == record["data"]["fingerprint"] == results["data"]["fingerprint"]
    assert metadata["data"]["name"] == "clicks" and metadata["model"]["family"] == "dnn"
    assert metadata["model"]["embedding"]["num_sets"] == 2 and metadata["model"]["embedding"]["embedding_dim"] == 4
    assert metadata["field_names"] == ["user", "city", "age"] == record["data"]["field_names"]
    assert artifacts.locate(first_run / "export" / NAME) == ("export", export)


def test_diagnostics_command_reads_the_run_directory_and_the_export(first_run, tmp_path):
    from tf_multiembed.diagnostics import cli

    completed = subprocess.run([sys.executable, "-m", "tf_multiembed.diagnostics", str(first_run / "runs" / NAME),
                                "--output-dir", str(tmp_path / "run_report")], env=ENVIRONMENT,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert cli.main([str(first_run / "export" / NAME / "1"), "--output-dir", str(tmp_path / "export_report")]) == 0
    from_run = json.loads((tmp_path / "run_report" / "diagnostics.json").read_text())[NAME]
    from_export = json.loads((tmp_path / "export_report" / "diagnostics.json").read_text())[f"{NAME} v1"]
    for report in ("run_report", "export_report"):
        assert "## " in (tmp_path / report / "summary.md").read_text()
    # The export and best.keras hold the same (best) weights: both reports agree field by field.
    assert from_run["embedding"]["field_names"] == from_export["embedding"]["field_names"] == ["user", "city", "age"]
    np.testing.assert_allclose(from_run["embedding"]["concat_abundance"], from_export["embedding"]["concat_abundance"],
                               rtol=1e-6)
    np.testing.assert_allclose(from_run["embedding"]["set_abundance"], from_export["embedding"]["set_abundance"],
                               rtol=1e-6)


def _untouched(run_dir: pathlib.Path):
    return (run_dir / "results.json").stat().st_mtime_ns, sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def test_rerun_with_another_learning_rate_is_refused_naming_it(first_run):
    before = _untouched(first_run / "runs" / NAME)
    completed = train(first_run, "--learning_rate=0.01")
    assert completed.returncode == 1
    assert "--learning_rate: 0.001 in the run, 0.01 now" in completed.stderr and "--restart" in completed.stderr
    assert _untouched(first_run / "runs" / NAME) == before
    assert not (first_run / "export" / NAME / "2").exists()


def test_rerun_with_other_data_is_refused_naming_the_data(first_run):
    before = _untouched(first_run / "runs" / NAME)
    write_clicks(first_run / "clicks_v2.csv", seed=1)  # the same columns, other rows
    completed = train(first_run, data_path="clicks_v2.csv")
    assert completed.returncode == 1
    assert "the data differs (fingerprint:" in completed.stderr
    assert _untouched(first_run / "runs" / NAME) == before


def test_other_data_under_the_same_export_name_is_refused_before_training(first_run):
    completed = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--dataset=synthetic", "--synthetic_rows=600", "--model=dnn",
         "--scale=2", "--embedding_dim=4", "--batch_size=64", "--epochs=1", "--verbose=0",
         "--model_dir=runs/synthetic", f"--export_name={NAME}"],
        cwd=first_run, env=ENVIRONMENT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 1
    assert f"export/{NAME} already serves a model whose serving_default takes other inputs" in completed.stderr
    assert "inputs only in the served versions: ['age', 'city', 'user']" in completed.stderr
    assert "inputs only in this model: ['C1', 'C10'" in completed.stderr
    assert not (first_run / "runs" / "synthetic" / "checkpoints").exists()  # refused before any training
    assert sorted(p.name for p in (first_run / "export" / NAME).iterdir()) == ["1"]


def test_a_diverging_run_stops_with_the_step_and_exports_nothing(first_run):
    completed = train(first_run, "--learning_rate=1e30", "--model_dir=runs/diverged", "--export_dir=export_diverged")
    assert completed.returncode == 1
    assert "training diverged at epoch 1, step " in completed.stderr
    assert "(loss nan): lower --learning_rate" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (first_run / "export_diverged").exists()
    assert json.loads((first_run / "runs" / "diverged" / "results.json").read_text())["status"] == "diverged"
    # What the message advises: the same run directory with a lower rate and --restart starts over and finishes.
    again = train(first_run, "--learning_rate=0.001", "--restart", "--model_dir=runs/diverged",
                  "--export_dir=export_diverged")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Starting over (--restart)" in again.stdout
    results = json.loads((first_run / "runs" / "diverged" / "results.json").read_text())
    assert results["status"] == "finished" and results["config"]["learning_rate"] == 0.001
    assert (first_run / "export_diverged" / NAME / "1" / "saved_model.pb").is_file()


def _wait_for(condition, process, what: str, timeout: float = 300):
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"train.py ended before {what}: {process.stderr.read()[-3000:]}")
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.0005)


def _kill(process):
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_one_process_per_run_directory_and_no_leftovers_after_kills(first_run):
    run_dir, export_root = first_run / "runs" / "killed", first_run / "export_killed" / NAME
    # Patience 100: the first run keeps training until it is killed.
    flags = ("--model_dir=runs/killed", "--export_dir=export_killed", "--checkpoint_every_steps=1", "--patience=100")

    def temp_checkpoints():
        return [path for folder in ("checkpoints", "best") if (run_dir / folder).is_dir()
                for path in os.scandir(run_dir / folder) if "_temp" in path.name]

    first = train(first_run, *flags, "--epochs=100", wait=False)
    try:
        _wait_for(lambda: (run_dir / "checkpoints" / "checkpoint").is_file(), first, "its first checkpoint")
        second = train(first_run, *flags, "--epochs=100")
        assert second.returncode == 1
        assert f"is in use by process {first.pid} on" in second.stderr
        # Kill the first run in the middle of a checkpoint save (retried if the save finished in between).
        for _attempt in range(5):
            _wait_for(lambda: bool(temp_checkpoints()), first, "a checkpoint save")
            _kill(first)
            if temp_checkpoints():
                break
            first = train(first_run, *flags, "--epochs=100", wait=False)
        assert temp_checkpoints(), "could not kill train.py during a checkpoint save"
        # The next run (--epochs=1: at most the rest of epoch 1, the settings that shape the result are unchanged)
        # removes the half-written checkpoint, exports, and is killed while the export is being written.
        first = train(first_run, *flags, "--epochs=1", wait=False)
        _wait_for(lambda: export_root.is_dir() and any(p.name.startswith(".staging-") for p in export_root.iterdir()),
                  first, "an export in progress")
        _kill(first)
        output = first.stdout.read()
        assert "Removed what an interrupted run left" in output and "_temp" in output
    finally:
        if first.poll() is None:
            _kill(first)
    assert not temp_checkpoints()
    assert any(p.name.startswith(".staging-") for p in export_root.iterdir()) and not (export_root / "1").exists()

    final = train(first_run, *flags, "--epochs=1")
    assert final.returncode == 0, final.stderr[-3000:]
    assert not temp_checkpoints() and not (run_dir / ".scratch").exists()
    assert sorted(p.name for p in export_root.iterdir()) == ["1"]  # the dead export's staging folder is gone
    assert (export_root / "1" / "saved_model.pb").is_file()


def test_min_count_applies_to_every_field_of_the_schema(first_run, tmp_path):
    from tf_multiembed.training.config import RunConfig
    from tf_multiembed.training.run import prepare_data

    settings = dict(dataset="custom", schema=str(first_run / "schema.json"), data_path=str(first_run / "clicks.csv"),
                    data_dir=str(tmp_path / "data"))
    plain, _, _ = prepare_data(RunConfig(**settings))
    rare_values_out, schema, _ = prepare_data(RunConfig(**settings, min_count=40))
    assert [field.min_count for field in schema.fields] == [40, 40, 40]
    # 60 users of about 11 rows each all fall under 40 (OOV only); the 3 cities (~160 rows each) stay.
    assert plain.vocabulary_sizes[0] == 61 and rare_values_out.vocabulary_sizes[0] == 1
    assert rare_values_out.vocabulary_sizes[1] == plain.vocabulary_sizes[1]


def test_a_run_recorded_before_a_setting_existed_counts_it_at_its_default(tmp_path):
    import dataclasses

    from tf_multiembed import artifacts
    from tf_multiembed.training.config import RunConfig, setting_defaults
    from tf_multiembed.training.run_directory import RunMismatchError, check_rerun

    def record(config):
        return {"config": dataclasses.asdict(config), "data": {"fingerprint": "f"}, "model": {"name": "m"}}

    older = record(RunConfig())
    del older["config"]["synthetic_interactions"]  # what a run.json of an earlier version holds
    artifacts.write_json(tmp_path / artifacts.RUN_FILE, older)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text("")
    settings = list(RunConfig().result_settings())
    check_rerun(tmp_path, record(RunConfig()), settings, setting_defaults())  # resumes
    with pytest.raises(RunMismatchError, match="--synthetic_interactions: 30 in the run, 60 now"):
        check_rerun(tmp_path, record(RunConfig(synthetic_interactions=60)), settings, setting_defaults())
    with pytest.raises(RunMismatchError, match="--synthetic_interactions: None in the run, 30 now"):
        check_rerun(tmp_path, record(RunConfig()), settings)  # without the defaults the old run would be refused
