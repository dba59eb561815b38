"""Issue 22 as a user meets it, with real `train.py` runs on a tiny CSV (`--dataset=custom`, 1 epoch): a blown-up
loss that stays finite is divergence; bad seeds are refused by the flag parser; read-only output folders are named
before training; every error is one line (the traceback on request); explicit default flags are not a change; a
folder with the user's files is refused and `--restart` deletes only the package's files. One first run (a module
fixture) is shared to keep the suite short."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tf_multiembed import artifacts

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = {"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"},
          "fields": [{"name": "user", "kind": "categorical"}, {"name": "city", "kind": "categorical"},
                     {"name": "age", "kind": "numeric"}]}
NAME = "clicks-me_dnn_2x10"  # the default run: ME-DNN, scale 2, the model's own width K = 10
ENVIRONMENT = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
for variable in ("TF_CONFIG", "TF_MULTIEMBED_TRACEBACK"):
    ENVIRONMENT.pop(variable, None)


def write_clicks(path: pathlib.Path, rows: int = 640) -> None:
    rng = np.random.default_rng(0)
    lines = ["clicked,user,city,age"]
    for _ in range(rows):
        user, city, age = int(rng.integers(0, 60)), ["paris", "lyon", "nice", ""][int(rng.integers(0, 4))], \
            int(rng.integers(1, 90))
        lines.append(f"{int(rng.random() < (0.7 if city == 'paris' else 0.2))},u{user},{city},{age}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train(workdir: pathlib.Path, *flags, prefix=(), environment=None):
    command = [*prefix, sys.executable, str(REPO / "train.py"), "--dataset=custom", "--schema=schema.json",
               "--data_path=clicks.csv", "--model=dnn", "--batch_size=64", "--epochs=1", "--verbose=0", *flags]
    return subprocess.run(command, cwd=workdir, env=environment or ENVIRONMENT, capture_output=True, text=True,
                          timeout=600)


def error_lines(completed) -> list:
    """stderr without TensorFlow's and absl's start-up noise (C++ log lines, the CPU feature notice)."""
    noise = ("WARNING: All log messages before absl", "I0000", "W0000", "E0000", "To enable the following")
    return [line for line in completed.stderr.splitlines() if line.strip() and not line.startswith(noise)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reliability")
    write_clicks(folder / "clicks.csv")
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    completed = train(folder, "--export_dir=")  # the default run, which the reruns below repeat
    assert completed.returncode == 0, completed.stderr[-3000:]
    return folder


def _snapshot(folder: pathlib.Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


# Item 2: a loss that grows by orders of magnitude but stays finite.
def test_a_blown_up_but_finite_loss_is_divergence_and_nothing_is_exported(workdir):
    completed = train(workdir, "--learning_rate=1e6", "--model_dir=runs/blown_up", "--export_dir=export_blown_up")
    assert completed.returncode == 1
    lines = error_lines(completed)
    assert lines[0].startswith("train.py: training diverged at epoch 1, step ")
    # The bound is 1000 x max(ln 2, the first step's loss): a fresh model starts near ln 2.
    assert "over 69" in lines[0] and "= 1000 x the starting loss): lower --learning_rate" in lines[0]
    assert lines[1].startswith("Nothing was exported.") and len(lines) == 2
    assert not (workdir / "export_blown_up").exists()
    results = json.loads((workdir / "runs" / "blown_up" / "results.json").read_text())
    assert results["status"] == "diverged" and "training diverged" in results["error"]


def test_the_divergence_bound_by_hand():
    import tensorflow as tf

    from tf_multiembed.training.callbacks import DivergenceGuard, TrainingDivergedError, check_weights
    from tf_multiembed.training.callbacks import divergence_bound

    assert divergence_bound(None) == pytest.approx(693.147, abs=1e-3)  # 1000 ln 2
    assert divergence_bound(0.3) == divergence_bound(None) and divergence_bound(1.5) == 1500.0
    guard = DivergenceGuard(epoch=3, first_step=10)
    guard.on_train_batch_end(0, {"loss": 0.9})  # the starting loss: the bound is 900
    guard.on_train_batch_end(1, {"loss": 899.0})  # a bad stretch, within the bound
    with pytest.raises(TrainingDivergedError, match=r"^training diverged at epoch 3, step 13 \(loss 901, over 900 = "
                                                    r"1000 x the starting loss\): lower --learning_rate$"):
        guard.on_train_batch_end(2, {"loss": 901.0})
    with pytest.raises(TrainingDivergedError, match=r"at epoch 1, step 1 \(loss inf\)"):
        DivergenceGuard(epoch=1).on_train_batch_end(0, {"loss": float("inf")})
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1, name="head")], name="sequential")
    check_weights(model, 1)  # finite: nothing
    model.get_layer("head").kernel.assign([[1.0], [float("nan")]])
    with pytest.raises(TrainingDivergedError, match=r"at epoch 2 \(weight sequential/head/kernel nan\)"):
        check_weights(model, 2)


# Item 9: seeds are checked where they enter.
def test_a_negative_seed_is_refused_by_the_flag_parser(workdir, tmp_path):
    completed = train(workdir, "--split_seed=-1", f"--data_dir={tmp_path / 'data'}", f"--model_dir={tmp_path / 'r'}")
    assert completed.returncode == 1
    assert error_lines(completed)[0] == ("FATAL Flags parsing error: flag --split_seed=-1: -1 is not an integer in the "
                                         "range [0, 4294967295]")
    assert not (tmp_path / "data").exists() and not (tmp_path / "r").exists()  # refused before any data


@pytest.mark.parametrize("flag", ["--seed=-1", "--seed=4294967296", "--split_seed=-1"])
def test_seed_flags_take_numpy_seeds_only(flag):
    from absl import flags

    from tf_multiembed.training.config import RunConfig, define_flags

    flag_values = flags.FlagValues()
    define_flags(["seed", "split_seed"], flag_values)
    with pytest.raises(flags.IllegalFlagValueError, match=r"not an integer in the range \[0, 4294967295\]"):
        flag_values(["train.py", flag])
    with pytest.raises(ValueError, match=r"--seed must be >= 0, received -1"):
        RunConfig(seed=-1)
    assert "0 to 4294967295" in flag_values["seed"].help


# Item 10: read-only output folders are named before training; every error is one line.
def _read_only(folder: pathlib.Path):
    """The command prefix under which `folder` (made read-only) cannot be written; root ignores file modes, so root
    runs train.py without the capability that lets it (setpriv)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be simulated")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


