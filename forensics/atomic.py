"""Atomic file output: a file is either absent or complete, never half-written.

Everything we write goes to a temporary name in the same folder and is then renamed with
``os.replace``, which is atomic on POSIX file systems. A crash or ``kill -9`` at any moment
therefore leaves the previous version (or nothing), never a truncated file that a later run
would trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` defaults to the target's own suffix, so that writers which infer the format
    from the extension (OpenCV, PyAV, matplotlib) still work on the temporary name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _publish(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _publish(tmp: Path, path: Path) -> None:
    """Make a written temporary file the output (the one step a full disk or a kill can't tear).

    Tests replace this to simulate a disk that fills up while an output is written.
    """
    # mkstemp creates 0600 files; give the output the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` if the block succeeds.

    An existing ``path`` is replaced. Used for outputs made of many files (a video's crops),
    so that a reader sees all of them or none.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publish_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish_dir(tmp: Path, path: Path) -> None:
    """Make a written temporary folder the output, replacing an existing one."""
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
