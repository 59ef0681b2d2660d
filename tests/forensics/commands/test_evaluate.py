"""`forensics evaluate`: the training run's dataset/method/compression filters are kept on any
manifest unless the command names others, and the report says which were applied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.cli import main as cli
from forensics.commands.train import TrainConfig, main
from forensics.config import load_config

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def faceswap_run(crop_manifest, tmp_path_factory) -> Path:
    """A run trained on the reals and FaceSwap fakes only (the manifest also has SelfBlend)."""
    out = tmp_path_factory.mktemp("faceswap_run")
    cfg = load_config(TrainConfig, ROOT / "configs" / "demo.yaml", [
        f"data.manifest={crop_manifest}", f"output_dir={out}", "data.methods=[original,FaceSwap]",
        "data.compressions=[c23]", "model.input_size=32", "data.frames_per_video=2", "data.eval_frames_per_video=2",
        "data.batch_size=8", "data.num_workers=0", "train.epochs=1", "train.progress=false", "wandb.mode=disabled"])
    assert main(cfg) == 0
    return out / "checkpoints" / "best.pt"


def evaluate(checkpoint: Path, out: Path, *flags: str) -> dict:
    assert cli(["evaluate", "--checkpoint", str(checkpoint), "--out", str(out), "--frames-per-video", "2",
                "--wandb-mode", "disabled", *flags]) == 0
    return json.loads((out / "report.json").read_text())


def test_evaluate_keeps_the_training_filters_unless_told(faceswap_run, crop_manifest, tmp_path):
    # --manifest naming the training manifest itself used to drop the run's filters.
    kept = evaluate(faceswap_run, tmp_path / "kept", "--manifest", str(crop_manifest))
    assert set(kept["test"]["per_method"]) == {"original", "FaceSwap"}
    assert kept["filters"] == {"datasets": {"values": None, "from": "training run"},
                               "methods": {"values": ["original", "FaceSwap"], "from": "training run"},
                               "compressions": {"values": ["c23"], "from": "training run"}}

    every = evaluate(faceswap_run, tmp_path / "every", "--manifest", str(crop_manifest), "--methods", "all",
                     "--datasets", "ffpp")
    assert set(every["test"]["per_method"]) == {"original", "FaceSwap", "SelfBlend"}
    assert every["filters"]["methods"] == {"values": None, "from": "command line"}
    assert every["filters"]["datasets"] == {"values": ["ffpp"], "from": "command line"}
    assert every["test"]["video"]["n"] == kept["test"]["video"]["n"] * 3 // 2  # SelfBlend fakes added

    fakes_of_one = evaluate(faceswap_run, tmp_path / "selfblend", "--methods", "original", "SelfBlend")
    assert set(fakes_of_one["test"]["per_method"]) == {"original", "SelfBlend"}
    assert fakes_of_one["filters"]["compressions"]["from"] == "training run"