@pytest.mark.parametrize("flag", ["model_dir", "export_dir"])
def test_a_read_only_output_folder_is_named_before_training(workdir, tmp_path, flag):
    read_only = tmp_path / "read_only"
    prefix = _read_only(read_only)
    folders = {"model_dir": str(tmp_path / "run"), "export_dir": str(tmp_path / "export"), flag: str(read_only)}
    completed = train(workdir, *(f"--{name}={value}" for name, value in folders.items()), prefix=prefix)
    assert completed.returncode == 1
    assert error_lines(completed) == [
        f"train.py: --{flag}={read_only}: cannot write in {read_only} (Permission denied). Make that folder writable "
        f"for this user or choose another --{flag}; nothing was trained."]
    assert not (tmp_path / "run").exists() and list(read_only.iterdir()) == []


def test_the_traceback_on_request(workdir, tmp_path):
    read_only = tmp_path / "read_only"
    prefix = _read_only(read_only / "sub")
    completed = train(workdir, f"--model_dir={read_only}/sub/run", "--export_dir=", prefix=prefix,
                      environment={**ENVIRONMENT, "TF_MULTIEMBED_TRACEBACK": "1"})
    assert completed.returncode == 1
    assert "Traceback (most recent call last)" in completed.stderr and "FolderNotWritableError" in completed.stderr
    assert error_lines(completed)[-1] == (
        f"train.py: --model_dir={read_only}/sub/run: cannot create it in {read_only}/sub (Permission denied). Make "
        "that folder writable for this user or choose another --model_dir; nothing was trained.")


def test_errors_of_every_kind_are_one_line_and_bugs_say_so(capsys, monkeypatch):
    import tensorflow as tf

    from tf_multiembed.training.errors import report_error

    def reported(error, **kwargs):
        try:
            raise error
        except BaseException as raised:  # noqa: BLE001  (a traceback, as train.py has one)
            status = report_error(raised, "train.py", **kwargs)
        return status, capsys.readouterr().err.splitlines()

    status, lines = reported(OSError(28, "No space left on device", "runs/x/results.json"))
    assert status == 1 and lines == [
        "train.py: No space left on device: runs/x/results.json",
        "Free space on that disk, or point the flag that names the folder (--data_dir, --model_dir, --export_dir) "
        "to a disk with room; rerun with --traceback (or TF_MULTIEMBED_TRACEBACK=1) for the traceback."]
    status, lines = reported(tf.errors.DataLossError(None, None, "truncated record at 0\n\tin some op"))
    assert lines == ["train.py: TensorFlow DataLossError: truncated record at 0",
                     "A data file is truncated or corrupt: prepare the data again, or replace the file; rerun with "
                     "--traceback (or TF_MULTIEMBED_TRACEBACK=1) for the traceback."]
    status, lines = reported(KeyError("vocabulary_sizes"))
    assert status == 1 and lines == [
        "train.py: unexpected error: KeyError: 'vocabulary_sizes'",
        "This is likely a bug in tf-multiembed: rerun with --traceback (or TF_MULTIEMBED_TRACEBACK=1) for the "
        "traceback, and report it."]
    status, lines = reported(KeyboardInterrupt())
    assert status == 130 and lines[0] == "train.py: interrupted"
    status, lines = reported(ValueError("boom"), show_traceback=True)  # raised here, not by the package: a bug
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2] == "train.py: unexpected error: ValueError: boom"
    monkeypatch.setenv("TF_MULTIEMBED_TRACEBACK", "1")
    status, lines = reported(RuntimeError("x"))
    assert lines[0] == "Traceback (most recent call last):"


