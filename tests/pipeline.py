"""Crops made the user's way for session fixtures: ``forensics synth``, then ``forensics preprocess``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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

    return make_dataset(tmp_path_factory.mktemp(f"{name}_synth"), SynthConfig(**settings))


def synth_crops(tmp_path_factory, name: str, settings: dict, frames: int, crop_size: int | None = None) -> Path:
    """A ``forensics synth`` dataset of ``settings``, cropped; returns the crop manifest."""
    root = synth(tmp_path_factory, name, settings)
    return preprocess(root, tmp_path_factory.mktemp(f"{name}_crops"), frames, crop_size)
