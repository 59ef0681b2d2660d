"""Batches of frames handed from worker processes to a detector process through shared memory.

A chunk of 32 decoded 720p frames is 88 MB. Sent through a ``multiprocessing`` queue it is
stacked, pickled, written into a pipe by a feeder thread and unpickled on the other side: four
copies and two system calls per 64 KB. Here a worker copies the frames once into a POSIX
shared-memory block it owns (:class:`FrameBlock`) and sends only the block's name, shape and
dtype; the detector process maps the block (:class:`Attachments`, one mapping per worker,
kept while the worker keeps its block) and reads the frames in place.

Blocks never outlive the command (``/dev/shm`` is RAM; a leaked block is lost memory until
reboot):

* a worker unlinks its block when it grows it and when it exits (a ``multiprocessing``
  finaliser: pool workers leave through ``os._exit``, which skips ``atexit``);
* block names start with the command's own prefix (:func:`block_prefix`: ``forensics-<pid>-``),
  so the command removes whatever a killed worker left (:func:`sweep`) when it restarts its
  workers and in its ``finally``, without touching another run's blocks;
* if the command itself is killed (``kill -9``), ``multiprocessing``'s resource tracker, a
  process shared by the command and all its workers, unlinks every block a worker created and
  did not unlink once the last of those processes is gone.

The detector maps blocks without registering them with the resource tracker: Python 3.11's
``SharedMemory(name)`` registers every attachment, and since the tracker keeps one set of
names for all the processes sharing it, the attachment's registration adds nothing and an
``unregister`` to undo it would also drop the creator's, the one that makes the tracker
clean up after a killed worker (Python 3.13 has ``SharedMemory(name, track=False)`` for this).
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
from collections.abc import Sequence
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Every block this package creates is named ``PREFIX<command pid>-<worker pid>-<n>``.
PREFIX = "forensics-"
#: Where Linux keeps POSIX shared memory (one file per block).
SHM_FOLDER = Path("/dev/shm")
#: Numbers the blocks of this process (names are never reused: a detector may still map an old one).
_NUMBERS = itertools.count(1)


def block_prefix(owner: int) -> str:
    """The name prefix of the blocks of command process ``owner``."""
    return f"{PREFIX}{owner}-"


class FrameBlock:
    """A worker's shared-memory block holding its current batch of frames (the owner's side)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._shm: SharedMemory | None = None

    @property
    def name(self) -> str | None:
        """The current block's name (``None`` before the first batch)."""
        return self._shm.name if self._shm is not None else None

    def write(self, frames: Sequence[np.ndarray]) -> tuple[str, tuple[int, ...], str]:
        """Copy ``frames`` (all of one shape and dtype) into the block; return its name, the batch's shape and dtype."""
        first = np.asarray(frames[0])
        shape, dtype = (len(frames), *first.shape), first.dtype
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if self._shm is None or self._shm.size < nbytes:
            self._grow(nbytes)
        batch = np.ndarray(shape, dtype, buffer=self._shm.buf)
        for i, frame in enumerate(frames):
            batch[i] = frame  # a frame of another size raises here, as FaceDetector would
        del batch  # the block can't be closed while a view of it exists
        return self._shm.name, shape, dtype.str

    def _grow(self, nbytes: int) -> None:
        self.close()
        self._shm = SharedMemory(f"{self.prefix}{os.getpid()}-{next(_NUMBERS)}", create=True, size=nbytes)

    def close(self) -> None:
        """Unmap and unlink the block (idempotent; a block already swept away is fine)."""
        shm, self._shm = self._shm, None
        if shm is None:
            return
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:  # swept by the command, which also unregistered it
            pass


def attach(name: str) -> mmap.mmap:
    """Map block ``name`` read-only, without registering it with the resource tracker (see the module doc)."""
    import _posixshmem  # what SharedMemory itself uses on POSIX

    fd = _posixshmem.shm_open("/" + name, os.O_RDONLY, mode=0o600)
    try:
        return mmap.mmap(fd, os.fstat(fd).st_size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


class Attachments:
    """The detector process's mappings of workers' blocks: one per reply slot, replaced when the slot's block changes."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[str, mmap.mmap]] = {}

    def frames(self, slot: int, name: str, shape: Sequence[int], dtype: str) -> np.ndarray:
        """The batch of reply slot ``slot`` in block ``name``, read in place (valid until the slot's next batch)."""
        current = self._open.get(slot)
        if current is None or current[0] != name:
            if current is not None:
                _close(current[1])
            self._open[slot] = (name, attach(name))
        return np.ndarray(tuple(shape), np.dtype(dtype), buffer=self._open[slot][1])

    def close(self) -> None:
        """Unmap every block."""
        for _, mapping in self._open.values():
            _close(mapping)
        self._open.clear()


def _close(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:  # a view is still alive somewhere: the mapping goes when it does
        pass


def sweep(prefix: str, folder: Path = SHM_FOLDER) -> list[str]:
    """Unlink every block whose name starts with ``prefix``; return their names.

    Call it only when no process that owns such a block runs any more. Where there is no
    ``/dev/shm`` (not Linux) this does nothing and the resource tracker is the only net.
    """
    import _posixshmem

    removed = []
    for path in sorted(folder.glob(prefix + "*")) if folder.is_dir() else []:
        try:
            _posixshmem.shm_unlink("/" + path.name)
        except FileNotFoundError:
            continue
        # Its creator registered it with the resource tracker; it must not warn about it later.
        resource_tracker.unregister("/" + path.name, "shared_memory")
        removed.append(path.name)
    if removed:
        log.info("removed %d shared-memory blocks left by killed workers", len(removed))
    return removed
