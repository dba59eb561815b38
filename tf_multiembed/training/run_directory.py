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
   (the fingerprint of its content, `artifacts.data_fingerprint`; field names, vocabulary sizes) and the model
   must equal those in its `run.json`; otherwise the run stops with a `RunMismatchError` that names each
   difference. `restart=True` (`train.py --restart`) deletes the run's artifacts (and nothing else) and starts over.
4. `run.json` is (re)written with the current record.

**Only the package's own files.** A run directory carries a marker file (`artifacts.RUN_MARKER_FILE`), written when a
run first opens it; folders of runs from before the marker are recognised by their `run.json`. A first run refuses a
folder that is neither a run directory nor empty (`ForeignDirectoryError`, naming what it holds), so a user's files
are never overwritten, and `--restart` deletes only the files the package writes (`start_over`); anything else in
the folder, inside `checkpoints/` or `logs/` included, stays.
"""

import contextlib
import os
import pathlib
import shutil
import socket
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from tf_multiembed import artifacts, types


class RunDirectoryLockedError(RuntimeError):
    """Another live process trains in this run directory."""


class RunMismatchError(ValueError):
    """A rerun whose settings or data differ from what the run directory was trained with."""


class ForeignDirectoryError(ValueError):
    """A --model_dir that is neither a run directory nor empty: a run there could overwrite the user's files."""


class FolderNotWritableError(PermissionError):
    """An output folder (or the nearest existing folder above it) that this process cannot write in."""


def check_writable(folder: types.PathLike, flag: str) -> None:
    """Raises `FolderNotWritableError` naming `--flag` when `folder` cannot be written: tried with a temporary file
    in it or, when it does not exist yet, in the nearest existing folder above it (nothing is left behind).

    Example:
        >>> check_writable("runs/my-run", "model_dir")  # doctest: +SKIP
    """
    path = pathlib.Path(folder or ".").absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FolderNotWritableError(f"--{flag}={folder}: {existing} is a file, not a folder. Choose another "
                                     f"--{flag}.")
    try:
        descriptor, probe = tempfile.mkstemp(dir=existing, prefix=".write-test-")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        what = f"cannot write in {folder}" if existing == path else f"cannot create it in {existing}"
        raise FolderNotWritableError(
            f"--{flag}={folder}: {what} ({error.strerror or error}). Make that folder writable for this user or "
            f"choose another --{flag}; nothing was trained.") from None


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
               defaults: Optional[Mapping[str, Any]] = None,
               resolve: Optional[Callable[[Mapping[str, Any]], Mapping[str, Any]]] = None) -> List[str]:
    """Human-readable differences between a recorded and a current run record (empty when they agree).

    A setting that the recorded run does not have (it was added to the configuration later) counts as its value in
    `defaults`, which is what runs before it did. `resolve` maps both configurations to comparable values first
    (`config.comparable_settings`: an explicit `--embedding_dim=10` equals the default that resolves to 10).

    Example:
        >>> mismatches({"config": {"lr": 1e-3}}, {"config": {"lr": 1e-2, "order": 2}}, ["lr", "order"], {"order": 2})
        ['--lr: 0.001 in the run, 0.01 now']
    """
    lines = []
    defaults = defaults or {}
    recorded_config: Mapping[str, Any] = {**defaults, **recorded.get("config", {})}
    current_config: Mapping[str, Any] = dict(current.get("config", {}))
    if resolve is not None:
        recorded_config, current_config = resolve(recorded_config), resolve(current_config)
    for name in settings:
        recorded_value = recorded_config.get(name)
        if recorded_value != current_config.get(name):
            lines.append(f"--{name}: {_short(recorded_value)} in the run, {_short(current_config.get(name))} now")
    recorded_data, current_data = recorded.get("data", {}), current.get("data", {})
    data_lines = [f"{key}: {_short(recorded_data.get(key))} in the run, {_short(current_data.get(key))} now"
                  for key in ("fingerprint", "field_names", "vocabulary_sizes", "split_rows")
                  if (not artifacts.same_data_fingerprint(recorded_data, current_data) if key == "fingerprint"
                      else recorded_data.get(key) != current_data.get(key))]
    if data_lines:
        lines.append("the data differs (" + "; ".join(data_lines) + ")")
    recorded_model = recorded.get("model", {}).get("name")
    current_model = current.get("model", {}).get("name")
    if recorded_model != current_model:
        lines.append(f"the model: {recorded_model!r} in the run, {current_model!r} now")
    return lines


