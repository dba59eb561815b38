"""Disk space while preparing data: a check before the large writes whose size is known, blocks reserved before a
file is memory-mapped, and a full disk reported as one line instead of a crash.

A write through a memory map past the end of a full disk is not an error Python can catch: the kernel kills the
process with SIGBUS ("Fatal Python error: Bus error"). So file-backed arrays reserve their blocks first
(`reserve`, `os.posix_fallocate`, which fails cleanly with ENOSPC), and ordinary writes raise `OSError(ENOSPC)`,
which the build turns into a `DiskSpaceError` naming the folder.

Example:
    >>> check_free_space("/tmp", 1 << 20, "the split order")  # doctest: +SKIP
"""

import errno
import os
import pathlib
import shutil
from typing import Optional

from tf_multiembed import types

_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_ZEROS = bytes(1 << 20)


class DiskSpaceError(OSError):
    """Not enough free space for what preparing the data writes (checked before, or a write that failed); the
    message names the folder, the bytes needed or the file, and what to do. `errno` is ENOSPC."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC


def free_bytes(folder: types.PathLike) -> int:
    """The bytes free to this user in the file system of `folder` (or of its nearest existing parent)."""
    path = pathlib.Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_free_space(folder: types.PathLike, needed: int, what: str) -> None:
    """Raises `DiskSpaceError` when `folder` has less than `needed` bytes free for `what`.

    Example:
        >>> check_free_space("/tmp", 0, "nothing")
    """
    try:
        free = free_bytes(folder)
    except OSError:  # a file system that does not say (some network mounts): the writes will tell
        return
    if needed > free:
        raise DiskSpaceError(f"{folder}: {what} needs about {needed:,} bytes, {free:,} are free; free space there or "
                             f"choose another data folder (train.py --data_dir, prepare_dataset's cache_dir).")


def is_disk_full(error: BaseException) -> bool:
    """Whether an error is a full disk or an exhausted quota."""
    return isinstance(error, OSError) and error.errno in _DISK_FULL


def disk_full_error(folder: types.PathLike, error: OSError, what: Optional[str] = None) -> DiskSpaceError:
    """The `DiskSpaceError` of a write (of `what`, else of the error's file) that failed for lack of space in
    `folder`; call it once the unfinished files are removed."""
    what = what or error.filename
    where = f" writing {what}" if what else ""
    try:
        free = f" ({free_bytes(folder):,} bytes free now)"
    except OSError:
        free = ""
    return DiskSpaceError(f"{folder}: no space left on the device{where}{free}; "
                          f"the unfinished data was removed. Free space there or choose another data folder "
                          f"(train.py --data_dir, prepare_dataset's cache_dir).")


def reserve(path: types.PathLike) -> None:
    """Allocates the blocks of the whole file `path` (its current size), so writes through a memory map of it
    cannot hit a full disk; raises `OSError(ENOSPC)` when they do not fit."""
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
            return
        except AttributeError:  # no posix_fallocate (macOS, Windows): write the zeros
            pass
        except OSError as error:
            if error.errno not in (errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
                raise
        # Ordinary writes of zeros where the file system cannot preallocate; they raise ENOSPC cleanly.
        handle.seek(0)
        header = handle.read(min(size, 4096))  # keep what is already there (e.g. a .npy header)
        handle.seek(len(header))
        remaining = size - len(header)
        while remaining > 0:
            chunk = min(remaining, len(_ZEROS))
            handle.write(_ZEROS[:chunk])
            remaining -= chunk
        handle.flush()
        os.fsync(handle.fileno())
