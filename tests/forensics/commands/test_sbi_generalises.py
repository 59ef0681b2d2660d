"""Self-blended images (``data.pseudo_fakes=sbi``): trained on real videos alone, a detector
catches a manipulation it never saw. The experiment of docs/generalisation.md, in small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.cli import main as cli_main
from forensics.commands.train import TrainConfig, main
from forensics.config import load_config
from forensics.data.manifest import read_manifest
SBI_DEMO = Path(__file__).resolve().parents[3] / "configs" / "sbi" / "demo.yaml"


@pytest.mark.slow
def test_trained_on_reals_alone_it_catches_unseen_faceswap(learn_manifest, tmp_path):
    """MobileNetV3-small (0.5x) from scratch on the originals of 28 identities and their
    self-blended twins (never a fake video): on the test split's 6 reals and 6 FaceSwap fakes
    (unseen method, unseen people), video AUC >= 0.85."""
    out = tmp_path / "sbi"
    overrides = [f"data.manifest={learn_manifest}", f"output_dir={out}", "train.progress=false",
                 "wandb.mode=disabled"]
    assert main(load_config(TrainConfig, SBI_DEMO, overrides)) == 0
    trained_on = read_manifest(learn_manifest)
    assert set(trained_on[trained_on.split == "train"].method) >= {"FaceSwap", "SelfBlend"}  # there, unused
    assert (out / "sbi_pairs.png").is_file()  # the pair grid of the start of training
    report = json.loads((out / "report.json").read_text())
    assert report["val"]["per_method"]["sbi"]["video"]["fake_acc"] is not None  # validated on twins
    evaluated = tmp_path / "faceswap"
    assert cli_main(["evaluate", "--checkpoint", str(out / "checkpoints" / "best.pt"), "--methods", "original",
                     "FaceSwap", "--out", str(evaluated), "--num-workers", "0", "--wandb-mode", "disabled"]) == 0
    video = json.loads((evaluated / "report.json").read_text())["test"]["video"]  # the split evaluated
    assert (video["n_real"], video["n_fake"]) == (6, 6)
    assert video["auc"] >= 0.85, video


def test_sbi_configs_load_and_bad_values_are_refused():
    from forensics.errors import ConfigError

    b4 = load_config(TrainConfig, SBI_DEMO.parent / "efficientnet_b4.yaml", ["data.manifest=m", "output_dir=o"])
    assert (b4.model.name, b4.model.input_size, b4.train.optimizer, b4.train.lr, b4.train.momentum) == \
        ("efficientnet_b4", 380, "sgd", 0.001, 0.9)
    assert (b4.data.batch_size, b4.train.epochs, b4.data.methods, b4.data.pseudo_fakes) == (32, 100, ["original"], "sbi")
    demo = load_config(TrainConfig, SBI_DEMO, ["data.manifest=m", "output_dir=o"])
    assert demo.data.pseudo_fakes == "sbi_lowres" and not demo.model.pretrained
    with pytest.raises(ConfigError, match="data.pseudo_fakes must be one of None, sbi, sbi_lowres, got 'sbx'"):
        load_config(TrainConfig, SBI_DEMO, ["data.manifest=m", "output_dir=o", "data.pseudo_fakes=sbx"])
