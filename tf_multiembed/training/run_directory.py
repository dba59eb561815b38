"""One training process per run directory, no leftovers of killed processes, and reruns that refuse silent changes.

`open_run_directory(model_dir, record, ...)` is what `run` / `train_prepared` wrap around training:
1. **Lock**: the chief takes an exclusive `flock` on `model_dir/.lock` (released by the kernel when the process
   dies, so a killed run never leaves a stale lock). A second process on the same directory is refused at once,
   with the holder's pid and host, instead of both overwriting each other's checkpoints and exports.
2. **Leftovers**: with the lock held, nothing else writes there, so what a killed process left half-written is
   removed: `ckpt-*_temp` folders and `checkpoint.tmp*` index files of interrupted checkpoint saves, other workers'
   `.scratch/`, and temporary files of interrupted JSON or `.keras` writes.
3. **Rerun check**: when the directory already holds checkpoints, the settings that shape the result (everything but
   where files go, how it is distributed and how much it prints; `RunConfig.result_settings`), the data
   (fingerprint, field names, vocabulary sizes) and the model must equal those in its `run.json`; otherwise the run
   stops with a `RunMismatchError` that names each difference. `restart=True` (`train.py --restart`) deletes the
   run's artifacts (and nothing else) and starts over.
4. `run.json` is (re)written with the current record.
"""

import contextlib
import os
import pathlib
import shutil
import socket
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from tf_multiembed import artifacts, types


class RunDirectoryLockedError(RuntimeError):
    """Another live process trains in this run directory."""


class RunMismatchError(ValueError):
    """A rerun whose settings or data differ from what the run directory was trained with."""


_held: Dict[str, Tuple[int, int]] = {}  # real path -> (lock file descriptor, nesting depth) of this process


def _acquire(directory: pathlib.Path) -> None:
    import fcntl

    key = os.path.realpath(directory)
    if key in _held:
        descriptor, depth = _held[key]
        _held[key] = (descriptor, depth + 1)
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / artifacts.LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
        os.close(descriptor)
        raise RunDirectoryLockedError(
            f"{directory} is in use by {holder}: two runs in one --model_dir would overwrite each other's "
            "checkpoints. Wait for that run to end (or stop it), or choose another --model_dir.") from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"process {os.getpid()} on {socket.gethostname()} (since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode("utf-8"))
    _held[key] = (descriptor, 1)


def _release(directory: pathlib.Path) -> None:
    key = os.path.realpath(directory)
    descriptor, depth = _held[key]
    if depth > 1:
        _held[key] = (descriptor, depth - 1)
        return
    del _held[key]
    os.close(descriptor)  # closing the descriptor releases the flock


def remove_leftovers(directory: pathlib.Path) -> List[str]:
    """Deletes what killed processes left half-written in a run directory (call it with the lock held); returns
    the paths removed."""
    removed = []
    candidates = [path for folder in (artifacts.CHECKPOINTS_DIR, artifacts.BEST_CHECKPOINT_DIR)
                  for pattern in ("*_temp*", "checkpoint.tmp*") for path in directory.glob(f"{folder}/{pattern}")]
    candidates += [*directory.glob(".tmp-*.json"), *directory.glob(f"{artifacts.BEST_MODEL_FILE}.tmp*"),
                   directory / ".scratch"]
    for path in candidates:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(str(path))
    return removed


