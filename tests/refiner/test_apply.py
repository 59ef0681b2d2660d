"""`forensics refiner apply`: refined fakes become a new method that `forensics evaluate` scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forensics.cli import main as cli
from forensics.config import load_config
from forensics.media.crops import read_image
from forensics.errors import ForensicsError
from forensics.data.manifest import read_manifest
from forensics.commands.train import TrainConfig
from forensics.commands.train import main as train_detector
from refiner.apply import apply_refiner

from .conftest import ROOT


@pytest.fixture(scope="module")
def refined_manifest(refiner_manifest, refiner_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("refined") / "manifest_refined.csv"
    status = cli(["refiner", "apply", "--checkpoint", str(refiner_run / "checkpoints" / "best.pt"),
                  "--manifest", str(refiner_manifest), "--method", "SelfReenact", "--out", str(out), "--batch-size", "7"])
    assert status == 0
    return out


def test_apply_writes_a_new_method_with_its_own_rows(refiner_manifest, refined_manifest):
    source = read_manifest(refiner_manifest)
    df = read_manifest(refined_manifest, check_files=True)
    refined = df[df["method"] == "SelfReenact-refined"]
    fakes = source[source["method"] == "SelfReenact"]
    assert len(df) == len(source) + len(fakes) and len(refined) == len(fakes) == 96
    assert (refined["label"] == 1).all()
    keys = ["dataset", "video", "frame", "split", "compression", "original", "x0", "y1"]
    assert refined[keys].reset_index(drop=True).equals(fakes[keys].reset_index(drop=True))
    assert refined["path"].str.startswith("refined/SelfReenact-refined/synth/c0/").all()
    root = refined_manifest.parent
    crop = read_image(root / refined["path"].iat[0])
    original = read_image(refiner_manifest.parent / fakes["path"].iat[0])
    assert crop.shape == original.shape == (64, 64, 3) and not np.array_equal(crop, original)
    # The rows of the input manifest still point at their crops from the new folder.
    assert read_image(root / df["path"].iat[0]) is not None


def test_apply_again_resumes_and_refuses_another_checkpoint(refiner_manifest, refiner_run, refined_manifest,
                                                            tmp_path, caplog):
    stamp = {p: p.stat().st_mtime_ns for p in (refined_manifest.parent / "refined").rglob("*.png")}
    checkpoint = refiner_run / "checkpoints" / "best.pt"
    with caplog.at_level("INFO", logger="refiner.apply"):
        apply_refiner(checkpoint, refiner_manifest, "SelfReenact", out=refined_manifest)
    assert "refined 0 video(s) of SelfReenact" in caplog.text and "(12 already done)" in caplog.text
    assert stamp == {p: p.stat().st_mtime_ns for p in stamp}
    with pytest.raises(ForensicsError, match="refined by another checkpoint"):
        apply_refiner(refiner_run / "checkpoints" / "last.pt", refiner_manifest, "SelfReenact", out=refined_manifest)


def test_apply_bad_input(refiner_manifest, refiner_run, tmp_path):
    checkpoint = refiner_run / "checkpoints" / "best.pt"
    with pytest.raises(ForensicsError, match="no fake crops of method 'Face2Face'.*fake methods: FaceSwap, SelfReenact"):
        apply_refiner(checkpoint, refiner_manifest, "Face2Face", out=tmp_path / "m.csv")
    with pytest.raises(ForensicsError, match="method 'FaceSwap' is already in the manifest"):
        apply_refiner(checkpoint, refiner_manifest, "SelfReenact", name="FaceSwap", out=tmp_path / "m.csv")


def test_evaluate_scores_refined_fakes_like_any_method(refiner_manifest, refined_manifest, tmp_path):
    detector = tmp_path / "detector"
    overrides = [f"data.manifest={refiner_manifest}", f"output_dir={detector}", "model.input_size=32",
                 "data.methods=[original,SelfReenact]", "data.frames_per_video=2", "data.eval_frames_per_video=2",
                 "data.batch_size=8", "data.num_workers=0", "train.epochs=1", "train.progress=false",
                 "wandb.mode=disabled", "data.test_split=null"]
    assert train_detector(load_config(TrainConfig, ROOT / "configs" / "demo.yaml", overrides)) == 0
    out = tmp_path / "eval"
    status = cli(["evaluate", "--checkpoint", str(detector / "checkpoints" / "best.pt"), "--manifest",
                  str(refined_manifest), "--split", "test", "--methods", "original", "SelfReenact",
                  "SelfReenact-refined", "--out", str(out), "--num-workers", "0", "--wandb-mode", "disabled"])
    assert status == 0
    report = json.loads((out / "report.json").read_text())["test"]
    assert set(report["per_method"]) == {"original", "SelfReenact", "SelfReenact-refined"}
    assert report["per_method"]["SelfReenact-refined"]["frame"]["n_fake"] == 16


def test_a_crop_larger_than_the_network_keeps_its_detail_and_gets_the_correction():
    """A 128 px crop refined at 64 px: its own pixels plus the up-sampled correction, not the
    refined image blown up (which would blur away the crop's detail)."""
    import torch

    from refiner.apply import _at_size
    from refiner.data import resize

    crop = torch.from_numpy(np.random.default_rng(0).integers(40, 200, (3, 128, 128), dtype=np.uint8))
    low = resize(crop, 64).float()
    refined = low + torch.tensor([12.0, 0.0, -5.0]).view(3, 1, 1)  # the refiner re-coloured it
    out = _at_size(crop, refined, low)
    assert out.shape == crop.shape and out.dtype == torch.uint8
    assert torch.equal(out.int() - crop.int(), torch.tensor([12, 0, -5]).view(3, 1, 1).expand(3, 128, 128))
    same = torch.rand(3, 64, 64) * 255  # a crop of the network's size is the refined image itself
    assert torch.equal(_at_size(same.to(torch.uint8), same, same), same.round().to(torch.uint8))