# Item 11: the resolved model is compared, not how it was spelled.
def test_explicit_default_shape_flags_resume_the_default_run(workdir):
    completed = train(workdir, "--embedding_dim=10", "--num_sets=2", "--export_dir=")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "in the run" not in completed.stderr
    changed = train(workdir, "--embedding_dim=8", f"--model_dir=runs/{NAME}", "--export_dir=")
    assert changed.returncode == 1
    assert "--embedding_dim: 10 in the run, 8 now" in changed.stderr
    assert "the model: 'me_dnn_2x10' in the run, 'me_dnn_2x8' now" in changed.stderr


def test_comparable_settings_resolve_the_embedding_shape():
    from tf_multiembed.training.config import RunConfig, comparable_settings

    def resolved(**settings):
        values = comparable_settings(RunConfig(model="dnn", **settings).result_settings())
        return values["scale"], values["num_sets"], values["embedding_dim"]

    assert resolved() == resolved(num_sets=2) == resolved(scale=1, num_sets=2) == resolved(embedding_dim=10)
    assert resolved() == (2, 2, 10)
    assert resolved(embedding="se", scale=4) == (4, 1, 10) != resolved(embedding="se", scale=4, embedding_dim=5)
    assert "jit_compile" not in RunConfig().result_settings()  # XLA compiles the same math: not compared


# Item 12: only the package's own files.
def test_a_folder_with_the_users_files_is_refused_untouched(workdir):
    folder = workdir / "mine"
    (folder / "notes").mkdir(parents=True)
    (folder / "results.json").write_text('{"mine": true}\n')
    (folder / "notes" / "todo.txt").write_text("keep me\n")
    before = _snapshot(folder)
    completed = train(workdir, "--model_dir=mine", "--export_dir=")
    assert completed.returncode == 1
    assert error_lines(completed) == [
        f"train.py: mine is not a tf-multiembed run directory (no {artifacts.RUN_MARKER_FILE}, no run.json) and is "
        "not empty (it holds notes/, results.json); a run there could overwrite those files. Choose a new or empty "
        "--model_dir, or move those files away."]
    assert _snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == ["notes", "results.json"]


def test_restart_deletes_only_the_packages_files_and_older_run_directories_still_work(workdir):
    run_dir = workdir / "runs" / "restarted"
    first = train(workdir, "--model_dir=runs/restarted", "--export_dir=")
    assert first.returncode == 0, first.stderr[-3000:]
    # A run directory from before the marker (recognised by its run.json, else it would be refused as the user's),
    # with the user's files in it and in the package's folders.
    (run_dir / artifacts.RUN_MARKER_FILE).unlink()
    (run_dir / "logs" / "train" / "my_notes.txt").write_text("mine\n")
    (run_dir / "checkpoints" / "README").write_text("mine too\n")
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "auc.png").write_bytes(b"png")
    restarted = train(workdir, "--model_dir=runs/restarted", "--export_dir=", "--learning_rate=0.002", "--restart")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "Starting over (--restart): removed " in restarted.stdout
    assert ("kept the files tf-multiembed did not write: checkpoints/README, logs/train/my_notes.txt"
            in restarted.stdout)
    assert (run_dir / "logs" / "train" / "my_notes.txt").read_text() == "mine\n"
    assert (run_dir / "checkpoints" / "README").read_text() == "mine too\n"
    assert (run_dir / "plots" / "auc.png").read_bytes() == b"png"
    assert (run_dir / artifacts.RUN_MARKER_FILE).is_file()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "finished" and results["config"]["learning_rate"] == 0.002
    assert len(list((run_dir / "logs" / "train").glob("events.out.tfevents.*"))) == 1  # the old one is gone
