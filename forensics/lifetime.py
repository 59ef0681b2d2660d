"""Process lifetime: worker processes die with the command that started them, and signals stop it cleanly.

A ``kill -9`` of a command (or a SLURM pre-emption, which sends SIGTERM and then SIGKILL)
must not leave its workers behind: a forkserver worker is a child of the fork server, not of
the command, and it holds both ends of its input pipe, so it never sees end-of-input and
would sit there (hundreds of MB each) with parent 1. Two guards, because either alone has a
gap:

* :func:`die_with_parent` asks Linux to send the worker SIGKILL when its parent exits
  (``PR_SET_PDEATHSIG``). The fork server exits as soon as the command is gone (its "alive"
  pipe reaches end-of-file), so the signal reaches every worker at once.
* :func:`watch_process` polls the command's pid from a daemon thread and exits the worker
  when the command is gone (for systems without ``prctl``, or a fork server that lingers).

:func:`handle_termination` turns SIGTERM into :class:`Terminated` (a ``KeyboardInterrupt``),
so that the same ``finally`` blocks that clean up after Ctrl-C run after a pre-emption, and
the command line reports one line and exits 143.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: From <sys/prctl.h>.
PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (a ``KeyboardInterrupt`` so that Ctrl-C clean-up paths run)."""

    signal_number = signal.SIGTERM


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def handle_termination() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_status(error: KeyboardInterrupt) -> int:
    """The shell's status for a command stopped by a signal: 128 + the signal number (143, 130)."""
    return 128 + int(getattr(error, "signal_number", signal.SIGINT))


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux only).

    Returns whether the request was made. If the parent is already gone (it died between our
    fork and this call, so the signal would never come), exit at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent == 1 or os.getppid() != parent:
        os._exit(1)
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: a killed process whose parent has not reaped it yet is a zombie, not alive."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the pid reused by someone else's process
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _release_forkserver() -> None:
    """Close this worker's copy of the fork server's "alive" pipe.

    The fork server exits when that pipe reaches end-of-file, i.e. when every holder has
    closed it. Python hands a copy to each worker it forks, so while the workers live the
    fork server lives, and while it lives their parent-death signal never comes. Workers
    start no processes of their own, so they don't need it.
    """
    try:
        from multiprocessing import forkserver

        server = forkserver._forkserver
        fd = server._forkserver_alive_fd
        if fd is not None and server._forkserver_pid is None:  # a forked worker, not the command
            os.close(fd)
            server._forkserver_alive_fd = None
    except (AttributeError, OSError):
        pass


def watch_process(pid: int, interval: float = 1.0) -> threading.Thread:
    """Exit this process (status 1, no clean-up) once process ``pid`` is gone.

    The check runs every ``interval`` seconds in a daemon thread; a worker that is busy in C
    code still dies, since ``os._exit`` needs no cooperation from the main thread.
    """
    parent = os.getppid()

    def watch() -> None:
        while _alive(pid) and os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name=f"watch-{pid}", daemon=True)
    thread.start()
    return thread


def in_forkserver() -> bool:
    """Whether this code runs inside a multiprocessing fork server (importing its preload modules)."""
    frame = sys._getframe()
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename.endswith(os.path.join("multiprocessing", "forkserver.py")):
            return True
        frame = frame.f_back
    return False


def guard_forkserver() -> None:
    """In a fork server: die at once with the command that started it (no-op elsewhere).

    Left alone, a fork server exits only after its last worker and after an interpreter
    shutdown that takes seconds on a busy node; with this it goes with the command, and its
    workers' parent-death signal follows immediately.
    """
    if in_forkserver():
        die_with_parent()


def guard_worker(owner: int) -> None:
    """Set up a worker process of command process ``owner``: die with it, ignore Ctrl-C.

    Ctrl-C reaches every process of the terminal's process group; the command handles it and
    stops its workers, which must not each print a ``KeyboardInterrupt`` traceback first.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _release_forkserver()
    die_with_parent()
    if owner != os.getpid():
        watch_process(owner)
