"""Fixtures of the preprocessing tests: a small synthetic dataset and one reference run on it.

The dataset (6 originals, 1 s at 20 fps, 320x240, FaceSwap and SelfBlend fakes with masks)
and ``forensics preprocess`` on it (4 frames per video, real MTCNN, real H.264) are made once
per session; tests that need a run of their own compare against the reference.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

#: The preprocessing tests' dataset: small enough to preprocess several times in a session.
PP_SYNTH = dict(originals=6, seconds=1.0, fps=20, width=320, height=240, seed=1)
#: Options of the reference run (every other run of the tests compares against it).
FRAMES = ["--frames", "4"]


def preprocess(*args: str | Path) -> int:
    """``forensics preprocess ARGS`` in this process; its exit status."""
    from forensics.cli import main

    return main(["preprocess", "--no-progress", *map(str, args)])


@pytest.fixture(scope="session")
def pp_root(tmp_path_factory) -> Path:
    """A synthetic FaceForensics++ root: 6 originals, 6 FaceSwap, 6 SelfBlend (with masks)."""
    from forensics.synth import SynthConfig, make_dataset

    return make_dataset(tmp_path_factory.mktemp("pp-synth"), SynthConfig(**PP_SYNTH))


@pytest.fixture(scope="session")
def reference(pp_root, tmp_path_factory) -> Path:
    """OUT of an uninterrupted ``forensics preprocess --layout ffpp`` run on :func:`pp_root` (read only)."""
    out = tmp_path_factory.mktemp("pp-reference")
    assert preprocess("--layout", "ffpp", "--root", pp_root, "--out", out, *FRAMES, "--workers", "0") == 0
    return out


def read(out: Path, name: str = "manifest.csv") -> pd.DataFrame:
    """A manifest of ``out`` through the project's reader (validated, files checked)."""
    from forensics.data.manifest import read_manifest

    return read_manifest(out / name, check_files=True)


def assert_same_manifest(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same rows in the same order; boxes and scores equal to float rounding."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    numeric = ["x0", "y0", "x1", "y1", "score"]
    other = [c for c in a.columns if c not in numeric]
    pd.testing.assert_frame_equal(a[other].reset_index(drop=True), b[other].reset_index(drop=True))
    np.testing.assert_allclose(a[numeric].to_numpy(float), b[numeric].to_numpy(float), atol=1e-3, equal_nan=True)


def link(src: Path, dst: Path) -> Path:
    """Symlink ``dst`` -> ``src`` (parents made); hand-made layouts reuse the synthetic videos."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst
