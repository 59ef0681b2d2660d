"""Outputs that stay only if a command gets past its set-up.

A training run writes its folder (``config.yaml``, ``run.json``, ``wandb/``) while it sets up;
if set-up then fails (too few crops for one batch, W&B unreachable when asked for), a folder
with a record but no run would be left behind and mistaken for a run. A
:class:`Provisional` notes what a folder held before; unless :meth:`Provisional.keep` is
called (the first training step is near), an error leaving :func:`scope` removes what was
added since, and the folder itself if the command created it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_PENDING: list["Provisional"] = []


class Provisional:
    """The entries a command is about to add to ``folder``, removed again if it fails before :meth:`keep`."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.created = not self.folder.exists()
        self.before = set() if self.created else set(os.listdir(self.folder))
        _PENDING.append(self)

    def keep(self) -> None:
        """Set-up succeeded: whatever happens now, the folder's contents stay."""
        if self in _PENDING:
            _PENDING.remove(self)

    def discard(self) -> None:
        """Remove what was added to the folder since this object was made (the folder too, if new)."""
        self.keep()
        if not self.folder.is_dir():
            return
        if self.created:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            for name in set(os.listdir(self.folder)) - self.before:
                path = self.folder / name
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink()
        log.info("set-up failed: removed what it had written to %s", self.folder)


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Run a command: on an error, discard the outputs still provisional; on success keep all."""
    try:
        yield
    except BaseException:
        for pending in reversed(list(_PENDING)):
            try:
                pending.discard()
            except OSError:
                pass  # never hide the error that stopped the command
        raise
    finally:
        _PENDING.clear()
