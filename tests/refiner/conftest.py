"""Small synthetic crops for the refiner's tests, made once per session.

The videos of ``forensics synth`` are rendered in memory (no video coding, no face detector)
and cropped with the scene's own face boxes, 64x64: reals, self-reenactments ``a_a`` (method
``SelfReenact``) and cross-identity ``FaceSwap`` fakes ``a_b``, every fake cropped with its
original's box at every frame, as preprocessing does. That is the pixel alignment the refiner
relies on, at a fraction of the cost of the full pipeline.

The self-reenactments are ``forensics synth``'s own ``SelfReenact`` (a face-model renderer's
re-rendering of the face, aligned with its original): the manipulation the refiner is for.

Whether fine-tuning *learns* is checked on crops the user's way instead (:func:`reenact_manifest`:
``forensics synth --methods SelfReenact``, H.264, ``forensics preprocess`` with MTCNN), with
more identities and frames than the in-memory set: with 8 training videos of 8 frames a CPU
run of seconds is too short to gain anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forensics.data.manifest import write_manifest
from tests.pipeline import once, preprocess, synth

SIZE = 64
def make_crops(root: Path, originals: int = 12, frames: int = 8, size: int = SIZE, seed: int = 0,
               width: int = 160, height: int = 128) -> Path:
    """Write crops and ``root/manifest.csv``. Splits by pairs of videos: 2/3 train, then val, test."""
    from forensics.media.crops import crop_face, write_png
    from forensics.synth.faces import bundled_identities
    from forensics.synth.methods import manipulate
    from forensics.synth.render import Layer, plan_scene, render_frames

    identities = bundled_identities(originals, seed)
    ids = [f"{i:03d}" for i in range(originals)]
    pairs = [(i, i + 1) for i in range(0, originals, 2)]
    n_train = max(1, round(len(pairs) * 2 / 3))
    split_of, partner = {}, {}
    for k, (a, b) in enumerate(pairs):
        split_of[a] = split_of[b] = "train" if k < n_train else ("val" if (k - n_train) % 2 == 0 else "test")
        partner[a], partner[b] = b, a
    rows = []
    for a in range(originals):
        target = identities[a]
        swap = manipulate("FaceSwap", target, identities[partner[a]], np.random.default_rng([seed, 2, a]))
        blend = manipulate("SelfReenact", target, target, np.random.default_rng([seed, 4, a]))
        layers = [Layer(target.rgb), Layer(blend.rgb, blend.mask, blend.rerender), Layer(swap.rgb, swap.mask, swap.rerender)]
        videos = [("original", ids[a], ""), ("SelfReenact", f"{ids[a]}_{ids[a]}", ids[a]),
                  ("FaceSwap", f"{ids[a]}_{ids[partner[a]]}", ids[a])]
        scene = plan_scene(target, width, height, frames, 25, np.random.default_rng([seed, 3, a]))
        boxes = scene.face_boxes()
        for t, rendered in enumerate(render_frames(scene, target.alpha, layers)):
            x0, y0, x1, y1 = (float(v) for v in boxes[t])
            for (method, video, original), (frame, _) in zip(videos, rendered):
                rel = Path("crops") / "synth" / method / "c0" / video / f"{t:04d}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                write_png(root / rel, crop_face(frame, boxes[t], size))
                rows.append({"path": str(rel), "dataset": "synth", "video": video, "frame": t,
                             "label": int(method != "original"), "method": method, "compression": "c0",
                             "split": split_of[a], "original": original, "x0": x0, "y0": y0, "x1": x1,
                             "y1": y1, "score": float("nan")})
    path = root / "manifest.csv"
    write_manifest(pd.DataFrame(rows), path)
    return path


@pytest.fixture(scope="session")
def refiner_manifest(tmp_path_factory) -> Path:
    """64x64 crops of 12 originals (8 train, 2 val, 2 test) and their fakes, 8 frames each."""
    return once(tmp_path_factory, "refiner_crops", make_crops)


ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "refiner"
#: A network and a loop of seconds on 2 cores: 64x64 inputs, 3 levels of 16-64 channels.
TINY = ["model.channels=[16,32,64]", "model.latent=16", "model.input_size=64", "data.batch_size=8",
        "data.num_workers=0", "train.progress=false", "train.log_every=4", "wandb.mode=disabled", "grid_samples=4"]


def pretrain_overrides(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.manifest={manifest}", f"output_dir={out}", "train.epochs=4", *TINY, *extra]


def finetune_overrides(manifest: Path, stage1: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.manifest={manifest}", f"pretrained={stage1 / 'checkpoints' / 'best.pt'}", f"output_dir={out}",
            "train.epochs=12", "train.lr=0.003", "train.schedule=constant", "skips.input_ramp=16",
            "freeze.modules=[encoder.to_latent,decoder.levels.2]",
            *TINY, *extra]


@pytest.fixture(scope="session")
def stage1_run(refiner_manifest, tmp_path_factory) -> Path:
    """A stage-1 run folder (4 epochs on the 64 real training crops); made once, shared by the
    test files (and xdist workers) that read it."""
    from forensics.config import load_config
    from refiner.train import PretrainConfig, main

    def build(folder: Path) -> Path:
        out = folder / "stage1"
        cfg = load_config(PretrainConfig, CONFIGS / "synth_pretrain.yaml", pretrain_overrides(refiner_manifest, out))
        assert main(cfg, "pretrain") == 0
        return out

    return once(tmp_path_factory, "refiner_stage1", build)


@pytest.fixture(scope="session")
def refiner_run(refiner_manifest, stage1_run, tmp_path_factory) -> Path:
    """A fine-tuned run folder (12 epochs on the 64 training pairs, the bottleneck frozen)."""
    from forensics.config import load_config
    from refiner.train import FinetuneConfig, main

    def build(folder: Path) -> Path:
        out = folder / "finetune"
        cfg = load_config(FinetuneConfig, CONFIGS / "synth_finetune.yaml",
                          finetune_overrides(refiner_manifest, stage1_run, out))
        assert main(cfg, "finetune") == 0
        return out

    return once(tmp_path_factory, "refiner_finetune", build)


#: The learning check's dataset: 24 identities (16 to train on, 4 held-out test videos), 16
#: frames each, SelfReenact fakes only, cropped at 64 px (about the faces' size at 320x240).
REENACT_SYNTH = dict(originals=24, seconds=0.8, fps=20, width=320, height=240, methods=("SelfReenact",))
REENACT_FRAMES = 16


@pytest.fixture(scope="session")
def reenact_synth(tmp_path_factory) -> Path:
    """``forensics synth --methods SelfReenact`` (24 identities, 16 frames)."""
    return synth(tmp_path_factory, "reenact", REENACT_SYNTH)


@pytest.fixture(scope="session")
def reenact_manifest(reenact_synth, tmp_path_factory) -> Path:
    """:func:`reenact_synth` cropped by ``forensics preprocess`` (64 px)."""
    return once(tmp_path_factory, "reenact_crops", lambda folder: preprocess(reenact_synth, folder, REENACT_FRAMES, SIZE))


@pytest.fixture(scope="session")
def reenact_run(reenact_manifest, tmp_path_factory) -> Path:
    """Pretrain (4 epochs on the reals) then fine-tune (12 epochs on the pairs) on :func:`reenact_manifest`
    (made once: test_train.py and test_video.py both read it, maybe from two xdist workers)."""
    from forensics.config import load_config
    from refiner.train import FinetuneConfig, PretrainConfig, main

    def build(folder: Path) -> Path:
        stage1, out = folder / "stage1", folder / "finetune"
        cfg = load_config(PretrainConfig, CONFIGS / "synth_pretrain.yaml", pretrain_overrides(reenact_manifest, stage1))
        assert main(cfg, "pretrain") == 0
        cfg = load_config(FinetuneConfig, CONFIGS / "synth_finetune.yaml",
                          finetune_overrides(reenact_manifest, stage1, out))
        assert main(cfg, "finetune") == 0
        return out

    return once(tmp_path_factory, "reenact_run", build)
