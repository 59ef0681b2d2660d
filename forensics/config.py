"""Typed configs: dataclass schemas filled from a YAML file and dotted command-line overrides.

A config is a tree of dataclasses (the schema, owned by the command that uses it). We let
OmegaConf's structured configs do the merging and type checking, and turn its errors into
one line naming the key and where it came from::

    cfg = load_config(TrainConfig, "configs/demo.yaml", ["train.lr=1e-4"])

An unknown key, a value of the wrong type or a required value left unset (``MISSING``) stops
here, before any work starts. A schema may define ``validate(self)`` for checks that types
can't express (choices, ranges); it raises :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from forensics.atomic import atomic_write_text
from forensics.errors import ConfigError

T = TypeVar("T")


def _first_line(error: OmegaConfBaseException) -> str:
    message = getattr(error, "msg", None) or str(error)
    return message.splitlines()[0].strip()


def _merge(base: Any, layer: Any, source: str) -> Any:
    try:
        return OmegaConf.merge(base, layer)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        raise ConfigError(f"{source}: key '{key}': {_first_line(error)}") from None


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {str(error).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of keys, got {type(data).__name__}")
    return OmegaConf.create(data)


def load_config(schema: type[T], path: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> T:
    """Build a ``schema`` instance from defaults, then ``path`` (YAML), then ``overrides``.

    Args:
        schema: the dataclass type describing the config; if it has an ``extended_schema()``
            classmethod, the type that returns is used (e.g. sections added by plug-ins).
        path: a YAML file; ``None`` uses the schema's defaults alone.
        overrides: dotted ``key=value`` strings, as typed on the command line.

    Returns:
        An instance of ``schema`` (real dataclasses, not OmegaConf containers).

    Raises:
        ConfigError: naming the key and the file (or "command line") at fault.
    """
    extended = getattr(schema, "extended_schema", None)
    cfg = OmegaConf.structured(extended() if callable(extended) else schema)
    source = str(path) if path is not None else "defaults"
    if path is not None:
        cfg = _merge(cfg, _load_yaml(Path(path)), source)
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"command line: override '{override}' is not of the form key=value")
        try:
            layer = OmegaConf.from_dotlist([override])
        except OmegaConfBaseException as error:
            raise ConfigError(f"command line: override '{override}': {_first_line(error)}") from None
        cfg = _merge(cfg, layer, f"command line ({override})")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{source}: required key '{missing[0]}' has no value"
                          + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""))
    obj = OmegaConf.to_object(cfg)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as error:
            raise ConfigError(f"{_blame(str(error), source, overrides)}: {error}") from None
    return obj


def _blame(message: str, source: str, overrides: Sequence[str]) -> str:
    """Where the value a validation ``message`` is about came from: the last override naming
    its key (``train.optimizer=adamm (command line)``), else the YAML file (or the defaults)."""
    for override in reversed(overrides):
        key = override.split("=", 1)[0].lstrip("+~")
        if key and re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", message):
            return f"{override} (command line)"
    return source


def to_dict(cfg: Any) -> dict:
    """A plain nested dict of a config dataclass (for YAML, JSON, W&B and checkpoints)."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)


def to_yaml(cfg: Any) -> str:
    """The fully resolved config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (for refusing a changed resume)."""
    keys = sorted(set(old) | set(new))
    diffs: list[str] = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_diff(a, b, name + ".")
        elif a != b:
            diffs.append(name)
    return diffs


def git_commit(path: str | os.PathLike = ".") -> dict[str, Any]:
    """The git commit (and whether the tree is dirty) of the checkout holding this package."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                                    text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def write_run_info(cfg: Any, run_dir: str | os.PathLike) -> None:
    """Write the resolved config (``config.yaml``) and provenance (``run.json``) into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    import torch  # local: keep `forensics --help` fast

    info = {
        "git": git_commit(),
        "command": sys.argv,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    sweep = os.environ.get("WANDB_SWEEP_ID")
    if sweep:  # started by `wandb agent` (docs/training.md): the sweep and the run it made
        info["wandb_sweep"] = {"id": sweep, "run": os.environ.get("WANDB_RUN_ID")}
    atomic_write_text(run_dir / "run.json", json.dumps(info, indent=2) + "\n")