def _has_training_state(directory: pathlib.Path) -> bool:
    return any((directory / name).exists() for name in
               (f"{artifacts.CHECKPOINTS_DIR}/checkpoint", f"{artifacts.BEST_CHECKPOINT_DIR}/checkpoint",
                artifacts.BEST_MODEL_FILE))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def mismatches(recorded: Mapping[str, Any], current: Mapping[str, Any], settings: Sequence[str],
               defaults: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Human-readable differences between a recorded and a current run record (empty when they agree).

    A setting that the recorded run does not have (it was added to the configuration later) counts as its value in
    `defaults`, which is what runs before it did.

    Example:
        >>> mismatches({"config": {"lr": 1e-3}}, {"config": {"lr": 1e-2, "order": 2}}, ["lr", "order"], {"order": 2})
        ['--lr: 0.001 in the run, 0.01 now']
    """
    lines = []
    defaults = defaults or {}
    recorded_config, current_config = recorded.get("config", {}), current.get("config", {})
    for name in settings:
        recorded_value = recorded_config.get(name, defaults.get(name))
        if recorded_value != current_config.get(name):
            lines.append(f"--{name}: {_short(recorded_value)} in the run, {_short(current_config.get(name))} now")
    recorded_data, current_data = recorded.get("data", {}), current.get("data", {})
    data_lines = [f"{key}: {_short(recorded_data.get(key))} in the run, {_short(current_data.get(key))} now"
                  for key in ("fingerprint", "field_names", "vocabulary_sizes", "split_rows")
                  if recorded_data.get(key) != current_data.get(key)]
    if data_lines:
        lines.append("the data differs (" + "; ".join(data_lines) + ")")
    recorded_model = recorded.get("model", {}).get("name")
    current_model = current.get("model", {}).get("name")
    if recorded_model != current_model:
        lines.append(f"the model: {recorded_model!r} in the run, {current_model!r} now")
    return lines


def check_rerun(directory: pathlib.Path, record: Mapping[str, Any], settings: Sequence[str],
                defaults: Optional[Mapping[str, Any]] = None) -> None:
    """Raises `RunMismatchError` when `directory` holds training state of another configuration or data."""
    if not _has_training_state(directory):
        return
    if not (directory / artifacts.RUN_FILE).is_file():
        raise RunMismatchError(
            f"{directory} holds checkpoints but no {artifacts.RUN_FILE} (written by an older version or another "
            "tool), so this run cannot check that they come from the same settings and data. Choose another "
            "--model_dir, or pass --restart to delete its checkpoints, results and logs and start over.")
    differences = mismatches(artifacts.read_run(directory), record, settings, defaults)
    if differences:
        raise RunMismatchError(
            f"{directory} was trained with other settings or data than this command:\n  - "
            + "\n  - ".join(differences)
            + "\nResuming would mix them (its checkpoints hold the recorded run). Rerun with the recorded settings "
              f"(see {directory / artifacts.RUN_FILE}), choose another --model_dir, or pass --restart to delete this "
              "run's checkpoints, results and logs and start over.")


def start_over(directory: pathlib.Path) -> List[str]:
    """Deletes a run's artifacts (checkpoints, best weights, logs, results, run.json, best.keras), nothing else."""
    removed = []
    for name in artifacts.RUN_ARTIFACTS:
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(str(path))
    return removed


@contextlib.contextmanager
def open_run_directory(model_dir: types.PathLike, record: Mapping[str, Any], settings: Sequence[str], *,
                       is_chief: bool = True, restart: bool = False,
                       defaults: Optional[Mapping[str, Any]] = None) -> Iterator[pathlib.Path]:
    """Locks the run directory (chief), cleans it, checks the rerun and records it; see the module docstring.

    Args:
        model_dir: the run directory.
        record: this run's record for `run.json` ({"config", "data", "model", ...}).
        settings: the config keys that must match a recorded run (`RunConfig.result_settings()`).
        is_chief: whether this process owns the directory (other workers only check).
        restart: delete the run's artifacts and start over instead of checking.
        defaults: the value of each setting in runs recorded before it existed (`config.setting_defaults()`).

    Example:
        >>> with open_run_directory("runs/a", record, config.result_settings()):  # doctest: +SKIP
        ...     train(...)
    """
    directory = pathlib.Path(model_dir)
    if not is_chief:
        if not restart:
            check_rerun(directory, record, settings, defaults)
        yield directory
        return
    _acquire(directory)
    try:
        if _held[os.path.realpath(directory)][1] == 1:  # the outermost holder checks and records
            removed = remove_leftovers(directory)
            if removed:
                print(f"Removed what an interrupted run left in {directory}: {removed}", flush=True)
            if restart:
                removed = start_over(directory)
                if removed:
                    print(f"Starting over (--restart): removed {removed}", flush=True)
            else:
                check_rerun(directory, record, settings, defaults)
            artifacts.write_json(directory / artifacts.RUN_FILE, record)
        yield directory
    finally:
        _release(directory)
