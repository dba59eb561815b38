"""A new user's first `python train.py` on their own CSV, run as they run it (stdout to a log file), and what they
then see: labels named by class (`click` / `no_click`), the data build's progress lines, one plain line per epoch and
no carriage returns, a one-line reason for a test split's `AUC nan`, `tf_multiembed.load_model` on the run in a fresh
process, and the export's request builder listing the inputs in the schema's order."""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
NUM_ROWS = 400
UNDECLARED_LABELS = 2  # rows whose label is neither class: skipped and counted, under the 1% limit


def _write_clicks(path: pathlib.Path) -> None:
    """A time-ordered click log; the last tenth (the time split's test split) holds no click."""
    rng = np.random.default_rng(0)
    lines = ["ts,outcome,user,city,price"]
    for row in range(NUM_ROWS):
        user, city = f"u{rng.integers(0, 30)}", ["paris", "lyon", "nice"][row % 3]
        clicked = row < 0.9 * NUM_ROWS and (city == "paris" or rng.random() < 0.2)
        outcome = "click" if clicked else "no_click"
        if row in (17, 211):
            outcome = "maybe"
        lines.append(f"{1000 + row},{outcome},{user},{city},{rng.integers(1, 500)}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("first_hour")
    _write_clicks(folder / "clicks.csv")
    (folder / "clicks.yaml").write_text(textwrap.dedent("""\
        name: clicks
        reader: delimited
        delimiter: ","
        has_header: true
        label: {column: outcome, positive: [click], negative: [no_click]}
        time_column: ts
        min_count: 1
        fields:
          - {name: user}
          - {name: price, kind: numeric}
          - {name: city}
        """))
    log = folder / "train.log"
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # train.py's own
    with open(log, "w") as stdout:
        completed = subprocess.run(
            [sys.executable, str(REPOSITORY / "train.py"), "--dataset=custom", "--schema=clicks.yaml",
             "--data_path=clicks.csv", "--data_dir=cache", "--split=time", "--model=dnn", "--epochs=2",
             "--batch_size=64", "--model_dir=run", "--export_dir=export", "--export_name=clicks"],
            stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300, cwd=folder,
            env={**env, "PYTHONPATH": str(REPOSITORY), "CUDA_VISIBLE_DEVICES": ""})
    output = log.read_text()
    assert completed.returncode == 0, output[-3000:] + completed.stderr[-3000:]
    return folder, output, completed.stderr


def test_the_log_file_has_one_plain_line_per_epoch_and_no_carriage_returns(first_run):
    _, output, _ = first_run
    assert "\r" not in output and "\b" not in output
    epoch_lines = [line for line in output.splitlines() if line.startswith("Epoch")]
    assert len(epoch_lines) == 2, output
    for number, line in enumerate(epoch_lines, start=1):
        assert re.fullmatch(rf"Epoch {number}/2: loss=\d\.\d{{6}}, val_auc=\d\.\d{{6}} \(best .*\), \d+\.\d s", line)
    assert "━" not in output and "step" not in output  # no Keras progress bar or per-step lines


def test_the_data_build_shows_its_progress_but_tensorflow_stays_quiet(first_run):
    _, output, _ = first_run
    assert re.search(r"^\d\d:\d\d:\d\d pass 1 \(count\): 400 lines in [\d.]+ s", output, re.MULTILINE), output
    assert re.search(r"^\d\d:\d\d:\d\d pass 2 \(encode\): 400 lines in [\d.]+ s", output, re.MULTILINE), output
    assert not re.search(r"^(I\d{4} |INFO:)", output, re.MULTILINE)  # neither absl's nor TensorFlow's INFO lines


def test_class_name_labels_are_read_and_undeclared_values_counted(first_run):
    folder, _, _ = first_run
    report = json.loads((folder / "run" / "ingest_report.json").read_text())
    assert report["skipped_by_reason"] == {"bad_label": UNDECLARED_LABELS}
    assert report["rows_valid"] == NUM_ROWS - UNDECLARED_LABELS
    assert report["first_bad_lines"][0].endswith(
        "clicks.csv:19: bad label (outcome 'maybe', neither positive ['click'] nor negative ['no_click'])")


def test_a_single_class_test_split_says_why_its_auc_is_nan(first_run):
    folder, output, stderr = first_run
    test_rows = json.loads((folder / "run" / "run.json").read_text())["data"]["split_rows"]["test"]
    reason = (f"the test split holds only negatives (label 0) in all its {test_rows} rows, with no positive example, "
              f"so its AUC is undefined (NaN)")
    assert stderr.count(f"Warning: {reason}") == 1, stderr
    assert re.search(rf"Test \(kept checkpoint\): AUC nan, logloss \d\.\d+, ECE \d\.\d+, mean prediction / click "
                     rf"rate nan \(AUC undefined: the test split holds "
                     rf"only negatives \(label 0\) in all its {test_rows} rows, with no positive example\)\n", output)
    results = json.loads((folder / "run" / "results.json").read_text())
    assert results["test"]["auc"] is None or np.isnan(results["test"]["auc"])
    assert [note for note in results["warnings"] if note.startswith(reason)]


def test_load_model_opens_best_keras_in_a_fresh_process_with_nothing_imported_before(first_run):
    folder, _, _ = first_run
    script = textwrap.dedent("""\
        import json, sys
        import numpy as np
        import tf_multiembed
        assert "tensorflow" not in sys.modules, "import tf_multiembed must stay light"
        model = tf_multiembed.load_model("run/best.keras")
        same = tf_multiembed.load_model("run")  # the run directory: its best.keras
        ids = np.array([[1, 2, 1], [0, 0, 0]], dtype="int64")
        print(json.dumps({"name": model.name, "file": model.predict(ids, verbose=0)[:, 0].tolist(),
                          "run": same.predict(ids, verbose=0)[:, 0].tolist()}))
        """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                               cwd=folder, env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    assert completed.returncode == 0, completed.stderr[-3000:]
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    run = json.loads((folder / "run" / "run.json").read_text())
    assert loaded["name"] == run["model"]["name"]
    assert len(loaded["file"]) == 2 and loaded["file"] == loaded["run"]
    assert all(0 < value < 1 for value in loaded["file"])


def test_request_builder_of_the_export_lists_the_inputs_in_schema_order(first_run):
    folder, _, _ = first_run
    from tf_multiembed.serving import RequestBuilder

    version = next((folder / "export" / "clicks").iterdir())
    builder = RequestBuilder.from_saved_model(version)
    assert list(builder.input_specs) == ["user", "price", "city"]  # the signature itself sorts them by name
    body = builder.rest_rows([{"user": "u1", "price": 3, "city": "paris"}])
    assert list(body["instances"][0]) == ["user", "price", "city"]


def test_show_package_logs_prints_the_build_eta_lines_on_stdout_and_its_warnings_on_stderr(tmp_path, monkeypatch,
                                                                                           capsys):
    # What train.py calls before the build: the periodic "lines (share), rate, ETA" lines a long build logs, here
    # made frequent (every block) so that a small file shows them.
    import logging

    from tf_multiembed.data import build as build_lib
    from tf_multiembed.data import criteo_schema
    from tf_multiembed.training.run import show_package_logs

    path = tmp_path / "train.txt"
    path.write_text("".join(f"{row % 2}\t{row}\t{'ab'[row % 2]}\n" for row in range(3000)))
    schema = criteo_schema(num_numeric=1, num_categorical=1, min_count=1)
    monkeypatch.setattr(build_lib, "PROGRESS_SECONDS", 0.0)
    logger = logging.getLogger("tf_multiembed")
    state = (list(logger.handlers), logger.level, logger.propagate)
    try:
        show_package_logs()
        show_package_logs()  # idempotent: one line per message
        build_lib.build(schema, path, tmp_path / "cache", build_lib.BuildSettings(), block_bytes=4096)
        logging.getLogger("tf_multiembed.data.build").warning("a warning")
    finally:
        logger.handlers[:], logger.level, logger.propagate = state
    captured = capsys.readouterr()
    eta = re.findall(r"^\d\d:\d\d:\d\d pass 1 \(count\): [\d,]+ lines \(\d+%\), [\d,]+ lines/s, ETA \d+m\d\ds$",
                     captured.out, re.MULTILINE)
    assert len(eta) >= 2, captured.out
    assert len(re.findall(r"pass 1 \(count\): 3,000 lines in", captured.out)) == 1
    assert re.fullmatch(r"\d\d:\d\d:\d\d a warning\n", captured.err)


def test_load_model_refuses_an_export_saying_what_to_use(first_run):
    folder, _, _ = first_run
    import tf_multiembed
    from tf_multiembed.artifacts import ArtifactError

    version = next((folder / "export" / "clicks").iterdir())
    with pytest.raises(ArtifactError) as raised:
        tf_multiembed.load_model(version)
    assert str(raised.value) == (f"{version}: an export (SavedModel) is loaded with tf.saved_model.load, not as a "
                                 "Keras model; give a .keras file or a train.py run directory.")
