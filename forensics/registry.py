"""One small registry pattern for models, tasks and commands (timm's, DeepfakeBench's).

A :class:`Registry` maps names to objects (functions, task specs, modules). The core
registers its own entries at import; plug-in packages announce themselves through an
entry-point group in their ``pyproject.toml`` (``forensics.models``, ``forensics.tasks``,
``forensics.commands``), and the first lookup imports each announced module, which
registers what it defines. So the core never imports a plug-in by name.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from forensics.errors import ForensicsError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to ``T``; plug-ins of entry-point ``group`` are loaded on the first lookup."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind, self.group = kind, group
        self._entries: dict[str, T] = {}
        self._loaded = group is None

    def register(self, name: str, obj: T) -> T:
        """Record ``obj`` under ``name`` (the same object twice is fine, another one is an error)."""
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = obj
        return obj

    def decorator(self, name: str | None = None) -> Callable[[T], T]:
        """``@registry.decorator()`` records a function under its own name (or ``name``)."""
        return lambda obj: self.register(name or obj.__name__, obj)

    def load_plugins(self) -> None:
        """Import every module of the entry-point group, once; a broken one is logged, not fatal."""
        if self._loaded:
            return
        self._loaded = True
        for entry in entry_points(group=self.group):
            try:
                importlib.import_module(entry.value)
            except ImportError as error:  # a broken plug-in must not hide the others
                log.warning("could not load %s plug-in %s: %s", self.kind, entry.value, error)

    def get(self, name: str) -> T:
        """The entry called ``name``; :class:`ForensicsError` naming the choices if there is none."""
        if name not in self:
            raise ForensicsError(f"unknown {self.kind} '{name}' (choose from {', '.join(self.names()) or 'none'})")
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names, in registration order (the core's first)."""
        self.load_plugins()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