def check_rerun(directory: pathlib.Path, record: Mapping[str, Any], settings: Sequence[str],
                defaults: Optional[Mapping[str, Any]] = None,
                resolve: Optional[Callable[[Mapping[str, Any]], Mapping[str, Any]]] = None) -> None:
    """Raises `RunMismatchError` when `directory` holds training state of another configuration or data."""
    if not _has_training_state(directory):
        return
    if not (directory / artifacts.RUN_FILE).is_file():
        raise RunMismatchError(
            f"{directory} holds checkpoints but no {artifacts.RUN_FILE} (written by an older version or another "
            "tool), so this run cannot check that they come from the same settings and data. Choose another "
            "--model_dir, or pass --restart to delete its checkpoints, results and logs and start over.")
    differences = mismatches(artifacts.read_run(directory), record, settings, defaults, resolve)
    if differences:
        raise RunMismatchError(
            f"{directory} was trained with other settings or data than this command:\n  - "
            + "\n  - ".join(differences)
            + "\nResuming would mix them (its checkpoints hold the recorded run). Rerun with the recorded settings "
              f"(see {directory / artifacts.RUN_FILE}), choose another --model_dir, or pass --restart to delete this "
              "run's checkpoints, results and logs and start over.")


# What the package writes in a run directory, besides the top-level files of `artifacts.RUN_ARTIFACTS`: checkpoint
# files of `tf.train.CheckpointManager` (and its temporaries) and TensorBoard event files.
_CHECKPOINT_PATTERNS = ("checkpoint", "checkpoint.tmp*", "ckpt-*")
_PACKAGE_PATTERNS = {
    artifacts.CHECKPOINTS_DIR: _CHECKPOINT_PATTERNS,
    artifacts.BEST_CHECKPOINT_DIR: _CHECKPOINT_PATTERNS,
    artifacts.LOGS_DIR: ("train/events.out.tfevents.*", "validation/events.out.tfevents.*"),
}


def _looks_like_run_record(directory: pathlib.Path) -> bool:
    try:
        record = artifacts.read_run(directory)
    except (artifacts.ArtifactError, OSError):
        return False
    return isinstance(record, dict) and {"config", "data", "model"} <= set(record)


def is_run_directory(directory: types.PathLike) -> bool:
    """Whether `directory` is a run directory: it has the package's marker, or (runs from before the marker) a
    `run.json` of the package's layout."""
    directory = pathlib.Path(directory)
    return (directory / artifacts.RUN_MARKER_FILE).is_file() or _looks_like_run_record(directory)


def claim_directory(directory: types.PathLike) -> None:
    """Makes `directory` a run directory (writes the marker), refusing a folder that holds files of someone else.

    Raises:
        ForeignDirectoryError: `directory` is neither a run directory nor empty; the message names what it holds.
    """
    directory = pathlib.Path(directory)
    if directory.is_dir() and not is_run_directory(directory):
        held = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in directory.iterdir()
                      if entry.name != artifacts.LOCK_FILE)
        if held:
            shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
            raise ForeignDirectoryError(
                f"{directory} is not a tf-multiembed run directory (no {artifacts.RUN_MARKER_FILE}, no "
                f"{artifacts.RUN_FILE}) and is not empty (it holds {shown}); a run there could overwrite those "
                "files. Choose a new or empty --model_dir, or move those files away.")
    if not (directory / artifacts.RUN_MARKER_FILE).is_file():
        artifacts.write_json(directory / artifacts.RUN_MARKER_FILE, {
            "format_version": artifacts.FORMAT_VERSION, "written_by": f"tf-multiembed {artifacts.package_version()}",
            "note": "A tf-multiembed run directory (docs/training.md): train.py --restart deletes only the files "
                    "the package wrote here."})


