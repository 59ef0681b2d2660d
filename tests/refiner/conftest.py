"""Small synthetic crops for the refiner's tests, made once per session.

The videos of ``forensics synth`` are rendered in memory (no video coding, no face detector)
and cropped with the scene's own face boxes, 64x64: reals, self-reenactments ``a_a`` (method
``SelfBlend``) and cross-identity ``FaceSwap`` fakes ``a_b``, every fake cropped with its
original's box at every frame, as preprocessing does. That is the pixel alignment the refiner
relies on, at a fraction of the cost of the full pipeline.

The self-reenactments here blend one fixed colour and contrast change into the inner face,
the same for every video: a manipulation with a consistent artefact, as a reenactment
renderer has, which a refiner can learn from 8 training videos in seconds. ``forensics
synth``'s own ``SelfBlend`` draws a new colour, blur and warp for every video (Self-Blended
Images); what a refiner learns from that at CPU scale is reported in ``docs/refiner.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forensics.manifest import write_manifest

SIZE = 64
#: The fixed colour change of the test self-reenactments: contrast, then RGB offsets.
CONTRAST, SHIFT = 1.1, (14.0, -8.0, 6.0)


def colour_blend(target):
    """A self-reenactment of ``target`` with a fixed colour change inside its inner face."""
    from forensics.synth.faces import inner_face_mask
    from forensics.synth.methods import Fake, _blend

    mask = inner_face_mask()
    source = np.clip((target.rgb - 128) * CONTRAST + 128 + np.array(SHIFT), 0, 255).astype(np.float32)
    return Fake(_blend(target.rgb, source, mask), mask)


def make_crops(root: Path, originals: int = 12, frames: int = 8, size: int = SIZE, seed: int = 0,
               width: int = 160, height: int = 128) -> Path:
    """Write crops and ``root/manifest.csv``. Splits by pairs of videos: 2/3 train, then val, test."""
    from forensics.crops import crop_face, write_png
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
        blend = colour_blend(target)
        layers = [Layer(target.rgb), Layer(blend.rgb, blend.mask), Layer(swap.rgb, swap.mask)]
        videos = [("original", ids[a], ""), ("SelfBlend", f"{ids[a]}_{ids[a]}", ids[a]),
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
    return make_crops(tmp_path_factory.mktemp("refiner_crops"))


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
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("refiner_runs")


@pytest.fixture(scope="session")
def stage1_run(refiner_manifest, runs_root) -> Path:
    """A stage-1 run folder (4 epochs on the 64 real training crops)."""
    from forensics.config import load_config
    from refiner.train import PretrainConfig, main

    out = runs_root / "stage1"
    cfg = load_config(PretrainConfig, CONFIGS / "synth_pretrain.yaml", pretrain_overrides(refiner_manifest, out))
    assert main(cfg, "pretrain") == 0
    return out


@pytest.fixture(scope="session")
def refiner_run(refiner_manifest, stage1_run, runs_root) -> Path:
    """A fine-tuned run folder (12 epochs on the 64 training pairs, the bottleneck frozen)."""
    from forensics.config import load_config
    from refiner.train import FinetuneConfig, main

    out = runs_root / "finetune"
    cfg = load_config(FinetuneConfig, CONFIGS / "synth_finetune.yaml",
                      finetune_overrides(refiner_manifest, stage1_run, out))
    assert main(cfg, "finetune") == 0
    return out
