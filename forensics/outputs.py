"""Output locations checked before work starts, and file-system errors said in one line.

A command whose ``--out`` is a file, a read-only folder or on a full disk must say so in one
line and leave what is already there untouched (every write goes through
:mod:`forensics.atomic`, so a failed write leaves the previous version). The checks here
run before any work, so a day-long job does not fail at its last write; :func:`describe_os_error`
words the errors that can still happen during the run (a disk filling up).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from forensics.errors import ForensicsError

#: ``errno`` values a user can act on (a path, a permission, space); anything else is a bug.
USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST,
               errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.ENAMETOOLONG, errno.EFBIG}

_HINTS = {
    errno.ENOSPC: "the disk is full; outputs written before are intact: free space and run the command again",
    errno.EDQUOT: "the disk quota is exhausted; outputs written before are intact: free space and run again",
    errno.EROFS: "the file system is read-only; choose another output location",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
}


def _existing_ancestor(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_dir(path: str | os.PathLike, name: str = "--out") -> Path:
    """Fail early unless ``path`` is, or can become, a folder we can write to.

    Args:
        path: the output folder (it may not exist yet).
        name: how the user gave it (``--out``, ``output_dir``), for the message.

    Raises:
        ForensicsError: ``path`` (or a parent of it) is a file, or the folder is not writable.
    """
    path = Path(path)
    probe = _existing_ancestor(path)
    if not probe.is_dir():
        where = "is a file" if probe == path.absolute() else f"is inside {probe}, which is a file"
        raise ForensicsError(f"{name} {path} {where}, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ForensicsError(f"{name} {path}: {probe} is not writable (read-only folder or file system)")
    return path


def check_output_file(path: str | os.PathLike, name: str = "--out") -> Path:
    """Fail early unless ``path`` can be written as a file (its folder writable, not a folder itself)."""
    path = Path(path)
    if path.is_dir():
        raise ForensicsError(f"{name} {path} is a folder; give a file name")
    check_output_dir(path.parent, name=f"{name} {path}: folder")
    return path


def describe_os_error(error: OSError) -> str | None:
    """One line for a file-system error a user can act on, else ``None`` (a bug: keep the traceback)."""
    if error.errno not in USER_ERRNOS:
        return None
    text = error.strerror or os.strerror(error.errno)
    if error.filename is not None:
        text = f"{error.filename}: {text}"
    hint = _HINTS.get(error.errno)
    return f"{text} ({hint})" if hint else text
