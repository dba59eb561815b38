"""Every error of a command-line run as one clean line (what happened, and what to do), the traceback on request.

`train.py` wraps its run in `report_error`: the package's own errors (refusals, bad input, divergence, artifacts)
already say what happened and what to do, and are printed as they are; disk, permission and other operating-system
errors, TensorFlow's runtime errors and running out of memory get a line naming the file and what to do; anything
else is an unexpected error, likely a bug, and says so, with how to get the traceback. `--traceback` (or the
environment variable `TF_MULTIEMBED_TRACEBACK=1`) prints the traceback after the line.

Example:
    >>> describe_error(OSError(28, "No space left on device", "runs/x/checkpoints/ckpt-3.index"))[0]
    'No space left on device: runs/x/checkpoints/ckpt-3.index'
"""

import errno
import os
import re
import sys
import traceback
from typing import Optional, Tuple

TRACEBACK_VARIABLE = "TF_MULTIEMBED_TRACEBACK"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TRACEBACK_HINT = f"rerun with --traceback (or {TRACEBACK_VARIABLE}=1) for the traceback"

_OS_ERROR_HINTS = {
    errno.ENOSPC: "free space on that disk, or point the flag that names the folder (--data_dir, --model_dir, "
                  "--export_dir) to a disk with room",
    errno.EDQUOT: "free space within your disk quota, or point the flag that names the folder to another disk",
    errno.EACCES: "make the folder writable (or readable) for this user, or choose another one with its flag",
    errno.EPERM: "make the folder writable (or readable) for this user, or choose another one with its flag",
    errno.EROFS: "the file system is read-only: choose a folder on a writable disk with its flag",
    errno.ENOENT: "check the path (and the flag that gives it)",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "the path is a folder where a file was expected: check the path",
}

_OS_ERROR_WORDS = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
                   errno.EROFS: "Read-only file system", errno.EACCES: "Permission denied"}


def wants_traceback(flag: bool = False) -> bool:
    """Whether to print tracebacks: the flag, or `TF_MULTIEMBED_TRACEBACK` set to anything but "" or "0"."""
    return bool(flag) or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0")


def _raised_in_package(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is the package's own code (a deliberate `raise`)."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_PACKAGE_DIR + os.sep)


def _first_line(text: object) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def describe_error(error: BaseException) -> Tuple[str, Optional[str], bool]:
    """(message, what to do or None, expected) for an error that ended a run.

    `expected` is False for errors that are likely bugs (an exception type the package does not raise on purpose).
    """
    import tensorflow as tf

    from tf_multiembed.training.callbacks import TrainingDivergedError

    if isinstance(error, TrainingDivergedError):
        return (str(error), "Nothing was exported. Start the run over with a lower --learning_rate and --restart (its "
                            "checkpoints hold the run before it diverged).", True)
    if type(error).__module__.startswith("tf_multiembed"):  # the package's errors say what to do themselves
        return str(error), None, True
    if isinstance(error, OSError):
        if error.strerror and error.filename:
            message = f"{error.strerror}: {error.filename}" + (f" -> {error.filename2}" if error.filename2 else "")
        else:
            message = str(error)
        hint = _OS_ERROR_HINTS.get(error.errno) if error.errno is not None else None
        if hint is None and _raised_in_package(error):
            return message, None, True  # a deliberate FileExistsError & co. that says what to do
        return message, f"{hint or 'an operating-system error'}; {_TRACEBACK_HINT}.", True
    if isinstance(error, tf.errors.OpError):
        hints = {
            tf.errors.DataLossError: "a data file is truncated or corrupt: prepare the data again, or replace the "
                                     "file",
            tf.errors.ResourceExhaustedError: "out of memory: lower --batch_size (or the model's size)",
            tf.errors.NotFoundError: "a file is missing: check the paths the flags give",
            tf.errors.PermissionDeniedError: "make the folder readable and writable for this user, or choose "
                                             "another one",
        }
        message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", _first_line(error.message))
        # TensorFlow reports a full disk as ResourceExhaustedError and a read-only one as another error: the
        # operating system's words in the message say which.
        hint = next((_OS_ERROR_HINTS[code] for code, words in _OS_ERROR_WORDS.items() if words in message), None)
        hint = hint or next((text for kind, text in hints.items() if isinstance(error, kind)),
                            "a TensorFlow runtime error")
        return f"TensorFlow {type(error).__name__}: {message}", f"{hint}; {_TRACEBACK_HINT}.", True
    if isinstance(error, MemoryError):
        return "out of memory", f"lower --batch_size (or the data or model size); {_TRACEBACK_HINT}.", True
    if isinstance(error, (ValueError, RuntimeError)) and _raised_in_package(error):
        return str(error), None, True  # the package's checks raise these with the whole story in the message
    return (f"unexpected error: {type(error).__name__}: {_first_line(error)}",
            f"this is likely a bug in tf-multiembed: {_TRACEBACK_HINT}, and report it.", False)


def report_error(error: BaseException, program: str, show_traceback: bool = False) -> int:
    """Prints `error` for the user of `program` (one line, what to do, the traceback if asked); returns the exit
    status (1; 130 for an interruption)."""
    hint: Optional[str]
    if isinstance(error, KeyboardInterrupt):
        message, hint, status = "interrupted", "Rerun the same command to resume from the latest checkpoint.", 130
    else:
        message, hint, _ = describe_error(error)
        status = 1
    if wants_traceback(show_traceback):
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    print(f"{program}: {message}", file=sys.stderr, flush=True)
    if hint:
        print(hint[0].upper() + hint[1:], file=sys.stderr, flush=True)
    return status
