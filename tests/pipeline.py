"""Crops made the user's way for session fixtures: ``forensics synth``, then ``forensics preprocess``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per test run, also across pytest-xdist workers; returns its result.

    Without xdist this is ``build(tmp_path_factory.mktemp(name))``. Under xdist every worker
    is a session of its own, so the first worker to ask builds the data in the run's common
    temporary folder (under a file lock) and the others wait for it and share it, read-only
    (the pattern pytest-xdist documents for session fixtures).
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "shared"
    shared.mkdir(exist_ok=True)
    folder, done = shared / name, shared / f"{name}.done.json"
    with FileLock(str(shared / f"{name}.lock")):
        if done.is_file():
            return Path(json.loads(done.read_text()))
        shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker
        folder.mkdir()
        result = build(folder)
        done.write_text(json.dumps(str(result)))
        return result


def preprocess(root: Path, out: Path, frames: int, crop_size: int | None = None) -> Path:
    """Run ``forensics preprocess --layout ffpp`` on ``root`` into ``out``; return the manifest.

    In a fresh process: preprocessing forks workers, which is unsafe from a test process once
    torch has started threads (a test module may have run a model already).
    """
    argv = [sys.executable, "-m", "forensics", "preprocess", "--layout", "ffpp", "--root", str(root), "--out", str(out),
            "--frames", str(frames), "--no-progress", "--workers", "2"]
    if crop_size is not None:
        argv += ["--crop-size", str(crop_size)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"forensics preprocess failed on {root}:\n{proc.stderr}"
    return out / "manifest.csv"


def synth(tmp_path_factory, name: str, settings: dict) -> Path:
    """A ``forensics synth`` dataset of ``settings`` (:class:`forensics.synth.SynthConfig` fields)."""
    from forensics.synth import SynthConfig, make_dataset

    return once(tmp_path_factory, f"{name}_synth", lambda folder: make_dataset(folder, SynthConfig(**settings)))


def synth_crops(tmp_path_factory, name: str, settings: dict, frames: int, crop_size: int | None = None) -> Path:
    """A ``forensics synth`` dataset of ``settings``, cropped; returns the crop manifest."""
    root = synth(tmp_path_factory, name, settings)
    return once(tmp_path_factory, f"{name}_crops", lambda folder: preprocess(root, folder, frames, crop_size))