def package_files(directory: types.PathLike) -> List[pathlib.Path]:
    """The files and folders the package wrote in a run directory (what `start_over` deletes), nothing else."""
    directory = pathlib.Path(directory)
    found = [directory / name for name in artifacts.RUN_ARTIFACTS
             if name not in _PACKAGE_PATTERNS and (directory / name).is_file()]
    for folder, patterns in _PACKAGE_PATTERNS.items():
        found += sorted({path for pattern in patterns for path in (directory / folder).glob(pattern)})
    return found


def start_over(directory: pathlib.Path) -> Tuple[List[str], List[str]]:
    """Deletes a run's artifacts (run.json, results, best.keras, the ingest report, checkpoint and TensorBoard files)
    and the folders they leave empty; returns (removed, kept): the paths removed and the other files found in the
    package's folders (the user's), which stay."""
    removed = []
    for path in package_files(directory):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(str(path.relative_to(directory)))
    kept = []
    for folder in _PACKAGE_PATTERNS:
        root = directory / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*"), reverse=True):  # the deepest first: a folder after its contents
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif not path.is_dir():
                kept.append(str(path.relative_to(directory)))
        if not any(root.iterdir()):
            root.rmdir()
    return removed, sorted(kept)


def _summary(paths: Sequence[str], limit: int = 6) -> str:
    return ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


@contextlib.contextmanager
def open_run_directory(model_dir: types.PathLike, record: Mapping[str, Any], settings: Sequence[str], *,
                       is_chief: bool = True, restart: bool = False, defaults: Optional[Mapping[str, Any]] = None,
                       resolve: Optional[Callable[[Mapping[str, Any]], Mapping[str, Any]]] = None
                       ) -> Iterator[pathlib.Path]:
    """Locks the run directory (chief), cleans it, checks the rerun and records it; see the module docstring.

    Args:
        model_dir: the run directory.
        record: this run's record for `run.json` ({"config", "data", "model", ...}).
        settings: the config keys that must match a recorded run (`RunConfig.result_settings()`).
        is_chief: whether this process owns the directory (other workers only check).
        restart: delete the run's artifacts and start over instead of checking.
        defaults: the value of each setting in runs recorded before it existed (`config.setting_defaults()`).
        resolve: maps a configuration to comparable values (`config.comparable_settings`).

    Example:
        >>> with open_run_directory("runs/a", record, config.result_settings()):  # doctest: +SKIP
        ...     train(...)
    """
    directory = pathlib.Path(model_dir)
    if not is_chief:
        if not restart:
            check_rerun(directory, record, settings, defaults, resolve)
        yield directory
        return
    if os.path.realpath(directory) not in _held:
        claim_directory(directory)  # before the lock file: a foreign folder is left as it was
    _acquire(directory)
    try:
        if _held[os.path.realpath(directory)][1] == 1:  # the outermost holder checks and records
            removed = remove_leftovers(directory)
            if removed:
                print(f"Removed what an interrupted run left in {directory}: {removed}", flush=True)
            if restart:
                removed, kept = start_over(directory)
                if removed:
                    print(f"Starting over (--restart): removed {_summary(removed)} from {directory}"
                          + (f"; kept the files tf-multiembed did not write: {_summary(kept)}" if kept else ""),
                          flush=True)
            else:
                check_rerun(directory, record, settings, defaults, resolve)
            artifacts.write_json(directory / artifacts.RUN_FILE, record)
        yield directory
    finally:
        _release(directory)
