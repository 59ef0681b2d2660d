"""Shared session fixtures: a small synthetic FaceForensics++-style dataset and its crop manifest.

Both are made once per test session (a few seconds) and shared read-only by every test that
needs data; a test that writes copies what it needs into its own ``tmp_path``.

The crops come from the real ``forensics preprocess`` (MTCNN, subject tracking, the crop
rule, ``settings.json``), as a user would make them. Where the ``preprocessing`` package is
not installed, :func:`make_crops` stands in for it: the face box of every frame of original
``a`` is the bounding box of the mask of its self-reenacted fake ``a_a`` (frame-aligned with
``a``), the fakes of ``a`` reuse those boxes as preprocessing does, and the crop rule and the
manifest writer are the real ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.pipeline import once, preprocess, synth_crops

# Two shared cores: one intra-op thread per process avoids oversubscription (torchrun does
# the same for its workers), and subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_SILENT", "true")

#: Size of the session dataset. 20 originals give test and val 2 pairs each (4 reals, 4
#: FaceSwap, 4 SelfBlend videos), enough for a video-level AUC with some resolution.
SYNTH = dict(originals=20, seconds=0.4, fps=20, width=320, height=240, seed=0)
FRAMES_PER_VIDEO = 8

#: A dataset on which a detector is asked to *generalise* to unseen identities: 40 originals
#: (the test split has 3 pairs: 6 reals, 12 fakes; 28 identities to train on), short
#: videos, crops of 112 px, about the faces' own size in 320x240 frames, so that no resize
#: averages the forgery trace (missing grain and detail inside the face) away.
LEARN_SYNTH = dict(originals=40, seconds=0.5, fps=20, width=320, height=240, seed=0)
LEARN_FRAMES, LEARN_CROP = 10, 112


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A synthetic FaceForensics++ layout (20 originals, 8 frames each, c23)."""
    from forensics.synth import SynthConfig, make_dataset

    return once(tmp_path_factory, "synth", lambda root: make_dataset(root, SynthConfig(**SYNTH)))


def _mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def make_crops(root: Path, out: Path, size: int = 224, compression: str = "c23") -> Path:
    """Crops and ``manifest.csv`` from a synth dataset, boxes from the ``a_a`` masks."""
    import pandas as pd

    from forensics.media.crops import crop_face, write_png
    from forensics.data.manifest import write_manifest
    from forensics.synth import fake_path, mask_path, original_path
    from forensics.media.video import read_frames

    rows = []
    splits = {name: json.loads((root / "splits" / f"{name}.json").read_text()) for name in ("train", "val", "test")}
    for split, pairs in splits.items():
        for a, b in pairs:
            for target, partner in ((a, b), (b, a)):
                masks = {i: m for i, m in read_frames(mask_path(root, "SelfBlend", target, target))}
                boxes = {i: _mask_box(m[..., 0]) for i, m in masks.items()}
                videos = [("original", target, "", original_path(root, compression, target)),
                          ("FaceSwap", f"{target}_{partner}", target, fake_path(root, "FaceSwap", compression, target, partner)),
                          ("SelfBlend", f"{target}_{target}", target, fake_path(root, "SelfBlend", compression, target, target))]
                for method, video, original, path in videos:
                    for i, frame in read_frames(path):
                        box = boxes.get(i)
                        if box is None:
                            continue
                        rel = f"crops/ffpp/{method}/{compression}/{video}/{i:04d}.png"
                        (out / rel).parent.mkdir(parents=True, exist_ok=True)
                        write_png(out / rel, crop_face(frame, box, size=size))
                        rows.append(dict(path=rel, dataset="ffpp", video=video, frame=i,
                                         label=int(method != "original"), method=method, compression=compression,
                                         split=split, original=original, x0=box[0], y0=box[1], x1=box[2],
                                         y1=box[3], score=float("nan")))
    write_manifest(pd.DataFrame(rows), out / "manifest.csv")
    return out / "manifest.csv"


@pytest.fixture(scope="session")
def crop_manifest(synth_root, tmp_path_factory) -> Path:
    """``manifest.csv`` of 224x224 face crops (8 per video) of the session's synthetic dataset."""
    try:
        import preprocessing.cli  # noqa: F401
    except ModuleNotFoundError:
        return once(tmp_path_factory, "crops", lambda out: make_crops(synth_root, out))
    return once(tmp_path_factory, "crops", lambda out: preprocess(synth_root, out, FRAMES_PER_VIDEO))


@pytest.fixture(scope="session")
def learn_manifest(tmp_path_factory) -> Path:
    """``manifest.csv`` of 112x112 crops (10 per video) of a 40-identity synthetic dataset."""
    return synth_crops(tmp_path_factory, "learn", LEARN_SYNTH, LEARN_FRAMES, LEARN_CROP)
